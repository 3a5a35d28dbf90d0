package powercut

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	ptraceGetSyscallInfo = 0x420e // PTRACE_GET_SYSCALL_INFO, Linux 5.3
	syscallInfoEntry     = 1
	syscallInfoExit      = 2
	syscallInfoSeccomp   = 3

	ptraceEventSeccomp  = 7        // PTRACE_EVENT_SECCOMP
	ptraceOTraceSeccomp = 0x80     // PTRACE_O_TRACESECCOMP
	ptraceOExitKill     = 0x100000 // PTRACE_O_EXITKILL

	// wait4 flags: every kind of child (threads too), and only those of the
	// calling thread, so the tracer never reaps the children other
	// goroutines start with os/exec.
	waitFlags = syscall.WALL | 0x20000000 // __WALL | __WNOTHREAD

	syscallStopSig = syscall.SIGTRAP | 0x80 // with PTRACE_O_TRACESYSGOOD
)

// syscallInfo is struct ptrace_syscall_info. For an exit stop Nr holds rval
// and the low byte of Args[0] is_error.
type syscallInfo struct {
	Op      uint8
	_       uint8
	_       uint16
	Arch    uint32
	IP      uint64
	SP      uint64
	Nr      uint64
	Args    [6]uint64
	RetData uint32
	_       uint32
}

// Tracer runs one command under ptrace and records what it made durable.
// Its methods are safe for concurrent use. Exactly one of Cut, Kill or Stop
// ends a Tracer; after the command exits on its own, Cut may still be used to
// tear the files it left behind.
type Tracer struct {
	cfg   config
	cmd   *exec.Cmd
	path  string // the command's executable
	roots []string
	pid   int

	stats counters

	mu       sync.Mutex
	state    *fsState     // durable state; written by the tracer goroutine
	procs    map[int]bool // live traced processes (thread-group ids)
	seen     []int        // every task id followed, for leak checks
	killing  bool
	ended    bool // Cut, Kill or Stop was called
	changed  chan struct{}
	exitErr  error // the command's exit status, once done
	traceErr error // a tracer failure, once done

	done chan struct{}
}

// Pid returns the process id of the traced command.
func (t *Tracer) Pid() int { return t.pid }

// Seed returns the seed of the random choices Cut makes.
func (t *Tracer) Seed() int64 { return t.cfg.seed }

// Stats returns the counters so far.
func (t *Tracer) Stats() Stats { return t.stats.snapshot() }

// Done is closed once every traced process has exited and been reaped.
func (t *Tracer) Done() <-chan struct{} { return t.done }

// Wait waits until every traced process has exited and returns the command's
// exit status: nil for status 0, an *ExitError otherwise, or the error that
// stopped the tracer.
func (t *Tracer) Wait() error {
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.traceErr != nil {
		return t.traceErr
	}
	return t.exitErr
}

// WaitSyncs waits until the command has made at least n successful syncs of
// watched files or directories (Stats.Syncs >= n). It fails if ctx ends first
// or the command exits before that many syncs.
func (t *Tracer) WaitSyncs(ctx context.Context, n uint64) error {
	for {
		t.mu.Lock()
		ch := t.changed
		t.mu.Unlock()
		if got := t.stats.syncs.Load(); got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-t.done:
			if got := t.stats.syncs.Load(); got >= n {
				return nil
			}
			return fmt.Errorf("powercut: command ended after %d of the %d syncs waited for: %v",
				t.stats.syncs.Load(), n, t.Wait())
		case <-ctx.Done():
			return fmt.Errorf("powercut: waiting for %d syncs (have %d): %w", n, t.stats.syncs.Load(), ctx.Err())
		}
	}
}

// notify wakes WaitSyncs callers.
func (t *Tracer) notify() {
	t.mu.Lock()
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
}

// begin marks the Tracer as ended by the named method, once.
func (t *Tracer) begin(method string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return fmt.Errorf("powercut: %s: the tracer was already ended by Cut, Kill or Stop", method)
	}
	t.ended = true
	return nil
}

type counters struct {
	syncCalls, syncs, dirSyncs, snapshots, snapshotBytes, stops, tasks, processes atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		SyncCalls:     c.syncCalls.Load(),
		Syncs:         c.syncs.Load(),
		DirSyncs:      c.dirSyncs.Load(),
		Snapshots:     c.snapshots.Load(),
		SnapshotBytes: c.snapshotBytes.Load(),
		Stops:         c.stops.Load(),
		Tasks:         c.tasks.Load(),
		Processes:     c.processes.Load(),
	}
}

// Start starts cmd under the tracer, watching the directories dirs (which
// must exist): files below them get the power-cut treatment. Everything in
// them at Start is taken as durable.
//
// Start sets cmd.SysProcAttr.Ptrace; with seccomp (the default) it starts the
// current executable as a trampoline that installs the seccomp filter and
// then executes cmd.Path, so the binary calling Start must import this
// package (any test binary that uses it does). cmd must not have been
// started; do not call cmd.Wait: Cut, Kill, Stop and Wait reap the command
// and finish its I/O.
func Start(cmd *exec.Cmd, dirs []string, opts ...Option) (*Tracer, error) {
	cfg, err := resolveConfig(opts)
	if err != nil {
		return nil, err
	}
	if cmd.Process != nil {
		return nil, errors.New("powercut: Start: the command was already started; pass a fresh exec.Cmd")
	}
	if cmd.Err != nil {
		return nil, fmt.Errorf("powercut: Start: %w", cmd.Err)
	}
	if len(dirs) == 0 {
		return nil, errors.New("powercut: Start: no directory to watch; name the data directories the command writes")
	}
	roots := make([]string, 0, len(dirs))
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return nil, fmt.Errorf("powercut: Start: watched directory %s: %w (create it before Start)", d, err)
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("powercut: Start: watched path %s is not a directory", d)
		}
		roots = append(roots, abs)
	}
	for i, a := range roots {
		for _, b := range roots[i+1:] {
			if a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/") {
				return nil, fmt.Errorf("powercut: Start: watched directories %s and %s overlap; watch only the outer one", a, b)
			}
		}
	}
	ns, files, err := scan(roots)
	if err != nil {
		return nil, fmt.Errorf("powercut: Start: reading the watched directories: %w", err)
	}
	t := &Tracer{
		cfg:   cfg,
		cmd:   cmd,
		path:  cmd.Path,
		roots: roots,
		state: &fsState{
			roots:   roots,
			durable: ns,
			synced:  make(map[fileID]image),
			initial: files,
		},
		procs:   make(map[int]bool),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}

	origPath, origEnv := cmd.Path, cmd.Env
	if cfg.seccomp {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("powercut: Start: finding the current executable for the seccomp trampoline: %w (or use WithSeccomp(false))", err)
		}
		env := cmd.Environ()
		kept := env[:0]
		for _, kv := range env {
			if !strings.HasPrefix(kv, trampolineEnv+"=") {
				kept = append(kept, kv)
			}
		}
		cmd.Env = append(kept, trampolineEnv+"="+cmd.Path)
		cmd.Path = self
	}
	attr := new(syscall.SysProcAttr)
	if cmd.SysProcAttr != nil {
		*attr = *cmd.SysProcAttr
	}
	attr.Ptrace = true
	cmd.SysProcAttr = attr

	started := make(chan error, 1)
	go t.run(started)
	err = <-started
	cmd.Path, cmd.Env = origPath, origEnv
	if err != nil {
		<-t.done
		return nil, err
	}
	return t, nil
}

// Cut simulates a power cut: it kills the whole traced process tree with
// SIGKILL, waits until every process is gone, and then rewrites the watched
// directories into what a disk could hold after losing power at that moment
// (see the package documentation). The Report tells what was kept and lost
// and holds the seed that replays the choices.
func (t *Tracer) Cut() (*Report, error) {
	if err := t.begin("Cut"); err != nil {
		return nil, err
	}
	t.killAll()
	<-t.done
	t.mu.Lock()
	traceErr := t.traceErr
	t.mu.Unlock()
	if traceErr != nil {
		return nil, fmt.Errorf("powercut: Cut: the tracer failed, so the durable state is unknown: %w", traceErr)
	}
	cur, contents, err := scan(t.roots)
	if err != nil {
		return nil, fmt.Errorf("powercut: Cut: reading the watched directories: %w", err)
	}
	rng := rand.New(rand.NewPCG(uint64(t.cfg.seed), 0x9e3779b97f4a7c15))
	want, outcomes := plan(cutInput{
		state:    t.state,
		current:  cur,
		contents: contents,
		dirModel: t.cfg.dirModel,
		keep:     t.cfg.keep,
		rng:      rng,
	})
	rep := &Report{Seed: t.cfg.seed, KeepProbability: t.cfg.keep, DirModel: t.cfg.dirModel, Files: outcomes}
	if err := apply(cur, contents, want); err != nil {
		return rep, fmt.Errorf("powercut: Cut: writing the power-cut image (seed %d): %w", t.cfg.seed, err)
	}
	return rep, nil
}

// Kill kills the whole traced process tree with SIGKILL and waits until it is
// gone, leaving the files as the kernel has them: a process crash, not a
// power cut.
func (t *Tracer) Kill() error {
	if err := t.begin("Kill"); err != nil {
		return err
	}
	t.killAll()
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.traceErr
}

// Stop ends the command gracefully: SIGTERM to the command, then wait for
// every traced process to exit. If that takes longer than the stop timeout
// (WithStopTimeout) the tree is killed and Stop returns an error. An exit
// status of 0 or death by the SIGTERM count as success.
func (t *Tracer) Stop() error {
	if err := t.begin("Stop"); err != nil {
		return err
	}
	if err := syscall.Kill(t.pid, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("powercut: Stop: SIGTERM to %d: %w", t.pid, err)
	}
	timer := time.NewTimer(t.cfg.stopTimeout)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-timer.C:
		t.killAll()
		<-t.done
		return fmt.Errorf("powercut: Stop: command %d did not exit within %v of SIGTERM, so it was killed", t.pid, t.cfg.stopTimeout)
	}
	err := t.Wait()
	var ee *ExitError
	if errors.As(err, &ee) && ee.Signal == syscall.SIGTERM {
		return nil
	}
	return err
}

// killAll sends SIGKILL to every traced process; the tracer loop kills any
// process that appears later.
func (t *Tracer) killAll() {
	t.mu.Lock()
	t.killing = true
	pids := make([]int, 0, len(t.procs))
	for p := range t.procs {
		pids = append(pids, p)
	}
	t.mu.Unlock()
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// seenTasks returns every task id the tracer followed.
func (t *Tracer) seenTasks() []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]int(nil), t.seen...)
}

// task is one traced thread.
type task struct {
	tid, tgid int
	fresh     bool         // auto-attached; its initial SIGSTOP is still due
	pending   *pendingSync // a sync call entered, its exit not yet seen
}

// pendingSync is what a sync call will have made durable if it succeeds.
type pendingSync struct {
	id   fileID
	file *image // a file's content

	dir  string // a directory's listing
	list map[string]entry

	all   bool // sync or syncfs: everything below these roots
	roots []string
	ns    namespace
	files map[fileID]image
}

// tracer is the state of the tracing loop, owned by its locked OS thread.
type tracer struct {
	t        *Tracer
	seccomp  bool
	tasks    map[int]*task
	started  chan<- error // nil once Start was answered
	mainExit *syscall.WaitStatus
	err      error
}

func (t *Tracer) run(started chan<- error) {
	// Every ptrace request must come from the thread that is the tracer.
	// The goroutine stays locked to it until it returns, so the thread ends
	// with it, and with it anything it still traced (PTRACE_O_EXITKILL).
	runtime.LockOSThread()
	defer close(t.done)

	l := &tracer{t: t, seccomp: t.cfg.seccomp, tasks: make(map[int]*task), started: started}
	if err := t.cmd.Start(); err != nil {
		started <- fmt.Errorf("powercut: Start: %w", err)
		return
	}
	t.pid = t.cmd.Process.Pid
	l.err = l.attach(t.pid)
	if l.err == nil {
		if !l.seccomp {
			l.answer(nil)
		}
		l.err = l.loop()
	} else {
		_ = syscall.Kill(t.pid, syscall.SIGKILL)
		l.drain()
	}
	// The command is reaped; Wait only collects its I/O copying goroutines.
	_ = t.cmd.Wait()

	t.mu.Lock()
	t.traceErr = l.err
	switch {
	case l.mainExit == nil:
		t.exitErr = errors.New("powercut: the traced command's exit status was not seen")
	case l.mainExit.Exited() && l.mainExit.ExitStatus() == 0:
	case l.mainExit.Exited():
		t.exitErr = &ExitError{Code: l.mainExit.ExitStatus()}
	default:
		t.exitErr = &ExitError{Code: -1, Signal: l.mainExit.Signal()}
	}
	t.mu.Unlock()
	if l.started != nil {
		err := l.err
		if err == nil {
			err = fmt.Errorf("powercut: Start: the seccomp trampoline ended before it executed %s (%v); its stderr says why", t.path, t.exitErr)
		}
		l.answer(err)
	}
}

// answer tells Start how starting went, once.
func (l *tracer) answer(err error) {
	if l.started != nil {
		l.started <- err
		l.started = nil
	}
}

// attach takes over the command at its first stop (the SIGTRAP after the
// execve that PTRACE_TRACEME arranged) and sets the tracing options.
func (l *tracer) attach(pid int) error {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, waitFlags, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("powercut: Start: waiting for the command to stop after exec: %w", err)
		}
		break
	}
	if !ws.Stopped() || ws.StopSignal() != syscall.SIGTRAP {
		if ws.Exited() || ws.Signaled() {
			l.mainExit = &ws
		}
		return fmt.Errorf("powercut: Start: the command did not stop after exec (wait status %#x)", uint32(ws))
	}
	opts := syscall.PTRACE_O_TRACESYSGOOD | syscall.PTRACE_O_TRACECLONE | syscall.PTRACE_O_TRACEFORK |
		syscall.PTRACE_O_TRACEVFORK | syscall.PTRACE_O_TRACEEXEC | ptraceOExitKill
	if l.seccomp {
		opts |= ptraceOTraceSeccomp
	}
	if err := syscall.PtraceSetOptions(pid, opts); err != nil {
		return fmt.Errorf("powercut: Start: PTRACE_SETOPTIONS: %w", err)
	}
	if _, err := getSyscallInfo(pid); err != nil {
		return fmt.Errorf("powercut: Start: PTRACE_GET_SYSCALL_INFO: %w (needs Linux 5.3 or later)", err)
	}
	tk := l.newTask(pid, pid)
	tk.fresh = false
	l.resume(tk, 0)
	return nil
}

// drain reaps whatever is left after a failed attach.
func (l *tracer) drain() {
	var ws syscall.WaitStatus
	for {
		wpid, err := syscall.Wait4(-1, &ws, waitFlags, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		if wpid == l.t.pid && (ws.Exited() || ws.Signaled()) {
			w := ws
			l.mainExit = &w
		}
		if ws.Stopped() {
			_ = syscall.Kill(wpid, syscall.SIGKILL)
			_ = syscall.PtraceCont(wpid, 0)
		}
	}
}

// loop handles ptrace stops until no traced task is left.
func (l *tracer) loop() error {
	var ws syscall.WaitStatus
	for {
		wpid, err := syscall.Wait4(-1, &ws, waitFlags, nil)
		switch err {
		case nil:
		case syscall.EINTR:
			continue
		case syscall.ECHILD:
			return nil
		default:
			return fmt.Errorf("powercut: wait4: %w", err)
		}
		l.t.stats.stops.Add(1)
		if ws.Exited() || ws.Signaled() {
			l.gone(wpid, ws)
			continue
		}
		if !ws.Stopped() {
			continue
		}
		tk := l.tasks[wpid]
		if tk == nil {
			// A new task can report its first stop before its parent
			// reports the clone.
			tk = l.newTask(wpid, 0)
		}
		l.stopped(tk, ws)
	}
}

// newTask registers a task; tgid 0 means look it up.
func (l *tracer) newTask(tid, tgid int) *task {
	if tgid == 0 {
		tgid = readTgid(tid)
	}
	tk := &task{tid: tid, tgid: tgid, fresh: true}
	l.tasks[tid] = tk
	l.t.stats.tasks.Add(1)
	t := l.t
	t.mu.Lock()
	t.seen = append(t.seen, tid)
	newProc := !t.procs[tgid] && tgid == tid
	if newProc {
		t.procs[tgid] = true
	}
	killing := t.killing
	t.mu.Unlock()
	if newProc {
		t.stats.processes.Add(1)
	}
	if killing {
		_ = syscall.Kill(tgid, syscall.SIGKILL)
	}
	return tk
}

// gone forgets a task that exited, and its process once no task of it is
// left.
func (l *tracer) gone(tid int, ws syscall.WaitStatus) {
	tgid := tid
	if tk := l.tasks[tid]; tk != nil {
		tgid = tk.tgid
	}
	delete(l.tasks, tid)
	if tid == l.t.pid {
		w := ws
		l.mainExit = &w
	}
	for _, o := range l.tasks {
		if o.tgid == tgid {
			return
		}
	}
	l.t.mu.Lock()
	delete(l.t.procs, tgid)
	l.t.mu.Unlock()
}

func (l *tracer) killing() bool {
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	return l.t.killing
}

// stopped handles one ptrace stop of tk and resumes it.
func (l *tracer) stopped(tk *task, ws syscall.WaitStatus) {
	sig := ws.StopSignal()
	if l.killing() {
		// SIGKILL is on its way (or sent now); resuming lets it land.
		_ = syscall.Kill(tk.tgid, syscall.SIGKILL)
		tk.pending = nil
		_ = syscall.PtraceCont(tk.tid, 0)
		return
	}
	switch {
	case sig == syscallStopSig:
		l.syscallStop(tk)
	case sig == syscall.SIGTRAP && ws.TrapCause() > 0:
		l.event(tk, ws.TrapCause())
	case sig == syscall.SIGSTOP && tk.fresh:
		tk.fresh = false
		l.resume(tk, 0)
	case isStopSignal(sig) && groupStop(tk.tid):
		// Without PTRACE_SEIZE a group-stop cannot be kept while still
		// tracing, so the task runs on, as under strace.
		l.resume(tk, 0)
	default:
		// Signal-delivery-stop: deliver the signal.
		l.resume(tk, sig)
	}
}

func (l *tracer) event(tk *task, cause int) {
	msg, err := syscall.PtraceGetEventMsg(tk.tid)
	switch cause {
	case syscall.PTRACE_EVENT_FORK, syscall.PTRACE_EVENT_VFORK, syscall.PTRACE_EVENT_CLONE:
		if err == nil {
			child := int(msg)
			if c := l.tasks[child]; c == nil {
				tgid := child
				if cause == syscall.PTRACE_EVENT_CLONE {
					tgid = 0
				}
				l.newTask(child, tgid)
			}
		}
	case syscall.PTRACE_EVENT_EXEC:
		// A non-leader thread that executes takes the leader's id; every
		// other thread of the process is gone.
		if err == nil && int(msg) != tk.tid {
			delete(l.tasks, int(msg))
		}
		for id, o := range l.tasks {
			if o.tgid == tk.tgid && id != tk.tid {
				delete(l.tasks, id)
			}
		}
		tk.pending, tk.fresh = nil, false
		if tk.tgid == l.t.pid {
			l.answer(nil) // the trampoline has executed the command
		}
	case ptraceEventSeccomp:
		if info, err := getSyscallInfo(tk.tid); err == nil && info.Op == syscallInfoSeccomp {
			tk.pending = l.enter(tk, info.Nr, info.Args)
		}
	}
	l.resume(tk, 0)
}

func (l *tracer) syscallStop(tk *task) {
	info, err := getSyscallInfo(tk.tid)
	if err == nil {
		switch info.Op {
		case syscallInfoEntry:
			if !l.seccomp {
				tk.pending = l.enter(tk, info.Nr, info.Args)
			}
		case syscallInfoExit:
			if tk.pending != nil {
				l.commit(tk.pending, int64(info.Nr))
				tk.pending = nil
			}
		}
	}
	l.resume(tk, 0)
}

// resume restarts tk, to its next filtered system call (seccomp) or to its
// next system-call stop (no seccomp, or the exit of a sync being watched).
func (l *tracer) resume(tk *task, sig syscall.Signal) {
	var err error
	if !l.seccomp || tk.pending != nil {
		err = syscall.PtraceSyscall(tk.tid, int(sig))
	} else {
		err = syscall.PtraceCont(tk.tid, int(sig))
	}
	if err != nil && err != syscall.ESRCH && l.err == nil {
		l.err = fmt.Errorf("powercut: resuming task %d: %w", tk.tid, err)
	}
}

// enter looks at a system call entry and, for a sync of something watched,
// takes the image that the sync will make durable if it succeeds. The
// calling thread is stopped meanwhile, so the image holds every write it
// made before the call; writes racing in from other threads may be included.
func (l *tracer) enter(tk *task, nr uint64, args [6]uint64) *pendingSync {
	st := &l.t.stats
	switch nr {
	case syscall.SYS_FSYNC, syscall.SYS_FDATASYNC:
		st.syncCalls.Add(1)
		return l.snapFD(tk.tid, int(int32(args[0])))
	case syscall.SYS_SYNC_FILE_RANGE:
		// Only a call that waits for the write-out counts; without
		// SYNC_FILE_RANGE_WAIT_AFTER it merely starts writeback.
		if args[3]&unix.SYNC_FILE_RANGE_WAIT_AFTER == 0 {
			return nil
		}
		st.syncCalls.Add(1)
		return l.snapFD(tk.tid, int(int32(args[0])))
	case syscall.SYS_MSYNC:
		if args[2]&unix.MS_SYNC == 0 {
			return nil
		}
		st.syncCalls.Add(1)
		return l.snapMapping(tk.tid, args[0])
	case unix.SYS_SYNCFS:
		st.syncCalls.Add(1)
		link := fmt.Sprintf("/proc/%d/fd/%d", tk.tid, int32(args[0]))
		e, err := statEntry(unix.AT_FDCWD, link, 0)
		if err != nil {
			return nil
		}
		return l.snapAll(e.id.dev)
	case syscall.SYS_SYNC:
		st.syncCalls.Add(1)
		return l.snapAll(0)
	}
	return nil
}

// snapFD snapshots the file or directory open as fd in task tid.
func (l *tracer) snapFD(tid, fd int) *pendingSync {
	link := fmt.Sprintf("/proc/%d/fd/%d", tid, fd)
	target, err := os.Readlink(link)
	if err != nil {
		return nil
	}
	return l.snapPath(link, target)
}

// snapPath snapshots the inode that link (a /proc magic link) opens; target
// is where it lives.
func (l *tracer) snapPath(link, target string) *pendingSync {
	deleted := strings.HasSuffix(target, " (deleted)")
	target = strings.TrimSuffix(target, " (deleted)")
	if !filepath.IsAbs(target) || !l.t.state.watched(target) {
		return nil
	}
	e, err := statEntry(unix.AT_FDCWD, link, 0)
	if err != nil {
		return nil
	}
	switch e.kind {
	case kindFile:
		f, err := os.Open(link)
		if err != nil {
			return nil
		}
		defer f.Close()
		data, err := readAll(f, e.size)
		if err != nil {
			return nil
		}
		return &pendingSync{id: e.id, file: &image{data: data, mode: e.mode}}
	case kindDir:
		if deleted {
			return nil
		}
		f, err := os.Open(link)
		if err != nil {
			return nil
		}
		defer f.Close()
		list, err := listDir(target, f)
		if err != nil {
			return nil
		}
		return &pendingSync{dir: target, list: list}
	}
	return nil
}

// snapMapping snapshots the file mapped at addr in task tid (msync).
func (l *tracer) snapMapping(tid int, addr uint64) *pendingSync {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", tid))
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		rng := fields[0]
		lo, hi, ok := strings.Cut(rng, "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || addr < start || addr >= end {
			continue
		}
		path := strings.Join(fields[5:], " ")
		// map_files opens the mapped inode even if it was renamed or
		// removed, but needs CAP_SYS_ADMIN; else go by the path.
		link := fmt.Sprintf("/proc/%d/map_files/%s", tid, rng)
		if unix.Access(link, unix.R_OK) != nil {
			link = path
		}
		return l.snapPath(link, path)
	}
	return nil
}

// snapAll snapshots every watched tree on device dev (0: all of them).
func (l *tracer) snapAll(dev uint64) *pendingSync {
	var roots []string
	for _, r := range l.t.roots {
		if dev != 0 {
			e, err := statEntry(unix.AT_FDCWD, r, 0)
			if err != nil || e.id.dev != dev {
				continue
			}
		}
		roots = append(roots, r)
	}
	if len(roots) == 0 {
		return nil
	}
	ns, files, err := scan(roots)
	if err != nil {
		return nil
	}
	return &pendingSync{all: true, roots: roots, ns: ns, files: files}
}

// commit records what a sync made durable, if it succeeded.
func (l *tracer) commit(p *pendingSync, rval int64) {
	if rval != 0 {
		return
	}
	t := l.t
	s := t.state
	t.mu.Lock()
	switch {
	case p.file != nil:
		s.synced[p.id] = *p.file
		t.stats.snapshots.Add(1)
		t.stats.snapshotBytes.Add(uint64(len(p.file.data)))
	case p.dir != "":
		s.durable[p.dir] = p.list
		t.stats.dirSyncs.Add(1)
	case p.all:
		for dir := range s.durable {
			for _, r := range p.roots {
				if dir == r || strings.HasPrefix(dir, r+"/") {
					delete(s.durable, dir)
				}
			}
		}
		for dir, list := range p.ns {
			s.durable[dir] = list
		}
		for id, img := range p.files {
			s.synced[id] = img
			t.stats.snapshots.Add(1)
			t.stats.snapshotBytes.Add(uint64(len(img.data)))
		}
		t.stats.dirSyncs.Add(1)
	}
	t.stats.syncs.Add(1)
	t.mu.Unlock()
	t.notify()
}

func getSyscallInfo(tid int) (syscallInfo, error) {
	var info syscallInfo
	_, _, e := syscall.Syscall6(syscall.SYS_PTRACE, ptraceGetSyscallInfo, uintptr(tid),
		unsafe.Sizeof(info), uintptr(unsafe.Pointer(&info)), 0, 0)
	if e != 0 {
		return info, e
	}
	return info, nil
}

func isStopSignal(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
		return true
	}
	return false
}

// groupStop reports whether a stop with a stop signal is a group-stop
// rather than the delivery of that signal: PTRACE_GETSIGINFO fails then.
func groupStop(tid int) bool {
	var si [128]byte
	_, _, e := syscall.Syscall6(syscall.SYS_PTRACE, syscall.PTRACE_GETSIGINFO, uintptr(tid), 0,
		uintptr(unsafe.Pointer(&si[0])), 0, 0)
	return e == syscall.EINVAL
}

// readTgid returns the thread-group id of tid, or tid if it cannot be read.
func readTgid(tid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return tid
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	return tid
}
