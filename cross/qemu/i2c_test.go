package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"cmcd/board/pmbus"
)

// psuReading is what the test makes an emulated PSU (isl69260) report:
// raw PMBus registers set through QMP qom-set, LINEAR11 (VOUT: LINEAR16
// with the exponent -9 cmcinit sets in VOUT_MODE).
type psuReading struct{ vin, vout, iout, pout, temp float64 }

var psuSet = map[string]psuReading{
	"psu1": {vin: 230, vout: 12, iout: 25.5, pout: 306, temp: 31},
	"psu2": {vin: 229, vout: 12.25, iout: 20, pout: 245, temp: 29},
}

// setPSU writes r into the emulated PSU's registers.
func setPSU(m *Machine, id string, r psuReading) error {
	l11 := func(x float64) uint16 {
		v, err := pmbus.EncodeLinear11(x)
		if err != nil {
			panic(err)
		}
		return v
	}
	vout, err := pmbus.VoutMode(0x17).EncodeLinear16(r.vout)
	if err != nil {
		return err
	}
	for prop, v := range map[string]uint16{"vin[0]": l11(r.vin), "vout[0]": vout, "iout[0]": l11(r.iout),
		"pout[0]": l11(r.pout), "temp1[0]": l11(r.temp), "pin[0]": l11(r.pout * 1.06), "iin[0]": l11(r.pout * 1.06 / r.vin)} {
		if err := m.QOMSet("/machine/peripheral/"+id, prop, v); err != nil {
			return err
		}
	}
	return nil
}

// waitSensor polls a Redfish sensor until its Reading is want (within
// 0.01) and returns how long that took.
func (b *booted) waitSensor(t *testing.T, chassis, id string, want float64, within time.Duration) (map[string]any, time.Duration) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var last map[string]any
	for {
		// 404 until cmcd's collector has stored the first readings.
		if code, body := b.do(t, "GET", chassis+"/Sensors/"+id, ""); code == 200 {
			if err := b.v.Validate(body); err != nil {
				t.Errorf("GET %s/Sensors/%s: %v", chassis, id, err)
			}
			last = nil
			if err := json.Unmarshal(body, &last); err != nil {
				t.Fatal(err)
			}
			if r, ok := last["Reading"].(float64); ok && math.Abs(r-want) < 0.01 {
				return last, time.Since(start)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sensor %s did not read %v within %s: %v", id, want, within, last)
			return nil, 0
		case <-time.After(500 * time.Millisecond): // polling cmcd's collector
		}
	}
}

// checkI2CSensors checks that what the emulated I2C devices report shows
// up in Redfish: the PSUs (PMBus over /dev/i2c-7), the fans (MAX31785
// over /dev/i2c-12) and the chassis FRU EEPROM (at24 sysfs), then changes
// PSU1's temperature through QMP and waits for Redfish to follow.
func (b *booted) checkI2CSensors(t *testing.T, chassis string) {
	t.Helper()
	for i, id := range []string{"psu1", "psu2"} {
		r := psuSet[id]
		pre := fmt.Sprintf("PSU%d", i+1)
		for _, s := range []struct {
			id   string
			want float64
		}{{"InputVoltage", r.vin}, {"OutputVoltage", r.vout}, {"OutputCurrent", r.iout}, {"OutputPower", r.pout}, {"Temp", r.temp}} {
			doc, _ := b.waitSensor(t, chassis, pre+s.id, s.want, 2*time.Minute)
			if st, _ := doc["Status"].(map[string]any); st["Health"] != "OK" {
				t.Errorf("%s/Sensors/%s: health %v, want OK (the readings are within the limits cmcinit set)", chassis, pre+s.id, st["Health"])
			}
			t.Logf("Redfish %s/Sensors/%s: %v %v (health %v)", chassis, pre+s.id, doc["Reading"], doc["ReadingUnits"], doc["Status"])
		}
	}
	psu := b.get(t, chassis+"/PowerSubsystem/PowerSupplies/1")
	t.Logf("PowerSupplies/1: %v %v, status %v", psu["Name"], psu["Model"], psu["Status"])
	// cmcd commands each MAX31785 fan to the profile's dutyPercent (40 %:
	// FAN_COMMAND_1 = 4000) at start; QEMU's max31785 then reports
	// READ_FAN_SPEED_1 = 3 x FAN_COMMAND_1 (0x7fff / 10000, integer
	// division) = 12000 RPM. Without the command it reports its reset
	// value, 32767 RPM.
	for i := 1; i <= 4; i++ {
		f := b.get(t, fmt.Sprintf("%s/Sensors/Fan%dRPM", chassis, i))
		if rpm, _ := f["Reading"].(float64); rpm != 12000 {
			t.Errorf("Fan%d over the MAX31785: %v RPM, want 12000 (40 %% duty commanded by cmcd)", i, f["Reading"])
		}
		t.Logf("Redfish Fan%dRPM: %v RPM (status %v)", i, f["Reading"], f["Status"])
	}
	ch := b.get(t, chassis)
	for k, want := range map[string]string{"Manufacturer": ChassisFRU.ProductMfg, "Model": ChassisFRU.ProductName,
		"SerialNumber": ChassisFRU.ChassisSerial, "PartNumber": ChassisFRU.ChassisPart, "AssetTag": ChassisFRU.AssetTag} {
		if ch[k] != want {
			t.Errorf("chassis %s %s = %v, want %q from the FRU EEPROM", chassis, k, ch[k], want)
		}
	}
	// A temperature change in the device shows up in Redfish.
	r := psuSet["psu1"]
	r.temp = 47.5
	if err := setPSU(b.m, "psu1", r); err != nil {
		t.Fatal(err)
	}
	_, took := b.waitSensor(t, chassis, "PSU1Temp", 47.5, 2*time.Minute)
	t.Logf("PSU1 temperature set to 47.5 °C in QEMU (qom-set): Redfish followed after %s", took.Round(100*time.Millisecond))
}
