package redfish

import (
	"testing"

	"github.com/stmcginnis/gofish"
)

// TestGofish logs in with a session using the gofish client (v0.26.0) and
// walks the Chassis with their Power and Thermal resources, the power
// subsystem, the Manager and the log services.
func TestGofish(t *testing.T) {
	r := newRig(t)
	r.validate = false
	c, err := gofish.Connect(gofish.ClientConfig{Endpoint: r.ts.URL, Username: "admin", Password: r.adminPW})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := c.GetSession()
	if err != nil || sess == nil || sess.Token == "" {
		t.Fatalf("gofish session: %v %v", sess, err)
	}
	chassis, err := c.Service.Chassis()
	if err != nil {
		t.Fatal(err)
	}
	if len(chassis) != 3 {
		t.Fatalf("%d chassis, want 3", len(chassis))
	}
	for _, ch := range chassis {
		p, err := ch.Power()
		if err != nil || p == nil {
			t.Fatalf("%s Power: %v", ch.ID, err)
		}
		if len(p.PowerControl) != 1 {
			t.Errorf("%s: %d PowerControl", ch.ID, len(p.PowerControl))
		}
		th, err := ch.Thermal()
		if err != nil || th == nil {
			t.Fatalf("%s Thermal: %v", ch.ID, err)
		}
		if ch.ID == enclosureID {
			if len(p.PowerSupplies) != 2 || len(th.Fans) != 4 {
				t.Errorf("enclosure: %d PSUs, %d fans", len(p.PowerSupplies), len(th.Fans))
			}
			ps, err := ch.PowerSubsystem()
			if err != nil || ps == nil {
				t.Fatalf("PowerSubsystem: %v", err)
			}
			supplies, err := ps.PowerSupplies()
			if err != nil || len(supplies) != 2 {
				t.Fatalf("PowerSupplies: %d %v", len(supplies), err)
			}
		} else {
			logs, err := ch.LogServices()
			if err != nil || len(logs) != 2 {
				t.Fatalf("%s LogServices: %d %v", ch.ID, len(logs), err)
			}
			entries, err := logs[0].Entries()
			if err != nil || len(entries) < 3 {
				t.Fatalf("%s %s entries: %d %v", ch.ID, logs[0].ID, len(entries), err)
			}
		}
	}
	mgrs, err := c.Service.Managers()
	if err != nil || len(mgrs) != 1 || mgrs[0].ManagerType != "EnclosureManager" {
		t.Fatalf("managers: %v %v", mgrs, err)
	}
	c.Logout()
	if n := len(r.srv.sessionList()); n != 0 {
		t.Errorf("%d sessions left after gofish logout", n)
	}
}
