package service_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/authzd/authzd/identity/awsiam"
	"github.com/authzd/authzd/identity/awsiam/awsiamtest"
	"github.com/authzd/authzd/identity/jwt"
	"github.com/authzd/authzd/service"
)

// envoyServer is a real authzd serving the policy files given, with an API
// key file and principal headers configured.
type envoyServer struct {
	*testServer
	envoy authv3.AuthorizationClient
}

var principalHeaders = map[string]string{
	"X-Authzd-Subject":  "id",
	"x-authzd-provider": "provider",
	"x-authzd-scopes":   "scopes",
}

func startEnvoyServer(t *testing.T, policies map[string]string, edit func(*service.Config)) *envoyServer {
	t.Helper()
	dir := t.TempDir()
	pdir := filepath.Join(dir, "policies")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range policies {
		if err := os.WriteFile(filepath.Join(pdir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := service.Config{
		Listen:     "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		Policy:     regoConfig(pdir),
		Identity: service.IdentityConfig{
			APIKeys: service.APIKeysConfig{File: filepath.Join(dir, "apikeys.yaml"), ReloadInterval: 50 * time.Millisecond},
		},
		Envoy:           service.EnvoyConfig{PrincipalHeaders: principalHeaders},
		ShutdownTimeout: 5 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	ts := startServer(t, dir, cfg)
	return &envoyServer{testServer: ts, envoy: authv3.NewAuthorizationClient(ts.conn)}
}

// key creates an API key and waits until the server's key file watcher has
// picked it up.
func (s *envoyServer) key(t *testing.T, owner string, scopes []string) string {
	t.Helper()
	key, _ := s.newKey(t, owner, scopes, 0)
	eventually(t, "the new API key to be loaded", func() bool {
		resp, err := s.envoy.Check(context.Background(), envoyRequest("GET", "/", map[string]string{"x-api-key": key}, ""))
		return err == nil && codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated
	})
	return key
}

func examplePolicies(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "envoy", "policies", "authz.rego"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"authz.rego": string(b)}
}

// envoyRequest is what Envoy's ext_authz filter sends for an HTTP request
// (headers lower-cased, pseudo-headers included, body when
// with_request_body is set).
func envoyRequest(method, path string, headers map[string]string, body string) *authv3.CheckRequest {
	h := map[string]string{
		":authority": "shop.example.com", ":method": method, ":path": path, ":scheme": "https",
		"user-agent": "curl/8.5.0", "x-request-id": fmt.Sprintf("req-%d", time.Now().UnixNano()),
		"x-forwarded-proto": "https",
	}
	for k, v := range headers {
		h[k] = v
	}
	if body != "" {
		h["content-length"] = strconv.Itoa(len(body))
	}
	addr := func(ip string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: addr("10.0.0.7", 50312)},
		Destination: &authv3.AttributeContext_Peer{Address: addr("10.0.0.9", 8000)},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: strconv.FormatInt(time.Now().UnixNano(), 10), Method: method, Headers: h, Path: path,
				Host: "shop.example.com", Scheme: "https", Protocol: "HTTP/1.1", Size: int64(len(body)), Body: body,
			},
		},
		MetadataContext: &corev3.Metadata{},
	}}
}

func (s *envoyServer) check(t *testing.T, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	resp, err := s.envoy.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue() == "" {
		t.Fatalf("no decision_id in dynamic metadata: %v", resp)
	}
	return resp
}

func headerValues(hs []*corev3.HeaderValueOption) map[string]string {
	out := map[string]string{}
	for _, h := range hs {
		out[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return out
}

func wantCode(t *testing.T, resp *authv3.CheckResponse, code codes.Code) {
	t.Helper()
	if got := codes.Code(resp.GetStatus().GetCode()); got != code {
		t.Fatalf("status %v, want %v (%v)", got, code, resp)
	}
}

func TestEnvoyExamplePolicyObjectResults(t *testing.T) {
	s := startEnvoyServer(t, examplePolicies(t), nil)
	reader := s.key(t, "alice", []string{"orders:read"})
	writer := s.key(t, "bob", []string{"orders:write"})

	t.Run("public allow with policy headers", func(t *testing.T) {
		resp := s.check(t, envoyRequest("GET", "/healthz", nil, ""))
		wantCode(t, resp, codes.OK)
		h := headerValues(resp.GetOkResponse().GetHeaders())
		if h["x-authzd-rule"] != "public-health" {
			t.Fatalf("headers %v", h)
		}
		// Anonymous: every principal header is removed upstream.
		if rm := resp.GetOkResponse().GetHeadersToRemove(); !slices.Contains(rm, "x-authzd-subject") {
			t.Fatalf("headers_to_remove %v", rm)
		}
	})
	t.Run("deny with status, body and headers", func(t *testing.T) {
		resp := s.check(t, envoyRequest("GET", "/orders/1", nil, ""))
		wantCode(t, resp, codes.PermissionDenied)
		d := resp.GetDeniedResponse()
		if d.GetStatus().GetCode() != typev3.StatusCode_Forbidden || d.GetBody() != "forbidden by policy\n" ||
			headerValues(d.GetHeaders())["x-authzd-reason"] == "" {
			t.Fatalf("denied response %v", d)
		}
	})
	t.Run("API key principal", func(t *testing.T) {
		resp := s.check(t, envoyRequest("GET", "/orders/1", map[string]string{"x-api-key": reader}, ""))
		wantCode(t, resp, codes.OK)
		h := headerValues(resp.GetOkResponse().GetHeaders())
		if h["x-authzd-subject"] != "alice" || h["x-authzd-provider"] != "apikey" || h["x-authzd-scopes"] != "orders:read" {
			t.Fatalf("principal headers %v", h)
		}
		for _, o := range resp.GetOkResponse().GetHeaders() {
			if strings.HasPrefix(o.GetHeader().GetKey(), "x-authzd-s") && o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Fatalf("principal header %s does not overwrite", o.GetHeader().GetKey())
			}
		}
	})
	t.Run("JSON body and scopes", func(t *testing.T) {
		ct := map[string]string{"x-api-key": writer, "content-type": "application/json"}
		wantCode(t, s.check(t, envoyRequest("POST", "/orders", ct, `{"quantity": 5}`)), codes.OK)
		wantCode(t, s.check(t, envoyRequest("POST", "/orders", ct, `{"quantity": 500}`)), codes.PermissionDenied)
		ct["x-api-key"] = reader
		wantCode(t, s.check(t, envoyRequest("POST", "/orders", ct, `{"quantity": 5}`)), codes.PermissionDenied)
	})
	t.Run("invalid API key is 401 with WWW-Authenticate", func(t *testing.T) {
		resp := s.check(t, envoyRequest("GET", "/healthz", map[string]string{"x-api-key": "azk_not_a_real_key"}, ""))
		wantCode(t, resp, codes.Unauthenticated)
		d := resp.GetDeniedResponse()
		if d.GetStatus().GetCode() != typev3.StatusCode_Unauthorized || !strings.HasPrefix(headerValues(d.GetHeaders())["www-authenticate"], "APIKey ") {
			t.Fatalf("denied response %v", d)
		}
	})
	t.Run("unparseable body is 400 like the plugin", func(t *testing.T) {
		resp := s.check(t, envoyRequest("POST", "/orders", map[string]string{"content-type": "application/json"}, `{"quantity":`))
		wantCode(t, resp, codes.PermissionDenied)
		if d := resp.GetDeniedResponse(); d.GetStatus().GetCode() != typev3.StatusCode_BadRequest {
			t.Fatalf("denied response %v", d)
		}
	})
}

const parsingPolicy = `package envoy.authz

default allow := false

# parsed_path decodes escaped segments before splitting, as the plugin does.
allow if {
	input.parsed_path == ["items", "a", "b"]
	input.parsed_query.tag == ["x", "y"]
}

allow if input.parsed_body.name == ["alice"]

allow if input.parsed_body.doc[0].n == 10

allow if input.attributes.request.http.headers["x-authzd-subject"] == "admin"
`

func TestEnvoyBooleanPolicyParsedPathQueryBody(t *testing.T) {
	s := startEnvoyServer(t, map[string]string{"p.rego": parsingPolicy}, nil)
	multipart := "--b\r\nContent-Disposition: form-data; name=\"doc\"\r\nContent-Type: application/json\r\n\r\n{\"n\": 10}\r\n--b--\r\n"
	cases := []struct {
		name string
		req  *authv3.CheckRequest
		want codes.Code
	}{
		{"path and query", envoyRequest("GET", "/items/a%2Fb?tag=x&tag=y", nil, ""), codes.OK},
		{"query differs", envoyRequest("GET", "/items/a%2Fb?tag=x", nil, ""), codes.PermissionDenied},
		{"urlencoded form", envoyRequest("POST", "/f", map[string]string{"content-type": "application/x-www-form-urlencoded"}, "name=alice"), codes.OK},
		{"multipart with a JSON part", envoyRequest("POST", "/f", map[string]string{"content-type": "multipart/form-data; boundary=b"}, multipart), codes.OK},
		{"truncated body is not parsed", func() *authv3.CheckRequest {
			r := envoyRequest("POST", "/f", map[string]string{"content-type": "application/x-www-form-urlencoded"}, "name=alice")
			r.Attributes.Request.Http.Headers["content-length"] = "4096"
			return r
		}(), codes.PermissionDenied},
		{"forged principal header is hidden from the policy", envoyRequest("GET", "/", map[string]string{"x-authzd-subject": "admin"}, ""), codes.PermissionDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.check(t, tc.req)
			wantCode(t, resp, tc.want)
			if tc.want == codes.PermissionDenied && resp.GetHttpResponse() != nil {
				// A boolean deny carries no denied_response: Envoy answers 403.
				t.Fatalf("boolean deny has an http response: %v", resp.GetHttpResponse())
			}
		})
	}
}

func TestEnvoyForgedPrincipalHeadersAreReplaced(t *testing.T) {
	s := startEnvoyServer(t, examplePolicies(t), nil)
	key := s.key(t, "carol", nil)
	forged := map[string]string{"x-authzd-subject": "admin", "x-authzd-provider": "root", "x-api-key": key}
	resp := s.check(t, envoyRequest("GET", "/orders/7", forged, ""))
	wantCode(t, resp, codes.OK)
	ok := resp.GetOkResponse()
	h := headerValues(ok.GetHeaders())
	if h["x-authzd-subject"] != "carol" || h["x-authzd-provider"] != "apikey" {
		t.Fatalf("principal headers %v", h)
	}
	// No scopes: the header is removed rather than passed on.
	if !slices.Contains(ok.GetHeadersToRemove(), "x-authzd-scopes") {
		t.Fatalf("headers_to_remove %v", ok.GetHeadersToRemove())
	}
	for _, rm := range ok.GetHeadersToRemove() {
		if _, set := h[rm]; set {
			t.Fatalf("%s is both set and removed", rm)
		}
	}
}

func TestEnvoyErrorModes(t *testing.T) {
	policy := map[string]string{"p.rego": `package envoy.authz
allow := input.attributes.request.http.method == "GET"

# 25 million steps: far longer than the 20ms evaluation timeout below.
slow if {
	some i in numbers.range(1, 5000)
	some j in numbers.range(1, 5000)
	i * j == -1
}
`}
	for _, tc := range []struct {
		name string
		edit func(*service.Config)
	}{
		{"undefined decision", func(c *service.Config) { c.Envoy.Path = "envoy/authz/missing" }},
		{"timeout", func(c *service.Config) { c.Envoy.Path = "envoy/authz/slow"; c.Policy.Timeout = 20 * time.Millisecond }},
	} {
		t.Run(tc.name+"/deny", func(t *testing.T) {
			s := startEnvoyServer(t, policy, tc.edit)
			resp := s.check(t, envoyRequest("GET", "/", nil, ""))
			wantCode(t, resp, codes.PermissionDenied)
			if d := resp.GetDeniedResponse(); d.GetStatus().GetCode() != typev3.StatusCode_Forbidden {
				t.Fatalf("denied response %v", d)
			}
		})
		t.Run(tc.name+"/grpc_error", func(t *testing.T) {
			s := startEnvoyServer(t, policy, func(c *service.Config) { tc.edit(c); c.Envoy.OnError = "grpc_error" })
			resp, err := s.envoy.Check(context.Background(), envoyRequest("GET", "/", nil, ""))
			if err == nil {
				t.Fatalf("got a response %v, want a gRPC error", resp)
			}
			if c := status.Code(err); c != codes.Internal && c != codes.Unavailable {
				t.Fatalf("code %v", c)
			}
		})
	}
	t.Run("dry run allows and keeps the decision id", func(t *testing.T) {
		s := startEnvoyServer(t, policy, func(c *service.Config) { c.Envoy.DryRun = true })
		resp := s.check(t, envoyRequest("POST", "/", map[string]string{"x-authzd-subject": "x"}, ""))
		wantCode(t, resp, codes.OK)
		if !slices.Contains(resp.GetOkResponse().GetHeadersToRemove(), "x-authzd-subject") {
			t.Fatalf("dry-run allow does not strip principal headers: %v", resp.GetOkResponse())
		}
	})
}

// metric reads one sample from /metrics.
func metric(t *testing.T, httpAddr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func TestEnvoyDecisionCacheHitsOnUnreadFields(t *testing.T) {
	s := startEnvoyServer(t, examplePolicies(t), nil)
	key := s.key(t, "dave", nil)
	hits := func() float64 {
		return metric(t, s.httpAddr, `authzd_cache_requests_total{cache="decision",outcome="hit"}`)
	}
	first := s.check(t, envoyRequest("GET", "/orders/1", map[string]string{"x-api-key": key, "user-agent": "a"}, ""))
	wantCode(t, first, codes.OK)
	h0 := hits()
	// Differs only in request id, time, and headers the policy never reads.
	second := s.check(t, envoyRequest("GET", "/orders/1", map[string]string{"x-api-key": key, "user-agent": "b", "accept": "text/csv"}, ""))
	wantCode(t, second, codes.OK)
	if hits() != h0+1 {
		t.Fatalf("second request was not a cache hit (hits %v -> %v)", h0, hits())
	}
	if first.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue() == second.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue() {
		t.Fatal("a cached answer reused the decision id")
	}
	// A field the policy reads (the path) misses.
	wantCode(t, s.check(t, envoyRequest("GET", "/orders/2", map[string]string{"x-api-key": key}, "")), codes.OK)
	if hits() != h0+1 {
		t.Fatal("a request differing in a read field hit the cache")
	}
	// Another principal misses too.
	other := s.key(t, "erin", nil)
	wantCode(t, s.check(t, envoyRequest("GET", "/orders/1", map[string]string{"x-api-key": other}, "")), codes.OK)
	if hits() != h0+1 {
		t.Fatal("another principal hit the cache")
	}
}

func TestEnvoyNonDeterministicPolicyIsNotCached(t *testing.T) {
	policies := map[string]string{"p.rego": "package envoy.authz\nallow if time.now_ns() > 0\n"}
	s := startEnvoyServer(t, policies, nil)
	for range 3 {
		wantCode(t, s.check(t, envoyRequest("GET", "/", nil, "")), codes.OK)
	}
	if h := metric(t, s.httpAddr, `authzd_cache_requests_total{cache="decision",outcome="hit"}`); h != 0 {
		t.Fatalf("%v cache hits for a policy calling time.now_ns", h)
	}
	// A policy that reads a value unique to each request (here the whole
	// http object, which holds the request id) is not cached either.
	s3 := startEnvoyServer(t, map[string]string{"p.rego": "package envoy.authz\nallow if { h := input.attributes.request.http; h.method == \"GET\" }\n"}, nil)
	for range 3 {
		wantCode(t, s3.check(t, envoyRequest("GET", "/", nil, "")), codes.OK)
	}
	if n := metric(t, s3.httpAddr, `authzd_cache_requests_total{cache="decision",outcome="miss"}`); n != 0 {
		t.Fatalf("%v cache lookups for a policy reading per-request values", n)
	}
	s2 := startEnvoyServer(t, map[string]string{"p.rego": "package envoy.authz\nallow := {\"allowed\": time.now_ns() > 0, \"ttl_seconds\": 30}\n"}, nil)
	for range 3 {
		wantCode(t, s2.check(t, envoyRequest("GET", "/", nil, "")), codes.OK)
	}
	if h := metric(t, s2.httpAddr, `authzd_cache_requests_total{cache="decision",outcome="hit"}`); h != 2 {
		t.Fatalf("%v cache hits, want 2 when the result sets ttl_seconds", h)
	}
}

func httpDo(t *testing.T, method, url string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestForwardAuth(t *testing.T) {
	s := startEnvoyServer(t, examplePolicies(t), nil)
	key := s.key(t, "frank", []string{"orders:read"})
	url := "http://" + s.httpAddr + service.ForwardAuthPath
	t.Run("nginx auth_request headers", func(t *testing.T) {
		resp, _ := httpDo(t, "GET", url, map[string]string{
			"X-Original-URI": "/orders/1", "X-Original-Method": "GET", "X-Api-Key": key,
			"X-Authzd-Subject": "forged",
		})
		if resp.StatusCode != 200 || resp.Header.Get("X-Authzd-Subject") != "frank" {
			t.Fatalf("status %d, subject %q", resp.StatusCode, resp.Header.Get("X-Authzd-Subject"))
		}
		resp, _ = httpDo(t, "GET", url, map[string]string{"X-Original-URI": "/orders/1", "X-Original-Method": "GET"})
		if resp.StatusCode != 403 {
			t.Fatalf("anonymous: status %d", resp.StatusCode)
		}
		resp, _ = httpDo(t, "GET", url, map[string]string{"X-Original-URI": "/orders/1", "X-Api-Key": "azk_bogus"})
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("bad key: status %d, www-authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("Traefik and Caddy X-Forwarded headers", func(t *testing.T) {
		resp, _ := httpDo(t, "GET", url, map[string]string{
			"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/healthz", "X-Forwarded-Host": "shop.example.com", "X-Forwarded-Proto": "https",
		})
		if resp.StatusCode != 200 || resp.Header.Get("X-Authzd-Rule") != "public-health" {
			t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
		}
		// A policy status other than 401 becomes 403 on this door.
		resp, body := httpDo(t, "GET", url, map[string]string{"X-Forwarded-Method": "DELETE", "X-Forwarded-Uri": "/admin"})
		if resp.StatusCode != 403 || body != "forbidden by policy\n" {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	})
	t.Run("Envoy http_service", func(t *testing.T) {
		resp, _ := httpDo(t, "GET", "http://"+s.httpAddr+service.EnvoyHTTPPrefix+"/orders/1?x=1", map[string]string{"X-Api-Key": key, "X-Authzd-Scopes": "admin"})
		if resp.StatusCode != 200 || resp.Header.Get("X-Authzd-Subject") != "frank" || resp.Header.Get("X-Authzd-Scopes") != "orders:read" {
			t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
		}
		resp, _ = httpDo(t, "GET", "http://"+s.httpAddr+service.EnvoyHTTPPrefix+"/healthz", nil)
		if rm := resp.Header.Get("X-Envoy-Auth-Headers-To-Remove"); !strings.Contains(rm, "x-authzd-subject") {
			t.Fatalf("anonymous allow: headers to remove %q", rm)
		}
	})
}

const headerRulePolicy = `package envoy.authz

import input.attributes.request.http

default allow := false

allow if http.headers["x-user"] == "alice"
`

// processCPU is the CPU time (user and system) this process has used. The
// machine may be shared, so CPU per operation is reported next to wall
// time: it does not grow when other processes take the cores.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEnvoyCheck measures the ext_authz flow in-process on a header
// rule (the OPA-Envoy comparison case): uncached (decision cache off) and
// cached (requests differing only in fields the rule does not read).
//
//	go test -run '^$' -bench 'BenchmarkEnvoyCheck' -benchmem ./service
func BenchmarkEnvoyCheck(b *testing.B) {
	// A policy that passes input whole to a function: the whole document
	// is built, as the plugin always does.
	wholeInput := headerRulePolicy + "\nuser(doc) := doc.attributes.request.http.headers[\"x-user\"]\nallow if user(input) == \"alice\"\n"
	for _, mode := range []string{"uncached", "cached", "uncached-whole-input"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			policy := headerRulePolicy
			if mode == "uncached-whole-input" {
				policy = wholeInput
			}
			if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(policy), 0o644); err != nil {
				b.Fatal(err)
			}
			cfg := service.Config{Listen: "127.0.0.1:0", HTTPListen: "off", Policy: regoConfig(dir)}
			if mode != "cached" {
				cfg.Cache.DecisionTTL = -1
			}
			srv, err := service.New(context.Background(), cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			check := srv.EnvoyCheck
			req := envoyRequest("GET", "/api/v1/orders/42?expand=items", map[string]string{"x-user": "alice", "accept": "application/json"}, "")
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op") }()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := check(context.Background(), req)
					if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
						b.Errorf("%v %v", resp, err)
						return
					}
				}
			})
		})
	}
}

func TestEnvoyJWTPrincipal(t *testing.T) {
	idp := newOIDCIssuer(t)
	s := startEnvoyServer(t, examplePolicies(t), func(c *service.Config) {
		c.Identity.JWT = &jwt.Config{Issuers: []jwt.IssuerConfig{{
			Name: "okta", Preset: jwt.PresetOkta, Issuer: idp.issuer,
			Audiences: []string{"api://default"}, ClientIDs: []string{"0oa-client"},
		}}}
		c.Envoy.PrincipalHeaders = map[string]string{"x-authzd-subject": "id", "x-authzd-groups": "groups", "x-authzd-client": "claims.cid"}
	})
	admin := idp.token(t, "k1", map[string]any{"groups": []string{"Everyone", "admin"}})
	resp := s.check(t, envoyRequest("DELETE", "/admin/users/7", map[string]string{"authorization": "Bearer " + admin, "x-authzd-subject": "forged"}, ""))
	wantCode(t, resp, codes.OK)
	h := headerValues(resp.GetOkResponse().GetHeaders())
	if h["x-authzd-rule"] != "admin" || h["x-authzd-subject"] != "okta:alice@example.com" ||
		h["x-authzd-groups"] != "Everyone,admin" || h["x-authzd-client"] != "0oa-client" {
		t.Fatalf("headers %v", h)
	}

	// Not in the admin group: the policy denies.
	user := idp.token(t, "k1", map[string]any{"groups": []string{"Everyone"}})
	wantCode(t, s.check(t, envoyRequest("DELETE", "/admin/users/7", map[string]string{"authorization": "Bearer " + user}, "")), codes.PermissionDenied)

	// A token from this issuer that fails verification is a 401.
	expired := idp.token(t, "k1", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	resp = s.check(t, envoyRequest("GET", "/healthz", map[string]string{"authorization": "Bearer " + expired}, ""))
	wantCode(t, resp, codes.Unauthenticated)
	if www := headerValues(resp.GetDeniedResponse().GetHeaders())["www-authenticate"]; !strings.HasPrefix(www, `Bearer realm="authzd", error="invalid_token"`) {
		t.Fatalf("www-authenticate %q", www)
	}
}

// Without a JWT provider a bearer token is the policy's business (OPA-Envoy
// policies often verify tokens themselves): the request is anonymous, not
// rejected.
func TestEnvoyBearerWithoutJWTProviderIsLeftToThePolicy(t *testing.T) {
	s := startEnvoyServer(t, map[string]string{"p.rego": `package envoy.authz
allow if {
	not input.principal
	startswith(input.attributes.request.http.headers.authorization, "Bearer ")
}`}, nil)
	wantCode(t, s.check(t, envoyRequest("GET", "/", map[string]string{"authorization": "Bearer opaque"}, "")), codes.OK)
}

// A SigV4-signed request through Envoy: authzd rebuilds the request from
// the attributes (scheme, host, path, headers, body) and verifies it.
func TestEnvoySigV4Principal(t *testing.T) {
	sts := awsiamtest.New(t)
	cfg := awsConfig(t, sts, 0)
	pdir := t.TempDir()
	policy := "package envoy.authz\nallow if input.principal.id == \"arn:aws:iam::123456789012:role/billing\"\n"
	if err := os.WriteFile(filepath.Join(pdir, "p.rego"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Policy = regoConfig(pdir)
	ts := startServer(t, t.TempDir(), cfg)
	client := authv3.NewAuthorizationClient(ts.conn)

	body := `{"invoice":"i-1"}`
	req, _ := http.NewRequest("POST", "https://billing.internal/v1/invoices?draft=1", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := v4.NewSigner().SignHTTP(context.Background(), billingKey, req, awsiamSHA256([]byte(body)), "authzd", "eu-west-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	// What Envoy sends: lower-case headers, :authority for the host.
	headers := map[string]string{}
	for k, v := range req.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	check := func(body string) *authv3.CheckResponse {
		t.Helper()
		er := envoyRequest("POST", "/v1/invoices?draft=1", headers, body)
		er.Attributes.Request.Http.Host = "billing.internal"
		er.Attributes.Request.Http.Headers[":authority"] = "billing.internal"
		resp, err := client.Check(context.Background(), er)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	wantCode(t, check(body), codes.OK)
	// A body other than the one signed fails verification: 401.
	resp := check(`{"invoice":"i-2"}`)
	wantCode(t, resp, codes.Unauthenticated)
	if www := headerValues(resp.GetDeniedResponse().GetHeaders())["www-authenticate"]; !strings.HasPrefix(www, "AWS4-HMAC-SHA256 ") {
		t.Fatalf("www-authenticate %q", www)
	}
}

// The HTTP door passes the body on for parsed_body, cut at max_body_bytes
// (truncated_body then tells the policy).
func TestEnvoyHTTPServiceBody(t *testing.T) {
	s := startEnvoyServer(t, map[string]string{"p.rego": `package envoy.authz
allow if input.parsed_body.quantity == 3
allow if { input.truncated_body; input.attributes.request.http.method == "PUT" }`}, func(c *service.Config) { c.Envoy.MaxBodyBytes = 32 })
	post := func(method, body string) int {
		req, err := http.NewRequest(method, "http://"+s.httpAddr+service.EnvoyHTTPPrefix+"/orders", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post("POST", `{"quantity": 3}`); c != 200 {
		t.Fatalf("quantity 3: %d", c)
	}
	if c := post("POST", `{"quantity": 4}`); c != 403 {
		t.Fatalf("quantity 4: %d", c)
	}
	long := `{"quantity": 3, "note": "` + strings.Repeat("x", 100) + `"}`
	if c := post("POST", long); c != 403 {
		t.Fatalf("a body over max_body_bytes was parsed: %d", c)
	}
	if c := post("PUT", long); c != 200 {
		t.Fatalf("truncated_body not set: %d", c)
	}
}

// An STS proof in the X-Authzd-Aws-Proof header resolves the principal on
// the Envoy door, and the header is removed on the way upstream so the
// upstream cannot replay it.
func TestEnvoyAWSProofHeader(t *testing.T) {
	sts := awsiamtest.New(t)
	cfg := awsConfig(t, sts, 0)
	pdir := t.TempDir()
	policy := "package envoy.authz\nallow if input.principal.id == \"arn:aws:iam::123456789012:role/orders-api\"\n"
	if err := os.WriteFile(filepath.Join(pdir, "p.rego"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Policy = regoConfig(pdir)
	ts := startServer(t, t.TempDir(), cfg)
	client := authv3.NewAuthorizationClient(ts.conn)

	proof, err := awsiam.NewProof(context.Background(), awsiamtest.Orders.Creds, awsiam.ProofOptions{Endpoint: sts.URL(), ServerID: awsServerID, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	hv, err := awsiam.EncodeProofHeader(proof)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Check(context.Background(), envoyRequest("GET", "/orders/1", map[string]string{"x-authzd-aws-proof": hv}, ""))
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, resp, codes.OK)
	if !slices.Contains(resp.GetOkResponse().GetHeadersToRemove(), "x-authzd-aws-proof") {
		t.Errorf("the proof header must be removed upstream: %v", resp.GetOkResponse())
	}
	// A malformed proof is a bad credential, not an anonymous request.
	resp, err = client.Check(context.Background(), envoyRequest("GET", "/orders/1", map[string]string{"x-authzd-aws-proof": "%%%"}, ""))
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, resp, codes.Unauthenticated)
}
