package redfish

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"cmcd/syncsel"
	"cmcd/timesrc"
	"cmcd/timesrc/events"
	"cmcd/timesrc/policy"
	"cmcd/timesrc/upstream"
)

// The region time source (SPEC Part T) under the Manager: see doc.go,
// "# Time source".

const (
	timeSourceURI  = managerURI + "/Oem/Cmcd/TimeSource"
	timeClientsURI = timeSourceURI + "/Clients"
	timeReportURI  = managerURI + "/Actions/Oem/Cmcd.TimeReport"
	timeCommandURI = managerURI + "/Actions/Oem/Cmcd.TimeCommand"

	// timeKindPrefix marks the time source's events in the CMC event log
	// (LogEntry Oem.Cmcd.Kind "Time:policy.clients.paused" ...).
	timeKindPrefix = "Time:"
)

// timeCommands are the values #Cmcd.TimeCommand takes in Action.
var timeCommands = []string{"spread", "pause-clients", "resume-clients", "pause-upstream", "resume-upstream"}

func init() {
	for k, v := range timeMessages {
		cmcdMessages[k] = v
	}
	for k, v := range map[string]baseMessage{
		"PropertyValueFormatError":      {"The value '%1' for the property %2 is not a format that the property can accept.", "Warning", "Correct the value for the property in the request body and resubmit the request if the operation failed."},
		"ActionParameterMissing":        {"The action %1 requires the parameter %2 to be present in the request body.", "Critical", "Supply the action with the required parameter in the request body when the request is resubmitted."},
		"ActionParameterValueTypeError": {"The value '%1' for the parameter %2 in the action %3 is not a type that the parameter can accept.", "Warning", "Correct the value for the parameter in the request body and resubmit the request if the operation failed."},
		"ActionParameterValueNotInList": {"The value '%1' for the parameter %2 in the action %3 is not in the list of acceptable values.", "Warning", "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed."},
	} {
		if _, ok := baseMessages[k]; !ok {
			baseMessages[k] = v
		}
	}
}

// timeMessages are the Cmcd registry's time-source messages.
var timeMessages = map[string]cmcdMessage{
	"TimePolicyDecision": {
		description: "The time source's feedback policy decided something: a client is abnormal or repaired, a repair step, clients paused or resumed, polls spread, regions told to pause or resume upstream sync.",
		message:     "Time policy decision %1: %2",
		severity:    "Warning", args: []string{"string", "string"},
		argDescs:   []string{"The decision (e.g. policy.clients.paused).", "What was decided and why."},
		resolution: "See the time source's client table (Managers/CMC/Oem/Cmcd/TimeSource/Clients).",
	},
	"TimeSourceAlarm": {
		description: "The time source raised an alarm: a client still abnormal after every repair policy, or a region reporting abnormal sync.",
		message:     "Time source alarm %1: %2",
		severity:    "Critical", args: []string{"string", "string"},
		argDescs:   []string{"The alarm (alarm.client or alarm.region).", "The client or region and its state."},
		resolution: "Inspect the client or region named; the alarm clears when it reports normal sync.",
	},
	"TimeSourceAlarmCleared": {
		description: "A time source alarm cleared.",
		message:     "Time source alarm cleared: %1",
		severity:    "OK", args: []string{"string"},
		argDescs:   []string{"The client or region."},
		resolution: "None.",
	},
	"UpstreamPaused": {
		description: "Upstream (core) sync was paused, by the core's directive or a command; the region serves its holdover clock.",
		message:     "Upstream time sync paused: %1",
		severity:    "Warning", args: []string{"string"},
		argDescs:   []string{"Why."},
		resolution: "None; sync resumes when the core or an operator says so.",
	},
	"UpstreamResumed": {
		description: "Upstream (core) sync resumed.",
		message:     "Upstream time sync resumed: %1",
		severity:    "OK", args: []string{"string"},
		argDescs:   []string{"The circumstances."},
		resolution: "None.",
	},
	"TimeUpstreamChanged": {
		description: "The time source's upstream state changed: a core server selected, rejected as falseticker or unreachable, holdover, unsynchronised, the server set changed, a report to the core failed.",
		message:     "Time source upstream %1: %2",
		severity:    "OK", args: []string{"string", "string"},
		argDescs:   []string{"The change (e.g. upstream.selected).", "The details."},
		resolution: "Check the core servers if the time source is in holdover or unsynchronised.",
	},
}

// timeRecord maps a time-source event of the CMC event log onto the Cmcd
// registry; ok is false for other events.
func timeRecord(ev syncsel.Event, r *record) bool {
	kind, ok := strings.CutPrefix(ev.Kind, timeKindPrefix)
	if !ok {
		return false
	}
	r.origin = timeSourceURI
	r.eventType = "Other"
	if ev.Severity != "OK" {
		r.eventType = "Alert"
	}
	switch {
	case kind == "upstream.paused":
		r.msgID, r.args = "UpstreamPaused", []string{ev.Message}
	case kind == "upstream.resumed":
		r.msgID, r.args = "UpstreamResumed", []string{ev.Message}
	case strings.HasPrefix(kind, "alarm.") && strings.HasSuffix(kind, ".cleared"):
		r.msgID, r.args = "TimeSourceAlarmCleared", []string{ev.Message}
	case strings.HasPrefix(kind, "alarm."):
		r.msgID, r.args = "TimeSourceAlarm", []string{kind, ev.Message}
	case strings.HasPrefix(kind, "policy."):
		r.msgID, r.args = "TimePolicyDecision", []string{kind, ev.Message}
	default:
		r.msgID, r.args = "TimeUpstreamChanged", []string{kind, ev.Message}
	}
	return true
}

// TimeEventLog returns the events.Sink that writes each time-source event
// into the CMC event log (and so, through the engine's subscribers, onto
// the Redfish event stream as a Cmcd registry message linked to its log
// entry). The sink never blocks the time source (its NTP server emits
// from the packet path): events queue (256) for a goroutine that ends
// with ctx; when the queue is full events are dropped and counted, and a
// TimeUpstreamChanged "events.dropped" entry says how many once there is
// room again.
func TimeEventLog(ctx context.Context, eng *syncsel.Engine) events.Sink {
	q := make(chan events.Event, 256)
	var dropped atomic.Uint64
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-q:
				if n := dropped.Swap(0); n > 0 {
					eng.LogEvent(timeKindPrefix+"events.dropped", "Warning", fmt.Sprintf("%d time-source events were not logged (queue full)", n))
				}
				eng.LogEvent(timeKindPrefix+e.Kind, string(e.Severity), e.Message)
			}
		}
	}()
	return func(e events.Event) {
		select {
		case q <- e:
		default:
			dropped.Add(1)
		}
	}
}

// addTimeSource links the time source and its actions from the Manager.
func (s *Server) addTimeSource(doc obj) {
	if s.ts == nil {
		return
	}
	if oem, ok := doc["Oem"].(obj); ok {
		if cm, ok := oem["Cmcd"].(obj); ok {
			cm["TimeSource"] = odataID(timeSourceURI)
		}
	}
	acts, _ := doc["Actions"].(obj)
	if acts == nil {
		acts = obj{}
		doc["Actions"] = acts
	}
	oa, _ := acts["Oem"].(obj)
	if oa == nil {
		oa = obj{}
		acts["Oem"] = oa
	}
	oa["#Cmcd.TimeReport"] = obj{"target": timeReportURI,
		"title": "Report a node's or region's time sync state (body: the timesrc report; answer: the directive)"}
	oa["#Cmcd.TimeCommand"] = obj{"target": timeCommandURI, "title": "Run a time-source policy command",
		"Action@Redfish.AllowableValues": timeCommands}
}

// liveNTP overrides the NetworkProtocol NTP section with the running time
// source's configuration.
func (s *Server) liveNTP(ntp obj) {
	if s.ts == nil {
		return
	}
	ntp["ProtocolEnabled"] = true
	ntp["NTPServers"] = s.ts.Upstream()
}

// ntpWritable is the NetworkProtocol property PATCH may carry: NTP when a
// time source runs.
func (s *Server) ntpWritable() []string {
	if s.ts == nil {
		return nil
	}
	return []string{"NTP"}
}

// patchNTP applies NetworkProtocol's NTP section: NTPServers replaces the
// upstream set (DSP0266 array PATCH: a string sets the entry, null removes
// it, {} keeps the current one). ProtocolEnabled and Port are not
// writable: the time source is started by --ntp. Every entry is checked
// before anything changes.
func (s *Server) patchNTP(c *ctx, raw json.RawMessage) error {
	if raw == nil || s.ts == nil {
		return nil
	}
	var ntp map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ntp); err != nil || ntp == nil {
		return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueTypeError", Args: []string{string(raw), "NTP"}, Property: "NTP"}
	}
	for _, k := range sortedKeys(ntp) {
		switch k {
		case "NTPServers":
		case "ProtocolEnabled", "Port":
			return &Error{Status: http.StatusBadRequest, MessageID: "PropertyNotWritable", Args: []string{"NTP/" + k}, Property: "NTP/" + k,
				Resolution: "The time source is started by cmcd's configuration (--ntp); only NTP/NTPServers can be changed at run time."}
		default:
			return &Error{Status: http.StatusBadRequest, MessageID: "PropertyUnknown", Args: []string{"NTP/" + k}, Property: "NTP/" + k}
		}
	}
	sraw, ok := ntp["NTPServers"]
	if !ok {
		return nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(sraw, &elems); err != nil || elems == nil {
		return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueTypeError", Args: []string{string(sraw), "NTP/NTPServers"}, Property: "NTP/NTPServers"}
	}
	cur := s.ts.Upstream()
	var list []string
	var from []int // request index of each list entry
	for i, e := range elems {
		prop := "NTP/NTPServers/" + strconv.Itoa(i)
		var str string
		var keep map[string]json.RawMessage
		switch {
		case bytes.Equal(bytes.TrimSpace(e), []byte("null")):
			continue
		case json.Unmarshal(e, &str) == nil:
			list, from = append(list, str), append(from, i)
		case json.Unmarshal(e, &keep) == nil && len(keep) == 0:
			if i >= len(cur) {
				return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueIncorrect", Args: []string{prop, "{}"}, Property: prop,
					Resolution: fmt.Sprintf("{} keeps the current entry, but there are only %d.", len(cur))}
			}
			list, from = append(list, cur[i]), append(from, i)
		default:
			return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueTypeError", Args: []string{string(e), prop}, Property: prop}
		}
	}
	set, err := s.ts.SetUpstream(list, "Redfish user "+c.account.Username)
	var ee *upstream.EntryError
	if errors.As(err, &ee) {
		prop := "NTP/NTPServers/" + strconv.Itoa(from[ee.Index])
		return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueFormatError", Args: []string{ee.Entry, prop}, Property: prop,
			Resolution: "Entry " + strconv.Itoa(from[ee.Index]) + ": " + ee.Reason + `. Give "host:port" or "host" (port 123); nothing was changed.`}
	}
	if err != nil {
		return err
	}
	s.log.Info("redfish: NTP upstream servers changed (saved)", "by", c.account.Username, "servers", set)
	return nil
}

// time source resource

func (s *Server) timeSource() (*timesrc.Service, error) {
	if s.ts == nil {
		return nil, notFound("TimeSource", "CMC")
	}
	return s.ts, nil
}

func refIDString(st *upstream.Status) string {
	if st.RefAddr == "LOCL" || st.Stratum <= 1 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], st.RefID)
		return strings.TrimRight(string(b[:]), "\x00")
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], st.RefID)
	return net.IP(b[:]).String()
}

func optTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// syncState names the time source's state: Synchronised, Holdover,
// Paused (upstream paused, on holdover) or Unsynchronised.
func syncState(st *upstream.Status) string {
	switch {
	case !st.Synced:
		return "Unsynchronised"
	case st.Paused:
		return "Paused"
	case st.Holdover:
		return "Holdover"
	}
	return "Synchronised"
}

func (s *Server) getTimeSource(c *ctx) (any, error) {
	ts, err := s.timeSource()
	if err != nil {
		return nil, err
	}
	st := ts.Status()
	up := st.Upstream
	servers := make([]any, 0, len(up.Peers))
	for _, p := range up.Peers {
		e := obj{"Address": p.Addr, "State": p.State, "Selected": p.State == "selected", "Reach": p.Reach,
			"Stratum": p.Stratum, "OffsetNs": int64(p.Offset), "RoundTripNs": int64(p.RTT),
			"RootDistanceNs": int64(p.Dist), "JitterNs": int64(p.Jitter)}
		if p.LastError != "" {
			e["LastError"] = p.LastError
		}
		servers = append(servers, e)
	}
	pol := st.Policy
	share := 0.0
	if pol.Active > 0 {
		share = float64(pol.Abnormal) / float64(pol.Active)
	}
	alarms := pol.Alarms
	if alarms == nil {
		alarms = []string{}
	}
	health := "OK"
	switch {
	case !up.Synced || len(alarms) > 0:
		health = "Critical"
	case up.Holdover || up.Paused || pol.ClientsPaused:
		health = "Warning"
	}
	evs := ts.Log.Events()
	if len(evs) > 20 {
		evs = evs[len(evs)-20:]
	}
	recent := make([]any, 0, len(evs))
	for i := len(evs) - 1; i >= 0; i-- {
		e := evs[i]
		recent = append(recent, obj{"Time": e.Time.UTC().Format(time.RFC3339Nano), "Kind": e.Kind,
			"Severity": string(e.Severity), "Subject": e.Subject, "Message": e.Message})
	}
	listen := st.Listen
	if listen == nil {
		listen = []string{}
	}
	return obj{
		"@odata.id":   timeSourceURI,
		"@odata.type": "#CmcdTimeSource.v1_0_0.CmcdTimeSource",
		"Id":          "TimeSource",
		"Name":        "CMC time source",
		"Description": "The CMC's " + st.Role + " time source (SPEC Part T): upstream sync from the core servers, NTP service to the chassis, feedback policy.",
		"Status":      obj{"State": "Enabled", "Health": health},
		"Role":        st.Role,
		"Region":      obj{"Name": st.Name, "Type": st.Type},
		"Listen":      listen,
		"Sync": obj{
			"State": syncState(up), "Synchronised": up.Synced, "Holdover": up.Holdover,
			"Stratum": up.Stratum, "ReferenceId": refIDString(up), "Reference": up.RefAddr,
			"ReferenceTime": optTime(up.RefTime), "LastUpdate": optTime(up.LastUpdate),
			"RootDelayNs": int64(up.RootDelay), "RootDispersionNs": int64(up.RootDisp),
			"OffsetNs": int64(up.Offset), "FrequencyPpm": up.Freq, "Clock": up.Clock,
		},
		"Upstream": obj{"Servers": servers, "Paused": up.Paused, "PauseReason": up.PauseWhy},
		"Policy": obj{
			"ClientCount": pol.Active, "AbnormalClients": pol.Abnormal, "AbnormalShare": share,
			"ClientsPaused": pol.ClientsPaused, "ClientsPausedUntil": optTime(pol.ClientsUntil),
			"Regions": pol.Regions, "AbnormalRegions": pol.AbnormalRegions,
			"RegionsUpstreamPaused": pol.UpstreamPause, "RegionsUpstreamPausedUntil": optTime(pol.UpstreamUntil),
			"SpreadFactor": pol.SpreadFactor,
		},
		"Alarms":       alarms,
		"Served":       st.Served,
		"RecentEvents": recent,
		"Clients":      odataID(timeClientsURI),
		"Actions": obj{
			"#Cmcd.TimeReport":  obj{"target": timeReportURI},
			"#Cmcd.TimeCommand": obj{"target": timeCommandURI, "Action@Redfish.AllowableValues": timeCommands},
		},
	}, nil
}

func (s *Server) getTimeClients(c *ctx) (any, error) {
	ts, err := s.timeSource()
	if err != nil {
		return nil, err
	}
	cl := ts.Policy.Clients()
	members := make([]any, 0, len(cl))
	for _, x := range cl {
		m := obj{"Key": x.Key, "Kind": x.Kind, "Address": x.Addr, "Region": x.Region, "RegionType": x.RegionType,
			"FirstSeen": optTime(x.FirstSeen), "LastSeen": optTime(x.LastSeen), "Requests": x.Requests,
			"ObservedIntervalNs": int64(x.Interval), "Poll": x.Poll, "Stratum": x.Stratum,
			"TransmitOffsetNs": int64(x.TxOffset), "ClockHidden": x.ClockHidden, "Synchronised": x.Synced,
			"OffsetNs": int64(x.Offset), "Abnormal": x.Abnormal, "AbnormalStreak": x.Streak,
			"Repair": x.Repair, "Alarm": x.Alarm, "PollOffsetNs": int64(x.PollOffset)}
		members = append(members, m)
	}
	return obj{
		"@odata.id":           timeClientsURI,
		"@odata.type":         "#CmcdTimeSourceClients.v1_0_0.CmcdTimeSourceClients",
		"Id":                  "Clients",
		"Name":                "CMC time source clients",
		"Members":             members,
		"Members@odata.count": len(members),
	}, nil
}

// action bodies

// reportParams maps the JSON names of policy.Report to its fields (the
// report format of the timesrc API, accepted as is).
var reportParams = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[policy.Report]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" && name != "addr" {
			m[name] = i
		}
	}
	return m
}()

// postTimeReport is #Cmcd.TimeReport: a node or region reports its sync
// state (timesrc's report format); the answer carries the directive.
func (s *Server) postTimeReport(c *ctx) error {
	ts, err := s.timeSource()
	if err != nil {
		return err
	}
	body, err := c.body()
	if err != nil {
		return err
	}
	var rep policy.Report
	v := reflect.ValueOf(&rep).Elem()
	for _, k := range sortedKeys(body) {
		i, ok := reportParams[k]
		if !ok {
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterUnknown", Args: []string{"TimeReport", k}}
		}
		if err := json.Unmarshal(body[k], v.Field(i).Addr().Interface()); err != nil {
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueTypeError", Args: []string{string(body[k]), k, "TimeReport"}}
		}
	}
	if rep.ID == "" {
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterMissing", Args: []string{"TimeReport", "id"}}
	}
	if rep.Kind != "node" && rep.Kind != "region" {
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueNotInList", Args: []string{rep.Kind, "kind", "TimeReport"},
			Resolution: "kind is node or region."}
	}
	if host, _, err := net.SplitHostPort(c.r.RemoteAddr); err == nil {
		rep.Addr = host
	}
	d, err := ts.Policy.Report(rep)
	if err != nil {
		return &Error{Status: http.StatusBadRequest, MessageID: "GeneralError", Resolution: err.Error()}
	}
	out := successBody()
	out["Oem"] = obj{"Cmcd": obj{"Directive": d}}
	s.reply(c, http.StatusOK, out)
	return nil
}

// postTimeCommand is #Cmcd.TimeCommand: {"Action": one of timeCommands,
// "Reason": optional text for the event log}.
func (s *Server) postTimeCommand(c *ctx) error {
	ts, err := s.timeSource()
	if err != nil {
		return err
	}
	body, err := c.body()
	if err != nil {
		return err
	}
	var cmd timesrc.Command
	for _, k := range sortedKeys(body) {
		var dst *string
		switch k {
		case "Action":
			dst = &cmd.Action
		case "Reason":
			dst = &cmd.Reason
		default:
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterUnknown", Args: []string{"TimeCommand", k}}
		}
		if err := json.Unmarshal(body[k], dst); err != nil {
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueTypeError", Args: []string{string(body[k]), k, "TimeCommand"}}
		}
	}
	if cmd.Action == "" {
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterMissing", Args: []string{"TimeCommand", "Action"}}
	}
	if cmd.Reason == "" {
		cmd.Reason = "Redfish user " + c.account.Username
	} else {
		cmd.Reason += " (Redfish user " + c.account.Username + ")"
	}
	if err := ts.Do(cmd); err != nil {
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueNotInList", Args: []string{cmd.Action, "Action", "TimeCommand"},
			Resolution: "Action is one of " + strings.Join(timeCommands, ", ") + "."}
	}
	s.log.Info("redfish: time source command", "by", c.account.Username, "action", cmd.Action)
	s.reply(c, http.StatusOK, successBody())
	return nil
}
