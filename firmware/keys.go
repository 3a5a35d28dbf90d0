package firmware

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"sort"
	"strings"
)

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// GenerateKey makes a key pair and returns both in PEM: PKCS#8 "PRIVATE
// KEY" and PKIX "PUBLIC KEY", the formats `openssl genpkey -algorithm
// ed25519` and `openssl pkey -pubout` use.
func GenerateKey() (privPEM, pubPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pk}), nil
}

// ParsePrivateKey reads a PEM PKCS#8 ed25519 private key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("not a PEM \"PRIVATE KEY\" (PKCS#8) block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want ed25519", k)
	}
	return priv, nil
}

// ParsePublicKey reads an ed25519 public key: PEM "PUBLIC KEY" (PKIX), or
// the raw 32 bytes in base64 or hex (for keys written inline in the
// configuration).
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block %q, want \"PUBLIC KEY\"", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, want ed25519", k)
		}
		return pub, nil
	}
	s := strings.TrimSpace(string(b))
	if raw, err := hex.DecodeString(s); err == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	if raw, err := base64.StdEncoding.DecodeString(s); err == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	return nil, fmt.Errorf("not an ed25519 public key (want PEM \"PUBLIC KEY\", or 32 bytes in base64 or hex)")
}

// KeyRing is the set of public keys a board trusts.
type KeyRing struct {
	keys map[string]ed25519.PublicKey
}

// NewKeyRing trusts the given keys.
func NewKeyRing(keys ...ed25519.PublicKey) *KeyRing {
	r := &KeyRing{keys: map[string]ed25519.PublicKey{}}
	for _, k := range keys {
		r.keys[KeyID(k)] = k
	}
	return r
}

// LoadKeyRing reads key files and inline keys; an error names the bad one.
func LoadKeyRing(files, inline []string) (*KeyRing, error) {
	r := NewKeyRing()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("trusted key file: %w", err)
		}
		k, err := ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("trusted key file %s: %w", f, err)
		}
		r.keys[KeyID(k)] = k
	}
	for i, s := range inline {
		k, err := ParsePublicKey([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("trusted key %d (inline): %w", i+1, err)
		}
		r.keys[KeyID(k)] = k
	}
	return r, nil
}

// Len is the number of trusted keys.
func (r *KeyRing) Len() int {
	if r == nil {
		return 0
	}
	return len(r.keys)
}

// IDs lists the trusted key IDs, sorted.
func (r *KeyRing) IDs() []string {
	var out []string
	if r != nil {
		for id := range r.keys {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// lookup returns the trusted key with this public key's ID, if any.
func (r *KeyRing) lookup(pub ed25519.PublicKey) (ed25519.PublicKey, bool) {
	if r == nil {
		return nil, false
	}
	k, ok := r.keys[KeyID(pub)]
	return k, ok && k.Equal(pub)
}
