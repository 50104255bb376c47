package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/util"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

// envoyResult is a policy result for the Envoy decision path, interpreted
// once and cached. It is immutable: responses copy what they change.
//
// The shapes and their errors follow the OPA-Envoy plugin
// (envoyauth/response.go and internal/internal.go):
//   - a boolean: allow or deny, nothing else. A denied boolean gives a
//     CheckResponse with status PERMISSION_DENIED and no denied_response,
//     so Envoy answers with its default 403.
//   - an object with "allowed" (required, boolean) and optionally
//     "headers" (object, or array of objects; values string or array of
//     strings), "response_headers_to_add" (same), "request_headers_to_remove"
//     and "query_parameters_to_remove" (arrays of strings),
//     "query_parameters_to_set" (object of string or array of strings),
//     "body" (string), "http_status" (number, a known HTTP status, default
//     403) and "dynamic_metadata" (object). Fields are read only where the
//     plugin reads them: on allow the request edits, on deny body and
//     http_status; headers and dynamic_metadata in both.
//   - anything else, or a field of the wrong type, is an evaluation error.
//
// authzd also reads "ttl_seconds" (a non-negative number) from an object,
// to bound how long the decision is cached.
type envoyResult struct {
	// raw is the policy result as evaluated (JSON-compatible values), kept
	// so the result can be stored outside the process (marshalEnvoyResult).
	raw any

	allowed bool
	object  bool

	headers              []*corev3.HeaderValueOption
	responseHeadersToAdd []*corev3.HeaderValueOption
	headersToRemove      []string
	queryToSet           []*corev3.QueryParameter
	queryToRemove        []string
	body                 string
	status               typev3.StatusCode
	dynamicMetadata      *structpb.Struct

	ttl    time.Duration
	hasTTL bool
}

func parseEnvoyResult(v any) (*envoyResult, error) {
	switch d := v.(type) {
	case bool:
		return &envoyResult{raw: v, allowed: d, status: typev3.StatusCode_Forbidden}, nil
	case map[string]any:
		r, err := parseEnvoyObject(d)
		if err != nil {
			return nil, err
		}
		r.raw = v
		return r, nil
	}
	return nil, fmt.Errorf("illegal value for policy evaluation result: %T", v)
}

// marshalEnvoyResult encodes a result for a shared cache (Redis): the
// policy's own result as JSON. unmarshalEnvoyResult reads it back through
// the same validation as a fresh result, so bytes from outside the process
// can never produce a result a policy could not have.
func marshalEnvoyResult(r *envoyResult) ([]byte, error) {
	return json.Marshal(r.raw)
}

func unmarshalEnvoyResult(b []byte) (*envoyResult, error) {
	var v any
	if err := util.UnmarshalJSON(b, &v); err != nil {
		return nil, err
	}
	return parseEnvoyResult(v)
}

func parseEnvoyObject(d map[string]any) (*envoyResult, error) {
	r := &envoyResult{object: true, status: typev3.StatusCode_Forbidden}
	val, ok := d["allowed"]
	if !ok {
		return nil, errors.New(`unable to determine evaluation result due to missing "allowed" key`)
	}
	if r.allowed, ok = val.(bool); !ok {
		return nil, fmt.Errorf("type assertion error, expected allowed to be of type 'boolean' but got '%T'", val)
	}
	var err error
	if r.headers, err = headerOptions(d, "headers"); err != nil {
		return nil, err
	}
	if md, ok := d["dynamic_metadata"]; ok {
		m, ok := md.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("type assertion error, expected dynamic_metadata to be of type 'object' but got '%T'", md)
		}
		if r.dynamicMetadata, err = structpb.NewStruct(m); err != nil {
			return nil, fmt.Errorf("dynamic_metadata: %w", err)
		}
	}
	if t, ok := d["ttl_seconds"]; ok {
		secs, err := jsonNumber(t)
		if err != nil || secs < 0 || secs > math.MaxInt32 {
			return nil, errors.New(`"ttl_seconds" must be a non-negative number`)
		}
		r.ttl, r.hasTTL = time.Duration(secs*float64(time.Second)), true
	}
	if r.allowed {
		if r.headersToRemove, err = stringList(d, "request_headers_to_remove"); err != nil {
			return nil, err
		}
		if r.responseHeadersToAdd, err = headerOptions(d, "response_headers_to_add"); err != nil {
			return nil, err
		}
		if r.queryToRemove, err = stringList(d, "query_parameters_to_remove"); err != nil {
			return nil, err
		}
		if r.queryToSet, err = queryParameters(d); err != nil {
			return nil, err
		}
		return r, nil
	}
	if b, ok := d["body"]; ok {
		if r.body, ok = b.(string); !ok {
			return nil, fmt.Errorf("type assertion error, expected body to be of type 'string' but got '%T'", b)
		}
	}
	if s, ok := d["http_status"]; ok {
		n, ok := s.(json.Number)
		if !ok {
			return nil, fmt.Errorf("type assertion error, expected http_status to be of type 'number' but got '%T'", s)
		}
		code, err := n.Int64()
		if err != nil {
			return nil, fmt.Errorf("error converting JSON number to int: %v", err)
		}
		if http.StatusText(int(code)) == "" {
			return nil, fmt.Errorf("invalid HTTP status code %v", code)
		}
		if _, ok := typev3.StatusCode_name[int32(code)]; !ok {
			return nil, fmt.Errorf("invalid HTTP status code %v", code)
		}
		r.status = typev3.StatusCode(code)
	}
	return r, nil
}

func jsonNumber(v any) (float64, error) {
	switch n := v.(type) {
	case json.Number:
		return n.Float64()
	case float64:
		return n, nil
	}
	return 0, fmt.Errorf("%T is not a number", v)
}

func stringList(d map[string]any, field string) ([]string, error) {
	val, ok := d[field]
	if !ok {
		return nil, nil
	}
	list, ok := val.([]any)
	if !ok {
		return nil, fmt.Errorf("type assertion error, expected %s to be of type '[]string' but got '%T'", field, val)
	}
	out := make([]string, len(list))
	for i, v := range list {
		if out[i], ok = v.(string); !ok {
			return nil, fmt.Errorf("type assertion error, expected %s value to be of type 'string' but got '%T'", field, v)
		}
	}
	return out, nil
}

// headerOptions reads an object of headers, or an array of such objects;
// a value is a string or an array of strings (one header per value).
// Header names are emitted in sorted order so responses are stable.
func headerOptions(d map[string]any, field string) ([]*corev3.HeaderValueOption, error) {
	val, ok := d[field]
	if !ok {
		return nil, nil
	}
	var objs []map[string]any
	switch v := val.(type) {
	case map[string]any:
		objs = []map[string]any{v}
	case []any:
		for _, x := range v {
			m, ok := x.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("type assertion error, expected %s to be of type 'object' but got '%T'", field, x)
			}
			objs = append(objs, m)
		}
	default:
		return nil, fmt.Errorf("type assertion error, expected %s to be of type 'object' but got '%T'", field, val)
	}
	var out []*corev3.HeaderValueOption
	for _, m := range objs {
		for _, k := range sortedKeys(m) {
			switch v := m[k].(type) {
			case string:
				out = append(out, headerOption(k, v))
			case []any:
				for _, x := range v {
					s, ok := x.(string)
					if !ok {
						return nil, fmt.Errorf("invalid value type %T for header '%s'", x, k)
					}
					out = append(out, headerOption(k, s))
				}
			default:
				return nil, fmt.Errorf("type assertion error for header '%s'", k)
			}
		}
	}
	return out, nil
}

func headerOption(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}}
}

func queryParameters(d map[string]any) ([]*corev3.QueryParameter, error) {
	val, ok := d["query_parameters_to_set"]
	if !ok {
		return nil, nil
	}
	m, ok := val.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("type assertion error, expected query_parameters_to_set to be a map but got '%T'", val)
	}
	var out []*corev3.QueryParameter
	for _, k := range sortedKeys(m) {
		switch v := m[k].(type) {
		case string:
			out = append(out, &corev3.QueryParameter{Key: k, Value: v})
		case []any:
			for _, x := range v {
				s, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("type assertion error: expected array element to be string but got '%T'", x)
				}
				out = append(out, &corev3.QueryParameter{Key: k, Value: s})
			}
		default:
			return nil, fmt.Errorf("type assertion error, expected value to be string or array but got '%T'", m[k])
		}
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// principalHeaders is what an allow adds for the upstream: each configured
// header is set (overwriting whatever the client sent) when the principal
// has a value for it, and removed otherwise, so a client can never supply
// its own.
type principalHeaders struct {
	set    []*corev3.HeaderValueOption
	remove []string
}

// withoutPrincipalHeaders drops policy headers that collide with a
// principal header: the verified identity is authoritative.
func withoutPrincipalHeaders(hs []*corev3.HeaderValueOption, names map[string]bool) []*corev3.HeaderValueOption {
	if len(names) == 0 {
		return hs
	}
	out := hs[:0:0]
	for _, h := range hs {
		if !names[strings.ToLower(h.GetHeader().GetKey())] {
			out = append(out, h)
		}
	}
	return out
}

// withDecisionID returns md (copied) with decision_id set, as the plugin
// does for every answer.
func withDecisionID(md *structpb.Struct, id string) *structpb.Struct {
	fields := make(map[string]*structpb.Value, 1+len(md.GetFields()))
	for k, v := range md.GetFields() {
		fields[k] = v
	}
	fields["decision_id"] = structpb.NewStringValue(id)
	return &structpb.Struct{Fields: fields}
}

// allowResponse is the answer for an allowed request.
func (r *envoyResult) allowResponse(ph principalHeaders, phNames map[string]bool, decisionID string) *authv3.CheckResponse {
	resp := &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)}}
	ok := &authv3.OkHttpResponse{}
	if r.object {
		ok.Headers = withoutPrincipalHeaders(r.headers, phNames)
		ok.HeadersToRemove = r.headersToRemove
		ok.ResponseHeadersToAdd = r.responseHeadersToAdd
		ok.QueryParametersToSet = r.queryToSet
		ok.QueryParametersToRemove = r.queryToRemove
	}
	ok.Headers = append(ok.Headers, ph.set...)
	ok.HeadersToRemove = append(slices.Clip(ok.HeadersToRemove), ph.remove...)
	if r.object || len(ok.Headers) > 0 || len(ok.HeadersToRemove) > 0 {
		resp.HttpResponse = &authv3.CheckResponse_OkResponse{OkResponse: ok}
	}
	resp.DynamicMetadata = withDecisionID(r.dynamicMetadata, decisionID)
	return resp
}

// denyResponse is the answer for a policy deny.
func (r *envoyResult) denyResponse(decisionID string) *authv3.CheckResponse {
	resp := &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)}}
	if r.object {
		resp.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: r.status},
			Headers: r.headers,
			Body:    r.body,
		}}
	}
	resp.DynamicMetadata = withDecisionID(r.dynamicMetadata, decisionID)
	return resp
}

// deniedWith is a deny authzd makes itself (bad credential, bad request,
// evaluation error in deny mode).
func deniedWith(code codes.Code, httpStatus typev3.StatusCode, msg, body string, headers []*corev3.HeaderValueOption, decisionID string) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code), Message: msg},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: httpStatus}, Headers: headers, Body: body,
		}},
		DynamicMetadata: withDecisionID(nil, decisionID),
	}
}
