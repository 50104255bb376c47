package awsiamtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const amzDateLayout = "20060102T150405Z"

// Identity is a caller the local STS knows.
type Identity struct {
	Creds   aws.Credentials
	ARN     string
	UserID  string
	Account string
}

// STS is a real HTTP STS for tests: it recomputes each request's SigV4
// signature with the caller's known secret (using the AWS SDK signer, not
// authzd's verifier), enforces STS's 15-minute window, and answers
// GetCallerIdentity in STS's XML, or with STS's ErrorResponse.
type STS struct {
	srv    *httptest.Server
	region string
	mu     sync.RWMutex
	ids    map[string]Identity
	calls  atomic.Int32
	// behave, when set, replaces the normal answer (redirects, garbage).
	behave atomic.Pointer[http.HandlerFunc]
	// lastHeaders is what the client forwarded on the last call.
	lastHeaders atomic.Pointer[http.Header]
}

// Account is the account of the built-in identities.
const Account = "123456789012"

// Built-in identities.
var (
	// Alice is an IAM user, arn:aws:iam::123456789012:user/engineering/alice.
	Alice = Identity{
		Creds: aws.Credentials{AccessKeyID: "AKIAALICE0000EXAMPLE", SecretAccessKey: "alice/secret+KEY/0123456789abcdefghijkl"},
		ARN:   "arn:aws:iam::" + Account + ":user/engineering/alice", UserID: "AIDAALICE00000000001", Account: Account,
	}
	// Orders is a session of the role orders-api (temporary credentials).
	Orders = Identity{
		Creds: aws.Credentials{AccessKeyID: "ASIAORDERS000EXAMPLE", SecretAccessKey: "orders/secret+KEY/0123456789abcdefghijk", SessionToken: "FwoGZXIvYXdzEBYaDORDERSSESSIONTOKEN//example=="},
		ARN:   "arn:aws:sts::" + Account + ":assumed-role/orders-api/i-0123456789abcdef0", UserID: "AROAORDERS0000000001:i-0123456789abcdef0", Account: Account,
	}
)

// New starts a local STS (signing region us-east-1) that knows Alice and
// Orders. It stops when the test ends.
func New(t testing.TB) *STS {
	s := &STS{region: "us-east-1", ids: map[string]Identity{}}
	s.Add(Alice)
	s.Add(Orders)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// Add makes id known.
func (s *STS) Add(id Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[id.Creds.AccessKeyID] = id
}

// URL is the endpoint, with a trailing slash as STS's is.
func (s *STS) URL() string { return s.srv.URL + "/" }

// Calls is the number of requests received.
func (s *STS) Calls() int { return int(s.calls.Load()) }

// LastHeaders are the headers of the last request received.
func (s *STS) LastHeaders() http.Header {
	if h := s.lastHeaders.Load(); h != nil {
		return *h
	}
	return nil
}

// Behave replaces the answer with h (redirects, garbage); nil restores STS.
func (s *STS) Behave(h http.HandlerFunc) {
	if h == nil {
		s.behave.Store(nil)
		return
	}
	s.behave.Store(&h)
}

func (s *STS) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	h := r.Header.Clone()
	s.lastHeaders.Store(&h)
	if f := s.behave.Load(); f != nil {
		(*f)(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	if r.Method != http.MethodPost || err != nil || form.Get("Action") != "GetCallerIdentity" {
		writeError(w, http.StatusBadRequest, "InvalidAction", "Could not find operation")
		return
	}
	cred, signed, sig, ok := splitAuth(r.Header.Get("Authorization"))
	if !ok {
		writeError(w, http.StatusForbidden, "IncompleteSignature", "Authorization header malformed")
		return
	}
	akid := strings.SplitN(cred, "/", 2)[0]
	s.mu.RLock()
	id, known := s.ids[akid]
	s.mu.RUnlock()
	if !known {
		writeError(w, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	at, err := time.Parse(amzDateLayout, r.Header.Get("X-Amz-Date"))
	if err != nil || time.Since(at) > 15*time.Minute || time.Until(at) > 15*time.Minute {
		writeError(w, http.StatusForbidden, "SignatureDoesNotMatch", "Signature expired")
		return
	}
	// Rebuild the request with only the signed headers and sign it again.
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), strings.NewReader(string(body)))
	again.Host = r.Host
	for _, name := range strings.Split(signed, ";") {
		if name == "host" || name == "content-length" {
			continue
		}
		for _, v := range r.Header.Values(name) {
			again.Header.Add(name, v)
		}
	}
	creds := id.Creds
	creds.SessionToken = r.Header.Get("X-Amz-Security-Token")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), "sts", s.region, at); err != nil {
		writeError(w, http.StatusInternalServerError, "InternalFailure", err.Error())
		return
	}
	_, signedAgain, sigAgain, _ := splitAuth(again.Header.Get("Authorization"))
	if signedAgain != signed || sigAgain != sig {
		writeError(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>%s</Arn>
    <UserId>%s</UserId>
    <Account>%s</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>
`, id.ARN, id.UserID, id.Account)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>%s</Code>
    <Message>%s</Message>
  </Error>
  <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
</ErrorResponse>
`, code, msg)
}

// splitAuth is the local STS's own, naive Authorization parser, kept
// independent of authzd's.
func splitAuth(h string) (cred, signed, sig string, ok bool) {
	rest, found := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !found {
		return "", "", "", false
	}
	for _, p := range strings.Split(rest, ", ") {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	return cred, signed, sig, cred != "" && signed != "" && sig != ""
}
