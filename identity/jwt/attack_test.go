package jwt

import (
	"context"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authzd/authzd/identity"
)

const testHMACSecret = "0123456789abcdef0123456789abcdef-shared"

// attackSetup is one issuer with RSA and EC keys, and a second, untrusted
// issuer with its own keys.
func attackSetup(t *testing.T) (*testIssuer, *testIssuer, *Provider) {
	ti := newIssuer(t, "/tenant-a",
		pubJWK{kid: "r1", key: "rsa1", alg: "RS256"},
		pubJWK{kid: "r2", key: "rsa2"},
		pubJWK{kid: "e1", key: "ec256", alg: "ES256"},
	)
	weak := testKeys()["weak"].Public().(*rsa.PublicKey)
	ti.extraJWKS = append(ti.extraJWKS, map[string]any{
		"kty": "RSA", "kid": "weak", "alg": "RS256", "use": "sig",
		"n": enc(weak.N.Bytes()), "e": "AQAB",
	}, map[string]any{
		"kty": "oct", "kid": "oct1", "alg": "HS256", "k": enc([]byte(testHMACSecret)),
	})
	other := newIssuer(t, "/tenant-b", pubJWK{kid: "r1", key: "rsa3", alg: "RS256"})
	p := newProvider(t, ti.client(), IssuerConfig{
		Name: "tenant-a", Issuer: ti.issuer, Audiences: []string{"api://authzd"},
		Algorithms: []string{"RS256", "PS256", "ES256", "ES384"},
	})
	return ti, other, p
}

func pemOf(t *testing.T, name string) []byte {
	der, err := x509.MarshalPKIXPublicKey(testKeys()[name].Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// hs256 signs input with secret: the classic "HMAC with the public key"
// forgery uses the issuer's public key as the secret.
func hs256(input string, secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + enc(m.Sum(nil))
}

func segs(hdr, claims any) string {
	hb, _ := json.Marshal(hdr)
	var cb []byte
	if s, ok := claims.(string); ok {
		cb = []byte(s)
	} else {
		cb, _ = json.Marshal(claims)
	}
	return enc(hb) + "." + enc(cb)
}

func TestAttacksAndBadClaims(t *testing.T) {
	ti, other, p := attackSetup(t)
	rsa1 := testKeys()["rsa1"]
	now := time.Now().Unix()
	good := ti.claims(nil)
	valid := ti.token(t, "rsa1", "r1", "RS256", good)
	if pr := mustResolve(t, p, valid); pr.Subject != "user-1" {
		t.Fatalf("valid token: subject %q", pr.Subject)
	}
	parts := strings.Split(valid, ".")
	otherSig := strings.Split(ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"sub": "other"})), ".")[2]
	hdrRS := func(extra map[string]any) map[string]any {
		h := map[string]any{"alg": "RS256", "kid": "r1", "typ": "JWT"}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	pubJWKMember := map[string]any{"kty": "RSA", "n": "x", "e": "AQAB"}

	cases := []struct {
		name, tok, want string
	}{
		{"alg none", segs(map[string]any{"alg": "none"}, good) + ".", "alg none"},
		{"alg None", segs(map[string]any{"alg": "None"}, good) + ".", "alg none"},
		{"alg NONE", segs(map[string]any{"alg": "NONE"}, good) + ".", "alg none"},
		{"alg nOnE with a signature", segs(map[string]any{"alg": "nOnE", "kid": "r1"}, good) + "." + parts[2], "alg none"},
		{"alg missing", segs(map[string]any{"kid": "r1"}, good) + "." + parts[2], "no alg"},
		{"alg in lower case", segs(map[string]any{"alg": "rs256", "kid": "r1"}, good) + "." + parts[2], "algorithm is not allowed"},
		{"HS256 signed with the issuer's public key (PEM)", hs256(segs(map[string]any{"alg": "HS256", "kid": "r1"}, good), pemOf(t, "rsa1")), "algorithm is not allowed"},
		{"HS256 with the oct key a JWKS published", hs256(segs(map[string]any{"alg": "HS256", "kid": "oct1"}, good), []byte(testHMACSecret)), "algorithm is not allowed"},
		{"RS256 header with an EC key id", mint(t, rsa1, map[string]any{"alg": "RS256", "kid": "e1"}, good), "does not match the key"},
		{"PS256 with a key pinned to RS256", mint(t, rsa1, map[string]any{"alg": "PS256", "kid": "r1"}, good), "does not match the key"},
		{"ES384 with a P-256 key", mint(t, testKeys()["ec384"], map[string]any{"alg": "ES384", "kid": "e1"}, good), "does not match the key"},
		{"jku header", mint(t, rsa1, hdrRS(map[string]any{"jku": other.srv.URL + "/keys"}), good), "jku is not accepted"},
		{"x5u header", mint(t, rsa1, hdrRS(map[string]any{"x5u": other.srv.URL + "/cert.pem"}), good), "x5u is not accepted"},
		{"jwk header", mint(t, rsa1, hdrRS(map[string]any{"jwk": pubJWKMember}), good), "jwk is not accepted"},
		{"x5c header", mint(t, rsa1, hdrRS(map[string]any{"x5c": []string{"MIIB"}}), good), "x5c is not accepted"},
		{"jku header null", mint(t, rsa1, hdrRS(map[string]any{"jku": nil}), good), "jku is not accepted"},
		{"unknown crit", mint(t, rsa1, hdrRS(map[string]any{"crit": []string{"exp"}, "exp": now}), good), "critical header"},
		{"b64 false", mint(t, rsa1, hdrRS(map[string]any{"b64": false, "crit": []string{"b64"}}), good), "not accepted"},
		{"nested JWT (cty)", mint(t, rsa1, hdrRS(map[string]any{"cty": "JWT"}), valid), "nested tokens"},
		{"nested jwt (cty lower case)", mint(t, rsa1, hdrRS(map[string]any{"cty": "jwt"}), valid), "nested tokens"},
		{"JWE compact", enc([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM","kid":"r1"}`)) + ".a.b.c.d", "encrypted tokens"},
		{"enc header in a JWS", mint(t, rsa1, hdrRS(map[string]any{"enc": "A256GCM"}), good), "encrypted tokens"},
		{"oversized token", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"pad": strings.Repeat("a", 17<<10)})), "larger than"},
		{"duplicate alg in header", enc([]byte(`{"alg":"RS256","kid":"r1","alg":"none"}`)) + "." + parts[1] + "." + parts[2], "malformed"},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], "malformed"},
		{"four segments", valid + ".x", "malformed"},
		{"two segments", parts[0] + "." + parts[1], "malformed"},
		{"stripped signature", parts[0] + "." + parts[1] + ".", "missing signature"},
		{"altered payload", parts[0] + "." + enc(mustJSON(ti.claims(map[string]any{"sub": "admin"}))) + "." + parts[2], "invalid signature"},
		{"another token's signature", parts[0] + "." + parts[1] + "." + otherSig, "invalid signature"},
		{"signed by the other issuer's key under a trusted kid", ti.token(t, "rsa3", "r1", "RS256", good), "invalid signature"},
		{"token from an unconfigured issuer", other.token(t, "rsa3", "r1", "RS256", other.claims(nil)), "issuer is not trusted"},
		{"wrong iss", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"iss": "https://evil.example.com"})), "issuer is not trusted"},
		{"iss not a string", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"iss": []string{ti.issuer}})), "iss claim is not a string"},
		{"no iss", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"iss": nil})), "no iss"},
		{"wrong aud", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"aud": "api://other"})), "audience is not accepted"},
		{"wrong aud array", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"aud": []string{"a", "b"}})), "audience is not accepted"},
		{"no aud", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"aud": nil})), "audience is not accepted"},
		{"no exp", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"exp": nil})), "no exp"},
		{"expired", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"exp": now - 120})), "expired"},
		{"exp as a string", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"exp": "9999999999"})), "NumericDate"},
		{"exp overflowing to infinity", ti.token(t, "rsa1", "r1", "RS256",
			`{"iss":"`+ti.issuer+`","sub":"u","aud":"api://authzd","exp":1e400}`), "NumericDate"},
		{"not yet valid", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"nbf": now + 300})), "not yet valid"},
		{"issued in the future", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"iat": now + 300})), "issued in the future"},
		{"no subject", ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"sub": nil})), "no subject"},
		{"duplicate claim", ti.token(t, "rsa1", "r1", "RS256",
			`{"iss":"`+ti.issuer+`","sub":"u","sub":"admin","aud":"api://authzd","exp":`+itoa(now+60)+`}`), "malformed"},
		{"payload not an object", ti.token(t, "rsa1", "r1", "RS256", `["iss"]`), "malformed"},
		{"unknown kid", ti.token(t, "rsa1", "nope", "RS256", good), "unknown key"},
		{"weak RSA key skipped from the key set", ti.token(t, "weak", "weak", "RS256", good), "unknown key"},
		{"no kid with several RSA keys", mint(t, rsa1, map[string]any{"alg": "RS256"}, good), "several keys"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { mustReject(t, p, c.tok, c.want) })
	}

	t.Run("exp within clock skew is accepted", func(t *testing.T) {
		mustResolve(t, p, ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"exp": now - 20})))
	})
	t.Run("nbf within clock skew is accepted", func(t *testing.T) {
		mustResolve(t, p, ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"nbf": now + 20})))
	})
	t.Run("PS256 with an RSA key that pins no alg", func(t *testing.T) {
		mustResolve(t, p, ti.token(t, "rsa2", "r2", "PS256", good))
	})
	t.Run("ES256", func(t *testing.T) {
		mustResolve(t, p, ti.token(t, "ec256", "e1", "ES256", good))
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// With a shared secret configured, HS256 verifies with that secret only:
// a token MACed with the issuer's public key is still refused.
func TestHMACIssuer(t *testing.T) {
	ti := newIssuer(t, "/hs", pubJWK{kid: "r1", key: "rsa1", alg: "RS256"})
	p := newProvider(t, ti.client(), IssuerConfig{
		Name: "hs", Issuer: ti.issuer, Audiences: []string{"api://authzd"},
		HMACSecret: testHMACSecret, Algorithms: []string{"HS256", "RS256"},
	})
	good := ti.claims(nil)
	pr := mustResolve(t, p, hs256(segs(map[string]any{"alg": "HS256", "typ": "JWT"}, good), []byte(testHMACSecret)))
	if pr.Provider != "hs" {
		t.Fatalf("provider %q", pr.Provider)
	}
	mustResolve(t, p, ti.token(t, "rsa1", "r1", "RS256", good))
	mustReject(t, p, hs256(segs(map[string]any{"alg": "HS256", "kid": "r1"}, good), pemOf(t, "rsa1")), "invalid signature")
	der, _ := x509.MarshalPKIXPublicKey(testKeys()["rsa1"].Public())
	mustReject(t, p, hs256(segs(map[string]any{"alg": "HS256", "kid": "r1"}, good), der), "invalid signature")
	mustReject(t, p, hs256(segs(map[string]any{"alg": "HS384"}, good), []byte(testHMACSecret)), "not allowed")
}

func TestCognitoTokenUse(t *testing.T) {
	ti := newIssuer(t, "/us-east-1_AbC123def", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	p := newProvider(t, ti.client(), IssuerConfig{
		Name: "cognito", Preset: PresetCognito, Issuer: ti.issuer, ClientIDs: []string{"client-a"},
	})
	now := time.Now().Unix()
	access := map[string]any{"iss": ti.issuer, "sub": "s", "token_use": "access", "client_id": "client-a",
		"scope": "openid", "exp": now + 60, "iat": now}
	id := map[string]any{"iss": ti.issuer, "sub": "s", "token_use": "id", "aud": "client-a", "exp": now + 60, "iat": now}
	mustResolve(t, p, ti.token(t, "rsa1", "k1", "RS256", access))
	mustReject(t, p, ti.token(t, "rsa1", "k1", "RS256", id), "token_use is not accepted")

	wrongClient := map[string]any{}
	for k, v := range access {
		wrongClient[k] = v
	}
	wrongClient["client_id"] = "client-b"
	mustReject(t, p, ti.token(t, "rsa1", "k1", "RS256", wrongClient), "client is not accepted")
	delete(wrongClient, "client_id")
	wrongClient["aud"] = "client-a" // an access token names its client in client_id only
	mustReject(t, p, ti.token(t, "rsa1", "k1", "RS256", wrongClient), "names no client")
	delete(access, "token_use")
	mustReject(t, p, ti.token(t, "rsa1", "k1", "RS256", access), "no token_use")
}

func TestRequiredClaims(t *testing.T) {
	ti := newIssuer(t, "", pubJWK{kid: "k1", key: "ec256"})
	p := newProvider(t, ti.client(), IssuerConfig{
		Name: "req", Issuer: ti.issuer, Audiences: []string{"api://authzd"}, RequiredClaims: []string{"email", "tid"},
	})
	mustResolve(t, p, ti.token(t, "ec256", "k1", "ES256", ti.claims(map[string]any{"email": "a@b", "tid": "t"})))
	mustReject(t, p, ti.token(t, "ec256", "k1", "ES256", ti.claims(map[string]any{"email": "a@b"})), `required claim "tid"`)
	// One key and no kid: the only key that fits is used.
	hdr := map[string]any{"alg": "ES256"}
	mustResolve(t, p, mint(t, testKeys()["ec256"], hdr, ti.claims(map[string]any{"email": "a@b", "tid": "t"})))
}

// Tokens that are not JWTs are left to other providers.
func TestNotMine(t *testing.T) {
	_, _, p := attackSetup(t)
	for _, tok := range []string{
		"", "opaque-token-abc123", "azd_live_0123456789abcdef", "foo.bar.baz", "a.b", ".", "...",
		"eyJ", "bm90IGpzb24.e30.sig", strings.Repeat("x", 20000),
	} {
		_, err := p.Resolve(context.Background(), bearer(tok))
		if !errors.Is(err, identity.ErrNotMine) {
			t.Errorf("Resolve(%.20q) = %v, want ErrNotMine", tok, err)
		}
	}
	_, err := p.Resolve(context.Background(), identity.Credential{Kind: identity.KindAPIKey, Token: "eyJhbGciOiJSUzI1NiJ9.e30.x"})
	if !errors.Is(err, identity.ErrNotMine) {
		t.Errorf("api key kind: %v, want ErrNotMine", err)
	}
	if p.Accepts(identity.KindAPIKey) || !p.Accepts(identity.KindBearer) {
		t.Error("Accepts: want bearer only")
	}
}

// Explicit typing: an issuer that accepts only access tokens (typ at+jwt)
// refuses its id tokens (typ JWT) and untyped tokens.
func TestExplicitTyping(t *testing.T) {
	ti := newIssuer(t, "/typ", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	p := newProvider(t, ti.client(), IssuerConfig{
		Name: "typed", Issuer: ti.issuer, Audiences: []string{"api://authzd"}, Types: []string{"at+jwt"},
	})
	rsa1 := testKeys()["rsa1"]
	good := ti.claims(nil)
	mustResolve(t, p, mint(t, rsa1, map[string]any{"alg": "RS256", "kid": "k1", "typ": "at+jwt"}, good))
	mustResolve(t, p, mint(t, rsa1, map[string]any{"alg": "RS256", "kid": "k1", "typ": "application/AT+JWT"}, good))
	mustReject(t, p, mint(t, rsa1, map[string]any{"alg": "RS256", "kid": "k1", "typ": "JWT"}, good), "token type is not accepted")
	mustReject(t, p, mint(t, rsa1, map[string]any{"alg": "RS256", "kid": "k1"}, good), "token type is not accepted")
	mustReject(t, p, mint(t, rsa1, map[string]any{"alg": "RS256", "kid": "k1", "typ": 1}, good), "malformed")
}

// Concurrent verifications share pooled parse buffers; each must see only
// its own token.
func TestConcurrentResolveKeepsTokensApart(t *testing.T) {
	ti, _, p := attackSetup(t)
	type tc struct {
		tok, sub string // sub "" means the token must be refused
	}
	var cases []tc
	for i := range 6 {
		sub := "user-" + itoa(int64(i))
		cases = append(cases,
			tc{ti.token(t, "rsa1", "r1", "RS256", ti.claims(map[string]any{"sub": sub, "pad": strings.Repeat("x", i*300)})), sub},
			tc{ti.token(t, "ec256", "e1", "ES256", ti.claims(map[string]any{"sub": sub + "-ec"})), sub + "-ec"},
			tc{ti.token(t, "rsa2", "r1", "RS256", ti.claims(map[string]any{"sub": sub})), ""},
		)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				c := cases[(g*7+i)%len(cases)]
				pr, err := p.Resolve(context.Background(), bearer(c.tok))
				switch {
				case c.sub == "" && err == nil:
					t.Errorf("forged token accepted as %q", pr.Subject)
				case c.sub != "" && err != nil:
					t.Errorf("valid token for %q refused: %v", c.sub, err)
				case c.sub != "" && pr.Subject != c.sub:
					t.Errorf("token for %q resolved to %q", c.sub, pr.Subject)
				}
			}
		}()
	}
	wg.Wait()
}
