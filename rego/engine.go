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
	return &Engine{cfg: cfg, log: log}, nil
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

// Load builds a set from the configured paths and swaps it in. On error the
// serving set is kept and the error returned.
func (e *Engine) Load(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.loadLocked(ctx)
}

func (e *Engine) loadLocked(ctx context.Context) error {
	if err := statPaths(e.cfg.Paths); err != nil {
		e.lastErr.Store(&loadError{err: err, at: time.Now()})
		e.loadErrors.Add(1)
		return err
	}
	sig, _ := signature(e.cfg.Paths)
	ps, err := Build(ctx, e.cfg)
	if err != nil {
		e.lastSig = sig // do not retry the same broken files every tick
		e.lastErr.Store(&loadError{err: err, at: time.Now()})
		e.loadErrors.Add(1)
		return err
	}
	e.lastSig = sig
	if old := e.cur.Load(); old != nil && old.Revision == ps.Revision {
		return nil
	}
	e.cur.Store(ps)
	for _, fn := range e.onSwap {
		fn(ps)
	}
	return nil
}

// Run watches the configured paths and reloads on change until ctx ends.
// A failed reload is logged and the last good set keeps serving.
func (e *Engine) Run(ctx context.Context) {
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
