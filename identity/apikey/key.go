package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"strings"
)

// Prefix starts every key, so leaked keys are easy to find with secret
// scanners.
const Prefix = "azd_"

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

const (
	idBytes     = 10 // 16 base32 characters
	secretBytes = 32 // 52 base32 characters, 256 bits
	idLen       = 16
	secretLen   = 52
	keyLen      = len(Prefix) + idLen + 1 + secretLen
)

// ErrMalformed means the string is not an authzd API key.
var ErrMalformed = errors.New("malformed api key")

// Generate returns a new key and its id.
func Generate() (key, id string, err error) {
	var b [idBytes + secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	id = strings.ToLower(enc.EncodeToString(b[:idBytes]))
	secret := strings.ToLower(enc.EncodeToString(b[idBytes:]))
	return Prefix + id + "_" + secret, id, nil
}

// Parse splits a key into its id. It checks the shape only.
func Parse(key string) (id string, err error) {
	if len(key) != keyLen || !strings.HasPrefix(key, Prefix) || key[len(Prefix)+idLen] != '_' {
		return "", ErrMalformed
	}
	id = key[len(Prefix) : len(Prefix)+idLen]
	for i := len(Prefix); i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7' || c == '_' && i == len(Prefix)+idLen) {
			return "", ErrMalformed
		}
	}
	return id, nil
}

// Hash returns the stored form of a key: "sha256:" and the hex digest.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func decodeHash(h string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	hexPart, ok := strings.CutPrefix(h, "sha256:")
	if !ok || len(hexPart) != 2*sha256.Size {
		return out, errors.New(`hash must be "sha256:" followed by 64 hex characters`)
	}
	if _, err := hex.Decode(out[:], []byte(hexPart)); err != nil {
		return out, errors.New(`hash must be "sha256:" followed by 64 hex characters`)
	}
	return out, nil
}
