// Command exipcbench is `make bench`: it runs every exipc workload across
// real processes beside its reference points (a cache-line ping-pong and a
// futex wake round trip, in C, measured in the same run) and beside the
// peers (Unix socket, pipe, TCP loopback, Go channels, shmipc-go), repeats
// the whole sweep several times with the workloads interleaved, and writes
// a table, results/latest.json and plots.
//
//	exipcbench -cpeer build/bench/cbench [-filter REGEXP] [-reps 5] [-scale 1] [-out DIR]
//	exipcbench -list
//
// The same binary is the Go peer of every workload: `exipcbench peer ROLE
// key=value...`, started by the driver (EXIPCBENCH_CPUPROFILE=DIR makes each
// Go peer write a CPU profile there). Timings on a 2-vCPU VM drift by
// several times within minutes: read the ratios, which compare runs of the
// same sweep, rather than the absolute numbers.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

var peerRoles = map[string]func(args){
	"ex-pp-server":     exPingPongServer,
	"ex-pp-client":     exPingPongClient,
	"ex-stream-send":   exStreamSend,
	"ex-stream-recv":   exStreamRecv,
	"ex-handles-send":  exHandlesSend,
	"ex-handles-recv":  exHandlesRecv,
	"ex-fanin-server":  exFanInServer,
	"ex-fanin-client":  exFanInClient,
	"ex-chans-server":  exChansServer,
	"ex-chans-client":  exChansClient,
	"net-pp-server":    netPingPongServer,
	"net-pp-client":    netPingPongClient,
	"net-stream-send":  netStreamSend,
	"net-stream-recv":  netStreamRecv,
	"net-fanin-server": netFanInServer,
	"net-chans-client": netChansClient,
	"shm-pp-server":    shmPingPongServer,
	"shm-pp-client":    shmPingPongClient,
	"shm-stream-send":  shmStreamSend,
	"shm-stream-recv":  shmStreamRecv,
	"chan-pp":          chanPingPong,
	"chan-stream":      chanStream,
	"micro":            micro,
	"ex-rpc-server":    exRPCServer,
	"rpc-client":       rpcClient,
	"detect":           detectPeer,
	"detect-child":     detectChild,
	"idle":             idlePeer,
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "peer" {
		peerRole = os.Args[2]
		fn, ok := peerRoles[peerRole]
		if !ok {
			fatalf("unknown peer role")
		}
		// EXIPCBENCH_CPUPROFILE=DIR: each Go peer writes DIR/ROLE.PID.pprof
		// (where the time goes: go tool pprof -top exipcbench FILE).
		if dir := os.Getenv("EXIPCBENCH_CPUPROFILE"); dir != "" {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s.%d.pprof", peerRole, os.Getpid())))
			if err == nil && pprof.StartCPUProfile(f) == nil {
				defer f.Close()
				defer pprof.StopCPUProfile()
			}
		}
		fn(parseArgs(os.Args[3:]))
		return
	}
	os.Exit(driver())
}

func driver() int {
	cpeer := flag.String("cpeer", "build/bench/cbench", "the C peer (bench/c/cbench.c)")
	mailstore := flag.String("mailstore", "build/mailstore", "directory of the mail store example's store, pop3d and pop3bench (the pop3/* cells)")
	out := flag.String("out", "bench/results", "directory for latest.json and the plots")
	filter := flag.String("filter", "", "run only the workloads whose name matches this regexp (the references always run)")
	reps := flag.Int("reps", 7, "repetitions of the whole sweep")
	scale := flag.Float64("scale", 1, "multiply every message count by this")
	timeout := flag.Duration("timeout", 60*time.Second, "give up on one run of one workload after this")
	list := flag.Bool("list", false, "list the workloads and exit")
	flag.BoolVar(&pinPeers, "pin", true, "pin the two processes of a pair to two CPUs (C peers; Go peers with -pin-go)")
	flag.BoolVar(&pinGo, "pin-go", false, "pin Go peers too (GOMAXPROCS becomes 1)")
	render := flag.String("render", "", "write the Markdown page of this latest.json beside it (latest.md) and exit")
	flag.Parse()

	if *render != "" {
		if err := renderMarkdown(*render); err != nil {
			fmt.Fprintln(os.Stderr, "exipcbench:", err)
			return 1
		}
		return 0
	}

	all := buildCells()
	sel, err := selectCells(all, *filter)
	if err != nil {
		fmt.Fprintln(os.Stderr, "exipcbench:", err)
		return 2
	}
	if *list {
		for _, c := range sel {
			fmt.Println(c.name)
		}
		return 0
	}
	if *reps < 1 || *scale <= 0 {
		fmt.Fprintln(os.Stderr, "exipcbench: -reps must be >= 1 and -scale > 0")
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "exipcbench:", err)
		return 1
	}
	cp, err := filepath.Abs(*cpeer)
	if err == nil {
		_, err = os.Stat(cp)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "exipcbench: the C peer %s: %v (build it with `make bench`)\n", *cpeer, err)
		return 1
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "exipcbench:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "exipcbench.")
	if err != nil {
		fmt.Fprintln(os.Stderr, "exipcbench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	defer dropAllDomains()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "\nexipcbench: interrupted; removing its domains")
		dropAllDomains()
		os.RemoveAll(tmp)
		os.Exit(130) // the peers die with us (PR_SET_PDEATHSIG)
	}()

	ms, _ := filepath.Abs(*mailstore)
	rc := &runCtx{self: self, cpeer: cp, mailstore: ms, tmp: tmp, scale: *scale, timeout: *timeout}
	machine := machineInfo()
	machine.LoadBefore = loadavg()
	fmt.Fprintf(os.Stderr, "exipcbench: %d workloads x %d repetitions on %s, %d CPUs (load %s)\n",
		len(sel), *reps, machine.CPU, machine.Cores, machine.LoadBefore)

	// On a terminal the bar redraws in place; into a file or a pipe every
	// redraw is a new line, so redraw rarely.
	throttle := 100 * time.Millisecond
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		throttle = 10 * time.Second
	}
	bar := progressbar.NewOptions(len(sel)**reps,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetWidth(24),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(throttle),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetDescription(fmt.Sprintf("%-40s", "starting")),
	)
	results := map[*cell][]repResult{}
	errs := map[*cell]string{}
	t0 := time.Now()
	for rep := range *reps {
		// Interleave: every workload once per sweep, in a different order
		// each sweep, so a drift of the machine hits all of them alike.
		order := append([]*cell(nil), sel...)
		rand.New(rand.NewSource(int64(rep)+1)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, c := range order {
			bar.Describe(fmt.Sprintf("%-40s", fmt.Sprintf("%d/%d %s", rep+1, *reps, c.name)))
			if errs[c] != "" { // failed before: do not wait for it again
				bar.Add(1)
				continue
			}
			var refVal float64
			if c.pair != "" {
				refVal, err = pairedRef(rc, c.pair)
				if err != nil {
					bar.Clear()
					fmt.Fprintf(os.Stderr, "exipcbench: the reference for %s failed: %v\n", c.name, err)
				}
			}
			r, err := c.run(rc)
			if c.pair != pairSelf {
				r.refVal = refVal
			}
			if err != nil {
				errs[c] = err.Error()
				bar.Clear()
				fmt.Fprintf(os.Stderr, "exipcbench: %s failed: %v\n", c.name, err)
			} else {
				results[c] = append(results[c], r)
			}
			bar.Add(1)
		}
	}
	bar.Finish()
	elapsed := time.Since(t0)
	machine.LoadAfter = loadavg()

	rep := &Report{
		Generated: nowStamp(),
		Command:   commandLine(*filter, *reps, *scale),
		Reps:      *reps,
		Scale:     *scale,
		Seconds:   elapsed.Round(100 * time.Millisecond).Seconds(),
		Machine:   machine,
		Results:   summarise(sel, results, errs),
	}
	rep.Goals = evalGoals(rep.Results)
	failedCore := 0
	for _, c := range sel {
		if errs[c] == "" {
			continue
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s failed: %s", c.name, firstLine(errs[c])))
		if strings.Contains(c.transport, "exipc") || c.workload == "ref" || c.workload == "micro" {
			failedCore++
		}
	}

	fmt.Printf("exipc bench: %s; %d CPUs; %s; %s\n", machine.CPU, machine.Cores, machine.Go, machine.GCC)
	fmt.Printf("%d repetitions, interleaved, in %s; load average %s before, %s after\n",
		*reps, elapsed.Round(time.Second), machine.LoadBefore, machine.LoadAfter)
	fmt.Println("median over the repetitions; min – max of the repetitions' values; p99 / p99.9 over every round trip;")
	fmt.Println("time vs reference: time per operation over the reference's, repetition by repetition (< 1: faster)")
	printTable(os.Stdout, rep)
	printGoals(os.Stdout, rep.Goals)
	for _, n := range rep.Notes {
		fmt.Println("note:", n)
	}

	title := fmt.Sprintf("%s, %d CPUs, %s", shortCPU(machine.CPU), machine.Cores, time.Now().UTC().Format("2006-01-02"))
	files, err := writePlots(*out, rep.Results, title)
	if err != nil {
		fmt.Fprintln(os.Stderr, "exipcbench: plots:", err)
		failedCore++
	}
	jsonSafe(rep)
	jpath := filepath.Join(*out, "latest.json")
	if err := writeJSON(jpath, rep); err != nil {
		fmt.Fprintln(os.Stderr, "exipcbench:", err)
		return 1
	}
	mpath := filepath.Join(*out, "latest.md")
	if err := writeMarkdown(mpath, rep); err != nil {
		fmt.Fprintln(os.Stderr, "exipcbench:", err)
		return 1
	}
	fmt.Printf("\nwrote %s, latest.md", jpath)
	for _, f := range files {
		fmt.Printf(", %s", filepath.Base(f))
	}
	fmt.Println()
	if failedCore > 0 {
		return 1
	}
	return 0
}

// selectCells keeps the cells matching filter and, transitively, the cells
// they are compared with; the two C references always run.
func selectCells(all []*cell, filter string) ([]*cell, error) {
	if filter == "" {
		return all, nil
	}
	re, err := regexp.Compile(filter)
	if err != nil {
		return nil, fmt.Errorf("BENCH=%q: %v", filter, err)
	}
	keep := map[string]bool{"ref/cacheline": true, "ref/futex": true}
	byName := map[string]*cell{}
	for _, c := range all {
		byName[c.name] = c
		if re.MatchString(c.name) {
			keep[c.name] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for name := range keep {
			if c := byName[name]; c != nil && c.ref != "" && !keep[c.ref] {
				keep[c.ref] = true
				changed = true
			}
		}
	}
	var sel []*cell
	for _, c := range all {
		if keep[c.name] {
			sel = append(sel, c)
		}
	}
	return sel, nil
}

func commandLine(filter string, reps int, scale float64) string {
	s := "make bench"
	if filter != "" {
		s += fmt.Sprintf(" BENCH='%s'", filter)
	}
	if reps != 7 || scale != 1 {
		s += fmt.Sprintf(" BENCH_FLAGS='-reps %d -scale %g'", reps, scale)
	}
	return s
}

func shortCPU(s string) string {
	s = strings.TrimSpace(s)
	for _, cut := range []string{" Processor", " with "} {
		if i := strings.Index(s, cut); i > 0 {
			s = s[:i]
		}
	}
	return s
}
