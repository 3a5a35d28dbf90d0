package simbmc_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
	"cmcd/board/ipmi"
	"cmcd/board/ipmi/ipmitest"
	"cmcd/board/ipmi/simbmc"
)

// fakeNode is an in-memory node: the provider behind the simulated BMC.
type fakeNode struct {
	mu      sync.Mutex
	node    board.Node
	sel     []board.SELEntry
	fru     board.FRU
	actions []board.PowerAction
}

func (f *fakeNode) Node(context.Context) (board.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.node
	n.Sensors = append([]board.Sensor(nil), f.node.Sensors...)
	return n, nil
}

func (f *fakeNode) SEL(context.Context) ([]board.SELEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]board.SELEntry(nil), f.sel...), nil
}

func (f *fakeNode) ClearSEL(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sel = nil
	return nil
}

func (f *fakeNode) FRU(context.Context) (board.FRU, error) { return f.fru, nil }

func (f *fakeNode) SetPower(_ context.Context, a board.PowerAction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, a)
	switch a {
	case board.ActionOn, board.ActionCycle:
		f.node.Power = board.PowerOn
	case board.ActionOff:
		f.node.Power = board.PowerOff
	}
	return nil
}

func (f *fakeNode) addSEL(e board.SELEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e.RecordID = uint16(len(f.sel) + 100)
	f.sel = append(f.sel, e)
}

var t0 = time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)

func newFake() *fakeNode {
	return &fakeNode{
		node: board.Node{Slot: 1, Name: "node1", Present: true, Reachable: true, Power: board.PowerOn,
			Sensors: []board.Sensor{
				{Number: 1, Name: "Inlet Temp", Type: "Temperature", Unit: "Cel", Value: 24, Health: board.HealthOK},
				{Number: 2, Name: "CPU0 Temp", Type: "Temperature", Unit: "Cel", Value: 71, Health: board.HealthWarning},
				{Number: 3, Name: "Node Power", Type: "Power", Unit: "W", Value: 340, Health: board.HealthOK},
				{Number: 4, Name: "P12V", Type: "Voltage", Unit: "V", Value: 12.1, Health: board.HealthOK},
				{Number: 5, Name: "FAN1", Type: "Fan", Unit: "RPM", Value: 7200, Health: board.HealthOK},
				{Number: 6, Name: "Board Temp", Type: "Temperature", Unit: "Cel", Value: -5, Health: board.HealthCritical},
				{Number: 7, Name: "PSU1 Status", Type: "Power Supply", Value: 0x03, Health: board.HealthCritical},
			}},
		sel: []board.SELEntry{
			{RecordID: 1, Time: t0, GeneratorID: 0x20, SensorType: 0x01, SensorNumber: 2, EventType: 0x01,
				EventData: [3]byte{0x57, 71, 70}},
			{RecordID: 2, Time: t0.Add(time.Minute), GeneratorID: 0x20, SensorType: 0x08, SensorNumber: 7,
				EventType: 0x6f, EventData: [3]byte{0x01, 0xff, 0xff}},
		},
		fru: board.FRU{ChassisType: "Blade", ChassisPart: "CP-1", ChassisSerial: "CS-1", BoardMfg: "Acme",
			BoardProduct: "Sled Board", BoardSerial: "BS-1", BoardPart: "BP-1",
			BoardMfgDate: time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC), ProductMfg: "Acme", ProductName: "Sled",
			ProductPart: "SL-1", ProductVersion: "B", ProductSerial: "PS-1", AssetTag: "A-1"},
	}
}

func start(t *testing.T, p simbmc.Provider) *simbmc.BMC {
	t.Helper()
	b, err := simbmc.Start(context.Background(), p, simbmc.Config{User: "admin", Password: "s3cret-pw", Name: t.Name(),
		// Every request sees the provider's current state.
		NodeMaxAge: time.Nanosecond, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func client(t *testing.T, b *simbmc.BMC, suite int) *ipmi.Source {
	t.Helper()
	src, err := ipmi.New(ipmi.Config{Nodes: []ipmi.NodeConfig{{Slot: 1, Host: "127.0.0.1", Port: b.Addr().Port,
		Username: "admin", Password: "s3cret-pw", CipherSuite: suite, Timeout: ipmi.Duration(time.Second)}}},
		ipmi.WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

func TestClientAgainstSimBMC(t *testing.T) {
	fake := newFake()
	b := start(t, fake)
	for _, suite := range []int{17, 3} {
		t.Run(fmt.Sprintf("suite%d", suite), func(t *testing.T) {
			src := client(t, b, suite)
			ctx := context.Background()
			n, err := src.Node(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if n.Power != board.PowerOn || len(n.Sensors) != len(fake.node.Sensors) {
				t.Fatalf("node %+v", n)
			}
			for i, want := range fake.node.Sensors {
				got := n.Sensors[i]
				if got.Name != want.Name || got.Number != want.Number || got.Unit != want.Unit || got.Type != want.Type ||
					math.Abs(got.Value-want.Value) > 1e-9 || got.Health != want.Health {
					t.Errorf("sensor %d: got %+v, want %+v", i, got, want)
				}
			}
			if n.InletC != 24 || n.CPUC != 71 || n.PowerW != 340 || n.Health != board.HealthCritical {
				t.Errorf("summary %v %v %v %s", n.InletC, n.CPUC, n.PowerW, n.Health)
			}
			sel, err := src.SEL(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(sel) != 2 || sel[0].RecordID != 1 || !sel[0].Time.Equal(t0) || sel[1].SensorType != 0x08 ||
				sel[1].EventData != [3]byte{0x01, 0xff, 0xff} || sel[1].Severity != board.SeverityCritical ||
				!strings.Contains(sel[0].Message, "CPU0 Temp") {
				t.Errorf("SEL %+v", sel)
			}
			f, err := src.FRU(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if f != fake.fru {
				t.Errorf("FRU %+v\nwant %+v", f, fake.fru)
			}
		})
	}
}

func TestSimBMCActions(t *testing.T) {
	fake := newFake()
	b := start(t, fake)
	src := client(t, b, 17)
	ctx := context.Background()
	if _, err := src.SEL(ctx, 1); err != nil {
		t.Fatal(err)
	}
	fake.addSEL(board.SELEntry{Time: t0.Add(time.Hour), GeneratorID: 0x20, SensorType: 0x0c, SensorNumber: 9,
		EventType: 0x6f, EventData: [3]byte{0x01, 0xff, 0xff}})
	sel, err := src.SEL(ctx, 1)
	if err != nil || len(sel) != 3 || sel[2].RecordID != 102 {
		t.Fatalf("after an addition: %v %+v", err, sel)
	}
	faults, err := src.Faults(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	for _, f := range faults {
		codes[f.Code] = true
	}
	for _, c := range []string{"PSU_FAILURE", "MEM_UNCORRECTABLE_ECC", "TEMP_UPPER_NON_CRITICAL"} {
		if !codes[c] {
			t.Errorf("no %s fault in %+v", c, faults)
		}
	}
	if err := src.ClearSEL(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if s, _ := fake.SEL(ctx); len(s) != 0 {
		t.Errorf("provider SEL after ClearSEL: %d entries", len(s))
	}
	for _, a := range []board.PowerAction{board.ActionOff, board.ActionOn, board.ActionCycle} {
		if err := src.SetPower(ctx, 1, a); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := src.Node(ctx, 1); n.Power != board.PowerOn {
		t.Errorf("power %s", n.Power)
	}
	fake.mu.Lock()
	got := fmt.Sprint(fake.actions)
	fake.mu.Unlock()
	if got != "[ForceOff On PowerCycle]" {
		t.Errorf("provider saw %s", got)
	}
}

func TestIpmitoolAgainstSimBMC(t *testing.T) {
	ipmitest.Need(t, ipmitest.IPMIToolPath)
	fake := newFake()
	b := start(t, fake)
	sim := &ipmitest.Sim{Host: "127.0.0.1", Port: b.Addr().Port, User: "admin", Password: "s3cret-pw"}
	for _, suite := range []string{"17", "3"} {
		out, err := sim.IpmitoolSuite(suite, "sdr", "list")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Inlet Temp", "24 degrees C", "12.10 Volts", "7200 RPM", "340 Watts", "-5 degrees C"} {
			if !strings.Contains(out, want) {
				t.Errorf("suite %s: sdr list lacks %q:\n%s", suite, want, out)
			}
		}
	}
	out, err := sim.IpmitoolSuite("17", "sel", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Upper Non-critical going high") || !strings.Contains(out, "Failure detected") ||
		!strings.Contains(out, "06/01/26 | 08:00:00") {
		t.Errorf("sel list:\n%s", out)
	}
	out, err = sim.IpmitoolSuite("17", "fru", "print", "0")
	if err != nil || !strings.Contains(out, "Sled Board") || !strings.Contains(out, "Blade") {
		t.Errorf("fru print: %v\n%s", err, out)
	}
	out, err = sim.IpmitoolSuite("17", "power", "status")
	if err != nil || !strings.Contains(out, "is on") {
		t.Errorf("power status: %v %s", err, out)
	}
	// Cipher suites other than 17 and 3 are refused.
	if _, err := sim.IpmitoolSuite("1", "power", "status"); err == nil {
		t.Error("cipher suite 1 accepted")
	}
}

// TestSimBMCInFrontOfIpmiSim chains the pieces: the collector reads an
// ipmi_sim node, a simulated BMC serves that collector's view, and a
// second collector reads it over RMCP+ with cipher suite 17 — as the
// simulated chassis exposes its nodes.
func TestSimBMCInFrontOfIpmiSim(t *testing.T) {
	sim := ipmitest.StartSim(t, ipmitest.Node{
		Sensors: []ipmitest.Sensor{
			{Number: 1, Name: "Inlet Temp", Type: 0x01, Entity: 0x37, Threshold: true, Unit: 0x01, M: 1, Raw: 23, UNC: 40, UCR: 50},
			{Number: 2, Name: "P3V3", Type: 0x02, Threshold: true, Unit: 0x04, M: 2, RExp: -2, Raw: 165},
			{Number: 3, Name: "CPU Status", Type: 0x07, Entity: 0x03, States: 0x81},
		},
		SEL: []ipmitest.Event{{SensorType: 0x07, SensorNumber: 3, EventType: 0x6f, Data: [3]byte{0x00, 0xff, 0xff}}},
		FRU: &ipmitest.FRU{ChassisType: 0x17, BoardMfg: "Acme", BoardProduct: "Inner", ProductName: "Inner Node"},
	})
	inner, err := ipmi.New(ipmi.Config{Nodes: []ipmi.NodeConfig{{Slot: 1, Host: sim.Host, Port: sim.Port,
		Username: sim.User, Password: ipmi.Secret(sim.Password), CipherSuite: 3}}},
		ipmi.WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inner.Close() })
	b := start(t, simbmc.Slot(inner, 1))
	outer := client(t, b, 17)
	ctx := context.Background()

	n, err := outer.Node(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := inner.Node(ctx, 1)
	if len(n.Sensors) != 3 || n.Sensors[0].Value != 23 || n.Sensors[1].Value != 3.3 || n.Sensors[2].Value != 0x81 ||
		n.Sensors[2].Value != want.Sensors[2].Value || n.InletC != 23 {
		t.Errorf("through two BMCs: %+v", n.Sensors)
	}
	sel, err := outer.SEL(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	list := sim.MustIpmitool("sel", "list")
	if len(sel) != 1 || !strings.Contains(list, "IERR") || !strings.Contains(sel[0].Message, "IERR") ||
		!strings.HasPrefix(strings.TrimSpace(list), strconv.Itoa(int(sel[0].RecordID))) {
		t.Errorf("SEL through two BMCs: %+v\nipmitool on ipmi_sim:\n%s", sel, list)
	}
	f, err := outer.FRU(ctx, 1)
	if err != nil || f.BoardProduct != "Inner" || f.ProductName != "Inner Node" || f.ChassisType != "Rack Mount Chassis" {
		t.Errorf("FRU through two BMCs: %v %+v", err, f)
	}
	if err := outer.SetPower(ctx, 1, board.ActionOff); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sim.MustIpmitool("power", "status"), "is off") {
		t.Error("power off did not reach ipmi_sim")
	}
}

func TestStartRefusesBadConfig(t *testing.T) {
	fake := newFake()
	if _, err := simbmc.Start(context.Background(), fake, simbmc.Config{User: "admin"}); err == nil {
		t.Error("empty password accepted")
	}
	cfg := simbmc.Config{User: "a", Password: "b", CipherSuites: []types.CipherSuiteID{types.CipherSuiteID2}}
	if _, err := simbmc.Start(context.Background(), fake, cfg); err == nil {
		t.Error("cipher suite 2 accepted")
	}
}
