package hwmon

import (
	"errors"
	"strings"
	"testing"
)

const root = "testdata/sys/class/hwmon"

func TestFind(t *testing.T) {
	chips, err := List(root)
	if err != nil || len(chips) != 4 {
		t.Fatalf("List: %v %v", chips, err)
	}
	if _, err := Find(root, "tmp105", ""); err == nil || !strings.Contains(err.Error(), "2 chips") {
		t.Errorf("two tmp105 chips without a device: %v", err)
	}
	c, err := Find(root, "tmp105", I2CDevice(4, 0x4c))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.TempC(1); err != nil || v != -5.5 {
		t.Errorf("tmp105 on 4-004c: %v %v", v, err)
	}
	if _, err := Find(root, "lm75", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing chip: %v", err)
	}
	if _, err := List("testdata/nonexistent"); err == nil {
		t.Error("missing root accepted")
	}
}

func TestFansAndPMBus(t *testing.T) {
	f, err := Find(root, "max31785", "6-0052")
	if err != nil {
		t.Fatal(err)
	}
	if rpm, err := f.FanRPM(2); err != nil || rpm != 9200 {
		t.Errorf("fan2 %v %v", rpm, err)
	}
	if pwm, err := f.PWMPercent(4); err != nil || pwm != 55 { // 140/255
		t.Errorf("pwm4 %v %v", pwm, err)
	}
	if _, err := f.FanRPM(5); err == nil || !strings.Contains(err.Error(), "not an integer") {
		t.Errorf("garbage fan5: %v", err)
	}
	if _, err := f.PWMPercent(5); err == nil {
		t.Error("pwm 300 accepted")
	}
	if _, err := f.FanRPM(9); err == nil {
		t.Error("missing fan9 read")
	}
	p, err := Find(root, "pmbus", "")
	if err != nil {
		t.Fatal(err)
	}
	vin, _ := p.Labeled("in", "vin")
	vout, _ := p.Labeled("in", "vout1")
	iout, _ := p.Labeled("curr", "iout1")
	pout, _ := p.Labeled("power", "pout1")
	if vin != 1 || vout != 3 || iout != 2 || pout != 2 {
		t.Errorf("labels: vin %d vout %d iout %d pout %d", vin, vout, iout, pout)
	}
	v, _ := p.Volts(vout)
	a, _ := p.Amps(iout)
	w, _ := p.Watts(pout)
	if v != 12.05 || a != 40.125 || w != 483.5 {
		t.Errorf("vout %v iout %v pout %v", v, a, w)
	}
	if _, err := p.Labeled("in", "vcap"); err == nil {
		t.Error("missing label found")
	}
}
