package testexec

import (
	"slices"
	"testing"
)

func TestCommand(t *testing.T) {
	t.Setenv(Env, "")
	if c := Command("/bin/true", "-x"); !slices.Equal(c.Args, []string{"/bin/true", "-x"}) || Emulated() {
		t.Errorf("native: args %q, emulated %v", c.Args, Emulated())
	}
	t.Setenv(Env, "qemu-arm-static -cpu arm1176")
	c := Command("/tmp/prog", "-a", "b")
	if want := []string{"qemu-arm-static", "-cpu", "arm1176", "/tmp/prog", "-a", "b"}; !slices.Equal(c.Args, want) {
		t.Errorf("emulated: args %q, want %q", c.Args, want)
	}
	if !Emulated() {
		t.Error("Emulated() false with CMCD_TEST_EXEC set")
	}
}
