package vote

import "fmt"

// Ballot is one replica's vote on one category.
type Ballot struct {
	Value  string // the fingerprint
	Weight int    // > 0; ballots with weight <= 0 do not vote
}

// Majority is the weighted Boyer-Moore majority vote: it returns the value
// whose ballots weigh strictly more than half of the total weight, its
// weight and the total; ok is false when no value has such a majority.
func Majority(ballots []Ballot) (value string, weight, total int, ok bool) {
	cand, count := "", 0
	for _, b := range ballots {
		if b.Weight <= 0 {
			continue
		}
		total += b.Weight
		switch {
		case count == 0:
			cand, count = b.Value, b.Weight
		case b.Value == cand:
			count += b.Weight
		case b.Weight <= count:
			count -= b.Weight
		default:
			cand, count = b.Value, b.Weight-count
		}
	}
	if total == 0 {
		return "", 0, 0, false
	}
	for _, b := range ballots {
		if b.Weight > 0 && b.Value == cand {
			weight += b.Weight
		}
	}
	if 2*weight > total {
		return cand, weight, total, true
	}
	return "", 0, total, false
}

// Replica is one replica's fingerprint matrix (V2).
type Replica struct {
	ID     string `json:"id"`
	Weight int    `json:"weight"`
	// Matrix maps a category to its fingerprint. A category missing here
	// (the replica could not be read) is not voted on by this replica.
	Matrix map[string]string `json:"matrix"`
}

// Outcome is the vote on one category.
type Outcome struct {
	Category    string   `json:"category"`
	Majority    bool     `json:"majority"`
	Fingerprint string   `json:"fingerprint,omitempty"`
	Sample      string   `json:"sample,omitempty"`
	Support     float64  `json:"support"` // winning weight / weight that voted (0 without a majority)
	Agree       []string `json:"agree,omitempty"`
	Disagree    []string `json:"disagree,omitempty"`
	Absent      []string `json:"absent,omitempty"`
}

// Vote votes on every category separately.
func Vote(replicas []Replica, categories []string) ([]Outcome, error) {
	seen := map[string]bool{}
	for _, r := range replicas {
		if r.ID == "" || seen[r.ID] {
			return nil, fmt.Errorf("vote: replica ID %q empty or repeated", r.ID)
		}
		if r.Weight <= 0 {
			return nil, fmt.Errorf("vote: replica %s: weight %d, want > 0", r.ID, r.Weight)
		}
		seen[r.ID] = true
	}
	out := make([]Outcome, 0, len(categories))
	for _, c := range categories {
		o := Outcome{Category: c}
		var ballots []Ballot
		for _, r := range replicas {
			if fp, ok := r.Matrix[c]; ok {
				ballots = append(ballots, Ballot{Value: fp, Weight: r.Weight})
			} else {
				o.Absent = append(o.Absent, r.ID)
			}
		}
		fp, w, total, ok := Majority(ballots)
		if ok {
			o.Majority, o.Fingerprint, o.Support = true, fp, float64(w)/float64(total)
			best := -1
			for _, r := range replicas {
				v, has := r.Matrix[c]
				switch {
				case !has:
				case v == fp:
					o.Agree = append(o.Agree, r.ID)
					if r.Weight > best {
						best, o.Sample = r.Weight, r.ID
					}
				default:
					o.Disagree = append(o.Disagree, r.ID)
				}
			}
		} else {
			for _, r := range replicas {
				if _, has := r.Matrix[c]; has {
					o.Disagree = append(o.Disagree, r.ID)
				}
			}
		}
		out = append(out, o)
	}
	return out, nil
}
