//go:build !linux

package server

import (
	"net"
	"time"
)

const oobSize = 64

func enableRxTimestamps(*net.UDPConn) error { return nil }

func rxTimestamp([]byte) (time.Time, bool) { return time.Time{}, false }
