package service

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/authzd/authzd/cache"
	"github.com/authzd/authzd/identity/awsiam"
	"github.com/authzd/authzd/identity/jwt"
	"github.com/authzd/authzd/rego"
)

// Config is the whole authzd configuration, read from YAML with ${ENV}
// expansion. Relative file paths are resolved against the config file's
// directory.
type Config struct {
	// Listen is the gRPC address. Default 127.0.0.1:9191.
	Listen string `yaml:"listen"`
	// HTTPListen serves /metrics, /healthz and /readyz. Default
	// 127.0.0.1:9192; "off" disables it.
	HTTPListen string         `yaml:"http_listen"`
	TLS        TLSConfig      `yaml:"tls"`
	Policy     rego.Config    `yaml:"policy"`
	Identity   IdentityConfig `yaml:"identity"`
	Cache      CacheConfig    `yaml:"cache"`
	Limits     Limits         `yaml:"limits"`
	// Envoy configures the Envoy ext_authz service and the HTTP front doors.
	Envoy EnvoyConfig `yaml:"envoy"`
	// DecisionLog writes one JSON line per decision to stderr.
	DecisionLog DecisionLogConfig `yaml:"decision_log"`
	// ShutdownTimeout bounds how long in-flight checks may take to finish
	// after SIGTERM. Default 15s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// TLSConfig configures TLS on both listeners. Certificates are re-read
// when the files change.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile enables mutual TLS: clients must present a certificate
	// signed by one of these CAs.
	ClientCAFile string `yaml:"client_ca_file"`
	// InsecurePlaintext allows plaintext on a non-loopback address.
	InsecurePlaintext bool `yaml:"insecure_plaintext"`
	// ReloadInterval is how often the files are checked. Default 10s.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// IdentityConfig configures the identity providers, tried in this order.
type IdentityConfig struct {
	APIKeys APIKeysConfig `yaml:"api_keys"`
	// AWSIAM verifies AWS IAM identities: STS proofs and direct SigV4.
	AWSIAM awsiam.Config `yaml:"aws_iam"`
	// JWT configures JWT/OIDC issuers (Cognito, Auth0, Okta, OneLogin,
	// FusionAuth, any OIDC issuer). Absent disables bearer JWTs.
	JWT *jwt.Config `yaml:"jwt"`
	// CacheTTL bounds how long a verified identity from an expensive
	// provider (JWT, STS) is cached; the credential's expiry bounds it
	// further. Default 5m; 0 after defaults means the default.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// NegativeTTL is how long a credential that failed verification is
	// remembered, so a flood of one bad token costs one verification.
	// Default 10s.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
}

// APIKeysConfig configures the API-key provider.
type APIKeysConfig struct {
	// Store is where key records live: "file" (default) or "redis" (the
	// connection of cache.redis), so every replica shares the keys and a
	// revocation reaches all of them within a second.
	Store string `yaml:"store"`
	// File is the YAML key file (hashes only). Empty disables API keys
	// when store is "file".
	File string `yaml:"file"`
	// ReloadInterval is how often the file is checked. Default 500ms.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// Redis tunes store "redis".
	Redis APIKeysRedisConfig `yaml:"redis"`
}

// APIKeysRedisConfig tunes the Redis API-key store.
type APIKeysRedisConfig struct {
	// StaleFor is how long past its 30s cache lifetime a key this replica
	// has already verified keeps verifying while Redis cannot be reached
	// (keys it never saw are denied as unavailable). A revocation made
	// meanwhile through a replica that still reaches Redis is applied here
	// only when Redis answers again, so this bounds how long a revoked key
	// can keep working on a cut-off replica. Unset: 5m; 0 disables.
	StaleFor *time.Duration `yaml:"stale_for"`
}

// StaleForOrDefault returns StaleFor, or its default when unset.
func (c APIKeysRedisConfig) StaleForOrDefault() time.Duration {
	if c.StaleFor == nil {
		return DefaultAPIKeyStaleFor
	}
	return *c.StaleFor
}

// CacheConfig configures the decision and identity caches.
type CacheConfig struct {
	Memory cache.MemoryConfig `yaml:"memory"`
	// DecisionTTL is the default lifetime of a cached decision. Default
	// 60s; a negative value disables the decision cache.
	DecisionTTL time.Duration `yaml:"decision_ttl"`
	// Redis, when addrs is set, puts a shared Redis tier behind the memory
	// caches, so replicas share identities and decisions and see flushes.
	Redis cache.RedisConfig `yaml:"redis"`
}

// Limits bound what a request may carry.
type Limits struct {
	// MaxContextBytes bounds the encoded size of context. Default 64 KiB.
	MaxContextBytes int `yaml:"max_context_bytes"`
	// MaxAttributesBytes bounds resource.attributes. Default 64 KiB.
	MaxAttributesBytes int `yaml:"max_attributes_bytes"`
	// MaxCredentialBytes bounds a token or key. Default 16 KiB.
	MaxCredentialBytes int `yaml:"max_credential_bytes"`
	// MaxBatchItems bounds BatchCheck. Default 256.
	MaxBatchItems int `yaml:"max_batch_items"`
	// MaxRequestBytes bounds a gRPC message. Default 4 MiB.
	MaxRequestBytes int `yaml:"max_request_bytes"`
}

// DecisionLogConfig configures decision logs.
type DecisionLogConfig struct {
	Enabled bool `yaml:"enabled"`
}

// API key stores.
const (
	APIKeyStoreFile  = "file"
	APIKeyStoreRedis = "redis"
)

// Defaults.
const (
	DefaultListen          = "127.0.0.1:9191"
	DefaultHTTPListen      = "127.0.0.1:9192"
	DefaultShutdownTimeout = 15 * time.Second
	DefaultIdentityTTL     = 5 * time.Minute
	DefaultNegativeTTL     = 10 * time.Second
	DefaultDecisionTTL     = 60 * time.Second
	DefaultAPIKeyStaleFor  = 5 * time.Minute
)

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.HTTPListen == "" {
		c.HTTPListen = DefaultHTTPListen
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.TLS.ReloadInterval == 0 {
		c.TLS.ReloadInterval = 10 * time.Second
	}
	c.Policy = c.Policy.WithDefaults()
	c.Envoy = c.Envoy.WithDefaults()
	if q := c.Envoy.Query(); !slices.Contains(c.Policy.ExtraQueries, q) {
		c.Policy.ExtraQueries = append(slices.Clip(c.Policy.ExtraQueries), q)
	}
	if c.Identity.CacheTTL == 0 {
		c.Identity.CacheTTL = DefaultIdentityTTL
	}
	if c.Identity.NegativeTTL == 0 {
		c.Identity.NegativeTTL = DefaultNegativeTTL
	}
	if c.Identity.APIKeys.ReloadInterval == 0 {
		c.Identity.APIKeys.ReloadInterval = 500 * time.Millisecond
	}
	c.Identity.AWSIAM = c.Identity.AWSIAM.WithDefaults()
	if c.Cache.DecisionTTL == 0 {
		c.Cache.DecisionTTL = DefaultDecisionTTL
	}
	if c.Cache.Redis.Enabled() {
		c.Cache.Redis = c.Cache.Redis.WithDefaults()
	}
	l := &c.Limits
	if l.MaxContextBytes == 0 {
		l.MaxContextBytes = 64 << 10
	}
	if l.MaxAttributesBytes == 0 {
		l.MaxAttributesBytes = 64 << 10
	}
	if l.MaxCredentialBytes == 0 {
		l.MaxCredentialBytes = 16 << 10
	}
	if l.MaxBatchItems == 0 {
		l.MaxBatchItems = 256
	}
	if l.MaxRequestBytes == 0 {
		l.MaxRequestBytes = 4 << 20
	}
	return c
}

// Validate reports the first configuration error, naming the key and the fix.
func (c Config) Validate() error {
	if err := validateAddr("listen", c.Listen, c.TLS); err != nil {
		return err
	}
	if c.HTTPListen != "off" {
		if err := validateAddr("http_listen", c.HTTPListen, c.TLS); err != nil {
			return err
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls: cert_file and key_file must be set together")
	}
	if c.TLS.ClientCAFile != "" && !c.TLS.Enabled() {
		return errors.New("tls.client_ca_file: mutual TLS needs tls.cert_file and tls.key_file too")
	}
	if err := c.Policy.Validate(); err != nil {
		return err
	}
	switch c.Identity.APIKeys.Store {
	case "", APIKeyStoreFile:
	case APIKeyStoreRedis:
		if !c.Cache.Redis.Enabled() {
			return errors.New("identity.api_keys.store: redis needs cache.redis.addrs (the keys use the cache's Redis connection)")
		}
	default:
		return fmt.Errorf("identity.api_keys.store: %q is not file or redis", c.Identity.APIKeys.Store)
	}
	if c.Identity.APIKeys.Redis.StaleForOrDefault() < 0 {
		return errors.New("identity.api_keys.redis.stale_for: must not be negative (0 disables serving known keys while Redis is down)")
	}
	if err := c.Envoy.Validate(); err != nil {
		return err
	}
	if j := c.Identity.JWT; j != nil {
		if err := j.WithDefaults().ValidateAt("identity.jwt."); err != nil {
			return err
		}
	}
	if c.Identity.CacheTTL < 0 || c.Identity.NegativeTTL < 0 {
		return errors.New("identity.cache_ttl and identity.negative_ttl must not be negative")
	}
	if err := c.Identity.AWSIAM.Validate("identity.aws_iam"); err != nil {
		return err
	}
	for name, v := range map[string]int{
		"limits.max_context_bytes":    c.Limits.MaxContextBytes,
		"limits.max_attributes_bytes": c.Limits.MaxAttributesBytes,
		"limits.max_credential_bytes": c.Limits.MaxCredentialBytes,
		"limits.max_batch_items":      c.Limits.MaxBatchItems,
		"limits.max_request_bytes":    c.Limits.MaxRequestBytes,
	} {
		if v < 0 {
			return fmt.Errorf("%s: must be positive, got %d", name, v)
		}
	}
	if c.ShutdownTimeout < 0 {
		return errors.New("shutdown_timeout: must not be negative")
	}
	if err := c.Cache.Redis.ValidateAt("cache.redis."); err != nil {
		return err
	}
	return nil
}

func validateAddr(key, addr string, t TLSConfig) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %q is not host:port: %v", key, addr, err)
	}
	if t.Enabled() || t.InsecurePlaintext {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s: %q is not a loopback address and TLS is off; set tls.cert_file and tls.key_file, or tls.insecure_plaintext: true if a proxy terminates TLS", key, addr)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${VAR} and ${VAR:-default}. An unset variable without
// a default is an error, so a typo never becomes an empty secret.
func expandEnv(b []byte) ([]byte, error) {
	var missing []string
	out := envRef.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := envRef.FindSubmatch(m)
		if v, ok := os.LookupEnv(string(sub[1])); ok {
			return []byte(v)
		}
		if sub[2] != nil {
			return sub[3]
		}
		missing = append(missing, string(sub[1]))
		return nil
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("environment variables not set: %v (use ${NAME:-default} for optional ones)", missing)
	}
	return out, nil
}

// LoadConfig reads, expands, decodes and validates a config file. Unknown
// keys are errors.
func LoadConfig(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(raw, filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes YAML config; relative paths resolve against baseDir.
func ParseConfig(raw []byte, baseDir string) (Config, error) {
	expanded, err := expandEnv(raw)
	if err != nil {
		return Config{}, err
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("invalid YAML: %w", err)
	}
	cfg.resolvePaths(baseDir)
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (c *Config) resolvePaths(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	for i := range c.Policy.Paths {
		abs(&c.Policy.Paths[i])
	}
	if b := c.Policy.Bundle; b != nil {
		abs(&b.TLS.CAFile)
		abs(&b.TLS.CertFile)
		abs(&b.TLS.KeyFile)
		abs(&b.PersistDir)
		if v := b.Verification; v != nil {
			abs(&v.PublicKeyFile)
		}
	}
	abs(&c.TLS.CertFile)
	abs(&c.TLS.KeyFile)
	abs(&c.TLS.ClientCAFile)
	abs(&c.Identity.APIKeys.File)
	abs(&c.Cache.Redis.TLS.CAFile)
	abs(&c.Cache.Redis.TLS.CertFile)
	abs(&c.Cache.Redis.TLS.KeyFile)
	abs(&c.Identity.AWSIAM.SigV4.KeysFile)
	if j := c.Identity.JWT; j != nil {
		for i := range j.Issuers {
			abs(&j.Issuers[i].JWKSFile)
		}
	}
}
