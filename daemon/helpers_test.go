package daemon

import (
	"context"
	"log/slog"
	"testing"
)

// runDaemon runs Run(c) in-process with its log (at level) going to the
// returned buffer, and stops it when the test ends, failing the test if
// Run returned an error.
func runDaemon(t *testing.T, c Config, level slog.Level) *syncBuf {
	t.Helper()
	logs := new(syncBuf)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return logs
}
