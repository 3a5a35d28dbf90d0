package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"time"

	"cmcd/syncsel"
)

// SyncNowTimeout bounds how long #Cmcd.SyncNow waits for its round.
const SyncNowTimeout = 2 * time.Minute

// RoundHistory is how many recent rounds Oem.Cmcd.Sync.RoundHistory shows.
const RoundHistory = 20

// syncDoc is the R6 sync API under the Manager's Oem.Cmcd.Sync:
//
//	SelectionModel  the S2 model: every category and option, with value,
//	                default, allowed values and explanation
//	Configuration   the configuration in force (writable by PATCH, keys as
//	                the option names of SelectionModel)
//	State           running/source/destination images, last and next round,
//	                last error, counters
//	RoundHistory    the last RoundHistory committed rounds, newest first
//
// and the action #Cmcd.SyncNow in the Manager's Actions.Oem.
func (s *Server) syncDoc() (obj, error) {
	cfg := s.eng.Config()
	st := s.eng.State()
	// Rounds are journaled in the destination image's store.
	rounds, err := s.eng.StoreOf(st.Dest).Rounds(RoundHistory)
	if err != nil {
		return nil, err
	}
	if rounds == nil {
		rounds = []syncsel.RoundRecord{}
	}
	return obj{
		"SelectionModel": cfg.Model(),
		"Configuration":  configValues(cfg),
		"State":          st,
		"RoundHistory":   rounds,
	}, nil
}

// configValues maps every option name of the model to its value, the form
// PATCH takes.
func configValues(cfg syncsel.Config) map[string]any {
	m := map[string]any{}
	for _, o := range cfg.Model() {
		m[o.Name] = o.Value
	}
	return m
}

// managerVersion is what the Manager's ETag covers: its writable state
// (the sync configuration, the links), not the clock or the sync state
// that change every second.
func managerVersion(doc any) any {
	m, _ := doc.(obj)
	oem, _ := m["Oem"].(obj)
	cmcd, _ := oem["Cmcd"].(obj)
	sync, _ := cmcd["Sync"].(obj)
	return obj{"Configuration": sync["Configuration"], "Links": m["Links"]}
}

// patchManager handles PATCH of the Manager; Oem.Cmcd.Sync.Configuration
// and Links.ActiveSoftwareImage (update.go) are writable.
func (s *Server) patchManager(c *ctx) error {
	body, err := c.body()
	if err != nil {
		return err
	}
	cur, err := s.getManager(c)
	if err != nil {
		return err
	}
	if err := checkWritable(body, cur.(obj), "Oem", "Links"); err != nil {
		return err
	}
	activate, err := s.activeImagePatch(body)
	if err != nil {
		return err
	}
	delete(body, "Links")
	cfgPatch, err := descend(body, "Oem", "Cmcd", "Sync", "Configuration")
	if err != nil {
		return err
	}
	if activate != nil {
		if err := s.activate(c, *activate); err != nil {
			return err
		}
	}
	if len(cfgPatch) > 0 {
		if _, err := s.eng.UpdateConfig(cfgPatch); err != nil {
			return optionError(err, s.eng.Config())
		}
		s.log.Info("redfish: sync configuration changed", "by", c.account.Username, "options", sortedKeys(cfgPatch))
	}
	v, err := s.getManager(c)
	if err != nil {
		return err
	}
	s.reply(c, http.StatusOK, v)
	return nil
}

// descend follows path through nested objects of body, refusing any
// sibling property on the way: Oem/Cmcd/Sync/Configuration is the one
// writable place.
func descend(body map[string]json.RawMessage, path ...string) (map[string]json.RawMessage, error) {
	prefix := ""
	cur := body
	for i, name := range path {
		for _, k := range sortedKeys(cur) {
			if k != name {
				p := prefix + k
				if i > 0 {
					return nil, &Error{Status: http.StatusBadRequest, MessageID: "PropertyUnknown", Args: []string{p}, Property: p}
				}
			}
		}
		raw, ok := cur[name]
		if !ok {
			return nil, nil
		}
		var next map[string]json.RawMessage
		if err := json.Unmarshal(raw, &next); err != nil || next == nil {
			p := prefix + name
			return nil, &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueTypeError",
				Args: []string{string(raw), p}, Property: p}
		}
		prefix += name + "/"
		cur = next
	}
	return cur, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// optionError turns a refused configuration change into a 400 naming the
// option, with the Base message its Kind calls for.
func optionError(err error, cfg syncsel.Config) error {
	var oe *syncsel.OptionError
	if !errors.As(err, &oe) {
		return err
	}
	prop := "Oem/Cmcd/Sync/Configuration/" + oe.Option
	e := &Error{Status: http.StatusBadRequest, Property: prop, Resolution: oe.Error()}
	switch oe.Kind {
	case "unknown":
		e.MessageID, e.Args = "PropertyUnknown", []string{prop}
	case "type":
		e.MessageID, e.Args = "PropertyValueTypeError", []string{oe.Value, prop}
	default:
		e.MessageID, e.Args = "PropertyValueIncorrect", []string{prop, oe.Value}
		for _, o := range cfg.Model() {
			if o.Name == oe.Option && len(o.Allowed) > 0 {
				e.MessageID, e.Args = "PropertyValueNotInList", []string{oe.Value, prop}
			}
		}
	}
	return e
}

// postSyncNow runs a sync round now (#Cmcd.SyncNow) and answers with its
// result.
func (s *Server) postSyncNow(c *ctx) error {
	if c.r.ContentLength != 0 {
		body, err := c.body()
		if err != nil {
			return err
		}
		for _, k := range sortedKeys(body) {
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterUnknown", Args: []string{"SyncNow", k}}
		}
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), SyncNowTimeout)
	defer cancel()
	res, err := s.eng.SyncNow(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Status: http.StatusServiceUnavailable, MessageID: "ServiceTemporarilyUnavailable", Args: []string{"30"},
			Resolution: "The sync engine did not run the round in time (a round may be in progress); retry later."}
	}
	if err != nil {
		return &Error{Status: http.StatusConflict, MessageID: "GeneralError", Resolution: "The sync round failed: " + err.Error()}
	}
	s.log.Info("redfish: sync round run on demand", "by", c.account.Username)
	out := successBody()
	out["Oem"] = obj{"Cmcd": obj{"Round": res.Record, "Unchanged": res.Unchanged, "Rollback": res.Rollback}}
	s.reply(c, http.StatusOK, out)
	return nil
}
