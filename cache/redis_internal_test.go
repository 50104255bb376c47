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
	signed := NewRedis[string](nil, bytesCodec, RedisOptions[string]{Prefix: "f:", Namespace: "n", ValueKey: []byte("0123456789abcdef0123456789abcdef")})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Random bytes never carry a valid MAC.
		if v, _, err := signed.decode("f:n:0:k", b); err == nil {
			t.Fatalf("unsigned bytes %q verified as %q", b, v)
		}
		v, exp, err := r.decode("f:n:0:k", b)
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

// BenchmarkEnvelopeDecode is the CPU cost of reading a stored value without
// the network: envelope, optional HMAC-SHA256 check, codec.
func BenchmarkEnvelopeDecode(b *testing.B) {
	payload := make([]byte, 200) // about the size of a cached decision
	for i := range payload {
		payload[i] = 'x'
	}
	for _, name := range []string{"plain", "signed"} {
		b.Run(name, func(b *testing.B) {
			opts := RedisOptions[string]{Prefix: "f:", Namespace: "n"}
			if name == "signed" {
				opts.ValueKey = []byte("0123456789abcdef0123456789abcdef")
			}
			r := NewRedis[string](nil, bytesCodec, opts)
			k := "f:n:0:" + Key{}.String()
			buf := make([]byte, envelopeHeader)
			buf[0] = envelopeVersion
			binary.BigEndian.PutUint64(buf[1:], uint64(time.Now().Add(time.Hour).UnixMilli()))
			buf = append(buf, 1)
			buf = append(buf, payload...)
			if r.mac != nil {
				buf[0] = envelopeSigned
				buf = r.sign(buf, k, buf)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := r.decode(k, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
