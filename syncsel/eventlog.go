package syncsel

// LogEvent records an event raised by another part of the CMC (e.g. the
// firmware service: an upgrade, the keep-or-restore answer) in the CMC
// event log of the running image's store, the daemon log and the event
// subscribers, like the engine's own events.
func (e *Engine) LogEvent(kind, severity, msg string) Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	ev := Event{Kind: kind, Severity: severity, Message: msg}
	if ev.Time.IsZero() {
		ev.Time = e.o.Clock.Now().UTC()
	}
	e.emit(ev)
	return ev
}
