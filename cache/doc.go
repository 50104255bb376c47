// Package cache owns the Cache interface, cache keys, and the cache
// implementations: a bounded in-memory cache with TTL (the default), and the
// Redis and two-tier compositions.
//
// A cache never changes an answer; it only makes the same answer cheaper.
// Keys are SHA-256 digests of length-prefixed fields, so two different field
// lists can never produce the same key by concatenation.
//
// cache must not import the identity, rego or service packages.
package cache
