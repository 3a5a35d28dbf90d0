package powercut

import (
	"bytes"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
)

// fileID names an inode across renames: device, inode number and, where the
// file system records it, birth time (which tells a reused inode number from
// the file that had it before).
type fileID struct {
	dev, ino uint64
	btime    int64
}

type kind uint8

const (
	kindFile kind = iota + 1
	kindDir
	kindSymlink
)

func (k kind) String() string {
	switch k {
	case kindFile:
		return "file"
	case kindDir:
		return "dir"
	case kindSymlink:
		return "symlink"
	}
	return "?"
}

// entry is what a directory entry points at.
type entry struct {
	kind   kind
	id     fileID      // the inode (all kinds)
	mode   fs.FileMode // permission bits
	target string      // symlink target
	size   int64       // size when listed (informational; not compared)
}

// same reports whether a and b are the same directory entry for the
// directory model: the same inode for a file, the same target for a symlink,
// any directory for a directory.
func (a entry) same(b entry) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case kindFile:
		return a.id == b.id
	case kindSymlink:
		return a.target == b.target
	}
	return true
}

// namespace holds directory listings: directory path -> name -> entry. Paths
// are absolute and clean.
type namespace map[string]map[string]entry

// flatten returns path -> entry for every entry reachable from the listings.
func (ns namespace) flatten() map[string]entry {
	out := make(map[string]entry)
	for dir, list := range ns {
		for name, e := range list {
			out[filepath.Join(dir, name)] = e
		}
	}
	return out
}

// image is a durable file image.
type image struct {
	data []byte
	mode fs.FileMode
}

// fsState is what survives a power cut, as far as the tracer has seen:
// the directory listings made durable, the file images made durable, and the
// contents the files had at Start (durable by definition).
type fsState struct {
	roots   []string
	durable namespace
	synced  map[fileID]image
	initial map[fileID]image
}

// watched reports whether path is a watched root or lies below one.
func (s *fsState) watched(path string) bool {
	for _, r := range s.roots {
		if path == r || strings.HasPrefix(path, r+"/") {
			return true
		}
	}
	return false
}

// isRoot reports whether path is one of the watched roots.
func (s *fsState) isRoot(path string) bool {
	for _, r := range s.roots {
		if path == r {
			return true
		}
	}
	return false
}

// final is what a path holds after the cut.
type final struct {
	entry
	data []byte // regular files
}

// cutInput is the state at kill time.
type cutInput struct {
	state    *fsState
	current  namespace        // listings at kill time
	contents map[fileID]image // contents at kill time of the files in current
	dirModel bool
	keep     float64
	rng      *rand.Rand
}

// plan decides what every watched path holds after the cut. Decisions are
// drawn in sorted path order, then page order, so a seed replays them.
func plan(in cutInput) (map[string]final, []FileOutcome) {
	dur := in.state.durable.flatten()
	cur := in.current.flatten()
	paths := make([]string, 0, len(dur)+len(cur))
	for p := range dur {
		paths = append(paths, p)
	}
	for p := range cur {
		if _, ok := dur[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)

	keep := func() bool { return in.rng.Float64() < in.keep }
	chosen := make(map[string]entry)
	fates := make(map[string]Fate)
	for _, p := range paths {
		d, dok := dur[p]
		c, cok := cur[p]
		var e entry
		var ok bool
		var fate Fate
		switch {
		case !in.dirModel:
			e, ok = c, cok
			fate = FateDirModelOff
			if !cok {
				e, ok, fate = d, false, FateRemovedNoModel
			}
		case dok == cok && (!dok || d.same(c)):
			e, ok, fate = c, cok, FateDurable
		case !dok: // created after the directory's last sync
			if keep() {
				e, ok, fate = c, true, FateNewKept
			} else {
				e, ok, fate = c, false, FateNewLost
			}
		case !cok: // removed after the directory's last sync
			if keep() {
				e, ok, fate = d, false, FateRemoveKept
			} else {
				e, ok, fate = d, true, FateRemoveLost
			}
		default: // replaced (renamed over, or removed and created again)
			if keep() {
				e, ok, fate = c, true, FateReplaceKept
			} else {
				e, ok, fate = d, true, FateReplaceLost
			}
		}
		if !ok {
			fates[p] = fate
			continue
		}
		if parent := filepath.Dir(p); !in.state.isRoot(parent) {
			if pe, pok := chosen[parent]; !pok || pe.kind != kindDir {
				fates[p] = FateParentLost
				continue
			}
		}
		chosen[p] = e
		fates[p] = fate
	}

	out := make(map[string]final, len(chosen))
	outcomes := make([]FileOutcome, 0, len(paths))
	type merged struct {
		data        []byte
		synced      bool
		pages, kept int
	}
	byID := make(map[fileID]merged)
	for _, p := range paths {
		e, ok := chosen[p]
		o := FileOutcome{Path: p, Fate: fates[p], Exists: ok}
		if !ok {
			k := dur[p].kind
			if c, cok := cur[p]; cok {
				k = c.kind
			}
			o.Kind = k.String()
			outcomes = append(outcomes, o)
			continue
		}
		o.Kind = e.kind.String()
		f := final{entry: e}
		if e.kind == kindFile {
			m, done := byID[e.id]
			if !done {
				base, synced := in.state.synced[e.id]
				if !synced {
					base = in.state.initial[e.id]
				}
				m.data, m.synced = base.data, synced
				if now, live := in.contents[e.id]; synced && live {
					m.data, m.pages, m.kept = mergePages(base.data, now.data, in.keep, in.rng)
				}
				byID[e.id] = m
			}
			f.data = m.data
			o.Synced, o.Pages, o.PagesKept, o.Size = m.synced, m.pages, m.kept, int64(len(m.data))
		}
		out[p] = f
		outcomes = append(outcomes, o)
	}
	return out, outcomes
}

// mergePages tears a file between its durable image and its content at kill
// time: every PageSize block that differs takes its kill-time content with
// probability keep. The size stays the durable size unless a kept block lies
// (partly) beyond it, then it becomes the kill-time size (blocks beyond that
// were not kept read as zeros). A file that shrank keeps its kill-time size
// with probability keep, else its durable size.
func mergePages(base, now []byte, keep float64, rng *rand.Rand) (out []byte, pages, kept int) {
	out = bytes.Clone(base)
	if out == nil {
		out = []byte{}
	}
	n := max(len(base), len(now))
	grew := false
	for off := 0; off < n; off += PageSize {
		if off >= len(now) {
			break // blocks past the kill-time end: decided with the size below
		}
		bp := base[min(off, len(base)):min(off+PageSize, len(base))]
		np := now[off:min(off+PageSize, len(now))]
		if bytes.Equal(bp, np) {
			continue
		}
		pages++
		if rng.Float64() >= keep {
			continue
		}
		kept++
		end := off + len(np)
		if end > len(out) {
			out = append(out, make([]byte, end-len(out))...)
			grew = true
		}
		copy(out[off:end], np)
	}
	switch {
	case len(now) > len(base):
		if grew {
			out = append(out, make([]byte, len(now)-len(out))...)
		} else {
			out = out[:len(base)]
		}
	case len(now) < len(base):
		tail := (len(base)+PageSize-1)/PageSize - (len(now)+PageSize-1)/PageSize
		pages += tail
		if rng.Float64() < keep {
			out = out[:len(now)]
			kept += tail
		}
	}
	return out, pages, kept
}
