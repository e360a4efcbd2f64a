package sim

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStepRoundTrip(t *testing.T) {
	steps := []Step{
		{Kind: "add", Op: 3, Node: 1, CID: "c4", Workload: "app/w0", Fail: true},
		{Kind: "add", Op: 4, Node: 0, CID: "c5"},
		{Kind: "del", Op: 5, Node: 2, CID: "c4"},
		{Kind: "release", Op: 6, Node: 0, CID: "foreign:n1"},
		{Kind: "gc", Op: 6, Node: 0},
		{Kind: "status", Op: 7, Node: 1},
		{Kind: "check", Op: 8, Node: 1},
		{Kind: "sync", Op: 9, Node: 2},
		{Kind: "reclaim", Op: 10, Node: 2, Force: true},
		{Kind: "reclaim", Op: 11, Node: 1, Gone: true},
		{Kind: "run", Op: 3},
		{Kind: "kill", Op: 4},
		{Kind: "clock", Dur: 6 * time.Minute},
		{Kind: "cfg", Node: -1, Cfg: "blockSize=32"},
		{Kind: "cfg", Node: 1, Cfg: "exclude="},
		{Kind: "down", Node: -1},
		{Kind: "up", Node: 2},
		{Kind: "lose", Node: 1},
		{Kind: "drain"},
	}
	for _, src := range []string{"", "kube"} {
		rp := Replay{Seed: 42, Nodes: 3, Source: src, Steps: steps}
		got, err := ReadReplay(strings.NewReader("# a comment\n" + rp.String()))
		if err != nil {
			t.Fatal(err)
		}
		if got.Seed != 42 || got.Nodes != 3 || got.Source != src || !slices.Equal(got.Steps, steps) {
			t.Errorf("round trip:\n%v\nwant\n%v", got, rp)
		}
	}
	if _, err := ReadReplay(strings.NewReader("seed 1\nsource consul\n")); err == nil {
		t.Error("ReadReplay accepted source consul")
	}
}

func TestParseStepErrors(t *testing.T) {
	for _, line := range []string{"", "3 add n1", "3 fly n1", "run x", "clock soon", "cfg n1", "down m1", "3 del n1 c1 fail", "3 del n1 c1 gone", "jump"} {
		if s, err := ParseStep(line); err == nil {
			t.Errorf("ParseStep(%q) = %v, want an error", line, s)
		}
	}
}

func TestDdminFindsTheFailingCore(t *testing.T) {
	var steps []Step
	for i := range 40 {
		steps = append(steps, Step{Kind: "run", Op: i})
	}
	// Fails when ops 7, 19 and 33 are all present, in order.
	fails := func(s []Step) bool {
		next := []int{7, 19, 33}
		for _, st := range s {
			if len(next) > 0 && st.Op == next[0] {
				next = next[1:]
			}
		}
		return len(next) == 0
	}
	got := ddmin(steps, fails)
	var ops []int
	for _, s := range got {
		ops = append(ops, s.Op)
	}
	if !slices.Equal(ops, []int{7, 19, 33}) {
		t.Errorf("ddmin kept %v, want [7 19 33]", ops)
	}
}
