package pmbus

import "strings"

// Status is the STATUS_WORD register.
type Status uint16

// Bits of STATUS_WORD (the low byte is STATUS_BYTE).
const (
	StatusNoneOfTheAbove Status = 1 << 0
	StatusCML            Status = 1 << 1
	StatusTemperature    Status = 1 << 2
	StatusVinUVFault     Status = 1 << 3
	StatusIoutOCFault    Status = 1 << 4
	StatusVoutOVFault    Status = 1 << 5
	StatusOff            Status = 1 << 6
	StatusBusy           Status = 1 << 7
	StatusUnknown        Status = 1 << 8
	StatusOther          Status = 1 << 9
	StatusFans           Status = 1 << 10
	StatusPowerGoodN     Status = 1 << 11 // set: the output power is NOT good
	StatusMfrSpecific    Status = 1 << 12
	StatusInput          Status = 1 << 13
	StatusIoutPout       Status = 1 << 14
	StatusVout           Status = 1 << 15
)

var statusNames = []struct {
	bit      Status
	name     string
	critical bool
}{
	{StatusVout, "VOUT", true},
	{StatusIoutPout, "IOUT_POUT", true},
	{StatusInput, "INPUT", true},
	{StatusMfrSpecific, "MFR_SPECIFIC", false},
	{StatusPowerGoodN, "POWER_GOOD#", true},
	{StatusFans, "FANS", false},
	{StatusOther, "OTHER", false},
	{StatusUnknown, "UNKNOWN", false},
	{StatusBusy, "BUSY", false},
	{StatusOff, "OFF", true},
	{StatusVoutOVFault, "VOUT_OV_FAULT", true},
	{StatusIoutOCFault, "IOUT_OC_FAULT", true},
	{StatusVinUVFault, "VIN_UV_FAULT", true},
	{StatusTemperature, "TEMPERATURE", false},
	{StatusCML, "CML", false},
	{StatusNoneOfTheAbove, "NONE_OF_THE_ABOVE", false},
}

// Faults names the bits set, most significant first.
func (s Status) Faults() []string {
	var out []string
	for _, n := range statusNames {
		if s&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// PowerGood reports whether the output is on and its power good.
func (s Status) PowerGood() bool { return s&(StatusPowerGoodN|StatusOff) == 0 }

// Critical reports whether a bit that means the supply does not deliver
// (output off, power not good, output or input fault) is set.
func (s Status) Critical() bool {
	for _, n := range statusNames {
		if s&n.bit != 0 && n.critical {
			return true
		}
	}
	return false
}

func (s Status) String() string {
	if s == 0 {
		return "OK"
	}
	return strings.Join(s.Faults(), "|")
}
