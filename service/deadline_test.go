package service_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
)

// slowPolicy takes far longer than any test deadline: it walks a large
// numbers.range product.
const slowPolicy = `package authzd

import rego.v1

decision := {"allow": true} if {
	input.action == "slow"
	count([x | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000); x := i * j]) > 0
}

decision := {"allow": true} if input.action == "fast"
`

func TestDeadlineHonouredInsidePolicy(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	writeFile(t, filepath.Join(cfg.Policy.Paths[0], "rbac.rego"), slowPolicy)
	cfg.Policy.Timeout = time.Minute // only the request deadline can stop it
	ts := startServer(t, dir, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	resp, err := ts.client.Check(ctx, &authzdv1.CheckRequest{Action: "slow"})
	if err == nil {
		t.Fatalf("a check past its deadline must not answer, got %v", resp)
	}
	if c := status.Code(err); c != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DEADLINE_EXCEEDED", err)
	}
}

func TestPolicyTimeoutDenies(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	writeFile(t, filepath.Join(cfg.Policy.Paths[0], "rbac.rego"), slowPolicy)
	cfg.Policy.Timeout = 50 * time.Millisecond
	ts := startServer(t, dir, cfg)

	resp, err := ts.client.Check(context.Background(), &authzdv1.CheckRequest{Action: "slow"})
	if err != nil {
		t.Fatalf("a policy timeout is a deny, not an error: %v", err)
	}
	if resp.Allowed || len(resp.Reasons) == 0 || resp.Reasons[0] != "policy error: evaluation timed out" {
		t.Fatalf("want a deny with a timeout reason, got %v", resp)
	}
}

func TestShutdownFinishesInFlightChecks(t *testing.T) {
	// The policy calls a local HTTP server that says when the check has
	// started and then holds it, so shutdown certainly begins mid-check.
	started := make(chan struct{})
	var once sync.Once
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		once.Do(func() { close(started) })
		time.Sleep(300 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok": true}`))
	}))
	defer slow.Close()
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	writeFile(t, filepath.Join(cfg.Policy.Paths[0], "rbac.rego"), `package authzd

import rego.v1

decision := {"allow": true, "ttl_seconds": 0} if {
	http.send({"method": "GET", "url": "`+slow.URL+`"}).body.ok
}
`)
	cfg.Policy.Timeout = time.Minute
	cfg.ShutdownTimeout = time.Minute
	ts := startServer(t, dir, cfg)
	type result struct {
		resp *authzdv1.CheckResponse
		err  error
	}
	res := make(chan result, 1)
	go func() {
		r, err := ts.client.Check(context.Background(), &authzdv1.CheckRequest{Action: "a"})
		res <- result{r, err}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the check never reached the policy")
	}
	ts.stop()
	var r result
	select {
	case r = <-res:
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight check was never answered")
	}
	if r.err != nil || !r.resp.Allowed {
		t.Fatalf("in-flight check during shutdown: %v %v", r.resp, r.err)
	}
}
