package pair

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sealer seals replicated values with the pair key, a 32-byte secret both
// modules hold and the witness does not. The slot name is bound in as
// associated data, so a value cannot be replayed into another slot.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a Sealer for a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("pair key: %w", err)
	}
	return &Sealer{aead: a}, nil
}

// LoadKeyFile reads a pair key file: 64 hex digits (and an optional
// newline), mode 0600 or stricter.
func LoadKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("pair key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("pair key %s: mode %v, want 0600 (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pair key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != chacha20poly1305.KeySize {
		return nil, fmt.Errorf("pair key %s: want 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`", path)
	}
	return key, nil
}

func aadFor(slot string) []byte { return []byte("cmcd/pair/v1\x00" + slot) }

// Seal returns nonce || ciphertext of plain for slot.
func (s *Sealer) Seal(slot string, plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, aadFor(slot))
}

// Open reverses Seal; a value sealed under another key or for another
// slot is refused.
func (s *Sealer) Open(slot string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("pair: slot %q: sealed value too short", slot)
	}
	p, err := s.aead.Open(nil, sealed[:n], sealed[n:], aadFor(slot))
	if err != nil {
		return nil, fmt.Errorf("pair: slot %q: value does not open with this module's pair key", slot)
	}
	return p, nil
}
