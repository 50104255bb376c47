package awsiam

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/identity/awsiam/awsiamtest"
)

const testServerID = "authzd.test.example"

func stsConfig(endpoint string) Config {
	return Config{STS: STSConfig{
		Enabled:   true,
		Endpoint:  endpoint,
		ServerID:  testServerID,
		BoundARNs: []string{"arn:aws:iam::" + awsiamtest.Account + ":user/engineering/*", "arn:aws:iam::" + awsiamtest.Account + ":role/orders-*"},
	}}.WithDefaults()
}

func newSTSProvider(t testing.TB, endpoint string, opts ...Option) *STSProvider {
	t.Helper()
	p, err := NewSTSProvider("aws-iam", stsConfig(endpoint), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func proof(t testing.TB, sts *awsiamtest.STS, creds aws.Credentials, mutate func(*ProofOptions)) *identity.SignedRequest {
	t.Helper()
	o := ProofOptions{Endpoint: sts.URL(), ServerID: testServerID}
	if mutate != nil {
		mutate(&o)
	}
	r, err := NewProof(context.Background(), creds, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sigv4Cred(r *identity.SignedRequest) identity.Credential {
	return identity.Credential{Kind: identity.KindAWSSigV4, Request: r}
}

func TestSTSProofResolves(t *testing.T) {
	sts := awsiamtest.New(t)
	p := newSTSProvider(t, sts.URL())
	signedAt := time.Now().Add(-2 * time.Minute).UTC().Truncate(time.Second)

	t.Run("IAM user", func(t *testing.T) {
		pr, err := p.Resolve(context.Background(), sigv4Cred(proof(t, sts, awsiamtest.Alice.Creds, func(o *ProofOptions) { o.Time = signedAt })))
		if err != nil {
			t.Fatal(err)
		}
		want := "arn:aws:iam::" + awsiamtest.Account + ":user/engineering/alice"
		if pr.ID != want || pr.Type != "aws_iam" || pr.Provider != "aws-iam" || pr.Subject != "AIDAALICE00000000001" {
			t.Fatalf("principal = %+v", pr)
		}
		if pr.Claims["user"] != "alice" || pr.Claims["account"] != awsiamtest.Account || pr.Claims["arn"] != want {
			t.Fatalf("claims = %v", pr.Claims)
		}
		if _, ok := pr.Claims["role"]; ok {
			t.Fatalf("user principal has a role claim: %v", pr.Claims)
		}
		if !pr.ExpiresAt.Equal(signedAt.Add(15 * time.Minute)) {
			t.Fatalf("ExpiresAt = %v, want signing time + 15m = %v", pr.ExpiresAt, signedAt.Add(15*time.Minute))
		}
	})

	t.Run("assumed role is canonicalised to its role", func(t *testing.T) {
		pr, err := p.Resolve(context.Background(), sigv4Cred(proof(t, sts, awsiamtest.Orders.Creds, nil)))
		if err != nil {
			t.Fatal(err)
		}
		want := "arn:aws:iam::" + awsiamtest.Account + ":role/orders-api"
		if pr.ID != want || pr.Claims["role"] != "orders-api" || pr.Claims["session"] != "i-0123456789abcdef0" {
			t.Fatalf("principal = %+v", pr)
		}
		if pr.Claims["caller_arn"] != "arn:aws:sts::"+awsiamtest.Account+":assumed-role/orders-api/i-0123456789abcdef0" {
			t.Fatalf("caller_arn = %v", pr.Claims["caller_arn"])
		}
		// Only the signed headers (plus Authorization and Content-Type) were
		// forwarded: the session token is signed, so it went along.
		fwd := sts.LastHeaders()
		if fwd.Get("X-Amz-Security-Token") != awsiamtest.Orders.Creds.SessionToken || fwd.Get("Authorization") == "" {
			t.Fatalf("forwarded headers = %v", fwd)
		}
	})

	if p.CacheTTL() != 15*time.Minute {
		t.Fatalf("CacheTTL = %v", p.CacheTTL())
	}
	if err := p.Ready(); err != nil {
		t.Fatalf("Ready after successes = %v", err)
	}
}

// reject asserts that Resolve fails with a CredentialError whose public
// reason contains want.
func reject(t *testing.T, p identity.Provider, r *identity.SignedRequest, want string) {
	t.Helper()
	pr, err := p.Resolve(context.Background(), sigv4Cred(r))
	if err == nil {
		t.Fatalf("resolved %v, want rejection %q", pr.ID, want)
	}
	var ce *identity.CredentialError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a CredentialError", err)
	}
	if !strings.Contains(ce.Reason, want) {
		t.Fatalf("reason %q does not contain %q", ce.Reason, want)
	}
}

func TestSTSProofRejections(t *testing.T) {
	sts := awsiamtest.New(t)
	p := newSTSProvider(t, sts.URL())

	cases := []struct {
		name string
		make func(t *testing.T) *identity.SignedRequest
		want string
		// reachesSTS says whether authzd may forward the proof at all.
		reachesSTS bool
	}{
		{"server ID header missing", func(t *testing.T) *identity.SignedRequest {
			return proof(t, sts, awsiamtest.Alice.Creds, func(o *ProofOptions) { o.ServerID = "" })
		}, "has no X-Authzd-Server-Id header", false},
		{"server ID header not signed", func(t *testing.T) *identity.SignedRequest {
			r := proof(t, sts, awsiamtest.Alice.Creds, func(o *ProofOptions) { o.ServerID = "" })
			r.Header.Set(DefaultServerIDHeader, testServerID)
			return r
		}, "X-Authzd-Server-Id header is not signed", false},
		{"replay against another server ID", func(t *testing.T) *identity.SignedRequest {
			return proof(t, sts, awsiamtest.Alice.Creds, func(o *ProofOptions) { o.ServerID = "billing.internal" })
		}, "does not name this server", false},
		{"tampered body (still GetCallerIdentity)", func(t *testing.T) *identity.SignedRequest {
			r := proof(t, sts, awsiamtest.Alice.Creds, nil)
			r.Body = []byte("Version=2011-06-15&Action=GetCallerIdentity")
			return r
		}, "STS rejected the proof: SignatureDoesNotMatch", true},
		{"body asks for another action", func(t *testing.T) *identity.SignedRequest {
			r := proof(t, sts, awsiamtest.Alice.Creds, nil)
			r.Body = []byte("Action=GetCallerIdentity&Version=2011-06-15&RoleArn=x")
			return r
		}, "body must be Action=GetCallerIdentity", false},
		{"old signing date", func(t *testing.T) *identity.SignedRequest {
			return proof(t, sts, awsiamtest.Alice.Creds, func(o *ProofOptions) { o.Time = time.Now().Add(-16 * time.Minute) })
		}, "more than 15 minutes", false},
		{"future signing date", func(t *testing.T) *identity.SignedRequest {
			return proof(t, sts, awsiamtest.Alice.Creds, func(o *ProofOptions) { o.Time = time.Now().Add(20 * time.Minute) })
		}, "more than 15 minutes", false},
		{"wrong region", func(t *testing.T) *identity.SignedRequest {
			return proof(t, sts, awsiamtest.Alice.Creds, func(o *ProofOptions) { o.Region = "eu-west-1" })
		}, "credential scope must be us-east-1/sts", false},
		{"wrong service", func(t *testing.T) *identity.SignedRequest {
			req, _ := http.NewRequest("POST", sts.URL(), strings.NewReader(proofBody))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			req.Header.Set(DefaultServerIDHeader, testServerID)
			if err := v4.NewSigner().SignHTTP(context.Background(), awsiamtest.Alice.Creds, req, sha256Hex([]byte(proofBody)), "iam", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			return &identity.SignedRequest{Method: "POST", URL: sts.URL(), Header: req.Header, Body: []byte(proofBody)}
		}, "credential scope must be us-east-1/sts", false},
		{"GET instead of POST", func(t *testing.T) *identity.SignedRequest {
			r := proof(t, sts, awsiamtest.Alice.Creds, nil)
			r.Method = http.MethodGet
			return r
		}, "must be a POST", false},
		{"another STS endpoint", func(t *testing.T) *identity.SignedRequest {
			return proof(t, sts, awsiamtest.Alice.Creds, func(o *ProofOptions) { o.Endpoint = "https://sts.eu-west-1.amazonaws.com/" })
		}, "not addressed to the configured STS endpoint", false},
		{"query string on the endpoint", func(t *testing.T) *identity.SignedRequest {
			return proof(t, sts, awsiamtest.Alice.Creds, func(o *ProofOptions) { o.Endpoint = sts.URL() + "?Action=AssumeRole" })
		}, "not addressed to the configured STS endpoint", false},
		{"X-Amz header outside the allow-list", func(t *testing.T) *identity.SignedRequest {
			r := proof(t, sts, awsiamtest.Alice.Creds, nil)
			r.Header.Set("X-Amz-Target", "AWSSecurityTokenServiceV20110615.AssumeRole")
			return r
		}, "X-Amz-Target is not allowed", false},
		{"unknown access key", func(t *testing.T) *identity.SignedRequest {
			return proof(t, sts, aws.Credentials{AccessKeyID: "AKIANOBODY000EXAMPLE", SecretAccessKey: "x"}, nil)
		}, "STS rejected the proof: InvalidClientTokenId", true},
		{"wrong secret", func(t *testing.T) *identity.SignedRequest {
			return proof(t, sts, aws.Credentials{AccessKeyID: awsiamtest.Alice.Creds.AccessKeyID, SecretAccessKey: "not-alice"}, nil)
		}, "STS rejected the proof: SignatureDoesNotMatch", true},
		{"no Authorization header", func(t *testing.T) *identity.SignedRequest {
			r := proof(t, sts, awsiamtest.Alice.Creds, nil)
			r.Header.Del("Authorization")
			return r
		}, "not SigV4-signed", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.make(t)
			before := sts.Calls()
			reject(t, p, r, tc.want)
			if called := sts.Calls() != before; called && !tc.reachesSTS {
				t.Fatalf("the proof was forwarded to STS")
			}
		})
	}

	t.Run("caller outside the bound ARNs", func(t *testing.T) {
		cfg := stsConfig(sts.URL())
		cfg.STS.BoundARNs = []string{"arn:aws:iam::" + awsiamtest.Account + ":role/billing-*"}
		narrow, err := NewSTSProvider("aws-iam", cfg)
		if err != nil {
			t.Fatal(err)
		}
		reject(t, narrow, proof(t, sts, awsiamtest.Orders.Creds, nil), "does not match any bound ARN")
	})
}

func TestSTSUnavailable(t *testing.T) {
	sts := awsiamtest.New(t)

	unavailableCtx := func(ctx context.Context, t *testing.T, p *STSProvider, r *identity.SignedRequest, want string) {
		t.Helper()
		_, err := p.Resolve(ctx, sigv4Cred(r))
		if !errors.Is(err, identity.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if identity.IsInvalid(err) {
			t.Fatalf("unavailable reported as invalid: %v", err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("err %q does not contain %q", err, want)
		}
		if p.Ready() == nil {
			t.Fatalf("Ready() = nil after %v", err)
		}
	}
	unavailable := func(t *testing.T, p *STSProvider, r *identity.SignedRequest, want string) {
		t.Helper()
		unavailableCtx(context.Background(), t, p, r, want)
	}

	t.Run("STS down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := "http://" + ln.Addr().String() + "/"
		ln.Close()
		p := newSTSProvider(t, down)
		r, err := NewProof(context.Background(), awsiamtest.Alice.Creds, ProofOptions{Endpoint: down, ServerID: testServerID})
		if err != nil {
			t.Fatal(err)
		}
		unavailable(t, p, r, "STS request failed")
	})

	t.Run("redirect is not followed", func(t *testing.T) {
		elsewhere := awsiamtest.New(t)
		redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL(), http.StatusTemporaryRedirect)
		})
		sts.Behave(redirect)
		defer sts.Behave(nil)
		p := newSTSProvider(t, sts.URL())
		unavailable(t, p, proof(t, sts, awsiamtest.Alice.Creds, nil), "redirect (307)")
		if n := elsewhere.Calls(); n != 0 {
			t.Fatalf("redirect target called %d times", n)
		}
	})

	garbage := []struct{ name, status, body, want string }{
		{"HTML", "200", "<html><body>Welcome to nginx</body></html>", "not a GetCallerIdentityResponse"},
		{"not XML", "200", "\x00\x01garbage", "not a GetCallerIdentityResponse"},
		{"two results", "200", `<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/a</Arn><UserId>A</UserId><Account>123456789012</Account></GetCallerIdentityResult><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/b</Arn><UserId>B</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`, "2 GetCallerIdentityResult"},
		{"two ARNs", "200", `<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/a</Arn><Arn>arn:aws:iam::123456789012:user/b</Arn><UserId>A</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`, "exactly one Arn"},
		{"account mismatch", "200", `<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/engineering/a</Arn><UserId>A</UserId><Account>999999999999</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`, "unusable identity"},
		{"server error", "503", "Service Unavailable", "STS answered 503"},
		{"403 without error document", "403", "denied", "without an error document"},
		{"too large", "200", "<GetCallerIdentityResponse>" + strings.Repeat(" ", 70<<10), "larger than"},
	}
	for _, g := range garbage {
		t.Run("garbage: "+g.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var code int
				fmt.Sscan(g.status, &code)
				w.WriteHeader(code)
				w.Write([]byte(g.body))
			})
			sts.Behave(h)
			defer sts.Behave(nil)
			unavailable(t, newSTSProvider(t, sts.URL()), proof(t, sts, awsiamtest.Alice.Creds, nil), g.want)
		})
	}

	t.Run("deadline is honoured", func(t *testing.T) {
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer slow.Close()
		defer close(release)
		p := newSTSProvider(t, slow.URL+"/")
		r, err := NewProof(context.Background(), awsiamtest.Alice.Creds, ProofOptions{Endpoint: slow.URL + "/", ServerID: testServerID})
		if err != nil {
			t.Fatal(err)
		}
		cfg := stsConfig(slow.URL + "/")
		cfg.STS.Timeout = 50 * time.Millisecond
		p, err = NewSTSProvider("aws-iam", cfg)
		if err != nil {
			t.Fatal(err)
		}
		unavailable(t, p, r, "deadline exceeded")

		// The caller's own deadline is honoured too, and does not mark STS
		// as unready.
		p = newSTSProvider(t, slow.URL+"/")
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := p.Resolve(ctx, sigv4Cred(r)); !errors.Is(err, identity.ErrUnavailable) || !strings.Contains(err.Error(), "deadline exceeded") {
			t.Fatalf("err = %v", err)
		}
		if err := p.Ready(); err != nil {
			t.Fatalf("Ready after the caller's deadline = %v", err)
		}
	})

	t.Run("ready again after a success", func(t *testing.T) {
		p := newSTSProvider(t, sts.URL())
		bad := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
		sts.Behave(bad)
		unavailable(t, p, proof(t, sts, awsiamtest.Alice.Creds, nil), "500")
		sts.Behave(nil)
		if _, err := p.Resolve(context.Background(), sigv4Cred(proof(t, sts, awsiamtest.Alice.Creds, nil))); err != nil {
			t.Fatal(err)
		}
		if err := p.Ready(); err != nil {
			t.Fatalf("Ready = %v", err)
		}
	})
}

func TestSTSNotMine(t *testing.T) {
	sts := awsiamtest.New(t)
	p := newSTSProvider(t, sts.URL())
	for name, cred := range map[string]identity.Credential{
		"bearer":     {Kind: identity.KindBearer, Token: "x"},
		"no request": {Kind: identity.KindAWSSigV4},
		"service call": sigv4Cred(&identity.SignedRequest{Method: "GET", URL: "https://orders.internal/v1/orders",
			Header: map[string][]string{"Authorization": {"AWS4-HMAC-SHA256 ..."}}}),
	} {
		if _, err := p.Resolve(context.Background(), cred); !errors.Is(err, identity.ErrNotMine) {
			t.Errorf("%s: err = %v, want ErrNotMine", name, err)
		}
	}
	// A GetCallerIdentity body aimed elsewhere is still a proof (and wrong).
	r := proof(t, sts, awsiamtest.Alice.Creds, func(o *ProofOptions) { o.Endpoint = "https://sts.example.org/" })
	reject(t, p, r, "not addressed to the configured STS endpoint")
}

// TestSTSProofThroughHeader sends the proof the way the HTTP front doors
// receive it: one base64 JSON header.
func TestSTSProofThroughHeader(t *testing.T) {
	sts := awsiamtest.New(t)
	p := newSTSProvider(t, sts.URL())
	enc, err := EncodeProofHeader(proof(t, sts, awsiamtest.Orders.Creds, nil))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseProofHeader(enc)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := p.Resolve(context.Background(), sigv4Cred(r))
	if err != nil {
		t.Fatal(err)
	}
	if pr.ID != "arn:aws:iam::"+awsiamtest.Account+":role/orders-api" {
		t.Fatalf("ID = %s", pr.ID)
	}
}

// TestSTSProofFromProtoMap goes through the authzd.v1 map form, where
// header names arrive lowercase.
func TestSTSProofFromProtoMap(t *testing.T) {
	sts := awsiamtest.New(t)
	p := newSTSProvider(t, sts.URL())
	r := proof(t, sts, awsiamtest.Alice.Creds, nil)
	m := map[string]string{}
	for k, v := range r.Header {
		m[strings.ToLower(k)] = strings.Join(v, ",")
	}
	pr, err := p.Resolve(context.Background(), sigv4Cred(SignedRequestFromMap(r.Method, r.URL, m, r.Body)))
	if err != nil {
		t.Fatal(err)
	}
	if pr.Claims["user"] != "alice" {
		t.Fatalf("claims = %v", pr.Claims)
	}
}
