package ipmi

import (
	"context"
	"errors"
	"fmt"

	"github.com/bougou/go-ipmi/pkg/command/storage"
	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
	"cmcd/board/fru"
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

// parseFRU decodes the chassis, board and product areas of an IPMI FRU
// image with the shared parser (board/fru). A node's inventory is all or
// nothing here: any area with a bad checksum or that runs past the image
// makes it an error.
func parseFRU(data []byte) (board.FRU, error) {
	info, err := fru.Parse(data)
	if err != nil {
		return board.FRU{}, err
	}
	if len(info.Problems) > 0 {
		return board.FRU{}, errors.Join(info.Problems...)
	}
	return fru.ToBoard(info), nil
}
