package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authzd/authzd/internal/redistest"
)

// TestRedisAPIKeysAndFlush drives the commands with API keys and the cache
// in Redis: create and list keys in Redis, serve, check, flush one
// principal, revoke, and see the running server deny the key.
func TestRedisAPIKeysAndFlush(t *testing.T) {
	rs := redistest.Start(t)
	dir := t.TempDir()
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "authzd.yaml")
	policies, _ := filepath.Abs(filepath.Join("..", "..", "examples", "quickstart", "policies"))
	os.WriteFile(cfg, []byte("listen: "+grpcAddr+"\nhttp_listen: "+httpAddr+"\npolicy:\n  paths: ["+policies+"]\n"+
		"identity:\n  api_keys:\n    store: redis\n"+
		"cache:\n  redis:\n    addrs: [\""+rs.Addr+"\"]\n    key_prefix: \"cli:\"\n    read_timeout: 500ms\n"), 0o644)

	code, key, errOut := runCmd("apikey", "create", "--config", cfg, "--owner", "svc-r", "--scopes", "read")
	if code != 0 || !strings.HasPrefix(key, "azd_") {
		t.Fatalf("apikey create: exit %d %q %s", code, key, errOut)
	}
	key = strings.TrimSpace(key)
	code, list, errOut := runCmd("apikey", "list", "--config", cfg)
	if code != 0 || !strings.Contains(list, "svc-r") || strings.Contains(list, key) {
		t.Fatalf("apikey list: exit %d\n%s%s", code, list, errOut)
	}
	// Nothing was written to a file: the keys are in Redis.
	if n, err := rs.Client(t).Exists(t.Context(), "cli:{apikeys}:ids").Result(); err != nil || n != 1 {
		t.Fatalf("key index in Redis: %d, %v", n, err)
	}

	served := serveInBackground(t, cfg, grpcAddr)
	if code, out, errOut := runCmd("check", "--addr", grpcAddr, "--api-key", key, "--action", "documents:read", "--resource", "document:1"); code != 0 || !strings.HasPrefix(out, "allowed") {
		t.Fatalf("check: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCmd("cache", "flush", "--addr", grpcAddr, "--principal", "svc-r"); code != 0 || !strings.Contains(out, "flushed") {
		t.Fatalf("cache flush --principal: exit %d %s%s", code, out, errOut)
	}
	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	if code, _, errOut := runCmd("apikey", "revoke", "--redis", "--config", cfg, id); code != 0 {
		t.Fatalf("revoke: exit %d %s", code, errOut)
	}
	waitRevoked(t, grpcAddr, key, "documents:read")
	if code, list, _ := runCmd("apikey", "list", "--config", cfg); code != 0 || !strings.Contains(list, "revoked") {
		t.Fatalf("list after revoke: exit %d\n%s", code, list)
	}
	if code, _, errOut := runCmd("apikey", "list", "--redis"); code != 2 || !strings.Contains(errOut, "--config") {
		t.Fatalf("--redis without --config: exit %d %s", code, errOut)
	}

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
