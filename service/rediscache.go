package service

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/authzd/authzd/cache"
	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/identity"
)

// Format versions of the values authzd writes to Redis. Bump one when a
// change to the message would make an older build misread it; older and
// newer builds then treat each other's entries as misses.
const (
	identityFormat = 1
	decisionFormat = 1
)

// Redis namespaces under cache.redis.key_prefix.
const (
	redisIdentityNS = "identity"
	redisDecisionNS = "decision"
)

// identityCodec stores a resolved identity as authzd.v1.CachedIdentity.
var identityCodec = cache.VersionedCodec[*resolved]{
	Version: identityFormat,
	Encode: func(dst []byte, r *resolved) ([]byte, error) {
		m := &authzdv1.CachedIdentity{}
		var ce *identity.CredentialError
		switch {
		case r.err != nil && errors.As(r.err, &ce):
			m.ErrorProvider, m.ErrorReason = ce.Provider, ce.Reason
			if m.ErrorReason == "" {
				m.ErrorReason = "invalid credential"
			}
		case r.revalidate:
			// Entries of providers that verify every request (API keys)
			// are local shortcuts, never shared: a replica that read one
			// would skip the verification (and so a revocation).
			return nil, errors.New("revalidating entries are not shared")
		case r.err != nil:
			return nil, errors.New("only credential errors are cached")
		case r.principal == nil:
			return nil, errors.New("no principal")
		default:
			m.Principal = r.proto
			if !r.principal.ExpiresAt.IsZero() {
				m.ExpiresAtUnixMs = r.principal.ExpiresAt.UnixMilli()
			}
		}
		return proto.MarshalOptions{}.MarshalAppend(dst, m)
	},
	Decode: func(b []byte) (*resolved, error) {
		var m authzdv1.CachedIdentity
		if err := proto.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		if m.ErrorReason != "" {
			return &resolved{err: identity.Invalid(m.ErrorProvider, m.ErrorReason, nil)}, nil
		}
		pb := m.GetPrincipal()
		if pb == nil || pb.GetId() == "" {
			return nil, errors.New("cached identity without a principal")
		}
		p := &identity.Principal{
			ID: pb.GetId(), Provider: pb.GetProvider(), Issuer: pb.GetIssuer(), Subject: pb.GetSubject(),
			Type: pb.GetType(), Groups: pb.GetGroups(), Scopes: pb.GetScopes(),
		}
		if c := pb.GetClaims(); c != nil {
			p.Claims = c.AsMap()
		}
		if m.ExpiresAtUnixMs != 0 {
			p.ExpiresAt = time.UnixMilli(m.ExpiresAtUnixMs)
		}
		return newResolved(p), nil
	},
}

// decisionCodec stores a decision as authzd.v1.CachedDecision.
var decisionCodec = cache.VersionedCodec[*cachedDecision]{
	Version: decisionFormat,
	Encode: func(dst []byte, d *cachedDecision) ([]byte, error) {
		m := &authzdv1.CachedDecision{Allowed: d.allow, Reasons: d.reasons, Headers: d.headers, PrincipalId: d.principalID}
		if d.envoy != nil {
			b, err := marshalEnvoyResult(d.envoy)
			if err != nil {
				return nil, err
			}
			m.EnvoyResult = b
		}
		return proto.MarshalOptions{Deterministic: true}.MarshalAppend(dst, m)
	},
	Decode: func(b []byte) (*cachedDecision, error) {
		var m authzdv1.CachedDecision
		if err := proto.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		d := &cachedDecision{allow: m.Allowed, reasons: m.Reasons, headers: m.Headers, principalID: m.PrincipalId}
		if len(m.EnvoyResult) > 0 {
			r, err := unmarshalEnvoyResult(m.EnvoyResult)
			if err != nil {
				return nil, err
			}
			if r.allowed != d.allow {
				return nil, errors.New("cached envoy result disagrees with allowed")
			}
			d.envoy = r
		}
		if !d.allow && len(d.reasons) == 0 {
			d.reasons = []string{"denied by policy"}
		}
		return d, nil
	},
}

func identityTag(r *resolved) string {
	if r.principal == nil {
		return ""
	}
	return r.principal.ID
}

func decisionTag(d *cachedDecision) string { return d.principalID }

// redisTier is the shared Redis tier: one client, one breaker, the
// invalidation channel, and the Redis halves of the two caches.
type redisTier struct {
	client   redis.UniversalClient
	inv      *cache.Invalidator
	breaker  *cache.Breaker
	idCache  *cache.Tiered[*resolved]
	decCache *cache.Tiered[*cachedDecision]
	log      *slog.Logger
}

// newRedisTier connects the Authorizer's caches to Redis: memory stays in
// front, Redis behind it. It does no I/O; run starts the subscriber.
func newRedisTier(cfg cache.RedisConfig, a *Authorizer, memCfg cache.MemoryConfig, log *slog.Logger, m *metrics) (*redisTier, error) {
	cfg = cfg.WithDefaults()
	client, err := cache.NewUniversalClient(cfg)
	if err != nil {
		return nil, err
	}
	t := &redisTier{client: client, breaker: cache.NewBreaker(cfg.Breaker), log: log}
	t.breaker.OnChange(func(state int) {
		switch state {
		case cache.BreakerOpen:
			log.Warn("redis cache unavailable; skipping it and answering from memory and policy",
				"open_for", cfg.Breaker.OpenFor, "error", t.breaker.Stats().LastError)
		case cache.BreakerClosed:
			log.Info("redis cache back in use")
		}
	})
	t.inv = cache.NewInvalidator(client, cfg.KeyPrefix, cache.InvalidatorOptions{Poll: cfg.InvalidationPoll, Logger: log})
	gen := t.inv.Generation()
	var valueKey []byte
	if cfg.ValueKey != "" {
		valueKey = []byte(cfg.ValueKey)
	}
	t.idCache = cache.NewTiered(cache.NewMemory[*resolved](memCfg),
		cache.NewRedis(client, identityCodec, cache.RedisOptions[*resolved]{
			Prefix: cfg.KeyPrefix, Namespace: redisIdentityNS, Tag: identityTag, Breaker: t.breaker, Generation: gen, ValueKey: valueKey,
		}), cache.TieredOptions{MaxLocalTTL: cfg.MaxLocalTTL})
	t.decCache = cache.NewTiered(cache.NewMemory[*cachedDecision](memCfg),
		cache.NewRedis(client, decisionCodec, cache.RedisOptions[*cachedDecision]{
			Prefix: cfg.KeyPrefix, Namespace: redisDecisionNS, Tag: decisionTag, Breaker: t.breaker, Generation: gen, ValueKey: valueKey,
		}), cache.TieredOptions{MaxLocalTTL: cfg.MaxLocalTTL})

	a.idCache = t.idCache
	a.idLocal = t.idCache.Local()
	if _, off := a.decCache.(cache.Noop[*cachedDecision]); !off {
		a.decCache = t.decCache
	}
	a.redis = t
	t.inv.Handle(t.apply)
	t.registerMetrics(m.reg)
	return t, nil
}

// apply drops this replica's local entries for an invalidation from any
// replica (this one included).
func (t *redisTier) apply(ctx context.Context, m cache.Invalidation) {
	switch m.Kind {
	case cache.InvalidateAll, cache.InvalidateResync:
		t.idCache.Local().Clear(ctx)
		t.decCache.Local().Clear(ctx)
	case cache.InvalidatePrincipal:
		t.idCache.DropLocalTag(m.ID)
		t.decCache.DropLocalTag(m.ID)
	}
}

// run keeps the invalidation subscription until ctx ends.
func (t *redisTier) run(ctx context.Context) {
	t.inv.Start(ctx)
	<-ctx.Done()
	t.inv.Close()
}

func (t *redisTier) close() { _ = t.client.Close() }

// status is the Redis tier's line in /readyz.
func (t *redisTier) status() string {
	switch t.breaker.State() {
	case cache.BreakerOpen:
		return "unavailable: breaker open, answering from memory and policy"
	case cache.BreakerHalfOpen:
		return "probing: breaker half-open"
	}
	return "ok"
}

// flushAll drops every entry on every replica: a new flush generation in
// Redis, and a message that makes each replica clear its memory tier.
func (t *redisTier) flushAll(ctx context.Context) error {
	// This replica first, so a Redis failure still flushes it.
	t.apply(ctx, cache.Invalidation{Kind: cache.InvalidateAll})
	return t.inv.FlushAll(ctx)
}

// flushPrincipal drops one principal's entries from Redis and tells every
// replica to drop them from memory.
func (t *redisTier) flushPrincipal(ctx context.Context, id string) error {
	err := errors.Join(t.idCache.FlushTag(ctx, id), t.decCache.FlushTag(ctx, id))
	return errors.Join(err, t.inv.Publish(ctx, cache.Invalidation{Kind: cache.InvalidatePrincipal, ID: id}))
}

// registerMetrics exposes the breaker and Redis tier counters. Every call
// skipped while the breaker is open is counted.
func (t *redisTier) registerMetrics(reg *prometheus.Registry) {
	stats := func() cache.BreakerStats { return t.breaker.Stats() }
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authzd_redis_skipped_total", Help: "Redis cache calls skipped because the breaker was open.",
		}, func() float64 { return float64(stats().Skipped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authzd_redis_errors_total", Help: "Redis cache calls that failed or timed out (each answered as a miss).",
		}, func() float64 { return float64(stats().Errors) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authzd_redis_breaker_opened_total", Help: "Times the Redis breaker opened.",
		}, func() float64 { return float64(stats().Opened) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authzd_redis_breaker_state", Help: "Redis breaker: 0 closed, 1 open, 2 half-open.",
		}, func() float64 { return float64(stats().State) }),
	)
	for name, st := range map[string]func() cache.RedisStats{
		"identity": t.idCache.Remote().Stats, "decision": t.decCache.Remote().Stats,
	} {
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "authzd_redis_cache_hits_total", Help: "Redis tier hits (after a memory miss).",
				ConstLabels: prometheus.Labels{"cache": name},
			}, func() float64 { return float64(st().Hits) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "authzd_redis_cache_misses_total", Help: "Redis tier misses, errors and skips included.",
				ConstLabels: prometheus.Labels{"cache": name},
			}, func() float64 { return float64(st().Misses) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "authzd_redis_cache_decode_errors_total", Help: "Redis entries in an unknown format or corrupt (each a miss).",
				ConstLabels: prometheus.Labels{"cache": name},
			}, func() float64 { return float64(st().DecodeErrors) }),
		)
	}
}

// RedisStats reports the Redis tier's breaker counters, or false when Redis
// is not configured.
func (s *Server) RedisStats() (cache.BreakerStats, bool) {
	if s.auth.redis == nil {
		return cache.BreakerStats{}, false
	}
	return s.auth.redis.breaker.Stats(), true
}
