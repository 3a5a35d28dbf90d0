package ipmi

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/storage"
	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
)

// maxFRUSize bounds the FRU device read (the format allows 64 KiB).
const maxFRUSize = 0xffff

// readFRUData reads FRU device id whole, in pieces the BMC accepts.
func (n *node) readFRUData(ctx context.Context, id uint8) ([]byte, error) {
	info := &storage.GetFRUInventoryAreaInfoResponse{}
	if err := n.call(ctx, &storage.GetFRUInventoryAreaInfoRequest{FRUDeviceID: id}, info); err != nil {
		return nil, fmt.Errorf("FRU device %d: inventory area info: %w", id, err)
	}
	size := int(info.AreaSizeBytes)
	if size == 0 || size > maxFRUSize {
		return nil, fmt.Errorf("FRU device %d: bad inventory area size %d", id, size)
	}
	step := 32 // bytes per Read FRU Data; reduced when the BMC refuses it
	if info.DeviceAccessedByWords {
		step = 16 // counts are in words for word-accessed devices
	}
	data := make([]byte, 0, size)
	for len(data) < size {
		want := min(step, size-len(data))
		count := want
		if info.DeviceAccessedByWords {
			count = (want + 1) / 2
		}
		res := &storage.ReadFRUDataResponse{}
		req := &storage.ReadFRUDataRequest{FRUDeviceID: id, ReadOffset: uint16(len(data)), ReadCount: uint8(count)}
		if info.DeviceAccessedByWords {
			req.ReadOffset = uint16(len(data) / 2)
		}
		err := n.call(ctx, req, res)
		if err != nil {
			if cc, ok := completionCode(err); ok && storage.ReadFRUDataLength2Big(types.CompletionCode(cc)) && step > 1 {
				step /= 2
				continue
			}
			return nil, fmt.Errorf("FRU device %d: reading %d bytes at %d: %w", id, want, len(data), err)
		}
		if len(res.Data) == 0 {
			return nil, fmt.Errorf("FRU device %d: BMC returned no data at offset %d", id, len(data))
		}
		data = append(data, res.Data...)
	}
	return data[:size], nil
}

// fruEpoch is the base of the board manufacturing date: minutes since
// 1996-01-01 00:00 UTC.
var fruEpoch = time.Date(1996, 1, 1, 0, 0, 0, 0, time.UTC)

// parseFRU decodes the chassis, board and product areas of an IPMI FRU
// image (Platform Management FRU Information Storage Definition v1.0).
func parseFRU(data []byte) (board.FRU, error) {
	var f board.FRU
	if len(data) < 8 {
		return f, fmt.Errorf("FRU image too short (%d bytes)", len(data))
	}
	if data[0]&0x0f != 0x01 {
		return f, fmt.Errorf("FRU common header: unknown format version %#02x", data[0])
	}
	if checksum(data[:8]) != 0 {
		return f, fmt.Errorf("FRU common header: bad checksum")
	}
	area := func(offset8 byte) ([]byte, error) {
		off := int(offset8) * 8
		if off == 0 {
			return nil, nil
		}
		if off+2 > len(data) {
			return nil, fmt.Errorf("area at %d beyond the image (%d bytes)", off, len(data))
		}
		l := int(data[off+1]) * 8
		if l == 0 || off+l > len(data) {
			return nil, fmt.Errorf("area at %d: bad length %d", off, l)
		}
		a := data[off : off+l]
		if checksum(a) != 0 {
			return nil, fmt.Errorf("area at %d: bad checksum", off)
		}
		return a, nil
	}
	if a, err := area(data[2]); err != nil {
		return f, fmt.Errorf("FRU chassis %w", err)
	} else if a != nil {
		ch := &types.FRUChassisInfoArea{}
		if err := ch.Unpack(a); err != nil {
			return f, fmt.Errorf("FRU chassis area: %w", err)
		}
		f.ChassisType = ch.ChassisType.String()
		f.ChassisPart = fruString(ch.PartNumberTypeLength, ch.PartNumber)
		f.ChassisSerial = fruString(ch.SerialNumberTypeLength, ch.SerialNumber)
	}
	if a, err := area(data[3]); err != nil {
		return f, fmt.Errorf("FRU board %w", err)
	} else if a != nil {
		b := &types.FRUBoardInfoArea{}
		if err := b.Unpack(a); err != nil {
			return f, fmt.Errorf("FRU board area: %w", err)
		}
		f.BoardMfg = fruString(b.ManufacturerTypeLength, b.Manufacturer)
		f.BoardProduct = fruString(b.ProductNameTypeLength, b.ProductName)
		f.BoardSerial = fruString(b.SerialNumberTypeLength, b.SerialNumber)
		f.BoardPart = fruString(b.PartNumberTypeLength, b.PartNumber)
		if m := uint32(a[3]) | uint32(a[4])<<8 | uint32(a[5])<<16; m != 0 {
			f.BoardMfgDate = fruEpoch.Add(time.Duration(m) * time.Minute)
		}
	}
	if a, err := area(data[4]); err != nil {
		return f, fmt.Errorf("FRU product %w", err)
	} else if a != nil {
		p := &types.FRUProductInfoArea{}
		if err := p.Unpack(a); err != nil {
			return f, fmt.Errorf("FRU product area: %w", err)
		}
		f.ProductMfg = fruString(p.ManufacturerTypeLength, p.Manufacturer)
		f.ProductName = fruString(p.NameTypeLength, p.Name)
		f.ProductPart = fruString(p.PartModelTypeLength, p.PartModel)
		f.ProductVersion = fruString(p.VersionTypeLength, p.Version)
		f.ProductSerial = fruString(p.SerialNumberTypeLength, p.SerialNumber)
		f.AssetTag = fruString(p.AssetTagTypeLength, p.AssetTag)
	}
	return f, nil
}

func fruString(tl types.TypeLength, raw []byte) string {
	return strings.TrimSpace(strings.TrimRight(types.FRUFieldString(tl, raw), "\x00"))
}

// checksum is the zero checksum of FRU areas: all bytes sum to 0 mod 256.
func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}
