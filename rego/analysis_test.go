package rego

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func compileModules(t *testing.T, modules map[string]string) *ast.Compiler {
	t.Helper()
	parsed := map[string]*ast.Module{}
	for name, src := range modules {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		parsed[name] = m
	}
	c := ast.NewCompiler()
	c.Compile(parsed)
	if c.Failed() {
		t.Fatal(c.Errors)
	}
	return c
}

func pathStrings(r *InputReads) []string {
	var out []string
	for _, p := range r.Paths {
		out = append(out, p.String())
	}
	return out
}

func TestAnalyzeInputReads(t *testing.T) {
	lib := `package lib
is_admin if "admin" in input.principal.groups
method_is(m) if input.attributes.request.http.method == m
unused if input.never.read
`
	cases := []struct {
		name    string
		policy  string
		want    []string
		nondet  bool
		library bool
	}{
		{
			name:   "header rule",
			policy: `allow if input.attributes.request.http.headers["x-user"] == "alice"`,
			want:   []string{`input.attributes.request.http.headers["x-user"]`},
		},
		{
			name: "import alias and default",
			policy: `import input.attributes.request.http as req
default allow := false
allow if { req.method == "GET"; input.parsed_path[0] == "public" }`,
			want: []string{`input.attributes.request.http.method`, `input.parsed_path[0]`},
		},
		{
			name: "dynamic key falls back to the object",
			policy: `names := ["x-a", "x-b"]
allow if { some n in names; input.attributes.request.http.headers[n] == "1" }`,
			want: []string{`input.attributes.request.http.headers`},
		},
		{
			name:   "iteration over an object",
			policy: `allow if { some k, v in input.attributes.request.http.headers; startswith(k, "x-"); v == "1" }`,
			want:   []string{`input.attributes.request.http.headers`},
		},
		{
			name:   "alias of a subtree",
			policy: `allow if { h := input.attributes.request.http; h.method == "GET"; h.headers.host == "a" }`,
			want:   []string{`input.attributes.request.http`},
		},
		{
			name: "function given input whole",
			policy: `f(x) := x.parsed_path
allow if f(input) == ["a"]`,
			want: []string{`input`},
		},
		{
			name: "function given a part",
			policy: `f(x) := x[0]
allow if f(input.parsed_path) == "a"`,
			want: []string{`input.parsed_path`},
		},
		{
			name:   "input as a value",
			policy: `allow if object.get(input, ["parsed_query", "a"], null) == ["1"]`,
			want:   []string{`input`},
		},
		{
			name:   "input indexed by a variable",
			policy: `allow if { some k; input[k] == 1 }`,
			want:   []string{`input`},
		},
		{
			name:    "rules and functions in other packages, transitively",
			policy:  `allow if { data.lib.is_admin; data.lib.method_is("POST") }`,
			want:    []string{`input.attributes.request.http.method`, `input.principal.groups`},
			library: true,
		},
		{
			name:    "whole package object",
			policy:  "allow if { x := data.lib; x.is_admin }",
			want:    []string{`input.attributes.request.http.method`, `input.never.read`, `input.principal.groups`},
			library: true,
		},
		{
			name:    "data ref with an input-dependent segment",
			policy:  `allow if data.lib[input.rule] == true`,
			want:    []string{`input.attributes.request.http.method`, `input.never.read`, `input.principal.groups`, `input.rule`},
			library: true,
		},
		{
			name: "else branches",
			policy: `allow := true if input.a == 1
else := true if input.b == 2
else := false`,
			want: []string{`input.a`, `input.b`},
		},
		{
			name:   "nested and prefix paths collapse",
			policy: `allow if { input.a.b == 1; input.a == {"b": 1}; input.a.c.d == 2 }`,
			want:   []string{`input.a`},
		},
		{
			name: "with: target skipped, value read",
			policy: `p if input.x == 1
allow if p with input.x as input.y`,
			want: []string{`input.x`, `input.y`},
		},
		{
			name:   "comprehension",
			policy: `allow if count([s | some s in input.parsed_path; s != ""]) > 1`,
			want:   []string{`input.parsed_path`},
		},
		{
			name:   "non-deterministic builtin",
			policy: `allow if { time.now_ns() > 0; input.a == 1 }`,
			want:   []string{`input.a`},
			nondet: true,
		},
		{
			name: "non-deterministic builtin in a reached function",
			policy: `f(x) := uuid.rfc4122(x)
allow if f("a") != input.b`,
			want:   []string{`input.b`},
			nondet: true,
		},
		{
			name: "unreached non-deterministic rule",
			policy: `other if http.send({"method": "GET", "url": "http://127.0.0.1:1"})
allow if input.a == 1`,
			want: []string{`input.a`},
		},
		{
			name:   "reads nothing",
			policy: `allow := true`,
			want:   nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mods := map[string]string{"p.rego": "package envoy.authz\n" + tc.policy}
			if tc.library {
				mods["lib.rego"] = lib
			}
			c := compileModules(t, mods)
			r := AnalyzeInputReads(c, ast.MustParseRef("data.envoy.authz.allow"))
			if got := strings.Join(pathStrings(r), " "); got != strings.Join(tc.want, " ") {
				t.Errorf("paths = %s\nwant    %s", got, strings.Join(tc.want, " "))
			}
			if r.NonDeterministic != tc.nondet {
				t.Errorf("NonDeterministic = %v, want %v", r.NonDeterministic, tc.nondet)
			}
		})
	}
}

func TestNonDeterministicBuiltinsAreFlagged(t *testing.T) {
	for _, call := range []string{
		`http.send({"method": "GET", "url": "http://127.0.0.1:1"})`,
		`time.now_ns()`, `rand.intn("k", 10)`, `uuid.rfc4122("k")`,
		`net.lookup_ip_addr("localhost")`,
	} {
		c := compileModules(t, map[string]string{"p.rego": "package envoy.authz\nallow if { x := " + call + "; x != null }"})
		if r := AnalyzeInputReads(c, ast.MustParseRef("data.envoy.authz.allow")); !r.NonDeterministic {
			t.Errorf("%s not flagged as non-deterministic", call)
		}
	}
}

func keyOf(t *testing.T, r *InputReads, input ast.Value) [32]byte {
	t.Helper()
	h := sha256.New()
	if err := r.WriteKey(h, input); err != nil {
		t.Fatal(err)
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func buildSet(t *testing.T, policy string, queries ...string) *PolicySet {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	ps, err := Build(context.Background(), Config{Paths: []string{dir}, DecisionQuery: queries[0], ExtraQueries: queries[1:]})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

const envoyHeaderPolicy = `package envoy.authz

import input.attributes.request.http

default allow := false

allow if {
	http.method == "GET"
	http.headers["x-user"] in data.envoy.authz.users
	input.parsed_path[0] == "api"
}

users := {"alice", "bob"}
`

func baseInput() ast.Value {
	return ast.MustParseTerm(`{
		"attributes": {
			"request": {
				"time": "2026-11-24T05:00:00Z",
				"http": {"id": "1", "method": "GET", "path": "/api/x?a=1",
					"headers": {"x-user": "alice", "x-request-id": "r1", "user-agent": "curl"}}
			},
			"source": {"address": {"socketAddress": {"address": "10.0.0.1", "portValue": 1234}}}
		},
		"parsed_path": ["api", "x"],
		"parsed_query": {"a": ["1"]},
		"parsed_body": null,
		"truncated_body": false
	}`).Value
}

func setAt(t *testing.T, v ast.Value, path string, nv ast.Value) ast.Value {
	t.Helper()
	cp := ast.NewTerm(v).Copy().Value
	ref := ast.MustParseRef("input." + path)[1:]
	parent, err := cp.Find(ref[:len(ref)-1])
	if err != nil {
		t.Fatal(err)
	}
	switch p := parent.(type) {
	case ast.Object:
		p.Insert(ref[len(ref)-1], ast.NewTerm(nv))
	case *ast.Array:
		i, _ := ref[len(ref)-1].Value.(ast.Number).Int()
		p.Set(i, ast.NewTerm(nv))
	default:
		t.Fatalf("cannot set %s", path)
	}
	return cp
}

func TestWriteKeyFollowsReadPaths(t *testing.T) {
	ps := buildSet(t, envoyHeaderPolicy, "data.envoy.authz.allow")
	r, ok := ps.InputReads("data.envoy.authz.allow")
	if !ok {
		t.Fatal("no read paths for the prepared query")
	}
	base := baseInput()
	k0 := keyOf(t, r, base)
	if k0 != keyOf(t, r, ast.NewTerm(base).Copy().Value) {
		t.Fatal("key is not deterministic")
	}
	read := map[string]ast.Value{
		`attributes.request.http.method`:            ast.String("POST"),
		`attributes.request.http.headers["x-user"]`: ast.String("mallory"),
		`parsed_path[0]`:                            ast.String("admin"),
	}
	for p, v := range read {
		if keyOf(t, r, setAt(t, base, p, v)) == k0 {
			t.Errorf("changing read field %s did not change the key", p)
		}
	}
	unread := map[string]ast.Value{
		`attributes.request.http.id`:                      ast.String("2"),
		`attributes.request.time`:                         ast.String("2026-11-24T05:00:01Z"),
		`attributes.request.http.headers["x-request-id"]`: ast.String("r2"),
		`attributes.request.http.headers["user-agent"]`:   ast.String("wget"),
		`attributes.request.http.path`:                    ast.String("/api/x?a=2"),
		`parsed_query.a`:                                  ast.MustParseTerm(`["2"]`).Value,
		`parsed_path[1]`:                                  ast.String("y"),
		`attributes.source.address`:                       ast.MustParseTerm(`{}`).Value,
	}
	for p, v := range unread {
		if keyOf(t, r, setAt(t, base, p, v)) != k0 {
			t.Errorf("changing unread field %s changed the key", p)
		}
	}
	// Absent and present-but-different are different keys.
	noUser := setAt(t, base, `attributes.request.http.headers`, ast.MustParseTerm(`{"x-request-id": "r1"}`).Value)
	if keyOf(t, r, noUser) == k0 {
		t.Error("removing a read header did not change the key")
	}
}

func TestWriteKeyIsCollisionFree(t *testing.T) {
	r := &InputReads{Paths: []ast.Ref{ast.MustParseRef("input.a"), ast.MustParseRef("input.b")}}
	seen := map[[32]byte]string{}
	for _, in := range []string{
		`{"a": "xy", "b": "z"}`, `{"a": "x", "b": "yz"}`, `{"a": ["x", "y"], "b": "z"}`,
		`{"a": "1"}`, `{"a": 1}`, `{"a": 1.0}`, `{"a": true}`, `{"a": "true"}`, `{"a": null}`, `{}`,
		`{"a": {"k": "v"}}`, `{"a": {"kv": ""}}`, `{"a": [["k"], "v"]}`, `{"b": "xy"}`, `{"a": ""}`,
		`{"a": []}`, `{"a": {}}`, `{"a": [null]}`,
	} {
		k := keyOf(t, r, ast.MustParseTerm(in).Value)
		if prev, dup := seen[k]; dup {
			t.Errorf("%s and %s have the same key", prev, in)
		}
		seen[k] = in
	}
	// Object key order in the source does not matter.
	if keyOf(t, r, ast.MustParseTerm(`{"a": {"x": 1, "y": 2}}`).Value) != keyOf(t, r, ast.MustParseTerm(`{"a": {"y": 2, "x": 1}}`).Value) {
		t.Error("object key order changed the key")
	}
}

// TestWriteKeySoundness is the property the cache relies on: whenever two
// inputs get the same key, the policy gives the same decision. Inputs are
// random variations of one request over the fields the policies read and
// do not read; each policy exercises one kind of reference.
func TestWriteKeySoundness(t *testing.T) {
	policies := map[string]string{
		"static": envoyHeaderPolicy,
		"dynamic header name": `package envoy.authz
import input.attributes.request.http
names := ["x-user", "x-team"]
allow if { some n in names; http.headers[n] == "alice" }`,
		"whole object": `package envoy.authz
allow if count(input.attributes.request.http.headers) > 3`,
		"function given input": `package envoy.authz
f(x) := x.attributes.request.http.method
allow if f(input) == "GET"`,
		"iteration": `package envoy.authz
allow if { some k, v in input.attributes.request.http.headers; k == "x-user"; v == "bob" }`,
		"query and body": `package envoy.authz
allow if { input.parsed_query.a[_] == "1"; not input.truncated_body }`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	variant := func() ast.Value {
		headers := fmt.Sprintf(`{"x-user": %q, "x-request-id": %q`, pick("alice", "bob"), pick("r1", "r2", "r3"))
		if rng.IntN(2) == 0 {
			headers += `, "x-team": "alice"`
		}
		if rng.IntN(2) == 0 {
			headers += `, "user-agent": "curl", "accept": "*/*"`
		}
		headers += "}"
		return ast.MustParseTerm(fmt.Sprintf(`{
			"attributes": {"request": {"time": %q, "http": {"id": %q, "method": %q, "headers": %s}}},
			"parsed_path": [%q], "parsed_query": {"a": [%q]}, "truncated_body": %s}`,
			pick("t1", "t2"), pick("1", "2"), pick("GET", "POST"), headers,
			pick("api", "admin"), pick("1", "2"), pick("true", "false"))).Value
	}
	for name, policy := range policies {
		t.Run(name, func(t *testing.T) {
			ps := buildSet(t, policy, "data.envoy.authz.allow")
			r, _ := ps.InputReads("data.envoy.authz.allow")
			decisions := map[[32]byte]string{}
			hits := 0
			for range 300 {
				in := variant()
				v, err := ps.Eval(context.Background(), "data.envoy.authz.allow", in)
				got := fmt.Sprint(v)
				if err != nil {
					got = "undefined"
				}
				k := keyOf(t, r, in)
				if prev, ok := decisions[k]; ok {
					hits++
					if prev != got {
						t.Fatalf("same key, different decisions (%s vs %s) for %v", prev, got, in)
					}
				}
				decisions[k] = got
			}
			if hits == 0 {
				t.Fatalf("no two inputs shared a key; the test exercises nothing (paths %v)", pathStrings(r))
			}
		})
	}
}

func BenchmarkWriteKey(b *testing.B) {
	r := &InputReads{Paths: []ast.Ref{
		ast.MustParseRef(`input.attributes.request.http.headers["x-user"]`),
		ast.MustParseRef(`input.attributes.request.http.method`),
		ast.MustParseRef(`input.parsed_path[0]`),
	}}
	in := baseInput()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		_ = r.WriteKey(&buf, in)
	}
}
