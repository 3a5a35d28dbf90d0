package qemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
)

// inletStart is the emulated tmp105's temperature (°C) at every boot; the
// board profile's Inlet sensor warns at 35 and is critical at 45.
const inletStart = 26

// checkInletTemp checks that the tmp105 (lm75 driver, hwmon temp1_input,
// read by board/hw) is the enclosure's InletTemp sensor in Redfish, then
// changes its temperature through QMP and waits for Redfish to follow,
// with the profile's thresholds deciding its health.
func (b *booted) checkInletTemp(t *testing.T, chassis string) {
	t.Helper()
	doc, _ := b.waitSensor(t, chassis, "InletTemp", inletStart, 2*time.Minute)
	if doc["ReadingType"] != "Temperature" || doc["ReadingUnits"] != "Cel" || doc["PhysicalContext"] != "Intake" {
		t.Errorf("InletTemp: %v", doc)
	}
	for _, step := range []struct {
		c      float64
		health string
	}{{33.5, "OK"}, {46, "Critical"}, {38.5, "Warning"}} {
		if err := b.m.QOMSet("/machine/peripheral/inlet", "temperature", int(step.c*1000)); err != nil {
			t.Fatal(err)
		}
		doc, took := b.waitSensor(t, chassis, "InletTemp", step.c, 2*time.Minute)
		st, _ := doc["Status"].(map[string]any)
		if st["Health"] != step.health {
			t.Errorf("InletTemp at %v °C: health %v, want %s (profile: warning 35, critical 45)", step.c, st["Health"], step.health)
		}
		t.Logf("tmp105 set to %v °C in QEMU (qom-set): Redfish InletTemp followed after %s, health %v",
			step.c, took.Round(100*time.Millisecond), st["Health"])
	}
}

// checkPeers drives the guest with the real clients: the gofish Redfish
// client and DMTF's redfishtool over the forwarded HTTP port, and
// ipmitool -I lanplus over the forwarded IPMI (RMCP+) port; what they
// read must be what was set in QEMU and what Redfish shows.
func (b *booted) checkPeers(t *testing.T, chassis string, inletC float64) {
	t.Helper()
	b.checkGofish(t, chassis, inletC)
	b.checkRedfishtool(t, chassis, inletC)
	b.checkIpmitool(t, chassis)
}

func (b *booted) checkGofish(t *testing.T, chassis string, inletC float64) {
	t.Helper()
	c, err := gofish.Connect(gofish.ClientConfig{Endpoint: b.base, Username: "admin", Password: b.password})
	if err != nil {
		t.Fatalf("gofish: %v", err)
	}
	defer c.Logout()
	all, err := c.Service.Chassis()
	if err != nil {
		t.Fatalf("gofish Chassis: %v", err)
	}
	var enc *schemas.Chassis
	for _, ch := range all {
		if ch.ODataID == chassis {
			enc = ch
		}
	}
	if enc == nil {
		t.Fatalf("gofish: no chassis %s among %d", chassis, len(all))
	}
	p, err := enc.Power()
	if err != nil {
		t.Fatalf("gofish Power: %v", err)
	}
	if len(p.PowerSupplies) != 2 {
		t.Fatalf("gofish: %d power supplies", len(p.PowerSupplies))
	}
	for i, ps := range p.PowerSupplies {
		want := psuSet[fmt.Sprintf("psu%d", i+1)]
		if ps.LineInputVoltage == nil || ps.LastPowerOutputWatts == nil ||
			math.Abs(float64(*ps.LineInputVoltage)-want.vin) > 0.01 || math.Abs(float64(*ps.LastPowerOutputWatts)-want.pout) > 0.01 {
			t.Errorf("gofish %s: LineInputVoltage %v LastPowerOutputWatts %v, want %v V %v W (set in QEMU)",
				ps.Name, deref(ps.LineInputVoltage), deref(ps.LastPowerOutputWatts), want.vin, want.pout)
		}
		if ps.Status.Health != "OK" {
			t.Errorf("gofish %s: health %v", ps.Name, ps.Status.Health)
		}
	}
	th, err := enc.Thermal()
	if err != nil {
		t.Fatalf("gofish Thermal: %v", err)
	}
	found := false
	for _, x := range th.Temperatures {
		if x.Name == "Inlet Temp" && x.ReadingCelsius != nil && math.Abs(*x.ReadingCelsius-inletC) < 0.01 {
			found = true
		}
	}
	if !found {
		t.Errorf("gofish Thermal: no Inlet Temp reading %v °C among %d temperatures", inletC, len(th.Temperatures))
	}
	sensors, err := enc.Sensors()
	if err != nil {
		t.Fatalf("gofish Sensors: %v", err)
	}
	seen := 0
	for _, s := range sensors {
		if s.ID == "PSU2OutputCurrent" && s.Reading != nil && math.Abs(*s.Reading-psuSet["psu2"].iout) < 0.01 {
			seen++
		}
		if s.ID == "InletTemp" && string(s.ReadingType) == "Temperature" && s.Reading != nil && math.Abs(*s.Reading-inletC) < 0.01 {
			seen++
		}
	}
	if seen != 2 {
		t.Errorf("gofish Sensors (%d): PSU2OutputCurrent %v A and InletTemp %v °C not both found", len(sensors), psuSet["psu2"].iout, inletC)
	}
	t.Logf("gofish %s: %d power supplies, %d temperatures, %d sensors, readings as set in QEMU", chassis, len(p.PowerSupplies), len(th.Temperatures), len(sensors))
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// redfishtool runs DMTF's redfishtool as admin against the forwarded
// plain-HTTP port and decodes its JSON output.
func (b *booted) redfishtool(t *testing.T, args ...string) map[string]any {
	t.Helper()
	host := strings.TrimPrefix(b.base, "http://")
	cmd := exec.Command("redfishtool", append([]string{"-r", host, "-S", "Never", "-T", "60", "-u", "admin", "-p", b.password}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("redfishtool %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("redfishtool %v: not JSON: %v\n%s", args, err, out.String())
	}
	return m
}

func (b *booted) checkRedfishtool(t *testing.T, chassis string, inletC float64) {
	t.Helper()
	if _, err := exec.LookPath("redfishtool"); err != nil {
		t.Fatal("redfishtool is not installed (make test installs it: scripts/apt-packages.txt)")
	}
	id := chassis[strings.LastIndex(chassis, "/")+1:]
	p := b.redfishtool(t, "Chassis", "-I", id, "Power")
	supplies, _ := p["PowerSupplies"].([]any)
	if len(supplies) != 2 {
		t.Fatalf("redfishtool Chassis -I %s Power: %v", id, p)
	}
	for i, x := range supplies {
		ps := x.(map[string]any)
		want := psuSet[fmt.Sprintf("psu%d", i+1)]
		if ps["LineInputVoltage"] != want.vin || ps["LastPowerOutputWatts"] != want.pout {
			t.Errorf("redfishtool %v: %v V %v W, want %v V %v W", ps["Name"], ps["LineInputVoltage"], ps["LastPowerOutputWatts"], want.vin, want.pout)
		}
	}
	th := b.redfishtool(t, "Chassis", "-I", id, "Thermal")
	found := false
	temps, _ := th["Temperatures"].([]any)
	for _, x := range temps {
		m := x.(map[string]any)
		if m["Name"] == "Inlet Temp" && m["ReadingCelsius"] == inletC && m["UpperThresholdCritical"] == 45.0 {
			found = true
		}
	}
	if !found {
		t.Errorf("redfishtool Chassis -I %s Thermal: no Inlet Temp at %v °C with critical 45: %v", id, inletC, temps)
	}
	t.Logf("redfishtool Chassis -I %s Power/Thermal: PSU readings and the inlet temperature as set in QEMU", id)
}

// ipmitool runs ipmitool -I lanplus (cipher suite 17) as admin against
// the forwarded IPMI port.
func (b *booted) ipmitool(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("ipmitool", append([]string{"-I", "lanplus", "-C", "17", "-H", "127.0.0.1", "-p", strconv.Itoa(b.ipmiPort),
		"-U", "admin", "-P", b.password, "-N", "5", "-R", "4"}, args...)...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ipmitool %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return out.String()
}

var sdrLine = regexp.MustCompile(`(?m)^(PSU\d \w+(?: \w+)?)\s*\|\s*([-0-9.]+) (\w+)`)

func (b *booted) checkIpmitool(t *testing.T, chassis string) {
	t.Helper()
	if _, err := exec.LookPath("ipmitool"); err != nil {
		t.Fatal("ipmitool not found: run scripts/install-deps.sh")
	}
	mc := b.ipmitool(t, "mc", "info")
	if !regexp.MustCompile(`IPMI Version\s*:\s*2\.0`).MatchString(mc) {
		t.Errorf("ipmitool mc info:\n%s", mc)
	}
	// The SDR readings against Redfish's, within one step of each
	// sensor's resolution (ipmisrv: Vin 2 V, power 10 W at 1600 W, 1 °C).
	sdr := b.ipmitool(t, "sdr", "list")
	got := map[string]float64{}
	for _, m := range sdrLine.FindAllStringSubmatch(sdr, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		got[strings.TrimSpace(m[1])] = v
	}
	for i := 1; i <= 2; i++ {
		for _, x := range []struct {
			sdr, redfish string
			step         float64
		}{{"Vin", "InputVoltage", 2}, {"Power Out", "OutputPower", 10}, {"Temp", "Temp", 1}} {
			name := fmt.Sprintf("PSU%d %s", i, x.sdr)
			rf := b.get(t, fmt.Sprintf("%s/Sensors/PSU%d%s", chassis, i, x.redfish))["Reading"].(float64)
			v, ok := got[name]
			if !ok || math.Abs(v-rf) > x.step {
				t.Errorf("ipmitool sdr %q = %v (listed %v), Redfish PSU%d%s = %v", name, v, ok, i, x.redfish, rf)
			}
		}
	}
	// Chassis status against the PSUs' health in Redfish.
	cs := b.ipmitool(t, "chassis", "status")
	fault := regexp.MustCompile(`Main Power Fault\s*:\s*(true|false)`).FindStringSubmatch(cs)
	anyCritical := false
	for i := 1; i <= 2; i++ {
		if st := b.get(t, fmt.Sprintf("%s/PowerSubsystem/PowerSupplies/%d", chassis, i))["Status"].(map[string]any); st["Health"] == "Critical" {
			anyCritical = true
		}
	}
	if fault == nil || (fault[1] == "true") != anyCritical {
		t.Errorf("ipmitool chassis status (Redfish: a PSU critical = %v):\n%s", anyCritical, cs)
	}
	sel := b.ipmitool(t, "sel", "list")
	if n := strings.Count(strings.TrimSpace(sel), "\n") + 1; strings.TrimSpace(sel) == "" || n < 3 {
		t.Errorf("ipmitool sel list: %d entries\n%s", n, sel)
	}
	t.Logf("ipmitool -I lanplus over the forwarded UDP port %d: mc info IPMI 2.0, %d PSU SDR readings match Redfish, chassis status power fault %s, sel list %d lines",
		b.ipmiPort, len(got), fault[1], strings.Count(sel, "\n"))
}
