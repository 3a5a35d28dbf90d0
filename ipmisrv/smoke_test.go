package ipmisrv_test

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSmoke(t *testing.T) {
	f := newFixture(t, 3, 5, nil)
	t.Log(f.freeipmi("bmc-info", "17"))
	t.Log(f.freeipmi("bmc-info", "17", "--get-device-guid"))
	t.Log(f.freeipmi("bmc-info", "17", "--get-system-guid"))
	t.Log(f.ipmitool("17", "-L", "USER", "mc", "guid"))
	b, _ := os.ReadFile(filepath.Join(f.dir, "ipmi-state.json"))
	t.Log(string(b))
	t.Log(f.logs.String())
}
