package powercut

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// trampolineEnv, when set in the environment of a binary that imports this
// package, makes the binary a trampoline: before main runs, it installs the
// seccomp filter and executes the program the variable names, with the same
// arguments and the rest of the environment.
const trampolineEnv = "CMCD_POWERCUT_TRAMPOLINE"

// tracedSyscalls are the system calls the seccomp filter hands to the tracer:
// the sync family. Nothing else is needed: the directory model compares
// directory listings taken at directory syncs and at the cut, so creates,
// renames and unlinks need no stop of their own.
var tracedSyscalls = []uint32{
	syscall.SYS_FSYNC,
	syscall.SYS_FDATASYNC,
	syscall.SYS_SYNC_FILE_RANGE,
	unix.SYS_SYNCFS,
	syscall.SYS_SYNC,
	syscall.SYS_MSYNC,
}

func init() {
	if path, ok := os.LookupEnv(trampolineEnv); ok {
		trampoline(path)
	}
}

// trampoline installs the filter and executes path; it never returns.
func trampoline(path string) {
	// The filter and the execve must be on the same thread: a filter
	// installed without TSYNC belongs to its thread, and execve keeps only
	// the calling thread.
	runtime.LockOSThread()
	env := os.Environ()
	kept := env[:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, trampolineEnv+"=") {
			kept = append(kept, kv)
		}
	}
	if err := installFilter(); err != nil {
		fmt.Fprintf(os.Stderr, "powercut trampoline: %v\n", err)
		os.Exit(126)
	}
	err := syscall.Exec(path, os.Args, kept)
	fmt.Fprintf(os.Stderr, "powercut trampoline: executing %s: %v\n", path, err)
	os.Exit(127)
}

// filter builds the BPF program: SECCOMP_RET_TRACE for tracedSyscalls on
// x86_64, SECCOMP_RET_ALLOW for everything else (including 32-bit and x32
// calls, which Go programs do not make).
func filter() []unix.SockFilter {
	const (
		offNr   = 0 // offsetof(struct seccomp_data, nr)
		offArch = 4 // offsetof(struct seccomp_data, arch)
	)
	n := len(tracedSyscalls)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArch},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: uint8(n + 1), K: unix.AUDIT_ARCH_X86_64},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offNr},
	}
	for i, nr := range tracedSyscalls {
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: uint8(n - i), Jf: 0, K: nr})
	}
	return append(prog,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_TRACE},
	)
}

func installFilter() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	prog := filter()
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, e := syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if e != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): %w (the kernel needs CONFIG_SECCOMP_FILTER; or use WithSeccomp(false))", e)
	}
	return nil
}
