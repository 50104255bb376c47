package service_test

import (
	"context"
	"testing"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/internal/redistest"
	"github.com/authzd/authzd/service"
)

// TestRedisAPIKeyServeStale: with API keys in Redis and Redis killed, a key
// the replica verified before keeps working (answered from memory, and
// counted), a key it never saw is not allowed.
func TestRedisAPIKeyServeStale(t *testing.T) {
	rs := redistest.Start(t)
	a, _ := redisPair(t, rs.Addr, func(c *service.Config) {
		c.Identity.APIKeys = service.APIKeysConfig{Store: service.APIKeyStoreRedis}
	})
	store := openE2EKeyStore(t, rs.Addr)
	ctx := context.Background()
	known, _, err := store.Create(ctx, "svc-known", []string{"read"}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	unseen, _, err := store.Create(ctx, "svc-unseen", []string{"read"}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if r := check(t, a, known, "documents:read", "1"); !r.Allowed {
		t.Fatalf("before the outage: %v", r)
	}

	rs.Kill()
	eventually(t, "the known key is answered from memory", func() bool {
		if r := check(t, a, known, "documents:read", "1"); !r.Allowed {
			t.Fatalf("known key with Redis down: %v", r)
		}
		return metricValue(t, a, "authzd_apikey_store_served_stale_total") > 0
	})
	resp, err := a.client.Check(ctx, &authzdv1.CheckRequest{Credentials: apiKeyCreds(unseen), Action: "documents:read", Resource: doc("1")})
	if err == nil && resp.Allowed {
		t.Fatalf("a key the replica never saw was allowed with Redis down: %v", resp)
	}
	if metricValue(t, a, "authzd_apikey_store_unavailable_total") == 0 || metricValue(t, a, "authzd_apikey_store_redis_errors_total") == 0 {
		t.Fatal("unavailable lookups and Redis errors not counted")
	}
}
