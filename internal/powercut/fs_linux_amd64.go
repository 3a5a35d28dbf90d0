package powercut

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

const statxMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_INO | unix.STATX_BTIME | unix.STATX_SIZE

// statEntry describes the inode that dirfd+path names (AT_EMPTY_PATH with
// path "" describes dirfd itself). Kinds other than file, dir and symlink
// give kind 0.
func statEntry(dirfd int, path string, flags int) (entry, error) {
	var sx unix.Statx_t
	if err := unix.Statx(dirfd, path, flags, statxMask, &sx); err != nil {
		return entry{}, err
	}
	e := entry{
		id:   fileID{dev: unix.Mkdev(sx.Dev_major, sx.Dev_minor), ino: sx.Ino},
		mode: fs.FileMode(sx.Mode & 0o7777),
		size: int64(sx.Size),
	}
	if sx.Mask&unix.STATX_BTIME != 0 {
		e.id.btime = sx.Btime.Sec*1e9 + int64(sx.Btime.Nsec)
	}
	switch sx.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.kind = kindFile
	case unix.S_IFDIR:
		e.kind = kindDir
	case unix.S_IFLNK:
		e.kind = kindSymlink
	}
	return e, nil
}

// listDir lists dir (through the open directory f if not nil), skipping
// entries that are neither files, directories nor symlinks.
func listDir(dir string, f *os.File) (map[string]entry, error) {
	if f == nil {
		var err error
		if f, err = os.Open(dir); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	list := make(map[string]entry, len(names))
	for _, name := range names {
		e, err := statEntry(int(f.Fd()), name, unix.AT_SYMLINK_NOFOLLOW)
		if err != nil {
			continue // removed meanwhile
		}
		if e.kind == kindSymlink {
			if e.target, err = os.Readlink(filepath.Join(dir, name)); err != nil {
				continue
			}
		}
		if e.kind != 0 {
			list[name] = e
		}
	}
	return list, nil
}

// scan lists every directory below roots and reads every regular file.
func scan(roots []string) (namespace, map[fileID]image, error) {
	ns := make(namespace)
	files := make(map[fileID]image)
	var walk func(dir string) error
	walk = func(dir string) error {
		list, err := listDir(dir, nil)
		if err != nil {
			return err
		}
		ns[dir] = list
		names := make([]string, 0, len(list))
		for n := range list {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			e, p := list[n], filepath.Join(dir, n)
			switch e.kind {
			case kindDir:
				if err := walk(p); err != nil {
					return err
				}
			case kindFile:
				if _, ok := files[e.id]; ok {
					continue // hard link
				}
				data, err := os.ReadFile(p)
				if err != nil {
					return fmt.Errorf("read %s: %w", p, err)
				}
				files[e.id] = image{data: data, mode: e.mode}
			}
		}
		return nil
	}
	for _, r := range roots {
		if err := walk(r); err != nil {
			return nil, nil, err
		}
	}
	return ns, files, nil
}

// readAll reads a whole file from an open descriptor, from offset 0; size
// is its expected size.
func readAll(f *os.File, size int64) ([]byte, error) {
	buf := make([]byte, size)
	n, err := io.ReadFull(io.NewSectionReader(f, 0, size), buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return buf[:n], nil // shrank meanwhile
	}
	if err != nil {
		return nil, err
	}
	// Grew meanwhile? Read the rest.
	var rest bytes.Buffer
	if _, err := rest.ReadFrom(io.NewSectionReader(f, size, 1<<62)); err != nil {
		return nil, err
	}
	return append(buf, rest.Bytes()...), nil
}

// apply makes the watched trees hold exactly want: it removes what must go,
// then writes what differs. Files whose inode and content are already right
// are left alone.
func apply(current namespace, contents map[fileID]image, want map[string]final) error {
	cur := current.flatten()
	paths := make([]string, 0, len(cur))
	for p := range cur {
		paths = append(paths, p)
	}
	// Children before their directories.
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	unchanged := func(p string) bool {
		c, ok := cur[p]
		w, wok := want[p]
		if !ok || !wok || !c.same(w.entry) {
			return false
		}
		if c.kind == kindFile {
			return c.id == w.id && bytes.Equal(contents[c.id].data, w.data)
		}
		return true
	}
	for _, p := range paths {
		if unchanged(p) {
			continue
		}
		if w, ok := want[p]; ok && w.kind == kindDir && cur[p].kind == kindDir {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	paths = paths[:0]
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths) // directories before their children
	for _, p := range paths {
		if unchanged(p) {
			continue
		}
		w := want[p]
		switch w.kind {
		case kindDir:
			if c, ok := cur[p]; ok && c.kind == kindDir {
				continue
			}
			if err := os.Mkdir(p, w.mode.Perm()); err != nil {
				return err
			}
		case kindSymlink:
			if err := os.Symlink(w.target, p); err != nil {
				return err
			}
		case kindFile:
			if err := os.WriteFile(p, w.data, w.mode.Perm()); err != nil {
				return err
			}
			if err := os.Chmod(p, w.mode.Perm()); err != nil { // WriteFile's mode is masked by umask
				return err
			}
		}
	}
	return nil
}
