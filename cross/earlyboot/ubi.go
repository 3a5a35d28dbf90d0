package earlyboot

import (
	"encoding/binary"
	"fmt"
)

// The UBI ioctl interface (include/uapi/mtd/ubi-user.h).
const (
	ubiCtrlMagic = 'o'
	// autoNum is UBI_DEV_NUM_AUTO and UBI_VOL_NUM_AUTO (-1) as a __s32.
	autoNum = 0xFFFFFFFF
	// UBIDynamicVolume is UBI_DYNAMIC_VOLUME.
	UBIDynamicVolume = 3
	// UBIMaxVolumeName is UBI_MAX_VOLUME_NAME.
	UBIMaxVolumeName = 127

	attachReqSize = 24  // struct ubi_attach_req
	mkvolReqSize  = 152 // struct ubi_mkvol_req (packed)
)

// iow is the kernel's _IOW(type, nr, size) on ARM, x86 and arm64.
func iow(typ byte, nr uint8, size uintptr) uint {
	const write = 1
	return uint(write<<30 | size<<16 | uintptr(typ)<<8 | uintptr(nr))
}

var (
	// UBIIocAtt is UBI_IOCATT, on /dev/ubi_ctrl.
	UBIIocAtt = iow(ubiCtrlMagic, 64, attachReqSize)
	// UBIIocMkVol is UBI_IOCMKVOL, on /dev/ubiN.
	UBIIocMkVol = iow(ubiCtrlMagic, 0, mkvolReqSize)
)

// AttachReq encodes struct ubi_attach_req for the MTD device mtdNum with
// an automatically chosen UBI device number and default VID header offset.
// The kernel writes the UBI device number it chose into the first 4 bytes.
func AttachReq(mtdNum int) []byte {
	b := make([]byte, attachReqSize)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], autoNum)               // ubi_num: UBI_DEV_NUM_AUTO
	ne.PutUint32(b[4:], uint32(int32(mtdNum))) // mtd_num
	ne.PutUint32(b[8:], 0)                     // vid_hdr_offset: default
	ne.PutUint16(b[12:], 0)                    // max_beb_per1024: default
	return b
}

// MkVolReq encodes struct ubi_mkvol_req for a dynamic volume of bytes
// bytes named name, with an automatically chosen volume id.
func MkVolReq(name string, bytes int64) ([]byte, error) {
	if name == "" || len(name) > UBIMaxVolumeName {
		return nil, fmt.Errorf("UBI volume name %q: want 1..%d bytes", name, UBIMaxVolumeName)
	}
	if bytes <= 0 {
		return nil, fmt.Errorf("UBI volume %q: no space (%d bytes)", name, bytes)
	}
	b := make([]byte, mkvolReqSize)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], autoNum)            // vol_id: UBI_VOL_NUM_AUTO
	ne.PutUint32(b[4:], 1)                  // alignment
	ne.PutUint64(b[8:], uint64(bytes))      // bytes
	b[16] = UBIDynamicVolume                // vol_type
	b[17] = 0                               // flags
	ne.PutUint16(b[18:], uint16(len(name))) // name_len
	copy(b[24:], name)                      // after padding2[4]
	return b, nil
}
