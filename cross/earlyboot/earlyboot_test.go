package earlyboot

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// A /proc/mtd as the emulated CMC's kernel prints it (two s25fl512s chips,
// the CMC device tree's partitions).
const procMTD = `dev:    size   erasesize  name
mtd0: 000e0000 00040000 "u-boot"
mtd1: 00040000 00040000 "u-boot-env"
mtd2: 00900000 00040000 "kernel"
mtd3: 01e00000 00040000 "rofs"
mtd4: 01800000 00040000 "rwfs"
mtd5: 000e0000 00040000 "alt-u-boot"
mtd9: 01800000 00040000 "alt-rwfs"
mtd10: 08000000 00001000 "bmc 4k"
`

func TestParseProcMTD(t *testing.T) {
	l, err := ParseProcMTD(strings.NewReader(procMTD))
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 8 {
		t.Fatalf("%d devices, want 8: %+v", len(l), l)
	}
	m, ok := FindMTD(l, "alt-rwfs")
	if !ok || m.Num != 9 || m.Size != 24<<20 || m.EraseSize != 256<<10 {
		t.Errorf("alt-rwfs = %+v, %v", m, ok)
	}
	if err := CheckUBI(m); err != nil {
		t.Errorf("alt-rwfs refused for UBI: %v", err)
	}
	if m, _ := FindMTD(l, "u-boot-env"); m.Num != 1 || m.Size != 256<<10 {
		t.Errorf("size equal to erase size: %+v", m)
	}
	m, _ = FindMTD(l, "bmc 4k")
	if m.Num != 10 || m.Size != 128<<20 {
		t.Errorf("name with a space: %+v", m)
	}
	if err := CheckUBI(m); err == nil || !strings.Contains(err.Error(), "4096-byte blocks") {
		t.Errorf("4 KiB erase blocks accepted for UBI: %v", err)
	}
	if err := CheckUBI(MTD{Name: "tiny", Size: 1 << 20, EraseSize: 256 << 10}); err == nil {
		t.Error("a 4-block partition accepted for UBIFS")
	}
	if _, ok := FindMTD(l, "bmc"); ok {
		t.Error("found a name that is not there")
	}
	for _, bad := range []string{"mtdX: 1 1 \"a\"", "mtd0: 10 20", "mtd0: zz 20 \"a\"", "mtd0: 10 20 a", "foo"} {
		if _, err := ParseProcMTD(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestCmdline(t *testing.T) {
	got := Cmdline("console=ttyS4,115200n8 rdinit=/init cmcinit.primary=rwfs cmcinit.showpw cmcinit.time=1700000000 xcmcinit.no=1", "cmcinit.")
	want := map[string]string{"primary": "rwfs", "showpw": "1", "time": "1700000000"}
	if len(got) != len(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestModuleOrder(t *testing.T) {
	o := ModuleOrder("# comment\nspi-nor.ko\n\n ubi.ko mtd=rwfs fm_autoconvert=0 # attach\nubifs.ko\n")
	if len(o) != 3 || o[0].File != "spi-nor.ko" || o[1].Params != "mtd=rwfs fm_autoconvert=0" || o[2].File != "ubifs.ko" {
		t.Errorf("%+v", o)
	}
}

// The ioctl numbers and layouts must match include/uapi/mtd/ubi-user.h:
// UBI_IOCATT = _IOW('o', 64, struct ubi_attach_req) with a 24-byte
// request, UBI_IOCMKVOL = _IOW('o', 0, struct ubi_mkvol_req), 152 bytes.
func TestUBIEncodings(t *testing.T) {
	if UBIIocAtt != 0x40186f40 {
		t.Errorf("UBI_IOCATT = %#x, want 0x40186f40", UBIIocAtt)
	}
	if UBIIocMkVol != 0x40986f00 {
		t.Errorf("UBI_IOCMKVOL = %#x, want 0x40986f00", UBIIocMkVol)
	}
	a := AttachReq(9)
	ne := binary.NativeEndian
	if len(a) != 24 || int32(ne.Uint32(a[0:])) != -1 || ne.Uint32(a[4:]) != 9 {
		t.Errorf("attach request % x", a)
	}
	v, err := MkVolReq("cmcd-data", 20<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 152 || int32(ne.Uint32(v[0:])) != -1 || ne.Uint32(v[4:]) != 1 || ne.Uint64(v[8:]) != 20<<20 ||
		v[16] != UBIDynamicVolume || ne.Uint16(v[18:]) != 9 || string(v[24:33]) != "cmcd-data" || v[33] != 0 {
		t.Errorf("mkvol request % x", v)
	}
	if _, err := MkVolReq(strings.Repeat("x", 128), 1); err == nil {
		t.Error("128-byte volume name accepted")
	}
	if _, err := MkVolReq("v", 0); err == nil {
		t.Error("empty volume accepted")
	}
}

func TestParseV4(t *testing.T) {
	a, bits, err := ParseCIDR("10.0.2.15/24")
	if err != nil || a != "10.0.2.15" || bits != 24 {
		t.Fatalf("%s %d %v", a, bits, err)
	}
	ip, mask, err := parseV4(a, bits)
	if err != nil || ip != [4]byte{10, 0, 2, 15} || mask != [4]byte{255, 255, 255, 0} {
		t.Errorf("%v %v %v", ip, mask, err)
	}
	if _, _, err := ParseCIDR("fe80::1/64"); err == nil {
		t.Error("IPv6 accepted")
	}
	if _, _, err := ParseCIDR("10.0.2.15"); err == nil {
		t.Error("address without prefix accepted")
	}
}

func TestParseI2CInit(t *testing.T) {
	ops, err := ParseI2CInit("# set-up\nnew 2 tmp105 0x48  # inlet\n\nwrite 7 0x40 0x20 0x17\nwrite 7 64 3\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []I2COp{{Kind: "new", Bus: 2, Type: "tmp105", Addr: 0x48}, {Kind: "write", Bus: 7, Addr: 0x40, Bytes: []byte{0x20, 0x17}},
		{Kind: "write", Bus: 7, Addr: 0x40, Bytes: []byte{3}}}
	if fmt.Sprint(ops) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", ops, want)
	}
	for in, msg := range map[string]string{
		"new 2 tmp105":            "line 1",
		"write 7 0x80 0x00":       "not a 7-bit I2C device address",
		"write 7 0x40 0x100":      "byte",
		"poke 7 0x40 1":           "want new or write",
		"x\nnew 2 tmp105 0x48 9":  "line 1",
		"new 2 tmp105 0x48 extra": "new takes BUS TYPE ADDR",
	} {
		if _, err := ParseI2CInit(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseI2CInit(%q) = %v, want an error with %q", in, err, msg)
		}
	}
}
