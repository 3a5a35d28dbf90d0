package board

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MaxNodes is the largest number of compute nodes a chassis may hold.
const MaxNodes = 16

// Health is a Redfish-style health value.
type Health string

// Health values.
const (
	HealthOK       Health = "OK"
	HealthWarning  Health = "Warning"
	HealthCritical Health = "Critical"
)

// PowerState is a node's power state.
type PowerState string

// Power states.
const (
	PowerOn  PowerState = "On"
	PowerOff PowerState = "Off"
)

// PowerAction is a power control request for a node.
type PowerAction string

// Power actions a node source must accept.
const (
	ActionOn    PowerAction = "On"
	ActionOff   PowerAction = "ForceOff"
	ActionCycle PowerAction = "PowerCycle"
	// ActionSoft asks the node's OS to shut down (ACPI soft-off).
	ActionSoft PowerAction = "GracefulShutdown"
)

// ErrNoSuchNode is returned for a slot that is not in the chassis.
var ErrNoSuchNode = errors.New("no such node slot")

// ErrUnreachable is wrapped by node sources when a node's BMC does not answer.
var ErrUnreachable = errors.New("node BMC unreachable")

// PSU is one power supply's identity and live readings.
type PSU struct {
	ID        int     `json:"id"` // 1-based bay number
	Name      string  `json:"name"`
	Model     string  `json:"model"`
	Serial    string  `json:"serial"`
	Firmware  string  `json:"fw"`
	CapacityW float64 `json:"capW"`
	Present   bool    `json:"present"`
	PowerGood bool    `json:"pgood"`
	InputV    float64 `json:"inV"`
	OutputV   float64 `json:"outV"`
	OutputA   float64 `json:"outA"`
	OutputW   float64 `json:"outW"`
	TempC     float64 `json:"tempC"`
	Health    Health  `json:"health"`
}

// Fan is one chassis fan's identity and live readings.
type Fan struct {
	ID      int    `json:"id"` // 1-based
	Name    string `json:"name"`
	Present bool   `json:"present"`
	RPM     int    `json:"rpm"`
	MaxRPM  int    `json:"maxRpm"`
	PWM     int    `json:"pwm"` // duty cycle, percent
	Health  Health `json:"health"`
}

// Temp is one enclosure temperature sensor (inlet, exhaust, board) and
// its last reading.
type Temp struct {
	ID      int     `json:"id"` // 1-based
	Name    string  `json:"name"`
	Present bool    `json:"present"` // false: the sensor did not answer
	C       float64 `json:"c"`
	// Context is where it measures, as a Redfish PhysicalContext
	// ("Intake", "Exhaust", "SystemBoard", ...).
	Context string `json:"context"`
	// Thresholds are its limits where the board defines them.
	Thresholds *Thresholds `json:"thr,omitempty"`
	Health     Health      `json:"health"`
}

// Node is a compute node's state as seen by the CMC.
type Node struct {
	Slot      int        `json:"slot"` // 1-based
	Name      string     `json:"name"`
	Present   bool       `json:"present"`
	Reachable bool       `json:"reachable"`
	Power     PowerState `json:"power"`
	Health    Health     `json:"health"`
	PowerW    float64    `json:"powerW"`
	InletC    float64    `json:"inletC"`
	CPUC      float64    `json:"cpuC"`
	BMC       string     `json:"bmc,omitempty"` // address of the node BMC, if any
	Sensors   []Sensor   `json:"sensors,omitempty"`
}

// Sensor is one sensor reading of a node (from its SDR repository).
type Sensor struct {
	Number uint8   `json:"num"`
	Name   string  `json:"name"`
	Type   string  `json:"type"` // Temperature, Voltage, Fan, Power, Current, ...
	Unit   string  `json:"unit"` // Cel, V, RPM, W, A
	Value  float64 `json:"value"`
	Health Health  `json:"health"`
	// Thresholds are the sensor's limits where its source knows them.
	Thresholds *Thresholds `json:"thr,omitempty"`
}

// Thresholds are a sensor's limits (an IPMI SDR's lower/upper critical
// and non-critical thresholds); a nil field is not set.
type Thresholds struct {
	LowerCritical *float64 `json:"lcr,omitempty"`
	LowerCaution  *float64 `json:"lnc,omitempty"`
	UpperCaution  *float64 `json:"unc,omitempty"`
	UpperCritical *float64 `json:"ucr,omitempty"`
}

// Check returns the health of value against the thresholds.
func (t *Thresholds) Check(value float64) Health {
	switch {
	case t == nil:
		return HealthOK
	case t.UpperCritical != nil && value >= *t.UpperCritical, t.LowerCritical != nil && value <= *t.LowerCritical:
		return HealthCritical
	case t.UpperCaution != nil && value >= *t.UpperCaution, t.LowerCaution != nil && value <= *t.LowerCaution:
		return HealthWarning
	}
	return HealthOK
}

// Severity of a log entry.
type Severity string

// Severities, as Redfish names them.
const (
	SeverityOK       Severity = "OK"
	SeverityWarning  Severity = "Warning"
	SeverityCritical Severity = "Critical"
)

// SELEntry is one System Event Log record of a node (IPMI SEL, type 0x02).
type SELEntry struct {
	RecordID     uint16    `json:"rid"`
	Time         time.Time `json:"t"`
	GeneratorID  uint16    `json:"gen"`
	SensorType   uint8     `json:"stype"`
	SensorNumber uint8     `json:"snum"`
	EventType    uint8     `json:"etype"` // event/reading type code
	Deassertion  bool      `json:"deassert,omitempty"`
	EventData    [3]byte   `json:"data"`
	Severity     Severity  `json:"sev"`
	Message      string    `json:"msg"`
}

// Key identifies an entry within one node's SEL independent of its
// position: BMCs reuse record IDs after a clear, so the time is part of it.
func (e SELEntry) Key() string {
	return fmt.Sprintf("%04x@%d", e.RecordID, e.Time.Unix())
}

// Fault is one entry of a node's fault log (faults derived from SEL and
// sensor states, or reported by the node).
type Fault struct {
	ID        uint32    `json:"id"`
	Time      time.Time `json:"t"`
	Component string    `json:"comp"`
	Code      string    `json:"code"`
	Severity  Severity  `json:"sev"`
	Message   string    `json:"msg"`
	Active    bool      `json:"active"`
}

// Key identifies a fault entry.
func (f Fault) Key() string { return fmt.Sprintf("%08x@%d", f.ID, f.Time.Unix()) }

// FRU is a node's (or the chassis') field-replaceable-unit inventory, with
// the three IPMI FRU areas.
type FRU struct {
	ChassisType    string    `json:"chType,omitempty"`
	ChassisPart    string    `json:"chPart,omitempty"`
	ChassisSerial  string    `json:"chSerial,omitempty"`
	BoardMfg       string    `json:"bMfg,omitempty"`
	BoardProduct   string    `json:"bProduct,omitempty"`
	BoardSerial    string    `json:"bSerial,omitempty"`
	BoardPart      string    `json:"bPart,omitempty"`
	BoardMfgDate   time.Time `json:"bDate,omitempty"`
	ProductMfg     string    `json:"pMfg,omitempty"`
	ProductName    string    `json:"pName,omitempty"`
	ProductPart    string    `json:"pPart,omitempty"`
	ProductVersion string    `json:"pVersion,omitempty"`
	ProductSerial  string    `json:"pSerial,omitempty"`
	AssetTag       string    `json:"asset,omitempty"`
}

// PowerSource reads the chassis power supplies.
type PowerSource interface {
	PSUs(ctx context.Context) ([]PSU, error)
}

// FanSource reads the chassis fans.
type FanSource interface {
	Fans(ctx context.Context) ([]Fan, error)
}

// TempSource reads the enclosure's own temperature sensors.
type TempSource interface {
	Temperatures(ctx context.Context) ([]Temp, error)
}

// NodeSource reads and drives the compute nodes. Slots are 1-based. A
// node that does not answer yields an error wrapping ErrUnreachable; a
// source must never let one dead node block the others.
type NodeSource interface {
	// Slots lists the node slots of the chassis (present or not).
	Slots() []int
	Node(ctx context.Context, slot int) (Node, error)
	// SEL returns the node's whole current SEL, oldest first.
	SEL(ctx context.Context, slot int) ([]SELEntry, error)
	ClearSEL(ctx context.Context, slot int) error
	Faults(ctx context.Context, slot int) ([]Fault, error)
	ClearFaults(ctx context.Context, slot int) error
	FRU(ctx context.Context, slot int) (FRU, error)
	SetPower(ctx context.Context, slot int, action PowerAction) error
}

// Chassis is the whole board: one source of each kind, plus the
// enclosure's own FRU.
type Chassis struct {
	Name  string
	FRU   FRU
	Power PowerSource
	Fans  FanSource
	// Temps reads the enclosure temperatures; nil: the board has none.
	Temps TempSource
	Nodes NodeSource
	// Close releases the sources (IPMI sessions, devices). May be nil.
	Close func() error
}

// Shutdown releases the chassis' resources.
func (c *Chassis) Shutdown() error {
	if c.Close == nil {
		return nil
	}
	return c.Close()
}
