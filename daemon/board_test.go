package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cmcd/internal/rfschema"
)

// TestBoardProfile runs the daemon on a board profile (--board PATH) whose
// PSU, fans and chassis FRU come from the board/hw fixture sysfs tree
// (kernel PMBus and MAX31785 hwmon chips, an at24 eeprom file): the
// readings reach the store and Redfish's Power resource, which validates
// against the DMTF schema. A bad profile is refused naming the field.
func TestBoardProfile(t *testing.T) {
	sysfs, err := filepath.Abs("../board/hw/testdata/sys")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	profile := filepath.Join(dir, "board.json")
	os.WriteFile(profile, []byte(fmt.Sprintf(`{"name": "fixture-board", "sysfs": %q,
		"psus": [{"name": "PSU-A", "capacityW": 1600, "hwmon": {"name": "pmbus", "device": "5-0058"}}],
		"fans": [{"name": "Fan1", "maxRpm": 12000, "hwmon": {"name": "max31785"}, "channel": 1}],
		"fru": {"bus": 8, "addr": "0x50", "size": 256}}`, sysfs)), 0o644)

	c := Defaults()
	c.Data = filepath.Join(dir, "data")
	c.Board = profile
	c.Redfish, c.InsecureHTTP, c.IPMI, c.NTP = "", "127.0.0.1:0", "", ""
	logs := runDaemon(t, c, slog.LevelInfo)
	re := regexp.MustCompile(`url=(http://\S+)`)
	var base string
	for deadline := time.Now().Add(20 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		t.Fatalf("no listener:\n%s", logs.String())
	}
	pw, err := os.ReadFile(filepath.Join(c.Data, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) []byte {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.SetBasicAuth("admin", strings.TrimSpace(string(pw)))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %s\n%s", path, res.Status, b)
		}
		return b
	}
	var power struct {
		PowerSupplies []struct {
			Name                 string
			LastPowerOutputWatts float64
			LineInputVoltage     float64
			PowerCapacityWatts   float64
		}
	}
	var body []byte
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		body = get("Chassis/Enclosure/Power")
		power.PowerSupplies = nil
		if err := json.Unmarshal(body, &power); err != nil {
			t.Fatal(err)
		}
		if len(power.PowerSupplies) > 0 {
			break
		}
	}
	if len(power.PowerSupplies) != 1 {
		t.Fatalf("power supplies: %s", body)
	}
	if p := power.PowerSupplies[0]; p.Name != "PSU-A" || p.LastPowerOutputWatts != 483.5 || p.LineInputVoltage != 229.5 || p.PowerCapacityWatts != 1600 {
		t.Errorf("PSU-A as Redfish shows it: %+v", p)
	}
	v, err := rfschema.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(body); err != nil {
		t.Errorf("Power payload: %v", err)
	}
	if !strings.Contains(logs.String(), "board=") {
		t.Errorf("start-up log does not name the board:\n%s", logs.String())
	}

	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"name": "b", "psus": [{"name": "P", "pmbus": {"bus": 1, "addr": "0x99"}}]}`), 0o644)
	c.Board = bad
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "psus[0].pmbus.addr") {
		t.Errorf("bad profile: %v", err)
	}
}
