// Command cmcinit is the /init of a CMC board's initramfs (and of the
// emulated CMC, cross/qemu): it mounts /proc, /sys and /dev, loads the
// kernel modules listed in /lib/modules/load-order, attaches each image's
// flash data partition to UBI and mounts its UBIFS volume as that image's
// cmcd data area (/data/primary from the primary flash, /data/backup from
// the backup flash), brings up the network, then runs cmcd and restarts it
// when it exits. The steps are package cross/earlyboot; this file wires
// them. Before the data areas it performs the board's I2C set-up steps
// from /etc/i2c-init, if present (bind drivers to devices the device tree
// does not declare, write device registers; earlyboot.I2COp).
// Everything it does is printed to the console, prefixed "cmcinit:".
//
// Kernel command-line options (all optional):
//
//	cmcinit.primary=NAME    /proc/mtd name of the primary flash's data partition (default rwfs)
//	cmcinit.backup=NAME     the backup flash's (default alt-rwfs)
//	cmcinit.volume=NAME     UBI volume name of a data area (default cmcd-data)
//	cmcinit.ip=A.B.C.D/N    eth0's address (default 10.0.2.15/24, QEMU user networking)
//	cmcinit.time=UNIXSECS   set the clock first (the emulated CMC has no RTC driver)
//	cmcinit.verify          run "cmcd verify" on the data areas before cmcd starts
//	cmcinit.showpw          print the generated initial admin password (emulated CMC only)
//	cmcinit.stats=SECS      print cmcd's resident memory (VmRSS) every SECS seconds
//	cmcinit.shell           do not start cmcd (debugging)
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cmcd/cross/earlyboot"
)

const (
	dataRoot  = "/data"
	cmcdBin   = "/bin/cmcd"
	cmcdConf  = "/etc/cmcd.json"
	moduleDir = "/lib/modules"
	i2cInitF  = "/etc/i2c-init"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "cmcinit: "+format+"\n", args...)
}

func main() {
	start := time.Now()
	if err := boot(); err != nil {
		logf("FAILED: %v", err)
		logf("data areas not mounted, cmcd not started; powering off in 5 s")
		time.Sleep(5 * time.Second)
		earlyboot.PowerOff()
		select {}
	}
	logf("early boot done in %s", time.Since(start).Round(time.Millisecond))
	supervise()
}

var opt map[string]string

func option(k, def string) string {
	if v, ok := opt[k]; ok && v != "" {
		return v
	}
	return def
}

func boot() error {
	if err := earlyboot.MountBasics(); err != nil {
		return err
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	opt = earlyboot.Cmdline(string(cmdline), "cmcinit.")
	if v := opt["time"]; v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil {
			if err := earlyboot.SetClock(time.Unix(s, 0)); err != nil {
				logf("set clock: %v", err)
			}
		}
	}
	order, err := os.ReadFile(filepath.Join(moduleDir, "load-order"))
	if err != nil {
		return err
	}
	loaded, err := earlyboot.LoadModules(moduleDir, earlyboot.ModuleOrder(string(order)))
	if err != nil {
		return err
	}
	logf("loaded %d modules: %s", len(loaded), strings.Join(loaded, " "))
	i2cInit()
	if err := dataAreas(); err != nil {
		return err
	}
	if err := earlyboot.IfUp("lo", "", 0, time.Second); err != nil {
		return err
	}
	addr, bits, err := earlyboot.ParseCIDR(option("ip", "10.0.2.15/24"))
	if err != nil {
		return err
	}
	if err := earlyboot.IfUp("eth0", addr, bits, 15*time.Second); err != nil {
		return err
	}
	logf("eth0 up, %s/%d", addr, bits)
	return nil
}

// dataAreas mounts each image's data partition as its cmcd data area.
func dataAreas() error {
	parts := map[string]string{"primary": option("primary", "rwfs"), "backup": option("backup", "alt-rwfs")}
	for _, slot := range []string{"primary", "backup"} {
		m, err := earlyboot.WaitMTD(parts[slot], 15*time.Second)
		if err != nil {
			return err
		}
		if err := earlyboot.CheckUBI(m); err != nil {
			return err
		}
		ubi, err := earlyboot.AttachUBI(m.Num)
		if err != nil {
			return err
		}
		vol, err := earlyboot.EnsureVolume(ubi, option("volume", "cmcd-data"))
		if err != nil {
			return err
		}
		dir := filepath.Join(dataRoot, slot)
		if err := earlyboot.MountUBIFS(vol, dir); err != nil {
			return err
		}
		how := "existing volume"
		if vol.Created {
			how = "new volume"
		}
		logf("%s data area: mtd%d %q (%d KiB erase blocks) -> ubi%d -> %s (%s, %d KiB) on %s",
			slot, m.Num, m.Name, m.EraseSize>>10, ubi, vol.Source(), how, vol.Bytes>>10, dir)
	}
	if b, err := os.ReadFile("/proc/mtd"); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			logf("/proc/mtd: %s", l)
		}
	}
	return nil
}

// i2cInit binds the I2C devices the device tree does not declare and
// writes the set-up bytes of /etc/i2c-init (earlyboot.I2COp). A step that
// fails is logged and the boot goes on: cmcd reports the device as
// unreadable.
func i2cInit() {
	b, err := os.ReadFile(i2cInitF)
	if os.IsNotExist(err) {
		return
	}
	var ops []earlyboot.I2COp
	if err == nil {
		ops, err = earlyboot.ParseI2CInit(string(b))
	}
	if err != nil {
		logf("%s: %v", i2cInitF, err)
		return
	}
	for _, op := range ops {
		if err := earlyboot.ApplyI2C(op, 5*time.Second); err != nil {
			logf("i2c: %v", err)
			continue
		}
		logf("i2c: %s", op)
	}
}

// supervise runs cmcd, restarts it when it exits, and on
// SIGTERM stops cmcd and powers off.
func supervise() {
	if opt["shell"] != "" {
		logf("cmcinit.shell given: not starting cmcd")
		select {}
	}
	if opt["verify"] != "" {
		out, err := exec.Command(cmcdBin, "verify", "--data", dataRoot).CombinedOutput()
		for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			logf("verify: %s", l)
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		logf("cmcd verify exit %d", code)
	}
	if opt["showpw"] != "" {
		go showPassword()
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	for {
		cmd := exec.Command(cmcdBin, "run", "--config", cmcdConf)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			logf("start cmcd: %v", err)
			time.Sleep(2 * time.Second)
			continue
		}
		logf("cmcd started, pid %d", cmd.Process.Pid)
		done, exited := make(chan error, 1), make(chan struct{})
		go func() {
			err := cmd.Wait()
			close(exited)
			done <- err
		}()
		if secs, err := strconv.Atoi(opt["stats"]); err == nil && secs > 0 {
			go stats(cmd.Process.Pid, time.Duration(secs)*time.Second, exited)
		}
		select {
		case err := <-done:
			logf("cmcd exited: %v; restarting in 2 s", err)
			time.Sleep(2 * time.Second)
		case s := <-term:
			logf("%v: stopping cmcd", s)
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
			}
			logf("powering off")
			earlyboot.PowerOff()
		}
	}
}

// showPassword prints the initial admin password once cmcd has written it.
func showPassword() {
	p := filepath.Join(dataRoot, "initial-admin-password")
	for range 600 {
		if f, err := os.Open(p); err == nil {
			sc := bufio.NewScanner(f)
			if sc.Scan() && sc.Text() != "" {
				logf("initial admin password: %s", sc.Text())
				f.Close()
				return
			}
			f.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	logf("no initial admin password in %s after 60 s", p)
}

// stats prints cmcd's VmRSS every period until it exits.
func stats(pid int, period time.Duration, exited <-chan struct{}) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-exited:
			return
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				logf("cmcd pid %d %s", pid, strings.Join(strings.Fields(l), " "))
			}
		}
	}
}
