package testexec

import (
	"bufio"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a child program under test (a `cmcd run`, say) in its own
// process group, its standard error collected. The test's clean-up kills
// the group, so nothing outlives the test.
type Proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{}
	err  error // the exit status, once done is closed
}

// Start runs name args... through Command, with env added to the
// environment.
func Start(t testing.TB, env []string, name string, args ...string) *Proc {
	t.Helper()
	cmd := Command(name, args...)
	cmd.Env = append(cmd.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.log.Write(sc.Bytes())
			p.log.WriteByte('\n')
			p.mu.Unlock()
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// Pid is the child's process ID (and its process group's).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Log is everything the child wrote to standard error so far.
func (p *Proc) Log() string { p.mu.Lock(); defer p.mu.Unlock(); return p.log.String() }

// WaitFor waits up to 60 s for re to match the log and returns the match;
// it fails the test if the child exits first or the time runs out.
func (p *Proc) WaitFor(t testing.TB, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(p.Log()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.Log()); m != nil {
				return m
			}
			t.Fatalf("the child exited (%v) before %s appeared in its log:\n%s", p.err, re, p.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the child's log within 60s:\n%s", re, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits up to 30 s; the child must exit cleanly.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.Exited(t, 30*time.Second); err != nil {
		t.Fatalf("the child's exit after SIGTERM: %v\n%s", err, p.Log())
	}
}

// Exited waits up to timeout for the child to exit by itself and returns
// its exit status; it fails the test if the child is still running.
func (p *Proc) Exited(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("the child did not exit within %s:\n%s", timeout, p.Log())
	}
	return nil
}
