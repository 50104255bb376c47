package service

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authzd/authzd/identity/apikey"
)

// registerAPIKeyStoreMetrics exposes the Redis API-key store's outage
// counters: answers from memory while Redis is down, lookups denied as
// unavailable, recoveries, and its breaker.
func registerAPIKeyStoreMetrics(reg *prometheus.Registry, store *apikey.RedisStore) {
	counter := func(name, help string, f func(apikey.RedisStoreStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(store.Stats())) })
	}
	reg.MustRegister(
		counter("authzd_apikey_store_served_stale_total", "API-key lookups answered from memory because Redis did not answer.",
			func(s apikey.RedisStoreStats) uint64 { return s.ServedStale }),
		counter("authzd_apikey_store_unavailable_total", "API-key lookups denied as unavailable: Redis did not answer and no usable copy was in memory.",
			func(s apikey.RedisStoreStats) uint64 { return s.Unavailable }),
		counter("authzd_apikey_store_reconciles_total", "Recoveries of the API-key store: the revocation counter checked after a Redis failure.",
			func(s apikey.RedisStoreStats) uint64 { return s.Reconciles }),
		counter("authzd_apikey_store_redis_skipped_total", "API-key store Redis calls skipped because its breaker was open.",
			func(s apikey.RedisStoreStats) uint64 { return s.Breaker.Skipped }),
		counter("authzd_apikey_store_redis_errors_total", "API-key store Redis calls that failed or timed out.",
			func(s apikey.RedisStoreStats) uint64 { return s.Breaker.Errors }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authzd_apikey_store_breaker_state", Help: "API-key store Redis breaker: 0 closed, 1 open, 2 half-open.",
		}, func() float64 { return float64(store.Stats().Breaker.State) }),
	)
}
