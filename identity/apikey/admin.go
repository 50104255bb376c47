package apikey

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Create generates a key for owner, records its hash in the key file at
// path, and returns the key (to be shown once) with its record.
func Create(path, owner string, scopes []string, ttl time.Duration, description string) (string, *Record, error) {
	owner = strings.TrimSpace(owner)
	if owner == "" {
		return "", nil, errors.New("--owner is required")
	}
	f, err := ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	key, id, err := Generate()
	if err != nil {
		return "", nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	rec := &Record{ID: id, Hash: Hash(key), Owner: owner, Scopes: scopes, Description: description, CreatedAt: now}
	if ttl > 0 {
		rec.ExpiresAt = now.Add(ttl)
	}
	if err := rec.Validate(); err != nil {
		return "", nil, err
	}
	f.Keys = append(f.Keys, rec)
	if err := WriteFile(path, f); err != nil {
		return "", nil, err
	}
	return key, rec, nil
}

// Revoke marks the key with id as revoked in the key file at path.
func Revoke(path, id string) (*Record, error) {
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, r := range f.Keys {
		if r.ID == id {
			if r.RevokedAt.IsZero() {
				r.RevokedAt = time.Now().UTC().Truncate(time.Second)
			}
			return r, WriteFile(path, f)
		}
	}
	return nil, fmt.Errorf("api key %s: %w", id, ErrNotFound)
}
