package service

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// protoToValue converts a message into the ast.Value that
// protojson.Marshal followed by a JSON decode with UseNumber and
// ast.InterfaceToValue would produce: JSON field names (lowerCamelCase),
// populated fields only, 64-bit integers as decimal strings, enums by
// name, bytes as padded standard base64, floats with protojson's text
// (NaN and ±Infinity as strings), and the well-known types with their
// JSON mappings (Timestamp as RFC 3339, Duration as "1.5s", Struct,
// Value, ListValue, wrappers, Any with "@type", FieldMask).
//
// The OPA-Envoy plugin builds input.attributes by exactly that round trip
// (envoyauth/request.go: protojson.Marshal(req), util.UnmarshalJSON); doing
// it by reflection skips the JSON text and gives the same values. Where
// protojson refuses a message (invalid UTF-8, a Timestamp out of range, an
// Any whose type is unknown) this returns an error too.
func protoToValue(m protoreflect.Message) (ast.Value, error) {
	return messageValue(m, "")
}

var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

func stringValue(s string) (ast.Value, error) {
	if !utf8.ValidString(s) {
		return nil, errInvalidUTF8
	}
	return ast.String(s), nil
}

// messageValue converts m; typeURL, when set, is written first as "@type"
// (the fields of a message packed in an Any).
func messageValue(m protoreflect.Message, typeURL string) (ast.Value, error) {
	if typeURL == "" {
		if conv := wellKnown(m.Descriptor().FullName()); conv != nil {
			return conv(m)
		}
	}
	obj := ast.NewObjectWithCapacity(m.Descriptor().Fields().Len())
	if typeURL != "" {
		v, err := stringValue(typeURL)
		if err != nil {
			return nil, err
		}
		obj.Insert(ast.StringTerm("@type"), ast.NewTerm(v))
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		var val ast.Value
		val, err = fieldValue(fd, v)
		if err != nil {
			err = fmt.Errorf("%s: %w", fd.FullName(), err)
			return false
		}
		obj.Insert(fieldNameTerm(fd), ast.NewTerm(val))
		return true
	})
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// fieldNames holds one key term per field descriptor: keys are never
// modified once in an object, so every input shares them.
var fieldNames sync.Map // protoreflect.FieldDescriptor -> *ast.Term

func fieldNameTerm(fd protoreflect.FieldDescriptor) *ast.Term {
	if t, ok := fieldNames.Load(fd); ok {
		return t.(*ast.Term)
	}
	t, _ := fieldNames.LoadOrStore(fd, ast.StringTerm(fd.JSONName()))
	return t.(*ast.Term)
}

func fieldValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) (ast.Value, error) {
	switch {
	case fd.IsList():
		l := v.List()
		terms := make([]*ast.Term, l.Len())
		for i := range terms {
			x, err := singularValue(fd, l.Get(i))
			if err != nil {
				return nil, err
			}
			terms[i] = ast.NewTerm(x)
		}
		return ast.NewArray(terms...), nil
	case fd.IsMap():
		mp := v.Map()
		obj := ast.NewObjectWithCapacity(mp.Len())
		vd := fd.MapValue()
		var err error
		mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			var key, val ast.Value
			if key, err = stringValue(k.String()); err != nil {
				return false
			}
			if val, err = singularValue(vd, mv); err != nil {
				return false
			}
			obj.Insert(ast.NewTerm(key), ast.NewTerm(val))
			return true
		})
		if err != nil {
			return nil, err
		}
		return obj, nil
	}
	return singularValue(fd, v)
}

func singularValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) (ast.Value, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return ast.Boolean(v.Bool()), nil
	case protoreflect.StringKind:
		return stringValue(v.String())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return ast.Number(strconv.FormatInt(v.Int(), 10)), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return ast.Number(strconv.FormatUint(v.Uint(), 10)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		// protojson writes 64-bit integers as strings.
		return ast.String(strconv.FormatInt(v.Int(), 10)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return ast.String(strconv.FormatUint(v.Uint(), 10)), nil
	case protoreflect.FloatKind:
		return floatValue(v.Float(), 32), nil
	case protoreflect.DoubleKind:
		return floatValue(v.Float(), 64), nil
	case protoreflect.BytesKind:
		return ast.String(base64.StdEncoding.EncodeToString(v.Bytes())), nil
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			return ast.Null{}, nil
		}
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return ast.String(ev.Name()), nil
		}
		return ast.Number(strconv.FormatInt(int64(v.Enum()), 10)), nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return messageValue(v.Message(), "")
	}
	return nil, fmt.Errorf("unsupported field kind %v", fd.Kind())
}

// floatValue formats like protojson (which follows encoding/json): 'f'
// notation, 'e' below 1e-6 and from 1e21, "e-07" shortened to "e-7".
func floatValue(n float64, bitSize int) ast.Value {
	switch {
	case math.IsNaN(n):
		return ast.String("NaN")
	case math.IsInf(n, +1):
		return ast.String("Infinity")
	case math.IsInf(n, -1):
		return ast.String("-Infinity")
	}
	f := byte('f')
	if abs := math.Abs(n); abs != 0 {
		if bitSize == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bitSize == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			f = 'e'
		}
	}
	var buf [32]byte
	out := strconv.AppendFloat(buf[:0], n, f, -1, bitSize)
	if f == 'e' {
		l := len(out)
		if l >= 4 && out[l-4] == 'e' && out[l-3] == '-' && out[l-2] == '0' {
			out[l-2] = out[l-1]
			out = out[:l-1]
		}
	}
	return ast.Number(out)
}

type wktConverter func(protoreflect.Message) (ast.Value, error)

func wellKnown(name protoreflect.FullName) wktConverter {
	if name.Parent() != "google.protobuf" {
		return nil
	}
	switch name.Name() {
	case "Any":
		return anyValue
	case "Timestamp":
		return timestampValue
	case "Duration":
		return durationValue
	case "BoolValue", "Int32Value", "Int64Value", "UInt32Value", "UInt64Value",
		"FloatValue", "DoubleValue", "StringValue", "BytesValue":
		return wrapperValue
	case "Struct":
		return structValue
	case "ListValue":
		return listValue
	case "Value":
		return knownValue
	case "FieldMask":
		return fieldMaskValue
	case "Empty":
		// Not special in JSON: an Empty inside an Any is {"@type": ...}
		// with no "value", exactly like any other message.
		return nil
	}
	return nil
}

func anyValue(m protoreflect.Message) (ast.Value, error) {
	fds := m.Descriptor().Fields()
	fdType, fdValue := fds.ByNumber(1), fds.ByNumber(2)
	if !m.Has(fdType) {
		if !m.Has(fdValue) {
			return ast.NewObject(), nil
		}
		return nil, errors.New("google.protobuf.Any: type_url is not set")
	}
	typeURL := m.Get(fdType).String()
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
	if err != nil {
		return nil, fmt.Errorf("google.protobuf.Any: unable to resolve %q: %w", typeURL, err)
	}
	em := mt.New()
	if err := (proto.UnmarshalOptions{AllowPartial: true, Resolver: protoregistry.GlobalTypes}).Unmarshal(m.Get(fdValue).Bytes(), em.Interface()); err != nil {
		return nil, fmt.Errorf("google.protobuf.Any: unable to unmarshal %q: %w", typeURL, err)
	}
	if conv := wellKnown(mt.Descriptor().FullName()); conv != nil {
		t, err := stringValue(typeURL)
		if err != nil {
			return nil, err
		}
		v, err := conv(em)
		if err != nil {
			return nil, err
		}
		return ast.NewObject(
			ast.Item(ast.StringTerm("@type"), ast.NewTerm(t)),
			ast.Item(ast.StringTerm("value"), ast.NewTerm(v)),
		), nil
	}
	return messageValue(em, typeURL)
}

const (
	maxTimestampSeconds = 253402300799
	minTimestampSeconds = -62135596800
	maxDurationSeconds  = 315576000000
	secondsInNanos      = 999999999
)

func timestampValue(m protoreflect.Message) (ast.Value, error) {
	fds := m.Descriptor().Fields()
	secs := m.Get(fds.ByNumber(1)).Int()
	nanos := m.Get(fds.ByNumber(2)).Int()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds {
		return nil, fmt.Errorf("google.protobuf.Timestamp: seconds out of range %v", secs)
	}
	if nanos < 0 || nanos > secondsInNanos {
		return nil, fmt.Errorf("google.protobuf.Timestamp: nanos out of range %v", nanos)
	}
	// Like protojson: 0, 3, 6 or 9 fractional digits, then "Z".
	x := time.Unix(secs, nanos).UTC().Format("2006-01-02T15:04:05.000000000")
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, ".000")
	return ast.String(x + "Z"), nil
}

func durationValue(m protoreflect.Message) (ast.Value, error) {
	fds := m.Descriptor().Fields()
	secs := m.Get(fds.ByNumber(1)).Int()
	nanos := m.Get(fds.ByNumber(2)).Int()
	if secs < -maxDurationSeconds || secs > maxDurationSeconds {
		return nil, fmt.Errorf("google.protobuf.Duration: seconds out of range %v", secs)
	}
	if nanos < -secondsInNanos || nanos > secondsInNanos {
		return nil, fmt.Errorf("google.protobuf.Duration: nanos out of range %v", nanos)
	}
	if (secs > 0 && nanos < 0) || (secs < 0 && nanos > 0) {
		return nil, errors.New("google.protobuf.Duration: signs of seconds and nanos do not match")
	}
	sign := ""
	if secs < 0 || nanos < 0 {
		sign, secs, nanos = "-", -secs, -nanos
	}
	x := fmt.Sprintf("%s%d.%09d", sign, secs, nanos)
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, ".000")
	return ast.String(x + "s"), nil
}

func wrapperValue(m protoreflect.Message) (ast.Value, error) {
	fd := m.Descriptor().Fields().ByNumber(1)
	return singularValue(fd, m.Get(fd))
}

func structValue(m protoreflect.Message) (ast.Value, error) {
	fd := m.Descriptor().Fields().ByNumber(1)
	return fieldValue(fd, m.Get(fd))
}

func listValue(m protoreflect.Message) (ast.Value, error) {
	fd := m.Descriptor().Fields().ByNumber(1)
	return fieldValue(fd, m.Get(fd))
}

func knownValue(m protoreflect.Message) (ast.Value, error) {
	od := m.Descriptor().Oneofs().ByName("kind")
	fd := m.WhichOneof(od)
	if fd == nil {
		return nil, errors.New("google.protobuf.Value: none of the oneof fields is set")
	}
	v := m.Get(fd)
	if fd.Number() == 2 { // number_value
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("google.protobuf.Value.number_value: invalid %v value", f)
		}
	}
	return singularValue(fd, v)
}

func fieldMaskValue(m protoreflect.Message) (ast.Value, error) {
	fd := m.Descriptor().Fields().ByNumber(1)
	l := m.Get(fd).List()
	paths := make([]string, 0, l.Len())
	for i := 0; i < l.Len(); i++ {
		s := l.Get(i).String()
		if !protoreflect.FullName(s).IsValid() {
			return nil, fmt.Errorf("google.protobuf.FieldMask.paths contains invalid path: %q", s)
		}
		cc := jsonCamelCase(s)
		if s != jsonSnakeCase(cc) {
			return nil, fmt.Errorf("google.protobuf.FieldMask.paths contains irreversible value %q", s)
		}
		paths = append(paths, cc)
	}
	return ast.String(strings.Join(paths, ",")), nil
}

func jsonCamelCase(s string) string {
	var b []byte
	var wasUnderscore bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' {
			if wasUnderscore && 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			b = append(b, c)
		}
		wasUnderscore = c == '_'
	}
	return string(b)
}

func jsonSnakeCase(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			b = append(b, '_')
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}
