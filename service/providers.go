package service

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/identity/apikey"
)

// providerSet is what the service builds from IdentityConfig: the chain and
// the background work that keeps providers fresh (file watchers, key-set
// refreshers).
type providerSet struct {
	chain    *identity.Chain
	runners  []func(ctx context.Context)
	closers  []func()
	apiStore *apikey.FileStore
}

// buildProviders constructs the identity chain in priority order. Each
// adapter adds its block here.
func buildProviders(ctx context.Context, cfg Config, log *slog.Logger) (*providerSet, error) {
	ps := &providerSet{}
	var providers []identity.Provider

	if f := cfg.Identity.APIKeys.File; f != "" {
		store, err := apikey.OpenFile(f, log)
		if err != nil {
			return nil, fmt.Errorf("identity.api_keys.file: %w", err)
		}
		ps.apiStore = store
		every := cfg.Identity.APIKeys.ReloadInterval
		ps.runners = append(ps.runners, func(ctx context.Context) { store.Watch(ctx, every) })
		providers = append(providers, apikey.NewProvider("apikey", store))
	}

	ps.chain = identity.NewChain(providers...)
	return ps, nil
}
