package service

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"slices"
	"strconv"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The Envoy input document mirrors the one the OPA-Envoy plugin builds
// (opa-envoy-plugin envoyauth/request.go, RequestToInput), so policies
// written for the plugin run unchanged:
//
//	input.attributes      the CheckRequest as protojson writes it (camelCase)
//	input.version         {"ext_authz": "v3", "encoding": "protojson"}
//	input.parsed_path     url.Parse(path).Path without leading "/", split on "/"
//	input.parsed_query    url.Parse(path).Query(): {name: [values]}
//	input.parsed_body     JSON, urlencoded form or multipart form body, else null
//	input.truncated_body  true when content-length exceeds the body Envoy sent
//
// authzd adds input.principal when a credential in the request resolved.

// errEnvoyBadRequest wraps errors caused by the request itself (a path, query,
// content-length or body that does not parse, missing attributes). The
// plugin answers those with a denied response, HTTP 400.
var errEnvoyBadRequest = errors.New("bad request")

type envoyBadRequestError struct{ err error }

func (e *envoyBadRequestError) Error() string { return e.err.Error() }
func (e *envoyBadRequestError) Unwrap() []error {
	return []error{errEnvoyBadRequest, e.err}
}

func envoyBadRequest(format string, args ...any) error {
	return &envoyBadRequestError{err: fmt.Errorf(format, args...)}
}

var (
	keyAttributes    = ast.StringTerm("attributes")
	keyVersion       = ast.StringTerm("version")
	keyParsedPath    = ast.StringTerm("parsed_path")
	keyParsedQuery   = ast.StringTerm("parsed_query")
	keyParsedBody    = ast.StringTerm("parsed_body")
	keyTruncatedBody = ast.StringTerm("truncated_body")
	keyPrincipal     = ast.StringTerm("principal")

	// envoyVersion is input.version as the plugin sets it for v3.
	envoyVersion = ast.NewObject(
		ast.Item(ast.StringTerm("ext_authz"), ast.StringTerm("v3")),
		ast.Item(ast.StringTerm("encoding"), ast.StringTerm("protojson")),
	)
)

// envoyInputOptions are the per-server settings of input building.
type envoyInputOptions struct {
	// SkipBodyParse leaves out parsed_body and truncated_body, like the
	// plugin's skip-request-body-parse.
	SkipBodyParse bool
}

// envoyInput builds the input document (without input.principal) for req.
func envoyInput(req *authv3.CheckRequest, opts envoyInputOptions) (ast.Object, error) {
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	if httpReq == nil {
		// Same check and outcome as the plugin: a 400.
		return nil, envoyBadRequest("missing required attributes in v3 CheckRequest")
	}
	v, err := protoToValue(req.ProtoReflect())
	if err != nil {
		// Envoy never sends what protojson refuses; treat it as malformed.
		return nil, envoyBadRequest("converting CheckRequest: %v", err)
	}
	input := v.(ast.Object)
	input.Insert(keyVersion, ast.NewTerm(envoyVersion))

	parsedPath, parsedQuery, err := parsePathAndQuery(httpReq.GetPath())
	if err != nil {
		return nil, envoyBadRequest("error parsing path and query: %v", err)
	}
	input.Insert(keyParsedPath, ast.NewTerm(parsedPath))
	input.Insert(keyParsedQuery, ast.NewTerm(parsedQuery))

	if !opts.SkipBodyParse {
		body, truncated, err := parseBody(httpReq.GetHeaders(), httpReq.GetBody(), httpReq.GetRawBody())
		if err != nil {
			return nil, envoyBadRequest("error parsing request body: %v", err)
		}
		input.Insert(keyParsedBody, ast.NewTerm(body))
		input.Insert(keyTruncatedBody, ast.BooleanTerm(truncated))
	}
	return input, nil
}

// parsePathAndQuery follows the plugin's getParsedPathAndQuery: the path
// is url.Parse'd, so escaped segments are decoded before the split
// ("/a%2Fb" gives ["a", "b"]); all leading slashes are trimmed and the
// rest split on "/", so "/" and "" give [""] and "/a/" gives ["a", ""].
// The query comes from URL.Query(), which drops pairs it cannot parse
// (such as those with ";") instead of failing.
func parsePathAndQuery(path string) (*ast.Array, ast.Object, error) {
	u, err := url.Parse(path)
	if err != nil {
		return nil, nil, err
	}
	return parsedPath(u), parsedQuery(u), nil
}

func parsedPath(u *url.URL) *ast.Array {
	segs := strings.Split(strings.TrimLeft(u.Path, "/"), "/")
	terms := make([]*ast.Term, len(segs))
	for i, s := range segs {
		terms[i] = ast.StringTerm(s)
	}
	return ast.NewArray(terms...)
}

func parsedQuery(u *url.URL) ast.Object {
	q := u.Query()
	query := ast.NewObjectWithCapacity(len(q))
	for k, vs := range q {
		query.Insert(ast.StringTerm(k), ast.NewTerm(stringsArray(vs)))
	}
	return query
}

func stringsArray(vs []string) *ast.Array {
	terms := make([]*ast.Term, len(vs))
	for i, v := range vs {
		terms[i] = ast.StringTerm(v)
	}
	return ast.NewArray(terms...)
}

// parseBody follows the plugin's getParsedBody. The content-type header
// selects the parser by substring, in this order: application/json,
// application/grpc (not parsed here: authzd has no proto descriptors, which
// is the plugin's behaviour without a proto-descriptor), form-urlencoded,
// multipart/form-data. Anything else, or no content-type, gives null. The
// body is the string body, or raw_body when Envoy packs it as bytes. When
// content-length is larger than the body Envoy sent, the body is not parsed
// and truncated is true. An empty body gives null.
func parseBody(headers map[string]string, body string, rawBody []byte) (ast.Value, bool, error) {
	ct, ok := headers["content-type"]
	if !ok {
		return ast.Null{}, false, nil
	}
	kind := ""
	switch {
	case strings.Contains(ct, "application/json"):
		kind = "json"
	case strings.Contains(ct, "application/grpc"):
		return ast.Null{}, false, nil
	case strings.Contains(ct, "application/x-www-form-urlencoded"):
		kind = "form"
	case strings.Contains(ct, "multipart/form-data"):
		kind = "multipart"
	default:
		return ast.Null{}, false, nil
	}
	payload := body
	if payload == "" {
		if len(rawBody) == 0 {
			return ast.Null{}, false, nil
		}
		payload = string(rawBody)
	}
	if cl, ok := headers["content-length"]; ok {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil {
			return nil, false, err
		}
		if n != -1 && n > int64(len(payload)) {
			return ast.Null{}, true, nil
		}
	}
	switch kind {
	case "json":
		v, err := jsonValue([]byte(payload))
		if err != nil {
			return nil, false, err
		}
		return v, false, nil
	case "form":
		vals, err := url.ParseQuery(payload)
		if err != nil {
			return nil, false, err
		}
		obj := ast.NewObjectWithCapacity(len(vals))
		for k, vs := range vals {
			obj.Insert(ast.StringTerm(k), ast.NewTerm(stringsArray(vs)))
		}
		return obj, false, nil
	}
	return parseMultipart(ct, payload)
}

func jsonValue(b []byte) (ast.Value, error) {
	var x any
	if err := util.UnmarshalJSON(b, &x); err != nil {
		return nil, err
	}
	return ast.InterfaceToValue(x)
}

// parseMultipart gives {form name: [values]}; a part whose own
// content-type contains application/json is parsed as JSON, others are
// strings; parts without a form name are skipped; a content-type without
// a boundary gives null.
func parseMultipart(ct, payload string) (ast.Value, bool, error) {
	_, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, false, err
	}
	boundary, ok := params["boundary"]
	if !ok {
		return ast.Null{}, false, nil
	}
	values := map[string][]*ast.Term{}
	var order []string
	mr := multipart.NewReader(strings.NewReader(payload), boundary)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
		name := p.FormName()
		if name == "" {
			continue
		}
		raw, err := io.ReadAll(p)
		if err != nil {
			return nil, false, err
		}
		var v ast.Value
		if strings.Contains(p.Header.Get("Content-Type"), "application/json") {
			if v, err = jsonValue(raw); err != nil {
				return nil, false, err
			}
		} else {
			v = ast.String(raw)
		}
		if _, seen := values[name]; !seen {
			order = append(order, name)
		}
		values[name] = append(values[name], ast.NewTerm(v))
	}
	obj := ast.NewObjectWithCapacity(len(values))
	for _, name := range order {
		obj.Insert(ast.StringTerm(name), ast.ArrayTerm(values[name]...))
	}
	return obj, false, nil
}

// envoyInputFor builds only the parts of the input document that reads
// covers: the policy can observe nothing else (see rego.AnalyzeInputReads),
// so evaluating on this pruned document gives the decision the full one
// would, while a header rule converts one header instead of the whole
// CheckRequest. The request is still validated exactly as envoyInput does
// (path, query and body must parse), so which requests get a 400 does not
// depend on the policy. input.principal is added by the caller.
func envoyInputFor(req *authv3.CheckRequest, opts envoyInputOptions, reads []ast.Ref) (ast.Object, error) {
	if len(reads) == 1 && len(reads[0]) == 1 {
		return envoyInput(req, opts)
	}
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	if httpReq == nil {
		return nil, envoyBadRequest("missing required attributes in v3 CheckRequest")
	}
	// Parsed for validation; converted only when read.
	u, err := url.Parse(httpReq.GetPath())
	if err != nil {
		return nil, envoyBadRequest("error parsing path and query: %v", err)
	}
	var body ast.Value
	var truncated bool
	if !opts.SkipBodyParse {
		if body, truncated, err = parseBody(httpReq.GetHeaders(), httpReq.GetBody(), httpReq.GetRawBody()); err != nil {
			return nil, envoyBadRequest("error parsing request body: %v", err)
		}
	}
	input := ast.NewObject()
	var prev ast.Ref
	for _, target := range objectTargets(reads) {
		if prev != nil && target.HasPrefix(prev) {
			continue // already inside an inserted subtree
		}
		var v ast.Value
		var ok bool
		rest := target[1:]
		switch target[0].Value.(ast.String) {
		case "attributes":
			v, ok, err = protoLookup(req.ProtoReflect(), target)
			if err != nil {
				return nil, envoyBadRequest("converting CheckRequest: %v", err)
			}
		case "version":
			v, ok = find(envoyVersion, rest)
		case "parsed_path":
			v, ok = find(parsedPath(u), rest)
		case "parsed_query":
			v, ok = find(parsedQuery(u), rest)
		case "parsed_body":
			if !opts.SkipBodyParse {
				v, ok = find(body, rest)
			}
		case "truncated_body":
			if !opts.SkipBodyParse {
				v, ok = find(ast.Boolean(truncated), rest)
			}
		}
		if ok {
			insertAt(input, target, v)
			prev = target
		}
	}
	return input, nil
}

// objectTargets turns read paths (rooted at input) into insertion targets:
// each path cut before its first segment that is not a string (an array
// index), sorted, so that a target's value is always an object member.
// Paths under input.principal are left to the caller.
func objectTargets(reads []ast.Ref) []ast.Ref {
	out := make([]ast.Ref, 0, len(reads))
	for _, p := range reads {
		n := 1
		for n < len(p) {
			if _, ok := p[n].Value.(ast.String); !ok {
				break
			}
			n++
		}
		if n == 1 || p[1].Value.Compare(keyPrincipal.Value) == 0 {
			continue
		}
		out = append(out, p[1:n])
	}
	slices.SortFunc(out, func(a, b ast.Ref) int { return a.Compare(b) })
	return out
}

func find(v ast.Value, rest ast.Ref) (ast.Value, bool) {
	if len(rest) == 0 {
		return v, v != nil
	}
	x, err := v.Find(rest)
	return x, err == nil
}

// insertAt sets obj[path...] = v, creating the objects on the way. Targets
// never overlap (objectTargets), so the objects it walks into are the ones
// it created for this request, never a shared value.
func insertAt(obj ast.Object, path ast.Ref, v ast.Value) {
	for _, seg := range path[:len(path)-1] {
		next := obj.Get(seg)
		if next == nil {
			child := ast.NewObject()
			obj.Insert(seg, ast.NewTerm(child))
			obj = child
			continue
		}
		obj = next.Value.(ast.Object)
	}
	obj.Insert(path[len(path)-1], ast.NewTerm(v))
}

// protoLookup finds the value protojson would give at path (string
// segments, JSON field names and map keys) below m, converting only that
// subtree.
func protoLookup(m protoreflect.Message, path ast.Ref) (ast.Value, bool, error) {
	if len(path) == 0 || wellKnown(m.Descriptor().FullName()) != nil {
		v, err := messageValue(m, "")
		if err != nil {
			return nil, false, err
		}
		x, ok := find(v, path)
		return x, ok, nil
	}
	name := string(path[0].Value.(ast.String))
	fd := m.Descriptor().Fields().ByJSONName(name)
	if fd == nil || !m.Has(fd) {
		return nil, false, nil
	}
	v := m.Get(fd)
	rest := path[1:]
	switch {
	case len(rest) == 0 || fd.IsList():
		x, err := fieldValue(fd, v)
		if err != nil {
			return nil, false, err
		}
		x, ok := find(x, rest)
		return x, ok, nil
	case fd.IsMap():
		if fd.MapKey().Kind() != protoreflect.StringKind {
			x, err := fieldValue(fd, v)
			if err != nil {
				return nil, false, err
			}
			x, ok := find(x, rest)
			return x, ok, nil
		}
		key := protoreflect.ValueOfString(string(rest[0].Value.(ast.String))).MapKey()
		mv := v.Map().Get(key)
		if !mv.IsValid() {
			return nil, false, nil
		}
		if len(rest) == 1 {
			x, err := singularValue(fd.MapValue(), mv)
			return x, err == nil, err
		}
		if fd.MapValue().Kind() != protoreflect.MessageKind {
			return nil, false, nil
		}
		return protoLookup(mv.Message(), rest[1:])
	case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
		return protoLookup(v.Message(), rest)
	}
	return nil, false, nil // a path into a scalar
}
