package awsiam

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/authzd/authzd/identity"
)

// maxProofBody bounds a GetCallerIdentity body; the real one is 43 bytes.
const maxProofBody = 256

// STSProvider verifies STS proofs: a signed sts:GetCallerIdentity request
// that authzd checks, forwards to STS and reads the caller's ARN from.
type STSProvider struct {
	name     string
	cfg      STSConfig
	ep       endpoint
	idHeader string // canonical form of cfg.ServerIDHeader
	idLower  string
	allowed  map[string]struct{} // lowercase X-Amz-* names
	client   *http.Client
	now      func() time.Time
	// lastErr is the last STS transport failure, nil after a success;
	// it feeds Ready.
	lastErr atomic.Pointer[error]
}

var (
	_ identity.Provider          = (*STSProvider)(nil)
	_ identity.Cacheable         = (*STSProvider)(nil)
	_ identity.ReadinessReporter = (*STSProvider)(nil)
)

// Option customises a provider.
type Option func(*options)

type options struct {
	client *http.Client
	now    func() time.Time
}

// WithClock replaces time.Now (tests of expiry).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithTransport sets the transport used to reach STS (for a proxy or custom
// TLS roots). Redirects are never followed and the timeout still applies.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.client = &http.Client{Transport: rt} }
}

func buildOptions(opts []Option) options {
	o := options{now: time.Now, client: &http.Client{}}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// NewSTSProvider returns the STS proof provider. cfg must have had
// WithDefaults applied and pass Validate.
func NewSTSProvider(name string, cfg Config, opts ...Option) (*STSProvider, error) {
	if err := cfg.Validate(""); err != nil {
		return nil, err
	}
	if !cfg.STS.Enabled {
		return nil, errors.New("sts is not enabled")
	}
	ep, err := parseEndpoint(cfg.STS.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("sts.endpoint: %w", err)
	}
	o := buildOptions(opts)
	client := *o.client
	client.Timeout = cfg.STS.Timeout
	// A proof is only as good as the endpoint that answers it: never let
	// STS (or anything pretending to be it) send us elsewhere.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p := &STSProvider{
		name:     name,
		cfg:      cfg.STS,
		ep:       ep,
		idHeader: textproto.CanonicalMIMEHeaderKey(cfg.STS.ServerIDHeader),
		idLower:  strings.ToLower(cfg.STS.ServerIDHeader),
		allowed:  map[string]struct{}{},
		client:   &client,
		now:      o.now,
	}
	for _, h := range append(append([]string(nil), defaultAllowedHeaders...), cfg.STS.AllowedHeaders...) {
		p.allowed[strings.ToLower(h)] = struct{}{}
	}
	return p, nil
}

// Name implements identity.Provider.
func (p *STSProvider) Name() string { return p.name }

// Accepts implements identity.Provider.
func (p *STSProvider) Accepts(k identity.Kind) bool { return k == identity.KindAWSSigV4 }

// CacheTTL implements identity.Cacheable: a proof is good for 15 minutes
// after it was signed (Principal.ExpiresAt), and so is its principal.
func (p *STSProvider) CacheTTL() time.Duration { return ProofLifetime }

// Ready implements identity.ReadinessReporter: the last STS round trip's
// transport failure, if the last one failed.
func (p *STSProvider) Ready() error {
	if e := p.lastErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Resolve implements identity.Provider.
func (p *STSProvider) Resolve(ctx context.Context, cred identity.Credential) (*identity.Principal, error) {
	if cred.Kind != identity.KindAWSSigV4 || cred.Request == nil {
		return nil, identity.ErrNotMine
	}
	r := cred.Request
	if !isSTSProof(r, p.ep.host) {
		return nil, identity.ErrNotMine
	}
	s, err := p.check(r)
	if err != nil {
		return nil, identity.Invalid(p.name, err.Error(), nil)
	}
	body, err := p.call(ctx, r, s.auth)
	if err != nil {
		// A caller's own short deadline says nothing about STS.
		var ce *identity.CredentialError
		if !errors.As(err, &ce) && ctx.Err() == nil {
			p.lastErr.Store(&err)
		}
		return nil, err
	}
	p.lastErr.Store(nil)
	arnStr, account, userID, err := DecodeCallerIdentity(body)
	if err != nil {
		err = fmt.Errorf("%w: %s: STS answered with %v", identity.ErrUnavailable, p.name, err)
		p.lastErr.Store(&err)
		return nil, err
	}
	c, err := ParseCaller(arnStr, account, userID)
	if err != nil {
		err = fmt.Errorf("%w: %s: STS answered with an unusable identity: %v", identity.ErrUnavailable, p.name, err)
		p.lastErr.Store(&err)
		return nil, err
	}
	if !matchAny(p.cfg.BoundARNs, c) {
		return nil, identity.Invalid(p.name, "caller "+c.ARN+" does not match any bound ARN", nil)
	}
	return c.Principal(p.name, p.ep.host, userID, "sts", s.signedAt.Add(ProofLifetime)), nil
}

// check validates the proof's shape before anything is sent to STS. The
// errors are public reasons.
func (p *STSProvider) check(r *identity.SignedRequest) (*signedRequest, error) {
	if r.Method != http.MethodPost {
		return nil, errors.New("STS proof must be a POST")
	}
	u, err := url.Parse(r.URL)
	if err != nil || u.Scheme != p.ep.url.Scheme || canonicalHost(u.Scheme, u.Host) != p.ep.host ||
		orSlash(u.EscapedPath()) != p.ep.path || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil {
		return nil, errors.New("STS proof is not addressed to the configured STS endpoint")
	}
	if err := checkProofBody(r.Body); err != nil {
		return nil, err
	}
	if ct := headerValues(r.Header, "Content-Type"); len(ct) > 1 ||
		(len(ct) == 1 && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct[0])), "application/x-www-form-urlencoded")) {
		return nil, errors.New("STS proof must be form-encoded")
	}
	if h := headerValues(r.Header, "Host"); len(h) > 1 || (len(h) == 1 && canonicalHost(u.Scheme, h[0]) != p.ep.host) {
		return nil, errors.New("STS proof Host header does not match the STS endpoint")
	}
	for k := range r.Header {
		if len(k) > 6 && strings.EqualFold(k[:6], "x-amz-") {
			if _, ok := p.allowed[strings.ToLower(k)]; !ok {
				return nil, fmt.Errorf("STS proof header %s is not allowed", truncate(textproto.CanonicalMIMEHeaderKey(k)))
			}
		}
	}
	s, err := splitSigned(r)
	if err != nil {
		return nil, err
	}
	if s.presigned {
		return nil, errors.New("STS proof must be signed in the Authorization header")
	}
	if s.auth.Service != "sts" || s.auth.Region != p.cfg.Region {
		return nil, fmt.Errorf("STS proof credential scope must be %s/sts", p.cfg.Region)
	}
	ids := headerValues(r.Header, p.idHeader)
	if len(ids) == 0 {
		return nil, fmt.Errorf("STS proof has no %s header", p.idHeader)
	}
	if len(ids) > 1 || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(ids[0])), []byte(p.cfg.ServerID)) != 1 {
		return nil, fmt.Errorf("STS proof %s header does not name this server", p.idHeader)
	}
	if !s.auth.Signs(p.idLower) {
		return nil, fmt.Errorf("STS proof %s header is not signed", p.idHeader)
	}
	now := p.now()
	if d := now.Sub(s.signedAt); d > ProofLifetime || d < -ProofLifetime {
		return nil, errors.New("STS proof signing time is more than 15 minutes from now")
	}
	return s, nil
}

// checkProofBody accepts exactly Action=GetCallerIdentity&Version=..., in
// either order, each once: nothing that asks STS to do anything else.
func checkProofBody(body []byte) error {
	if len(body) > maxProofBody {
		return errors.New("STS proof body must be Action=GetCallerIdentity&Version=...")
	}
	q, err := url.ParseQuery(string(body))
	if err != nil || len(q) != 2 || len(q["Action"]) != 1 || len(q["Version"]) != 1 ||
		q["Action"][0] != "GetCallerIdentity" || !validVersion(q["Version"][0]) {
		return errors.New("STS proof body must be Action=GetCallerIdentity&Version=...")
	}
	return nil
}

func validVersion(v string) bool {
	if v == "" || len(v) > 16 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isSTSProof decides which mode handles a signed request: anything
// addressed to the STS host, or whose body asks for GetCallerIdentity, is
// an STS proof; everything else is a direct SigV4 request.
func isSTSProof(r *identity.SignedRequest, stsHost string) bool {
	if u, err := url.Parse(r.URL); err == nil && canonicalHost(u.Scheme, u.Host) == stsHost {
		return true
	}
	if len(r.Body) == 0 || len(r.Body) > maxProofBody || !bytes.Contains(r.Body, []byte("GetCallerIdentity")) {
		return false
	}
	q, err := url.ParseQuery(string(r.Body))
	return err == nil && q.Get("Action") == "GetCallerIdentity"
}

func orSlash(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// forwardedHeaders are sent to STS along with every signed header.
var forwardedHeaders = []string{"Authorization", "Content-Type"}

// call forwards the proof and returns STS's 200 body. Transport problems
// wrap identity.ErrUnavailable; STS refusing the proof is a CredentialError.
func (p *STSProvider) call(ctx context.Context, r *identity.SignedRequest, auth *Authorization) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.ep.url.String(), bytes.NewReader(r.Body))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", identity.ErrUnavailable, p.name, err)
	}
	// Send only what the signature covers (plus Authorization and the
	// content type): the caller controls nothing else STS sees.
	for _, name := range auth.SignedHeaders {
		if name == "host" || name == "content-length" {
			continue
		}
		for _, v := range headerValues(r.Header, name) {
			req.Header.Add(name, v)
		}
	}
	for _, name := range forwardedHeaders {
		if req.Header.Get(name) == "" {
			for _, v := range headerValues(r.Header, name) {
				req.Header.Add(name, v)
			}
		}
	}
	req.Host = p.ep.host
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("%w: %s: STS request failed: %v", identity.ErrUnavailable, p.name, redactURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: reading STS response: %v", identity.ErrUnavailable, p.name, err)
	}
	if len(body) > maxResponseBytes {
		return nil, fmt.Errorf("%w: %s: STS response larger than %d bytes", identity.ErrUnavailable, p.name, maxResponseBytes)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return body, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, fmt.Errorf("%w: %s: STS answered with a redirect (%d), not followed", identity.ErrUnavailable, p.name, resp.StatusCode)
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusForbidden:
		if code := decodeSTSError(body); code != "" {
			return nil, identity.Invalid(p.name, "STS rejected the proof: "+code, nil)
		}
		return nil, fmt.Errorf("%w: %s: STS answered %d without an error document", identity.ErrUnavailable, p.name, resp.StatusCode)
	default:
		return nil, fmt.Errorf("%w: %s: STS answered %d", identity.ErrUnavailable, p.name, resp.StatusCode)
	}
}

// redactURLError keeps the operation and cause but not the URL, which is
// configuration and fine, but keeps messages short and stable.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

type stsIdentityDoc struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	Results []struct {
		Arn     []string `xml:"Arn"`
		UserID  []string `xml:"UserId"`
		Account []string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
}

// DecodeCallerIdentity decodes STS's GetCallerIdentityResponse. It insists
// on exactly one result carrying exactly one Arn, UserId and Account.
func DecodeCallerIdentity(b []byte) (arn, account, userID string, err error) {
	if len(b) > maxResponseBytes {
		return "", "", "", errors.New("response too large")
	}
	var doc stsIdentityDoc
	dec := xml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		return "", "", "", errors.New("a response that is not a GetCallerIdentityResponse")
	}
	if len(doc.Results) != 1 {
		return "", "", "", fmt.Errorf("%d GetCallerIdentityResult elements, want 1", len(doc.Results))
	}
	res := doc.Results[0]
	if len(res.Arn) != 1 || len(res.Account) != 1 || len(res.UserID) != 1 {
		return "", "", "", errors.New("a result without exactly one Arn, Account and UserId")
	}
	arn, account, userID = strings.TrimSpace(res.Arn[0]), strings.TrimSpace(res.Account[0]), strings.TrimSpace(res.UserID[0])
	if arn == "" || account == "" || userID == "" {
		return "", "", "", errors.New("an empty Arn, Account or UserId")
	}
	return arn, account, userID, nil
}

type stsErrorDoc struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Error   struct {
		Code string `xml:"Code"`
	} `xml:"Error"`
}

// decodeSTSError returns the error code of an STS ErrorResponse, limited to
// safe characters, or "".
func decodeSTSError(b []byte) string {
	var doc stsErrorDoc
	if err := xml.Unmarshal(b, &doc); err != nil {
		return ""
	}
	code := strings.TrimSpace(doc.Error.Code)
	if code == "" || len(code) > 64 {
		return ""
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.') {
			return ""
		}
	}
	return code
}
