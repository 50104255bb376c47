package jwt

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/authzd/authzd/identity"
)

// Each vendor case mints a token shaped like that vendor's real tokens
// (claim names, types, header members) and checks the principal.
func TestVendorTokens(t *testing.T) {
	now := time.Now().Unix()
	type tc struct {
		name   string
		path   string // issuer path on the test server
		keys   []pubJWK
		cfg    func(ti *testIssuer) IssuerConfig
		hdr    map[string]any
		signer string
		claims func(ti *testIssuer) map[string]any
		want   func(ti *testIssuer) *identity.Principal
	}
	cases := []tc{
		{
			name: "cognito access token",
			path: "/us-east-1_AbC123def",
			keys: []pubJWK{{kid: "cognito-kid-1", key: "rsa1", alg: "RS256"}},
			cfg: func(ti *testIssuer) IssuerConfig {
				return IssuerConfig{Name: "cognito", Preset: PresetCognito, Issuer: ti.issuer,
					ClientIDs: []string{"7c0b2a3d4e5f6g7h8i9j0k1l2m"}}
			},
			hdr:    map[string]any{"kid": "cognito-kid-1", "alg": "RS256"},
			signer: "rsa1",
			claims: func(ti *testIssuer) map[string]any {
				return map[string]any{
					"sub":            "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
					"cognito:groups": []string{"admins", "readers"},
					"iss":            ti.issuer,
					"version":        2,
					"client_id":      "7c0b2a3d4e5f6g7h8i9j0k1l2m",
					"origin_jti":     "0f4e3b1c-0000-4000-8000-000000000001",
					"event_id":       "5b1b0c38-0000-4000-8000-000000000002",
					"token_use":      "access",
					"scope":          "aws.cognito.signin.user.admin openid documents/read",
					"auth_time":      now,
					"exp":            now + 3600,
					"iat":            now,
					"jti":            "a1b2c3d4-0000-4000-8000-000000000003",
					"username":       "alice",
				}
			},
			want: func(ti *testIssuer) *identity.Principal {
				return &identity.Principal{
					ID: "cognito:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", Provider: "cognito", Issuer: ti.issuer,
					Subject: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", Type: "jwt",
					Groups: []string{"admins", "readers"},
					Scopes: []string{"aws.cognito.signin.user.admin", "openid", "documents/read"},
					Claims: map[string]any{"token_use": "access", "client_id": "7c0b2a3d4e5f6g7h8i9j0k1l2m", "username": "alice"},
				}
			},
		},
		{
			name: "cognito id token",
			path: "/eu-west-1_Xyz789",
			keys: []pubJWK{{kid: "cognito-kid-1", key: "rsa1", alg: "RS256"}, {kid: "cognito-kid-2", key: "rsa2", alg: "RS256"}},
			cfg: func(ti *testIssuer) IssuerConfig {
				return IssuerConfig{Name: "cognito-id", Preset: PresetCognito, Issuer: ti.issuer,
					ClientIDs: []string{"3n4b5urk1ft4fl3mg5e62d9ado"},
					Cognito:   CognitoConfig{TokenUses: []string{"access", "id"}}}
			},
			hdr:    map[string]any{"kid": "cognito-kid-2", "alg": "RS256"},
			signer: "rsa2",
			claims: func(ti *testIssuer) map[string]any {
				return map[string]any{
					"sub":              "11111111-2222-3333-4444-555555555555",
					"cognito:groups":   []string{"editors"},
					"email_verified":   true,
					"iss":              ti.issuer,
					"cognito:username": "bob",
					"origin_jti":       "x",
					"aud":              "3n4b5urk1ft4fl3mg5e62d9ado",
					"event_id":         "y",
					"token_use":        "id",
					"auth_time":        now,
					"exp":              now + 3600,
					"iat":              now,
					"jti":              "z",
					"email":            "bob@example.com",
				}
			},
			want: func(ti *testIssuer) *identity.Principal {
				return &identity.Principal{
					ID: "cognito-id:11111111-2222-3333-4444-555555555555", Provider: "cognito-id", Issuer: ti.issuer,
					Subject: "11111111-2222-3333-4444-555555555555", Type: "jwt",
					Groups: []string{"editors"},
					Claims: map[string]any{"token_use": "id", "cognito:username": "bob"},
				}
			},
		},
		{
			name: "auth0 access token with audience array, permissions and namespaced claims",
			path: "/",
			keys: []pubJWK{{kid: "NjVBRjY5MDlCMUIwNzU4RTA2QzZFMDQ4QzQ2MDAyQjVDNjk1RTM2Qg", key: "rsa1", alg: "RS256"}},
			cfg: func(ti *testIssuer) IssuerConfig {
				return IssuerConfig{Name: "auth0", Preset: PresetAuth0, Issuer: ti.issuer,
					Audiences: []string{"https://api.example.com"},
					Claims: ClaimMapping{Groups: []string{"https://example.com/roles"},
						Copy: []string{"permissions", "https://example.com/tenant"}}}
			},
			hdr:    map[string]any{"alg": "RS256", "typ": "JWT", "kid": "NjVBRjY5MDlCMUIwNzU4RTA2QzZFMDQ4QzQ2MDAyQjVDNjk1RTM2Qg"},
			signer: "rsa1",
			claims: func(ti *testIssuer) map[string]any {
				return map[string]any{
					"https://example.com/roles":  []string{"admin"},
					"https://example.com/tenant": "acme",
					"iss":                        ti.issuer,
					"sub":                        "auth0|5f7c8ec7c33c6c004bbafe82",
					"aud":                        []string{"https://api.example.com", "https://tenant.us.auth0.com/userinfo"},
					"iat":                        now,
					"exp":                        now + 86400,
					"azp":                        "8Vqlm8HDQb7Tt2o7jJ4qzRM1zVTBqTgS",
					"scope":                      "openid profile read:documents",
					"permissions":                []string{"read:documents", "write:documents"},
				}
			},
			want: func(ti *testIssuer) *identity.Principal {
				return &identity.Principal{
					ID: "auth0:auth0|5f7c8ec7c33c6c004bbafe82", Provider: "auth0", Issuer: ti.issuer,
					Subject: "auth0|5f7c8ec7c33c6c004bbafe82", Type: "jwt",
					Groups: []string{"admin"},
					Scopes: []string{"openid", "profile", "read:documents"},
					Claims: map[string]any{
						"permissions":                []any{"read:documents", "write:documents"},
						"https://example.com/tenant": "acme",
					},
				}
			},
		},
		{
			name: "okta access token with scp array, groups and cid",
			path: "/oauth2/default",
			keys: []pubJWK{{kid: "okta-kid-rsa", key: "rsa1", alg: "RS256"}},
			cfg: func(ti *testIssuer) IssuerConfig {
				return IssuerConfig{Name: "okta", Preset: PresetOkta, Issuer: ti.issuer,
					Audiences: []string{"api://default"}, ClientIDs: []string{"0oa1b2c3d4E5F6g7H8i9"}}
			},
			hdr:    map[string]any{"kid": "okta-kid-rsa", "alg": "RS256"},
			signer: "rsa1",
			claims: func(ti *testIssuer) map[string]any {
				return map[string]any{
					"ver":       1,
					"jti":       "AT.Jx1t0a8bq3bYgFfbPzOeUt1iA2rQzeV4PXU7z7nR2mY",
					"iss":       ti.issuer,
					"aud":       "api://default",
					"iat":       now,
					"exp":       now + 3600,
					"cid":       "0oa1b2c3d4E5F6g7H8i9",
					"uid":       "00u1a2b3c4D5E6f7G8h9",
					"scp":       []string{"openid", "email", "documents.read"},
					"auth_time": now,
					"sub":       "carol@example.com",
					"groups":    []string{"Everyone", "Admins"},
				}
			},
			want: func(ti *testIssuer) *identity.Principal {
				return &identity.Principal{
					ID: "okta:carol@example.com", Provider: "okta", Issuer: ti.issuer,
					Subject: "carol@example.com", Type: "jwt",
					Groups: []string{"Everyone", "Admins"},
					Scopes: []string{"openid", "email", "documents.read"},
					Claims: map[string]any{"cid": "0oa1b2c3d4E5F6g7H8i9", "uid": "00u1a2b3c4D5E6f7G8h9"},
				}
			},
		},
		{
			name: "onelogin access token",
			path: "/oidc/2",
			keys: []pubJWK{{kid: "JRcO4nxs5jgc8YdN7I2hLO4V_ql1bdoiMXmcYgHm4Hs", key: "rsa2", alg: "RS256"}},
			cfg: func(ti *testIssuer) IssuerConfig {
				return IssuerConfig{Name: "onelogin", Preset: PresetOneLogin, Issuer: ti.issuer,
					ClientIDs: []string{"b6b1e9d0-5a1e-0139-2f0c-0a1b2c3d4e5f12345"}}
			},
			hdr:    map[string]any{"alg": "RS256", "kid": "JRcO4nxs5jgc8YdN7I2hLO4V_ql1bdoiMXmcYgHm4Hs", "typ": "JWT"},
			signer: "rsa2",
			claims: func(ti *testIssuer) map[string]any {
				return map[string]any{
					"jti":    "Dl9nT0d2bFlGd0xtUjJqV0pOUHFt",
					"sub":    "12345678",
					"iss":    ti.issuer,
					"iat":    now,
					"exp":    now + 600,
					"scope":  "openid profile groups",
					"aud":    "b6b1e9d0-5a1e-0139-2f0c-0a1b2c3d4e5f12345",
					"sid":    "a8d4c2b1-0000-4000-8000-00000000000a",
					"groups": []string{"Engineering"},
				}
			},
			want: func(ti *testIssuer) *identity.Principal {
				return &identity.Principal{
					ID: "onelogin:12345678", Provider: "onelogin", Issuer: ti.issuer,
					Subject: "12345678", Type: "jwt",
					Groups: []string{"Engineering"},
					Scopes: []string{"openid", "profile", "groups"},
					Claims: map[string]any{"sid": "a8d4c2b1-0000-4000-8000-00000000000a"},
				}
			},
		},
		{
			// FusionAuth's default issuer is a bare host name, so the key
			// set location is configured explicitly.
			name: "fusionauth access token with roles and applicationId",
			path: "",
			keys: []pubJWK{{kid: "1a2b3c4d5e", key: "ec256", alg: "ES256"}},
			cfg: func(ti *testIssuer) IssuerConfig {
				return IssuerConfig{Name: "fusionauth", Preset: PresetFusionAuth, Issuer: "acme.com",
					JWKSURI:   ti.srv.URL + "/.well-known/jwks.json",
					ClientIDs: []string{"85a03867-dccf-4882-adde-1a79aeec50df"}}
			},
			hdr:    map[string]any{"alg": "ES256", "typ": "JWT", "kid": "1a2b3c4d5e"},
			signer: "ec256",
			claims: func(ti *testIssuer) map[string]any {
				return map[string]any{
					"aud":                "85a03867-dccf-4882-adde-1a79aeec50df",
					"exp":                now + 3600,
					"iat":                now,
					"iss":                "acme.com",
					"sub":                "2fa75f07-2f7c-4b2c-9c76-b9e1ff8e9b1c",
					"jti":                "b4c2c6ba-0000-4000-8000-00000000000b",
					"authenticationType": "PASSWORD",
					"email":              "dave@example.com",
					"email_verified":     true,
					"applicationId":      "85a03867-dccf-4882-adde-1a79aeec50df",
					"scope":              "offline_access",
					"roles":              []string{"admin", "user"},
					"sid":                "c1d2",
					"auth_time":          now,
					"tid":                "30663132-6464-6665-3032-326466613934",
				}
			},
			want: func(ti *testIssuer) *identity.Principal {
				return &identity.Principal{
					ID: "fusionauth:2fa75f07-2f7c-4b2c-9c76-b9e1ff8e9b1c", Provider: "fusionauth", Issuer: "acme.com",
					Subject: "2fa75f07-2f7c-4b2c-9c76-b9e1ff8e9b1c", Type: "jwt",
					Groups: []string{"admin", "user"},
					Scopes: []string{"offline_access"},
					Claims: map[string]any{
						"applicationId":      "85a03867-dccf-4882-adde-1a79aeec50df",
						"tid":                "30663132-6464-6665-3032-326466613934",
						"authenticationType": "PASSWORD",
					},
				}
			},
		},
		{
			// The preset's own mapping: realm roles plus a groups claim
			// (added by a group membership mapper), scope, azp.
			name: "keycloak access token with realm roles and groups",
			path: "/realms/acme",
			keys: []pubJWK{{kid: "q1mMJ6TkEwlD0r5pBqZ0V7_7NE8hN9aOiWc8yVMHeJk", key: "rsa1", alg: "RS256"}},
			cfg: func(ti *testIssuer) IssuerConfig {
				return IssuerConfig{Name: "keycloak", Preset: PresetKeycloak, Issuer: ti.issuer,
					ClientIDs: []string{"orders-api"}}
			},
			hdr:    map[string]any{"alg": "RS256", "typ": "JWT", "kid": "q1mMJ6TkEwlD0r5pBqZ0V7_7NE8hN9aOiWc8yVMHeJk"},
			signer: "rsa1",
			claims: func(ti *testIssuer) map[string]any { return keycloakClaims(ti, now) },
			want: func(ti *testIssuer) *identity.Principal {
				return &identity.Principal{
					ID: "keycloak:f3b1c0de-7a6e-4c3b-9d2f-0123456789ab", Provider: "keycloak", Issuer: ti.issuer,
					Subject: "f3b1c0de-7a6e-4c3b-9d2f-0123456789ab", Type: "jwt",
					Groups: []string{"default-roles-acme", "offline_access", "uma_authorization", "/staff", "/staff/ops"},
					Scopes: []string{"openid", "email", "profile"},
					Claims: map[string]any{"azp": "orders-api", "preferred_username": "frank"},
				}
			},
		},
		{
			// Client roles live under resource_access.<client>.roles.
			name: "keycloak access token with client roles by pointer",
			path: "/realms/acme",
			keys: []pubJWK{{kid: "q1mMJ6TkEwlD0r5pBqZ0V7_7NE8hN9aOiWc8yVMHeJk", key: "rsa1", alg: "RS256"}},
			cfg: func(ti *testIssuer) IssuerConfig {
				return IssuerConfig{Name: "keycloak", Preset: PresetKeycloak, Issuer: ti.issuer,
					Audiences: []string{"account"}, ClientIDs: []string{"orders-api"},
					Claims: ClaimMapping{Groups: []string{"/resource_access/orders-api/roles"},
						Copy: []string{"preferred_username", "realm_roles=/realm_access/roles", "/resource_access/account"}}}
			},
			hdr:    map[string]any{"alg": "RS256", "typ": "JWT", "kid": "q1mMJ6TkEwlD0r5pBqZ0V7_7NE8hN9aOiWc8yVMHeJk"},
			signer: "rsa1",
			claims: func(ti *testIssuer) map[string]any { return keycloakClaims(ti, now) },
			want: func(ti *testIssuer) *identity.Principal {
				return &identity.Principal{
					ID: "keycloak:f3b1c0de-7a6e-4c3b-9d2f-0123456789ab", Provider: "keycloak", Issuer: ti.issuer,
					Subject: "f3b1c0de-7a6e-4c3b-9d2f-0123456789ab", Type: "jwt",
					Groups: []string{"orders:write", "orders:read"},
					Scopes: []string{"openid", "email", "profile"},
					Claims: map[string]any{
						"preferred_username": "frank",
						"realm_roles":        []any{"default-roles-acme", "offline_access", "uma_authorization"},
						"account":            map[string]any{"roles": []any{"manage-account", "view-profile"}},
					},
				}
			},
		},
	}
	for _, alg := range []struct{ alg, key string }{
		{"RS256", "rsa1"}, {"RS384", "rsa1"}, {"RS512", "rsa1"}, {"PS256", "rsa2"},
		{"ES256", "ec256"}, {"ES384", "ec384"}, {"EdDSA", "ed"},
	} {
		cases = append(cases, tc{
			name: "generic oidc " + alg.alg,
			path: "/realms/main",
			keys: []pubJWK{{kid: "k-" + alg.alg, key: alg.key}},
			cfg: func(ti *testIssuer) IssuerConfig {
				return IssuerConfig{Name: "oidc", Issuer: ti.issuer, Audiences: []string{"api://authzd"},
					Claims: ClaimMapping{Copy: []string{"email", "age"}}}
			},
			hdr:    map[string]any{"alg": alg.alg, "kid": "k-" + alg.alg, "typ": "at+jwt"},
			signer: alg.key,
			claims: func(ti *testIssuer) map[string]any {
				return ti.claims(map[string]any{"groups": []string{"g1", "g1", "g2"}, "scope": "a b", "scp": []string{"b", "c"},
					"email": "eve@example.com", "age": json.Number("12345678901234567890")})
			},
			want: func(ti *testIssuer) *identity.Principal {
				return &identity.Principal{
					ID: "oidc:user-1", Provider: "oidc", Issuer: ti.issuer, Subject: "user-1", Type: "jwt",
					Groups: []string{"g1", "g2"}, Scopes: []string{"a", "b", "c"},
					Claims: map[string]any{"email": "eve@example.com", "age": json.Number("12345678901234567890")},
				}
			},
		})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ti := newIssuer(t, c.path, c.keys...)
			p := newProvider(t, ti.client(), c.cfg(ti))
			if err := p.Ready(); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			claims := c.claims(ti)
			tok := mint(t, testKeys()[c.signer], c.hdr, claims)
			got := mustResolve(t, p, tok)
			want := c.want(ti)
			want.ExpiresAt = time.Unix(toInt64(claims["exp"]), 0)
			if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
				t.Fatalf("principal (-want +got):\n%s", d)
			}
		})
	}
}

// keycloakClaims is a Keycloak 26 access token for client orders-api.
func keycloakClaims(ti *testIssuer, now int64) map[string]any {
	return map[string]any{
		"exp":             now + 300,
		"iat":             now,
		"auth_time":       now,
		"jti":             "onrtac:3c1f2a7e-0000-4000-8000-00000000000c",
		"iss":             ti.issuer,
		"aud":             "account",
		"sub":             "f3b1c0de-7a6e-4c3b-9d2f-0123456789ab",
		"typ":             "Bearer",
		"azp":             "orders-api",
		"sid":             "5e2b7c1d-0000-4000-8000-00000000000d",
		"acr":             "1",
		"allowed-origins": []string{"https://orders.example.com"},
		"realm_access":    map[string]any{"roles": []string{"default-roles-acme", "offline_access", "uma_authorization"}},
		"resource_access": map[string]any{
			"orders-api": map[string]any{"roles": []string{"orders:write", "orders:read"}},
			"account":    map[string]any{"roles": []string{"manage-account", "view-profile"}},
		},
		"scope":              "openid email profile",
		"email_verified":     true,
		"groups":             []string{"/staff", "/staff/ops"},
		"preferred_username": "frank",
		"email":              "frank@example.com",
	}
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case float64:
		return int64(n)
	}
	panic("not a number")
}
