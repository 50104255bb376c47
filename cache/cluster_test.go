package cache_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authzd/authzd/cache"
	"github.com/authzd/authzd/internal/redistest"
)

// TestClusterSlotMigration moves the slot holding cache entries to another
// master while the cache is in use. During the migration the client gets
// ASK redirects (keys half moved), afterwards MOVED (its slot map is
// stale); every lookup must still be answered from Redis, with no errors.
func TestClusterSlotMigration(t *testing.T) {
	cl := redistest.StartCluster(t)
	cfg := testRedisConfig(cl.Addrs()...)
	cfg.Cluster = true
	client := newClient(t, cfg)
	ctx := context.Background()
	rt := &cache.RoundTrips{}
	client.AddHook(rt)
	r := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "mig"})

	// Find cache keys whose Redis keys share one slot. Generation 0, so the
	// Redis key is t:mig:0:<hex>.
	redisKey := func(k cache.Key) string { return "t:mig:0:" + k.String() }
	first := key("m0")
	slot := redistest.KeySlot(redisKey(first))
	same := []cache.Key{first}
	for i := 1; len(same) < 4; i++ {
		k := key(fmt.Sprint("m", i))
		if redistest.KeySlot(redisKey(k)) == slot {
			same = append(same, k)
		}
	}
	from := cl.NodeFor(t, slot)
	to := (from + 1) % len(cl.Nodes)

	r.Set(ctx, same[0], entry{N: 0}, time.Minute)
	r.Set(ctx, same[1], entry{N: 1}, time.Minute)
	check := func(stage string, ks ...int) {
		t.Helper()
		for _, i := range ks {
			if v, ok := r.Get(ctx, same[i]); !ok || v.N != uint64(i) {
				t.Fatalf("%s: key %d = %v, %v; want a hit", stage, i, v, ok)
			}
		}
	}
	check("before migration", 0, 1)

	cl.MigrateSlot(t, slot, from, to, func() {
		// Keys 0 and 1 were moved to the target, the slot still belongs
		// to the source: reads get ASK and follow it.
		check("mid-migration, moved keys", 0, 1)
		// A new key is written while the slot is migrating.
		r.Set(ctx, same[2], entry{N: 2}, time.Minute)
		check("mid-migration, new key", 2)
	})
	// Ownership changed: the client's slot map is stale and gets MOVED.
	check("after migration", 0, 1, 2)
	r.Set(ctx, same[3], entry{N: 3}, time.Minute)
	check("after migration, new key", 3)

	if st := r.Stats(); st.Breaker.Errors != 0 || st.Breaker.Skipped != 0 {
		t.Fatalf("stats = %+v; a migration must not look like a Redis failure", st)
	}
	// The client did follow ASK redirects (it sent ASKING to the target).
	stats, err := cl.Nodes[to].Client(t).Info(ctx, "commandstats").Result()
	if err != nil || !strings.Contains(stats, "cmdstat_asking:") {
		t.Fatalf("target never received ASKING; the test did not exercise ASK (%v)", err)
	}
	// The keys really live on the new owner now.
	n, err := cl.Nodes[to].Client(t).Exists(ctx, redisKey(same[0]), redisKey(same[3])).Result()
	if err != nil || n != 2 {
		t.Fatalf("EXISTS on the new owner = %d, %v; want 2", n, err)
	}
}

// TestInvalidatorCluster runs two replicas on a Redis Cluster: the flush
// generation (a Lua script on one key) and pub/sub work across masters.
func TestInvalidatorCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	ctx := context.Background()
	type replica struct {
		inv    *cache.Invalidator
		tiered *cache.Tiered[entry]
	}
	newReplica := func() *replica {
		cfg := testRedisConfig(cl.Addrs()...)
		cfg.Cluster = true
		client := newClient(t, cfg)
		inv := cache.NewInvalidator(client, "t:", cache.InvalidatorOptions{Poll: time.Hour})
		r := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "t:", Namespace: "cinv", Tag: entryTag, Generation: inv.Generation()})
		rp := &replica{inv: inv, tiered: cache.NewTiered(cache.NewMemory[entry](cache.MemoryConfig{}), r, cache.TieredOptions{})}
		inv.Handle(func(ctx context.Context, m cache.Invalidation) {
			switch m.Kind {
			case cache.InvalidateAll, cache.InvalidateResync:
				rp.tiered.Local().Clear(ctx)
			case cache.InvalidatePrincipal:
				rp.tiered.DropLocalTag(m.ID)
			}
		})
		inv.Start(ctx)
		t.Cleanup(inv.Close)
		select {
		case <-inv.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("invalidator never subscribed")
		}
		return rp
	}
	a, b := newReplica(), newReplica()
	localHas := func(rp *replica, k string) bool {
		_, ok := rp.tiered.Local().Get(ctx, key(k))
		return ok
	}
	// Entries of one principal spread over several masters.
	for i := range 20 {
		a.tiered.Set(ctx, key(fmt.Sprint("alice", i)), entry{Principal: "alice", N: uint64(i)}, time.Minute)
		if _, ok := b.tiered.Get(ctx, key(fmt.Sprint("alice", i))); !ok {
			t.Fatalf("b misses alice%d written by a", i)
		}
	}
	b.tiered.Set(ctx, key("bob"), entry{Principal: "bob"}, time.Minute)
	if err := a.tiered.FlushTag(ctx, "alice"); err != nil {
		t.Fatalf("FlushTag across slots: %v", err)
	}
	if err := a.inv.Publish(ctx, cache.Invalidation{Kind: cache.InvalidatePrincipal, ID: "alice"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b drops alice locally", func() bool { return !localHas(b, "alice0") && !localHas(b, "alice19") })
	for i := range 20 {
		if _, ok := b.tiered.Get(ctx, key(fmt.Sprint("alice", i))); ok {
			t.Fatalf("alice%d still in the cluster after FlushTag", i)
		}
	}
	if !localHas(b, "bob") {
		t.Fatal("flushing alice dropped bob")
	}
	if err := b.inv.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a sees the flush", func() bool {
		ga, _ := a.inv.Generation().Current()
		gb, _ := b.inv.Generation().Current()
		return ga == gb
	})
	if _, ok := a.tiered.Get(ctx, key("bob")); ok {
		t.Fatal("bob readable on a after flush-all")
	}
}
