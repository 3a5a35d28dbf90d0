package redfish

import (
	"strings"
	"testing"

	"github.com/stmcginnis/gofish"
	gs "github.com/stmcginnis/gofish/schemas"
)

// TestGofishTree walks the tree's additions with gofish (v0.26.0): Sensors
// with thresholds, the Manager's NetworkProtocol, EthernetInterfaces and
// software images, the UpdateService inventory; then clears a node's SEL
// with LogService.ClearLog (with the Entries ETag) and powers a node off
// and on with Chassis.Reset.
func TestGofishTree(t *testing.T) {
	r := newRig(t)
	r.validate = false
	c, err := gofish.Connect(gofish.ClientConfig{Endpoint: r.ts.URL, Username: "admin", Password: r.adminPW})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	chassis, err := c.Service.Chassis()
	if err != nil {
		t.Fatal(err)
	}
	var node1 *gs.Chassis
	for _, ch := range chassis {
		sensors, err := ch.Sensors()
		if err != nil || len(sensors) == 0 {
			t.Fatalf("%s sensors: %d %v", ch.ID, len(sensors), err)
		}
		if ch.ID == "Node1" {
			node1 = ch
			found := false
			for _, s := range sensors {
				if s.ID == "CPUTemp" {
					found = true
					if s.Thresholds.UpperCritical.Reading == nil || *s.Thresholds.UpperCritical.Reading != 92 {
						t.Errorf("CPUTemp thresholds: %+v", s.Thresholds)
					}
				}
			}
			if !found {
				t.Error("Node1 has no CPUTemp sensor")
			}
		}
	}
	if node1 == nil {
		t.Fatal("no Node1")
	}
	mgrs, err := c.Service.Managers()
	if err != nil || len(mgrs) != 1 {
		t.Fatal(mgrs, err)
	}
	np, err := mgrs[0].NetworkProtocol()
	if err != nil || np == nil || np.ID != "NetworkProtocol" {
		t.Fatalf("NetworkProtocol: %v %v", np, err)
	}
	if _, err := mgrs[0].EthernetInterfaces(); err != nil {
		t.Fatalf("EthernetInterfaces: %v", err)
	}
	active, err := mgrs[0].ActiveSoftwareImage()
	if err != nil || active == nil || active.ID != "Primary" || !active.Active {
		t.Fatalf("ActiveSoftwareImage: %+v %v", active, err)
	}
	images, err := mgrs[0].SoftwareImages()
	if err != nil || len(images) != 2 {
		t.Fatalf("SoftwareImages: %d %v", len(images), err)
	}
	us, err := c.Service.UpdateService()
	if err != nil || !us.ServiceEnabled {
		t.Fatalf("UpdateService: %+v %v", us, err)
	}
	inv, err := us.FirmwareInventory()
	if err != nil || len(inv) != 2 || inv[1].ID != "Backup" || inv[1].Active || !inv[1].Updateable {
		t.Fatalf("FirmwareInventory: %v %v", inv, err)
	}

	// ClearLog through gofish, with the Entries collection's ETag.
	logs, err := node1.LogServices()
	if err != nil {
		t.Fatal(err)
	}
	var sel *gs.LogService
	for _, l := range logs {
		if l.ID == "SEL" {
			sel = l
		}
	}
	if sel == nil {
		t.Fatal("no SEL log service")
	}
	etag := r.do("GET", "/redfish/v1/Chassis/Node1/LogServices/SEL/Entries", r.admin(), "").Header.Get("ETag")
	if _, err := sel.ClearLog(etag); err != nil {
		t.Fatalf("ClearLog: %v", err)
	}
	entries, err := sel.Entries()
	if err != nil || len(entries) != 0 {
		t.Errorf("SEL after ClearLog: %d entries %v", len(entries), err)
	}
	if _, err := sel.ClearLog(`"stale"`); err == nil || !strings.Contains(err.Error(), "428") {
		t.Errorf("ClearLog with a stale ETag: %v", err)
	}

	// Chassis.Reset through gofish.
	if _, err := node1.Reset(gs.ForceOffResetType); err != nil {
		t.Fatalf("Reset ForceOff: %v", err)
	}
	if ps := r.get("/redfish/v1/Chassis/Node1", r.admin())["PowerState"]; ps != "Off" {
		t.Errorf("after ForceOff: %v", ps)
	}
	if _, err := node1.Reset(gs.OnResetType); err != nil {
		t.Fatalf("Reset On: %v", err)
	}
	if ps := r.get("/redfish/v1/Chassis/Node1", r.admin())["PowerState"]; ps != "On" {
		t.Errorf("after On: %v", ps)
	}
	if _, err := node1.Reset(gs.ForceRestartResetType); err == nil || !strings.Contains(err.Error(), "ActionParameterValueNotInList") {
		t.Errorf("Reset ForceRestart: %v", err)
	}
}
