package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/authzd/authzd/cache"
	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/identity/awsiam"
	"github.com/authzd/authzd/rego"
)

// EnvoyConfig configures the Envoy ext_authz service and the HTTP front
// doors (forward-auth, Envoy http_service), which share one flow.
type EnvoyConfig struct {
	// Path is the decision, as in the OPA-Envoy plugin's "path" setting.
	// Default envoy/authz/allow (the query data.envoy.authz.allow).
	Path string `yaml:"path"`
	// APIKeyHeader is the request header carrying an API key. Default
	// x-api-key.
	APIKeyHeader string `yaml:"api_key_header"`
	// PrincipalHeaders maps an upstream header name to a principal field:
	// id, subject, provider, issuer, type, groups, scopes (comma-joined) or
	// claims.<name>. On allow each is set from the verified principal, or
	// removed when there is none; copies sent by the client are never
	// passed on, and are hidden from the policy input.
	PrincipalHeaders map[string]string `yaml:"principal_headers"`
	// OnError is what an evaluation error or timeout gives: "deny" (the
	// default; HTTP 403) or "grpc_error" (an UNAVAILABLE/INTERNAL gRPC
	// status, so Envoy's failure_mode_allow and status_on_error apply).
	OnError string `yaml:"on_error"`
	// DryRun evaluates and logs the real decision, then allows.
	DryRun bool `yaml:"dry_run"`
	// SkipRequestBodyParse leaves input.parsed_body and
	// input.truncated_body out, like the plugin's skip-request-body-parse.
	SkipRequestBodyParse bool `yaml:"skip_request_body_parse"`
	// MaxBodyBytes bounds how much of a request body the HTTP front doors
	// read; a longer body is passed on truncated (truncated_body is true).
	// Default 8 KiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
}

// Envoy defaults.
const (
	DefaultEnvoyPath         = "envoy/authz/allow"
	DefaultAPIKeyHeader      = "x-api-key"
	DefaultEnvoyMaxBodyBytes = 8 << 10
	envoyOnErrorDeny         = "deny"
	envoyOnErrorGRPC         = "grpc_error"
)

// WithDefaults returns c with zero fields set to their defaults.
func (c EnvoyConfig) WithDefaults() EnvoyConfig {
	if c.Path == "" {
		c.Path = DefaultEnvoyPath
	}
	if c.APIKeyHeader == "" {
		c.APIKeyHeader = DefaultAPIKeyHeader
	}
	c.APIKeyHeader = strings.ToLower(c.APIKeyHeader)
	if c.OnError == "" {
		c.OnError = envoyOnErrorDeny
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultEnvoyMaxBodyBytes
	}
	return c
}

var headerName = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`)

// Validate reports the first configuration error, naming the key.
func (c EnvoyConfig) Validate() error {
	if _, err := ast.ParseRef(c.Query()); err != nil {
		return fmt.Errorf("envoy.path: %q is not a rule path such as envoy/authz/allow: %v", c.Path, err)
	}
	if !headerName.MatchString(c.APIKeyHeader) {
		return fmt.Errorf("envoy.api_key_header: %q is not a header name", c.APIKeyHeader)
	}
	for h, field := range c.PrincipalHeaders {
		if !headerName.MatchString(h) || strings.HasPrefix(h, ":") {
			return fmt.Errorf("envoy.principal_headers: %q is not a header name", h)
		}
		switch strings.ToLower(h) {
		case "authorization", "host", c.APIKeyHeader:
			return fmt.Errorf("envoy.principal_headers: %q cannot carry the principal", h)
		}
		if !validPrincipalField(field) {
			return fmt.Errorf("envoy.principal_headers.%s: unknown field %q; use id, subject, provider, issuer, type, groups, scopes or claims.<name>", h, field)
		}
	}
	if c.OnError != envoyOnErrorDeny && c.OnError != envoyOnErrorGRPC {
		return fmt.Errorf("envoy.on_error: %q is not %q or %q", c.OnError, envoyOnErrorDeny, envoyOnErrorGRPC)
	}
	if c.MaxBodyBytes < 0 {
		return errors.New("envoy.max_body_bytes: must not be negative")
	}
	return nil
}

// Query is the Rego query for Path: envoy/authz/allow is
// data.envoy.authz.allow, and numeric segments are array indexes, as in the
// plugin's stringPathToDataRef.
func (c EnvoyConfig) Query() string {
	ref := ast.Ref{ast.DefaultRootDocument}
	for _, seg := range strings.Split(c.Path, "/") {
		if seg == "" {
			continue
		}
		if n, err := ast.ParseTerm(seg); err == nil {
			if _, ok := n.Value.(ast.Number); ok {
				ref = append(ref, n)
				continue
			}
		}
		ref = append(ref, ast.StringTerm(seg))
	}
	return ref.String()
}

func validPrincipalField(f string) bool {
	switch f {
	case "id", "subject", "provider", "issuer", "type", "groups", "scopes":
		return true
	}
	return strings.HasPrefix(f, "claims.") && len(f) > len("claims.")
}

// envoyFlow is the Envoy decision flow on top of the Authorizer: the gRPC
// ext_authz service and the HTTP front doors call check.
type envoyFlow struct {
	a       *Authorizer
	cfg     EnvoyConfig
	query   string
	log     *slog.Logger
	inOpts  envoyInputOptions
	phNames map[string]bool   // lower-case principal header names
	phNorm  map[string]bool   // the same with "_" written "-"
	phField map[string]string // lower-case header name -> principal field
	phOrder []string
}

func newEnvoyFlow(a *Authorizer, cfg EnvoyConfig, log *slog.Logger) *envoyFlow {
	f := &envoyFlow{
		a: a, cfg: cfg, query: cfg.Query(), log: log,
		inOpts:  envoyInputOptions{SkipBodyParse: cfg.SkipRequestBodyParse},
		phNames: map[string]bool{},
		phNorm:  map[string]bool{},
		phField: map[string]string{},
	}
	for h := range cfg.PrincipalHeaders {
		// Envoy sends header names lower-cased; so does authzd.
		name := strings.ToLower(h)
		f.phNames[name] = true
		f.phNorm[underscoreToDash(name)] = true
		f.phField[name] = cfg.PrincipalHeaders[h]
		f.phOrder = append(f.phOrder, name)
	}
	slices.Sort(f.phOrder)
	return f
}

// envoyAuthServer is envoy.service.auth.v3.Authorization.
type envoyAuthServer struct {
	authv3.UnimplementedAuthorizationServer
	f *envoyFlow
}

func (s *envoyAuthServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.f.check(ctx, req)
}

// errorOutcome is an evaluation that could not decide.
type errorOutcome struct {
	err    error
	reason string
}

// check decides one CheckRequest. It returns a gRPC error only in
// on_error: grpc_error mode, for evaluations that could not decide.
// decideSafely turns a panic in the decision into an error outcome, so it
// is answered like any other failure (a deny by default) rather than a
// broken stream, which Envoy's failure_mode_allow would let through.
func (f *envoyFlow) decideSafely(ctx context.Context, req *authv3.CheckRequest, ev *envoyEvent) (resp *authv3.CheckResponse, out *errorOutcome) {
	defer func() {
		if r := recover(); r != nil {
			f.log.Error("panic in envoy check; denying", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			resp, out = nil, &errorOutcome{err: fmt.Errorf("panic: %v", r), reason: "internal error"}
		}
	}()
	return f.decide(ctx, req, ev)
}

func (f *envoyFlow) check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	ev := &envoyEvent{DecisionEvent: DecisionEvent{ResourceType: "http"}}
	if h := req.GetAttributes().GetRequest().GetHttp(); h != nil {
		// The query is left out of logs: it may carry tokens.
		path, _, _ := strings.Cut(h.GetPath(), "?")
		ev.Action, ev.ResourceID = h.GetMethod(), path
	}
	resp, out := f.decideSafely(ctx, req, ev)
	ev.Duration = time.Since(start)
	if out != nil {
		f.a.metrics.evalErrors.Inc()
		ev.Error = out.err.Error()
		ev.Reasons = []string{out.reason}
		f.log.Warn("envoy check could not decide", "error", out.err, "on_error", f.cfg.OnError)
		if f.cfg.OnError == envoyOnErrorGRPC {
			f.logDecision(ctx, ev)
			return nil, undecidedStatus(out.err, out.reason)
		}
		ev.DecisionID = f.a.ids.next()
		resp = deniedWith(codes.PermissionDenied, typev3.StatusCode_Forbidden, out.reason, "", nil, ev.DecisionID)
	}
	ev.Allowed = resp.GetStatus().GetCode() == int32(codes.OK)
	if f.cfg.DryRun && !ev.Allowed && out == nil && !ev.badRequest {
		// The log keeps the real decision; Envoy is told to allow.
		ev.Reasons = append(ev.Reasons, "dry run: allowed")
		resp = dryRunAllow(resp, f.principalHeaders(nil))
	}
	f.a.metrics.observe(ev.Allowed, ev.Cached, ev.Duration)
	f.logDecision(ctx, ev)
	return resp, nil
}

func (f *envoyFlow) logDecision(ctx context.Context, ev *envoyEvent) {
	if _, noop := f.a.declog.(noopDecisionLogger); !noop {
		// Decision logs survive the caller hanging up.
		f.a.declog.Log(context.WithoutCancel(ctx), ev.DecisionEvent)
	}
}

// dryRunAllow turns a deny into an allow that still strips client copies
// of the principal headers, keeping the decision id.
func dryRunAllow(resp *authv3.CheckResponse, ph principalHeaders) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{Headers: ph.set, HeadersToRemove: ph.remove}
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: resp.GetDynamicMetadata(),
	}
}

// decide runs identity, input, cache and policy. A non-nil errorOutcome
// means no decision could be made.
func (f *envoyFlow) decide(ctx context.Context, req *authv3.CheckRequest, ev *envoyEvent) (*authv3.CheckResponse, *errorOutcome) {
	ps := f.a.engine.Current()
	if ps == nil {
		return nil, &errorOutcome{err: errNoPolicy, reason: "no policy loaded"}
	}
	ev.Revision = ps.Revision
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	if name := f.stripPrincipalHeaders(httpReq); name != "" {
		// Upstreams that read x_user and x-user as one header would take
		// the client's copy for the verified one: refuse the request.
		ev.DecisionID = f.a.ids.next()
		ev.badRequest = true
		reason := "header " + strconvQuote(name) + " imitates a principal header"
		ev.Reasons = []string{"bad request: " + reason}
		return deniedWith(codes.PermissionDenied, typev3.StatusCode_BadRequest, reason, reason, nil, ev.DecisionID), nil
	}

	cred, err := f.credential(httpReq)
	if err == nil {
		var id *resolved
		id, err = f.a.resolve(ctx, cred)
		if err == nil {
			return f.decideFor(ctx, ps, id, req, ev)
		}
	}
	if identity.IsInvalid(err) {
		ev.DecisionID = f.a.ids.next()
		reason := publicReason(err)
		ev.Reasons = []string{"unauthenticated: " + reason}
		ev.Error = err.Error()
		return deniedWith(codes.Unauthenticated, typev3.StatusCode_Unauthorized, "unauthenticated: "+reason, reason,
			[]*corev3.HeaderValueOption{headerOption("www-authenticate", wwwAuthenticate(cred.Kind, reason))}, ev.DecisionID), nil
	}
	return nil, &errorOutcome{err: err, reason: "identity: " + publicReason(err)}
}

func (f *envoyFlow) decideFor(ctx context.Context, ps *rego.PolicySet, id *resolved, req *authv3.CheckRequest, ev *envoyEvent) (*authv3.CheckResponse, *errorOutcome) {
	if id.principal != nil {
		ev.PrincipalID, ev.Provider = id.principal.ID, id.principal.Provider
	}
	reads, ok := ps.InputReads(f.query)
	if !ok {
		return nil, &errorOutcome{err: fmt.Errorf("query %s is not prepared", f.query), reason: "policy error: decision path not prepared"}
	}
	input, err := envoyInputFor(req, f.inOpts, reads.Paths)
	if err != nil {
		// The plugin answers requests it cannot parse with 400.
		ev.DecisionID = f.a.ids.next()
		ev.badRequest = true
		ev.Reasons = []string{"bad request: " + err.Error()}
		return deniedWith(codes.PermissionDenied, typev3.StatusCode_BadRequest, err.Error(), err.Error(), nil, ev.DecisionID), nil
	}
	if id.value != nil {
		input.Insert(keyPrincipal, ast.NewTerm(id.value))
	}
	res, cached, err := f.evaluate(ctx, ps, id, reads, input)
	if err != nil {
		return nil, &errorOutcome{err: err, reason: evalReason(err)}
	}
	ev.Cached = cached
	ev.DecisionID = f.a.ids.next()
	if res.allowed {
		ph := f.principalHeaders(id)
		if _, ok := req.GetAttributes().GetRequest().GetHttp().GetHeaders()[proofHeader]; ok {
			// The upstream must not be able to replay the caller's proof.
			ph.remove = append(slices.Clip(ph.remove), proofHeader)
		}
		return res.allowResponse(ph, f.phNames, ev.DecisionID), nil
	}
	ev.Reasons = []string{"denied by policy"}
	return res.denyResponse(ev.DecisionID), nil
}

// evaluate returns the policy result for input, from the decision cache
// when an equal request (at every input path the policy reads) was decided
// under the same revision for the same principal.
func (f *envoyFlow) evaluate(ctx context.Context, ps *rego.PolicySet, id *resolved, reads *rego.InputReads, input ast.Object) (*envoyResult, bool, error) {
	if f.a.decTTL <= 0 || readsUniqueValues(reads) {
		// Nothing to share: evaluate without hashing the input.
		v, err := ps.Eval(ctx, f.query, input)
		if err != nil {
			return nil, false, err
		}
		res, err := parseEnvoyResult(v)
		return res, false, err
	}
	key, err := f.cacheKey(ps, id, reads, input)
	if err != nil {
		return nil, false, err
	}
	if d, ok := f.a.decCache.Get(ctx, key); ok && d.envoy != nil {
		f.a.metrics.decisionHits.Inc()
		return d.envoy, true, nil
	}
	f.a.metrics.decisionMisses.Inc()
	eval := func(ctx context.Context) (*cachedDecision, error) {
		v, err := ps.Eval(ctx, f.query, input)
		if err != nil {
			return nil, err
		}
		res, err := parseEnvoyResult(v)
		if err != nil {
			return nil, err
		}
		cd := &cachedDecision{allow: res.allowed, envoy: res}
		if id.principal != nil {
			cd.principalID = id.principal.ID
		}
		if ttl := f.ttl(id, reads, res); ttl > 0 {
			f.a.decCache.Set(ctx, key, cd, ttl)
		}
		return cd, nil
	}
	d, err := f.a.evalOnce(ctx, key, eval)
	if err != nil {
		return nil, false, err
	}
	return d.envoy, false, nil
}

// uniquePerRequest are values Envoy makes different on every request.
var uniquePerRequest = []ast.Ref{
	ast.MustParseRef("input.attributes.request.time"),
	ast.MustParseRef("input.attributes.request.http.id"),
	ast.MustParseRef(`input.attributes.request.http.headers["x-request-id"]`),
}

// readsUniqueValues reports whether the policy reads a value that differs
// on every request (directly, or as part of a larger object it reads, up
// to the whole input). Such decisions are never cached: no later request
// could hit them, and storing them would evict entries that can.
func readsUniqueValues(reads *rego.InputReads) bool {
	for _, p := range reads.Paths {
		for _, u := range uniquePerRequest {
			if u.HasPrefix(p) {
				return true
			}
		}
	}
	return false
}

// cacheKey keys an Envoy decision on the input paths the policy reads.
func (f *envoyFlow) cacheKey(ps *rego.PolicySet, id *resolved, reads *rego.InputReads, input ast.Value) (cache.Key, error) {
	return readsKey("envoy-decision/v1", ps, f.query, id, reads, input)
}

// ttl is how long a result may be cached: the configured decision TTL,
// shortened by the policy's ttl_seconds and the credential's expiry. A
// query that reaches a non-deterministic builtin is cached only when its
// result sets ttl_seconds.
func (f *envoyFlow) ttl(id *resolved, reads *rego.InputReads, res *envoyResult) time.Duration {
	ttl := f.a.decTTL
	if ttl <= 0 {
		return 0
	}
	if res.hasTTL {
		ttl = min(ttl, res.ttl)
	} else if reads.NonDeterministic {
		return 0
	}
	if id.principal != nil && !id.principal.ExpiresAt.IsZero() {
		ttl = min(ttl, time.Until(id.principal.ExpiresAt))
	}
	return ttl
}

// stripPrincipalHeaders removes client-sent copies of the principal
// headers from the request before anything reads it. It returns the name
// of a disguised copy (the same name with "_" for "-", as CGI-style
// upstreams read it), which the caller refuses, or "".
func (f *envoyFlow) stripPrincipalHeaders(h *authv3.AttributeContext_HttpRequest) (disguised string) {
	if len(f.phNames) == 0 || h == nil {
		return ""
	}
	for name := range h.Headers {
		if lower := strings.ToLower(name); f.phNames[lower] {
			delete(h.Headers, name)
		} else if f.phNorm[underscoreToDash(lower)] {
			disguised = name
		}
	}
	if hm := h.GetHeaderMap(); hm != nil {
		hm.Headers = slices.DeleteFunc(hm.Headers, func(hv *corev3.HeaderValue) bool {
			lower := strings.ToLower(hv.GetKey())
			if f.phNames[lower] {
				return true
			}
			if f.phNorm[underscoreToDash(lower)] {
				disguised = hv.GetKey()
			}
			return false
		})
	}
	return disguised
}

func underscoreToDash(s string) string {
	if strings.IndexByte(s, '_') < 0 {
		return s
	}
	return strings.ReplaceAll(s, "_", "-")
}

// strconvQuote quotes a client-supplied name for a reason, bounded.
func strconvQuote(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strconv.Quote(s)
}

// credential finds the credential in the request headers. Credentials of
// a kind no configured provider handles are left to the policy (an
// OPA-Envoy policy may verify JWTs itself), so the request is anonymous.
func (f *envoyFlow) credential(h *authv3.AttributeContext_HttpRequest) (identity.Credential, error) {
	none := identity.Credential{Kind: identity.KindNone}
	headers := h.GetHeaders()
	auth := headers["authorization"]
	scheme, rest, _ := strings.Cut(strings.TrimSpace(auth), " ")
	rest = strings.TrimSpace(rest)
	var cred identity.Credential
	switch {
	case headers[proofHeader] != "":
		// An sts:GetCallerIdentity proof (see docs/identity-aws-iam.md).
		r, err := awsiam.ParseProofHeader(headers[proofHeader])
		if err != nil {
			return identity.Credential{Kind: identity.KindAWSSigV4}, identity.Invalid("", "malformed "+proofHeader+" header", err)
		}
		cred = identity.Credential{Kind: identity.KindAWSSigV4, Request: r}
	case strings.EqualFold(scheme, "bearer"):
		cred = identity.Credential{Kind: identity.KindBearer, Token: rest}
	case strings.EqualFold(scheme, "aws4-hmac-sha256"):
		cred = identity.Credential{Kind: identity.KindAWSSigV4, Request: signedRequest(h)}
	case headers[f.cfg.APIKeyHeader] != "":
		cred = identity.Credential{Kind: identity.KindAPIKey, Token: headers[f.cfg.APIKeyHeader]}
	default:
		return none, nil
	}
	if !f.a.chain.Handles(cred.Kind) {
		return none, nil
	}
	if cred.Kind != identity.KindAWSSigV4 {
		if cred.Token == "" {
			return cred, identity.Invalid("", "empty "+cred.Kind.String()+" credential", nil)
		}
		if len(cred.Token) > f.a.limits.MaxCredentialBytes {
			return cred, identity.Invalid("", "credential too long", nil)
		}
	}
	return cred, nil
}

// proofHeader carries an AWS STS proof, as Envoy sends header names.
var proofHeader = strings.ToLower(awsiam.ProofHeader)

// signedRequest rebuilds the client's request for SigV4 verification.
func signedRequest(h *authv3.AttributeContext_HttpRequest) *identity.SignedRequest {
	hdr := make(http.Header, len(h.GetHeaders()))
	for k, v := range h.GetHeaders() {
		if !strings.HasPrefix(k, ":") {
			hdr.Set(k, v)
		}
	}
	scheme := h.GetScheme()
	if scheme == "" {
		scheme = "https"
	}
	body := h.GetRawBody()
	if len(body) == 0 {
		body = []byte(h.GetBody())
	}
	return &identity.SignedRequest{Method: h.GetMethod(), URL: scheme + "://" + h.GetHost() + h.GetPath(), Header: hdr, Body: body}
}

func wwwAuthenticate(kind identity.Kind, reason string) string {
	reason = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(reason)
	switch kind {
	case identity.KindAPIKey:
		return `APIKey realm="authzd", error="invalid_key", error_description="` + reason + `"`
	case identity.KindAWSSigV4:
		return `AWS4-HMAC-SHA256 realm="authzd", error_description="` + reason + `"`
	}
	return `Bearer realm="authzd", error="invalid_token", error_description="` + reason + `"`
}

// principalHeaders computes the upstream headers for id (nil or anonymous:
// every configured header is removed).
func (f *envoyFlow) principalHeaders(id *resolved) principalHeaders {
	var ph principalHeaders
	for _, h := range f.phOrder {
		v, ok := "", false
		if id != nil && id.principal != nil {
			v, ok = principalField(id.principal, f.phField[h])
		}
		if ok && v != "" && !strings.ContainsAny(v, "\r\n\x00") {
			ph.set = append(ph.set, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: h, Value: v},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			})
		} else {
			ph.remove = append(ph.remove, h)
		}
	}
	return ph
}

func principalField(p *identity.Principal, field string) (string, bool) {
	switch field {
	case "id":
		return p.ID, true
	case "subject":
		return p.Subject, true
	case "provider":
		return p.Provider, true
	case "issuer":
		return p.Issuer, true
	case "type":
		return p.Type, true
	case "groups":
		return strings.Join(p.Groups, ","), true
	case "scopes":
		return strings.Join(p.Scopes, ","), true
	}
	name, _ := strings.CutPrefix(field, "claims.")
	v, ok := p.Claims[name]
	if !ok {
		return "", false
	}
	if s, ok := v.(string); ok {
		return s, true
	}
	return ast.NewTerm(rego.GoValue(v)).String(), true
}

// envoyEvent is a DecisionEvent plus what the flow needs to remember.
type envoyEvent struct {
	DecisionEvent
	badRequest bool
}

// EnvoyCheck runs the Envoy ext_authz flow in-process, as the gRPC service
// does; for embedding and benchmarks.
func (s *Server) EnvoyCheck(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.envoy.check(ctx, req)
}
