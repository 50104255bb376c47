package service_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/identity/apikey"
	"github.com/authzd/authzd/rego"
	"github.com/authzd/authzd/service"
)

// testServer is a real authzd on loopback ports with its own copy of the
// quickstart policy and an API key file in a temp dir.
type testServer struct {
	srv      *service.Server
	dir      string
	policies string
	keysFile string
	grpcAddr string
	httpAddr string
	conn     *grpc.ClientConn
	client   authzdv1.AuthorizationServiceClient
	stop     func()
	done     chan error
}

// copyQuickstartPolicies copies the shipped quickstart policies into dir.
func copyQuickstartPolicies(t testing.TB, dir string) string {
	t.Helper()
	return copyDir(t, filepath.Join("..", "examples", "quickstart", "policies"), filepath.Join(dir, "policies"))
}

// baseConfig is the quickstart configuration pointed at dir, with fast
// reload intervals for tests.
func baseConfig(t testing.TB, dir string) service.Config {
	policies := copyQuickstartPolicies(t, dir)
	return service.Config{
		Listen:     "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		Policy:     regoConfig(policies),
		Identity: service.IdentityConfig{
			APIKeys: service.APIKeysConfig{File: filepath.Join(dir, "apikeys.yaml"), ReloadInterval: 50 * time.Millisecond},
		},
		ShutdownTimeout: 5 * time.Second,
	}
}

// startServer starts a server with cfg (from baseConfig, possibly edited).
func startServer(t testing.TB, dir string, cfg service.Config) *testServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := service.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("service.New: %v", err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		srv: srv, dir: dir, keysFile: cfg.Identity.APIKeys.File,
		grpcAddr: gl.Addr().String(), httpAddr: hl.Addr().String(), done: make(chan error, 1),
	}
	if len(cfg.Policy.Paths) > 0 {
		ts.policies = cfg.Policy.Paths[0]
	}
	go func() { ts.done <- srv.Serve(ctx, gl, hl) }()
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-ts.done:
			case <-time.After(10 * time.Second):
				t.Error("server did not stop")
			}
		})
	}
	conn, err := grpc.NewClient(ts.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ts.conn = conn
	ts.client = authzdv1.NewAuthorizationServiceClient(conn)
	t.Cleanup(func() {
		conn.Close()
		ts.stop()
	})
	return ts
}

// newKey records a key in the server's key file and returns it.
func (ts *testServer) newKey(t testing.TB, owner string, scopes []string, ttl time.Duration) (key, id string) {
	t.Helper()
	key, rec, err := apikey.Create(ts.keysFile, owner, scopes, ttl, "")
	if err != nil {
		t.Fatal(err)
	}
	return key, rec.ID
}

// eventually polls cond every 20ms for up to 5s; the bound is a correctness
// limit (e.g. "revocation is seen"), not a performance assertion.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func regoConfig(paths ...string) rego.Config {
	return rego.Config{Paths: paths, ReloadInterval: 50 * time.Millisecond}
}

// createKey records a key in file before the server starts.
func createKey(t testing.TB, file, owner string, scopes []string, ttl time.Duration) (key, id string) {
	t.Helper()
	key, rec, err := apikey.Create(file, owner, scopes, ttl, "")
	if err != nil {
		t.Fatal(err)
	}
	return key, rec.ID
}

func apiKeyCreds(key string) *authzdv1.Credentials {
	return &authzdv1.Credentials{Kind: &authzdv1.Credentials_ApiKey{ApiKey: key}}
}

func doc(id string) *authzdv1.Resource {
	return &authzdv1.Resource{Type: "document", Id: id}
}
