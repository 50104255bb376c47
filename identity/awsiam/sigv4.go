package awsiam

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/authzd/authzd/identity"
)

const (
	algorithm       = "AWS4-HMAC-SHA256"
	amzDateLayout   = "20060102T150405Z"
	scopeTerminator = "aws4_request"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	// maxAuthorizationLen bounds the Authorization header we parse.
	maxAuthorizationLen = 8 << 10
	maxSignedHeaders    = 64
	// maxPresignExpires is SigV4's own limit: seven days.
	maxPresignExpires = 7 * 24 * time.Hour
)

// Authorization is a parsed SigV4 Authorization header (or the equivalent
// X-Amz-* query parameters of a presigned URL).
type Authorization struct {
	AccessKeyID string
	// Date is the credential scope date, YYYYMMDD.
	Date    string
	Region  string
	Service string
	// SignedHeaders are lowercase, sorted and unique.
	SignedHeaders []string
	// Signature is 64 lowercase hex digits.
	Signature string
}

// Scope returns the credential scope: date/region/service/aws4_request.
func (a *Authorization) Scope() string {
	return a.Date + "/" + a.Region + "/" + a.Service + "/" + scopeTerminator
}

// Signs reports whether name (lowercase) is among the signed headers.
func (a *Authorization) Signs(name string) bool {
	i := sort.SearchStrings(a.SignedHeaders, name)
	return i < len(a.SignedHeaders) && a.SignedHeaders[i] == name
}

// ParseAuthorization parses a SigV4 Authorization header:
//
//	AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=<64 hex>
//
// It is strict: every component exactly once, no unknown components,
// signed headers sorted and unique, a well-formed scope.
func ParseAuthorization(h string) (*Authorization, error) {
	if len(h) > maxAuthorizationLen {
		return nil, errors.New("authorization header too long")
	}
	rest, ok := strings.CutPrefix(h, algorithm)
	if !ok {
		return nil, errors.New("authorization header is not " + algorithm)
	}
	if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return nil, errors.New("authorization header has no components")
	}
	var a Authorization
	var haveCred, haveSigned, haveSig bool
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.Trim(part, " \t")
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("authorization component %q has no value", truncate(part))
		}
		var err error
		switch name {
		case "Credential":
			if haveCred {
				return nil, errors.New("authorization header repeats Credential")
			}
			haveCred = true
			err = a.parseCredential(value)
		case "SignedHeaders":
			if haveSigned {
				return nil, errors.New("authorization header repeats SignedHeaders")
			}
			haveSigned = true
			a.SignedHeaders, err = parseSignedHeaders(value)
		case "Signature":
			if haveSig {
				return nil, errors.New("authorization header repeats Signature")
			}
			haveSig = true
			a.Signature, err = parseSignature(value)
		default:
			return nil, fmt.Errorf("authorization header has unknown component %q", truncate(name))
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case !haveCred:
		return nil, errors.New("authorization header has no Credential")
	case !haveSigned:
		return nil, errors.New("authorization header has no SignedHeaders")
	case !haveSig:
		return nil, errors.New("authorization header has no Signature")
	}
	return &a, nil
}

// parseCredential parses AKID/YYYYMMDD/region/service/aws4_request.
func (a *Authorization) parseCredential(v string) error {
	parts := strings.Split(v, "/")
	if len(parts) != 5 {
		return errors.New("credential must be access-key/date/region/service/aws4_request")
	}
	akid, date, region, service, term := parts[0], parts[1], parts[2], parts[3], parts[4]
	if !validAccessKeyID(akid) {
		return errors.New("credential has an invalid access key id")
	}
	if len(date) != 8 || !allDigits(date) {
		return errors.New("credential date must be YYYYMMDD")
	}
	if !validScopePart(region) {
		return errors.New("credential has an invalid region")
	}
	if !validScopePart(service) {
		return errors.New("credential has an invalid service")
	}
	if term != scopeTerminator {
		return errors.New("credential scope must end in aws4_request")
	}
	a.AccessKeyID, a.Date, a.Region, a.Service = akid, date, region, service
	return nil
}

func parseSignedHeaders(v string) ([]string, error) {
	if v == "" {
		return nil, errors.New("signed headers are empty")
	}
	n := strings.Count(v, ";") + 1
	if n > maxSignedHeaders {
		return nil, errors.New("too many signed headers")
	}
	out := make([]string, 0, n)
	for h := range strings.SplitSeq(v, ";") {
		if h == "" {
			return nil, errors.New("signed headers contain an empty name")
		}
		for i := 0; i < len(h); i++ {
			if c := h[i]; !isTokenChar(c) || (c >= 'A' && c <= 'Z') {
				return nil, errors.New("signed header names must be lowercase header names")
			}
		}
		if len(out) > 0 && out[len(out)-1] >= h {
			return nil, errors.New("signed headers must be sorted and unique")
		}
		out = append(out, h)
	}
	return out, nil
}

func parseSignature(v string) (string, error) {
	if len(v) != 64 {
		return "", errors.New("signature must be 64 hex digits")
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", errors.New("signature must be lowercase hex")
		}
	}
	return v, nil
}

func validAccessKeyID(s string) bool {
	if len(s) < 4 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// signedRequest is a SigV4-signed request taken apart: where the signature
// came from, when it was made, and what it covers.
type signedRequest struct {
	auth      *Authorization
	presigned bool
	signedAt  time.Time
	amzDate   string
	// expires is X-Amz-Expires for presigned requests.
	expires time.Duration

	method string
	url    *url.URL
	header http.Header
	body   []byte
	// payloadHashes are the payload hashes the signer may have used, tried
	// in order (more than one only for an empty-bodied presigned request).
	payloadHashes []string
}

// errNotSigned is returned by splitSigned for a request that carries no
// SigV4 signature at all.
var errNotSigned = errors.New("request is not SigV4-signed")

// splitSigned parses the signature-related parts of r without verifying
// anything cryptographic. Errors are safe to show to callers.
func splitSigned(r *identity.SignedRequest) (*signedRequest, error) {
	if r == nil {
		return nil, errors.New("no signed request")
	}
	if !validMethod(r.Method) {
		return nil, errors.New("invalid request method")
	}
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return nil, errors.New("request URL must be an absolute http(s) URL")
	}
	s := &signedRequest{method: r.Method, url: u, header: r.Header, body: r.Body}
	authz := headerValues(r.Header, "Authorization")
	var contentSHA string
	switch {
	case len(authz) > 1:
		return nil, errors.New("request has more than one Authorization header")
	case len(authz) == 1 && strings.HasPrefix(authz[0], "AWS4-"):
		if s.auth, err = ParseAuthorization(authz[0]); err != nil {
			return nil, err
		}
		dates := headerValues(r.Header, "X-Amz-Date")
		if len(dates) != 1 {
			return nil, errors.New("request must carry exactly one X-Amz-Date header")
		}
		if !s.auth.Signs("x-amz-date") {
			return nil, errors.New("X-Amz-Date header is not signed")
		}
		s.amzDate = strings.TrimSpace(dates[0])
		if v := headerValues(r.Header, "X-Amz-Content-Sha256"); len(v) > 1 {
			return nil, errors.New("request has more than one X-Amz-Content-Sha256 header")
		} else if len(v) == 1 {
			contentSHA = strings.TrimSpace(v[0])
			if !s.auth.Signs("x-amz-content-sha256") {
				return nil, errors.New("X-Amz-Content-Sha256 header is not signed")
			}
		}
	case len(authz) == 1:
		return nil, errNotSigned
	default:
		if err := s.splitPresigned(&contentSHA); err != nil {
			return nil, err
		}
	}
	if s.signedAt, err = time.Parse(amzDateLayout, s.amzDate); err != nil {
		return nil, errors.New("X-Amz-Date must be YYYYMMDDTHHMMSSZ")
	}
	if s.amzDate[:8] != s.auth.Date {
		return nil, errors.New("credential scope date does not match X-Amz-Date")
	}
	if !s.auth.Signs("host") {
		return nil, errors.New("host header is not signed")
	}
	// Every x-amz-* header must be covered: an unsigned one could change
	// what the request means to the service.
	for k := range r.Header {
		if len(k) > 6 && strings.EqualFold(k[:6], "x-amz-") && !s.auth.Signs(strings.ToLower(k)) {
			return nil, fmt.Errorf("header %s is not signed", truncate(textproto.CanonicalMIMEHeaderKey(k)))
		}
	}
	// A front door that does not pass the body on (Envoy without
	// with_request_body, forward-auth) or cuts it still passes its length.
	// A signature checked against a body authzd did not see covers
	// nothing of the body the service gets, so such requests are refused.
	if cl := headerValues(r.Header, "Content-Length"); len(cl) > 0 {
		n, err := strconv.ParseInt(strings.TrimSpace(cl[0]), 10, 64)
		if len(cl) > 1 || err != nil || n != int64(len(r.Body)) {
			return nil, errors.New("the request body is not all here (Content-Length differs); a signed request body must reach authzd whole")
		}
	}
	bodyHash := sha256Hex(r.Body)
	switch {
	case contentSHA == unsignedPayload:
		if len(r.Body) > 0 {
			return nil, errors.New("unsigned payloads are not accepted")
		}
		s.payloadHashes = []string{unsignedPayload}
	case contentSHA != "":
		if contentSHA != bodyHash {
			return nil, errors.New("X-Amz-Content-Sha256 does not match the body")
		}
		s.payloadHashes = []string{bodyHash}
	case s.presigned && len(r.Body) == 0:
		s.payloadHashes = []string{bodyHash, unsignedPayload}
	default:
		s.payloadHashes = []string{bodyHash}
	}
	return s, nil
}

// splitPresigned reads the X-Amz-* query parameters of a presigned URL.
func (s *signedRequest) splitPresigned(contentSHA *string) error {
	q, err := url.ParseQuery(s.url.RawQuery)
	if err != nil {
		return errors.New("request query string is malformed")
	}
	if _, ok := q["X-Amz-Algorithm"]; !ok {
		return errNotSigned
	}
	one := func(name string) (string, error) {
		v := q[name]
		if len(v) != 1 {
			return "", fmt.Errorf("presigned URL must carry exactly one %s", name)
		}
		return v[0], nil
	}
	var alg, cred, signed, sig, expires string
	for _, p := range []struct {
		name string
		dst  *string
	}{{"X-Amz-Algorithm", &alg}, {"X-Amz-Credential", &cred}, {"X-Amz-Date", &s.amzDate}, {"X-Amz-SignedHeaders", &signed}, {"X-Amz-Signature", &sig}, {"X-Amz-Expires", &expires}} {
		if *p.dst, err = one(p.name); err != nil {
			return err
		}
	}
	if alg != algorithm {
		return errors.New("presigned URL algorithm must be " + algorithm)
	}
	a := &Authorization{}
	if err := a.parseCredential(cred); err != nil {
		return err
	}
	if a.SignedHeaders, err = parseSignedHeaders(signed); err != nil {
		return err
	}
	if a.Signature, err = parseSignature(sig); err != nil {
		return err
	}
	secs, err := strconv.ParseUint(expires, 10, 32)
	if err != nil || secs == 0 || time.Duration(secs)*time.Second > maxPresignExpires {
		return errors.New("X-Amz-Expires must be between 1 and 604800 seconds")
	}
	s.expires = time.Duration(secs) * time.Second
	if v, ok := q["X-Amz-Content-Sha256"]; ok {
		if len(v) != 1 {
			return errors.New("presigned URL repeats X-Amz-Content-Sha256")
		}
		*contentSHA = v[0]
	}
	s.auth, s.presigned = a, true
	return nil
}

// verify reports whether the request's signature was made with the
// signing key derived for its scope (see signingKey).
func (s *signedRequest) verify(key []byte) (bool, error) {
	prefix, err := s.canonicalPrefix()
	if err != nil {
		return false, err
	}
	for _, ph := range s.payloadHashes {
		want := signature(key, s.stringToSign(prefix+ph))
		if subtle.ConstantTimeCompare([]byte(want), []byte(s.auth.Signature)) == 1 {
			return true, nil
		}
	}
	return false, nil
}

// canonicalPrefix builds the canonical request up to (excluding) the
// payload hash: method, URI, query, headers, signed headers.
func (s *signedRequest) canonicalPrefix() (string, error) {
	var b strings.Builder
	b.Grow(256 + len(s.url.RawQuery))
	b.WriteString(s.method)
	b.WriteByte('\n')
	path := s.url.EscapedPath()
	if path == "" {
		path = "/"
	}
	escapePath(&b, path)
	b.WriteByte('\n')
	if err := canonicalQuery(&b, s.url.RawQuery, s.presigned); err != nil {
		return "", err
	}
	b.WriteByte('\n')
	for _, name := range s.auth.SignedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		if name == "host" {
			if v := headerValues(s.header, "Host"); len(v) > 0 {
				b.WriteString(stripExcessSpaces(v[0]))
			} else {
				b.WriteString(signingHost(s.url.Scheme, s.url.Host))
			}
			b.WriteByte('\n')
			continue
		}
		vals := headerValues(s.header, name)
		if len(vals) == 0 {
			if name != "content-length" {
				return "", fmt.Errorf("signed header %s is missing", truncate(name))
			}
			vals = []string{strconv.Itoa(len(s.body))}
		}
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(canonicalHeaderValue(v))
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	for i, name := range s.auth.SignedHeaders {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(name)
	}
	b.WriteByte('\n')
	return b.String(), nil
}

func (s *signedRequest) stringToSign(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return algorithm + "\n" + s.amzDate + "\n" + s.auth.Scope() + "\n" + hex.EncodeToString(sum[:])
}

// canonicalQuery writes the query's name=value pairs, each URI-encoded,
// sorted after encoding (by name, then value). The presigned signature
// itself is left out.
func canonicalQuery(b *strings.Builder, raw string, presigned bool) error {
	if raw == "" {
		return nil
	}
	if strings.IndexByte(raw, ';') >= 0 {
		// Signers disagree about ';' (Go's url.Query drops such pairs, so
		// the SDK would not sign them): refuse rather than guess.
		return errors.New("request query string must not contain ';'")
	}
	type pair struct{ k, v string }
	pairs := make([]pair, 0, strings.Count(raw, "&")+1)
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return errors.New("request query string is malformed")
		}
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		pairs = append(pairs, pair{uriEncode(k), uriEncode(v)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return nil
}

const upperHex = "0123456789ABCDEF"

func unreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// uriEncode encodes every byte outside the RFC 3986 unreserved set.
func uriEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	out := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			out = append(out, c)
		} else {
			out = append(out, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return string(out)
}

// escapePath encodes the already-escaped path once more, keeping '/': the
// canonical URI of every service except S3.
func escapePath(b *strings.Builder, p string) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if unreserved(c) || c == '/' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
}

// canonicalHeaderValue trims the value and collapses runs of spaces, the
// way the AWS signers do: spaces first, then any surrounding whitespace.
func canonicalHeaderValue(v string) string {
	return strings.TrimSpace(stripExcessSpaces(v))
}

// stripExcessSpaces trims leading and trailing spaces and collapses inner
// runs of spaces to one.
func stripExcessSpaces(v string) string {
	v = strings.Trim(v, " ")
	if !strings.Contains(v, "  ") {
		return v
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' && len(out) > 0 && out[len(out)-1] == ' ' {
			continue
		}
		out = append(out, v[i])
	}
	return string(out)
}

// headerValues returns the values of name, whatever the case of the keys
// in h (headers built from maps are not always canonicalised).
func headerValues(h http.Header, name string) []string {
	if v, ok := h[textproto.CanonicalMIMEHeaderKey(name)]; ok {
		return v
	}
	var out []string
	for k, v := range h {
		if strings.EqualFold(k, name) {
			out = append(out, v...)
		}
	}
	return out
}

func signingKey(secret []byte, date, region, service string) []byte {
	k := make([]byte, 0, 4+len(secret))
	k = append(append(k, "AWS4"...), secret...)
	k = hmacSHA256(k, date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, scopeTerminator)
}

func signature(key []byte, stringToSign string) string {
	return hex.EncodeToString(hmacSHA256(key, stringToSign))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
