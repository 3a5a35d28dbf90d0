// Command qemucmc boots the emulated CMC (package cross/qemu) by hand, with
// its serial console on the terminal (Ctrl-A X quits QEMU): `make qemu`.
//
//	qemucmc [--dir bin/qemu] [--port 8080] [--ipmi-port 6230] [--append "cmcinit.showpw"]
//
// The flash images in --dir persist between runs (delete them for erased
// flash); Redfish answers on http://127.0.0.1:PORT/redfish/v1/.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"cmcd/cross/qemu"
)

func main() {
	dir := flag.String("dir", "bin/qemu", "work directory: initramfs, ARM binaries and the two flash images")
	port := flag.Int("port", 8080, "host port on 127.0.0.1 forwarded to the guest's Redfish (plain HTTP, port 80)")
	ipmiPort := flag.Int("ipmi-port", 6230, "UDP port on 127.0.0.1 forwarded to the guest's IPMI over LAN (623); 0: none")
	extra := flag.String("append", "cmcinit.showpw", "extra kernel command line (cmcinit.* options, see cmd/cmcinit)")
	flag.Parse()
	root, err := qemu.RepoRoot()
	if err != nil {
		fail(err)
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fail(err)
	}
	c, err := qemu.Prepare(root, abs, qemu.DefaultCmcdConfig(), os.Stderr)
	if err != nil {
		fail(err)
	}
	c.HostPort, c.IPMIPort, c.Append = *port, *ipmiPort, *extra
	args := append(c.Args(), "-nographic")
	fmt.Fprintf(os.Stderr, "qemucmc: %s; Redfish at http://127.0.0.1:%d/redfish/v1/, IPMI (ipmitool -I lanplus -p %d) once booted; Ctrl-A X quits\nqemu-system-arm %q\n",
		c.Kernel.Package, *port, *ipmiPort, args)
	cmd := exec.Command("qemu-system-arm", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "qemucmc:", err)
	os.Exit(1)
}
