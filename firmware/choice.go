package firmware

import (
	"encoding/json"
	"fmt"

	"cmcd/flash"
	"cmcd/syncsel"
)

// The two answers of the keep-or-restore choice (S5).
const (
	AnswerKeep    = "keep"    // keep the data as the upgrade left it
	AnswerRestore = "restore" // restore the data area to the preset defaults
)

// AttachData gives the service the running data area (after the sync
// engine opened it). An answer that a kill or crash interrupted while it
// was being applied is applied again now (applying is idempotent).
func (s *Service) AttachData(d DataArea) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = d
	c := s.images.State().DataChoice
	if c != nil && c.State == flash.ChoiceApplying {
		s.o.Log.Warn("firmware: resuming the keep-or-restore answer interrupted by a restart", "answer", c.Answer)
		return s.applyLocked(*c, true)
	}
	return nil
}

// DataChoice returns the last keep-or-restore choice (pending, applying or
// done), or nil when no upgrade ever offered one.
func (s *Service) DataChoice() *flash.DataChoice {
	return s.images.State().DataChoice
}

// PendingChoice returns the choice while it waits for an answer, else nil.
func (s *Service) PendingChoice() *flash.DataChoice {
	c := s.DataChoice()
	if c == nil || c.State != flash.ChoicePending {
		return nil
	}
	return c
}

// AnswerDataChoice answers the pending choice with AnswerKeep or
// AnswerRestore (by: who answered, for the log) and applies it. The answer
// is recorded durably before it is applied, so a restart in between
// finishes it (AttachData).
func (s *Service) AnswerDataChoice(answer, by string) (*flash.DataChoice, error) {
	if answer != AnswerKeep && answer != AnswerRestore {
		return nil, fmt.Errorf("firmware: answer %q: want %q or %q", answer, AnswerKeep, AnswerRestore)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data == nil {
		return nil, fmt.Errorf("firmware: the data area is not open yet")
	}
	var c flash.DataChoice
	err := s.images.Update(func(b *flash.BootState) error {
		if b.DataChoice == nil || b.DataChoice.State != flash.ChoicePending {
			return ErrNoChoice
		}
		b.DataChoice.State, b.DataChoice.Answer, b.DataChoice.By, b.DataChoice.Answered = flash.ChoiceApplying, answer, by, s.o.Now().UTC()
		c = *b.DataChoice
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.applyLocked(c, false); err != nil {
		return nil, err
	}
	return s.images.State().DataChoice, nil
}

func (s *Service) applyLocked(c flash.DataChoice, resumed bool) error {
	var msg string
	switch c.Answer {
	case AnswerRestore:
		if err := s.data.RestoreDefaults(); err != nil {
			// Nothing was applied (the restore is one transaction): ask again.
			if uerr := s.images.Update(func(b *flash.BootState) error {
				if b.DataChoice != nil {
					b.DataChoice.State, b.DataChoice.Answer, b.DataChoice.By = flash.ChoicePending, "", ""
				}
				return nil
			}); uerr != nil {
				return fmt.Errorf("firmware: restore failed (%v); re-offering the choice failed too: %w", err, uerr)
			}
			return fmt.Errorf("firmware: restore the data area to the preset defaults: %w (the choice is still pending)", err)
		}
		msg = fmt.Sprintf("after the upgrade to %s the data area was restored to the preset defaults (answer by %s)", c.Version, orSomeone(c.By))
	default:
		msg = fmt.Sprintf("after the upgrade to %s the data is kept as the upgrade left it (answer by %s)", c.Version, orSomeone(c.By))
	}
	if resumed {
		msg += "; applied at start-up after a restart interrupted it"
	}
	s.data.LogEvent("DataChoiceApplied", "OK", msg)
	s.o.Log.Info("firmware: " + msg)
	return s.images.Update(func(b *flash.BootState) error {
		if b.DataChoice != nil {
			b.DataChoice.State, b.DataChoice.Applied = flash.ChoiceDone, s.o.Now().UTC()
		}
		return nil
	})
}

func orSomeone(by string) string {
	if by == "" {
		return "the operator"
	}
	return by
}

// Engine is the part of *syncsel.Engine the data area adapter uses.
type Engine interface {
	UpdateConfig(patch map[string]json.RawMessage) (syncsel.Config, error)
	LogEvent(kind, severity, msg string) syncsel.Event
}

// EngineData is the DataArea of the sync engine. The data area's preset
// defaults are the sync configuration and selection model: every option of
// syncsel's model is set back to syncsel.DefaultConfig() in ONE saved
// change (one bbolt transaction in the running store, journaled as a
// ConfigChanged event). Collected board data, the round journal and the
// event log are measurements and history, not presets: they are kept (the
// collector refreshes the readings; the next round carries them to the
// other image).
type EngineData struct{ E Engine }

// NewEngineData adapts the sync engine.
func NewEngineData(e Engine) EngineData { return EngineData{E: e} }

// DefaultsPatch is the configuration change that sets every option of the
// selection model to its default.
func DefaultsPatch() map[string]json.RawMessage {
	patch := map[string]json.RawMessage{}
	for _, o := range syncsel.DefaultConfig().Model() {
		b, err := json.Marshal(o.Default)
		if err != nil {
			panic(err) // the model's defaults are plain values
		}
		patch[o.Name] = b
	}
	return patch
}

// RestoreDefaults implements DataArea.
func (d EngineData) RestoreDefaults() error {
	_, err := d.E.UpdateConfig(DefaultsPatch())
	return err
}

// LogEvent implements DataArea.
func (d EngineData) LogEvent(kind, severity, msg string) { d.E.LogEvent(kind, severity, msg) }
