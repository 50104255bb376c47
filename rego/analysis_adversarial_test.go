package rego

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// pruneTo keeps only the parts of input under reads, cut before the first
// segment that is not a string, as the service's pruned Envoy input does.
func pruneTo(t *testing.T, input ast.Object, reads *InputReads) ast.Object {
	t.Helper()
	if reads.Whole() {
		return input
	}
	out := ast.NewObject()
	for _, p := range reads.Paths {
		n := 1
		for n < len(p) {
			if _, ok := p[n].Value.(ast.String); !ok {
				break
			}
			n++
		}
		if n == 1 {
			return input
		}
		path := p[1:n]
		v, err := input.Find(path)
		if err != nil {
			continue
		}
		obj := out
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
	return out
}

// TestReadAnalysisCoversEveryConstruct checks, for each way a policy can
// reach the input, that two inputs the policy decides differently get
// different cache keys, and that evaluating on the input pruned to the
// read paths gives the decision the whole input gives.
func TestReadAnalysisCoversEveryConstruct(t *testing.T) {
	cases := []struct {
		name   string
		policy string
		a, b   string // inputs the policy must decide differently
	}{
		{"every", `allow if every x in input.list { x > 0 }`, `{"list": [1, 2]}`, `{"list": [1, -2]}`},
		{"some k, v in", `allow if { some k, v in input.m; k == "a"; v == 1 }`, `{"m": {"a": 1}}`, `{"m": {"a": 2}}`},
		{"walk", `allow if { walk(input.t, [p, v]); v == "x" }`, `{"t": {"q": "x"}}`, `{"t": {"q": "y"}}`},
		{"object.get on input", `allow if object.get(input, ["a", "b"], 0) == 1`, `{"a": {"b": 1}}`, `{"a": {"b": 2}}`},
		{"object.get on a part", `allow if object.get(input.a, "b", 0) == 1`, `{"a": {"b": 1}}`, `{"a": {"b": 2}}`},
		{"json.filter", `allow if json.filter(input, ["a/b"]) == {"a": {"b": 1}}`, `{"a": {"b": 1}}`, `{"a": {"b": 2}}`},
		{"array comprehension", `allow if count([x | some x in input.xs; x == "a"]) == 1`, `{"xs": ["a"]}`, `{"xs": ["b"]}`},
		{"object comprehension", `allow if {k: v | some k, v in input.o}["a"] == 1`, `{"o": {"a": 1}}`, `{"o": {"a": 2}}`},
		{"set comprehension head", `allow if "a" in {input.s | true}`, `{"s": "a"}`, `{"s": "b"}`},
		{"partial set head", "p contains input.a if true\nallow if \"x\" in p", `{"a": "x"}`, `{"a": "y"}`},
		{"partial object key", "p[input.k] := 1\nallow if p.x == 1", `{"k": "x"}`, `{"k": "y"}`},
		{"partial object value", "p[\"x\"] := input.v\nallow if p.x == 1", `{"v": 1}`, `{"v": 2}`},
		{"ref head with input segment", "a.b[input.k].c := 1\nallow if a.b.x.c == 1", `{"k": "x"}`, `{"k": "y"}`},
		{"ref head value", "a.b.c := input.v\nallow if a.b.c == 1", `{"v": 1}`, `{"v": 2}`},
		{"function with input default-less body", "f(x) := y if y := x.q\nallow if f(input.o) == 1", `{"o": {"q": 1}}`, `{"o": {"q": 2}}`},
		{"function reading input itself", "f(x) if input.z == x\nallow if f(1)", `{"z": 1}`, `{"z": 2}`},
		{"function replaced with with", "f(x) := false\ng(x) if input.g == x\nallow if f(1) with f as g", `{"g": 1}`, `{"g": 2}`},
		{"with data value from input", "allow if data.envoy.authz.flag with data.envoy.authz.flag as input.f", `{"f": true}`, `{"f": false}`},
		{"with input replaced by part of input", "p if input.x == 1\nallow if p with input as input.inner", `{"inner": {"x": 1}}`, `{"inner": {"x": 2}}`},
		{"import alias", "import input.attributes.request as req\nallow if req.http.method == \"GET\"", `{"attributes": {"request": {"http": {"method": "GET"}}}}`, `{"attributes": {"request": {"http": {"method": "POST"}}}}`},
		{"import input whole", "import input\nallow if input.a == 1", `{"a": 1}`, `{"a": 2}`},
		{"dynamic data ref to an input rule", "rules.r1 if input.r == 1\nallow if { some n in [\"r1\"]; data.envoy.authz.rules[n] }", `{"r": 1}`, `{"r": 2}`},
		{"data ref by input key", "rules.r1 := true\nallow if data.envoy.authz.rules[input.n]", `{"n": "r1"}`, `{"n": "r2"}`},
		{"data ref with constant string segments", "p if input.q == 1\nallow if data[\"envoy\"][\"authz\"].p", `{"q": 1}`, `{"q": 2}`},
		{"negation", `allow if not input.blocked`, `{}`, `{"blocked": true}`},
		{"input in a nested ref segment", `allow if {"x": 1}[input.k] == 1`, `{"k": "x"}`, `{"k": "y"}`},
		{"template string", `allow if $"{input.u}" == "alice"`, `{"u": "alice"}`, `{"u": "bob"}`},
		{"numeric index", `allow if input.xs[1] == "a"`, `{"xs": ["z", "a"]}`, `{"xs": ["z", "b"]}`},
		{"or in else", "allow := true if input.a == 1 else := input.b", `{"a": 2, "b": true}`, `{"a": 2, "b": false}`},
		{"default function", "default f(_) := false\nf(x) if x == input.w\nallow if f(3)", `{"w": 3}`, `{"w": 4}`},
		{"builtin result on input", `allow if startswith(input.p, "/pub")`, `{"p": "/pub/x"}`, `{"p": "/adm"}`},
		{"array of input refs", `allow if [input.a, input.b] == [1, 2]`, `{"a": 1, "b": 2}`, `{"a": 1, "b": 3}`},
		{"rule referenced by whole package", "allow if { x := data.lib; x.ok }", `{"lib_ok": 1}`, `{"lib_ok": 2}`},
		{"rule in other package through variable package", "allow if { some pkg in [\"lib\"]; data[pkg].ok }", `{"lib_ok": 1}`, `{"lib_ok": 2}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			policy := "package envoy.authz\n" + tc.policy + "\n"
			ps := buildSetFiles(t, map[string]string{"p.rego": policy, "lib.rego": "package lib\nok if input.lib_ok == 1\n"}, "data.envoy.authz.allow")
			r, ok := ps.InputReads("data.envoy.authz.allow")
			if !ok {
				t.Fatal("query not prepared")
			}
			eval := func(in ast.Value) string {
				v, err := ps.Eval(context.Background(), "data.envoy.authz.allow", in)
				if err != nil {
					return "error: " + err.Error()
				}
				return fmt.Sprint(v)
			}
			a := ast.MustParseTerm(tc.a).Value.(ast.Object)
			b := ast.MustParseTerm(tc.b).Value.(ast.Object)
			da, db := eval(a), eval(b)
			if da == db {
				t.Fatalf("test inputs do not tell the policy apart: both %s", da)
			}
			if keyOf(t, r, a) == keyOf(t, r, b) {
				t.Errorf("inputs decided differently (%s, %s) share a key; read paths %s", da, db, strings.Join(pathStrings(r), " "))
			}
			for _, in := range []ast.Object{a, b} {
				if got, want := eval(pruneTo(t, in, r)), eval(in); got != want {
					t.Errorf("pruned input %v decides %s, whole input %s; read paths %s", in, got, want, strings.Join(pathStrings(r), " "))
				}
			}
		})
	}
}

func buildSetFiles(t *testing.T, files map[string]string, queries ...string) *PolicySet {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := Build(context.Background(), Config{Paths: []string{dir}, DecisionQuery: queries[0], ExtraQueries: queries[1:]})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}
