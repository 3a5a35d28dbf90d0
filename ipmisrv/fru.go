package ipmisrv

import (
	"time"

	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
)

// fruEpoch is the zero of the board area's manufacturing date.
var fruEpoch = time.Date(1996, 1, 1, 0, 0, 0, 0, time.UTC)

// fruImage encodes a FRU as FRU inventory data (Platform Management FRU
// Information Storage Definition v1.0): the common header, then the
// chassis, board and product info areas that have any content, each
// padded to a multiple of 8 bytes with its zero checksum. Strings are
// 8-bit ASCII type/length fields (at most 63 bytes).
func fruImage(f board.FRU) []byte {
	field := func(s string) []byte {
		if len(s) > 63 {
			s = s[:63]
		}
		return append([]byte{0xc0 | byte(len(s))}, s...)
	}
	finish := func(a []byte) []byte {
		a = append(a, 0xc1) // end of fields
		for (len(a)+1)%8 != 0 {
			a = append(a, 0)
		}
		a[1] = byte((len(a) + 1) / 8)
		return append(a, zeroSum(a))
	}
	var chassis, brd, prod []byte
	if f.ChassisType != "" || f.ChassisPart != "" || f.ChassisSerial != "" {
		chassis = []byte{0x01, 0, chassisTypeCode(f.ChassisType)}
		chassis = append(chassis, field(f.ChassisPart)...)
		chassis = append(chassis, field(f.ChassisSerial)...)
		chassis = finish(chassis)
	}
	if f.BoardMfg != "" || f.BoardProduct != "" || f.BoardSerial != "" || f.BoardPart != "" {
		var mins uint32
		if f.BoardMfgDate.After(fruEpoch) {
			mins = uint32(f.BoardMfgDate.Sub(fruEpoch) / time.Minute)
		}
		brd = []byte{0x01, 0, 0x19, byte(mins), byte(mins >> 8), byte(mins >> 16)} // language: English
		for _, s := range []string{f.BoardMfg, f.BoardProduct, f.BoardSerial, f.BoardPart, ""} {
			brd = append(brd, field(s)...) // the last is the FRU file ID
		}
		brd = finish(brd)
	}
	if f.ProductMfg != "" || f.ProductName != "" || f.ProductPart != "" || f.ProductVersion != "" ||
		f.ProductSerial != "" || f.AssetTag != "" {
		prod = []byte{0x01, 0, 0x19}
		for _, s := range []string{f.ProductMfg, f.ProductName, f.ProductPart, f.ProductVersion, f.ProductSerial, f.AssetTag, ""} {
			prod = append(prod, field(s)...)
		}
		prod = finish(prod)
	}
	hdr := []byte{0x01, 0, 0, 0, 0, 0, 0}
	off := 1 // in multiples of 8 bytes; the header is the first 8
	for i, area := range [][]byte{chassis, brd, prod} {
		if len(area) == 0 {
			continue
		}
		hdr[2+i] = byte(off)
		off += len(area) / 8
	}
	hdr = append(hdr, zeroSum(hdr))
	img := append(hdr, chassis...)
	img = append(img, brd...)
	return append(img, prod...)
}

// chassisTypeCode maps an SMBIOS chassis type name (as go-ipmi, and so
// the node collector, names them) to its code; 02h (Unknown) otherwise.
func chassisTypeCode(name string) uint8 {
	for c := 1; c < 0x40; c++ {
		if types.ChassisType(c).String() == name {
			return uint8(c)
		}
	}
	return 0x02
}

func zeroSum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}
