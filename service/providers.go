package service

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/authzd/authzd/cache"
	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/identity/apikey"
	"github.com/authzd/authzd/identity/awsiam"
	"github.com/authzd/authzd/identity/jwt"
	"github.com/authzd/authzd/internal/breaker"
)

// providerSet is what the service builds from IdentityConfig: the chain and
// the background work that keeps providers fresh (file watchers, key-set
// refreshers).
type providerSet struct {
	chain    *identity.Chain
	runners  []func(ctx context.Context)
	closers  []func()
	apiStore *apikey.FileStore
	// redisKeys is set when API keys live in Redis.
	redisKeys *apikey.RedisStore
}

// buildProviders constructs the identity chain in priority order. Each
// adapter adds its block here.
func buildProviders(ctx context.Context, cfg Config, log *slog.Logger) (_ *providerSet, err error) {
	ps := &providerSet{}
	defer func() {
		if err != nil {
			for _, c := range ps.closers {
				c()
			}
		}
	}()
	var providers []identity.Provider

	if cfg.Identity.APIKeys.Store == APIKeyStoreRedis {
		store, closeStore, err := OpenRedisKeyStore(cfg, log)
		if err != nil {
			return nil, err
		}
		ps.redisKeys = store
		ps.runners = append(ps.runners, store.Watch)
		ps.closers = append(ps.closers, closeStore)
		providers = append(providers, apikey.NewProvider("apikey", store))
	} else if f := cfg.Identity.APIKeys.File; f != "" {
		store, err := apikey.OpenFile(f, log)
		if err != nil {
			return nil, fmt.Errorf("identity.api_keys.file: %w", err)
		}
		ps.apiStore = store
		every := cfg.Identity.APIKeys.ReloadInterval
		ps.runners = append(ps.runners, func(ctx context.Context) { store.Watch(ctx, every) })
		providers = append(providers, apikey.NewProvider("apikey", store))
	}

	if jc := cfg.Identity.JWT; jc != nil {
		// An unreachable issuer does not fail start-up: the provider
		// reports it through readiness and keeps retrying.
		p, err := jwt.New(ctx, *jc, jwt.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("identity.jwt: %w", err)
		}
		ps.closers = append(ps.closers, p.Close)
		providers = append(providers, p)
	}

	if aws := cfg.Identity.AWSIAM; aws.Enabled() {
		set, err := awsiam.New("aws-iam", aws)
		if err != nil {
			return nil, fmt.Errorf("identity.aws_iam: %w", err)
		}
		if set.Keys != nil {
			ps.runners = append(ps.runners, func(ctx context.Context) { set.Watch(ctx, log) })
		}
		providers = append(providers, set.Providers...)
	}

	ps.chain = identity.NewChain(providers...)
	return ps, nil
}

// OpenRedisKeyStore opens the Redis API-key store on the connection
// configured in cache.redis (its own pool), for the server and the CLI.
func OpenRedisKeyStore(cfg Config, log *slog.Logger) (*apikey.RedisStore, func(), error) {
	rc := cfg.Cache.Redis.WithDefaults()
	client, err := cache.NewUniversalClient(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("identity.api_keys.store: %w", err)
	}
	store := apikey.NewRedisStore(client, apikey.RedisStoreOptions{
		Prefix: rc.KeyPrefix, Logger: log, StaleFor: cfg.Identity.APIKeys.Redis.StaleForOrDefault(),
		Breaker: breaker.Config{Failures: rc.Breaker.Failures, OpenFor: rc.Breaker.OpenFor},
	})
	return store, func() { _ = client.Close() }, nil
}
