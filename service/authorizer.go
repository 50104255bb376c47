package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/authzd/authzd/cache"
	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/rego"
)

// Authorizer is the Check flow: resolve the credential (cached), build the
// input, look up the decision cache, evaluate on a miss (once for
// concurrent identical misses), store, answer. Every failure is a deny with
// a reason, or an error that toStatus maps.
type Authorizer struct {
	engine  *rego.Engine
	chain   *identity.Chain
	limits  Limits
	idTTL   time.Duration
	negTTL  time.Duration
	decTTL  time.Duration
	log     *slog.Logger
	declog  DecisionLogger
	metrics *metrics

	idCache  cache.Cache[*resolved]
	decCache cache.Cache[*cachedDecision]
	idFlight singleflight.Group
	dcFlight singleflight.Group
	// idLocal is the in-memory identity cache: idCache itself, or its
	// memory tier when Redis is behind it.
	idLocal cache.Cache[*resolved]
	// redis is the shared tier behind both caches; nil without Redis.
	redis *redisTier
	// cacheable[k] is set when some provider of credential kind k is
	// identity.Cacheable; other kinds skip the identity cache (with Redis,
	// a lookup that can never hit would cost a round trip per check).
	cacheable [256]bool

	ids idGen
}

// resolved is a verified identity with everything derived from it once:
// the Rego value, the response proto and the fingerprint used in decision
// keys. It is immutable and shared between requests.
type resolved struct {
	principal *identity.Principal
	value     ast.Value // input.principal
	proto     *authzdv1.Principal
	fp        cache.Key
	// err is set on a negative entry: a credential that failed verification.
	err error
	// revalidate marks entries of providers that must verify every request
	// (API keys); the entry only saves rebuilding the derived values.
	revalidate bool
}

// cachedDecision is what the decision cache stores.
type cachedDecision struct {
	allow   bool
	reasons []string
	headers map[string]string
	// principalID lets a per-principal flush find the entry.
	principalID string
	// envoy is the interpreted result on the Envoy decision path.
	envoy *envoyResult
}

// anonymous is the identity of a request without credentials.
var anonymous = &resolved{fp: cache.NewKeyBuilder("principal/v1").String("anonymous").Sum()}

func newAuthorizer(cfg Config, engine *rego.Engine, chain *identity.Chain, log *slog.Logger, m *metrics) *Authorizer {
	a := &Authorizer{
		engine:   engine,
		chain:    chain,
		limits:   cfg.Limits,
		idTTL:    cfg.Identity.CacheTTL,
		negTTL:   cfg.Identity.NegativeTTL,
		decTTL:   cfg.Cache.DecisionTTL,
		log:      log,
		declog:   noopDecisionLogger{},
		metrics:  m,
		idCache:  cache.NewMemory[*resolved](cfg.Cache.Memory),
		decCache: cache.NewMemory[*cachedDecision](cfg.Cache.Memory),
		ids:      newIDGen(),
	}
	a.idLocal = a.idCache
	if cfg.Cache.DecisionTTL < 0 {
		a.decCache = cache.Noop[*cachedDecision]{}
	}
	for _, p := range chain.Providers() {
		if _, ok := p.(identity.Cacheable); !ok {
			continue
		}
		for k := range a.cacheable {
			if p.Accepts(identity.Kind(k)) {
				a.cacheable[k] = true
			}
		}
	}
	if cfg.DecisionLog.Enabled {
		a.declog = newSlogDecisionLogger(log)
	}
	return a
}

// credentialFromProto converts the API credential. An unknown oneof case
// (a newer client) is a malformed request.
func (a *Authorizer) credentialFromProto(c *authzdv1.Credentials) (identity.Credential, error) {
	switch k := c.GetKind().(type) {
	case nil:
		if c != nil && len(c.ProtoReflect().GetUnknown()) > 0 {
			return identity.Credential{}, badRequest("credentials: unknown credential kind")
		}
		return identity.Credential{Kind: identity.KindNone}, nil
	case *authzdv1.Credentials_BearerToken:
		return a.tokenCredential("credentials.bearer_token", identity.KindBearer, k.BearerToken)
	case *authzdv1.Credentials_ApiKey:
		return a.tokenCredential("credentials.api_key", identity.KindAPIKey, k.ApiKey)
	case *authzdv1.Credentials_AwsSigv4:
		r := k.AwsSigv4
		if r == nil || r.Method == "" || r.Url == "" {
			return identity.Credential{}, badRequest("credentials.aws_sigv4: method and url are required")
		}
		if proto.Size(r) > a.limits.MaxRequestBytes {
			return identity.Credential{}, badRequest("credentials.aws_sigv4: too large")
		}
		h := make(http.Header, len(r.Headers))
		for name, v := range r.Headers {
			h.Set(name, v)
		}
		return identity.Credential{Kind: identity.KindAWSSigV4, Request: &identity.SignedRequest{
			Method: r.Method, URL: r.Url, Header: h, Body: r.Body,
		}}, nil
	}
	return identity.Credential{}, badRequest("credentials: unknown credential kind")
}

// tokenCredential checks a token-like credential's size before anything
// parses it.
func (a *Authorizer) tokenCredential(field string, kind identity.Kind, token string) (identity.Credential, error) {
	if token == "" {
		return identity.Credential{}, badRequest("%s: empty", field)
	}
	if len(token) > a.limits.MaxCredentialBytes {
		return identity.Credential{}, badRequest("%s: longer than %d bytes", field, a.limits.MaxCredentialBytes)
	}
	return identity.Credential{Kind: kind, Token: token}, nil
}

// credKey is the identity-cache key of a credential: a hash, never the
// credential itself.
func credKey(c identity.Credential) cache.Key {
	b := cache.NewKeyBuilder("identity/v1").Uint(uint64(c.Kind))
	if c.Request != nil {
		b.String(c.Request.Method).String(c.Request.URL)
		names := make([]string, 0, len(c.Request.Header))
		for n := range c.Request.Header {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			b.String(n).Strings(c.Request.Header[n])
		}
		b.Bytes(c.Request.Body)
	} else {
		b.String(c.Token)
	}
	return b.Sum()
}

// resolve verifies a credential. Results of Cacheable providers are cached
// (positive until the credential's expiry, negative briefly); concurrent
// identical lookups verify once. Other providers (API keys) verify on every
// request, so revocation wins at once; when they return the same immutable
// principal as last time, what was derived from it is reused.
func (a *Authorizer) resolve(ctx context.Context, cred identity.Credential) (*resolved, error) {
	if cred.Kind == identity.KindNone {
		return anonymous, nil
	}
	if !a.chain.Handles(cred.Kind) {
		return nil, identity.Invalid("", cred.Kind.String()+" credentials are not accepted by this server", identity.ErrNoProvider)
	}
	key := credKey(cred)
	// Kinds without a cacheable provider (API keys) verify every request;
	// their entries only save rebuilding derived values, so they stay in
	// this process's memory and never cost a Redis round trip.
	idc := a.idCache
	if !a.cacheable[cred.Kind] {
		idc = a.idLocal
	}
	cached, hit := idc.Get(ctx, key)
	if hit && !cached.revalidate {
		a.metrics.identityHits.Inc()
		if cached.err != nil {
			return nil, cached.err
		}
		return cached, nil
	}
	a.metrics.identityMisses.Inc()
	v, err, _ := a.idFlight.Do(string(key[:]), func() (any, error) {
		p, prov, err := a.chain.Resolve(ctx, cred)
		cacheable, isCacheable := prov.(identity.Cacheable)
		if err != nil {
			if isCacheable && identity.IsInvalid(err) && a.negTTL > 0 {
				a.idCache.Set(ctx, key, &resolved{err: err}, a.negTTL)
			}
			return nil, err
		}
		if hit && cached.principal == p {
			return cached, nil
		}
		r := newResolved(p)
		ttl := a.idTTL
		if isCacheable {
			ttl = min(ttl, cacheable.CacheTTL())
		} else if cred.Request != nil {
			// A signed request is unique per call: an entry would never
			// be hit again.
			return r, nil
		} else {
			r.revalidate = true
		}
		if !p.ExpiresAt.IsZero() {
			ttl = min(ttl, time.Until(p.ExpiresAt))
		}
		if r.revalidate {
			a.idLocal.Set(ctx, key, r, ttl)
		} else {
			a.idCache.Set(ctx, key, r, ttl)
		}
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*resolved), nil
}

func newResolved(p *identity.Principal) *resolved {
	r := &resolved{principal: p}
	claims := make([][2]*ast.Term, 0, len(p.Claims))
	claimNames := make([]string, 0, len(p.Claims))
	for k := range p.Claims {
		claimNames = append(claimNames, k)
	}
	sort.Strings(claimNames)
	for _, k := range claimNames {
		claims = append(claims, [2]*ast.Term{ast.StringTerm(k), ast.NewTerm(rego.GoValue(p.Claims[k]))})
	}
	r.value = ast.NewObject(
		[2]*ast.Term{ast.StringTerm("id"), ast.StringTerm(p.ID)},
		[2]*ast.Term{ast.StringTerm("provider"), ast.StringTerm(p.Provider)},
		[2]*ast.Term{ast.StringTerm("issuer"), ast.StringTerm(p.Issuer)},
		[2]*ast.Term{ast.StringTerm("subject"), ast.StringTerm(p.Subject)},
		[2]*ast.Term{ast.StringTerm("type"), ast.StringTerm(p.Type)},
		[2]*ast.Term{ast.StringTerm("groups"), ast.NewTerm(rego.GoValue(nonNil(p.Groups)))},
		[2]*ast.Term{ast.StringTerm("scopes"), ast.NewTerm(rego.GoValue(nonNil(p.Scopes)))},
		[2]*ast.Term{ast.StringTerm("claims"), ast.NewTerm(ast.NewObject(claims...))},
	)
	pb := &authzdv1.Principal{
		Id: p.ID, Provider: p.Provider, Issuer: p.Issuer, Subject: p.Subject, Type: p.Type,
		Groups: p.Groups, Scopes: p.Scopes,
	}
	if len(p.Claims) > 0 {
		if s, err := structpb.NewStruct(jsonSafe(p.Claims)); err == nil {
			pb.Claims = s
		}
	}
	r.proto = pb
	claimsJSON, _ := json.Marshal(p.Claims) // map keys sorted: canonical
	r.fp = cache.NewKeyBuilder("principal/v1").
		String(p.Provider).String(p.Issuer).String(p.Subject).String(p.ID).String(p.Type).
		Strings(p.Groups).Strings(p.Scopes).Bytes(claimsJSON).Sum()
	return r
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// jsonSafe converts claim values to the types structpb accepts.
func jsonSafe(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// checkArgs is one (action, resource, context) to decide.
type checkArgs struct {
	action   string
	resource *authzdv1.Resource
	context  *structpb.Struct
}

func (a *Authorizer) validateArgs(field string, c checkArgs) error {
	if c.action == "" {
		return badRequest("%saction: required", field)
	}
	if len(c.action) > 1024 {
		return badRequest("%saction: longer than 1024 bytes", field)
	}
	if n := proto.Size(c.context); n > a.limits.MaxContextBytes {
		return badRequest("%scontext: %d bytes exceeds the limit of %d", field, n, a.limits.MaxContextBytes)
	}
	if n := proto.Size(c.resource.GetAttributes()); n > a.limits.MaxAttributesBytes {
		return badRequest("%sresource.attributes: %d bytes exceeds the limit of %d", field, n, a.limits.MaxAttributesBytes)
	}
	return nil
}

// Check answers one CheckRequest.
func (a *Authorizer) Check(ctx context.Context, req *authzdv1.CheckRequest) (*authzdv1.CheckResponse, error) {
	start := time.Now()
	args := checkArgs{action: req.GetAction(), resource: req.GetResource(), context: req.GetContext()}
	if err := a.validateArgs("", args); err != nil {
		return nil, err
	}
	cred, err := a.credentialFromProto(req.GetCredentials())
	if err != nil {
		return nil, err
	}
	ps := a.engine.Current()
	if ps == nil {
		return nil, errNoPolicy
	}
	id, err := a.resolve(ctx, cred)
	if err != nil {
		resp := a.identityDeny(ps, err)
		a.finish(ctx, start, resp, nil, args, err)
		return resp, nil
	}
	resp, err := a.decide(ctx, ps, id, args)
	if err != nil {
		return nil, err
	}
	a.finish(ctx, start, resp, id, args, nil)
	return resp, nil
}

// BatchCheck resolves the credential once and answers every item in order.
func (a *Authorizer) BatchCheck(ctx context.Context, req *authzdv1.BatchCheckRequest) (*authzdv1.BatchCheckResponse, error) {
	start := time.Now()
	items := req.GetItems()
	if len(items) == 0 {
		return nil, badRequest("items: at least one item is required")
	}
	if len(items) > a.limits.MaxBatchItems {
		return nil, badRequest("items: %d items exceeds the limit of %d", len(items), a.limits.MaxBatchItems)
	}
	all := make([]checkArgs, len(items))
	for i, it := range items {
		c := it.GetContext()
		if c == nil {
			c = req.GetContext()
		}
		all[i] = checkArgs{action: it.GetAction(), resource: it.GetResource(), context: c}
		if err := a.validateArgs(fmt.Sprintf("items[%d].", i), all[i]); err != nil {
			return nil, err
		}
	}
	cred, err := a.credentialFromProto(req.GetCredentials())
	if err != nil {
		return nil, err
	}
	ps := a.engine.Current()
	if ps == nil {
		return nil, errNoPolicy
	}
	out := &authzdv1.BatchCheckResponse{PolicyRevision: ps.Revision, Results: make([]*authzdv1.CheckResponse, len(all))}
	id, err := a.resolve(ctx, cred)
	if err != nil {
		for i := range all {
			out.Results[i] = a.identityDeny(ps, err)
			a.finish(ctx, start, out.Results[i], nil, all[i], err)
		}
		return out, nil
	}
	out.Principal = id.proto
	for i, args := range all {
		resp, err := a.decide(ctx, ps, id, args)
		if err != nil {
			return nil, err
		}
		out.Results[i] = resp
		a.finish(ctx, start, resp, id, args, nil)
	}
	return out, nil
}

// identityDeny is the answer for a credential that did not verify.
func (a *Authorizer) identityDeny(ps *rego.PolicySet, err error) *authzdv1.CheckResponse {
	reason := "unauthenticated: " + publicReason(err)
	return &authzdv1.CheckResponse{
		Allowed:        false,
		Reasons:        []string{reason},
		DecisionId:     a.ids.next(),
		PolicyRevision: ps.Revision,
	}
}

// publicReason is the part of an identity error a caller may see.
func publicReason(err error) string {
	var ce *identity.CredentialError
	switch {
	case errors.As(err, &ce):
		if ce.Provider != "" {
			return ce.Provider + ": " + ce.Reason
		}
		return ce.Reason
	case errors.Is(err, identity.ErrNoProvider):
		return "no identity provider accepts this credential"
	case errors.Is(err, identity.ErrUnavailable):
		return "identity provider unavailable"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "identity verification did not finish before the deadline"
	}
	return "credential could not be verified"
}

// decisionKey covers everything the native decision can read: the policy
// revision, the principal, the action, the resource and the context.
func decisionKey(revision string, principal cache.Key, args checkArgs) cache.Key {
	b := cache.NewKeyBuilder("decision/v1").String(revision).Bytes(principal[:]).String(args.action)
	buf := keyBufPool.Get().(*[]byte)
	m := proto.MarshalOptions{Deterministic: true}
	// Marshal errors leave the buffer empty; the marker below keeps such a
	// key distinct, and the field is still covered by its length.
	*buf, _ = m.MarshalAppend((*buf)[:0], args.resource)
	b.Bytes(*buf)
	*buf, _ = m.MarshalAppend((*buf)[:0], args.context)
	b.Bytes(*buf)
	keyBufPool.Put(buf)
	return b.Sum()
}

var keyBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// readsKey hashes the revision, the query, the principal and the values of
// input at the paths the query reads, and nothing else: requests that differ
// only where the policy never looks share one entry.
func readsKey(ns string, ps *rego.PolicySet, query string, id *resolved, reads *rego.InputReads, input ast.Value) (cache.Key, error) {
	h := hashers.Get().(hash.Hash)
	h.Reset()
	defer hashers.Put(h)
	if err := reads.WriteKey(h, input); err != nil {
		return cache.Key{}, err
	}
	var sum [sha256.Size]byte
	return cache.NewKeyBuilder(ns).String(ps.Revision).String(query).
		Bytes(id.fp[:]).Bytes(h.Sum(sum[:0])).Sum(), nil
}

var hashers = sync.Pool{New: func() any { return sha256.New() }}

// evalOnce runs eval for key once among concurrent callers. When the shared
// evaluation was cut short by another caller's deadline while this caller
// still has time, this caller evaluates itself.
func (a *Authorizer) evalOnce(ctx context.Context, key cache.Key, eval func(context.Context) (*cachedDecision, error)) (*cachedDecision, error) {
	v, err, _ := a.dcFlight.Do(string(key[:]), func() (any, error) { return eval(ctx) })
	if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && ctx.Err() == nil {
		return eval(ctx)
	}
	if err != nil {
		return nil, err
	}
	return v.(*cachedDecision), nil
}

// decide answers one item for a resolved identity. The cache key covers
// the input paths the decision query reads (see docs/decision-cache.md);
// when the policy uses the input whole, it covers every field.
func (a *Authorizer) decide(ctx context.Context, ps *rego.PolicySet, id *resolved, args checkArgs) (*authzdv1.CheckResponse, error) {
	query := ps.DecisionQuery()
	reads, _ := ps.InputReads(query)
	var input ast.Value
	if reads != nil && !reads.Whole() {
		input = buildInput(id, args)
	}
	var key cache.Key
	eval := func(ctx context.Context) (*cachedDecision, error) {
		in := input
		if in == nil {
			in = buildInput(id, args)
		}
		d, err := ps.Decide(ctx, in)
		if err != nil {
			return nil, err
		}
		cd := &cachedDecision{allow: d.Allow, reasons: d.Reasons, headers: d.Headers}
		if id.principal != nil {
			cd.principalID = id.principal.ID
		}
		if !cd.allow && len(cd.reasons) == 0 {
			cd.reasons = []string{"denied by policy"}
		}
		if ttl := a.decisionTTL(reads, id, d); ttl > 0 {
			a.decCache.Set(ctx, key, cd, ttl)
		}
		return cd, nil
	}

	var d *cachedDecision
	var err error
	if a.decTTL <= 0 {
		// No decision cache: nothing to key, look up or share.
		d, err = eval(ctx)
	} else {
		if input != nil {
			if key, err = readsKey("decision/v2", ps, query, id, reads, input); err != nil {
				return nil, err
			}
		} else {
			key = decisionKey(ps.Revision, id.fp, args)
		}
		if cd, ok := a.decCache.Get(ctx, key); ok {
			a.metrics.decisionHits.Inc()
			return a.response(ps, id, cd, true), nil
		}
		a.metrics.decisionMisses.Inc()
		d, err = a.evalOnce(ctx, key, eval)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		a.log.Warn("policy evaluation failed; denying", "error", err, "revision", ps.Revision)
		a.metrics.evalErrors.Inc()
		return &authzdv1.CheckResponse{
			Allowed:        false,
			Principal:      id.proto,
			Reasons:        []string{evalReason(err)},
			DecisionId:     a.ids.next(),
			PolicyRevision: ps.Revision,
		}, nil
	}
	return a.response(ps, id, d, false), nil
}

func evalReason(err error) string {
	if errors.Is(err, rego.ErrUndefined) {
		return "policy error: decision is undefined"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "policy error: evaluation timed out"
	}
	return "policy error: evaluation failed"
}

// decisionTTL is how long a decision may be cached: the configured TTL,
// shortened by the policy's own ttl_seconds and the credential's expiry.
// Policies that call non-deterministic builtins are cached only when they
// set ttl_seconds themselves.
func (a *Authorizer) decisionTTL(reads *rego.InputReads, id *resolved, d rego.Decision) time.Duration {
	if a.decTTL <= 0 {
		return 0
	}
	ttl := a.decTTL
	// What the decision query can reach; without an analysis, assume the
	// worst.
	nondet := reads == nil || reads.NonDeterministic
	if d.HasTTL {
		ttl = min(ttl, d.TTL)
	} else if nondet {
		return 0
	}
	if id.principal != nil && !id.principal.ExpiresAt.IsZero() {
		ttl = min(ttl, time.Until(id.principal.ExpiresAt))
	}
	return ttl
}

func (a *Authorizer) response(ps *rego.PolicySet, id *resolved, d *cachedDecision, cached bool) *authzdv1.CheckResponse {
	return &authzdv1.CheckResponse{
		Allowed:        d.allow,
		Principal:      id.proto,
		Reasons:        d.reasons,
		DecisionId:     a.ids.next(),
		PolicyRevision: ps.Revision,
		Cached:         cached,
		Headers:        d.headers,
	}
}

// Key terms of the native input document, shared by every request: OPA
// never mutates input terms.
var (
	termPrincipal  = ast.StringTerm("principal")
	termAction     = ast.StringTerm("action")
	termResource   = ast.StringTerm("resource")
	termContext    = ast.StringTerm("context")
	termType       = ast.StringTerm("type")
	termID         = ast.StringTerm("id")
	termAttributes = ast.StringTerm("attributes")
	emptyObject    = ast.NewTerm(ast.NewObject())
)

// buildInput builds the native input document straight from the proto.
func buildInput(id *resolved, args checkArgs) ast.Value {
	res := args.resource
	attrs, ctx := emptyObject, emptyObject
	if a := res.GetAttributes(); len(a.GetFields()) > 0 {
		attrs = ast.NewTerm(rego.StructValue(a))
	}
	if len(args.context.GetFields()) > 0 {
		ctx = ast.NewTerm(rego.StructValue(args.context))
	}
	resource := ast.NewObject(
		[2]*ast.Term{termType, ast.StringTerm(res.GetType())},
		[2]*ast.Term{termID, ast.StringTerm(res.GetId())},
		[2]*ast.Term{termAttributes, attrs},
	)
	if id.value != nil {
		return ast.NewObject(
			[2]*ast.Term{termPrincipal, ast.NewTerm(id.value)},
			[2]*ast.Term{termAction, ast.StringTerm(args.action)},
			[2]*ast.Term{termResource, ast.NewTerm(resource)},
			[2]*ast.Term{termContext, ctx},
		)
	}
	return ast.NewObject(
		[2]*ast.Term{termAction, ast.StringTerm(args.action)},
		[2]*ast.Term{termResource, ast.NewTerm(resource)},
		[2]*ast.Term{termContext, ctx},
	)
}

// finish records metrics and the decision log line.
func (a *Authorizer) finish(ctx context.Context, start time.Time, resp *authzdv1.CheckResponse, id *resolved, args checkArgs, idErr error) {
	a.metrics.observe(resp.Allowed, resp.Cached, time.Since(start))
	if _, noop := a.declog.(noopDecisionLogger); noop {
		return
	}
	e := DecisionEvent{
		DecisionID: resp.DecisionId, Revision: resp.PolicyRevision, Allowed: resp.Allowed, Cached: resp.Cached,
		Action: args.action, ResourceType: args.resource.GetType(), ResourceID: args.resource.GetId(),
		Reasons: resp.Reasons, Duration: time.Since(start),
	}
	if id != nil && id.principal != nil {
		e.PrincipalID, e.Provider = id.principal.ID, id.principal.Provider
	}
	if idErr != nil {
		e.Error = idErr.Error()
	}
	// Decision logs survive the caller hanging up.
	a.declog.Log(context.WithoutCancel(ctx), e)
}

// FlushAll drops every cached identity and decision on this replica and,
// with Redis, in Redis and on every other replica. The local caches are
// cleared even when Redis fails; the error says the shared tier was not.
func (a *Authorizer) FlushAll(ctx context.Context) error {
	if a.redis != nil {
		return a.redis.flushAll(ctx)
	}
	a.idCache.Clear(ctx)
	a.decCache.Clear(ctx)
	return nil
}

// FlushPrincipal drops the cached decisions and identities of one principal
// (with Redis: in Redis and on every replica). It reports how many local
// entries it dropped here.
func (a *Authorizer) FlushPrincipal(ctx context.Context, principalID string) (int, error) {
	if a.redis != nil {
		n := a.redis.idCache.DropLocalTag(principalID) + a.redis.decCache.DropLocalTag(principalID)
		return n, a.redis.flushPrincipal(ctx, principalID)
	}
	n := 0
	if m, ok := a.decCache.(*cache.Memory[*cachedDecision]); ok {
		n += m.DeleteFunc(func(d *cachedDecision) bool { return d.principalID == principalID })
	}
	if m, ok := a.idCache.(*cache.Memory[*resolved]); ok {
		n += m.DeleteFunc(func(r *resolved) bool { return r.principal != nil && r.principal.ID == principalID })
	}
	return n, nil
}

// idGen makes decision ids: a random per-process prefix and a counter, so
// ids are unique without a syscall per request.
type idGen struct {
	prefix string
	n      atomic.Uint64
}

func newIDGen() idGen {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return idGen{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (g *idGen) next() string {
	var buf [40]byte
	out := append(buf[:0], g.prefix...)
	out = strconv.AppendUint(out, g.n.Add(1), 16)
	return string(out)
}
