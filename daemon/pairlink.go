package daemon

import (
	"context"
	"net/http"
	"time"

	"github.com/vishvananda/netlink"

	"cmcd/pair"
)

// The management link of the active (H4). Raft keeps a module the leader
// as long as it hears a quorum on any path, so an active whose management
// link died but whose sync link lives would keep the role — and the
// floating address, now unreachable for every client. uplinkLoop closes
// that gap: when the interface of the floating address has lost its
// carrier for three checks in a row, and the other module (asked over the
// paths that still work, i.e. the sync link) reports its own link up and
// is in sync, the active hands the role over (leadership transfer: the
// address is released first). A module whose link is down never hands
// the role to a peer whose link is down too, so the pair cannot ping-pong.

// linkUp reports whether interface name has a carrier.
func linkUp(name string) (bool, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false, err
	}
	st := l.Attrs().OperState
	return st == netlink.OperUp || st == netlink.OperUnknown, nil
}

// pairStatus is GET /cmcd/pair/status: the node's view plus this module's
// management link.
type pairStatus struct {
	pair.Status
	Uplink *bool       `json:"uplink,omitempty"`
	Load   *loadInfo   `json:"load,omitempty"`  // D1 (daemon/pairload.go)
	Reads  *readCounts `json:"reads,omitempty"` // D2
}

func (m *pairModule) status() pairStatus {
	st := pairStatus{Status: m.node.Status()}
	if m.uplink != nil {
		up := m.uplink()
		st.Uplink = &up
	}
	if m.load != nil {
		li, rc := m.load.info(), m.load.counts()
		st.Load, st.Reads = &li, &rc
	}
	return st
}

func (m *pairModule) uplinkLoop(ctx context.Context, every time.Duration) {
	if m.uplink == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	down := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m.node.Role() != pair.RoleActive || m.uplink() {
			down = 0
			continue
		}
		if down++; down < 3 {
			continue
		}
		var peer pairStatus
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := m.peerDo(pctx, http.MethodGet, "/cmcd/pair/status", &peer)
		cancel()
		switch {
		case err != nil:
			m.log.Warn("pair: management link down; the other module does not answer, keeping the role", "err", err)
		case peer.Uplink == nil || !*peer.Uplink || !peer.CanServeReads:
			m.log.Warn("pair: management link down; the other module's link is down or it is not in sync, keeping the role")
		default:
			m.eng.LogEvent("PairFailover", "Warning",
				"management link of the active module "+m.id+" lost: handing the active role to module "+peer.ID)
			if err := m.node.TransferLeadership(); err != nil {
				m.log.Warn("pair: hand-over after management link loss", "err", err)
			}
			down = 0
		}
		select { // one attempt per couple of seconds at most
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}
