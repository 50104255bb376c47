package service

import (
	"strings"
	"testing"
	"time"
)

// TestAPIKeysRedisStaleFor: identity.api_keys.redis.stale_for defaults to
// 5m when absent, an explicit 0 disables serve-stale, negative is refused.
func TestAPIKeysRedisStaleFor(t *testing.T) {
	base := "policy:\n  paths: [.]\nidentity:\n  api_keys:\n    store: redis\n"
	cache := "cache:\n  redis:\n    addrs: [\"127.0.0.1:6379\"]\n"
	for name, tc := range map[string]struct {
		extra string
		want  time.Duration
		err   string
	}{
		"default":  {want: DefaultAPIKeyStaleFor},
		"zero":     {extra: "    redis:\n      stale_for: 0s\n", want: 0},
		"set":      {extra: "    redis:\n      stale_for: 90s\n", want: 90 * time.Second},
		"negative": {extra: "    redis:\n      stale_for: -1s\n", err: "identity.api_keys.redis.stale_for"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(base+tc.extra+cache), t.TempDir())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Identity.APIKeys.Redis.StaleForOrDefault(); got != tc.want {
				t.Fatalf("stale_for = %v, want %v", got, tc.want)
			}
		})
	}
}
