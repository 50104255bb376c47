package jwt

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/valyala/fastjson"
)

func TestParsePointer(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "/realm_access", want: []string{"realm_access"}},
		{in: "/realm_access/roles", want: []string{"realm_access", "roles"}},
		{in: "/resource_access/my-client/roles", want: []string{"resource_access", "my-client", "roles"}},
		{in: "/https:~1~1example.com~1roles", want: []string{"https://example.com/roles"}},
		{in: "/a~0b", want: []string{"a~b"}},
		// ~01 is "~" then "1", never "/" (RFC 6901 section 4 order).
		{in: "/~01", want: []string{"~1"}},
		{in: "/~10", want: []string{"/0"}},
		{in: "/a.b/c:d", want: []string{"a.b", "c:d"}},
		{in: "/ü/ %", want: []string{"ü", " %"}},
		{in: "", wantErr: "must begin with /"},
		{in: "realm_access/roles", wantErr: "must begin with /"},
		{in: "/", wantErr: "empty segment"},
		{in: "//roles", wantErr: "empty segment"},
		{in: "/realm_access/", wantErr: "empty segment"},
		{in: "/a~", wantErr: "~ must be followed by 0 or 1"},
		{in: "/a~2", wantErr: "~ must be followed by 0 or 1"},
		{in: "/~x/b", wantErr: "~ must be followed by 0 or 1"},
		{in: strings.Repeat("/a", maxPointerSegments), want: slices.Repeat([]string{"a"}, maxPointerSegments)},
		{in: strings.Repeat("/a", maxPointerSegments+1), wantErr: "deeper than"},
	}
	for _, tc := range tests {
		got, err := parsePointer(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parsePointer(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parsePointer(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// Names that do not begin with "/" stay top-level names, byte for byte:
// dots, colons and slashes inside them are never split.
func TestParseClaimRefTopLevel(t *testing.T) {
	for _, name := range []string{"groups", "cognito:groups", "https://example.com/roles",
		"realm_access.roles", "a~1b", "", "roles=/x"} {
		r, err := parseClaimRef(name)
		if err != nil || r.path != nil || r.name != name {
			t.Errorf("parseClaimRef(%q) = %+v, %v; want the top-level name", name, r, err)
		}
	}
}

func TestParseCopyRef(t *testing.T) {
	tests := []struct {
		in   string
		name string
		ref  claimRef
		err  bool
	}{
		{in: "email", name: "email", ref: claimRef{name: "email"}},
		{in: "cognito:username", name: "cognito:username", ref: claimRef{name: "cognito:username"}},
		{in: "https://example.com/tenant", name: "https://example.com/tenant", ref: claimRef{name: "https://example.com/tenant"}},
		{in: "/realm_access/roles", name: "roles", ref: claimRef{path: []string{"realm_access", "roles"}}},
		{in: "/a~1b", name: "a/b", ref: claimRef{path: []string{"a/b"}}},
		{in: "realm_roles=/realm_access/roles", name: "realm_roles", ref: claimRef{path: []string{"realm_access", "roles"}}},
		{in: "app.roles=/resource_access/app/roles", name: "app.roles", ref: claimRef{path: []string{"resource_access", "app", "roles"}}},
		// Not an alias: the part before "=/" is no plain name, so the whole
		// entry is a top-level claim name as before.
		{in: "https://x.example.com/a=/b", name: "https://x.example.com/a=/b", ref: claimRef{name: "https://x.example.com/a=/b"}},
		{in: "1x=/a", name: "1x=/a", ref: claimRef{name: "1x=/a"}},
		{in: "=/a", name: "=/a", ref: claimRef{name: "=/a"}},
		// A pointer whose first segment contains "=/" is still a pointer.
		{in: "/a=/b", name: "b", ref: claimRef{path: []string{"a=", "b"}}},
		{in: "roles=/a//b", err: true},
		{in: "roles=/", err: true},
		{in: "/a~3", err: true},
	}
	for _, tc := range tests {
		got, err := parseCopyRef(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("parseCopyRef(%q) = %+v; want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.name != tc.name || got.ref.name != tc.ref.name || !slices.Equal(got.ref.path, tc.ref.path) {
			t.Errorf("parseCopyRef(%q) = %+v, %v; want name %q ref %+v", tc.in, got, err, tc.name, tc.ref)
		}
	}
}

// mapPayload maps payload with m through the issuer's principal code.
func mapPayload(t *testing.T, m ClaimMapping, payload string) (groups, scopes []string, claims map[string]any, subject string, err error) {
	t.Helper()
	ic := IssuerConfig{Name: "t", Issuer: "https://idp.example.com", Claims: m}.withDefaults()
	var errs []string
	is := &issuer{cfg: ic, refs: ic.Claims.compile(func(key, format string, args ...any) { errs = append(errs, key) })}
	if errs != nil {
		t.Fatalf("compile: bad %v", errs)
	}
	var p fastjson.Parser
	o, perr := parseClaims(&p, []byte(payload))
	if perr != nil {
		t.Fatalf("parseClaims: %v", perr)
	}
	pr, err := is.principal(o, time.Unix(1_700_000_000, 0))
	if err != nil {
		return nil, nil, nil, "", err
	}
	return pr.Groups, pr.Scopes, pr.Claims, pr.Subject, nil
}

func TestNestedClaimMapping(t *testing.T) {
	const head = `"iss":"https://idp.example.com","sub":"u1","exp":1700000600,`
	tests := []struct {
		name    string
		m       ClaimMapping
		payload string
		groups  []string
		scopes  []string
		claims  map[string]any
		subject string
		wantErr string
	}{
		{
			name:    "realm roles and client roles",
			m:       ClaimMapping{Groups: []string{"/realm_access/roles", "/resource_access/my-client/roles", "groups"}},
			payload: `{` + head + `"realm_access":{"roles":["admin","user"]},"resource_access":{"my-client":{"roles":["editor","user"]},"other":{"roles":["x"]}},"groups":["/staff"]}`,
			groups:  []string{"admin", "user", "editor", "/staff"},
		},
		{
			name:    "one string at the path",
			m:       ClaimMapping{Groups: []string{"/org/team"}, Scopes: []string{"/authz/scope"}},
			payload: `{` + head + `"org":{"team":"red"},"authz":{"scope":"read write  read"}}`,
			groups:  []string{"red"},
			scopes:  []string{"read", "write"},
		},
		{
			name:    "scopes as an array at the path",
			m:       ClaimMapping{Scopes: []string{"/authz/scp"}},
			payload: `{` + head + `"authz":{"scp":["a","b"]}}`,
			scopes:  []string{"a", "b"},
		},
		{
			name:    "missing paths are absent, not errors",
			m:       ClaimMapping{Groups: []string{"/realm_access/roles", "/resource_access/my-client/roles"}, Copy: []string{"/realm_access/roles"}},
			payload: `{` + head + `"resource_access":{"other":{"roles":["x"]}}}`,
		},
		{
			name: "a non-object on the way is absent",
			m:    ClaimMapping{Groups: []string{"/a/roles", "/b/roles", "/c/roles", "/d/0"}},
			payload: `{` + head + `"a":"roles","b":["roles"],"c":null,` +
				`"d":["first"]}`,
		},
		{
			name:    "wrong type at the leaf contributes nothing, as for top-level claims",
			m:       ClaimMapping{Groups: []string{"/a/roles", "top"}, Scopes: []string{"/a/scope", "scope"}},
			payload: `{` + head + `"a":{"roles":5,"scope":{"x":"y"}},"top":true,"scope":7}`,
		},
		{
			name:    "non-string array elements are skipped, as for top-level claims",
			m:       ClaimMapping{Groups: []string{"/a/roles", "top"}},
			payload: `{` + head + `"a":{"roles":[1,"admin",null,{"x":"y"},["z"],"",true]},"top":[2,"t"]}`,
			groups:  []string{"admin", "t"},
		},
		{
			name: "copy under the last segment and under an alias",
			m: ClaimMapping{Copy: []string{"/realm_access/roles", "client_roles=/resource_access/my-client/roles",
				"/resource_access/my-client", "/ext/n", "/absent/x"}},
			payload: `{` + head + `"realm_access":{"roles":["admin"]},"resource_access":{"my-client":{"roles":["editor"]}},"ext":{"n":12345678901234567890}}`,
			claims: map[string]any{
				"roles":        []any{"admin"},
				"client_roles": []any{"editor"},
				"my-client":    map[string]any{"roles": []any{"editor"}},
				"n":            json.Number("12345678901234567890"),
			},
		},
		{
			name:    "subject from a pointer",
			m:       ClaimMapping{Subject: "/user/id"},
			payload: `{` + head + `"user":{"id":"u-42"}}`,
			subject: "u-42",
		},
		{
			name:    "subject pointer missing fails closed",
			m:       ClaimMapping{Subject: "/user/id"},
			payload: `{` + head + `"user":{"name":"x"}}`,
			wantErr: "token has no subject",
		},
		{
			name:    "subject pointer to a non-string fails closed",
			m:       ClaimMapping{Subject: "/user/id"},
			payload: `{` + head + `"user":{"id":42}}`,
			wantErr: "token has no subject",
		},
		{
			// Top-level names are literal: the dotted and namespaced names
			// select the top-level claims, never a nested member.
			name: "top-level names with dots, colons and slashes are not split",
			m: ClaimMapping{Groups: []string{"realm_access.roles", "cognito:groups", "https://example.com/roles"},
				Copy: []string{"https://example.com/tenant"}},
			payload: `{` + head + `"realm_access.roles":["dotted"],"realm_access":{"roles":["nested"]},` +
				`"cognito:groups":["cg"],"https:":{"":{"example.com":{"roles":["wrong"]}}},"https://example.com/roles":["ns"],` +
				`"https://example.com/tenant":"acme"}`,
			groups: []string{"dotted", "cg", "ns"},
			claims: map[string]any{"https://example.com/tenant": "acme"},
		},
		{
			name:    "an escaped pointer reaches a top-level name with slashes",
			m:       ClaimMapping{Groups: []string{"/https:~1~1example.com~1roles"}, Copy: []string{"tenant=/https:~1~1example.com~1tenant"}},
			payload: `{` + head + `"https://example.com/roles":["ns"],"https://example.com/tenant":"acme"}`,
			groups:  []string{"ns"},
			claims:  map[string]any{"tenant": "acme"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			groups, scopes, claims, subject, err := mapPayload(t, tc.m, tc.payload)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("principal: %v", err)
			}
			if d := cmp.Diff(tc.groups, groups, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("groups (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.scopes, scopes, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("scopes (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.claims, claims, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("claims (-want +got):\n%s", d)
			}
			want := tc.subject
			if want == "" {
				want = "u1"
			}
			if subject != want {
				t.Errorf("subject = %q; want %q", subject, want)
			}
		})
	}
}

// Looking up a compiled reference allocates nothing.
func TestClaimRefGetDoesNotAllocate(t *testing.T) {
	var p fastjson.Parser
	o, err := parseClaims(&p, []byte(`{"realm_access":{"roles":["a"]},"resource_access":{"c":{"roles":["b"]}},"cognito:groups":["g"]}`))
	if err != nil {
		t.Fatal(err)
	}
	refs := ClaimMapping{Subject: "sub", Groups: []string{"/realm_access/roles", "/resource_access/c/roles", "/missing/x", "cognito:groups"}}.
		compile(func(string, string, ...any) { t.Fatal("bad mapping") })
	found := 0
	allocs := testing.AllocsPerRun(100, func() {
		found = 0
		for i := range refs.groups {
			if refs.groups[i].get(o) != nil {
				found++
			}
		}
	})
	if found != 3 {
		t.Fatalf("found %d of 3 claims", found)
	}
	if allocs != 0 {
		t.Fatalf("get allocates %.1f times per lookup set", allocs)
	}
}

// FuzzParsePointer: any input either fails or yields non-empty segments
// that, escaped again, give back the input.
func FuzzParsePointer(f *testing.F) {
	for _, s := range []string{"/a/b", "/~0~1", "/~01", "//", "/a~", "", "x", "/" + strings.Repeat("a/", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		path, err := parsePointer(s)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, seg := range path {
			if seg == "" {
				t.Fatalf("empty segment from %q", s)
			}
			b.WriteByte('/')
			b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(seg))
		}
		if b.String() != s {
			t.Fatalf("parsePointer(%q) = %q, which escapes to %q", s, path, b.String())
		}
	})
}

// The keycloak preset checks the client by azp, and a pointer subject
// that a token lacks is refused, through the full provider.
func TestKeycloakProviderRejects(t *testing.T) {
	ti := newIssuer(t, "/realms/acme", pubJWK{kid: "k1", key: "rsa1", alg: "RS256"})
	p := newProvider(t, ti.client(),
		IssuerConfig{Name: "keycloak", Preset: PresetKeycloak, Issuer: ti.issuer, ClientIDs: []string{"orders-api"},
			Claims: ClaimMapping{Subject: "/ext/uid"}})
	tok := func(edit map[string]any) string {
		c := keycloakClaims(ti, time.Now().Unix())
		c["ext"] = map[string]any{"uid": "u-7"}
		for k, v := range edit {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return ti.token(t, "rsa1", "k1", "RS256", c)
	}
	if pr := mustResolve(t, p, tok(nil)); pr.Subject != "u-7" || !slices.Contains(pr.Groups, "offline_access") {
		t.Fatalf("principal %+v; want subject u-7 and realm roles", pr)
	}
	mustReject(t, p, tok(map[string]any{"azp": "other-client"}), "token client is not accepted")
	// aud alone does not name the client for keycloak.
	mustReject(t, p, tok(map[string]any{"azp": nil, "aud": "orders-api"}), "token names no client")
	mustReject(t, p, tok(map[string]any{"ext": map[string]any{"name": "x"}}), "token has no subject")
	mustReject(t, p, tok(map[string]any{"ext": "u-7"}), "token has no subject")
}
