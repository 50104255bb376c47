package cache_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authzd/authzd/cache"
	"github.com/authzd/authzd/internal/redistest"
)

// entry is the value type of the conformance suite: a principal (the tag)
// and a number.
type entry struct {
	Principal string
	N         uint64
}

// entryCodec is a versioned binary codec for entry.
var entryCodec = cache.VersionedCodec[entry]{
	Version: 1,
	Encode: func(dst []byte, e entry) ([]byte, error) {
		dst = binary.AppendUvarint(dst, uint64(len(e.Principal)))
		dst = append(dst, e.Principal...)
		return binary.AppendUvarint(dst, e.N), nil
	},
	Decode: func(p []byte) (entry, error) {
		l, n := binary.Uvarint(p)
		if n <= 0 || l > uint64(len(p)-n) {
			return entry{}, errors.New("bad principal length")
		}
		e := entry{Principal: string(p[n : n+int(l)])}
		p = p[n+int(l):]
		v, m := binary.Uvarint(p)
		if m <= 0 || m != len(p) {
			return entry{}, errors.New("bad number")
		}
		e.N = v
		return e, nil
	},
}

func entryTag(e entry) string { return e.Principal }

func key(s string) cache.Key { return cache.NewKeyBuilder("test/v1").String(s).Sum() }

// tagFlusher is implemented by the caches that can drop one principal's
// entries.
type tagFlusher interface {
	FlushTag(ctx context.Context, tag string) error
}

type redisTagFlusher struct{ *cache.Redis[entry] }

func (r redisTagFlusher) FlushTag(ctx context.Context, tag string) error {
	_, err := r.Redis.FlushTag(ctx, tag)
	return err
}

type memoryTagFlusher struct{ *cache.Memory[entry] }

func (m memoryTagFlusher) FlushTag(_ context.Context, tag string) error {
	m.DeleteFunc(func(e entry) bool { return e.Principal == tag })
	return nil
}

// testRedisConfig is a configuration with timeouts generous enough for a
// loaded CI machine running the race detector; the breaker tests set their
// own.
func testRedisConfig(addrs ...string) cache.RedisConfig {
	return cache.RedisConfig{Addrs: addrs, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, DialTimeout: time.Second}
}

func newClient(t testing.TB, cfg cache.RedisConfig) redis.UniversalClient {
	t.Helper()
	c, err := cache.NewUniversalClient(cfg)
	if err != nil {
		t.Fatalf("NewUniversalClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// backends returns a constructor per cache implementation. Each call gives
// a cache with no entries.
func backends(t *testing.T) map[string]func(t *testing.T) (cache.Cache[entry], tagFlusher) {
	return map[string]func(t *testing.T) (cache.Cache[entry], tagFlusher){
		"memory": func(t *testing.T) (cache.Cache[entry], tagFlusher) {
			m := cache.NewMemory[entry](cache.MemoryConfig{})
			return m, memoryTagFlusher{m}
		},
		"redis": func(t *testing.T) (cache.Cache[entry], tagFlusher) {
			s := redistest.Start(t)
			r := cache.NewRedis(newClient(t, testRedisConfig(s.Addr)), entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "conf", Tag: entryTag})
			return r, redisTagFlusher{r}
		},
		"redis-signed": func(t *testing.T) (cache.Cache[entry], tagFlusher) {
			s := redistest.Start(t)
			r := cache.NewRedis(newClient(t, testRedisConfig(s.Addr)), entryCodec, cache.RedisOptions[entry]{
				Prefix: "t:", Namespace: "conf", Tag: entryTag, ValueKey: []byte("0123456789abcdef0123456789abcdef"),
			})
			return r, redisTagFlusher{r}
		},
		"redis-cluster": func(t *testing.T) (cache.Cache[entry], tagFlusher) {
			cl := redistest.StartCluster(t)
			cfg := testRedisConfig(cl.Addrs()...)
			cfg.Cluster = true
			r := cache.NewRedis(newClient(t, cfg), entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "conf", Tag: entryTag})
			return r, redisTagFlusher{r}
		},
		"redis-sentinel": func(t *testing.T) (cache.Cache[entry], tagFlusher) {
			master := redistest.Start(t)
			sentinel := redistest.StartSentinel(t, master, "authzd-master")
			cfg := testRedisConfig(sentinel.Addr)
			cfg.MasterName = "authzd-master"
			cfg.DB = 2
			r := cache.NewRedis(newClient(t, cfg), entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "conf", Tag: entryTag})
			return r, redisTagFlusher{r}
		},
		"tiered": func(t *testing.T) (cache.Cache[entry], tagFlusher) {
			s := redistest.Start(t)
			r := cache.NewRedis(newClient(t, testRedisConfig(s.Addr)), entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "conf", Tag: entryTag})
			tc := cache.NewTiered(cache.NewMemory[entry](cache.MemoryConfig{}), r, cache.TieredOptions{})
			return tc, tc
		},
	}
}

// TestConformance runs one suite against every Cache implementation: the
// memory cache, Redis on one node, through Sentinel and as a Cluster, and
// the two-tier cache.
func TestConformance(t *testing.T) {
	for name, newCache := range backends(t) {
		t.Run(name, func(t *testing.T) {
			c, flusher := newCache(t)
			ctx := context.Background()
			// Every case uses its own keys, so they can share one cache
			// (starting a server per case would be slow).
			t.Run("miss on empty", func(t *testing.T) {
				if v, ok := c.Get(ctx, key("absent")); ok {
					t.Fatalf("Get(absent) = %v, true; want a miss", v)
				}
			})
			t.Run("set then get", func(t *testing.T) {
				want := entry{Principal: "alice", N: 42}
				c.Set(ctx, key("a"), want, time.Minute)
				got, ok := c.Get(ctx, key("a"))
				if !ok || got != want {
					t.Fatalf("Get = %v, %v; want %v, true", got, ok, want)
				}
			})
			t.Run("set overwrites", func(t *testing.T) {
				c.Set(ctx, key("o"), entry{Principal: "p", N: 1}, time.Minute)
				c.Set(ctx, key("o"), entry{Principal: "p", N: 2}, time.Minute)
				if got, ok := c.Get(ctx, key("o")); !ok || got.N != 2 {
					t.Fatalf("Get = %v, %v; want N=2", got, ok)
				}
			})
			t.Run("non-positive ttl stores nothing", func(t *testing.T) {
				c.Set(ctx, key("z0"), entry{N: 1}, 0)
				c.Set(ctx, key("z1"), entry{N: 1}, -time.Second)
				for _, k := range []string{"z0", "z1"} {
					if _, ok := c.Get(ctx, key(k)); ok {
						t.Fatalf("Get(%s) hit after a Set with ttl <= 0", k)
					}
				}
			})
			t.Run("expired entries miss", func(t *testing.T) {
				c.Set(ctx, key("e"), entry{N: 1}, 30*time.Millisecond)
				time.Sleep(80 * time.Millisecond)
				if v, ok := c.Get(ctx, key("e")); ok {
					t.Fatalf("Get after expiry = %v, true; want a miss", v)
				}
			})
			t.Run("delete removes one key", func(t *testing.T) {
				c.Set(ctx, key("d1"), entry{N: 1}, time.Minute)
				c.Set(ctx, key("d2"), entry{N: 2}, time.Minute)
				c.Delete(ctx, key("d1"))
				if _, ok := c.Get(ctx, key("d1")); ok {
					t.Fatal("deleted key still hits")
				}
				if v, ok := c.Get(ctx, key("d2")); !ok || v.N != 2 {
					t.Fatalf("other key = %v, %v after Delete; want N=2", v, ok)
				}
			})
			t.Run("keys are independent", func(t *testing.T) {
				for i := range 200 {
					c.Set(ctx, key(fmt.Sprint("many", i)), entry{N: uint64(i)}, time.Minute)
				}
				for i := range 200 {
					if v, ok := c.Get(ctx, key(fmt.Sprint("many", i))); !ok || v.N != uint64(i) {
						t.Fatalf("key %d = %v, %v", i, v, ok)
					}
				}
			})
			t.Run("flush one tag", func(t *testing.T) {
				c.Set(ctx, key("t-a1"), entry{Principal: "tag-a", N: 1}, time.Minute)
				c.Set(ctx, key("t-a2"), entry{Principal: "tag-a", N: 2}, 2*time.Minute)
				c.Set(ctx, key("t-b"), entry{Principal: "tag-b", N: 3}, time.Minute)
				if err := flusher.FlushTag(ctx, "tag-a"); err != nil {
					t.Fatalf("FlushTag: %v", err)
				}
				for _, k := range []string{"t-a1", "t-a2"} {
					if _, ok := c.Get(ctx, key(k)); ok {
						t.Fatalf("%s still hits after FlushTag(tag-a)", k)
					}
				}
				if v, ok := c.Get(ctx, key("t-b")); !ok || v.N != 3 {
					t.Fatalf("t-b = %v, %v after FlushTag(tag-a); want kept", v, ok)
				}
			})
			t.Run("concurrent use", func(t *testing.T) {
				var wg sync.WaitGroup
				for g := range 8 {
					wg.Go(func() {
						for i := range 50 {
							k := key(fmt.Sprint("c", g, "-", i))
							c.Set(ctx, k, entry{N: uint64(i)}, time.Minute)
							if v, ok := c.Get(ctx, k); !ok || v.N != uint64(i) {
								t.Errorf("goroutine %d key %d = %v, %v", g, i, v, ok)
								return
							}
						}
					})
				}
				wg.Wait()
			})
			t.Run("clear drops everything", func(t *testing.T) {
				c.Set(ctx, key("x1"), entry{N: 1}, time.Minute)
				c.Set(ctx, key("x2"), entry{N: 2}, time.Minute)
				c.Clear(ctx)
				for _, k := range []string{"x1", "x2", "a", "many0"} {
					if _, ok := c.Get(ctx, key(k)); ok {
						t.Fatalf("%s still hits after Clear", k)
					}
				}
				c.Set(ctx, key("after"), entry{N: 9}, time.Minute)
				if v, ok := c.Get(ctx, key("after")); !ok || v.N != 9 {
					t.Fatalf("Set after Clear = %v, %v; want a hit", v, ok)
				}
			})
		})
	}
}
