package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"cmcd/board"
)

// NodeActionTimeout bounds how long a node action (ClearLog, Reset) waits
// for the node's BMC and the collection pass that follows it.
const NodeActionTimeout = 20 * time.Second

// resetTypes are the Chassis.Reset types a node takes, each a board power
// action.
var resetTypes = []string{string(board.ActionOn), string(board.ActionOff), string(board.ActionSoft), string(board.ActionCycle)}

// addChassisTree adds the links and actions of the tree's additions to a
// Chassis payload.
func (s *Server) addChassisTree(doc obj, ch chassisRef) {
	uri := chassisURI + "/" + ch.id
	doc["Sensors"] = odataID(uri + "/Sensors")
	if ch.node != nil && s.tree.o.Board != nil {
		doc["Actions"] = obj{"#Chassis.Reset": obj{
			"target":                            uri + "/Actions/Chassis.Reset",
			"ResetType@Redfish.AllowableValues": resetTypes,
		}}
	}
}

// actionBody decodes an action's request body (an empty body is none) and
// refuses any parameter not in params.
func actionBody(c *ctx, action string, params ...string) (map[string]json.RawMessage, error) {
	if c.r.ContentLength == 0 {
		return map[string]json.RawMessage{}, nil
	}
	body, err := c.body()
	if err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(body) {
		if !slices.Contains(params, k) {
			return nil, &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterUnknown", Args: []string{action, k}, Property: k}
		}
	}
	return body, nil
}

// stringParam reads a string action parameter; ok is false when absent.
func stringParam(body map[string]json.RawMessage, action, name string) (v string, ok bool, err error) {
	raw, ok := body[name]
	if !ok {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", true, &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueTypeError",
			Args: []string{string(raw), name, action}, Property: name}
	}
	return v, true, nil
}

// boardError maps an error of the board's node source to a Redfish error.
func boardError(err error, what string) error {
	if errors.Is(err, board.ErrNoSuchNode) {
		return notFound("Chassis", what)
	}
	return &Error{Status: http.StatusServiceUnavailable, MessageID: "OperationFailed",
		Resolution: "The node's BMC did not carry out the request (" + err.Error() + "); check the node and retry."}
}

// refresh runs a collection pass so that the store (and every GET after
// the action) shows the board's new state.
func (s *Server) refresh(ctx context.Context, why string) {
	if _, err := s.eng.Collector().Collect(ctx); err != nil {
		s.log.Warn("redfish: collection after "+why+" incomplete; the next pass catches up", "err", err)
	}
}

// postNodeClearLog is LogService.ClearLog on a node's SEL or fault log: the
// log is cleared on the node's BMC, then a collection pass brings the store
// in line. LogEntriesETag, when given, must be the ETag of the Entries
// collection as the client last saw it (412 otherwise).
func (s *Server) postNodeClearLog(c *ctx) error {
	ch, _, err := c.nodeLog()
	if err != nil {
		return err
	}
	if s.tree.o.Board == nil {
		return errorf(http.StatusBadRequest, "ActionNotSupported", "LogService.ClearLog")
	}
	body, err := actionBody(c, "ClearLog", "LogEntriesETag")
	if err != nil {
		return err
	}
	tag, ok, err := stringParam(body, "ClearLog", "LogEntriesETag")
	if err != nil {
		return err
	}
	if ok {
		cur, err := s.getNodeLogEntries(c)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(cur)
		if !etagMatches(tag, etagOf(b)) {
			// LogService.v1_9_0 ClearLog: a mismatched LogEntriesETag gets
			// 428 Precondition Required.
			return &Error{Status: http.StatusPreconditionRequired, MessageID: "PreconditionFailed", Property: "LogEntriesETag"}
		}
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), NodeActionTimeout)
	defer cancel()
	nodes := s.tree.o.Board.Nodes
	clear := nodes.ClearSEL
	if c.param("log") == "FaultLog" {
		clear = nodes.ClearFaults
	}
	if err := clear(ctx, ch.node.Slot); err != nil {
		return boardError(err, ch.id)
	}
	s.refresh(ctx, "ClearLog")
	s.log.Info("redfish: node log cleared", "node", ch.id, "log", c.param("log"), "by", c.account.Username)
	s.reply(c, http.StatusOK, successBody())
	return nil
}

// postChassisReset is Chassis.Reset of a node: the reset type becomes the
// board's power action on the node.
func (s *Server) postChassisReset(c *ctx) error {
	ch, err := c.chassis()
	if err != nil {
		return err
	}
	if ch.node == nil {
		return notFound("Action", "Chassis.Reset")
	}
	if s.tree.o.Board == nil {
		return errorf(http.StatusBadRequest, "ActionNotSupported", "Chassis.Reset")
	}
	body, err := actionBody(c, "Chassis.Reset", "ResetType")
	if err != nil {
		return err
	}
	rt, ok, err := stringParam(body, "Chassis.Reset", "ResetType")
	if err != nil {
		return err
	}
	if !ok {
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterMissing", Args: []string{"Chassis.Reset", "ResetType"}}
	}
	if !slices.Contains(resetTypes, rt) {
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueNotInList",
			Args: []string{rt, "ResetType", "Chassis.Reset"}, Property: "ResetType"}
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), NodeActionTimeout)
	defer cancel()
	if err := s.tree.o.Board.Nodes.SetPower(ctx, ch.node.Slot, board.PowerAction(rt)); err != nil {
		return boardError(err, ch.id)
	}
	s.refresh(ctx, "Chassis.Reset")
	s.log.Info("redfish: node power action", "node", ch.id, "reset", rt, "by", c.account.Username)
	s.reply(c, http.StatusOK, successBody())
	return nil
}
