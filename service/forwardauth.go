package service

import (
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

func firstHeader(r *http.Request, names ...string) string {
	for _, n := range names {
		if v := r.Header.Get(n); v != "" {
			return v
		}
	}
	return ""
}

func (f *envoyFlow) serveForwardAuth(w http.ResponseWriter, r *http.Request) {
	method := firstHeader(r, "X-Forwarded-Method", "X-Original-Method")
	if method == "" {
		method = r.Method
	}
	uri := firstHeader(r, "X-Forwarded-Uri", "X-Original-URI", "X-Original-Url")
	if uri == "" {
		uri = "/"
	}
	host := firstHeader(r, "X-Forwarded-Host")
	if host == "" {
		host = r.Host
	}
	scheme := strings.ToLower(firstHeader(r, "X-Forwarded-Proto"))
	if scheme == "" {
		scheme = "http"
	}
	req := f.httpCheckRequest(r, method, host, uri, scheme)
	resp, err := f.check(r.Context(), req)
	if err != nil {
		writeCheckError(w, err)
		return
	}
	if ok := resp.GetOkResponse(); resp.GetStatus().GetCode() == int32(codes.OK) {
		for _, h := range ok.GetHeaders() {
			w.Header().Set(h.GetHeader().GetKey(), h.GetHeader().GetValue())
		}
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

func (f *envoyFlow) serveEnvoyHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.RequestURI(), EnvoyHTTPPrefix)
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	scheme := strings.ToLower(firstHeader(r, "X-Forwarded-Proto"))
	if scheme == "" {
		scheme = "http"
	}
	req := f.httpCheckRequest(r, r.Method, r.Host, path, scheme)
	resp, err := f.check(r.Context(), req)
	if err != nil {
		writeCheckError(w, err)
		return
	}
	if ok := resp.GetOkResponse(); resp.GetStatus().GetCode() == int32(codes.OK) {
		for _, h := range ok.GetHeaders() {
			w.Header().Set(h.GetHeader().GetKey(), h.GetHeader().GetValue())
		}
		if rm := ok.GetHeadersToRemove(); len(rm) > 0 {
			w.Header().Set("X-Envoy-Auth-Headers-To-Remove", strings.Join(rm, ","))
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	d := resp.GetDeniedResponse()
	code := int(d.GetStatus().GetCode())
	if code == 0 {
		code = http.StatusForbidden // a boolean deny: Envoy's default
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
		body, _ = io.ReadAll(io.LimitReader(r.Body, int64(f.cfg.MaxBodyBytes)))
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
