package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/authzd/authzd/rego"
)

func cmdPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "authzd policy: want a subcommand: test or eval")
		return 2
	}
	switch args[0] {
	case "test":
		return cmdPolicyTest(args[1:], stdout, stderr)
	case "eval":
		return cmdPolicyEval(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "authzd policy: unknown subcommand %q (want test or eval)\n", args[0])
	return 2
}

func cmdPolicyTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "print every test")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "authzd policy test: give one or more policy directories")
		return 2
	}
	sum, err := rego.RunTests(context.Background(), fs.Args(), stdout, *verbose)
	if err != nil {
		fmt.Fprintf(stderr, "authzd policy test: %v\n", err)
		return 2
	}
	if sum.Passed+sum.Failed+sum.Errored == 0 {
		fmt.Fprintln(stderr, "authzd policy test: no tests found (rules named test_*)")
		return 1
	}
	if !sum.OK() {
		return 1
	}
	return 0
}

func cmdPolicyEval(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths multiFlag
	fs.Var(&paths, "policy", "policy directory or file (repeatable)")
	inputPath := fs.String("input", "", `input document as JSON ("-" for stdin)`)
	query := fs.String("query", rego.DefaultDecisionQuery, "query to evaluate")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(paths) == 0 || *inputPath == "" {
		fmt.Fprintln(stderr, "authzd policy eval: --policy and --input are required")
		return 2
	}
	var raw []byte
	var err error
	if *inputPath == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(*inputPath)
	}
	if err != nil {
		fmt.Fprintf(stderr, "authzd policy eval: --input: %v\n", err)
		return 2
	}
	var doc any
	if err := util.UnmarshalJSON(raw, &doc); err != nil {
		fmt.Fprintf(stderr, "authzd policy eval: --input is not JSON: %v\n", err)
		return 2
	}
	input, err := ast.InterfaceToValue(doc)
	if err != nil {
		fmt.Fprintf(stderr, "authzd policy eval: %v\n", err)
		return 2
	}
	ctx := context.Background()
	ps, err := rego.Build(ctx, rego.Config{Paths: paths, DecisionQuery: *query})
	if err != nil {
		fmt.Fprintf(stderr, "authzd policy eval: %v\n", err)
		return 2
	}
	v, err := ps.Eval(ctx, *query, input)
	if err != nil {
		fmt.Fprintf(stderr, "authzd policy eval: %v\n", err)
		return 1
	}
	out, _ := json.MarshalIndent(map[string]any{"revision": ps.Revision, "result": v}, "", "  ")
	fmt.Fprintln(stdout, string(out))
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
