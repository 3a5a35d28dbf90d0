package testexec

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Env is the variable naming the emulator, e.g. "qemu-arm-static" or
// "qemu-arm-static -cpu arm1176".
const Env = "CMCD_TEST_EXEC"

// Emulator returns the emulator command line from CMCD_TEST_EXEC, or nil
// when programs run natively.
func Emulator() []string { return strings.Fields(os.Getenv(Env)) }

// Emulated reports whether test programs run under an emulator.
func Emulated() bool { return len(Emulator()) > 0 }

// Command is exec.Command for a program built for the test's architecture:
// under an emulator it runs `emulator... name args...`.
func Command(name string, args ...string) *exec.Cmd {
	em := Emulator()
	if len(em) == 0 {
		return exec.Command(name, args...)
	}
	return exec.Command(em[0], append(append(em[1:len(em):len(em)], name), args...)...)
}

// CmcdBinary builds cmd/cmcd for the test's architecture (the GOARCH/GOARM
// the test runs under) into the test's temporary directory, which the
// test removes; Go's build cache makes builds after the first cheap. Run
// it with Command.
func CmcdBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cmcd")
	cmd := exec.Command("go", "build", "-o", bin, "cmcd/cmd/cmcd")
	cmd.Env = append(os.Environ(), "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmcd: %v\n%s", err, out)
	}
	return bin
}
