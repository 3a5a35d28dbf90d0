package powercut

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// BenchmarkOverhead runs the same child workloads untraced, traced through
// the seccomp filter, and traced with PTRACE_SYSCALL on every system call.
// One op is one whole child run (start to exit).
//
//	go test ./internal/powercut -run '^$' -bench Overhead -benchtime 5x
func BenchmarkOverhead(b *testing.B) {
	for _, w := range []struct {
		mode string
		n    int
	}{
		{"boltbench", 200},   // 200 bbolt commits: 400 fdatasyncs
		{"syncsbench", 500},  // 500 page writes, each fsynced
		{"statbench", 50000}, // 50000 stat calls, no sync at all
	} {
		for _, m := range []struct {
			name string
			run  func(b *testing.B, cmd *exec.Cmd, dir string) Stats
		}{
			{"untraced", func(b *testing.B, cmd *exec.Cmd, dir string) Stats {
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
				return Stats{}
			}},
			{"seccomp", func(b *testing.B, cmd *exec.Cmd, dir string) Stats {
				return runTraced(b, cmd, dir, WithSeccomp(true))
			}},
			{"ptrace-syscall", func(b *testing.B, cmd *exec.Cmd, dir string) Stats {
				return runTraced(b, cmd, dir, WithSeccomp(false))
			}},
		} {
			b.Run(w.mode+"/"+m.name, func(b *testing.B) {
				self, err := os.Executable()
				if err != nil {
					b.Fatal(err)
				}
				var st Stats
				for b.Loop() {
					b.StopTimer()
					dir := b.TempDir()
					cmd := exec.Command(self)
					cmd.Env = append(os.Environ(), childEnv+"="+w.mode, dirEnv+"="+dir, "POWERCUT_TEST_N="+strconv.Itoa(w.n))
					cmd.Stderr = os.Stderr
					b.StartTimer()
					s := m.run(b, cmd, dir)
					st.Stops += s.Stops
					st.Syncs += s.Syncs
				}
				b.ReportMetric(float64(st.Stops)/float64(b.N), "stops/op")
				b.ReportMetric(float64(st.Syncs)/float64(b.N), "syncs/op")
			})
		}
	}
}

func runTraced(b *testing.B, cmd *exec.Cmd, dir string, opts ...Option) Stats {
	tr, err := Start(cmd, []string{dir}, opts...)
	if err != nil {
		b.Fatal(err)
	}
	if err := tr.Wait(); err != nil {
		b.Fatal(err)
	}
	return tr.Stats()
}
