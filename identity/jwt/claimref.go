package jwt

import (
	"fmt"
	"strings"

	"github.com/valyala/fastjson"
)

// A claim reference in the claim mapping is either a top-level claim name,
// taken literally ("groups", "cognito:groups", "https://example.com/roles"),
// or, when it begins with "/", a JSON pointer (RFC 6901) into the payload:
// "/realm_access/roles" is the roles member of the realm_access object. In a
// pointer "~1" stands for "/" and "~0" for "~", so a top-level claim whose
// name begins with "/" is written "/~1name". Pointers walk objects only;
// an array on the way (or any other non-object) makes the claim absent.
//
// References are compiled once when the provider is built; the request path
// only calls get, which walks the parsed payload without allocating.

// maxPointerSegments bounds the depth of a pointer.
const maxPointerSegments = 32

// claimRef is a compiled claim reference.
type claimRef struct {
	// name is a top-level claim name; used when path is nil.
	name string
	// path holds the unescaped segments of a pointer.
	path []string
}

// parseClaimRef compiles a claim reference. Anything not beginning with
// "/" (even "") is a top-level name, exactly as before pointers existed.
func parseClaimRef(s string) (claimRef, error) {
	if s == "" || s[0] != '/' {
		return claimRef{name: s}, nil
	}
	path, err := parsePointer(s)
	if err != nil {
		return claimRef{}, err
	}
	return claimRef{path: path}, nil
}

// parsePointer parses a non-empty JSON pointer (RFC 6901) into its
// unescaped segments. Segments must be non-empty: an empty member name is
// never a useful claim and usually a typo ("//", trailing "/").
func parsePointer(s string) ([]string, error) {
	if s == "" || s[0] != '/' {
		return nil, fmt.Errorf("pointer %q must begin with /", s)
	}
	raw := strings.Split(s[1:], "/")
	if len(raw) > maxPointerSegments {
		return nil, fmt.Errorf("pointer %q is deeper than %d segments", s, maxPointerSegments)
	}
	path := make([]string, len(raw))
	for i, seg := range raw {
		if seg == "" {
			return nil, fmt.Errorf("pointer %q has an empty segment", s)
		}
		if !strings.Contains(seg, "~") {
			path[i] = seg
			continue
		}
		var b strings.Builder
		for j := 0; j < len(seg); j++ {
			c := seg[j]
			if c != '~' {
				b.WriteByte(c)
				continue
			}
			if j+1 == len(seg) || (seg[j+1] != '0' && seg[j+1] != '1') {
				return nil, fmt.Errorf("pointer %q: ~ must be followed by 0 or 1 (~0 is ~, ~1 is /)", s)
			}
			if seg[j+1] == '0' {
				b.WriteByte('~')
			} else {
				b.WriteByte('/')
			}
			j++
		}
		path[i] = b.String()
	}
	return path, nil
}

// get returns the referenced value, or nil when it is absent.
func (r *claimRef) get(o *fastjson.Object) *fastjson.Value {
	if r.path == nil {
		return o.Get(r.name)
	}
	v := o.Get(r.path[0])
	for _, seg := range r.path[1:] {
		if v == nil || v.Type() != fastjson.TypeObject {
			return nil
		}
		obj, _ := v.Object()
		v = obj.Get(seg)
	}
	return v
}

// copyRef is a compiled claims.copy entry: the value at ref is copied into
// principal.claims under name.
type copyRef struct {
	name string
	ref  claimRef
}

// parseCopyRef compiles a claims.copy entry:
//   - "name" copies the top-level claim under its own name;
//   - "/a/b" copies the value at the pointer under its last segment ("b");
//   - "alias=/a/b" copies it under alias, where alias is a plain name
//     (letters, digits, _ . -, not beginning with a digit, . or -).
//
// Anything else is a top-level claim name, as before.
func parseCopyRef(s string) (copyRef, error) {
	if i := strings.Index(s, "=/"); i > 0 && s[0] != '/' && isAlias(s[:i]) {
		ref, err := parseClaimRef(s[i+1:])
		if err != nil {
			return copyRef{}, err
		}
		return copyRef{name: s[:i], ref: ref}, nil
	}
	ref, err := parseClaimRef(s)
	if err != nil {
		return copyRef{}, err
	}
	name := ref.name
	if ref.path != nil {
		name = ref.path[len(ref.path)-1]
	}
	return copyRef{name: name, ref: ref}, nil
}

func isAlias(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case (c >= '0' && c <= '9') || c == '.' || c == '-':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return s != ""
}

// claimRefs is the compiled claim mapping of one issuer.
type claimRefs struct {
	subject claimRef
	groups  []claimRef
	scopes  []claimRef
	copy    []copyRef
}

// compile compiles m, reporting each bad entry through bad with its key
// (relative to the mapping, e.g. "claims.groups[1]").
func (m ClaimMapping) compile(bad func(key, format string, args ...any)) claimRefs {
	var out claimRefs
	if m.Subject != "" {
		r, err := parseClaimRef(m.Subject)
		if err != nil {
			bad("claims.subject", "%v", err)
		}
		out.subject = r
	}
	list := func(key string, names []string) []claimRef {
		refs := make([]claimRef, 0, len(names))
		for i, n := range names {
			r, err := parseClaimRef(n)
			if err != nil {
				bad(fmt.Sprintf("%s[%d]", key, i), "%v", err)
				continue
			}
			refs = append(refs, r)
		}
		return refs
	}
	out.groups = list("claims.groups", m.Groups)
	out.scopes = list("claims.scopes", m.Scopes)
	out.copy = make([]copyRef, 0, len(m.Copy))
	seen := map[string]int{}
	for i, n := range m.Copy {
		c, err := parseCopyRef(n)
		if err != nil {
			bad(fmt.Sprintf("claims.copy[%d]", i), "%v", err)
			continue
		}
		if j, dup := seen[c.name]; dup {
			if m.Copy[j] == n {
				continue // the same claim listed twice: harmless
			}
			bad(fmt.Sprintf("claims.copy[%d]", i), "%q would be copied under the name %q, already used by claims.copy[%d] (write alias=%s to rename it)", n, c.name, j, n)
			continue
		}
		seen[c.name] = i
		out.copy = append(out.copy, c)
	}
	return out
}
