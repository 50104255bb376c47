package service

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/authzd/authzd/cache"
	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/identity/apikey"
	"github.com/authzd/authzd/internal/redistest"
	"github.com/authzd/authzd/rego"
)

// benchServer builds a server on the quickstart policy with one API key.
// mode is "memory", "tiered" or "redis" (Redis without the memory tier).
func benchServer(b *testing.B, mode, redisAddr, keys string) (*Server, *cache.RoundTrips) {
	b.Helper()
	cfg := Config{
		Listen: "127.0.0.1:0", HTTPListen: "off",
		Policy:   rego.Config{Paths: []string{filepath.Join("..", "examples", "quickstart", "policies")}},
		Identity: IdentityConfig{APIKeys: APIKeysConfig{File: keys}},
	}
	if mode != "memory" {
		cfg.Cache.Redis = cache.RedisConfig{Addrs: []string{redisAddr}, KeyPrefix: "bench:"}
	}
	s, err := New(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	rt := &cache.RoundTrips{}
	if s.auth.redis != nil {
		s.auth.redis.client.AddHook(rt)
		b.Cleanup(s.auth.redis.close)
		if mode == "redis" {
			s.auth.idCache = s.auth.redis.idCache.Remote()
			s.auth.decCache = s.auth.redis.decCache.Remote()
		}
	}
	return s, rt
}

func benchReq(key, id string) *authzdv1.CheckRequest {
	return &authzdv1.CheckRequest{
		Credentials: &authzdv1.Credentials{Kind: &authzdv1.Credentials_ApiKey{ApiKey: key}},
		Action:      "documents:read",
		Resource:    &authzdv1.Resource{Type: "document", Id: id},
	}
}

// BenchmarkCheckCacheTiers measures Check (the flow, without gRPC) with
// the decision cache in memory only, in memory in front of Redis, and in
// Redis only, and reports Redis round trips per check.
//
//	hit:    the same request again (decision cached)
//	miss:   a new resource each time (evaluate, store)
//	shared: another replica computed the decision (tiered and redis only)
func BenchmarkCheckCacheTiers(b *testing.B) {
	rs := redistest.Start(b)
	keys := filepath.Join(b.TempDir(), "keys.yaml")
	key, _, err := apikey.Create(keys, "bench-app", []string{"read"}, 0, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"memory", "tiered", "redis"} {
		for _, kind := range []string{"hit", "miss", "shared"} {
			if kind == "shared" && mode == "memory" {
				continue
			}
			b.Run(mode+"/"+kind, func(b *testing.B) {
				s, rt := benchServer(b, mode, rs.Addr, keys)
				ctx := context.Background()
				a := s.Authorizer()
				prefix := strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
				if kind == "shared" {
					// Replica 0 computes b.N decisions into Redis first.
					other, _ := benchServer(b, "tiered", rs.Addr, keys)
					for i := range b.N {
						if _, err := other.Authorizer().Check(ctx, benchReq(key, prefix+strconv.Itoa(i))); err != nil {
							b.Fatal(err)
						}
					}
				}
				if _, err := a.Check(ctx, benchReq(key, "warm")); err != nil {
					b.Fatal(err)
				}
				hitReq := benchReq(key, "warm")
				before := rt.Load()
				uncached := 0
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					req := hitReq
					if kind != "hit" {
						req = benchReq(key, prefix+strconv.Itoa(i))
					}
					resp, err := a.Check(ctx, req)
					if err != nil || !resp.Allowed {
						b.Fatalf("check: %v %v", resp, err)
					}
					if kind == "shared" && !resp.Cached {
						// The other replica's write was skipped or timed
						// out (default 50ms timeouts on a busy machine).
						uncached++
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(rt.Load()-before)/float64(b.N), "redis-rt/op")
				if kind == "shared" {
					b.ReportMetric(float64(b.N-uncached)/float64(b.N), "shared-hit-ratio")
				}
			})
		}
	}
}

// BenchmarkCheckCacheTiersParallel is decision-cache-hit throughput with
// every core busy, per tier setup.
func BenchmarkCheckCacheTiersParallel(b *testing.B) {
	rs := redistest.Start(b)
	keys := filepath.Join(b.TempDir(), "keys.yaml")
	key, _, err := apikey.Create(keys, "bench-app", []string{"read"}, 0, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"memory", "tiered", "redis"} {
		b.Run(mode, func(b *testing.B) {
			s, rt := benchServer(b, mode, rs.Addr, keys)
			a := s.Authorizer()
			ctx := context.Background()
			// 64 distinct decisions, all cached before timing.
			reqs := make([]*authzdv1.CheckRequest, 64)
			for i := range reqs {
				reqs[i] = benchReq(key, "doc-"+strconv.Itoa(i))
				if _, err := a.Check(ctx, reqs[i]); err != nil {
					b.Fatal(err)
				}
			}
			before := rt.Load()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					resp, err := a.Check(ctx, reqs[i%len(reqs)])
					if err != nil || !resp.Allowed || !resp.Cached {
						b.Errorf("check: %v %v", resp, err)
						return
					}
					i++
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(rt.Load()-before)/float64(b.N), "redis-rt/op")
		})
	}
}
