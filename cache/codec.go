package cache

import (
	"errors"
	"fmt"
)

// ErrUnknownVersion is returned by a Codec for bytes written in a format it
// does not know. The Redis cache treats such entries as misses, so a replica
// running an older or newer format never misreads an entry.
var ErrUnknownVersion = errors.New("cache: unknown value format version")

// Codec turns values into bytes for a shared cache and back. The first byte
// of every encoding is a format version; Unmarshal returns an error wrapping
// ErrUnknownVersion for a version it cannot read. Unmarshal reads bytes a
// cache returned, so it must not trust them: any error is a miss.
type Codec[V any] interface {
	Marshal(v V) ([]byte, error)
	Unmarshal(data []byte) (V, error)
}

// VersionedCodec is a Codec with one format version. Encode appends the
// payload to dst (which already holds the version byte); Decode reads a
// payload without the version byte.
type VersionedCodec[V any] struct {
	Version byte
	Encode  func(dst []byte, v V) ([]byte, error)
	Decode  func(payload []byte) (V, error)
}

var _ Codec[int] = VersionedCodec[int]{}

// Marshal returns the version byte followed by the payload.
func (c VersionedCodec[V]) Marshal(v V) ([]byte, error) {
	return c.Encode([]byte{c.Version}, v)
}

// Unmarshal checks the version byte and decodes the payload.
func (c VersionedCodec[V]) Unmarshal(data []byte) (V, error) {
	var zero V
	if len(data) == 0 {
		return zero, fmt.Errorf("%w: empty value", ErrUnknownVersion)
	}
	if data[0] != c.Version {
		return zero, fmt.Errorf("%w: %d (this build reads %d)", ErrUnknownVersion, data[0], c.Version)
	}
	return c.Decode(data[1:])
}
