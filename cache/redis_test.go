package cache_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authzd/authzd/cache"
	"github.com/authzd/authzd/internal/redistest"
	"github.com/authzd/authzd/internal/testpki"
)

// waitFor polls cond until it holds or 10s pass. It is a liveness bound for
// asynchronous delivery, not a latency assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRedisUnknownVersionsAreMisses(t *testing.T) {
	s := redistest.Start(t)
	client := newClient(t, testRedisConfig(s.Addr))
	ctx := context.Background()
	r := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "v"})
	r.Set(ctx, key("k"), entry{Principal: "p", N: 1}, time.Minute)
	if _, ok := r.Get(ctx, key("k")); !ok {
		t.Fatal("fresh entry misses")
	}
	// A newer build writes the same key in codec format 2: this build must
	// not misread it.
	v2 := cache.VersionedCodec[entry]{Version: 2, Encode: entryCodec.Encode, Decode: entryCodec.Decode}
	cache.NewRedis(client, v2, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "v"}).Set(ctx, key("k"), entry{Principal: "p", N: 2}, time.Minute)
	if v, ok := r.Get(ctx, key("k")); ok {
		t.Fatalf("entry in an unknown codec version read as %v", v)
	}
	// Raw garbage under the key (another writer, a corrupt value) as well.
	keys, err := client.Keys(ctx, "t:v:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("KEYS = %v, %v; want exactly the one entry", keys, err)
	}
	for _, junk := range []string{"", "x", "\xa1\x00", "\x07garbage-in-unknown-envelope"} {
		if err := client.Set(ctx, keys[0], junk, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if v, ok := r.Get(ctx, key("k")); ok {
			t.Fatalf("junk %q read as %v", junk, v)
		}
	}
	if st := r.Stats(); st.DecodeErrors < 5 || st.Breaker.Errors != 0 {
		t.Fatalf("stats = %+v; want >= 5 decode errors and no breaker errors", st)
	}
}

func TestRedisACLAuth(t *testing.T) {
	s := redistest.Start(t, redistest.WithConfig(
		"user default off",
		"user authzd on >s3cret ~authzd:* &authzd:* +@all",
	))
	ctx := context.Background()
	cfg := testRedisConfig(s.Addr)
	cfg.Username, cfg.Password, cfg.KeyPrefix = "authzd", "s3cret", "authzd:"
	r := cache.NewRedis(newClient(t, cfg), entryCodec, cache.RedisOptions[entry]{Prefix: cfg.KeyPrefix, Namespace: "acl"})
	r.Set(ctx, key("k"), entry{N: 7}, time.Minute)
	if v, ok := r.Get(ctx, key("k")); !ok || v.N != 7 {
		t.Fatalf("with the right password: Get = %v, %v", v, ok)
	}
	bad := cfg
	bad.Password = "wrong"
	rb := cache.NewRedis(newClient(t, bad), entryCodec, cache.RedisOptions[entry]{Prefix: cfg.KeyPrefix, Namespace: "acl"})
	if v, ok := rb.Get(ctx, key("k")); ok {
		t.Fatalf("with a wrong password: Get = %v, hit", v)
	}
	if rb.Stats().Breaker.Errors == 0 {
		t.Fatal("auth failure not counted as an error")
	}
}

// TestRedisBreaker kills Redis under a steady stream of lookups: none
// fails or blocks for long, skipped calls are counted, and Redis is used
// again after a restart.
func TestRedisBreaker(t *testing.T) {
	s := redistest.Start(t)
	cfg := testRedisConfig(s.Addr)
	cfg.ReadTimeout, cfg.WriteTimeout, cfg.DialTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	cfg.Breaker = cache.BreakerConfig{Failures: 3, OpenFor: 100 * time.Millisecond}
	client := newClient(t, cfg)
	ctx := context.Background()
	br := cache.NewBreaker(cfg.Breaker)
	var changes []int
	var mu sync.Mutex
	br.OnChange(func(s int) { mu.Lock(); changes = append(changes, s); mu.Unlock() })
	r := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "b", Breaker: br})
	tiered := cache.NewTiered(cache.NewMemory[entry](cache.MemoryConfig{}), r, cache.TieredOptions{})

	tiered.Set(ctx, key("warm"), entry{N: 1}, time.Minute)
	s.Kill()
	for i := range 200 {
		// The local tier keeps answering what it holds.
		if v, ok := tiered.Get(ctx, key("warm")); !ok || v.N != 1 {
			t.Fatalf("local entry lost while Redis is down: %v, %v", v, ok)
		}
		// Misses go to Redis (or are skipped) and come back as misses.
		if _, ok := tiered.Get(ctx, key("cold")); ok {
			t.Fatal("hit for a key never written")
		}
		tiered.Set(ctx, key("w"), entry{N: uint64(i)}, time.Minute)
	}
	st := br.Stats()
	if st.State == cache.BreakerClosed || st.Opened == 0 || st.Skipped == 0 {
		t.Fatalf("breaker stats with Redis down = %+v; want open, opened > 0, skipped > 0", st)
	}
	if !strings.Contains(st.LastError, "refused") && !strings.Contains(st.LastError, "timeout") && !strings.Contains(st.LastError, "EOF") && !strings.Contains(st.LastError, "reset") {
		t.Fatalf("last error %q does not say why Redis failed", st.LastError)
	}

	s.Restart()
	// Half-open probes find Redis again; writes and reads reach it.
	waitFor(t, "Redis back in use", func() bool {
		tiered.Set(ctx, key("back"), entry{N: 5}, time.Minute)
		v, ok := r.Get(ctx, key("back"))
		return ok && v.N == 5
	})
	if br.State() != cache.BreakerClosed {
		t.Fatalf("breaker state after recovery = %d, want closed", br.State())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) < 3 || changes[len(changes)-1] != cache.BreakerClosed {
		t.Fatalf("state changes = %v; want open, half-open ... closed", changes)
	}
}

func TestBreakerStates(t *testing.T) {
	b := cache.NewBreaker(cache.BreakerConfig{Failures: 2, OpenFor: time.Hour})
	if !b.Allow() {
		t.Fatal("new breaker refuses")
	}
	b.Failure()
	if !b.Allow() || b.State() != cache.BreakerClosed {
		t.Fatal("one failure of two opened the breaker")
	}
	b.Success() // resets the consecutive count
	b.Failure()
	if b.State() != cache.BreakerClosed {
		t.Fatal("failures that were not consecutive opened the breaker")
	}
	b.Failure()
	if b.State() != cache.BreakerOpen {
		t.Fatalf("state = %d after 2 consecutive failures, want open", b.State())
	}
	for range 3 {
		if b.Allow() {
			t.Fatal("open breaker allowed a call before open_for ended")
		}
	}
	if st := b.Stats(); st.Skipped != 3 || st.Errors != 3 || st.Opened != 1 {
		t.Fatalf("stats = %+v; want 3 skipped, 3 errors, opened once", st)
	}

	// open_for 0-ish: one probe only, concurrent callers are skipped.
	p := cache.NewBreaker(cache.BreakerConfig{Failures: 1, OpenFor: time.Nanosecond})
	p.Failure()
	time.Sleep(time.Millisecond)
	var allowed int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if p.Allow() {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != 1 || p.State() != cache.BreakerHalfOpen {
		t.Fatalf("%d probes allowed, state %d; want exactly 1, half-open", allowed, p.State())
	}
	p.Failure()
	if p.State() != cache.BreakerOpen {
		t.Fatal("failed probe did not reopen")
	}
	time.Sleep(time.Millisecond)
	if !p.Allow() {
		t.Fatal("no probe after the open interval")
	}
	p.Neutral() // the caller went away: give the probe back
	time.Sleep(time.Millisecond)
	if !p.Allow() {
		t.Fatal("probe not given back after Neutral")
	}
	p.Success()
	if p.State() != cache.BreakerClosed || !p.Allow() {
		t.Fatal("successful probe did not close")
	}
}

// TestTieredOneRoundTrip checks that a local miss costs one Redis round trip
// and a local hit none, and that a second replica is served what the first
// wrote.
func TestTieredOneRoundTrip(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	newReplica := func() (*cache.Tiered[entry], *cache.RoundTrips) {
		client := newClient(t, testRedisConfig(s.Addr))
		rt := &cache.RoundTrips{}
		client.AddHook(rt)
		inv := cache.NewInvalidator(client, "t:", cache.InvalidatorOptions{})
		// Read the generation before counting.
		if _, err := inv.Generation().Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		r := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "rt", Tag: entryTag, Generation: inv.Generation()})
		return cache.NewTiered(cache.NewMemory[entry](cache.MemoryConfig{}), r, cache.TieredOptions{}), rt
	}
	a, _ := newReplica()
	b, rtB := newReplica()
	a.Set(ctx, key("shared"), entry{Principal: "p", N: 3}, time.Minute)

	before := rtB.Load()
	if v, ok := b.Get(ctx, key("shared")); !ok || v.N != 3 {
		t.Fatalf("replica b: Get = %v, %v; want the entry a wrote", v, ok)
	}
	if n := rtB.Load() - before; n != 1 {
		t.Fatalf("local miss cost %d round trips, want 1", n)
	}
	before = rtB.Load()
	if _, ok := b.Get(ctx, key("shared")); !ok {
		t.Fatal("second Get missed")
	}
	if n := rtB.Load() - before; n != 0 {
		t.Fatalf("local hit cost %d round trips, want 0", n)
	}
	before = rtB.Load()
	if _, ok := b.Get(ctx, key("nowhere")); ok {
		t.Fatal("hit for a key never written")
	}
	if n := rtB.Load() - before; n != 1 {
		t.Fatalf("miss in both tiers cost %d round trips, want 1", n)
	}
}

// TestTieredLocalTTL checks a value read from Redis is kept locally no
// longer than it lives in Redis.
func TestTieredLocalTTL(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	client := newClient(t, testRedisConfig(s.Addr))
	r := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "ttl"})
	r.Set(ctx, key("short"), entry{N: 1}, 60*time.Millisecond)
	local := cache.NewMemory[entry](cache.MemoryConfig{})
	tiered := cache.NewTiered(local, r, cache.TieredOptions{})
	if _, ok := tiered.Get(ctx, key("short")); !ok {
		t.Fatal("miss for a fresh entry")
	}
	if local.Len() != 1 {
		t.Fatal("remote hit not copied to the local tier")
	}
	time.Sleep(150 * time.Millisecond)
	if _, ok := tiered.Get(ctx, key("short")); ok {
		t.Fatal("local copy outlived the Redis entry")
	}
}

// TestInvalidator runs two replicas on one Redis and checks that flushes
// reach the other replica's local tier.
func TestInvalidator(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	type replica struct {
		inv    *cache.Invalidator
		tiered *cache.Tiered[entry]
		mu     sync.Mutex
		got    []cache.Invalidation
	}
	newReplica := func() *replica {
		client := newClient(t, testRedisConfig(s.Addr))
		inv := cache.NewInvalidator(client, "t:", cache.InvalidatorOptions{Poll: 50 * time.Millisecond})
		r := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "inv", Tag: entryTag, Generation: inv.Generation()})
		rp := &replica{inv: inv, tiered: cache.NewTiered(cache.NewMemory[entry](cache.MemoryConfig{}), r, cache.TieredOptions{})}
		inv.Handle(func(ctx context.Context, m cache.Invalidation) {
			switch m.Kind {
			case cache.InvalidateAll, cache.InvalidateResync:
				rp.tiered.Local().Clear(ctx)
			case cache.InvalidatePrincipal:
				rp.tiered.DropLocalTag(m.ID)
			}
			rp.mu.Lock()
			rp.got = append(rp.got, m)
			rp.mu.Unlock()
		})
		inv.Start(ctx)
		t.Cleanup(inv.Close)
		select {
		case <-inv.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("invalidator never subscribed")
		}
		return rp
	}
	a, b := newReplica(), newReplica()
	seen := func(rp *replica, kind cache.InvalidationKind) func() bool {
		return func() bool {
			rp.mu.Lock()
			defer rp.mu.Unlock()
			for _, m := range rp.got {
				if m.Kind == kind {
					return true
				}
			}
			return false
		}
	}
	localHas := func(rp *replica, k string) bool {
		_, ok := rp.tiered.Local().Get(ctx, key(k))
		return ok
	}

	// Principal flush: a drops Redis entries and publishes; b drops local.
	a.tiered.Set(ctx, key("alice1"), entry{Principal: "alice"}, time.Minute)
	a.tiered.Set(ctx, key("bob1"), entry{Principal: "bob"}, time.Minute)
	b.tiered.Get(ctx, key("alice1"))
	b.tiered.Get(ctx, key("bob1"))
	if !localHas(b, "alice1") || !localHas(b, "bob1") {
		t.Fatal("b did not copy the entries locally")
	}
	if err := a.tiered.FlushTag(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := a.inv.Publish(ctx, cache.Invalidation{Kind: cache.InvalidatePrincipal, ID: "alice"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b drops alice's local entries", func() bool { return !localHas(b, "alice1") })
	if !localHas(b, "bob1") {
		t.Fatal("flushing alice dropped bob's entry")
	}
	if _, ok := b.tiered.Get(ctx, key("alice1")); ok {
		t.Fatal("alice's entry still in Redis after FlushTag")
	}

	// Flush everything.
	if err := a.inv.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b sees flush-all", seen(b, cache.InvalidateAll))
	if localHas(b, "bob1") {
		t.Fatal("b kept a local entry after flush-all")
	}
	if _, ok := b.tiered.Get(ctx, key("bob1")); ok {
		t.Fatal("Redis entry readable after flush-all")
	}
	ga, _ := a.inv.Generation().Current()
	gb, _ := b.inv.Generation().Current()
	if ga != gb || ga == 0 {
		t.Fatalf("generations a=%d b=%d; want equal and bumped", ga, gb)
	}

	// A bump without a message (lost, or from another tool) is found by
	// the poller.
	b.tiered.Set(ctx, key("polled"), entry{N: 1}, time.Minute)
	if err := s.Client(t).Incr(ctx, a.inv.Generation().Key()).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b polls the new generation", func() bool { return !localHas(b, "polled") })

	// After Redis restarts, the resubscribed replica drops its local tier
	// (messages may have been lost meanwhile).
	b.tiered.Local().Set(ctx, key("before-restart"), entry{N: 1}, time.Minute)
	s.Restart()
	waitFor(t, "b resyncs after Redis restarted", seen(b, cache.InvalidateResync))
	if localHas(b, "before-restart") {
		t.Fatal("local entry kept across a lost subscription")
	}

	// The restarted Redis lost the generation; the replicas write back the
	// one they know, so a flush after the restart is still news to them.
	genBefore, _ := b.inv.Generation().Current()
	waitFor(t, "a resubscribed", seen(a, cache.InvalidateResync))
	b.tiered.Set(ctx, key("after-restart"), entry{N: 1}, time.Minute)
	if err := a.inv.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b applies the flush after the restart", func() bool { return !localHas(b, "after-restart") })
	if g, _ := b.inv.Generation().Current(); g <= genBefore {
		t.Fatalf("generation after restart and flush = %d, want > %d", g, genBefore)
	}
	if _, ok := a.tiered.Get(ctx, key("after-restart")); ok {
		t.Fatal("entry written before the flush is still readable")
	}
}

func TestInvalidationMessages(t *testing.T) {
	for _, m := range []cache.Invalidation{
		{Kind: cache.InvalidateAll, Generation: 0},
		{Kind: cache.InvalidateAll, Generation: 1<<64 - 1},
		{Kind: cache.InvalidatePrincipal, ID: "user:alice@example.com"},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		got, err := cache.ParseInvalidation(b)
		if err != nil || got != m {
			t.Fatalf("round trip %+v = %+v, %v", m, got, err)
		}
	}
	for _, bad := range []cache.Invalidation{
		{Kind: cache.InvalidatePrincipal},
		{Kind: cache.InvalidatePrincipal, ID: strings.Repeat("x", cache.MaxInvalidationID+1)},
		{Kind: cache.InvalidatePrincipal, ID: "\xff"},
		{Kind: cache.InvalidateResync},
	} {
		if _, err := bad.MarshalBinary(); err == nil {
			t.Errorf("MarshalBinary(%+v) succeeded", bad)
		}
	}
	for _, bad := range []string{"", "\x01", "\x01Kak_1", "\x02P1", "\x01Pa\xff", "\x01A-1", "\x01Ax", "\x01Z1", "\x01P"} {
		if m, err := cache.ParseInvalidation([]byte(bad)); err == nil {
			t.Errorf("ParseInvalidation(%q) = %+v, want an error", bad, m)
		}
	}
}

func FuzzParseInvalidation(f *testing.F) {
	for _, s := range []string{"\x01A7", "\x01Palice", "\x01Kak_1", "\x01R", "", "\x02A1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := cache.ParseInvalidation(b)
		if err != nil {
			return
		}
		out, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed %+v does not marshal: %v", m, err)
		}
		again, err := cache.ParseInvalidation(out)
		if err != nil || again != m {
			t.Fatalf("re-parse %+v = %+v, %v", m, again, err)
		}
	})
}

func TestRedisConfig(t *testing.T) {
	ok := []cache.RedisConfig{
		{},
		{Addrs: []string{"r:6379"}},
		{Addrs: []string{"a:1", "b:2"}, Cluster: true},
		{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", DB: 2},
	}
	for _, c := range ok {
		if err := c.WithDefaults().Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := map[string]cache.RedisConfig{
		"redis.addrs":            {Addrs: []string{"a:1", "b:2"}},
		"redis.addrs[0]":         {Addrs: []string{"nocolon"}},
		"redis.db":               {Addrs: []string{"a:1"}, Cluster: true, DB: 1},
		"redis.mode":             {Addrs: []string{"a:1"}, Mode: "ring"},
		"redis.read_timeout":     {Addrs: []string{"a:1"}, ReadTimeout: 5 * time.Second},
		"redis.tls":              {Addrs: []string{"a:1"}, TLS: cache.RedisTLSConfig{CertFile: "c.pem"}},
		"redis.breaker.failures": {Addrs: []string{"a:1"}, Breaker: cache.BreakerConfig{Failures: -1}},
	}
	for want, c := range bad {
		err := c.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want one naming %s", c, err, want)
		}
	}
	d := cache.RedisConfig{Addrs: []string{"a:1"}}.WithDefaults()
	if d.ReadTimeout != 50*time.Millisecond || d.Mode != cache.RedisModeSingle || d.KeyPrefix != "authzd:" {
		t.Errorf("defaults = %+v", d)
	}
	o, err := cache.RedisConfig{Addrs: []string{"a:1", "b:2"}, Cluster: true}.WithDefaults().UniversalOptions()
	if err != nil || !o.IsClusterMode || o.MaxRetries != -1 || o.PoolTimeout != 50*time.Millisecond {
		t.Errorf("cluster options = %+v, %v", o, err)
	}
	if _, ok := redis.NewUniversalClient(o).(*redis.ClusterClient); !ok {
		t.Error("cluster config did not produce a ClusterClient")
	}
}

// TestRedisTLS connects over mutual TLS with the configured CA and client
// certificate, and fails without the client certificate.
func TestRedisTLS(t *testing.T) {
	pki := testpki.New(t)
	s := redistest.Start(t, redistest.WithTLS(pki.ServerCert, pki.ServerKey, pki.CAFile))
	ctx := context.Background()
	cfg := testRedisConfig(s.TLSAddr)
	cfg.TLS = cache.RedisTLSConfig{Enabled: true, CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
	if err := cfg.WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	r := cache.NewRedis(newClient(t, cfg), entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "tls"})
	r.Set(ctx, key("k"), entry{N: 1}, time.Minute)
	if v, ok := r.Get(ctx, key("k")); !ok || v.N != 1 {
		t.Fatalf("over TLS: Get = %v, %v; want a hit", v, ok)
	}
	if r.Stats().Breaker.Errors != 0 {
		t.Fatalf("TLS errors: %+v", r.Stats())
	}

	noCert := cfg
	noCert.TLS.CertFile, noCert.TLS.KeyFile = "", ""
	rn := cache.NewRedis(newClient(t, noCert), entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "tls"})
	if _, ok := rn.Get(ctx, key("k")); ok {
		t.Fatal("hit without a client certificate")
	}
	if rn.Stats().Breaker.Errors == 0 {
		t.Fatal("handshake failure not counted")
	}
	wrongCA := cfg
	wrongCA.TLS.CAFile = pki.ClientCert // not the CA
	rw := cache.NewRedis(newClient(t, wrongCA), entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "tls"})
	if _, ok := rw.Get(ctx, key("k")); ok {
		t.Fatal("hit while trusting the wrong CA")
	}
}

// TestRedisValueKey: with a value key, entries are authenticated: a value
// written without the key, with another key, forged, or copied to another
// cache key is a miss.
func TestRedisValueKey(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	client := newClient(t, testRedisConfig(s.Addr))
	secret := []byte("0123456789abcdef0123456789abcdef")
	signed := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "mac", ValueKey: secret})
	signed.Set(ctx, key("a"), entry{Principal: "p", N: 1}, time.Minute)
	if v, ok := signed.Get(ctx, key("a")); !ok || v.N != 1 {
		t.Fatalf("signed round trip: %v, %v", v, ok)
	}
	other := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "mac", ValueKey: []byte("another key of thirty-two bytes!")})
	if _, ok := other.Get(ctx, key("a")); ok {
		t.Fatal("a value signed with another key verified")
	}
	unsigned := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "mac"})
	unsigned.Set(ctx, key("b"), entry{N: 2}, time.Minute)
	if _, ok := signed.Get(ctx, key("b")); ok {
		t.Fatal("an unsigned value was accepted by a cache with a value key")
	}
	if _, ok := unsigned.Get(ctx, key("a")); ok {
		t.Fatal("a signed value was read by a cache without the key")
	}

	raw := s.Client(t)
	ka, kc := "t:mac:0:"+key("a").String(), "t:mac:0:"+key("c").String()
	good, err := raw.Get(ctx, ka).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	// Copied to another cache key: the MAC binds the value to its key.
	raw.Set(ctx, kc, good, time.Minute)
	if _, ok := signed.Get(ctx, key("c")); ok {
		t.Fatal("a value copied to another key verified")
	}
	// Any flipped byte (expiry, payload, MAC) fails.
	for i := range good {
		forged := append([]byte(nil), good...)
		forged[i] ^= 0x01
		raw.Set(ctx, ka, forged, time.Minute)
		if v, ok := signed.Get(ctx, key("a")); ok {
			t.Fatalf("value with byte %d flipped read as %v", i, v)
		}
	}
	if st := signed.Stats(); st.DecodeErrors == 0 || st.Breaker.Errors != 0 {
		t.Fatalf("stats %+v; want decode errors counted and no Redis errors", st)
	}
}
