package service_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/identity/jwt"
	"github.com/authzd/authzd/service"
)

// oidcIssuer is a real OIDC issuer on loopback: discovery and a JWKS with
// one RSA key, and tokens signed with it.
type oidcIssuer struct {
	srv      *httptest.Server
	issuer   string
	key      *rsa.PrivateKey
	jwksHits atomic.Int64
}

func newOIDCIssuer(t testing.TB) *oidcIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	o := &oidcIssuer{key: key}
	pub, err := jwk.Import(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub.Set(jwk.KeyIDKey, "k1")
	pub.Set(jwk.AlgorithmKey, "RS256")
	pub.Set(jwk.KeyUsageKey, "sig")
	jwks, _ := json.Marshal(map[string]any{"keys": []any{pub}})
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth2/default/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": o.issuer, "jwks_uri": o.srv.URL + "/oauth2/default/v1/keys"})
	})
	mux.HandleFunc("/oauth2/default/v1/keys", func(w http.ResponseWriter, r *http.Request) {
		o.jwksHits.Add(1)
		w.Write(jwks)
	})
	o.srv = httptest.NewServer(mux)
	o.issuer = o.srv.URL + "/oauth2/default"
	t.Cleanup(o.srv.Close)
	return o
}

// token mints an Okta-shaped access token.
func (o *oidcIssuer) token(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	now := time.Now().Unix()
	c := map[string]any{
		"ver": 1, "jti": "AT.x", "iss": o.issuer, "aud": "api://default", "iat": now, "exp": now + 600,
		"cid": "0oa-client", "uid": "00u-user", "scp": []string{"openid"}, "sub": "alice@example.com",
	}
	for k, v := range claims {
		c[k] = v
	}
	hb, _ := json.Marshal(map[string]any{"kid": kid, "alg": "RS256"})
	cb, _ := json.Marshal(c)
	b64 := base64.RawURLEncoding
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	sig, err := jwsbb.Sign(o.key, "RS256", []byte(input), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

func bearerCreds(tok string) *authzdv1.Credentials {
	return &authzdv1.Credentials{Kind: &authzdv1.Credentials_BearerToken{BearerToken: tok}}
}

func TestCheckWithJWT(t *testing.T) {
	idp := newOIDCIssuer(t)
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	cfg.Identity.JWT = &jwt.Config{Issuers: []jwt.IssuerConfig{{
		Name: "okta", Preset: jwt.PresetOkta, Issuer: idp.issuer,
		Audiences: []string{"api://default"}, ClientIDs: []string{"0oa-client"},
		// Every unknown kid may refresh, so the flood test below would see
		// one fetch per verification if the negative cache did not work.
		MinRefreshInterval: time.Nanosecond, RefreshInterval: time.Hour,
	}}}
	ts := startServer(t, dir, cfg)
	ctx := context.Background()

	check := func(tok, action string) *authzdv1.CheckResponse {
		t.Helper()
		resp, err := ts.client.Check(ctx, &authzdv1.CheckRequest{Credentials: bearerCreds(tok), Action: action, Resource: doc("1")})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return resp
	}

	admin := idp.token(t, "k1", map[string]any{"groups": []string{"Everyone", "admin"}})
	resp := check(admin, "documents:delete")
	if !resp.Allowed {
		t.Fatalf("admin group: denied %v", resp.Reasons)
	}
	p := resp.Principal
	if p.GetProvider() != "okta" || p.GetType() != "jwt" || p.GetIssuer() != idp.issuer ||
		p.GetSubject() != "alice@example.com" || p.GetId() != "okta:alice@example.com" {
		t.Fatalf("principal = %v", p)
	}
	if strings.Join(p.GetGroups(), ",") != "Everyone,admin" || strings.Join(p.GetScopes(), ",") != "openid" {
		t.Fatalf("groups %v scopes %v", p.GetGroups(), p.GetScopes())
	}
	if got := p.GetClaims().GetFields()["cid"].GetStringValue(); got != "0oa-client" {
		t.Fatalf("claims.cid = %q", got)
	}

	reader := idp.token(t, "k1", map[string]any{"scp": []string{"openid", "read"}, "groups": []string{"Everyone"}})
	if r := check(reader, "documents:read"); !r.Allowed {
		t.Fatalf("read scope: denied %v", r.Reasons)
	}
	if r := check(reader, "documents:delete"); r.Allowed || r.Reasons[0] != "no role or ownership grants this action" {
		t.Fatalf("read scope deleting: allowed=%v %v", r.Allowed, r.Reasons)
	}

	expired := idp.token(t, "k1", map[string]any{"groups": []string{"admin"}, "exp": time.Now().Add(-time.Hour).Unix()})
	if r := check(expired, "documents:read"); r.Allowed || !strings.Contains(r.Reasons[0], "token expired") {
		t.Fatalf("expired: allowed=%v %v", r.Allowed, r.Reasons)
	}
	otherClient := idp.token(t, "k1", map[string]any{"groups": []string{"admin"}, "cid": "0oa-other"})
	if r := check(otherClient, "documents:read"); r.Allowed || !strings.Contains(r.Reasons[0], "client is not accepted") {
		t.Fatalf("other client: allowed=%v %v", r.Allowed, r.Reasons)
	}

	// A flood of one bad token costs one verification: an unknown kid
	// triggers a key-set fetch on every verification, and the negative
	// identity cache lets only the first one through.
	bad := idp.token(t, "unknown-kid", map[string]any{"groups": []string{"admin"}})
	before := idp.jwksHits.Load()
	for range 20 {
		if r := check(bad, "documents:read"); r.Allowed || !strings.Contains(r.Reasons[0], "unknown key") {
			t.Fatalf("unknown kid: allowed=%v %v", r.Allowed, r.Reasons)
		}
	}
	if got := idp.jwksHits.Load() - before; got != 1 {
		t.Fatalf("20 identical bad tokens caused %d key-set fetches, want 1", got)
	}
}

func TestJWTConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	cfg.Identity.JWT = &jwt.Config{Issuers: []jwt.IssuerConfig{
		{Name: "a", Issuer: "https://idp.example.com"},
		{Name: "b", Issuer: "https://idp2.example.com", Audiences: []string{"x"}, Algorithms: []string{"HS256"}},
	}}
	err := cfg.WithDefaults().Validate()
	if err == nil {
		t.Fatal("invalid jwt config accepted")
	}
	// Every problem is reported, each with its full key.
	for _, want := range []string{"identity.jwt.issuers[0].audiences:", "identity.jwt.issuers[1].algorithms:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v; want it to name %s", err, want)
		}
	}
}

func TestParseJWTConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AUTHZD_TEST_HS", "0123456789abcdef0123456789abcdef")
	cfg, err := service.ParseConfig([]byte(`
policy:
  paths: [policies]
identity:
  jwt:
    issuers:
      - name: cognito
        preset: cognito
        cognito: {region: us-east-1, user_pool_id: us-east-1_AbC123, token_uses: [access, id]}
        client_ids: [abc]
        clock_skew: 30s
      - name: local
        issuer: local-issuer
        audiences: api
        jwks_file: keys/jwks.json
        refresh_interval: 1m
        claims:
          groups: roles
          scopes: [scope, permissions]
          copy: []
      - name: shared
        issuer: hs-issuer
        audiences: [api]
        hmac_secret: ${AUTHZD_TEST_HS}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	iss := cfg.Identity.JWT.Issuers
	if iss[0].Cognito.UserPoolID != "us-east-1_AbC123" || iss[0].ClockSkew != 30*time.Second {
		t.Errorf("cognito issuer = %+v", iss[0])
	}
	if want := filepath.Join(dir, "keys", "jwks.json"); iss[1].JWKSFile != want || iss[1].RefreshInterval != time.Minute {
		t.Errorf("jwks_file = %q (want %q), refresh %s", iss[1].JWKSFile, want, iss[1].RefreshInterval)
	}
	if c := iss[1].Claims; len(iss[1].Audiences) != 1 || iss[1].Audiences[0] != "api" ||
		len(c.Groups) != 1 || c.Groups[0] != "roles" || len(c.Scopes) != 2 || c.Copy == nil || len(c.Copy) != 0 {
		t.Errorf("scalar and list forms: audiences %q claims %+v", iss[1].Audiences, c)
	}
	if iss[2].HMACSecret != "0123456789abcdef0123456789abcdef" {
		t.Error("hmac_secret not expanded from the environment")
	}
}

// The shipped JWT examples load and validate.
func TestJWTExamplesLoad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "jwt", "*.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		cfg, err := service.LoadConfig(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if cfg.Identity.JWT == nil || len(cfg.Identity.JWT.Issuers) == 0 {
			t.Errorf("%s: no jwt issuers", f)
		}
	}
}

// BenchmarkCheckJWT is the Check flow with a bearer JWT (RS256, Okta
// shaped), the quickstart RBAC policy and the decision cache disabled: the
// identity cache is warm after the first call, as it is for a caller that
// reuses its token.
//
//	go test -run '^$' -bench 'BenchmarkCheckJWT' -benchmem ./service
func BenchmarkCheckJWT(b *testing.B) {
	idp := newOIDCIssuer(b)
	dir := b.TempDir()
	cfg := baseConfig(b, dir)
	cfg.Cache.DecisionTTL = -1
	cfg.Identity.JWT = &jwt.Config{Issuers: []jwt.IssuerConfig{{
		Name: "okta", Preset: jwt.PresetOkta, Issuer: idp.issuer,
		Audiences: []string{"api://default"}, ClientIDs: []string{"0oa-client"},
	}}}
	srv, err := service.New(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	a := srv.Authorizer()
	tok := idp.token(b, "k1", map[string]any{"scp": []string{"openid", "read"}, "groups": []string{"Everyone"}})
	req := &authzdv1.CheckRequest{Credentials: bearerCreds(tok), Action: "documents:read", Resource: doc("42")}
	resp, err := a.Check(context.Background(), req)
	if err != nil || !resp.Allowed {
		b.Fatalf("%v %v", resp, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := a.Check(context.Background(), req)
			if err != nil || !resp.Allowed || resp.Cached {
				b.Errorf("%v %v", resp, err)
				return
			}
		}
	})
}
