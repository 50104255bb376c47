package identity

import (
	"context"
	"errors"
	"fmt"
)

// Chain routes a credential to the providers that accept its kind, in the
// configured order. The first provider that does not answer ErrNotMine
// decides: a principal, an invalid credential, or unavailable.
type Chain struct {
	byKind [KindAWSSigV4 + 1][]Provider
	all    []Provider
}

// NewChain builds a chain from providers in priority order.
func NewChain(providers ...Provider) *Chain {
	c := &Chain{all: providers}
	for _, p := range providers {
		for k := KindBearer; k <= KindAWSSigV4; k++ {
			if p.Accepts(k) {
				c.byKind[k] = append(c.byKind[k], p)
			}
		}
	}
	return c
}

// Providers returns the providers in order.
func (c *Chain) Providers() []Provider { return c.all }

// Provider returns the provider that would be tried first for kind, or nil.
// It lets callers check whether a kind is served at all.
func (c *Chain) Handles(kind Kind) bool {
	return int(kind) < len(c.byKind) && len(c.byKind[kind]) > 0
}

// Resolve verifies cred. A KindNone credential yields (nil, nil): anonymous.
func (c *Chain) Resolve(ctx context.Context, cred Credential) (*Principal, Provider, error) {
	if cred.Kind == KindNone {
		return nil, nil, nil
	}
	if int(cred.Kind) >= len(c.byKind) {
		return nil, nil, fmt.Errorf("%w: unknown credential kind %s", ErrNoProvider, cred.Kind)
	}
	var notMine []error
	for _, p := range c.byKind[cred.Kind] {
		pr, err := p.Resolve(ctx, cred)
		if err == nil {
			if pr == nil {
				// A provider bug must never become an allow.
				return nil, p, Invalid(p.Name(), "provider returned no principal", nil)
			}
			return pr, p, nil
		}
		if errors.Is(err, ErrNotMine) {
			notMine = append(notMine, fmt.Errorf("%s: %w", p.Name(), err))
			continue
		}
		return nil, p, err
	}
	if len(notMine) > 0 {
		return nil, nil, fmt.Errorf("%w (%s): %w", ErrNoProvider, cred.Kind, errors.Join(notMine...))
	}
	return nil, nil, fmt.Errorf("%w (%s)", ErrNoProvider, cred.Kind)
}
