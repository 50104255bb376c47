package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func key(s string) Key { return NewKeyBuilder("test").String(s).Sum() }

func TestMemoryTTL(t *testing.T) {
	ctx := context.Background()
	c := NewMemory[string](MemoryConfig{})
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	c.Set(ctx, key("a"), "A", time.Second)
	c.Set(ctx, key("zero"), "Z", 0)
	if v, ok := c.Get(ctx, key("a")); !ok || v != "A" {
		t.Fatalf("Get a = %q, %v", v, ok)
	}
	if _, ok := c.Get(ctx, key("zero")); ok {
		t.Fatal("a zero TTL must store nothing")
	}
	now = now.Add(time.Second)
	if _, ok := c.Get(ctx, key("a")); ok {
		t.Fatal("an entry must expire at its TTL")
	}
	c.Set(ctx, key("b"), "B", time.Minute)
	c.Delete(ctx, key("b"))
	if _, ok := c.Get(ctx, key("b")); ok {
		t.Fatal("Delete must remove")
	}
	c.Set(ctx, key("c"), "C", time.Minute)
	c.Clear(ctx)
	if _, ok := c.Get(ctx, key("c")); ok || c.Len() != 0 {
		t.Fatal("Clear must remove everything")
	}
}

func TestMemoryBounded(t *testing.T) {
	ctx := context.Background()
	c := NewMemory[int](MemoryConfig{MaxEntries: 640})
	for i := range 10_000 {
		c.Set(ctx, key(fmt.Sprint(i)), i, time.Hour)
	}
	if n := c.Len(); n > 640 {
		t.Fatalf("cache holds %d entries, bound is 640", n)
	}
	// The newest entry is always present.
	if v, ok := c.Get(ctx, key("9999")); !ok || v != 9999 {
		t.Fatalf("newest entry missing: %v %v", v, ok)
	}
}

func TestMemoryDeleteFunc(t *testing.T) {
	ctx := context.Background()
	c := NewMemory[string](MemoryConfig{})
	c.Set(ctx, key("1"), "alice", time.Hour)
	c.Set(ctx, key("2"), "bob", time.Hour)
	c.Set(ctx, key("3"), "alice", time.Hour)
	if n := c.DeleteFunc(func(v string) bool { return v == "alice" }); n != 2 {
		t.Fatalf("deleted %d, want 2", n)
	}
	if _, ok := c.Get(ctx, key("2")); !ok {
		t.Fatal("bob must stay")
	}
}

func TestMemoryConcurrent(t *testing.T) {
	ctx := context.Background()
	c := NewMemory[int](MemoryConfig{MaxEntries: 1000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := key(fmt.Sprint(g, i%300))
				c.Set(ctx, k, i, time.Minute)
				c.Get(ctx, k)
				if i%100 == 0 {
					c.Delete(ctx, k)
				}
			}
		}()
	}
	wg.Wait()
}

func TestKeyBuilderIsCollisionFree(t *testing.T) {
	pairs := [][2]Key{
		{NewKeyBuilder("n").String("ab").String("c").Sum(), NewKeyBuilder("n").String("a").String("bc").Sum()},
		{NewKeyBuilder("n").Strings([]string{"a", "b"}).Sum(), NewKeyBuilder("n").Strings([]string{"ab"}).Sum()},
		{NewKeyBuilder("n").String("x").Sum(), NewKeyBuilder("n").Bytes([]byte("x")).Sum()},
		{NewKeyBuilder("n1").String("x").Sum(), NewKeyBuilder("n").String("1x").Sum()},
		{NewKeyBuilder("n").Strings(nil).String("a").Sum(), NewKeyBuilder("n").Strings([]string{"a"}).Sum()},
	}
	for i, p := range pairs {
		if p[0] == p[1] {
			t.Errorf("pair %d collides", i)
		}
	}
	if NewKeyBuilder("n").String("a").Uint(7).Sum() != NewKeyBuilder("n").String("a").Uint(7).Sum() {
		t.Error("keys must be deterministic")
	}
}

func BenchmarkMemoryGetParallel(b *testing.B) {
	ctx := context.Background()
	c := NewMemory[int](MemoryConfig{})
	keys := make([]Key, 1024)
	for i := range keys {
		keys[i] = key(fmt.Sprint(i))
		c.Set(ctx, keys[i], i, time.Hour)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(ctx, keys[i&1023])
			i++
		}
	})
}
