package jwt

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// errNotJWT means the bearer token is not a JWS/JWE compact serialization;
// another provider (opaque tokens) may handle it.
var errNotJWT = errors.New("not a JWT")

// rejectError is a token this provider recognises and refuses. reason is
// public; it never contains the token.
type rejectError struct {
	reason string
	cause  error
}

func (e *rejectError) Error() string {
	if e.cause != nil {
		return e.reason + ": " + e.cause.Error()
	}
	return e.reason
}

func (e *rejectError) Unwrap() error { return e.cause }

func reject(reason string, cause error) error { return &rejectError{reason: reason, cause: cause} }

// b64 is strict: no padding, and non-zero trailing bits are rejected, so
// one signature has exactly one encoding.
var b64 = base64.RawURLEncoding.Strict()

// maxHeaderBytes bounds the decoded protected header; real headers are
// under 200 bytes.
const maxHeaderBytes = 2048

// header holds what the provider reads from the protected header.
type header struct {
	alg string
	kid string
	typ string
}

// compact is a JWS split into its parts. payload is the decoded JSON and
// signingInput the bytes the signature covers; both live in the scratch
// buffers of the verifier state that parsed them.
type compact struct {
	hdr          header
	signingInput []byte
	payload      []byte
	sig          []byte
}

// looksLikeJWT reports whether tok starts like a compact JWS or JWE: a
// base64url segment that decodes to a JSON object, followed by a dot.
// It decodes at most 8 characters, so it is cheap on oversized input.
func looksLikeJWT(tok string) bool {
	dot := strings.IndexByte(tok, '.')
	if dot <= 0 {
		return false
	}
	seg := tok[:dot]
	if len(seg) < 4 {
		return false
	}
	if len(seg) > 8 {
		seg = seg[:8]
	}
	seg = seg[:len(seg)/4*4]
	var buf [6]byte
	n, err := base64.RawURLEncoding.Decode(buf[:], []byte(seg))
	if err != nil {
		return false
	}
	for _, c := range buf[:n] {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// parseState holds reusable buffers and parsers for one verification.
type parseState struct {
	hp, pp fastjson.Parser
	hdrBuf []byte
	buf    []byte
	sigBuf []byte
}

// parse splits and decodes tok and checks its protected header against
// RFC 8725 rules that do not depend on the issuer. tok must already be
// within the size limit. The returned payload is not yet parsed.
func (st *parseState) parse(tok string) (compact, error) {
	var c compact
	d1 := strings.IndexByte(tok, '.')
	if d1 <= 0 {
		return c, errNotJWT
	}
	rest := tok[d1+1:]
	d2 := strings.IndexByte(rest, '.')
	if d2 < 0 {
		return c, reject("malformed token", errors.New("expected 3 segments"))
	}
	d2 += d1 + 1
	if n := strings.Count(tok[d2+1:], "."); n != 0 {
		if n == 2 {
			// Five segments: JWE compact serialization.
			return c, reject("encrypted tokens (JWE) are not accepted", nil)
		}
		return c, reject("malformed token", errors.New("expected 3 segments"))
	}
	hseg, pseg, sseg := tok[:d1], tok[d1+1:d2], tok[d2+1:]

	if b64.DecodedLen(len(hseg)) > maxHeaderBytes {
		return c, reject("malformed token", errors.New("header too large"))
	}
	var err error
	st.hdrBuf, err = decodeSeg(st.hdrBuf, hseg)
	if err != nil {
		return c, reject("malformed token", errors.New("header is not base64url"))
	}
	if c.hdr, err = st.parseHeader(st.hdrBuf); err != nil {
		return c, err
	}

	if len(pseg) == 0 {
		return c, reject("malformed token", errors.New("empty payload"))
	}
	if len(sseg) == 0 {
		return c, reject("missing signature", nil)
	}
	// One buffer holds the signing input followed by the decoded payload.
	need := d2 + b64.DecodedLen(len(pseg))
	if cap(st.buf) < need {
		st.buf = make([]byte, 0, need)
	}
	st.buf = append(st.buf[:0], tok[:d2]...)
	p, err := b64.AppendDecode(st.buf, []byte(pseg))
	if err != nil {
		return c, reject("malformed token", errors.New("payload is not base64url"))
	}
	st.buf = p
	c.signingInput = p[:d2]
	c.payload = p[d2:]
	st.sigBuf, err = decodeSeg(st.sigBuf, sseg)
	if err != nil {
		return c, reject("malformed token", errors.New("signature is not base64url"))
	}
	c.sig = st.sigBuf
	return c, nil
}

func decodeSeg(dst []byte, seg string) ([]byte, error) {
	return b64.AppendDecode(dst[:0], []byte(seg))
}

// forbiddenHeaders carry keys or key locations chosen by the token's
// author; trusting them lets anyone sign their own tokens (RFC 8725 3.10).
var forbiddenHeaders = [...]string{"jku", "x5u", "jwk", "x5c"}

// parseHeader checks the protected header: strict JSON, no duplicate
// names, no attacker-supplied keys, no critical extensions (none are
// understood), no JWE or nested-token markers, and a string alg that is
// not "none".
func (st *parseState) parseHeader(raw []byte) (header, error) {
	var h header
	if !utf8.Valid(raw) || fastjson.ValidateBytes(raw) != nil {
		return h, reject("malformed token", errors.New("header is not valid JSON"))
	}
	v, err := st.hp.ParseBytes(raw)
	if err != nil {
		return h, reject("malformed token", errors.New("header is not valid JSON"))
	}
	o, err := v.Object()
	if err != nil {
		return h, reject("malformed token", errors.New("header is not a JSON object"))
	}
	var bad error
	var seen [16]string
	nseen := 0
	o.Visit(func(k []byte, v *fastjson.Value) {
		if bad != nil {
			return
		}
		key := string(k)
		for _, s := range seen[:nseen] {
			if s == key {
				bad = reject("malformed token", errors.New("duplicate header "+strconvQuote(key)))
				return
			}
		}
		if nseen < len(seen) {
			seen[nseen] = key
			nseen++
		} else {
			bad = reject("malformed token", errors.New("too many header parameters"))
			return
		}
		for _, f := range forbiddenHeaders {
			if key == f {
				bad = reject("token header "+f+" is not accepted", nil)
				return
			}
		}
		switch key {
		case "alg":
			s, err := v.StringBytes()
			if err != nil {
				bad = reject("malformed token", errors.New("alg is not a string"))
				return
			}
			h.alg = internAlg(s)
		case "kid":
			s, err := v.StringBytes()
			if err != nil {
				bad = reject("malformed token", errors.New("kid is not a string"))
				return
			}
			h.kid = string(s)
		case "typ":
			s, err := v.StringBytes()
			if err != nil {
				bad = reject("malformed token", errors.New("typ is not a string"))
				return
			}
			h.typ = internTyp(s)
		case "crit":
			bad = reject("unsupported critical header", nil)
		case "enc", "zip":
			bad = reject("encrypted tokens (JWE) are not accepted", nil)
		case "b64":
			bad = reject("unencoded payloads (b64) are not accepted", nil)
		case "cty":
			s, _ := v.StringBytes()
			if strings.EqualFold(string(s), "JWT") {
				bad = reject("nested tokens are not accepted", nil)
			}
		}
	})
	if bad != nil {
		return h, bad
	}
	switch {
	case h.alg == "":
		return h, reject("token header has no alg", nil)
	case strings.EqualFold(h.alg, "none"):
		return h, reject("unsigned tokens (alg none) are not accepted", nil)
	}
	return h, nil
}

// internAlg returns a constant string for known algorithms, so the hot
// path does not allocate; unknown values are copied.
func internAlg(b []byte) string {
	for _, a := range supportedAlgs {
		if string(b) == a {
			return a
		}
	}
	return string(b)
}

// internTyp avoids an allocation for the common typ values.
func internTyp(b []byte) string {
	switch string(b) {
	case "JWT":
		return "JWT"
	case "at+jwt":
		return "at+jwt"
	case "application/at+jwt":
		return "application/at+jwt"
	}
	return string(b)
}

func strconvQuote(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}
