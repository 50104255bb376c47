package apikey

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

func TestGenerateParse(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		key, id, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(key, Prefix) {
			t.Fatalf("key %q lacks the prefix", key)
		}
		got, err := Parse(key)
		if err != nil || got != id {
			t.Fatalf("Parse(%q) = %q, %v; want %q", key, got, err, id)
		}
		if seen[key] {
			t.Fatal("duplicate key")
		}
		seen[key] = true
	}
	for _, bad := range []string{"", "azd_", "azd_x_y", strings.Repeat("a", keyLen), "azd_AAAAAAAAAAAAAAAA_" + strings.Repeat("a", secretLen)} {
		if _, err := Parse(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	key, _, _ := Generate()
	f.Add(key)
	f.Add("azd_")
	f.Add("azd_" + strings.Repeat("_", 70))
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err == nil && (len(id) != idLen || !strings.HasPrefix(s, Prefix+id+"_")) {
			t.Fatalf("Parse(%q) accepted with id %q", s, id)
		}
	})
}

func TestProvider(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.yaml")
	good, goodRec, err := Create(path, "svc-a", []string{"read"}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	expiring, _, _ := Create(path, "svc-b", nil, time.Hour, "")
	revoked, revRec, _ := Create(path, "svc-c", nil, 0, "")
	if _, err := Revoke(path, revRec.ID); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	for _, k := range []string{good, expiring, revoked} {
		if strings.Contains(string(raw), k[len(Prefix)+idLen+1:]) {
			t.Fatal("the key file must never hold a secret")
		}
	}
	store, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProvider("", store)
	ctx := context.Background()
	pr, err := p.Resolve(ctx, identity.Credential{Kind: identity.KindAPIKey, Token: good})
	if err != nil {
		t.Fatal(err)
	}
	if pr.ID != "svc-a" || pr.Subject != goodRec.ID || pr.Type != "api_key" || pr.Scopes[0] != "read" {
		t.Errorf("principal = %+v", pr)
	}

	// Same id, wrong secret.
	forged := good[:len(good)-1] + string("abcdefgh"[(strings.IndexByte("abcdefgh", good[len(good)-1])+1)%8])
	p.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	for name, tc := range map[string]struct{ key, reason string }{
		"forged secret": {forged, "unknown api key"},
		"expired":       {expiring, "api key expired"},
		"revoked":       {revoked, "api key revoked"},
		"malformed":     {"hello", "malformed api key"},
	} {
		_, err := p.Resolve(ctx, identity.Credential{Kind: identity.KindAPIKey, Token: tc.key})
		var ce *identity.CredentialError
		if !errors.As(err, &ce) || ce.Reason != tc.reason {
			t.Errorf("%s: err = %v, want reason %q", name, err, tc.reason)
		}
	}
	if _, err := p.Resolve(ctx, identity.Credential{Kind: identity.KindBearer, Token: good}); !errors.Is(err, identity.ErrNotMine) {
		t.Errorf("bearer credential: %v, want ErrNotMine", err)
	}
}

func TestReadFileRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"yaml":      "keys: [",
		"bad hash":  "keys:\n  - id: aaaaaaaaaaaaaaaa\n    hash: plain\n    owner: x\n",
		"no owner":  "keys:\n  - id: aaaaaaaaaaaaaaaa\n    hash: sha256:" + strings.Repeat("0", 64) + "\n",
		"unknown":   "keys: []\nsecrets: []\n",
		"duplicate": "keys:\n  - {id: aaaaaaaaaaaaaaaa, hash: 'sha256:" + strings.Repeat("0", 64) + "', owner: x}\n  - {id: aaaaaaaaaaaaaaaa, hash: 'sha256:" + strings.Repeat("0", 64) + "', owner: y}\n",
	} {
		path := filepath.Join(dir, name+".yaml")
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := ReadFile(path); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, nil, 0o600)
	if f, err := ReadFile(empty); err != nil || len(f.Keys) != 0 {
		t.Errorf("an empty file is an empty set: %v %v", f, err)
	}
}

func BenchmarkResolve(b *testing.B) {
	path := filepath.Join(b.TempDir(), "keys.yaml")
	key, _, _ := Create(path, "svc", []string{"read"}, 0, "")
	store, _ := OpenFile(path, nil)
	p := NewProvider("", store)
	cred := identity.Credential{Kind: identity.KindAPIKey, Token: key}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Resolve(context.Background(), cred); err != nil {
			b.Fatal(err)
		}
	}
}
