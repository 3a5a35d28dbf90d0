package timesrc

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"cmcd/timesrc/events"
	"cmcd/timesrc/policy"
	"cmcd/timesrc/upstream"
)

// Status is what GET /status answers.
type Status struct {
	Role     string            `json:"role"`
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Listen   []string          `json:"listen"`
	Upstream *upstream.Status  `json:"upstream"`
	Policy   policy.State      `json:"policy"`
	Served   map[string]uint64 `json:"served"` // counters summed over the listeners
}

// Status returns the service's state.
func (s *Service) Status() Status {
	st := Status{Role: s.cfg.Role, Name: s.cfg.Name, Type: s.cfg.Type, Upstream: s.Poller.Status(),
		Policy: s.Policy.State(), Served: map[string]uint64{}}
	for _, srv := range s.Servers() {
		st.Listen = append(st.Listen, srv.Addr().String())
		x := srv.Stats()
		for k, v := range map[string]uint64{"received": x.Received.Load(), "answered": x.Answered.Load(),
			"kod": x.KoD.Load(), "limited": x.Limited.Load(), "malformed": x.Malformed.Load(),
			"control": x.Control.Load(), "otherMode": x.OtherMode.Load(), "bytesIn": x.BytesIn.Load(),
			"bytesOut": x.BytesOut.Load()} {
			st.Served[k] += v
		}
	}
	return st
}

// Command is what POST /command takes.
type Command struct {
	Action string `json:"action"` // spread, pause-clients, resume-clients, pause-upstream, resume-upstream
	Reason string `json:"reason,omitempty"`
}

// Do runs a command.
func (s *Service) Do(c Command) error {
	why := c.Reason
	if why == "" {
		why = "operator command"
	}
	switch c.Action {
	case "spread":
		s.Policy.Spread(why)
	case "pause-clients":
		s.Policy.PauseClients(true, why)
	case "resume-clients":
		s.Policy.PauseClients(false, why)
	case "pause-upstream":
		s.Poller.SetPaused(true, why)
	case "resume-upstream":
		s.Poller.SetPaused(false, why)
	default:
		return fmt.Errorf("action %q: want spread, pause-clients, resume-clients, pause-upstream or resume-upstream", c.Action)
	}
	return nil
}

// Handler is the JSON API the Redfish layer mounts (as the Manager's OEM
// time-source resource and report action):
//
//	GET  /status   Status
//	GET  /clients  the client table
//	GET  /events   the last events
//	POST /report   policy.Report -> policy.Directive (nodes and regions, T2)
//	POST /command  Command
//
// POSTs need "Authorization: Bearer TOKEN" when Config.ReportToken is set;
// the mounting layer adds its own authentication on top.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Status()) })
	mux.HandleFunc("GET /clients", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Policy.Clients()) })
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Log.Events()) })
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			writeJSON(w, 401, map[string]string{"error": "report: missing or wrong bearer token"})
			return
		}
		var rep policy.Report
		if err := decode(r, &rep); err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			rep.Addr = host
		}
		d, err := s.Policy.Report(rep)
		if err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, 200, d)
	})
	mux.HandleFunc("POST /command", func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			writeJSON(w, 401, map[string]string{"error": "command: missing or wrong bearer token"})
			return
		}
		var c Command
		if err := decode(r, &c); err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		if err := s.Do(c); err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, 200, s.Status())
	})
	return mux
}

func (s *Service) authorized(r *http.Request) bool {
	if s.cfg.ReportToken == "" {
		return true
	}
	want := "Bearer " + s.cfg.ReportToken
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) == 1
}

func decode(r *http.Request, v any) error {
	d := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// tick evaluates the policy shares.
func (s *Service) tick(ctx context.Context) {
	t := s.cfg.Raw.NewTimer(s.cfg.TickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			s.Policy.Tick()
			t.Reset(s.cfg.TickEvery)
		}
	}
}

// RegionReport is this region's report to its core (T2).
func (s *Service) RegionReport() policy.Report {
	st := s.Poller.Status()
	ps := s.Policy.State()
	return policy.Report{ID: s.cfg.Name, Kind: "region", Region: s.cfg.Name, RegionType: s.cfg.Type,
		Synced: st.Synced, Offset: 0, Stratum: st.Stratum, Holdover: st.Holdover, Paused: st.Paused,
		Abnormal: !st.Synced || (st.Holdover && !st.Paused), Clients: ps.Active, AbnormalClients: ps.Abnormal}
}

// reportLoop sends the region's report to the core and follows its
// directive: pause or resume upstream sync (T3).
func (s *Service) reportLoop(ctx context.Context) {
	hc := &http.Client{Timeout: 5 * time.Second}
	t := s.cfg.Raw.NewTimer(0)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		d, err := s.sendReport(ctx, hc)
		if err != nil {
			if !failing {
				s.Log.Emit(events.Event{Time: s.Clock.Now(), Kind: "report.failed", Severity: events.Warning,
					Subject: s.cfg.CoreReportURL, Message: "report to the core failed: " + err.Error()})
			}
			failing = true
		} else {
			failing = false
			st := s.Poller.Status()
			if d.PauseUpstream != st.Paused {
				why := "core directive"
				if d.PauseUpstream {
					why = "core directive until " + d.Until.Format(time.RFC3339)
				}
				s.Poller.SetPaused(d.PauseUpstream, why)
			}
		}
		t.Reset(s.cfg.ReportEvery)
	}
}

func (s *Service) sendReport(ctx context.Context, hc *http.Client) (policy.Directive, error) {
	var d policy.Directive
	b, _ := json.Marshal(s.RegionReport())
	req, err := http.NewRequestWithContext(ctx, "POST", s.cfg.CoreReportURL, bytes.NewReader(b))
	if err != nil {
		return d, err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.cfg.ReportToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.ReportToken)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return d, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return d, json.NewDecoder(resp.Body).Decode(&d)
}
