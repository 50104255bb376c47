package cache

import (
	"context"
	"time"
)

// TieredOptions configures a two-tier cache.
type TieredOptions struct {
	// MaxLocalTTL caps how long an entry read from Redis stays in memory.
	// 0: as long as the entry lives in Redis. Invalidations drop local
	// entries either way.
	MaxLocalTTL time.Duration
}

// Tiered puts an in-memory cache in front of Redis. A lookup asks memory
// first; a local miss costs at most one Redis round trip, and a remote hit
// is copied into memory for its remaining lifetime. Writes go to both.
//
// Entries are Go values in memory (no decoding on a local hit) and encoded
// bytes in Redis.
type Tiered[V any] struct {
	local  *Memory[V]
	remote *Redis[V]
	maxTTL time.Duration
	now    func() time.Time
}

var _ Cache[int] = (*Tiered[int])(nil)

// NewTiered returns local in front of remote.
func NewTiered[V any](local *Memory[V], remote *Redis[V], opts TieredOptions) *Tiered[V] {
	return &Tiered[V]{local: local, remote: remote, maxTTL: opts.MaxLocalTTL, now: time.Now}
}

// Local returns the in-memory tier.
func (t *Tiered[V]) Local() *Memory[V] { return t.local }

// Remote returns the Redis tier.
func (t *Tiered[V]) Remote() *Redis[V] { return t.remote }

// Get returns the value from memory, else from Redis.
func (t *Tiered[V]) Get(ctx context.Context, key Key) (V, bool) {
	if v, ok := t.local.Get(ctx, key); ok {
		return v, true
	}
	v, exp, ok := t.remote.GetWithExpiry(ctx, key)
	if !ok {
		return v, false
	}
	ttl := exp.Sub(t.now())
	if t.maxTTL > 0 && ttl > t.maxTTL {
		ttl = t.maxTTL
	}
	t.local.Set(ctx, key, v, ttl)
	return v, true
}

// Set stores value in both tiers.
func (t *Tiered[V]) Set(ctx context.Context, key Key, value V, ttl time.Duration) {
	t.local.Set(ctx, key, value, ttl)
	t.remote.Set(ctx, key, value, ttl)
}

// Delete removes key from both tiers (the local tier of other replicas is
// not reached; use an Invalidator for that).
func (t *Tiered[V]) Delete(ctx context.Context, key Key) {
	t.local.Delete(ctx, key)
	t.remote.Delete(ctx, key)
}

// Clear drops every entry in both tiers.
func (t *Tiered[V]) Clear(ctx context.Context) {
	t.local.Clear(ctx)
	t.remote.Clear(ctx)
}

// FlushTag drops the entries with tag from both tiers. It reports the
// Redis error, if any; the local tier is dropped regardless.
func (t *Tiered[V]) FlushTag(ctx context.Context, tag string) error {
	t.DropLocalTag(tag)
	_, err := t.remote.FlushTag(ctx, tag)
	return err
}

// DropLocalTag drops the local entries with tag (for invalidations that
// another replica already applied to Redis).
func (t *Tiered[V]) DropLocalTag(tag string) int {
	f := t.remote.Tag()
	if f == nil || tag == "" {
		return 0
	}
	return t.local.DeleteFunc(func(v V) bool { return f(v) == tag })
}
