package apikey

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/internal/atomicfile"
	"github.com/authzd/authzd/internal/filewatch"
)

// Record is the stored form of one key. It never holds the key itself.
type Record struct {
	ID          string    `yaml:"id"`
	Hash        string    `yaml:"hash"`
	Owner       string    `yaml:"owner"`
	Scopes      []string  `yaml:"scopes,omitempty"`
	Description string    `yaml:"description,omitempty"`
	CreatedAt   time.Time `yaml:"created_at"`
	ExpiresAt   time.Time `yaml:"expires_at,omitempty"`
	RevokedAt   time.Time `yaml:"revoked_at,omitempty"`

	sum [sha256.Size]byte
	// principal is built once per record and provider, and shared: it is
	// immutable, and returning the same pointer lets callers reuse what
	// they derived from it.
	principalOnce sync.Once
	principal     *identity.Principal
}

// Sum returns the decoded SHA-256 of the key.
func (r *Record) Sum() [sha256.Size]byte { return r.sum }

// Validate checks a record and decodes its hash.
func (r *Record) Validate() error {
	if len(r.ID) != idLen {
		return fmt.Errorf("id %q: must be %d characters", r.ID, idLen)
	}
	if r.Owner == "" {
		return fmt.Errorf("key %s: owner is required", r.ID)
	}
	sum, err := decodeHash(r.Hash)
	if err != nil {
		return fmt.Errorf("key %s: %w", r.ID, err)
	}
	r.sum = sum
	return nil
}

// ErrNotFound means no record has the id.
var ErrNotFound = errors.New("api key not found")

// Store looks up key records by id.
type Store interface {
	Lookup(ctx context.Context, id string) (*Record, error)
}

// File is the on-disk format of a key file.
type File struct {
	Keys []*Record `yaml:"keys"`
}

// ReadFile parses and validates a key file. A missing file is an empty set.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &File{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseFile(path, b)
}

func parseFile(path string, b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty file decodes to io.EOF: an empty key set.
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("api key file %s: %w", path, err)
	}
	seen := make(map[string]bool, len(f.Keys))
	for i, r := range f.Keys {
		if r == nil {
			return nil, fmt.Errorf("api key file %s: keys[%d] is empty", path, i)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("api key file %s: keys[%d]: %w", path, i, err)
		}
		if seen[r.ID] {
			return nil, fmt.Errorf("api key file %s: keys[%d]: duplicate id %s", path, i, r.ID)
		}
		seen[r.ID] = true
	}
	return &f, nil
}

// WriteFile writes f to path atomically (temp file + rename), mode 0600.
func WriteFile(path string, f *File) error {
	sort.Slice(f.Keys, func(i, j int) bool { return f.Keys[i].CreatedAt.Before(f.Keys[j].CreatedAt) })
	b, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append([]byte("# authzd API keys: hashes only. Manage with `authzd apikey`.\n"), b...), 0o600)
}

// FileStore serves records from a YAML key file and reloads it when it
// changes. A file that fails to parse keeps the last good set serving.
type FileStore struct {
	path string
	log  *slog.Logger
	recs atomic.Pointer[map[string]*Record]

	mu      sync.Mutex
	lastSig string
}

// OpenFile loads path. A missing file is an empty set; a broken one is an
// error.
func OpenFile(path string, log *slog.Logger) (*FileStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &FileStore{path: path, log: log}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

var _ Store = (*FileStore)(nil)

// Lookup returns the record with id.
func (s *FileStore) Lookup(_ context.Context, id string) (*Record, error) {
	m := s.recs.Load()
	if r, ok := (*m)[id]; ok {
		return r, nil
	}
	return nil, ErrNotFound
}

// Reload reads the file now.
func (s *FileStore) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sig := filewatch.Signature(s.path)
	f, err := ReadFile(s.path)
	s.lastSig = sig
	if err != nil {
		return err
	}
	m := make(map[string]*Record, len(f.Keys))
	for _, r := range f.Keys {
		m[r.ID] = r
	}
	s.recs.Store(&m)
	return nil
}

// Watch reloads the file whenever its size or modification time changes,
// until ctx ends.
func (s *FileStore) Watch(ctx context.Context, every time.Duration) {
	filewatch.Every(ctx, every, func() {
		s.mu.Lock()
		changed := filewatch.Signature(s.path) != s.lastSig
		s.mu.Unlock()
		if !changed {
			return
		}
		if err := s.Reload(); err != nil {
			s.log.Error("api key file reload failed; keeping the last good keys", "path", s.path, "error", err)
		} else {
			s.log.Info("api key file reloaded", "path", s.path, "keys", len(*s.recs.Load()))
		}
	})
}
