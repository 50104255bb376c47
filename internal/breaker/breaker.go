package breaker

import (
	"sync/atomic"
	"time"
)

// Breaker states.
const (
	Closed   = 0 // calls go through
	Open     = 1 // calls are skipped until the open interval ends
	HalfOpen = 2 // one probe call is in flight; others are skipped
)

// Config configures a Breaker. Zero fields are 1 failure and no open
// interval; callers apply their own defaults.
type Config struct {
	// Failures is the count of consecutive errors that opens the breaker.
	Failures int
	// OpenFor is how long calls are skipped before one probe is let through.
	OpenFor time.Duration
}

// Breaker is a lock-free circuit breaker: after Failures consecutive errors
// it opens and skips calls for OpenFor, then lets exactly one probe through.
// A successful probe closes it; a failed probe opens it again.
//
// The hot path (Allow on a closed breaker) is one atomic load.
type Breaker struct {
	failures int64
	openFor  int64 // nanoseconds
	now      func() time.Time

	state     atomic.Int32
	fails     atomic.Int64 // consecutive failures while closed
	openUntil atomic.Int64 // unix nanoseconds

	skipped, errors, opened atomic.Uint64
	onChange                atomic.Pointer[func(state int)]
	lastErr                 atomic.Pointer[string]
}

// New returns a closed breaker.
func New(cfg Config) *Breaker {
	if cfg.Failures < 1 {
		cfg.Failures = 1
	}
	return &Breaker{failures: int64(cfg.Failures), openFor: int64(cfg.OpenFor), now: time.Now}
}

// OnChange registers f to be called on every state change (for logs). It
// must not block.
func (b *Breaker) OnChange(f func(state int)) { b.onChange.Store(&f) }

func (b *Breaker) changed(state int) {
	if f := b.onChange.Load(); f != nil {
		(*f)(state)
	}
}

// Allow reports whether a call may go to the backend. Every false is
// counted as a skipped call. A true must be followed by exactly one of
// Success, Failure or Neutral.
func (b *Breaker) Allow() bool {
	switch b.state.Load() {
	case Closed:
		return true
	case Open:
		if b.now().UnixNano() >= b.openUntil.Load() && b.state.CompareAndSwap(Open, HalfOpen) {
			b.changed(HalfOpen)
			return true // the single probe
		}
	}
	b.skipped.Add(1)
	return false
}

// Success records a call that reached the backend and got an answer.
func (b *Breaker) Success() {
	if b.fails.Load() != 0 {
		b.fails.Store(0)
	}
	if b.state.Load() == HalfOpen && b.state.CompareAndSwap(HalfOpen, Closed) {
		b.changed(Closed)
	}
}

// FailureErr is Failure that also remembers err for logs and Stats.
func (b *Breaker) FailureErr(err error) {
	if err != nil {
		s := err.Error()
		b.lastErr.Store(&s)
	}
	b.Failure()
}

// Failure records a backend error or timeout.
func (b *Breaker) Failure() {
	b.errors.Add(1)
	switch b.state.Load() {
	case HalfOpen:
		b.open(HalfOpen)
	case Closed:
		if b.fails.Add(1) >= b.failures {
			b.open(Closed)
		}
	}
}

// Neutral records a call that ended for a reason that says nothing about
// the backend (the caller went away). A probe is given back.
func (b *Breaker) Neutral() {
	if b.state.Load() == HalfOpen {
		b.openUntil.Store(0)
		if b.state.CompareAndSwap(HalfOpen, Open) {
			b.changed(Open)
		}
	}
}

func (b *Breaker) open(from int32) {
	b.openUntil.Store(b.now().UnixNano() + b.openFor)
	if b.state.CompareAndSwap(from, Open) {
		b.fails.Store(0)
		b.opened.Add(1)
		b.changed(Open)
	}
}

// State returns Closed, Open or HalfOpen.
func (b *Breaker) State() int { return int(b.state.Load()) }

// Stats counts what the breaker saw since creation.
type Stats struct {
	// Skipped is the number of calls not made because the breaker was open.
	Skipped uint64
	// Errors is the number of failed calls.
	Errors uint64
	// Opened is the number of times the breaker opened.
	Opened uint64
	// State is the current state.
	State int
	// LastError is the most recent error passed to FailureErr.
	LastError string
}

// Stats returns the counters.
func (b *Breaker) Stats() Stats {
	st := Stats{Skipped: b.skipped.Load(), Errors: b.errors.Load(), Opened: b.opened.Load(), State: b.State()}
	if e := b.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st
}
