package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"sync"
	"time"
)

// Key is a cache key: the SHA-256 digest of length-prefixed fields.
type Key [sha256.Size]byte

// String returns the key in hex, for logs and remote stores.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Cache stores values of type V under keys for a bounded time.
//
// Get reports a miss for expired entries. Set with ttl <= 0 stores nothing.
// Implementations are safe for concurrent use and never block a caller on a
// failing backend for longer than their configured timeouts: errors are
// counted and treated as misses.
type Cache[V any] interface {
	Get(ctx context.Context, key Key) (V, bool)
	Set(ctx context.Context, key Key, value V, ttl time.Duration)
	Delete(ctx context.Context, key Key)
	// Clear drops every entry.
	Clear(ctx context.Context)
}

// KeyBuilder writes typed, length-prefixed fields into SHA-256.
// The zero value is not usable; call NewKeyBuilder. Builders are pooled:
// Sum returns the builder to the pool, so it must not be used afterwards.
type KeyBuilder struct {
	h       hash.Hash
	buf     [binary.MaxVarintLen64 + 1]byte
	scratch []byte
}

var builders = sync.Pool{New: func() any { return &KeyBuilder{h: sha256.New(), scratch: make([]byte, 0, 256)} }}

// NewKeyBuilder starts a key in namespace ns (e.g. "decision/v1"), so keys
// of different kinds never collide.
func NewKeyBuilder(ns string) *KeyBuilder {
	b := builders.Get().(*KeyBuilder)
	b.h.Reset()
	b.String(ns)
	return b
}

func (b *KeyBuilder) field(tag byte, n int) {
	b.buf[0] = tag
	m := binary.PutUvarint(b.buf[1:], uint64(n))
	b.h.Write(b.buf[:1+m])
}

// String adds a string field.
func (b *KeyBuilder) String(s string) *KeyBuilder {
	b.field('s', len(s))
	// Copy through a reused buffer: sha256 has no WriteString, and
	// io.WriteString would allocate a []byte per field.
	for len(s) > 0 {
		n := min(len(s), cap(b.scratch))
		b.scratch = append(b.scratch[:0], s[:n]...)
		b.h.Write(b.scratch)
		s = s[n:]
	}
	return b
}

// Bytes adds a byte-slice field.
func (b *KeyBuilder) Bytes(p []byte) *KeyBuilder {
	b.field('b', len(p))
	b.h.Write(p)
	return b
}

// Uint adds an unsigned integer field.
func (b *KeyBuilder) Uint(v uint64) *KeyBuilder {
	b.field('u', 8)
	binary.BigEndian.PutUint64(b.buf[:8], v)
	b.h.Write(b.buf[:8])
	return b
}

// Strings adds a list of strings: its length, then each element.
func (b *KeyBuilder) Strings(ss []string) *KeyBuilder {
	b.field('l', len(ss))
	for _, s := range ss {
		b.String(s)
	}
	return b
}

// Sum returns the key and releases the builder.
func (b *KeyBuilder) Sum() Key {
	var k Key
	// Sum into the builder's own buffer: a stack array passed through the
	// hash.Hash interface would escape to the heap.
	b.scratch = b.h.Sum(b.scratch[:0])
	copy(k[:], b.scratch)
	builders.Put(b)
	return k
}

// Noop is the null cache: it stores nothing.
type Noop[V any] struct{}

func (Noop[V]) Get(context.Context, Key) (V, bool) {
	var zero V
	return zero, false
}
func (Noop[V]) Set(context.Context, Key, V, time.Duration) {}
func (Noop[V]) Delete(context.Context, Key)                {}
func (Noop[V]) Clear(context.Context)                      {}

var _ Cache[int] = Noop[int]{}
