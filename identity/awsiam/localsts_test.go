package awsiam

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
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// awsIdentity is a caller the local STS knows.
type awsIdentity struct {
	creds   aws.Credentials
	arn     string
	userID  string
	account string
}

// localSTS is a real HTTP STS for tests: it recomputes each request's SigV4
// signature with the caller's known secret (using the AWS SDK signer, not
// authzd's verifier), enforces STS's 15-minute window, and answers
// GetCallerIdentity in STS's XML, or with STS's ErrorResponse.
type localSTS struct {
	t      testing.TB
	srv    *httptest.Server
	region string
	ids    map[string]awsIdentity
	calls  atomic.Int32
	// behave, when set, replaces the normal answer (redirects, garbage).
	behave atomic.Pointer[http.HandlerFunc]
	// lastHeaders is what authzd forwarded on the last call.
	lastHeaders atomic.Pointer[http.Header]
}

const testAccount = "123456789012"

var (
	aliceCreds = aws.Credentials{AccessKeyID: "AKIAALICE0000EXAMPLE", SecretAccessKey: "alice/secret+KEY/0123456789abcdefghijkl"}
	// ordersCreds are temporary credentials of an assumed role session.
	ordersCreds = aws.Credentials{AccessKeyID: "ASIAORDERS000EXAMPLE", SecretAccessKey: "orders/secret+KEY/0123456789abcdefghijk", SessionToken: "FwoGZXIvYXdzEBYaDORDERSSESSIONTOKEN//example=="}
)

func newLocalSTS(t testing.TB) *localSTS {
	s := &localSTS{t: t, region: "us-east-1", ids: map[string]awsIdentity{
		aliceCreds.AccessKeyID: {creds: aliceCreds, arn: "arn:aws:iam::" + testAccount + ":user/engineering/alice", userID: "AIDAALICE00000000001", account: testAccount},
		ordersCreds.AccessKeyID: {creds: ordersCreds, arn: "arn:aws:sts::" + testAccount + ":assumed-role/orders-api/i-0123456789abcdef0",
			userID: "AROAORDERS0000000001:i-0123456789abcdef0", account: testAccount},
	}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *localSTS) URL() string { return s.srv.URL + "/" }

func (s *localSTS) serve(w http.ResponseWriter, r *http.Request) {
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
		stsError(w, http.StatusBadRequest, "InvalidAction", "Could not find operation")
		return
	}
	cred, signed, sig, ok := splitAuthForTest(r.Header.Get("Authorization"))
	if !ok {
		stsError(w, http.StatusForbidden, "IncompleteSignature", "Authorization header malformed")
		return
	}
	akid := strings.SplitN(cred, "/", 2)[0]
	id, known := s.ids[akid]
	if !known {
		stsError(w, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	at, err := time.Parse(amzDateLayout, r.Header.Get("X-Amz-Date"))
	if err != nil || time.Since(at) > 15*time.Minute || time.Until(at) > 15*time.Minute {
		stsError(w, http.StatusForbidden, "SignatureDoesNotMatch", "Signature expired")
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
	creds := id.creds
	creds.SessionToken = r.Header.Get("X-Amz-Security-Token")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), "sts", s.region, at); err != nil {
		stsError(w, http.StatusInternalServerError, "InternalFailure", err.Error())
		return
	}
	_, signedAgain, sigAgain, _ := splitAuthForTest(again.Header.Get("Authorization"))
	if signedAgain != signed || sigAgain != sig {
		stsError(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
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
`, id.arn, id.userID, id.account)
}

func stsError(w http.ResponseWriter, status int, code, msg string) {
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

// splitAuthForTest is the local STS's own, naive Authorization parser, kept
// independent of the one under test.
func splitAuthForTest(h string) (cred, signed, sig string, ok bool) {
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
