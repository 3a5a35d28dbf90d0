package powercut

import (
	"fmt"
	"strings"
)

// PageSize is the granularity at which Cut tears a file: each PageSize-aligned
// block that changed since the last sync is kept or lost as a whole.
const PageSize = 4096

// Fate says what Cut did with a directory entry.
type Fate string

// The fates of a directory entry. "New" means changed after the last sync of
// its directory (created, replaced or removed).
const (
	FateDurable        Fate = "durable"         // entry unchanged since its directory's last sync
	FateNewKept        Fate = "new-kept"        // unsynced create kept
	FateNewLost        Fate = "new-lost"        // unsynced create lost: the file vanished
	FateReplaceKept    Fate = "replace-kept"    // unsynced rename-over kept
	FateReplaceLost    Fate = "replace-lost"    // unsynced rename-over lost: old file back
	FateRemoveKept     Fate = "remove-kept"     // unsynced removal kept
	FateRemoveLost     Fate = "remove-lost"     // unsynced removal lost: the file is back
	FateParentLost     Fate = "parent-lost"     // its directory did not survive
	FateDirModelOff    Fate = "dir-model-off"   // kill-time entry taken as durable
	FateRemovedNoModel Fate = "removed-dir-off" // removed at kill time, dir model off
)

// FileOutcome tells what Cut did with one path.
type FileOutcome struct {
	Path   string
	Kind   string // "file", "dir" or "symlink"
	Fate   Fate
	Exists bool // present after the cut
	// For regular files that exist after the cut:
	Synced    bool  // the file content had been synced (else it got its content at Start, or none)
	Pages     int   // pages that differed between the durable image and the file at kill time
	PagesKept int   // of those, pages whose kill-time content was kept
	Size      int64 // size after the cut
}

// Report describes one Cut; its String form is meant for test logs.
type Report struct {
	Seed            int64
	KeepProbability float64
	DirModel        bool
	Files           []FileOutcome
}

func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "powercut: seed=%d p=%v dirmodel=%v (replay with %s=%d)\n",
		r.Seed, r.KeepProbability, r.DirModel, SeedEnv, r.Seed)
	for _, f := range r.Files {
		fmt.Fprintf(&b, "  %-7s %-15s", f.Kind, f.Fate)
		if f.Exists && f.Kind == "file" {
			fmt.Fprintf(&b, " size=%-8d synced=%-5v pages kept %d/%d", f.Size, f.Synced, f.PagesKept, f.Pages)
		} else if !f.Exists {
			fmt.Fprintf(&b, " %-8s", "(absent)")
		}
		fmt.Fprintf(&b, " %s\n", f.Path)
	}
	return b.String()
}
