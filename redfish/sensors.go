package redfish

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"cmcd/board"
)

// Sensors: /redfish/v1/Chassis/{ch}/Sensors. The enclosure's sensors are
// the stored PSU readings (input and output voltage, output current and
// power, temperature), the fans (speed percent and RPM), the enclosure's
// total output power and the board's enclosure temperature sensors (read
// live from board.TempSource with their thresholds: temperatures are not a
// sync category, so they are not in the data store); a node's are the
// sensors its BMC reported (its SDR, with thresholds where the source
// knows them), or, for a node without sensor records, its stored
// aggregates (power, inlet and CPU temperature).

const sensorType = "#Sensor.v1_12_0.Sensor"

func sensorsURI(chID string) string { return chassisURI + "/" + chID + "/Sensors" }

// sensor builds one Sensor payload.
type sensorDoc struct {
	id, name    string
	readingType string // Sensor ReadingType enum; "" = unknown
	units       string
	context     string // PhysicalContext; "" = none
	reading     float64
	status      obj
	min, max    *float64
	thresholds  *board.Thresholds
	extra       obj
	related     string // @odata.id of the item measured; "" = none
}

func (d sensorDoc) doc(chID string) obj {
	m := obj{
		"@odata.id":   sensorsURI(chID) + "/" + d.id,
		"@odata.type": sensorType,
		"Id":          d.id,
		"Name":        d.name,
		"Reading":     d.reading,
		"Status":      d.status,
	}
	if d.readingType != "" {
		m["ReadingType"] = d.readingType
	}
	if d.units != "" {
		m["ReadingUnits"] = d.units
	}
	if d.context != "" {
		m["PhysicalContext"] = d.context
	}
	if d.min != nil {
		m["ReadingRangeMin"] = *d.min
	}
	if d.max != nil {
		m["ReadingRangeMax"] = *d.max
	}
	if t := d.thresholds; t != nil {
		th := obj{}
		for name, v := range map[string]*float64{"LowerCritical": t.LowerCritical, "LowerCaution": t.LowerCaution,
			"UpperCaution": t.UpperCaution, "UpperCritical": t.UpperCritical} {
			if v != nil {
				th[name] = obj{"Reading": *v}
			}
		}
		if len(th) > 0 {
			m["Thresholds"] = th
		}
	}
	if d.related != "" {
		m["RelatedItem"] = []any{odataID(d.related)}
	}
	for k, v := range d.extra {
		m[k] = v
	}
	return m
}

func f64(v float64) *float64 { return &v }

// fanSensorID is the id of the speed-percent sensor of fan id (the
// DataSourceUri of the Fan's SpeedPercent).
func fanSensorID(id int) string { return "Fan" + strconv.Itoa(id) }

// tempSensorID is the id of an enclosure temperature sensor.
func tempSensorID(t board.Temp) string {
	id := sensorID(t.Name)
	if id == "" {
		id = strconv.Itoa(t.ID)
	}
	return id + "Temp"
}

// enclosureTemps reads the board's enclosure temperature sensors
// (board.TempSource): live, not from the data store (temperatures are not
// one of the sync categories). Nil without a board or a source, or when
// the read fails (logged).
func (s *Server) enclosureTemps() []board.Temp {
	b := s.tree.o.Board
	if b == nil || b.Temps == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	temps, err := b.Temps.Temperatures(ctx)
	if err != nil {
		s.log.Warn("enclosure temperatures unreadable", "err", err)
		return nil
	}
	return temps
}

// sensors returns every sensor of a chassis, in a stable order.
func (s *Server) sensors(ch chassisRef) ([]sensorDoc, error) {
	if ch.node != nil {
		return nodeSensors(*ch.node), nil
	}
	st := s.eng.Store()
	psus, err := st.PSUs()
	if err != nil {
		return nil, err
	}
	fans, err := st.Fans()
	if err != nil {
		return nil, err
	}
	var out []sensorDoc
	var total, capW float64
	for _, p := range psus {
		uri := chassisURI + "/" + enclosureID + "/PowerSubsystem/PowerSupplies/" + strconv.Itoa(p.ID)
		stat := presentStatus(p.Present, p.Health)
		pre := "PSU" + strconv.Itoa(p.ID)
		out = append(out,
			sensorDoc{id: pre + "InputVoltage", name: p.Name + " Input Voltage", readingType: "Voltage", units: "V",
				context: "PowerSupply", reading: p.InputV, status: stat, related: uri, extra: obj{"VoltageType": "AC"}},
			sensorDoc{id: pre + "OutputVoltage", name: p.Name + " Output Voltage", readingType: "Voltage", units: "V",
				context: "PowerSupply", reading: p.OutputV, status: stat, related: uri, extra: obj{"VoltageType": "DC"}},
			sensorDoc{id: pre + "OutputCurrent", name: p.Name + " Output Current", readingType: "Current", units: "A",
				context: "PowerSupply", reading: p.OutputA, status: stat, related: uri},
			sensorDoc{id: pre + "OutputPower", name: p.Name + " Output Power", readingType: "Power", units: "W",
				context: "PowerSupply", reading: p.OutputW, status: stat, related: uri, min: f64(0), max: f64(p.CapacityW)},
			sensorDoc{id: pre + "Temp", name: p.Name + " Temperature", readingType: "Temperature", units: "Cel",
				context: "PowerSupply", reading: p.TempC, status: stat, related: uri},
		)
		if p.Present {
			total += p.OutputW
			capW += p.CapacityW
		}
	}
	out = append(out, sensorDoc{id: "EnclosurePower", name: "Enclosure Output Power", readingType: "Power", units: "W",
		context: "PowerSubsystem", reading: math.Round(total*10) / 10, status: status("OK"), min: f64(0), max: f64(capW),
		related: chassisURI + "/" + enclosureID + "/PowerSubsystem"})
	for _, f := range fans {
		uri := chassisURI + "/" + enclosureID + "/ThermalSubsystem/Fans/" + strconv.Itoa(f.ID)
		stat := presentStatus(f.Present, f.Health)
		out = append(out,
			sensorDoc{id: fanSensorID(f.ID), name: f.Name + " Speed", readingType: "Percent", units: "%",
				context: "Fan", reading: float64(f.PWM), status: stat, related: uri, min: f64(0), max: f64(100),
				extra: obj{"SpeedRPM": float64(f.RPM)}},
			sensorDoc{id: fanSensorID(f.ID) + "RPM", name: f.Name + " Tachometer", readingType: "Rotational", units: "RPM",
				context: "Fan", reading: float64(f.RPM), status: stat, related: uri, min: f64(0), max: f64(float64(f.MaxRPM))},
		)
	}
	for _, t := range s.enclosureTemps() {
		out = append(out, sensorDoc{id: tempSensorID(t), name: t.Name + " Temperature", readingType: "Temperature",
			units: "Cel", context: t.Context, reading: t.C, status: presentStatus(t.Present, t.Health),
			thresholds: t.Thresholds, related: chassisURI + "/" + enclosureID + "/ThermalSubsystem"})
	}
	return out, nil
}

// sensorKinds maps a board sensor type to the Sensor ReadingType and its
// unit (DSP0004 UCUM units, as Redfish uses).
var sensorKinds = map[string][2]string{
	"Temperature": {"Temperature", "Cel"},
	"Voltage":     {"Voltage", "V"},
	"Current":     {"Current", "A"},
	"Power":       {"Power", "W"},
	"Fan":         {"Rotational", "RPM"},
}

// nodeSensors returns a node's sensors.
func nodeSensors(n board.Node) []sensorDoc {
	chURI := chassisURI + "/" + nodeID(n.Slot)
	stat := presentStatus(n.Present, n.Health)
	if n.Present && !n.Reachable {
		stat = obj{"State": "UnavailableOffline", "Health": "Warning"}
	}
	if len(n.Sensors) == 0 {
		return []sensorDoc{
			{id: "NodePower", name: n.Name + " Power", readingType: "Power", units: "W", context: "SystemBoard",
				reading: n.PowerW, status: stat, related: chURI},
			{id: "InletTemp", name: n.Name + " Inlet Temperature", readingType: "Temperature", units: "Cel",
				context: "Intake", reading: n.InletC, status: stat, related: chURI},
			{id: "CPUTemp", name: n.Name + " CPU Temperature", readingType: "Temperature", units: "Cel",
				context: "CPU", reading: n.CPUC, status: stat, related: chURI},
		}
	}
	seen := map[string]bool{}
	out := make([]sensorDoc, 0, len(n.Sensors))
	for _, x := range n.Sensors {
		id := sensorID(x.Name)
		if id == "" || seen[id] {
			id = fmt.Sprintf("Sensor%d", x.Number)
		}
		for seen[id] {
			id += "_"
		}
		seen[id] = true
		st := stat
		if n.Reachable && n.Present {
			st = status(string(x.Health))
		}
		d := sensorDoc{id: id, name: x.Name, reading: x.Value, status: st, thresholds: x.Thresholds,
			related: chURI, context: sensorContext(x)}
		d.units = x.Unit
		if k, ok := sensorKinds[x.Type]; ok && (x.Unit == "" || x.Unit == k[1]) {
			d.readingType, d.units = k[0], k[1]
		}
		out = append(out, d)
	}
	return out
}

// sensorID makes a URI-safe id from a sensor name ("CPU0 Temp" -> "CPU0Temp").
func sensorID(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// sensorContext guesses a sensor's PhysicalContext from its name.
func sensorContext(x board.Sensor) string {
	l := strings.ToLower(x.Name)
	switch {
	case strings.Contains(l, "inlet") || strings.Contains(l, "ambient"):
		return "Intake"
	case strings.Contains(l, "exhaust") || strings.Contains(l, "outlet"):
		return "Exhaust"
	case strings.Contains(l, "cpu") || strings.Contains(l, "proc"):
		return "CPU"
	case strings.Contains(l, "dimm") || strings.Contains(l, "mem"):
		return "Memory"
	case x.Type == "Fan" || strings.Contains(l, "fan"):
		return "Fan"
	}
	return "SystemBoard"
}

func (s *Server) getSensors(c *ctx) (any, error) {
	ch, err := c.chassis()
	if err != nil {
		return nil, err
	}
	list, err := s.sensors(ch)
	if err != nil {
		return nil, err
	}
	members := make([]any, len(list))
	for i, d := range list {
		members[i] = odataID(sensorsURI(ch.id) + "/" + d.id)
	}
	return collection(sensorsURI(ch.id), "#SensorCollection.SensorCollection", ch.id+" Sensors", members), nil
}

func (s *Server) getSensor(c *ctx) (any, error) {
	ch, err := c.chassis()
	if err != nil {
		return nil, err
	}
	list, err := s.sensors(ch)
	if err != nil {
		return nil, err
	}
	for _, d := range list {
		if d.id == c.param("id") {
			return d.doc(ch.id), nil
		}
	}
	return nil, notFound("Sensor", c.param("id"))
}
