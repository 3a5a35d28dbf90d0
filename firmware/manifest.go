package firmware

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// FormatVersion is the manifest format this build writes and reads.
const FormatVersion = 1

// Manifest describes an image. Its exact bytes (JSON) are what a signature
// covers; they carry the payload's SHA-256 and size, so a valid signature
// vouches for the payload too.
type Manifest struct {
	Format        int       `json:"format"`
	Product       string    `json:"product"`
	Board         string    `json:"board"`
	Version       string    `json:"version"`
	BuildTime     time.Time `json:"buildTime"`
	PayloadSHA256 string    `json:"payloadSha256"`
	PayloadSize   int64     `json:"payloadSize"`
	Description   string    `json:"description,omitempty"`
}

var (
	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	versionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_~-]{0,63}$`)
)

// Validate checks every field; the error names the field.
func (m Manifest) Validate() error {
	switch {
	case m.Format != FormatVersion:
		return fmt.Errorf("manifest format %d (this build reads format %d)", m.Format, FormatVersion)
	case !nameRe.MatchString(m.Product):
		return fmt.Errorf("manifest product %q: want lower-case letters, digits, '.', '_', '-'", m.Product)
	case !nameRe.MatchString(m.Board):
		return fmt.Errorf("manifest board %q: want lower-case letters, digits, '.', '_', '-'", m.Board)
	case !versionRe.MatchString(m.Version):
		return fmt.Errorf("manifest version %q: want 1-64 letters, digits and . + _ ~ -", m.Version)
	case m.BuildTime.IsZero():
		return fmt.Errorf("manifest buildTime missing")
	case m.PayloadSize <= 0:
		return fmt.Errorf("manifest payloadSize %d: must be positive", m.PayloadSize)
	case len(m.Description) > 1024:
		return fmt.Errorf("manifest description longer than 1024 bytes")
	}
	if d, err := hex.DecodeString(m.PayloadSHA256); err != nil || len(d) != 32 || hex.EncodeToString(d) != m.PayloadSHA256 {
		return fmt.Errorf("manifest payloadSha256 %q: want 64 lower-case hex digits", m.PayloadSHA256)
	}
	return nil
}

// encode returns the canonical manifest bytes.
func (m Manifest) encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	m.BuildTime = m.BuildTime.UTC()
	return json.Marshal(m)
}

// parseManifest decodes manifest bytes strictly (unknown fields refused).
func parseManifest(b []byte) (Manifest, error) {
	var m Manifest
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return m, refuse(ReasonMalformed, "manifest is not valid JSON: %v", err)
	}
	if d.More() {
		return m, refuse(ReasonMalformed, "manifest has bytes after its JSON object")
	}
	if err := m.Validate(); err != nil {
		return m, refuse(ReasonMalformed, "%v", err)
	}
	return m, nil
}
