package ipmi

import (
	"fmt"
	"strings"

	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
)

// Event/reading type codes (IPMI v2.0 table 42-1).
const (
	eventTypeThreshold      = 0x01
	eventTypeSensorSpecific = 0x6f
)

// Sensor type codes used below (IPMI v2.0 table 42-3).
const (
	sensorTemperature  = 0x01
	sensorVoltage      = 0x02
	sensorCurrent      = 0x03
	sensorFan          = 0x04
	sensorProcessor    = 0x07
	sensorPowerSupply  = 0x08
	sensorPowerUnit    = 0x09
	sensorOtherUnits   = 0x0b
	sensorMemory       = 0x0c
	sensorDriveSlot    = 0x0d
	sensorFirmware     = 0x0f
	sensorEventLogging = 0x10
	sensorSystemEvent  = 0x12
	sensorCritIntr     = 0x13
	sensorChipSet      = 0x19
	sensorBootError    = 0x1e
	sensorOSStop       = 0x20
	sensorSlot         = 0x21
	sensorWatchdog2    = 0x23
	sensorMgmtHealth   = 0x28
	sensorBattery      = 0x29
)

// class is what an event state means to an operator: its severity, and a
// stable code naming the condition in fault entries.
type class struct {
	sev  board.Severity
	code string
}

var (
	ok = class{sev: board.SeverityOK}
)

func warn(code string) class { return class{board.SeverityWarning, code} }
func crit(code string) class { return class{board.SeverityCritical, code} }

// sensorSpecific maps sensor type -> event offset -> class for the
// sensor-specific (6Fh) states an operator has to act on. States not listed
// are informational (OK).
var sensorSpecific = map[uint8]map[uint8]class{
	sensorProcessor: {
		0x00: crit("CPU_IERR"), 0x01: crit("CPU_THERMAL_TRIP"), 0x02: crit("CPU_FRB1_BIST_FAILURE"),
		0x03: crit("CPU_FRB2_HANG"), 0x04: crit("CPU_FRB3_STARTUP_FAILURE"), 0x05: warn("CPU_CONFIG_ERROR"),
		0x06: crit("CPU_SMBIOS_UNCORRECTABLE"), 0x08: warn("CPU_DISABLED"), 0x0a: warn("CPU_THROTTLED"),
		0x0b: crit("CPU_MACHINE_CHECK"), 0x0c: warn("CPU_CORRECTABLE_MACHINE_CHECK"),
	},
	sensorPowerSupply: {
		0x01: crit("PSU_FAILURE"), 0x02: warn("PSU_PREDICTIVE_FAILURE"), 0x03: crit("PSU_INPUT_LOST"),
		0x04: crit("PSU_INPUT_LOST_OR_OUT_OF_RANGE"), 0x05: warn("PSU_INPUT_OUT_OF_RANGE"), 0x06: warn("PSU_CONFIG_ERROR"),
	},
	sensorPowerUnit: {
		0x02: warn("POWER_240VA_DOWN"), 0x03: warn("POWER_INTERLOCK_DOWN"), 0x04: crit("POWER_AC_LOST"),
		0x05: crit("POWER_SOFT_CONTROL_FAILURE"), 0x06: crit("POWER_UNIT_FAILURE"), 0x07: warn("POWER_UNIT_PREDICTIVE_FAILURE"),
	},
	sensorMemory: {
		0x00: warn("MEM_CORRECTABLE_ECC"), 0x01: crit("MEM_UNCORRECTABLE_ECC"), 0x02: crit("MEM_PARITY"),
		0x03: crit("MEM_SCRUB_FAILED"), 0x04: warn("MEM_DEVICE_DISABLED"), 0x05: warn("MEM_CORRECTABLE_ECC_LIMIT"),
		0x07: warn("MEM_CONFIG_ERROR"), 0x09: warn("MEM_THROTTLED"), 0x0a: crit("MEM_CRITICAL_OVERTEMP"),
	},
	sensorDriveSlot: {
		0x01: crit("DRIVE_FAULT"), 0x02: warn("DRIVE_PREDICTIVE_FAILURE"), 0x05: crit("DRIVE_IN_CRITICAL_ARRAY"),
		0x06: crit("DRIVE_IN_FAILED_ARRAY"), 0x07: warn("DRIVE_REBUILD"), 0x08: warn("DRIVE_REBUILD_ABORTED"),
	},
	sensorFirmware: {
		0x00: crit("FIRMWARE_ERROR"), 0x01: warn("FIRMWARE_HANG"),
	},
	sensorEventLogging: {
		0x00: warn("CORRECTABLE_MEM_LOGGING_DISABLED"), 0x01: warn("EVENT_LOGGING_DISABLED"),
		0x03: warn("ALL_EVENT_LOGGING_DISABLED"), 0x04: warn("SEL_FULL"), 0x05: warn("SEL_ALMOST_FULL"),
		0x06: warn("CORRECTABLE_MCE_LOGGING_DISABLED"),
	},
	sensorSystemEvent: {
		0x02: crit("UNDETERMINED_HARDWARE_FAILURE"),
	},
	sensorCritIntr: {
		0x00: warn("FRONT_PANEL_NMI"), 0x01: crit("BUS_TIMEOUT"), 0x02: crit("IO_CHANNEL_CHECK_NMI"),
		0x03: warn("SOFTWARE_NMI"), 0x04: crit("PCI_PERR"), 0x05: crit("PCI_SERR"), 0x06: crit("EISA_FAILSAFE_TIMEOUT"),
		0x07: warn("BUS_CORRECTABLE_ERROR"), 0x08: crit("BUS_UNCORRECTABLE_ERROR"), 0x09: crit("FATAL_NMI"),
		0x0a: crit("BUS_FATAL_ERROR"), 0x0b: warn("BUS_DEGRADED"),
	},
	sensorChipSet: {
		0x00: crit("CHIPSET_SOFT_POWER_CONTROL_FAILURE"), 0x01: crit("CHIPSET_THERMAL_TRIP"),
	},
	sensorBootError: {
		0x00: warn("NO_BOOTABLE_MEDIA"), 0x01: warn("NON_BOOTABLE_DISKETTE"), 0x02: warn("PXE_SERVER_NOT_FOUND"),
		0x03: warn("INVALID_BOOT_SECTOR"),
	},
	sensorOSStop: {
		0x00: crit("OS_CRITICAL_STOP_DURING_LOAD"), 0x01: crit("OS_RUNTIME_CRITICAL_STOP"),
		0x05: warn("OS_AGENT_NOT_RESPONDING"),
	},
	sensorSlot: {
		0x00: crit("SLOT_FAULT"),
	},
	sensorWatchdog2: {
		0x00: warn("WATCHDOG_EXPIRED"), 0x01: warn("WATCHDOG_HARD_RESET"), 0x02: warn("WATCHDOG_POWER_DOWN"),
		0x03: warn("WATCHDOG_POWER_CYCLE"),
	},
	sensorMgmtHealth: {
		0x00: warn("MGMT_SENSOR_ACCESS_DEGRADED"), 0x01: warn("MGMT_CONTROLLER_ACCESS_DEGRADED"),
		0x02: warn("MGMT_CONTROLLER_OFFLINE"), 0x03: warn("MGMT_CONTROLLER_UNAVAILABLE"),
		0x04: warn("MGMT_SENSOR_FAILURE"), 0x05: warn("MGMT_FRU_FAILURE"),
	},
	sensorBattery: {
		0x00: warn("BATTERY_LOW"), 0x01: crit("BATTERY_FAILED"),
	},
}

// generic maps the generic discrete event/reading types (02h-0Ch) to
// classes per offset; unlisted offsets are OK.
var generic = map[uint8]map[uint8]class{
	0x04: {0x01: warn("PREDICTIVE_FAILURE")},
	0x05: {0x01: warn("LIMIT_EXCEEDED")},
	0x06: {0x01: warn("PERFORMANCE_LAGS")},
	0x07: {
		0x01: warn("SEVERITY_NON_CRITICAL"), 0x02: crit("SEVERITY_CRITICAL"), 0x03: crit("SEVERITY_NON_RECOVERABLE"),
		0x04: warn("SEVERITY_NON_CRITICAL"), 0x05: crit("SEVERITY_CRITICAL"), 0x06: crit("SEVERITY_NON_RECOVERABLE"),
	},
	0x0a: {0x04: warn("OFFLINE"), 0x06: warn("DEGRADED"), 0x08: crit("INSTALL_ERROR")},
	0x0b: {
		0x01: warn("REDUNDANCY_LOST"), 0x02: warn("REDUNDANCY_DEGRADED"), 0x03: warn("NON_REDUNDANT"),
		0x04: warn("NON_REDUNDANT"), 0x05: crit("NON_REDUNDANT_INSUFFICIENT"), 0x06: warn("REDUNDANCY_DEGRADED"),
		0x07: warn("REDUNDANCY_DEGRADED"),
	},
}

// thresholdNames are the threshold event offsets (IPMI v2.0 table 42-2).
var thresholdNames = [12]string{
	"Lower Non-critical going low", "Lower Non-critical going high",
	"Lower Critical going low", "Lower Critical going high",
	"Lower Non-recoverable going low", "Lower Non-recoverable going high",
	"Upper Non-critical going low", "Upper Non-critical going high",
	"Upper Critical going low", "Upper Critical going high",
	"Upper Non-recoverable going low", "Upper Non-recoverable going high",
}

// sensorKind is the short prefix of threshold fault codes.
func sensorKind(sensorType uint8) string {
	switch sensorType {
	case sensorTemperature:
		return "TEMP"
	case sensorVoltage:
		return "VOLTAGE"
	case sensorCurrent:
		return "CURRENT"
	case sensorFan:
		return "FAN"
	case sensorPowerSupply:
		return "PSU"
	case sensorProcessor:
		return "CPU"
	case sensorMemory:
		return "MEM"
	}
	return "SENSOR"
}

// thresholdClass classifies a threshold event offset (0..11).
func thresholdClass(sensorType uint8, offset uint8) class {
	kind := sensorKind(sensorType)
	switch offset {
	case 0x00, 0x01:
		return warn(kind + "_LOWER_NON_CRITICAL")
	case 0x02, 0x03:
		return crit(kind + "_LOWER_CRITICAL")
	case 0x04, 0x05:
		return crit(kind + "_LOWER_NON_RECOVERABLE")
	case 0x06, 0x07:
		return warn(kind + "_UPPER_NON_CRITICAL")
	case 0x08, 0x09:
		return crit(kind + "_UPPER_CRITICAL")
	case 0x0a, 0x0b:
		return crit(kind + "_UPPER_NON_RECOVERABLE")
	}
	return ok
}

// classify says what an asserted event state means: sensor and
// event/reading type codes and the state's offset (0..14).
func classify(sensorType, eventType, offset uint8) class {
	switch {
	case eventType == eventTypeThreshold:
		return thresholdClass(sensorType, offset)
	case eventType == eventTypeSensorSpecific:
		if c, found := sensorSpecific[sensorType][offset]; found {
			return c
		}
	case eventType >= 0x02 && eventType <= 0x0c:
		if c, found := generic[eventType][offset]; found {
			return class{c.sev, sensorKind(sensorType) + "_" + c.code}
		}
	}
	return ok
}

// eventName is a readable name of an event state.
func eventName(sensorType, eventType, offset uint8) string {
	if eventType == eventTypeThreshold {
		if int(offset) < len(thresholdNames) {
			return thresholdNames[offset]
		}
		return fmt.Sprintf("threshold event offset %#x", offset)
	}
	if eventType == 0 || eventType > 0x7f {
		return fmt.Sprintf("event type %#02x offset %#x", eventType, offset)
	}
	if ev := types.EventReadingType(eventType).EventForOffset(types.SensorType(sensorType), offset); ev != nil && ev.EventName != "" {
		return ev.EventName
	}
	if eventType >= 0x70 {
		return fmt.Sprintf("OEM event type %#02x offset %#x", eventType, offset)
	}
	return fmt.Sprintf("event offset %#x", offset)
}

// sensorTypeName is the IPMI name of a sensor type code.
func sensorTypeName(sensorType uint8) string {
	s := types.SensorType(sensorType).String()
	if s == "" || strings.EqualFold(s, "unknown") {
		return fmt.Sprintf("Sensor type %#02x", sensorType)
	}
	return s
}

// worse returns the more severe of two severities.
func worse(a, b board.Severity) board.Severity {
	rank := func(s board.Severity) int {
		switch s {
		case board.SeverityCritical:
			return 2
		case board.SeverityWarning:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// healthOf turns a severity into a health value.
func healthOf(s board.Severity) board.Health {
	switch s {
	case board.SeverityCritical:
		return board.HealthCritical
	case board.SeverityWarning:
		return board.HealthWarning
	}
	return board.HealthOK
}
