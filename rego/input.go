package rego

import (
	"math"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/types/known/structpb"
)

// StructValue converts a protobuf Struct to a Rego object without a JSON
// round trip. A nil Struct is an empty object.
func StructValue(s *structpb.Struct) ast.Value {
	if s == nil || len(s.Fields) == 0 {
		return ast.NewObject()
	}
	kvs := make([][2]*ast.Term, 0, len(s.Fields))
	for k, v := range s.Fields {
		kvs = append(kvs, [2]*ast.Term{ast.StringTerm(k), ast.NewTerm(ProtoValue(v))})
	}
	return ast.NewObject(kvs...)
}

// ProtoValue converts one protobuf Value to a Rego value.
func ProtoValue(v *structpb.Value) ast.Value {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return ast.String(k.StringValue)
	case *structpb.Value_BoolValue:
		return ast.Boolean(k.BoolValue)
	case *structpb.Value_NumberValue:
		f := k.NumberValue
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return ast.Null{} // not representable in JSON
		}
		if f == float64(int64(f)) && f < 1<<53 && f > -(1<<53) {
			return ast.Number(strconv.FormatInt(int64(f), 10))
		}
		return ast.Number(strconv.FormatFloat(f, 'g', -1, 64))
	case *structpb.Value_StructValue:
		return StructValue(k.StructValue)
	case *structpb.Value_ListValue:
		vals := k.ListValue.GetValues()
		terms := make([]*ast.Term, len(vals))
		for i, x := range vals {
			terms[i] = ast.NewTerm(ProtoValue(x))
		}
		return ast.NewArray(terms...)
	}
	return ast.Null{}
}

// GoValue converts a JSON-compatible Go value (as found in principal claims)
// to a Rego value. Unsupported types become null.
func GoValue(v any) ast.Value {
	switch x := v.(type) {
	case nil:
		return ast.Null{}
	case string:
		return ast.String(x)
	case bool:
		return ast.Boolean(x)
	case []string:
		terms := make([]*ast.Term, len(x))
		for i, s := range x {
			terms[i] = ast.StringTerm(s)
		}
		return ast.NewArray(terms...)
	}
	val, err := ast.InterfaceToValue(v)
	if err != nil {
		return ast.Null{}
	}
	return val
}
