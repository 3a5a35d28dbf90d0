package fru

import (
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Type is the encoding of a field (bits 7:6 of its type/length byte).
type Type uint8

// Field encodings.
const (
	Binary Type = 0 // binary or unspecified
	BCD    Type = 1 // BCD plus: 0-9, space, dash, period
	ASCII6 Type = 2 // 6-bit ASCII, packed: 0x20-0x5F
	Text   Type = 3 // 8-bit: ASCII and Latin-1
)

func (t Type) String() string {
	switch t {
	case Binary:
		return "binary"
	case BCD:
		return "BCD plus"
	case ASCII6:
		return "6-bit ASCII"
	default:
		return "text"
	}
}

// endOfFields is the type/length byte that ends an area's field list.
const endOfFields = 0xc1

// maxFieldLen is the largest field (6 length bits).
const maxFieldLen = 63

// Field is one type/length-prefixed field, with its bytes as stored.
type Field struct {
	Type Type
	Raw  []byte
}

// String decodes the field: text as Latin-1, 6-bit ASCII and BCD plus
// unpacked (6-bit ASCII's padding spaces trimmed), binary as hex.
func (f Field) String() string {
	switch f.Type {
	case Text:
		var b strings.Builder
		for _, c := range f.Raw {
			b.WriteRune(rune(c))
		}
		return b.String()
	case ASCII6:
		return strings.TrimRight(unpack6(f.Raw), " ")
	case BCD:
		var b strings.Builder
		for _, c := range f.Raw {
			b.WriteByte(bcdChars[c>>4])
			b.WriteByte(bcdChars[c&0x0f])
		}
		return b.String()
	default:
		return hex.EncodeToString(f.Raw)
	}
}

// IsEmpty reports whether the field holds no bytes.
func (f Field) IsEmpty() bool { return len(f.Raw) == 0 }

// bcdChars maps BCD plus digits; 0xD-0xF are reserved (shown as '?').
const bcdChars = "0123456789 -.???"

// TextField encodes s as an 8-bit (Latin-1) field. A one-character string
// cannot be stored as 8-bit text (0xC1 is the end-of-fields marker); it is
// stored as 6-bit ASCII when it can be, else refused.
func TextField(s string) (Field, error) {
	var raw []byte
	for i, r := range s {
		if r == utf8.RuneError || r > 0xff {
			return Field{}, fmt.Errorf("FRU text %q: character %d (%q) is not Latin-1", s, i, r)
		}
		raw = append(raw, byte(r))
	}
	if len(raw) > maxFieldLen {
		return Field{}, fmt.Errorf("FRU text %q: %d bytes, at most %d fit a field", s, len(raw), maxFieldLen)
	}
	if len(raw) == 1 {
		f, err := ASCII6Field(s)
		if err != nil {
			return Field{}, fmt.Errorf("FRU text %q: a one-character field must be 6-bit ASCII (0x20-0x5F, no lower case)", s)
		}
		return f, nil
	}
	return Field{Type: Text, Raw: raw}, nil
}

// MustText is TextField for constants; it panics on bad input.
func MustText(s string) Field {
	f, err := TextField(s)
	if err != nil {
		panic(err)
	}
	return f
}

// ASCII6Field packs s (characters 0x20-0x5F: upper case, digits,
// punctuation) as 6-bit ASCII.
func ASCII6Field(s string) (Field, error) {
	codes := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x5f {
			return Field{}, fmt.Errorf("FRU 6-bit ASCII %q: %q at %d is outside 0x20-0x5F", s, c, i)
		}
		codes = append(codes, c-0x20)
	}
	raw := make([]byte, (len(codes)*6+7)/8)
	for i, c := range codes {
		bit := i * 6
		raw[bit/8] |= c << (bit % 8)
		if bit%8 > 2 {
			raw[bit/8+1] |= c >> (8 - bit%8)
		}
	}
	if len(raw) > maxFieldLen {
		return Field{}, fmt.Errorf("FRU 6-bit ASCII %q: %d bytes, at most %d fit a field", s, len(raw), maxFieldLen)
	}
	return Field{Type: ASCII6, Raw: raw}, nil
}

func unpack6(raw []byte) string {
	n := len(raw) * 8 / 6
	b := make([]byte, n)
	for i := range n {
		bit := i * 6
		v := raw[bit/8] >> (bit % 8)
		if bit%8 > 2 && bit/8+1 < len(raw) {
			v |= raw[bit/8+1] << (8 - bit%8)
		}
		b[i] = v&0x3f + 0x20
	}
	return string(b)
}

// BCDField encodes s (digits, space, '-' and '.') as BCD plus; an odd
// length is padded with a space.
func BCDField(s string) (Field, error) {
	if len(s)%2 == 1 {
		s += " "
	}
	raw := make([]byte, len(s)/2)
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(bcdChars[:13], s[i])
		if d < 0 {
			return Field{}, fmt.Errorf("FRU BCD plus %q: %q at %d is not a digit, space, '-' or '.'", s, s[i], i)
		}
		if i%2 == 0 {
			raw[i/2] = byte(d) << 4
		} else {
			raw[i/2] |= byte(d)
		}
	}
	if len(raw) > maxFieldLen {
		return Field{}, fmt.Errorf("FRU BCD plus %q: %d bytes, at most %d fit a field", s, len(raw), maxFieldLen)
	}
	return Field{Type: BCD, Raw: raw}, nil
}

// BinaryField stores b as a binary field.
func BinaryField(b []byte) (Field, error) {
	if len(b) > maxFieldLen {
		return Field{}, fmt.Errorf("FRU binary field: %d bytes, at most %d fit", len(b), maxFieldLen)
	}
	return Field{Type: Binary, Raw: append([]byte(nil), b...)}, nil
}

// append writes the field's type/length byte and bytes.
func (f Field) append(b []byte) ([]byte, error) {
	if len(f.Raw) > maxFieldLen {
		return nil, fmt.Errorf("%d bytes, at most %d fit a field", len(f.Raw), maxFieldLen)
	}
	tl := byte(f.Type)<<6 | byte(len(f.Raw))
	if tl == endOfFields {
		return nil, fmt.Errorf("a one-byte text field would read as the end-of-fields marker 0xC1")
	}
	return append(append(b, tl), f.Raw...), nil
}

// readField reads one field at a[i]; end is true at the end-of-fields
// marker.
func readField(a []byte, i int) (f Field, next int, end bool, err error) {
	if i >= len(a) {
		return f, i, false, fmt.Errorf("field at %d: past the area's end (no end-of-fields marker)", i)
	}
	tl := a[i]
	if tl == endOfFields {
		return f, i + 1, true, nil
	}
	n := int(tl & 0x3f)
	if i+1+n > len(a) {
		return f, i, false, fmt.Errorf("field at %d: %d bytes run past the area's end", i, n)
	}
	return Field{Type: Type(tl >> 6), Raw: append([]byte(nil), a[i+1:i+1+n]...)}, i + 1 + n, false, nil
}
