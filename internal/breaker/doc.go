// Package breaker owns the lock-free circuit breaker that guards Redis
// calls, shared by the cache tier and the Redis API-key store.
//
// breaker must not import any authzd package.
package breaker
