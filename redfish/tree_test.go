package redfish

import (
	"strings"
	"testing"
)

// TestTreeWalk fetches every resource reachable from the service root by
// @odata.id links and validates each against its schema.
func TestTreeWalk(t *testing.T) {
	r := newRig(t)
	seen := map[string]bool{}
	queue := []string{"/redfish/v1/"}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		m := r.get(p, r.admin())
		collectLinks(m, func(id string) {
			if i := strings.Index(id, "#"); i >= 0 {
				id = id[:i]
			}
			if !seen[id] {
				queue = append(queue, id)
			}
		})
	}
	for _, want := range []string{
		"/redfish/v1/Chassis/Enclosure", "/redfish/v1/Chassis/Node1", "/redfish/v1/Chassis/Node2",
		"/redfish/v1/Chassis/Enclosure/PowerSubsystem/PowerSupplies/1",
		"/redfish/v1/Chassis/Enclosure/ThermalSubsystem/Fans/3",
		"/redfish/v1/Chassis/Enclosure/Power", "/redfish/v1/Chassis/Node1/Thermal",
		"/redfish/v1/Managers/CMC", "/redfish/v1/Managers/CMC/LogServices/EventLog/Entries",
		"/redfish/v1/Chassis/Node1/LogServices/SEL/Entries", "/redfish/v1/Chassis/Node2/LogServices/FaultLog/Entries",
	} {
		if !seen[want] {
			t.Errorf("%s not reached from the service root", want)
		}
	}
	t.Logf("%d resources fetched and validated", len(seen))

	enc := r.get("/redfish/v1/Chassis/Enclosure", r.admin())
	if enc["ChassisType"] != "Enclosure" {
		t.Errorf("enclosure ChassisType %v", enc["ChassisType"])
	}
	if n := len(enc["Links"].(map[string]any)["Contains"].([]any)); n != 2 {
		t.Errorf("enclosure contains %d nodes, want 2", n)
	}
	node := r.get("/redfish/v1/Chassis/Node1", r.admin())
	if node["ChassisType"] != "Blade" || node["Links"].(map[string]any)["ContainedBy"] == nil {
		t.Errorf("node chassis: %v", node)
	}
	if _, ok := r.get("/redfish/v1/Chassis/Node1/Power", r.admin())["PowerControl"]; !ok {
		t.Error("node Power lacks PowerControl")
	}
	mgr := r.get("/redfish/v1/Managers/CMC", r.admin())
	if mgr["ManagerType"] != "EnclosureManager" {
		t.Errorf("ManagerType %v", mgr["ManagerType"])
	}
	sel := r.get("/redfish/v1/Chassis/Node1/LogServices/SEL/Entries", r.admin())
	if sel["Members@odata.count"].(float64) < 3 {
		t.Errorf("SEL has %v entries, want at least 3", sel["Members@odata.count"])
	}
	for _, p := range []string{"/redfish/v1/Chassis/Node9", "/redfish/v1/Chassis/Node1/PowerSubsystem", "/redfish/v1/Nope"} {
		expectError(t, r.do("GET", p, r.admin(), ""), 404, "ResourceNotFound")
	}
	x := r.do("GET", "/redfish/v1/$metadata", auth{}, "")
	if x.StatusCode != 200 || !strings.Contains(x.Header.Get("Content-Type"), "xml") || !strings.Contains(string(x.body), "ServiceRoot.v1_20_0") {
		t.Errorf("$metadata: %s %s", x.Status, x.Header.Get("Content-Type"))
	}
}

func collectLinks(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == "@odata.id" {
				if s, ok := x.(string); ok {
					f(s)
				}
				continue
			}
			if k == "Oem" || k == "Actions" {
				continue
			}
			collectLinks(x, f)
		}
	case []any:
		for _, x := range v {
			collectLinks(x, f)
		}
	}
}

// TestEnclosureTemperatures: the board's enclosure temperature sensors
// (board.TempSource; the simulated board's inlet and exhaust air) are
// Sensors of the enclosure with ReadingType Temperature, their thresholds
// and health, and Temperatures of its Thermal resource, every payload
// schema-validated; the Sensors collection lists them.
func TestEnclosureTemperatures(t *testing.T) {
	r := newRig(t)
	coll := r.get("/redfish/v1/Chassis/Enclosure/Sensors", r.admin())
	listed := map[string]bool{}
	for _, m := range coll["Members"].([]any) {
		listed[m.(map[string]any)["@odata.id"].(string)] = true
	}
	want := map[string]string{"InletTemp": "Intake", "ExhaustTemp": "Exhaust"}
	readings := map[string]float64{}
	for id, ctx := range want {
		uri := "/redfish/v1/Chassis/Enclosure/Sensors/" + id
		if !listed[uri] {
			t.Errorf("%s not in the Sensors collection", uri)
		}
		s := r.get(uri, r.admin())
		c, ok := s["Reading"].(float64)
		if s["ReadingType"] != "Temperature" || s["ReadingUnits"] != "Cel" || s["PhysicalContext"] != ctx || !ok || c < 15 || c > 60 {
			t.Errorf("%s: %v", id, s)
		}
		th, _ := s["Thresholds"].(map[string]any)
		if th["UpperCritical"] == nil || th["UpperCaution"] == nil {
			t.Errorf("%s thresholds: %v", id, s["Thresholds"])
		}
		if s["Status"].(map[string]any)["Health"] != "OK" {
			t.Errorf("%s status %v", id, s["Status"])
		}
		readings[id] = c
	}
	if readings["ExhaustTemp"] <= readings["InletTemp"] {
		t.Errorf("exhaust %v not above inlet %v", readings["ExhaustTemp"], readings["InletTemp"])
	}
	th := r.get("/redfish/v1/Chassis/Enclosure/Thermal", r.admin())
	found := 0
	for _, x := range th["Temperatures"].([]any) {
		m := x.(map[string]any)
		switch m["Name"] {
		case "Inlet Temp", "Exhaust Temp":
			found++
			if m["UpperThresholdCritical"] == nil || m["PhysicalContext"] == nil {
				t.Errorf("Thermal %v", m)
			}
		}
	}
	if found != 2 {
		t.Errorf("Thermal Temperatures lack the enclosure sensors: %v", th["Temperatures"])
	}
}
