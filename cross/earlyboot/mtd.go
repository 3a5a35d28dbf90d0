package earlyboot

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MTD is one line of /proc/mtd: a flash chip or one of its partitions.
type MTD struct {
	Num       int    // N of /dev/mtdN
	Size      uint64 // bytes
	EraseSize uint32 // bytes
	Name      string
}

// ParseProcMTD parses the text of /proc/mtd:
//
//	dev:    size   erasesize  name
//	mtd0: 000e0000 00040000 "u-boot"
func ParseProcMTD(r io.Reader) ([]MTD, error) {
	var out []MTD
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "dev:") {
			continue
		}
		var m MTD
		dev, rest, ok := strings.Cut(t, ":")
		if !ok || !strings.HasPrefix(dev, "mtd") {
			return nil, fmt.Errorf("/proc/mtd line %d: %q: want mtdN: size erasesize \"name\"", line, t)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(dev, "mtd"))
		if err != nil {
			return nil, fmt.Errorf("/proc/mtd line %d: %q: bad device number", line, t)
		}
		f := strings.Fields(rest)
		if len(f) < 3 {
			return nil, fmt.Errorf("/proc/mtd line %d: %q: want size, erasesize and name", line, t)
		}
		size, err1 := strconv.ParseUint(f[0], 16, 64)
		erase, err2 := strconv.ParseUint(f[1], 16, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("/proc/mtd line %d: %q: size and erasesize must be hex", line, t)
		}
		// The name is what follows the second field; it may hold spaces.
		_, tail, _ := strings.Cut(strings.TrimSpace(rest), f[0])
		_, tail, _ = strings.Cut(strings.TrimSpace(tail), f[1])
		name := strings.TrimSpace(tail)
		if len(name) < 2 || name[0] != '"' || name[len(name)-1] != '"' {
			return nil, fmt.Errorf("/proc/mtd line %d: %q: name must be quoted", line, t)
		}
		m.Num, m.Size, m.EraseSize, m.Name = n, size, uint32(erase), name[1:len(name)-1]
		out = append(out, m)
	}
	return out, sc.Err()
}

// FindMTD returns the device named name.
func FindMTD(list []MTD, name string) (MTD, bool) {
	for _, m := range list {
		if m.Name == name {
			return m, true
		}
	}
	return MTD{}, false
}

// MinUBIEraseSize is the smallest erase block this package attaches to UBI:
// UBIFS needs logical erase blocks of at least 15 KiB, and 4 KiB NOR
// sectors (CONFIG_MTD_SPI_NOR_USE_4K_SECTORS on small-sector chips) are
// far below that.
const MinUBIEraseSize = 16 << 10

// CheckUBI says why m cannot hold a UBI data area, or nil.
func CheckUBI(m MTD) error {
	if m.EraseSize < MinUBIEraseSize {
		return fmt.Errorf("mtd%d %q erases in %d-byte blocks: UBIFS needs at least %d (use a flash with 64 KiB or larger erase blocks)",
			m.Num, m.Name, m.EraseSize, MinUBIEraseSize)
	}
	// UBI reserves 2 volume-table blocks, 1 for wear levelling, 1 for
	// atomic changes; UBIFS wants 17 logical blocks at least.
	if blocks := m.Size / uint64(m.EraseSize); blocks < 4+17 {
		return fmt.Errorf("mtd%d %q has %d erase blocks: a UBIFS data area needs at least 21", m.Num, m.Name, blocks)
	}
	return nil
}
