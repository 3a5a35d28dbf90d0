package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"cmcd/firmware"
	"cmcd/flash"
	"cmcd/pair"
)

// The firmware state of the pair (slot "firmware"; SPEC D3/H3 for image
// activation and the S5 choice). Each module has its own flash, so what
// is per module and what is pair-wide:
//
//   - Per module, never applied to the other module's flash: the image
//     slots and their states, the boot counter and trial, and the boot
//     slot (NextBoot: which of its own slots boots next). An activation
//     is a change of that module's own flash; the other module's slots
//     hold other images.
//   - Pair-wide, through the log: the record of each module's pending
//     activation request (slot, version, requested) — so the standby, and
//     after a takeover the new active, know what the other module will
//     boot — and the operator's keep-or-restore answer (S5). The answer
//     is the operator's choice for an upgrade to a version: every module
//     whose own choice for that version is pending applies it (on the
//     standby when the entry is applied; on a module whose choice appears
//     later, when it reports healthy after the upgrade). The answer's
//     effect on the data area, the sync configuration set to its defaults
//     for "restore", travels in the config slot like any configuration
//     write.
//
// The active publishes after every Redfish write (the Handler wrap):
// its own activation request as it now stands, the other module's as last
// replicated, and the last answer.

// fwActivation is a module's pending activation request.
type fwActivation struct {
	Slot    string    `json:"slot"`
	Version string    `json:"version"`
	Seen    time.Time `json:"seen"` // when the active first published it
}

// fwAnswer is the operator's last keep-or-restore answer.
type fwAnswer struct {
	Version  string    `json:"version"`
	Answer   string    `json:"answer"`
	By       string    `json:"by"`
	Module   string    `json:"module"`
	Answered time.Time `json:"answered"`
}

// fwState is the value of the firmware slot.
type fwState struct {
	Activations map[string]*fwActivation `json:"activations"` // by module; nil entry: none pending
	Answer      *fwAnswer                `json:"answer,omitempty"`
}

func (m *pairModule) replicatedFW() fwState {
	st := fwState{Activations: map[string]*fwActivation{}}
	if cur, ok, err := m.node.FSM().Get(pair.SlotFirmware); ok && err == nil {
		if json.Unmarshal(cur, &st) != nil || st.Activations == nil {
			st = fwState{Activations: map[string]*fwActivation{}}
		}
	}
	return st
}

// exportFW is the firmware slot as this (active) module sees it.
func (m *pairModule) exportFW(fw *firmware.Service) ([]byte, error) {
	st := m.replicatedFW()
	bs := fw.State()
	var act *fwActivation
	if bs.NextBoot != nil && *bs.NextBoot != bs.Active {
		img := bs.Images.Get(*bs.NextBoot)
		act = &fwActivation{Slot: bs.NextBoot.String(), Version: img.Version, Seen: time.Now().UTC()}
		if old := st.Activations[m.id]; old != nil && old.Slot == act.Slot && old.Version == act.Version {
			act.Seen = old.Seen // unchanged: same bytes, nothing to replicate
		}
	}
	st.Activations[m.id] = act
	if c := fw.DataChoice(); c != nil && c.Answer != "" && c.State != flash.ChoicePending {
		a := &fwAnswer{Version: c.Version, Answer: c.Answer, By: c.By, Module: m.id, Answered: c.Answered.UTC()}
		if st.Answer == nil || a.Answered.After(st.Answer.Answered) {
			st.Answer = a
		}
	}
	return json.Marshal(st)
}

// applyFW applies the firmware slot here: the operator's answer to this
// module's pending choice for the same version.
func (m *pairModule) applyFW(fw *firmware.Service, b []byte) error {
	var st fwState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("firmware slot: %w", err)
	}
	return m.applyAnswer(fw, st.Answer)
}

func (m *pairModule) applyAnswer(fw *firmware.Service, a *fwAnswer) error {
	if a == nil {
		return nil
	}
	c := fw.PendingChoice()
	if c == nil || c.Version != a.Version {
		return nil
	}
	by := fmt.Sprintf("%s (answered on module %s)", a.By, a.Module)
	if _, err := fw.AnswerDataChoice(a.Answer, by); err != nil && !errors.Is(err, firmware.ErrNoChoice) {
		return err
	}
	m.log.Info("pair: applied the operator's keep-or-restore answer from the pair", "version", a.Version, "answer", a.Answer, "by", a.By)
	return nil
}

// attachFirmware replicates the firmware state through the pair.
func (m *pairModule) attachFirmware(fw *firmware.Service) error {
	if m == nil || fw == nil {
		return nil
	}
	m.fw = fw
	return m.ext.attach(pair.SlotFirmware, &extSlot{
		export: func() ([]byte, error) { return m.exportFW(fw) },
		apply:  func(b []byte) error { return m.applyFW(fw, b) },
	})
}

// FirmwareOffered is called once the module reported healthy: a choice
// offered now, after an upgrade to a version the operator already
// answered in the pair, takes that answer.
func (m *pairModule) firmwareOffered() {
	if m == nil || m.fw == nil {
		return
	}
	if err := m.applyAnswer(m.fw, m.replicatedFW().Answer); err != nil {
		m.log.Warn("pair: the pair's keep-or-restore answer", "err", err)
	}
}

// firmwareHandler: GET /cmcd/pair/firmware (Administrator), the
// replicated firmware state.
func (m *pairModule) firmwareHandler(w http.ResponseWriter, r *http.Request) {
	if !m.authorized(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, m.replicatedFW())
}
