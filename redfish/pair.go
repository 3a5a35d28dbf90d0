package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The redundant pair (issue 8) as Redfish shows it: see doc.go, "# The
// redundant pair".

const (
	managersURI      = "/redfish/v1/Managers"
	peerManagerIDPfx = managerID + "-" // the other module's Manager: CMC-<module ID>
	forceFailoverURI = managerURI + "/Actions/Manager.ForceFailover"
	forceFailover    = "Manager.ForceFailover"
)

// PairView is what the Redfish service needs of the redundant pair. The
// daemon implements it over pair.Node (daemon/pairrf.go); FakePair stands
// in for tests.
type PairView interface {
	// PairState is what this module knows of the pair now. It must not
	// wait on the network: the other module's state is the last one read.
	PairState() PairState
	// PrepareFailover checks that this module may hand the active role to
	// module peer now (it is active, peer is the other module and in
	// sync). The error wraps ErrPairNotActive or ErrPairPeerNotReady.
	// On success it returns the handover itself, which the service runs
	// once its answer has been sent: the answer travels over the floating
	// address, which the handover moves to the other module.
	PrepareFailover(peer, by string) (handover func(), err error)
}

// Errors of PairView.PrepareFailover.
var (
	ErrPairNotActive    = errors.New("this module is not the active one")
	ErrPairPeerNotReady = errors.New("the other module cannot take the active role")
)

// PairState is a module's view of the pair.
type PairState struct {
	Self PairModule
	Peer PairModule
	// Witness is the witness voter's ID ("" in two-node mode);
	// WitnessReachable whether this module reached it at its last check
	// (nil: not checked yet, or no witness).
	Witness          string
	WitnessReachable *bool
	TwoNode          bool
	FloatingAddress  string            // e.g. 10.0.0.100/24; "" when none is configured
	LastTakeover     *PairTakeoverInfo // nil: this module has not become active since it started
	LastVote         *PairVoteInfo     // nil: no fingerprint vote ran here yet
	Reads            *PairReadsInfo    // load-aware reads (D1, D2); nil: not reported
}

// PairModule is one module's state. For the other module, Known says
// whether its state was read (the fields past LastHeard are zero when
// not).
type PairModule struct {
	ID        string
	Known     bool
	LastHeard time.Time // when the other module's state was read (zero for Self)
	Fenced    bool      // the other module was fenced by this one and not heard since

	Role         string // "active" or "standby"
	RoleSince    time.Time
	Term         uint64
	Leader       string
	CommitIndex  uint64
	AppliedIndex uint64
	// InSync: the module may serve reads from its state (the active
	// always; a standby only while it hears the active and has applied
	// everything the active committed).
	InSync       bool
	HoldsAddress bool
	Fingerprint  string // the replicated state's fingerprint
	Fences       int    // fences this module carried out
	Uplink       *bool  // the floating address's interface has a carrier; nil: unknown
}

// PairTakeoverInfo is the last time this module became active.
type PairTakeoverInfo struct {
	Time     time.Time
	Previous string // the module active before; "" at the pair's formation
	Reason   string
	Work     time.Duration // barrier, probe, fence and address
}

// PairVoteInfo is the last fingerprint vote's result.
type PairVoteInfo struct {
	Time       time.Time
	Reason     string
	Converged  bool     // every category with a majority agrees on every replica now
	NoMajority []string // categories without a majority
	Disagreed  []string // replicas that disagreed at the vote (then synced, or failed to be)
}

// Event kinds the daemon writes into the CMC event log for the pair
// (syncsel.Engine.LogEvent); their text comes from PairEventText so that
// the event stream carries them as Cmcd registry messages with arguments.
const (
	PairBecameActive   = "PairBecameActive"   // module, reason
	PairTakeover       = "PairTakeover"       // module, previous active, reason
	PairBecameStandby  = "PairBecameStandby"  // module, reason
	PairHandover       = "PairHandover"       // module, target, reason
	PairHandoverFailed = "PairHandoverFailed" // module, target, error
	PairPeerFenced     = "PairPeerFenced"     // module, fenced module, circumstances
	// pairVoteKind is the fingerprint vote's kind (daemon/pairvote.go).
	pairVoteKind = "PairVote"
)

// pairMessages are the Cmcd registry's pair messages.
var pairMessages = map[string]cmcdMessage{
	PairBecameActive: {
		description: "This module became the active CMC of the redundant pair without replacing another active module (the pair formed).",
		message:     "Module %1 became the active CMC: %2",
		severity:    "OK", args: []string{"string", "string"},
		argDescs:   []string{"The module.", "The circumstances."},
		resolution: "None.",
	},
	PairTakeover: {
		description: "This module took over the active role of the redundant pair from the other module; it now holds the floating address.",
		message:     "Module %1 took over the active role from module %2: %3",
		severity:    "Warning", args: []string{"string", "string", "string"},
		argDescs:   []string{"The new active module.", "The module that was active before.", "Why the role changed."},
		resolution: "If the takeover was not asked for, check the other module.",
	},
	PairBecameStandby: {
		description: "This module became the standby CMC of the redundant pair; it released the floating address first.",
		message:     "Module %1 became the standby CMC: %2",
		severity:    "OK", args: []string{"string", "string"},
		argDescs:   []string{"The module.", "Why."},
		resolution: "None.",
	},
	PairHandover: {
		description: "The active module hands the active role to the other module (ForceFailover, or its management link was lost).",
		message:     "Module %1 hands the active role to module %2: %3",
		severity:    "OK", args: []string{"string", "string", "string"},
		argDescs:   []string{"The active module.", "The module taking the role.", "Why."},
		resolution: "None.",
	},
	PairHandoverFailed: {
		description: "A hand-over of the active role did not complete; the module that tried stays or becomes active again.",
		message:     "Module %1 could not hand the active role to module %2: %3",
		severity:    "Warning", args: []string{"string", "string", "string"},
		argDescs:   []string{"The active module.", "The module that was to take the role.", "The error."},
		resolution: "Check the other module and the pair's links, then retry.",
	},
	PairPeerFenced: {
		description: "This module fenced the other module (peer reset) before taking the floating address, so that never two modules are active.",
		message:     "Module %1 fenced module %2: %3",
		severity:    "Critical", args: []string{"string", "string", "string"},
		argDescs:   []string{"The module that fenced.", "The fenced module.", "Why."},
		resolution: "Repair the fenced module; it rejoins as standby when it starts again.",
	},
	"PairFingerprintVote": {
		description: "The result of a fingerprint vote over the data areas of both modules (V2-V4): agreement, syncs and their verification, or no majority.",
		message:     "%1",
		severity:    "OK", args: []string{"string"},
		argDescs:   []string{"The vote's result."},
		resolution: "Without a majority or after a failed sync, compare the data areas with cmcd verify.",
	},
}

// pairParse recovers an event's arguments from its text (the registry
// template with %n matched).
var pairParse = map[string]*regexp.Regexp{}

func init() {
	for k, v := range pairMessages {
		cmcdMessages[k] = v
		pat := regexp.QuoteMeta(v.message)
		for i := range v.args {
			g := "(.+?)"
			if i == len(v.args)-1 {
				g = "(.+)"
			}
			pat = strings.Replace(pat, "%"+strconv.Itoa(i+1), g, 1)
		}
		pairParse[k] = regexp.MustCompile("^(?s)" + pat + "$")
	}
	metadataNamespaces = append(metadataNamespaces, [2]string{"Redundancy", "v1_7_0"})
	for k, v := range map[string]baseMessage{
		"ActionParameterValueConflict": {"The parameter '%1' with the requested value of '%2' does not meet the constraints of the implementation.", "Warning", "None."},
		"ResourceInStandby":            {"The request could not be performed because the resource is in standby.", "Critical", "Ensure that the resource is in the correct power state and resubmit the request."},
	} {
		baseMessages[k] = v
	}
}

// PairEventText is the event log text of a pair event of kind with its
// arguments (the Cmcd registry message filled in).
func PairEventText(kind string, args ...string) string {
	return cmcdMessageText(kind, args)
}

// pairRecord maps the pair's event log entries onto the registry.
func pairRecord(kind, msg string, r *record) bool {
	if kind == pairVoteKind {
		r.msgID, r.args, r.eventType = "PairFingerprintVote", []string{msg}, "Other"
		if r.severity != "OK" {
			r.eventType = "Alert"
		}
		return true
	}
	re, ok := pairParse[kind]
	if !ok {
		return false
	}
	m := re.FindStringSubmatch(msg)
	if m == nil {
		return false
	}
	r.msgID, r.args, r.eventType = kind, m[1:], "Alert"
	return true
}

// peerManagerURI is the other module's Manager.
func peerManagerURI(id string) string {
	return managersURI + "/" + peerManagerIDPfx + url.PathEscape(id)
}

func (s *Server) getManagers(c *ctx) (any, error) {
	members := []any{odataID(managerURI)}
	if s.pair != nil {
		members = append(members, odataID(peerManagerURI(s.pair.PairState().Peer.ID)))
	}
	return collection(managersURI, "#ManagerCollection.ManagerCollection", "Manager Collection", members), nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func nullBool(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func roleName(r string) any {
	switch r {
	case "active":
		return "Active"
	case "standby":
		return "Standby"
	}
	return nil
}

// moduleStatus is a module's Manager Status: the active Enabled, the
// standby StandbySpare, a module not heard from UnavailableOffline with
// its health unknown.
func moduleStatus(m PairModule) obj {
	switch {
	case !m.Known || m.Fenced:
		return obj{"State": "UnavailableOffline", "Health": nil}
	case m.Role == "active":
		return obj{"State": "Enabled", "Health": "OK"}
	default:
		return obj{"State": "StandbySpare", "Health": "OK"}
	}
}

// pairRedundancy is the Manager's Redundancy: the two modules in
// failover mode. Health: OK while the other module is heard and in sync,
// Warning while it is heard but behind, Critical when it is not heard.
func pairRedundancy(self string, st PairState) []any {
	peer := peerManagerURI(st.Peer.ID)
	var active []any
	for _, m := range []struct {
		uri string
		pm  PairModule
	}{{managerURI, st.Self}, {peer, st.Peer}} {
		if m.pm.Known && !m.pm.Fenced && m.pm.Role == "active" {
			active = append(active, odataID(m.uri))
		}
	}
	if active == nil {
		active = []any{}
	}
	health := "OK"
	switch {
	case !st.Peer.Known || st.Peer.Fenced:
		health = "Critical"
	case !st.Peer.InSync || !st.Self.InSync:
		health = "Warning"
	}
	return []any{obj{
		"@odata.id":                       self + "#/Redundancy/0",
		"MemberId":                        "0",
		"Name":                            "CMC pair",
		"Mode":                            "Failover",
		"MinNumNeeded":                    1,
		"MaxNumSupported":                 2,
		"RedundancyEnabled":               true,
		"RedundancySet":                   []any{odataID(managerURI), odataID(peer)},
		"RedundancySet@odata.count":       2,
		"ActiveRedundancySet":             active,
		"ActiveRedundancySet@odata.count": len(active),
		"Status":                          obj{"State": "Enabled", "Health": health},
	}}
}

// PairReadsInfo is where this module's reads went (SPEC D1, D2): the
// active sends a read to the standby when it is in sync and less loaded.
type PairReadsInfo struct {
	ServedLocally uint64   // answered by this module (for the other module too)
	RoutedToPeer  uint64   // sent to the other module and answered there
	FellBack      uint64   // sent there, failed, answered here
	ServedForPeer uint64   // answered here for the other module
	Routing       bool     // reads go to the other module now
	Load          float64  // this module's load figure
	PeerLoad      *float64 // the other module's, as last known (nil: unknown)
}

// moduleOem is a module's Oem.Cmcd.Pair state.
func moduleOem(m PairModule, self bool) obj {
	o := obj{"Module": m.ID, "StateKnown": m.Known}
	if !self {
		o["LastHeard"] = nullTime(m.LastHeard)
		o["Fenced"] = m.Fenced
	}
	if !m.Known {
		for _, k := range []string{"Role", "RoleSince", "Term", "Leader", "CommitIndex", "AppliedIndex", "InSync",
			"HoldsFloatingAddress", "Fingerprint", "Fences", "Uplink"} {
			o[k] = nil
		}
		return o
	}
	leader := any(m.Leader)
	if m.Leader == "" {
		leader = nil
	}
	o["Role"] = roleName(m.Role)
	o["RoleSince"] = nullTime(m.RoleSince)
	o["Term"] = m.Term
	o["Leader"] = leader
	o["CommitIndex"] = m.CommitIndex
	o["AppliedIndex"] = m.AppliedIndex
	o["InSync"] = m.InSync
	o["HoldsFloatingAddress"] = m.HoldsAddress
	o["Fingerprint"] = m.Fingerprint
	o["Fences"] = m.Fences
	o["Uplink"] = nullBool(m.Uplink)
	return o
}

// pairOem is Oem.Cmcd.Pair of one module's Manager.
func pairOem(st PairState, m PairModule, self bool) obj {
	o := moduleOem(m, self)
	o["Modules"] = []string{st.Self.ID, st.Peer.ID}
	o["TwoNode"] = st.TwoNode
	if st.Witness != "" {
		o["Witness"] = st.Witness
	} else {
		o["Witness"] = nil
	}
	if !self {
		return o
	}
	o["FloatingAddress"] = st.FloatingAddress
	o["WitnessReachable"] = nullBool(st.WitnessReachable)
	// The replicated state of both modules agrees when its fingerprints
	// are equal at the same applied index; unknown otherwise.
	var agree any
	if st.Peer.Known && !st.Peer.Fenced && st.Peer.AppliedIndex == st.Self.AppliedIndex && st.Self.Fingerprint != "" {
		agree = st.Peer.Fingerprint == st.Self.Fingerprint
	}
	o["ReplicatedStateAgrees"] = agree
	if t := st.LastTakeover; t != nil {
		prev := any(t.Previous)
		if t.Previous == "" {
			prev = nil
		}
		o["LastTakeover"] = obj{"Time": nullTime(t.Time), "Previous": prev, "Reason": t.Reason,
			"WorkMilliseconds": float64(t.Work.Microseconds()) / 1000}
	} else {
		o["LastTakeover"] = nil
	}
	if rd := st.Reads; rd != nil {
		var pl any
		if rd.PeerLoad != nil {
			pl = *rd.PeerLoad
		}
		o["Reads"] = obj{"ServedLocally": rd.ServedLocally, "RoutedToPeer": rd.RoutedToPeer, "FellBack": rd.FellBack,
			"ServedForPeer": rd.ServedForPeer, "Routing": rd.Routing, "Load": rd.Load, "PeerLoad": pl}
	}
	if v := st.LastVote; v != nil {
		nm, dis := v.NoMajority, v.Disagreed
		if nm == nil {
			nm = []string{}
		}
		if dis == nil {
			dis = []string{}
		}
		// FingerprintsAgree: after the vote and its syncs every replica
		// agrees on every category.
		o["LastVote"] = obj{"Time": nullTime(v.Time), "Reason": v.Reason, "Converged": v.Converged,
			"FingerprintsAgree": v.Converged && len(nm) == 0, "NoMajority": nm, "DisagreedAtVote": dis}
	} else {
		o["LastVote"] = nil
	}
	return o
}

// addManagerPair adds the pair to this module's Manager.
func (s *Server) addManagerPair(doc obj) {
	if s.pair == nil {
		return
	}
	st := s.pair.PairState()
	doc["Status"] = moduleStatus(st.Self)
	doc["Redundancy"] = pairRedundancy(managerURI, st)
	doc["Redundancy@odata.count"] = 1
	doc["Actions"].(obj)["#Manager.ForceFailover"] = obj{"target": forceFailoverURI,
		"title":                              "Hand the active role to the other module",
		"NewManager@Redfish.AllowableValues": []string{peerManagerURI(st.Peer.ID)}}
	doc["Oem"].(obj)["Cmcd"].(obj)["Pair"] = pairOem(st, st.Self, true)
}

// getPeerManager is the other module's Manager: what this module knows of
// it.
func (s *Server) getPeerManager(c *ctx) (any, error) {
	id := c.param("mgr")
	if s.pair == nil {
		return nil, notFound("Manager", id)
	}
	st := s.pair.PairState()
	uri := peerManagerURI(st.Peer.ID)
	if managersURI+"/"+id != uri && managersURI+"/"+url.PathEscape(id) != uri {
		return nil, notFound("Manager", id)
	}
	return obj{
		"@odata.id":   uri,
		"@odata.type": "#Manager.v1_24_0.Manager",
		"Id":          strings.TrimPrefix(uri, managersURI+"/"),
		"Name":        "Chassis Management Controller (module " + st.Peer.ID + ")",
		"Description": "The other module of the redundant CMC pair, as module " + st.Self.ID + " knows it",
		"ManagerType": "EnclosureManager",
		"Status":      moduleStatus(st.Peer),
		"Links":       obj{"ManagerInChassis": odataID(chassisURI + "/" + enclosureID)},
		"Redundancy":  pairRedundancy(uri, st), "Redundancy@odata.count": 1,
		"Oem": obj{"Cmcd": obj{"Pair": pairOem(st, st.Peer, false)}},
	}, nil
}

// postForceFailover is #Manager.ForceFailover on this module's Manager:
// NewManager (a link, or its URI as a string as some clients send it)
// must be the other module's Manager. The answer goes out before the
// hand-over starts (it travels over the floating address, which the
// hand-over moves); the other module answers at that address within
// about a second.
func (s *Server) postForceFailover(c *ctx) error {
	if s.pair == nil {
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionNotSupported", Args: []string{forceFailover},
			Resolution: "This CMC runs without a redundant pair: there is no other module to fail over to."}
	}
	body, err := c.body()
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(body) {
		if k != "NewManager" {
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterUnknown", Args: []string{forceFailover, k}}
		}
	}
	raw, ok := body["NewManager"]
	if !ok || string(raw) == "null" {
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterMissing", Args: []string{forceFailover, "NewManager"}}
	}
	var target string
	var link struct {
		ID *string `json:"@odata.id"`
	}
	if json.Unmarshal(raw, &target) != nil {
		if err := json.Unmarshal(raw, &link); err != nil || link.ID == nil {
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueTypeError",
				Args: []string{string(raw), "NewManager", forceFailover}, Resolution: `NewManager is a link: {"@odata.id": "/redfish/v1/Managers/..."}.`}
		}
		target = *link.ID
	}
	st := s.pair.PairState()
	peer := peerManagerURI(st.Peer.ID)
	if strings.TrimRight(target, "/") != peer {
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueNotInList",
			Args: []string{target, "NewManager", forceFailover}, Resolution: "The active role can only go to the other module, " + peer + "."}
	}
	run, err := s.pair.PrepareFailover(st.Peer.ID, c.account.Username)
	switch {
	case errors.Is(err, ErrPairNotActive):
		return &Error{Status: http.StatusConflict, MessageID: "ResourceInStandby",
			Resolution: "Module " + st.Self.ID + " is not the active module (" + err.Error() + "); send ForceFailover to the active module at the floating address."}
	case errors.Is(err, ErrPairPeerNotReady):
		return &Error{Status: http.StatusConflict, MessageID: "ActionParameterValueConflict", Args: []string{"NewManager", target},
			Resolution: err.Error() + "; retry once Oem.Cmcd.Pair.InSync of " + peer + " is true."}
	case err != nil:
		return err
	}
	s.log.Info("redfish: ForceFailover", "by", c.account.Username, "to", st.Peer.ID)
	afterResponse(c.r.Context(), run)
	out := successBody()
	out["@Message.ExtendedInfo"] = append(out["@Message.ExtendedInfo"].([]any),
		cmcdMsg(PairHandover, st.Self.ID, st.Peer.ID, "ForceFailover by Redfish user "+c.account.Username))
	s.reply(c, http.StatusOK, out)
	return nil
}

// ---- work after the answer ------------------------------------------

type afterKey struct{}

// afterList is the work to run once a request's answer has been sent.
type afterList struct {
	mu  sync.Mutex
	fns []func()
}

// afterResponse queues fn to run once the answer to the request of ctx
// has been written out; without a list (not served through ServeHTTP) fn
// runs now, in its own goroutine.
func afterResponse(ctx context.Context, fn func()) {
	l, _ := ctx.Value(afterKey{}).(*afterList)
	if l == nil {
		go fn()
		return
	}
	l.mu.Lock()
	l.fns = append(l.fns, fn)
	l.mu.Unlock()
}

// withAfter gives r a list of work to run after its answer, unless an
// outer handler (AfterResponse) already did; run flushes the answer and
// starts the work.
func withAfter(w http.ResponseWriter, r *http.Request) (*http.Request, func()) {
	if r.Context().Value(afterKey{}) != nil {
		return r, func() {}
	}
	l := &afterList{}
	r = r.WithContext(context.WithValue(r.Context(), afterKey{}, l))
	return r, func() {
		l.mu.Lock()
		fns := l.fns
		l.mu.Unlock()
		if len(fns) == 0 {
			return
		}
		_ = http.NewResponseController(w).Flush()
		for _, fn := range fns {
			go fn()
		}
	}
}

// AfterResponse wraps the handler chain the Redfish service sits in (the
// pair's write path buffers the service's answers): work the service
// queues for after an answer (the ForceFailover hand-over) runs only once
// h returned and the answer was flushed to the client.
func AfterResponse(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, run := withAfter(w, r)
		h.ServeHTTP(w, r)
		run()
	})
}
