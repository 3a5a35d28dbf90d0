package ipmi

import (
	"fmt"
	"time"

	"cmcd/board/ipmi/ipmitest"
)

// Sensor numbers of the test node.
const (
	snInlet   = 1
	snCPU     = 2
	snPower   = 3
	snP12V    = 4
	snFan     = 5
	snAirflow = 6
	snCold    = 7
	snCPUStat = 8
	snPSU     = 9
	snDIMM    = 10
)

// testNode is the simulated node BMC of slot i: threshold sensors of
// several kinds (linear, scaled, signed, squared), discrete sensors, FRU
// data and a few SEL entries.
func testNode(i int) ipmitest.Node {
	return ipmitest.Node{
		Name: fmt.Sprintf("node%d", i),
		Sensors: []ipmitest.Sensor{
			{Number: snInlet, Name: "Inlet Temp", Type: 0x01, Entity: 0x37, Threshold: true, Unit: 0x01,
				M: 1, Raw: 25, UNC: 40, UCR: 50, UNR: 60},
			{Number: snCPU, Name: "CPU0 Temp", Type: 0x01, Entity: 0x03, Threshold: true, Unit: 0x01,
				M: 1, Raw: byte(50 + i), UNC: 85, UCR: 95, UNR: 100},
			{Number: snPower, Name: "Node Power", Type: 0x0b, Entity: 0x15, Threshold: true, Unit: 0x06,
				M: 2, Raw: 100, UCR: 250},
			{Number: snP12V, Name: "P12V", Type: 0x02, Entity: 0x07, Threshold: true, Unit: 0x04,
				M: 6, RExp: -2, Raw: 200, UNC: 210, UCR: 220, LNC: 190, LCR: 180},
			{Number: snFan, Name: "FAN1", Type: 0x04, Entity: 0x1d, Threshold: true, Unit: 0x12,
				M: 50, Raw: 100, LNC: 20, LCR: 10},
			{Number: snAirflow, Name: "Airflow", Type: 0x04, Entity: 0x1d, Threshold: true, Unit: 0x11,
				M: 1, Lin: 0x08, Raw: 12},
			{Number: snCold, Name: "Cold Plate", Type: 0x01, Entity: 0x07, Threshold: true, Unit: 0x01,
				M: 1, Signed: true, Raw: 0xf6, LCR: 0xe2},
			{Number: snCPUStat, Name: "CPU0 Status", Type: 0x07, Entity: 0x03, States: 1 << 7},
			{Number: snPSU, Name: "PSU1 Status", Type: 0x08, Entity: 0x0a, States: 1 << 0},
			{Number: snDIMM, Name: "DIMM A1", Type: 0x0c, Entity: 0x20, States: 1 << 6},
		},
		FRU: &ipmitest.FRU{
			ChassisType: 0x17, ChassisPart: "CH-PART-1", ChassisSerial: fmt.Sprintf("CHS%04d", i),
			BoardMfgDate: time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC),
			BoardMfg:     "Acme", BoardProduct: "X1 Node Board", BoardSerial: fmt.Sprintf("BRD%04d", i), BoardPart: "BRD-X1",
			ProductMfg: "Acme", ProductName: "X1 Node", ProductPart: "X1-N", ProductVersion: "A01",
			ProductSerial: fmt.Sprintf("PRD%04d", i), AssetTag: fmt.Sprintf("ASSET-%d", i),
		},
		SEL: []ipmitest.Event{
			// System event: OEM system boot event (informational).
			{SensorType: 0x12, SensorNumber: 0x30, EventType: 0x6f, Data: [3]byte{0x01, 0xff, 0xff}},
			// CPU0 Temp: upper critical going high, reading 96 > 95.
			{SensorType: 0x01, SensorNumber: snCPU, EventType: 0x01, Data: [3]byte{0x59, 96, 95}},
			// DIMM A1: uncorrectable ECC.
			{SensorType: 0x0c, SensorNumber: snDIMM, EventType: 0x6f, Data: [3]byte{0x01, 0xff, 0xff}},
			// CPU0 Status: IERR.
			{SensorType: 0x07, SensorNumber: snCPUStat, EventType: 0x6f, Data: [3]byte{0x00, 0xff, 0xff}},
			// PSU1 Status: failure detected.
			{SensorType: 0x08, SensorNumber: snPSU, EventType: 0x6f, Data: [3]byte{0x01, 0xff, 0xff}},
		},
		PowerOn: true,
	}
}
