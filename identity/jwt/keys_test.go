package jwt

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authzd/authzd/identity"
)

// lifecycleCfg refreshes on demand as often as asked (so tests need no
// waiting) and never on schedule during a test.
func lifecycleCfg(ti *testIssuer) IssuerConfig {
	return IssuerConfig{
		Name: "idp", Issuer: ti.issuer, Audiences: []string{"api://authzd"},
		MinRefreshInterval: time.Nanosecond, RefreshInterval: time.Hour,
	}
}

// waitFor polls cond: synchronisation with background work, not a timing
// assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func mustUnavailable(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, identity.ErrUnavailable) || identity.IsInvalid(err) {
		t.Fatalf("err = %v; want identity.ErrUnavailable (and not invalid)", err)
	}
}

func TestKeyRotation(t *testing.T) {
	ti := newIssuer(t, "/rot", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	p := newProvider(t, ti.client(), lifecycleCfg(ti))
	old := ti.token(t, "rsa1", "k1", "RS256", ti.claims(nil))
	mustResolve(t, p, old)
	if got := ti.jwksHits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times at start, want 1", got)
	}

	// The issuer adds k2 and removes k1.
	ti.publish(pubJWK{kid: "k2", key: "rsa2", alg: "RS256"})
	mustResolve(t, p, ti.token(t, "rsa2", "k2", "RS256", ti.claims(nil)))
	if got := ti.jwksHits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times after a new kid, want 2", got)
	}
	// Cached tokens of k1 are no longer accepted once k1 is gone.
	mustReject(t, p, old, "unknown key")
	// A known kid needs no fetch.
	before := ti.jwksHits.Load()
	mustResolve(t, p, ti.token(t, "rsa2", "k2", "RS256", ti.claims(nil)))
	if got := ti.jwksHits.Load(); got != before {
		t.Fatalf("known kid caused a fetch (%d -> %d)", before, got)
	}
	// Discovery is not repeated while its jwks_uri works.
	if got := ti.discoveryHits.Load(); got != 1 {
		t.Fatalf("discovery fetched %d times, want 1", got)
	}
}

func TestUnknownKidRefreshIsRateLimited(t *testing.T) {
	ti := newIssuer(t, "/rl", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	cfg := lifecycleCfg(ti)
	cfg.MinRefreshInterval = time.Hour
	p := newProvider(t, ti.client(), cfg)

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := ti.token(t, "rsa1", fmt.Sprintf("random-%d", i), "RS256", ti.claims(nil))
			_, err := p.Resolve(context.Background(), bearer(tok))
			var ce *identity.CredentialError
			if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "unknown key") {
				t.Errorf("random kid: err = %v, want unknown key", err)
			}
		}()
	}
	wg.Wait()
	if got := ti.jwksHits.Load(); got != 1 {
		t.Fatalf("50 random kids caused %d JWKS fetches in total, want 1 (the start-up fetch)", got)
	}
	mustResolve(t, p, ti.token(t, "rsa1", "k1", "RS256", ti.claims(nil)))
}

func TestConcurrentRefreshesCollapse(t *testing.T) {
	ti := newIssuer(t, "/sf", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	p := newProvider(t, ti.client(), lifecycleCfg(ti))
	m := p.issuers[0].keys

	gate := make(chan struct{})
	ti.gate.Store(&gate)
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(release)
	ti.publish(pubJWK{kid: "k1", key: "rsa1", alg: "RS256"}, pubJWK{kid: "k2", key: "ec256", alg: "ES256"})
	tok := ti.token(t, "ec256", "k2", "ES256", ti.claims(nil))

	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := p.Resolve(context.Background(), bearer(tok))
			errs <- err
		}()
	}
	waitFor(t, "all requests to wait on one fetch", func() bool { return m.joined.Load() == n-1 })
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Resolve: %v", err)
		}
	}
	if got := ti.jwksHits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (start-up + one shared refresh)", got)
	}
}

func TestJWKSEndpointDown(t *testing.T) {
	ti := newIssuer(t, "/down", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	p := newProvider(t, ti.client(), lifecycleCfg(ti))
	known := ti.token(t, "rsa1", "k1", "RS256", ti.claims(nil))
	mustResolve(t, p, known)

	ti.down.Store(true)
	// A new kid cannot be looked up: unavailable, not invalid.
	_, err := p.Resolve(context.Background(), bearer(ti.token(t, "rsa2", "k2", "RS256", ti.claims(nil))))
	mustUnavailable(t, err)
	if ti.jwksHits.Load() < 2 {
		t.Fatal("no refresh was attempted for the unknown kid")
	}
	// Keys already fetched keep working after the failed refresh.
	mustResolve(t, p, known)

	if err := p.Ready(); err != nil {
		t.Fatalf("Ready with cached keys: %v", err)
	}
}

func TestIssuerUnreachableAtStartUp(t *testing.T) {
	ti := newIssuer(t, "/late", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	ti.down.Store(true)
	p := newProvider(t, ti.client(), lifecycleCfg(ti))

	err := p.Ready()
	mustUnavailable(t, err)
	if !strings.Contains(err.Error(), "idp") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Ready = %v; want the issuer name and the cause", err)
	}
	tok := ti.token(t, "rsa1", "k1", "RS256", ti.claims(nil))
	_, err = p.Resolve(context.Background(), bearer(tok))
	mustUnavailable(t, err)

	// The issuer comes up: the next token fetches the keys.
	ti.down.Store(false)
	mustResolve(t, p, tok)
	if err := p.Ready(); err != nil {
		t.Fatalf("Ready after the issuer came up: %v", err)
	}
}

func TestIssuerConnectionRefusedAtStartUp(t *testing.T) {
	ti := newIssuer(t, "/gone", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	cfg := lifecycleCfg(ti)
	ti.srv.Close()
	p := newProvider(t, ti.client(), cfg)
	mustUnavailable(t, p.Ready())
	_, err := p.Resolve(context.Background(), bearer(ti.token(t, "rsa1", "k1", "RS256", ti.claims(nil))))
	mustUnavailable(t, err)
	// Tokens of other issuers are still judged: this one is untrusted.
	other := newIssuer(t, "/other", pubJWK{kid: "k1", key: "rsa2"})
	mustReject(t, p, other.token(t, "rsa2", "k1", "RS256", other.claims(nil)), "not trusted")
}

func TestStartUpHonoursContext(t *testing.T) {
	ti := newIssuer(t, "/slow", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	gate := make(chan struct{})
	ti.gate.Store(&gate)
	t.Cleanup(func() { close(gate) })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, "the start-up fetch", func() bool { return ti.jwksHits.Load() == 1 })
		cancel()
	}()
	p, err := New(ctx, Config{Issuers: []IssuerConfig{lifecycleCfg(ti)}}, Options{HTTPClient: ti.client(), Logger: quietLog()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer p.Close()
	mustUnavailable(t, p.Ready())

	// A request waiting on a refresh stops when its context ends.
	rctx, rcancel := context.WithCancel(context.Background())
	rcancel()
	_, err = p.Resolve(rctx, bearer(ti.token(t, "rsa1", "k1", "RS256", ti.claims(nil))))
	mustUnavailable(t, err)
}

func TestDiscoveryMustNameTheIssuer(t *testing.T) {
	ti := newIssuer(t, "/disc", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	evil := "https://evil.example.com"
	ti.discIssuer.Store(&evil)
	p := newProvider(t, ti.client(), lifecycleCfg(ti))
	err := p.Ready()
	mustUnavailable(t, err)
	if !strings.Contains(err.Error(), "discovery") {
		t.Fatalf("Ready = %v; want a discovery error", err)
	}
	if ti.jwksHits.Load() != 0 {
		t.Fatal("keys were fetched from an issuer whose discovery document names another issuer")
	}
}

func TestJWKSFile(t *testing.T) {
	ti := newIssuer(t, "/file", pubJWK{kid: "k1", key: "ed", alg: "EdDSA"})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, ti.jwks(), 0o600); err != nil {
		t.Fatal(err)
	}
	ti.srv.Close() // the file is the only source
	p := newProvider(t, nil, IssuerConfig{
		Name: "file", Issuer: ti.issuer, Audiences: []string{"api://authzd"}, JWKSFile: path,
		MinRefreshInterval: time.Nanosecond, RefreshInterval: time.Hour,
	})
	mustResolve(t, p, ti.token(t, "ed", "k1", "EdDSA", ti.claims(nil)))

	// Rotation by replacing the file.
	ti.publish(pubJWK{kid: "k2", key: "ec384", alg: "ES384"})
	if err := os.WriteFile(path, ti.jwks(), 0o600); err != nil {
		t.Fatal(err)
	}
	mustResolve(t, p, ti.token(t, "ec384", "k2", "ES384", ti.claims(nil)))
}

func TestCacheTTLAndExpiry(t *testing.T) {
	ti := newIssuer(t, "/ttl", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	a := lifecycleCfg(ti)
	a.CacheTTL = 2 * time.Minute
	b := IssuerConfig{Name: "hs", Issuer: "hs-issuer", Audiences: []string{"x"}, HMACSecret: testHMACSecret}
	p := newProvider(t, ti.client(), a, b)
	if got := p.CacheTTL(); got != 2*time.Minute {
		t.Fatalf("CacheTTL = %s, want the smallest issuer cache_ttl 2m", got)
	}
	exp := time.Now().Add(90 * time.Second).Unix()
	pr := mustResolve(t, p, ti.token(t, "rsa1", "k1", "RS256", ti.claims(map[string]any{"exp": exp})))
	if !pr.ExpiresAt.Equal(time.Unix(exp, 0)) {
		t.Fatalf("ExpiresAt = %s, want exp %s", pr.ExpiresAt, time.Unix(exp, 0))
	}
	// An HMAC-only issuer needs no key set and is always ready.
	if err := p.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

func TestKeyFetchRefusesRedirectToPlainHTTP(t *testing.T) {
	ti := newIssuer(t, "/redir", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	redirector := newIssuer(t, "/r")
	redirector.srv.Config.Handler = http.RedirectHandler("http://keys.example.invalid/jwks.json", http.StatusFound)
	cfg := lifecycleCfg(ti)
	cfg.JWKSURI = redirector.srv.URL + "/keys"
	p := newProvider(t, redirector.client(), cfg)
	err := p.Ready()
	mustUnavailable(t, err)
	if !strings.Contains(err.Error(), "must use https") {
		t.Fatalf("Ready = %v; want the redirect refused", err)
	}
}

func TestCloseStopsFetches(t *testing.T) {
	ti := newIssuer(t, "/close", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	p, err := New(context.Background(), Config{Issuers: []IssuerConfig{lifecycleCfg(ti)}}, Options{HTTPClient: ti.client(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	ti.gate.Store(&gate)
	t.Cleanup(func() { close(gate) })
	// A request starts a refresh that hangs in the issuer.
	go p.Resolve(context.Background(), bearer(ti.token(t, "rsa1", "new-kid", "RS256", ti.claims(nil))))
	waitFor(t, "the refresh to start", func() bool { return ti.jwksHits.Load() == 2 })
	p.Close() // returns: the hanging fetch is cancelled
	_, err = p.Resolve(context.Background(), bearer(ti.token(t, "rsa1", "other-kid", "RS256", ti.claims(nil))))
	mustUnavailable(t, err)
	if got := ti.jwksHits.Load(); got != 2 {
		t.Fatalf("fetches after Close: %d hits, want 2", got)
	}
	p.Close() // idempotent
}

// While the last refresh has failed, an unknown kid stays "cannot tell",
// even when a new refresh is rate-limited.
func TestUnknownKidAfterFailedRefreshIsUnavailable(t *testing.T) {
	ti := newIssuer(t, "/down2", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	cfg := lifecycleCfg(ti)
	cfg.MinRefreshInterval = time.Hour
	p := newProvider(t, ti.client(), cfg)
	ti.down.Store(true)
	if err := p.issuers[0].keys.refresh(context.Background(), true); err == nil {
		t.Fatal("refresh from a down issuer succeeded")
	}
	hits := ti.jwksHits.Load()
	_, err := p.Resolve(context.Background(), bearer(ti.token(t, "rsa2", "k2", "RS256", ti.claims(nil))))
	mustUnavailable(t, err)
	if got := ti.jwksHits.Load(); got != hits {
		t.Fatalf("rate-limited refresh fetched anyway (%d -> %d)", hits, got)
	}
	mustResolve(t, p, ti.token(t, "rsa1", "k1", "RS256", ti.claims(nil)))
}
