package redfish

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"cmcd/board"
	"cmcd/flash"
	"cmcd/flash/flashtest"
)

// walk fetches every resource reachable from the service root by
// @odata.id links, validating each against its schema.
func walk(r *rig) map[string]map[string]any {
	seen := map[string]map[string]any{}
	queue := []string{"/redfish/v1/"}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if _, ok := seen[p]; ok {
			continue
		}
		m := r.get(p, r.admin())
		seen[p] = m
		collectLinks(m, func(id string) {
			if i := strings.Index(id, "#"); i >= 0 {
				id = id[:i]
			}
			if _, ok := seen[id]; !ok {
				queue = append(queue, id)
			}
		})
	}
	return seen
}

// TestTreeWalkReachesAdditions checks that the walk from the service root
// reaches (and validates) the Sensors, the Manager's network resources and
// the firmware inventory, and that $metadata names their schemas.
func TestTreeWalkReachesAdditions(t *testing.T) {
	r := newRig(t)
	seen := walk(r)
	want := []string{
		"/redfish/v1/Chassis/Enclosure/Sensors", "/redfish/v1/Chassis/Enclosure/Sensors/PSU1OutputPower",
		"/redfish/v1/Chassis/Enclosure/Sensors/PSU2InputVoltage", "/redfish/v1/Chassis/Enclosure/Sensors/Fan4",
		"/redfish/v1/Chassis/Enclosure/Sensors/Fan1RPM", "/redfish/v1/Chassis/Enclosure/Sensors/EnclosurePower",
		"/redfish/v1/Chassis/Node1/Sensors", "/redfish/v1/Chassis/Node2/Sensors/CPUTemp",
		"/redfish/v1/Managers/CMC/NetworkProtocol", "/redfish/v1/Managers/CMC/EthernetInterfaces",
		"/redfish/v1/UpdateService", "/redfish/v1/UpdateService/FirmwareInventory",
		"/redfish/v1/UpdateService/FirmwareInventory/Primary", "/redfish/v1/UpdateService/FirmwareInventory/Backup",
	}
	ifs, err := HostInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if !i.Loopback {
			want = append(want, "/redfish/v1/Managers/CMC/EthernetInterfaces/"+i.Name)
		}
	}
	for _, p := range want {
		if _, ok := seen[p]; !ok {
			t.Errorf("%s not reached from the service root", p)
		}
	}
	t.Logf("%d resources fetched and validated", len(seen))
	x := r.do("GET", "/redfish/v1/$metadata", auth{}, "")
	for _, ns := range []string{"Sensor.v1_12_0", "ManagerNetworkProtocol.v1_12_0", "EthernetInterface.v1_12_4",
		"UpdateService.v1_17_0", "SoftwareInventory.v1_13_0", "SensorCollection", "SoftwareInventoryCollection"} {
		if !strings.Contains(string(x.body), `Namespace="`+ns+`"`) {
			t.Errorf("$metadata lacks %s", ns)
		}
	}
	// Every @odata.type the walk met is named in $metadata.
	for p, m := range seen {
		typ, _ := m["@odata.type"].(string)
		if typ == "" {
			continue
		}
		ns := strings.TrimPrefix(typ[:strings.LastIndex(typ, ".")], "#")
		if !strings.Contains(string(x.body), `Namespace="`+ns+`"`) {
			t.Errorf("%s: $metadata lacks %s", p, ns)
		}
	}
}

// stable runs get until the store reads the same before and after it, so
// that a reading can be compared with the store while the collector runs.
func stable[T comparable](t *testing.T, read func() T, get func() map[string]any) (T, map[string]any) {
	t.Helper()
	for i := 0; i < 50; i++ {
		a := read()
		m := get()
		if read() == a {
			return a, m
		}
	}
	t.Fatal("the store never held still for one GET")
	panic("unreachable")
}

func TestSensorsFollowTheStore(t *testing.T) {
	r := newRig(t)
	a := r.admin()
	psu1 := func() board.PSU {
		ps, err := r.eng.Store().PSUs()
		if err != nil || len(ps) == 0 {
			t.Fatal(ps, err)
		}
		return ps[0]
	}
	p, m := stable(t, psu1, func() map[string]any { return r.get("/redfish/v1/Chassis/Enclosure/Sensors/PSU1OutputPower", a) })
	if m["Reading"] != p.OutputW || m["ReadingRangeMax"] != p.CapacityW || m["ReadingUnits"] != "W" || m["ReadingType"] != "Power" {
		t.Errorf("PSU1OutputPower %v, store %+v", m, p)
	}
	p, m = stable(t, psu1, func() map[string]any { return r.get("/redfish/v1/Chassis/Enclosure/Sensors/PSU1InputVoltage", a) })
	if m["Reading"] != p.InputV || m["VoltageType"] != "AC" {
		t.Errorf("PSU1InputVoltage %v, store %+v", m, p)
	}
	fan2 := func() board.Fan {
		fs, err := r.eng.Store().Fans()
		if err != nil || len(fs) < 2 {
			t.Fatal(fs, err)
		}
		return fs[1]
	}
	f, fan := stable(t, fan2, func() map[string]any { return r.get("/redfish/v1/Chassis/Enclosure/ThermalSubsystem/Fans/2", a) })
	sp := fan["SpeedPercent"].(map[string]any)
	if sp["DataSourceUri"] != "/redfish/v1/Chassis/Enclosure/Sensors/Fan2" || sp["Reading"] != float64(f.PWM) {
		t.Errorf("fan 2 SpeedPercent %v, store %+v", sp, f)
	}
	f, m = stable(t, fan2, func() map[string]any { return r.get(sp["DataSourceUri"].(string), a) })
	if m["Reading"] != float64(f.PWM) || m["SpeedRPM"] != float64(f.RPM) || m["ReadingType"] != "Percent" {
		t.Errorf("Fan2 sensor %v, store %+v", m, f)
	}
	f, m = stable(t, fan2, func() map[string]any { return r.get("/redfish/v1/Chassis/Enclosure/Sensors/Fan2RPM", a) })
	if m["Reading"] != float64(f.RPM) || m["ReadingRangeMax"] != float64(f.MaxRPM) {
		t.Errorf("Fan2RPM sensor %v, store %+v", m, f)
	}

	// Node sensors: the node's sensor records with their thresholds.
	node1 := func() string {
		ns, err := r.eng.Store().Nodes()
		if err != nil || len(ns) == 0 {
			t.Fatal(ns, err)
		}
		b, _ := json.Marshal(ns[0].Sensors)
		return string(b)
	}
	raw, m := stable(t, node1, func() map[string]any { return r.get("/redfish/v1/Chassis/Node1/Sensors/CPUTemp", a) })
	var sensors []board.Sensor
	json.Unmarshal([]byte(raw), &sensors)
	var cpu board.Sensor
	for _, s := range sensors {
		if s.Name == "CPU Temp" {
			cpu = s
		}
	}
	th, _ := m["Thresholds"].(map[string]any)
	if cpu.Thresholds == nil || m["Reading"] != cpu.Value || m["ReadingUnits"] != "Cel" || m["PhysicalContext"] != "CPU" ||
		th == nil || th["UpperCritical"].(map[string]any)["Reading"] != *cpu.Thresholds.UpperCritical ||
		th["UpperCaution"].(map[string]any)["Reading"] != *cpu.Thresholds.UpperCaution {
		t.Errorf("Node1 CPUTemp %v, store %+v", m, cpu)
	}
	if m["Status"].(map[string]any)["Health"] != string(cpu.Thresholds.Check(cpu.Value)) {
		t.Errorf("Node1 CPUTemp health %v for %v", m["Status"], cpu.Value)
	}
	coll := r.get("/redfish/v1/Chassis/Node1/Sensors", a)
	if n := int(coll["Members@odata.count"].(float64)); n != len(sensors) {
		t.Errorf("Node1 has %d sensors, store %d", n, len(sensors))
	}
	enc := r.get("/redfish/v1/Chassis/Enclosure/Sensors", a)
	// 2 PSUs x 5, the enclosure total, 4 fans x 2, inlet and exhaust.
	if n := int(enc["Members@odata.count"].(float64)); n != 2*5+1+4*2+2 {
		t.Errorf("enclosure has %d sensors", n)
	}
	if r.get("/redfish/v1/Chassis/Node2", a)["Sensors"] == nil {
		t.Error("node chassis lacks its Sensors link")
	}

	expectError(t, r.do("GET", "/redfish/v1/Chassis/Enclosure/Sensors/NoSuchSensor", a, ""), 404, "ResourceNotFound")
	expectError(t, r.do("GET", "/redfish/v1/Chassis/Node1/Sensors/PSU1OutputPower", a, ""), 404, "ResourceNotFound")
	expectError(t, r.do("GET", "/redfish/v1/Chassis/Node9/Sensors", a, ""), 404, "ResourceNotFound")
	expectError(t, r.do("GET", "/redfish/v1/Chassis/Enclosure/Sensors", auth{}, ""), 401, "NoValidSession")
	r.get("/redfish/v1/Chassis/Enclosure/Sensors/Fan1", r.reader())
}

// TestNodeSensorsFallback: a node without sensor records (an unreachable
// BMC keeps its last aggregates) still has power and temperature sensors.
func TestNodeSensorsFallback(t *testing.T) {
	docs := nodeSensors(board.Node{Slot: 3, Name: "Node3", Present: true, Reachable: false, PowerW: 321.5, InletC: 22, CPUC: 61})
	if len(docs) != 3 || docs[0].id != "NodePower" || docs[0].reading != 321.5 || docs[0].status["State"] != "UnavailableOffline" {
		t.Fatalf("%+v", docs)
	}
	v := schemas(t)
	for _, d := range docs {
		b, _ := json.Marshal(d.doc("Node3"))
		if err := v.Validate(b); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	// Duplicate and unusable names get distinct ids.
	docs = nodeSensors(board.Node{Slot: 1, Present: true, Reachable: true, Sensors: []board.Sensor{
		{Number: 4, Name: "P12V", Type: "Voltage", Unit: "V"}, {Number: 5, Name: "P12V", Type: "Voltage", Unit: "V"},
		{Number: 6, Name: "№ ☃", Type: "Fan", Unit: "CFM"}}})
	if docs[0].id != "P12V" || docs[1].id != "Sensor5" || docs[2].id != "Sensor6" || docs[2].readingType != "" || docs[2].units != "CFM" {
		t.Fatalf("%+v", docs)
	}
}

func TestManagerNetwork(t *testing.T) {
	r := newRig(t)
	a := r.admin()
	r.srv.SetProtocols(Protocols{HTTPS: "127.0.0.1:8443", IPMI: ":623", NTP: ":123",
		NTPServers: []string{"ntp1.example:123", "ntp2.example:123"}, NTPEnabled: true})
	np := r.get("/redfish/v1/Managers/CMC/NetworkProtocol", a)
	https := np["HTTPS"].(map[string]any)
	http := np["HTTP"].(map[string]any)
	ipmi := np["IPMI"].(map[string]any)
	ntp := np["NTP"].(map[string]any)
	if https["ProtocolEnabled"] != true || https["Port"] != 8443.0 || http["ProtocolEnabled"] != false ||
		ipmi["Port"] != 623.0 || ipmi["ProtocolEnabled"] != false || ntp["ProtocolEnabled"] != true ||
		fmt.Sprint(ntp["NTPServers"]) != "[ntp1.example:123 ntp2.example:123]" {
		t.Errorf("NetworkProtocol: %v", np)
	}
	// Read-only: NTP and the other properties refuse changes, unknown
	// properties are named, and nothing changes.
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC/NetworkProtocol", a, `{"NTP":{"NTPServers":["x"]}}`), 400, "PropertyNotWritable")
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC/NetworkProtocol", a, `{"Bogus":1}`), 400, "PropertyUnknown")
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC/NetworkProtocol", r.reader(), `{"NTP":{}}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC/NetworkProtocol", a, `{"NTP":`), 400, "MalformedJSON")
	if got := r.get("/redfish/v1/Managers/CMC/NetworkProtocol", a)["NTP"]; fmt.Sprint(got) != fmt.Sprint(ntp) {
		t.Errorf("NTP changed: %v", got)
	}

	// The host's interfaces, as net.Interfaces reports them.
	host, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	coll := r.get("/redfish/v1/Managers/CMC/EthernetInterfaces", a)
	n := 0
	for _, hi := range host {
		if hi.Flags&net.FlagLoopback != 0 {
			continue
		}
		n++
		e := r.get("/redfish/v1/Managers/CMC/EthernetInterfaces/"+hi.Name, a)
		if len(hi.HardwareAddr) == 6 && e["MACAddress"] != hi.HardwareAddr.String() {
			t.Errorf("%s: MAC %v, host %v", hi.Name, e["MACAddress"], hi.HardwareAddr)
		}
		if e["InterfaceEnabled"] != (hi.Flags&net.FlagUp != 0) || e["MTUSize"] != float64(hi.MTU) {
			t.Errorf("%s: %v", hi.Name, e)
		}
		addrs, _ := hi.Addrs()
		var v4, v6 []string
		for _, ad := range addrs {
			ipn := ad.(*net.IPNet)
			if ipn.IP.To4() != nil {
				v4 = append(v4, ipn.IP.String())
			} else {
				v6 = append(v6, ipn.IP.String())
			}
		}
		var g4, g6 []string
		for _, x := range e["IPv4Addresses"].([]any) {
			g4 = append(g4, x.(map[string]any)["Address"].(string))
		}
		for _, x := range e["IPv6Addresses"].([]any) {
			g6 = append(g6, x.(map[string]any)["Address"].(string))
		}
		if fmt.Sprint(g4) != fmt.Sprint(v4) || fmt.Sprint(g6) != fmt.Sprint(v6) {
			t.Errorf("%s: addresses %v %v, host %v %v", hi.Name, g4, g6, v4, v6)
		}
	}
	if int(coll["Members@odata.count"].(float64)) != n {
		t.Errorf("%v interfaces, host has %d non-loopback", coll["Members@odata.count"], n)
	}

	// A fake interface list: addresses, link state, masks.
	r.srv.tree.o.Interfaces = func() ([]NetInterface, error) {
		_, n4, _ := net.ParseCIDR("10.1.2.3/20")
		n4.IP = net.ParseIP("10.1.2.3").To4()
		ll := &net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)}
		mac, _ := net.ParseMAC("02:00:00:aa:bb:cc")
		return []NetInterface{{Name: "lo", Loopback: true, Up: true},
			{Name: "mgmt0", MAC: mac, MTU: 1500, Up: true, LinkUp: false, Addrs: []*net.IPNet{n4, ll}}}, nil
	}
	e := r.get("/redfish/v1/Managers/CMC/EthernetInterfaces/mgmt0", a)
	if e["LinkStatus"] != "LinkDown" || e["MACAddress"] != "02:00:00:aa:bb:cc" ||
		fmt.Sprint(e["IPv4Addresses"]) != "[map[Address:10.1.2.3 SubnetMask:255.255.240.0]]" ||
		fmt.Sprint(e["IPv6Addresses"]) != "[map[Address:fe80::1 AddressOrigin:LinkLocal PrefixLength:64]]" {
		t.Errorf("mgmt0: %v", e)
	}
	expectError(t, r.do("GET", "/redfish/v1/Managers/CMC/EthernetInterfaces/lo", a, ""), 404, "ResourceNotFound")

	mgr := r.get("/redfish/v1/Managers/CMC", a)
	if mgr["DateTimeLocalOffset"] == nil || mgr["NetworkProtocol"] == nil || mgr["EthernetInterfaces"] == nil {
		t.Errorf("manager: %v", mgr)
	}
	// DateTime is not writable (the CMC's clock is never stepped from here).
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC", a, `{"DateTime":"2020-01-01T00:00:00Z"}`), 400, "PropertyNotWritable")
}

func TestFirmwareInventory(t *testing.T) {
	r := newRig(t)
	a := r.admin()
	links := func() map[string]any { return r.get("/redfish/v1/Managers/CMC", a)["Links"].(map[string]any) }
	l := links()
	if l["ActiveSoftwareImage"].(map[string]any)["@odata.id"] != "/redfish/v1/UpdateService/FirmwareInventory/Primary" ||
		len(l["SoftwareImages"].([]any)) != 2 {
		t.Fatalf("manager links: %v", l)
	}
	us := r.get("/redfish/v1/UpdateService", a)
	if us["ServiceEnabled"] != true || us["FirmwareInventory"] == nil || us["HttpPushUri"] != nil || us["MultipartHttpPushUri"] != nil {
		t.Errorf("UpdateService: %v", us)
	}
	p := r.get("/redfish/v1/UpdateService/FirmwareInventory/Primary", a)
	b := r.get("/redfish/v1/UpdateService/FirmwareInventory/Backup", a)
	if p["Active"] != true || p["Updateable"] != false || p["Status"].(map[string]any)["State"] != "Enabled" ||
		b["Active"] != false || b["Updateable"] != true || b["Status"].(map[string]any)["State"] != "StandbySpare" ||
		p["Version"] == nil || b["Status"].(map[string]any)["Health"] != "OK" {
		t.Errorf("primary %v\nbackup %v", p, b)
	}
	if oem := p["Oem"].(map[string]any)["Cmcd"].(map[string]any); oem["BootedAtStart"] != true || oem["Running"] != true {
		t.Errorf("primary Oem %v", oem)
	}

	// The backup image starts (failover): the inventory and the Manager follow.
	if err := r.images.StartBackup(context.Background(), "test failover"); err != nil {
		t.Fatal(err)
	}
	if l := links(); l["ActiveSoftwareImage"].(map[string]any)["@odata.id"] != "/redfish/v1/UpdateService/FirmwareInventory/Backup" {
		t.Errorf("after failover: %v", l)
	}
	b = r.get("/redfish/v1/UpdateService/FirmwareInventory/Backup", a)
	oem := b["Oem"].(map[string]any)["Cmcd"].(map[string]any)
	if b["Active"] != true || oem["BootedAtStart"] != false || oem["LastStarted"].(map[string]any)["Reason"] != "test failover" {
		t.Errorf("backup after failover: %v", b)
	}
	if p := r.get("/redfish/v1/UpdateService/FirmwareInventory/Primary", a); p["Active"] != false || p["Updateable"] != true {
		t.Errorf("primary after failover: %v", p)
	}

	// A slot whose probe fails is Critical.
	bad, dead := &flashtest.Probe{}, &flashtest.Probe{}
	bad.Set(flashtest.Failing, 0)
	dead.Set(flashtest.Dead, 0)
	r.srv.tree.o.Probers = map[flash.Slot]flash.Prober{flash.Primary: bad, flash.Backup: dead}
	p = r.get("/redfish/v1/UpdateService/FirmwareInventory/Primary", a)
	if p["Status"].(map[string]any)["Health"] != "Critical" || !strings.Contains(fmt.Sprint(p["Oem"]), flashtest.ErrInjected.Error()) {
		t.Errorf("probe failure: %v", p)
	}
	start := time.Now()
	b = r.get("/redfish/v1/UpdateService/FirmwareInventory/Backup", a)
	if b["Status"].(map[string]any)["Health"] != "Critical" || time.Since(start) > ProbeTimeout+5*time.Second {
		t.Errorf("dead probe: %v after %v", b, time.Since(start))
	}
	expectError(t, r.do("GET", "/redfish/v1/UpdateService/FirmwareInventory/Golden", a, ""), 404, "ResourceNotFound")
	expectError(t, r.do("POST", "/redfish/v1/UpdateService", a, "{}"), 405, "OperationNotAllowed")
}
