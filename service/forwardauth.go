package service

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// HTTP front doors. Both turn the HTTP request into the CheckRequest Envoy
// would have sent for the original request and run the Envoy flow, so one
// policy serves Envoy, nginx, Traefik and Caddy alike.
const (
	// ForwardAuthPath is for nginx auth_request, Traefik ForwardAuth and
	// Caddy forward_auth. The original request is described by
	// X-Forwarded-Method, X-Forwarded-Uri, X-Forwarded-Host and
	// X-Forwarded-Proto (X-Original-Method and X-Original-URI, as nginx
	// configurations usually name them, are accepted too). The answer is
	// 200, 401 or 403; on 200 the principal headers are in the response for
	// the proxy to copy upstream.
	ForwardAuthPath = "/v1/forward-auth"
	// EnvoyHTTPPrefix is for Envoy's ext_authz http_service mode (set
	// path_prefix to this): the authorization request is the original
	// request with this prefix on its path. The answer is 200 with the
	// upstream headers and x-envoy-auth-headers-to-remove, or the denied
	// status, headers and body.
	EnvoyHTTPPrefix = "/v1/envoy-http"
)

func (f *envoyFlow) registerHTTP(mux *http.ServeMux) {
	mux.HandleFunc(ForwardAuthPath, f.serveForwardAuth)
	mux.HandleFunc(EnvoyHTTPPrefix+"/", f.serveEnvoyHTTP)
}

// forwarded returns the one value of an original-request attribute that
// the proxy passes in any of names (headers that mean the same thing).
// authzd cannot tell a header the proxy set from a copy the client sent:
// proxies pass the client's headers on and overwrite only those they are
// configured to set. Two different values (across names, or one name
// repeated) mean a client copy survived next to the proxy's, so the
// request is refused rather than decided on a value the client chose.
func forwarded(r *http.Request, names ...string) (string, error) {
	value := ""
	for _, n := range names {
		for _, v := range r.Header.Values(n) {
			if v == "" {
				continue
			}
			if value != "" && v != value {
				return "", fmt.Errorf("conflicting values for %s", strings.Join(names, "/"))
			}
			value = v
		}
	}
	return value, nil
}

func (f *envoyFlow) serveForwardAuth(w http.ResponseWriter, r *http.Request) {
	method, err1 := forwarded(r, "X-Forwarded-Method", "X-Original-Method")
	uri, err2 := forwarded(r, "X-Forwarded-Uri", "X-Original-URI", "X-Original-Url")
	host, err3 := forwarded(r, "X-Forwarded-Host")
	scheme, err4 := forwarded(r, "X-Forwarded-Proto")
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		f.log.Warn("forward-auth request refused: the original request is ambiguous", "error", err)
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if method == "" {
		method = r.Method
	}
	if uri == "" {
		uri = "/"
	}
	if host == "" {
		host = r.Host
	}
	scheme = strings.ToLower(scheme)
	if scheme == "" {
		scheme = "http"
	}
	resp, ok := f.checkHTTP(w, r, method, host, uri, scheme)
	if !ok {
		return
	}
	if ok := resp.GetOkResponse(); resp.GetStatus().GetCode() == int32(codes.OK) {
		setHeaders(w, ok.GetHeaders())
		w.WriteHeader(http.StatusOK)
		return
	}
	d := resp.GetDeniedResponse()
	code := http.StatusForbidden
	if d.GetStatus().GetCode() == http.StatusUnauthorized {
		code = http.StatusUnauthorized
	}
	writeDenied(w, d, code)
}

// checkHTTP runs the flow for an HTTP front door. It answers the requests
// it cannot decide (body of unknown length over the limit, errors) itself
// and reports false for them.
func (f *envoyFlow) checkHTTP(w http.ResponseWriter, r *http.Request, method, host, uri, scheme string) (*authv3.CheckResponse, bool) {
	req := f.httpCheckRequest(r, method, host, uri, scheme)
	if req == nil {
		http.Error(w, "request body larger than max_body_bytes and of unknown length", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	resp, err := f.check(r.Context(), req)
	if err != nil {
		writeCheckError(w, err)
		return nil, false
	}
	return resp, true
}

// setHeaders copies the headers of an allow to the HTTP answer.
func setHeaders(w http.ResponseWriter, hs []*corev3.HeaderValueOption) {
	for _, h := range hs {
		w.Header().Set(h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
}

func (f *envoyFlow) serveEnvoyHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.RequestURI(), EnvoyHTTPPrefix)
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	scheme := strings.ToLower(r.Header.Get("X-Forwarded-Proto"))
	if scheme == "" {
		scheme = "http"
	}
	resp, ok := f.checkHTTP(w, r, r.Method, r.Host, path, scheme)
	if !ok {
		return
	}
	if ok := resp.GetOkResponse(); resp.GetStatus().GetCode() == int32(codes.OK) {
		setHeaders(w, ok.GetHeaders())
		if rm := ok.GetHeadersToRemove(); len(rm) > 0 {
			w.Header().Set("X-Envoy-Auth-Headers-To-Remove", strings.Join(rm, ","))
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	d := resp.GetDeniedResponse()
	code := int(d.GetStatus().GetCode())
	if code < 300 {
		// A boolean deny (no status): Envoy's default. A policy status
		// below 300 is refused too: Envoy allows on 200, and Go's server
		// follows an informational status with a 200.
		code = http.StatusForbidden
	}
	writeDenied(w, d, code)
}

func writeDenied(w http.ResponseWriter, d *authv3.DeniedHttpResponse, code int) {
	for _, h := range d.GetHeaders() {
		w.Header().Add(h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
	if d.GetBody() != "" && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(code)
	io.WriteString(w, d.GetBody())
}

// writeCheckError answers an undecided request in on_error: grpc_error
// mode: 503 when authzd cannot decide right now, 500 otherwise. Proxies
// treat both as failures (nginx answers 500), never as an allow.
func writeCheckError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if status.Code(err) == codes.Unavailable {
		code = http.StatusServiceUnavailable
	}
	http.Error(w, status.Convert(err).Message(), code)
}

// httpCheckRequest is the CheckRequest Envoy would send for the original
// request: headers lower-cased with repeated values joined by ",", the
// pseudo-headers, and the body up to max_body_bytes (the content-length
// header then tells the policy, through truncated_body, that it is cut).
// It is nil for a longer body of unknown length.
func (f *envoyFlow) httpCheckRequest(r *http.Request, method, host, uri, scheme string) *authv3.CheckRequest {
	headers := make(map[string]string, len(r.Header)+4)
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	if r.ContentLength > 0 {
		headers["content-length"] = strconv.FormatInt(r.ContentLength, 10)
	}
	headers[":authority"] = host
	headers[":method"] = method
	headers[":path"] = uri
	headers[":scheme"] = scheme
	var body []byte
	if r.Body != nil && f.cfg.MaxBodyBytes > 0 {
		body, _ = io.ReadAll(io.LimitReader(r.Body, int64(f.cfg.MaxBodyBytes)+1))
		if len(body) > f.cfg.MaxBodyBytes {
			body = body[:f.cfg.MaxBodyBytes]
			if r.ContentLength < 0 {
				// A chunked body cut here, with no content-length to
				// tell the policy (truncated_body): the cut would be
				// parsed as if it were the whole body. Refused, as
				// Envoy refuses a body over max_request_bytes (413).
				return nil
			}
		}
	}
	// Like Envoy: the query stays in path, query and fragment are empty.
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: tcpAddress(r.RemoteAddr)},
		Destination: &authv3.AttributeContext_Peer{Address: tcpAddress(localAddr(r))},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Method: method, Headers: headers, Path: uri, Host: host, Scheme: scheme,
				Protocol: r.Proto, Size: r.ContentLength,
				Body: string(body),
			},
		},
	}}
}

func localAddr(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return ""
}

func tcpAddress(hostport string) *corev3.Address {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil
	}
	p, _ := strconv.ParseUint(port, 10, 32)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
	}}}
}
