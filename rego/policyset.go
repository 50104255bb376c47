package rego

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/metrics"
	oparego "github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// noMetrics spares every evaluation a fresh metrics registry.
var noMetrics = metrics.NoOp()

// ErrUndefined means the queried rule produced no value for the input.
var ErrUndefined = errors.New("policy decision is undefined")

// PolicySet is one compiled, immutable revision of the policies and data.
type PolicySet struct {
	// Revision is the hex SHA-256 of every module and data document.
	Revision string
	// LoadedAt is when the set was compiled.
	LoadedAt time.Time
	// Files lists the loaded module and data files.
	Files []string
	// BundleRevision is the manifest revision of the bundle the set came
	// from, if the bundle named one. Revision stays the content hash.
	BundleRevision string

	Compiler *ast.Compiler
	Store    storage.Store

	decisionQuery string
	prepared      map[string]*oparego.PreparedEvalQuery
	reads         map[string]*InputReads
	timeout       time.Duration
}

// hidden reports whether a file or directory below a configured path starts
// with a dot. Such entries are skipped: a Kubernetes ConfigMap volume holds
// every file three times (the visible symlink, ..data/ and a timestamped
// ..2026_…/ directory), and loading them all would define each rule thrice.
func hidden(info fs.FileInfo, depth int) bool {
	return depth > 0 && strings.HasPrefix(info.Name(), ".")
}

// isServedFile reports whether a file belongs to the serving set.
func isServedFile(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".rego":
		return !strings.HasSuffix(path, "_test.rego")
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// Build loads, compiles and prepares a policy set from cfg.Paths.
// A compile error names file:line:col and rejects the whole set.
func Build(ctx context.Context, cfg Config) (*PolicySet, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res, err := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		Filtered(cfg.Paths, func(abspath string, info fs.FileInfo, depth int) bool {
			if hidden(info, depth) {
				return true
			}
			return !info.IsDir() && !isServedFile(abspath)
		})
	if err != nil {
		return nil, fmt.Errorf("loading policies: %w", err)
	}
	return buildFromResult(ctx, cfg, res)
}

func buildFromResult(ctx context.Context, cfg Config, res *loader.Result) (*PolicySet, error) {
	modules := make(map[string]sourceModule, len(res.Modules))
	for name, f := range res.Modules {
		modules[name] = sourceModule{Parsed: f.Parsed, Raw: f.Raw}
	}
	return compileSet(ctx, cfg, strings.Join(cfg.Paths, ", "), modules, res.Documents)
}

// sourceModule is one parsed module with the bytes it was parsed from.
type sourceModule struct {
	Parsed *ast.Module
	Raw    []byte
}

// compileSet compiles and prepares a set from modules (by name) and data,
// whatever their source (a directory or a bundle); origin names the source
// in errors.
func compileSet(ctx context.Context, cfg Config, origin string, sources map[string]sourceModule, documents map[string]any) (*PolicySet, error) {
	if len(sources) == 0 {
		return nil, fmt.Errorf("loading policies from %s: no .rego modules found", origin)
	}
	modules := make(map[string]*ast.Module, len(sources))
	h := sha256.New()
	names := make([]string, 0, len(sources))
	for name := range sources {
		names = append(names, name)
	}
	sort.Strings(names)
	var lenbuf [8]byte
	writeField := func(p []byte) {
		binary.BigEndian.PutUint64(lenbuf[:], uint64(len(p)))
		h.Write(lenbuf[:])
		h.Write(p)
	}
	for _, name := range names {
		f := sources[name]
		modules[name] = f.Parsed
		writeField([]byte(filepath.Base(name)))
		writeField(f.Raw)
	}
	// encoding/json sorts map keys, so the data hash is canonical.
	data, err := json.Marshal(documents)
	if err != nil {
		return nil, fmt.Errorf("encoding data documents: %w", err)
	}
	writeField(data)

	compiler := ast.NewCompiler().WithEnablePrintStatements(false)
	compiler.Compile(modules)
	if compiler.Failed() {
		return nil, fmt.Errorf("compiling policies: %w", compiler.Errors)
	}

	store := inmem.NewFromObjectWithOpts(documents, inmem.OptRoundTripOnWrite(false))
	ps := &PolicySet{
		Revision:      hex.EncodeToString(h.Sum(nil))[:16],
		LoadedAt:      time.Now(),
		Files:         names,
		Compiler:      compiler,
		Store:         store,
		decisionQuery: cfg.DecisionQuery,
		prepared:      make(map[string]*oparego.PreparedEvalQuery),
		reads:         make(map[string]*InputReads),
		timeout:       cfg.Timeout,
	}
	for _, q := range append([]string{cfg.DecisionQuery}, cfg.ExtraQueries...) {
		if q == "" || ps.prepared[q] != nil {
			continue
		}
		pq, err := oparego.New(
			oparego.Query(q),
			oparego.Compiler(compiler),
			oparego.Store(store),
		).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("preparing query %s: %w", q, err)
		}
		ps.prepared[q] = &pq
		ps.reads[q] = AnalyzeInputReads(compiler, ast.MustParseRef(q))
	}
	return ps, nil
}

// InputReads returns what query (a prepared query) can read of its input,
// computed once when the set was built; ok is false for a query that was
// not prepared.
func (ps *PolicySet) InputReads(query string) (r *InputReads, ok bool) {
	r, ok = ps.reads[query]
	return r, ok
}

// Eval evaluates query (which must have been prepared: the decision query
// or one of the extra queries) against input. It returns ErrUndefined when
// the query has no result. The evaluation is bounded by the set's timeout
// and by ctx.
func (ps *PolicySet) Eval(ctx context.Context, query string, input ast.Value) (any, error) {
	pq := ps.prepared[query]
	if pq == nil {
		return nil, fmt.Errorf("query %s is not prepared", query)
	}
	if ps.timeout > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > ps.timeout {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, ps.timeout)
			defer cancel()
		}
	}
	rs, err := pq.Eval(ctx, oparego.EvalParsedInput(input), oparego.EvalMetrics(noMetrics))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("evaluating %s: %w", query, ctxErr)
		}
		return nil, fmt.Errorf("evaluating %s: %w", query, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, ErrUndefined
	}
	if len(rs) > 1 {
		return nil, fmt.Errorf("evaluating %s: %d results, want one", query, len(rs))
	}
	return rs[0].Expressions[0].Value, nil
}

// DecisionQuery returns the native decision query of this set.
func (ps *PolicySet) DecisionQuery() string { return ps.decisionQuery }

// Decide evaluates the native decision query and interprets its result.
func (ps *PolicySet) Decide(ctx context.Context, input ast.Value) (Decision, error) {
	v, err := ps.Eval(ctx, ps.decisionQuery, input)
	if err != nil {
		return Decision{}, err
	}
	return ParseDecision(v)
}

// signature summarises the files under paths (name, size, mtime) so a
// watcher can tell cheaply whether anything changed.
func signature(paths []string) (string, error) {
	var b bytes.Buffer
	for _, root := range paths {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			// Stat through symlinks: a ConfigMap update swaps the target of
			// a symlink whose own metadata does not change.
			info, err := os.Stat(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s\x00%d\x00%d\n", path, info.Size(), info.ModTime().UnixNano())
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// statPaths checks that each configured path exists.
func statPaths(paths []string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("policy.paths: %w", err)
		}
	}
	return nil
}
