package flash

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DeviceInfo is the geometry of a slot's flash device.
type DeviceInfo struct {
	Size      int64 // bytes
	EraseSize int64 // erase block size
	WriteSize int64 // minimum write unit (1 on NOR, the page size on NAND)
}

// Device is the flash that holds one slot's firmware image: an MTD
// character device on a board, a file on the simulated board and in tests.
// Writes must be erased first and aligned to WriteSize, as on real flash.
type Device interface {
	Info() DeviceInfo
	// Erase sets [off, off+n) to 0xFF; both must be erase-block aligned.
	Erase(off, n int64) error
	io.WriterAt
	io.ReaderAt
	Sync() error
	Close() error
}

// ImagePath is the file that holds a slot's image bytes on the simulated
// board: DIR/image-primary.bin and DIR/image-backup.bin.
func (a Areas) ImagePath(s Slot) string {
	return filepath.Join(a.Root, "image-"+s.String()+".bin")
}

// DefaultSimDevice is the geometry of a simulated slot: 64 MiB of NOR flash
// with 64 KiB erase blocks.
var DefaultSimDevice = DeviceInfo{Size: 64 << 20, EraseSize: 64 << 10, WriteSize: 1}

// OpenDevice opens a slot device: a path under /dev/mtd is an MTD character
// device; anything else is a file with flash semantics (geometry sim).
// write=false opens read-only and never creates a file.
func OpenDevice(path string, sim DeviceInfo, write bool) (Device, error) {
	if strings.HasPrefix(path, "/dev/mtd") {
		return OpenMTD(path, write)
	}
	return OpenFileDevice(path, sim, write)
}

// FileDevice is a file that behaves like NOR/NAND flash: reads past the end
// of the file return 0xFF (erased), Erase writes 0xFF, and a write can only
// clear bits (the result is old AND new), so a missing erase shows up as
// corrupt data on read-back, exactly as on a chip. It is the simulated
// board's slot and the fake beside MTDDevice.
type FileDevice struct {
	f    *os.File
	info DeviceInfo
	ro   bool
}

// OpenFileDevice opens (write: creates) a file-backed flash device.
func OpenFileDevice(path string, info DeviceInfo, write bool) (*FileDevice, error) {
	if info.Size <= 0 || info.EraseSize <= 0 || info.WriteSize <= 0 || info.Size%info.EraseSize != 0 || info.EraseSize%info.WriteSize != 0 {
		return nil, fmt.Errorf("flash: bad device geometry %+v", info)
	}
	var f *os.File
	var err error
	if write {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	} else {
		f, err = os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return &FileDevice{info: info, ro: true}, nil // never written: all erased
		}
	}
	if err != nil {
		return nil, fmt.Errorf("flash: open slot device: %w", err)
	}
	return &FileDevice{f: f, info: info, ro: !write}, nil
}

// Info implements Device.
func (d *FileDevice) Info() DeviceInfo { return d.info }

func (d *FileDevice) check(off, n, align int64, what string) error {
	if off < 0 || n < 0 || off+n > d.info.Size {
		return fmt.Errorf("flash: %s [%d,+%d) outside the %d-byte device", what, off, n, d.info.Size)
	}
	if off%align != 0 || n%align != 0 {
		return fmt.Errorf("flash: %s [%d,+%d) not aligned to %d bytes", what, off, n, align)
	}
	if d.ro {
		return fmt.Errorf("flash: %s on a device opened read-only", what)
	}
	return nil
}

// Erase implements Device.
func (d *FileDevice) Erase(off, n int64) error {
	if err := d.check(off, n, d.info.EraseSize, "erase"); err != nil {
		return err
	}
	ff := make([]byte, d.info.EraseSize)
	for i := range ff {
		ff[i] = 0xFF
	}
	for p := off; p < off+n; p += d.info.EraseSize {
		if _, err := d.f.WriteAt(ff, p); err != nil {
			return fmt.Errorf("flash: erase at %d: %w", p, err)
		}
	}
	return nil
}

// WriteAt implements Device: bits can only be cleared.
func (d *FileDevice) WriteAt(p []byte, off int64) (int, error) {
	if err := d.check(off, int64(len(p)), d.info.WriteSize, "write"); err != nil {
		return 0, err
	}
	old := make([]byte, len(p))
	if _, err := d.ReadAt(old, off); err != nil {
		return 0, err
	}
	for i := range old {
		old[i] &= p[i]
	}
	return d.f.WriteAt(old, off)
}

// ReadAt implements Device; bytes never written read as 0xFF.
func (d *FileDevice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= d.info.Size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := d.info.Size - off; int64(want) > rest {
		want = int(rest)
	}
	n := 0
	if d.f != nil {
		var err error
		n, err = d.f.ReadAt(p[:want], off)
		if err != nil && err != io.EOF {
			return n, err
		}
	}
	for i := n; i < want; i++ {
		p[i] = 0xFF
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// Sync implements Device.
func (d *FileDevice) Sync() error {
	if d.f == nil {
		return nil
	}
	return d.f.Sync()
}

// Close implements Device.
func (d *FileDevice) Close() error {
	if d.f == nil {
		return nil
	}
	return d.f.Close()
}

// WriteImage erases the blocks [0, n) of dev needs, then writes n bytes
// from r at offset 0 in WriteSize-aligned chunks (the last padded with
// 0xFF) and syncs. progress, if set, gets the bytes written so far.
func WriteImage(dev Device, r io.Reader, n int64, progress func(phase string, done, total int64)) error {
	info := dev.Info()
	if n > info.Size {
		return fmt.Errorf("flash: image of %d bytes does not fit the %d-byte slot", n, info.Size)
	}
	span := (n + info.EraseSize - 1) / info.EraseSize * info.EraseSize
	if span == 0 {
		span = info.EraseSize
	}
	for off := int64(0); off < span; off += info.EraseSize {
		if err := dev.Erase(off, info.EraseSize); err != nil {
			return err
		}
		if progress != nil {
			progress("erasing", off+info.EraseSize, span)
		}
	}
	chunk := int64(256 << 10)
	if chunk%info.WriteSize != 0 {
		chunk = (chunk/info.WriteSize + 1) * info.WriteSize
	}
	buf := make([]byte, chunk)
	for off := int64(0); off < n; {
		want := min(chunk, n-off)
		if _, err := io.ReadFull(r, buf[:want]); err != nil {
			return fmt.Errorf("flash: read image source at %d: %w", off, err)
		}
		w := want
		if rem := w % info.WriteSize; rem != 0 {
			pad := info.WriteSize - rem
			for i := w; i < w+pad; i++ {
				buf[i] = 0xFF
			}
			w += pad
		}
		if _, err := dev.WriteAt(buf[:w], off); err != nil {
			return fmt.Errorf("flash: write at %d: %w", off, err)
		}
		off += want
		if progress != nil {
			progress("writing", off, n)
		}
	}
	return dev.Sync()
}
