package ipmisrv

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
	"time"

	"cmcd/board"
	"cmcd/syncsel"
)

// Reader is the read side of a syncsel data store that the responder
// serves: *syncsel.Store implements it.
type Reader interface {
	PSUs() ([]board.PSU, error)
	Fans() ([]board.Fan, error)
	Nodes() ([]board.Node, error)
	Assets() ([]syncsel.AssetRecord, error)
	SEL(slot int) ([]syncsel.Logged[board.SELEntry], error)
	Events() ([]syncsel.Event, error)
}

// view is one consistent snapshot of the store, with everything derived
// from it that requests need: sensors, SDR records, FRU images and the
// merged SEL.
type view struct {
	at     time.Time
	psus   []board.PSU
	fans   []board.Fan
	nodes  []board.Node
	assets map[int]board.FRU

	sensors  []sensor
	byNumber map[uint8]int
	sdrs     [][]byte // SDR records, record ID = index+1 already filled in
	sdrSum   [32]byte

	sel     []selRec
	selByID map[uint16]int
	selLast uint32   // newest timestamp in the SEL
	marks   selMarks // the clear marks in force (see loadSEL)

	// The SEL is merged on first use: sensor and FRU requests never pay
	// for reading every node's log.
	r       Reader
	marksIn selMarks
	selOnce sync.Once
	selErr  error
}

// ensureSEL merges the SEL of the view's store once.
func (v *view) ensureSEL() error {
	v.selOnce.Do(func() { v.selErr = v.loadSEL(v.r, v.marksIn) })
	return v.selErr
}

func (v *view) psu(id int) (board.PSU, bool) {
	for _, p := range v.psus {
		if p.ID == id {
			return p, true
		}
	}
	return board.PSU{}, false
}

func (v *view) fan(id int) (board.Fan, bool) {
	for _, f := range v.fans {
		if f.ID == id {
			return f, true
		}
	}
	return board.Fan{}, false
}

func (v *view) node(slot int) (board.Node, bool) {
	for _, n := range v.nodes {
		if n.Slot == slot {
			return n, true
		}
	}
	return board.Node{}, false
}

// totalPower is the chassis' input to its loads: the sum of the present
// PSUs' output power.
func (v *view) totalPower() (float64, bool) {
	var sum float64
	var any bool
	for _, p := range v.psus {
		if p.Present {
			sum += p.OutputW
			any = true
		}
	}
	return sum, any
}

// anyNodeOn reports whether any present node is powered on.
func (v *view) anyNodeOn() bool {
	for _, n := range v.nodes {
		if n.Present && n.Power == board.PowerOn {
			return true
		}
	}
	return false
}

// fruIDs lists the FRU device IDs: 0 (the enclosure) and each node's slot.
func (v *view) fruIDs() []int {
	ids := make([]int, 0, len(v.assets))
	for id := range v.assets {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// loadView reads the store and derives the served data. marks hides the
// SEL entries up to the last clear.
func loadView(r Reader, now time.Time, marks selMarks) (*view, error) {
	v := &view{at: now, assets: map[int]board.FRU{}, byNumber: map[uint8]int{}, selByID: map[uint16]int{}}
	var err error
	if v.psus, err = r.PSUs(); err != nil {
		return nil, fmt.Errorf("reading PSUs: %w", err)
	}
	if v.fans, err = r.Fans(); err != nil {
		return nil, fmt.Errorf("reading fans: %w", err)
	}
	if v.nodes, err = r.Nodes(); err != nil {
		return nil, fmt.Errorf("reading nodes: %w", err)
	}
	assets, err := r.Assets()
	if err != nil {
		return nil, fmt.Errorf("reading FRU data: %w", err)
	}
	for _, a := range assets {
		if a.Slot >= 0 && a.Slot <= board.MaxNodes {
			v.assets[a.Slot] = a.FRU
		}
	}
	v.sensors = buildSensors(v)
	h := sha256.New()
	add := func(rec []byte) {
		id := uint16(len(v.sdrs) + 1)
		rec = append([]byte(nil), rec...)
		binary.LittleEndian.PutUint16(rec, id)
		v.sdrs = append(v.sdrs, rec)
		h.Write(rec)
	}
	add(mcLocator("CMC"))
	for i := range v.sensors {
		v.byNumber[v.sensors[i].number] = i
		add(v.sensors[i].record())
	}
	for _, id := range v.fruIDs() {
		if id == 0 {
			continue // FRU 0 is the controller's own, found without a locator
		}
		add(fruLocator(uint8(id), entityBlade, uint8(id), fmt.Sprintf("Node%d FRU", id)))
	}
	copy(v.sdrSum[:], h.Sum(nil))
	v.r, v.marksIn = r, marks
	return v, nil
}
