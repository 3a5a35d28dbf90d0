package fru

import (
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
)

// ChassisTypeName is the SMBIOS name of a chassis type code ("Rack Mount
// Chassis" for 0x17), as ipmitool prints it.
func ChassisTypeName(code uint8) string { return types.ChassisType(code).String() }

// ChassisTypeCode maps a name from ChassisTypeName back to its code;
// unknown names give 0x02 (Unknown).
func ChassisTypeCode(name string) uint8 {
	for c := 0; c <= 0xff; c++ {
		if n := types.ChassisType(c).String(); n == name && n != "" {
			return uint8(c)
		}
	}
	return 0x02
}

func str(f Field) string { return strings.TrimSpace(strings.TrimRight(f.String(), "\x00")) }

// ToBoard returns the inventory cmcd keeps from a decoded image; absent (or
// untrusted) areas leave their fields empty.
func ToBoard(info *Info) board.FRU {
	var f board.FRU
	if c := info.Chassis; c != nil {
		f.ChassisType = ChassisTypeName(c.Type)
		f.ChassisPart = str(c.PartNumber)
		f.ChassisSerial = str(c.SerialNumber)
	}
	if b := info.Board; b != nil {
		f.BoardMfg = str(b.Manufacturer)
		f.BoardProduct = str(b.ProductName)
		f.BoardSerial = str(b.SerialNumber)
		f.BoardPart = str(b.PartNumber)
		f.BoardMfgDate = b.MfgDate
	}
	if p := info.Product; p != nil {
		f.ProductMfg = str(p.Manufacturer)
		f.ProductName = str(p.Name)
		f.ProductPart = str(p.PartModel)
		f.ProductVersion = str(p.Version)
		f.ProductSerial = str(p.SerialNumber)
		f.AssetTag = str(p.AssetTag)
	}
	return f
}

// FromBoard builds a FRU image description with chassis, board and product
// areas from f; strings are stored as 8-bit text (cut to 63 bytes; a
// one-character value that 6-bit ASCII cannot hold is left empty).
func FromBoard(f board.FRU) *Info {
	t := func(s string) Field {
		if len(s) > maxFieldLen {
			s = s[:maxFieldLen]
		}
		fl, err := TextField(s)
		if err != nil {
			return Field{Type: Text}
		}
		return fl
	}
	info := &Info{
		Chassis: &Chassis{Type: ChassisTypeCode(f.ChassisType), PartNumber: t(f.ChassisPart), SerialNumber: t(f.ChassisSerial)},
		Board: &Board{Manufacturer: t(f.BoardMfg), ProductName: t(f.BoardProduct),
			SerialNumber: t(f.BoardSerial), PartNumber: t(f.BoardPart), FileID: Field{Type: Text}},
		Product: &Product{Manufacturer: t(f.ProductMfg), Name: t(f.ProductName), PartModel: t(f.ProductPart),
			Version: t(f.ProductVersion), SerialNumber: t(f.ProductSerial), AssetTag: t(f.AssetTag), FileID: Field{Type: Text}},
	}
	if m := f.BoardMfgDate.Sub(Epoch) / time.Minute; m >= 1 && m <= 0xffffff {
		info.Board.MfgDate = Epoch.Add(f.BoardMfgDate.Sub(Epoch).Truncate(time.Minute))
	} else {
		info.Board.MfgDate = time.Time{}
	}
	return info
}
