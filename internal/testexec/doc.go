// Package testexec starts, from a test, programs built for the test's own
// architecture: the test binary itself (crash tests that re-exec a child)
// or a cmcd built by the test.
//
// `make test-arm` runs the unit tests as ARMv7 binaries under qemu-user
// (`go test -exec qemu-arm-static`). The host kernel cannot execute an ARM
// binary by itself (no binfmt_misc registration is assumed or made), so a
// child started with a plain exec.Command fails with "exec format error".
// When CMCD_TEST_EXEC names an emulator, Command runs the program through
// it; otherwise Command is exec.Command.
package testexec
