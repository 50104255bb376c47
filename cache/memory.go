package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryConfig configures a Memory cache.
type MemoryConfig struct {
	// MaxEntries bounds the number of entries. Default 100000.
	MaxEntries int `yaml:"max_entries"`
}

// Default values for MemoryConfig.
const DefaultMaxEntries = 100_000

// shards spreads keys over independent locks, so concurrent requests do not
// serialize on one mutex. Keys are uniform hashes, so the first byte picks.
const shards = 64

// Memory is a bounded in-memory cache with per-entry TTL. When a shard is
// full, an insert evicts expired entries first, then the entry closest to
// expiry among a small sample.
type Memory[V any] struct {
	shards   [shards]shard[V]
	perShard int
	now      func() time.Time

	hits, misses, evictions atomic.Uint64
}

type shard[V any] struct {
	mu sync.RWMutex
	m  map[Key]entry[V]
}

type entry[V any] struct {
	v   V
	exp int64 // unix nanoseconds
}

// NewMemory returns an empty cache.
func NewMemory[V any](cfg MemoryConfig) *Memory[V] {
	max := cfg.MaxEntries
	if max <= 0 {
		max = DefaultMaxEntries
	}
	per := max / shards
	if per < 1 {
		per = 1
	}
	c := &Memory[V]{perShard: per, now: time.Now}
	for i := range c.shards {
		c.shards[i].m = make(map[Key]entry[V])
	}
	return c
}

var _ Cache[int] = (*Memory[int])(nil)

func (c *Memory[V]) shard(k Key) *shard[V] { return &c.shards[k[0]%shards] }

// Get returns the live value under key.
func (c *Memory[V]) Get(_ context.Context, key Key) (V, bool) {
	s := c.shard(key)
	s.mu.RLock()
	e, ok := s.m[key]
	s.mu.RUnlock()
	if !ok || e.exp <= c.now().UnixNano() {
		c.misses.Add(1)
		var zero V
		return zero, false
	}
	c.hits.Add(1)
	return e.v, true
}

// Set stores value under key for ttl.
func (c *Memory[V]) Set(_ context.Context, key Key, value V, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	now := c.now().UnixNano()
	s := c.shard(key)
	s.mu.Lock()
	if _, exists := s.m[key]; !exists && len(s.m) >= c.perShard {
		c.evictLocked(s, now)
	}
	s.m[key] = entry[V]{v: value, exp: now + int64(ttl)}
	s.mu.Unlock()
}

// evictLocked frees at least one slot in a full shard.
func (c *Memory[V]) evictLocked(s *shard[V], now int64) {
	const sample = 8
	var (
		victim  Key
		soonest int64 = 1<<63 - 1
		seen    int
		freed   bool
	)
	// Map iteration order is random, which makes this a random sample.
	for k, e := range s.m {
		if e.exp <= now {
			delete(s.m, k)
			freed = true
			continue
		}
		if e.exp < soonest {
			victim, soonest = k, e.exp
		}
		seen++
		if seen >= sample {
			break
		}
	}
	if !freed {
		delete(s.m, victim)
	}
	c.evictions.Add(1)
}

// Delete removes key.
func (c *Memory[V]) Delete(_ context.Context, key Key) {
	s := c.shard(key)
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}

// Clear removes every entry.
func (c *Memory[V]) Clear(context.Context) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
}

// DeleteFunc removes every entry whose value matches. It walks the whole
// cache and is meant for rare operations such as flushing one principal.
func (c *Memory[V]) DeleteFunc(match func(V) bool) int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if match(e.v) {
				delete(s.m, k)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Len returns the number of entries, live or expired-but-not-yet-evicted.
func (c *Memory[V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Stats reports hit, miss and eviction counts since creation.
func (c *Memory[V]) Stats() (hits, misses, evictions uint64) {
	return c.hits.Load(), c.misses.Load(), c.evictions.Load()
}
