package apikey

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/internal/redistest"
)

func newTestRedisStore(t *testing.T, addr string) *RedisStore {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, ReadTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	s := NewRedisStore(client, RedisStoreOptions{Prefix: "t:", Poll: 50 * time.Millisecond, CacheTTL: time.Hour})
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

// waitUntil is a liveness bound for asynchronous delivery, not a latency
// assertion.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRedisStore(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	a := newTestRedisStore(t, rs.Addr)
	b := newTestRedisStore(t, rs.Addr)
	pa, pb := NewProvider("apikey", a), NewProvider("apikey", b)
	resolve := func(p *Provider, key string) (*identity.Principal, error) {
		return p.Resolve(ctx, identity.Credential{Kind: identity.KindAPIKey, Token: key})
	}

	// An id b looked up before it existed is remembered as unknown; the
	// creation on a clears that on b.
	key, rec, err := a.Create(ctx, "svc-a", []string{"read"}, 0, "test key")
	if err != nil {
		t.Fatal(err)
	}
	// Only the hash is stored.
	raw, err := rs.Client(t).HGetAll(ctx, "t:{apikeys}:key:"+rec.ID).Result()
	if err != nil || strings.Contains(raw["record"], key[len(Prefix)+idLen+1:]) || !strings.Contains(raw["record"], rec.Hash) {
		t.Fatalf("stored record %v (%v): want the hash and never the secret", raw, err)
	}
	for name, p := range map[string]*Provider{"a": pa, "b": pb} {
		got, err := resolve(p, key)
		if err != nil || got.ID != "svc-a" || got.Subject != rec.ID {
			t.Fatalf("replica %s: Resolve = %+v, %v", name, got, err)
		}
	}
	// A wrong secret with a valid id is rejected.
	forged := key[:len(key)-1] + map[bool]string{true: "b", false: "a"}[key[len(key)-1] == 'a']
	if _, err := resolve(pb, forged); !identity.IsInvalid(err) {
		t.Fatalf("forged key: %v, want invalid", err)
	}

	// Revocation on a reaches b, which had the record in memory.
	if _, err := a.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b sees the revocation", func() bool {
		_, err := resolve(pb, key)
		return identity.IsInvalid(err)
	})
	_, err = resolve(pb, key)
	var ce *identity.CredentialError
	if !errors.As(err, &ce) || ce.Reason != "api key revoked" {
		t.Fatalf("after revocation: %v", err)
	}

	// A revocation whose message is lost is still found by the poll of the
	// revocation counter.
	key2, rec2, err := a.Create(ctx, "svc-b", nil, time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b resolves the new key", func() bool { _, err := resolve(pb, key2); return err == nil })
	raw2 := rs.Client(t)
	if _, err := raw2.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, "t:{apikeys}:key:"+rec2.ID, "revoked_at", time.Now().UTC().Format(time.RFC3339Nano))
		p.Incr(ctx, "t:{apikeys}:revocations")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b polls the revocation", func() bool { _, err := resolve(pb, key2); return identity.IsInvalid(err) })

	list, err := b.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v; want 2 records", list, err)
	}
	byID := map[string]*Record{list[0].ID: list[0], list[1].ID: list[1]}
	if r := byID[rec.ID]; r == nil || r.RevokedAt.IsZero() || r.Owner != "svc-a" {
		t.Fatalf("listed %+v; want svc-a's key, revoked", r)
	}
	if r := byID[rec2.ID]; r == nil || r.ExpiresAt.IsZero() {
		t.Fatalf("listed %+v; want svc-b's key with an expiry", r)
	}
	if _, err := a.Revoke(ctx, "aaaaaaaaaaaaaaaa"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Revoke(unknown) = %v", err)
	}

	// Redis down: a key never seen cannot be verified: unavailable, not
	// allowed and not "invalid".
	key3, _, err := a.Create(ctx, "svc-c", nil, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	rs.Kill()
	if _, err := resolve(pb, key3); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Resolve with Redis down = %v, want ErrUnavailable", err)
	}
}

func TestValidID(t *testing.T) {
	_, id, err := Generate()
	if err != nil || !validID(id) {
		t.Fatalf("generated id %q not valid (%v)", id, err)
	}
	for _, bad := range []string{"", "short", "AAAAAAAAAAAAAAAA", "aaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaa_"} {
		if validID(bad) {
			t.Errorf("validID(%q) = true", bad)
		}
	}
}

func TestDecodeRecordRejectsJunk(t *testing.T) {
	good := `{"id":"aaaaaaaaaaaaaaaa","hash":"sha256:` + strings.Repeat("0", 64) + `","owner":"o","created_at":"2026-01-01T00:00:00Z"}`
	if _, err := decodeRecord("aaaaaaaaaaaaaaaa", map[string]string{"record": good}); err != nil {
		t.Fatalf("good record: %v", err)
	}
	for name, fields := range map[string]map[string]string{
		"missing":  {},
		"not json": {"record": "{"},
		"other id": {"record": strings.Replace(good, "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", 1)},
		"bad hash": {"record": strings.Replace(good, "sha256:", "md5:", 1)},
		"no owner": {"record": strings.Replace(good, `"owner":"o"`, `"owner":""`, 1)},
	} {
		if _, err := decodeRecord("aaaaaaaaaaaaaaaa", fields); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	r, err := decodeRecord("aaaaaaaaaaaaaaaa", map[string]string{"record": good, "revoked_at": "garbage"})
	if err != nil || r.RevokedAt.IsZero() {
		t.Fatalf("unreadable revoked_at must count as revoked: %+v, %v", r, err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(`{"id":"aaaaaaaaaaaaaaaa","hash":"sha256:`+strings.Repeat("0", 64)+`","owner":"o"}`, "")
	f.Add("{", "2026-01-01T00:00:00Z")
	f.Fuzz(func(t *testing.T, record, revoked string) {
		fields := map[string]string{"record": record}
		if revoked != "" {
			fields["revoked_at"] = revoked
		}
		r, err := decodeRecord("aaaaaaaaaaaaaaaa", fields)
		if err == nil && (r.ID != "aaaaaaaaaaaaaaaa" || r.Owner == "") {
			t.Fatalf("accepted %+v", r)
		}
		if err == nil && revoked != "" && r.RevokedAt.IsZero() {
			t.Fatal("revoked_at present but the record is not revoked")
		}
	})
}

// BenchmarkRevocationPropagation measures the time from Revoke on one
// replica until another replica that had the record in memory sees the
// key as revoked (pub/sub path).
func BenchmarkRevocationPropagation(b *testing.B) {
	rs := redistest.Start(b)
	ctx := context.Background()
	newStore := func() *RedisStore {
		client := redis.NewClient(&redis.Options{Addr: rs.Addr, Protocol: 2, DisableIdentity: true})
		b.Cleanup(func() { client.Close() })
		s := NewRedisStore(client, RedisStoreOptions{Prefix: "b:", CacheTTL: time.Hour})
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { s.Watch(wctx); close(done) }()
		b.Cleanup(func() { cancel(); <-done })
		<-s.Ready()
		return s
	}
	a, other := newStore(), newStore()
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		_, rec, err := a.Create(ctx, "svc", nil, 0, "")
		if err != nil {
			b.Fatal(err)
		}
		for {
			r, err := other.Lookup(ctx, rec.ID)
			if err == nil && r.RevokedAt.IsZero() {
				break
			}
		}
		b.StartTimer()
		start := time.Now()
		if _, err := a.Revoke(ctx, rec.ID); err != nil {
			b.Fatal(err)
		}
		for {
			r, err := other.Lookup(ctx, rec.ID)
			if err != nil {
				b.Fatal(err)
			}
			if !r.RevokedAt.IsZero() {
				break
			}
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs-to-revoked")
}

// TestRedisStoreLocalBound: made-up ids remembered as unknown never grow
// the in-memory copies past the bound, and known records survive a purge.
func TestRedisStoreLocalBound(t *testing.T) {
	s := NewRedisStore(nil, RedisStoreOptions{Prefix: "t:"})
	far := time.Now().Add(time.Hour)
	known := &Record{ID: "kkkkkkkkkkkkkkkk"}
	s.remember(known.ID, known, far)
	for i := range maxLocalRecords + 10 {
		s.remember("unknown-"+strconv.Itoa(i), nil, far)
		if n := len(s.local); n > maxLocalRecords {
			t.Fatalf("%d local records, bound is %d", n, maxLocalRecords)
		}
	}
	if l, ok := s.local[known.ID]; !ok || l.rec != known {
		t.Fatal("a purge of unknown ids dropped a known record")
	}
}

// TestRedisStoreCluster: every API-key key shares one hash tag, so the
// transaction in Revoke and the listing work on a Redis Cluster.
func TestRedisStoreCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	ctx := context.Background()
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), Protocol: 2, DisableIdentity: true, ReadTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	s := NewRedisStore(client, RedisStoreOptions{Prefix: "t:"})
	key, rec, err := s.Create(ctx, "svc-cluster", []string{"read"}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	p := NewProvider("apikey", s)
	if pr, err := p.Resolve(ctx, identity.Credential{Kind: identity.KindAPIKey, Token: key}); err != nil || pr.ID != "svc-cluster" {
		t.Fatalf("Resolve = %v, %v", pr, err)
	}
	if _, err := s.Revoke(ctx, rec.ID); err != nil {
		t.Fatalf("Revoke on a cluster: %v", err)
	}
	if _, err := p.Resolve(ctx, identity.Credential{Kind: identity.KindAPIKey, Token: key}); !identity.IsInvalid(err) {
		t.Fatalf("revoked key: %v", err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || list[0].RevokedAt.IsZero() {
		t.Fatalf("List = %v, %v", list, err)
	}
}
