package cache

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis modes selected by RedisConfig.Mode.
const (
	RedisModeSingle   = "single"
	RedisModeSentinel = "sentinel"
	RedisModeCluster  = "cluster"
)

// Defaults for RedisConfig. A cache must answer fast or not at all: a slow
// Redis must never slow a Check, so the timeouts are tens of milliseconds and
// a failing Redis is skipped by the breaker.
const (
	DefaultRedisKeyPrefix     = "authzd:"
	DefaultRedisDialTimeout   = 200 * time.Millisecond
	DefaultRedisReadTimeout   = 50 * time.Millisecond
	DefaultRedisWriteTimeout  = 50 * time.Millisecond
	DefaultRedisPoolSize      = 32
	DefaultBreakerFailures    = 5
	DefaultBreakerOpenFor     = 2 * time.Second
	DefaultInvalidationPoll   = time.Second
	defaultRedisMaxRedirects  = 3
	defaultRedisTLSMinVersion = tls.VersionTLS12
)

// RedisConfig configures the shared Redis tier. The zero value (no addrs)
// means Redis is not used.
type RedisConfig struct {
	// Addrs lists host:port pairs: one node, the Sentinels (with MasterName),
	// or seed nodes of a Cluster.
	Addrs []string `yaml:"addrs"`
	// Mode is "single", "sentinel" or "cluster". Empty: "sentinel" when
	// MasterName is set, "cluster" when Cluster is true, else "single".
	Mode string `yaml:"mode"`
	// Cluster is a shorthand for mode: cluster.
	Cluster bool `yaml:"cluster"`
	// MasterName is the Sentinel master name.
	MasterName string `yaml:"master_name"`
	// Username and Password authenticate with Redis ACLs (AUTH user pass).
	// Password alone authenticates the default user.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// SentinelUsername and SentinelPassword authenticate with the Sentinels
	// when they differ from the data nodes.
	SentinelUsername string `yaml:"sentinel_username"`
	SentinelPassword string `yaml:"sentinel_password"`
	// DB selects the database (single and sentinel modes only).
	DB int `yaml:"db"`
	// TLS configures TLS to Redis.
	TLS RedisTLSConfig `yaml:"tls"`
	// KeyPrefix starts every key and the invalidation channel, so several
	// deployments can share one Redis. Default "authzd:".
	KeyPrefix string `yaml:"key_prefix"`
	// ValueKey, when set, authenticates every cached value with
	// HMAC-SHA256, so whoever can write to Redis still cannot forge a
	// cached decision or identity: entries that do not verify are misses.
	// At least 32 random bytes, the same on every replica; set it from the
	// environment (${AUTHZD_CACHE_VALUE_KEY}). Changing it empties the cache.
	ValueKey string `yaml:"value_key"`
	// DialTimeout bounds connecting. Default 200ms.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout and WriteTimeout bound each command. Default 50ms each.
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// PoolSize is the connections per node. Default 32.
	PoolSize int `yaml:"pool_size"`
	// MaxLocalTTL caps how long the in-memory tier keeps an entry read from
	// Redis. 0 keeps it for the entry's own TTL; invalidations still drop it.
	MaxLocalTTL time.Duration `yaml:"max_local_ttl"`
	// InvalidationPoll is how often each replica re-reads the shared flush
	// generation, as a safety net for lost pub/sub messages. Default 1s.
	InvalidationPoll time.Duration `yaml:"invalidation_poll"`
	// Breaker configures when Redis is skipped.
	Breaker BreakerConfig `yaml:"breaker"`
}

// RedisTLSConfig configures TLS to Redis.
type RedisTLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of CAs that sign the server certificate. Empty:
	// the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server certificate.
	ServerName string `yaml:"server_name"`
}

// BreakerConfig configures the Redis circuit breaker.
type BreakerConfig struct {
	// Failures is the count of consecutive errors that opens the breaker.
	// Default 5.
	Failures int `yaml:"failures"`
	// OpenFor is how long Redis is skipped before one probe is let through.
	// Default 2s.
	OpenFor time.Duration `yaml:"open_for"`
}

// Enabled reports whether Redis is configured.
func (c RedisConfig) Enabled() bool { return len(c.Addrs) > 0 }

// WithDefaults returns c with every unset field at its default.
func (c RedisConfig) WithDefaults() RedisConfig {
	if c.Mode == "" {
		switch {
		case c.MasterName != "":
			c.Mode = RedisModeSentinel
		case c.Cluster:
			c.Mode = RedisModeCluster
		default:
			c.Mode = RedisModeSingle
		}
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultRedisKeyPrefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultRedisDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultRedisReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultRedisWriteTimeout
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultRedisPoolSize
	}
	if c.InvalidationPoll == 0 {
		c.InvalidationPoll = DefaultInvalidationPoll
	}
	c.Breaker = c.Breaker.WithDefaults()
	return c
}

// WithDefaults returns c with every unset field at its default.
func (c BreakerConfig) WithDefaults() BreakerConfig {
	if c.Failures == 0 {
		c.Failures = DefaultBreakerFailures
	}
	if c.OpenFor == 0 {
		c.OpenFor = DefaultBreakerOpenFor
	}
	return c
}

// Validate reports every problem, naming the key and the fix. Call it on
// the result of WithDefaults. Keys are named under "redis.".
func (c RedisConfig) Validate() error { return c.ValidateAt("redis.") }

// ValidateAt is Validate with keys named under prefix, e.g. "cache.redis.".
func (c RedisConfig) ValidateAt(prefix string) error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	for i, a := range c.Addrs {
		if a == "" || !strings.Contains(a, ":") {
			errs = append(errs, fmt.Errorf(prefix+"addrs[%d]: %q is not host:port", i, a))
		}
	}
	switch c.Mode {
	case RedisModeSingle:
		if len(c.Addrs) != 1 {
			errs = append(errs, fmt.Errorf(prefix+"addrs: mode single takes exactly one address, got %d (set mode: cluster or master_name for more)", len(c.Addrs)))
		}
		if c.MasterName != "" {
			errs = append(errs, errors.New(prefix+"master_name: only valid in mode sentinel"))
		}
	case RedisModeSentinel:
		if c.MasterName == "" {
			errs = append(errs, errors.New(prefix+"master_name: required in mode sentinel (the name the Sentinels monitor)"))
		}
	case RedisModeCluster:
		if c.DB != 0 {
			errs = append(errs, errors.New(prefix+"db: Redis Cluster has only database 0; remove db"))
		}
		if c.MasterName != "" {
			errs = append(errs, errors.New(prefix+"master_name: not valid with mode cluster"))
		}
	default:
		errs = append(errs, fmt.Errorf(prefix+"mode: %q is not one of single, sentinel, cluster", c.Mode))
	}
	if c.Cluster && c.Mode != RedisModeCluster {
		errs = append(errs, fmt.Errorf(prefix+"cluster: true conflicts with mode %q", c.Mode))
	}
	if c.DB < 0 {
		errs = append(errs, errors.New(prefix+"db: must be >= 0"))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"dial_timeout", c.DialTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout},
		{"invalidation_poll", c.InvalidationPoll}, {"breaker.open_for", c.Breaker.OpenFor},
	} {
		if f.d <= 0 {
			errs = append(errs, fmt.Errorf("%s%s: must be > 0, got %s", prefix, f.name, f.d))
		}
	}
	if c.MaxLocalTTL < 0 {
		errs = append(errs, errors.New(prefix+"max_local_ttl: must be >= 0 (0 means no cap)"))
	}
	if c.ReadTimeout > time.Second {
		errs = append(errs, fmt.Errorf(prefix+"read_timeout: %s is too long for a cache on the Check path; use tens of milliseconds", c.ReadTimeout))
	}
	if c.PoolSize < 0 {
		errs = append(errs, errors.New(prefix+"pool_size: must be > 0"))
	}
	if c.Breaker.Failures < 1 {
		errs = append(errs, errors.New(prefix+"breaker.failures: must be >= 1"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New(prefix+"tls: cert_file and key_file go together; set both or neither"))
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.ServerName != "") {
		errs = append(errs, errors.New(prefix+"tls: files or server_name set but tls.enabled is false; set enabled: true"))
	}
	if c.KeyPrefix == "" {
		errs = append(errs, errors.New(prefix+"key_prefix: must not be empty"))
	}
	if c.ValueKey != "" && len(c.ValueKey) < 32 {
		errs = append(errs, fmt.Errorf("%svalue_key: %d bytes is too short; use at least 32 random bytes (e.g. openssl rand -hex 32)", prefix, len(c.ValueKey)))
	}
	return errors.Join(errs...)
}

// TLSConfig builds the client TLS configuration, or nil when TLS is off.
func (c RedisTLSConfig) TLSConfig() (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: defaultRedisTLSMinVersion, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.ca_file: %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// UniversalOptions translates c (after WithDefaults) into go-redis options.
func (c RedisConfig) UniversalOptions() (*redis.UniversalOptions, error) {
	tc, err := c.TLS.TLSConfig()
	if err != nil {
		return nil, err
	}
	o := &redis.UniversalOptions{
		Addrs:            c.Addrs,
		ClientName:       "authzd",
		Username:         c.Username,
		Password:         c.Password,
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: c.SentinelPassword,
		DialTimeout:      c.DialTimeout,
		ReadTimeout:      c.ReadTimeout,
		WriteTimeout:     c.WriteTimeout,
		// A pool wait must not outlast a command: go-redis would default to
		// ReadTimeout+1s.
		PoolTimeout: c.ReadTimeout,
		PoolSize:    c.PoolSize,
		// Retries turn one slow Redis into several: the breaker decides
		// when to try again, not the client.
		MaxRetries: -1,
		// One dial attempt per connection; go-redis would retry five times
		// with 100ms pauses.
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
		MaxRedirects:          defaultRedisMaxRedirects,
		TLSConfig:             tc,
		Protocol:              2,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
		DisableIdentity: true,
	}
	switch c.Mode {
	case RedisModeSentinel:
		o.MasterName = c.MasterName
		o.DB = c.DB
	case RedisModeCluster:
		o.IsClusterMode = true
	default:
		o.DB = c.DB
	}
	return o, nil
}

// NewUniversalClient returns a go-redis client for c: a single node, a
// Sentinel-managed master or a Cluster. It does not connect until used.
func NewUniversalClient(c RedisConfig) (redis.UniversalClient, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, errors.New("redis.addrs: no address configured")
	}
	o, err := c.UniversalOptions()
	if err != nil {
		return nil, err
	}
	return redis.NewUniversalClient(o), nil
}
