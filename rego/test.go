package rego

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestSummary counts the results of a policy test run.
type TestSummary struct {
	Passed, Failed, Errored, Skipped int
}

// OK reports whether every test passed and at least one ran.
func (s TestSummary) OK() bool { return s.Failed == 0 && s.Errored == 0 && s.Passed > 0 }

// RunTests runs the Rego unit tests (rules named test_*) found under paths,
// the way `opa test` does, and writes a report to w.
func RunTests(ctx context.Context, paths []string, w io.Writer, verbose bool) (TestSummary, error) {
	var sum TestSummary
	res, err := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		Filtered(paths, func(abspath string, info fs.FileInfo, depth int) bool {
			if hidden(info, depth) {
				return true
			}
			if info.IsDir() {
				return false
			}
			l := strings.ToLower(abspath)
			return !(strings.HasSuffix(l, ".rego") || strings.HasSuffix(l, ".json") || strings.HasSuffix(l, ".yaml") || strings.HasSuffix(l, ".yml"))
		})
	if err != nil {
		return sum, fmt.Errorf("loading policies: %w", err)
	}
	store, err := res.Store()
	if err != nil {
		return sum, err
	}
	modules := res.ParsedModules()
	compiler := ast.NewCompiler().WithEnablePrintStatements(true)
	txn, err := store.NewTransaction(ctx, storage.TransactionParams{})
	if err != nil {
		return sum, err
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(modules).
		CapturePrintOutput(true).
		RaiseBuiltinErrors(true).
		RunTests(ctx, txn)
	if err != nil {
		return sum, fmt.Errorf("compiling policies: %w", err)
	}
	counted := make(chan *tester.Result)
	go func() {
		defer close(counted)
		for r := range ch {
			switch {
			case r.Skip:
				sum.Skipped++
			case r.Error != nil:
				sum.Errored++
			case r.Fail:
				sum.Failed++
			default:
				sum.Passed++
			}
			counted <- r
		}
	}()
	if err := (tester.PrettyReporter{Output: w, Verbose: verbose, FailureLine: true}).Report(counted); err != nil {
		return sum, err
	}
	return sum, nil
}
