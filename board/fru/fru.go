package fru

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// ErrChecksum is wrapped by every bad-checksum problem and error.
var ErrChecksum = errors.New("bad checksum")

// formatVersion is the only FRU format version (common header and areas).
const formatVersion = 0x01

// Epoch is the base of the board manufacturing date: minutes since
// 1996-01-01 00:00 UTC (0 = unspecified).
var Epoch = time.Date(1996, 1, 1, 0, 0, 0, 0, time.UTC)

// Chassis is the chassis info area.
type Chassis struct {
	Type         uint8 // SMBIOS chassis type
	PartNumber   Field
	SerialNumber Field
	Custom       []Field
}

// Board is the board info area.
type Board struct {
	Language     uint8
	MfgDate      time.Time // zero: unspecified; minute resolution
	Manufacturer Field
	ProductName  Field
	SerialNumber Field
	PartNumber   Field
	FileID       Field
	Custom       []Field
}

// Product is the product info area.
type Product struct {
	Language     uint8
	Manufacturer Field
	Name         Field
	PartModel    Field
	Version      Field
	SerialNumber Field
	AssetTag     Field
	FileID       Field
	Custom       []Field
}

// MultiRecord is one record of the multi-record area (e.g. 0x00 power
// supply information, 0xC0-0xFF OEM).
type MultiRecord struct {
	Type    uint8
	Version uint8 // record format version, normally 2
	Data    []byte
}

// Info is a decoded FRU image. Nil areas are absent.
type Info struct {
	InternalUse  []byte // the internal-use area after its version byte
	Chassis      *Chassis
	Board        *Board
	Product      *Product
	MultiRecords []MultiRecord
	// Problems lists areas and records left out because their checksum
	// was wrong or they did not fit the image. Each wraps ErrChecksum or
	// describes the structural fault.
	Problems []error
}

// AreaError is a problem with one area of an image.
type AreaError struct {
	Area   string // "chassis", "board", "product", "multi-record", ...
	Offset int    // byte offset in the image
	Err    error
}

func (e *AreaError) Error() string {
	return fmt.Sprintf("FRU %s area at byte %d: %v", e.Area, e.Offset, e.Err)
}

func (e *AreaError) Unwrap() error { return e.Err }

// zeroSum returns the byte that makes b sum to 0 mod 256.
func zeroSum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

// Parse decodes a FRU image. It fails only when the common header is
// unusable (too short, unknown version, bad checksum); faulty areas are
// reported in Info.Problems and left out.
func Parse(data []byte) (*Info, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("FRU image too short: %d bytes, the common header alone is 8", len(data))
	}
	hdr := data[:8]
	if hdr[0]&0x0f != formatVersion {
		return nil, fmt.Errorf("FRU common header: unknown format version %#02x (want 0x01); not a FRU image?", hdr[0])
	}
	if zeroSum(hdr[:7]) != hdr[7] {
		return nil, fmt.Errorf("FRU common header: %w (stored %#02x, computed %#02x)", ErrChecksum, hdr[7], zeroSum(hdr[:7]))
	}
	info := &Info{}
	offs := []int{}
	for i := 1; i <= 5; i++ {
		if hdr[i] != 0 {
			offs = append(offs, int(hdr[i])*8)
		}
	}
	sort.Ints(offs)
	problem := func(area string, off int, err error) {
		info.Problems = append(info.Problems, &AreaError{Area: area, Offset: off, Err: err})
	}
	if off := int(hdr[1]) * 8; off != 0 {
		// The internal-use area has no length byte: it runs to the next
		// area or the end of the image.
		end := len(data)
		for _, o := range offs {
			if o > off {
				end = min(o, end)
				break
			}
		}
		if off >= end || off >= len(data) {
			problem("internal-use", off, fmt.Errorf("starts beyond the image (%d bytes)", len(data)))
		} else {
			info.InternalUse = append([]byte(nil), data[off+1:end]...)
		}
	}
	if off := int(hdr[2]) * 8; off != 0 {
		if a, err := infoArea(data, off); err != nil {
			problem("chassis", off, err)
		} else if c, err := parseChassis(a); err != nil {
			problem("chassis", off, err)
		} else {
			info.Chassis = c
		}
	}
	if off := int(hdr[3]) * 8; off != 0 {
		if a, err := infoArea(data, off); err != nil {
			problem("board", off, err)
		} else if b, err := parseBoard(a); err != nil {
			problem("board", off, err)
		} else {
			info.Board = b
		}
	}
	if off := int(hdr[4]) * 8; off != 0 {
		if a, err := infoArea(data, off); err != nil {
			problem("product", off, err)
		} else if p, err := parseProduct(a); err != nil {
			problem("product", off, err)
		} else {
			info.Product = p
		}
	}
	if off := int(hdr[5]) * 8; off != 0 {
		info.MultiRecords = parseMulti(data, off, problem)
	}
	return info, nil
}

// infoArea returns the whole area at off (version, length ... checksum)
// after checking its bounds and checksum.
func infoArea(data []byte, off int) ([]byte, error) {
	if off+2 > len(data) {
		return nil, fmt.Errorf("starts beyond the image (%d bytes)", len(data))
	}
	if data[off]&0x0f != formatVersion {
		return nil, fmt.Errorf("unknown format version %#02x", data[off])
	}
	n := int(data[off+1]) * 8
	if n < 8 {
		return nil, fmt.Errorf("length %d is too short", n)
	}
	if off+n > len(data) {
		return nil, fmt.Errorf("length %d runs past the image (%d bytes)", n, len(data))
	}
	a := data[off : off+n]
	if s := zeroSum(a[:n-1]); s != a[n-1] {
		return nil, fmt.Errorf("%w (stored %#02x, computed %#02x)", ErrChecksum, a[n-1], s)
	}
	return a, nil
}

// fields reads the fixed fields into dst, then custom fields to the end
// marker.
func fields(a []byte, i int, dst ...*Field) ([]Field, error) {
	var custom []Field
	end := len(a) - 1 // the checksum byte
	for k := 0; ; k++ {
		f, next, last, err := readField(a[:end], i)
		if err != nil {
			return nil, err
		}
		if last {
			// Fixed fields missing before the end marker stay empty
			// (some EEPROMs are written that way; Encode writes them all).
			return custom, nil
		}
		if k < len(dst) {
			*dst[k] = f
		} else {
			custom = append(custom, f)
		}
		i = next
	}
}

func parseChassis(a []byte) (*Chassis, error) {
	if len(a) < 4 {
		return nil, fmt.Errorf("too short")
	}
	c := &Chassis{Type: a[2]}
	custom, err := fields(a, 3, &c.PartNumber, &c.SerialNumber)
	if err != nil {
		return nil, err
	}
	c.Custom = custom
	return c, nil
}

func parseBoard(a []byte) (*Board, error) {
	if len(a) < 7 {
		return nil, fmt.Errorf("too short")
	}
	b := &Board{Language: a[2]}
	if m := uint32(a[3]) | uint32(a[4])<<8 | uint32(a[5])<<16; m != 0 {
		b.MfgDate = Epoch.Add(time.Duration(m) * time.Minute)
	}
	custom, err := fields(a, 6, &b.Manufacturer, &b.ProductName, &b.SerialNumber, &b.PartNumber, &b.FileID)
	if err != nil {
		return nil, err
	}
	b.Custom = custom
	return b, nil
}

func parseProduct(a []byte) (*Product, error) {
	if len(a) < 4 {
		return nil, fmt.Errorf("too short")
	}
	p := &Product{Language: a[2]}
	custom, err := fields(a, 3, &p.Manufacturer, &p.Name, &p.PartModel, &p.Version, &p.SerialNumber, &p.AssetTag, &p.FileID)
	if err != nil {
		return nil, err
	}
	p.Custom = custom
	return p, nil
}

// parseMulti reads the multi-record list at off. A record with a bad
// header stops the walk (its length cannot be trusted); a record with a
// bad data checksum is skipped.
func parseMulti(data []byte, off int, problem func(string, int, error)) []MultiRecord {
	var recs []MultiRecord
	for n := 0; n < 1024; n++ {
		if off+5 > len(data) {
			problem("multi-record", off, fmt.Errorf("record header runs past the image (%d bytes)", len(data)))
			return recs
		}
		h := data[off : off+5]
		if zeroSum(h[:4]) != h[4] {
			problem("multi-record", off, fmt.Errorf("record header: %w", ErrChecksum))
			return recs
		}
		l := int(h[2])
		if off+5+l > len(data) {
			problem("multi-record", off, fmt.Errorf("record of %d bytes runs past the image", l))
			return recs
		}
		d := data[off+5 : off+5+l]
		if zeroSum(d) != h[3] {
			problem("multi-record", off, fmt.Errorf("record type %#02x data: %w", h[0], ErrChecksum))
		} else {
			recs = append(recs, MultiRecord{Type: h[0], Version: h[1] & 0x0f, Data: append([]byte(nil), d...)})
		}
		if h[1]&0x80 != 0 {
			return recs
		}
		off += 5 + l
	}
	problem("multi-record", off, fmt.Errorf("more than 1024 records: no end-of-list mark"))
	return recs
}

// Encode writes info as a FRU image: common header, then the internal-use,
// chassis, board, product and multi-record areas in that order, each info
// area padded to a multiple of 8 bytes and closed by its checksum.
// Info.Problems is ignored.
func Encode(info *Info) ([]byte, error) {
	img := make([]byte, 8)
	img[0] = formatVersion
	place := func(slot int, area []byte, name string) error {
		if len(area) == 0 {
			return nil
		}
		if len(img)/8 > 0xff {
			return fmt.Errorf("FRU %s area: offset %d is beyond the header's reach (2040 bytes)", name, len(img))
		}
		img[slot] = byte(len(img) / 8)
		img = append(img, area...)
		return nil
	}
	if info.InternalUse != nil {
		a := append([]byte{formatVersion}, info.InternalUse...)
		for len(a)%8 != 0 {
			a = append(a, 0)
		}
		if err := place(1, a, "internal-use"); err != nil {
			return nil, err
		}
	}
	if c := info.Chassis; c != nil {
		a, err := encodeArea("chassis", []byte{formatVersion, 0, c.Type}, c.Custom, c.PartNumber, c.SerialNumber)
		if err != nil {
			return nil, err
		}
		if err := place(2, a, "chassis"); err != nil {
			return nil, err
		}
	}
	if b := info.Board; b != nil {
		var mins int64
		if !b.MfgDate.IsZero() {
			mins = int64(b.MfgDate.Sub(Epoch) / time.Minute)
			if mins < 1 || mins > 0xffffff {
				return nil, fmt.Errorf("FRU board area: manufacturing date %s is outside 1996-01-01 .. 2027-11-24", b.MfgDate.UTC().Format(time.RFC3339))
			}
		}
		a, err := encodeArea("board", []byte{formatVersion, 0, b.Language, byte(mins), byte(mins >> 8), byte(mins >> 16)}, b.Custom,
			b.Manufacturer, b.ProductName, b.SerialNumber, b.PartNumber, b.FileID)
		if err != nil {
			return nil, err
		}
		if err := place(3, a, "board"); err != nil {
			return nil, err
		}
	}
	if p := info.Product; p != nil {
		a, err := encodeArea("product", []byte{formatVersion, 0, p.Language}, p.Custom,
			p.Manufacturer, p.Name, p.PartModel, p.Version, p.SerialNumber, p.AssetTag, p.FileID)
		if err != nil {
			return nil, err
		}
		if err := place(4, a, "product"); err != nil {
			return nil, err
		}
	}
	if len(info.MultiRecords) > 0 {
		var a []byte
		for i, r := range info.MultiRecords {
			if len(r.Data) > 0xff {
				return nil, fmt.Errorf("FRU multi-record %d: %d bytes, at most 255", i, len(r.Data))
			}
			v := r.Version & 0x0f
			if i == len(info.MultiRecords)-1 {
				v |= 0x80
			}
			h := []byte{r.Type, v, byte(len(r.Data)), zeroSum(r.Data)}
			a = append(append(append(a, h...), zeroSum(h)), r.Data...)
		}
		if err := place(5, a, "multi-record"); err != nil {
			return nil, err
		}
	}
	img[7] = zeroSum(img[:7])
	return img, nil
}

func encodeArea(name string, head []byte, custom []Field, fixed ...Field) ([]byte, error) {
	a := head
	var err error
	for i, f := range append(fixed, custom...) {
		if a, err = f.append(a); err != nil {
			return nil, fmt.Errorf("FRU %s area, field %d: %w", name, i+1, err)
		}
	}
	a = append(a, endOfFields)
	for (len(a)+1)%8 != 0 {
		a = append(a, 0)
	}
	if (len(a)+1)/8 > 0xff {
		return nil, fmt.Errorf("FRU %s area: %d bytes, at most 2040", name, len(a)+1)
	}
	a[1] = byte((len(a) + 1) / 8)
	return append(a, zeroSum(a)), nil
}
