package awsiam

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/identity/awsiam/awsiamtest"
)

// testEncryptionKey is base64 of 32 bytes, as sigv4.encryption_key holds it.
var testEncryptionKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x42}, 32))

var (
	ordersSvc  = aws.Credentials{AccessKeyID: "AKZDORDERS0000000001", SecretAccessKey: "orders-service-secret/0123456789+abcdefgh"}
	billingSvc = aws.Credentials{AccessKeyID: "AKZDBILLING000000002", SecretAccessKey: "billing-service-secret/0123456789+abcdefg"}
	retiredSvc = aws.Credentials{AccessKeyID: "AKZDRETIRED000000003", SecretAccessKey: "retired-service-secret/0123456789+abcdef"}
)

const (
	testRegion  = "eu-west-1"
	testService = "authzd"
)

func writeKeysFile(t testing.TB, dir string, entries ...KeyEntry) string {
	t.Helper()
	b, err := MarshalKeyEntries(entries...)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "aws-keys.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func entry(t testing.TB, creds aws.Credentials, arn string, disabled bool) KeyEntry {
	t.Helper()
	enc, err := EncryptSecret(testEncryptionKey, creds.AccessKeyID, creds.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	return KeyEntry{AccessKeyID: creds.AccessKeyID, Secret: enc, ARN: arn, Disabled: disabled}
}

func sigv4Config(keysFile string) Config {
	return Config{SigV4: SigV4Config{
		Enabled: true, Region: testRegion, Service: testService,
		KeysFile: keysFile, EncryptionKey: Secret(testEncryptionKey),
	}}.WithDefaults()
}

func newSigV4Provider(t testing.TB, opts ...Option) (*SigV4Provider, string) {
	t.Helper()
	path := writeKeysFile(t, t.TempDir(),
		entry(t, ordersSvc, "arn:aws:iam::"+awsiamtest.Account+":user/services/orders", false),
		entry(t, billingSvc, "arn:aws:iam::"+awsiamtest.Account+":role/billing", false),
		entry(t, retiredSvc, "arn:aws:iam::"+awsiamtest.Account+":user/retired", true),
	)
	ps, err := New("aws-iam", sigv4Config(path), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Providers) != 1 || ps.Keys == nil {
		t.Fatalf("New returned %d providers", len(ps.Providers))
	}
	return ps.Providers[0].(*SigV4Provider), path
}

type signOpts struct {
	creds   aws.Credentials
	region  string
	service string
	at      time.Time
	// contentSHA sets X-Amz-Content-Sha256 before signing.
	contentSHA bool
	header     map[string]string
}

// signed signs a request with the AWS SDK signer and returns it in the
// form authzd receives it.
func signed(t testing.TB, method, rawURL string, body []byte, o signOpts) *identity.SignedRequest {
	t.Helper()
	if o.creds.AccessKeyID == "" {
		o.creds = ordersSvc
	}
	if o.region == "" {
		o.region = testRegion
	}
	if o.service == "" {
		o.service = testService
	}
	if o.at.IsZero() {
		o.at = time.Now()
	}
	req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range o.header {
		req.Header.Set(k, v)
	}
	if o.contentSHA {
		req.Header.Set("X-Amz-Content-Sha256", sha256Hex(body))
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), o.creds, req, sha256Hex(body), o.service, o.region, o.at); err != nil {
		t.Fatal(err)
	}
	return &identity.SignedRequest{Method: method, URL: req.URL.String(), Header: req.Header.Clone(), Body: body}
}

// presigned presigns a request with the AWS SDK signer.
func presigned(t testing.TB, method, rawURL string, expires time.Duration, o signOpts) *identity.SignedRequest {
	t.Helper()
	if o.creds.AccessKeyID == "" {
		o.creds = ordersSvc
	}
	if o.at.IsZero() {
		o.at = time.Now()
	}
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := req.URL.Query()
	q.Set("X-Amz-Expires", strconv.Itoa(int(expires/time.Second)))
	req.URL.RawQuery = q.Encode()
	u, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), o.creds, req, "UNSIGNED-PAYLOAD", testService, testRegion, o.at)
	if err != nil {
		t.Fatal(err)
	}
	return &identity.SignedRequest{Method: method, URL: u, Header: hdr}
}

func TestSigV4Verifies(t *testing.T) {
	p, _ := newSigV4Provider(t)
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	cases := []struct {
		name string
		req  *identity.SignedRequest
	}{
		{"GET no body", signed(t, "GET", "https://orders.internal/v1/orders", nil, signOpts{at: at})},
		{"POST JSON body", signed(t, "POST", "https://orders.internal/v1/orders", []byte(`{"id":42}`), signOpts{at: at, header: map[string]string{"Content-Type": "application/json"}})},
		{"x-amz-content-sha256", signed(t, "PUT", "https://orders.internal/v1/orders/42", []byte("payload"), signOpts{at: at, contentSHA: true})},
		{"tricky query", signed(t, "GET", "https://orders.internal/v1/search?b=2&a=1&a=0&q=a+b&k=%20x&slash=a%2Fb&dash=a-b&empty=&tilde=~&uni=%C3%BC&noval", nil, signOpts{at: at})},
		{"escaped path", signed(t, "GET", "https://orders.internal/v1/a%20b/c%2Fd/%C3%BC/x~y", nil, signOpts{at: at})},
		{"non-default port", signed(t, "GET", "http://127.0.0.1:8181/v1", nil, signOpts{at: at})},
		{"host in upper case", signed(t, "GET", "https://Orders.Internal/v1", nil, signOpts{at: at})},
		{"default port stripped", signed(t, "GET", "https://orders.internal:443/v1", nil, signOpts{at: at})},
		{"spaces in header values", signed(t, "GET", "https://orders.internal/v1", nil, signOpts{at: at, header: map[string]string{"X-Trace": "  a   b  c "}})},
		{"presigned GET", presigned(t, "GET", "https://orders.internal/v1/report?format=csv", 5*time.Minute, signOpts{at: at})},
		{"presigned with session", presigned(t, "GET", "https://orders.internal/v1", time.Hour, signOpts{at: at, creds: aws.Credentials{AccessKeyID: ordersSvc.AccessKeyID, SecretAccessKey: ordersSvc.SecretAccessKey, SessionToken: "tok"}})},
		{"billing role", signed(t, "DELETE", "https://orders.internal/v1/orders/42", nil, signOpts{at: at, creds: billingSvc})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pr, err := p.Resolve(context.Background(), sigv4Cred(tc.req))
			if err != nil {
				t.Fatalf("%v (url %s, headers %v)", err, tc.req.URL, tc.req.Header)
			}
			if pr.Type != "aws_iam" || pr.Claims["mode"] != "sigv4" || pr.Claims["account"] != awsiamtest.Account {
				t.Fatalf("principal = %+v", pr)
			}
			if pr.ExpiresAt.IsZero() {
				t.Fatalf("no expiry")
			}
		})
	}
	pr, err := p.Resolve(context.Background(), sigv4Cred(cases[0].req))
	if err != nil {
		t.Fatal(err)
	}
	if pr.ID != "arn:aws:iam::"+awsiamtest.Account+":user/services/orders" || pr.Claims["user"] != "orders" || pr.Subject != ordersSvc.AccessKeyID {
		t.Fatalf("principal = %+v", pr)
	}
	if !pr.ExpiresAt.Equal(at.Add(5 * time.Minute)) {
		t.Fatalf("ExpiresAt = %v, want signing time + max_skew", pr.ExpiresAt)
	}
	if _, ok := identity.Provider(p).(identity.Cacheable); ok {
		t.Fatalf("direct SigV4 must not be cacheable (revocation would lag)")
	}
}

func TestSigV4Rejections(t *testing.T) {
	p, _ := newSigV4Provider(t)
	body := []byte(`{"amount":100}`)
	cases := []struct {
		name string
		make func(t *testing.T) *identity.SignedRequest
		want string
	}{
		{"tampered body", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "POST", "https://orders.internal/v1/pay", body, signOpts{})
			r.Body = []byte(`{"amount":999}`)
			return r
		}, "signature does not match"},
		{"tampered body with content hash", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "POST", "https://orders.internal/v1/pay", body, signOpts{contentSHA: true})
			r.Body = []byte(`{"amount":999}`)
			return r
		}, "X-Amz-Content-Sha256 does not match the body"},
		{"tampered path", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "GET", "https://orders.internal/v1/orders/1", nil, signOpts{})
			r.URL = "https://orders.internal/v1/orders/2"
			return r
		}, "signature does not match"},
		{"tampered query", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "GET", "https://orders.internal/v1/orders?limit=1", nil, signOpts{})
			r.URL = "https://orders.internal/v1/orders?limit=1000"
			return r
		}, "signature does not match"},
		{"tampered signed header", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "GET", "https://orders.internal/v1", nil, signOpts{header: map[string]string{"X-Tenant": "a"}})
			r.Header.Set("X-Tenant", "b")
			return r
		}, "signature does not match"},
		{"other host", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "GET", "https://orders.internal/v1", nil, signOpts{})
			r.URL = "https://billing.internal/v1"
			return r
		}, "signature does not match"},
		{"wrong region", func(t *testing.T) *identity.SignedRequest {
			return signed(t, "GET", "https://orders.internal/v1", nil, signOpts{region: "us-east-1"})
		}, "credential scope must be eu-west-1/authzd"},
		{"wrong service", func(t *testing.T) *identity.SignedRequest {
			return signed(t, "GET", "https://orders.internal/v1", nil, signOpts{service: "s3"})
		}, "credential scope must be eu-west-1/authzd"},
		{"old signing date", func(t *testing.T) *identity.SignedRequest {
			return signed(t, "GET", "https://orders.internal/v1", nil, signOpts{at: time.Now().Add(-6 * time.Minute)})
		}, "outside the allowed clock skew"},
		{"future signing date", func(t *testing.T) *identity.SignedRequest {
			return signed(t, "GET", "https://orders.internal/v1", nil, signOpts{at: time.Now().Add(6 * time.Minute)})
		}, "outside the allowed clock skew"},
		{"expired presigned URL", func(t *testing.T) *identity.SignedRequest {
			return presigned(t, "GET", "https://orders.internal/v1", time.Minute, signOpts{at: time.Now().Add(-2 * time.Minute)})
		}, "presigned URL has expired"},
		{"presigned URL with a longer expiry", func(t *testing.T) *identity.SignedRequest {
			r := presigned(t, "GET", "https://orders.internal/v1", time.Minute, signOpts{})
			r.URL = strings.Replace(r.URL, "X-Amz-Expires=60", "X-Amz-Expires=3600", 1)
			return r
		}, "signature does not match"},
		{"presigned URL signed in the future", func(t *testing.T) *identity.SignedRequest {
			return presigned(t, "GET", "https://orders.internal/v1", time.Hour, signOpts{at: time.Now().Add(10 * time.Minute)})
		}, "signed in the future"},
		{"unknown access key", func(t *testing.T) *identity.SignedRequest {
			return signed(t, "GET", "https://orders.internal/v1", nil, signOpts{creds: aws.Credentials{AccessKeyID: "AKZDNOBODY0000000000", SecretAccessKey: "x"}})
		}, "unknown access key"},
		{"disabled key", func(t *testing.T) *identity.SignedRequest {
			return signed(t, "GET", "https://orders.internal/v1", nil, signOpts{creds: retiredSvc})
		}, "unknown access key"},
		{"wrong secret", func(t *testing.T) *identity.SignedRequest {
			return signed(t, "GET", "https://orders.internal/v1", nil, signOpts{creds: aws.Credentials{AccessKeyID: ordersSvc.AccessKeyID, SecretAccessKey: billingSvc.SecretAccessKey}})
		}, "signature does not match"},
		{"unsigned X-Amz header", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "GET", "https://orders.internal/v1", nil, signOpts{})
			r.Header.Set("X-Amz-Security-Token", "smuggled")
			return r
		}, "X-Amz-Security-Token is not signed"},
		{"signed header removed", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "GET", "https://orders.internal/v1", nil, signOpts{header: map[string]string{"X-Tenant": "a"}})
			r.Header.Del("X-Tenant")
			return r
		}, "signed header x-tenant is missing"},
		{"not signed at all", func(t *testing.T) *identity.SignedRequest {
			return &identity.SignedRequest{Method: "GET", URL: "https://orders.internal/v1", Header: http.Header{"Authorization": {"Bearer x"}}}
		}, "not SigV4-signed"},
		{"garbled authorization", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "GET", "https://orders.internal/v1", nil, signOpts{})
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=", "Signed=", 1))
			return r
		}, "unknown component"},
		{"semicolon in the query", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "GET", "https://orders.internal/v1?a=1", nil, signOpts{})
			r.URL += ";b=2"
			return r
		}, "must not contain ';'"},
		{"relative URL", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "GET", "https://orders.internal/v1", nil, signOpts{})
			r.URL = "/v1"
			return r
		}, "absolute http(s) URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { reject(t, p, tc.make(t), tc.want) })
	}
}

func TestSigV4DefersSTSProofs(t *testing.T) {
	p, _ := newSigV4Provider(t)
	r, err := NewProof(context.Background(), awsiamtest.Alice.Creds, ProofOptions{ServerID: testServerID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resolve(context.Background(), sigv4Cred(r)); !errors.Is(err, identity.ErrNotMine) {
		t.Fatalf("err = %v, want ErrNotMine for an STS proof", err)
	}
}

// TestBothModesInAChain enables both modes: each request goes to its mode.
func TestBothModesInAChain(t *testing.T) {
	sts := awsiamtest.New(t)
	dir := t.TempDir()
	cfg := stsConfig(sts.URL())
	cfg.SigV4 = sigv4Config(writeKeysFile(t, dir, entry(t, ordersSvc, "arn:aws:iam::"+awsiamtest.Account+":user/services/orders", false))).SigV4
	ps, err := New("aws-iam", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Providers) != 2 {
		t.Fatalf("New returned %d providers, want 2", len(ps.Providers))
	}
	chain := identity.NewChain(ps.Providers...)
	pr, _, err := chain.Resolve(context.Background(), sigv4Cred(proof(t, sts, awsiamtest.Orders.Creds, nil)))
	if err != nil || pr.Claims["mode"] != "sts" || pr.ID != "arn:aws:iam::"+awsiamtest.Account+":role/orders-api" {
		t.Fatalf("STS proof: %v, %v", pr, err)
	}
	pr, _, err = chain.Resolve(context.Background(), sigv4Cred(signed(t, "GET", "https://orders.internal/v1", nil, signOpts{})))
	if err != nil || pr.Claims["mode"] != "sigv4" {
		t.Fatalf("direct: %v, %v", pr, err)
	}
	_, _, err = chain.Resolve(context.Background(), sigv4Cred(signed(t, "GET", "https://orders.internal/v1", nil, signOpts{region: "us-east-1"})))
	if !identity.IsInvalid(err) {
		t.Fatalf("wrong region through chain: %v", err)
	}
}

func TestKeysFile(t *testing.T) {
	t.Run("reload revokes", func(t *testing.T) {
		p, path := newSigV4Provider(t)
		r := signed(t, "GET", "https://orders.internal/v1", nil, signOpts{creds: billingSvc})
		if _, err := p.Resolve(context.Background(), sigv4Cred(r)); err != nil {
			t.Fatal(err)
		}
		writeKeysFile(t, filepath.Dir(path), entry(t, ordersSvc, "arn:aws:iam::"+awsiamtest.Account+":user/services/orders", false))
		if err := p.store.(*FileStore).Reload(); err != nil {
			t.Fatal(err)
		}
		reject(t, p, r, "unknown access key")
	})
	t.Run("a bad reload keeps the last good table", func(t *testing.T) {
		key, _ := DecodeEncryptionKey(testEncryptionKey)
		path := writeKeysFile(t, t.TempDir(), entry(t, ordersSvc, "arn:aws:iam::"+awsiamtest.Account+":user/orders", false))
		s, err := OpenFileStore(path, key)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, []byte("keys: [oops"), 0o600)
		if err := s.Reload(); err == nil {
			t.Fatal("reload of a broken file succeeded")
		}
		if _, err := s.Lookup(context.Background(), ordersSvc.AccessKeyID); err != nil {
			t.Fatalf("lookup after failed reload: %v", err)
		}
	})

	otherKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	bad := []struct {
		name    string
		entries func(t *testing.T) []KeyEntry
		want    string
	}{
		{"wrong encryption key", func(t *testing.T) []KeyEntry {
			enc, _ := EncryptSecret(otherKey, ordersSvc.AccessKeyID, ordersSvc.SecretAccessKey)
			return []KeyEntry{{AccessKeyID: ordersSvc.AccessKeyID, Secret: enc, ARN: "arn:aws:iam::123456789012:user/a"}}
		}, "keys[0].secret: secret does not decrypt"},
		{"secret moved to another key id", func(t *testing.T) []KeyEntry {
			e := entry(t, ordersSvc, "arn:aws:iam::123456789012:user/a", false)
			e.AccessKeyID = billingSvc.AccessKeyID
			return []KeyEntry{e}
		}, "keys[0].secret: secret does not decrypt"},
		{"plaintext secret", func(t *testing.T) []KeyEntry {
			return []KeyEntry{{AccessKeyID: ordersSvc.AccessKeyID, Secret: ordersSvc.SecretAccessKey, ARN: "arn:aws:iam::123456789012:user/a"}}
		}, "keys[0].secret: secret is not encrypted"},
		{"duplicate id", func(t *testing.T) []KeyEntry {
			e := entry(t, ordersSvc, "arn:aws:iam::123456789012:user/a", false)
			return []KeyEntry{e, e}
		}, "keys[1].access_key_id"},
		{"bad ARN", func(t *testing.T) []KeyEntry {
			return []KeyEntry{entry(t, ordersSvc, "orders", false)}
		}, "keys[0].arn"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			path := writeKeysFile(t, t.TempDir(), tc.entries(t)...)
			key, _ := DecodeEncryptionKey(testEncryptionKey)
			_, err := OpenFileStore(path, key)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), ordersSvc.SecretAccessKey) {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}

	t.Run("NewKeyEntry round trip", func(t *testing.T) {
		e, secret, err := NewKeyEntry(testEncryptionKey, "arn:aws:iam::123456789012:user/new")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(e.Secret, secret) || !strings.HasPrefix(e.Secret, "enc:v1:") {
			t.Fatalf("entry secret is not encrypted: %q", e.Secret)
		}
		key, _ := DecodeEncryptionKey(testEncryptionKey)
		s, err := OpenFileStore(writeKeysFile(t, t.TempDir(), e), key)
		if err != nil {
			t.Fatal(err)
		}
		k, err := s.Lookup(context.Background(), e.AccessKeyID)
		if err != nil || string(k.Secret) != secret {
			t.Fatalf("lookup: %v", err)
		}
		if strings.Contains(k.String(), secret) {
			t.Fatalf("ServiceKey.String leaks the secret")
		}
	})
}

func TestKeysFileIsReadFromDisk(t *testing.T) {
	// The documented format, written by hand, loads.
	enc, err := EncryptSecret(testEncryptionKey, ordersSvc.AccessKeyID, ordersSvc.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	doc := "# service keys\nkeys:\n  - access_key_id: " + ordersSvc.AccessKeyID + "\n    secret: " + enc + "\n    arn: arn:aws:iam::123456789012:user/orders\n"
	path := filepath.Join(t.TempDir(), "keys.yaml")
	os.WriteFile(path, []byte(doc), 0o600)
	key, _ := DecodeEncryptionKey(testEncryptionKey)
	s, err := OpenFileStore(path, key)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d", s.Len())
	}
	// Unknown fields are refused, so a typo cannot silently disable a check.
	os.WriteFile(path, []byte(doc+"    disabeld: true\n"), 0o600)
	if err := s.Reload(); err == nil {
		t.Fatal("unknown field accepted")
	}
	_ = io.Discard
}

func TestKeysFileWatch(t *testing.T) {
	dir := t.TempDir()
	path := writeKeysFile(t, dir, entry(t, ordersSvc, "arn:aws:iam::"+awsiamtest.Account+":user/orders", false))
	cfg := sigv4Config(path)
	cfg.SigV4.ReloadInterval = 20 * time.Millisecond
	set, err := New("aws-iam", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { set.Watch(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); close(done) }()
	defer func() { cancel(); <-done }()

	p := set.Providers[0]
	r := signed(t, "GET", "https://orders.internal/v1", nil, signOpts{})
	if _, err := p.Resolve(context.Background(), sigv4Cred(r)); err != nil {
		t.Fatal(err)
	}
	// Disable the key: the watcher picks the change up.
	writeKeysFile(t, dir, entry(t, ordersSvc, "arn:aws:iam::"+awsiamtest.Account+":user/orders", true), entry(t, billingSvc, "arn:aws:iam::"+awsiamtest.Account+":role/billing", false))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := p.Resolve(context.Background(), sigv4Cred(r))
		if identity.IsInvalid(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("key still accepted after the file disabled it: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAppendKeyEntry(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "aws-keys.yaml")
	// The shipped empty file, with its comment.
	os.WriteFile(path, []byte("# service keys, see the docs\nkeys: []\n"), 0o600)
	e1, s1, err := NewKeyEntry(testEncryptionKey, "arn:aws:iam::123456789012:user/services/orders")
	if err != nil {
		t.Fatal(err)
	}
	if err := AppendKeyEntry(path, e1); err != nil {
		t.Fatal(err)
	}
	e2, _, _ := NewKeyEntry(testEncryptionKey, "arn:aws:iam::123456789012:role/billing")
	if err := AppendKeyEntry(path, e2); err != nil {
		t.Fatal(err)
	}
	if err := AppendKeyEntry(path, e1); err == nil || !strings.Contains(err.Error(), "already present") {
		t.Fatalf("duplicate: %v", err)
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), "# service keys") || strings.Contains(string(raw), s1) {
		t.Fatalf("file = %s", raw)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v", fi.Mode())
	}
	key, _ := DecodeEncryptionKey(testEncryptionKey)
	s, err := OpenFileStore(path, key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Lookup(context.Background(), e1.AccessKeyID)
	if err != nil || string(k.Secret) != s1 || s.Len() != 2 {
		t.Fatalf("lookup: %v (len %d)", err, s.Len())
	}
	// A new file is created.
	if err := AppendKeyEntry(filepath.Join(dir, "new.yaml"), e1); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(filepath.Join(dir, "new.yaml"), key); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialFromHTTP(t *testing.T) {
	p, _ := newSigV4Provider(t)
	// A signed request as a front door sees it: extra proxy headers added.
	r := signed(t, "POST", "https://orders.internal/v1/orders?x=1", []byte(`{}`), signOpts{})
	h := r.Header.Clone()
	h.Set("X-Forwarded-For", "10.0.0.1")
	h.Set("X-Request-Id", "abc")
	h.Set("Host", "orders.internal")
	cred, found, err := CredentialFromHTTP("POST", r.URL, h, r.Body)
	if err != nil || !found {
		t.Fatalf("found=%v err=%v", found, err)
	}
	if _, err := p.Resolve(context.Background(), cred); err != nil {
		t.Fatal(err)
	}
	pre := presigned(t, "GET", "https://orders.internal/v1/report", time.Minute, signOpts{})
	if cred, found, _ := CredentialFromHTTP("GET", pre.URL, http.Header{"Host": {"orders.internal"}}, nil); !found {
		t.Fatal("presigned URL not found")
	} else if _, err := p.Resolve(context.Background(), cred); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := CredentialFromHTTP("GET", "https://orders.internal/", http.Header{"Authorization": {"Bearer x"}}, nil); found {
		t.Fatal("bearer token taken for SigV4")
	}
	if _, found, err := CredentialFromHTTP("GET", "https://orders.internal/", http.Header{ProofHeader: {"!!"}}, nil); !found || err == nil {
		t.Fatalf("bad proof header: found=%v err=%v", found, err)
	}

	sts := awsiamtest.New(t)
	enc, _ := EncodeProofHeader(proof(t, sts, awsiamtest.Alice.Creds, nil))
	cred, found, err = CredentialFromHTTP("GET", "https://app.internal/page", http.Header{"X-Authzd-Aws-Proof": {enc}, "Authorization": {"Bearer unrelated"}}, nil)
	if err != nil || !found || cred.Request.URL != sts.URL() {
		t.Fatalf("proof header: %v %v %+v", found, err, cred.Request)
	}
	pr, err := newSTSProvider(t, sts.URL()).Resolve(context.Background(), cred)
	if err != nil || pr.Claims["user"] != "alice" {
		t.Fatalf("%v %v", pr, err)
	}
}
