package vote

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// oracle counts every value's weight: the reference the vote must match.
func oracle(bs []Ballot) (string, int, int, bool) {
	w, total := map[string]int{}, 0
	for _, b := range bs {
		if b.Weight > 0 {
			w[b.Value] += b.Weight
			total += b.Weight
		}
	}
	for v, x := range w {
		if 2*x > total {
			return v, x, total, true
		}
	}
	return "", 0, total, false
}

func randomBallots(r *rand.Rand) []Ballot {
	n := r.IntN(12)
	vals := 1 + r.IntN(4)
	bs := make([]Ballot, n)
	for i := range bs {
		bs[i] = Ballot{Value: fmt.Sprintf("fp%d", r.IntN(vals)), Weight: r.IntN(5)} // weight 0: abstains
	}
	// Bias half the cases towards a real majority.
	if n > 0 && r.IntN(2) == 0 {
		for i := range bs {
			if r.IntN(3) > 0 {
				bs[i].Value = "fp0"
			}
		}
	}
	return bs
}

// TestMajorityProperty (V3): over random weighted ballots the vote returns
// a value exactly when a strict weighted majority exists, that value, and
// its weight; "no majority" otherwise; the order of the ballots never
// changes the result.
func TestMajorityProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var with, without int
	for i := 0; i < 20000; i++ {
		bs := randomBallots(r)
		v, w, total, ok := Majority(bs)
		ov, ow, ototal, ook := oracle(bs)
		if ok != ook || v != ov || w != ow || total != ototal {
			t.Fatalf("ballots %v: Majority = %q %d/%d %v, oracle %q %d/%d %v", bs, v, w, total, ok, ov, ow, ototal, ook)
		}
		if ok {
			with++
		} else {
			without++
		}
		r.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
		if v2, w2, _, ok2 := Majority(bs); v2 != v || w2 != w || ok2 != ok {
			t.Fatalf("ballots %v: permuted result %q %d %v, want %q %d %v", bs, v2, w2, ok2, v, w, ok)
		}
	}
	if with < 2000 || without < 2000 {
		t.Fatalf("generator covers too little: %d with majority, %d without", with, without)
	}
	t.Logf("%d cases with a majority, %d without", with, without)
}

func TestMajorityEdges(t *testing.T) {
	for _, c := range []struct {
		bs   []Ballot
		want string
		ok   bool
	}{
		{nil, "", false},
		{[]Ballot{{"a", 1}}, "a", true},
		{[]Ballot{{"a", 1}, {"b", 1}}, "", false}, // exactly half is no majority
		{[]Ballot{{"a", 3}, {"b", 2}}, "a", true}, // the operator's replica breaks a tie
		{[]Ballot{{"a", 2}, {"b", 2}, {"c", 2}}, "", false},
		{[]Ballot{{"a", 2}, {"b", 5}, {"a", 2}}, "b", true}, // one heavy ballot
		{[]Ballot{{"a", 1}, {"b", 1}, {"b", 0}}, "", false}, // weight 0 abstains
	} {
		v, _, _, ok := Majority(c.bs)
		if v != c.want || ok != c.ok {
			t.Errorf("Majority(%v) = %q %v, want %q %v", c.bs, v, ok, c.want, c.ok)
		}
	}
}

// TestVoteOperatorWeight (V3): four replicas (both data areas of both
// modules) split two against two: the side with the replica the
// operator's session is on wins and that replica is the sample; without
// the heavier weight it is "no majority".
func TestVoteOperatorWeight(t *testing.T) {
	mk := func(opWeight int) []Replica {
		return []Replica{
			{ID: "A/primary", Weight: opWeight, Matrix: map[string]string{"sel": "x", "fan": "f"}},
			{ID: "A/backup", Weight: 2, Matrix: map[string]string{"sel": "x", "fan": "f"}},
			{ID: "B/primary", Weight: 2, Matrix: map[string]string{"sel": "y", "fan": "f"}},
			{ID: "B/backup", Weight: 2, Matrix: map[string]string{"sel": "y"}}, // fan unreadable
		}
	}
	out, err := Vote(mk(3), []string{"sel", "fan"})
	if err != nil {
		t.Fatal(err)
	}
	sel, fan := out[0], out[1]
	if !sel.Majority || sel.Fingerprint != "x" || sel.Sample != "A/primary" || fmt.Sprint(sel.Disagree) != "[B/primary B/backup]" {
		t.Fatalf("sel: %+v", sel)
	}
	if sel.Support != 5.0/9 {
		t.Fatalf("sel support %v, want 5/9", sel.Support)
	}
	if !fan.Majority || fan.Support != 1 || len(fan.Disagree) != 0 || fmt.Sprint(fan.Absent) != "[B/backup]" {
		t.Fatalf("fan: %+v", fan)
	}
	out, _ = Vote(mk(2), []string{"sel"})
	if out[0].Majority || out[0].Sample != "" || len(out[0].Disagree) != 4 {
		t.Fatalf("equal weights, 2:2: %+v, want no majority", out[0])
	}
}

func TestVoteRejectsBadReplicas(t *testing.T) {
	for _, rs := range [][]Replica{
		{{ID: "", Weight: 1}},
		{{ID: "a", Weight: 1}, {ID: "a", Weight: 1}},
		{{ID: "a", Weight: 0}},
	} {
		if _, err := Vote(rs, []string{"sel"}); err == nil {
			t.Errorf("Vote(%v): no error", rs)
		}
	}
}
