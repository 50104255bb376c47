package apikey

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/internal/breaker"
	"github.com/authzd/authzd/internal/redistest"
)

// proxy is a loopback TCP proxy in front of a real Redis: Down cuts every
// connection and refuses new ones (a partition between one replica and
// Redis), Up lets connections through again.
type proxy struct {
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	done := make(chan struct{})
	go p.serve(done)
	t.Cleanup(func() { ln.Close(); <-done; p.Down() })
	return p
}

func (p *proxy) serve(done chan struct{}) {
	defer close(done)
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
	}
}

// Down closes every proxied connection and refuses new ones.
func (p *proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Up lets new connections through.
func (p *proxy) Up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// staleStore is a store whose every lookup goes to Redis (CacheTTL 1ns), so
// an outage is seen by the next lookup.
func staleStore(t *testing.T, addr string, staleFor time.Duration, br breaker.Config) *RedisStore {
	return staleStoreTTL(t, addr, time.Nanosecond, staleFor, br)
}

func staleStoreTTL(t *testing.T, addr string, cacheTTL, staleFor time.Duration, br breaker.Config) *RedisStore {
	t.Helper()
	client := redis.NewClient(&redis.Options{
		Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	t.Cleanup(func() { client.Close() })
	s := NewRedisStore(client, RedisStoreOptions{Prefix: "t:", Poll: 20 * time.Millisecond, CacheTTL: cacheTTL, StaleFor: staleFor, Breaker: br})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Watch(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("store never subscribed")
	}
	return s
}

func resolveWith(s Store, key string) (*identity.Principal, error) {
	return NewProvider("apikey", s).Resolve(context.Background(), identity.Credential{Kind: identity.KindAPIKey, Token: key})
}

func wantReason(t *testing.T, what string, err error, reason string) {
	t.Helper()
	var ce *identity.CredentialError
	if !errors.As(err, &ce) || ce.Reason != reason {
		t.Fatalf("%s: %v, want %q", what, err, reason)
	}
}

// TestRedisStoreServeStaleKill kills Redis (persisting, as a key store
// must): a key this replica read keeps verifying, a key it never read is
// unavailable, stale_for 0 keeps copies no longer than cache_ttl, and the
// breaker opens instead of every lookup waiting for a timeout.
func TestRedisStoreServeStaleKill(t *testing.T) {
	rs := redistest.Start(t, redistest.WithConfig("appendonly yes", "appendfsync always"))
	ctx := context.Background()
	admin := NewRedisStore(rs.Client(t), RedisStoreOptions{Prefix: "t:"})
	known, _, err := admin.Create(ctx, "svc-known", nil, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	unseen, _, err := admin.Create(ctx, "svc-unseen", nil, 0, "")
	if err != nil {
		t.Fatal(err)
	}

	stale := staleStore(t, rs.Addr, time.Hour, breaker.Config{Failures: 2, OpenFor: 10 * time.Millisecond})
	// stale_for 0, and a breaker that stays open once opened.
	strict := staleStore(t, rs.Addr, 0, breaker.Config{Failures: 2, OpenFor: time.Hour})
	for _, s := range []*RedisStore{stale, strict} {
		if p, err := resolveWith(s, known); err != nil || p.ID != "svc-known" {
			t.Fatalf("before the outage: %v, %v", p, err)
		}
	}

	rs.Kill()
	if p, err := resolveWith(stale, known); err != nil || p.ID != "svc-known" {
		t.Fatalf("known key with Redis down, stale_for 1h: %v, %v; want served from memory", p, err)
	}
	if _, err := resolveWith(stale, unseen); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("unseen key with Redis down: %v, want ErrUnavailable", err)
	}
	if st := stale.Stats(); st.ServedStale == 0 || st.Unavailable == 0 || st.Breaker.Errors == 0 || !st.Reconciling {
		t.Fatalf("stats during the outage = %+v", st)
	}

	// stale_for 0: the copy is older than cache_ttl, so it is not used.
	for range 3 {
		if _, err := resolveWith(strict, known); !errors.Is(err, identity.ErrUnavailable) {
			t.Fatalf("known key with Redis down, stale_for 0: %v, want ErrUnavailable", err)
		}
	}
	// Two failures opened the breaker; later lookups did not reach Redis.
	if st := strict.Stats(); st.Breaker.State != breaker.Open || st.Breaker.Opened == 0 || st.Breaker.Skipped == 0 || st.ServedStale != 0 {
		t.Fatalf("strict store stats = %+v; want the breaker open, calls skipped, nothing served stale", st)
	}

	rs.Restart()
	// Redis is back with its data: the unseen key verifies, and the
	// breaker closed again.
	waitUntil(t, "the unseen key verifies after the restart", func() bool { _, err := resolveWith(stale, unseen); return err == nil })
	if st := stale.Stats(); st.Breaker.State != breaker.Closed || st.Reconciles == 0 {
		t.Fatalf("stats after recovery = %+v; want the breaker closed and a reconcile", st)
	}
	if _, err := resolveWith(stale, known); err != nil {
		t.Fatalf("known key after recovery: %v", err)
	}
}

// TestRedisStoreRevokedDuringOutage: one replica loses Redis while another
// revokes a key it had read. The cut-off replica keeps serving its copy
// (the documented cost of stale_for), and once Redis answers it again it
// denies the key before it would serve the copy again. With a long cache_ttl the
// copy is still fresh when Redis returns and the revocation message was
// lost: only the check of the revocation counter drops it.
func TestRedisStoreRevokedDuringOutage(t *testing.T) {
	for name, cacheTTL := range map[string]time.Duration{"expired copy": time.Nanosecond, "fresh copy": time.Hour} {
		t.Run(name, func(t *testing.T) { testRevokedDuringOutage(t, cacheTTL) })
	}
}

func testRevokedDuringOutage(t *testing.T, cacheTTL time.Duration) {
	rs := redistest.Start(t)
	ctx := context.Background()
	px := newProxy(t, rs.Addr)
	other := newTestRedisStore(t, rs.Addr)
	key, rec, err := other.Create(ctx, "svc-a", nil, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	keep, _, err := other.Create(ctx, "svc-b", nil, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	s := staleStoreTTL(t, px.Addr, cacheTTL, time.Hour, breaker.Config{Failures: 2, OpenFor: 10 * time.Millisecond})
	for _, k := range []string{key, keep} {
		if _, err := resolveWith(s, k); err != nil {
			t.Fatal(err)
		}
	}

	px.Down()
	// The replica notices through a lookup (an expired copy) or the poll of
	// the revocation counter (a fresh copy is served without asking Redis,
	// as without an outage).
	waitUntil(t, "the replica notices the outage", func() bool {
		if _, err := resolveWith(s, key); err != nil {
			t.Fatalf("known key while cut off: %v", err)
		}
		return s.Stats().Reconciling
	})
	if _, err := other.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	// The revocation cannot reach this replica yet: it still serves its copy.
	if _, err := resolveWith(s, key); err != nil {
		t.Fatalf("revoked key while cut off: %v; want the copy served (stale_for)", err)
	}
	if st := s.Stats(); st.ServedStale == 0 || st.Breaker.Errors == 0 || !st.Reconciling {
		t.Fatalf("stats while cut off = %+v; want stale answers, Redis errors, reconciling", st)
	}

	px.Up()
	// No lookups until the replica has checked the revocation counter (its
	// poll probes Redis): then the first lookup must deny the key, whether
	// its copy is fresh or expired.
	waitUntil(t, "the replica reconciles", func() bool { return !s.Stats().Reconciling })
	for range 5 {
		_, err := resolveWith(s, key)
		wantReason(t, "revoked key after recovery", err, "api key revoked")
	}
	if p, err := resolveWith(s, keep); err != nil || p.ID != "svc-b" {
		t.Fatalf("the key that was not revoked: %v, %v", p, err)
	}
	if st := s.Stats(); st.Reconciles == 0 {
		t.Fatalf("stats after recovery = %+v; want a reconcile", st)
	}
}

// TestRedisStoreStaleBound: a copy is served past cache_ttl for stale_for
// and no longer.
func TestRedisStoreStaleBound(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	admin := NewRedisStore(rs.Client(t), RedisStoreOptions{Prefix: "t:"})
	key, _, err := admin.Create(ctx, "svc", nil, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	s := staleStore(t, rs.Addr, time.Minute, breaker.Config{Failures: 1, OpenFor: time.Hour})
	now := time.Now()
	s.now = func() time.Time { return now }
	if _, err := resolveWith(s, key); err != nil {
		t.Fatal(err)
	}
	rs.Kill()
	now = now.Add(59 * time.Second)
	if _, err := resolveWith(s, key); err != nil {
		t.Fatalf("59s into stale_for 1m: %v", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := resolveWith(s, key); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("past stale_for: %v, want ErrUnavailable", err)
	}
}
