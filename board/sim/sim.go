package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"sync"
	"time"

	"cmcd/board"
	"cmcd/clock"
)

// SELCapacity is the number of entries a simulated node SEL holds before
// the oldest are overwritten (a 64 KiB SEL of 18-byte records, as common
// node BMCs have).
const SELCapacity = 3639

// Config describes the simulated chassis.
type Config struct {
	Seed  int64
	Nodes int // 1..16, default 4
	PSUs  int // 2..4, default 2
	Fans  int // 4..8, default 6
	// SELRate is the mean number of SEL events per node per second
	// (Poisson arrivals). Zero means no spontaneous events.
	SELRate float64
	// FaultRate is the mean number of faults per node per second.
	FaultRate float64
	// SELCapacity overrides the per-node SEL size (default SELCapacity).
	SELCapacity int
	Clock       clock.Clock
}

func (c *Config) normalise() error {
	if c.Nodes == 0 {
		c.Nodes = 4
	}
	if c.PSUs == 0 {
		c.PSUs = 2
	}
	if c.Fans == 0 {
		c.Fans = 6
	}
	if c.SELCapacity == 0 {
		c.SELCapacity = SELCapacity
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	switch {
	case c.Nodes < 1 || c.Nodes > board.MaxNodes:
		return fmt.Errorf("sim: nodes = %d: must be 1..%d", c.Nodes, board.MaxNodes)
	case c.PSUs < 2 || c.PSUs > 4:
		return fmt.Errorf("sim: psus = %d: must be 2..4", c.PSUs)
	case c.Fans < 4 || c.Fans > 8:
		return fmt.Errorf("sim: fans = %d: must be 4..8", c.Fans)
	case c.SELRate < 0 || c.FaultRate < 0:
		return fmt.Errorf("sim: event rates must not be negative")
	}
	return nil
}

// Chassis is the simulated chassis. It is safe for concurrent use.
type Chassis struct {
	cfg   Config
	start time.Time

	mu    sync.Mutex
	psus  []*psuState
	fans  []*fanState
	temps []*tempState
	nodes []*nodeState
}

type tempState struct {
	info   board.Temp
	c      walk
	pinned *float64 // SetTemperature: this reading instead of the walk
}

type walk struct {
	rng   *rand.Rand
	value float64
	lo    float64
	hi    float64
	step  float64
	steps int64
}

// at advances the random walk to step n (one step per simulated second).
func (w *walk) at(n int64) float64 {
	for w.steps < n {
		w.value += (w.rng.Float64()*2 - 1) * w.step
		w.value = math.Max(w.lo, math.Min(w.hi, w.value))
		w.steps++
	}
	return math.Round(w.value*10) / 10
}

type psuState struct {
	info   board.PSU
	load   walk
	temp   walk
	failed bool
}

type fanState struct {
	info   board.Fan
	rpm    walk
	failed bool
}

type nodeState struct {
	slot      int
	rng       *rand.Rand // event stream
	power     board.PowerState
	reachable bool
	watts     walk
	inlet     walk
	cpu       walk
	sel       []board.SELEntry
	nextRID   uint16
	faults    []board.Fault
	nextFault uint32
	nextSEL   time.Time
	nextFlt   time.Time
	fru       board.FRU
}

// New builds a simulated chassis from cfg.
func New(cfg Config) (*Chassis, error) {
	if err := cfg.normalise(); err != nil {
		return nil, err
	}
	c := &Chassis{cfg: cfg, start: cfg.Clock.Now()}
	sub := func(kind, i int) *rand.Rand { return rand.New(rand.NewSource(cfg.Seed*1000003 + int64(kind*100+i))) }
	for i := 1; i <= cfg.PSUs; i++ {
		r := sub(1, i)
		c.psus = append(c.psus, &psuState{
			info: board.PSU{ID: i, Name: fmt.Sprintf("PSU%d", i), Model: "CMC-PSU-2000T",
				Serial: fmt.Sprintf("PS%08d", r.Intn(1e8)), Firmware: "1.4.2", CapacityW: 2000, Present: true},
			load: walk{rng: r, value: 400 + r.Float64()*200, lo: 150, hi: 1800, step: 12},
			temp: walk{rng: r, value: 32, lo: 25, hi: 55, step: 0.3},
		})
	}
	for i := 1; i <= cfg.Fans; i++ {
		r := sub(2, i)
		c.fans = append(c.fans, &fanState{
			info: board.Fan{ID: i, Name: fmt.Sprintf("Fan%d", i), Present: true, MaxRPM: 16000},
			rpm:  walk{rng: r, value: 6000 + r.Float64()*2000, lo: 3000, hi: 15000, step: 60},
		})
	}
	// The enclosure's own temperature sensors: the inlet air and the
	// exhaust air, which runs 10-25 °C above it.
	for i, t := range []struct {
		name, context     string
		start, lo, hi     float64
		warning, critical float64
	}{{"Inlet", "Intake", 24, 18, 34, 35, 45}, {"Exhaust", "Exhaust", 41, 30, 55, 60, 70}} {
		r := sub(4, i+1)
		warning, critical := t.warning, t.critical
		c.temps = append(c.temps, &tempState{
			info: board.Temp{ID: i + 1, Name: t.name, Context: t.context, Present: true,
				Thresholds: &board.Thresholds{UpperCaution: &warning, UpperCritical: &critical}},
			c: walk{rng: r, value: t.start, lo: t.lo, hi: t.hi, step: 0.2},
		})
	}
	for i := 1; i <= cfg.Nodes; i++ {
		r := sub(3, i)
		n := &nodeState{
			slot: i, rng: rand.New(rand.NewSource(cfg.Seed*7919 + int64(i))),
			power: board.PowerOn, reachable: true, nextRID: 1, nextFault: 1,
			watts: walk{rng: r, value: 250 + r.Float64()*100, lo: 80, hi: 700, step: 8},
			inlet: walk{rng: r, value: 24, lo: 18, hi: 40, step: 0.2},
			cpu:   walk{rng: r, value: 55, lo: 35, hi: 95, step: 0.8},
			fru: board.FRU{
				ChassisType: "Rack Mount Chassis", ChassisPart: "CH-4U16", ChassisSerial: fmt.Sprintf("CS%06d", r.Intn(1e6)),
				BoardMfg: "Simulated Systems", BoardProduct: "SN-2S", BoardSerial: fmt.Sprintf("BS%08d", r.Intn(1e8)),
				BoardPart: "MB-2S-0042", BoardMfgDate: time.Date(2025, time.Month(1+r.Intn(12)), 1+r.Intn(28), 0, 0, 0, 0, time.UTC),
				ProductMfg: "Simulated Systems", ProductName: "Sled Node", ProductPart: "SLED-2S",
				ProductVersion: "A1", ProductSerial: fmt.Sprintf("SN%08d", r.Intn(1e8)), AssetTag: fmt.Sprintf("ASSET-%02d", i),
			},
		}
		n.nextSEL = c.start.Add(n.arrival(cfg.SELRate))
		n.nextFlt = c.start.Add(n.arrival(cfg.FaultRate))
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// arrival draws a Poisson inter-arrival time for the given rate.
func (n *nodeState) arrival(rate float64) time.Duration {
	if rate <= 0 {
		return time.Duration(math.MaxInt64 / 4)
	}
	return time.Duration(n.rng.ExpFloat64() / rate * float64(time.Second))
}

// Board returns the board.Chassis view of the simulation.
func (c *Chassis) Board() *board.Chassis {
	return &board.Chassis{
		Name: "Simulated CMC chassis",
		FRU: board.FRU{ChassisType: "Rack Mount Chassis", ChassisPart: "CH-4U16", ChassisSerial: fmt.Sprintf("ENC%06d", c.cfg.Seed%1e6),
			ProductMfg: "Simulated Systems", ProductName: "Multi-node Enclosure", ProductPart: "ENC-16", ProductVersion: "B2",
			ProductSerial: fmt.Sprintf("EN%08d", c.cfg.Seed%1e8)},
		Power: c, Fans: c, Temps: c, Nodes: c,
	}
}

func (c *Chassis) step() int64 { return int64(c.cfg.Clock.Now().Sub(c.start) / time.Second) }

// PSUs implements board.PowerSource.
func (c *Chassis) PSUs(ctx context.Context) ([]board.PSU, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.step()
	out := make([]board.PSU, len(c.psus))
	for i, p := range c.psus {
		info := p.info
		info.Health = board.HealthOK
		info.PowerGood = !p.failed
		info.TempC = p.temp.at(n)
		if p.failed {
			info.Health = board.HealthCritical
		} else {
			info.InputV = 230
			info.OutputV = 12.2
			info.OutputW = p.load.at(n)
			info.OutputA = math.Round(info.OutputW/info.OutputV*10) / 10
		}
		out[i] = info
	}
	return out, nil
}

// Fans implements board.FanSource.
func (c *Chassis) Fans(ctx context.Context) ([]board.Fan, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.step()
	out := make([]board.Fan, len(c.fans))
	for i, f := range c.fans {
		info := f.info
		info.Health = board.HealthOK
		if f.failed {
			info.Health = board.HealthCritical
		} else {
			info.RPM = int(f.rpm.at(n))
			info.PWM = info.RPM * 100 / info.MaxRPM
		}
		out[i] = info
	}
	return out, nil
}

// Temperatures implements board.TempSource: the inlet and exhaust air.
func (c *Chassis) Temperatures(ctx context.Context) ([]board.Temp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.step()
	out := make([]board.Temp, len(c.temps))
	for i, t := range c.temps {
		info := t.info
		info.C = t.c.at(n)
		if t.pinned != nil {
			info.C = *t.pinned
		}
		info.Health = info.Thresholds.Check(info.C)
		out[i] = info
	}
	return out, nil
}

// Slots implements board.NodeSource.
func (c *Chassis) Slots() []int {
	s := make([]int, len(c.nodes))
	for i := range s {
		s[i] = i + 1
	}
	return s
}

// node returns the advanced state of a slot; c.mu must be held.
func (c *Chassis) node(slot int) (*nodeState, error) {
	if slot < 1 || slot > len(c.nodes) {
		return nil, fmt.Errorf("sim: slot %d: %w", slot, board.ErrNoSuchNode)
	}
	n := c.nodes[slot-1]
	if !n.reachable {
		return nil, fmt.Errorf("sim: node %d: %w", slot, board.ErrUnreachable)
	}
	c.advance(n, c.cfg.Clock.Now())
	return n, nil
}

var selKinds = []struct {
	stype, etype uint8
	sev          board.Severity
	msg          string
}{
	{0x01, 0x01, board.SeverityWarning, "Inlet temperature upper non-critical going high"},
	{0x01, 0x01, board.SeverityCritical, "CPU temperature upper critical going high"},
	{0x02, 0x01, board.SeverityWarning, "12V rail lower non-critical going low"},
	{0x04, 0x01, board.SeverityWarning, "System fan lower non-critical going low"},
	{0x0c, 0x6f, board.SeverityWarning, "Memory correctable ECC"},
	{0x0c, 0x6f, board.SeverityCritical, "Memory uncorrectable ECC"},
	{0x07, 0x6f, board.SeverityCritical, "Processor IERR"},
	{0x10, 0x6f, board.SeverityOK, "Event logging enabled"},
	{0x1d, 0x6f, board.SeverityOK, "System boot initiated"},
	{0x23, 0x6f, board.SeverityWarning, "Watchdog timer expired"},
}

// advance generates the events and faults due up to now; c.mu must be held.
func (c *Chassis) advance(n *nodeState, now time.Time) {
	for !n.nextSEL.After(now) {
		k := selKinds[n.rng.Intn(len(selKinds))]
		c.appendSEL(n, board.SELEntry{Time: n.nextSEL.Truncate(time.Second), SensorType: k.stype,
			SensorNumber: uint8(n.rng.Intn(64)), EventType: k.etype, Severity: k.sev, Message: k.msg,
			EventData: [3]byte{uint8(n.rng.Intn(16)), 0xff, 0xff}})
		n.nextSEL = n.nextSEL.Add(n.arrival(c.cfg.SELRate))
	}
	for !n.nextFlt.After(now) {
		comps := []string{"DIMM_A1", "CPU0", "PSU-input", "FAN-tach", "NIC0", "SSD0"}
		sev := board.SeverityWarning
		if n.rng.Intn(3) == 0 {
			sev = board.SeverityCritical
		}
		comp := comps[n.rng.Intn(len(comps))]
		c.appendFault(n, board.Fault{Time: n.nextFlt.Truncate(time.Second), Component: comp,
			Code: fmt.Sprintf("0x%04X", n.rng.Intn(0x10000)), Severity: sev, Message: comp + " fault detected", Active: true})
		n.nextFlt = n.nextFlt.Add(n.arrival(c.cfg.FaultRate))
	}
}

func (c *Chassis) appendSEL(n *nodeState, e board.SELEntry) {
	e.RecordID = n.nextRID
	n.nextRID++
	if n.nextRID == 0 || n.nextRID == 0xffff {
		n.nextRID = 1
	}
	e.GeneratorID = 0x20 // BMC
	n.sel = append(n.sel, e)
	if over := len(n.sel) - c.cfg.SELCapacity; over > 0 {
		n.sel = append(n.sel[:0:0], n.sel[over:]...)
	}
}

func (c *Chassis) appendFault(n *nodeState, f board.Fault) {
	f.ID = n.nextFault
	n.nextFault++
	n.faults = append(n.faults, f)
	if over := len(n.faults) - 512; over > 0 {
		n.faults = append(n.faults[:0:0], n.faults[over:]...)
	}
}

// Node implements board.NodeSource.
func (c *Chassis) Node(ctx context.Context, slot int) (board.Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(slot)
	if err != nil {
		return board.Node{}, err
	}
	step := c.step()
	out := board.Node{Slot: slot, Name: fmt.Sprintf("Node%d", slot), Present: true, Reachable: true,
		Power: n.power, Health: board.HealthOK, InletC: n.inlet.at(step), CPUC: n.cpu.at(step)}
	if n.power == board.PowerOn {
		out.PowerW = n.watts.at(step)
	} else {
		out.CPUC = out.InletC
	}
	for _, f := range n.faults {
		if f.Active && f.Severity == board.SeverityCritical {
			out.Health = board.HealthCritical
		} else if f.Active && out.Health == board.HealthOK {
			out.Health = board.HealthWarning
		}
	}
	out.Sensors = []board.Sensor{
		{Number: 1, Name: "Inlet Temp", Type: "Temperature", Unit: "Cel", Value: out.InletC, Thresholds: inletLimits},
		{Number: 2, Name: "CPU Temp", Type: "Temperature", Unit: "Cel", Value: out.CPUC, Thresholds: cpuLimits},
		{Number: 3, Name: "Node Power", Type: "Power", Unit: "W", Value: out.PowerW, Thresholds: powerLimits},
	}
	for i := range out.Sensors {
		out.Sensors[i].Health = out.Sensors[i].Thresholds.Check(out.Sensors[i].Value)
	}
	return out, nil
}

func limit(v float64) *float64 { return &v }

// The simulated node sensors' thresholds, as a node BMC's SDR gives them.
var (
	inletLimits = &board.Thresholds{UpperCaution: limit(35), UpperCritical: limit(40)}
	cpuLimits   = &board.Thresholds{UpperCaution: limit(85), UpperCritical: limit(92)}
	powerLimits = &board.Thresholds{UpperCaution: limit(600), UpperCritical: limit(680)}
)

// SEL implements board.NodeSource.
func (c *Chassis) SEL(ctx context.Context, slot int) ([]board.SELEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(slot)
	if err != nil {
		return nil, err
	}
	return append([]board.SELEntry(nil), n.sel...), nil
}

// ClearSEL implements board.NodeSource.
func (c *Chassis) ClearSEL(ctx context.Context, slot int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(slot)
	if err != nil {
		return err
	}
	n.sel = nil
	return nil
}

// Faults implements board.NodeSource.
func (c *Chassis) Faults(ctx context.Context, slot int) ([]board.Fault, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(slot)
	if err != nil {
		return nil, err
	}
	return append([]board.Fault(nil), n.faults...), nil
}

// ClearFaults implements board.NodeSource.
func (c *Chassis) ClearFaults(ctx context.Context, slot int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(slot)
	if err != nil {
		return err
	}
	n.faults = nil
	return nil
}

// FRU implements board.NodeSource.
func (c *Chassis) FRU(ctx context.Context, slot int) (board.FRU, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(slot)
	if err != nil {
		return board.FRU{}, err
	}
	return n.fru, nil
}

// SetPower implements board.NodeSource.
func (c *Chassis) SetPower(ctx context.Context, slot int, action board.PowerAction) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(slot)
	if err != nil {
		return err
	}
	switch action {
	case board.ActionOn, board.ActionCycle:
		n.power = board.PowerOn
	case board.ActionOff, board.ActionSoft:
		n.power = board.PowerOff
	default:
		return fmt.Errorf("sim: power action %q not supported (On, ForceOff, PowerCycle, GracefulShutdown)", action)
	}
	return nil
}

// InjectSEL appends an event to a node's SEL (record id and generator are
// assigned as the node BMC would).
func (c *Chassis) InjectSEL(slot int, e board.SELEntry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(slot)
	if err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = c.cfg.Clock.Now().Truncate(time.Second)
	}
	c.appendSEL(n, e)
	return nil
}

// InjectFault appends a fault to a node's fault log.
func (c *Chassis) InjectFault(slot int, f board.Fault) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(slot)
	if err != nil {
		return err
	}
	if f.Time.IsZero() {
		f.Time = c.cfg.Clock.Now().Truncate(time.Second)
	}
	c.appendFault(n, f)
	return nil
}

// FillSEL fills a node's SEL with count generated entries (up to capacity),
// as a long-running node would have.
func (c *Chassis) FillSEL(slot, count int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(slot)
	if err != nil {
		return err
	}
	t := c.cfg.Clock.Now().Add(-time.Duration(count) * time.Minute).Truncate(time.Second)
	for i := 0; i < count; i++ {
		k := selKinds[n.rng.Intn(len(selKinds))]
		c.appendSEL(n, board.SELEntry{Time: t.Add(time.Duration(i) * time.Minute), SensorType: k.stype,
			SensorNumber: uint8(n.rng.Intn(64)), EventType: k.etype, Severity: k.sev, Message: k.msg,
			EventData: [3]byte{uint8(i), uint8(i >> 8), 0xff}})
	}
	return nil
}

// SetNodeReachable makes a node's BMC answer or stop answering.
func (c *Chassis) SetNodeReachable(slot int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if slot >= 1 && slot <= len(c.nodes) {
		c.nodes[slot-1].reachable = ok
	}
}

// SetPSUFailed fails or restores a PSU.
func (c *Chassis) SetPSUFailed(id int, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id >= 1 && id <= len(c.psus) {
		c.psus[id-1].failed = failed
	}
}

// SetTemperature pins enclosure temperature sensor id (1 inlet, 2
// exhaust) at celsius; NaN lets it wander again.
func (c *Chassis) SetTemperature(id int, celsius float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id < 1 || id > len(c.temps) {
		return
	}
	if math.IsNaN(celsius) {
		c.temps[id-1].pinned = nil
		return
	}
	c.temps[id-1].pinned = &celsius
}

// SetFanFailed fails or restores a fan.
func (c *Chassis) SetFanFailed(id int, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id >= 1 && id <= len(c.fans) {
		c.fans[id-1].failed = failed
	}
}
