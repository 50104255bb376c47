package awsiam

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by WithDefaults.
const (
	DefaultSTSEndpoint    = "https://sts.amazonaws.com/"
	DefaultSTSRegion      = "us-east-1"
	DefaultServerIDHeader = "X-Authzd-Server-ID"
	DefaultSTSTimeout     = 5 * time.Second
	DefaultMaxSkew        = 5 * time.Minute
	// ProofLifetime is how long an STS proof is accepted after it was signed,
	// the same window STS itself allows.
	ProofLifetime = 15 * time.Minute
	// maxResponseBytes bounds what is read from STS.
	maxResponseBytes = 64 << 10
)

// defaultAllowedHeaders are the X-Amz-* headers the AWS SDKs put on a signed
// GetCallerIdentity request. Any other X-Amz-* header in a proof is refused
// unless listed in sts.allowed_headers: it could change what STS does.
var defaultAllowedHeaders = []string{
	"X-Amz-Date",
	"X-Amz-Security-Token",
	"X-Amz-Content-Sha256",
	"X-Amz-User-Agent",
}

// Config configures both modes. YAML:
//
//	aws_iam:
//	  sts:
//	    enabled: true
//	    endpoint: https://sts.amazonaws.com/
//	    region: us-east-1
//	    server_id_header: X-Authzd-Server-ID
//	    server_id: authzd.prod.example.com
//	    bound_arns: ["arn:aws:iam::123456789012:role/orders-*"]
//	    allowed_headers: []
//	    timeout: 5s
//	  sigv4:
//	    enabled: true
//	    region: eu-west-1
//	    service: authzd
//	    keys_file: /etc/authzd/aws-keys.yaml
//	    encryption_key: ${AUTHZD_AWS_KEYS_KEY}
//	    max_skew: 5m
//	    reload_interval: 1s
type Config struct {
	STS   STSConfig   `yaml:"sts" json:"sts"`
	SigV4 SigV4Config `yaml:"sigv4" json:"sigv4"`
}

// STSConfig configures STS proof verification.
type STSConfig struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Endpoint is the STS URL proofs must be addressed to and are forwarded
	// to. Default https://sts.amazonaws.com/.
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	// Region is the region in the proof's credential scope. Default
	// us-east-1 (the global endpoint's signing region).
	Region string `yaml:"region" json:"region"`
	// ServerIDHeader names the header that binds a proof to this authzd
	// deployment. Default X-Authzd-Server-ID.
	ServerIDHeader string `yaml:"server_id_header" json:"server_id_header"`
	// ServerID is the value the header must carry. Required: without it a
	// proof made for another service could be replayed here.
	ServerID string `yaml:"server_id" json:"server_id"`
	// BoundARNs are ARN patterns ('*' matches any run of characters) a
	// caller must match, canonical (role) or as STS reported it
	// (assumed-role session). Required; use ["*"] to accept any account.
	BoundARNs []string `yaml:"bound_arns" json:"bound_arns"`
	// AllowedHeaders extends the X-Amz-* headers a proof may carry.
	AllowedHeaders []string `yaml:"allowed_headers" json:"allowed_headers"`
	// Timeout bounds one STS round trip. Default 5s.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
}

// SigV4Config configures direct SigV4 verification.
type SigV4Config struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Region and Service must appear in the request's credential scope.
	Region  string `yaml:"region" json:"region"`
	Service string `yaml:"service" json:"service"`
	// KeysFile holds access key id -> encrypted secret; see KeysFile.
	KeysFile string `yaml:"keys_file" json:"keys_file"`
	// EncryptionKey is the base64 of 32 bytes (AES-256-GCM) that decrypts
	// the secrets in KeysFile. Usually "${ENV_VAR}".
	EncryptionKey Secret `yaml:"encryption_key" json:"encryption_key"`
	// MaxSkew bounds the distance between the signing time and now for
	// header-signed requests. Default 5m, at most 15m.
	MaxSkew time.Duration `yaml:"max_skew" json:"max_skew"`
	// ReloadInterval is how often KeysFile is checked for changes.
	// Default 1s.
	ReloadInterval time.Duration `yaml:"reload_interval" json:"reload_interval"`
}

// Secret is a configuration string that never prints.
type Secret string

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return "[redacted]" }

// MarshalYAML keeps secrets out of dumped configuration.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON keeps secrets out of dumped configuration.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// WithDefaults returns c with defaults filled in.
func (c Config) WithDefaults() Config {
	if c.STS.Endpoint == "" {
		c.STS.Endpoint = DefaultSTSEndpoint
	}
	if c.STS.Region == "" {
		c.STS.Region = DefaultSTSRegion
	}
	if c.STS.ServerIDHeader == "" {
		c.STS.ServerIDHeader = DefaultServerIDHeader
	}
	if c.STS.Timeout == 0 {
		c.STS.Timeout = DefaultSTSTimeout
	}
	if c.SigV4.MaxSkew == 0 {
		c.SigV4.MaxSkew = DefaultMaxSkew
	}
	if c.SigV4.ReloadInterval == 0 {
		c.SigV4.ReloadInterval = time.Second
	}
	return c
}

// Enabled reports whether any mode is on.
func (c Config) Enabled() bool { return c.STS.Enabled || c.SigV4.Enabled }

// Validate checks a config that has had WithDefaults applied. prefix is the
// YAML path of the section (e.g. "identity.aws_iam") used in messages.
func (c Config) Validate(prefix string) error {
	if prefix != "" {
		prefix += "."
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s%s: %s", prefix, key, fmt.Sprintf(format, args...)))
	}
	if s := c.STS; s.Enabled {
		if _, err := parseEndpoint(s.Endpoint); err != nil {
			bad("sts.endpoint", "%v", err)
		}
		if !validScopePart(s.Region) {
			bad("sts.region", "must be an AWS region such as us-east-1, got %q", s.Region)
		}
		if !validHeaderName(s.ServerIDHeader) {
			bad("sts.server_id_header", "must be a header name, got %q", s.ServerIDHeader)
		}
		if s.ServerID == "" {
			bad("sts.server_id", "is required: set a value unique to this deployment so proofs made for other services are refused")
		}
		if len(s.BoundARNs) == 0 {
			bad("sts.bound_arns", "is required: list the ARN patterns allowed to authenticate (\"*\" accepts any AWS principal)")
		}
		for i, p := range s.BoundARNs {
			if p == "" {
				bad(fmt.Sprintf("sts.bound_arns[%d]", i), "is empty")
			} else if p != "*" && !strings.HasPrefix(p, "arn:") {
				bad(fmt.Sprintf("sts.bound_arns[%d]", i), "must start with \"arn:\" or be \"*\", got %q", p)
			}
		}
		for i, h := range s.AllowedHeaders {
			if !validHeaderName(h) {
				bad(fmt.Sprintf("sts.allowed_headers[%d]", i), "must be a header name, got %q", h)
			}
		}
		if s.Timeout <= 0 {
			bad("sts.timeout", "must be positive")
		}
	}
	if s := c.SigV4; s.Enabled {
		if !validScopePart(s.Region) {
			bad("sigv4.region", "is required: the region callers sign for, e.g. eu-west-1")
		}
		if !validScopePart(s.Service) {
			bad("sigv4.service", "is required: the service name callers sign for, e.g. authzd")
		}
		if s.KeysFile == "" {
			bad("sigv4.keys_file", "is required: the file of access keys (see docs/identity-aws-iam.md)")
		}
		if _, err := DecodeEncryptionKey(string(s.EncryptionKey)); err != nil {
			bad("sigv4.encryption_key", "%v", err)
		}
		if s.MaxSkew <= 0 || s.MaxSkew > ProofLifetime {
			bad("sigv4.max_skew", "must be between 1s and 15m, got %s", s.MaxSkew)
		}
		if s.ReloadInterval < 0 {
			bad("sigv4.reload_interval", "must not be negative")
		}
	}
	return errors.Join(errs...)
}

// DecodeEncryptionKey decodes the base64 of a 32-byte AES-256 key. The
// error never contains the key.
func DecodeEncryptionKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("is required: base64 of 32 random bytes, usually from an environment variable (${AUTHZD_AWS_KEYS_KEY}); generate one with `openssl rand -base64 32`")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != 32 {
				return nil, fmt.Errorf("must decode to 32 bytes, got %d", len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("is not valid base64")
}

// endpoint is a parsed STS endpoint.
type endpoint struct {
	url  *url.URL
	host string // lowercased, default port stripped
	path string // "/" when empty
}

func parseEndpoint(s string) (endpoint, error) {
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("is not a URL: %v", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return endpoint{}, fmt.Errorf("must be an http(s) URL, got %q", s)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return endpoint{}, fmt.Errorf("must be scheme://host[:port]/path without user, query or fragment, got %q", s)
	}
	e := endpoint{url: u, host: canonicalHost(u.Scheme, u.Host), path: u.EscapedPath()}
	if e.path == "" {
		e.path = "/"
	}
	return e, nil
}

// canonicalHost lowercases a host and drops the scheme's default port: the
// form endpoints are compared in.
func canonicalHost(scheme, host string) string {
	return signingHost(scheme, strings.ToLower(host))
}

// signingHost drops the scheme's default port, as the SDK signers do before
// they sign (and send) the host header.
func signingHost(scheme, host string) string {
	switch {
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		return host[:len(host)-4]
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		return host[:len(host)-3]
	}
	return host
}

func validScopePart(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func validHeaderName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may appear in an HTTP header name (RFC 9110 token).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
