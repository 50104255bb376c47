package service_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/authzd/authzd/cache"
	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/identity/apikey"
	"github.com/authzd/authzd/identity/jwt"
	"github.com/authzd/authzd/internal/redistest"
	"github.com/authzd/authzd/service"
)

// redisPair starts two authzd replicas that share one Redis, one key file
// and one policy directory.
func redisPair(t *testing.T, addr string, edit func(*service.Config)) (a, b *testServer) {
	t.Helper()
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	cfg.Cache.Redis = cache.RedisConfig{
		Addrs: []string{addr}, KeyPrefix: "e2e:",
		// Values are authenticated; both replicas share the key.
		ValueKey: "e2e-value-key-0123456789abcdef-0123",
		// Generous for a loaded CI machine; the breaker test sets its own.
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, DialTimeout: 500 * time.Millisecond,
		InvalidationPoll: 100 * time.Millisecond,
		Breaker:          cache.BreakerConfig{Failures: 3, OpenFor: 100 * time.Millisecond},
	}
	if edit != nil {
		edit(&cfg)
	}
	a = startServer(t, filepath.Join(dir, "a"), cfg)
	b = startServer(t, filepath.Join(dir, "b"), cfg)
	return a, b
}

func check(t *testing.T, ts *testServer, key, action, docID string) *authzdv1.CheckResponse {
	t.Helper()
	resp, err := ts.client.Check(context.Background(), &authzdv1.CheckRequest{Credentials: apiKeyCreds(key), Action: action, Resource: doc(docID)})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

func admin(ts *testServer) authzdv1.AdminServiceClient {
	return authzdv1.NewAdminServiceClient(ts.conn)
}

// TestRedisSharedCache: a decision computed by one replica is served from
// the shared cache by the other; flushes reach both.
func TestRedisSharedCache(t *testing.T) {
	rs := redistest.Start(t)
	a, b := redisPair(t, rs.Addr, nil)
	reader, _ := a.newKey(t, "reader-app", []string{"read"}, 0)
	writer, _ := a.newKey(t, "writer-app", []string{"read", "write"}, 0)
	// The key file is shared; wait until both replicas loaded it.
	for _, ts := range []*testServer{a, b} {
		eventually(t, "replica loads the keys", func() bool { return check(t, ts, writer, "documents:read", "0").Allowed })
	}

	first := check(t, a, reader, "documents:read", "1")
	if !first.Allowed || first.Cached {
		t.Fatalf("replica a first check = allowed %v cached %v; want a fresh allow", first.Allowed, first.Cached)
	}
	fromB := check(t, b, reader, "documents:read", "1")
	if !fromB.Allowed || !fromB.Cached {
		t.Fatalf("replica b = allowed %v cached %v; want the decision a cached in Redis", fromB.Allowed, fromB.Cached)
	}
	if fromB.PolicyRevision != first.PolicyRevision {
		t.Fatalf("revisions differ: %s vs %s", first.PolicyRevision, fromB.PolicyRevision)
	}
	// Denials are shared too, with their reasons.
	deny := check(t, a, reader, "documents:delete", "1")
	denyB := check(t, b, reader, "documents:delete", "1")
	if deny.Allowed || denyB.Allowed || !denyB.Cached || len(denyB.Reasons) == 0 || denyB.Reasons[0] != deny.Reasons[0] {
		t.Fatalf("shared deny: a=%v b=%v", deny, denyB)
	}

	// Flush one principal on b: both replicas recompute that principal's
	// decisions, the other principal's stay cached.
	check(t, b, writer, "documents:write", "1") // b computes, Redis stores
	if r := check(t, a, writer, "documents:write", "1"); !r.Cached {
		t.Fatal("writer decision not shared before the flush")
	}
	if _, err := admin(b).FlushCache(context.Background(), &authzdv1.FlushCacheRequest{PrincipalId: "reader-app"}); err != nil {
		t.Fatalf("FlushCache(principal): %v", err)
	}
	eventually(t, "replica a drops reader-app's decisions", func() bool {
		return !check(t, a, reader, "documents:read", "1").Cached
	})
	if r := check(t, b, reader, "documents:delete", "1"); r.Cached {
		t.Fatal("flushed principal's decision still cached on b")
	}
	if r := check(t, a, writer, "documents:write", "1"); !r.Cached {
		t.Fatal("flushing reader-app dropped writer-app's decision")
	}

	// Flush everything from a: nothing is cached anywhere afterwards.
	if _, err := admin(a).FlushCache(context.Background(), &authzdv1.FlushCacheRequest{}); err != nil {
		t.Fatalf("FlushCache(all): %v", err)
	}
	eventually(t, "replica b drops everything", func() bool {
		return !check(t, b, writer, "documents:write", "1").Cached
	})
	// b just recomputed and stored it again under the new generation; a
	// reads that, not an old entry.
	if r := check(t, a, writer, "documents:write", "1"); !r.Cached || !r.Allowed {
		t.Fatalf("after flush-all, a = %v; want b's fresh decision from Redis", r)
	}
}

// TestRedisFailureDuringChecks kills Redis under a steady stream of checks:
// no check fails or changes its answer; Redis is used again after a restart.
func TestRedisFailureDuringChecks(t *testing.T) {
	rs := redistest.Start(t)
	a, b := redisPair(t, rs.Addr, func(c *service.Config) {
		c.Cache.Redis.ReadTimeout, c.Cache.Redis.WriteTimeout = 100*time.Millisecond, 100*time.Millisecond
	})
	reader, _ := a.newKey(t, "reader-app", []string{"read"}, 0)
	eventually(t, "replica a loads the key", func() bool { return check(t, a, reader, "documents:read", "0").Allowed })
	eventually(t, "replica b loads the key", func() bool { return check(t, b, reader, "documents:read", "0").Allowed })

	var (
		stop            atomic.Bool
		total, failures atomic.Int64
		wg              sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				// Mostly new resources, so most checks miss the memory
				// tier and go to Redis (or are skipped); every tenth
				// repeats a recent one and is a memory hit.
				n := i
				if i%10 == 9 {
					n = i - 1
				}
				id := strconv.Itoa(w) + "-" + strconv.Itoa(n)
				resp, err := a.client.Check(context.Background(), &authzdv1.CheckRequest{Credentials: apiKeyCreds(reader), Action: "documents:read", Resource: doc(id)})
				total.Add(1)
				if err != nil || !resp.Allowed {
					failures.Add(1)
					t.Errorf("check during Redis outage: %v %v", resp, err)
				}
			}
		})
	}
	waitN := func(n int64) {
		start := total.Load()
		eventually(t, "checks flowing", func() bool { return total.Load() >= start+n })
	}
	waitN(200)
	rs.Kill()
	waitN(500)
	st, _ := a.srv.RedisStats()
	if st.Errors == 0 || st.Skipped == 0 {
		t.Errorf("breaker stats during the outage = %+v; want errors and skipped calls counted", st)
	}
	// Skipped calls are visible to operators, and readiness names the
	// outage without failing (checks are still answered).
	if v := metricValue(t, a, "authzd_redis_skipped_total"); v == 0 {
		t.Error("authzd_redis_skipped_total is 0 during the outage")
	}
	if resp, err := http.Get("http://" + a.httpAddr + "/readyz"); err != nil {
		t.Error(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"cache/redis":"unavailable`) && !strings.Contains(string(body), `"cache/redis":"probing`) {
			t.Errorf("readyz during the outage: %d %s", resp.StatusCode, body)
		}
	}
	rs.Restart()
	eventually(t, "replica a writes to Redis again", func() bool {
		st, _ := a.srv.RedisStats()
		return st.State == cache.BreakerClosed && check(t, a, reader, "documents:read", "after-restart").Allowed
	})
	waitN(200)
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d checks failed while Redis was down", failures.Load(), total.Load())
	}
	// A decision computed on a after the restart is served by b from Redis.
	eventually(t, "b reads a's new decision from Redis", func() bool {
		check(t, a, reader, "documents:read", "post-restart-shared")
		return check(t, b, reader, "documents:read", "post-restart-shared").Cached
	})
	t.Logf("%d checks, 0 failed; breaker %+v", total.Load(), st)
}

// TestRedisConfigInService checks a bad Redis section stops start-up with
// a message naming the key.
func TestRedisConfigInService(t *testing.T) {
	_, err := service.ParseConfig([]byte("policy:\n  paths: [p]\ncache:\n  redis:\n    addrs: [\"a:1\", \"b:2\"]\n    db: 3\n    cluster: true\n    read_timeout: 5s\n"), t.TempDir())
	// Every problem is reported, each with its full key.
	if err == nil || !containsAll(err.Error(), "cache.redis.db:", "cache.redis.read_timeout:") {
		t.Fatalf("error = %v; want it to name cache.redis.db and cache.redis.read_timeout", err)
	}
	cfg, err := service.ParseConfig([]byte("policy:\n  paths: [p]\ncache:\n  redis:\n    addrs: [\"127.0.0.1:6390\"]\n    key_prefix: \"x:\"\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cache.Redis.ReadTimeout != cache.DefaultRedisReadTimeout || cfg.Cache.Redis.KeyPrefix != "x:" {
		t.Fatalf("redis defaults not applied: %+v", cfg.Cache.Redis)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

// openE2EKeyStore opens the Redis API-key store the replicas of redisPair
// share, as an operator's CLI would.
func openE2EKeyStore(t *testing.T, addr string) *apikey.RedisStore {
	t.Helper()
	cfg := service.Config{Cache: service.CacheConfig{Redis: cache.RedisConfig{Addrs: []string{addr}, KeyPrefix: "e2e:", ReadTimeout: 500 * time.Millisecond}}}
	store, closeStore, err := service.OpenRedisKeyStore(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeStore)
	return store
}

// TestRedisAPIKeyRevocation: with API keys in Redis, a key created once
// works on both replicas, and a revocation is seen by both. The time until
// the other replica denies is logged (see BENCHMARKS.md); the bound checked
// here is a liveness limit.
func TestRedisAPIKeyRevocation(t *testing.T) {
	rs := redistest.Start(t)
	a, b := redisPair(t, rs.Addr, func(c *service.Config) {
		c.Identity.APIKeys = service.APIKeysConfig{Store: service.APIKeyStoreRedis}
	})
	store := openE2EKeyStore(t, rs.Addr)
	ctx := context.Background()
	key, rec, err := store.Create(ctx, "svc-shared", []string{"read"}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	for name, ts := range map[string]*testServer{"a": a, "b": b} {
		if r := check(t, ts, key, "documents:read", "1"); !r.Allowed || r.Principal.GetId() != "svc-shared" {
			t.Fatalf("replica %s: %v; want the shared key accepted", name, r)
		}
	}
	// Both replicas now hold the record (and a cached decision).
	if r := check(t, b, key, "documents:read", "1"); !r.Cached {
		t.Fatal("decision not cached before the revocation")
	}
	start := time.Now()
	if _, err := store.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica b denies the revoked key", func() bool {
		return !check(t, b, key, "documents:read", "1").Allowed
	})
	t.Logf("revocation seen by replica b after %s", time.Since(start))
	r := check(t, a, key, "documents:read", "1")
	if r.Allowed || len(r.Reasons) == 0 || !strings.Contains(r.Reasons[0], "revoked") {
		t.Fatalf("replica a after revocation: %v", r)
	}
}

// TestRedisExampleConfig keeps examples/redis/authzd.yaml valid.
func TestRedisExampleConfig(t *testing.T) {
	cfg, err := service.LoadConfig(filepath.Join("..", "examples", "redis", "authzd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Identity.APIKeys.Store != service.APIKeyStoreRedis || !cfg.Cache.Redis.Enabled() || cfg.Cache.Redis.ReadTimeout != 50*time.Millisecond {
		t.Fatalf("example config = %+v", cfg)
	}
}

// metricValue reads one sample from a replica's /metrics (the line that
// starts with series, e.g. `authzd_redis_skipped_total` or
// `authzd_redis_cache_hits_total{cache="identity"}`).
func metricValue(t *testing.T, ts *testServer, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + ts.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not exposed", series)
	return 0
}

// TestRedisSharedJWTIdentity: a token verified by one replica is not
// verified again by the other, which reads the identity from Redis; a bad
// token's negative entry is shared too, so a flood of it across replicas
// costs one key-set fetch.
func TestRedisSharedJWTIdentity(t *testing.T) {
	rs := redistest.Start(t)
	idp := newOIDCIssuer(t)
	a, b := redisPair(t, rs.Addr, func(c *service.Config) {
		c.Identity.JWT = &jwt.Config{Issuers: []jwt.IssuerConfig{{
			Name: "okta", Preset: jwt.PresetOkta, Issuer: idp.issuer,
			Audiences: []string{"api://default"}, ClientIDs: []string{"0oa-client"},
			MinRefreshInterval: time.Nanosecond, RefreshInterval: time.Hour,
		}}}
	})
	ctx := context.Background()
	checkTok := func(ts *testServer, tok, action string) *authzdv1.CheckResponse {
		t.Helper()
		resp, err := ts.client.Check(ctx, &authzdv1.CheckRequest{Credentials: bearerCreds(tok), Action: action, Resource: doc("1")})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return resp
	}
	const idHits = `authzd_redis_cache_hits_total{cache="identity"}`

	reader := idp.token(t, "k1", map[string]any{"scp": []string{"openid", "read"}})
	if r := checkTok(a, reader, "documents:read"); !r.Allowed {
		t.Fatalf("replica a: %v", r.Reasons)
	}
	before := metricValue(t, b, idHits)
	// A different action: the decision is not cached, the identity is.
	r := checkTok(b, reader, "documents:list")
	if r.GetPrincipal().GetId() != "okta:alice@example.com" || r.GetPrincipal().GetClaims().GetFields()["cid"].GetStringValue() != "0oa-client" {
		t.Fatalf("replica b principal = %v", r.GetPrincipal())
	}
	if got := metricValue(t, b, idHits) - before; got != 1 {
		t.Fatalf("replica b read %v identities from Redis, want 1 (the one a verified)", got)
	}

	bad := idp.token(t, "unknown-kid", map[string]any{"groups": []string{"admin"}})
	fetches := idp.jwksHits.Load()
	for i := range 20 {
		ts := a
		if i%2 == 1 {
			ts = b
		}
		if r := checkTok(ts, bad, "documents:read"); r.Allowed || !strings.Contains(r.Reasons[0], "unknown key") {
			t.Fatalf("unknown kid on replica %d: allowed=%v %v", i%2, r.Allowed, r.Reasons)
		}
	}
	if got := idp.jwksHits.Load() - fetches; got != 1 {
		t.Fatalf("20 identical bad tokens on two replicas caused %d key-set fetches, want 1", got)
	}

	// Flushing the principal drops its identity everywhere: b verifies
	// again instead of reading Redis.
	if _, err := admin(a).FlushCache(ctx, &authzdv1.FlushCacheRequest{PrincipalId: "okta:alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	misses := `authzd_cache_requests_total{cache="identity",outcome="miss"}`
	eventually(t, "b drops the flushed identity", func() bool {
		m := metricValue(t, b, misses)
		checkTok(b, reader, "documents:read")
		return metricValue(t, b, misses) == m+1
	})
}

// TestRedisSharedEnvoyDecision: an ext_authz decision (with the headers the
// policy sets) computed by one replica is served from Redis by the other.
func TestRedisSharedEnvoyDecision(t *testing.T) {
	rs := redistest.Start(t)
	redisCfg := cache.RedisConfig{
		Addrs: []string{rs.Addr}, KeyPrefix: "envoy-e2e:", ValueKey: "envoy-e2e-value-key-0123456789abcdef",
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
	}
	edit := func(c *service.Config) {
		c.Cache.Redis = redisCfg
		c.Identity.APIKeys = service.APIKeysConfig{Store: service.APIKeyStoreRedis}
	}
	a := startEnvoyServer(t, examplePolicies(t), edit)
	b := startEnvoyServer(t, examplePolicies(t), edit)
	store, closeStore, err := service.OpenRedisKeyStore(service.Config{Cache: service.CacheConfig{Redis: redisCfg}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	key, _, err := store.Create(context.Background(), "dave", nil, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	hitsB := func() float64 {
		return metric(t, b.httpAddr, `authzd_cache_requests_total{cache="decision",outcome="hit"}`)
	}
	fromA := a.check(t, envoyRequest("GET", "/orders/1", map[string]string{"x-api-key": key}, ""))
	wantCode(t, fromA, codes.OK)
	h0 := hitsB()
	fromB := b.check(t, envoyRequest("GET", "/orders/1", map[string]string{"x-api-key": key, "user-agent": "other"}, ""))
	wantCode(t, fromB, codes.OK)
	if hitsB() != h0+1 {
		t.Fatalf("replica b did not serve a's decision from Redis (hits %v -> %v)", h0, hitsB())
	}
	ha := headerValues(fromA.GetOkResponse().GetHeaders())
	hb := headerValues(fromB.GetOkResponse().GetHeaders())
	if len(ha) == 0 || !reflect.DeepEqual(ha, hb) {
		t.Fatalf("headers differ: a %v, b %v", ha, hb)
	}
}
