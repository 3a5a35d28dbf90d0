package powercut

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func pages(cs string) []byte {
	var b []byte
	for _, c := range []byte(cs) {
		b = append(b, fill(c, PageSize)...)
	}
	return b
}

func TestMergePages(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name        string
		base, now   []byte
		keep        float64
		want        []byte
		pages, kept int
	}{
		{"unchanged", pages("ab"), pages("ab"), 0.5, pages("ab"), 0, 0},
		{"overwrite lost", pages("ab"), pages("xy"), 0, pages("ab"), 2, 0},
		{"overwrite kept", pages("ab"), pages("xy"), 1, pages("xy"), 2, 2},
		{"growth lost", pages("a"), pages("abc"), 0, pages("a"), 2, 0},
		{"growth kept", pages("a"), pages("abc"), 1, pages("abc"), 2, 2},
		{"partial growth kept", pages("a"), append(pages("a"), 'z'), 1, append(pages("a"), 'z'), 1, 1},
		{"partial page", []byte("hello"), []byte("jello world"), 1, []byte("jello world"), 1, 1},
		{"shrink lost", pages("abc"), pages("a"), 0, pages("abc"), 2, 0},
		{"shrink kept", pages("abc"), pages("a"), 1, pages("a"), 2, 2},
		{"shrink into a page kept", pages("ab"), append(pages("a"), 'b'), 1, append(pages("a"), 'b'), 1, 1},
		{"from empty", nil, pages("ab"), 1, pages("ab"), 2, 2},
		{"to empty lost", pages("ab"), nil, 0, pages("ab"), 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n, k := mergePages(tc.base, tc.now, tc.keep, rng)
			if !bytes.Equal(got, tc.want) || n != tc.pages || k != tc.kept {
				t.Errorf("got %d bytes, %d/%d pages kept; want %d bytes, %d/%d", len(got), k, n, len(tc.want), tc.kept, tc.pages)
			}
		})
	}
}

// TestMergePagesHole: with only a page beyond the durable end kept, the file
// takes its kill-time size and the pages between read as zeros.
func TestMergePagesHole(t *testing.T) {
	base, now := pages("a"), pages("abc")
	for seed := uint64(0); seed < 64; seed++ {
		got, _, _ := mergePages(base, now, 0.5, rand.New(rand.NewPCG(seed, 0)))
		if len(got) == 3*PageSize && bytes.Equal(got[PageSize:2*PageSize], make([]byte, PageSize)) {
			if !bytes.Equal(got[:PageSize], pages("a")) || !bytes.Equal(got[2*PageSize:], pages("c")) {
				t.Fatalf("hole case holds the wrong pages")
			}
			return
		}
	}
	t.Errorf("no seed of 64 kept page 2 without page 1")
}

func TestPlan(t *testing.T) {
	root := "/r"
	idA, idB, idOld := fileID{ino: 1}, fileID{ino: 2}, fileID{ino: 3}
	file := func(id fileID) entry { return entry{kind: kindFile, id: id, mode: 0o644} }
	st := &fsState{
		roots: []string{root},
		durable: namespace{
			root:     {"old": file(idOld), "d": {kind: kindDir, mode: 0o755}},
			"/r/d":   {},
			"/r/new": {"x": file(idB)}, // listing of a directory that is not durable itself
		},
		synced:  map[fileID]image{idA: {data: []byte("A")}, idB: {data: []byte("B")}},
		initial: map[fileID]image{idOld: {data: []byte("OLD")}},
	}
	current := namespace{
		root:     {"old": file(idA), "link": file(idA), "d": {kind: kindDir, mode: 0o755}, "new": {kind: kindDir, mode: 0o755}},
		"/r/d":   {},
		"/r/new": {"x": file(idB)},
	}
	contents := map[fileID]image{idA: {data: []byte("A2")}, idB: {data: []byte("B")}}
	want, _ := plan(cutInput{state: st, current: current, contents: contents, dirModel: true, keep: 0, rng: rand.New(rand.NewPCG(0, 0))})
	if f, ok := want["/r/old"]; !ok || string(f.data) != "OLD" {
		t.Errorf("p=0: renamed-over old = %+v, want the content it had at Start", f)
	}
	if _, ok := want["/r/link"]; ok {
		t.Errorf("p=0: an unsynced new hard link survived")
	}
	if _, ok := want["/r/new/x"]; ok {
		t.Errorf("p=0: a file in a directory whose entry was never synced survived")
	}
	if _, ok := want["/r/d"]; !ok {
		t.Errorf("p=0: a durable directory vanished")
	}

	want, _ = plan(cutInput{state: st, current: current, contents: contents, dirModel: true, keep: 1, rng: rand.New(rand.NewPCG(0, 0))})
	for _, p := range []string{"/r/old", "/r/link"} {
		if f := want[p]; string(f.data) != "A2" {
			t.Errorf("p=1: %s holds %q, want the kill-time content A2", p, f.data)
		}
	}
	if f := want["/r/new/x"]; string(f.data) != "B" {
		t.Errorf("p=1: /r/new/x holds %q, want B", f.data)
	}
}
