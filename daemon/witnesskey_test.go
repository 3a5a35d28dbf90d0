package daemon

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"cmcd/pair"
)

// witnessKeyFile writes the witness key derived from the pair key file
// (what `cmcd witness-key` does) next to it and returns its path.
func witnessKeyFile(t testing.TB, pairKeyFile string) string {
	t.Helper()
	k, err := pair.LoadKeyFile(pairKeyFile)
	if err == nil {
		k, err = pair.TransportKey(k)
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(filepath.Dir(pairKeyFile), "witness.key")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
