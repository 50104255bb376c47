// Package filewatch polls files for changes. Polling (rather than inotify)
// follows Kubernetes ConfigMap and Secret updates, which swap symlinks, and
// works the same on every file system.
package filewatch

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// Signature summarises the size and modification time of each path, so a
// change can be noticed without reading the files. A missing file has its
// own marker.
func Signature(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		if p == "" {
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s:missing;", p)
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", p, info.Size(), info.ModTime().UnixNano())
	}
	return b.String()
}

// Every calls fn every interval until ctx ends. A non-positive interval
// returns at once.
func Every(ctx context.Context, interval time.Duration, fn func()) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
