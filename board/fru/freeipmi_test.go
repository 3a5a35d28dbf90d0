package fru

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ipmiFRU runs FreeIPMI's ipmi-fru on an image file and returns its
// "Key: value" lines (values with trailing spaces trimmed, in order).
func ipmiFRU(t *testing.T, img []byte) ([][2]string, string) {
	t.Helper()
	if _, err := exec.LookPath("ipmi-fru"); err != nil {
		t.Fatal("ipmi-fru (Debian freeipmi-tools) is missing: run make deps")
	}
	p := filepath.Join(t.TempDir(), "fru.bin")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ipmi-fru", "--fru-file="+p).CombinedOutput()
	if err != nil {
		t.Fatalf("ipmi-fru: %v\n%s", err, out)
	}
	var kv [][2]string
	for _, l := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ": ")
		if ok && strings.HasPrefix(k, "FRU ") && k != "FRU Inventory From File" {
			kv = append(kv, [2]string{k, strings.TrimRight(v, " ")})
		}
	}
	return kv, string(out)
}

// TestFreeIPMIReadsOurImages: images written by Encode, read by a real
// independent parser (FreeIPMI's ipmi-fru --fru-file): every field in
// 8-bit text and 6-bit ASCII, the manufacturing date, custom fields, and a
// bad board checksum flagged by both parsers. (BCD plus is left out: FreeIPMI
// reads one digit per byte where ipmitool and this package pack two.)
func TestFreeIPMIReadsOurImages(t *testing.T) {
	in := &Info{
		Chassis: &Chassis{Type: 0x17, PartNumber: MustText("CH-PART-01"), SerialNumber: must(ASCII6Field("CS12345")),
			Custom: []Field{MustText("rev A")}},
		Board: &Board{Language: 25, MfgDate: time.Date(2024, 3, 5, 10, 42, 0, 0, time.UTC), Manufacturer: MustText("Acme Corp"),
			ProductName: MustText("CMC Board"), SerialNumber: must(ASCII6Field("BS-000123")), PartNumber: MustText("BP-7"),
			FileID: MustText("fru-v1")},
		Product: &Product{Manufacturer: MustText("Acme"), Name: MustText("Chassis X"), PartModel: MustText("CX-100"),
			Version: MustText("1.0"), SerialNumber: MustText("PS-000042"), AssetTag: must(ASCII6Field("ASSET TAG 9"))},
	}
	img, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	kv, raw := ipmiFRU(t, img)
	want := [][2]string{
		{"FRU Chassis Type", "Rack Mount Chassis"},
		{"FRU Chassis Part Number", "CH-PART-01"},
		{"FRU Chassis Serial Number", "CS12345"},
		{"FRU Chassis Custom Info", "rev A"},
		{"FRU Board Manufacturing Date/Time", "03/05/24 - 10:42:00"},
		{"FRU Board Manufacturer", "Acme Corp"},
		{"FRU Board Product Name", "CMC Board"},
		{"FRU Board Serial Number", "BS-000123"},
		{"FRU Board Part Number", "BP-7"},
		{"FRU FRU File ID", "fru-v1"},
		{"FRU Product Manufacturer Name", "Acme"},
		{"FRU Product Name", "Chassis X"},
		{"FRU Product Part/Model Number", "CX-100"},
		{"FRU Product Version", "1.0"},
		{"FRU Product Serial Number", "PS-000042"},
		{"FRU Product Asset Tag", "ASSET TAG 9"},
	}
	if len(kv) != len(want) {
		t.Fatalf("ipmi-fru printed %d fields, want %d:\n%s", len(kv), len(want), raw)
	}
	for i := range want {
		if kv[i] != want[i] {
			t.Errorf("ipmi-fru line %d: %q, want %q", i, kv[i], want[i])
		}
	}
	// Our own parser agrees with what FreeIPMI printed.
	got := ToBoard(mustParse(t, img))
	if got.ChassisSerial != "CS12345" || got.BoardSerial != "BS-000123" || got.AssetTag != "ASSET TAG 9" || got.ChassisType != "Rack Mount Chassis" {
		t.Errorf("ToBoard: %+v", got)
	}

	// A corrupted board area: FreeIPMI flags it, Parse leaves it out.
	bad := append([]byte(nil), img...)
	bad[int(img[3])*8+7] ^= 0x20
	_, raw = ipmiFRU(t, bad)
	if !strings.Contains(raw, "board info area checksum invalid") {
		t.Errorf("ipmi-fru did not flag the corrupted board area:\n%s", raw)
	}
	info := mustParse(t, bad)
	if info.Board != nil || len(info.Problems) != 1 {
		t.Errorf("Parse trusted the corrupted board area: %+v, problems %v", info.Board, info.Problems)
	}
}

func mustParse(t *testing.T, img []byte) *Info {
	t.Helper()
	info, err := Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	return info
}
