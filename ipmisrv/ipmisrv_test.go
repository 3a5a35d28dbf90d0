package ipmisrv_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"cmcd/board"
	"cmcd/ipmisrv"
	"cmcd/syncsel"
)

// expSEL is one entry of the merged SEL as the stores say it must be.
type expSEL struct {
	id     uint16
	time   time.Time
	source int
	seq    uint64
}

// expectedSEL builds the merged SEL from the store's CMC event log and
// node SELs, with the documented record IDs and order.
func expectedSEL(t *testing.T, s *syncsel.Store, after map[int]uint64) []expSEL {
	t.Helper()
	var out []expSEL
	evs, err := s.Events()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.ID > after[0] {
			out = append(out, expSEL{ipmisrv.SELRecordID(0, e.ID), e.Time, 0, e.ID})
		}
	}
	nodes, err := s.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		sel, err := s.SEL(n.Slot)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range sel {
			if e.Seq > after[n.Slot] {
				out = append(out, expSEL{ipmisrv.SELRecordID(n.Slot, e.Seq), e.Entry.Time, n.Slot, e.Seq})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.time.Equal(b.time) {
			return a.time.Before(b.time)
		}
		if a.source != b.source {
			return a.source < b.source
		}
		return a.seq < b.seq
	})
	return out
}

// parseTable splits "a | b | c" lines into trimmed fields.
func parseTable(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "|") {
			continue
		}
		var row []string
		for _, f := range strings.Split(line, "|") {
			row = append(row, strings.TrimSpace(f))
		}
		rows = append(rows, row)
	}
	return rows
}

// colon parses "Key : value" lines.
func colon(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// expSensor is what a sensor must read, from the store, and the
// resolution of its documented linearisation.
type expSensor struct {
	value float64
	step  float64
	unit  string // ipmitool's unit word
}

func expectedSensors(t *testing.T, s *syncsel.Store) map[string]expSensor {
	t.Helper()
	psus, _ := s.PSUs()
	fans, _ := s.Fans()
	nodes, _ := s.Nodes()
	m := map[string]expSensor{}
	var total, capSum float64
	for _, p := range psus {
		if !p.Present {
			continue
		}
		total += p.OutputW
		capSum += p.CapacityW
		m[fmt.Sprintf("PSU%d Power Out", p.ID)] = expSensor{p.OutputW, 10, "Watts"} // 2000 W x 1.25 / 255 -> 10
		m[fmt.Sprintf("PSU%d Vin", p.ID)] = expSensor{p.InputV, 2, "Volts"}
		m[fmt.Sprintf("PSU%d Temp", p.ID)] = expSensor{p.TempC, 1, "degrees C"}
	}
	for _, f := range fans {
		m[fmt.Sprintf("Fan%d", f.ID)] = expSensor{float64(f.RPM), 100, "RPM"} // 16000 x 1.25 / 255 -> 100
	}
	m["Chassis Power"] = expSensor{total, 50, "Watts"} // 3 x 2000 x 1.25 / 255 -> 50
	var nodesW, inlet float64
	for _, n := range nodes {
		nodesW += n.PowerW
		inlet = math.Max(inlet, n.InletC)
		m[fmt.Sprintf("Node%d Power", n.Slot)] = expSensor{n.PowerW, 5, "Watts"}
		m[fmt.Sprintf("Node%d Inlet", n.Slot)] = expSensor{n.InletC, 1, "degrees C"}
		m[fmt.Sprintf("Node%d CPU Temp", n.Slot)] = expSensor{n.CPUC, 1, "degrees C"}
	}
	m["Nodes Power"] = expSensor{nodesW, 20, "Watts"} // 3 x 1000 / 255 -> 20
	m["Inlet Temp Max"] = expSensor{inlet, 1, "degrees C"}
	return m
}

func checkReading(t *testing.T, who, name, got string, want expSensor) {
	t.Helper()
	fields := strings.Fields(got)
	if len(fields) == 0 {
		t.Errorf("%s: %s: empty reading", who, name)
		return
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || math.Abs(v-want.value) > want.step/2+1e-6 {
		t.Errorf("%s: %s reads %q, the store holds %.3f (resolution %g)", who, name, got, want.value, want.step)
	}
}

// TestIpmitool runs ipmitool -I lanplus with cipher suites 17 and 3 and
// checks every answer against the store and the state the responder
// keeps.
func TestIpmitool(t *testing.T) {
	need(t, "ipmitool")
	f := newFixture(t, 3, 40, nil)
	st, err := os.ReadFile(filepath.Join(f.dir, ipmisrv.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, suite := range []string{"17", "3"} {
		t.Run("C"+suite, func(t *testing.T) {
			mc := colon(f.ipmitool(suite, "mc", "info"))
			if mc["IPMI Version"] != "2.0" || mc["Firmware Revision"] != "1.07" || mc["Device Available"] != "yes" ||
				mc["Manufacturer ID"] != "32473" {
				t.Errorf("mc info: %v", mc)
			}
			guid := colon(f.ipmitool(suite, "mc", "guid"))
			if g := guid["System GUID"]; g == "" || !strings.Contains(string(st), `"systemGuid": "`+g+`"`) ||
				guid["GUID Encoding"] != "IPMI" {
				t.Errorf("mc guid %v; state file %s", guid, st)
			}
			cs := colon(f.ipmitool(suite, "chassis", "status"))
			// All nodes on; PSU3 failed in the fixture.
			if cs["System Power"] != "on" || cs["Main Power Fault"] != "true" || cs["Last Power Event"] != "fault" {
				t.Errorf("chassis status: %v", cs)
			}
			if out := f.ipmitool(suite, "chassis", "power", "status"); !strings.Contains(out, "Chassis Power is on") {
				t.Errorf("power status: %s", out)
			}

			want := expectedSEL(t, f.store, nil)
			info := colon(f.ipmitool(suite, "sel", "info"))
			if info["Entries"] != strconv.Itoa(len(want)) {
				t.Errorf("sel info entries %q, store %d", info["Entries"], len(want))
			}
			rows := parseTable(f.ipmitool(suite, "sel", "list"))
			if len(rows) != len(want) {
				t.Fatalf("sel list: %d entries, store %d", len(rows), len(want))
			}
			for i, r := range rows {
				id, _ := strconv.ParseUint(r[0], 16, 16)
				stamp := want[i].time.UTC().Format("01/02/06") + " " + want[i].time.UTC().Format("15:04:05")
				if uint16(id) != want[i].id || r[1]+" "+strings.TrimSuffix(r[2], " UTC") != stamp {
					t.Errorf("sel list row %d: %v, want id %x at %s (source %d seq %d)", i, r, want[i].id, stamp, want[i].source, want[i].seq)
				}
			}
			// A node entry's generator ID tells its node.
			last := want[len(want)-1]
			for _, w := range want {
				if w.source > 0 {
					last = w
				}
			}
			get := colon(f.ipmitool(suite, "sel", "get", fmt.Sprintf("0x%x", last.id)))
			if g := fmt.Sprintf("%04x", ipmisrv.NodeGeneratorID(last.source)); get["Generator ID"] != g {
				t.Errorf("sel get %x: generator %q, want %s: %v", last.id, get["Generator ID"], g, get)
			}

			sensors := expectedSensors(t, f.store)
			seen := 0
			for _, r := range parseTable(f.ipmitool(suite, "sdr", "list")) {
				if w, ok := sensors[r[0]]; ok {
					seen++
					checkReading(t, "sdr list", r[0], r[1], w)
					if !strings.HasSuffix(r[1], w.unit) {
						t.Errorf("sdr list %s: %q, unit %s", r[0], r[1], w.unit)
					}
				}
			}
			if seen != len(sensors) {
				t.Errorf("sdr list shows %d of the %d sensors", seen, len(sensors))
			}
			seen = 0
			for _, r := range parseTable(f.ipmitool(suite, "sensor", "list")) {
				if w, ok := sensors[r[0]]; ok {
					seen++
					checkReading(t, "sensor list", r[0], r[1], w)
				}
				if r[0] == "PSU1 Power Out" && (r[7] != "1800.000" || r[8] != "2000.000") {
					t.Errorf("PSU1 Power Out thresholds (UNC, UCR) %s %s, want 90%% and 100%% of its 2000 W", r[7], r[8])
				}
				if r[0] == "PSU3 Status" && r[1] != "0x3" {
					t.Errorf("PSU3 (failed) status %s, want presence + failure (0x3)", r[1])
				}
			}
			if seen != len(sensors) {
				t.Errorf("sensor list shows %d of the %d sensors", seen, len(sensors))
			}

			checkFRU(t, f, f.ipmitool(suite, "fru", "print"), "Product Name", "Board Serial", "Product Serial")

			psus, _ := f.store.PSUs()
			var total float64
			for _, p := range psus {
				total += p.OutputW
			}
			dcmi := f.ipmitool(suite, "dcmi", "power", "reading")
			if m := regexp.MustCompile(`Instantaneous power reading:\s+(\d+) Watts`).FindStringSubmatch(dcmi); m == nil ||
				m[1] != strconv.Itoa(int(math.Round(total))) {
				t.Errorf("dcmi power reading: %s\nstore total %.1f W", dcmi, total)
			}
		})
	}
}

// checkFRU compares a fru print listing (ipmitool's or ipmi-fru's
// labels) with the store's asset records: FRU 0 the enclosure, N node N.
func checkFRU(t *testing.T, f *fixture, out string, productName, boardSerial, productSerial string) {
	t.Helper()
	assets, err := f.store.Assets()
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile(`\(ID (?:0x)?0*([0-9a-fA-F]*)h?\)`).Split(out, -1)
	ids := regexp.MustCompile(`\(ID (?:0x)?0*([0-9a-fA-F]*)h?\)`).FindAllStringSubmatch(out, -1)
	if len(ids) != len(assets) {
		t.Fatalf("FRU listing has %d devices, the store %d:\n%s", len(ids), len(assets), out)
	}
	for i, m := range ids {
		id, _ := strconv.ParseInt("0"+m[1], 16, 32)
		var want board.FRU
		found := false
		for _, a := range assets {
			if a.Slot == int(id) {
				want, found = a.FRU, true
			}
		}
		got := colon(blocks[i+1])
		if !found || got[productName] != want.ProductName || got[productSerial] != want.ProductSerial ||
			(want.BoardSerial != "" && got[boardSerial] != want.BoardSerial) {
			t.Errorf("FRU %d: %v\nstore: %+v", id, got, want)
		}
	}
}

// TestFreeIPMI runs FreeIPMI's tools (no workaround flags) against the
// responder and checks them against the store.
func TestFreeIPMI(t *testing.T) {
	need(t, "bmc-info", "ipmi-sel", "ipmi-sensors", "ipmi-fru", "ipmi-dcmi")
	f := newFixture(t, 3, 10, nil)
	for _, suite := range []string{"17", "3"} {
		t.Run("I"+suite, func(t *testing.T) {
			info := colon(f.freeipmi("bmc-info", suite))
			st, _ := os.ReadFile(filepath.Join(f.dir, ipmisrv.StateFile))
			if info["IPMI Version"] != "2.0" || info["Firmware Revision"] != "1.07" || info["SEL Device"] != "supported" ||
				!strings.Contains(string(st), `"systemGuid": "`+info["System GUID"]+`"`) ||
				!strings.Contains(string(st), `"deviceGuid": "`+info["Device GUID"]+`"`) {
				t.Errorf("bmc-info: %v\nstate: %s", info, st)
			}
			want := expectedSEL(t, f.store, nil)
			rows := parseTable(f.freeipmi("ipmi-sel", suite))[1:] // header
			if len(rows) != len(want) {
				t.Fatalf("ipmi-sel: %d entries, store %d", len(rows), len(want))
			}
			for i, r := range rows {
				if r[0] != strconv.Itoa(int(want[i].id)) || r[2] != want[i].time.UTC().Format("15:04:05") {
					t.Errorf("ipmi-sel row %d: %v, want id %d at %s", i, r, want[i].id, want[i].time.UTC())
				}
			}
			sensors := expectedSensors(t, f.store)
			seen := 0
			for _, r := range parseTable(f.freeipmi("ipmi-sensors", suite))[1:] {
				if w, ok := sensors[r[1]]; ok {
					seen++
					checkReading(t, "ipmi-sensors", r[1], r[3], w)
				}
				if r[1] == "PSU3 Status" && !strings.Contains(r[5], "Power Supply Failure detected") {
					t.Errorf("ipmi-sensors: failed PSU3: %v", r)
				}
			}
			if seen != len(sensors) {
				t.Errorf("ipmi-sensors shows %d of the %d sensors", seen, len(sensors))
			}
			checkFRU(t, f, f.freeipmi("ipmi-fru", suite), "FRU Product Name", "FRU Board Serial Number", "FRU Product Serial Number")
			psus, _ := f.store.PSUs()
			var total float64
			for _, p := range psus {
				total += p.OutputW
			}
			dc := colon(f.freeipmi("ipmi-dcmi", suite, "--get-system-power-statistics"))
			if dc["Current Power"] != fmt.Sprintf("%d Watts", int(math.Round(total))) || dc["Power Measurement"] != "Active" {
				t.Errorf("ipmi-dcmi: %v, store total %.1f W", dc, total)
			}
		})
	}
}

// TestSELClear clears the merged SEL with ipmitool: the listing empties,
// the stores keep their data, new CMC and node events appear with their
// stable IDs, and the clear survives a restart of the responder.
func TestSELClear(t *testing.T) {
	need(t, "ipmitool", "ipmi-sel")
	f := newFixture(t, 2, 5, nil)
	before := expectedSEL(t, f.store, nil)
	// A reader (IPMI USER) may not clear.
	if _, err := f.ipmitoolAs("17", "reader", readerPW, "-L", "USER", "sel", "clear"); err == nil {
		t.Error("sel clear as USER accepted")
	}
	// Reservations: a Reserve SEL cancels the previous one; Clear SEL and
	// a partial Get SEL Entry need the current one.
	rsv := func() []string { return strings.Fields(f.ipmitool("17", "raw", "0x0a", "0x42")) }
	old, cur := rsv(), rsv()
	if _, err := f.ipmitoolAs("17", "admin", adminPW, "raw", "0x0a", "0x47", "0x"+old[0], "0x"+old[1],
		"0x43", "0x4c", "0x52", "0xaa"); err == nil || !strings.Contains(err.Error(), "rsp=0xc5") {
		t.Errorf("Clear SEL with a cancelled reservation: %v", err)
	}
	if _, err := f.ipmitoolAs("17", "admin", adminPW, "raw", "0x0a", "0x43", "0x"+old[0], "0x"+old[1], "0x00", "0x00",
		"0x02", "0x04"); err == nil || !strings.Contains(err.Error(), "rsp=0xc5") {
		t.Errorf("partial Get SEL Entry with a cancelled reservation: %v", err)
	}
	if out, err := f.ipmitoolAs("17", "admin", adminPW, "raw", "0x0a", "0x43", "0x"+cur[0], "0x"+cur[1], "0x00", "0x00",
		"0x02", "0x04"); err != nil || len(strings.Fields(out)) != 6 {
		t.Errorf("partial Get SEL Entry with the current reservation: %v %q", err, out)
	}
	if n := len(expectedSEL(t, f.store, nil)); n != len(before) {
		t.Fatalf("the SEL changed: %d entries", n)
	}
	if out := f.ipmitool("17", "sel", "clear"); !strings.Contains(out, "Clearing SEL") {
		t.Errorf("sel clear: %s", out)
	}
	if info := colon(f.ipmitool("17", "sel", "info")); info["Entries"] != "0" || info["Last Del Time"] == "Not Available" {
		t.Errorf("after clear: %v", info)
	}
	if n, _, _ := f.store.Count(syncsel.CatSEL); n == 0 {
		t.Error("Clear SEL removed the stored node SELs")
	}
	if evs, _ := f.store.Events(); len(evs) != 4 {
		t.Errorf("Clear SEL changed the CMC event log: %d events", len(evs))
	}
	// New events after the clear.
	ev, err := f.store.AppendEvent(syncsel.Event{Time: t0.Add(time.Hour), Kind: "Alarm", Severity: "Critical", Message: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.chassis.InjectSEL(2, board.SELEntry{Time: t0.Add(2 * time.Hour), SensorType: 0x01, SensorNumber: 9,
		EventType: 0x01, EventData: [3]byte{0x09, 0xff, 0xff}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.coll.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	marks := map[int]uint64{}
	for _, e := range before {
		marks[e.source] = max(marks[e.source], e.seq)
	}
	want := expectedSEL(t, f.store, marks)
	check := func(what string) {
		t.Helper()
		rows := parseTable(f.ipmitool("17", "sel", "list"))
		if len(rows) != 2 || len(want) != 2 {
			t.Fatalf("%s: sel list %v, want %v", what, rows, want)
		}
		for i, r := range rows {
			if r[0] != fmt.Sprintf("%x", want[i].id) {
				t.Errorf("%s: row %d id %s, want %x", what, i, r[0], want[i].id)
			}
		}
		if want[0].source != 0 || want[0].seq != ev.ID || want[1].source != 2 {
			t.Errorf("%s: new entries %+v", what, want)
		}
	}
	check("after new events")
	// The clear marks are kept across a restart.
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
	f.start()
	check("after a restart")
	if rows := parseTable(f.freeipmi("ipmi-sel", "17"))[1:]; len(rows) != 2 {
		t.Errorf("ipmi-sel after clear: %v", rows)
	}
}

// TestSDRRepositoryChange takes a node out of the chassis: the SDR
// repository's timestamps move, its sensors and FRU disappear from
// ipmitool and from FreeIPMI (whose SDR cache must notice the change).
func TestSDRRepositoryChange(t *testing.T) {
	need(t, "ipmitool", "ipmi-sensors")
	f := newFixture(t, 3, 0, nil)
	repoInfo := func() (count int, add, erase string) {
		out := strings.Fields(f.ipmitool("17", "raw", "0x0a", "0x20"))
		if len(out) < 14 {
			t.Fatalf("Get SDR Repository Info: %v", out)
		}
		c, _ := strconv.ParseUint(out[2]+out[1], 16, 16)
		return int(c), strings.Join(out[5:9], ""), strings.Join(out[9:13], "")
	}
	if out := f.freeipmi("ipmi-sensors", "17"); !strings.Contains(out, "Node3 CPU Temp") {
		t.Fatalf("ipmi-sensors before: %s", out)
	}
	n1, add1, erase1 := repoInfo()
	f.skew.Store(int64(time.Minute)) // the change happens a minute later
	f.setData(withoutNode{f.store, 3})
	n2, add2, erase2 := repoInfo()
	if n2 != n1-4 || add2 == add1 || erase2 == erase1 {
		t.Errorf("SDR repository after node 3 left: %d records (was %d), added %s (was %s), erased %s (was %s)",
			n2, n1, add2, add1, erase2, erase1)
	}
	if out := f.ipmitool("17", "sdr", "list"); strings.Contains(out, "Node3") || !strings.Contains(out, "Node2 CPU Temp") {
		t.Errorf("sdr list after node 3 left:\n%s", out)
	}
	// FreeIPMI compares the repository's timestamps with its SDR cache's.
	if _, err := f.freeipmiErr("ipmi-sensors", "17"); err == nil || !strings.Contains(err.Error(), "out of date") {
		t.Errorf("FreeIPMI did not see the SDR repository change: %v", err)
	}
	f.freeipmi("ipmi-sensors", "17", "--flush-cache")
	if out := f.freeipmi("ipmi-sensors", "17"); strings.Contains(out, "Node3") || !strings.Contains(out, "Node2 CPU Temp") {
		t.Errorf("ipmi-sensors (cached SDR) after node 3 left:\n%s", out)
	}
	// An unchanged set keeps its timestamps.
	f.skew.Store(int64(2 * time.Minute))
	if n3, add3, _ := repoInfo(); n3 != n2 || add3 != add2 {
		t.Errorf("unchanged SDR set: %d records, added %s; was %d, %s", n3, add3, n2, add2)
	}
}

// withoutNode is a store with one node taken out of the chassis.
type withoutNode struct {
	*syncsel.Store
	slot int
}

func (w withoutNode) Nodes() ([]board.Node, error) {
	ns, err := w.Store.Nodes()
	out := ns[:0]
	for _, n := range ns {
		if n.Slot != w.slot {
			out = append(out, n)
		}
	}
	return out, err
}

func (w withoutNode) Assets() ([]syncsel.AssetRecord, error) {
	as, err := w.Store.Assets()
	out := as[:0]
	for _, a := range as {
		if a.Slot != w.slot {
			out = append(out, a)
		}
	}
	return out, err
}

// TestChassisPower powers the enclosure off and on with ipmitool: every
// node follows, and the store shows it.
func TestChassisPower(t *testing.T) {
	need(t, "ipmitool")
	f := newFixture(t, 3, 0, nil)
	if _, err := f.ipmitoolAs("17", "reader", readerPW, "-L", "USER", "chassis", "power", "off"); err == nil {
		t.Error("chassis power off as USER accepted")
	}
	f.ipmitoolAs("17", "oper", operPW, "-L", "OPERATOR", "chassis", "power", "off")
	nodes, _ := f.store.Nodes()
	for _, n := range nodes {
		if n.Power != board.PowerOff {
			t.Errorf("node %d: %s after chassis power off", n.Slot, n.Power)
		}
	}
	if out := f.ipmitool("3", "chassis", "power", "status"); !strings.Contains(out, "is off") {
		t.Errorf("power status: %s", out)
	}
	f.ipmitool("17", "chassis", "power", "on")
	if out := f.ipmitool("17", "chassis", "power", "status"); !strings.Contains(out, "is on") {
		t.Errorf("power status: %s", out)
	}
}
