package service

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AUTHZD_TEST_TTL", "30s")
	cfg, err := ParseConfig([]byte(`
listen: 127.0.0.1:7000
policy:
  paths: [policies]
cache:
  decision_ttl: ${AUTHZD_TEST_TTL}
identity:
  api_keys:
    file: ${AUTHZD_TEST_UNSET:-keys.yaml}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7000" || cfg.HTTPListen != DefaultHTTPListen {
		t.Errorf("listen = %q, http = %q", cfg.Listen, cfg.HTTPListen)
	}
	if cfg.Cache.DecisionTTL != 30*time.Second {
		t.Errorf("decision_ttl = %v, want 30s from the environment", cfg.Cache.DecisionTTL)
	}
	if want := filepath.Join(dir, "keys.yaml"); cfg.Identity.APIKeys.File != want {
		t.Errorf("api key file = %q, want %q (default and relative to the config)", cfg.Identity.APIKeys.File, want)
	}
	if want := filepath.Join(dir, "policies"); cfg.Policy.Paths[0] != want {
		t.Errorf("policy path = %q, want %q", cfg.Policy.Paths[0], want)
	}
	if cfg.Policy.DecisionQuery != "data.authzd.decision" || cfg.Limits.MaxBatchItems != 256 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

func TestBadConfig(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"garbage", "listen: [unclosed", "invalid YAML"},
		{"not a map", "just a string", "invalid YAML"},
		{"unknown key", "policy: {paths: [p]}\nlisten_addr: x", "field listen_addr not found"},
		{"no policy", "listen: 127.0.0.1:1", "policy.paths"},
		{"unset env", "policy: {paths: [p]}\nlisten: ${AUTHZD_DEFINITELY_UNSET}", "AUTHZD_DEFINITELY_UNSET"},
		{"bad address", "policy: {paths: [p]}\nlisten: nonsense", "listen:"},
		{"public plaintext", "policy: {paths: [p]}\nlisten: 0.0.0.0:9191", "tls.insecure_plaintext"},
		{"cert without key", "policy: {paths: [p]}\ntls: {cert_file: c.pem}", "cert_file and key_file"},
		{"client ca without tls", "policy: {paths: [p]}\ntls: {client_ca_file: ca.pem}", "client_ca_file"},
		{"bad query", "policy: {paths: [p], decision_query: 'data.x[', }", "policy query"},
		{"negative limit", "policy: {paths: [p]}\nlimits: {max_batch_items: -1}", "limits.max_batch_items"},
		{"bad duration", "policy: {paths: [p]}\ncache: {decision_ttl: soon}", "invalid YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml), t.TempDir())
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfigQuickstart(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("..", "examples", "quickstart", "authzd.yaml"))
	if err != nil {
		t.Fatalf("the quickstart config must load: %v", err)
	}
	if _, err := os.Stat(cfg.Identity.APIKeys.File); err != nil {
		t.Errorf("quickstart key file: %v", err)
	}
}

func TestNewRejectsGarbageKeyFile(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.yaml")
	os.WriteFile(keys, []byte("keys:\n  - id: short\n    hash: md5:abc\n    owner: x\n"), 0o600)
	_, err := New(t.Context(), Config{Policy: regoCfg(dir), Identity: IdentityConfig{APIKeys: APIKeysConfig{File: keys}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "identity.api_keys.file") {
		t.Fatalf("want an error naming identity.api_keys.file, got %v", err)
	}
}

// TestKubernetesExampleConfig checks that the config embedded in the
// Kubernetes example is one authzd accepts.
func TestKubernetesExampleConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "examples", "kubernetes", "authzd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	kinds := map[string]bool{}
	var embedded string
	for {
		var doc struct {
			Kind     string                `yaml:"kind"`
			Metadata struct{ Name string } `yaml:"metadata"`
			Data     map[string]string     `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("manifest is not valid YAML: %v", err)
		}
		kinds[doc.Kind] = true
		if doc.Kind == "ConfigMap" && doc.Metadata.Name == "authzd-config" {
			embedded = doc.Data["authzd.yaml"]
		}
	}
	for _, k := range []string{"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"} {
		if !kinds[k] {
			t.Errorf("manifest has no %s", k)
		}
	}
	t.Setenv("REDIS_PASSWORD", "p")
	t.Setenv("AUTHZD_CACHE_VALUE_KEY", strings.Repeat("k", 64))
	cfg, err := ParseConfig([]byte(embedded), "/etc/authzd/config")
	if err != nil {
		t.Fatalf("embedded config: %v", err)
	}
	if !cfg.TLS.Enabled() || !cfg.Cache.Redis.Enabled() {
		t.Error("the example runs TLS and Redis")
	}
}
