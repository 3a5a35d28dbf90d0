package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"cmcd/accounts"
	"cmcd/firmware"
	"cmcd/pair"
	"cmcd/pair/vip"
	"cmcd/pair/vote"
	"cmcd/syncsel"
)

// PairConfig configures the redundant pair (issue 8). Empty ID: no pair,
// cmcd runs alone exactly as before.
type PairConfig struct {
	ID           string      `json:"id"`      // this module's ID (e.g. A)
	Listen       []string    `json:"listen"`  // raft addresses: management, then sync link
	Peers        []pair.Peer `json:"peers"`   // every voter, this module included; the witness with "witness": true
	Preset       string      `json:"preset"`  // the module that becomes active at power-up (D7)
	KeyFile      string      `json:"keyFile"` // the pair key (64 hex digits, mode 0600), same on both modules
	Dir          string      `json:"dir"`     // raft state; default DATA/pair
	VIPIf        string      `json:"vipInterface"`
	VIP          string      `json:"vip"`          // floating address with prefix, e.g. 10.0.0.100/24
	FenceCmd     []string    `json:"fenceCommand"` // fence agent: argv, the peer ID is appended
	Heartbeat    string      `json:"heartbeat"`    // raft heartbeat timeout (default 200ms)
	PeerHTTP     []string    `json:"peerHTTP"`     // the other module's HTTP base URLs (fingerprint vote, daemon/pairvote.go)
	VoteInterval string      `json:"voteInterval"` // fingerprint vote schedule (default 5m, 0: after takeovers only)
	// NoFastTakeover: only raft's heartbeat timeout detects a crashed
	// active (pair/fast.go off); the takeover benchmark's comparison run.
	NoFastTakeover bool `json:"noFastTakeover"`
}

// pairFlags registers the --pair-* flags; the returned function copies the
// flags that were set into c (call it after fs.Parse and the config file).
func pairFlags(fs *flag.FlagSet) func(c *Config) error {
	id := fs.String("pair-id", "", "redundant pair: this module's ID (empty: no pair)")
	var listen, peers, fence multi
	fs.Var(&listen, "pair-listen", "redundant pair: raft listen address (repeatable: management, then sync link)")
	fs.Var(&peers, "pair-peer", "redundant pair: voter ID=addr[,addr...] (repeatable); a witness as ID=addr,...;witness")
	preset := fs.String("pair-preset", "", "redundant pair: module active at power-up when both are up (D7)")
	key := fs.String("pair-key", "", "redundant pair: pair key file (64 hex digits, mode 0600)")
	vipIf := fs.String("pair-vip-interface", "", "redundant pair: interface of the floating address")
	vipAddr := fs.String("pair-vip", "", "redundant pair: floating address with prefix, e.g. 10.0.0.100/24")
	fs.Var(&fence, "pair-fence-command", "redundant pair: fence agent argv word (repeatable); the peer ID is appended")
	hb := fs.String("pair-heartbeat", "", "redundant pair: heartbeat timeout (default 200ms)")
	var peerHTTP multi
	fs.Var(&peerHTTP, "pair-peer-http", "redundant pair: the other module's HTTP base URL (repeatable: management, then sync link)")
	voteEvery := fs.String("pair-vote-interval", "", "redundant pair: fingerprint vote interval (default 5m; 0: after takeovers only)")
	noFast := fs.Bool("pair-no-fast-takeover", false, "redundant pair: detect a crashed active by raft's heartbeat timeout only (benchmark comparison)")
	return func(c *Config) error {
		var err error
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "pair-id":
				c.Pair.ID = *id
			case "pair-listen":
				c.Pair.Listen = listen
			case "pair-peer":
				c.Pair.Peers = nil
				for _, p := range peers {
					pp, e := ParsePeer(p)
					if e != nil {
						err = e
					}
					c.Pair.Peers = append(c.Pair.Peers, pp)
				}
			case "pair-preset":
				c.Pair.Preset = *preset
			case "pair-key":
				c.Pair.KeyFile = *key
			case "pair-vip-interface":
				c.Pair.VIPIf = *vipIf
			case "pair-vip":
				c.Pair.VIP = *vipAddr
			case "pair-fence-command":
				c.Pair.FenceCmd = fence
			case "pair-heartbeat":
				c.Pair.Heartbeat = *hb
			case "pair-peer-http":
				c.Pair.PeerHTTP = peerHTTP
			case "pair-vote-interval":
				c.Pair.VoteInterval = *voteEvery
			case "pair-no-fast-takeover":
				c.Pair.NoFastTakeover = *noFast
			}
		})
		return err
	}
}

// PairFlags is pairFlags for cmd/cmcd.
func PairFlags(fs *flag.FlagSet) func(c *Config) error { return pairFlags(fs) }

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// ParsePeer parses ID=addr[,addr...][;witness].
func ParsePeer(s string) (pair.Peer, error) {
	id, rest, ok := strings.Cut(s, "=")
	if !ok || id == "" || rest == "" {
		return pair.Peer{}, fmt.Errorf("--pair-peer %q: want ID=addr[,addr...][;witness]", s)
	}
	p := pair.Peer{ID: id}
	if r, ok := strings.CutSuffix(rest, ";witness"); ok {
		rest, p.Witness = r, true
	}
	p.Addrs = strings.Split(rest, ",")
	return p, nil
}

func timingFor(hb string) (pair.Timing, error) {
	t := pair.DefaultTiming()
	if hb == "" {
		return t, nil
	}
	d, err := time.ParseDuration(hb)
	if err != nil || d < 20*time.Millisecond || d > 10*time.Second {
		return t, fmt.Errorf("pair heartbeat %q: want a duration between 20ms and 10s", hb)
	}
	t.Heartbeat, t.Election, t.Lease = d, d, d*3/4
	return t, nil
}

// pairSink applies replicated values on this module.
type pairSink struct {
	eng  *syncsel.Engine
	acct *accounts.Store
	ext  *slotExt // sessions, firmware (daemon/pairslots.go)
}

func (s pairSink) ApplySlot(slot string, plain []byte) error {
	switch {
	case slot == pair.SlotConfig:
		var patch map[string]json.RawMessage
		if err := json.Unmarshal(plain, &patch); err != nil {
			return err
		}
		_, err := s.eng.UpdateConfig(patch)
		return err
	case slot == pair.SlotAccounts:
		var rep accounts.Replica
		if err := json.Unmarshal(plain, &rep); err != nil {
			return err
		}
		_, err := s.acct.Import(rep)
		return err
	case strings.HasPrefix(slot, pair.SlotKVPrefix):
		return nil // held by the FSM itself
	}
	if ok, err := s.ext.apply(slot, plain); ok {
		return err
	}
	return fmt.Errorf("unknown slot %q", slot)
}

// configPatch is the patch that sets every option of c.
func configPatch(c syncsel.Config) ([]byte, error) {
	m := map[string]any{}
	for _, o := range c.Model() {
		m[o.Name] = o.Value
	}
	return json.Marshal(m)
}

// pairModule is a running pair member inside cmcd run.
type pairModule struct {
	node *pair.Node
	eng  *syncsel.Engine
	acct *accounts.Store
	log  *slog.Logger
	wmu  sync.Mutex // one write at a time: its resulting state is what gets replicated

	// The fingerprint vote (daemon/pairvote.go).
	id       string
	key      []byte
	peerHTTP []string
	httpc    *http.Client
	arb      *vote.Arbiter
	voteKick chan string
	voteMu   sync.Mutex // one vote at a time
	stopVote context.CancelFunc
	uplink   func() bool // the floating address's interface has a carrier (daemon/pairlink.go); nil: no address
	rf       *pairRF     // the Redfish view and the pair's events (daemon/pairrf.go)

	ext     *slotExt          // replicated sessions and firmware state (daemon/pairslots.go)
	pubKick chan struct{}     // asks publishLoop for a run
	fw      *firmware.Service // the firmware slot's owner (daemon/pairfw.go); nil until attached
	load    *pairLoad         // load-aware reads (daemon/pairload.go)
}

// startPair starts the pair member when c.Pair.ID is set (nil otherwise).
func startPair(c Config, eng *syncsel.Engine, acct *accounts.Store, log *slog.Logger) (*pairModule, error) {
	if c.Pair.ID == "" {
		return nil, nil
	}
	pc := c.Pair
	if pc.KeyFile == "" {
		return nil, fmt.Errorf("pair: --pair-key is required")
	}
	key, err := pair.LoadKeyFile(pc.KeyFile)
	if err != nil {
		return nil, err
	}
	sealer, _ := pair.NewSealer(key)
	tkey, err := pair.TransportKey(key)
	if err != nil {
		return nil, err
	}
	timing, err := timingFor(pc.Heartbeat)
	if err != nil {
		return nil, err
	}
	dir := pc.Dir
	if dir == "" {
		dir = filepath.Join(c.Data, "pair")
	}
	every, err := voteInterval(pc.VoteInterval)
	if err != nil {
		return nil, err
	}
	m := &pairModule{eng: eng, acct: acct, log: log, id: pc.ID, key: key, peerHTTP: pc.PeerHTTP,
		ext: newSlotExt(), pubKick: make(chan struct{}, 1)}
	m.newArbiter()
	m.load = newPairLoad(m)
	cfg := pair.Config{ID: pc.ID, Dir: dir, Listen: pc.Listen, Peers: pc.Peers, Preset: pc.Preset,
		Sealer: sealer, TransportKey: tkey, Sink: pairSink{eng: eng, acct: acct, ext: m.ext}, Timing: timing, Log: log,
		NoFastTakeover: pc.NoFastTakeover}
	if len(pc.FenceCmd) > 0 {
		cfg.Fencer = pair.ExecFencer{Command: pc.FenceCmd}
	}
	if pc.VIP != "" {
		pfx, err := netip.ParsePrefix(pc.VIP)
		if err != nil {
			return nil, fmt.Errorf("pair: --pair-vip %q: %w", pc.VIP, err)
		}
		h, err := vip.New(vip.Config{Interface: pc.VIPIf, Address: pfx})
		if err != nil {
			return nil, err
		}
		if h.Held() { // left by a crash: never keep it without the role
			log.Warn("pair: removing the floating address left on the interface", "vip", pc.VIP)
			if err := h.Release(); err != nil {
				return nil, err
			}
		}
		cfg.Address = h
		ifname := pc.VIPIf
		m.uplink = func() bool { up, err := linkUp(ifname); return err == nil && up }
	}
	m.rf = newPairRF(m, pc)
	cfg.OnRole = func(r pair.Role) {
		m.rf.onRole(r)
		if r == pair.RoleActive {
			go m.publishInitial()
			m.kickVote("takeover")
		}
	}
	if m.node, err = pair.Start(cfg); err != nil {
		return nil, err
	}
	vctx, cancel := context.WithCancel(context.Background())
	m.stopVote = cancel
	go m.voteLoop(vctx, every)
	go m.uplinkLoop(vctx, timing.Heartbeat/2)
	go m.rf.loop(vctx)
	go m.load.cpuLoop(vctx)
	m.startExtras(vctx)
	return m, nil
}

// publishInitial puts this module's configuration into the pair when the
// pair has none yet (first formation).
func (m *pairModule) publishInitial() {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if _, ok, _ := m.node.FSM().Get(pair.SlotConfig); !ok {
		if err := m.publishConfig(); err != nil {
			m.log.Warn("pair: publish initial configuration", "err", err)
		}
	}
	if _, ok, _ := m.node.FSM().Get(pair.SlotAccounts); !ok {
		if err := m.publishAccounts(); err != nil {
			m.log.Warn("pair: publish initial accounts", "err", err)
		}
	}
}

// publishConfig replicates the local sync configuration if it differs from
// the replicated one. Callers hold wmu.
func (m *pairModule) publishConfig() error {
	want, err := configPatch(m.eng.Config())
	if err != nil {
		return err
	}
	if cur, ok, _ := m.node.FSM().Get(pair.SlotConfig); ok && bytes.Equal(cur, want) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = m.node.Put(ctx, pair.SlotConfig, want)
	return err
}

// publishAccounts replicates the local account list (hashes and
// passwords, sealed under the pair key by the FSM) if it differs from the
// replicated one. Callers hold wmu.
func (m *pairModule) publishAccounts() error {
	rep, err := m.acct.Export()
	if err != nil {
		return err
	}
	want, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if cur, ok, _ := m.node.FSM().Get(pair.SlotAccounts); ok && bytes.Equal(cur, want) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = m.node.Put(ctx, pair.SlotAccounts, want)
	return err
}

// revert re-applies the replicated configuration and accounts after a
// write that could not be replicated.
func (m *pairModule) revert() {
	sink := pairSink{eng: m.eng, acct: m.acct}
	for _, slot := range []string{pair.SlotConfig, pair.SlotAccounts} {
		if cur, ok, err := m.node.FSM().Get(slot); ok && err == nil {
			if err := sink.ApplySlot(slot, cur); err != nil {
				m.log.Error("pair: revert", "slot", slot, "err", err)
			}
		}
	}
	m.revertExt()
}

func (m *pairModule) Close() {
	if m != nil {
		m.stopVote()
		m.node.Close()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func redfishError(w http.ResponseWriter, code int, msgID, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": "Base.1.19." + msgID, "message": msg,
		"@Message.ExtendedInfo": []any{map[string]any{"@odata.type": "#Message.v1_2_0.Message",
			"MessageId": "Base.1.19." + msgID, "Message": msg, "Severity": "Warning", "Resolution": "Retry the request through the floating management address."}}}})
}

// Handler wraps the Redfish handler: the pair API under /cmcd/pair/, and
// for everything else the pair's rules — writes only on the active (D3),
// answered only once their resulting state is committed on a quorum
// (H3); reads on a standby only while it is in sync (D1, D2).
func (m *pairModule) Handler(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cmcd/pair/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, m.status())
	})
	mux.HandleFunc("POST /cmcd/pair/write", m.kvWrite)
	mux.HandleFunc("GET /cmcd/pair/kv", m.kvList)
	mux.HandleFunc("GET /cmcd/pair/matrix", m.matrixHandler)
	mux.HandleFunc("POST /cmcd/pair/vote/sync", m.voteSyncHandler)
	mux.HandleFunc("GET /cmcd/pair/data/export", m.dataExportHandler) // daemon/pairdata.go
	mux.HandleFunc("POST /cmcd/pair/data/sync", m.dataSyncHandler)
	mux.HandleFunc("GET /cmcd/pair/firmware", m.firmwareHandler) // daemon/pairfw.go
	mux.HandleFunc("/cmcd/pair/vote", m.voteReport)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		write := r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions
		active := m.node.Role() == pair.RoleActive
		switch {
		case write && !active: // logins and logouts too: sessions are replicated (daemon/pairslots.go)
			redfishError(w, http.StatusServiceUnavailable, "ServiceTemporarilyUnavailable",
				"This module is the standby CMC; writes go to the active module at the floating address.")
			return
		case !write && !active:
			if ok, _ := m.node.CanServeReads(); !ok {
				w.Header().Set("Retry-After", "1")
				redfishError(w, http.StatusServiceUnavailable, "ServiceTemporarilyUnavailable",
					"This standby CMC is not in sync with the active module; read from the floating address.")
				return
			}
		}
		if !write {
			m.serveRead(w, r, next) // on the active perhaps through the standby (D2, daemon/pairload.go)
			return
		}
		m.wmu.Lock()
		defer m.wmu.Unlock()
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Code/100 == 2 {
			err := m.publishConfig()
			if err == nil {
				err = m.publishAccounts()
			}
			if err == nil {
				err = m.publishExt()
			}
			if err != nil {
				m.log.Error("pair: write not replicated; reverted", "path", r.URL.Path, "err", err)
				m.revert()
				redfishError(w, http.StatusServiceUnavailable, "ServiceTemporarilyUnavailable",
					"The change could not be replicated to the standby module and was not made.")
				return
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
	return mux
}

func (m *pairModule) authorized(w http.ResponseWriter, r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if ok {
		a, err := m.acct.Authenticate(u, p, r.RemoteAddr)
		if err == nil && accounts.HasPrivilege(a.Role, accounts.PrivConfigureManager) {
			return true
		}
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="cmcd"`)
	http.Error(w, "unauthorized", http.StatusUnauthorized)
	return false
}

// kvWrite is the generic acknowledged write: POST /cmcd/pair/write?key=K
// with the value as body; 200 only once committed on a quorum and applied
// here.
func (m *pairModule) kvWrite(w http.ResponseWriter, r *http.Request) {
	if !m.authorized(w, r) {
		return
	}
	key := r.URL.Query().Get("key")
	if key == "" || len(key) > 128 {
		http.Error(w, "key: 1..128 characters required", http.StatusBadRequest)
		return
	}
	val, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	idx, err := m.node.Put(r.Context(), pair.SlotKVPrefix+key, val)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "index": idx})
}

// kvList returns every acknowledged write this module holds.
func (m *pairModule) kvList(w http.ResponseWriter, r *http.Request) {
	if !m.authorized(w, r) {
		return
	}
	out := map[string]string{}
	for _, s := range m.node.FSM().Slots() {
		if k, ok := strings.CutPrefix(s, pair.SlotKVPrefix); ok {
			v, _, err := m.node.FSM().Get(s)
			if err == nil {
				out[k] = string(v)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// WitnessConfig configures `cmcd witness`.
type WitnessConfig struct {
	ID        string
	Dir       string
	Listen    []string
	Peers     []pair.Peer
	Heartbeat string
	// KeyFile is the witness key: the raft transport key derived from the
	// pair key (`cmcd witness-key`), 64 hex digits, mode 0600. The witness
	// never holds the pair key itself.
	KeyFile string
}

// RunWitness runs the witness voter until ctx ends.
func RunWitness(ctx context.Context, c WitnessConfig, log *slog.Logger) error {
	if c.Dir == "" {
		return fmt.Errorf("witness: --data DIR is required")
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return err
	}
	timing, err := timingFor(c.Heartbeat)
	if err != nil {
		return err
	}
	if c.KeyFile == "" {
		return fmt.Errorf("witness: --key FILE is required (the witness key: cmcd witness-key --pair-key PAIRKEY)")
	}
	tkey, err := pair.LoadKeyFile(c.KeyFile)
	if err != nil {
		return fmt.Errorf("witness: %w", err)
	}
	n, err := pair.Start(pair.Config{ID: c.ID, Dir: c.Dir, Listen: c.Listen, Peers: c.Peers, TransportKey: tkey, Timing: timing, Log: log})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return n.Close()
}
