package accounts

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/chacha20poly1305"
)

// Files under the data directory.
const (
	accountsFile = "accounts.json"
	keyFile      = "device.key"
	// InitialPasswordFile holds the generated password of the initial
	// "admin" account (see EnsureInitialAdmin).
	InitialPasswordFile = "initial-admin-password"
	tmpSuffix           = ".tmp"
)

// fileFormat is the value of "format" in accounts.json this code writes and reads.
const fileFormat = 1

// fileData is the whole of accounts.json.
type fileData struct {
	Format     int      `json:"format"`
	Generation uint64   `json:"generation"` // last Version handed out; never goes back
	Accounts   []record `json:"accounts"`   // sorted by UserID
}

// record is one account as stored.
type record struct {
	Username string `json:"username"`
	UserID   uint8  `json:"ipmiUserId"`
	Role     Role   `json:"role"`
	Enabled  bool   `json:"enabled"`
	Version  uint64 `json:"version"`
	Hash     string `json:"bcrypt"` // bcrypt hash of the password
	Secret   string `json:"secret"` // base64(nonce || XChaCha20-Poly1305(password)), see seal
}

// writeFileAtomic replaces dir/name with data, mode 0600, so that after a
// crash at any instant the file holds either its old or its new content:
// write a temporary file, fsync it, rename it over the target, fsync the
// directory. It reports renamed=true once the rename took effect.
func writeFileAtomic(dir, name string, data []byte) (renamed bool, err error) {
	path := filepath.Join(dir, name)
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return false, err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600) // exact mode whatever the umask
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return true, fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeDurably removes dir/name (if present) and syncs the directory.
func removeDurably(dir, name string) error {
	err := os.Remove(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// loadKey reads the device key, creating it when neither it nor an accounts
// file exists. A missing key beside an existing accounts file is an error: a
// fresh key could not decrypt the stored passwords.
func loadKey(dir string, haveAccounts bool) ([]byte, error) {
	path := filepath.Join(dir, keyFile)
	key, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(key) != chacha20poly1305.KeySize {
			return nil, fmt.Errorf("%w: %s holds %d bytes, want %d; restore it from a backup of this data directory",
				ErrCorrupt, path, len(key), chacha20poly1305.KeySize)
		}
		os.Chmod(path, 0o600) // best effort: tighten a key copied in with a wider mode
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read device key: %w", err)
	case haveAccounts:
		return nil, fmt.Errorf("%w: %s is missing but %s exists, so the stored IPMI passwords cannot be decrypted; "+
			"restore the key, or move %s away to start over with a new initial admin",
			ErrCorrupt, path, accountsFile, accountsFile)
	}
	key = make([]byte, chacha20poly1305.KeySize)
	rand.Read(key)
	if _, err := writeFileAtomic(dir, keyFile, key); err != nil {
		return nil, fmt.Errorf("create device key: %w", err)
	}
	return key, nil
}

// seal encrypts a password for the record of user. The user name is bound
// in as associated data, so a secret copied to another account does not open.
func (s *Store) seal(user, password string) string {
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(password)+chacha20poly1305.Overhead)
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(password), aad(user)))
}

// unseal decrypts a secret made by seal.
func (s *Store) unseal(user, secret string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(secret)
	if err != nil || len(b) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, errors.New("malformed secret")
	}
	n := chacha20poly1305.NonceSizeX
	pw, err := s.aead.Open(nil, b[:n], b[n:], aad(user))
	if err != nil {
		return nil, errors.New("secret does not decrypt with device.key")
	}
	return pw, nil
}

func aad(user string) []byte { return []byte("cmcd/accounts/v1\x00" + user) }
