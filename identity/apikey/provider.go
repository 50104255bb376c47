package apikey

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/authzd/authzd/identity"
)

// Provider verifies API keys against a Store.
type Provider struct {
	name  string
	store Store
	now   func() time.Time
}

// NewProvider returns a provider named name (default "apikey").
func NewProvider(name string, store Store) *Provider {
	if name == "" {
		name = "apikey"
	}
	return &Provider{name: name, store: store, now: time.Now}
}

var _ identity.Provider = (*Provider)(nil)

// Name implements identity.Provider.
func (p *Provider) Name() string { return p.name }

// Accepts implements identity.Provider.
func (p *Provider) Accepts(k identity.Kind) bool { return k == identity.KindAPIKey }

// Resolve implements identity.Provider. The principal is the key's owner;
// its subject is the key id.
func (p *Provider) Resolve(ctx context.Context, cred identity.Credential) (*identity.Principal, error) {
	if cred.Kind != identity.KindAPIKey {
		return nil, identity.ErrNotMine
	}
	id, err := Parse(cred.Token)
	if err != nil {
		return nil, identity.Invalid(p.name, "malformed api key", err)
	}
	rec, err := p.store.Lookup(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, identity.Invalid(p.name, "unknown api key", err)
	}
	if err != nil {
		return nil, errors.Join(identity.ErrUnavailable, err)
	}
	sum := sha256.Sum256([]byte(cred.Token))
	want := rec.Sum()
	if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
		return nil, identity.Invalid(p.name, "unknown api key", nil)
	}
	now := p.now()
	if !rec.RevokedAt.IsZero() && !now.Before(rec.RevokedAt) {
		return nil, identity.Invalid(p.name, "api key revoked", nil)
	}
	if !rec.ExpiresAt.IsZero() && !now.Before(rec.ExpiresAt) {
		return nil, identity.Invalid(p.name, "api key expired", nil)
	}
	rec.principalOnce.Do(func() {
		rec.principal = &identity.Principal{
			ID:        rec.Owner,
			Provider:  p.name,
			Subject:   rec.ID,
			Type:      "api_key",
			Scopes:    rec.Scopes,
			Claims:    map[string]any{"key_id": rec.ID},
			ExpiresAt: rec.ExpiresAt,
		}
	})
	// Records are not shared between providers, so the name matches.
	return rec.principal, nil
}
