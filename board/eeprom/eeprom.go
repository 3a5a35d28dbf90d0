package eeprom

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"periph.io/x/conn/v3/i2c"
)

// Device is an EEPROM as cmcd uses it: read it whole or in part, write a
// range.
type Device interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Size() int
}

// File is an EEPROM exposed by the at24 driver as a sysfs file
// (/sys/bus/i2c/devices/N-00AA/eeprom).
type File struct {
	Path string
	N    int // size in bytes
}

// Size is the EEPROM size.
func (f File) Size() int { return f.N }

// ReadAt reads from the sysfs file.
func (f File) ReadAt(p []byte, off int64) (int, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return 0, fmt.Errorf("eeprom: %w", err)
	}
	defer fh.Close()
	n, err := fh.ReadAt(p, off)
	if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		return n, fmt.Errorf("eeprom %s: read %d bytes at %d: %w", f.Path, len(p), off, err)
	}
	return n, nil
}

// WriteAt writes to the sysfs file (the driver pages and polls).
func (f File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || int(off)+len(p) > f.N {
		return 0, fmt.Errorf("eeprom %s: write of %d bytes at %d past its %d bytes", f.Path, len(p), off, f.N)
	}
	fh, err := os.OpenFile(f.Path, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("eeprom: %w", err)
	}
	n, err := fh.WriteAt(p, off)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("eeprom %s: write %d bytes at %d: %w", f.Path, len(p), off, err)
	}
	return n, nil
}

// AT24 is an AT24-compatible EEPROM on an I2C bus.
type AT24 struct {
	Dev       i2c.Dev
	N         int           // size in bytes (e.g. 256 for 24c02, 8192 for 24c64)
	PageSize  int           // write page (8 for 24c02, 32 for 24c64)
	AddrBytes int           // 1 or 2; 0 = 1 up to 256 bytes ... 2048, else 2
	Timeout   time.Duration // write cycle bound (default 25 ms)
	Sleep     func(time.Duration)
}

// NewAT24 returns the chip of size bytes at addr; page size and address
// width follow the AT24 family's usual values for that size.
func NewAT24(bus i2c.Bus, addr uint16, size int) (*AT24, error) {
	a := &AT24{Dev: i2c.Dev{Bus: bus, Addr: addr}, N: size}
	switch {
	case size <= 0 || size > 65536 || size&(size-1) != 0:
		return nil, fmt.Errorf("eeprom: size %d is not a power of two up to 64 KiB", size)
	case size <= 256:
		a.PageSize, a.AddrBytes = 8, 1
	case size <= 2048:
		a.PageSize, a.AddrBytes = 16, 1 // 24c04..24c16 use address bits as pages of 256 bytes
	case size <= 8192:
		a.PageSize, a.AddrBytes = 32, 2
	default:
		a.PageSize, a.AddrBytes = 64, 2
	}
	return a, nil
}

// Size is the EEPROM size.
func (a *AT24) Size() int { return a.N }

// target returns the I2C address and word-address bytes for off. Chips of
// 512 B to 2 KiB with one address byte take the high bits of the offset in
// the low bits of the device address.
func (a *AT24) target(off int) (uint16, []byte) {
	if a.AddrBytes == 2 {
		return a.Dev.Addr, []byte{byte(off >> 8), byte(off)}
	}
	return a.Dev.Addr | uint16(off>>8), []byte{byte(off)}
}

func (a *AT24) check(n int, off int64) error {
	if off < 0 || int(off)+n > a.N {
		return fmt.Errorf("eeprom %#02x: %d bytes at %d is past its %d bytes", a.Dev.Addr, n, off, a.N)
	}
	return nil
}

// ReadAt reads sequentially (one transaction per 256-byte block, since a
// one-address-byte chip's device address changes with each block).
func (a *AT24) ReadAt(p []byte, off int64) (int, error) {
	if err := a.check(len(p), off); err != nil {
		return 0, err
	}
	done := 0
	for done < len(p) {
		o := int(off) + done
		n := min(len(p)-done, 256-o%256)
		addr, w := a.target(o)
		if err := a.Dev.Bus.Tx(addr, w, p[done:done+n]); err != nil {
			return done, fmt.Errorf("eeprom %#02x: read %d bytes at %d: %w", a.Dev.Addr, n, o, err)
		}
		done += n
	}
	return done, nil
}

// WriteAt writes page by page; after each page it polls the chip (a
// zero-length write the chip NACKs while its write cycle runs) until it
// answers or Timeout passes.
func (a *AT24) WriteAt(p []byte, off int64) (int, error) {
	if err := a.check(len(p), off); err != nil {
		return 0, err
	}
	timeout := a.Timeout
	if timeout == 0 {
		timeout = 25 * time.Millisecond
	}
	sleep := a.Sleep
	if sleep == nil {
		sleep = time.Sleep
	}
	done := 0
	for done < len(p) {
		o := int(off) + done
		n := min(len(p)-done, a.PageSize-o%a.PageSize)
		addr, w := a.target(o)
		if err := a.Dev.Bus.Tx(addr, append(w, p[done:done+n]...), nil); err != nil {
			return done, fmt.Errorf("eeprom %#02x: write %d bytes at %d: %w", a.Dev.Addr, n, o, err)
		}
		var err error
		for waited := time.Duration(0); ; waited += time.Millisecond {
			if err = a.Dev.Bus.Tx(addr, w, nil); err == nil {
				break
			}
			if waited >= timeout {
				return done, fmt.Errorf("eeprom %#02x: no answer %s after writing at %d: %w", a.Dev.Addr, timeout, o, err)
			}
			sleep(time.Millisecond)
		}
		done += n
	}
	return done, nil
}

// ReadAll reads the whole device.
func ReadAll(d Device) ([]byte, error) {
	b := make([]byte, d.Size())
	n, err := d.ReadAt(b, 0)
	return b[:n], err
}
