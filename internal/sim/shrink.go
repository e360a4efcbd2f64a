package sim

import "slices"

// Shrink reduces rp's steps to a shorter list whose replay still fails
// with a violation of kind, replaying at most budget times: it drops the
// steps that did nothing, then whole operations (every step naming one),
// then delta-debugs what is left (ddmin, complements first). It returns
// the shortest failing replay found and the number of replays.
func (r *Runner) Shrink(rp Replay, kind string, budget int) (Replay, int, error) {
	tries := 0
	var ferr error
	try := func(steps []Step) ([]bool, bool) {
		if tries >= budget || ferr != nil {
			return nil, false
		}
		tries++
		v, noop, err := r.replay(Replay{Seed: rp.Seed, Nodes: rp.Nodes, Source: rp.Source, Steps: steps})
		if err != nil {
			ferr = err
			return nil, false
		}
		return noop, v != nil && v.Kind == kind
	}
	fails := func(steps []Step) bool {
		_, ok := try(steps)
		return ok
	}
	// The steps that did nothing, then each operation as a whole.
	steps := rp.Steps
	if noop, ok := try(steps); ok {
		steps = dropNoops(steps, noop, fails)
	}
	for _, id := range opsOf(steps) {
		cand := slices.DeleteFunc(slices.Clone(steps), func(s Step) bool { return s.Op == id && s.Kind != "clock" })
		if len(cand) < len(steps) && fails(cand) {
			steps = cand
		}
	}
	steps = ddmin(steps, fails)
	if noop, ok := try(steps); ok {
		steps = dropNoops(steps, noop, fails)
	}
	rp.Steps = steps
	return rp, tries, ferr
}

// dropNoops removes the steps marked noop, if the rest still fails.
func dropNoops(steps []Step, noop []bool, fails func([]Step) bool) []Step {
	var cand []Step
	for i, s := range steps {
		if i >= len(noop) || !noop[i] {
			cand = append(cand, s)
		}
	}
	if len(cand) < len(steps) && fails(cand) {
		return cand
	}
	return steps
}

// opsOf lists the operations steps start, latest first.
func opsOf(steps []Step) []int {
	var ids []int
	for _, s := range steps {
		if opKinds[s.Kind] {
			ids = append(ids, s.Op)
		}
	}
	slices.Reverse(ids)
	return ids
}

// ddmin returns a subsequence of steps for which fails is still true,
// 1-minimal when fails allows enough calls: removing any single step of
// the result makes it pass.
func ddmin(steps []Step, fails func([]Step) bool) []Step {
	n := 2
	for len(steps) >= 2 {
		size := (len(steps) + n - 1) / n
		reduced := false
		for start := 0; start < len(steps); start += size {
			end := min(start+size, len(steps))
			cand := make([]Step, 0, len(steps)-(end-start))
			cand = append(append(cand, steps[:start]...), steps[end:]...)
			if fails(cand) {
				steps = cand
				n = max(n-1, 2)
				reduced = true
				break
			}
		}
		if !reduced {
			if n >= len(steps) {
				break
			}
			n = min(2*n, len(steps))
		}
	}
	return steps
}
