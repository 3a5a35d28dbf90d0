package flash

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mtdInfoUser is struct mtd_info_user of <mtd/mtd-abi.h>.
type mtdInfoUser struct {
	Type      uint8
	_         [3]byte
	Flags     uint32
	Size      uint32
	EraseSize uint32
	WriteSize uint32
	OOBSize   uint32
	_         uint64
}

// eraseInfoUser is struct erase_info_user.
type eraseInfoUser struct {
	Start  uint32
	Length uint32
}

// MTDDevice is a slot on raw flash: an MTD character device (/dev/mtdN).
// Erase uses the MEMERASE ioctl; blocks the driver reports bad are refused
// (a slot partition with a bad block must be re-partitioned or moved to
// UBI), so offsets map 1:1 to the partition.
type MTDDevice struct {
	f    *os.File
	info DeviceInfo
}

// OpenMTD opens /dev/mtdN and reads its geometry with MEMGETINFO.
func OpenMTD(path string, write bool) (*MTDDevice, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("flash: open MTD device: %w", err)
	}
	var mi mtdInfoUser
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.MEMGETINFO, uintptr(unsafe.Pointer(&mi))); e != 0 {
		f.Close()
		return nil, fmt.Errorf("flash: %s: MEMGETINFO: %w (not an MTD character device?)", path, e)
	}
	ws := int64(mi.WriteSize)
	if ws == 0 {
		ws = 1
	}
	return &MTDDevice{f: f, info: DeviceInfo{Size: int64(mi.Size), EraseSize: int64(mi.EraseSize), WriteSize: ws}}, nil
}

// Info implements Device.
func (d *MTDDevice) Info() DeviceInfo { return d.info }

// Erase implements Device.
func (d *MTDDevice) Erase(off, n int64) error {
	if off < 0 || n < 0 || off+n > d.info.Size || off%d.info.EraseSize != 0 || n%d.info.EraseSize != 0 {
		return fmt.Errorf("flash: erase [%d,+%d) not block-aligned or outside the device", off, n)
	}
	for p := off; p < off+n; p += d.info.EraseSize {
		pos := p
		if r, _, e := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), unix.MEMGETBADBLOCK, uintptr(unsafe.Pointer(&pos))); e == 0 && r > 0 {
			return fmt.Errorf("flash: %s: erase block at %d is bad", d.f.Name(), p)
		}
		ei := eraseInfoUser{Start: uint32(p), Length: uint32(d.info.EraseSize)}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), unix.MEMERASE, uintptr(unsafe.Pointer(&ei))); e != 0 {
			return fmt.Errorf("flash: %s: MEMERASE at %d: %w", d.f.Name(), p, e)
		}
	}
	return nil
}

// WriteAt implements Device.
func (d *MTDDevice) WriteAt(p []byte, off int64) (int, error) {
	if off%d.info.WriteSize != 0 || int64(len(p))%d.info.WriteSize != 0 {
		return 0, fmt.Errorf("flash: write [%d,+%d) not aligned to %d", off, len(p), d.info.WriteSize)
	}
	return d.f.WriteAt(p, off)
}

// ReadAt implements Device.
func (d *MTDDevice) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

// Sync implements Device (MTD writes are synchronous; fsync is harmless).
func (d *MTDDevice) Sync() error { return d.f.Sync() }

// Close implements Device.
func (d *MTDDevice) Close() error { return d.f.Close() }
