// Package events is the one event type every part of the time source emits
// (upstream selection changes, holdover, policy decisions, alarms), so the
// daemon can route them into its event log and Redfish SSE.
package events

import (
	"sync"
	"time"
)

// Severity follows Redfish's OK / Warning / Critical.
type Severity string

// Severities.
const (
	OK       Severity = "OK"
	Warning  Severity = "Warning"
	Critical Severity = "Critical"
)

// Event is one decision or state change.
type Event struct {
	Time     time.Time         `json:"time"`
	Kind     string            `json:"kind"`     // e.g. "upstream.selected", "policy.client.repair", "alarm.client"
	Severity Severity          `json:"severity"` // OK, Warning, Critical
	Subject  string            `json:"subject"`  // a server address, client address, region name
	Message  string            `json:"message"`  // for people
	Data     map[string]string `json:"data,omitempty"`
}

// Sink receives events; it must not block for long.
type Sink func(Event)

// Log is a bounded in-memory event log that also forwards to subscribers.
type Log struct {
	mu   sync.Mutex
	max  int
	evs  []Event
	subs []chan Event
	next Sink
}

// NewLog keeps the last max events and forwards each to next (may be nil).
func NewLog(max int, next Sink) *Log { return &Log{max: max, next: next} }

// Emit records e.
func (l *Log) Emit(e Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	if len(l.evs) > l.max {
		l.evs = append(l.evs[:0], l.evs[len(l.evs)-l.max:]...)
	}
	subs := append([]chan Event(nil), l.subs...)
	l.mu.Unlock()
	for _, c := range subs {
		select {
		case c <- e:
		default:
		}
	}
	if l.next != nil {
		l.next(e)
	}
}

// Events returns a copy of the kept events, oldest first.
func (l *Log) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.evs...)
}

// Subscribe returns a channel that receives every later event (dropped
// when the reader lags by more than 256) and a cancel function.
func (l *Log) Subscribe() (<-chan Event, func()) {
	c := make(chan Event, 256)
	l.mu.Lock()
	l.subs = append(l.subs, c)
	l.mu.Unlock()
	return c, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, s := range l.subs {
			if s == c {
				l.subs = append(l.subs[:i], l.subs[i+1:]...)
				break
			}
		}
	}
}
