package cache

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Generation is the flush generation shared by every replica through one
// Redis key. It is part of every Redis cache key, so a flush of everything
// is one INCR: entries written under an older generation are never read
// again and expire by their TTL. This works the same on one node, Sentinel
// and Cluster (no SCAN over every master, no cross-slot command).
//
// Each replica keeps the value in memory (no extra round trip per lookup)
// and learns of a bump through pub/sub, and by re-reading the key on a
// schedule as a safety net (see Invalidator).
type Generation struct {
	client redis.UniversalClient
	key    string
	cur    atomic.Uint64
	loaded atomic.Bool
}

// NewGeneration returns a generation stored under key. Nothing is read
// until Refresh or the first cache lookup.
func NewGeneration(client redis.UniversalClient, key string) *Generation {
	return &Generation{client: client, key: key}
}

// Key returns the Redis key holding the generation.
func (g *Generation) Key() string { return g.key }

// Current returns the last known generation, and false if it has never been
// read from Redis.
func (g *Generation) Current() (uint64, bool) {
	return g.cur.Load(), g.loaded.Load()
}

// Observe raises the known generation to n. It reports whether n was news.
// Generations only grow, so a late or repeated message cannot roll back.
func (g *Generation) Observe(n uint64) bool {
	for {
		cur := g.cur.Load()
		if n <= cur {
			g.loaded.Store(true)
			return false
		}
		if g.cur.CompareAndSwap(cur, n) {
			g.loaded.Store(true)
			return true
		}
	}
}

// refreshScript returns max(stored, ARGV[1]) and stores it. A Redis that
// restarted without persistence has lost the generation; the replicas
// still know it and write it back, so a later bump is news to all of them.
var refreshScript = redis.NewScript(`
local v = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local known = tonumber(ARGV[1])
if v < known then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return tostring(v)
`)

// bumpScript stores and returns max(stored, ARGV[1]) + 1.
var bumpScript = redis.NewScript(`
local v = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local known = tonumber(ARGV[1])
if v < known then v = known end
v = v + 1
redis.call('SET', KEYS[1], tostring(v))
return tostring(v)
`)

func (g *Generation) run(ctx context.Context, s *redis.Script) (uint64, error) {
	cur, _ := g.Current()
	res, err := s.Run(ctx, g.client, []string{g.key}, strconv.FormatUint(cur, 10)).Text()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(res, 10, 64)
	if err != nil {
		return 0, errors.New("cache: flush generation in Redis is not a number")
	}
	return n, nil
}

// Refresh reads the generation from Redis; it reports whether it changed.
func (g *Generation) Refresh(ctx context.Context) (bool, error) {
	n, err := g.run(ctx, refreshScript)
	if err != nil {
		return false, err
	}
	wasLoaded := g.loaded.Load()
	return g.Observe(n) && wasLoaded, nil
}

// Bump raises the generation in Redis past every value this replica has
// seen, which makes every entry unreachable for every replica that sees
// the new value.
func (g *Generation) Bump(ctx context.Context) (uint64, error) {
	n, err := g.run(ctx, bumpScript)
	if err != nil {
		return 0, err
	}
	g.Observe(n)
	return n, nil
}
