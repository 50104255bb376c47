package rego

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authzd/authzd/internal/filewatch"
)

// Engine holds the current PolicySet and reloads it when the files change.
// Readers never block: the set is swapped with an atomic pointer.
type Engine struct {
	cfg Config
	log *slog.Logger

	cur     atomic.Pointer[PolicySet]
	lastErr atomic.Pointer[loadError]
	// loadErrors counts failed loads, for metrics.
	loadErrors atomic.Uint64

	mu      sync.Mutex // serializes loads, never held by readers
	lastSig string
	onSwap  []func(*PolicySet)

	bundle *bundleSource // nil when policies come from Paths
}

type loadError struct {
	err error
	at  time.Time
}

// NewEngine validates cfg and returns an engine with no policy loaded.
func NewEngine(cfg Config, log *slog.Logger) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, log: log}
	if cfg.Bundle != nil {
		src, err := newBundleSource(*cfg.Bundle)
		if err != nil {
			return nil, err
		}
		e.bundle = src
	}
	return e, nil
}

// Config returns the effective configuration.
func (e *Engine) Config() Config { return e.cfg }

// Current returns the serving policy set, or nil before the first
// successful load.
func (e *Engine) Current() *PolicySet { return e.cur.Load() }

// LastError returns the error of the most recent failed load, if it is more
// recent than the serving set.
func (e *Engine) LastError() error {
	le := e.lastErr.Load()
	if le == nil {
		return nil
	}
	if ps := e.cur.Load(); ps != nil && ps.LoadedAt.After(le.at) {
		return nil
	}
	return le.err
}

// OnSwap registers fn to be called after every successful swap. Register
// before Load or Run.
func (e *Engine) OnSwap(fn func(*PolicySet)) {
	e.mu.Lock()
	e.onSwap = append(e.onSwap, fn)
	e.mu.Unlock()
}

// Load builds a set from the configured paths, or downloads the configured
// bundle, and swaps it in. On error the serving set is kept and the error
// returned.
func (e *Engine) Load(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.loadLocked(ctx)
}

func (e *Engine) loadLocked(ctx context.Context) error {
	if e.bundle != nil {
		return e.loadBundleLocked(ctx)
	}
	if err := statPaths(e.cfg.Paths); err != nil {
		return e.failLocked(err)
	}
	sig, _ := signature(e.cfg.Paths)
	ps, err := Build(ctx, e.cfg)
	if err != nil {
		e.lastSig = sig // do not retry the same broken files every tick
		return e.failLocked(err)
	}
	e.lastSig = sig
	e.swapLocked(ps)
	return nil
}

// failLocked records a failed load and returns err.
func (e *Engine) failLocked(err error) error {
	e.lastErr.Store(&loadError{err: err, at: time.Now()})
	e.loadErrors.Add(1)
	return err
}

// swapLocked serves ps unless the serving set has the same revision, and
// reports whether it swapped. Either way the last load succeeded, so an
// earlier error (say, a broken edit since reverted) no longer applies.
func (e *Engine) swapLocked(ps *PolicySet) bool {
	e.lastErr.Store(nil)
	if old := e.cur.Load(); old != nil && old.Revision == ps.Revision {
		return false
	}
	e.cur.Store(ps)
	for _, fn := range e.onSwap {
		fn(ps)
	}
	return true
}

// Run watches the configured paths and reloads on change, or polls the
// bundle server, until ctx ends. A failed reload is logged and the last
// good set keeps serving.
func (e *Engine) Run(ctx context.Context) {
	if e.bundle != nil {
		e.runBundle(ctx)
		return
	}
	filewatch.Every(ctx, e.cfg.ReloadInterval, func() {
		sig, err := signature(e.cfg.Paths)
		e.mu.Lock()
		defer e.mu.Unlock()
		if err == nil && sig == e.lastSig {
			return
		}
		old := e.cur.Load()
		if lerr := e.loadLocked(ctx); lerr != nil {
			rev := ""
			if old != nil {
				rev = old.Revision
			}
			e.log.Error("policy reload failed; keeping the last good policy set", "error", lerr, "serving_revision", rev)
		} else if cur := e.cur.Load(); cur != old {
			e.log.Info("policy reloaded", "revision", cur.Revision, "files", len(cur.Files))
		}
	})
}

// LoadErrors counts loads that failed since the engine was created.
func (e *Engine) LoadErrors() uint64 { return e.loadErrors.Load() }
