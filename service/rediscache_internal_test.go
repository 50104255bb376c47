package service

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/authzd/authzd/cache"
	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/identity"
)

func TestIdentityCodecRoundTrip(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	p := &identity.Principal{
		ID: "user-1", Provider: "okta", Issuer: "https://issuer.example", Subject: "00u1", Type: "jwt",
		Groups: []string{"admins"}, Scopes: []string{"read", "write"},
		Claims:    map[string]any{"email": "a@example.com", "n": 3.0, "nested": map[string]any{"k": []any{"v"}}},
		ExpiresAt: exp,
	}
	orig := newResolved(p)
	b, err := identityCodec.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != identityFormat {
		t.Fatalf("first byte %d, want the format version %d", b[0], identityFormat)
	}
	got, err := identityCodec.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.principal, orig.principal) {
		t.Fatalf("principal = %+v, want %+v", got.principal, orig.principal)
	}
	// The decision-key fingerprint and the Rego input are rebuilt the same,
	// so replicas share decision entries for this principal.
	if got.fp != orig.fp {
		t.Fatal("fingerprint differs after a round trip through Redis")
	}
	if got.value.Compare(orig.value) != 0 {
		t.Fatalf("input.principal = %v, want %v", got.value, orig.value)
	}

	neg, err := identityCodec.Marshal(&resolved{err: identity.Invalid("okta", "token expired", errors.New("internal detail"))})
	if err != nil {
		t.Fatal(err)
	}
	r, err := identityCodec.Unmarshal(neg)
	var ce *identity.CredentialError
	if err != nil || !errors.As(r.err, &ce) || ce.Provider != "okta" || ce.Reason != "token expired" || ce.Err != nil {
		t.Fatalf("negative entry = %+v, %v; want provider and reason, never the internal cause", r, err)
	}
	if _, err := identityCodec.Marshal(&resolved{err: identity.ErrUnavailable}); err == nil {
		t.Fatal("an unavailable error was encoded; only credential errors may be cached")
	}
	rv := newResolved(p)
	rv.revalidate = true
	if _, err := identityCodec.Marshal(rv); err == nil {
		t.Fatal("a revalidating entry (API key) was encoded; it must never be shared")
	}
}

func TestDecisionCodecRoundTrip(t *testing.T) {
	for _, d := range []*cachedDecision{
		{allow: true, reasons: []string{"role read grants documents:read"}, headers: map[string]string{"x-user": "u"}, principalID: "u"},
		{allow: false, reasons: []string{"nope"}},
	} {
		b, err := decisionCodec.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decisionCodec.Unmarshal(b)
		if err != nil || !reflect.DeepEqual(got, d) {
			t.Fatalf("round trip %+v = %+v, %v", d, got, err)
		}
	}
	// A format this build does not know is a miss, not a misread.
	b, _ := decisionCodec.Marshal(&cachedDecision{allow: true})
	b[0] = decisionFormat + 1
	if _, err := decisionCodec.Unmarshal(b); !errors.Is(err, cache.ErrUnknownVersion) {
		t.Fatalf("unknown version: %v", err)
	}
}

// FuzzCachedValues decodes arbitrary bytes read from Redis: never a panic,
// and a decoded deny always carries a reason, a decoded identity always
// a principal id or a credential error.
func FuzzCachedValues(f *testing.F) {
	d, _ := decisionCodec.Marshal(&cachedDecision{allow: true, reasons: []string{"r"}, principalID: "p"})
	i, _ := identityCodec.Marshal(newResolved(&identity.Principal{ID: "p", Provider: "x"}))
	n, _ := identityCodec.Marshal(&resolved{err: identity.Invalid("x", "bad", nil)})
	for _, s := range [][]byte{d, i, n, {1}, {}, {2, 0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := decisionCodec.Unmarshal(b); err == nil && !d.allow && len(d.reasons) == 0 {
			t.Fatal("deny without a reason")
		}
		if r, err := identityCodec.Unmarshal(b); err == nil {
			if r.err == nil && (r.principal == nil || r.principal.ID == "") {
				t.Fatal("identity without a principal id")
			}
			if r.err != nil && !identity.IsInvalid(r.err) {
				t.Fatal("negative entry that is not a credential error")
			}
		}
	})
}

func TestDecisionCodecEnvoyResult(t *testing.T) {
	res, err := parseEnvoyResult(map[string]any{
		"allowed": true, "headers": map[string]any{"x-user": "alice"}, "ttl_seconds": json.Number("30"),
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := decisionCodec.Marshal(&cachedDecision{allow: true, envoy: res, principalID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decisionCodec.Unmarshal(b)
	if err != nil || got.envoy == nil || !got.envoy.allowed || len(got.envoy.headers) != 1 ||
		got.envoy.headers[0].GetHeader().GetKey() != "x-user" || got.envoy.headers[0].GetHeader().GetValue() != "alice" {
		t.Fatalf("envoy result after a round trip = %+v, %v", got.envoy, err)
	}
	// A stored result must agree with the stored decision.
	var m authzdv1.CachedDecision
	if err := proto.Unmarshal(b[1:], &m); err != nil {
		t.Fatal(err)
	}
	m.Allowed = false
	tampered, _ := proto.Marshal(&m)
	if _, err := decisionCodec.Unmarshal(append([]byte{decisionFormat}, tampered...)); err == nil {
		t.Fatal("an envoy result that disagrees with allowed was accepted")
	}
	// A result no policy could produce is rejected like a fresh one.
	m.Allowed, m.EnvoyResult = true, []byte(`{"headers": {}}`)
	bad, _ := proto.Marshal(&m)
	if _, err := decisionCodec.Unmarshal(append([]byte{decisionFormat}, bad...)); err == nil {
		t.Fatal("an envoy result without allowed was accepted")
	}
}
