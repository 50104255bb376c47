package rego

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Decision is the interpreted result of the native decision query.
//
// The query may return a boolean, or an object:
//
//	{"allow": bool, "reasons": [string], "ttl_seconds": number, "headers": {string: string}}
//
// Anything else is an error, and the caller denies.
type Decision struct {
	Allow   bool
	Reasons []string
	// TTL is the policy's own cache lifetime for this decision; HasTTL
	// says whether the policy set one.
	TTL     time.Duration
	HasTTL  bool
	Headers map[string]string
}

// ParseDecision interprets a query result.
func ParseDecision(v any) (Decision, error) {
	switch r := v.(type) {
	case bool:
		return Decision{Allow: r}, nil
	case map[string]any:
		var d Decision
		allow, ok := r["allow"]
		if !ok {
			allow, ok = r["allowed"]
		}
		if !ok {
			return Decision{}, fmt.Errorf("decision object has no \"allow\" field")
		}
		b, ok := allow.(bool)
		if !ok {
			return Decision{}, fmt.Errorf("decision field \"allow\" is %T, want boolean", allow)
		}
		d.Allow = b
		if rs, ok := r["reasons"]; ok {
			switch rs := rs.(type) {
			case []any:
				for _, x := range rs {
					d.Reasons = append(d.Reasons, stringify(x))
				}
			case string:
				d.Reasons = []string{rs}
			default:
				return Decision{}, fmt.Errorf("decision field \"reasons\" is %T, want array of strings", rs)
			}
		}
		if t, ok := r["ttl_seconds"]; ok {
			secs, err := number(t)
			if err != nil || secs < 0 || secs > math.MaxInt32 {
				return Decision{}, fmt.Errorf("decision field \"ttl_seconds\" must be a non-negative number")
			}
			d.TTL = time.Duration(secs * float64(time.Second))
			d.HasTTL = true
		}
		if hs, ok := r["headers"]; ok {
			m, ok := hs.(map[string]any)
			if !ok {
				return Decision{}, fmt.Errorf("decision field \"headers\" is %T, want object", hs)
			}
			d.Headers = make(map[string]string, len(m))
			for k, x := range m {
				d.Headers[k] = stringify(x)
			}
		}
		return d, nil
	}
	return Decision{}, fmt.Errorf("decision is %T, want boolean or object", v)
}

func number(v any) (float64, error) {
	switch n := v.(type) {
	case json.Number:
		return n.Float64()
	case float64:
		return n, nil
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	}
	return 0, fmt.Errorf("%T is not a number", v)
}

func stringify(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
