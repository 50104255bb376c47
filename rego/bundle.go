package rego

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// persistFile is the name of the last good bundle inside PersistDir.
const persistFile = "bundle.tar.gz"

// bundleSource downloads a bundle over HTTP. Its mutable fields are
// guarded by Engine.mu.
type bundleSource struct {
	cfg    BundleConfig
	client *http.Client
	verify *bundle.VerificationConfig // nil: signatures are not checked
	// logURL is the URL without query or user info: a presigned object
	// store URL carries its credential in the query.
	logURL string

	etag     string   // of the last downloaded bundle, good or not
	lastSum  [32]byte // of the last bundle bytes built, good or not
	hasSum   bool
	lastGood bool // the bundle of etag and lastSum compiled
}

func newBundleSource(cfg BundleConfig) (*bundleSource, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("policy.bundle.url: %v", err)
	}
	logURL := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f := cfg.TLS.CAFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("policy.bundle.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("policy.bundle.tls.ca_file: %s holds no PEM certificate", f)
		}
		tlsCfg.RootCAs = pool
	}
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("policy.bundle.tls.cert_file/key_file: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	// The bundle is gzip already. Without this, an object store that labels
	// it Content-Encoding: gzip would have it unpacked by the transport.
	tr.DisableCompression = true
	src := &bundleSource{
		cfg: cfg,
		// No client timeout: each download has its own context deadline.
		client: &http.Client{Transport: tr},
		logURL: logURL,
	}
	if v := cfg.Verification; v != nil {
		key, err := os.ReadFile(v.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("policy.bundle.verification.public_key_file: %w", err)
		}
		keys := map[string]*bundle.KeyConfig{
			v.KeyID: {Key: string(key), Algorithm: v.Algorithm, Scope: v.Scope},
		}
		src.verify = bundle.NewVerificationConfig(keys, v.KeyID, v.Scope, nil)
	}
	return src, nil
}

// fetched is the outcome of one download.
type fetched struct {
	body        []byte
	etag        string
	notModified bool
}

// fetch downloads the bundle, sending If-None-Match when etag is set.
func (s *bundleSource) fetch(ctx context.Context, etag string) (fetched, error) {
	if s.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return fetched{}, s.redact(err)
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	if s.cfg.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.BearerToken)
	}
	req.Header.Set("User-Agent", "authzd")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fetched{}, s.redact(err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return fetched{notModified: true, etag: etag}, nil
	default:
		// Drain a little so the connection can be reused; never log the body.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fetched{}, fmt.Errorf("bundle server answered %s", resp.Status)
	}
	if resp.ContentLength > s.cfg.MaxBytes {
		return fetched{}, fmt.Errorf("bundle is %d bytes, more than policy.bundle.max_bytes (%d)", resp.ContentLength, s.cfg.MaxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxBytes+1))
	if err != nil {
		return fetched{}, fmt.Errorf("reading bundle: %w", s.redact(err))
	}
	if int64(len(body)) > s.cfg.MaxBytes {
		return fetched{}, fmt.Errorf("bundle is more than policy.bundle.max_bytes (%d)", s.cfg.MaxBytes)
	}
	return fetched{body: body, etag: resp.Header.Get("ETag")}, nil
}

// redact replaces the URL in a transport error with the loggable one.
func (s *bundleSource) redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = s.logURL
	}
	return err
}

// readBundle parses a tar.gz bundle, verifying its signature when vc is
// set. Only snapshot bundles of Rego and data are accepted.
func readBundle(raw []byte, limit int64, vc *bundle.VerificationConfig) (bundle.Bundle, error) {
	r := bundle.NewReader(bytes.NewReader(raw)).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(limit)
	if vc != nil {
		r = r.WithBundleVerificationConfig(vc)
	} else {
		r = r.WithSkipBundleVerification(true)
	}
	b, err := r.Read()
	if err != nil {
		return bundle.Bundle{}, fmt.Errorf("reading bundle: %w", err)
	}
	if b.Type() != bundle.SnapshotBundleType {
		return bundle.Bundle{}, errors.New("reading bundle: delta bundles are not supported; serve a snapshot bundle")
	}
	if len(b.WasmModules) > 0 || len(b.PlanModules) > 0 {
		return bundle.Bundle{}, errors.New("reading bundle: wasm and plan bundles are not supported; build the bundle without --target")
	}
	return b, nil
}

// buildFromBundle compiles a set from a parsed bundle through the same path
// as a directory. Test modules (_test.rego) are skipped, as they are in a
// directory.
func buildFromBundle(ctx context.Context, cfg Config, origin string, b *bundle.Bundle) (*PolicySet, error) {
	modules := make(map[string]sourceModule, len(b.Modules))
	for _, m := range b.Modules {
		name := m.Path
		if name == "" {
			name = m.URL
		}
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		modules[name] = sourceModule{Parsed: m.Parsed, Raw: m.Raw}
	}
	ps, err := compileSet(ctx, cfg, origin, modules, b.Data)
	if err != nil {
		return nil, err
	}
	ps.BundleRevision = b.Manifest.Revision
	return ps, nil
}

// build parses and compiles bundle bytes.
func (s *bundleSource) build(ctx context.Context, cfg Config, origin string, raw []byte) (*PolicySet, error) {
	b, err := readBundle(raw, s.cfg.MaxBytes, s.verify)
	if err != nil {
		return nil, err
	}
	return buildFromBundle(ctx, cfg, origin, &b)
}

// persist writes raw as the last good bundle, atomically.
func (s *bundleSource) persist(raw []byte) error {
	dir := s.cfg.PersistDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".bundle-*.tmp")
	if err != nil {
		return err
	}
	_, werr := f.Write(raw)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, persistFile)); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// delay is how long to wait before the next download: a random point in
// [PollMin, PollMax] after a success; after n failures, PollMin doubled
// n-1 times (at most PollMax), jittered down by up to half.
func (s *bundleSource) delay(failures int) time.Duration {
	lo, hi := s.cfg.PollMin, s.cfg.PollMax
	if failures == 0 {
		return lo + rand.N(hi-lo+1)
	}
	d := hi
	if n := failures - 1; n < 30 && lo<<n < hi {
		d = lo << n
	}
	return d - rand.N(d/2+1)
}

// loadBundleLocked downloads the bundle and swaps in a new set. A bundle
// that fails to download, parse or compile keeps the serving set; when
// nothing serves yet, the persisted last good bundle is tried.
func (e *Engine) loadBundleLocked(ctx context.Context) error {
	src := e.bundle
	res, err := src.fetch(ctx, src.etag)
	if err != nil {
		return e.bundleFailedLocked(ctx, fmt.Errorf("policy bundle %s: %w", src.logURL, err))
	}
	if res.notModified {
		return e.unchangedLocked()
	}
	src.etag = res.etag
	sum := sha256.Sum256(res.body)
	if src.hasSum && sum == src.lastSum {
		// Same bytes as last time (a server without ETags): already built,
		// or already known to be broken.
		return e.unchangedLocked()
	}
	src.lastSum, src.hasSum, src.lastGood = sum, true, false
	ps, err := src.build(ctx, e.cfg, src.logURL, res.body)
	if err != nil {
		return e.bundleFailedLocked(ctx, fmt.Errorf("policy bundle %s: %w", src.logURL, err))
	}
	src.lastGood = true
	if e.swapLocked(ps) {
		e.log.Info("policy bundle activated", "revision", ps.Revision, "bundle_revision", ps.BundleRevision, "modules", len(ps.Files))
		if src.cfg.PersistDir != "" {
			if err := src.persist(res.body); err != nil {
				e.log.Warn("could not persist the policy bundle", "persist_dir", src.cfg.PersistDir, "error", err)
			}
		}
	}
	return nil
}

// bundleFailedLocked records err. When nothing serves yet and a persisted
// bundle compiles, that bundle serves, err stays visible in LastError, and
// nil is returned.
func (e *Engine) bundleFailedLocked(ctx context.Context, err error) error {
	src := e.bundle
	if e.cur.Load() == nil && src.cfg.PersistDir != "" {
		path := filepath.Join(src.cfg.PersistDir, persistFile)
		raw, rerr := os.ReadFile(path)
		if rerr == nil {
			ps, berr := src.build(ctx, e.cfg, path, raw)
			if berr == nil {
				if !src.hasSum {
					src.lastSum, src.hasSum, src.lastGood = sha256.Sum256(raw), true, true
				}
				e.swapLocked(ps)
				e.log.Warn("policy bundle unavailable; serving the persisted last good bundle",
					"error", err, "revision", ps.Revision, "bundle_revision", ps.BundleRevision)
				e.failLocked(err) // after the swap, so LastError shows it
				return nil
			}
			e.log.Error("persisted policy bundle does not load", "path", path, "error", berr)
		} else if !errors.Is(rerr, os.ErrNotExist) {
			e.log.Error("persisted policy bundle unreadable", "path", path, "error", rerr)
		}
	}
	return e.failLocked(err)
}

// unchangedLocked handles a download of the bundle last seen: when that
// bundle is the one serving, an earlier error (e.g. the server was down) is
// over. It returns nil when a set serves, else why none does.
func (e *Engine) unchangedLocked() error {
	if e.bundle.lastGood {
		e.lastErr.Store(nil)
	}
	if e.cur.Load() != nil {
		return nil
	}
	if err := e.LastError(); err != nil {
		return err
	}
	return errors.New("policy bundle: none loaded yet")
}

// runBundle polls the bundle server until ctx ends.
func (e *Engine) runBundle(ctx context.Context) {
	failures := 0
	if e.cur.Load() == nil {
		failures = 1 // start-up failed: retry soon
	}
	t := time.NewTimer(e.bundle.delay(failures))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		old := e.cur.Load()
		err := e.loadLocked(ctx)
		e.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			rev := ""
			if old != nil {
				rev = old.Revision
			}
			e.log.Error("policy bundle update failed; keeping the last good policy set", "error", err, "serving_revision", rev)
		} else {
			failures = 0
		}
		t.Reset(e.bundle.delay(failures))
	}
}
