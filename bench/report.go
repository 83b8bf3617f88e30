package main

// Statistics over the repetitions, the machine, the JSON report, the table
// and the goals.

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/klauspost/cpuid/v2"
	"golang.org/x/sys/unix"
)

// Result is one line of latest.json.
type Result struct {
	Name         string    `json:"name"`
	Workload     string    `json:"workload"`
	Transport    string    `json:"transport"`
	PayloadBytes int       `json:"payload_bytes"`
	Param        int       `json:"param,omitempty"` // clients (fanin) or channels (chans)
	Metric       string    `json:"metric"`
	Unit         string    `json:"unit"`
	Min          float64   `json:"min"`
	Median       float64   `json:"median"`
	Max          float64   `json:"max"`
	Reps         []float64 `json:"reps"` // one value per repetition, in run order
	P50          *float64  `json:"p50,omitempty"`
	P99          *float64  `json:"p99,omitempty"`
	P999         *float64  `json:"p99_9,omitempty"`
	Samples      int64     `json:"samples,omitempty"`
	Ratio        *Ratio    `json:"ratio,omitempty"`
	RefReps      []float64 `json:"ref_reps,omitempty"` // the paired reference, run just before each repetition
	AllocsPerOp  *float64  `json:"allocs_per_op,omitempty"`
	// CPU time per operation of the processes serving it (pop3: store and
	// pop3d), median over the repetitions, and the paired reference's.
	CPUPerOp    *float64 `json:"cpu_ns_per_op,omitempty"`
	RefCPUPerOp *float64 `json:"ref_cpu_ns_per_op,omitempty"`
	Error       string   `json:"error,omitempty"`

	hist *hdrhistogram.Histogram
	cell *cell
}

// Ratio compares a result with its reference as time per operation:
// below 1 the result is faster. Taken repetition by repetition (against a
// short run of the reference made just before, for the round trips and the
// handles; else against the reference's run in the same sweep), then the
// median and the spread of those ratios.
type Ratio struct {
	To     string  `json:"to"`
	Label  string  `json:"label"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Machine describes where the numbers were taken.
type Machine struct {
	CPU        string   `json:"cpu"`
	Vendor     string   `json:"vendor"`
	Family     int      `json:"family"`
	Model      int      `json:"model"`
	Cores      int      `json:"cores"` // runtime.NumCPU: the CPUs this process may use (cpuid reports the host's)
	CacheLine  int      `json:"cache_line"`
	L1D        int      `json:"l1d_bytes"`
	L2         int      `json:"l2_bytes"`
	L3         int      `json:"l3_bytes"`
	VM         bool     `json:"vm"`
	Features   []string `json:"features"`
	Kernel     string   `json:"kernel"`
	Go         string   `json:"go"`
	GCC        string   `json:"gcc"`
	LoadBefore string   `json:"loadavg_before"`
	LoadAfter  string   `json:"loadavg_after"`
}

// Goal is one of the targets of the README, checked against this run.
type Goal struct {
	Goal   string  `json:"goal"`
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
	Unit   string  `json:"unit"`
	Met    bool    `json:"met"`
	Detail string  `json:"detail"`
}

// Report is latest.json.
type Report struct {
	Generated string    `json:"generated"`
	Command   string    `json:"command"`
	Reps      int       `json:"reps"`
	Scale     float64   `json:"scale"`
	Seconds   float64   `json:"seconds"`
	Machine   Machine   `json:"machine"`
	Results   []*Result `json:"results"`
	Goals     []Goal    `json:"goals"`
	Notes     []string  `json:"notes,omitempty"`
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

func machineInfo() Machine {
	c := cpuid.CPU
	var u unix.Utsname
	unix.Uname(&u)
	kernel := strings.Join([]string{unix.ByteSliceToString(u.Sysname[:]), unix.ByteSliceToString(u.Release[:]),
		unix.ByteSliceToString(u.Version[:]), unix.ByteSliceToString(u.Machine[:])}, " ")
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	gcc := ""
	if out, err := exec.Command(strings.Fields(cc)[0], "--version").Output(); err == nil {
		gcc = strings.SplitN(string(out), "\n", 2)[0]
	}
	return Machine{
		CPU: c.BrandName, Vendor: c.VendorString, Family: c.Family, Model: c.Model,
		Cores: runtime.NumCPU(), CacheLine: c.CacheLine, L1D: c.Cache.L1D, L2: c.Cache.L2, L3: c.Cache.L3,
		VM: c.VM(), Features: c.FeatureSet(), Kernel: kernel, Go: runtime.Version(), GCC: gcc,
	}
}

// summarise turns each cell's repetitions into results (two for streams:
// messages/s and bytes/s).
func summarise(cells []*cell, reps map[*cell][]repResult, errs map[*cell]string) []*Result {
	byName := map[string]*cell{}
	for _, c := range cells {
		byName[c.name] = c
	}
	var out []*Result
	for _, c := range cells {
		r := &Result{Name: c.name, Workload: c.workload, Transport: c.transport, PayloadBytes: c.size,
			Param: c.param, Metric: c.metric, Unit: c.unit, Error: errs[c], cell: c}
		rs := reps[c]
		vals := make([]float64, 0, len(rs))
		allocs := -1.0
		for _, x := range rs {
			vals = append(vals, x.value)
			allocs = max(allocs, x.allocs)
		}
		r.Reps = vals
		r.Min, r.Median, r.Max = spread(vals)
		if allocs >= 0 {
			r.AllocsPerOp = &allocs
		}
		var cpus, refCPUs []float64
		for _, x := range rs {
			if x.cpu > 0 {
				cpus = append(cpus, x.cpu)
			}
			if x.cpu > 0 && x.refCPU > 0 {
				refCPUs = append(refCPUs, x.refCPU)
			}
		}
		if len(cpus) > 0 {
			_, a, _ := spread(cpus)
			r.CPUPerOp = &a
		}
		if len(refCPUs) > 0 {
			_, b, _ := spread(refCPUs)
			r.RefCPUPerOp = &b
		}
		// Rate cells that time each call of one caller (rpc) keep their
		// percentiles too: the latency goals compare them.
		if c.kind == latency || c.workload == "fanin" || c.workload == "rpc" {
			h := hdrhistogram.New(1, 100_000_000_000, 3)
			for _, x := range rs {
				for _, s := range x.samples {
					h.RecordValue(max(int64(s), 1))
				}
			}
			if h.TotalCount() > 0 {
				p := func(q float64) *float64 { v := float64(h.ValueAtQuantile(q)); return &v }
				r.P50, r.P99, r.P999 = p(50), p(99), p(99.9)
				r.Samples = h.TotalCount()
				r.hist = h
			}
		}
		if c.pair != "" {
			var refs []repResult
			for _, x := range rs {
				refs = append(refs, repResult{value: x.refVal})
				r.RefReps = append(r.RefReps, x.refVal)
			}
			r.Ratio = ratio(c, rs, &cell{name: c.ref + " (run just before)", refLabel: c.refLabel}, refs)
		} else if ref, ok := byName[c.ref]; ok {
			r.Ratio = ratio(c, rs, ref, reps[ref])
		}
		out = append(out, r)
		if strings.HasPrefix(c.workload, "stream") {
			b := *r
			b.Metric, b.Unit = "bytes/s", "B/s"
			b.Reps = make([]float64, len(vals))
			for i, v := range vals {
				b.Reps[i] = v * float64(c.size)
			}
			b.Min, b.Median, b.Max = spread(b.Reps)
			b.AllocsPerOp = nil
			out = append(out, &b)
		}
	}
	return out
}

// spread returns the min, median and max of vs.
func spread(vs []float64) (lo, med, hi float64) {
	if len(vs) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[0], med, s[len(s)-1]
}

// ratio: repetition i of the cell against repetition i of its reference,
// as time per operation.
func ratio(c *cell, rs []repResult, ref *cell, refs []repResult) *Ratio {
	var q []float64
	for i := 0; i < len(rs) && i < len(refs); i++ {
		a, b := rs[i].value, refs[i].value
		if a <= 0 || b <= 0 {
			continue
		}
		if c.kind == rate {
			a, b = 1/a, 1/b
		}
		q = append(q, a/b)
	}
	if len(q) == 0 {
		return nil
	}
	lo, med, hi := spread(q)
	return &Ratio{To: ref.name, Label: ref.refLabelOr(c.refLabel), Median: med, Min: lo, Max: hi}
}

func (c *cell) refLabelOr(l string) string {
	if l != "" {
		return l
	}
	return c.name
}

// ---- formatting ----------------------------------------------------------------

func fmtValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch unit {
	case "ns":
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2f ms", v/1e6)
		case v >= 1e4:
			return fmt.Sprintf("%.1f µs", v/1e3)
		case v >= 1e3:
			return fmt.Sprintf("%.2f µs", v/1e3)
		}
		return fmt.Sprintf("%.0f ns", v)
	case "%":
		return fmt.Sprintf("%.1f %%", v)
	case "B/s":
		switch {
		case v >= 1e9:
			return fmt.Sprintf("%.2f GB/s", v/1e9)
		case v >= 1e6:
			return fmt.Sprintf("%.1f MB/s", v/1e6)
		}
		return fmt.Sprintf("%.0f kB/s", v/1e3)
	case "MB/s":
		return fmt.Sprintf("%.1f MB/s", v)
	default:
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2f M/s", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%.1f k/s", v/1e3)
		}
		return fmt.Sprintf("%.0f /s", v)
	}
}

func fmtSpread(r *Result) string {
	if len(r.Reps) < 2 {
		return ""
	}
	return fmt.Sprintf("%s – %s", strings.TrimSuffix(fmtValue(r.Min, r.Unit), ""), fmtValue(r.Max, r.Unit))
}

func fmtRatio(r *Ratio) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("%.2f× %s (%.2f–%.2f)", r.Median, r.Label, r.Min, r.Max)
}

// printTable writes the results grouped by workload.
func printTable(w io.Writer, rep *Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	last := ""
	for _, r := range rep.Results {
		if r.Workload != last {
			last = r.Workload
			fmt.Fprintf(tw, "\n%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", strings.ToUpper(last), "median", "min – max", "p99", "p99.9", "time vs reference (spread)", "allocs/op")
		}
		label := strings.TrimPrefix(r.Name, r.Workload+"/")
		if r.Metric == "bytes/s" {
			label += " (bytes)"
		}
		if r.Error != "" && len(r.Reps) == 0 {
			fmt.Fprintf(tw, "%s\tfailed\t\t\t\t%s\t\t\n", label, firstLine(r.Error))
			continue
		}
		p99, p999, al := "", "", ""
		if r.P99 != nil && r.P999 != nil && r.Unit == "ns" {
			p99, p999 = fmtValue(*r.P99, "ns"), fmtValue(*r.P999, "ns")
		}
		if r.AllocsPerOp != nil {
			al = fmt.Sprintf("%.2f", *r.AllocsPerOp)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", label, fmtValue(r.Median, r.Unit), fmtSpread(r), p99, p999, fmtRatio(r.Ratio), al)
	}
	tw.Flush()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}

func printGoals(w io.Writer, goals []Goal) {
	fmt.Fprintln(w, "\nGOALS")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, g := range goals {
		st := "MET"
		if !g.Met {
			st = "missed"
		}
		if math.IsNaN(g.Value) {
			st = "not measured"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", g.Goal, st, g.Detail)
	}
	tw.Flush()
}

// ---- goals -----------------------------------------------------------------------

func evalGoals(results []*Result) []Goal {
	get := func(name, metric string) *Result {
		for _, r := range results {
			if r.Name == name && (metric == "" || r.Metric == metric) && len(r.Reps) > 0 {
				return r
			}
		}
		return nil
	}
	var goals []Goal
	nan := math.NaN()
	// ratioGoal: the cell's recorded ratio to its reference, at most target.
	ratioGoal := func(goal, name string, target float64) {
		g := Goal{Goal: goal, Value: nan, Target: target, Unit: "x"}
		if r := get(name, ""); r != nil && r.Ratio != nil {
			g.Value = r.Ratio.Median
			g.Met = g.Value <= target
			g.Detail = fmt.Sprintf("%.2f× %s (spread %.2f–%.2f; %s vs %s)", g.Value, r.Ratio.Label, r.Ratio.Min, r.Ratio.Max,
				fmtValue(r.Median, r.Unit), r.Ratio.To)
		}
		goals = append(goals, g)
	}
	// speedGoal: how many times the peer's time per operation exipc's is, at least target.
	speedGoal := func(goal, exName, peerName, metric string, target float64) {
		g := Goal{Goal: goal, Value: nan, Target: target, Unit: "x"}
		a, b := get(exName, metric), get(peerName, metric)
		if a != nil && b != nil {
			if a.cell.kind == latency {
				g.Value = b.Median / a.Median
			} else {
				g.Value = a.Median / b.Median
			}
			g.Met = g.Value >= target
			g.Detail = fmt.Sprintf("%.1f× (%s: %s, %s: %s)", g.Value, exName, fmtValue(a.Median, a.Unit), peerName, fmtValue(b.Median, b.Unit))
		}
		goals = append(goals, g)
	}
	// The goals of the "faster than a Unix socket from Go" work, in its order.
	for _, size := range []string{"64B", "4KiB"} {
		speedGoal("stub RPC "+size+", 1 client >= 3x Unix socket calls/s",
			"rpc/exipc-stub/"+size+"/1-clients", "rpc/unix/"+size+"/1-clients", "", 3)
		speedGoal("stub RPC "+size+", 100 clients >= 2x Unix socket calls/s",
			"rpc/exipc-stub/"+size+"/100-clients", "rpc/unix/"+size+"/100-clients", "", 2)
	}
	// Latency of one caller: every call's time, all repetitions together.
	for _, size := range []string{"64B", "4KiB"} {
		g := Goal{Goal: "stub RPC " + size + ", 1 client: p50 and p99 <= 1/3 of the Unix socket's", Value: nan, Target: 1.0 / 3, Unit: "x"}
		a, b := get("rpc/exipc-stub/"+size+"/1-clients", ""), get("rpc/unix/"+size+"/1-clients", "")
		if a != nil && b != nil && a.P50 != nil && b.P50 != nil && *b.P50 > 0 && *b.P99 > 0 {
			r50, r99 := *a.P50 / *b.P50, *a.P99 / *b.P99
			g.Value = max(r50, r99)
			g.Met = g.Value <= g.Target
			g.Detail = fmt.Sprintf("p50 %.2f× (%s vs %s), p99 %.2f× (%s vs %s)", r50, fmtValue(*a.P50, "ns"), fmtValue(*b.P50, "ns"),
				r99, fmtValue(*a.P99, "ns"), fmtValue(*b.P99, "ns"))
		}
		goals = append(goals, g)
	}
	// POP3: the cells' paired ratio is exipc's time per RETR over the Unix
	// socket's; the goal is on rates, its inverse.
	for _, size := range []string{"1KiB", "64KiB", "1MiB"} {
		target := 1.2
		if size == "1MiB" {
			target = 1.5
		}
		for _, n := range []string{"1", "16"} {
			ratioGoal(fmt.Sprintf("POP3 RETR %s, %s clients >= %.1fx Unix socket RETR/s (time <= %.2fx)", size, n, target, 1/target),
				"pop3/exipc/"+size+"/"+n+"-clients", 1/target)
		}
	}
	// CPU per RETR of store and pop3d together (pop3bench reads both
	// processes' CPU time over the measured window), against the same over
	// the Unix socket in the same repetition.
	{
		g := Goal{Goal: "POP3 CPU time per RETR (store + pop3d) below the Unix socket's at every size", Value: nan, Target: 1, Unit: "x"}
		var parts []string
		worst, n, all := 0.0, 0, 0
		for _, size := range []string{"1KiB", "64KiB", "1MiB"} {
			for _, c := range []string{"1", "16"} {
				all++
				r := get("pop3/exipc/"+size+"/"+c+"-clients", "")
				if r == nil || r.CPUPerOp == nil || r.RefCPUPerOp == nil || *r.RefCPUPerOp <= 0 {
					continue
				}
				n++
				x := *r.CPUPerOp / *r.RefCPUPerOp
				worst = max(worst, x)
				parts = append(parts, fmt.Sprintf("%s/%s: %.2f× (%s vs %s)", size, c, x, fmtValue(*r.CPUPerOp, "ns"), fmtValue(*r.RefCPUPerOp, "ns")))
			}
		}
		if n > 0 {
			g.Value, g.Met = worst, worst < 1 && n == all
			g.Detail = "worst " + fmt.Sprintf("%.2f×; ", worst) + strings.Join(parts, ", ")
		}
		goals = append(goals, g)
	}
	speedGoal("stream 64 B Go->Go batched >= 1.5x shmipc-go batched", "stream-batch/exipc-go-go/64B", "stream-batch/shmipc-go/64B", "", 1.5)
	speedGoal("stream 64 B Go->Go batched >= 3x Unix socket batched", "stream-batch/exipc-go-go/64B", "stream-batch/unix/64B", "", 3)
	speedGoal("stream 64 B Go->Go one message per call >= 0.6x C->C", "stream-single/exipc-go-go/64B", "stream-single/exipc-c-c/64B", "", 0.6)
	ratioGoal("ping-pong 64 B spin Go<->Go <= 2.0x cache line", "pingpong-spin/exipc-go-go/64B", 2.0)
	ratioGoal("ping-pong 64 B spin C<->C <= 1.5x cache line", "pingpong-spin/exipc-c-c/64B", 1.5)
	ratioGoal("ping-pong 64 B park Go<->Go <= 1.3x futex", "pingpong-park/exipc-go-go/64B", 1.3)
	ratioGoal("ping-pong 64 B park C<->C <= 1.15x futex", "pingpong-park/exipc-c-c/64B", 1.15)
	ratioGoal("handles only, batched, C->C <= 3x a bare ring", "handles-batch/exipc-c-c", 3)
	speedGoal("classic loop from Go (Alloc, Bytes, Send / Recv, Bytes, Free) >= 0.5x C", "stream-single/exipc-go-go/64B", "stream-single/exipc-c-c/64B", "", 0.5)

	g := Goal{Goal: "0 allocs/op per call (Bytes, Alloc+Free, Send+TryRecv, classic, fused, batch64)", Value: nan, Unit: "allocs/op"}
	worst, where, n := -1.0, "", 0
	for _, r := range results {
		if r.Workload == "micro" && r.AllocsPerOp != nil && r.Name != "micro/atomic" && r.Name != "micro/cgo" {
			n++
			if *r.AllocsPerOp > worst {
				worst, where = *r.AllocsPerOp, r.Name
			}
		}
	}
	if n > 0 {
		g.Value, g.Met = worst, worst == 0
		g.Detail = fmt.Sprintf("worst %.2f allocs/op (%s), testing.AllocsPerRun", worst, where)
	}
	goals = append(goals, g)
	// Allocations over whole workloads: runtime.MemStats of each Go exipc
	// peer over its measured part. The runtime's own allocations are in it
	// (a thread, a timer: a few over a few hundred operations), so below
	// 0.2 per operation counts as none.
	g = Goal{Goal: "0 allocs/op in the Go workloads (whole process)", Value: nan, Unit: "allocs/op"}
	worst, where, n = -1.0, "", 0
	var over []string
	for _, r := range results {
		if r.AllocsPerOp == nil || !strings.HasPrefix(r.Transport, "exipc-go") {
			continue
		}
		n++
		if *r.AllocsPerOp >= 0.2 {
			over = append(over, fmt.Sprintf("%s %.1f", r.Name, *r.AllocsPerOp))
		}
		if *r.AllocsPerOp > worst {
			worst, where = *r.AllocsPerOp, r.Name
		}
	}
	if n > 0 {
		g.Value, g.Met = worst, worst < 0.2
		g.Detail = fmt.Sprintf("worst %.2f allocs/op (%s) over %d workloads", worst, where, n)
		if len(over) > 0 {
			g.Detail += "; >= 0.2 in: " + strings.Join(over, ", ")
		}
	}
	goals = append(goals, g)
	goals = append(goals, connGoals(get)...) // bench/conn.go
	// Death notice (issue of the watcher): p99 from SIGKILL to the error, at
	// most 10 ms, for Go and C receivers; idle cost of 1,000 parked receivers.
	for _, name := range []string{"detect/exipc-go/server", "detect/exipc-go/client", "detect/exipc-c/recv", "detect/exipc-c/poll"} {
		g := Goal{Goal: name + ": SIGKILL to the error, p99 <= 10 ms", Value: nan, Target: 10, Unit: "ms"}
		if r := get(name, ""); r != nil && r.P99 != nil {
			g.Value = *r.P99 / 1e6
			g.Met = g.Value <= g.Target
			g.Detail = fmt.Sprintf("p50 %s, p99 %s, max %s", fmtValue(*r.P50, r.Unit), fmtValue(*r.P99, r.Unit), fmtValue(r.Max, r.Unit))
		}
		goals = append(goals, g)
	}
	{
		g := Goal{Goal: "1,000 parked Go receivers cost <= 0.2 cpu-ms/s", Value: nan, Target: 0.2, Unit: "cpu-ms/s"}
		if r := get("idle/exipc-go/1000", ""); r != nil {
			g.Value = r.Median
			g.Met = g.Value <= g.Target
			g.Detail = fmt.Sprintf("%.2f cpu-ms/s (min %.2f, max %.2f)", r.Median, r.Min, r.Max)
		}
		goals = append(goals, g)
	}
	return goals
}

func writeJSON(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		return err
	}
	// NaN cannot be written as JSON: results that failed have no numbers.
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// jsonSafe replaces NaN (failed cells, goals not measured) with 0 so the
// report marshals; Error and Detail say why.
func jsonSafe(rep *Report) {
	fix := func(v *float64) {
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			*v = 0
		}
	}
	for _, r := range rep.Results {
		fix(&r.Min)
		fix(&r.Median)
		fix(&r.Max)
	}
	for i := range rep.Goals {
		fix(&rep.Goals[i].Value)
	}
}

func nowStamp() string { return time.Now().UTC().Format(time.RFC3339) }

// renderMarkdown rewrites latest.md from the latest.json at path: the
// results page is generated from the JSON, never edited by hand.
func renderMarkdown(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeMarkdown(filepath.Join(filepath.Dir(path), "latest.md"), &rep)
}

// writeMarkdown writes the whole table and the goals as Markdown (the
// results page that docs/performance.md links to).
func writeMarkdown(path string, rep *Report) error {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "# exipc bench results\n\n")
	vm := ""
	if m.VM {
		vm = " in a VM"
	}
	fmt.Fprintf(&b, "`%s`, %s UTC, %d repetitions interleaved (%.0f s). Machine: %s (family %d model %d), %d CPUs%s, cache line %d B; %s; %s; %s. Load average %s before, %s after.\n\n",
		rep.Command, strings.TrimSuffix(strings.Replace(rep.Generated, "T", " ", 1), "Z"), rep.Reps, rep.Seconds, m.CPU, m.Family, m.Model, m.Cores, vm, m.CacheLine, m.Kernel, m.Go, m.GCC, m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(&b, "Median over the repetitions, min – max of the repetitions, p99 / p99.9 over every round trip. ")
	fmt.Fprintf(&b, "Ratio: time per operation over the reference's, taken repetition by repetition, median (min – max); below 1 is faster than the reference.\n\n")
	last := ""
	for _, r := range rep.Results {
		if r.Workload != last {
			last = r.Workload
			fmt.Fprintf(&b, "\n| %s | median | min – max | p99 | p99.9 | vs reference | allocs/op |\n|---|---:|---:|---:|---:|---|---:|\n", last)
		}
		label := strings.TrimPrefix(r.Name, r.Workload+"/")
		if r.Metric == "bytes/s" {
			label += " (bytes)"
		}
		if r.Error != "" && len(r.Reps) == 0 {
			fmt.Fprintf(&b, "| %s | failed: %s | | | | | |\n", label, strings.ReplaceAll(firstLine(r.Error), "|", "/"))
			continue
		}
		p99, p999, al := "", "", ""
		if r.P99 != nil && r.P999 != nil && r.Unit == "ns" {
			p99, p999 = fmtValue(*r.P99, "ns"), fmtValue(*r.P999, "ns")
		}
		if r.AllocsPerOp != nil {
			al = fmt.Sprintf("%.2f", *r.AllocsPerOp)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", label, fmtValue(r.Median, r.Unit), fmtSpread(r), p99, p999, fmtRatio(r.Ratio), al)
	}
	fmt.Fprintf(&b, "\n## Goals\n\n| goal | | measured |\n|---|---|---|\n")
	for _, g := range rep.Goals {
		st := "met"
		if !g.Met {
			st = "**missed**"
		}
		if g.Detail == "" {
			st = "not measured"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", g.Goal, st, g.Detail)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "\nNote: %s\n", n)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
