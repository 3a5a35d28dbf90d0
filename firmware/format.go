package firmware

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// The container layout (all integers big-endian):
//
//	offset  size   field
//	0       8      magic "CMCDIMG1"
//	8       4      manifest length M (1..MaxManifest)
//	12      2      signature count S (0..MaxSignatures)
//	14      2      reserved, 0
//	16      M      manifest (JSON, see Manifest)
//	16+M    96*S   signatures: 32-byte ed25519 public key, 64-byte signature
//	               over SignaturePrefix + the M manifest bytes
//	...     P      payload, P = manifest.payloadSize, SHA-256 = manifest.payloadSha256
//
// Everything a verifier needs before the payload (manifest, signatures) is
// at the front, so an image is checked as it streams past: the header is
// verified before a payload byte is read, and the payload is hashed on the
// way through without being held in memory. Signing rewrites only the
// header. On a slot device the image is followed by erased flash; the
// length is known from the header.
const (
	Magic            = "CMCDIMG1"
	MaxManifest      = 16 << 10
	MaxSignatures    = 8
	fixedHeader      = 16
	signatureEntry   = ed25519.PublicKeySize + ed25519.SignatureSize
	SignaturePrefix  = "cmcd firmware manifest v1\x00"
	maxPayloadLength = 1 << 40
)

// Signature is one signature of the manifest.
type Signature struct {
	PublicKey ed25519.PublicKey
	Sig       []byte
}

// Header is the part of an image before the payload.
type Header struct {
	Manifest      Manifest
	ManifestBytes []byte
	Signatures    []Signature
}

// Len is the header's length in bytes.
func (h *Header) Len() int64 {
	return int64(fixedHeader + len(h.ManifestBytes) + signatureEntry*len(h.Signatures))
}

// Size is the whole image's length: header plus payload.
func (h *Header) Size() int64 { return h.Len() + h.Manifest.PayloadSize }

// Marshal encodes the header.
func (h *Header) Marshal() []byte {
	b := make([]byte, 0, h.Len())
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(h.ManifestBytes)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Signatures)))
	b = binary.BigEndian.AppendUint16(b, 0)
	b = append(b, h.ManifestBytes...)
	for _, s := range h.Signatures {
		b = append(b, s.PublicKey...)
		b = append(b, s.Sig...)
	}
	return b
}

func signedMessage(manifest []byte) []byte {
	return append([]byte(SignaturePrefix), manifest...)
}

func readFull(r io.Reader, b []byte, what string, at int64) error {
	n, err := io.ReadFull(r, b)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return refuse(ReasonTruncated, "ends inside the %s (%d of %d bytes at offset %d)", what, n, len(b), at)
	}
	if err != nil {
		return fmt.Errorf("read image %s: %w", what, err)
	}
	return nil
}

// ReadHeader reads and parses the header (no signature check).
func ReadHeader(r io.Reader) (*Header, error) {
	var fixed [fixedHeader]byte
	n, err := io.ReadFull(r, fixed[:])
	if n == 0 && errors.Is(err, io.EOF) {
		return nil, refuse(ReasonTruncated, "the image is empty")
	}
	if n >= len(Magic) && string(fixed[:len(Magic)]) != Magic || n > 0 && n < len(Magic) && !strings.HasPrefix(Magic, string(fixed[:n])) {
		return nil, refuse(ReasonMalformed, "not a cmcd firmware image (no %q magic at the start)", strings.TrimRight(Magic, "1"))
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, refuse(ReasonTruncated, "ends inside the fixed header (%d of %d bytes)", n, fixedHeader)
		}
		return nil, fmt.Errorf("read image header: %w", err)
	}
	m := binary.BigEndian.Uint32(fixed[8:])
	sigs := binary.BigEndian.Uint16(fixed[12:])
	if m == 0 || m > MaxManifest {
		return nil, refuse(ReasonMalformed, "manifest length %d (want 1..%d)", m, MaxManifest)
	}
	if sigs > MaxSignatures {
		return nil, refuse(ReasonMalformed, "%d signatures (at most %d)", sigs, MaxSignatures)
	}
	if binary.BigEndian.Uint16(fixed[14:]) != 0 {
		return nil, refuse(ReasonMalformed, "reserved header field is not zero")
	}
	h := &Header{ManifestBytes: make([]byte, m)}
	if err := readFull(r, h.ManifestBytes, "manifest", fixedHeader); err != nil {
		return nil, err
	}
	man, err := parseManifest(h.ManifestBytes)
	if err != nil {
		return nil, err
	}
	if man.PayloadSize > maxPayloadLength {
		return nil, refuse(ReasonMalformed, "payloadSize %d is absurd", man.PayloadSize)
	}
	h.Manifest = man
	for i := 0; i < int(sigs); i++ {
		e := make([]byte, signatureEntry)
		if err := readFull(r, e, fmt.Sprintf("signature %d", i+1), int64(fixedHeader)+int64(m)+int64(i*signatureEntry)); err != nil {
			return nil, err
		}
		h.Signatures = append(h.Signatures, Signature{PublicKey: ed25519.PublicKey(e[:ed25519.PublicKeySize]), Sig: e[ed25519.PublicKeySize:]})
	}
	return h, nil
}

// VerifySignature checks the signatures against the trusted keys and
// returns the ID of the trusted key whose signature verifies.
func (h *Header) VerifySignature(keys *KeyRing) (string, error) {
	if len(h.Signatures) == 0 {
		return "", refuse(ReasonUnsigned, "the image has no signature (sign it with `cmcd image sign --key FILE`)")
	}
	msg := signedMessage(h.ManifestBytes)
	var unknown, bad []string
	for _, s := range h.Signatures {
		id := KeyID(s.PublicKey)
		if _, ok := keys.lookup(s.PublicKey); !ok {
			unknown = append(unknown, id)
			continue
		}
		if ed25519.Verify(s.PublicKey, msg, s.Sig) {
			return id, nil
		}
		bad = append(bad, id)
	}
	if len(bad) > 0 {
		return "", refuse(ReasonBadSignature, "signature by trusted key %s does not verify", strings.Join(bad, ", "))
	}
	trusted := strings.Join(keys.IDs(), ", ")
	if trusted == "" {
		trusted = "none configured"
	}
	return "", refuse(ReasonUnknownKey, "signed by key %s; trusted keys: %s", strings.Join(unknown, ", "), trusted)
}

// CheckTarget refuses an image built for another product or board.
func (h *Header) CheckTarget(product, board string) error {
	if product != "" && h.Manifest.Product != product {
		return refuse(ReasonWrongProduct, "image product %q, this is %q", h.Manifest.Product, product)
	}
	if board != "" && h.Manifest.Board != board {
		return refuse(ReasonWrongBoard, "image board %q, this board is %q", h.Manifest.Board, board)
	}
	return nil
}

// copyPayload copies exactly the manifest's payload size from r to w,
// hashing it, and checks the digest.
func (h *Header) copyPayload(w io.Writer, r io.Reader, progress func(done int64)) error {
	hs := sha256.New()
	want := h.Manifest.PayloadSize
	buf := make([]byte, 256<<10)
	var done int64
	for done < want {
		n, err := r.Read(buf[:min(int64(len(buf)), want-done)])
		if n > 0 {
			hs.Write(buf[:n])
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			done += int64(n)
			if progress != nil {
				progress(done)
			}
		}
		if errors.Is(err, io.EOF) {
			if done < want {
				return refuse(ReasonTruncated, "payload has %d of %d bytes", done, want)
			}
			break
		}
		if err != nil {
			return fmt.Errorf("read image payload: %w", err)
		}
	}
	if got := hex.EncodeToString(hs.Sum(nil)); got != h.Manifest.PayloadSHA256 {
		return refuse(ReasonCorrupt, "payload SHA-256 %s, manifest says %s", got, h.Manifest.PayloadSHA256)
	}
	return nil
}

func expectEOF(r io.Reader) error {
	var one [4096]byte
	var extra int64
	for {
		n, err := r.Read(one[:])
		extra += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read image: %w", err)
		}
		if extra > 1<<20 {
			break
		}
	}
	if extra > 0 {
		return refuse(ReasonMalformed, "%d or more bytes follow the payload", extra)
	}
	return nil
}

// Check says what a verified image must satisfy.
type Check struct {
	Keys    *KeyRing
	Product string // empty: any
	Board   string // empty: any
	MaxSize int64  // whole image; 0: no limit
	// Trailing allows bytes after the image (a slot device's erased flash).
	Trailing bool
}

// Verified is an image that passed every check.
type Verified struct {
	Header      *Header
	KeyID       string
	Length      int64  // bytes of the whole image
	ImageSHA256 string // digest of those bytes
}

// Progress reports a step of a long operation; Done and Total are bytes.
type Progress struct {
	Phase string `json:"phase"` // receiving, erasing, writing, reading-back, done
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
	// Overall is the whole install's progress, 0..100 (for a Task's
	// PercentComplete); set by Service.
	Overall int `json:"overall"`
}

// Percent is Done/Total as 0..100.
func (p Progress) Percent() int {
	if p.Total <= 0 {
		return 0
	}
	return int(p.Done * 100 / p.Total)
}

// Verify reads a whole image from r, checking in order: structure and
// manifest, signature, product and board, size, payload digest, and that
// nothing follows the payload. Every byte read is also written to sink
// (may be nil), so an upload can be staged as it is verified. The returned
// error is a *RefusedError for an image that is at fault.
func Verify(r io.Reader, c Check, sink io.Writer, progress func(Progress)) (*Verified, error) {
	hs := sha256.New()
	var w io.Writer = hs
	if sink != nil {
		w = io.MultiWriter(hs, sink)
	}
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	id, err := h.VerifySignature(c.Keys)
	if err != nil {
		return nil, err
	}
	if err := h.CheckTarget(c.Product, c.Board); err != nil {
		return nil, err
	}
	if c.MaxSize > 0 && h.Size() > c.MaxSize {
		return nil, refuse(ReasonTooLarge, "image of %d bytes, slot holds %d", h.Size(), c.MaxSize)
	}
	if _, err := w.Write(h.Marshal()); err != nil {
		return nil, err
	}
	total := h.Size()
	err = h.copyPayload(w, r, func(done int64) {
		if progress != nil {
			progress(Progress{Phase: "receiving", Done: h.Len() + done, Total: total})
		}
	})
	if err != nil {
		return nil, err
	}
	if !c.Trailing {
		if err := expectEOF(r); err != nil {
			return nil, err
		}
	}
	return &Verified{Header: h, KeyID: id, Length: total, ImageSHA256: hex.EncodeToString(hs.Sum(nil))}, nil
}

// Build writes an unsigned image of the payload file to w. m's digest and
// size are computed from the file (any given values are replaced).
func Build(w io.Writer, payloadPath string, m Manifest) (*Header, error) {
	f, err := os.Open(payloadPath)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	defer f.Close()
	hs := sha256.New()
	n, err := io.Copy(hs, f)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	m.Format = FormatVersion
	m.PayloadSize = n
	m.PayloadSHA256 = hex.EncodeToString(hs.Sum(nil))
	mb, err := m.encode()
	if err != nil {
		return nil, err
	}
	h := &Header{Manifest: m, ManifestBytes: mb}
	if _, err := w.Write(h.Marshal()); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if err := h.copyPayload(w, f, nil); err != nil {
		return nil, fmt.Errorf("payload file changed while building: %w", err)
	}
	return h, nil
}

// Sign reads an image from r and writes it to w with a signature by priv
// added (replacing an earlier signature by the same key). The payload is
// checked against the manifest on the way: a corrupt image is not signed
// (w then holds a partial image; write to a temporary file).
func Sign(w io.Writer, r io.Reader, priv ed25519.PrivateKey) (*Header, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	sigs := h.Signatures[:0:0]
	for _, s := range h.Signatures {
		if !s.PublicKey.Equal(pub) {
			sigs = append(sigs, s)
		}
	}
	if len(sigs) >= MaxSignatures {
		return nil, fmt.Errorf("the image already has %d signatures", len(sigs))
	}
	h.Signatures = append(sigs, Signature{PublicKey: pub, Sig: ed25519.Sign(priv, signedMessage(h.ManifestBytes))})
	if _, err := w.Write(h.Marshal()); err != nil {
		return nil, err
	}
	if err := h.copyPayload(w, r, nil); err != nil {
		return nil, err
	}
	return h, expectEOF(r)
}

// Report is what Inspect found.
type Report struct {
	Header     *Header
	Signatures []SignatureStatus
	Signature  error // nil: signed by a trusted key
	Target     error // nil: product and board match (or were not given)
	Payload    error // nil: payload complete, digest matches, nothing after it
	Err        error // the header could not be read
}

// SignatureStatus is one signature's status.
type SignatureStatus struct {
	KeyID   string `json:"keyId"`
	Trusted bool   `json:"trusted"`
	Valid   bool   `json:"valid"` // the signature verifies with its key
}

// OK reports whether the image passed every check.
func (r Report) OK() bool {
	return r.Err == nil && r.Signature == nil && r.Target == nil && r.Payload == nil
}

// Inspect reads an image and reports every check separately.
func Inspect(r io.Reader, keys *KeyRing, product, board string) Report {
	h, err := ReadHeader(r)
	if err != nil {
		return Report{Err: err}
	}
	rep := Report{Header: h}
	msg := signedMessage(h.ManifestBytes)
	for _, s := range h.Signatures {
		_, trusted := keys.lookup(s.PublicKey)
		rep.Signatures = append(rep.Signatures, SignatureStatus{KeyID: KeyID(s.PublicKey), Trusted: trusted, Valid: ed25519.Verify(s.PublicKey, msg, s.Sig)})
	}
	_, rep.Signature = h.VerifySignature(keys)
	rep.Target = h.CheckTarget(product, board)
	rep.Payload = h.copyPayload(io.Discard, r, nil)
	if rep.Payload == nil {
		rep.Payload = expectEOF(r)
	}
	return rep
}
