package ipmi

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cmcd/board"
	"cmcd/board/ipmi/ipmitest"
)

// healthOfStatus maps ipmitool's threshold status column to a health.
func healthOfStatus(s string) board.Health {
	switch s {
	case "ok":
		return board.HealthOK
	case "unc", "lnc", "nc":
		return board.HealthWarning
	}
	return board.HealthCritical
}

func TestNodeMatchesIpmitool(t *testing.T) {
	sim := ipmitest.StartSim(t, testNode(1))
	src := newSource(t, []*ipmitest.Sim{sim})
	ctx := ctxT(t)

	// Push one sensor beyond a threshold so that states are compared too.
	sim.MustConsole(fmt.Sprintf("sensor_set_value 0x20 0 %d 210 0", snFan))  // 10500 RPM, no thresholds above
	sim.MustConsole(fmt.Sprintf("sensor_set_value 0x20 0 %d 186 0", snP12V)) // 11.16 V < LNC 11.4

	n, err := src.Node(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := parseSensorList(t, sim.MustIpmitool("sensor", "list"))
	if len(n.Sensors) != len(want) {
		t.Fatalf("collected %d sensors, ipmitool lists %d", len(n.Sensors), len(want))
	}
	for _, s := range n.Sensors {
		w, found := want[s.Name]
		if !found {
			t.Errorf("sensor %q not in ipmitool's list", s.Name)
			continue
		}
		if w.unit == "discrete" {
			v, err := strconv.ParseUint(strings.TrimPrefix(w.value, "0x"), 16, 16)
			if err != nil || float64(v) != s.Value {
				t.Errorf("%s: state %v, ipmitool %s", s.Name, s.Value, w.value)
			}
			continue
		}
		if got := fmtVal(s.Value); got != w.value {
			t.Errorf("%s: value %s, ipmitool %s", s.Name, got, w.value)
		}
		if h := healthOfStatus(w.status); h != s.Health {
			t.Errorf("%s: health %s, ipmitool status %s", s.Name, s.Health, w.status)
		}
	}
	// `ipmitool sdr list`: same sensors, same readings.
	sdr := map[string]string{}
	for _, line := range strings.Split(sim.MustIpmitool("sdr", "list"), "\n") {
		if f := strings.Split(line, "|"); len(f) == 3 {
			sdr[strings.TrimSpace(f[0])] = strings.TrimSpace(f[1])
		}
	}
	if len(sdr) != len(n.Sensors) {
		t.Errorf("ipmitool sdr list has %d sensors, collected %d", len(sdr), len(n.Sensors))
	}
	for _, s := range n.Sensors {
		reading, found := sdr[s.Name]
		if !found {
			t.Errorf("%s not in ipmitool sdr list", s.Name)
			continue
		}
		if s.Unit == "" {
			continue // discrete: ipmitool shows its state byte
		}
		v, err := strconv.ParseFloat(strings.Fields(reading)[0], 64)
		if err != nil || math.Abs(v-s.Value) > 0.005 {
			t.Errorf("%s: collected %v, ipmitool sdr list %q", s.Name, s.Value, reading)
		}
	}
	if n.Health != board.HealthWarning {
		t.Errorf("node health %s, want Warning (P12V below its lower non-critical threshold)", n.Health)
	}
	if n.PowerW != 200 || n.InletC != 25 || n.CPUC != 51 {
		t.Errorf("picked PowerW %v InletC %v CPUC %v, want 200 25 51", n.PowerW, n.InletC, n.CPUC)
	}
	if !strings.Contains(sim.MustIpmitool("power", "status"), "is on") || n.Power != board.PowerOn {
		t.Errorf("power %s, ipmitool: %s", n.Power, sim.MustIpmitool("power", "status"))
	}
	if !n.Reachable || !n.Present || n.Slot != 1 || n.Name != "node1" {
		t.Errorf("node identity %+v", n)
	}
}

func TestFRUMatchesIpmitool(t *testing.T) {
	sim := ipmitest.StartSim(t, testNode(3))
	src := newSource(t, []*ipmitest.Sim{sim})
	f, err := src.FRU(ctxT(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	w := parseColon(sim.MustIpmitool("fru", "print", "0"))
	for _, c := range []struct{ key, got string }{
		{"Chassis Type", f.ChassisType},
		{"Chassis Part Number", f.ChassisPart},
		{"Chassis Serial", f.ChassisSerial},
		{"Board Mfg", f.BoardMfg},
		{"Board Product", f.BoardProduct},
		{"Board Serial", f.BoardSerial},
		{"Board Part Number", f.BoardPart},
		{"Product Manufacturer", f.ProductMfg},
		{"Product Name", f.ProductName},
		{"Product Part Number", f.ProductPart},
		{"Product Version", f.ProductVersion},
		{"Product Serial", f.ProductSerial},
		{"Product Asset Tag", f.AssetTag},
	} {
		if w[c.key] == "" || w[c.key] != c.got {
			t.Errorf("%s: collected %q, ipmitool %q", c.key, c.got, w[c.key])
		}
	}
	// ipmitool prints "Wed May  1 12:30:00 2024 UTC" (ctime with TZ=UTC).
	date, err := time.Parse("Mon Jan _2 15:04:05 2006 MST", w["Board Mfg Date"])
	if err != nil {
		t.Fatalf("ipmitool Board Mfg Date %q: %v", w["Board Mfg Date"], err)
	}
	if !f.BoardMfgDate.Equal(date) {
		t.Errorf("Board Mfg Date %s, ipmitool %s", f.BoardMfgDate, date)
	}
}

// checkSEL compares the collected SEL with `ipmitool sel list`.
func checkSEL(t *testing.T, sim *ipmitest.Sim, got []board.SELEntry) {
	t.Helper()
	want := parseSELList(t, sim.MustIpmitool("sel", "list"))
	if len(got) != len(want) {
		t.Fatalf("collected %d SEL entries, ipmitool lists %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.RecordID != w.id {
			t.Errorf("entry %d: record %#04x, ipmitool %#04x", i, g.RecordID, w.id)
		}
		if w.preInit {
			if uint32(g.Time.Unix()) != w.secs {
				t.Errorf("record %#04x: time %d, ipmitool pre-init %d", w.id, g.Time.Unix(), w.secs)
			}
		} else if !g.Time.Equal(w.t) {
			t.Errorf("record %#04x: time %s, ipmitool %s", w.id, g.Time, w.t)
		}
		if !strings.Contains(strings.ToLower(g.Message), strings.ToLower(w.event)) {
			t.Errorf("record %#04x: message %q lacks ipmitool's event %q", w.id, g.Message, w.event)
		}
		if g.Deassertion != (w.dir == "Deasserted") {
			t.Errorf("record %#04x: deassertion %v, ipmitool %q", w.id, g.Deassertion, w.dir)
		}
	}
}

func TestSELIncremental(t *testing.T) {
	sim := ipmitest.StartSim(t, testNode(1))
	src := newSource(t, []*ipmitest.Sim{sim})
	ctx := ctxT(t)
	n := src.nodes[1]

	sel, err := src.SEL(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkSEL(t, sim, sel)
	if len(sel) != 5 || n.stats.selEntryReads != 5 {
		t.Fatalf("first read: %d entries with %d Get SEL Entry", len(sel), n.stats.selEntryReads)
	}
	if sel[1].Severity != board.SeverityCritical || sel[0].Severity != board.SeverityOK {
		t.Errorf("severities %s %s", sel[0].Severity, sel[1].Severity)
	}

	// Nothing new: one Get SEL Entry (the last entry, to confirm it).
	n.stats = stats{}
	if sel, err = src.SEL(ctx, 1); err != nil || len(sel) != 5 {
		t.Fatalf("unchanged SEL: %d entries, %v", len(sel), err)
	}
	if n.stats.selEntryReads > 1 {
		t.Errorf("unchanged SEL read %d entries", n.stats.selEntryReads)
	}

	// New entries, with the SEL clock set: only they are read.
	sim.SetSELTime()
	before := time.Now().Add(-2 * time.Second).UTC()
	sim.MustConsole(ipmitest.Event{SensorType: 0x0c, SensorNumber: snDIMM, EventType: 0x6f, Data: [3]byte{0x00, 0xff, 0xff}}.SELAdd())
	sim.MustConsole(fmt.Sprintf("sensor_set_value 0x20 0 %d 55 1", snInlet)) // UNC and UCR events
	n.stats = stats{}
	if sel, err = src.SEL(ctx, 1); err != nil {
		t.Fatal(err)
	}
	checkSEL(t, sim, sel)
	if len(sel) != 8 {
		t.Fatalf("after adding 3: %d entries", len(sel))
	}
	if n.stats.selEntryReads > 5 { // last-check, re-read of the last, 3 new
		t.Errorf("incremental read fetched %d entries for 3 new ones", n.stats.selEntryReads)
	}
	if n.stats.fullSELReads != 0 {
		t.Errorf("incremental read re-read the SEL whole")
	}
	for _, e := range sel[5:] {
		if e.Time.Before(before) || e.Time.After(time.Now().Add(2*time.Second)) {
			t.Errorf("record %#04x stamped %s, not now", e.RecordID, e.Time)
		}
	}
	if !strings.Contains(sel[7].Message, "Inlet Temp") || !strings.Contains(sel[7].Message, "reading 55 Cel, threshold 50 Cel") ||
		sel[7].Severity != board.SeverityCritical {
		t.Errorf("threshold event: %+v", sel[7])
	}

	// A deleted entry (no new erase time from ipmi_sim, but fewer
	// entries): read again whole.
	sim.MustIpmitool("sel", "delete", "2")
	n.stats = stats{}
	if sel, err = src.SEL(ctx, 1); err != nil {
		t.Fatal(err)
	}
	checkSEL(t, sim, sel)
	if len(sel) != 7 || n.stats.fullSELReads != 1 {
		t.Errorf("after delete: %d entries, %d full reads", len(sel), n.stats.fullSELReads)
	}

	// Cleared by someone else, then new entries: read again whole.
	sim.MustIpmitool("sel", "clear")
	sim.MustConsole(ipmitest.Event{SensorType: 0x08, SensorNumber: snPSU, EventType: 0x6f, Data: [3]byte{0x01, 0xff, 0xff}}.SELAdd())
	n.stats = stats{}
	if sel, err = src.SEL(ctx, 1); err != nil {
		t.Fatal(err)
	}
	checkSEL(t, sim, sel)
	if len(sel) != 1 || n.stats.fullSELReads != 1 {
		t.Errorf("after clear: %d entries, %d full reads", len(sel), n.stats.fullSELReads)
	}

	// Our own ClearSEL.
	if err := src.ClearSEL(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if e := parseColon(sim.MustIpmitool("sel", "info"))["Entries"]; e != "0" {
		t.Errorf("ipmitool sees %s entries after ClearSEL", e)
	}
	if sel, err = src.SEL(ctx, 1); err != nil || len(sel) != 0 {
		t.Errorf("after ClearSEL: %d entries, %v", len(sel), err)
	}
	checkSEL(t, sim, sel)
}

func TestSELOverflow(t *testing.T) {
	node := testNode(2)
	node.MaxSEL = 7
	sim := ipmitest.StartSim(t, node)
	src := newSource(t, []*ipmitest.Sim{sim})
	ctx := ctxT(t)
	if _, err := src.SEL(ctx, 1); err != nil {
		t.Fatal(err)
	}
	ev := ipmitest.Event{SensorType: 0x0c, SensorNumber: snDIMM, EventType: 0x6f, Data: [3]byte{0x00, 0xff, 0xff}}
	for i := 0; i < 4; i++ {
		_, _ = sim.Console(ev.SELAdd()) // the last two do not fit
	}
	if info := parseColon(sim.MustIpmitool("sel", "info")); info["Overflow"] != "true" || info["Entries"] != "7" {
		t.Fatalf("ipmi_sim SEL not full: %v", info)
	}
	sel, err := src.SEL(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkSEL(t, sim, sel)
	if len(sel) != 7 {
		t.Errorf("full SEL: %d entries", len(sel))
	}
}

func TestPowerControl(t *testing.T) {
	sim := ipmitest.StartSim(t, testNode(1))
	src := newSource(t, []*ipmitest.Sim{sim})
	ctx := ctxT(t)
	power := func() board.PowerState {
		n, err := src.Node(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		return n.Power
	}
	if err := src.SetPower(ctx, 1, board.ActionOff); err != nil {
		t.Fatal(err)
	}
	if p := power(); p != board.PowerOff || !strings.Contains(sim.MustIpmitool("power", "status"), "is off") {
		t.Fatalf("after ForceOff: %s, ipmitool %s", p, sim.MustIpmitool("power", "status"))
	}
	if err := src.SetPower(ctx, 1, board.ActionOn); err != nil {
		t.Fatal(err)
	}
	if p := power(); p != board.PowerOn || !strings.Contains(sim.MustIpmitool("power", "status"), "is on") {
		t.Fatalf("after On: %s", p)
	}
	// Cycle: off at once, on again about a second later (ipmi_sim's timer).
	if err := src.SetPower(ctx, 1, board.ActionCycle); err != nil {
		t.Fatal(err)
	}
	if p := power(); p != board.PowerOff {
		t.Errorf("right after PowerCycle: %s, want Off", p)
	}
	eventually(t, 5*time.Second, "node on again after PowerCycle", func() (bool, string) {
		p := power()
		return p == board.PowerOn, string(p)
	})
	if err := src.SetPower(ctx, 1, "GracefulRestart"); err == nil {
		t.Error("unsupported action accepted")
	}
}

func faultByCode(list []board.Fault, comp, code string) (board.Fault, bool) {
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Code == code && list[i].Component == comp {
			return list[i], true
		}
	}
	return board.Fault{}, false
}

func TestFaults(t *testing.T) {
	sim := ipmitest.StartSim(t, testNode(1))
	src := newSource(t, []*ipmitest.Sim{sim}, WithSensorMaxAge(0))
	ctx := ctxT(t)

	faults, err := src.Faults(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		comp, code string
		active     bool
	}{
		{"DIMM A1", "MEM_UNCORRECTABLE_ECC", true},
		{"CPU0 Status", "CPU_IERR", true},
		{"PSU1 Status", "PSU_FAILURE", true},
		// The SEL says CPU0 Temp crossed its critical threshold; it reads
		// 51 now, so that fault is no longer active.
		{"CPU0 Temp", "TEMP_UPPER_CRITICAL", false},
	} {
		f, found := faultByCode(faults, w.comp, w.code)
		if !found || f.Active != w.active || f.Severity != board.SeverityCritical {
			t.Errorf("fault %s %s: found %v %+v", w.comp, w.code, found, f)
		}
	}
	if len(faults) != 4 {
		t.Errorf("%d faults, want 4: %+v", len(faults), faults)
	}

	// Inlet over its critical threshold, with events.
	sim.SetSELTime()
	sim.MustConsole(fmt.Sprintf("sensor_set_value 0x20 0 %d 55 1", snInlet))
	if faults, err = src.Faults(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if f, ok := faultByCode(faults, "Inlet Temp", "TEMP_UPPER_CRITICAL"); !ok || !f.Active {
		t.Errorf("inlet critical fault: %v %+v", ok, f)
	}
	if f, ok := faultByCode(faults, "Inlet Temp", "TEMP_UPPER_NON_CRITICAL"); !ok || !f.Active || f.Severity != board.SeverityWarning {
		t.Errorf("inlet non-critical fault: %v %+v", ok, f)
	}
	if n, _ := src.Node(ctx, 1); n.Health != board.HealthCritical {
		t.Errorf("node health %s with inlet at 55 C", n.Health)
	}
	// A sensor state without a logged event raises a fault too.
	sim.MustConsole(fmt.Sprintf("sensor_set_bit 0x20 0 %d 1 1 0", snDIMM)) // uncorrectable ECC state, no event
	sim.MustConsole(fmt.Sprintf("sensor_set_bit 0x20 0 %d 2 1 0", snPSU))  // predictive failure, no event
	if faults, err = src.Faults(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if f, ok := faultByCode(faults, "PSU1 Status", "PSU_PREDICTIVE_FAILURE"); !ok || !f.Active || f.Severity != board.SeverityWarning {
		t.Errorf("PSU predictive failure from sensor state: %v %+v", ok, f)
	}
	nDIMM := 0
	for _, f := range faults {
		if f.Code == "MEM_UNCORRECTABLE_ECC" && f.Active {
			nDIMM++
		}
	}
	if nDIMM != 1 {
		t.Errorf("uncorrectable ECC open %d times (SEL event and sensor state are one condition)", nDIMM)
	}

	// Back to normal: the threshold faults close.
	sim.MustConsole(fmt.Sprintf("sensor_set_value 0x20 0 %d 25 1", snInlet))
	sim.MustConsole(fmt.Sprintf("sensor_set_bit 0x20 0 %d 2 0 0", snPSU))
	if faults, err = src.Faults(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"TEMP_UPPER_CRITICAL", "TEMP_UPPER_NON_CRITICAL"} {
		if f, ok := faultByCode(faults, "Inlet Temp", code); !ok || f.Active {
			t.Errorf("inlet %s after recovery: %v %+v", code, ok, f)
		}
	}
	if f, ok := faultByCode(faults, "PSU1 Status", "PSU_PREDICTIVE_FAILURE"); !ok || f.Active {
		t.Errorf("PSU predictive failure after the state cleared: %v %+v", ok, f)
	}

	// ClearFaults empties the history; the SEL entries seen do not come
	// back, conditions still present do.
	if err := src.ClearFaults(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if faults, err = src.Faults(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if len(faults) != 1 || faults[0].Code != "MEM_UNCORRECTABLE_ECC" || !faults[0].Active {
		t.Errorf("after ClearFaults: %+v", faults)
	}
	// Clearing the SEL keeps the fault history.
	if err := src.ClearSEL(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if f2, err := src.Faults(ctx, 1); err != nil || len(f2) != len(faults) {
		t.Errorf("after ClearSEL: %d faults (%v), had %d", len(f2), err, len(faults))
	}
}

// TestDeadNodeDoesNotBlockOthers freezes one BMC (requests time out), then
// kills it (requests are refused): that node goes unreachable with
// exponential backoff while the others keep answering at full speed; after
// a restart it comes back once its backoff expires.
func TestDeadNodeDoesNotBlockOthers(t *testing.T) {
	sims := make([]*ipmitest.Sim, 3)
	var wg sync.WaitGroup
	for i := range sims {
		wg.Add(1)
		go func() { defer wg.Done(); sims[i] = ipmitest.StartSim(t, testNode(i+1)) }()
	}
	wg.Wait()
	clock := ipmitest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var cfg Config
	for i, s := range sims {
		cfg.Nodes = append(cfg.Nodes, nodeConfig(i+1, s))
	}
	// Node 2's requests time out after 3s; a read of another node that
	// waited for it would take that long.
	const hang = 3 * time.Second
	cfg.Nodes[1].Timeout = Duration(hang)
	src, err := New(cfg, WithClock(clock), WithBackoff(Backoff{Min: 2 * time.Second, Max: 16 * time.Second}),
		WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	ctx := ctxT(t)
	for slot := 1; slot <= 3; slot++ {
		if _, err := src.Node(ctx, slot); err != nil {
			t.Fatalf("node %d: %v", slot, err)
		}
	}
	if _, err := src.SEL(ctx, 2); err != nil {
		t.Fatal(err)
	}

	// Hung BMC: node 2's request runs into its timeout while nodes 1 and 3
	// are read many times over.
	sims[1].Freeze()
	dead := make(chan error, 1)
	start := time.Now()
	go func() { _, err := src.Node(ctx, 2); dead <- err }()
	time.Sleep(50 * time.Millisecond)
	reads := 0
	for time.Since(start) < hang {
		for _, slot := range []int{1, 3} {
			t0 := time.Now()
			if _, err := src.Node(ctx, slot); err != nil {
				t.Fatalf("node %d while node 2 hangs: %v", slot, err)
			}
			if d := time.Since(t0); d > hang/2 {
				t.Errorf("node %d took %s while node 2 hangs", slot, d)
			}
			reads++
		}
	}
	err = <-dead
	var ue *UnreachableError
	if !errors.Is(err, board.ErrUnreachable) || !errors.As(err, &ue) {
		t.Fatalf("hung node: %v", err)
	}
	// One timeout on the session, half a timeout for a fresh one.
	if d := time.Since(start); d < hang*14/10 || d > 2*hang {
		t.Errorf("hung node reported after %s, want about 1.5 times its %s timeout", d, hang)
	}
	if reads < 4 {
		t.Errorf("only %d reads of the other nodes while node 2 hung", reads)
	}
	if got := ue.RetryAt.Sub(clock.Now()); got != 2*time.Second {
		t.Errorf("first backoff %s, want 2s", got)
	}
	n, _ := src.Node(ctx, 2)
	if n.Reachable || n.Slot != 2 || n.Present != true {
		t.Errorf("unreachable node reported as %+v", n)
	}

	// In backoff: refused at once, without I/O.
	t0 := time.Now()
	for _, call := range []func() error{
		func() error { _, err := src.Node(ctx, 2); return err },
		func() error { _, err := src.SEL(ctx, 2); return err },
		func() error { _, err := src.FRU(ctx, 2); return err },
		func() error { return src.SetPower(ctx, 2, board.ActionOn) },
	} {
		if err := call(); !errors.Is(err, board.ErrUnreachable) {
			t.Errorf("in backoff: %v", err)
		}
	}
	if d := time.Since(t0); d > 100*time.Millisecond {
		t.Errorf("calls in backoff took %s", d)
	}

	// Dead BMC: the next attempts fail (refused), the wait doubles.
	sims[1].Kill()
	for _, want := range []time.Duration{4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second} {
		clock.Advance(ue.RetryAt.Sub(clock.Now()))
		_, err := src.Node(ctx, 2)
		if !errors.As(err, &ue) {
			t.Fatalf("dead node: %v", err)
		}
		if got := ue.RetryAt.Sub(clock.Now()); got != want {
			t.Errorf("backoff %s, want %s", got, want)
		}
	}

	// Back after a restart (SEL replayed from its state directory), once
	// the backoff has run out.
	sims[1].Restart()
	if _, err := src.Node(ctx, 2); !errors.Is(err, board.ErrUnreachable) {
		t.Errorf("before the backoff ran out: %v", err)
	}
	clock.Advance(16 * time.Second)
	n, err = src.Node(ctx, 2)
	if err != nil || !n.Reachable {
		t.Fatalf("after restart: %v %+v", err, n)
	}
	sel, err := src.SEL(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	checkSEL(t, sims[1], sel)
	if len(sel) != 5 {
		t.Errorf("replayed SEL has %d entries", len(sel))
	}
	// Nodes 1 and 3 never noticed.
	for _, slot := range []int{1, 3} {
		if n, err := src.Node(ctx, slot); err != nil || !n.Reachable {
			t.Errorf("node %d: %v", slot, err)
		}
	}
}

// TestSessionLost restarts a BMC under an open session: the next request
// goes unanswered, and the collector carries on with a new session instead
// of declaring the node unreachable.
func TestSessionLost(t *testing.T) {
	sim := ipmitest.StartSim(t, testNode(1))
	src := newSource(t, []*ipmitest.Sim{sim})
	ctx := ctxT(t)
	if _, err := src.Node(ctx, 1); err != nil {
		t.Fatal(err)
	}
	sim.Restart()
	n, err := src.Node(ctx, 1)
	if err != nil || !n.Reachable {
		t.Fatalf("after the BMC restarted: %v", err)
	}
	if err := src.SetPower(ctx, 1, board.ActionOn); err != nil {
		t.Fatal(err)
	}
	// A power cycle is never sent twice: with the session lost again it
	// fails rather than being repeated on a new session.
	sim.Restart()
	if err := src.SetPower(ctx, 1, board.ActionCycle); !errors.Is(err, board.ErrUnreachable) {
		t.Errorf("power cycle on a lost session: %v", err)
	}
}

func TestClose(t *testing.T) {
	sim := ipmitest.StartSim(t, testNode(1))
	src := newSource(t, []*ipmitest.Sim{sim})
	ctx := ctxT(t)
	if _, err := src.Node(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Node(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if _, err := src.Node(ctx, 9); err == nil {
		t.Error("unknown slot accepted")
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestUnknownSlot(t *testing.T) {
	src, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Node(ctxT(t), 3); !errors.Is(err, board.ErrNoSuchNode) {
		t.Errorf("unknown slot: %v", err)
	}
	if len(src.Slots()) != 0 {
		t.Errorf("slots %v", src.Slots())
	}
}

func TestWrongPassword(t *testing.T) {
	sim := ipmitest.StartSim(t, testNode(1))
	cfg := nodeConfig(1, sim)
	cfg.Password = "wrong-password"
	src, err := New(Config{Nodes: []NodeConfig{cfg}}, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = src.Node(ctxT(t), 1)
	if !errors.Is(err, board.ErrUnreachable) || strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("wrong password: %v", err)
	}
}

// TestCrossCheckFreeIPMI compares the collector with a second independent
// implementation, FreeIPMI, on the same simulator.
func TestCrossCheckFreeIPMI(t *testing.T) {
	ipmitest.Need(t, "ipmi-sensors", "ipmi-sel", "ipmi-fru")
	sim := ipmitest.StartSim(t, testNode(4))
	src := newSource(t, []*ipmitest.Sim{sim})
	ctx := ctxT(t)

	n, err := src.Node(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	// ID,Name,Type,Reading,Units,Event
	values := map[string]string{}
	for _, line := range strings.Split(sim.MustFreeIPMI("ipmi-sensors", "--no-header-output", "--comma-separated-output"), "\n") {
		if f := strings.Split(line, ","); len(f) >= 6 {
			values[f[1]] = f[3]
		}
	}
	if len(values) != len(n.Sensors) {
		t.Errorf("ipmi-sensors lists %d sensors, collected %d", len(values), len(n.Sensors))
	}
	for _, s := range n.Sensors {
		v, found := values[s.Name]
		switch {
		case !found:
			t.Errorf("%s not listed by ipmi-sensors", s.Name)
		case v == "N/A":
			if s.Unit != "" {
				t.Errorf("%s: ipmi-sensors has no reading, collected %v %s", s.Name, s.Value, s.Unit)
			}
		case fmt.Sprintf("%.2f", s.Value) != v:
			t.Errorf("%s: collected %.2f, ipmi-sensors %s", s.Name, s.Value, v)
		}
	}

	sel, err := src.SEL(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(sim.MustFreeIPMI("ipmi-sel", "--no-header-output", "--comma-separated-output"), "\n") {
		if f := strings.Split(line, ","); len(f) >= 6 {
			ids = append(ids, f[0])
		}
	}
	if len(ids) != len(sel) {
		t.Fatalf("ipmi-sel lists %d entries, collected %d", len(ids), len(sel))
	}
	for i, e := range sel {
		if ids[i] != strconv.Itoa(int(e.RecordID)) {
			t.Errorf("entry %d: record %d, ipmi-sel %s", i, e.RecordID, ids[i])
		}
	}

	f, err := src.FRU(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	fru := parseColon(sim.MustFreeIPMI("ipmi-fru"))
	for key, got := range map[string]string{
		"FRU Chassis Type": f.ChassisType, "FRU Chassis Serial Number": f.ChassisSerial,
		"FRU Board Manufacturer": f.BoardMfg, "FRU Board Product Name": f.BoardProduct,
		"FRU Board Serial Number": f.BoardSerial, "FRU Product Name": f.ProductName,
		"FRU Product Version": f.ProductVersion, "FRU Product Asset Tag": f.AssetTag,
	} {
		if fru[key] != got {
			t.Errorf("%s: collected %q, ipmi-fru %q", key, got, fru[key])
		}
	}
}
