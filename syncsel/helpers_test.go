package syncsel

import "cmcd/board"

func selEntry(msg string) board.SELEntry {
	return board.SELEntry{SensorType: 0x01, EventType: 0x01, Severity: board.SeverityWarning, Message: msg}
}
