//go:build !linux

package flash

import (
	"errors"
	"io"
)

// MTDDevice exists only on Linux.
type MTDDevice struct{ Device }

// OpenMTD is unavailable off Linux.
func OpenMTD(path string, write bool) (*MTDDevice, error) {
	return nil, errors.New("flash: MTD devices need Linux")
}

var _ io.ReaderAt = (*MTDDevice)(nil)
