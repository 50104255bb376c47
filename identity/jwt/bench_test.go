package jwt

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/authzd/authzd/cache"
	"github.com/authzd/authzd/identity"
)

// benchSetup: one issuer with a key per algorithm, read from a file so no
// network is involved, and an HMAC issuer. Tokens are Okta-shaped access
// tokens (about 800 bytes).
func benchSetup(b *testing.B) (*testIssuer, *Provider) {
	ti := newIssuer(b, "/bench",
		pubJWK{kid: "rs", key: "rsa1", alg: "RS256"},
		pubJWK{kid: "ps", key: "rsa2", alg: "PS256"},
		pubJWK{kid: "es256", key: "ec256", alg: "ES256"},
		pubJWK{kid: "es384", key: "ec384", alg: "ES384"},
		pubJWK{kid: "ed", key: "ed", alg: "EdDSA"},
	)
	path := filepath.Join(b.TempDir(), "jwks.json")
	if err := os.WriteFile(path, ti.jwks(), 0o600); err != nil {
		b.Fatal(err)
	}
	p, err := New(context.Background(), Config{Issuers: []IssuerConfig{
		{Name: "okta", Preset: PresetOkta, Issuer: ti.issuer, Audiences: []string{"api://default"},
			ClientIDs: []string{"0oa1b2c3d4E5F6g7H8i9"}, JWKSFile: path,
			Algorithms: []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}},
		{Name: "hs", Preset: PresetOkta, Issuer: "hs-issuer", Audiences: []string{"api://default"},
			ClientIDs: []string{"0oa1b2c3d4E5F6g7H8i9"}, HMACSecret: testHMACSecret},
	}}, Options{Logger: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	return ti, p
}

func benchClaims(iss string) map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"ver": 1, "jti": "AT.Jx1t0a8bq3bYgFfbPzOeUt1iA2rQzeV4PXU7z7nR2mY", "iss": iss, "aud": "api://default",
		"iat": now, "exp": now + 3600, "cid": "0oa1b2c3d4E5F6g7H8i9", "uid": "00u1a2b3c4D5E6f7G8h9",
		"scp": []string{"openid", "email", "documents.read"}, "auth_time": now, "sub": "carol@example.com",
		"groups": []string{"Everyone", "Admins"},
	}
}

var benchAlgs = []struct{ alg, key, kid string }{
	{"RS256", "rsa1", "rs"}, {"PS256", "rsa2", "ps"}, {"ES256", "ec256", "es256"},
	{"ES384", "ec384", "es384"}, {"EdDSA", "ed", "ed"}, {"HS256", "", ""},
}

func benchToken(b *testing.B, ti *testIssuer, alg, key, kid string) string {
	if alg == "HS256" {
		return hs256(segs(map[string]any{"alg": "HS256", "typ": "JWT"}, benchClaims("hs-issuer")), []byte(testHMACSecret))
	}
	return ti.token(b, key, kid, alg, benchClaims(ti.issuer))
}

// BenchmarkVerify is a cold verification: header checks, key lookup,
// signature, claims and principal mapping, per algorithm.
func BenchmarkVerify(b *testing.B) {
	ti, p := benchSetup(b)
	ctx := context.Background()
	for _, a := range benchAlgs {
		tok := benchToken(b, ti, a.alg, a.key, a.kid)
		cred := bearer(tok)
		if _, err := p.Resolve(ctx, cred); err != nil {
			b.Fatalf("%s: %v", a.alg, err)
		}
		b.Run(a.alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Resolve(ctx, cred); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyRejected is the cost of tokens refused before any
// signature check (alg none, forbidden header) and after one (bad
// signature), which is what a flood of forged tokens costs without the
// service's negative cache.
func BenchmarkVerifyRejected(b *testing.B) {
	ti, p := benchSetup(b)
	ctx := context.Background()
	good := benchClaims(ti.issuer)
	tok := ti.token(b, "rsa1", "rs", "RS256", good)
	cases := map[string]string{
		"alg_none":      segs(map[string]any{"alg": "none"}, good) + ".",
		"bad_signature": ti.token(b, "rsa2", "rs", "RS256", good),
		"untrusted_iss": ti.token(b, "rsa1", "rs", "RS256", benchClaims("https://evil.example.com")),
		"not_a_jwt":     "opaque-token-0123456789abcdef",
	}
	_ = tok
	for name, tok := range cases {
		cred := bearer(tok)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Resolve(ctx, cred); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

// BenchmarkIdentityCacheHit is the warm path as the service runs it: hash
// the token into the identity-cache key and read the principal from
// cache.Memory.
func BenchmarkIdentityCacheHit(b *testing.B) {
	ti, p := benchSetup(b)
	ctx := context.Background()
	tok := benchToken(b, ti, "RS256", "rsa1", "rs")
	cred := bearer(tok)
	pr, err := p.Resolve(ctx, cred)
	if err != nil {
		b.Fatal(err)
	}
	c := cache.NewMemory[*identity.Principal](cache.MemoryConfig{})
	key := func(cr identity.Credential) cache.Key {
		return cache.NewKeyBuilder("identity/v1").Uint(uint64(cr.Kind)).String(cr.Token).Sum()
	}
	c.Set(ctx, key(cred), pr, time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if got, ok := c.Get(ctx, key(cred)); !ok || got != pr {
			b.Fatal("miss")
		}
	}
}
