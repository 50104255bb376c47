package awsiam

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/authzd/authzd/identity"
)

// ProofHeader is the header the HTTP front doors (Envoy, forward-auth)
// read an STS proof from.
const ProofHeader = "X-Authzd-Aws-Proof"

// maxProofHeader bounds the encoded proof; a real one is about 2-3 KiB
// (a session token is the largest part).
const maxProofHeader = 16 << 10

// proofDoc is the JSON form of a proof: {"method","url","headers","body"}
// with the body in base64. Header values may be a string or a list.
type proofDoc struct {
	Method  string                  `json:"method"`
	URL     string                  `json:"url"`
	Headers map[string]stringOrList `json:"headers"`
	Body    string                  `json:"body"`
}

type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("header values must be a string or a list of strings")
	}
	*s = many
	return nil
}

// ParseProofHeader decodes a proof carried in a header: base64 (standard
// or URL alphabet, padding optional) of the JSON document
//
//	{"method":"POST","url":"https://sts.amazonaws.com/","headers":{"Authorization":"AWS4-HMAC-SHA256 ...",...},"body":"<base64>"}
//
// It only decodes; the provider decides whether the proof is acceptable.
func ParseProofHeader(value string) (*identity.SignedRequest, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, errors.New("proof is empty")
	}
	if len(value) > maxProofHeader {
		return nil, errors.New("proof is too large")
	}
	raw, err := decodeBase64(value)
	if err != nil {
		return nil, errors.New("proof is not base64")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var doc proofDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, errors.New("proof is not a JSON object {method, url, headers, body}")
	}
	if dec.More() {
		return nil, errors.New("proof has trailing data")
	}
	if !validMethod(doc.Method) {
		return nil, errors.New("proof method is invalid")
	}
	if doc.URL == "" || strings.ContainsAny(doc.URL, " \r\n\x00") {
		return nil, errors.New("proof url is invalid")
	}
	body, err := decodeBase64(doc.Body)
	if err != nil {
		return nil, errors.New("proof body is not base64")
	}
	h := make(http.Header, len(doc.Headers))
	for k, vs := range doc.Headers {
		if !validHeaderName(k) {
			return nil, errors.New("proof has an invalid header name")
		}
		ck := textproto.CanonicalMIMEHeaderKey(k)
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, errors.New("proof has an invalid header value")
			}
			h[ck] = append(h[ck], v)
		}
	}
	return &identity.SignedRequest{Method: doc.Method, URL: doc.URL, Header: h, Body: body}, nil
}

func decodeBase64(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if !strings.HasSuffix(s, "=") {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc.Strict().DecodeString(s)
}

// EncodeProofHeader is the inverse of ParseProofHeader (for callers and
// tests).
func EncodeProofHeader(r *identity.SignedRequest) (string, error) {
	doc := proofDoc{Method: r.Method, URL: r.URL, Headers: map[string]stringOrList{}, Body: base64.StdEncoding.EncodeToString(r.Body)}
	for k, v := range r.Header {
		doc.Headers[k] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// SignedRequestFromMap builds a SignedRequest from the authzd.v1
// AwsSigV4Request fields, whose headers are a map with repeated values
// already joined by ",".
func SignedRequestFromMap(method, url string, headers map[string]string, body []byte) *identity.SignedRequest {
	h := make(http.Header, len(headers))
	for k, v := range headers {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		h[ck] = append(h[ck], v)
	}
	return &identity.SignedRequest{Method: method, URL: url, Header: h, Body: body}
}

// ProofOptions says where a proof is for.
type ProofOptions struct {
	// Endpoint is the STS URL authzd forwards to. Default
	// https://sts.amazonaws.com/.
	Endpoint string
	// Region is the signing region. Default us-east-1.
	Region string
	// ServerIDHeader and ServerID bind the proof to one authzd deployment.
	ServerIDHeader string
	ServerID       string
	// Time is the signing time; zero means now.
	Time time.Time
}

// proofBody is what the AWS SDKs send for GetCallerIdentity.
const proofBody = "Action=GetCallerIdentity&Version=2011-06-15"

// NewProof signs an sts:GetCallerIdentity request with creds: the proof a
// caller sends to authzd. It is what a Go caller needs; other languages
// sign the same request with their SDK (see docs/identity-aws-iam.md).
func NewProof(ctx context.Context, creds aws.Credentials, o ProofOptions) (*identity.SignedRequest, error) {
	if o.Endpoint == "" {
		o.Endpoint = DefaultSTSEndpoint
	}
	if o.Region == "" {
		o.Region = DefaultSTSRegion
	}
	if o.ServerIDHeader == "" {
		o.ServerIDHeader = DefaultServerIDHeader
	}
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.Endpoint, strings.NewReader(proofBody))
	if err != nil {
		return nil, fmt.Errorf("sts endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if o.ServerID != "" {
		req.Header.Set(o.ServerIDHeader, o.ServerID)
	}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, sha256Hex([]byte(proofBody)), "sts", o.Region, o.Time); err != nil {
		return nil, err
	}
	return &identity.SignedRequest{Method: req.Method, URL: req.URL.String(), Header: req.Header.Clone(), Body: []byte(proofBody)}, nil
}

// CredentialFromHTTP finds an AWS credential in a request seen by an HTTP
// front door (Envoy ext_authz, forward-auth): an STS proof in the
// X-Authzd-Aws-Proof header, or else the request itself when it is
// SigV4-signed (an "AWS4-HMAC-SHA256 ..." Authorization header, or a
// presigned URL). rawURL is the request's absolute URL (scheme, host, path
// and query as received); body is the request body when the front door has
// it (a signature over a body authzd did not see cannot verify).
//
// found is false when the request carries no AWS credential. An error means
// one was found and is malformed: deny it, with the error as the reason.
func CredentialFromHTTP(method, rawURL string, h http.Header, body []byte) (cred identity.Credential, found bool, err error) {
	if v := headerValues(h, ProofHeader); len(v) > 0 {
		if len(v) > 1 {
			return identity.Credential{}, true, errors.New("more than one " + ProofHeader + " header")
		}
		r, err := ParseProofHeader(v[0])
		if err != nil {
			return identity.Credential{}, true, err
		}
		return identity.Credential{Kind: identity.KindAWSSigV4, Request: r}, true, nil
	}
	signed := false
	for _, a := range headerValues(h, "Authorization") {
		if strings.HasPrefix(a, algorithm+" ") {
			signed = true
		}
	}
	if !signed {
		if i := strings.IndexByte(rawURL, '?'); i >= 0 && strings.Contains(rawURL[i:], "X-Amz-Algorithm=") {
			signed = true
		}
	}
	if !signed {
		return identity.Credential{}, false, nil
	}
	return identity.Credential{Kind: identity.KindAWSSigV4, Request: &identity.SignedRequest{
		Method: method, URL: rawURL, Header: h.Clone(), Body: body,
	}}, true, nil
}
