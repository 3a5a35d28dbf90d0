package testexec

import (
	"os"
	"os/exec"
	"strings"
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
