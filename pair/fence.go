package pair

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fencer cuts a peer module off for good before this module takes over
// its role: on a board the peer-reset line, on the simulated board the
// peer's process (and, in the lab, its address). Fence returns nil only
// when the peer is known to be down; a Fencer that cannot tell returns an
// error, and the caller must not take over.
type Fencer interface {
	Fence(ctx context.Context, peer string) error
}

// ExecFencer runs a fence agent (as Pacemaker's fence_* agents): Command
// with the peer's ID as last argument; exit status 0 means the peer is off.
type ExecFencer struct {
	Command []string
}

// Fence implements Fencer.
func (f ExecFencer) Fence(ctx context.Context, peer string) error {
	if len(f.Command) == 0 {
		return errors.New("pair: no fence command configured")
	}
	args := append(append([]string{}, f.Command[1:]...), peer)
	out, err := exec.CommandContext(ctx, f.Command[0], args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pair: fence %s: %s: %w: %s", peer, strings.Join(f.Command, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// PIDFencer is the simulated board's peer-reset line: it SIGKILLs the
// process whose pid is in the peer's pid file and waits until it is gone.
// PIDFiles maps peer ID -> pid file.
type PIDFencer struct {
	PIDFiles map[string]string
}

// Fence implements Fencer. A missing pid file or a pid that no longer runs
// counts as fenced (the peer is not running).
func (f PIDFencer) Fence(ctx context.Context, peer string) error {
	path, ok := f.PIDFiles[peer]
	if !ok {
		return fmt.Errorf("pair: no pid file for peer %q", peer)
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("pair: fence %s: %w", peer, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("pair: fence %s: bad pid file %s", peer, path)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("pair: fence %s: kill %d: %w", peer, pid, err)
	}
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		// A zombie still answers signal 0; its state letter says it is dead.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pair: fence %s: pid %d still running: %w", peer, pid, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// AddressHolder is the floating management address (H2, H4), implemented
// by package pair/vip.
type AddressHolder interface {
	// Probe reports whether another host answers for the address
	// (a duplicate-address probe).
	Probe(ctx context.Context) (inUse bool, err error)
	// Acquire adds the address to the interface and announces it.
	Acquire(ctx context.Context) error
	// Release removes the address.
	Release() error
	// Held reports whether this module holds the address.
	Held() bool
}
