package initramfs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Archive is an initramfs under construction: paths (without leading '/')
// to entries. Parent directories are added automatically.
type Archive struct {
	entries map[string]entry
}

type entry struct {
	mode         uint32 // type and permission bits
	data         []byte
	rmajor, rmin uint32
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChr  = 0o020000
)

// New returns an empty archive.
func New() *Archive { return &Archive{entries: map[string]entry{}} }

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (a *Archive) parents(p string) {
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := a.entries[d]; !ok {
			a.entries[d] = entry{mode: modeDir | 0o755}
		}
	}
}

// File adds a regular file with permission bits perm.
func (a *Archive) File(p string, data []byte, perm uint32) {
	p = clean(p)
	a.parents(p)
	a.entries[p] = entry{mode: modeFile | perm&0o7777, data: data}
}

// Dir adds a directory.
func (a *Archive) Dir(p string, perm uint32) {
	p = clean(p)
	a.parents(p)
	a.entries[p] = entry{mode: modeDir | perm&0o7777}
}

// CharDev adds a character device node (e.g. /dev/console, 5:1, which the
// kernel opens as init's stdin/stdout before devtmpfs is mounted).
func (a *Archive) CharDev(p string, perm, major, minor uint32) {
	p = clean(p)
	a.parents(p)
	a.entries[p] = entry{mode: modeChr | perm&0o7777, rmajor: major, rmin: minor}
}

// WriteTo writes the archive as a newc cpio stream, directories before
// their contents, ending with the TRAILER!!! record.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	sort.Strings(names) // a parent sorts before its children
	cw := &countWriter{w: w}
	ino := uint32(1)
	for _, n := range names {
		e := a.entries[n]
		nlink := uint32(1)
		if e.mode&0o170000 == modeDir {
			nlink = 2
		}
		writeRecord(cw, n, ino, e.mode, nlink, e.data, e.rmajor, e.rmin)
		ino++
	}
	writeRecord(cw, "TRAILER!!!", 0, 0, 1, nil, 0, 0)
	return cw.n, cw.err
}

func writeRecord(w *countWriter, name string, ino, mode, nlink uint32, data []byte, rmajor, rminor uint32) {
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check
	fmt.Fprintf(w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	io.WriteString(w, name)
	w.Write([]byte{0})
	pad(w)
	w.Write(data)
	pad(w)
}

func pad(w *countWriter) {
	if r := w.n % 4; r != 0 {
		w.Write(make([]byte, 4-r))
	}
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// Gzip returns the archive as a gzip-compressed newc cpio, the form
// QEMU's -initrd and a boot loader hand to the kernel.
func (a *Archive) Gzip() ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := a.WriteTo(zw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
