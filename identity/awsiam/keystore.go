package awsiam

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authzd/authzd/internal/atomicfile"
	"github.com/authzd/authzd/internal/filewatch"
	"gopkg.in/yaml.v3"
)

// ErrKeyNotFound is returned by a KeyStore for an unknown or disabled key.
var ErrKeyNotFound = errors.New("access key not found")

// ServiceKey is a service principal's access key, decrypted.
type ServiceKey struct {
	AccessKeyID string
	// Secret is the plaintext secret access key. It lives in memory only
	// and is never logged (ServiceKey has no String method that shows it).
	Secret []byte
	Caller Caller

	// derived caches the signing key of the last (date, region, service):
	// four HMACs saved on every request of the day.
	derived atomic.Pointer[derivedKey]
}

type derivedKey struct {
	date, region, service string
	key                   []byte
}

// signingKey returns the SigV4 signing key for the scope, cached.
func (k *ServiceKey) signingKey(date, region, service string) []byte {
	if d := k.derived.Load(); d != nil && d.date == date && d.region == region && d.service == service {
		return d.key
	}
	key := signingKey(k.Secret, date, region, service)
	k.derived.Store(&derivedKey{date: date, region: region, service: service, key: key})
	return key
}

// String never shows the secret.
func (k *ServiceKey) String() string {
	return "ServiceKey(" + k.AccessKeyID + ", " + k.Caller.ARN + ")"
}

// GoString never shows the secret.
func (k *ServiceKey) GoString() string { return k.String() }

// KeyStore looks up access keys for direct SigV4 verification. FileStore
// is the embedded implementation; a shared store (Redis) implements the
// same interface and can reuse SecretBox to keep secrets encrypted at rest.
//
// Lookup returns ErrKeyNotFound for unknown or disabled keys and any other
// error when it cannot answer (the request is then denied as unavailable).
type KeyStore interface {
	Lookup(ctx context.Context, accessKeyID string) (*ServiceKey, error)
}

// KeysFile is the on-disk format (YAML):
//
//	keys:
//	  - access_key_id: AKZDQ4M2T7XJ3LPB6WNA
//	    secret: enc:v1:...      # from EncryptSecret / `authzd awsiam add-key`
//	    arn: arn:aws:iam::123456789012:user/orders
//	    disabled: false
type KeysFile struct {
	Keys []KeyEntry `yaml:"keys"`
}

// KeyEntry is one access key in a KeysFile.
type KeyEntry struct {
	AccessKeyID string `yaml:"access_key_id"`
	// Secret is "enc:v1:" + base64(nonce || AES-256-GCM ciphertext), with
	// the access key id as additional data: an entry's secret cannot be
	// moved to another key id.
	Secret   string `yaml:"secret"`
	ARN      string `yaml:"arn"`
	Disabled bool   `yaml:"disabled,omitempty"`
}

const secretPrefix = "enc:v1:"

// SecretBox encrypts and decrypts access key secrets with AES-256-GCM.
type SecretBox struct{ aead cipher.AEAD }

// NewSecretBox takes the 32-byte key (see DecodeEncryptionKey).
func NewSecretBox(key []byte) (*SecretBox, error) {
	if len(key) != 32 {
		return nil, errors.New("encryption key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &SecretBox{aead: aead}, nil
}

func additionalData(accessKeyID string) []byte {
	return []byte("authzd/awsiam/secret/v1\x00" + accessKeyID)
}

// Encrypt seals secret for accessKeyID.
func (b *SecretBox) Encrypt(accessKeyID string, secret []byte) (string, error) {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(secret)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := b.aead.Seal(nonce, nonce, secret, additionalData(accessKeyID))
	return secretPrefix + base64.StdEncoding.EncodeToString(sealed), nil
}

// Decrypt opens a secret sealed for accessKeyID. The error never contains
// the secret.
func (b *SecretBox) Decrypt(accessKeyID, sealed string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, secretPrefix)
	if !ok {
		return nil, errors.New("secret is not encrypted (want enc:v1:...)")
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(raw) < b.aead.NonceSize()+b.aead.Overhead() {
		return nil, errors.New("encrypted secret is malformed")
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], additionalData(accessKeyID))
	if err != nil {
		return nil, errors.New("secret does not decrypt with the configured encryption key")
	}
	return plain, nil
}

// EncryptSecret returns the keys-file form of secret for accessKeyID,
// encrypted with the base64 encryption key (the value of
// sigv4.encryption_key). It backs `authzd awsiam add-key`.
func EncryptSecret(encryptionKey, accessKeyID, secret string) (string, error) {
	key, err := DecodeEncryptionKey(encryptionKey)
	if err != nil {
		return "", fmt.Errorf("encryption key %v", err)
	}
	if !validAccessKeyID(accessKeyID) {
		return "", errors.New("access key id must be 4-128 characters of A-Z, a-z, 0-9, '-' or '_'")
	}
	if secret == "" {
		return "", errors.New("secret is empty")
	}
	box, err := NewSecretBox(key)
	if err != nil {
		return "", err
	}
	return box.Encrypt(accessKeyID, []byte(secret))
}

// NewKeyEntry generates a fresh access key for arn and returns the plaintext
// secret (show it once) and the keys-file entry holding it encrypted.
func NewKeyEntry(encryptionKey, arn string) (entry KeyEntry, secret string, err error) {
	if _, err := ParseCaller(arn, "", ""); err != nil {
		return KeyEntry{}, "", fmt.Errorf("arn: %v", err)
	}
	var id [10]byte
	var sec [30]byte
	if _, err := rand.Read(id[:]); err != nil {
		return KeyEntry{}, "", err
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return KeyEntry{}, "", err
	}
	akid := "AKZD" + base32.StdEncoding.EncodeToString(id[:])
	secret = base64.StdEncoding.EncodeToString(sec[:])
	enc, err := EncryptSecret(encryptionKey, akid, secret)
	if err != nil {
		return KeyEntry{}, "", err
	}
	return KeyEntry{AccessKeyID: akid, Secret: enc, ARN: arn}, secret, nil
}

// MarshalKeyEntries renders entries as a keys-file YAML fragment.
func MarshalKeyEntries(entries ...KeyEntry) ([]byte, error) {
	return yaml.Marshal(KeysFile{Keys: entries})
}

// FileStore is a KeyStore read from a keys file. Reload swaps in a new
// table atomically; lookups never lock.
type FileStore struct {
	path string
	box  *SecretBox
	keys atomic.Pointer[map[string]*ServiceKey]

	mu      sync.Mutex // serialises reloads
	lastSig string
}

var _ KeyStore = (*FileStore)(nil)

// OpenFileStore reads path, decrypting every secret with key (32 bytes).
func OpenFileStore(path string, key []byte) (*FileStore, error) {
	box, err := NewSecretBox(key)
	if err != nil {
		return nil, err
	}
	s := &FileStore{path: path, box: box}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads the file. On error the previous table stays in use.
func (s *FileStore) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sig := filewatch.Signature(s.path)
	raw, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	m, err := parseKeysFile(raw, s.box)
	if err != nil {
		return fmt.Errorf("keys file %s: %w", s.path, err)
	}
	s.keys.Store(&m)
	s.lastSig = sig
	return nil
}

// Watch reloads the file when its modification time or size changes,
// checking every interval, until ctx ends. A file that fails to load is
// logged and the last good keys stay in use.
func (s *FileStore) Watch(ctx context.Context, every time.Duration, log *slog.Logger) {
	filewatch.Every(ctx, every, func() {
		s.mu.Lock()
		changed := filewatch.Signature(s.path) != s.lastSig
		s.mu.Unlock()
		if !changed {
			return
		}
		if err := s.Reload(); err != nil {
			log.Error("aws keys file reload failed; keeping the last good keys", "path", s.path, "error", err)
		} else {
			log.Info("aws keys file reloaded", "path", s.path, "keys", s.Len())
		}
	})
}

// Len returns the number of enabled keys.
func (s *FileStore) Len() int { return len(*s.keys.Load()) }

// Lookup implements KeyStore.
func (s *FileStore) Lookup(_ context.Context, accessKeyID string) (*ServiceKey, error) {
	if k, ok := (*s.keys.Load())[accessKeyID]; ok {
		return k, nil
	}
	return nil, ErrKeyNotFound
}

func parseKeysFile(raw []byte, box *SecretBox) (map[string]*ServiceKey, error) {
	var f KeysFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("not a keys file: %v", err)
	}
	m := make(map[string]*ServiceKey, len(f.Keys))
	seen := make(map[string]bool, len(f.Keys))
	for i, e := range f.Keys {
		where := fmt.Sprintf("keys[%d]", i)
		if !validAccessKeyID(e.AccessKeyID) {
			return nil, fmt.Errorf("%s.access_key_id: must be 4-128 characters of A-Z, a-z, 0-9, '-' or '_'", where)
		}
		if seen[e.AccessKeyID] {
			return nil, fmt.Errorf("%s.access_key_id: %s appears twice", where, e.AccessKeyID)
		}
		seen[e.AccessKeyID] = true
		c, err := ParseCaller(e.ARN, "", "")
		if err != nil {
			return nil, fmt.Errorf("%s.arn: %v", where, err)
		}
		secret, err := box.Decrypt(e.AccessKeyID, e.Secret)
		if err != nil {
			return nil, fmt.Errorf("%s.secret: %v", where, err)
		}
		if e.Disabled {
			continue
		}
		m[e.AccessKeyID] = &ServiceKey{AccessKeyID: e.AccessKeyID, Secret: secret, Caller: c}
	}
	return m, nil
}

// AppendKeyEntry adds e to the keys file at path (creating it, mode 0600),
// keeping the file's comments, and refuses a duplicate access key id. The
// file is replaced atomically; a running server picks it up on its next
// reload check.
func AppendKeyEntry(path string, e KeyEntry) error {
	var doc yaml.Node
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return fmt.Errorf("%s: not a keys file: %v", path, err)
		}
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: not a keys file: top level is not a mapping", path)
	}
	var seq *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "keys" {
			seq = root.Content[i+1]
		}
	}
	if seq == nil {
		seq = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "keys"}, seq)
	}
	if seq.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s: keys is not a list", path)
	}
	for _, n := range seq.Content {
		var existing KeyEntry
		if n.Decode(&existing) == nil && existing.AccessKeyID == e.AccessKeyID {
			return fmt.Errorf("%s: access key %s is already present", path, e.AccessKeyID)
		}
	}
	var item yaml.Node
	if err := item.Encode(e); err != nil {
		return err
	}
	seq.Style = 0 // block style, even if the file said keys: []
	seq.Content = append(seq.Content, &item)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, out, 0o600)
}
