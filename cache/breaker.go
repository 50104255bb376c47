package cache

import "github.com/authzd/authzd/internal/breaker"

// Breaker states.
const (
	BreakerClosed   = breaker.Closed   // calls go through
	BreakerOpen     = breaker.Open     // calls are skipped until the open interval ends
	BreakerHalfOpen = breaker.HalfOpen // one probe call is in flight; others are skipped
)

// Breaker is a lock-free circuit breaker (internal/breaker, shared with the
// Redis API-key store): after Failures consecutive errors it opens and
// skips calls for OpenFor, then lets exactly one probe through.
type Breaker = breaker.Breaker

// BreakerStats counts what a breaker saw since creation.
type BreakerStats = breaker.Stats

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	cfg = cfg.WithDefaults()
	return breaker.New(breaker.Config{Failures: cfg.Failures, OpenFor: cfg.OpenFor})
}
