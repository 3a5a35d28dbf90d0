package pmbus

import (
	"fmt"
	"math"

	"periph.io/x/conn/v3/i2c"
)

// MAX31785 commands beyond the PMBus set.
const (
	// CmdMfrReadFanPWM reports the PWM duty cycle driven on a fan, in
	// hundredths of a percent (direct format, m=1 b=0 R=2).
	CmdMfrReadFanPWM = 0xf3
)

// MAX31785 is a Maxim MAX31785 six-channel fan controller: pages 0-5 are
// the fans; READ_FAN_SPEED_1 is in RPM (direct format, m=1 b=0 R=0).
type MAX31785 struct {
	*Dev
}

// NewMAX31785 returns the controller at addr on bus.
func NewMAX31785(bus i2c.Bus, addr uint16) *MAX31785 { return &MAX31785{Dev: New(bus, addr)} }

// FanReading is one fan channel.
type FanReading struct {
	Installed bool // FAN_CONFIG_1_2 bit 7
	RPM       int
	PWM       float64 // percent
	Status    Status
}

// Fan selects page ch (0-5) and reads FAN_CONFIG_1_2, READ_FAN_SPEED_1,
// MFR_READ_FAN_PWM and STATUS_WORD, in that order.
func (m *MAX31785) Fan(ch int) (FanReading, error) {
	var f FanReading
	if ch < 0 || ch > 5 {
		return f, fmt.Errorf("MAX31785: fan channel %d (want 0-5)", ch)
	}
	if err := m.SetPage(byte(ch)); err != nil {
		return f, err
	}
	cfg, err := m.ReadByteData(CmdFanConfig12)
	if err != nil {
		return f, err
	}
	f.Installed = cfg&0x80 != 0
	rpm, err := m.ReadWordData(CmdReadFanSpeed1)
	if err != nil {
		return f, err
	}
	f.RPM = int(rpm)
	pwm, err := m.ReadWordData(CmdMfrReadFanPWM)
	if err != nil {
		return f, err
	}
	f.PWM = float64(pwm) / 100
	sw, err := m.ReadWordData(CmdStatusWord)
	if err != nil {
		return f, err
	}
	f.Status = Status(sw)
	return f, nil
}

// SetDuty commands fan channel ch (0-5) to pct percent of full speed
// through FAN_COMMAND_1. In PWM mode (FAN_CONFIG_1_2 bit 6 clear) the
// command is the duty cycle in hundredths of a percent (0-10000); in RPM
// mode it is a target speed, pct of maxRPM.
func (m *MAX31785) SetDuty(ch int, pct float64, maxRPM int) error {
	if ch < 0 || ch > 5 {
		return fmt.Errorf("MAX31785: fan channel %d (want 0-5)", ch)
	}
	if !(pct >= 0 && pct <= 100) {
		return fmt.Errorf("MAX31785: duty %v%% (want 0-100)", pct)
	}
	if err := m.SetPage(byte(ch)); err != nil {
		return err
	}
	cfg, err := m.ReadByteData(CmdFanConfig12)
	if err != nil {
		return err
	}
	cmd := math.Round(pct * 100)
	if cfg&0x40 != 0 {
		cmd = math.Round(pct / 100 * float64(maxRPM))
		if cmd > 0x7fff {
			return fmt.Errorf("MAX31785: target speed %v RPM is out of range", cmd)
		}
	}
	return m.WriteWordData(CmdFanCommand1, uint16(cmd))
}
