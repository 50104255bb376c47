package jwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

const (
	// maxJWKSBytes bounds a fetched discovery document or key set.
	maxJWKSBytes = 1 << 20
	// maxKeys bounds the keys taken from one key set.
	maxKeys = 100
	// minRSABits rejects weak RSA keys from a key set.
	minRSABits = 2048
)

// pubKey is one verification key from an issuer's key set.
type pubKey struct {
	kid string
	// alg is the key's "alg" member, or "" when the key set does not pin
	// one; then the token's alg must fit the key type.
	alg string
	// key is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	key any
}

// fits reports whether the key may verify a token signed with alg: the
// key's own alg must match when present, and its type (and curve) must be
// the one alg is defined for. HMAC never fits a key-set key.
func (k *pubKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		_, ok := k.key.(*rsa.PublicKey)
		return ok
	case "ES256", "ES384", "ES512":
		ek, ok := k.key.(*ecdsa.PublicKey)
		if !ok {
			return false
		}
		switch alg {
		case "ES256":
			return ek.Curve == elliptic.P256()
		case "ES384":
			return ek.Curve == elliptic.P384()
		default:
			return ek.Curve == elliptic.P521()
		}
	case "EdDSA":
		_, ok := k.key.(ed25519.PublicKey)
		return ok
	}
	return false
}

// keySet is an immutable snapshot of an issuer's keys.
type keySet struct {
	byKid   map[string][]*pubKey
	all     []*pubKey
	fetched time.Time
}

var (
	errUnknownKid   = errors.New("unknown key id")
	errKeyMismatch  = errors.New("token algorithm does not match the key")
	errAmbiguousKey = errors.New("token has no kid and the issuer has several keys for its algorithm")
)

// find picks the key for a token's kid and alg.
func (s *keySet) find(kid, alg string) (*pubKey, error) {
	if kid != "" {
		cands := s.byKid[kid]
		if len(cands) == 0 {
			return nil, errUnknownKid
		}
		for _, k := range cands {
			if k.fits(alg) {
				return k, nil
			}
		}
		return nil, errKeyMismatch
	}
	var found *pubKey
	for _, k := range s.all {
		if k.fits(alg) {
			if found != nil {
				return nil, errAmbiguousKey
			}
			found = k
		}
	}
	if found == nil {
		return nil, errUnknownKid
	}
	return found, nil
}

// parseKeySet turns a JWKS document into verification keys. Keys that
// cannot be used safely are skipped and reported: symmetric keys (a key
// set is public, so an "oct" key in it would let anyone forge HMAC
// tokens), encryption keys, private members, weak RSA, unknown types.
func parseKeySet(body []byte, log *slog.Logger, issuer string) (*keySet, error) {
	// Keys are parsed one by one, so one key the library refuses (a weak
	// RSA modulus, an unknown kty) does not take the others down with it.
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	ks := &keySet{byKid: map[string][]*pubKey{}}
	skip := func(kid, why string) {
		log.Warn("jwt: skipping key from key set", "issuer", issuer, "kid", kid, "reason", why)
	}
	for i, rawKey := range doc.Keys {
		if i >= maxKeys {
			skip("", fmt.Sprintf("more than %d keys", maxKeys))
			break
		}
		k, err := jwk.ParseKey(rawKey)
		if err != nil {
			var hint struct {
				Kid string `json:"kid"`
			}
			json.Unmarshal(rawKey, &hint)
			skip(hint.Kid, "unparsable: "+err.Error())
			continue
		}
		kid, _ := k.KeyID()
		if k.KeyType() == jwa.OctetSeq() {
			skip(kid, "symmetric key in a public key set")
			continue
		}
		if use, ok := k.KeyUsage(); ok && use != "sig" {
			skip(kid, "use is "+use)
			continue
		}
		if ops, ok := k.KeyOps(); ok {
			verify := false
			for _, op := range ops {
				if op == jwk.KeyOpVerify {
					verify = true
				}
			}
			if !verify {
				skip(kid, "key_ops does not include verify")
				continue
			}
		}
		var alg string
		if a, ok := k.Algorithm(); ok {
			alg = a.String()
			if isHMAC(alg) || !contains(supportedAlgs, alg) {
				skip(kid, "alg "+alg+" is not a supported signature algorithm")
				continue
			}
		}
		pk, err := k.PublicKey()
		if err != nil {
			skip(kid, "no public key: "+err.Error())
			continue
		}
		var raw any
		if err := jwk.Export(pk, &raw); err != nil {
			skip(kid, "cannot export: "+err.Error())
			continue
		}
		switch r := raw.(type) {
		case *rsa.PublicKey:
			if r.N.BitLen() < minRSABits {
				skip(kid, fmt.Sprintf("RSA key of %d bits", r.N.BitLen()))
				continue
			}
		case rsa.PublicKey:
			if r.N.BitLen() < minRSABits {
				skip(kid, fmt.Sprintf("RSA key of %d bits", r.N.BitLen()))
				continue
			}
			raw = &r
		case *ecdsa.PublicKey:
			switch r.Curve {
			case elliptic.P256(), elliptic.P384(), elliptic.P521():
			default:
				skip(kid, "unsupported curve")
				continue
			}
		case ecdsa.PublicKey:
			raw = &r
			switch r.Curve {
			case elliptic.P256(), elliptic.P384(), elliptic.P521():
			default:
				skip(kid, "unsupported curve")
				continue
			}
		case ed25519.PublicKey:
		case *ed25519.PublicKey:
			raw = *r
		default:
			skip(kid, fmt.Sprintf("unsupported key type %T", raw))
			continue
		}
		pub := &pubKey{kid: kid, alg: alg, key: raw}
		ks.all = append(ks.all, pub)
		if kid != "" {
			ks.byKid[kid] = append(ks.byKid[kid], pub)
		}
	}
	if len(ks.all) == 0 {
		return nil, errors.New("key set has no usable signing keys")
	}
	return ks, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// keySource fetches an issuer's key set.
type keySource struct {
	issuer  string
	jwksURI string // configured; "" means discovery
	file    string
	client  *http.Client
	log     *slog.Logger

	// discovered is the jwks_uri from discovery, reused until a fetch
	// from it fails. Only the refresh goroutine touches it.
	discovered string
}

func (s *keySource) fetch(ctx context.Context) (*keySet, error) {
	if s.file != "" {
		b, err := os.ReadFile(s.file)
		if err != nil {
			return nil, err
		}
		return parseKeySet(b, s.log, s.issuer)
	}
	uri := s.jwksURI
	if uri == "" {
		if s.discovered == "" {
			d, err := s.discover(ctx)
			if err != nil {
				return nil, err
			}
			s.discovered = d
		}
		uri = s.discovered
	}
	b, err := s.get(ctx, uri)
	if err != nil {
		if s.jwksURI == "" {
			// The issuer may have moved its keys: discover again next time.
			s.discovered = ""
		}
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	return parseKeySet(b, s.log, s.issuer)
}

// discover reads the issuer's OpenID configuration. Its issuer must be the
// configured one (OpenID Connect Discovery 1.0, section 4.3), so a
// document served elsewhere cannot redirect trust.
func (s *keySource) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(s.issuer, "/") + "/.well-known/openid-configuration"
	b, err := s.get(ctx, u)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	if doc.Issuer != s.issuer {
		return "", fmt.Errorf("discovery: document names issuer %q, want %q", doc.Issuer, s.issuer)
	}
	if doc.JWKSURI == "" {
		return "", errors.New("discovery: no jwks_uri")
	}
	if err := checkFetchURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery: jwks_uri: %w", err)
	}
	return doc.JWKSURI, nil
}

func (s *keySource) get(ctx context.Context, uri string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: status %d", uri, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, err)
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: body larger than %d bytes", uri, maxJWKSBytes)
	}
	return b, nil
}

// keyManager keeps an issuer's key set fresh. Readers load the current
// set with one atomic load; refreshes happen one at a time, and at most
// once per minRefresh however many requests ask for one.
type keyManager struct {
	src          *keySource
	log          *slog.Logger
	name         string
	every        time.Duration
	minRefresh   time.Duration
	fetchTimeout time.Duration
	base         context.Context // cancelled by Close

	keys    atomic.Pointer[keySet]
	lastErr atomic.Pointer[error]
	fetches atomic.Uint64 // fetches started
	joined  atomic.Uint64 // callers that waited on a fetch already in flight

	mu          sync.Mutex
	call        *refreshCall
	lastAttempt time.Time
	closed      bool
	running     sync.WaitGroup // fetch goroutines, waited for by close
}

type refreshCall struct {
	done chan struct{}
	err  error
}

var (
	errRateLimited = errors.New("key set refresh rate-limited")
	errClosed      = errors.New("provider closed")
)

// refresh fetches the key set now, or joins the fetch in flight. When
// force is false and the last fetch started less than minRefresh ago, it
// returns errRateLimited without fetching.
func (m *keyManager) refresh(ctx context.Context, force bool) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errClosed
	}
	c := m.call
	if c == nil {
		if !force && !m.lastAttempt.IsZero() && time.Since(m.lastAttempt) < m.minRefresh {
			m.mu.Unlock()
			return errRateLimited
		}
		c = &refreshCall{done: make(chan struct{})}
		m.call = c
		m.lastAttempt = time.Now()
		m.running.Add(1)
		go m.doRefresh(c)
	} else {
		m.joined.Add(1)
	}
	m.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *keyManager) doRefresh(c *refreshCall) {
	defer m.running.Done()
	// The fetch is shared by every waiting request, so it runs on the
	// manager's context with its own timeout rather than on one caller's.
	ctx, cancel := context.WithTimeout(m.base, m.fetchTimeout)
	defer cancel()
	m.fetches.Add(1)
	ks, err := m.src.fetch(ctx)
	if err == nil {
		ks.fetched = time.Now()
		old := m.keys.Swap(ks)
		m.lastErr.Store(nil)
		if added, removed := diffKids(old, ks); old == nil || len(added)+len(removed) > 0 {
			m.log.Info("jwt: issuer keys loaded", "issuer", m.name, "keys", len(ks.all),
				"added", added, "removed", removed)
		}
	} else {
		m.lastErr.Store(&err)
		m.log.Warn("jwt: key set refresh failed", "issuer", m.name, "err", err,
			"have_keys", m.keys.Load() != nil)
	}
	m.mu.Lock()
	c.err = err
	m.call = nil
	m.mu.Unlock()
	close(c.done)
}

// diffKids lists the key ids that appeared in and disappeared from a key
// set, for the rotation log line.
func diffKids(old, cur *keySet) (added, removed []string) {
	for kid := range cur.byKid {
		if old == nil || old.byKid[kid] == nil {
			added = append(added, kid)
		}
	}
	if old != nil {
		for kid := range old.byKid {
			if cur.byKid[kid] == nil {
				removed = append(removed, kid)
			}
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

// close refuses new fetches and waits for the one in flight, which the
// cancelled base context cuts short.
func (m *keyManager) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.running.Wait()
}

// run refreshes on schedule until the manager's context ends. After a
// failure it retries sooner, backing off from minRefresh to every.
func (m *keyManager) run() {
	// A floor of one second keeps a tiny min_refresh_interval from
	// turning retries against a down issuer into a busy loop.
	floor := max(m.minRefresh, time.Second)
	backoff := floor
	for {
		wait := m.every
		if m.lastErr.Load() != nil {
			wait = min(backoff, m.every)
			backoff = min(backoff*2, m.every)
		} else {
			backoff = floor
		}
		t := time.NewTimer(wait)
		select {
		case <-m.base.Done():
			t.Stop()
			return
		case <-t.C:
		}
		_ = m.refresh(m.base, true)
	}
}

// unavailable describes why the manager has no keys.
func (m *keyManager) unavailable() error {
	if p := m.lastErr.Load(); p != nil {
		return *p
	}
	return errors.New("key set not fetched yet")
}
