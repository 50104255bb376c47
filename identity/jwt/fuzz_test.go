package jwt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authzd/authzd/identity"
)

// fuzzSeeds are well-formed and hostile tokens for ti.
func fuzzSeeds(t testing.TB, ti *testIssuer) []string {
	good := ti.claims(map[string]any{"groups": []string{"a"}, "scope": "x y", "nested": map[string]any{"a": []any{1.5, true, nil}}})
	valid := ti.token(t, "rsa1", "r1", "RS256", good)
	parts := strings.Split(valid, ".")
	return []string{
		valid,
		ti.token(t, "ec256", "e1", "ES256", good),
		ti.token(t, "ed", "d1", "EdDSA", good),
		hs256(segs(map[string]any{"alg": "HS256"}, map[string]any{"iss": "hs-issuer", "sub": "s", "aud": "api", "exp": 4102444800}), []byte(testHMACSecret)),
		segs(map[string]any{"alg": "none"}, good) + ".",
		segs(map[string]any{"alg": "RS256", "kid": "r1", "crit": []string{"x"}}, good) + "." + parts[2],
		segs(map[string]any{"alg": "RS256", "jku": "https://x"}, good) + "." + parts[2],
		enc([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM"}`)) + ".a.b.c.d",
		parts[0] + "." + parts[1] + ".",
		parts[0] + "." + enc([]byte(`{"iss":"`+ti.issuer+`","exp":1e400,"sub":"a","sub":"b"}`)) + "." + parts[2],
		enc([]byte(`{"alg":"RS256","alg":"none"}`)) + ".e30.x",
		enc([]byte("{\"alg\":\"RS256\",\"kid\":\"\xff\"}")) + ".e30.x",
		"eyJ.eyJ.eyJ", "a.b.c", "", "opaque",
	}
}

// fuzzProvider has an RSA/EC/EdDSA issuer read from a file (no network)
// and an HMAC issuer.
func fuzzProvider(t testing.TB) (*testIssuer, *Provider) {
	ti := newIssuer(t, "/fuzz",
		pubJWK{kid: "r1", key: "rsa1", alg: "RS256"},
		pubJWK{kid: "e1", key: "ec256"},
		pubJWK{kid: "d1", key: "ed"},
	)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, ti.jwks(), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := New(context.Background(), Config{Issuers: []IssuerConfig{
		{Name: "file", Issuer: ti.issuer, Audiences: []string{"api://authzd"}, JWKSFile: path,
			Claims: ClaimMapping{Copy: []string{"nested", "scope"}}},
		{Name: "hs", Issuer: "hs-issuer", Audiences: []string{"api"}, HMACSecret: testHMACSecret},
	}}, Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return ti, p
}

// FuzzResolve: whatever the bearer token, Resolve returns a principal with
// a subject and an expiry, or one of the three documented error kinds;
// it never panics.
func FuzzResolve(f *testing.F) {
	ti, p := fuzzProvider(f)
	for _, s := range fuzzSeeds(f, ti) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		pr, err := p.Resolve(context.Background(), bearer(tok))
		if err == nil {
			if pr == nil || pr.Subject == "" || pr.ExpiresAt.IsZero() || pr.Type != "jwt" {
				t.Fatalf("accepted %q with principal %+v", tok, pr)
			}
			return
		}
		var ce *identity.CredentialError
		if !errors.Is(err, identity.ErrNotMine) && !errors.As(err, &ce) && !errors.Is(err, identity.ErrUnavailable) {
			t.Fatalf("Resolve(%q): unexpected error kind %T: %v", tok, err, err)
		}
		if pr != nil {
			t.Fatalf("principal with error %v", err)
		}
		if ce != nil && strings.Contains(ce.Reason, tok) && len(tok) > 8 {
			t.Fatalf("reason %q contains the token", ce.Reason)
		}
	})
}

// FuzzParse drives the parsers of untrusted bytes directly, including
// claim validation and mapping on payloads no signature would let
// through Resolve.
func FuzzParse(f *testing.F) {
	ti, p := fuzzProvider(f)
	for _, s := range fuzzSeeds(f, ti) {
		f.Add(s)
	}
	is := p.byIss[ti.issuer]
	now := time.Now()
	f.Fuzz(func(t *testing.T, tok string) {
		looksLikeJWT(tok)
		st := new(parseState)
		c, err := st.parse(tok)
		if err != nil {
			var rj *rejectError
			if !errors.Is(err, errNotJWT) && !errors.As(err, &rj) {
				t.Fatalf("parse: unexpected error %T %v", err, err)
			}
			return
		}
		if c.hdr.alg == "" || strings.EqualFold(c.hdr.alg, "none") {
			t.Fatalf("parse accepted alg %q", c.hdr.alg)
		}
		if len(c.sig) == 0 {
			t.Fatal("parse accepted an empty signature")
		}
		o, err := parseClaims(&st.pp, c.payload)
		if err != nil {
			return
		}
		pr, err := is.principal(o, now)
		if err == nil && (pr.Subject == "" || pr.ExpiresAt.Before(now.Add(-time.Hour))) {
			t.Fatalf("principal %+v from %q", pr, tok)
		}
	})
}
