package service_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/identity/apikey"
)

func TestCheckEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	keys := cfg.Identity.APIKeys.File
	reader, _ := createKey(t, keys, "svc-a", []string{"read"}, 0)
	writer, _ := createKey(t, keys, "svc-b", []string{"read", "write"}, 0)
	expired, expiredID := createKey(t, keys, "svc-c", []string{"read"}, time.Hour)
	// Expire the key by editing its record, as an operator's clock would.
	f, err := apikey.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Keys {
		if r.ID == expiredID {
			r.ExpiresAt = time.Now().Add(-time.Minute)
		}
	}
	if err := apikey.WriteFile(keys, f); err != nil {
		t.Fatal(err)
	}
	revokedBefore, revokedID := createKey(t, keys, "svc-d", []string{"read"}, 0)
	if _, err := apikey.Revoke(keys, revokedID); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, dir, cfg)
	ctx := context.Background()

	tests := []struct {
		name        string
		creds       *authzdv1.Credentials
		action      string
		resource    *authzdv1.Resource
		wantAllowed bool
		wantReason  string
		wantID      string
	}{
		{name: "allowed by role", creds: apiKeyCreds(reader), action: "documents:read", resource: doc("1"), wantAllowed: true, wantReason: "role read grants documents:read", wantID: "svc-a"},
		{name: "denied by policy", creds: apiKeyCreds(reader), action: "documents:write", resource: doc("1"), wantReason: "no role or ownership grants this action", wantID: "svc-a"},
		{name: "writer may write", creds: apiKeyCreds(writer), action: "documents:write", resource: doc("1"), wantAllowed: true, wantID: "svc-b"},
		{name: "owner may delete", creds: apiKeyCreds(reader), action: "documents:delete",
			resource: &authzdv1.Resource{Type: "document", Id: "7", Attributes: mustStruct(t, map[string]any{"owner": "svc-a"})}, wantAllowed: true, wantReason: "owner of document/7", wantID: "svc-a"},
		{name: "no credential is anonymous", creds: nil, action: "documents:read", resource: doc("1"), wantReason: "anonymous requests are denied"},
		{name: "malformed key", creds: apiKeyCreds("not-a-key"), action: "documents:read", wantReason: "unauthenticated: apikey: malformed api key"},
		{name: "unknown key", creds: apiKeyCreds(strings.Replace(reader, reader[len(reader)-4:], "aaaa", 1)), action: "documents:read", wantReason: "unauthenticated: apikey: unknown api key"},
		{name: "expired key", creds: apiKeyCreds(expired), action: "documents:read", wantReason: "unauthenticated: apikey: api key expired"},
		{name: "revoked key", creds: apiKeyCreds(revokedBefore), action: "documents:read", wantReason: "unauthenticated: apikey: api key revoked"},
		{name: "bearer token with no JWT provider", creds: &authzdv1.Credentials{Kind: &authzdv1.Credentials_BearerToken{BearerToken: "abc"}}, action: "documents:read", wantReason: "unauthenticated: bearer credentials are not accepted by this server"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := ts.client.Check(ctx, &authzdv1.CheckRequest{Credentials: tc.creds, Action: tc.action, Resource: tc.resource})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if resp.Allowed != tc.wantAllowed {
				t.Errorf("allowed = %v, want %v (reasons %v)", resp.Allowed, tc.wantAllowed, resp.Reasons)
			}
			if tc.wantReason != "" && (len(resp.Reasons) == 0 || resp.Reasons[0] != tc.wantReason) {
				t.Errorf("reasons = %q, want first %q", resp.Reasons, tc.wantReason)
			}
			if !resp.Allowed && len(resp.Reasons) == 0 {
				t.Error("a deny must carry a reason")
			}
			if got := resp.GetPrincipal().GetId(); got != tc.wantID {
				t.Errorf("principal id = %q, want %q", got, tc.wantID)
			}
			if resp.DecisionId == "" || resp.PolicyRevision == "" {
				t.Errorf("decision_id %q and policy_revision %q must be set", resp.DecisionId, resp.PolicyRevision)
			}
		})
	}

	t.Run("cached repeat", func(t *testing.T) {
		req := &authzdv1.CheckRequest{Credentials: apiKeyCreds(writer), Action: "documents:read", Resource: doc("cache-me"),
			Context: mustStruct(t, map[string]any{"ip": "10.0.0.1"})}
		first, err := ts.client.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		second, err := ts.client.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if first.Cached || !second.Cached {
			t.Errorf("cached = %v then %v, want false then true", first.Cached, second.Cached)
		}
		if first.Allowed != second.Allowed || first.DecisionId == second.DecisionId {
			t.Errorf("cached answer must equal the first with a fresh decision id: %v %v", first, second)
		}
		// The quickstart policy never reads input.context, so a request
		// that differs only there is the same decision.
		req.Context = mustStruct(t, map[string]any{"ip": "10.0.0.2"})
		third, err := ts.client.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !third.Cached {
			t.Error("a request differing only in an input the policy never reads must hit the cache")
		}
		// It reads resource.attributes.owner: another owner is another
		// decision.
		req.Resource = &authzdv1.Resource{Type: "document", Id: "cache-me", Attributes: mustStruct(t, map[string]any{"owner": "svc-b"})}
		fourth, err := ts.client.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if fourth.Cached {
			t.Error("a request differing in an input the policy reads must not hit the cache")
		}
	})

	t.Run("revocation while running", func(t *testing.T) {
		key, id := ts.newKey(t, "svc-e", []string{"read"}, 0)
		req := &authzdv1.CheckRequest{Credentials: apiKeyCreds(key), Action: "documents:read", Resource: doc("1")}
		eventually(t, "new key accepted", func() bool {
			r, err := ts.client.Check(ctx, req)
			return err == nil && r.Allowed
		})
		// The decision is now cached; revocation must still win.
		if _, err := apikey.Revoke(ts.keysFile, id); err != nil {
			t.Fatal(err)
		}
		eventually(t, "revoked key denied", func() bool {
			r, err := ts.client.Check(ctx, req)
			return err == nil && !r.Allowed && len(r.Reasons) > 0 && r.Reasons[0] == "unauthenticated: apikey: api key revoked"
		})
	})

	t.Run("garbage key file keeps last good keys", func(t *testing.T) {
		if err := os.WriteFile(ts.keysFile, []byte("keys: [ {id: 12, hash: nope"), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // several reload ticks
		r, err := ts.client.Check(ctx, &authzdv1.CheckRequest{Credentials: apiKeyCreds(reader), Action: "documents:read", Resource: doc("1")})
		if err != nil || !r.Allowed {
			t.Fatalf("a broken key file must keep the last good keys serving: %v %v", r, err)
		}
	})
}

func TestBatchCheck(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	key, _ := createKey(t, cfg.Identity.APIKeys.File, "svc-a", []string{"read"}, 0)
	ts := startServer(t, dir, cfg)
	resp, err := ts.client.BatchCheck(context.Background(), &authzdv1.BatchCheckRequest{
		Credentials: apiKeyCreds(key),
		Items: []*authzdv1.BatchCheckItem{
			{Action: "documents:read", Resource: doc("1")},
			{Action: "documents:write", Resource: doc("1")},
			{Action: "documents:delete", Resource: &authzdv1.Resource{Type: "document", Id: "2", Attributes: mustStruct(t, map[string]any{"owner": "svc-a"})}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{true, false, true}
	if len(resp.Results) != len(want) {
		t.Fatalf("got %d results, want %d", len(resp.Results), len(want))
	}
	for i, w := range want {
		if resp.Results[i].Allowed != w {
			t.Errorf("item %d: allowed = %v, want %v (%v)", i, resp.Results[i].Allowed, w, resp.Results[i].Reasons)
		}
	}
	if resp.GetPrincipal().GetId() != "svc-a" {
		t.Errorf("principal = %v", resp.Principal)
	}

	// An invalid credential denies every item, with a reason.
	resp, err = ts.client.BatchCheck(context.Background(), &authzdv1.BatchCheckRequest{
		Credentials: apiKeyCreds("azd_bad"),
		Items:       []*authzdv1.BatchCheckItem{{Action: "a"}, {Action: "b"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.Results {
		if r.Allowed || len(r.Reasons) == 0 {
			t.Errorf("item %d: want deny with reason, got %v", i, r)
		}
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	cfg.Limits.MaxContextBytes = 1024
	cfg.Limits.MaxAttributesBytes = 1024
	cfg.Limits.MaxBatchItems = 2
	key, _ := createKey(t, cfg.Identity.APIKeys.File, "svc-a", []string{"read"}, 0)
	ts := startServer(t, dir, cfg)
	big := mustStruct(t, map[string]any{"blob": strings.Repeat("x", 2000)})
	unknownKind := &authzdv1.Credentials{}
	// Field 99, varint 1: a credential kind from a newer client.
	unknownKind.ProtoReflect().SetUnknown([]byte{0x98, 0x06, 0x01})

	tests := []struct {
		name string
		req  *authzdv1.CheckRequest
		want string
	}{
		{"empty action", &authzdv1.CheckRequest{Credentials: apiKeyCreds(key)}, "action: required"},
		{"context over limit", &authzdv1.CheckRequest{Action: "documents:read", Context: big}, "context:"},
		{"attributes over limit", &authzdv1.CheckRequest{Action: "documents:read", Resource: &authzdv1.Resource{Attributes: big}}, "resource.attributes:"},
		{"unknown credential kind", &authzdv1.CheckRequest{Action: "documents:read", Credentials: unknownKind}, "unknown credential kind"},
		{"empty api key", &authzdv1.CheckRequest{Action: "documents:read", Credentials: apiKeyCreds("")}, "credentials.api_key: empty"},
		{"huge credential", &authzdv1.CheckRequest{Action: "documents:read", Credentials: apiKeyCreds(strings.Repeat("k", 20000))}, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := ts.client.Check(context.Background(), tc.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, %v; want INVALID_ARGUMENT", resp, err)
			}
			if !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Errorf("message %q does not mention %q", status.Convert(err).Message(), tc.want)
			}
		})
	}
	t.Run("batch over limit", func(t *testing.T) {
		_, err := ts.client.BatchCheck(context.Background(), &authzdv1.BatchCheckRequest{Items: []*authzdv1.BatchCheckItem{{Action: "a"}, {Action: "b"}, {Action: "c"}}})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("got %v, want INVALID_ARGUMENT", err)
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		_, err := ts.client.BatchCheck(context.Background(), &authzdv1.BatchCheckRequest{})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("got %v, want INVALID_ARGUMENT", err)
		}
	})
	t.Run("garbage protobuf", func(t *testing.T) {
		for _, garbage := range [][]byte{{0xff, 0xff, 0xff}, {0x12, 0x80}, []byte("GET / HTTP/1.1\r\n\r\n")} {
			var out rawMessage
			err := ts.conn.Invoke(context.Background(), "/authzd.v1.AuthorizationService/Check", rawMessage(garbage), &out, forceRawCodec())
			if err == nil || status.Code(err) == codes.OK {
				t.Fatalf("garbage %x: want an error, got a response %x", garbage, []byte(out))
			}
		}
		// The server is still healthy afterwards.
		resp, err := ts.client.Check(context.Background(), &authzdv1.CheckRequest{Credentials: apiKeyCreds(key), Action: "documents:read", Resource: doc("1")})
		if err != nil || !resp.Allowed {
			t.Fatalf("after garbage: %v %v", resp, err)
		}
	})
}

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	// Make sure the watcher sees a new modification time even on coarse
	// file systems.
	now := time.Now()
	os.Chtimes(path, now, now)
}

func TestHotReload(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	key, _ := createKey(t, cfg.Identity.APIKeys.File, "svc-a", []string{"read"}, 0)
	ts := startServer(t, dir, cfg)
	ctx := context.Background()
	req := &authzdv1.CheckRequest{Credentials: apiKeyCreds(key), Action: "documents:write", Resource: doc("1")}
	before, err := ts.client.Check(ctx, req)
	if err != nil || before.Allowed {
		t.Fatalf("before: %v %v", before, err)
	}

	// A good change: readers may now write.
	data := filepath.Join(ts.policies, "data.yaml")
	orig, _ := os.ReadFile(data)
	writeFile(t, data, strings.Replace(string(orig), `read: ["documents:read"]`, `read: ["documents:read", "documents:write"]`, 1))
	var after *authzdv1.CheckResponse
	eventually(t, "good change picked up", func() bool {
		after, err = ts.client.Check(ctx, req)
		return err == nil && after.Allowed
	})
	if after.PolicyRevision == before.PolicyRevision {
		t.Error("revision must change with the content")
	}
	if after.Cached {
		t.Error("a new revision must not answer from the old revision's cache")
	}

	// A broken change: the last good set keeps serving.
	writeFile(t, filepath.Join(ts.policies, "broken.rego"), "package authzd\n\ndecision := {\n")
	eventually(t, "broken change reported by readiness", func() bool {
		body := httpGet(t, "http://"+ts.httpAddr+"/readyz")
		return strings.Contains(body, "last reload failed") && strings.Contains(body, "broken.rego:")
	})
	if body := httpGet(t, "http://"+ts.httpAddr+"/metrics"); strings.Contains(body, "authzd_policy_reload_errors_total 0") || !strings.Contains(body, "authzd_policy_reload_errors_total") {
		t.Error("a failed reload must be counted in authzd_policy_reload_errors_total")
	}
	still, err := ts.client.Check(ctx, req)
	if err != nil || !still.Allowed || still.PolicyRevision != after.PolicyRevision {
		t.Fatalf("last good set must keep serving: %v %v", still, err)
	}
	// Fixing the file brings the next set in.
	os.Remove(filepath.Join(ts.policies, "broken.rego"))
	writeFile(t, data, string(orig))
	eventually(t, "fixed set serving", func() bool {
		r, err := ts.client.Check(ctx, req)
		return err == nil && !r.Allowed && r.PolicyRevision == before.PolicyRevision
	})
}

// TestNativeCacheKeyFollowsPolicy checks the native decision cache key
// against a policy that reads input.context.ip and nothing else of context,
// and one that uses the input whole.
func TestNativeCacheKeyFollowsPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, policy       string
		wantUnreadIsCached bool
	}{
		{"reads one context field", `package authzd
import rego.v1
decision if input.context.ip == "10.0.0.1"
`, true},
		{"uses input whole", `package authzd
import rego.v1
decision if {
	x := input
	x.context.ip == "10.0.0.1"
}
`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := baseConfig(t, dir)
			writeFile(t, filepath.Join(cfg.Policy.Paths[0], "rbac.rego"), tc.policy)
			ts := startServer(t, dir, cfg)
			ctx := context.Background()
			check := func(c map[string]any) *authzdv1.CheckResponse {
				t.Helper()
				r, err := ts.client.Check(ctx, &authzdv1.CheckRequest{Action: "a", Resource: doc("1"), Context: mustStruct(t, c)})
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			if r := check(map[string]any{"ip": "10.0.0.1", "request_id": "1"}); !r.Allowed || r.Cached {
				t.Fatalf("first: %v", r)
			}
			if r := check(map[string]any{"ip": "10.0.0.1", "request_id": "2"}); r.Cached != tc.wantUnreadIsCached || !r.Allowed {
				t.Errorf("unread field changed: cached = %v, want %v", r.Cached, tc.wantUnreadIsCached)
			}
			if r := check(map[string]any{"ip": "10.0.0.2", "request_id": "2"}); r.Cached || r.Allowed {
				t.Errorf("read field changed: must be a fresh deny, got %v", r)
			}
		})
	}
}

// A native decision that can reach a non-deterministic builtin is cached
// only when the policy sets ttl_seconds itself.
func TestNonDeterministicNativeDecisions(t *testing.T) {
	for _, tc := range []struct {
		name, policy string
		wantCached   bool
	}{
		{"time.now_ns, no ttl", `package authzd
import rego.v1
decision if time.now_ns() > 0
`, false},
		{"time.now_ns in a helper rule, no ttl", `package authzd
import rego.v1
recent if time.now_ns() > 0
decision if recent
`, false},
		{"time.now_ns with ttl_seconds", `package authzd
import rego.v1
decision := {"allow": true, "ttl_seconds": 30} if time.now_ns() > 0
`, true},
		{"deterministic", `package authzd
import rego.v1
decision if input.action == "a"
`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := baseConfig(t, dir)
			writeFile(t, filepath.Join(cfg.Policy.Paths[0], "rbac.rego"), tc.policy)
			ts := startServer(t, dir, cfg)
			req := &authzdv1.CheckRequest{Action: "a", Resource: doc("1")}
			for i := range 2 {
				r, err := ts.client.Check(context.Background(), req)
				if err != nil || !r.Allowed {
					t.Fatalf("check %d: %v %v", i, r, err)
				}
				if i == 1 && r.Cached != tc.wantCached {
					t.Errorf("second check cached = %v, want %v", r.Cached, tc.wantCached)
				}
			}
		})
	}
}
