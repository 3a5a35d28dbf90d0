package powercut

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"
)

// ErrUnsupported is returned by Start on platforms other than linux/amd64.
var ErrUnsupported = errors.New("powercut: power-cut simulation needs ptrace and seccomp on linux/amd64; " +
	"run this test on a linux/amd64 machine")

// DefaultKeepProbability is the chance that a page (or directory entry) that
// changed after its last sync survives a Cut, unless WithKeepProbability says
// otherwise.
const DefaultKeepProbability = 0.5

// SeedEnv names an environment variable that, when set to an integer, is the
// seed of every Tracer started without WithSeed. Set it to the seed printed
// by a failing test to replay that test's choices.
const SeedEnv = "POWERCUT_SEED"

// Option changes how Start traces the command and how Cut tears its files.
type Option func(*config)

type config struct {
	keep        float64
	seed        int64
	seedSet     bool
	dirModel    bool
	seccomp     bool
	stopTimeout time.Duration
}

func defaultConfig() config {
	return config{
		keep:        DefaultKeepProbability,
		dirModel:    true,
		seccomp:     true,
		stopTimeout: 10 * time.Second,
	}
}

// WithKeepProbability sets p, the probability that Cut keeps a page written
// after the file's last sync, and that it keeps a directory change made after
// the directory's last sync. 0 loses every unsynced change, 1 keeps them all
// (then Cut behaves like Kill). The default is DefaultKeepProbability.
func WithKeepProbability(p float64) Option {
	return func(c *config) { c.keep = p }
}

// WithSeed fixes the seed of the random choices Cut makes, to replay a run.
// Without it the seed comes from SeedEnv, or else is random; Seed and
// Report.Seed tell which one was used.
func WithSeed(seed int64) Option {
	return func(c *config) { c.seed, c.seedSet = seed, true }
}

// WithDirModel switches the directory model on (the default) or off. On, a
// name created, removed or renamed in a watched directory survives a Cut only
// if that directory was fsynced afterwards (otherwise it survives with
// probability p). Off, directory entries are durable at once, as on a file
// system with synchronous metadata; file contents still follow the page model.
func WithDirModel(on bool) Option {
	return func(c *config) { c.dirModel = on }
}

// WithSeccomp chooses how the tracer finds sync calls. On (the default), the
// command is started through a re-exec of the current binary that installs a
// seccomp filter, so only the sync-family system calls stop the command.
// Off, the tracer stops the command at every system call (PTRACE_SYSCALL),
// which is several times slower for system-call-heavy programs.
func WithSeccomp(on bool) Option {
	return func(c *config) { c.seccomp = on }
}

// WithStopTimeout sets how long Stop waits after SIGTERM before it kills the
// process tree. The default is 10 s.
func WithStopTimeout(d time.Duration) Option {
	return func(c *config) { c.stopTimeout = d }
}

// Stats counts what the tracer saw. All counters only grow.
type Stats struct {
	// SyncCalls counts sync-family system calls (fsync, fdatasync,
	// sync_file_range with SYNC_FILE_RANGE_WAIT_AFTER, syncfs, sync, msync
	// with MS_SYNC) on any file.
	SyncCalls uint64
	// Syncs counts the successful ones that touched a watched file or
	// directory: these are the ones that move the durable state on.
	Syncs uint64
	// DirSyncs counts the Syncs of a watched directory.
	DirSyncs uint64
	// Snapshots counts durable file images taken, SnapshotBytes their size.
	Snapshots     uint64
	SnapshotBytes uint64
	// Stops counts ptrace stops handled: the main cost of tracing.
	Stops uint64
	// Tasks counts the threads and processes followed, Processes the
	// processes among them (the command itself included).
	Tasks     uint64
	Processes uint64
}

// ExitError reports that the traced command did not exit with status 0.
type ExitError struct {
	Code   int       // exit code, or -1 if a signal ended the command
	Signal os.Signal // the signal that ended it, or nil
}

func (e *ExitError) Error() string {
	if e.Signal != nil {
		return "powercut: traced command killed by signal " + e.Signal.String()
	}
	return "powercut: traced command exited with status " + strconv.Itoa(e.Code)
}

func resolveConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if !(cfg.keep >= 0 && cfg.keep <= 1) {
		return cfg, fmt.Errorf("powercut: keep probability %v is outside [0, 1]", cfg.keep)
	}
	if !cfg.seedSet {
		if s := os.Getenv(SeedEnv); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return cfg, fmt.Errorf("powercut: %s=%q is not an integer seed", SeedEnv, s)
			}
			cfg.seed = v
		} else {
			cfg.seed = int64(rand.Uint64() >> 1)
		}
		cfg.seedSet = true
	}
	return cfg, nil
}
