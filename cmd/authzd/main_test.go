package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestPolicyTestCommand(t *testing.T) {
	code, out, errOut := runCmd("policy", "test", filepath.Join("..", "..", "examples", "quickstart", "policies"))
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("quickstart policy tests: exit %d\n%s%s", code, out, errOut)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package authzd\nimport rego.v1\ndecision := false\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "p_test.rego"), []byte("package authzd_test\nimport rego.v1\ntest_allows if data.authzd.decision\n"), 0o644)
	code, out, _ = runCmd("policy", "test", dir)
	if code != 1 || !strings.Contains(out, "FAIL") {
		t.Fatalf("failing tests must exit 1 and say FAIL: exit %d\n%s", code, out)
	}
	os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package authzd\ndecision := \n"), 0o644)
	if code, _, errOut := runCmd("policy", "test", dir); code != 2 || !strings.Contains(errOut, "p.rego:") {
		t.Fatalf("broken policy: exit %d, %s", code, errOut)
	}
}

func TestPolicyEvalCommand(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "input.json")
	os.WriteFile(input, []byte(`{"principal": {"id": "a", "scopes": ["read"], "groups": []}, "action": "documents:read", "resource": {"type": "document", "id": "1", "attributes": {}}}`), 0o644)
	code, out, errOut := runCmd("policy", "eval", "--policy", filepath.Join("..", "..", "examples", "quickstart", "policies"), "--input", input)
	if code != 0 || !strings.Contains(out, `"allow": true`) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	os.WriteFile(input, []byte(`{not json`), 0o644)
	if code, _, _ := runCmd("policy", "eval", "--policy", dir, "--input", input); code != 2 {
		t.Fatalf("bad input must exit 2, got %d", code)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serveInBackground runs `authzd serve --config cfg` and waits until its
// gRPC port accepts connections; the channel receives the exit code.
func serveInBackground(t *testing.T, cfg, grpcAddr string) <-chan int {
	t.Helper()
	served := make(chan int, 1)
	go func() {
		c, _, _ := runCmd("serve", "--config", cfg)
		served <- c
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", grpcAddr)
		if err == nil {
			c.Close()
			return served
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRevoked polls `authzd check` until the server denies key as revoked;
// the 2 s bound is a liveness limit, not a performance assertion.
func waitRevoked(t *testing.T, grpcAddr, key, action string) {
	t.Helper()
	for range 100 {
		code, out, _ := runCmd("check", "--addr", grpcAddr, "--api-key", key, "--action", action, "--resource", "document:1")
		if code == 1 && strings.Contains(out, "api key revoked") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the running server never denied the revoked key")
}

// TestServeCheckAndAPIKeys drives the binary's commands the way the README
// does: create a key, serve, check allowed and denied, revoke, and stop the
// server with SIGTERM.
func TestServeCheckAndAPIKeys(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.yaml")
	code, key, errOut := runCmd("apikey", "create", "--file", keys, "--owner", "svc-a", "--scopes", "read,write")
	if code != 0 || !strings.HasPrefix(key, "azd_") {
		t.Fatalf("apikey create: exit %d %q %s", code, key, errOut)
	}
	key = strings.TrimSpace(key)
	code, list, _ := runCmd("apikey", "list", "--file", keys)
	if code != 0 || !strings.Contains(list, "svc-a") || !strings.Contains(list, "read,write") || strings.Contains(list, key) {
		t.Fatalf("apikey list must show owner and scopes but never the key:\n%s", list)
	}

	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "authzd.yaml")
	policies, _ := filepath.Abs(filepath.Join("..", "..", "examples", "quickstart", "policies"))
	os.WriteFile(cfg, []byte("listen: "+grpcAddr+"\nhttp_listen: "+httpAddr+"\npolicy:\n  paths: ["+policies+"]\nidentity:\n  api_keys:\n    file: keys.yaml\n    reload_interval: 50ms\n"), 0o644)

	served := serveInBackground(t, cfg, grpcAddr)

	if code, out, errOut := runCmd("check", "--addr", grpcAddr, "--api-key", key, "--action", "documents:write", "--resource", "document:1"); code != 0 || !strings.HasPrefix(out, "allowed") {
		t.Fatalf("check allowed: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCmd("check", "--addr", grpcAddr, "--api-key", key, "--action", "documents:delete", "--resource", "document:1"); code != 1 || !strings.HasPrefix(out, "denied") {
		t.Fatalf("check denied: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCmd("check", "--addr", grpcAddr, "--action", ""); code != 2 {
		t.Fatalf("check without action: exit %d %s", code, errOut)
	}
	if code, out, _ := runCmd("cache", "flush", "--addr", grpcAddr); code != 0 || !strings.Contains(out, "flushed") {
		t.Fatalf("cache flush: exit %d %s", code, out)
	}

	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	if code, _, errOut := runCmd("apikey", "revoke", "--file", keys, id); code != 0 {
		t.Fatalf("revoke: exit %d %s", code, errOut)
	}
	waitRevoked(t, grpcAddr, key, "documents:write")

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-served:
		if c != 0 {
			t.Fatalf("serve exited %d after SIGTERM, want 0", c)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(cfg, []byte("policy: {paths: [x]}\nlisten: 0.0.0.0:1\n"), 0o644)
	code, _, errOut := runCmd("serve", "--config", cfg)
	if code != 2 || !strings.Contains(errOut, "tls.insecure_plaintext") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if code, _, _ := runCmd("serve"); code != 2 {
		t.Fatalf("serve without config: exit %d", code)
	}
	if code, _, _ := runCmd("nonsense"); code != 2 {
		t.Fatal("unknown command must exit 2")
	}
}
