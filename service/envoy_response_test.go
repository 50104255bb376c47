package service

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"

	"github.com/open-policy-agent/opa/v1/util"

	"github.com/authzd/authzd/rego"
)

// result decodes a policy result the way rego returns it (numbers as
// json.Number).
func result(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := util.UnmarshalJSON([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func headersOf(hs []*corev3.HeaderValueOption) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.GetHeader().GetKey()+"="+h.GetHeader().GetValue())
	}
	return strings.Join(out, ",")
}

// The result shapes and their errors follow envoyauth/response.go of the
// OPA-Envoy plugin.
func TestParseEnvoyResult(t *testing.T) {
	ok := []struct {
		name, in string
		check    func(t *testing.T, r *envoyResult)
	}{
		{"boolean allow", `true`, func(t *testing.T, r *envoyResult) {
			resp := r.allowResponse(principalHeaders{}, nil, "d1")
			if codes.Code(resp.GetStatus().GetCode()) != codes.OK || resp.GetHttpResponse() != nil {
				t.Fatalf("%v", resp)
			}
		}},
		{"boolean deny has no denied_response", `false`, func(t *testing.T, r *envoyResult) {
			resp := r.denyResponse("d1")
			if codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied || resp.GetHttpResponse() != nil {
				t.Fatalf("%v", resp)
			}
			if resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue() != "d1" {
				t.Fatalf("decision id missing: %v", resp)
			}
		}},
		{"object allow with request edits", `{"allowed": true,
			"headers": {"x-b": "2", "x-a": ["1", "11"]},
			"request_headers_to_remove": ["cookie"],
			"response_headers_to_add": [{"x-r": "v"}],
			"query_parameters_to_set": {"q": "1", "p": ["a", "b"]},
			"query_parameters_to_remove": ["debug"],
			"dynamic_metadata": {"tier": "gold", "n": 3},
			"body": 42, "http_status": "ignored on allow"}`, func(t *testing.T, r *envoyResult) {
			resp := r.allowResponse(principalHeaders{}, nil, "d2")
			ok := resp.GetOkResponse()
			if got := headersOf(ok.GetHeaders()); got != "x-a=1,x-a=11,x-b=2" {
				t.Errorf("headers %s", got)
			}
			if headersOf(ok.GetResponseHeadersToAdd()) != "x-r=v" || ok.GetHeadersToRemove()[0] != "cookie" || ok.GetQueryParametersToRemove()[0] != "debug" {
				t.Errorf("%v", ok)
			}
			if len(ok.GetQueryParametersToSet()) != 3 {
				t.Errorf("query params %v", ok.GetQueryParametersToSet())
			}
			md := resp.GetDynamicMetadata().GetFields()
			if md["tier"].GetStringValue() != "gold" || md["n"].GetNumberValue() != 3 || md["decision_id"].GetStringValue() != "d2" {
				t.Errorf("metadata %v", md)
			}
			if r.dynamicMetadata.GetFields()["decision_id"] != nil {
				t.Error("the cached result was modified")
			}
		}},
		{"object deny with status and body", `{"allowed": false, "http_status": 429, "body": "slow down", "headers": {"retry-after": "1"},
			"query_parameters_to_set": 7}`, func(t *testing.T, r *envoyResult) {
			d := r.denyResponse("d3").GetDeniedResponse()
			if d.GetStatus().GetCode() != typev3.StatusCode_TooManyRequests || d.GetBody() != "slow down" || headersOf(d.GetHeaders()) != "retry-after=1" {
				t.Fatalf("%v", d)
			}
		}},
		{"object deny defaults to 403", `{"allowed": false}`, func(t *testing.T, r *envoyResult) {
			if r.denyResponse("d").GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Forbidden {
				t.Fatal("not 403")
			}
		}},
		{"ttl_seconds", `{"allowed": true, "ttl_seconds": 1.5}`, func(t *testing.T, r *envoyResult) {
			if !r.hasTTL || r.ttl.Seconds() != 1.5 {
				t.Fatalf("ttl %v %v", r.hasTTL, r.ttl)
			}
		}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseEnvoyResult(result(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
		})
	}
	bad := map[string]string{
		"string result":               `"yes"`,
		"number result":               `1`,
		"missing allowed":             `{"headers": {}}`,
		"allowed not boolean":         `{"allowed": "true"}`,
		"header value not string":     `{"allowed": true, "headers": {"x": 1}}`,
		"headers not object":          `{"allowed": false, "headers": "x"}`,
		"remove not array":            `{"allowed": true, "request_headers_to_remove": "x"}`,
		"remove element not string":   `{"allowed": true, "query_parameters_to_remove": [1]}`,
		"query set element":           `{"allowed": true, "query_parameters_to_set": {"a": [1]}}`,
		"body not string on deny":     `{"allowed": false, "body": {}}`,
		"status not number":           `{"allowed": false, "http_status": "403"}`,
		"status unknown":              `{"allowed": false, "http_status": 299}`,
		"metadata not object":         `{"allowed": true, "dynamic_metadata": []}`,
		"negative ttl":                `{"allowed": true, "ttl_seconds": -1}`,
		"response headers not object": `{"allowed": true, "response_headers_to_add": [1]}`,
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := parseEnvoyResult(result(t, in)); err == nil {
				t.Fatalf("%s accepted", in)
			}
		})
	}
	if _, err := parseEnvoyResult(map[string]any{"allowed": false, "http_status": json.Number("1e3")}); err == nil {
		t.Fatal("non-integer status accepted")
	}
}

func TestPrincipalHeadersNeverCollide(t *testing.T) {
	r, err := parseEnvoyResult(result(t, `{"allowed": true, "headers": {"X-Authzd-Subject": "from-policy", "x-other": "1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	ph := principalHeaders{set: []*corev3.HeaderValueOption{headerOption("x-authzd-subject", "alice")}}
	ok := r.allowResponse(ph, map[string]bool{"x-authzd-subject": true}, "d").GetOkResponse()
	if got := headersOf(ok.GetHeaders()); got != "x-other=1,x-authzd-subject=alice" {
		t.Fatalf("headers %s", got)
	}
}

func TestEnvoyConfig(t *testing.T) {
	c := EnvoyConfig{}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Query() != "data.envoy.authz.allow" || c.APIKeyHeader != "x-api-key" || c.OnError != "deny" {
		t.Fatalf("defaults %+v query %s", c, c.Query())
	}
	// Like the plugin's stringPathToDataRef: numeric segments are indexes.
	if q := (EnvoyConfig{Path: "/authz/rules/0/allow"}).Query(); q != "data.authz.rules[0].allow" {
		t.Fatalf("query %s", q)
	}
	for name, edit := range map[string]func(*EnvoyConfig){
		"on_error":          func(c *EnvoyConfig) { c.OnError = "allow" },
		"principal field":   func(c *EnvoyConfig) { c.PrincipalHeaders = map[string]string{"x-a": "password"} },
		"principal header":  func(c *EnvoyConfig) { c.PrincipalHeaders = map[string]string{"bad header": "id"} },
		"authorization":     func(c *EnvoyConfig) { c.PrincipalHeaders = map[string]string{"Authorization": "id"} },
		"api key header":    func(c *EnvoyConfig) { c.APIKeyHeader = "x key" },
		"negative body max": func(c *EnvoyConfig) { c.MaxBodyBytes = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			c := EnvoyConfig{}.WithDefaults()
			edit(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "envoy.") {
				t.Fatalf("got %v, want an error naming the envoy key", err)
			}
		})
	}
	// The Envoy query is prepared with the policy set.
	full := Config{Policy: regoConfigForTest()}.WithDefaults()
	if !containsString(full.Policy.ExtraQueries, "data.envoy.authz.allow") {
		t.Fatalf("extra queries %v", full.Policy.ExtraQueries)
	}
	if again := full.WithDefaults(); len(again.Policy.ExtraQueries) != len(full.Policy.ExtraQueries) {
		t.Fatal("WithDefaults is not idempotent")
	}
}

func regoConfigForTest() rego.Config { return rego.Config{Paths: []string{"."}} }

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// A result stored in a shared cache comes back giving the same responses.
func TestEnvoyResultRoundTrip(t *testing.T) {
	for _, in := range []string{
		`true`, `false`,
		`{"allowed": true, "headers": [{"x-a": "1"}, {"x-b": ["2", "3"]}], "request_headers_to_remove": ["cookie"],
		  "query_parameters_to_set": {"q": "1"}, "dynamic_metadata": {"n": 1.5, "l": [true, null]}, "ttl_seconds": 10}`,
		`{"allowed": false, "http_status": 429, "body": "no", "headers": {"x-r": "1"}}`,
	} {
		r, err := parseEnvoyResult(result(t, in))
		if err != nil {
			t.Fatal(err)
		}
		b, err := marshalEnvoyResult(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := unmarshalEnvoyResult(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, pair := range [][2]fmt.Stringer{
			{r.allowResponse(principalHeaders{}, nil, "d"), back.allowResponse(principalHeaders{}, nil, "d")},
			{r.denyResponse("d"), back.denyResponse("d")},
		} {
			if pair[0].String() != pair[1].String() {
				t.Fatalf("%s: after a round trip\n got %v\nwant %v", in, pair[1], pair[0])
			}
		}
		if back.ttl != r.ttl || back.hasTTL != r.hasTTL {
			t.Fatalf("%s: ttl changed", in)
		}
	}
}

// FuzzEnvoyResultDecode reads arbitrary bytes as a stored result (what a
// shared cache could hand back): an error or a valid result, never a panic.
func FuzzEnvoyResultDecode(f *testing.F) {
	for _, s := range []string{`true`, `{"allowed": true, "headers": {"a": ["b"]}}`, `{"allowed": false, "http_status": 401}`, `[]`, `{"allowed": 1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := unmarshalEnvoyResult(b)
		if err != nil {
			return
		}
		_ = r.allowResponse(principalHeaders{}, nil, "d")
		_ = r.denyResponse("d")
	})
}
