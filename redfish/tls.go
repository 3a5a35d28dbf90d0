package redfish

import (
	"cmcd/internal/durable"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files of the service's TLS identity in the data directory.
const (
	CertFile = "redfish-cert.pem"
	KeyFile  = "redfish-key.pem" // mode 0600
)

// EnsureCertificate loads the TLS certificate and key kept in dir, or, on
// first start (neither file exists), generates a self-signed ECDSA P-256
// certificate valid for 10 years for localhost, the host name and the
// loopback addresses, writes it (key mode 0600, crash-safely) and returns
// it with created=true. A pair where only one file exists, or that does not
// load, is reported, never replaced.
func EnsureCertificate(dir string) (cert tls.Certificate, created bool, err error) {
	cp, kp := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	_, cerr := os.Stat(cp)
	_, kerr := os.Stat(kp)
	if cerr == nil || kerr == nil {
		cert, err = tls.LoadX509KeyPair(cp, kp)
		if err != nil {
			return cert, false, fmt.Errorf("TLS certificate %s / %s: %w (remove both files to generate a new pair)", cp, kp, err)
		}
		return cert, false, nil
	}
	if !errors.Is(cerr, os.ErrNotExist) || !errors.Is(kerr, os.ErrNotExist) {
		return cert, false, fmt.Errorf("TLS certificate in %s: %v %v", dir, cerr, kerr)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return cert, false, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return cert, false, err
	}
	host, _ := os.Hostname()
	names := []string{"localhost"}
	if host != "" && host != "localhost" {
		names = append(names, host)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "cmcd " + firstNonEmpty(host, "localhost"), Organization: []string{"cmcd"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return cert, false, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return cert, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cert, false, err
	}
	if err := durable.WriteFile(kp, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return cert, false, err
	}
	if err := durable.WriteFile(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return cert, false, err
	}
	cert, err = tls.LoadX509KeyPair(cp, kp)
	return cert, err == nil, err
}

// TLSConfig returns the server TLS configuration for cert: TLS 1.2 or
// newer.
func TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}
