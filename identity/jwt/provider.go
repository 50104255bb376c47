package jwt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"

	"github.com/authzd/authzd/identity"
)

// Options are the provider's collaborators.
type Options struct {
	// HTTPClient fetches discovery documents and key sets. Default: a
	// client with the per-issuer fetch timeout and no cookies.
	HTTPClient *http.Client
	// Logger receives key-set events. Tokens are never logged.
	Logger *slog.Logger
	// Now is the clock for exp, nbf and iat. Default time.Now.
	Now func() time.Time
}

// Provider verifies JWTs from the configured issuers. It implements
// identity.Provider, identity.Cacheable and identity.ReadinessReporter.
type Provider struct {
	name     string
	maxBytes int
	byIss    map[string]*issuer
	issuers  []*issuer
	now      func() time.Time
	cacheTTL time.Duration
	log      *slog.Logger

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ identity.Provider          = (*Provider)(nil)
	_ identity.Cacheable         = (*Provider)(nil)
	_ identity.ReadinessReporter = (*Provider)(nil)
)

// issuer is one configured issuer, immutable after New except for its
// key manager's atomically swapped key set.
type issuer struct {
	cfg        IssuerConfig
	algs       map[string]bool
	hmacSecret []byte
	keys       *keyManager // nil when only HMAC is allowed
	// clientClaims name the claims compared with client_ids.
	clientClaims []string
	tokenUses    []string  // cognito only
	refs         claimRefs // compiled claim mapping
	types        []string  // normalised accepted typ values
}

// startupWait bounds how long New waits for the first key-set fetches.
const startupWait = 5 * time.Second

var statePool = sync.Pool{New: func() any { return new(parseState) }}

// New builds the provider and makes a first attempt to fetch every
// issuer's key set, bounded by ctx. An issuer that cannot be reached does
// not fail New: its tokens are answered with identity.ErrUnavailable and
// Ready reports it, while a background refresher keeps trying. Close stops
// the refreshers.
func New(ctx context.Context, cfg Config, opts Options) (*Provider, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("jwt config: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	base, cancel := context.WithCancel(context.Background())
	p := &Provider{
		name:     cfg.Name,
		maxBytes: cfg.MaxTokenBytes,
		byIss:    map[string]*issuer{},
		now:      now,
		log:      log,
		cancel:   cancel,
	}
	for _, ic := range cfg.Issuers {
		is := &issuer{cfg: ic, algs: map[string]bool{}, tokenUses: ic.Cognito.TokenUses}
		hasAsym := false
		for _, a := range ic.Algorithms {
			is.algs[a] = true
			if !isHMAC(a) {
				hasAsym = true
			}
		}
		if ic.HMACSecret != "" {
			is.hmacSecret = []byte(ic.HMACSecret)
		}
		is.clientClaims = presets[ic.Preset].clientClaims
		// Validate has reported any bad reference already.
		is.refs = ic.Claims.compile(func(string, string, ...any) {})
		for _, ty := range ic.Types {
			is.types = append(is.types, normType(ty))
		}
		if hasAsym {
			client := &http.Client{Timeout: ic.FetchTimeout}
			if opts.HTTPClient != nil {
				c := *opts.HTTPClient
				client = &c
			}
			if client.CheckRedirect == nil {
				client.CheckRedirect = checkRedirect
			}
			is.keys = &keyManager{
				src: &keySource{issuer: ic.Issuer, jwksURI: ic.JWKSURI, file: ic.JWKSFile,
					client: client, log: log},
				log:          log,
				name:         ic.Name,
				every:        ic.RefreshInterval,
				minRefresh:   ic.MinRefreshInterval,
				fetchTimeout: ic.FetchTimeout,
				base:         base,
			}
		}
		if p.cacheTTL == 0 || ic.CacheTTL < p.cacheTTL {
			p.cacheTTL = ic.CacheTTL
		}
		p.byIss[ic.Issuer] = is
		p.issuers = append(p.issuers, is)
	}

	// First fetch of every issuer in parallel. Start-up waits at most
	// startupWait (and ctx); a slower fetch goes on in the background and
	// its keys are used as soon as they arrive.
	ctx, cancelWait := context.WithTimeout(ctx, startupWait)
	defer cancelWait()
	var wg sync.WaitGroup
	for _, is := range p.issuers {
		if is.keys == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := is.keys.refresh(ctx, true); err != nil {
				log.Warn("jwt: issuer unavailable at start-up; its tokens are refused until its keys can be fetched",
					"issuer", is.cfg.Name, "err", err)
			}
		}()
	}
	wg.Wait()
	for _, is := range p.issuers {
		if is.keys == nil {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			is.keys.run()
		}()
	}
	return p, nil
}

// checkRedirect keeps key fetches on https (or loopback) across
// redirects, and short.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	return checkFetchURL(req.URL.String())
}

// Close stops the background key refreshers. It is safe to call twice.
func (p *Provider) Close() {
	p.closeOnce.Do(func() {
		p.cancel()
		for _, is := range p.issuers {
			if is.keys != nil {
				is.keys.close()
			}
		}
		p.wg.Wait()
	})
}

// Name implements identity.Provider.
func (p *Provider) Name() string { return p.name }

// Accepts implements identity.Provider: bearer tokens only.
func (p *Provider) Accepts(k identity.Kind) bool { return k == identity.KindBearer }

// CacheTTL implements identity.Cacheable: the smallest cache_ttl of the
// configured issuers. Principal.ExpiresAt (the token's exp) bounds it too.
func (p *Provider) CacheTTL() time.Duration { return p.cacheTTL }

// Ready implements identity.ReadinessReporter: nil when every issuer has a
// key set, otherwise which issuers cannot verify tokens and why.
func (p *Provider) Ready() error {
	var errs []error
	for _, is := range p.issuers {
		if is.keys != nil && is.keys.keys.Load() == nil {
			errs = append(errs, fmt.Errorf("issuer %s: %w: %w", is.cfg.Name, identity.ErrUnavailable, is.keys.unavailable()))
		}
	}
	return errors.Join(errs...)
}

// Resolve implements identity.Provider.
func (p *Provider) Resolve(ctx context.Context, cred identity.Credential) (*identity.Principal, error) {
	if cred.Kind != identity.KindBearer || !looksLikeJWT(cred.Token) {
		return nil, identity.ErrNotMine
	}
	tok := cred.Token
	if len(tok) > p.maxBytes {
		return nil, identity.Invalid(p.name, fmt.Sprintf("token larger than %d bytes", p.maxBytes), nil)
	}
	st := statePool.Get().(*parseState)
	defer statePool.Put(st)
	pr, name, err := p.verify(ctx, st, tok)
	if err != nil {
		var rj *rejectError
		switch {
		case errors.Is(err, errNotJWT):
			return nil, identity.ErrNotMine
		case errors.As(err, &rj):
			return nil, identity.Invalid(name, rj.reason, rj.cause)
		default:
			return nil, err
		}
	}
	return pr, nil
}

// verify checks tok and maps it to a principal. It returns the name to
// report errors under: the issuer's when known, else the provider's.
func (p *Provider) verify(ctx context.Context, st *parseState, tok string) (*identity.Principal, string, error) {
	c, err := st.parse(tok)
	if err != nil {
		return nil, p.name, err
	}
	claims, err := parseClaims(&st.pp, c.payload)
	if err != nil {
		return nil, p.name, err
	}
	issVal := claims.Get("iss")
	if issVal == nil {
		return nil, p.name, reject("token has no iss claim", nil)
	}
	issB, err := issVal.StringBytes()
	if err != nil {
		return nil, p.name, reject("iss claim is not a string", nil)
	}
	is := p.byIss[string(issB)]
	if is == nil {
		return nil, p.name, reject("token issuer is not trusted", fmt.Errorf("iss %s", strconvQuote(string(issB))))
	}
	name := is.cfg.Name
	if len(is.types) > 0 && !contains(is.types, normType(c.hdr.typ)) {
		return nil, name, reject("token type is not accepted for this issuer", fmt.Errorf("typ %s", strconvQuote(c.hdr.typ)))
	}
	alg := c.hdr.alg
	if !is.algs[alg] {
		return nil, name, reject("token algorithm is not allowed for this issuer", fmt.Errorf("alg %s", strconvQuote(alg)))
	}
	if isHMAC(alg) {
		// Only the issuer's configured secret; never a key from a key set.
		if err := jwsbb.Verify(is.hmacSecret, alg, c.signingInput, c.sig); err != nil {
			return nil, name, reject("invalid signature", nil)
		}
	} else {
		key, err := is.key(ctx, c.hdr.kid, alg)
		if err != nil {
			return nil, name, err
		}
		if err := jwsbb.Verify(key.key, alg, c.signingInput, c.sig); err != nil {
			return nil, name, reject("invalid signature", nil)
		}
	}
	pr, err := is.principal(claims, p.now())
	if err != nil {
		return nil, name, err
	}
	return pr, name, nil
}

// key returns the verification key for kid and alg, refreshing the key set
// (rate-limited) when the kid is unknown.
func (is *issuer) key(ctx context.Context, kid, alg string) (*pubKey, error) {
	m := is.keys
	if m == nil {
		return nil, reject("token algorithm is not allowed for this issuer", nil)
	}
	ks := m.keys.Load()
	if ks != nil {
		k, err := ks.find(kid, alg)
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, errUnknownKid) {
			return nil, reject(err.Error(), nil)
		}
	}
	// Unknown kid or no keys yet: the issuer may have rotated. Refresh at
	// most once per min_refresh_interval; random kids cannot cause more.
	rerr := m.refresh(ctx, false)
	if ks2 := m.keys.Load(); ks2 != nil {
		k, err := ks2.find(kid, alg)
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, errUnknownKid) {
			return nil, reject(err.Error(), nil)
		}
		if rerr != nil && (!errors.Is(rerr, errRateLimited) || m.lastErr.Load() != nil) {
			// Keys we hold do not have it and the issuer cannot be asked
			// (or could not be, the last time): we cannot tell.
			return nil, fmt.Errorf("%s: %w: key %s not in cached key set and refresh failed: %w",
				is.cfg.Name, identity.ErrUnavailable, strconvQuote(kid), rerr)
		}
		return nil, reject("token signed with an unknown key", fmt.Errorf("kid %s", strconvQuote(kid)))
	}
	if rerr == nil || errors.Is(rerr, errRateLimited) {
		rerr = m.unavailable()
	}
	return nil, fmt.Errorf("%s: %w: no key set: %w", is.cfg.Name, identity.ErrUnavailable, rerr)
}

// dedupe keeps the first occurrence of each value.
func dedupe(ss []string) []string {
	if len(ss) < 2 {
		return ss
	}
	out := ss[:0]
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
