package firmware

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestOpenSSLKeys: keys made by OpenSSL sign images this package accepts,
// OpenSSL derives the same public key from our private key file, and
// OpenSSL verifies our manifest signature independently.
func TestOpenSSLKeys(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command("openssl", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
		return out
	}
	key := filepath.Join(dir, "ossl.key")
	pub := filepath.Join(dir, "ossl.pub")
	run("genpkey", "-algorithm", "ed25519", "-out", key)
	run("pkey", "-in", key, "-pubout", "-out", pub)
	ring, err := LoadKeyRing([]string{pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey(readFile(t, key))
	if err != nil {
		t.Fatal(err)
	}
	k := newKit(t)
	img := k.signed("4.0.0", "sim", 10_000, priv)
	f, _ := os.Open(img)
	v, err := Verify(f, Check{Keys: ring, Product: Product, Board: "sim"}, nil, nil)
	f.Close()
	if err != nil {
		t.Fatalf("image signed with an OpenSSL key: %v", err)
	}
	// OpenSSL checks our signature over the manifest.
	msg := filepath.Join(dir, "msg")
	sig := filepath.Join(dir, "sig")
	os.WriteFile(msg, signedMessage(v.Header.ManifestBytes), 0o600)
	os.WriteFile(sig, v.Header.Signatures[0].Sig, 0o600)
	if out := run("pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", msg, "-sigfile", sig); !bytes.Contains(out, []byte("Signature Verified Successfully")) {
		t.Fatalf("openssl: %s", out)
	}
	// Our key files are what OpenSSL expects.
	privPEM, pubPEM, _ := GenerateKey()
	os.WriteFile(filepath.Join(dir, "our.key"), privPEM, 0o600)
	if out := run("pkey", "-in", filepath.Join(dir, "our.key"), "-pubout"); !bytes.Equal(out, pubPEM) {
		t.Fatalf("openssl derives\n%s\nwe wrote\n%s", out, pubPEM)
	}
	// Inline keys: base64 and hex of the raw key, and bad ones named.
	raw := k.pub
	for _, s := range []string{"  " + encodeB64(raw) + "\n", encodeHex(raw), string(pubPEM)} {
		if _, err := LoadKeyRing(nil, []string{s}); err != nil {
			t.Errorf("inline key %q: %v", s, err)
		}
	}
	if _, err := LoadKeyRing(nil, []string{"AAAA"}); err == nil {
		t.Error("bad inline key accepted")
	}
	if _, err := LoadKeyRing([]string{key}, nil); err == nil {
		t.Error("a private key file accepted as a trusted public key")
	}
}
