package fru

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"cmcd/board"
)

func must(f Field, err error) Field {
	if err != nil {
		panic(err)
	}
	return f
}

// sample uses every field encoding, custom fields, all five areas.
func sample() *Info {
	return &Info{
		InternalUse: []byte{0xde, 0xad, 0xbe, 0xef},
		Chassis: &Chassis{Type: 0x17, PartNumber: MustText("CH-PART-01"), SerialNumber: must(ASCII6Field("CS12345")),
			Custom: []Field{MustText("rev A")}},
		Board: &Board{Language: 25, MfgDate: time.Date(2024, 3, 5, 10, 42, 0, 0, time.UTC), Manufacturer: MustText("Acme Corp"),
			ProductName: MustText("CMC Board"), SerialNumber: must(BCDField("2024-0305.17")), PartNumber: MustText("BP-7"),
			FileID: MustText("fru-v1"), Custom: []Field{must(BinaryField([]byte{1, 2, 3})), MustText("Ünïcode-ish Latin-1")}},
		Product: &Product{Manufacturer: MustText("Acme"), Name: MustText("Chassis X"), PartModel: MustText("CX-100"),
			Version: MustText("1.0"), SerialNumber: MustText("PS-000042"), AssetTag: must(ASCII6Field("ASSET TAG 9")), FileID: Field{Type: Text}},
		MultiRecords: []MultiRecord{{Type: 0x00, Version: 2, Data: bytes.Repeat([]byte{0x11}, 24)}, {Type: 0xc0, Version: 2, Data: []byte("oem")}},
	}
}

func TestRoundTrip(t *testing.T) {
	in := sample()
	img, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if int(img[5])*8 >= len(img) {
		t.Errorf("multi-record offset %d beyond the %d-byte image", int(img[5])*8, len(img))
	}
	out, err := Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Problems) > 0 {
		t.Fatalf("problems: %v", out.Problems)
	}
	in.InternalUse = append(in.InternalUse, 0, 0, 0) // padded to 8 bytes with the version byte
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
	// Byte for byte: encoding the parsed image gives the same image.
	again, err := Encode(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, img) {
		t.Errorf("re-encoded image differs:\n% x\n% x", again, img)
	}
	checks := map[string]string{
		out.Chassis.SerialNumber.String(): "CS12345",
		out.Board.SerialNumber.String():   "2024-0305.17",
		out.Product.AssetTag.String():     "ASSET TAG 9",
		out.Board.Custom[1].String():      "Ünïcode-ish Latin-1",
		out.Board.Custom[0].String():      "010203",
	}
	for got, want := range checks {
		if got != want {
			t.Errorf("decoded %q, want %q", got, want)
		}
	}
}

// TestKnownImage decodes bytes laid out by hand from the specification's
// rules (not by Encode).
func TestKnownImage(t *testing.T) {
	board := []byte{0x01, 0x02, 0x00, 0x00, 0x00, 0x00, // version, 2*8 bytes, English, date unspecified
		0xc3, 'A', 'C', 'M', // manufacturer "ACM"
		0x82, 0xa1, 0x08, // product name, 6-bit "AB": 'A'=0x21,'B'=0x22 -> 0x21|0x22<<6 = 0xa1, 0x08
		0x41, 0x12, // serial, BCD "12"
		0xc1} // end: part number and file ID are left out
	board[1] = 3
	for len(board) < 23 {
		board = append(board, 0)
	}
	board = append(board, zeroSum(board))
	hdr := []byte{0x01, 0, 0, 1, 0, 0, 0}
	img := append(append(hdr, zeroSum(hdr)), board...)
	info, err := Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	if info.Board == nil {
		t.Fatalf("no board area: %v", info.Problems)
	}
	b := info.Board
	if b.Manufacturer.String() != "ACM" || b.ProductName.String() != "AB" || b.SerialNumber.String() != "12" || b.Language != 0 {
		t.Errorf("board %q %q %q", b.Manufacturer, b.ProductName, b.SerialNumber)
	}
	if p := must(ASCII6Field("AB")); !bytes.Equal(p.Raw, []byte{0xa1, 0x08}) {
		t.Errorf("6-bit pack of AB = % x", p.Raw)
	}
	if len(info.Problems) != 0 || !b.PartNumber.IsEmpty() || !b.MfgDate.IsZero() {
		t.Errorf("problems %v, part %q, date %v", info.Problems, b.PartNumber, b.MfgDate)
	}
}

func TestBadChecksumsReported(t *testing.T) {
	img, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	// Common header: the whole image is refused.
	bad := append([]byte(nil), img...)
	bad[7]++
	if _, err := Parse(bad); !errors.Is(err, ErrChecksum) {
		t.Errorf("bad header checksum: %v", err)
	}
	// Board area: reported and left out; the other areas still decode.
	bad = append([]byte(nil), img...)
	boff := int(img[3]) * 8
	bad[boff+7] ^= 0x20 // a byte of the manufacturer name
	info, err := Parse(bad)
	if err != nil {
		t.Fatal(err)
	}
	if info.Board != nil {
		t.Errorf("board area with a bad checksum was trusted: %+v", info.Board)
	}
	if len(info.Problems) != 1 || !errors.Is(info.Problems[0], ErrChecksum) || !strings.Contains(info.Problems[0].Error(), "board") {
		t.Errorf("problems %v, want one board checksum problem", info.Problems)
	}
	if info.Chassis == nil || info.Product == nil || len(info.MultiRecords) != 2 {
		t.Errorf("other areas lost: %+v", info)
	}
	// A multi-record's data checksum: that record is skipped, the next kept.
	bad = append([]byte(nil), img...)
	moff := int(img[5]) * 8
	bad[moff+5] ^= 1
	info, _ = Parse(bad)
	if len(info.MultiRecords) != 1 || info.MultiRecords[0].Type != 0xc0 || len(info.Problems) != 1 {
		t.Errorf("records %+v problems %v", info.MultiRecords, info.Problems)
	}
	// Truncated: areas past the end are reported.
	info, err = Parse(img[:boff+8])
	if err != nil {
		t.Fatal(err)
	}
	if info.Board != nil || info.Product != nil || len(info.Problems) < 2 {
		t.Errorf("truncated image: board %v product %v problems %v", info.Board, info.Product, info.Problems)
	}
	for _, b := range [][]byte{nil, img[:7], {0x02, 0, 0, 0, 0, 0, 0, 0xfe}} {
		if _, err := Parse(b); err == nil {
			t.Errorf("Parse(% x) accepted", b)
		}
	}
}

func TestFieldEncodings(t *testing.T) {
	for _, s := range []string{"", "A", "HELLO WORLD", "0123456789:;<=>?@[\\]^_", "ABC", "ABCD", "ABCDE"} {
		f, err := ASCII6Field(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got := f.String(); got != strings.TrimRight(s, " ") {
			t.Errorf("6-bit %q -> % x -> %q", s, f.Raw, got)
		}
	}
	if _, err := ASCII6Field("lower"); err == nil {
		t.Error("6-bit accepted lower case")
	}
	for _, s := range []string{"", "0", "12-34.5 6", "987"} {
		f, err := BCDField(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimRight(f.String(), " "); got != s {
			t.Errorf("BCD %q -> %q", s, got)
		}
	}
	if _, err := BCDField("12a"); err == nil {
		t.Error("BCD accepted a letter")
	}
	if f, err := TextField("x"); err == nil {
		t.Errorf("one lower-case character stored as %v", f)
	}
	if f, err := TextField("X"); err != nil || f.Type != ASCII6 || f.String() != "X" {
		t.Errorf("one character: %v %v", f, err)
	}
	if _, err := TextField(strings.Repeat("a", 64)); err == nil {
		t.Error("64-byte field accepted")
	}
	if _, err := TextField("日本"); err == nil {
		t.Error("non-Latin-1 text accepted")
	}
	if _, err := Encode(&Info{Product: &Product{Name: Field{Type: Text, Raw: []byte{'x'}}}}); err == nil {
		t.Error("a field that reads as the end marker was written")
	}
}

func TestBoardConversion(t *testing.T) {
	f := board.FRU{ChassisType: "Rack Mount Chassis", ChassisPart: "CP-1", ChassisSerial: "CS-1", BoardMfg: "Acme",
		BoardProduct: "CMC", BoardSerial: "BS-1", BoardPart: "BP-1", BoardMfgDate: time.Date(2023, 1, 2, 3, 4, 59, 0, time.UTC),
		ProductMfg: "Acme", ProductName: "X", ProductPart: "PP-1", ProductVersion: "2", ProductSerial: "PS-1", AssetTag: "tag 7"}
	img, err := Encode(FromBoard(f))
	if err != nil {
		t.Fatal(err)
	}
	info, err := Parse(img)
	if err != nil || len(info.Problems) > 0 {
		t.Fatal(err, info.Problems)
	}
	want := f
	want.BoardMfgDate = time.Date(2023, 1, 2, 3, 4, 0, 0, time.UTC) // minute resolution
	if got := ToBoard(info); got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if ChassisTypeCode("Rack Mount Chassis") != 0x17 || ChassisTypeCode("nonsense") != 0x02 {
		t.Error("chassis type codes")
	}
}

func FuzzParse(f *testing.F) {
	img, _ := Encode(sample())
	f.Add(img)
	f.Add(img[:40])
	b, _ := Encode(FromBoard(board.FRU{BoardMfg: "a"}))
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parsed must encode, and the encoding must parse to the
		// same areas with no problems.
		out, err := Encode(info)
		if err != nil {
			return // e.g. a parsed internal-use area too large to place
		}
		again, err := Parse(out)
		if err != nil || len(again.Problems) > 0 {
			t.Fatalf("re-encoded image does not parse cleanly: %v %v", err, again.Problems)
		}
		if !reflect.DeepEqual(again.Chassis, info.Chassis) || !reflect.DeepEqual(again.Board, info.Board) ||
			!reflect.DeepEqual(again.Product, info.Product) || !reflect.DeepEqual(again.MultiRecords, info.MultiRecords) {
			t.Fatalf("round trip changed areas")
		}
	})
}
