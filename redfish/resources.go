package redfish

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cmcd/board"
	"cmcd/internal/version"
	"cmcd/syncsel"
)

const (
	enclosureID = "Enclosure"
	managerID   = "CMC"
	chassisURI  = "/redfish/v1/Chassis"
	managerURI  = "/redfish/v1/Managers/" + managerID
	// serviceUUID names this service (ServiceRoot.UUID, Manager.UUID).
	serviceUUID = "6b1a7c2e-1f0d-4c6e-9a55-636d63640001"
)

type obj = map[string]any

func odataID(uri string) obj { return obj{"@odata.id": uri} }

func collection(uri, typ, name string, members []any) obj {
	if members == nil {
		members = []any{}
	}
	return obj{"@odata.id": uri, "@odata.type": typ, "Name": name,
		"Members": members, "Members@odata.count": len(members)}
}

func status(health string) obj {
	if health == "" {
		health = "OK"
	}
	return obj{"State": "Enabled", "Health": health}
}

func presentStatus(present bool, h board.Health) obj {
	if !present {
		return obj{"State": "Absent"}
	}
	return status(string(h))
}

func (s *Server) getVersions(c *ctx) (any, error) { return obj{"v1": "/redfish/v1/"}, nil }

func (s *Server) getServiceRoot(c *ctx) (any, error) {
	return obj{
		"@odata.id":      "/redfish/v1/",
		"@odata.type":    "#ServiceRoot.v1_20_0.ServiceRoot",
		"Id":             "RootService",
		"Name":           "cmcd Redfish Service",
		"RedfishVersion": "1.21.0",
		"UUID":           serviceUUID,
		"Vendor":         "cmcd",
		"Product":        "cmcd chassis management controller",
		"Chassis":        odataID(chassisURI),
		"Managers":       odataID("/redfish/v1/Managers"),
		"UpdateService":  odataID(updateURI),
		"SessionService": odataID("/redfish/v1/SessionService"),
		"AccountService": odataID(accountServiceURI),
		"EventService":   odataID(eventServiceURI),
		"Registries":     odataID(registriesURI),
		"Tasks":          odataID(taskServiceURI),
		"Links":          obj{"Sessions": odataID(sessionsURI)},
		"ProtocolFeaturesSupported": obj{
			"ExpandQuery":     obj{"ExpandAll": false, "Levels": false, "Links": false, "NoLinks": false},
			"SelectQuery":     false,
			"FilterQuery":     false,
			"OnlyMemberQuery": false,
			"ExcerptQuery":    false,
			"TopSkipQuery":    false,
		},
	}, nil
}

// metadataNamespaces are the schemas the service uses, for $metadata.
var metadataNamespaces = [][2]string{
	{"ServiceRoot", "v1_20_0"}, {"ChassisCollection", ""}, {"Chassis", "v1_28_0"},
	{"PowerSubsystem", "v1_1_3"}, {"PowerSupplyCollection", ""}, {"PowerSupply", "v1_6_0"},
	{"ThermalSubsystem", "v1_5_0"}, {"FanCollection", ""}, {"Fan", "v1_6_0"},
	{"Power", "v1_7_3"}, {"Thermal", "v1_7_3"},
	{"ManagerCollection", ""}, {"Manager", "v1_24_0"},
	{"LogServiceCollection", ""}, {"LogService", "v1_9_0"}, {"LogEntryCollection", ""}, {"LogEntry", "v1_21_0"},
	{"SessionService", "v1_2_0"}, {"SessionCollection", ""}, {"Session", "v1_8_0"},
	{"Message", "v1_3_0"}, {"Resource", "v1_0_0"},
	{"AccountService", "v1_18_1"}, {"ManagerAccountCollection", ""}, {"ManagerAccount", "v1_14_1"},
	{"RoleCollection", ""}, {"Role", "v1_3_3"},
	{"EventService", "v1_12_0"}, {"EventDestinationCollection", ""}, {"EventDestination", "v1_16_0"}, {"Event", "v1_13_0"},
	{"MessageRegistryFileCollection", ""}, {"MessageRegistryFile", "v1_1_5"}, {"MessageRegistry", "v1_7_0"},
}

func (s *Server) getMetadata(c *ctx) (any, error) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">` + "\n")
	for _, ns := range metadataNamespaces {
		fmt.Fprintf(&b, "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/%s_v1.xml\">\n", ns[0])
		fmt.Fprintf(&b, "    <edmx:Include Namespace=\"%s\"/>\n", ns[0])
		if ns[1] != "" {
			fmt.Fprintf(&b, "    <edmx:Include Namespace=\"%s.%s\"/>\n", ns[0], ns[1])
		}
		b.WriteString("  </edmx:Reference>\n")
	}
	b.WriteString(`  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">
      <EntityContainer Name="Service" Extends="ServiceRoot.v1_20_0.ServiceContainer"/>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
`)
	return rawDoc{contentType: "application/xml", body: []byte(b.String())}, nil
}

func (s *Server) getODataService(c *ctx) (any, error) {
	return obj{
		"@odata.context": "/redfish/v1/$metadata",
		"value": []any{
			obj{"name": "Service", "kind": "Singleton", "url": "/redfish/v1/"},
			obj{"name": "Chassis", "kind": "Singleton", "url": chassisURI},
			obj{"name": "Managers", "kind": "Singleton", "url": "/redfish/v1/Managers"},
			obj{"name": "UpdateService", "kind": "Singleton", "url": updateURI},
			obj{"name": "SessionService", "kind": "Singleton", "url": "/redfish/v1/SessionService"},
			obj{"name": "Sessions", "kind": "Singleton", "url": sessionsURI},
			obj{"name": "AccountService", "kind": "Singleton", "url": accountServiceURI},
			obj{"name": "EventService", "kind": "Singleton", "url": eventServiceURI},
			obj{"name": "Registries", "kind": "Singleton", "url": registriesURI},
			obj{"name": "Tasks", "kind": "Singleton", "url": taskServiceURI},
		},
	}, nil
}

// chassisRef is the parsed {ch} parameter: the enclosure (slot 0) or a
// node.
type chassisRef struct {
	id   string
	node *board.Node // nil for the enclosure
}

func nodeID(slot int) string { return "Node" + strconv.Itoa(slot) }

func (c *ctx) chassis() (chassisRef, error) {
	id := c.param("ch")
	if id == enclosureID {
		return chassisRef{id: id}, nil
	}
	if n, ok := strings.CutPrefix(id, "Node"); ok {
		slot, err := strconv.Atoi(n)
		if err == nil && nodeID(slot) == id {
			nodes, err := c.s.eng.Store().Nodes()
			if err != nil {
				return chassisRef{}, err
			}
			for i := range nodes {
				if nodes[i].Slot == slot {
					return chassisRef{id: id, node: &nodes[i]}, nil
				}
			}
		}
	}
	return chassisRef{}, notFound("Chassis", id)
}

// enclosure is c.chassis() restricted to the enclosure (PSUs and fans).
func (c *ctx) enclosure() error {
	ch, err := c.chassis()
	if err != nil {
		return err
	}
	if ch.node != nil {
		return notFound("Resource", c.r.URL.Path)
	}
	return nil
}

func (s *Server) getChassisCollection(c *ctx) (any, error) {
	nodes, err := s.eng.Store().Nodes()
	if err != nil {
		return nil, err
	}
	members := []any{odataID(chassisURI + "/" + enclosureID)}
	for _, n := range nodes {
		members = append(members, odataID(chassisURI+"/"+nodeID(n.Slot)))
	}
	return collection(chassisURI, "#ChassisCollection.ChassisCollection", "Chassis Collection", members), nil
}

func (s *Server) assets() (map[int]board.FRU, error) {
	as, err := s.eng.Store().Assets()
	if err != nil {
		return nil, err
	}
	m := map[int]board.FRU{}
	for _, a := range as {
		m[a.Slot] = a.FRU
	}
	return m, nil
}

func (s *Server) getChassis(c *ctx) (any, error) {
	ch, err := c.chassis()
	if err != nil {
		return nil, err
	}
	frus, err := s.assets()
	if err != nil {
		return nil, err
	}
	uri := chassisURI + "/" + ch.id
	doc := obj{
		"@odata.id":   uri,
		"@odata.type": "#Chassis.v1_28_0.Chassis",
		"Id":          ch.id,
	}
	fru := frus[0]
	if ch.node == nil {
		nodes, err := s.eng.Store().Nodes()
		if err != nil {
			return nil, err
		}
		contains := []any{}
		for _, n := range nodes {
			contains = append(contains, odataID(chassisURI+"/"+nodeID(n.Slot)))
		}
		doc["Name"] = "Enclosure"
		doc["ChassisType"] = "Enclosure"
		doc["PowerState"] = "On"
		doc["Status"] = status("OK")
		doc["Links"] = obj{"Contains": contains, "ManagedBy": []any{odataID(managerURI)}}
		doc["PowerSubsystem"] = odataID(uri + "/PowerSubsystem")
		doc["ThermalSubsystem"] = odataID(uri + "/ThermalSubsystem")
	} else {
		n := ch.node
		fru = frus[n.Slot]
		doc["Name"] = n.Name
		doc["ChassisType"] = "Blade"
		doc["PowerState"] = string(n.Power)
		doc["Status"] = presentStatus(n.Present, n.Health)
		doc["Links"] = obj{"ContainedBy": odataID(chassisURI + "/" + enclosureID),
			"ManagedBy": []any{odataID(managerURI)}}
		doc["LogServices"] = odataID(uri + "/LogServices")
	}
	doc["Power"] = odataID(uri + "/Power")
	doc["Thermal"] = odataID(uri + "/Thermal")
	s.addChassisTree(doc, ch)
	if v := firstNonEmpty(fru.ProductMfg, fru.BoardMfg); v != "" {
		doc["Manufacturer"] = v
	}
	if v := firstNonEmpty(fru.ProductName, fru.BoardProduct); v != "" {
		doc["Model"] = v
	}
	if v := firstNonEmpty(fru.ChassisSerial, fru.ProductSerial, fru.BoardSerial); v != "" {
		doc["SerialNumber"] = v
	}
	if v := firstNonEmpty(fru.ChassisPart, fru.ProductPart); v != "" {
		doc["PartNumber"] = v
	}
	if fru.AssetTag != "" {
		doc["AssetTag"] = fru.AssetTag
	}
	return doc, nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func (s *Server) getPowerSubsystem(c *ctx) (any, error) {
	if err := c.enclosure(); err != nil {
		return nil, err
	}
	psus, err := s.eng.Store().PSUs()
	if err != nil {
		return nil, err
	}
	capW := 0.0
	for _, p := range psus {
		if p.Present {
			capW += p.CapacityW
		}
	}
	uri := chassisURI + "/" + enclosureID + "/PowerSubsystem"
	return obj{
		"@odata.id":     uri,
		"@odata.type":   "#PowerSubsystem.v1_1_3.PowerSubsystem",
		"Id":            "PowerSubsystem",
		"Name":          "Enclosure Power Subsystem",
		"CapacityWatts": capW,
		"Status":        status("OK"),
		"PowerSupplies": odataID(uri + "/PowerSupplies"),
	}, nil
}

func (s *Server) getPowerSupplies(c *ctx) (any, error) {
	if err := c.enclosure(); err != nil {
		return nil, err
	}
	psus, err := s.eng.Store().PSUs()
	if err != nil {
		return nil, err
	}
	uri := chassisURI + "/" + enclosureID + "/PowerSubsystem/PowerSupplies"
	var members []any
	for _, p := range psus {
		members = append(members, odataID(uri+"/"+strconv.Itoa(p.ID)))
	}
	return collection(uri, "#PowerSupplyCollection.PowerSupplyCollection", "Power Supply Collection", members), nil
}

func (s *Server) getPowerSupply(c *ctx) (any, error) {
	if err := c.enclosure(); err != nil {
		return nil, err
	}
	psus, err := s.eng.Store().PSUs()
	if err != nil {
		return nil, err
	}
	for _, p := range psus {
		if strconv.Itoa(p.ID) != c.param("id") {
			continue
		}
		return obj{
			"@odata.id":          chassisURI + "/" + enclosureID + "/PowerSubsystem/PowerSupplies/" + c.param("id"),
			"@odata.type":        "#PowerSupply.v1_6_0.PowerSupply",
			"Id":                 c.param("id"),
			"Name":               p.Name,
			"Model":              p.Model,
			"SerialNumber":       p.Serial,
			"FirmwareVersion":    p.Firmware,
			"PowerCapacityWatts": p.CapacityW,
			"PowerSupplyType":    "AC",
			"Status":             presentStatus(p.Present, p.Health),
			"Location":           obj{"PartLocation": obj{"LocationType": "Bay", "LocationOrdinalValue": p.ID}},
		}, nil
	}
	return nil, notFound("PowerSupply", c.param("id"))
}

func (s *Server) getThermalSubsystem(c *ctx) (any, error) {
	if err := c.enclosure(); err != nil {
		return nil, err
	}
	uri := chassisURI + "/" + enclosureID + "/ThermalSubsystem"
	return obj{
		"@odata.id":   uri,
		"@odata.type": "#ThermalSubsystem.v1_5_0.ThermalSubsystem",
		"Id":          "ThermalSubsystem",
		"Name":        "Enclosure Thermal Subsystem",
		"Status":      status("OK"),
		"Fans":        odataID(uri + "/Fans"),
	}, nil
}

func (s *Server) getFans(c *ctx) (any, error) {
	if err := c.enclosure(); err != nil {
		return nil, err
	}
	fans, err := s.eng.Store().Fans()
	if err != nil {
		return nil, err
	}
	uri := chassisURI + "/" + enclosureID + "/ThermalSubsystem/Fans"
	var members []any
	for _, f := range fans {
		members = append(members, odataID(uri+"/"+strconv.Itoa(f.ID)))
	}
	return collection(uri, "#FanCollection.FanCollection", "Fan Collection", members), nil
}

func (s *Server) getFan(c *ctx) (any, error) {
	if err := c.enclosure(); err != nil {
		return nil, err
	}
	fans, err := s.eng.Store().Fans()
	if err != nil {
		return nil, err
	}
	for _, f := range fans {
		if strconv.Itoa(f.ID) != c.param("id") {
			continue
		}
		return obj{
			"@odata.id":    chassisURI + "/" + enclosureID + "/ThermalSubsystem/Fans/" + c.param("id"),
			"@odata.type":  "#Fan.v1_6_0.Fan",
			"Id":           c.param("id"),
			"Name":         f.Name,
			"Status":       presentStatus(f.Present, f.Health),
			"SpeedPercent": obj{"Reading": float64(f.PWM), "SpeedRPM": float64(f.RPM), "DataSourceUri": sensorsURI(enclosureID) + "/" + fanSensorID(f.ID)},
		}, nil
	}
	return nil, notFound("Fan", c.param("id"))
}

// getPower is the deprecated Power resource, kept for older clients; it
// always carries PowerControl (gofish needs it).
func (s *Server) getPower(c *ctx) (any, error) {
	ch, err := c.chassis()
	if err != nil {
		return nil, err
	}
	uri := chassisURI + "/" + ch.id + "/Power"
	control := obj{"@odata.id": uri + "#/PowerControl/0", "MemberId": "0", "Name": ch.id + " Power Control"}
	supplies := []any{}
	if ch.node != nil {
		control["PowerConsumedWatts"] = ch.node.PowerW
		control["Status"] = presentStatus(ch.node.Present, ch.node.Health)
	} else {
		psus, err := s.eng.Store().PSUs()
		if err != nil {
			return nil, err
		}
		var out, capW float64
		for i, p := range psus {
			if p.Present {
				out += p.OutputW
				capW += p.CapacityW
			}
			supplies = append(supplies, obj{
				"@odata.id":            fmt.Sprintf("%s#/PowerSupplies/%d", uri, i),
				"MemberId":             strconv.Itoa(i),
				"Name":                 p.Name,
				"Model":                p.Model,
				"SerialNumber":         p.Serial,
				"FirmwareVersion":      p.Firmware,
				"PowerCapacityWatts":   p.CapacityW,
				"LastPowerOutputWatts": p.OutputW,
				"LineInputVoltage":     p.InputV,
				"PowerSupplyType":      "AC",
				"Status":               presentStatus(p.Present, p.Health),
			})
		}
		control["PowerConsumedWatts"] = out
		control["PowerCapacityWatts"] = capW
		control["Status"] = status("OK")
	}
	return obj{
		"@odata.id":     uri,
		"@odata.type":   "#Power.v1_7_3.Power",
		"Id":            "Power",
		"Name":          ch.id + " Power",
		"PowerControl":  []any{control},
		"PowerSupplies": supplies,
	}, nil
}

// getThermal is the deprecated Thermal resource.
func (s *Server) getThermal(c *ctx) (any, error) {
	ch, err := c.chassis()
	if err != nil {
		return nil, err
	}
	uri := chassisURI + "/" + ch.id + "/Thermal"
	fans, temps := []any{}, []any{}
	if ch.node != nil {
		for i, t := range []struct {
			name string
			v    float64
		}{{"Inlet Temp", ch.node.InletC}, {"CPU Temp", ch.node.CPUC}} {
			temps = append(temps, obj{"@odata.id": fmt.Sprintf("%s#/Temperatures/%d", uri, i),
				"MemberId": strconv.Itoa(i), "Name": t.name, "ReadingCelsius": t.v,
				"Status": presentStatus(ch.node.Present, ch.node.Health)})
		}
	} else {
		fs, err := s.eng.Store().Fans()
		if err != nil {
			return nil, err
		}
		for i, f := range fs {
			fans = append(fans, obj{"@odata.id": fmt.Sprintf("%s#/Fans/%d", uri, i),
				"MemberId": strconv.Itoa(i), "Name": f.Name, "Reading": f.RPM, "ReadingUnits": "RPM",
				"Status": presentStatus(f.Present, f.Health)})
		}
		psus, err := s.eng.Store().PSUs()
		if err != nil {
			return nil, err
		}
		for i, p := range psus {
			temps = append(temps, obj{"@odata.id": fmt.Sprintf("%s#/Temperatures/%d", uri, i),
				"MemberId": strconv.Itoa(i), "Name": p.Name + " Temp", "ReadingCelsius": p.TempC,
				"Status": presentStatus(p.Present, p.Health)})
		}
		for _, t := range s.enclosureTemps() {
			i := len(temps)
			m := obj{"@odata.id": fmt.Sprintf("%s#/Temperatures/%d", uri, i),
				"MemberId": strconv.Itoa(i), "Name": t.Name + " Temp", "ReadingCelsius": t.C,
				"Status": presentStatus(t.Present, t.Health)}
			if t.Context != "" {
				m["PhysicalContext"] = t.Context
			}
			if th := t.Thresholds; th != nil {
				if th.UpperCaution != nil {
					m["UpperThresholdNonCritical"] = *th.UpperCaution
				}
				if th.UpperCritical != nil {
					m["UpperThresholdCritical"] = *th.UpperCritical
				}
			}
			temps = append(temps, m)
		}
	}
	return obj{
		"@odata.id":    uri,
		"@odata.type":  "#Thermal.v1_7_3.Thermal",
		"Id":           "Thermal",
		"Name":         ch.id + " Thermal",
		"Fans":         fans,
		"Temperatures": temps,
	}, nil
}

func rfTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func severity(s string) string {
	switch s {
	case "OK", "Warning", "Critical":
		return s
	}
	return "OK"
}

func (s *Server) getManager(c *ctx) (any, error) {
	nodes, err := s.eng.Store().Nodes()
	if err != nil {
		return nil, err
	}
	forChassis := []any{odataID(chassisURI + "/" + enclosureID)}
	for _, n := range nodes {
		forChassis = append(forChassis, odataID(chassisURI+"/"+nodeID(n.Slot)))
	}
	sync, err := s.syncDoc()
	if err != nil {
		return nil, err
	}
	doc := obj{
		"@odata.id":       managerURI,
		"@odata.type":     "#Manager.v1_24_0.Manager",
		"Id":              managerID,
		"Name":            "Chassis Management Controller",
		"ManagerType":     "EnclosureManager",
		"FirmwareVersion": version.Version,
		"UUID":            serviceUUID,
		"PowerState":      "On",
		"Status":          status("OK"),
		"DateTime":        rfTime(s.now()),
		"Links":           obj{"ManagerForChassis": forChassis, "ManagerInChassis": odataID(chassisURI + "/" + enclosureID)},
		"LogServices":     odataID(managerURI + "/LogServices"),
		"Actions": obj{"Oem": obj{"#Cmcd.SyncNow": obj{
			"target": managerURI + "/Actions/Oem/Cmcd.SyncNow", "title": "Run a sync round now"}}},
		"Oem": obj{"Cmcd": obj{"Sync": sync}},
	}
	s.addManagerTree(doc)
	s.addManagerFirmware(doc)
	s.addManagerPair(doc)
	return doc, nil
}

// log services

func logService(uri, id, name, entryType string, clear bool) obj {
	doc := obj{
		"@odata.id":       uri,
		"@odata.type":     "#LogService.v1_9_0.LogService",
		"Id":              id,
		"Name":            name,
		"ServiceEnabled":  true,
		"OverWritePolicy": "WrapsWhenFull",
		"LogEntryType":    entryType,
		"Status":          status("OK"),
		"Entries":         odataID(uri + "/Entries"),
	}
	if clear {
		doc["Actions"] = obj{"#LogService.ClearLog": obj{"target": uri + "/Actions/LogService.ClearLog"}}
	}
	return doc
}

func (s *Server) getManagerLogServices(c *ctx) (any, error) {
	return collection(managerURI+"/LogServices", "#LogServiceCollection.LogServiceCollection", "Log Service Collection",
		[]any{odataID(managerURI + "/LogServices/EventLog")}), nil
}

func (s *Server) getEventLogService(c *ctx) (any, error) {
	return logService(managerURI+"/LogServices/EventLog", "EventLog", "CMC Event Log", "Event", true), nil
}

func eventEntry(uri string, ev syncsel.Event) obj {
	id := strconv.FormatUint(ev.ID, 10)
	return obj{
		"@odata.id":   uri + "/" + id,
		"@odata.type": "#LogEntry.v1_21_0.LogEntry",
		"Id":          id,
		"Name":        "CMC Event " + id,
		"EntryType":   "Event",
		"Severity":    severity(ev.Severity),
		"Created":     rfTime(ev.Time),
		"Message":     ev.Message,
		"Oem":         obj{"Cmcd": obj{"Kind": ev.Kind, "Round": ev.Round}},
	}
}

func (s *Server) getEventLogEntries(c *ctx) (any, error) {
	evs, err := s.eng.Store().Events()
	if err != nil {
		return nil, err
	}
	uri := managerURI + "/LogServices/EventLog/Entries"
	members := []any{}
	for _, ev := range evs {
		members = append(members, eventEntry(uri, ev))
	}
	return collection(uri, "#LogEntryCollection.LogEntryCollection", "CMC Event Log Entries", members), nil
}

func (s *Server) getEventLogEntry(c *ctx) (any, error) {
	evs, err := s.eng.Store().Events()
	if err != nil {
		return nil, err
	}
	uri := managerURI + "/LogServices/EventLog/Entries"
	for _, ev := range evs {
		if strconv.FormatUint(ev.ID, 10) == c.param("id") {
			return eventEntry(uri, ev), nil
		}
	}
	return nil, notFound("LogEntry", c.param("id"))
}

func (s *Server) postClearEventLog(c *ctx) error {
	if _, err := c.body(); err != nil && c.r.ContentLength != 0 {
		return err
	}
	if err := s.eng.Store().ClearEvents(); err != nil {
		return err
	}
	s.log.Info("redfish: CMC event log cleared", "by", c.account.Username)
	s.reply(c, http.StatusOK, successBody())
	return nil
}

func successBody() obj {
	e := &Error{MessageID: "Success"}
	return obj{"@Message.ExtendedInfo": []any{e.extendedInfo()}}
}

func (s *Server) getNodeLogServices(c *ctx) (any, error) {
	ch, err := c.chassis()
	if err != nil {
		return nil, err
	}
	if ch.node == nil {
		return nil, notFound("LogServiceCollection", c.r.URL.Path)
	}
	uri := chassisURI + "/" + ch.id + "/LogServices"
	return collection(uri, "#LogServiceCollection.LogServiceCollection", "Log Service Collection",
		[]any{odataID(uri + "/SEL"), odataID(uri + "/FaultLog")}), nil
}

// nodeLog returns the node chassis and the log named by {log}.
func (c *ctx) nodeLog() (chassisRef, string, error) {
	ch, err := c.chassis()
	if err != nil {
		return ch, "", err
	}
	log := c.param("log")
	if ch.node == nil || (log != "SEL" && log != "FaultLog") {
		return ch, "", notFound("LogService", log)
	}
	return ch, chassisURI + "/" + ch.id + "/LogServices/" + log, nil
}

func (s *Server) getNodeLogService(c *ctx) (any, error) {
	ch, uri, err := c.nodeLog()
	if err != nil {
		return nil, err
	}
	if c.param("log") == "SEL" {
		return logService(uri, "SEL", ch.node.Name+" System Event Log", "SEL", s.tree.o.Board != nil), nil
	}
	return logService(uri, "FaultLog", ch.node.Name+" Fault Log", "Event", s.tree.o.Board != nil), nil
}

func (s *Server) nodeEntries(c *ctx) (string, []obj, error) {
	ch, uri, err := c.nodeLog()
	if err != nil {
		return "", nil, err
	}
	uri += "/Entries"
	var out []obj
	if c.param("log") == "SEL" {
		sel, err := s.eng.Store().SEL(ch.node.Slot)
		if err != nil {
			return "", nil, err
		}
		for _, l := range sel {
			id := strconv.FormatUint(l.Seq, 10)
			e := l.Entry
			out = append(out, obj{
				"@odata.id":    uri + "/" + id,
				"@odata.type":  "#LogEntry.v1_21_0.LogEntry",
				"Id":           id,
				"Name":         "SEL Entry " + id,
				"EntryType":    "SEL",
				"Severity":     severity(string(e.Severity)),
				"Created":      rfTime(e.Time),
				"Message":      e.Message,
				"SensorNumber": int(e.SensorNumber),
				"GeneratorId":  fmt.Sprintf("0x%04X", e.GeneratorID),
				"EventId":      fmt.Sprintf("0x%04X", e.RecordID),
			})
		}
	} else {
		faults, err := s.eng.Store().Faults(ch.node.Slot)
		if err != nil {
			return "", nil, err
		}
		for _, l := range faults {
			id := strconv.FormatUint(l.Seq, 10)
			f := l.Entry
			out = append(out, obj{
				"@odata.id":   uri + "/" + id,
				"@odata.type": "#LogEntry.v1_21_0.LogEntry",
				"Id":          id,
				"Name":        "Fault " + id,
				"EntryType":   "Event",
				"Severity":    severity(string(f.Severity)),
				"Created":     rfTime(f.Time),
				"Message":     f.Message,
				"Resolved":    !f.Active,
				"Oem":         obj{"Cmcd": obj{"Component": f.Component, "Code": f.Code}},
			})
		}
	}
	return uri, out, nil
}

func (s *Server) getNodeLogEntries(c *ctx) (any, error) {
	uri, entries, err := s.nodeEntries(c)
	if err != nil {
		return nil, err
	}
	members := make([]any, len(entries))
	for i, e := range entries {
		members[i] = e
	}
	return collection(uri, "#LogEntryCollection.LogEntryCollection", "Log Entries", members), nil
}

func (s *Server) getNodeLogEntry(c *ctx) (any, error) {
	_, entries, err := s.nodeEntries(c)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e["Id"] == c.param("id") {
			return e, nil
		}
	}
	return nil, notFound("LogEntry", c.param("id"))
}
