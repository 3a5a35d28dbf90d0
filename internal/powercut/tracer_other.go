//go:build !(linux && amd64)

package powercut

import (
	"context"
	"os/exec"
)

// Tracer would run one command under ptrace; on this platform Start never
// returns one.
type Tracer struct{}

// Start returns ErrUnsupported on this platform: the tracer needs ptrace and
// seccomp on linux/amd64.
func Start(cmd *exec.Cmd, dirs []string, opts ...Option) (*Tracer, error) {
	if _, err := resolveConfig(opts); err != nil {
		return nil, err
	}
	return nil, ErrUnsupported
}

// Cut returns ErrUnsupported on this platform.
func (t *Tracer) Cut() (*Report, error) { return nil, ErrUnsupported }

// Kill returns ErrUnsupported on this platform.
func (t *Tracer) Kill() error { return ErrUnsupported }

// Stop returns ErrUnsupported on this platform.
func (t *Tracer) Stop() error { return ErrUnsupported }

// Wait returns ErrUnsupported on this platform.
func (t *Tracer) Wait() error { return ErrUnsupported }

// WaitSyncs returns ErrUnsupported on this platform.
func (t *Tracer) WaitSyncs(ctx context.Context, n uint64) error { return ErrUnsupported }

// Done returns a closed channel on this platform.
func (t *Tracer) Done() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// Pid returns 0 on this platform.
func (t *Tracer) Pid() int { return 0 }

// Seed returns 0 on this platform.
func (t *Tracer) Seed() int64 { return 0 }

// Stats returns zero counters on this platform.
func (t *Tracer) Stats() Stats { return Stats{} }
