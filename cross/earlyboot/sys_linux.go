package earlyboot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MountBasics mounts proc on /proc, sysfs on /sys and devtmpfs on /dev
// (creating the directories); a file system already mounted there is kept.
func MountBasics() error {
	for _, m := range []struct{ fs, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fs, m.dir, m.fs, unix.MS_NOSUID|unix.MS_NOEXEC*boolInt(m.fs != "devtmpfs"), ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fs, m.dir, err)
		}
	}
	return nil
}

func boolInt(b bool) uintptr {
	if b {
		return 1
	}
	return 0
}

// LoadModules loads the modules of order from dir with finit_module, in
// order. A module already loaded (or built in) is not an error. It returns
// the names loaded.
func LoadModules(dir string, order []ModuleLoad) ([]string, error) {
	var loaded []string
	for _, m := range order {
		f, err := os.Open(filepath.Join(dir, m.File))
		if err != nil {
			return loaded, fmt.Errorf("module %s: %w", m.File, err)
		}
		err = unix.FinitModule(int(f.Fd()), m.Params, 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return loaded, fmt.Errorf("finit_module %s: %w", m.File, err)
		}
		loaded = append(loaded, strings.TrimSuffix(m.File, ".ko"))
	}
	return loaded, nil
}

// ReadMTD reads /proc/mtd.
func ReadMTD() ([]MTD, error) {
	f, err := os.Open("/proc/mtd")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseProcMTD(f)
}

// WaitMTD waits until /proc/mtd lists name.
func WaitMTD(name string, timeout time.Duration) (MTD, error) {
	deadline := time.Now().Add(timeout)
	for {
		list, err := ReadMTD()
		if err == nil {
			if m, ok := FindMTD(list, name); ok {
				return m, nil
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("not in /proc/mtd (%d devices listed)", len(list))
			}
			return MTD{}, fmt.Errorf("flash partition %q: %w", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// AttachUBI attaches MTD device mtdNum to UBI and returns the UBI device
// number; when it is attached already, the existing number is returned.
// UBI formats a partition that is all 0xFF (never written) on its first
// attach.
func AttachUBI(mtdNum int) (int, error) {
	if n, ok := attachedUBI(mtdNum); ok {
		return n, nil
	}
	ctrl, err := waitOpen("/dev/ubi_ctrl", 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer ctrl.Close()
	req := AttachReq(mtdNum)
	if err := ioctlPtr(ctrl, UBIIocAtt, req); err != nil {
		return 0, fmt.Errorf("UBI attach of mtd%d: %w", mtdNum, err)
	}
	n := int(int32(nativeUint32(req[0:4])))
	if _, err := waitOpen(fmt.Sprintf("/dev/ubi%d", n), 5*time.Second); err != nil {
		return 0, err
	}
	return n, nil
}

func attachedUBI(mtdNum int) (int, bool) {
	devs, _ := filepath.Glob("/sys/class/ubi/ubi[0-9]*/mtd_num")
	for _, p := range devs {
		if v, err := readInt(p); err == nil && v == mtdNum {
			n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(filepath.Dir(p)), "ubi"))
			return n, err == nil
		}
	}
	return 0, false
}

// Volume describes a UBI volume.
type Volume struct {
	UBI, ID int
	Name    string
	Bytes   int64
	Created bool // made by EnsureVolume in this call
}

// Source is the UBIFS mount source for the volume ("ubiN:name").
func (v Volume) Source() string { return fmt.Sprintf("ubi%d:%s", v.UBI, v.Name) }

// EnsureVolume returns UBI device ubiNum's volume named name, creating it
// over all free space when it is missing.
func EnsureVolume(ubiNum int, name string) (Volume, error) {
	if v, ok := findVolume(ubiNum, name); ok {
		return v, nil
	}
	base := fmt.Sprintf("/sys/class/ubi/ubi%d", ubiNum)
	avail, err1 := readInt(base + "/avail_eraseblocks")
	leb, err2 := readInt(base + "/eraseblock_size")
	if err := errors.Join(err1, err2); err != nil {
		return Volume{}, fmt.Errorf("ubi%d: %w", ubiNum, err)
	}
	req, err := MkVolReq(name, int64(avail)*int64(leb))
	if err != nil {
		return Volume{}, err
	}
	dev, err := os.OpenFile(fmt.Sprintf("/dev/ubi%d", ubiNum), os.O_RDWR, 0)
	if err != nil {
		return Volume{}, err
	}
	defer dev.Close()
	if err := ioctlPtr(dev, UBIIocMkVol, req); err != nil {
		return Volume{}, fmt.Errorf("ubi%d: create volume %q (%d blocks of %d bytes): %w", ubiNum, name, avail, leb, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if v, ok := findVolume(ubiNum, name); ok {
			v.Created = true
			return v, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return Volume{}, fmt.Errorf("ubi%d: volume %q created but not in sysfs", ubiNum, name)
}

func findVolume(ubiNum int, name string) (Volume, bool) {
	vols, _ := filepath.Glob(fmt.Sprintf("/sys/class/ubi/ubi%d/ubi%d_*/name", ubiNum, ubiNum))
	for _, p := range vols {
		b, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		dir := filepath.Dir(p)
		id, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), fmt.Sprintf("ubi%d_", ubiNum)))
		if err != nil {
			continue
		}
		size, _ := readInt(dir + "/data_bytes")
		return Volume{UBI: ubiNum, ID: id, Name: name, Bytes: int64(size)}, true
	}
	return Volume{}, false
}

// MountUBIFS mounts the volume on dir (created if missing). An empty
// volume gets a new UBIFS on its first mount.
func MountUBIFS(v Volume, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := unix.Mount(v.Source(), dir, "ubifs", unix.MS_NOATIME|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return fmt.Errorf("mount UBIFS %s on %s: %w", v.Source(), dir, err)
	}
	return nil
}

// IfUp waits for interface name, gives it the IPv4 address addr with
// prefix length bits and brings it up; "lo" needs no address.
func IfUp(name, addr string, bits int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat("/sys/class/net/" + name); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("network interface %s did not appear within %s", name, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if addr != "" {
		ip, mask, err := parseV4(addr, bits)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(ip[:]); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
			return fmt.Errorf("%s: set address %s: %w", name, addr, err)
		}
		if err := ifr.SetInet4Addr(mask[:]); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
			return fmt.Errorf("%s: set netmask /%d: %w", name, bits, err)
		}
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: get flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: bring up: %w", name, err)
	}
	return nil
}

// SetClock sets the system clock (the guest's own clock; used by the
// emulated CMC, whose RTC is not read by this kernel, so that log and
// round times are the host's date).
func SetClock(t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	return unix.Settimeofday(&tv)
}

// PowerOff syncs the file systems and powers the machine off.
func PowerOff() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func ioctlPtr(f *os.File, req uint, arg []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(unsafe.Pointer(&arg[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

func nativeUint32(b []byte) uint32 { return *(*uint32)(unsafe.Pointer(&b[0])) }

func waitOpen(path string, timeout time.Duration) (*os.File, error) {
	return waitOpenFlag(path, os.O_RDWR, timeout)
}

// waitOpenFlag opens path with flag, retrying until it exists or timeout.
func waitOpenFlag(path string, flag int, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.OpenFile(path, flag, 0)
		if err == nil || time.Now().After(deadline) {
			return f, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// ApplyI2C performs one I2C set-up step (see I2COp), waiting up to timeout
// for the bus to appear (its controller's module may still be probing).
func ApplyI2C(op I2COp, timeout time.Duration) error {
	switch op.Kind {
	case "new":
		f, err := waitOpenFlag(fmt.Sprintf("/sys/bus/i2c/devices/i2c-%d/new_device", op.Bus), os.O_WRONLY, timeout)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		defer f.Close()
		if _, err := fmt.Fprintf(f, "%s 0x%02x\n", op.Type, op.Addr); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	case "write":
		f, err := waitOpen(fmt.Sprintf("/dev/i2c-%d", op.Bus), timeout)
		if err != nil {
			return fmt.Errorf("%s: %w (is i2c-dev loaded?)", op, err)
		}
		defer f.Close()
		const i2cSlaveForce = 0x0706
		if err := unix.IoctlSetInt(int(f.Fd()), i2cSlaveForce, int(op.Addr)); err != nil {
			return fmt.Errorf("%s: I2C_SLAVE_FORCE: %w", op, err)
		}
		if _, err := f.Write(op.Bytes); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	}
	return fmt.Errorf("%s: unknown step", op.Kind)
}
