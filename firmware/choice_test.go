package firmware

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"cmcd/board/sim"
	"cmcd/clock"
	"cmcd/flash"
	"cmcd/syncsel"
)

func openEngine(t *testing.T, data string, images flash.Images) *syncsel.Engine {
	t.Helper()
	ch, err := sim.New(sim.Config{Seed: 1, Nodes: 1, PSUs: 2, Fans: 4, Clock: clock.Real()})
	if err != nil {
		t.Fatal(err)
	}
	e, err := syncsel.Open(syncsel.Options{Areas: flash.Areas{Root: data}, Images: images, Board: ch.Board(), Clock: clock.Real()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// bootUpgraded installs version into the inactive slot, activates it and
// "reboots": returns the service (booted on trial) and an open engine.
func bootUpgraded(t *testing.T, k *kit, data, version string) (*Service, *syncsel.Engine) {
	t.Helper()
	s := k.open(data)
	s.Boot()
	if _, err := s.InstallFile(context.Background(), k.signed(version, "sim", 50_000, nil), nil); err != nil {
		t.Fatal(err)
	}
	slot := s.State().Active.Other()
	if err := s.Activate(slot); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = k.open(data)
	if out, err := s.Boot(); err != nil || !out.Switched {
		t.Fatalf("boot: %+v %v", out, err)
	}
	e := openEngine(t, data, s.Images())
	if err := s.AttachData(NewEngineData(e)); err != nil {
		t.Fatal(err)
	}
	return s, e
}

func cfgJSON(c syncsel.Config) string { b, _ := json.Marshal(c); return string(b) }

func hasEvent(t *testing.T, e *syncsel.Engine, kind, phrase string) bool {
	t.Helper()
	evs, err := e.Store().Events()
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Kind == kind && strings.Contains(ev.Message, phrase) {
			return true
		}
	}
	return false
}

var custom = map[string]json.RawMessage{"category.sel": json.RawMessage("false"), "interval": json.RawMessage(`"5s"`),
	"autoSync": json.RawMessage("false"), "groups": json.RawMessage(`[["psu","fan","node","asset","fault"]]`)}

// TestDataChoice (S5): after an upgrade reports healthy the keep-or-restore
// choice is pending, survives restarts, refuses bad answers; "restore"
// puts every option of the sync configuration back to its default in one
// saved change and logs it in the CMC event log; "keep" leaves the data;
// an answer cut by a restart while being applied is finished at start-up.
func TestDataChoice(t *testing.T) {
	k := newKit(t)
	data := t.TempDir()
	s, e := bootUpgraded(t, k, data, "2.0.0")
	if _, err := e.UpdateConfig(custom); err != nil {
		t.Fatal(err)
	}
	if s.PendingChoice() != nil {
		t.Fatal("choice pending before the image reported healthy")
	}
	if _, err := s.AnswerDataChoice(AnswerKeep, "admin"); !errors.Is(err, ErrNoChoice) {
		t.Fatalf("answer without a choice: %v", err)
	}
	c, err := s.ReportHealthy()
	if err != nil || c == nil || c.State != flash.ChoicePending || c.Version != "2.0.0" || c.FromVersion != "1.0.0" {
		t.Fatalf("choice: %+v %v", c, err)
	}
	if !hasEvent(t, e, "FirmwareUpgraded", "from 1.0.0 to 2.0.0") {
		t.Error("upgrade not in the CMC event log")
	}
	// Pending survives two restarts.
	for i := 0; i < 2; i++ {
		e.Close()
		s.Close()
		s = k.open(data)
		s.Boot()
		e = openEngine(t, data, s.Images())
		if err := s.AttachData(NewEngineData(e)); err != nil {
			t.Fatal(err)
		}
		if p := s.PendingChoice(); p == nil || p.Version != "2.0.0" {
			t.Fatalf("restart %d: choice %+v", i, p)
		}
	}
	if _, err := s.AnswerDataChoice("maybe", "admin"); err == nil || !strings.Contains(err.Error(), `want "keep" or "restore"`) {
		t.Fatalf("bad answer: %v", err)
	}
	if cfgJSON(e.Config()) == cfgJSON(syncsel.DefaultConfig()) {
		t.Fatal("setup: configuration is already the default")
	}
	done, err := s.AnswerDataChoice(AnswerRestore, "admin")
	if err != nil || done.State != flash.ChoiceDone || done.Answer != AnswerRestore || done.By != "admin" || done.Applied.IsZero() {
		t.Fatalf("restore: %+v %v", done, err)
	}
	if got, want := cfgJSON(e.Config()), cfgJSON(syncsel.DefaultConfig()); got != want {
		t.Fatalf("after restore: %s, want %s", got, want)
	}
	if saved, ok, err := e.Store().LoadConfig(); err != nil || !ok || !reflect.DeepEqual(saved, syncsel.DefaultConfig()) {
		t.Fatalf("saved configuration after restore: %+v %v %v", saved, ok, err)
	}
	if !hasEvent(t, e, "DataChoiceApplied", "restored to the preset defaults (answer by admin)") || !hasEvent(t, e, "ConfigChanged", "interval") {
		t.Error("restore not logged")
	}
	if s.PendingChoice() != nil {
		t.Fatal("choice still pending after the answer")
	}
	if _, err := s.AnswerDataChoice(AnswerKeep, "admin"); !errors.Is(err, ErrNoChoice) {
		t.Fatalf("second answer: %v", err)
	}
	e.Close()
	s.Close()

	// Keep: the configuration as the upgrade left it.
	s, e = bootUpgraded(t, k, data, "3.0.0")
	if _, err := e.UpdateConfig(custom); err != nil {
		t.Fatal(err)
	}
	before := cfgJSON(e.Config())
	s.ReportHealthy()
	if _, err := s.AnswerDataChoice(AnswerKeep, ""); err != nil {
		t.Fatal(err)
	}
	if cfgJSON(e.Config()) != before || !hasEvent(t, e, "DataChoiceApplied", "kept as the upgrade left it") {
		t.Fatal("keep changed the configuration or was not logged")
	}
	e.Close()
	s.Close()

	// An answer recorded but not applied (a kill between the two writes)
	// is applied at the next start.
	s, e = bootUpgraded(t, k, data, "4.0.0")
	e.UpdateConfig(custom)
	s.ReportHealthy()
	e.Close()
	if err := s.Images().Update(func(b *flash.BootState) error {
		b.DataChoice.State, b.DataChoice.Answer, b.DataChoice.By = flash.ChoiceApplying, AnswerRestore, "admin"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = k.open(data)
	defer s.Close()
	s.Boot()
	e = openEngine(t, data, s.Images())
	defer e.Close()
	if cfgJSON(e.Config()) == cfgJSON(syncsel.DefaultConfig()) {
		t.Fatal("setup: configuration is already the default")
	}
	if err := s.AttachData(NewEngineData(e)); err != nil {
		t.Fatal(err)
	}
	if c := s.DataChoice(); c.State != flash.ChoiceDone || cfgJSON(e.Config()) != cfgJSON(syncsel.DefaultConfig()) {
		t.Fatalf("interrupted answer not finished: %+v", c)
	}
	if !hasEvent(t, e, "DataChoiceApplied", "applied at start-up after a restart interrupted it") {
		t.Error("resumed answer not logged")
	}
}
