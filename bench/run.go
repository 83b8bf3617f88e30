package main

// Starting peer processes: pinned to a CPU when asked, a "ready" line
// awaited from servers, one "result" line collected from each, and every
// process and domain gone when a run ends.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exipc/exipc"
)

// proc is one peer process to start.
type proc struct {
	argv  []string
	cpu   int        // -1: not pinned
	pin   bool       // pin even a Go peer
	files []*os.File // become fd 3, 4, ... in the child
	env   []string
	// srvPid: runGroup appends srvpid=PID (the server's) to the argv, for
	// a client that reports both processes' CPU time (cpu_ns=).
	srvPid bool
}

// peerResult is what a peer printed on its result line.
type peerResult struct {
	start, end int64
	count      int
	allocs     int64 // heap allocations in the measured part; -1 not counted
	// cpuNs: CPU time of the measured part, the client's and the
	// server's (cpu_ns=; 0 if not reported).
	cpuNs int64
}

type running struct {
	p      proc
	cmd    *exec.Cmd
	lines  chan string
	stderr bytes.Buffer
	done   chan struct{}
	err    error
	result *peerResult
}

// pinPeers: pin the two ends of a pair to two CPUs (-pin). pinGo: Go peers
// too (-pin-go). A Go process confined to one CPU runs with GOMAXPROCS=1
// and runtime.NumCPU() = 1, which changes how exipc waits (no spin before
// parking, the wake-up goes through the poller's thread to another): that
// is measured by the *-pinned cells, not imposed on every Go peer.
var pinPeers, pinGo = true, false

// allowedCPUs is the driver's CPU set at start.
var allowedCPUs = func() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for i := 0; i < 1024; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}()

// cpuFor returns the CPU for peer slot i (0: client, 1: server) when
// pinning, or -1 with fewer than two CPUs.
func cpuFor(i int) int {
	if !pinPeers || len(allowedCPUs) < 2 {
		return -1
	}
	return allowedCPUs[i%len(allowedCPUs)]
}

// startMu serialises starts: a pinned start changes the affinity of the
// starting thread, which the child inherits (fork and exec happen on it).
var startMu sync.Mutex

func start(p proc) (*running, error) {
	r := &running{p: p, lines: make(chan string, 16), done: make(chan struct{})}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.ExtraFiles = p.files
	cmd.Stderr = &r.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	r.cmd = cmd
	cpu := p.cpu
	if len(p.argv) > 1 && p.argv[1] == "peer" && !pinGo && !p.pin {
		cpu = -1
	}
	if err := startPinned(cmd, cpu); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.argv[0], err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "result ") {
				if res, err := parseResult(line); err == nil {
					r.result = res
				}
			}
			select {
			case r.lines <- line:
			default: // nobody waits for it
			}
		}
		r.err = cmd.Wait()
		close(r.done)
	}()
	return r, nil
}

func startPinned(cmd *exec.Cmd, cpu int) error {
	startMu.Lock()
	defer startMu.Unlock()
	if cpu < 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return err
	}
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return err
	}
	err := cmd.Start()
	if e := unix.SchedSetaffinity(0, &old); e != nil && err == nil {
		err = e
	}
	return err
}

func parseResult(line string) (*peerResult, error) {
	res := &peerResult{allocs: -1}
	for _, f := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(f, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad result field %q", f)
		}
		switch k {
		case "start_ns":
			res.start = n
		case "end_ns":
			res.end = n
		case "count":
			res.count = int(n)
		case "allocs":
			res.allocs = n
		case "cpu_ns":
			res.cpuNs = n
		}
	}
	return res, nil
}

// waitReady waits for the server's "ready" line and returns its addr=.
func (r *running) waitReady(timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case line := <-r.lines:
			if strings.HasPrefix(line, "ready") {
				_, addr, _ := strings.Cut(line, "addr=")
				return strings.TrimSpace(addr), nil
			}
		case <-r.done:
			return "", r.failure("ended before it was ready")
		case <-deadline:
			return "", r.failure("not ready in " + timeout.String())
		}
	}
}

func (r *running) failure(what string) error {
	msg := strings.TrimSpace(r.stderr.String())
	if len(msg) > 600 {
		msg = msg[len(msg)-600:]
	}
	return fmt.Errorf("%s %s: %s (%v)\n%s", peerName(r.p.argv), strings.Join(r.p.argv[2:min(len(r.p.argv), 4)], " "), what, r.err, msg)
}

func peerName(argv []string) string {
	if len(argv) > 1 && argv[1] == "peer" && len(argv) > 2 {
		return "go:" + argv[2]
	}
	if len(argv) > 1 {
		return "c:" + argv[1]
	}
	return argv[0]
}

func (r *running) kill() {
	if r.cmd.Process != nil {
		r.cmd.Process.Kill()
	}
	<-r.done
}

// wait waits for the process to end (killing it past the deadline) and
// returns its result line.
func (r *running) wait(deadline <-chan time.Time) (*peerResult, error) {
	select {
	case <-r.done:
	case <-deadline:
		r.kill()
		return nil, r.failure("did not finish in time (killed)")
	}
	if r.err != nil {
		return nil, r.failure("failed")
	}
	if r.result == nil {
		return nil, r.failure("printed no result line")
	}
	return r.result, nil
}

// runGroup starts server (may be zero: argv nil), waits for it to be
// ready, then starts the clients with addr=ADDR appended when the server
// gave one, and waits for all. It returns the clients' results and the
// server's.
func runGroup(server proc, clients []proc, timeout time.Duration) ([]*peerResult, *peerResult, error) {
	deadline := time.After(timeout)
	var srv *running
	var all []*running
	defer func() {
		for _, r := range all {
			select {
			case <-r.done:
			default:
				r.kill()
			}
		}
	}()
	if server.argv != nil {
		var err error
		if srv, err = start(server); err != nil {
			return nil, nil, err
		}
		all = append(all, srv)
		addr, err := srv.waitReady(30 * time.Second)
		if err != nil {
			return nil, nil, err
		}
		if addr != "" {
			for i := range clients {
				clients[i].argv = append(clients[i].argv, "addr="+addr)
			}
		}
	}
	var cl []*running
	for _, c := range clients {
		if srv != nil && c.srvPid {
			c.argv = append(c.argv[:len(c.argv):len(c.argv)], fmt.Sprint("srvpid=", srv.cmd.Process.Pid))
		}
		r, err := start(c)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, r)
		cl = append(cl, r)
	}
	var results []*peerResult
	for _, r := range cl {
		res, err := r.wait(deadline)
		if err != nil {
			return nil, nil, err
		}
		results = append(results, res)
	}
	var sres *peerResult
	if srv != nil {
		var err error
		if sres, err = srv.wait(deadline); err != nil {
			return nil, nil, err
		}
	}
	return results, sres, nil
}

// Domains made by this run, removed at the end of each workload and on
// interrupt.
var (
	domMu   sync.Mutex
	domSeq  int
	domLive = map[string]bool{}
)

func newDomain() string {
	domMu.Lock()
	defer domMu.Unlock()
	domSeq++
	name := fmt.Sprintf("bench.%d.%d", os.Getpid(), domSeq)
	domLive[name] = true
	return name
}

func dropDomain(name string) {
	domMu.Lock()
	defer domMu.Unlock()
	exipc.Unlink(name)
	delete(domLive, name)
}

func dropAllDomains() {
	domMu.Lock()
	defer domMu.Unlock()
	for name := range domLive {
		exipc.Unlink(name)
	}
	domLive = map[string]bool{}
}
