package cache

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

var bytesCodec = VersionedCodec[string]{
	Version: 1,
	Encode:  func(dst []byte, s string) ([]byte, error) { return append(dst, s...), nil },
	Decode: func(p []byte) (string, error) {
		if len(p) == 0 {
			return "", errors.New("empty")
		}
		return string(p), nil
	},
}

// FuzzRedisEnvelope feeds arbitrary bytes stored under a key to the
// envelope decoder: a result is a value with an expiry, or an error (a
// miss), never a panic; and whatever decodes re-encodes to the same bytes.
func FuzzRedisEnvelope(f *testing.F) {
	good := make([]byte, envelopeHeader)
	good[0] = envelopeVersion
	binary.BigEndian.PutUint64(good[1:], uint64(time.Now().Add(time.Hour).UnixMilli()))
	good = append(good, 1, 'v')
	f.Add(good)
	f.Add([]byte{envelopeVersion})
	f.Add([]byte{})
	f.Add([]byte{0x07, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'x'})
	r := NewRedis[string](nil, bytesCodec, RedisOptions[string]{Prefix: "f:", Namespace: "n"})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, exp, err := r.decode(b)
		if err != nil {
			return
		}
		if len(b) < envelopeHeader || b[0] != envelopeVersion || b[envelopeHeader] != bytesCodec.Version {
			t.Fatalf("decoded %q from a value without the envelope and codec versions", v)
		}
		if exp.UnixMilli() != int64(binary.BigEndian.Uint64(b[1:envelopeHeader])) {
			t.Fatal("expiry misread")
		}
		if string(b[envelopeHeader+1:]) != v {
			t.Fatalf("payload %q decoded as %q", b[envelopeHeader+1:], v)
		}
	})
}
