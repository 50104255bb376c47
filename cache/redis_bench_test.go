package cache_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/authzd/authzd/cache"
	"github.com/authzd/authzd/internal/redistest"
)

// BenchmarkRedisOps measures one Redis cache operation each: a Get that
// hits (plain, and with a value key: HMAC-SHA256 verified), a Set without a
// tag (one SET) and a Set with a tag (one pipeline: SET, SADD, PEXPIRE NX,
// PEXPIRE GT).
func BenchmarkRedisOps(b *testing.B) {
	s := redistest.Start(b)
	ctx := context.Background()
	client := newClient(b, cache.RedisConfig{Addrs: []string{s.Addr}})
	plain := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "b:", Namespace: "plain"})
	tagged := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "b:", Namespace: "tagged", Tag: entryTag})
	signed := cache.NewRedis(client, entryCodec, cache.RedisOptions[entry]{Prefix: "b:", Namespace: "signed", ValueKey: []byte("0123456789abcdef0123456789abcdef")})
	keys := make([]cache.Key, 4096)
	for i := range keys {
		keys[i] = key(strconv.Itoa(i))
	}
	v := entry{Principal: "bench-principal", N: 1}
	b.Run("get-hit", func(b *testing.B) {
		for _, k := range keys {
			plain.Set(ctx, k, v, time.Hour)
		}
		i := 0
		for b.Loop() {
			if _, ok := plain.Get(ctx, keys[i%len(keys)]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("get-hit-signed", func(b *testing.B) {
		for _, k := range keys {
			signed.Set(ctx, k, v, time.Hour)
		}
		i := 0
		for b.Loop() {
			if _, ok := signed.Get(ctx, keys[i%len(keys)]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("set", func(b *testing.B) {
		i := 0
		for b.Loop() {
			plain.Set(ctx, keys[i%len(keys)], v, time.Hour)
			i++
		}
	})
	b.Run("set-tagged", func(b *testing.B) {
		i := 0
		for b.Loop() {
			tagged.Set(ctx, keys[i%len(keys)], v, time.Hour)
			i++
		}
	})
	if st := plain.Stats(); st.Breaker.Errors != 0 {
		b.Fatalf("errors during the benchmark: %+v", st)
	}
}
