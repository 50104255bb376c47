package rego

import (
	"encoding/binary"
	"io"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// InputReads is what a query can read of its input, found by static
// analysis of the compiled policy. Decision cache keys hash only these
// values (see docs/decision-cache.md): two inputs that agree on every path
// here get the same decision from the same revision.
type InputReads struct {
	// Paths are references rooted at input, sorted, none a prefix of
	// another. The decision can depend on the value at each path (the whole
	// subtree) and on whether it exists, and on nothing else of the input.
	// A single path "input" means the whole input.
	Paths []ast.Ref
	// NonDeterministic is true when a rule the query can reach calls a
	// builtin whose result may differ between identical calls (http.send,
	// time.now_ns, rand.intn, uuid.rfc4122, net.lookup_ip_addr, ...).
	NonDeterministic bool
}

// Whole reports whether the decision may depend on the entire input.
func (r *InputReads) Whole() bool {
	return len(r.Paths) == 1 && len(r.Paths[0]) == 1
}

// AnalyzeInputReads finds the input paths that query (a reference such as
// data.envoy.authz.allow) can read under compiler.
//
// It starts from the rules query refers to and follows every rule and
// function they reference, transitively, through the compiler's rule tree.
// In each rule it records each reference to input up to its first
// non-constant segment: input.attributes.request.http.headers["x-user"]
// is recorded as is, while input.attributes.request.http.headers[k] is
// recorded as input.attributes.request.http.headers. input used as a value
// (x := input, f(input), input[k]) records the whole input. Whatever a
// rule derives from an input value (aliases, function parameters,
// comprehensions) comes from a recorded path's subtree, so the result is
// never narrower than what evaluation can observe; it can only be coarser.
// References to data with non-constant segments reach every rule under
// their constant prefix. The target of a with modifier is written, not
// read, and is skipped; its value is analysed like any other term.
func AnalyzeInputReads(c *ast.Compiler, query ast.Ref) *InputReads {
	a := &analyzer{c: c, seen: map[*ast.Rule]bool{}}
	a.vis = ast.NewGenericVisitor(a.visit)
	a.vis.Walk(query)
	for len(a.queue) > 0 {
		r := a.queue[len(a.queue)-1]
		a.queue = a.queue[:len(a.queue)-1]
		a.vis.Walk(r)
	}
	return &InputReads{Paths: minimize(a.paths, a.whole), NonDeterministic: a.nondet}
}

type analyzer struct {
	c      *ast.Compiler
	vis    *ast.GenericVisitor
	seen   map[*ast.Rule]bool
	queue  []*ast.Rule
	paths  []ast.Ref
	whole  bool
	nondet bool
}

func (a *analyzer) enqueue(rules []*ast.Rule) {
	for _, r := range rules {
		// Else branches hang off their first rule and are walked with it.
		if !a.seen[r] {
			a.seen[r] = true
			a.queue = append(a.queue, r)
		}
	}
}

func (a *analyzer) visit(x any) bool {
	switch x := x.(type) {
	case *ast.With:
		a.vis.Walk(x.Value)
		return true
	case ast.Var:
		switch {
		case x.Equal(ast.InputRootDocument.Value):
			a.whole = true
		case x.Equal(ast.DefaultRootDocument.Value):
			for _, m := range a.c.Modules {
				a.enqueue(m.Rules)
			}
		}
		return true
	case ast.Call:
		if len(x) > 0 {
			if op, ok := x[0].Value.(ast.Ref); ok {
				a.builtin(op)
			}
		}
		return false
	case *ast.Expr:
		if x.IsCall() {
			a.builtin(x.Operator())
		}
		return false
	case ast.Ref:
		a.ref(x)
		return true
	}
	return false
}

func (a *analyzer) builtin(ref ast.Ref) {
	if b, ok := ast.BuiltinMap[ref.String()]; ok && b.Nondeterministic {
		a.nondet = true
	}
}

func (a *analyzer) ref(ref ast.Ref) {
	if len(ref) == 0 {
		return
	}
	head, isVar := ref[0].Value.(ast.Var)
	n := constPrefix(ref)
	switch {
	case isVar && head.Equal(ast.InputRootDocument.Value):
		if n == 1 {
			a.whole = true
		} else {
			a.paths = append(a.paths, ref[:n].Copy())
		}
	case isVar && head.Equal(ast.DefaultRootDocument.Value):
		// Segments that are not constants become variables, so the rule
		// tree lookup returns every rule they could select.
		dyn := make(ast.Ref, len(ref))
		copy(dyn, ref)
		for i := n; i < len(dyn); i++ {
			if !isConst(dyn[i]) {
				dyn[i] = ast.VarTerm("$dyn")
			}
		}
		a.enqueue(a.c.GetRulesDynamicWithOpts(dyn, ast.RulesOptions{IncludeHiddenModules: true}))
		a.enqueue(a.c.GetRules(ref[:max(n, 1)]))
	case !isVar:
		a.vis.Walk(ref[0])
	}
	// Nested references in the segments (data.roles[input.user]).
	for _, t := range ref[1:] {
		if !isConst(t) {
			a.vis.Walk(t)
		}
	}
}

// constPrefix is the number of leading terms of ref that are the head and
// scalar constants.
func constPrefix(ref ast.Ref) int {
	n := 1
	for n < len(ref) && isConst(ref[n]) {
		n++
	}
	return n
}

func isConst(t *ast.Term) bool {
	switch t.Value.(type) {
	case ast.String, ast.Number, ast.Boolean, ast.Null:
		return true
	}
	return false
}

// minimize sorts paths and drops duplicates and paths under another path.
func minimize(paths []ast.Ref, whole bool) []ast.Ref {
	if whole {
		return []ast.Ref{{ast.InputRootDocument}}
	}
	slices.SortFunc(paths, func(x, y ast.Ref) int { return x.Compare(y) })
	out := paths[:0]
	for _, p := range paths {
		if len(out) > 0 && p.HasPrefix(out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return slices.Clip(out)
}

// WriteKey writes the values of input at r.Paths to w in a canonical,
// collision-free encoding: each path, then either an absent marker or the
// value, every field tagged with its type and length-prefixed, object
// keys in sorted order. input is the whole input document. Equal inputs at
// the read paths write equal bytes; inputs that differ at a read path
// write different bytes.
func (r *InputReads) WriteKey(w io.Writer, input ast.Value) error {
	kw := keyWriter{w: w}
	kw.uvarint('P', uint64(len(r.Paths)))
	for _, p := range r.Paths {
		kw.uvarint('R', uint64(len(p)-1))
		for _, t := range p[1:] {
			kw.value(t.Value)
		}
		v := input
		if len(p) > 1 {
			var err error
			if v, err = input.Find(p[1:]); err != nil {
				v = nil
			}
		}
		if v == nil {
			kw.tag('U')
			continue
		}
		kw.value(v)
	}
	return kw.err
}

type keyWriter struct {
	w       io.Writer
	buf     [1 + binary.MaxVarintLen64]byte
	scratch [256]byte
	err     error
}

func (k *keyWriter) write(p []byte) {
	if k.err == nil {
		_, k.err = k.w.Write(p)
	}
}

func (k *keyWriter) tag(t byte) {
	k.buf[0] = t
	k.write(k.buf[:1])
}

func (k *keyWriter) uvarint(t byte, n uint64) {
	k.buf[0] = t
	m := binary.PutUvarint(k.buf[1:], n)
	k.write(k.buf[:1+m])
}

func (k *keyWriter) str(t byte, s string) {
	k.uvarint(t, uint64(len(s)))
	// Copy through a fixed buffer: hash.Hash has no WriteString, and
	// io.WriteString would allocate for every string.
	for len(s) > 0 && k.err == nil {
		n := copy(k.scratch[:], s)
		k.write(k.scratch[:n])
		s = s[n:]
	}
}

func (k *keyWriter) value(v ast.Value) {
	switch v := v.(type) {
	case ast.Null:
		k.tag('n')
	case ast.Boolean:
		if v {
			k.tag('t')
		} else {
			k.tag('f')
		}
	case ast.Number:
		// Numbers are written as their text: 1 and 1.0 are equal in Rego
		// but hash differently, which only costs a cache hit.
		k.str('N', string(v))
	case ast.String:
		k.str('s', string(v))
	case *ast.Array:
		k.uvarint('a', uint64(v.Len()))
		for i := range v.Len() {
			k.value(v.Elem(i).Value)
		}
	case ast.Object:
		k.uvarint('o', uint64(v.Len()))
		v.Foreach(func(key, val *ast.Term) { // sorted by key
			k.value(key.Value)
			k.value(val.Value)
		})
	case ast.Set:
		sorted := v.Sorted()
		k.uvarint('S', uint64(sorted.Len()))
		for i := range sorted.Len() {
			k.value(sorted.Elem(i).Value)
		}
	default:
		// Not produced by JSON-shaped inputs; still canonical.
		k.str('x', v.String())
	}
}
