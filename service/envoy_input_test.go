package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/authzd/authzd/rego"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// pluginInput is the OPA-Envoy plugin's RequestToInput for v3, written the
// way the plugin does it (envoyauth/request.go): protojson.Marshal, a JSON
// decode with numbers kept as json.Number, then parsed_path, parsed_query,
// parsed_body and truncated_body from the same standard-library calls. It
// is the reference the reflective builder must match value for value.
func pluginInput(req *authv3.CheckRequest, skipBody bool) (ast.Value, error) {
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	if httpReq == nil {
		return nil, errors.New("missing required attributes in v3 CheckRequest")
	}
	bs, err := protojson.Marshal(req)
	if err != nil {
		return nil, err
	}
	var input map[string]any
	if err := util.UnmarshalJSON(bs, &input); err != nil {
		return nil, err
	}
	input["version"] = map[string]any{"ext_authz": "v3", "encoding": "protojson"}

	u, err := url.Parse(httpReq.GetPath())
	if err != nil {
		return nil, err
	}
	var parsedPath []any
	for _, s := range strings.Split(strings.TrimLeft(u.Path, "/"), "/") {
		parsedPath = append(parsedPath, s)
	}
	parsedQuery := map[string]any{}
	for k, vs := range u.Query() {
		var a []any
		for _, v := range vs {
			a = append(a, v)
		}
		parsedQuery[k] = a
	}
	input["parsed_path"] = parsedPath
	input["parsed_query"] = parsedQuery
	if !skipBody {
		body, truncated, err := pluginParsedBody(httpReq.GetHeaders(), httpReq.GetBody(), httpReq.GetRawBody())
		if err != nil {
			return nil, err
		}
		input["parsed_body"] = body
		input["truncated_body"] = truncated
	}
	return ast.InterfaceToValue(input)
}

func pluginParsedBody(headers map[string]string, body string, rawBody []byte) (any, bool, error) {
	var data any
	val, ok := headers["content-type"]
	if !ok {
		return nil, false, nil
	}
	payloadOf := func() (string, bool) {
		switch {
		case body != "":
			return body, true
		case len(rawBody) > 0:
			return string(rawBody), true
		}
		return "", false
	}
	truncated := func(payload string) (bool, error) {
		cl, ok := headers["content-length"]
		if !ok {
			return false, nil
		}
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil {
			return false, err
		}
		return n != -1 && n > int64(len(payload)), nil
	}
	switch {
	case strings.Contains(val, "application/json"):
		payload, ok := payloadOf()
		if !ok {
			return nil, false, nil
		}
		if t, err := truncated(payload); err != nil || t {
			return nil, t, err
		}
		if err := util.UnmarshalJSON([]byte(payload), &data); err != nil {
			return nil, false, err
		}
	case strings.Contains(val, "application/grpc"):
		return nil, false, nil
	case strings.Contains(val, "application/x-www-form-urlencoded"):
		payload, ok := payloadOf()
		if !ok {
			return nil, false, nil
		}
		if t, err := truncated(payload); err != nil || t {
			return nil, t, err
		}
		parsed, err := url.ParseQuery(payload)
		if err != nil {
			return nil, false, err
		}
		data = map[string][]string(parsed)
	case strings.Contains(val, "multipart/form-data"):
		payload, ok := payloadOf()
		if !ok {
			return nil, false, nil
		}
		if t, err := truncated(payload); err != nil || t {
			return nil, t, err
		}
		_, params, err := mime.ParseMediaType(val)
		if err != nil {
			return nil, false, err
		}
		boundary, ok := params["boundary"]
		if !ok {
			return nil, false, nil
		}
		values := map[string][]any{}
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
			value, err := io.ReadAll(p)
			if err != nil {
				return nil, false, err
			}
			if strings.Contains(p.Header.Get("Content-Type"), "application/json") {
				var j any
				if err := util.UnmarshalJSON(value, &j); err != nil {
					return nil, false, err
				}
				values[name] = append(values[name], j)
			} else {
				values[name] = append(values[name], string(value))
			}
		}
		data = values
	}
	return data, false, nil
}

// sameValue reports whether a and b are the same value with the same
// text (numbers compare by text, not only numerically).
func sameValue(a, b ast.Value) bool {
	return a.Compare(b) == 0 && a.String() == b.String()
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func socketAddr(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// envoyCheckRequest is what Envoy's ext_authz filter sends for an HTTP
// request (with_request_body enabled, metadata namespaces forwarded).
func envoyCheckRequest(method, path string, headers map[string]string, body string) *authv3.CheckRequest {
	h := map[string]string{":authority": "api.example.com", ":method": method, ":path": path, "x-request-id": "7f2c-1"}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address:   socketAddr("10.1.2.3", 52144),
			Principal: "spiffe://cluster.local/ns/default/sa/client",
		},
		Destination: &authv3.AttributeContext_Peer{Address: socketAddr("10.1.2.4", 8080)},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2026, 11, 24, 5, 0, 0, 123000000, time.UTC)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "15961542373454735234", Method: method, Headers: h, Path: path,
				Host: "api.example.com", Scheme: "https", Protocol: "HTTP/1.1",
				Size: int64(len(body)), Body: body,
			},
		},
		ContextExtensions: map[string]string{"virtual_host": "api"},
		MetadataContext:   &corev3.Metadata{},
	}}
}

// kitchenSink sets every kind of field protojson has a rule for.
func kitchenSink(t testing.TB) *authv3.CheckRequest {
	req := envoyCheckRequest("POST", "/v1/things/a%2Fb/?q=1&q=2&x=%20y;z=1", map[string]string{
		"content-type": "application/json", "authorization": "Bearer abc",
	}, `{"amount": 1.50, "tags": ["a", "b"], "nested": {"n": null, "big": 1e400}}`)
	a := req.Attributes
	a.Request.Http.RawBody = []byte{0, 1, 2, 0xff, 0xfe}
	a.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "x-bin", RawValue: []byte("\x00\xffraw")}, {Key: "x-str", Value: "s"},
	}}
	a.Destination.Labels = map[string]string{"app": "orders", "ünï": "cödé"}
	a.TlsSession = &authv3.AttributeContext_TLSSession{Sni: "api.example.com"}
	st, err := structpb.NewStruct(map[string]any{
		"sub": "alice", "n": 3.0, "f": 0.1, "tiny": 1e-7, "huge": 1e21, "ok": true, "none": nil,
		"list": []any{1.0, "two", map[string]any{"three": 3.0}},
	})
	if err != nil {
		t.Fatal(err)
	}
	a.MetadataContext = &corev3.Metadata{
		FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": st},
		TypedFilterMetadata: map[string]*anypb.Any{
			"ts":     mustAny(t, timestamppb.New(time.Unix(1700000000, 500))),
			"dur":    mustAny(t, durationpb.New(-1500*time.Millisecond)),
			"empty":  mustAny(t, &emptypb.Empty{}),
			"mask":   mustAny(t, &fieldmaskpb.FieldMask{Paths: []string{"a.b_c", "d"}}),
			"i64":    mustAny(t, wrapperspb.Int64(-1<<62)),
			"u64":    mustAny(t, wrapperspb.UInt64(math.MaxUint64)),
			"f32":    mustAny(t, wrapperspb.Float(3.4e38)),
			"f32s":   mustAny(t, wrapperspb.Float(1.1e-7)),
			"dbl":    mustAny(t, wrapperspb.Double(math.Inf(-1))),
			"nan":    mustAny(t, wrapperspb.Double(math.NaN())),
			"bytes":  mustAny(t, wrapperspb.Bytes([]byte("hi?>"))),
			"zero":   mustAny(t, wrapperspb.Int32(0)),
			"value":  mustAny(t, structpb.NewStringValue("v")),
			"pct":    mustAny(t, &typev3.Percent{Value: 99.5}),
			"frac":   mustAny(t, &typev3.FractionalPercent{Numerator: 7, Denominator: typev3.FractionalPercent_TEN_THOUSAND}),
			"enum99": mustAny(t, &typev3.FractionalPercent{Denominator: 99}),
			"cluster": mustAny(t, &clusterv3.Cluster{
				Name:                          "c",
				ConnectTimeout:                durationpb.New(250 * time.Millisecond),
				PerConnectionBufferLimitBytes: wrapperspb.UInt32(0),
				ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
				LbPolicy:                      clusterv3.Cluster_RING_HASH,
				Metadata:                      &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"x": {}}},
			}),
			"nested": mustAny(t, mustAny(t, wrapperspb.String("inner"))),
			"unset":  {},
		},
	}
	a.Source.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol: corev3.SocketAddress_UDP, Address: "::1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}, Ipv4Compat: true,
	}}}
	return req
}

func TestEnvoyInputMatchesPlugin(t *testing.T) {
	multipartBody := "--b\r\nContent-Disposition: form-data; name=\"foo\"\r\nContent-Type: text/plain\r\n\r\nbar\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"doc\"\r\nContent-Type: application/json\r\n\r\n{\"name\": \"x\", \"n\": 10}\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"foo\"\r\n\r\nbaz\r\n" +
		"--b\r\nContent-Disposition: attachment\r\n\r\nskipped\r\n--b--\r\n"
	cases := map[string]*authv3.CheckRequest{
		"kitchen sink":           kitchenSink(t),
		"get, no body":           envoyCheckRequest("GET", "/", nil, ""),
		"empty path":             envoyCheckRequest("GET", "", nil, ""),
		"double slash, trailing": envoyCheckRequest("GET", "//a//b/?", nil, ""),
		"escaped segments":       envoyCheckRequest("GET", "/a%2Fb/c%20d/%E2%82%AC", nil, ""),
		"query edge cases":       envoyCheckRequest("GET", "/p?a=1&a=2&b&=e&c=%zz&d=1;e=2#frag", nil, ""),
		"absolute-form path":     envoyCheckRequest("GET", "http://other.example/x/y?z=1", nil, ""),
		"json string":            envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/json"}, `"foo"`),
		"json numbers":           envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/json; charset=utf-8"}, `[1, 1.0, 1e2, -0, 12345678901234567890]`),
		"json truncated":         envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/json", "content-length": "1000"}, `{"a":`),
		"json content-length -1": envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/json", "content-length": "-1"}, `{"a":1}`),
		"json empty body":        envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/json"}, ""),
		"text body":              envoyCheckRequest("POST", "/", map[string]string{"content-type": "text/plain"}, "hello"),
		"grpc body":              envoyCheckRequest("POST", "/pkg.Svc/Method", map[string]string{"content-type": "application/grpc"}, "\x00\x00\x00\x00\x00"),
		"form":                   envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/x-www-form-urlencoded"}, "firstname=foo&lastname=bar&lastname=foobar"),
		"form truncated":         envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/x-www-form-urlencoded", "content-length": "99"}, "a=b"),
		"multipart":              envoyCheckRequest("POST", "/", map[string]string{"content-type": "multipart/form-data; boundary=b"}, multipartBody),
		"multipart, no boundary": envoyCheckRequest("POST", "/", map[string]string{"content-type": "multipart/form-data"}, multipartBody),
		"no content-type header": envoyCheckRequest("POST", "/", nil, `{"a": 1}`),
		"json in raw_body": func() *authv3.CheckRequest {
			r := envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/json"}, "")
			r.Attributes.Request.Http.RawBody = []byte(`{"packed": "as bytes"}`)
			return r
		}(),
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			for _, skip := range []bool{false, true} {
				want, werr := pluginInput(req, skip)
				got, gerr := envoyInput(req, envoyInputOptions{SkipBodyParse: skip})
				if (werr != nil) != (gerr != nil) {
					t.Fatalf("skip=%v: plugin error %v, ours %v", skip, werr, gerr)
				}
				if werr != nil {
					continue
				}
				if !sameValue(got, want) {
					t.Fatalf("skip=%v: input differs\n got: %v\nwant: %v", skip, got, want)
				}
			}
		})
	}
}

// Requests the plugin rejects while building the input get a 400; ours
// must fail on the same ones, with an error marked as the caller's fault.
func TestEnvoyInputBadRequests(t *testing.T) {
	cases := map[string]*authv3.CheckRequest{
		"no http attributes":    {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}},
		"unparseable path":      envoyCheckRequest("GET", "/a\x7f", nil, ""),
		"bad content-length":    envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/json", "content-length": "ten"}, "{}"),
		"invalid json body":     envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/json"}, `["foo" : 42}`),
		"trailing json":         envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/json"}, `{} {}`),
		"bad form body":         envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/x-www-form-urlencoded"}, "a=%zz"),
		"bad multipart":         envoyCheckRequest("POST", "/", map[string]string{"content-type": "multipart/form-data; boundary=b"}, "--b\r\nbroken"),
		"bad multipart json":    envoyCheckRequest("POST", "/", map[string]string{"content-type": "multipart/form-data; boundary=b"}, "--b\r\nContent-Disposition: form-data; name=\"j\"\r\nContent-Type: application/json\r\n\r\n{nope\r\n--b--\r\n"),
		"bad media type params": envoyCheckRequest("POST", "/", map[string]string{"content-type": "multipart/form-data; boundary"}, "x"),
		"unknown any type": func() *authv3.CheckRequest {
			r := envoyCheckRequest("GET", "/", nil, "")
			r.Attributes.MetadataContext.TypedFilterMetadata = map[string]*anypb.Any{"x": {TypeUrl: "type.googleapis.com/no.Such"}}
			return r
		}(),
		"timestamp out of range": func() *authv3.CheckRequest {
			r := envoyCheckRequest("GET", "/", nil, "")
			r.Attributes.Request.Time = &timestamppb.Timestamp{Seconds: -1e12}
			return r
		}(),
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := pluginInput(req, false); err == nil {
				t.Fatalf("the reference accepts this request; the case is wrong")
			}
			_, err := envoyInput(req, envoyInputOptions{})
			if !errors.Is(err, errEnvoyBadRequest) {
				t.Fatalf("got %v, want a bad-request error", err)
			}
		})
	}
}

// The plugin's documented details, spelled out so a regression reads
// plainly rather than as a diff of two large values.
func TestEnvoyInputDetails(t *testing.T) {
	req := kitchenSink(t)
	in, err := envoyInput(req, envoyInputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		ref := ast.MustParseRef("input." + path)
		v, err := in.Find(ref[1:])
		if err != nil {
			return "<undefined>"
		}
		return v.String()
	}
	for path, want := range map[string]string{
		`parsed_path`:                                              `["v1", "things", "a", "b", ""]`,
		`parsed_query`:                                             `{"q": ["1", "2"]}`,
		`version`:                                                  `{"encoding": "protojson", "ext_authz": "v3"}`,
		`attributes.request.http.size`:                             `"73"`,
		`attributes.request.http.rawBody`:                          `"AAEC//4="`,
		`attributes.request.time`:                                  `"2026-11-24T05:00:00.123Z"`,
		`attributes.source.address.socketAddress`:                  `{"address": "::1", "ipv4Compat": true, "portValue": 0, "protocol": "UDP"}`,
		`attributes.destination.address.socketAddress`:             `{"address": "10.1.2.4", "portValue": 8080}`,
		`attributes.contextExtensions`:                             `{"virtual_host": "api"}`,
		`attributes.tlsSession.sni`:                                `"api.example.com"`,
		`attributes.metadataContext.typedFilterMetadata.dur`:       `{"@type": "type.googleapis.com/google.protobuf.Duration", "value": "-1.500s"}`,
		`attributes.metadataContext.typedFilterMetadata.u64.value`: `"18446744073709551615"`,
		`attributes.metadataContext.typedFilterMetadata.nan.value`: `"NaN"`,
		`attributes.metadataContext.typedFilterMetadata.frac`:      `{"@type": "type.googleapis.com/envoy.type.v3.FractionalPercent", "denominator": "TEN_THOUSAND", "numerator": 7}`,
		`attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].tiny`: `1e-7`,
		`parsed_body.amount`: `1.50`,
		`truncated_body`:     `false`,
	} {
		if got := get(path); got != want {
			t.Errorf("input.%s = %s, want %s", path, got, want)
		}
	}
}

// FuzzEnvoyInput feeds wire-format CheckRequests (what arrives from the
// network) and checks that building the input never panics and always
// agrees with the plugin's protojson round trip.
func FuzzEnvoyInput(f *testing.F) {
	seed := func(r *authv3.CheckRequest) {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(kitchenSink(f))
	seed(envoyCheckRequest("GET", "/a%2Fb?x=1&x=2", nil, ""))
	seed(envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/x-www-form-urlencoded"}, "a=1&b=%20"))
	seed(envoyCheckRequest("POST", "/", map[string]string{"content-type": "multipart/form-data; boundary=b"},
		"--b\r\nContent-Disposition: form-data; name=\"j\"\r\nContent-Type: application/json\r\n\r\n[1]\r\n--b--\r\n"))
	seed(envoyCheckRequest("POST", "/", map[string]string{"content-type": "application/json", "content-length": "3"}, `{"a": [1, 2.5e3]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			return
		}
		got, gerr := envoyInput(&req, envoyInputOptions{})
		want, werr := pluginInput(&req, false)
		if (gerr != nil) != (werr != nil) {
			t.Fatalf("plugin error %v, ours %v", werr, gerr)
		}
		if gerr != nil {
			if !errors.Is(gerr, errEnvoyBadRequest) {
				t.Fatalf("error not marked as a bad request: %v", gerr)
			}
			return
		}
		if !sameValue(got, want) {
			t.Fatalf("input differs\n got: %v\nwant: %v", got, want)
		}
		// The pruned input agrees with the full one at every read path.
		for _, reads := range fuzzReads {
			pruned, err := envoyInputFor(&req, envoyInputOptions{}, reads.Paths)
			if err != nil {
				t.Fatalf("pruned input failed where the full one did not: %v", err)
			}
			var kf, kp bytes.Buffer
			_ = reads.WriteKey(&kf, got)
			_ = reads.WriteKey(&kp, pruned)
			if !bytes.Equal(kf.Bytes(), kp.Bytes()) {
				t.Fatalf("pruned input differs at %v\npruned: %v", reads.Paths, pruned)
			}
		}
	})
}

// fuzzReads are read sets of the shapes policies produce.
var fuzzReads = func() []*rego.InputReads {
	var out []*rego.InputReads
	for _, set := range [][]string{
		{`input.attributes.request.http.headers["x-user"]`, `input.attributes.request.http.method`, `input.parsed_path[0]`},
		{`input.attributes.request.http.headers`, `input.parsed_query`, `input.parsed_body`, `input.truncated_body`},
		{`input.attributes.metadataContext`, `input.attributes.source.address.socketAddress.portValue`, `input.version.ext_authz`},
		{`input.attributes.request.http.headerMap.headers[0]`, `input.attributes.contextExtensions.a`, `input.attributes.request.time`},
	} {
		r := &rego.InputReads{}
		for _, p := range set {
			r.Paths = append(r.Paths, ast.MustParseRef(p))
		}
		out = append(out, r)
	}
	return out
}()

func BenchmarkEnvoyInput(b *testing.B) {
	req := envoyCheckRequest("GET", "/api/v1/orders/42?expand=items", map[string]string{
		"authorization": "Bearer eyJhbGciOi", "accept": "application/json", "user-agent": "curl/8.5.0",
		"x-forwarded-proto": "https", "x-envoy-expected-rq-timeout-ms": "15000",
	}, "")
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := envoyInput(req, envoyInputOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protojson-roundtrip", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pluginInput(req, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPrunedInputIsEquivalent checks the property envoyInputFor relies on:
// for each policy, the pruned input agrees with the full input at every
// path the policy reads (the cache key bytes are equal) and the policy
// decides the same on both.
func TestPrunedInputIsEquivalent(t *testing.T) {
	policies := []string{
		`allow if input.attributes.request.http.headers["x-user"] == "alice"`,
		`allow if { input.attributes.request.http.method == "POST"; input.parsed_body.quantity < 10; input.parsed_path[0] == "orders" }`,
		`allow if { some k, v in input.attributes.request.http.headers; k == "authorization"; startswith(v, "Bearer ") }`,
		`allow if input.parsed_query.q[1] == "2"`,
		`allow if input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].sub == "alice"`,
		`allow if input.attributes.metadataContext.typedFilterMetadata.frac.numerator == 7`,
		`allow if input.attributes.request.http.headerMap.headers[1].value == "s"`,
		`allow if { input.attributes.source.address.socketAddress.portValue == 0; input.version.ext_authz == "v3" }`,
		`allow if { not input.truncated_body; input.attributes.destination.labels["ünï"] == "cödé" }`,
		`allow if count(input.attributes.request) > 1`,
		`allow if input.attributes.request.http.headers.missing == "x"`,
		`allow if input.attributes.request.http.size.x == 1`,
		`allow if object.get(input, ["parsed_path"], []) == ["v1"]`,
	}
	reqs := []*authv3.CheckRequest{
		kitchenSink(t),
		envoyCheckRequest("GET", "/orders/1?q=1&q=2", map[string]string{"x-user": "alice"}, ""),
		envoyCheckRequest("POST", "/orders", map[string]string{"content-type": "application/json", "authorization": "Bearer t"}, `{"quantity": 3}`),
		envoyCheckRequest("POST", "/orders", map[string]string{"content-type": "application/json", "content-length": "999"}, `{"quantity": 3}`),
	}
	for i, src := range policies {
		t.Run(src, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package envoy.authz\n"+src+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			ps, err := rego.Build(context.Background(), rego.Config{Paths: []string{dir}, DecisionQuery: "data.envoy.authz.allow"})
			if err != nil {
				t.Fatal(err)
			}
			reads, _ := ps.InputReads("data.envoy.authz.allow")
			for j, req := range reqs {
				full, err := envoyInput(req, envoyInputOptions{})
				if err != nil {
					t.Fatal(err)
				}
				pruned, err := envoyInputFor(req, envoyInputOptions{}, reads.Paths)
				if err != nil {
					t.Fatal(err)
				}
				var kf, kp bytes.Buffer
				if err := reads.WriteKey(&kf, full); err != nil {
					t.Fatal(err)
				}
				if err := reads.WriteKey(&kp, pruned); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(kf.Bytes(), kp.Bytes()) {
					t.Fatalf("policy %d request %d: pruned input differs at a read path\npruned: %v", i, j, pruned)
				}
				df, errF := ps.Eval(context.Background(), "data.envoy.authz.allow", full)
				dp, errP := ps.Eval(context.Background(), "data.envoy.authz.allow", pruned)
				if fmt.Sprint(df, errF) != fmt.Sprint(dp, errP) {
					t.Fatalf("policy %d request %d: full input gives %v %v, pruned %v %v", i, j, df, errF, dp, errP)
				}
			}
		})
	}
}

// BenchmarkPluginStyleCheck is the OPA-Envoy plugin's per-request work on
// the same header rule, for comparison with BenchmarkEnvoyCheck: the input
// by protojson round trip, a prepared query, the result read. (The plugin
// also opens a storage transaction and builds a metrics object per
// request, which this leaves out.)
//
//	go test -run '^$' -bench 'BenchmarkPluginStyleCheck' -benchmem -cpu 1 ./service
func BenchmarkPluginStyleCheck(b *testing.B) {
	dir := b.TempDir()
	policy := "package envoy.authz\nimport input.attributes.request.http\ndefault allow := false\nallow if http.headers[\"x-user\"] == \"alice\"\n"
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(policy), 0o644); err != nil {
		b.Fatal(err)
	}
	ps, err := rego.Build(context.Background(), rego.Config{Paths: []string{dir}, DecisionQuery: "data.envoy.authz.allow"})
	if err != nil {
		b.Fatal(err)
	}
	req := envoyCheckRequest("GET", "/api/v1/orders/42?expand=items", map[string]string{"x-user": "alice", "accept": "application/json"}, "")
	b.ReportAllocs()
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	defer func() {
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	}()
	for b.Loop() {
		in, err := pluginInput(req, false)
		if err != nil {
			b.Fatal(err)
		}
		v, err := ps.Eval(context.Background(), "data.envoy.authz.allow", in)
		if err != nil || v != true {
			b.Fatal(v, err)
		}
	}
}
