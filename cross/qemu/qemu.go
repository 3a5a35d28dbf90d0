package qemu

import (
	_ "embed"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"cmcd/board"
	"cmcd/board/fru"
	"cmcd/cross/initramfs"
)

// Flash geometry of the emulated CMC (see the package doc).
const (
	FlashSize  = 64 << 20 // s25fl512s
	FMCModel   = "s25fl512s"
	DataOffset = 0x2800000 // the rwfs partition, UBI
	DataSize   = 0x1800000
)

// Modules are the kernel modules the emulated CMC loads, in this order
// (their dependencies are added before them): the ASPEED I2C controller,
// /dev/i2c-N for cmcd's PMBus access and the drivers of the I2C devices
// cmcinit binds (lm75 for the tmp105, at24 for the FRU EEPROM); the MTD
// partition parser
// before the flash controller so that the chips' partitions are parsed as
// they appear, UBI and UBIFS with the compressors UBIFS initialises, and
// the MDIO/PHY stack before the ftgmac100 NIC.
var Modules = []string{
	"i2c-aspeed", "i2c-dev", "lm75", "at24",
	"ofpart", "spi-nor", "spi-aspeed-smc",
	"ubi", "deflate", "zstd", "ubifs",
	"libphy", "fixed_phy", "fwnode_mdio", "of_mdio", "mdio_devres", "mdio-aspeed", "ftgmac100",
}

// RepoRoot is the directory holding go.mod, found from the working
// directory upwards.
func RepoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", errors.New("qemu: go.mod not found above the working directory")
		}
		d = up
	}
}

// Kernel is the fetched kernel set (scripts/fetch-arm-kernel.sh).
type Kernel struct {
	Dir     string // vmlinuz, cmc-tacoma.dtb, modules/, package
	Package string // e.g. "linux-image-6.1.0-50-armmp 6.1.176-1"
}

// FetchKernel runs scripts/fetch-arm-kernel.sh (which does nothing when
// its cache is complete) and returns the set.
func FetchKernel(root string, log io.Writer) (Kernel, error) {
	cmd := exec.Command(filepath.Join(root, "scripts", "fetch-arm-kernel.sh"))
	cmd.Stderr = log
	out, err := cmd.Output()
	if err != nil {
		return Kernel{}, fmt.Errorf("scripts/fetch-arm-kernel.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	k := Kernel{Dir: lines[len(lines)-1]}
	pkg, err := os.ReadFile(filepath.Join(k.Dir, "package"))
	if err != nil {
		return Kernel{}, err
	}
	k.Package = strings.TrimSpace(string(pkg))
	return k, nil
}

// BuildARMv7 builds a static ARMv7 (AST2600-class Cortex-A7) binary of
// the package pkg (e.g. "./cmd/cmcd") into out.
func BuildARMv7(root, pkg, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for linux/arm GOARM=7: %w\n%s", pkg, err, out)
	}
	return nil
}

// CmcdConfig is the /etc/cmcd.json of the emulated CMC: the daemon's
// config file keys (daemon.Config).
type CmcdConfig map[string]any

// The emulated CMC's board: its profile (cmcd --board) and the I2C set-up
// cmcinit performs (see the package doc, "The I2C devices").
var (
	//go:embed board/board.json
	BoardProfile []byte
	//go:embed board/i2c-init
	I2CInit []byte
)

// BoardPath is where the initramfs holds BoardProfile.
const BoardPath = "/etc/cmcd/board.json"

// DefaultCmcdConfig runs cmcd on the emulated CMC's board (BoardProfile:
// PSUs, fans, temperature and FRU EEPROM on the emulated I2C buses, and
// simulated compute nodes) with its data root
// /data (cmcinit mounts the flash data areas below it), Redfish over TLS on
// :443, plain HTTP on :80 for the forwarded test port and IPMI over LAN
// (RMCP+) on UDP :623.
func DefaultCmcdConfig() CmcdConfig {
	return CmcdConfig{"data": "/data", "board": BoardPath, "redfish": ":443", "insecureHttp": ":80", "ipmi": ":623", "logLevel": "info"}
}

// BuildInitramfs writes the gzip'd initramfs: /init (cmcinit), /bin/cmcd,
// /etc/cmcd.json, /dev/console and the kernel modules with their load order.
func BuildInitramfs(k Kernel, initBin, cmcdBin string, cfg CmcdConfig, out string) error {
	a := initramfs.New()
	for p, src := range map[string]string{"init": initBin, "bin/cmcd": cmcdBin} {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		a.File(p, b, 0o755)
	}
	j, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	a.File("etc/cmcd.json", j, 0o644)
	a.File(strings.TrimPrefix(BoardPath, "/"), BoardProfile, 0o644)
	a.File("etc/i2c-init", I2CInit, 0o644)
	a.CharDev("dev/console", 0o600, 5, 1)
	for _, d := range []string{"proc", "sys", "data", "tmp"} {
		a.Dir(d, 0o755)
	}
	idx, err := initramfs.Index(filepath.Join(k.Dir, "modules"))
	if err != nil {
		return err
	}
	mods, err := initramfs.Resolve(idx, Modules)
	if err != nil {
		return err
	}
	if err := a.AddModules("lib/modules", mods); err != nil {
		return err
	}
	z, err := a.Gzip()
	if err != nil {
		return err
	}
	return os.WriteFile(out, z, 0o644)
}

// NewFlash creates an erased (all 0xFF) flash image of FlashSize bytes at
// path, unless one of that size is there already.
func NewFlash(path string) error {
	if fi, err := os.Stat(path); err == nil {
		if fi.Size() != FlashSize {
			return fmt.Errorf("flash image %s is %d bytes; QEMU's %s needs exactly %d", path, fi.Size(), FMCModel, FlashSize)
		}
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	block := bytes.Repeat([]byte{0xFF}, 1<<20)
	for range FlashSize >> 20 {
		if _, err := f.Write(block); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// Config is one boot of the emulated CMC.
type Config struct {
	Kernel  Kernel
	Initrd  string
	Primary string // flash image of chip select 0 (bmc)
	Backup  string // flash image of chip select 1 (alt-bmc)
	// HostPort is forwarded from 127.0.0.1 to the guest's port 80;
	// 0 = no forward. IPMIPort (UDP) to the guest's IPMI-over-LAN port
	// 623; 0 = none. More forwards: Forwards ("tcp:127.0.0.1:H-:G").
	HostPort int
	IPMIPort int
	Forwards []string
	// Append is added to the kernel command line (cmcinit.* options).
	Append string
	// FRU is the chassis FRU EEPROM's image file (FRUSize bytes); empty:
	// none of the emulated I2C devices (Devices) are added.
	FRU string
}

// The emulated I2C devices (QEMU 7.2 models on the AST2600's I2C buses;
// Linux numbers bus N as i2c-N). BoardProfile and I2CInit match them.
const (
	PSUBus, PSU1Addr, PSU2Addr = 7, 0x40, 0x41  // isl69260 PMBus, read by cmcd over /dev/i2c-7
	FanBus, FanAddr            = 12, 0x52       // max31785 PMBus fan controller
	TempBus, TempAddr          = 2, 0x48        // tmp105 (lm75 driver)
	FRUBus, FRUAddr, FRUSize   = 10, 0x50, 4096 // at24c-eeprom (at24 driver, 24c32: QEMU needs a multiple of 512 bytes, and over 256 bytes it takes two address bytes)
)

// Devices are the QEMU options adding the emulated I2C devices, with QOM
// ids psu1, psu2, fans, inlet and fru (under /machine/peripheral/).
func (c Config) Devices() []string {
	if c.FRU == "" {
		return nil
	}
	dev := func(id, model string, bus, addr int, more string) []string {
		return []string{"-device", fmt.Sprintf("%s,id=%s,bus=aspeed.i2c.bus.%d,address=0x%02x%s", model, id, bus, addr, more)}
	}
	var out []string
	out = append(out, dev("psu1", "isl69260", PSUBus, PSU1Addr, "")...)
	out = append(out, dev("psu2", "isl69260", PSUBus, PSU2Addr, "")...)
	out = append(out, dev("fans", "max31785", FanBus, FanAddr, "")...)
	out = append(out, dev("inlet", "tmp105", TempBus, TempAddr, "")...)
	out = append(out, "-blockdev", "driver=file,filename="+c.FRU+",node-name=fruimg")
	out = append(out, dev("fru", "at24c-eeprom", FRUBus, FRUAddr, fmt.Sprintf(",rom-size=%d,drive=fruimg", FRUSize))...)
	return out
}

// ChassisFRU is the inventory the emulated CMC's FRU EEPROM holds.
var ChassisFRU = board.FRU{
	ChassisType: "Rack Mount Chassis", ChassisPart: "CMC-EMU-2U4N", ChassisSerial: "QEMU0001",
	BoardMfg: "cmcd", BoardProduct: "Emulated CMC", BoardSerial: "B-QEMU-0001", BoardPart: "AST2600-TACOMA",
	BoardMfgDate: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
	ProductMfg:   "cmcd project", ProductName: "cmcd emulated chassis", ProductPart: "CMCD-QEMU",
	ProductVersion: "1.0", ProductSerial: "P-QEMU-0001", AssetTag: "qemu-tacoma",
}

// NewFRUImage writes the chassis FRU EEPROM image (ChassisFRU as an IPMI
// FRU, board/fru, padded with 0xFF to FRUSize bytes) unless path exists.
func NewFRUImage(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b, err := fru.Encode(fru.FromBoard(ChassisFRU))
	if err != nil {
		return err
	}
	if len(b) > FRUSize {
		return fmt.Errorf("chassis FRU image is %d bytes; the EEPROM holds %d", len(b), FRUSize)
	}
	img := append(b, bytes.Repeat([]byte{0xFF}, FRUSize-len(b))...)
	return os.WriteFile(path, img, 0o644)
}

// Args is the qemu-system-arm command line, without the console options.
func (c Config) Args() []string {
	hostfwd := ""
	if c.HostPort != 0 {
		hostfwd = fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:80", c.HostPort)
	}
	if c.IPMIPort != 0 {
		hostfwd += fmt.Sprintf(",hostfwd=udp:127.0.0.1:%d-:623", c.IPMIPort)
	}
	for _, f := range c.Forwards {
		hostfwd += ",hostfwd=" + f
	}
	appendLine := "console=ttyS4,115200n8 rdinit=/init vmalloc=768M " +
		fmt.Sprintf("cmcinit.time=%d ", time.Now().Unix()) + c.Append
	return append([]string{
		"-M", "tacoma-bmc,fmc-model=" + FMCModel, "-m", "512M", "-no-reboot",
		"-kernel", filepath.Join(c.Kernel.Dir, "vmlinuz"),
		"-dtb", filepath.Join(c.Kernel.Dir, "cmc-tacoma.dtb"),
		"-initrd", c.Initrd,
		"-append", strings.TrimSpace(appendLine),
		"-drive", "file=" + c.Primary + ",if=mtd,format=raw",
		"-drive", "file=" + c.Backup + ",if=mtd,format=raw",
		"-nic", "user" + hostfwd,
	}, c.Devices()...)
}

// Machine is a running emulated CMC.
type Machine struct {
	cmd     *exec.Cmd
	qmp     string // QMP socket
	Started time.Time

	mu      sync.Mutex
	console bytes.Buffer
	changed chan struct{} // closed and replaced on every console line
	done    chan struct{}
	waitErr error
}

// Boot starts QEMU with the serial console captured (also copied to log,
// if not nil, line by line).
func Boot(c Config, log io.Writer) (*Machine, error) {
	qmpDir, err := os.MkdirTemp("", "cmcd-qmp")
	if err != nil {
		return nil, err
	}
	qmp := filepath.Join(qmpDir, "qmp.sock")
	args := append(c.Args(), "-display", "none", "-monitor", "none", "-serial", "stdio",
		"-qmp", "unix:"+qmp+",server=on,wait=off")
	cmd := exec.Command("qemu-system-arm", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	m := &Machine{cmd: cmd, qmp: qmp, changed: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu-system-arm: %w", err)
	}
	m.Started = time.Now()
	go func() {
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				line = strings.TrimRight(line, "\r\n") + "\n"
				m.mu.Lock()
				m.console.WriteString(line)
				close(m.changed)
				m.changed = make(chan struct{})
				m.mu.Unlock()
				if log != nil {
					io.WriteString(log, line)
				}
			}
			if err != nil {
				break
			}
		}
		m.waitErr = cmd.Wait()
		os.RemoveAll(qmpDir)
		close(m.done)
	}()
	return m, nil
}

// Console is everything the serial console printed so far.
func (m *Machine) Console() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.console.String()
}

// WaitConsole waits until the console matches re and returns the
// submatches of the first match; it fails when QEMU exits or ctx ends.
func (m *Machine) WaitConsole(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	var sub []string
	err := m.WaitFor(ctx, re.String(), func(con string) bool {
		sub = re.FindStringSubmatch(con)
		return sub != nil
	})
	return sub, err
}

// WaitFor waits until ok(console) holds; what names the condition in the
// error. It fails when QEMU exits or ctx ends.
func (m *Machine) WaitFor(ctx context.Context, what string, ok func(console string) bool) error {
	for {
		m.mu.Lock()
		con := m.console.String()
		ch := m.changed
		m.mu.Unlock()
		if ok(con) {
			return nil
		}
		select {
		case <-ch:
		case <-m.done:
			if ok(m.Console()) {
				return nil
			}
			return fmt.Errorf("QEMU exited (%v) before the console showed %s", m.waitErr, what)
		case <-ctx.Done():
			return fmt.Errorf("console did not show %s: %w", what, ctx.Err())
		}
	}
}

// Exited is closed when QEMU has exited.
func (m *Machine) Exited() <-chan struct{} { return m.done }

// Kill stops QEMU at once (to the guest, a power cut) and waits for it.
func (m *Machine) Kill() {
	if m.cmd.Process != nil {
		syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-m.done
}

// Freeze stops the guest's CPUs at once through QMP ("stop"), which also
// waits until QEMU has handed every write the guest already made to the
// flash images to the host: after Freeze, the image files hold exactly
// what the guest's flash held at that instant, so Kill then behaves like
// a power cut at the instant of Freeze (without it, writes QEMU still had
// in flight would be lost, which real NOR flash does not do).
func (m *Machine) Freeze() error {
	_, err := m.QMP(map[string]any{"execute": "stop"})
	return err
}

// QOMSet sets a QOM property of a device (QMP qom-set), e.g. the
// temperature of /machine/peripheral/inlet: the guest reads the new value
// from the emulated device from then on.
func (m *Machine) QOMSet(path, property string, value any) error {
	_, err := m.QMP(map[string]any{"execute": "qom-set", "arguments": map[string]any{"path": path, "property": property, "value": value}})
	return err
}

// QMP runs commands on a new QMP connection and returns their results.
func (m *Machine) QMP(cmds ...map[string]any) ([]any, error) {
	var conn net.Conn
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		// QEMU creates the socket a moment after it starts.
		if conn, err = net.DialTimeout("unix", m.qmp, 10*time.Second); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("QMP: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	dec := json.NewDecoder(conn)
	var greeting map[string]any
	if err := dec.Decode(&greeting); err != nil {
		return nil, fmt.Errorf("QMP greeting: %w", err)
	}
	var out []any
	enc := json.NewEncoder(conn)
	for i, c := range append([]map[string]any{{"execute": "qmp_capabilities"}}, cmds...) {
		if err := enc.Encode(c); err != nil {
			return nil, err
		}
		for {
			var r map[string]any
			if err := dec.Decode(&r); err != nil {
				return nil, fmt.Errorf("QMP %v: %w", c["execute"], err)
			}
			if e, ok := r["error"]; ok {
				return nil, fmt.Errorf("QMP %v %v: %v", c["execute"], c["arguments"], e)
			}
			if ret, ok := r["return"]; ok {
				if i > 0 {
					out = append(out, ret)
				}
				break
			}
			// an event (e.g. STOP): read on
		}
	}
	return out, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func FreeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// Prepare fetches the kernel, builds the ARMv7 cmcinit and cmcd and the
// initramfs into dir, and creates erased flash images there when missing
// (primary.img, backup.img): everything Boot needs but the port.
func Prepare(root, dir string, cfg CmcdConfig, log io.Writer) (Config, error) {
	k, err := FetchKernel(root, log)
	if err != nil {
		return Config{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Config{}, err
	}
	c := Config{Kernel: k, Initrd: filepath.Join(dir, "initrd.gz"),
		Primary: filepath.Join(dir, "primary.img"), Backup: filepath.Join(dir, "backup.img"),
		FRU: filepath.Join(dir, "fru.img")}
	initBin, cmcdBin := filepath.Join(dir, "cmcinit.armv7"), filepath.Join(dir, "cmcd.armv7")
	if err := BuildARMv7(root, "./cmd/cmcinit", initBin); err != nil {
		return Config{}, err
	}
	if err := BuildARMv7(root, "./cmd/cmcd", cmcdBin); err != nil {
		return Config{}, err
	}
	if err := BuildInitramfs(k, initBin, cmcdBin, cfg, c.Initrd); err != nil {
		return Config{}, err
	}
	for _, img := range []string{c.Primary, c.Backup} {
		if err := NewFlash(img); err != nil {
			return Config{}, err
		}
	}
	if err := NewFRUImage(c.FRU); err != nil {
		return Config{}, err
	}
	return c, nil
}
