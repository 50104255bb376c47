package jwt

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/authzd/authzd/identity"
)

// maxClaims bounds the number of top-level claims in a payload.
const maxClaims = 512

// maxNumericDate is 9999-12-31T23:59:59Z; larger dates (or 1e400, which
// parses as +Inf) would make a token that never expires.
const maxNumericDate = 253402300799

// parseClaims parses a payload: strict JSON, valid UTF-8, an object with no
// duplicate claim names. The result lives in p until its next use.
func parseClaims(p *fastjson.Parser, payload []byte) (*fastjson.Object, error) {
	if !utf8.Valid(payload) || fastjson.ValidateBytes(payload) != nil {
		return nil, reject("malformed token", errors.New("payload is not valid JSON"))
	}
	v, err := p.ParseBytes(payload)
	if err != nil {
		return nil, reject("malformed token", errors.New("payload is not valid JSON"))
	}
	o, err := v.Object()
	if err != nil {
		return nil, reject("malformed token", errors.New("payload is not a JSON object"))
	}
	n := o.Len()
	if n > maxClaims {
		return nil, reject("malformed token", errors.New("too many claims"))
	}
	// RFC 7519 section 4: duplicate claim names must be rejected or the
	// last taken; rejecting leaves no room for parsers to disagree.
	dup := false
	if n <= 16 {
		var seen [16][]byte
		i := 0
		o.Visit(func(k []byte, _ *fastjson.Value) {
			for _, s := range seen[:i] {
				if string(s) == string(k) {
					dup = true
				}
			}
			seen[i] = k
			i++
		})
	} else {
		seen := make(map[string]struct{}, n)
		o.Visit(func(k []byte, _ *fastjson.Value) {
			if _, ok := seen[string(k)]; ok {
				dup = true
			}
			seen[string(k)] = struct{}{}
		})
	}
	if dup {
		return nil, reject("malformed token", errors.New("duplicate claim"))
	}
	return o, nil
}

// numericDate reads an exp/nbf/iat claim in seconds.
func numericDate(v *fastjson.Value, name string) (float64, error) {
	f, err := v.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return 0, reject(name+" claim is not a valid NumericDate", nil)
	}
	return f, nil
}

// principal validates the verified claims and maps them to a principal.
func (is *issuer) principal(o *fastjson.Object, now time.Time) (*identity.Principal, error) {
	cfg := &is.cfg
	nowS := float64(now.UnixNano()) / 1e9
	skew := cfg.ClockSkew.Seconds()

	ev := o.Get("exp")
	if ev == nil {
		return nil, reject("token has no exp claim", nil)
	}
	exp, err := numericDate(ev, "exp")
	if err != nil {
		return nil, err
	}
	if nowS >= exp+skew {
		return nil, reject("token expired", nil)
	}
	if v := o.Get("nbf"); v != nil {
		nbf, err := numericDate(v, "nbf")
		if err != nil {
			return nil, err
		}
		if nowS+skew < nbf {
			return nil, reject("token not yet valid", nil)
		}
	}
	if v := o.Get("iat"); v != nil {
		iat, err := numericDate(v, "iat")
		if err != nil {
			return nil, err
		}
		if iat > nowS+skew {
			return nil, reject("token issued in the future", nil)
		}
	}

	clientClaims := is.clientClaims
	if cfg.Preset == PresetCognito {
		use := stringClaim(o, "token_use")
		if use == "" {
			return nil, reject("token has no token_use claim", nil)
		}
		if !contains(is.tokenUses, use) {
			return nil, reject("token_use is not accepted for this issuer", fmt.Errorf("token_use %s", strconvQuote(use)))
		}
		if use == "access" {
			clientClaims = []string{"client_id"}
		} else {
			clientClaims = []string{"aud"}
		}
	}
	if len(cfg.Audiences) > 0 {
		ok, err := claimContainsAny(o.Get("aud"), cfg.Audiences)
		if err != nil {
			return nil, reject("aud claim is malformed", nil)
		}
		if !ok {
			return nil, reject("token audience is not accepted", nil)
		}
	}
	if len(cfg.ClientIDs) > 0 {
		var cv *fastjson.Value
		for _, name := range clientClaims {
			if cv = o.Get(name); cv != nil {
				break
			}
		}
		if cv == nil {
			return nil, reject("token names no client", nil)
		}
		ok, err := claimContainsAny(cv, cfg.ClientIDs)
		if err != nil {
			return nil, reject("client claim is malformed", nil)
		}
		if !ok {
			return nil, reject("token client is not accepted", nil)
		}
	}
	for _, name := range cfg.RequiredClaims {
		if v := o.Get(name); v == nil || v.Type() == fastjson.TypeNull {
			return nil, reject("token lacks required claim "+strconvQuote(name), nil)
		}
	}
	sub := stringValue(is.refs.subject.get(o))
	if sub == "" {
		return nil, reject("token has no subject", nil)
	}

	pr := &identity.Principal{
		ID:        cfg.Name + ":" + sub,
		Provider:  cfg.Name,
		Issuer:    cfg.Issuer,
		Subject:   sub,
		Type:      "jwt",
		ExpiresAt: time.Unix(int64(exp), 0),
	}
	for i := range is.refs.groups {
		pr.Groups = appendStrings(pr.Groups, is.refs.groups[i].get(o), false)
	}
	pr.Groups = dedupe(pr.Groups)
	for i := range is.refs.scopes {
		pr.Scopes = appendStrings(pr.Scopes, is.refs.scopes[i].get(o), true)
	}
	pr.Scopes = dedupe(pr.Scopes)
	for i := range is.refs.copy {
		c := &is.refs.copy[i]
		v := c.ref.get(o)
		if v == nil {
			continue
		}
		if pr.Claims == nil {
			pr.Claims = make(map[string]any, len(is.refs.copy))
		}
		pr.Claims[c.name] = toAny(v)
	}
	return pr, nil
}

// stringClaim returns a string claim, or "" when absent or not a string.
func stringClaim(o *fastjson.Object, name string) string {
	return stringValue(o.Get(name))
}

// stringValue returns v's string, or "" when v is nil or not a string.
func stringValue(v *fastjson.Value) string {
	if v == nil {
		return ""
	}
	b, err := v.StringBytes()
	if err != nil {
		return ""
	}
	return string(b)
}

// claimContainsAny reports whether v (a string or an array of strings)
// holds one of want. A missing claim holds nothing.
func claimContainsAny(v *fastjson.Value, want []string) (bool, error) {
	if v == nil {
		return false, nil
	}
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		for _, w := range want {
			if string(b) == w {
				return true, nil
			}
		}
		return false, nil
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for _, e := range arr {
			b, err := e.StringBytes()
			if err != nil {
				return false, err
			}
			for _, w := range want {
				if string(b) == w {
					return true, nil
				}
			}
		}
		return false, nil
	}
	return false, errors.New("not a string or an array of strings")
}

// appendStrings appends the strings of v: each string element of an
// array, or one string (split on spaces when split is set, as OAuth
// scope claims are). Other values contribute nothing.
func appendStrings(dst []string, v *fastjson.Value, split bool) []string {
	if v == nil {
		return dst
	}
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		if split {
			return append(dst, strings.Fields(string(b))...)
		}
		if len(b) > 0 {
			return append(dst, string(b))
		}
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for _, e := range arr {
			if b, err := e.StringBytes(); err == nil && len(b) > 0 {
				dst = append(dst, string(b))
			}
		}
	}
	return dst
}

// toAny converts a claim to the JSON-compatible values a principal holds.
// Numbers keep their exact text as json.Number.
func toAny(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return string(b)
	case fastjson.TypeNumber:
		return json.Number(v.MarshalTo(nil))
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	case fastjson.TypeArray:
		arr, _ := v.Array()
		out := make([]any, len(arr))
		for i, e := range arr {
			out[i] = toAny(e)
		}
		return out
	case fastjson.TypeObject:
		o, _ := v.Object()
		out := make(map[string]any, o.Len())
		o.Visit(func(k []byte, e *fastjson.Value) { out[string(k)] = toAny(e) })
		return out
	}
	return nil
}
