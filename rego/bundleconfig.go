package rego

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// BundleConfig configures policies and data downloaded as an OPA bundle
// (a tar.gz as built by `opa build`) from a bundle server or object store.
type BundleConfig struct {
	// URL is the bundle's full http(s) URL, e.g.
	// https://bundles.example.com/authzd/bundle.tar.gz.
	URL string `yaml:"url"`
	// PollMin and PollMax bound the random delay between two downloads, so
	// replicas do not poll in lockstep. Defaults 10s and 30s. After a
	// failed download the delay starts at PollMin and doubles up to PollMax.
	PollMin time.Duration `yaml:"poll_min"`
	PollMax time.Duration `yaml:"poll_max"`
	// Timeout bounds one download, body included. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// Headers are sent with every request (values may use ${ENV}; they are
	// never logged).
	Headers map[string]string `yaml:"headers"`
	// BearerToken is sent as "Authorization: Bearer <token>".
	BearerToken string `yaml:"bearer_token"`
	// TLS configures the connection to the bundle server. The files are
	// read once at start-up.
	TLS BundleTLSConfig `yaml:"tls"`
	// Verification, when set, requires every bundle to be signed
	// (`opa build --signing-key`) and checks the signature.
	Verification *BundleVerificationConfig `yaml:"verification"`
	// PersistDir, when set, keeps the last bundle that compiled on disk and
	// serves it at start-up while the bundle server is unreachable.
	PersistDir string `yaml:"persist_dir"`
	// MaxBytes bounds the downloaded bundle (compressed) and each file in
	// it (uncompressed). Default 64 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
}

// BundleTLSConfig configures TLS to the bundle server.
type BundleTLSConfig struct {
	// CAFile holds PEM CA certificates trusted instead of the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// BundleVerificationConfig configures bundle signature verification with
// OPA's own verifier.
type BundleVerificationConfig struct {
	// PublicKeyFile is the PEM public key (or, for HS256, the shared secret)
	// that signed the bundle.
	PublicKeyFile string `yaml:"public_key_file"`
	// KeyID names the key, as `opa build --verification-key-id` does; the
	// configured key verifies every bundle whatever key id its signature
	// names. Default "default".
	KeyID string `yaml:"key_id"`
	// Algorithm is the signing algorithm. Default RS256.
	Algorithm string `yaml:"algorithm"`
	// Scope, when set, must match the signature's scope claim.
	Scope string `yaml:"scope"`
}

// Bundle defaults.
const (
	DefaultBundlePollMin  = 10 * time.Second
	DefaultBundlePollMax  = 30 * time.Second
	DefaultBundleTimeout  = 30 * time.Second
	DefaultBundleMaxBytes = 64 << 20
	DefaultBundleKeyID    = "default"
	DefaultBundleAlg      = "RS256"
)

// WithDefaults returns c with zero fields set to their defaults.
func (c BundleConfig) WithDefaults() BundleConfig {
	if c.PollMin == 0 {
		c.PollMin = DefaultBundlePollMin
	}
	if c.PollMax == 0 {
		c.PollMax = max(DefaultBundlePollMax, c.PollMin)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultBundleTimeout
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultBundleMaxBytes
	}
	if v := c.Verification; v != nil {
		vv := *v
		if vv.KeyID == "" {
			vv.KeyID = DefaultBundleKeyID
		}
		if vv.Algorithm == "" {
			vv.Algorithm = DefaultBundleAlg
		}
		c.Verification = &vv
	}
	return c
}

// Validate reports the first configuration error, naming the key.
func (c BundleConfig) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return errors.New("policy.bundle.url: required, e.g. https://bundles.example.com/authzd/bundle.tar.gz")
	case err != nil:
		return fmt.Errorf("policy.bundle.url: %v", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("policy.bundle.url: %q is not an http(s) URL", c.URL)
	}
	if c.PollMin <= 0 || c.PollMax <= 0 {
		return errors.New("policy.bundle.poll_min and poll_max: must be positive")
	}
	if c.PollMax < c.PollMin {
		return fmt.Errorf("policy.bundle.poll_max (%s) must not be less than poll_min (%s)", c.PollMax, c.PollMin)
	}
	if c.Timeout < 0 {
		return errors.New("policy.bundle.timeout: must not be negative")
	}
	if c.MaxBytes < 0 {
		return errors.New("policy.bundle.max_bytes: must not be negative")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("policy.bundle.tls: cert_file and key_file must be set together")
	}
	if v := c.Verification; v != nil && v.PublicKeyFile == "" {
		return errors.New("policy.bundle.verification.public_key_file: required when verification is set")
	}
	return nil
}
