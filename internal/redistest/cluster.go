package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of three masters (no replicas) owned by a test.
type Cluster struct {
	Nodes []*Server
	// IDs are the cluster node ids, in the order of Nodes.
	IDs []string
}

// Addrs returns the addresses of the nodes (the seeds for a cluster client).
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// clusterSlots is the number of hash slots in Redis Cluster.
const clusterSlots = 16384

// StartCluster starts three cluster-enabled redis-servers, splits the hash
// slots between them with CLUSTER ADDSLOTSRANGE, joins them with CLUSTER
// MEET and waits until every node reports cluster_state:ok. No redis-cli is
// needed.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := Binary(t)
	const n = 3
	c := &Cluster{}
	for i := 0; i < n; i++ {
		var s *Server
		var lastErr error
		for attempt := 0; attempt < 3 && s == nil; attempt++ {
			port, err := freePort()
			if err != nil {
				t.Fatalf("redistest: free port: %v", err)
			}
			busPort, err := freePort()
			if err != nil {
				t.Fatalf("redistest: free port: %v", err)
			}
			s, lastErr = start(t, bin, port, []string{
				"cluster-enabled yes",
				"cluster-config-file nodes.conf",
				"cluster-node-timeout 5000",
				"cluster-port " + strconv.Itoa(busPort),
				"cluster-require-full-coverage yes",
			}, nil)
		}
		if s == nil {
			t.Fatalf("redistest: cluster node %d: %v", i, lastErr)
		}
		s.busPort = busPortOf(s)
		c.Nodes = append(c.Nodes, s)
	}

	ctx := context.Background()
	clients := make([]*redis.Client, n)
	for i, s := range c.Nodes {
		clients[i] = s.Client(t)
		id, err := clients[i].ClusterMyID(ctx).Result()
		if err != nil {
			t.Fatalf("redistest: CLUSTER MYID on %s: %v", s.Addr, err)
		}
		c.IDs = append(c.IDs, id)
		lo := i * clusterSlots / n
		hi := (i+1)*clusterSlots/n - 1
		if err := clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE on %s: %v", s.Addr, err)
		}
		// A distinct epoch per node avoids a config-epoch collision round.
		if err := clients[i].Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER SET-CONFIG-EPOCH on %s: %v", s.Addr, err)
		}
	}
	// Every node meets every other one, so nobody waits for gossip to
	// learn about the third node.
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			if i == j {
				continue
			}
			host, port, _ := net.SplitHostPort(c.Nodes[j].Addr)
			// The bus port is not port+10000 here, so MEET must name it.
			if err := clients[i].Do(ctx, "CLUSTER", "MEET", host, port, c.Nodes[j].busPort).Err(); err != nil {
				t.Fatalf("redistest: CLUSTER MEET %s: %v", c.Nodes[j].Addr, err)
			}
		}
	}
	if err := c.waitOK(ctx, clients, 20*time.Second); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return c
}

func (c *Cluster) waitOK(ctx context.Context, clients []*redis.Client, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		ok := true
		for i, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(clients))) {
				ok = false
				last = fmt.Sprintf("node %s: %v %s", c.Nodes[i].Addr, err, firstLine(info))
				break
			}
			// Every node must also agree on who owns every slot.
			slots, err := cl.ClusterSlots(ctx).Result()
			if err != nil || len(slots) != len(clients) {
				ok = false
				last = fmt.Sprintf("node %s sees %d slot ranges (%v)", c.Nodes[i].Addr, len(slots), err)
				break
			}
		}
		if ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("cluster not ready after %s: %s", d, last)
}

func busPortOf(s *Server) int {
	for _, l := range s.extra {
		if p, ok := strings.CutPrefix(l, "cluster-port "); ok {
			n, _ := strconv.Atoi(p)
			return n
		}
	}
	return 0
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Client returns a cluster client for c, closed when t ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { cl.Close() })
	return cl
}

// NodeFor returns the index of the node that owns slot, as node i sees it.
func (c *Cluster) NodeFor(t testing.TB, slot int) int {
	t.Helper()
	cl := c.Nodes[0].Client(t)
	slots, err := cl.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatalf("redistest: CLUSTER SLOTS: %v", err)
	}
	for _, r := range slots {
		if slot >= r.Start && slot <= r.End {
			for i, s := range c.Nodes {
				if len(r.Nodes) > 0 && r.Nodes[0].Addr == s.Addr {
					return i
				}
			}
		}
	}
	t.Fatalf("redistest: no node owns slot %d", slot)
	return -1
}

// MigrateSlot moves slot from node `from` to node `to` the way redis-cli
// --cluster reshard does: mark it importing/migrating, MIGRATE its keys,
// then assign it to `to` on every node. between, when set, runs while the
// slot is half-migrated (some keys moved, ownership not yet changed), which
// is when clients get ASK redirects.
func (c *Cluster) MigrateSlot(t testing.TB, slot, from, to int, between func()) {
	t.Helper()
	ctx := context.Background()
	src, dst := c.Nodes[from].Client(t), c.Nodes[to].Client(t)
	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("redistest: %s: %v", what, err)
		}
	}
	must(dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", c.IDs[from]).Err(), "SETSLOT IMPORTING")
	must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", c.IDs[to]).Err(), "SETSLOT MIGRATING")
	host, port, _ := net.SplitHostPort(c.Nodes[to].Addr)
	moveKeys := func() {
		for {
			keys, err := src.ClusterGetKeysInSlot(ctx, slot, 100).Result()
			must(err, "CLUSTER GETKEYSINSLOT")
			if len(keys) == 0 {
				return
			}
			args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
			for _, k := range keys {
				args = append(args, k)
			}
			must(src.Do(ctx, args...).Err(), "MIGRATE")
		}
	}
	moveKeys()
	if between != nil {
		between()
		moveKeys()
	}
	for i := range c.Nodes {
		must(c.Nodes[i].Client(t).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", c.IDs[to]).Err(), "SETSLOT NODE")
	}
}

// KeySlot returns the cluster hash slot of key (CRC16 of the key or of its
// {hash tag}, mod 16384).
func KeySlot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key) % clusterSlots)
}

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster uses for key slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
