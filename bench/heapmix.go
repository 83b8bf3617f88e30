package main

// The heap under a random size mix (bench/c/heapmix.c): sizes 64 B–1 MiB,
// log-uniform, at most half the arena live for 200,000 allocations, then
// allocations until the first ErrHeapFull. The value is the occupancy then
// (bytes asked and live / arena), and the same trace through glibc malloc
// (live bytes / what malloc holds from the system then) is its reference.

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// heapmixCells adds heapmix/exipc and heapmix/glibc.
func heapmixCells(add func(*cell)) {
	for _, tr := range []string{"glibc", "exipc"} {
		seed := 0
		c := &cell{name: "heapmix/" + tr, workload: "heapmix", transport: tr, kind: latency,
			metric: "occupancy at the first ErrHeapFull", unit: "%",
			run: func(rc *runCtx) (repResult, error) {
				seed++ // repetition i of both cells runs the same trace
				return runHeapmix(rc, tr, seed)
			}}
		if tr == "exipc" {
			c.ref, c.refLabel = "heapmix/glibc", "glibc malloc"
		}
		add(c)
	}
}

func runHeapmix(rc *runCtx, tr string, seed int) (repResult, error) {
	bin := filepath.Join(filepath.Dir(rc.cpeer), "heapmix")
	ctx, cancel := context.WithTimeout(context.Background(), rc.timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-seed", fmt.Sprint(seed), "-ops", fmt.Sprint(rc.n(200000))).Output()
	if err != nil {
		return repResult{}, fmt.Errorf("%s: %v (build it with `make bench`)", bin, err)
	}
	key := tr + "_occupancy="
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, key); ok {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return repResult{}, err
			}
			return repResult{value: 100 * x, allocs: -1}, nil
		}
	}
	return repResult{}, fmt.Errorf("%s: no %s in %q", bin, key, out)
}
