package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Kind is the kind of a credential.
type Kind uint8

const (
	// KindNone is the absence of a credential: the request is anonymous.
	KindNone Kind = iota
	// KindBearer is a bearer token, usually a JWT.
	KindBearer
	// KindAPIKey is an API key issued by authzd.
	KindAPIKey
	// KindAWSSigV4 is an AWS SigV4-signed HTTP request.
	KindAWSSigV4
)

func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindBearer:
		return "bearer"
	case KindAPIKey:
		return "api_key"
	case KindAWSSigV4:
		return "aws_sigv4"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// SignedRequest is a complete signed HTTP request, as used by AWS SigV4.
type SignedRequest struct {
	Method string
	// URL is absolute, including the query string.
	URL    string
	Header http.Header
	Body   []byte
}

// Credential is what a caller presented. Exactly one of Token and Request is
// meaningful, depending on Kind.
type Credential struct {
	Kind Kind
	// Token is the bearer token or the API key.
	Token string
	// Request is the signed request for KindAWSSigV4.
	Request *SignedRequest
}

// Principal is a verified identity.
type Principal struct {
	// ID is the stable identifier policies should key on.
	ID string
	// Provider is the configured name of the provider that verified it.
	Provider string
	Issuer   string
	Subject  string
	// Type is the kind of principal: "api_key", "jwt", "aws_iam", ...
	Type   string
	Groups []string
	Scopes []string
	// Claims holds selected claims as JSON-compatible values
	// (string, bool, json.Number/float64/int64, []any, map[string]any).
	Claims map[string]any
	// ExpiresAt is when the credential stops being valid; zero means the
	// provider cannot tell. Cached identities never outlive it.
	ExpiresAt time.Time
}

// Provider verifies one family of credentials.
//
// Resolve returns ErrNotMine (possibly wrapped) when the credential is not one
// this provider handles, so the chain tries the next one; a *CredentialError
// when the credential is this provider's and invalid (the request is denied);
// and an error wrapping ErrUnavailable when the provider cannot decide right
// now (for example its key set cannot be fetched).
type Provider interface {
	// Name is the configured name of the provider, reported in principals
	// and errors.
	Name() string
	// Accepts reports, without I/O, whether the provider may handle
	// credentials of this kind.
	Accepts(kind Kind) bool
	Resolve(ctx context.Context, cred Credential) (*Principal, error)
}

// Cacheable is implemented by providers whose verification is expensive
// enough that callers should cache the principal (JWT signature checks, STS
// round trips). Providers that look up a local table (API keys) do not
// implement it, so that revocations take effect on the next request.
type Cacheable interface {
	// CacheTTL bounds how long a verified principal may be cached; the
	// principal's ExpiresAt bounds it further.
	CacheTTL() time.Duration
}

var (
	// ErrNotMine means the provider does not handle this credential.
	ErrNotMine = errors.New("credential not handled by this provider")
	// ErrUnavailable means the provider cannot verify credentials right now.
	ErrUnavailable = errors.New("identity provider unavailable")
	// ErrNoProvider means no configured provider handles the credential.
	ErrNoProvider = errors.New("no identity provider accepts this credential")
)

// CredentialError is returned when a credential is recognised by a provider
// and is invalid. Reason is safe to return to callers: it never contains the
// credential itself.
type CredentialError struct {
	Provider string
	Reason   string
	// Err is the internal cause, for logs only.
	Err error
}

func (e *CredentialError) Error() string {
	if e.Provider == "" {
		return "invalid credential: " + e.Reason
	}
	return e.Provider + ": invalid credential: " + e.Reason
}

func (e *CredentialError) Unwrap() error { return e.Err }

// Invalid returns a *CredentialError for provider with a public reason.
func Invalid(provider, reason string, cause error) error {
	return &CredentialError{Provider: provider, Reason: reason, Err: cause}
}

// IsInvalid reports whether err is a *CredentialError or ErrNoProvider:
// the credential must be rejected (HTTP 401).
func IsInvalid(err error) bool {
	var ce *CredentialError
	return errors.As(err, &ce) || errors.Is(err, ErrNoProvider)
}

// ReadinessReporter is implemented by providers that depend on something
// outside the process (an issuer's key set, STS). Ready returns nil when the
// provider can verify credentials, or the reason it cannot. Readiness and
// health endpoints report it; it never stops start-up.
type ReadinessReporter interface {
	Ready() error
}
