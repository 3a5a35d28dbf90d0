package pair

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// TransportKeySize is the size of the raft transport key.
const TransportKeySize = 32

// TransportKey derives the raft transport key from the pair key: a
// one-way HKDF-SHA256 derivation, so a voter holding only the transport
// key (the witness) can authenticate on the raft transport but learns
// nothing about the pair key that seals the replicated values.
func TransportKey(pairKey []byte) ([]byte, error) {
	if len(pairKey) != 32 {
		return nil, fmt.Errorf("pair key: %d bytes, want 32", len(pairKey))
	}
	return hkdf.Key(sha256.New, pairKey, []byte("cmcd pair"), "raft transport v1", TransportKeySize)
}

// transportTLS returns the TLS configuration every voter uses on both
// ends of a raft connection. The transport key seeds an Ed25519 key pair
// (HKDF again, so the seed is never the key itself); the voter presents a
// self-signed certificate for it and accepts a peer only if the peer's
// certificate carries the same public key and the peer proved possession
// of the private key in the TLS 1.3 handshake. Both sides are checked
// (RequireAnyClientCert): a connection from anything without the
// credential fails the handshake. There is no CA and nothing to renew; a
// new pair key (and witness key) replaces the credential.
func transportTLS(transportKey []byte) (*tls.Config, error) {
	if len(transportKey) != TransportKeySize {
		return nil, fmt.Errorf("pair: transport key: %d bytes, want %d", len(transportKey), TransportKeySize)
	}
	seed, err := hkdf.Key(sha256.New, transportKey, nil, "raft transport ed25519 identity", ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cmcd pair voter"},
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), // the clock of a CMC can be anything at boot
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"cmcd-pair"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("pair: transport certificate: %w", err)
	}
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) != 1 {
			return errors.New("pair: peer presented no transport credential")
		}
		c, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return fmt.Errorf("pair: peer credential: %w", err)
		}
		if k, ok := c.PublicKey.(ed25519.PublicKey); !ok || !bytes.Equal(k, pub) {
			return errors.New("pair: peer does not hold the pair's transport credential")
		}
		return nil
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}},
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequireAnyClientCert,
		// The chain is checked by VerifyPeerCertificate (a pinned key, no
		// CA); Go still verifies the handshake signature with that key.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verify,
		ServerName:            "cmcd-pair",
	}, nil
}
