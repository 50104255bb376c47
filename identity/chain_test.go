package identity

import (
	"context"
	"errors"
	"testing"
)

type fakeProvider struct {
	name string
	kind Kind
	fn   func(Credential) (*Principal, error)
}

func (f fakeProvider) Name() string        { return f.name }
func (f fakeProvider) Accepts(k Kind) bool { return k == f.kind }
func (f fakeProvider) Resolve(_ context.Context, c Credential) (*Principal, error) {
	return f.fn(c)
}

func TestChainRouting(t *testing.T) {
	notMine := fakeProvider{"first", KindBearer, func(Credential) (*Principal, error) { return nil, ErrNotMine }}
	second := fakeProvider{"second", KindBearer, func(c Credential) (*Principal, error) {
		if c.Token == "bad" {
			return nil, Invalid("second", "bad token", nil)
		}
		if c.Token == "down" {
			return nil, errors.Join(ErrUnavailable, errors.New("jwks fetch failed"))
		}
		if c.Token == "buggy" {
			return nil, nil
		}
		return &Principal{ID: "u"}, nil
	}}
	never := fakeProvider{"third", KindBearer, func(Credential) (*Principal, error) { panic("must not be reached") }}
	c := NewChain(notMine, second, never)
	ctx := context.Background()

	if p, prov, err := c.Resolve(ctx, Credential{Kind: KindBearer, Token: "ok"}); err != nil || p.ID != "u" || prov.Name() != "second" {
		t.Fatalf("ok: %v %v %v", p, prov, err)
	}
	if _, _, err := c.Resolve(ctx, Credential{Kind: KindBearer, Token: "bad"}); !IsInvalid(err) {
		t.Fatalf("bad: %v, want invalid", err)
	}
	if _, _, err := c.Resolve(ctx, Credential{Kind: KindBearer, Token: "down"}); !errors.Is(err, ErrUnavailable) || IsInvalid(err) {
		t.Fatalf("down: %v, want unavailable", err)
	}
	if _, _, err := c.Resolve(ctx, Credential{Kind: KindBearer, Token: "buggy"}); !IsInvalid(err) {
		t.Fatalf("a provider returning no principal must be an invalid credential, got %v", err)
	}
	if p, _, err := c.Resolve(ctx, Credential{Kind: KindNone}); p != nil || err != nil {
		t.Fatalf("none: %v %v", p, err)
	}
	if _, _, err := c.Resolve(ctx, Credential{Kind: KindAPIKey, Token: "k"}); !errors.Is(err, ErrNoProvider) {
		t.Fatalf("unserved kind: %v", err)
	}
	if _, _, err := NewChain(notMine).Resolve(ctx, Credential{Kind: KindBearer, Token: "x"}); !errors.Is(err, ErrNoProvider) {
		t.Fatalf("nobody claims it: %v", err)
	}
}
