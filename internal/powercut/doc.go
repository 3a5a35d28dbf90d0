// Package powercut simulates a power cut under a child process that writes
// files, for cmcd's crash tests: what the process did not make durable with
// fsync, fdatasync (or sync_file_range, syncfs, sync, msync with MS_SYNC) is
// lost or only partly kept, and everything it synced survives.
//
// The child is any unmodified program, a static Go binary included: the
// package traces it with ptrace, so nothing is preloaded or mocked. A test
// starts the command, lets it work, cuts the power at a moment of its
// choosing, and then checks what is on disk:
//
//	cmd := exec.Command(cmcdBinary, "run", "--data", dataDir, ...)
//	tr, err := powercut.Start(cmd, []string{dataDir})
//	...
//	tr.WaitSyncs(ctx, 10)   // the daemon has committed something
//	rep, err := tr.Cut()    // power cut: kill, then tear the files
//	t.Log(rep)              // what was kept and lost, and the seed
//	// open dataDir again and check that no committed state is lost
//
// Kill is the plain process crash (SIGKILL, files as the kernel has them) and
// Stop the graceful end (SIGTERM), for comparison.
//
// # The model
//
// Only files and directories below the watched directories given to Start
// take part; the rest of the file system is left alone. What is there at
// Start counts as durable.
//
// Files. When a sync of a watched file returns success, the tracer has the
// file's durable image: its whole content, read while the syncing thread was
// stopped at the entry of the call. Cut then builds each file from its last
// durable image and its content at kill time: every 4 KiB page (PageSize)
// that differs takes the kill-time content with probability p
// (WithKeepProbability, default 0.5), independently, else keeps the durable
// content. The size stays the durable size, unless a kept page lies beyond
// it; then the file has its kill-time size and pages beyond the durable size
// that were not kept read as zeros. A file that shrank takes its kill-time
// size with probability p. A file never synced since Start gets exactly the
// content it had at Start, or, if it was created after Start, is empty.
//
// Directories (WithDirModel, on by default). A directory entry is durable
// once the directory itself was fsynced (or sync/syncfs ran) after the entry
// was created, renamed or removed: fsyncing a file does not make its name
// durable. At Cut every name whose kill-time entry differs from the durable
// one takes the kill-time entry with probability p, else the durable one: a
// file created without a directory sync may vanish, a file renamed over may
// come back with its old content (the content the old inode had last synced,
// or at Start), a removed file may come back, and a directory that vanishes
// takes everything below it along. Files are told apart by inode (device,
// inode number and birth time), so renames are followed. With the model off,
// every entry is durable at once and only contents are torn.
//
// p = 0 is the most pessimistic disk; p = 1 keeps everything and is
// equivalent to Kill (except that never-synced files still lose their
// data). The random choices come from a math/rand/v2 PCG source seeded by
// WithSeed, the SeedEnv environment variable, or at random; Report.Seed
// and Tracer.Seed tell the seed, and the same seed with the same kill-time
// state replays the same choices.
//
// What a daemon must do to pass: fsync (or fdatasync) a file before relying
// on its content, and fsync the directory after creating, renaming or
// removing a file in it. bbolt does the first on every commit but never the
// second: a daemon must fsync its data directory once after bbolt created a
// new database file, or a power cut can take the whole database away.
//
// # Tracing
//
// Start runs the command with PTRACE_TRACEME from a goroutine locked to its
// OS thread, which stays the tracer for the whole run (ptrace requests must
// come from that thread). It follows every thread, fork, vfork and exec of
// the command (PTRACE_O_TRACECLONE, TRACEFORK, TRACEVFORK, TRACEEXEC), waits
// with wait4(-1, __WALL|__WNOTHREAD) so it never reaps the children of other
// goroutines, delivers signals the command gets, and with PTRACE_O_EXITKILL
// takes the command down if the tracer thread dies.
//
// With seccomp (the default), the command is started through a trampoline:
// the current executable re-executes itself with an environment variable
// that this package's init function recognises, installs a seccomp filter
// (PR_SET_NO_NEW_PRIVS, then SECCOMP_RET_TRACE for the sync-family system
// calls, SECCOMP_RET_ALLOW for the rest) and executes the real command; the
// filter survives execve and is inherited by children. The tracer then only
// stops at those calls (PTRACE_O_TRACESECCOMP, plus one PTRACE_SYSCALL step
// to see the result) and at signals and clones. Creates, renames and unlinks
// need no stop: the directory model compares the listings taken at directory
// syncs with the listing at kill time. WithSeccomp(false) stops at every
// system call instead.
//
// Measured with BenchmarkOverhead on a busy 2-vCPU VM (one op = one whole
// child run, medians of three):
//
//	workload                        untraced   seccomp    PTRACE_SYSCALL
//	50 000 stat calls, no sync      167 ms     179 ms     6 300 ms (150 000 stops)
//	500 fsyncs of a 64 KiB file     145 ms     325 ms       470 ms
//	200 bbolt commits (404 syncs)   275 ms     320 ms       650 ms
//
// A ptrace stop costs about 40 µs there; each sync costs two stops and a
// copy of the synced file, 0.1 to 0.4 ms on top of the sync itself. Without
// seccomp every system call pays two stops, which is what makes
// system-call-heavy programs tens of times slower.
//
// # Limits
//
//   - linux/amd64 only (Start returns ErrUnsupported elsewhere), kernel 5.3 or
//     later (PTRACE_GET_SYSCALL_INFO), ptrace and seccomp allowed. The binary
//     calling Start must import this package (for the trampoline). The
//     command cannot itself be traced by anything else (no strace or gdb
//     inside), and 32-bit system calls are not seen. Under seccomp the
//     command runs with no_new_privs: setuid programs it runs gain nothing.
//   - Tearing is page-granular: a page is all old or all new; torn sectors
//     within a page, and versions of a page written between two syncs other
//     than the last, are not produced. Pages are chosen independently, with
//     no ordering between them.
//   - Never-synced data is all lost (p does not apply to it).
//   - O_SYNC, O_DSYNC and O_DIRECT writes are not recognised as durable; they
//     count as unsynced until a sync call. sync_file_range counts only with
//     SYNC_FILE_RANGE_WAIT_AFTER, and then as an fdatasync of the whole
//     file, which is optimistic.
//   - Writes by other threads racing with a sync may be counted as durable.
//   - Directory changes are decided per name, each between its durable and
//     its kill-time state: intermediate states are not produced, and a
//     rename is two independent changes (source and target), not atomic.
//   - File data that moves into a watched directory from outside (a rename
//     from elsewhere) has no durable image there and is lost. Permissions
//     are kept; ownership, timestamps and extended attributes are not
//     modelled; hard links become separate copies when Cut rewrites them;
//     sockets, FIFOs and devices are left alone.
//   - Every sync copies the whole file, and the tracer holds every durable
//     image in memory: meant for test-sized data directories.
//   - Without PTRACE_SEIZE a group-stop cannot be kept, so SIGSTOP does not
//     really stop the command (as under strace).
//   - Killed grandchildren whose parent died first are zombies of init until
//     init reaps them; nothing stays running or traced.
package powercut
