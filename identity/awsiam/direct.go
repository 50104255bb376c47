package awsiam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/authzd/authzd/identity"
)

// SigV4Provider verifies requests signed with an access key authzd holds.
// It deliberately does not implement identity.Cacheable: a key removed
// from the store stops working on the next request.
type SigV4Provider struct {
	name    string
	cfg     SigV4Config
	stsHost string
	store   KeyStore
	now     func() time.Time
}

var _ identity.Provider = (*SigV4Provider)(nil)

// NewSigV4Provider returns the direct SigV4 provider over store. cfg must
// have had WithDefaults applied; its keys_file and encryption_key are not
// used here (see New, which opens the file store).
func NewSigV4Provider(name string, cfg Config, store KeyStore, opts ...Option) (*SigV4Provider, error) {
	if err := cfg.Validate(""); err != nil {
		return nil, err
	}
	if !cfg.SigV4.Enabled {
		return nil, errors.New("sigv4 is not enabled")
	}
	if store == nil {
		return nil, errors.New("sigv4: no key store")
	}
	// Requests to STS are proofs even when the STS mode is off: they are
	// never verified here, so a proof cannot be mistaken for a service call.
	ep, err := parseEndpoint(cfg.STS.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("sts.endpoint: %w", err)
	}
	o := buildOptions(opts)
	return &SigV4Provider{name: name, cfg: cfg.SigV4, stsHost: ep.host, store: store, now: o.now}, nil
}

// Name implements identity.Provider.
func (p *SigV4Provider) Name() string { return p.name }

// Accepts implements identity.Provider.
func (p *SigV4Provider) Accepts(k identity.Kind) bool { return k == identity.KindAWSSigV4 }

// Resolve implements identity.Provider.
func (p *SigV4Provider) Resolve(ctx context.Context, cred identity.Credential) (*identity.Principal, error) {
	if cred.Kind != identity.KindAWSSigV4 || cred.Request == nil {
		return nil, identity.ErrNotMine
	}
	if isSTSProof(cred.Request, p.stsHost) {
		return nil, identity.ErrNotMine
	}
	s, err := splitSigned(cred.Request)
	if err != nil {
		return nil, identity.Invalid(p.name, err.Error(), nil)
	}
	if s.auth.Region != p.cfg.Region || s.auth.Service != p.cfg.Service {
		return nil, identity.Invalid(p.name, fmt.Sprintf("credential scope must be %s/%s", p.cfg.Region, p.cfg.Service), nil)
	}
	now := p.now()
	var expires time.Time
	if s.presigned {
		if s.signedAt.Sub(now) > p.cfg.MaxSkew {
			return nil, identity.Invalid(p.name, "presigned URL is signed in the future", nil)
		}
		expires = s.signedAt.Add(s.expires)
		if !now.Before(expires) {
			return nil, identity.Invalid(p.name, "presigned URL has expired", nil)
		}
	} else {
		if d := now.Sub(s.signedAt); d > p.cfg.MaxSkew || d < -p.cfg.MaxSkew {
			return nil, identity.Invalid(p.name, "signing time is outside the allowed clock skew", nil)
		}
		expires = s.signedAt.Add(p.cfg.MaxSkew)
	}
	key, err := p.store.Lookup(ctx, s.auth.AccessKeyID)
	if errors.Is(err, ErrKeyNotFound) {
		return nil, identity.Invalid(p.name, "unknown access key", nil)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: key store: %v", identity.ErrUnavailable, p.name, err)
	}
	ok, err := s.verify(key.signingKey(s.auth.Date, s.auth.Region, s.auth.Service))
	if err != nil {
		return nil, identity.Invalid(p.name, err.Error(), nil)
	}
	if !ok {
		return nil, identity.Invalid(p.name, "signature does not match", nil)
	}
	return key.Caller.Principal(p.name, "authzd", key.AccessKeyID, "sigv4", expires), nil
}

// Set is what New builds: the enabled providers in chain order and the
// keys file store behind the direct mode (nil when it is off).
type Set struct {
	Providers []identity.Provider
	Keys      *FileStore
	reload    time.Duration
}

// Watch keeps the keys file fresh until ctx ends (no-op without one).
func (s *Set) Watch(ctx context.Context, log *slog.Logger) {
	if s.Keys != nil && s.reload > 0 {
		s.Keys.Watch(ctx, s.reload, log)
	}
}

// New builds the enabled providers from cfg (after WithDefaults), STS
// first, named name+"-sts" and name+"-sigv4" (distinct names keep their
// readiness, errors and metrics apart). The direct mode reads
// sigv4.keys_file with sigv4.encryption_key.
func New(name string, cfg Config, opts ...Option) (*Set, error) {
	if err := cfg.Validate(""); err != nil {
		return nil, err
	}
	set := &Set{reload: cfg.SigV4.ReloadInterval}
	if cfg.STS.Enabled {
		p, err := NewSTSProvider(name+"-sts", cfg, opts...)
		if err != nil {
			return nil, err
		}
		set.Providers = append(set.Providers, p)
	}
	if cfg.SigV4.Enabled {
		key, err := DecodeEncryptionKey(string(cfg.SigV4.EncryptionKey))
		if err != nil {
			return nil, fmt.Errorf("sigv4.encryption_key: %v", err)
		}
		store, err := OpenFileStore(cfg.SigV4.KeysFile, key)
		if err != nil {
			return nil, fmt.Errorf("sigv4.keys_file: %w", err)
		}
		p, err := NewSigV4Provider(name+"-sigv4", cfg, store, opts...)
		if err != nil {
			return nil, err
		}
		set.Keys = store
		set.Providers = append(set.Providers, p)
	}
	return set, nil
}
