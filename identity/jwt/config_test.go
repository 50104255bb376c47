package jwt

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPresetDefaults(t *testing.T) {
	cfg := Config{Issuers: []IssuerConfig{
		{Name: "c", Preset: PresetCognito, Cognito: CognitoConfig{Region: "eu-west-1", UserPoolID: "eu-west-1_AbC123"}, ClientIDs: []string{"x"}},
		{Name: "o", Preset: PresetOkta, Issuer: "https://dev-1.okta.com/oauth2/default", Audiences: []string{"api://default"}},
		{Name: "a", Preset: PresetAuth0, Issuer: "https://t.auth0.com/", Audiences: []string{"api"},
			Claims: ClaimMapping{Groups: []string{"https://example.com/roles"}}},
		{Name: "g", Issuer: "https://idp.example.com", Audiences: []string{"api"}},
		{Name: "h", Issuer: "hs", Audiences: []string{"api"}, HMACSecret: strings.Repeat("s", 32)},
		{Name: "k", Preset: PresetKeycloak, Issuer: "https://sso.example.com/realms/acme", ClientIDs: []string{"app"}},
	}}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	c := cfg.Issuers[0]
	if c.Issuer != "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123" ||
		c.JWKSURI != c.Issuer+"/.well-known/jwks.json" {
		t.Errorf("cognito issuer %q jwks %q", c.Issuer, c.JWKSURI)
	}
	if !slices.Equal(c.Cognito.TokenUses, []string{"access"}) || !slices.Equal(c.Algorithms, []string{"RS256"}) ||
		!slices.Equal(c.Claims.Groups, []string{"cognito:groups"}) {
		t.Errorf("cognito defaults: %+v", c)
	}
	if o := cfg.Issuers[1]; !slices.Equal(o.Claims.Scopes, []string{"scp"}) || o.ClockSkew != 60*time.Second {
		t.Errorf("okta defaults: %+v", o)
	}
	if a := cfg.Issuers[2]; !slices.Equal(a.Claims.Groups, []string{"https://example.com/roles"}) ||
		!slices.Contains(a.Claims.Copy, "permissions") {
		t.Errorf("auth0: explicit groups must win over the preset, permissions copied: %+v", a.Claims)
	}
	if k := cfg.Issuers[5]; !slices.Equal(k.Claims.Groups, []string{"/realm_access/roles", "groups"}) ||
		!slices.Equal(k.Claims.Scopes, []string{"scope"}) || !slices.Equal(k.Algorithms, DefaultAlgorithms) {
		t.Errorf("keycloak defaults: %+v", k)
	}
	if g := cfg.Issuers[3]; !slices.Equal(g.Algorithms, DefaultAlgorithms) {
		t.Errorf("default algorithms %v", g.Algorithms)
	}
	if h := cfg.Issuers[4]; !slices.Equal(h.Algorithms, []string{"HS256"}) {
		t.Errorf("hmac issuer algorithms %v", h.Algorithms)
	}
	if cfg.MaxTokenBytes != 16<<10 || cfg.Name != "jwt" {
		t.Errorf("provider defaults %+v", cfg)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	ok := IssuerConfig{Name: "ok", Issuer: "https://idp.example.com", Audiences: []string{"api"}}
	tests := []struct {
		name string
		ic   IssuerConfig
		want string
	}{
		{"no name", IssuerConfig{Issuer: "https://x.example.com", Audiences: []string{"a"}}, "issuers[1].name: required"},
		{"duplicate name", IssuerConfig{Name: "ok", Issuer: "https://x.example.com", Audiences: []string{"a"}}, "issuers[1].name"},
		{"duplicate issuer", IssuerConfig{Name: "b", Issuer: "https://idp.example.com", Audiences: []string{"a"}}, "issuers[1].issuer"},
		{"no issuer", IssuerConfig{Name: "b", Audiences: []string{"a"}}, "issuers[1].issuer: required"},
		{"no audience", IssuerConfig{Name: "b", Issuer: "https://x.example.com"}, "issuers[1].audiences"},
		{"unknown preset", IssuerConfig{Name: "b", Preset: "ping", Issuer: "https://x.example.com"}, "issuers[1].preset"},
		{"bad group pointer", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			Claims: ClaimMapping{Groups: []string{"groups", "/realm_access/~2roles"}}}, "issuers[1].claims.groups[1]: pointer \"/realm_access/~2roles\""},
		{"bad scope pointer", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			Claims: ClaimMapping{Scopes: []string{"/scope/"}}}, "issuers[1].claims.scopes[0]: pointer \"/scope/\" has an empty segment"},
		{"bad subject pointer", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			Claims: ClaimMapping{Subject: "/"}}, "issuers[1].claims.subject: pointer \"/\" has an empty segment"},
		{"bad copy alias pointer", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			Claims: ClaimMapping{Copy: []string{"email", "roles=/a//b"}}}, "issuers[1].claims.copy[1]"},
		{"copy name collision", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			Claims: ClaimMapping{Copy: []string{"/realm_access/roles", "/resource_access/app/roles"}}}, "issuers[1].claims.copy[1]: \"/resource_access/app/roles\" would be copied under the name \"roles\""},
		{"HS256 without secret", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			Algorithms: []string{"RS256", "HS256"}}, "issuers[1].algorithms: HS256 needs hmac_secret"},
		{"short secret", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			HMACSecret: "short"}, "issuers[1].hmac_secret"},
		{"secret without HS alg", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			HMACSecret: strings.Repeat("s", 32), Algorithms: []string{"RS256"}}, "issuers[1].hmac_secret"},
		{"alg none", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			Algorithms: []string{"none"}}, "issuers[1].algorithms: unsupported algorithm \"none\""},
		{"plain http", IssuerConfig{Name: "b", Issuer: "http://idp.example.com", Audiences: []string{"a"}}, "issuers[1].jwks_uri"},
		{"plain http jwks", IssuerConfig{Name: "b", Issuer: "https://idp.example.com/x", Audiences: []string{"a"},
			JWKSURI: "http://idp.example.com/keys"}, "issuers[1].jwks_uri"},
		{"issuer not a URL", IssuerConfig{Name: "b", Issuer: "acme.com", Audiences: []string{"a"}}, "issuers[1].jwks_uri: required"},
		{"both key sources", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			JWKSURI: "https://x.example.com/k", JWKSFile: "k.json"}, "issuers[1].jwks_file"},
		{"cognito without pool", IssuerConfig{Name: "b", Preset: PresetCognito, ClientIDs: []string{"c"}}, "issuers[1].issuer: required (or set cognito.region"},
		{"cognito without client ids", IssuerConfig{Name: "b", Preset: PresetCognito,
			Cognito: CognitoConfig{Region: "us-east-1", UserPoolID: "us-east-1_A1"}}, "issuers[1].client_ids"},
		{"cognito bad token use", IssuerConfig{Name: "b", Preset: PresetCognito, ClientIDs: []string{"c"},
			Cognito: CognitoConfig{Region: "us-east-1", UserPoolID: "us-east-1_A1", TokenUses: []string{"refresh"}}}, "issuers[1].cognito.token_uses"},
		{"cognito pool in another region", IssuerConfig{Name: "b", Preset: PresetCognito, ClientIDs: []string{"c"},
			Cognito: CognitoConfig{Region: "us-east-1", UserPoolID: "eu-west-1_A1"}}, "issuers[1].cognito.user_pool_id"},
		{"huge skew", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			ClockSkew: time.Hour}, "issuers[1].clock_skew"},
		{"refresh faster than min", IssuerConfig{Name: "b", Issuer: "https://x.example.com", Audiences: []string{"a"},
			RefreshInterval: time.Second, MinRefreshInterval: time.Minute}, "issuers[1].refresh_interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Config{Issuers: []IssuerConfig{ok, tc.ic}}.WithDefaults().Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v; want %q", err, tc.want)
			}
		})
	}
	if err := (Config{}).WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "issuers: at least one") {
		t.Fatalf("empty config: %v", err)
	}
	local := IssuerConfig{Name: "dev", Issuer: "http://127.0.0.1:8080/realms/dev", Audiences: []string{"a"}}
	if err := (Config{Issuers: []IssuerConfig{local}}).WithDefaults().Validate(); err != nil {
		t.Fatalf("http on loopback should be allowed: %v", err)
	}
}
