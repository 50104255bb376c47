package cache

import (
	"context"
	"net"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// RoundTrips is a go-redis hook that counts commands and pipelines sent to
// Redis: one command or one pipeline is one round trip. (A Cluster pipeline
// that spans nodes is counted once; its per-node requests run in parallel.)
// Add it with client.AddHook; read it with Load.
type RoundTrips struct{ n atomic.Uint64 }

var _ redis.Hook = (*RoundTrips)(nil)

// Load returns the count so far.
func (r *RoundTrips) Load() uint64 { return r.n.Load() }

func (r *RoundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

func (r *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}

func (r *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}
