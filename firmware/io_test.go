package firmware

import (
	"encoding/base64"
	"encoding/hex"
	"io"
)

func ioPipe() (*io.PipeReader, *io.PipeWriter) { return io.Pipe() }

func ioCopy(w io.Writer, r io.Reader) { io.Copy(w, r) }

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func encodeHex(b []byte) string { return hex.EncodeToString(b) }
