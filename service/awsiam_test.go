package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/identity/awsiam"
	"github.com/authzd/authzd/identity/awsiam/awsiamtest"
	"github.com/authzd/authzd/rego"
	"github.com/authzd/authzd/service"
)

const awsServerID = "authzd.e2e.example"

var billingKey = aws.Credentials{AccessKeyID: "AKZDBILLING000000002", SecretAccessKey: "billing-service-secret/0123456789+abcdefg"}

// copyDir copies the files of src into dst.
func copyDir(t testing.TB, src, dst string) string {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// startAWSServer runs authzd with the examples/aws-iam policies, STS proofs
// against a local STS, and direct SigV4 with one service key.
func startAWSServer(t testing.TB, sts *awsiamtest.STS) *testServer {
	t.Helper()
	return startServer(t, t.TempDir(), awsConfig(t, sts, 0))
}

// awsConfig is the config of startAWSServer; decisionTTL < 0 disables the
// decision cache.
func awsConfig(t testing.TB, sts *awsiamtest.STS, decisionTTL time.Duration) service.Config {
	t.Helper()
	dir := t.TempDir()
	policies := copyDir(t, filepath.Join("..", "examples", "aws-iam", "policies"), filepath.Join(dir, "policies"))
	encKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	sealed, err := awsiam.EncryptSecret(encKey, billingKey.AccessKeyID, billingKey.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := awsiam.MarshalKeyEntries(awsiam.KeyEntry{AccessKeyID: billingKey.AccessKeyID, Secret: sealed, ARN: "arn:aws:iam::123456789012:role/billing"})
	if err != nil {
		t.Fatal(err)
	}
	keysFile := filepath.Join(dir, "aws-keys.yaml")
	if err := os.WriteFile(keysFile, keys, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := service.Config{
		Listen:     "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		Policy:     regoConfig(policies),
		Identity: service.IdentityConfig{AWSIAM: awsiam.Config{
			STS: awsiam.STSConfig{
				Enabled: true, Endpoint: sts.URL(), ServerID: awsServerID,
				BoundARNs: []string{"arn:aws:iam::123456789012:role/orders-*", "arn:aws:iam::123456789012:user/engineering/*"},
			},
			SigV4: awsiam.SigV4Config{
				Enabled: true, Region: "eu-west-1", Service: "authzd",
				KeysFile: keysFile, EncryptionKey: awsiam.Secret(encKey),
			},
		}},
		ShutdownTimeout: 5 * time.Second,
	}
	cfg.Cache.DecisionTTL = decisionTTL
	return cfg
}

func proofCreds(t testing.TB, sts *awsiamtest.STS, creds aws.Credentials, serverID string, at time.Time) *authzdv1.Credentials {
	t.Helper()
	r, err := awsiam.NewProof(context.Background(), creds, awsiam.ProofOptions{Endpoint: sts.URL(), ServerID: serverID, Time: at})
	if err != nil {
		t.Fatal(err)
	}
	return sigv4Proto(r)
}

// sigv4Proto puts a signed request in the authzd.v1 form: a header map,
// repeated values joined with ",".
func sigv4Proto(r *identity.SignedRequest) *authzdv1.Credentials {
	h := map[string]string{}
	for k, v := range r.Header {
		h[strings.ToLower(k)] = strings.Join(v, ",")
	}
	return &authzdv1.Credentials{Kind: &authzdv1.Credentials_AwsSigv4{AwsSigv4: &authzdv1.AwsSigV4Request{
		Method: r.Method, Url: r.URL, Headers: h, Body: r.Body,
	}}}
}

func TestCheckWithAWSIAM(t *testing.T) {
	sts := awsiamtest.New(t)
	ts := startAWSServer(t, sts)
	ctx := context.Background()
	order := &authzdv1.Resource{Type: "order", Id: "o-1"}

	check := func(t *testing.T, creds *authzdv1.Credentials, action string) *authzdv1.CheckResponse {
		t.Helper()
		resp, err := ts.client.Check(ctx, &authzdv1.CheckRequest{Credentials: creds, Action: action, Resource: order})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if !resp.Allowed && len(resp.Reasons) == 0 {
			t.Fatalf("deny without a reason")
		}
		return resp
	}

	t.Run("STS proof of a role session is allowed by role ARN", func(t *testing.T) {
		creds := proofCreds(t, sts, awsiamtest.Orders.Creds, awsServerID, time.Now())
		before := sts.Calls()
		resp := check(t, creds, "orders:create")
		if !resp.Allowed {
			t.Fatalf("denied: %v", resp.Reasons)
		}
		p := resp.Principal
		if p.GetId() != "arn:aws:iam::123456789012:role/orders-api" || p.GetType() != "aws_iam" || p.GetProvider() != "aws-iam-sts" {
			t.Fatalf("principal = %v", p)
		}
		claims := p.GetClaims().AsMap()
		if claims["role"] != "orders-api" || claims["session"] != "i-0123456789abcdef0" || claims["account"] != "123456789012" {
			t.Fatalf("claims = %v", claims)
		}
		if sts.Calls() != before+1 {
			t.Fatalf("STS called %d times, want 1", sts.Calls()-before)
		}
		// The same proof again: the identity cache answers, STS is not asked.
		resp = check(t, creds, "orders:read")
		if !resp.Allowed || sts.Calls() != before+1 {
			t.Fatalf("second check: allowed=%v, STS calls %d", resp.Allowed, sts.Calls()-before)
		}
		// The policy still decides per action.
		resp = check(t, creds, "invoices:read")
		if resp.Allowed || resp.Reasons[0] != "no AWS IAM grant covers this action" {
			t.Fatalf("invoices:read: %v %v", resp.Allowed, resp.Reasons)
		}
	})

	t.Run("proof for another server is denied with a reason", func(t *testing.T) {
		resp := check(t, proofCreds(t, sts, awsiamtest.Orders.Creds, "billing.internal", time.Now()), "orders:read")
		if resp.Allowed || !strings.Contains(resp.Reasons[0], "does not name this server") {
			t.Fatalf("allowed=%v reasons=%v", resp.Allowed, resp.Reasons)
		}
	})

	t.Run("STS down is a deny with a reason", func(t *testing.T) {
		sts.Behave(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
		defer sts.Behave(nil)
		resp := check(t, proofCreds(t, sts, awsiamtest.Alice.Creds, awsServerID, time.Now().Add(-time.Second)), "orders:read")
		if resp.Allowed || resp.Reasons[0] != "unauthenticated: identity provider unavailable" {
			t.Fatalf("allowed=%v reasons=%v", resp.Allowed, resp.Reasons)
		}
		// Readiness lists the failing provider without failing the server:
		// other credentials still work.
		r, err := http.Get("http://" + ts.httpAddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var ready struct {
			Ready  bool              `json:"ready"`
			Checks map[string]string `json:"checks"`
		}
		if err := json.NewDecoder(r.Body).Decode(&ready); err != nil {
			t.Fatal(err)
		}
		if !ready.Ready || !strings.HasPrefix(ready.Checks["identity/aws-iam-sts"], "unavailable: ") || ready.Checks["identity/aws-iam-sigv4"] != "ok" {
			t.Fatalf("readyz = %+v", ready)
		}
	})

	t.Run("direct SigV4 service call", func(t *testing.T) {
		body := []byte(`{"invoice":"i-1"}`)
		req, _ := http.NewRequest("POST", "https://billing.internal/v1/invoices", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		sum := awsiamSHA256(body)
		if err := v4.NewSigner().SignHTTP(ctx, billingKey, req, sum, "authzd", "eu-west-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		signed := &identity.SignedRequest{Method: req.Method, URL: req.URL.String(), Header: req.Header, Body: body}
		resp := check(t, sigv4Proto(signed), "invoices:create")
		if !resp.Allowed || resp.Principal.GetId() != "arn:aws:iam::123456789012:role/billing" {
			t.Fatalf("allowed=%v reasons=%v principal=%v", resp.Allowed, resp.Reasons, resp.Principal)
		}
		signed.Body = []byte(`{"invoice":"i-2"}`)
		resp = check(t, sigv4Proto(signed), "invoices:create")
		if resp.Allowed || resp.Reasons[0] != "unauthenticated: aws-iam-sigv4: signature does not match" {
			t.Fatalf("tampered: allowed=%v reasons=%v", resp.Allowed, resp.Reasons)
		}
	})
}

// awsiamSHA256 is the hex SHA-256 of the payload, as the SDK signer wants it.
func awsiamSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestAWSIAMExample checks what examples/aws-iam ships: its policy tests
// pass and its config loads.
func TestAWSIAMExample(t *testing.T) {
	var out bytes.Buffer
	sum, err := rego.RunTests(context.Background(), []string{filepath.Join("..", "examples", "aws-iam", "policies")}, &out, false)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK() || sum.Passed < 10 {
		t.Fatalf("policy tests: %+v\n%s", sum, out.String())
	}
	t.Setenv("AUTHZD_SERVER_ID", "authzd.example")
	t.Setenv("AUTHZD_AWS_KEYS_KEY", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)))
	cfg, err := service.LoadConfig(filepath.Join("..", "examples", "aws-iam", "authzd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Identity.AWSIAM.STS.Enabled || !cfg.Identity.AWSIAM.SigV4.Enabled || cfg.Identity.AWSIAM.SigV4.KeysFile != filepath.Join("..", "examples", "aws-iam", "aws-keys.yaml") {
		t.Fatalf("aws_iam config = %+v", cfg.Identity.AWSIAM)
	}
	// The shipped config starts a server (its empty keys file included).
	cfg.Listen, cfg.HTTPListen = "127.0.0.1:0", "127.0.0.1:0"
	startServer(t, t.TempDir(), cfg)
}

// BenchmarkCheckAWSIAM measures the in-process Check flow with AWS
// credentials and the examples/aws-iam policy: an STS proof with the
// identity cache warm (STS is asked once), and a direct SigV4 request
// (verified on every Check: those principals are never cached); decision
// cache warm (cached) or disabled (uncached).
//
//	go test -run '^$' -bench 'BenchmarkCheckAWSIAM' -benchmem ./service
func BenchmarkCheckAWSIAM(b *testing.B) {
	for _, cred := range []string{"sts", "sigv4"} {
		for _, mode := range []string{"cached", "uncached"} {
			b.Run(cred+"/"+mode, func(b *testing.B) {
				sts := awsiamtest.New(b)
				ttl := time.Duration(0)
				if mode == "uncached" {
					ttl = -1
				}
				srv, err := service.New(context.Background(), awsConfig(b, sts, ttl), slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				a := srv.Authorizer()
				req := &authzdv1.CheckRequest{Action: "orders:read", Resource: &authzdv1.Resource{Type: "order", Id: "o-1"}}
				if cred == "sts" {
					req.Credentials = proofCreds(b, sts, awsiamtest.Orders.Creds, awsServerID, time.Now())
				} else {
					req.Action = "invoices:read"
					hreq, _ := http.NewRequest("GET", "https://billing.internal/v1/invoices?limit=10", nil)
					if err := v4.NewSigner().SignHTTP(context.Background(), billingKey, hreq, awsiamSHA256(nil), "authzd", "eu-west-1", time.Now()); err != nil {
						b.Fatal(err)
					}
					req.Credentials = sigv4Proto(&identity.SignedRequest{Method: "GET", URL: hreq.URL.String(), Header: hreq.Header})
				}
				resp, err := a.Check(context.Background(), req)
				if err != nil || !resp.Allowed {
					b.Fatalf("%v %v", resp, err)
				}
				calls := sts.Calls()
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := a.Check(context.Background(), req)
						if err != nil || !resp.Allowed || resp.Cached != (mode == "cached") {
							b.Errorf("%v %v", resp, err)
							return
						}
					}
				})
				b.StopTimer()
				if sts.Calls() != calls {
					b.Fatalf("STS asked %d more times: the identity cache missed", sts.Calls()-calls)
				}
			})
		}
	}
}
