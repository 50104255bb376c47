package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"

	"github.com/authzd/authzd/identity"
)

// Test keys are generated once per test binary: RSA generation is slow
// and the tests are about verification, not key generation.
var testKeys = sync.OnceValue(func() map[string]crypto.Signer {
	mustRSA := func(bits int) *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		return k
	}
	mustEC := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return map[string]crypto.Signer{
		"rsa1":  mustRSA(2048),
		"rsa2":  mustRSA(2048),
		"rsa3":  mustRSA(2048),
		"ec256": mustEC(elliptic.P256()),
		"ec384": mustEC(elliptic.P384()),
		"ec521": mustEC(elliptic.P521()),
		"ed":    ed,
		"weak":  mustRSA(1024),
	}
})

// pubJWK is one key the test issuer publishes.
type pubJWK struct {
	kid string
	key string // name in testKeys
	alg string // "" publishes no alg member
}

// testIssuer is a real OIDC issuer over TLS: discovery, a JWKS with real
// public keys, and tokens signed with the matching private keys.
type testIssuer struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string

	mu        sync.Mutex
	published []pubJWK
	extraJWKS []map[string]any // raw extra entries (oct keys, ...)

	down          atomic.Bool
	gate          atomic.Pointer[chan struct{}] // when set, JWKS requests wait on it
	jwksHits      atomic.Int64
	discoveryHits atomic.Int64
	discIssuer    atomic.Pointer[string] // overrides the issuer in discovery
}

// newIssuer starts an issuer whose iss is the server URL plus path.
func newIssuer(t testing.TB, path string, keys ...pubJWK) *testIssuer {
	t.Helper()
	ti := &testIssuer{t: t, published: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		down := func() bool {
			if ti.down.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return true
			}
			return false
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
			ti.discoveryHits.Add(1)
			if down() {
				return
			}
			iss := ti.issuer
			if p := ti.discIssuer.Load(); p != nil {
				iss = *p
			}
			writeJSON(w, map[string]any{
				"issuer":                                iss,
				"jwks_uri":                              ti.srv.URL + "/keys",
				"authorization_endpoint":                ti.issuer + "/authorize",
				"token_endpoint":                        ti.issuer + "/token",
				"id_token_signing_alg_values_supported": []string{"RS256"},
			})
		case r.URL.Path == "/keys" || strings.HasSuffix(r.URL.Path, "/.well-known/jwks.json"):
			ti.jwksHits.Add(1)
			if down() {
				return
			}
			if g := ti.gate.Load(); g != nil {
				<-*g
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(ti.jwks())
		default:
			http.NotFound(w, r)
		}
	})
	ti.srv = httptest.NewTLSServer(mux)
	ti.issuer = ti.srv.URL + path
	t.Cleanup(ti.srv.Close)
	return ti
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// publish replaces the published keys (rotation).
func (ti *testIssuer) publish(keys ...pubJWK) {
	ti.mu.Lock()
	ti.published = keys
	ti.mu.Unlock()
}

func (ti *testIssuer) jwks() []byte {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	var out []any
	for _, p := range ti.published {
		k, err := jwk.Import(testKeys()[p.key].Public())
		if err != nil {
			ti.t.Errorf("import key: %v", err)
			continue
		}
		k.Set(jwk.KeyIDKey, p.kid)
		k.Set(jwk.KeyUsageKey, "sig")
		if p.alg != "" {
			k.Set(jwk.AlgorithmKey, p.alg)
		}
		b, _ := json.Marshal(k)
		out = append(out, json.RawMessage(b))
	}
	for _, e := range ti.extraJWKS {
		out = append(out, e)
	}
	b, _ := json.Marshal(map[string]any{"keys": out})
	return b
}

// client trusts the issuer's TLS certificate.
func (ti *testIssuer) client() *http.Client { return ti.srv.Client() }

// mint signs claims with the named test key. hdr is the complete
// protected header; alg in it decides the signing algorithm.
func mint(t testing.TB, key any, hdr map[string]any, claims any) string {
	t.Helper()
	hb, _ := json.Marshal(hdr)
	var cb []byte
	switch c := claims.(type) {
	case []byte:
		cb = c
	case string:
		cb = []byte(c)
	default:
		cb, _ = json.Marshal(c)
	}
	input := enc(hb) + "." + enc(cb)
	alg, _ := hdr["alg"].(string)
	sig, err := jwsbb.Sign(key, alg, []byte(input), rand.Reader)
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return input + "." + enc(sig)
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// token mints a token signed by test key kname under kid with alg.
// claims is a map or raw JSON (string).
func (ti *testIssuer) token(t testing.TB, kname, kid, alg string, claims any) string {
	t.Helper()
	hdr := map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}
	return mint(t, testKeys()[kname], hdr, claims)
}

// claims returns standard valid claims for this issuer, merged with extra
// (a nil value in extra deletes the claim).
func (ti *testIssuer) claims(extra map[string]any) map[string]any {
	now := time.Now().Unix()
	c := map[string]any{
		"iss": ti.issuer,
		"sub": "user-1",
		"aud": "api://authzd",
		"iat": now,
		"exp": now + 600,
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// newProvider builds a provider for cfg, closing it at test end.
func newProvider(t testing.TB, client *http.Client, issuers ...IssuerConfig) *Provider {
	t.Helper()
	p, err := New(context.Background(), Config{Issuers: issuers}, Options{HTTPClient: client, Logger: quietLog()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func bearer(tok string) identity.Credential {
	return identity.Credential{Kind: identity.KindBearer, Token: tok}
}

// mustReject asserts a CredentialError whose reason contains want.
func mustReject(t *testing.T, p *Provider, tok, want string) {
	t.Helper()
	pr, err := p.Resolve(context.Background(), bearer(tok))
	if err == nil {
		t.Fatalf("accepted token, principal %+v; want rejection %q", pr, want)
	}
	var ce *identity.CredentialError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T); want *identity.CredentialError %q", err, err, want)
	}
	if !strings.Contains(ce.Reason, want) {
		t.Fatalf("reason = %q (err %v); want it to contain %q", ce.Reason, err, want)
	}
	if pr != nil {
		t.Fatalf("principal %+v returned with an error", pr)
	}
}

func mustResolve(t *testing.T, p *Provider, tok string) *identity.Principal {
	t.Helper()
	pr, err := p.Resolve(context.Background(), bearer(tok))
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return pr
}
