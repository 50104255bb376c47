package rego

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

func writePolicy(t testing.TB, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBuildAndDecide(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "p.rego", `package authzd
import rego.v1
decision := {"allow": input.action in data.allowed, "reasons": ["r"], "ttl_seconds": 5, "headers": {"x-a": "1"}}
`)
	writePolicy(t, dir, "data.json", `{"allowed": ["read"]}`)
	writePolicy(t, dir, "p_test.rego", `package authzd_test
this is not even rego, and must not be served`)
	ps, err := Build(context.Background(), Config{Paths: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := ast.InterfaceToValue(map[string]any{"action": "read"})
	d, err := ps.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow || d.Reasons[0] != "r" || !d.HasTTL || d.TTL != 5*time.Second || d.Headers["x-a"] != "1" {
		t.Fatalf("decision = %+v", d)
	}
	if r, _ := ps.InputReads(DefaultDecisionQuery); r.NonDeterministic {
		t.Error("this policy is deterministic")
	}

	// Same content, same revision; other content, other revision.
	again, _ := Build(context.Background(), Config{Paths: []string{dir}})
	if again.Revision != ps.Revision {
		t.Error("revision must depend on content only")
	}
	writePolicy(t, dir, "data.json", `{"allowed": ["write"]}`)
	changed, _ := Build(context.Background(), Config{Paths: []string{dir}})
	if changed.Revision == ps.Revision {
		t.Error("a data change must change the revision")
	}
}

func TestCompileErrorNamesLocation(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "good.rego", "package authzd\nimport rego.v1\ndecision := true\n")
	writePolicy(t, dir, "bad.rego", "package authzd\nimport rego.v1\n\nx := undefined_function(1)\n")
	_, err := Build(context.Background(), Config{Paths: []string{dir}})
	if err == nil {
		t.Fatal("want a compile error")
	}
	if !strings.Contains(err.Error(), "bad.rego:4:") {
		t.Errorf("error %q must name bad.rego:4:col", err)
	}
	writePolicy(t, dir, "bad.rego", "package authzd\n\ndecision := {\n")
	_, err = Build(context.Background(), Config{Paths: []string{dir}})
	if err == nil || !strings.Contains(err.Error(), "bad.rego:") {
		t.Errorf("parse error %v must name the file", err)
	}
}

func TestNonDeterministicPolicies(t *testing.T) {
	for name, body := range map[string]string{
		"time":   "decision := time.now_ns() > 0",
		"nested": "decision if { f(1) }\nf(x) := y if { y := rand.intn(\"k\", 10) }",
		"http":   `decision if { http.send({"method": "GET", "url": "http://127.0.0.1:1"}) }`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writePolicy(t, dir, "p.rego", "package authzd\nimport rego.v1\n"+body+"\n")
			ps, err := Build(context.Background(), Config{Paths: []string{dir}})
			if err != nil {
				t.Fatal(err)
			}
			if r, _ := ps.InputReads(DefaultDecisionQuery); !r.NonDeterministic {
				t.Error("must be flagged non-deterministic")
			}
		})
	}
}

func TestParseDecision(t *testing.T) {
	bad := []any{nil, "yes", 1, map[string]any{}, map[string]any{"allow": "true"},
		map[string]any{"allow": true, "ttl_seconds": -1}, map[string]any{"allow": true, "headers": []any{}},
		map[string]any{"allow": true, "reasons": 3}}
	for _, v := range bad {
		if _, err := ParseDecision(v); err == nil {
			t.Errorf("ParseDecision(%#v) must fail", v)
		}
	}
	d, err := ParseDecision(map[string]any{"allowed": true, "reasons": "one"})
	if err != nil || !d.Allow || d.Reasons[0] != "one" {
		t.Errorf("got %+v %v", d, err)
	}
	d, err = ParseDecision(false)
	if err != nil || d.Allow {
		t.Errorf("got %+v %v", d, err)
	}
}

func TestEngineKeepsLastGoodSet(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "p.rego", "package authzd\nimport rego.v1\ndecision := true\n")
	e, err := NewEngine(Config{Paths: []string{dir}, ReloadInterval: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	swaps := 0
	e.OnSwap(func(*PolicySet) { swaps++ })
	if err := e.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := e.Current()
	writePolicy(t, dir, "p.rego", "package authzd\ndecision := \n")
	if err := e.Load(context.Background()); err == nil {
		t.Fatal("want a load error")
	}
	if e.Current() != good || e.LastError() == nil {
		t.Fatal("a failed load must keep the last good set and report the error")
	}
	if swaps != 1 {
		t.Fatalf("swaps = %d, want 1", swaps)
	}
}

func TestStructValueMatchesJSON(t *testing.T) {
	s, _ := structpb.NewStruct(map[string]any{
		"s": "x", "n": 42, "f": 1.5, "b": true, "z": nil, "big": 1e21,
		"l": []any{"a", 2, map[string]any{"k": "v"}}, "o": map[string]any{"inner": []any{}},
	})
	got := StructValue(s)
	raw, _ := protojson.Marshal(s)
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	want, _ := ast.InterfaceToValue(doc)
	if got.Compare(want) != 0 {
		t.Fatalf("StructValue = %v, JSON round trip = %v", got, want)
	}
}

func TestRunTests(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "p.rego", "package authzd\nimport rego.v1\ndecision := input.x == 1\n")
	writePolicy(t, dir, "p_test.rego", "package authzd_test\nimport rego.v1\ntest_ok if data.authzd.decision with input as {\"x\": 1}\n")
	var out strings.Builder
	sum, err := RunTests(context.Background(), []string{dir}, &out, false)
	if err != nil || !sum.OK() || sum.Passed != 1 {
		t.Fatalf("sum = %+v, err = %v, out = %s", sum, err, out.String())
	}
	writePolicy(t, dir, "p2_test.rego", "package authzd_test\nimport rego.v1\ntest_wrong if data.authzd.decision with input as {\"x\": 2}\n")
	out.Reset()
	sum, err = RunTests(context.Background(), []string{dir}, &out, false)
	if err != nil || sum.OK() || sum.Failed != 1 {
		t.Fatalf("sum = %+v, err = %v", sum, err)
	}
	if !strings.Contains(out.String(), "test_wrong") {
		t.Errorf("report must name the failing test: %s", out.String())
	}
}

// TestConfigMapVolumeLayout loads a directory laid out the way Kubernetes
// mounts a ConfigMap: each file is a symlink into ..data, itself a symlink
// to a timestamped directory. Every rule must load once, and swapping
// ..data (an update) must change the signature the watcher compares.
func TestConfigMapVolumeLayout(t *testing.T) {
	dir := t.TempDir()
	v1 := filepath.Join(dir, "..2026_01_01")
	os.Mkdir(v1, 0o755)
	writePolicy(t, v1, "p.rego", "package authzd\nimport rego.v1\ndefault decision := false\ndecision if input.x == 1\n")
	if err := os.Symlink("..2026_01_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/p.rego", filepath.Join(dir, "p.rego")); err != nil {
		t.Fatal(err)
	}
	ps, err := Build(context.Background(), Config{Paths: []string{dir}})
	if err != nil {
		t.Fatalf("a ConfigMap layout must load (each rule once): %v", err)
	}
	if len(ps.Files) != 1 {
		t.Fatalf("loaded %v, want only the visible p.rego", ps.Files)
	}
	before, _ := signature([]string{dir})

	v2 := filepath.Join(dir, "..2026_01_02")
	os.Mkdir(v2, 0o755)
	writePolicy(t, v2, "p.rego", "package authzd\nimport rego.v1\ndefault decision := false\ndecision if input.x == 2\n")
	tmp := filepath.Join(dir, "..data_tmp")
	os.Symlink("..2026_01_02", tmp)
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(v1)
	after, _ := signature([]string{dir})
	if before == after {
		t.Fatal("swapping ..data must change the signature")
	}
	ps2, err := Build(context.Background(), Config{Paths: []string{dir}})
	if err != nil || ps2.Revision == ps.Revision {
		t.Fatalf("the updated set must load with a new revision: %v", err)
	}
}
