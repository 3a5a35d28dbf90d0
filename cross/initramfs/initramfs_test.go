package initramfs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The archive is unpacked by the real cpio (GNU cpio, the tool that
// reads what the kernel reads): every file, mode and the device node must
// come back.
func TestArchiveUnpacksWithCpio(t *testing.T) {
	a := New()
	a.File("/init", []byte("#!/bin/sh\necho hi\n"), 0o755)
	a.File("etc/cmcd.json", []byte(`{"data":"/data"}`), 0o644)
	a.File("lib/modules/odd-len.ko", []byte("abcde"), 0o644) // exercises padding
	a.Dir("data", 0o700)
	a.CharDev("dev/console", 0o600, 5, 1)
	z, err := a.Gzip()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-i", "-d", "--quiet", "--no-absolute-filenames", "-t", "-v")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(raw)
	list, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, list)
	}
	for _, want := range []string{"crw-------", "dev/console", "-rwxr-xr-x", "init", "drwx------", "data", "lib/modules/odd-len.ko"} {
		if !strings.Contains(string(list), want) {
			t.Errorf("cpio listing lacks %q:\n%s", want, list)
		}
	}
	cmd = exec.Command("cpio", "-i", "-d", "--quiet", "--no-absolute-filenames", "--nonmatching", "dev/console")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(raw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for p, want := range map[string]string{"init": "#!/bin/sh\necho hi\n", "etc/cmcd.json": `{"data":"/data"}`, "lib/modules/odd-len.ko": "abcde"} {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "init")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("init mode: %v %v", fi, err)
	}
}

// fakeModule makes an ELF file with a .modinfo section (objcopy on a copy
// of a host executable), as a kernel module carries one.
func fakeModule(t *testing.T, dir, name, depends string) {
	t.Helper()
	info := filepath.Join(t.TempDir(), "modinfo")
	os.WriteFile(info, []byte("license=GPL\x00depends="+depends+"\x00name="+ModName(name)+"\x00"), 0o644)
	host, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip("no /bin/true to make a fake module from")
	}
	p := filepath.Join(dir, name+".ko")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, host, 0o644)
	if out, err := exec.Command("objcopy", "--add-section", ".modinfo="+info, p).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
}

func TestResolveOrdersDependenciesFirst(t *testing.T) {
	root := t.TempDir()
	fakeModule(t, root, "drivers/net/phy/libphy", "")
	fakeModule(t, root, "drivers/net/phy/fixed_phy", "libphy")
	fakeModule(t, root, "drivers/net/mdio/fwnode_mdio", "libphy")
	fakeModule(t, root, "drivers/net/mdio/of_mdio", "fwnode_mdio,libphy,fixed_phy")
	fakeModule(t, root, "drivers/net/ethernet/faraday/ftgmac100", "libphy,of_mdio")
	fakeModule(t, root, "drivers/spi/spi-aspeed-smc", "")
	fakeModule(t, root, "lib/crc16", "")
	fakeModule(t, root, "fs/ubifs/ubifs", "ubi,crc16")
	fakeModule(t, root, "drivers/mtd/ubi/ubi", "")
	fakeModule(t, root, "x/loop_a", "loop_b")
	fakeModule(t, root, "x/loop_b", "loop_a")
	fakeModule(t, root, "x/needs_missing", "nowhere")
	idx, err := Index(root)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := Resolve(idx, []string{"spi-aspeed-smc", "ubifs", "ftgmac100"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	got := strings.Join(names, " ")
	want := "spi_aspeed_smc ubi crc16 ubifs libphy fwnode_mdio fixed_phy of_mdio ftgmac100"
	if got != want {
		t.Errorf("order %q, want %q", got, want)
	}
	if _, err := Resolve(idx, []string{"loop_a"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
	if _, err := Resolve(idx, []string{"needs_missing"}); err == nil || !strings.Contains(err.Error(), "nowhere (needed by needs_missing) not found") {
		t.Errorf("missing dependency: %v", err)
	}
	a := New()
	if err := a.AddModules("lib/modules", mods); err != nil {
		t.Fatal(err)
	}
	order := string(a.entries["lib/modules/load-order"].data)
	if !strings.Contains(order, "spi_aspeed_smc.ko\nubi.ko\ncrc16.ko\nubifs.ko\n") {
		t.Errorf("load-order:\n%s", order)
	}
}
