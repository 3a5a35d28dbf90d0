package redfish

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestCertificateAndTLS(t *testing.T) {
	dir := t.TempDir()
	cert, created, err := EnsureCertificate(dir)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if pk, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pk.Curve != elliptic.P256() {
		t.Fatalf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	again, created, err := EnsureCertificate(dir)
	if err != nil || created || string(again.Certificate[0]) != string(cert.Certificate[0]) {
		t.Fatalf("second start: created=%v err=%v same=%v", created, err, string(again.Certificate[0]) == string(cert.Certificate[0]))
	}
	// Serve over TLS on loopback and check the certificate verifies for 127.0.0.1.
	r := newRig(t)
	srv := &http.Server{Handler: r.srv, TLSConfig: TLSConfig(cert)}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := c.Get("https://" + ln.Addr().String() + "/redfish/v1/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatal(res.Status)
	}
	os.Remove(filepath.Join(dir, CertFile))
	if _, _, err := EnsureCertificate(dir); err == nil {
		t.Fatal("a key without its certificate was accepted")
	}
}
