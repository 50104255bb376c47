package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestSignature(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	missing := Signature(p)
	os.WriteFile(p, []byte("a"), 0o600)
	first := Signature(p)
	if first == missing {
		t.Fatal("creating the file must change the signature")
	}
	os.WriteFile(p, []byte("ab"), 0o600)
	if Signature(p) == first {
		t.Fatal("a size change must change the signature")
	}
	if Signature(p) != Signature(p) {
		t.Fatal("signatures must be stable")
	}
}

func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		Every(ctx, time.Millisecond, func() {
			if n.Add(1) == 3 {
				cancel()
			}
		})
		close(done)
	}()
	<-done
	if n.Load() < 3 {
		t.Fatalf("fn ran %d times", n.Load())
	}
	Every(context.Background(), 0, func() { t.Fatal("must not run") })
}
