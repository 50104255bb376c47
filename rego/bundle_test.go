package rego

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

const bundlePolicy = `package authzd
import rego.v1
decision := {"allow": input.action in data.allowed}
`

// makeBundle writes a tar.gz bundle with OPA's own writer. modules maps a
// path such as "authz/p.rego" to its source.
func makeBundle(t testing.TB, revision string, modules map[string]string, data map[string]any, sign *bundle.SigningConfig) []byte {
	t.Helper()
	b := bundle.Bundle{Manifest: bundle.Manifest{Revision: revision}, Data: data}
	if b.Data == nil {
		b.Data = map[string]any{}
	}
	for path, src := range modules {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + path, Path: "/" + path, Raw: []byte(src)})
	}
	if sign != nil {
		if err := b.GenerateSignature(sign, "authzd-test", false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).DisableFormat(true).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func allowedBundle(t testing.TB, revision string, allowed ...string) []byte {
	t.Helper()
	list := make([]any, len(allowed))
	for i, a := range allowed {
		list[i] = a
	}
	return makeBundle(t, revision, map[string]string{"authz/policy.rego": bundlePolicy}, map[string]any{"allowed": list}, nil)
}

// bundleServer is a real HTTP bundle server that honours If-None-Match.
type bundleServer struct {
	*httptest.Server
	mu          sync.Mutex
	body        []byte
	etag        string
	status      int // non-zero: answer this instead of the bundle
	requests    []http.Header
	notModified int
}

func newBundleServer(t testing.TB) *bundleServer {
	bs := &bundleServer{}
	bs.Server = httptest.NewServer(http.HandlerFunc(bs.serve))
	t.Cleanup(bs.Close)
	return bs
}

func (bs *bundleServer) serve(w http.ResponseWriter, r *http.Request) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.requests = append(bs.requests, r.Header.Clone())
	if bs.status != 0 {
		w.WriteHeader(bs.status)
		return
	}
	if bs.etag != "" && r.Header.Get("If-None-Match") == bs.etag {
		bs.notModified++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if bs.etag != "" {
		w.Header().Set("ETag", bs.etag)
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Write(bs.body)
}

func (bs *bundleServer) set(body []byte, etag string) {
	bs.mu.Lock()
	bs.body, bs.etag, bs.status = body, etag, 0
	bs.mu.Unlock()
}

func (bs *bundleServer) fail(status int) {
	bs.mu.Lock()
	bs.status = status
	bs.mu.Unlock()
}

func (bs *bundleServer) lastRequest() http.Header {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if len(bs.requests) == 0 {
		return nil
	}
	return bs.requests[len(bs.requests)-1]
}

func (bs *bundleServer) counts() (requests, notModified int) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return len(bs.requests), bs.notModified
}

func bundleConfig(url string) Config {
	return Config{Bundle: &BundleConfig{URL: url + "/bundles/authzd.tar.gz", PollMin: 10 * time.Millisecond, PollMax: 20 * time.Millisecond}}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func mustAllow(t testing.TB, ps *PolicySet, action string, want bool) {
	t.Helper()
	in, _ := ast.InterfaceToValue(map[string]any{"action": action})
	d, err := ps.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow != want {
		t.Fatalf("allow(%s) = %v, want %v", action, d.Allow, want)
	}
}

func TestBundleLoadUpdateAndNotModified(t *testing.T) {
	bs := newBundleServer(t)
	bs.set(allowedBundle(t, "rev-1", "read"), `"v1"`)
	cfg := bundleConfig(bs.URL)
	cfg.Bundle.BearerToken = "s3cret-token"
	cfg.Bundle.Headers = map[string]string{"X-Tenant": "blue"}
	e, err := NewEngine(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var swaps []*PolicySet
	var swapMu sync.Mutex
	e.OnSwap(func(ps *PolicySet) { swapMu.Lock(); swaps = append(swaps, ps); swapMu.Unlock() })
	ctx := t.Context()
	if err := e.Load(ctx); err != nil {
		t.Fatal(err)
	}
	first := e.Current()
	if first == nil || first.BundleRevision != "rev-1" || first.Revision == "" {
		t.Fatalf("first set = %+v", first)
	}
	if len(first.Files) != 1 || first.Files[0] != "/authz/policy.rego" {
		t.Errorf("files = %v", first.Files)
	}
	mustAllow(t, first, "read", true)
	mustAllow(t, first, "write", false)
	h := bs.lastRequest()
	if got := h.Get("Authorization"); got != "Bearer s3cret-token" {
		t.Errorf("Authorization = %q", got)
	}
	if got := h.Get("X-Tenant"); got != "blue" {
		t.Errorf("X-Tenant = %q", got)
	}
	if h.Get("If-None-Match") != "" {
		t.Error("the first request has no ETag to send")
	}

	// Unchanged: the ETag is sent, the server answers 304, the set stays.
	if err := e.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := bs.lastRequest().Get("If-None-Match"); got != `"v1"` {
		t.Errorf("If-None-Match = %q, want the ETag of the served bundle", got)
	}
	if _, nm := bs.counts(); nm != 1 {
		t.Errorf("not-modified answers = %d, want 1", nm)
	}
	if e.Current() != first {
		t.Fatal("a 304 must keep the serving set")
	}

	// Run picks up a new revision.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	bs.set(allowedBundle(t, "rev-2", "read", "write"), `"v2"`)
	waitFor(t, "the new bundle revision", func() bool { return e.Current().BundleRevision == "rev-2" })
	second := e.Current()
	if second.Revision == first.Revision {
		t.Error("new content must have a new revision")
	}
	mustAllow(t, second, "write", true)
	swapMu.Lock()
	n := len(swaps)
	swapMu.Unlock()
	if n != 2 {
		t.Errorf("OnSwap called %d times, want 2", n)
	}
	if e.LoadErrors() != 0 || e.LastError() != nil {
		t.Errorf("no load failed, got %d errors, last %v", e.LoadErrors(), e.LastError())
	}
}

func TestBundleBrokenKeepsLastGood(t *testing.T) {
	cases := []struct {
		name    string
		body    func(t *testing.T) []byte
		wantErr string
	}{
		{"compile error", func(t *testing.T) []byte {
			return makeBundle(t, "bad", map[string]string{"p.rego": "package authzd\nimport rego.v1\ndecision := no_such_function(1)\n"}, nil, nil)
		}, "compiling policies"},
		{"parse error", func(t *testing.T) []byte {
			return makeBundle(t, "bad", map[string]string{"p.rego": "package authzd\nthis is not rego\n"}, nil, nil)
		}, "reading bundle"},
		{"garbage bytes", func(*testing.T) []byte { return []byte("this is not a tarball") }, "reading bundle"},
		{"no modules", func(t *testing.T) []byte {
			return makeBundle(t, "empty", nil, map[string]any{"a": 1}, nil)
		}, "no .rego modules"},
		{"server error", nil, "500 Internal Server Error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bs := newBundleServer(t)
			bs.set(allowedBundle(t, "good", "read"), `"good"`)
			e, err := NewEngine(bundleConfig(bs.URL), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Load(t.Context()); err != nil {
				t.Fatal(err)
			}
			good := e.Current()
			if tc.body == nil {
				bs.fail(http.StatusInternalServerError)
			} else {
				bs.set(tc.body(t), `"bad"`)
			}
			err = e.Load(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Load error = %v, want it to mention %q", err, tc.wantErr)
			}
			if e.Current() != good {
				t.Fatal("a broken bundle must keep the last good set")
			}
			if le := e.LastError(); le == nil || !strings.Contains(le.Error(), tc.wantErr) {
				t.Errorf("LastError = %v", le)
			}
			if e.LoadErrors() != 1 {
				t.Errorf("LoadErrors = %d, want 1", e.LoadErrors())
			}
			mustAllow(t, e.Current(), "read", true)

			// A fixed bundle replaces it and clears LastError.
			bs.set(allowedBundle(t, "fixed", "read", "write"), `"fixed"`)
			if err := e.Load(t.Context()); err != nil {
				t.Fatal(err)
			}
			if e.Current().BundleRevision != "fixed" || e.LastError() != nil {
				t.Errorf("after the fix: revision %q, LastError %v", e.Current().BundleRevision, e.LastError())
			}
		})
	}
}

func TestBundleOutageEndsWithUnchangedBundle(t *testing.T) {
	for _, etag := range []string{`"same"`, ""} {
		t.Run("etag "+etag, func(t *testing.T) {
			bs := newBundleServer(t)
			body := allowedBundle(t, "same", "read")
			bs.set(body, etag)
			e, _ := NewEngine(bundleConfig(bs.URL), nil)
			if err := e.Load(t.Context()); err != nil {
				t.Fatal(err)
			}
			good := e.Current()
			bs.fail(http.StatusBadGateway)
			if err := e.Load(t.Context()); err == nil || e.LastError() == nil {
				t.Fatalf("outage: err %v, LastError %v", err, e.LastError())
			}
			// The server is back with the bundle that serves: a 304, or the
			// same bytes. The outage is over, nothing is rebuilt.
			bs.set(body, etag)
			if err := e.Load(t.Context()); err != nil {
				t.Fatal(err)
			}
			if e.LastError() != nil {
				t.Errorf("LastError after the server is back = %v", e.LastError())
			}
			if e.Current() != good {
				t.Error("an unchanged bundle must keep the same set")
			}
		})
	}
}

func TestBundleServerDownThenUp(t *testing.T) {
	bs := newBundleServer(t)
	bs.fail(http.StatusServiceUnavailable)
	e, err := NewEngine(bundleConfig(bs.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Load(t.Context()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Load error = %v, want 503", err)
	}
	if e.Current() != nil || e.LastError() == nil {
		t.Fatal("nothing may serve before a bundle compiles")
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	defer func() { stop(); <-done }()
	bs.set(allowedBundle(t, "up", "read"), "")
	waitFor(t, "the bundle once the server is up", func() bool { return e.Current() != nil })
	if e.LastError() != nil {
		t.Errorf("LastError after success = %v", e.LastError())
	}
}

func TestBundlePersistDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "persist")
	bs := newBundleServer(t)
	bs.set(allowedBundle(t, "persisted", "read"), `"p"`)
	cfg := bundleConfig(bs.URL)
	cfg.Bundle.PersistDir = dir
	e, err := NewEngine(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := e.Current().Revision
	if _, err := os.Stat(filepath.Join(dir, persistFile)); err != nil {
		t.Fatalf("bundle not persisted: %v", err)
	}

	// A broken bundle is never persisted.
	bs.set([]byte("garbage"), `"g"`)
	if err := e.Load(t.Context()); err == nil {
		t.Fatal("garbage must fail")
	}

	// A new replica starts while the server is unreachable.
	bs.Close()
	e2, err := NewEngine(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.Load(t.Context()); err != nil {
		t.Fatalf("Load with a persisted bundle: %v", err)
	}
	ps := e2.Current()
	if ps == nil || ps.Revision != want || ps.BundleRevision != "persisted" {
		t.Fatalf("persisted set = %+v, want revision %s", ps, want)
	}
	if e2.LastError() == nil {
		t.Error("LastError must still report that the server is unreachable")
	}
	mustAllow(t, ps, "read", true)

	// A server answering with the persisted bytes ends the outage.
	bs2 := newBundleServer(t)
	bs2.set(allowedBundle(t, "persisted", "read"), "")
	e2.cfg.Bundle.URL = bs2.URL
	e2.bundle.cfg.URL = bs2.URL
	if err := e2.Load(t.Context()); err != nil || e2.LastError() != nil || e2.Current() != ps {
		t.Fatalf("server back with the persisted bundle: err %v, LastError %v", err, e2.LastError())
	}

	// Without a persisted bundle the same start-up serves nothing.
	cfg.Bundle.PersistDir = filepath.Join(t.TempDir(), "empty")
	e3, _ := NewEngine(cfg, nil)
	if err := e3.Load(t.Context()); err == nil || e3.Current() != nil {
		t.Fatalf("no server and no persisted bundle: err %v, set %v", err, e3.Current())
	}
}

func TestBundleSameBytesWithoutETagNotRebuilt(t *testing.T) {
	bs := newBundleServer(t)
	bs.set(allowedBundle(t, "r", "read"), "")
	e, _ := NewEngine(bundleConfig(bs.URL), nil)
	if err := e.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	first := e.Current()
	if err := e.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e.Current() != first {
		t.Error("identical bytes must not build a new set")
	}
	if h := bs.lastRequest(); h.Get("If-None-Match") != "" {
		t.Error("no ETag was served, so none may be sent")
	}
}

func TestBundleTestModulesSkipped(t *testing.T) {
	// The reader parses every module, so the test module parses; it would
	// conflict with p.rego if it were served.
	raw := makeBundle(t, "", map[string]string{
		"p.rego":      bundlePolicy,
		"p_test.rego": "package authzd\nimport rego.v1\ndecision := {\"allow\": true}\n",
	}, map[string]any{"allowed": []any{"read"}}, nil)
	b, err := readBundle(raw, DefaultBundleMaxBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := buildFromBundle(t.Context(), Config{}.WithDefaults(), "test", &b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Files) != 1 {
		t.Errorf("files = %v, want only p.rego", ps.Files)
	}
	mustAllow(t, ps, "write", false)
}

func TestBundleSizeLimit(t *testing.T) {
	bs := newBundleServer(t)
	body := allowedBundle(t, "big", "read")
	bs.set(body, "")
	cfg := bundleConfig(bs.URL)
	cfg.Bundle.MaxBytes = int64(len(body) - 1)
	e, _ := NewEngine(cfg, nil)
	if err := e.Load(t.Context()); err == nil || !strings.Contains(err.Error(), "max_bytes") {
		t.Fatalf("Load error = %v, want the size limit", err)
	}
}

func TestBundleSignatureVerification(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(key)
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubFile := filepath.Join(t.TempDir(), "bundle.pub")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.MarshalECPrivateKey(other)
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: otherDER})

	modules := map[string]string{"p.rego": bundlePolicy}
	data := map[string]any{"allowed": []any{"read"}}
	bs := newBundleServer(t)
	cfg := bundleConfig(bs.URL)
	cfg.Bundle.Verification = &BundleVerificationConfig{PublicKeyFile: pubFile, KeyID: "authzd-test", Algorithm: "ES256"}
	e, err := NewEngine(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}

	bs.set(makeBundle(t, "unsigned", modules, data, nil), `"u"`)
	if err := e.Load(t.Context()); err == nil || !strings.Contains(err.Error(), "signatures") {
		t.Fatalf("unsigned bundle: err = %v", err)
	}
	bs.set(makeBundle(t, "other-key", modules, data, bundle.NewSigningConfig(string(otherPEM), "ES256", "")), `"o"`)
	if err := e.Load(t.Context()); err == nil || e.Current() != nil {
		t.Fatalf("bundle signed by another key: err = %v", err)
	}
	bs.set(makeBundle(t, "signed", modules, data, bundle.NewSigningConfig(string(privPEM), "ES256", "")), `"s"`)
	if err := e.Load(t.Context()); err != nil {
		t.Fatalf("signed bundle: %v", err)
	}
	if e.Current().BundleRevision != "signed" {
		t.Errorf("revision = %q", e.Current().BundleRevision)
	}
}

func TestBundleConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string // "" means valid
	}{
		{"neither", Config{}, "policy.paths"},
		{"both", Config{Paths: []string{"p"}, Bundle: &BundleConfig{URL: "https://b.example/x.tar.gz"}}, "exactly one"},
		{"bundle ok", Config{Bundle: &BundleConfig{URL: "https://b.example/x.tar.gz"}}, ""},
		{"no url", Config{Bundle: &BundleConfig{}}, "policy.bundle.url"},
		{"not http", Config{Bundle: &BundleConfig{URL: "file:///etc/passwd"}}, "policy.bundle.url"},
		{"poll order", Config{Bundle: &BundleConfig{URL: "http://b/x", PollMin: time.Minute, PollMax: time.Second}}, "poll_max"},
		{"half client cert", Config{Bundle: &BundleConfig{URL: "http://b/x", TLS: BundleTLSConfig{CertFile: "c"}}}, "policy.bundle.tls"},
		{"verification without key", Config{Bundle: &BundleConfig{URL: "http://b/x", Verification: &BundleVerificationConfig{}}}, "public_key_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	d := Config{Bundle: &BundleConfig{URL: "http://b/x"}}.WithDefaults().Bundle
	if d.PollMin != DefaultBundlePollMin || d.PollMax != DefaultBundlePollMax || d.Timeout != DefaultBundleTimeout {
		t.Errorf("defaults = %+v", d)
	}
}

func TestBundleDelay(t *testing.T) {
	s := &bundleSource{cfg: BundleConfig{PollMin: 10 * time.Second, PollMax: 30 * time.Second}}
	for range 100 {
		if d := s.delay(0); d < 10*time.Second || d > 30*time.Second {
			t.Fatalf("delay after success = %s, want within [poll_min, poll_max]", d)
		}
		if d := s.delay(1); d < 5*time.Second || d > 10*time.Second {
			t.Fatalf("delay after one failure = %s", d)
		}
		if d := s.delay(50); d < 15*time.Second || d > 30*time.Second {
			t.Fatalf("delay after many failures = %s, want capped by poll_max", d)
		}
	}
}

// FuzzReadBundle feeds untrusted bytes (what a bundle server returns) to
// the bundle reader: it must return an error or a bundle, never panic.
func FuzzReadBundle(f *testing.F) {
	f.Add(allowedBundle(f, "seed", "read"))
	f.Add([]byte("not a tarball"))
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00})
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := readBundle(raw, 1<<20, nil)
		if err != nil {
			return
		}
		_, _ = buildFromBundle(context.Background(), Config{}.WithDefaults(), "fuzz", &b)
	})
}

func TestBundleRebuiltSameRevisionClearsError(t *testing.T) {
	bs := newBundleServer(t)
	bs.set(allowedBundle(t, "r", "read"), `"a"`)
	e, _ := NewEngine(bundleConfig(bs.URL), nil)
	if err := e.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	good := e.Current()
	bs.set([]byte("garbage"), `"b"`)
	if err := e.Load(t.Context()); err == nil {
		t.Fatal("garbage must fail")
	}
	// Same modules and data in different bytes (a new manifest revision
	// does not change the content hash): no swap, and the error is over.
	bs.set(allowedBundle(t, "r2", "read"), `"c"`)
	if err := e.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e.Current() != good || e.LastError() != nil {
		t.Errorf("same content: swapped %v, LastError %v", e.Current() != good, e.LastError())
	}
}

func TestBundleDownloadHonoursContextAndTimeout(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers; ends when the client gives up
	}))
	t.Cleanup(hang.Close)
	cfg := bundleConfig(hang.URL)
	cfg.Bundle.Timeout = 50 * time.Millisecond
	e, _ := NewEngine(cfg, nil)
	if err := e.Load(t.Context()); err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("Load against a hanging server = %v, want the download timeout", err)
	}

	cfg.Bundle.Timeout = time.Hour
	e, _ = NewEngine(cfg, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := e.Load(ctx); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("Load with a cancelled context = %v", err)
	}
	if e.Current() != nil {
		t.Fatal("nothing may serve")
	}
}

func TestBundleOverTLSWithCAFile(t *testing.T) {
	body := allowedBundle(t, "tls", "read")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	untrusted, _ := NewEngine(bundleConfig(srv.URL), nil)
	if err := untrusted.Load(t.Context()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("server not in the system roots: %v", err)
	}

	cfg := bundleConfig(srv.URL)
	cfg.Bundle.TLS.CAFile = caFile
	e, err := NewEngine(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e.Current().BundleRevision != "tls" {
		t.Errorf("revision = %q", e.Current().BundleRevision)
	}

	cfg.Bundle.TLS.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := NewEngine(cfg, nil); err == nil || !strings.Contains(err.Error(), "policy.bundle.tls.ca_file") {
		t.Fatalf("missing CA file: %v", err)
	}
}
