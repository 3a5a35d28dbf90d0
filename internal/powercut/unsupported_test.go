//go:build !(linux && amd64)

package powercut

import (
	"errors"
	"os/exec"
	"testing"
)

func TestUnsupported(t *testing.T) {
	if _, err := Start(exec.Command("true"), []string{t.TempDir()}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Start = %v, want ErrUnsupported", err)
	}
}
