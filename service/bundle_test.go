package service_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/rego"
	"github.com/authzd/authzd/service"
)

// tarBundle builds a bundle by hand (tar + gzip), as `tar czf` would:
// files maps a path inside the bundle to its content.
func tarBundle(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// quickstartBundle packs the quickstart policies (tests included, which
// authzd must skip) with data.yaml replaced by data, and a manifest.
func quickstartBundle(t testing.TB, revision, data string) []byte {
	t.Helper()
	files := map[string]string{".manifest": `{"revision": "` + revision + `"}`, "data.yaml": data}
	for _, name := range []string{"rbac.rego", "rbac_test.rego"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", "quickstart", "policies", name))
		if err != nil {
			t.Fatal(err)
		}
		files["authzd/"+name] = string(b)
	}
	return tarBundle(t, files)
}

const readerCanRead = `rbac:
  roles:
    read: ["documents:read"]
  owner_actions: []
`

const nobodyCanRead = `rbac:
  roles:
    read: []
  owner_actions: []
`

// policyBundleServer serves one bundle with an ETag, or a failure status.
type policyBundleServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	etag    string
	status  int
	headers []http.Header
}

func newPolicyBundleServer(t testing.TB) *policyBundleServer {
	s := &policyBundleServer{status: http.StatusServiceUnavailable}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.headers = append(s.headers, r.Header.Clone())
		if s.status != 0 {
			w.WriteHeader(s.status)
			return
		}
		if r.Header.Get("If-None-Match") == s.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", s.etag)
		w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *policyBundleServer) serve(body []byte, etag string) {
	s.mu.Lock()
	s.body, s.etag, s.status = body, etag, 0
	s.mu.Unlock()
}

func (s *policyBundleServer) sawHeader(name, value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.headers {
		if h.Get(name) == value {
			return true
		}
	}
	return false
}

// startBundleServer starts authzd (quickstart config, API keys) with its
// policy from the bundle server bs instead of a directory, and returns an
// API key with the "read" scope.
func startBundleServer(t testing.TB, bs *policyBundleServer) (*testServer, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	key, _ := createKey(t, cfg.Identity.APIKeys.File, "svc-a", []string{"read"}, time.Hour)
	cfg.Policy = rego.Config{Bundle: &rego.BundleConfig{
		URL:         bs.URL + "/bundles/authzd.tar.gz",
		PollMin:     20 * time.Millisecond,
		PollMax:     50 * time.Millisecond,
		BearerToken: "bundle-token",
	}}
	return startServer(t, dir, cfg), key
}

func readyz(t testing.TB, ts *testServer) (int, string) {
	t.Helper()
	r, err := http.Get("http://" + ts.httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var body struct {
		Checks map[string]string `json:"checks"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	return r.StatusCode, body.Checks["policy"]
}

func TestPolicyFromBundle(t *testing.T) {
	bs := newPolicyBundleServer(t) // down (503) until told otherwise
	ts, key := startBundleServer(t, bs)
	ctx := context.Background()
	hc := healthpb.NewHealthClient(ts.conn)

	if resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health while the bundle server is down = %v, %v; want NOT_SERVING", resp, err)
	}
	if code, msg := readyz(t, ts); code != http.StatusServiceUnavailable || !strings.Contains(msg, "503") {
		t.Fatalf("readyz while the bundle server is down = %d %q; want 503 naming the failure", code, msg)
	}

	bs.serve(quickstartBundle(t, "v1", readerCanRead), `"v1"`)
	eventually(t, "SERVING once the bundle server is up", func() bool {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "authzd.v1.AuthorizationService"})
		return err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING
	})
	if !bs.sawHeader("Authorization", "Bearer bundle-token") {
		t.Error("the bearer token must be sent to the bundle server")
	}
	req := &authzdv1.CheckRequest{Credentials: apiKeyCreds(key), Action: "documents:read", Resource: doc("1")}
	resp, err := ts.client.Check(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	first := ts.srv.Engine().Current()
	if !resp.Allowed || resp.PolicyRevision != first.Revision || first.BundleRevision != "v1" {
		t.Fatalf("Check = %v (revision %s), set %s/%s", resp, resp.PolicyRevision, first.Revision, first.BundleRevision)
	}
	if len(first.Files) != 1 {
		t.Errorf("files = %v; the bundle's _test.rego must not be served", first.Files)
	}

	// A new bundle revision changes the answer; the decision cache is keyed
	// by revision, so no stale allow survives.
	bs.serve(quickstartBundle(t, "v2", nobodyCanRead), `"v2"`)
	eventually(t, "the v2 bundle", func() bool { return ts.srv.Engine().Current().BundleRevision == "v2" })
	if !bs.sawHeader("If-None-Match", `"v1"`) {
		t.Error("the ETag of v1 must be sent while v1 serves")
	}
	resp, err = ts.client.Check(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Allowed || resp.PolicyRevision == first.Revision {
		t.Fatalf("after v2: allowed %v revision %s", resp.Allowed, resp.PolicyRevision)
	}

	// A bundle that does not compile keeps v2 serving and shows in /readyz.
	v2 := ts.srv.Engine().Current()
	bs.serve(tarBundle(t, map[string]string{"authzd/broken.rego": "package authzd\nimport rego.v1\ndecision := no_such_fn(1)\n"}), `"v3"`)
	eventually(t, "the broken bundle to be reported", func() bool {
		code, msg := readyz(t, ts)
		return code == http.StatusOK && strings.Contains(msg, "last reload failed") && strings.Contains(msg, "no_such_fn")
	})
	if ts.srv.Engine().Current() != v2 {
		t.Error("a broken bundle must not replace the serving set")
	}
	if body := httpGet(t, "http://"+ts.httpAddr+"/metrics"); !strings.Contains(body, v2.Revision) {
		t.Error("metrics must expose the serving revision")
	}
}

func TestBundleConfigFromYAML(t *testing.T) {
	t.Setenv("BUNDLE_TENANT", "blue")
	cfg, err := service.ParseConfig([]byte(`
policy:
  bundle:
    url: https://bundles.example.com/authzd.tar.gz
    poll_min: 5s
    headers:
      X-Tenant: ${BUNDLE_TENANT}
    tls:
      ca_file: certs/ca.pem
    verification:
      public_key_file: keys/bundle.pub
    persist_dir: state/bundles
`), "/etc/authzd")
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Policy.Bundle
	if b.Headers["X-Tenant"] != "blue" || b.PollMin != 5*time.Second || b.PollMax != rego.DefaultBundlePollMax {
		t.Errorf("bundle = %+v", b)
	}
	if b.TLS.CAFile != "/etc/authzd/certs/ca.pem" || b.Verification.PublicKeyFile != "/etc/authzd/keys/bundle.pub" || b.PersistDir != "/etc/authzd/state/bundles" {
		t.Errorf("relative paths not resolved: %+v %+v", b.TLS, b.Verification)
	}
	if b.Verification.KeyID != "default" || b.Verification.Algorithm != "RS256" {
		t.Errorf("verification defaults = %+v", b.Verification)
	}

	_, err = service.ParseConfig([]byte("policy:\n  paths: [p]\n  bundle:\n    url: https://b.example/x.tar.gz\n"), "/")
	if err == nil || !strings.Contains(err.Error(), "policy.bundle") {
		t.Fatalf("paths and bundle together: %v", err)
	}
}

func TestBundleExampleConfigParses(t *testing.T) {
	cfg, err := service.LoadConfig(filepath.Join("..", "examples", "bundles", "authzd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Policy.Bundle
	if b == nil || len(cfg.Policy.Paths) != 0 || !strings.HasSuffix(b.URL, "/authzd.tar.gz") || b.PersistDir != filepath.Join("..", "examples", "bundles", "state", "bundle") {
		t.Fatalf("policy = %+v, bundle %+v", cfg.Policy, b)
	}
}
