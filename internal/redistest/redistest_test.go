package redistest

import (
	"context"
	"testing"
)

func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	s.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded after Kill")
	}
	s.Restart()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("after restart EXISTS k = %d, %v; want an empty server", n, err)
	}
}

func TestCluster(t *testing.T) {
	cl := StartCluster(t)
	c := cl.Client(t)
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		if err := c.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	// Keys spread over more than one master.
	owners := map[int]bool{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		owners[cl.NodeFor(t, KeySlot(k))] = true
	}
	if len(owners) < 2 {
		t.Fatalf("keys landed on %d masters, want >= 2", len(owners))
	}
	slot, err := c.ClusterKeySlot(ctx, "{user1}.x").Result()
	if err != nil || int(slot) != KeySlot("{user1}.x") {
		t.Fatalf("KeySlot disagrees with CLUSTER KEYSLOT: %d vs %d (%v)", KeySlot("{user1}.x"), slot, err)
	}
}
