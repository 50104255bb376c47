package cache

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures a Redis cache.
type RedisOptions[V any] struct {
	// Prefix starts every key, e.g. "authzd:".
	Prefix string
	// Namespace separates caches sharing one Redis, e.g. "decision".
	Namespace string
	// Tag, when set, names the group an entry belongs to (for authzd, the
	// principal id), so FlushTag can drop a group. Entries with an empty
	// tag are not grouped.
	Tag func(V) string
	// Breaker decides when Redis is skipped. Caches on one client should
	// share one. Nil: a breaker with default settings.
	Breaker *Breaker
	// Generation is the shared flush generation. Caches on one client
	// should share the Invalidator's. Nil: a generation of this namespace.
	Generation *Generation
	// ValueKey, when set, authenticates every value with HMAC-SHA256 over
	// its Redis key and bytes: an entry written by anyone without the key
	// (or moved to another key) is a miss, so write access to Redis is not
	// enough to forge a cached decision. Every replica needs the same key.
	ValueKey []byte
}

// Redis is a Cache stored in Redis. Values are encoded with a Codec inside a
// small envelope that carries the entry's expiry, so a two-tier cache can
// keep a local copy exactly as long as Redis does.
//
// Every error is a miss: Redis being slow or down never fails a caller. A
// breaker skips Redis after repeated errors and lets a probe through later.
//
// Key layout (prefix "authzd:", namespace "decision", generation 7):
//
//	authzd:decision:7:<hex sha256 key>        the entry
//	authzd:decision:7:tag:<hex sha256 tag>    set of entry keys with one tag
type Redis[V any] struct {
	client  redis.UniversalClient
	codec   Codec[V]
	tag     func(V) string
	breaker *Breaker
	gen     *Generation
	base    string // prefix + namespace + ":"
	mac     []byte // HMAC key; nil: values are not authenticated
	now     func() time.Time

	hits, misses, decodeErrors atomic.Uint64
}

var _ Cache[int] = (*Redis[int])(nil)

// envelopeVersion is the first byte of every value this package writes. It
// is followed by the expiry (unix milliseconds, 8 bytes big-endian) and the
// codec's own bytes, which start with the codec's format version.
// envelopeSigned is the same followed by an HMAC-SHA256 of the Redis key and
// everything before the MAC. A cache reads only the kind it writes.
const (
	envelopeVersion = 0xA1
	envelopeSigned  = 0xA2
)

const envelopeHeader = 1 + 8

// NewRedis returns a cache in client under opts.Prefix + opts.Namespace.
func NewRedis[V any](client redis.UniversalClient, codec Codec[V], opts RedisOptions[V]) *Redis[V] {
	base := opts.Prefix + opts.Namespace + ":"
	b := opts.Breaker
	if b == nil {
		b = NewBreaker(BreakerConfig{})
	}
	g := opts.Generation
	if g == nil {
		g = NewGeneration(client, base+"gen")
	}
	return &Redis[V]{client: client, codec: codec, tag: opts.Tag, breaker: b, gen: g, base: base, mac: opts.ValueKey, now: time.Now}
}

// Breaker returns the breaker guarding this cache.
func (c *Redis[V]) Breaker() *Breaker { return c.breaker }

// Generation returns the flush generation in use.
func (c *Redis[V]) Generation() *Generation { return c.gen }

// Tag returns the tag function, or nil.
func (c *Redis[V]) Tag() func(V) string { return c.tag }

// done classifies a Redis result for the breaker and reports whether it
// was a usable answer.
func (c *Redis[V]) done(ctx context.Context, err error) bool {
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		c.breaker.Success()
		return true
	case ctx.Err() != nil:
		// The caller gave up; that says nothing about Redis.
		c.breaker.Neutral()
	default:
		c.breaker.FailureErr(err)
	}
	return false
}

// generation returns the current flush generation, reading it once from
// Redis if this process has never seen it.
func (c *Redis[V]) generation(ctx context.Context) (uint64, bool) {
	if g, ok := c.gen.Current(); ok {
		return g, true
	}
	if !c.breaker.Allow() {
		return 0, false
	}
	_, err := c.gen.Refresh(ctx)
	if !c.done(ctx, err) {
		return 0, false
	}
	return c.gen.Current()
}

func (c *Redis[V]) key(gen uint64, k Key) string {
	buf := make([]byte, 0, len(c.base)+20+1+2*len(k))
	buf = append(buf, c.base...)
	buf = strconv.AppendUint(buf, gen, 10)
	buf = append(buf, ':')
	buf = hex.AppendEncode(buf, k[:])
	return string(buf)
}

func (c *Redis[V]) tagKey(gen uint64, tag string) string {
	sum := sha256.Sum256([]byte(tag))
	buf := make([]byte, 0, len(c.base)+20+5+2*len(sum))
	buf = append(buf, c.base...)
	buf = strconv.AppendUint(buf, gen, 10)
	buf = append(buf, ":tag:"...)
	buf = hex.AppendEncode(buf, sum[:])
	return string(buf)
}

// Get returns the live value under key. Any error is a miss.
func (c *Redis[V]) Get(ctx context.Context, key Key) (V, bool) {
	v, _, ok := c.GetWithExpiry(ctx, key)
	return v, ok
}

// GetWithExpiry returns the live value under key and when it expires. It
// costs one Redis round trip (plus one the first time this process reads
// the flush generation), or none while the breaker is open.
func (c *Redis[V]) GetWithExpiry(ctx context.Context, key Key) (V, time.Time, bool) {
	var zero V
	gen, ok := c.generation(ctx)
	if !ok || !c.breaker.Allow() {
		c.misses.Add(1)
		return zero, time.Time{}, false
	}
	k := c.key(gen, key)
	b, err := c.client.Get(ctx, k).Bytes()
	if !c.done(ctx, err) || err != nil {
		c.misses.Add(1)
		return zero, time.Time{}, false
	}
	v, exp, err := c.decode(k, b)
	if err != nil || !exp.After(c.now()) {
		if err != nil {
			c.decodeErrors.Add(1)
		}
		c.misses.Add(1)
		return zero, time.Time{}, false
	}
	c.hits.Add(1)
	return v, exp, true
}

// errBadMAC is a value whose authentication failed.
var errBadMAC = errors.New("cache: value authentication failed")

func (c *Redis[V]) decode(redisKey string, b []byte) (V, time.Time, error) {
	var zero V
	want := byte(envelopeVersion)
	if c.mac != nil {
		want = envelopeSigned
	}
	if len(b) < envelopeHeader || b[0] != want {
		return zero, time.Time{}, ErrUnknownVersion
	}
	if c.mac != nil {
		if len(b) < envelopeHeader+sha256.Size {
			return zero, time.Time{}, errBadMAC
		}
		body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
		if !hmac.Equal(sum, c.sign(nil, redisKey, body)) {
			return zero, time.Time{}, errBadMAC
		}
		b = body
	}
	exp := time.UnixMilli(int64(binary.BigEndian.Uint64(b[1:envelopeHeader])))
	v, err := c.codec.Unmarshal(b[envelopeHeader:])
	return v, exp, err
}

// sign appends HMAC-SHA256(key, len(redisKey) || redisKey || body) to dst.
func (c *Redis[V]) sign(dst []byte, redisKey string, body []byte) []byte {
	m := hmac.New(sha256.New, c.mac)
	var n [binary.MaxVarintLen64]byte
	m.Write(n[:binary.PutUvarint(n[:], uint64(len(redisKey)))])
	io.WriteString(m, redisKey)
	m.Write(body)
	return m.Sum(dst)
}

// Set stores value under key for ttl. Errors are counted and dropped.
func (c *Redis[V]) Set(ctx context.Context, key Key, value V, ttl time.Duration) {
	if ttl < time.Millisecond {
		return
	}
	data, err := c.codec.Marshal(value)
	if err != nil {
		return
	}
	gen, ok := c.generation(ctx)
	if !ok || !c.breaker.Allow() {
		return
	}
	buf := make([]byte, envelopeHeader, envelopeHeader+len(data)+sha256.Size)
	buf[0] = envelopeVersion
	binary.BigEndian.PutUint64(buf[1:], uint64(c.now().Add(ttl).UnixMilli()))
	buf = append(buf, data...)
	k := c.key(gen, key)
	if c.mac != nil {
		buf[0] = envelopeSigned
		buf = c.sign(buf, k, buf)
	}

	var tag string
	if c.tag != nil {
		tag = c.tag(value)
	}
	if tag == "" {
		c.done(ctx, c.client.Set(ctx, k, buf, ttl).Err())
		return
	}
	// The tag set lives as long as its longest-lived member: NX sets a TTL
	// on a new set, GT only ever extends it (Redis >= 7.0).
	tk := c.tagKey(gen, tag)
	_, err = c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, k, buf, ttl)
		p.SAdd(ctx, tk, k)
		ms := ttl.Milliseconds()
		p.Do(ctx, "PEXPIRE", tk, ms, "NX")
		p.Do(ctx, "PEXPIRE", tk, ms, "GT")
		return nil
	})
	c.done(ctx, err)
}

// Delete removes key.
func (c *Redis[V]) Delete(ctx context.Context, key Key) {
	gen, ok := c.generation(ctx)
	if !ok || !c.breaker.Allow() {
		return
	}
	c.done(ctx, c.client.Unlink(ctx, c.key(gen, key)).Err())
}

// Clear drops every entry by bumping the flush generation (shared by every
// cache that shares the Generation). It does not go through the breaker: a
// flush is an operator action that must report failure, see Flush.
func (c *Redis[V]) Clear(ctx context.Context) {
	_ = c.Flush(ctx)
}

// Flush is Clear with an error.
func (c *Redis[V]) Flush(ctx context.Context) error {
	_, err := c.gen.Bump(ctx)
	return err
}

// FlushTag drops every entry stored with tag under the current generation.
// It is an operator action: it bypasses the breaker and returns errors.
func (c *Redis[V]) FlushTag(ctx context.Context, tag string) (int, error) {
	gen, ok := c.gen.Current()
	if !ok {
		if _, err := c.gen.Refresh(ctx); err != nil {
			return 0, err
		}
		gen, _ = c.gen.Current()
	}
	tk := c.tagKey(gen, tag)
	keys, err := c.client.SMembers(ctx, tk).Result()
	if err != nil {
		return 0, err
	}
	// One UNLINK per key: in a Cluster the keys live in different slots, and
	// go-redis routes each command of a pipeline to its node.
	const batch = 512
	dropped := len(keys)
	keys = append(keys, tk)
	for len(keys) > 0 {
		n := min(batch, len(keys))
		chunk := keys[:n]
		keys = keys[n:]
		if _, err := c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range chunk {
				p.Unlink(ctx, k)
			}
			return nil
		}); err != nil {
			return 0, err
		}
	}
	return dropped, nil
}

// RedisStats counts what a Redis cache saw since creation.
type RedisStats struct {
	Hits, Misses uint64
	// DecodeErrors counts entries that could not be read (unknown format
	// version or corrupt bytes); each was a miss.
	DecodeErrors uint64
	Breaker      BreakerStats
}

// Stats returns the counters.
func (c *Redis[V]) Stats() RedisStats {
	return RedisStats{Hits: c.hits.Load(), Misses: c.misses.Load(), DecodeErrors: c.decodeErrors.Load(), Breaker: c.breaker.Stats()}
}
