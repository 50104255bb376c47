package service_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"

	"github.com/authzd/authzd/service"
)

// A client talks to the proxy, and the proxy passes the client's headers
// on to forward-auth; it overwrites only the X-Forwarded-*/X-Original-*
// headers it is configured to set. A copy of another of those headers
// sent by the client must not decide which request is authorized.
func TestForwardAuthRefusesClientCopiesOfTheOriginalRequest(t *testing.T) {
	s := startEnvoyServer(t, examplePolicies(t), nil)
	url := "http://" + s.httpAddr + service.ForwardAuthPath
	cases := []struct {
		name    string
		headers http.Header
	}{
		{"nginx sets X-Original-*, client adds X-Forwarded-*", http.Header{
			"X-Original-Uri": {"/admin/users"}, "X-Original-Method": {"DELETE"},
			"X-Forwarded-Uri": {"/healthz"}, "X-Forwarded-Method": {"GET"},
		}},
		{"Traefik sets X-Forwarded-*, client adds X-Original-*", http.Header{
			"X-Forwarded-Uri": {"/admin/users"}, "X-Forwarded-Method": {"DELETE"},
			"X-Original-Uri": {"/healthz"}, "X-Original-Method": {"GET"},
		}},
		{"client copy first, proxy value appended", http.Header{
			"X-Forwarded-Uri": {"/healthz", "/admin/users"}, "X-Forwarded-Method": {"GET", "DELETE"},
		}},
		{"X-Original-Url disagrees", http.Header{
			"X-Original-Url": {"/healthz"}, "X-Original-Uri": {"/admin/users"}, "X-Original-Method": {"GET"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tc.headers
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				t.Fatalf("status %d: the client's copy of the original request was authorized", resp.StatusCode)
			}
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
		})
	}
	t.Run("agreeing copies are fine", func(t *testing.T) {
		resp, _ := httpDo(t, "GET", url, map[string]string{
			"X-Original-URI": "/healthz", "X-Forwarded-Uri": "/healthz", "X-Original-Method": "GET", "X-Forwarded-Method": "GET",
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

// Envoy's http_service mode treats a 200 from the authorization server as
// an allow, whatever the body says. A policy deny must never reach Envoy
// as a 200, even when the policy's http_status asks for one (or for an
// informational status, after which Go's server sends a 200).
func TestEnvoyHTTPServiceDenyIsNeverA200(t *testing.T) {
	for _, status := range []string{"200", "204", "100", "103"} {
		t.Run(status, func(t *testing.T) {
			s := startEnvoyServer(t, map[string]string{"p.rego": `package envoy.authz
allow := {"allowed": false, "http_status": ` + status + `, "body": "no"}
`}, nil)
			resp, _ := httpDo(t, "GET", "http://"+s.httpAddr+service.EnvoyHTTPPrefix+"/orders/1", nil)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("policy deny with http_status %s answered %d, want 403", status, resp.StatusCode)
			}
		})
	}
}

// Many upstream stacks (CGI/WSGI environ, some frameworks) read
// x_authzd_subject and x-authzd-subject as the same header, and Envoy
// passes headers with underscores on by default. A client's underscore
// copy of a principal header must never reach the upstream next to (or
// instead of) the verified one, nor the policy.
func TestEnvoyRefusesDisguisedPrincipalHeaders(t *testing.T) {
	s := startEnvoyServer(t, examplePolicies(t), nil)
	for _, name := range []string{"x_authzd_subject", "X_Authzd_Subject", "x-authzd_subject"} {
		t.Run("ext_authz "+name, func(t *testing.T) {
			resp := s.check(t, envoyRequest("GET", "/healthz", map[string]string{name: "admin"}, ""))
			wantCode(t, resp, codes.PermissionDenied)
			if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != typev3.StatusCode_BadRequest {
				t.Fatalf("http status %v, want 400", got)
			}
		})
	}
	t.Run("header_map", func(t *testing.T) {
		req := envoyRequest("GET", "/healthz", nil, "")
		req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "x_authzd_subject", Value: "admin"}}}
		resp := s.check(t, req)
		wantCode(t, resp, codes.PermissionDenied)
	})
	t.Run("forward-auth", func(t *testing.T) {
		resp, _ := httpDo(t, "GET", "http://"+s.httpAddr+service.ForwardAuthPath, map[string]string{
			"X-Forwarded-Uri": "/healthz", "X-Forwarded-Method": "GET", "X_Authzd_Subject": "admin",
		})
		if resp.StatusCode == http.StatusOK {
			t.Fatal("forward-auth allowed a request carrying a disguised principal header")
		}
	})
	t.Run("the exact name is still stripped and the request decided", func(t *testing.T) {
		resp := s.check(t, envoyRequest("GET", "/healthz", map[string]string{"x-authzd-subject": "admin"}, ""))
		wantCode(t, resp, codes.OK)
	})
}

// A chunked body (no Content-Length) longer than max_body_bytes is cut by
// authzd; the cut must be visible (truncated_body), never parsed as if it
// were the whole body: "pad=...&amount=1000" cut to "...&amount=10" is a
// different request.
func TestEnvoyHTTPServiceChunkedBodyOverTheLimitIsTruncated(t *testing.T) {
	s := startEnvoyServer(t, map[string]string{"p.rego": `package envoy.authz
allow if { not input.truncated_body; input.parsed_body.amount == ["10"] }
`}, func(c *service.Config) { c.Envoy.MaxBodyBytes = 64 })
	post := func(body string) int {
		t.Helper()
		// MultiReader hides the length: the client sends it chunked.
		req, err := http.NewRequest("POST", "http://"+s.httpAddr+service.EnvoyHTTPPrefix+"/pay", io.MultiReader(strings.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post("amount=10"); c != 200 {
		t.Fatalf("a short chunked body: %d", c)
	}
	pad := "pad=" + strings.Repeat("x", 64-len("pad=")-len("&amount=10")) + "&amount=10"
	if len(pad) != 64 {
		t.Fatalf("test body is %d bytes", len(pad))
	}
	if c := post(pad + "00"); c != http.StatusRequestEntityTooLarge {
		t.Fatalf("a chunked body over max_body_bytes: %d, want 413 (200 means the cut was decided as if it were whole)", c)
	}
}
