package main

// The workloads: every (workload, transport, payload) the suite measures,
// with how it is run and which reference its ratio is taken against.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

type kind int

const (
	latency kind = iota // value: ns per round trip (median of the run's samples)
	rate                // value: operations per second
)

// cell is one measured thing.
type cell struct {
	name      string // workload/transport/payload: what BENCH= matches
	workload  string
	transport string
	size      int // payload bytes (0: none)
	param     int // clients (fanin) or channels (chans)
	kind      kind
	metric    string
	unit      string
	ref       string // cell whose value this one is compared with ("" none)
	refLabel  string // how the ratio column names the reference
	// pair: a short run of the reference taken just before each run of this
	// cell ("cacheline", "futex", "ring"); the ratio is then taken against
	// it, so that a drift of the machine between the two does not enter.
	pair string
	run  func(rc *runCtx) (repResult, error)
}

// repResult is one run (repetition) of a cell.
type repResult struct {
	value   float64
	refVal  float64  // the paired reference's value (0: none)
	samples []uint32 // latency samples in ns (latency cells)
	allocs  float64  // heap allocations per operation in the Go peers; -1 not counted
	cpu     float64  // CPU ns per operation of the serving processes (0: not measured)
	refCPU  float64  // the same for the paired reference
}

type runCtx struct {
	self, cpeer string // the Go peer (this binary) and the C peer
	mailstore   string // directory of store, pop3d and pop3bench
	tmp         string // a private temporary directory
	scale       float64
	timeout     time.Duration
}

func (rc *runCtx) n(base int) int { return max(int(float64(base)*rc.scale), 20) }

func (rc *runCtx) goPeer(role string, a ...string) []string {
	return append([]string{rc.self, "peer", role}, a...)
}

func (rc *runCtx) cPeer(role string, a ...string) []string {
	return append([]string{rc.cpeer, role}, a...)
}

func (rc *runCtx) tmpFile(name string) string { return filepath.Join(rc.tmp, name) }

var sizes = []int{8, 64, 4 << 10, 64 << 10, 1 << 20}

func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// Message counts per run, by payload size: fast transports (exipc, Go
// channels) and slow ones (through the kernel). About 0.1-0.3 s each here.
func ppCount(size int, slow bool) int {
	fast := map[int]int{8: 30000, 64: 30000, 4096: 15000, 65536: 3000, 1 << 20: 300}
	slowN := map[int]int{8: 3000, 64: 3000, 4096: 2000, 65536: 1000, 1 << 20: 100}
	if slow {
		return slowN[size]
	}
	return fast[size]
}

func parkCount(size int) int {
	return map[int]int{8: 600, 64: 600, 4096: 500, 65536: 300, 1 << 20: 100}[size]
}

func streamCount(size int, slow bool) int {
	fast := map[int]int{8: 600000, 64: 600000, 4096: 80000, 65536: 6000, 1 << 20: 400}
	slowN := map[int]int{8: 60000, 64: 60000, 4096: 20000, 65536: 2000, 1 << 20: 200}
	if slow {
		return slowN[size]
	}
	return fast[size]
}

// heapFor sizes a domain's arena for a payload: enough blocks to fill a
// ring, no more (a bigger domain costs more to create and pre-fault).
func heapFor(size int, stream bool) int {
	switch {
	case size <= 4096 && !stream:
		return 4 << 20
	case size <= 4096:
		return 8 << 20
	case size <= 65536:
		return 24 << 20
	default:
		return 64 << 20
	}
}

// exipc pairs: client (or sender) language, server (or receiver) language.
var exPairs = []struct{ name, client, server string }{
	{"exipc-go-go", "go", "go"},
	{"exipc-c-c", "c", "c"},
	{"exipc-go-c", "go", "c"},
}

// exArgv is the command line of an exipc peer in language lang; Go roles
// are the C roles prefixed "ex-".
func (rc *runCtx) exArgv(lang, role string, a ...string) []string {
	if lang == "c" {
		return rc.cPeer(role, a...)
	}
	return rc.goPeer("ex-"+role, a...)
}

func buildCells() []*cell {
	var cells []*cell
	add := func(c *cell) { cells = append(cells, c) }

	// References (the C program forks and pins itself).
	add(&cell{name: "ref/cacheline", workload: "ref", transport: "cache line", kind: latency,
		metric: "round trip", unit: "ns", run: func(rc *runCtx) (repResult, error) {
			return runCRef(rc, "ref-cacheline", rc.n(300000))
		}})
	add(&cell{name: "ref/futex", workload: "ref", transport: "futex", kind: latency,
		metric: "round trip", unit: "ns", run: func(rc *runCtx) (repResult, error) {
			return runCRef(rc, "ref-futex", rc.n(2500))
		}})
	add(&cell{name: "ref/bare-ring", workload: "ref", transport: "bare ring", size: 8, kind: rate,
		metric: "handles/s", unit: "1/s", run: func(rc *runCtx) (repResult, error) {
			return runBareRing(rc, rc.n(20000000))
		}})

	// Ping-pong: exipc, spin and park, every pair and size.
	for _, mode := range []string{"spin", "park"} {
		for _, pr := range exPairs {
			for _, size := range sizes {
				ref, label, pair := "ref/cacheline", "cache line", "cacheline"
				if mode == "park" {
					ref, label, pair = "ref/futex", "futex", "futex"
				}
				add(&cell{name: fmt.Sprintf("pingpong-%s/%s/%s", mode, pr.name, sizeLabel(size)),
					workload: "pingpong-" + mode, transport: pr.name, size: size, kind: latency,
					metric: "round trip", unit: "ns", ref: ref, refLabel: label, pair: pair,
					run: func(rc *runCtx) (repResult, error) { return runExPingPong(rc, pr.client, pr.server, mode, size) }})
			}
		}
	}
	// The same, 64 B, with the Go processes pinned each to one CPU.
	for _, mode := range []string{"spin", "park"} {
		ref, label, pair := "ref/cacheline", "cache line", "cacheline"
		if mode == "park" {
			ref, label, pair = "ref/futex", "futex", "futex"
		}
		add(&cell{name: fmt.Sprintf("pingpong-%s/exipc-go-go-pinned/64B", mode),
			workload: "pingpong-" + mode, transport: "exipc-go-go-pinned", size: 64, kind: latency,
			metric: "round trip", unit: "ns", ref: ref, refLabel: label, pair: pair,
			run: func(rc *runCtx) (repResult, error) { return runExPingPongPinned(rc, mode) }})
	}
	// The same, Go<->Go 64 B, with the fused calls (SendCopy; TryRecvBytes
	// or RecvBytes; Free): three calls into C per message instead of five.
	for _, mode := range []string{"spin", "park"} {
		ref, label, pair := "ref/cacheline", "cache line", "cacheline"
		if mode == "park" {
			ref, label, pair = "ref/futex", "futex", "futex"
		}
		add(&cell{name: fmt.Sprintf("pingpong-%s/exipc-go-go-fused/64B", mode),
			workload: "pingpong-" + mode, transport: "exipc-go-go-fused", size: 64, kind: latency,
			metric: "round trip", unit: "ns", ref: ref, refLabel: label, pair: pair,
			run: func(rc *runCtx) (repResult, error) {
				return exPingPong(rc, "go", "go", mode, 64, false, "calls=fused")
			}})
	}
	// Ping-pong: the peers.
	for _, tr := range []string{"unix", "pipe", "tcp", "shmipc-go", "go-chan"} {
		for _, size := range sizes {
			add(&cell{name: fmt.Sprintf("pingpong/%s/%s", tr, sizeLabel(size)),
				workload: "pingpong", transport: tr, size: size, kind: latency,
				metric: "round trip", unit: "ns", ref: "ref/futex", refLabel: "futex", pair: "futex",
				run: func(rc *runCtx) (repResult, error) { return runPeerPingPong(rc, tr, size) }})
		}
	}

	// One-way streams, one message per call and batched.
	for _, mode := range []string{"single", "batch"} {
		for _, tr := range []string{"exipc-go-go", "exipc-c-c", "exipc-go-c", "unix", "pipe", "tcp", "shmipc-go", "go-chan"} {
			for _, size := range sizes {
				c := &cell{name: fmt.Sprintf("stream-%s/%s/%s", mode, tr, sizeLabel(size)),
					workload: "stream-" + mode, transport: tr, size: size, kind: rate,
					metric: "msgs/s", unit: "1/s",
					run: func(rc *runCtx) (repResult, error) { return runStream(rc, tr, mode, size) }}
				if tr != "unix" {
					c.ref, c.refLabel = fmt.Sprintf("stream-%s/unix/%s", mode, sizeLabel(size)), "unix"
				}
				add(c)
			}
		}
	}

	// The same at 64 B with rings of 4096 handles instead of 256: how much
	// of a stream's rate goes to the receiver parking when it has drained
	// the ring (and the sender then waiting for its wake-up on a full ring).
	for _, mode := range []string{"single", "batch"} {
		for _, tr := range []string{"exipc-go-go-ring4096", "exipc-c-c-ring4096"} {
			add(&cell{name: fmt.Sprintf("stream-%s/%s/64B", mode, tr),
				workload: "stream-" + mode, transport: tr, size: 64, kind: rate, metric: "msgs/s", unit: "1/s",
				ref: fmt.Sprintf("stream-%s/unix/64B", mode), refLabel: "unix",
				run: func(rc *runCtx) (repResult, error) { return runStream(rc, tr, mode, 64) }})
		}
	}

	// Handles only, batched, against the bare ring.
	for _, pr := range exPairs {
		add(&cell{name: "handles-batch/" + pr.name, workload: "handles-batch", transport: pr.name, size: 8,
			kind: rate, metric: "handles/s", unit: "1/s", ref: "ref/bare-ring", refLabel: "bare ring", pair: "ring",
			run: func(rc *runCtx) (repResult, error) { return runHandles(rc, pr.client, pr.server) }})
	}

	// Fan-in: N client processes, one server, blocking round trips of 64 B.
	for _, tr := range []string{"exipc-go-go", "unix"} {
		for _, n := range []int{1, 2, 4, 8} {
			c := &cell{name: fmt.Sprintf("fanin/%s/%d-clients", tr, n), workload: "fanin", transport: tr,
				size: 64, param: n, kind: rate, metric: "round trips/s", unit: "1/s",
				run: func(rc *runCtx) (repResult, error) { return runFanIn(rc, tr, n) }}
			if tr != "unix" {
				c.ref, c.refLabel = fmt.Sprintf("fanin/unix/%d-clients", n), "unix"
			}
			add(c)
		}
	}

	// Request/response through the stub layer, N concurrent callers (each on
	// a connection of its own) in one client process, against Unix sockets.
	for _, tr := range []string{"exipc-stub", "unix"} {
		for _, size := range []int{64, 4 << 10} {
			for _, n := range []int{1, 100} {
				c := &cell{name: fmt.Sprintf("rpc/%s/%s/%d-clients", tr, sizeLabel(size), n), workload: "rpc",
					transport: tr, size: size, param: n, kind: rate, metric: "calls/s", unit: "1/s",
					run: func(rc *runCtx) (repResult, error) { return runRPC(rc, tr, size, n) }}
				if tr != "unix" {
					c.ref, c.refLabel = fmt.Sprintf("rpc/unix/%s/%d-clients", sizeLabel(size), n), "unix"
				}
				add(c)
			}
		}
	}

	// POP3 RETR through the mail store example (pop3d -> store), the store
	// reached over exipc, paired with the same run over a Unix socket.
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		for _, n := range []int{1, 16} {
			add(&cell{name: fmt.Sprintf("pop3/exipc/%s/%d-clients", sizeLabel(size), n), workload: "pop3",
				transport: "exipc", size: size, param: n, kind: rate, metric: "RETR/s", unit: "1/s",
				ref: "pop3/unix", refLabel: "unix", pair: pairSelf,
				run: func(rc *runCtx) (repResult, error) { return runPOP3(rc, size, n) }})
		}
	}

	// Many channels between two processes.
	for _, tr := range []string{"exipc-go-go", "unix"} {
		for _, k := range []int{1, 10, 100, 1000} {
			c := &cell{name: fmt.Sprintf("chans/%s/%d", tr, k), workload: "chans", transport: tr,
				size: 64, param: k, kind: rate, metric: "round trips/s", unit: "1/s",
				run: func(rc *runCtx) (repResult, error) { return runChans(rc, tr, k) }}
			if tr != "unix" {
				c.ref, c.refLabel = fmt.Sprintf("chans/unix/%d", k), "unix"
			}
			add(c)
		}
	}

	// Micro: one call, in one process.
	// classic: Alloc, write, Send / TryRecv, Bytes, read, Free of 64 B, one
	// message per op (5 cgo calls); fused: the same with SendCopy and
	// TryRecvBytes (3); batch64: a 64 B message of a batch of 64 moved with
	// AllocBatch, SendBatch, RecvBatchBytes and FreeBatch (4 per batch).
	for _, item := range []string{"atomic", "cgo", "bytes", "allocfree", "sendrecv", "classic", "fused", "batch64"} {
		c := &cell{name: "micro/" + item, workload: "micro", transport: "go", kind: latency,
			metric: "time per call", unit: "ns",
			run: func(rc *runCtx) (repResult, error) { return runMicro(rc, item) }}
		if item != "cgo" && item != "atomic" {
			c.ref, c.refLabel = "micro/cgo", "cgo call"
		}
		add(c)
	}
	cells = append(cells, connCells()...) // bench/conn.go: gRPC and HTTP over exipc, unix, tcp
	heapmixCells(add)                     // heapmix.go
	detectCells(add)                      // detect.go: death notice and idle cost
	return cells
}

// ---- runners -------------------------------------------------------------

// pairedRef runs a short reference measurement for a cell's pair.
// pairSelf: the cell's run measures its reference itself, in the same run
// (it sets refVal).
const pairSelf = "self"

func pairedRef(rc *runCtx, pair string) (float64, error) {
	var r repResult
	var err error
	switch pair {
	case pairSelf:
		return 0, nil
	case "cacheline":
		r, err = runCRef(rc, "ref-cacheline", rc.n(20000))
	case "futex":
		r, err = runCRef(rc, "ref-futex", rc.n(300))
	case "ring":
		r, err = runBareRing(rc, rc.n(3000000))
	default:
		return 0, fmt.Errorf("no reference %q", pair)
	}
	return r.value, err
}

func runBareRing(rc *runCtx, n int) (repResult, error) {
	res, _, err := runGroup(proc{}, []proc{{argv: rc.cPeer("ref-ring", fmt.Sprint("n=", n), fmt.Sprint("warm=", n/10)), cpu: -1}}, rc.timeout)
	if err != nil {
		return repResult{}, err
	}
	return rateOf(res[0], -1), nil
}

func runCRef(rc *runCtx, role string, n int) (repResult, error) {
	out := rc.tmpFile(role + ".bin")
	defer os.Remove(out)
	_, _, err := runGroup(proc{}, []proc{{argv: rc.cPeer(role, fmt.Sprint("n=", n), fmt.Sprint("warm=", n/10), "out="+out), cpu: -1}}, rc.timeout)
	if err != nil {
		return repResult{}, err
	}
	s, err := readSamples(out)
	if err != nil {
		return repResult{}, err
	}
	return latencyOf(s, -1), nil
}

func runExPingPong(rc *runCtx, client, server, mode string, size int) (repResult, error) {
	return exPingPong(rc, client, server, mode, size, false)
}

func runExPingPongPinned(rc *runCtx, mode string) (repResult, error) {
	return exPingPong(rc, "go", "go", mode, 64, true)
}

func exPingPong(rc *runCtx, client, server, mode string, size int, pin bool, extra ...string) (repResult, error) {
	dom := newDomain()
	defer dropDomain(dom)
	n := rc.n(ppCount(size, false))
	if mode == "park" {
		n = rc.n(parkCount(size))
	}
	warm := max(n/10, 10)
	cout, sout := rc.tmpFile("pp-c.bin"), rc.tmpFile("pp-s.bin")
	defer os.Remove(cout)
	defer os.Remove(sout)
	common := []string{"dom=" + dom, "svc=pp", fmt.Sprint("size=", size), "mode=" + mode,
		fmt.Sprint("n=", n), fmt.Sprint("warm=", warm), fmt.Sprint("heap=", heapFor(size, false)), "chans=16"}
	common = append(common, extra...)
	srv := proc{argv: rc.exArgv(server, "pp-server", append(common, "out="+sout)...), cpu: cpuFor(1), pin: pin}
	cl := proc{argv: rc.exArgv(client, "pp-client", append(common, "out="+cout)...), cpu: cpuFor(0), pin: pin}
	res, sres, err := runGroup(srv, []proc{cl}, rc.timeout)
	if err != nil {
		return repResult{}, err
	}
	s, err := readSamples(cout)
	if err != nil {
		return repResult{}, err
	}
	if mode == "park" { // a round trip: the two one-way wake-ups added up
		back, err := readSamples(sout)
		if err != nil || len(back) != len(s) {
			return repResult{}, fmt.Errorf("server samples: %d, want %d (%v)", len(back), len(s), err)
		}
		for i := range s {
			s[i] += back[i]
		}
	}
	return latencyOf(s, allocsPer(n, res[0], sres)), nil
}

func runPeerPingPong(rc *runCtx, tr string, size int) (repResult, error) {
	n := rc.n(ppCount(size, tr != "go-chan"))
	warm := max(n/10, 10)
	out := rc.tmpFile("pp.bin")
	defer os.Remove(out)
	common := []string{fmt.Sprint("size=", size), fmt.Sprint("n=", n), fmt.Sprint("warm=", warm), "out=" + out}
	var res []*peerResult
	var err error
	switch tr {
	case "go-chan":
		res, _, err = runGroup(proc{}, []proc{{argv: rc.goPeer("chan-pp", common...), cpu: -1}}, rc.timeout)
	case "shmipc-go":
		sock := rc.tmpFile("shm.sock")
		defer os.Remove(sock)
		res, _, err = runGroup(
			proc{argv: rc.goPeer("shm-pp-server", "addr="+sock, fmt.Sprint("size=", size)), cpu: cpuFor(1)},
			[]proc{{argv: rc.goPeer("shm-pp-client", common...), cpu: cpuFor(0)}}, rc.timeout)
	default:
		res, err = runNetPair(rc, tr, "net-pp-server", "net-pp-client", []string{fmt.Sprint("size=", size)}, common)
	}
	if err != nil {
		return repResult{}, err
	}
	s, err := readSamples(out)
	if err != nil {
		return repResult{}, err
	}
	return latencyOf(s, allocsPer(n, res[0], nil)), nil
}

// runNetPair runs a server role and a client role over unix, tcp or pipe.
func runNetPair(rc *runCtx, tr, srole, crole string, sargs, cargs []string) ([]*peerResult, error) {
	sargs = append(sargs, "tr="+tr)
	cargs = append(cargs, "tr="+tr)
	srv := proc{argv: rc.goPeer(srole, sargs...), cpu: cpuFor(1)}
	cl := proc{argv: rc.goPeer(crole, cargs...), cpu: cpuFor(0)}
	switch tr {
	case "unix":
		sock := rc.tmpFile("net.sock")
		defer os.Remove(sock)
		srv.argv = append(srv.argv, "addr="+sock)
	case "pipe": // client writes a, server reads a; server writes b, client reads b
		ar, aw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		br, bw, err := os.Pipe()
		if err != nil {
			ar.Close()
			aw.Close()
			return nil, err
		}
		srv.files = []*os.File{ar, bw}
		cl.files = []*os.File{br, aw}
		defer func() {
			for _, f := range []*os.File{ar, aw, br, bw} {
				f.Close()
			}
		}()
		// Our copies must go once the children have theirs, or no end
		// ever sees EOF: close them as soon as both have started.
		res, _, err := runPipePair(rc, srv, cl, []*os.File{ar, aw, br, bw})
		return res, err
	}
	res, _, err := runGroup(srv, []proc{cl}, rc.timeout)
	return res, err
}

// runPipePair is runGroup for pipes: it closes the driver's ends of the
// pipes once both children hold theirs.
func runPipePair(rc *runCtx, srv, cl proc, ours []*os.File) ([]*peerResult, *peerResult, error) {
	deadline := time.After(rc.timeout)
	s, err := start(srv)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		select {
		case <-s.done:
		default:
			s.kill()
		}
	}()
	if _, err := s.waitReady(30 * time.Second); err != nil {
		return nil, nil, err
	}
	c, err := start(cl)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		select {
		case <-c.done:
		default:
			c.kill()
		}
	}()
	for _, f := range ours {
		f.Close()
	}
	res, err := c.wait(deadline)
	if err != nil {
		return nil, nil, err
	}
	sres, err := s.wait(deadline)
	if err != nil {
		return nil, nil, err
	}
	return []*peerResult{res}, sres, nil
}

func runStream(rc *runCtx, tr, mode string, size int) (repResult, error) {
	slow := !(tr == "go-chan" || len(tr) > 5 && tr[:5] == "exipc")
	n := rc.n(streamCount(size, slow))
	warm := max(n/20, 10)
	batch := 1
	if mode == "batch" {
		batch = 64
	}
	common := []string{fmt.Sprint("size=", size), fmt.Sprint("n=", n), fmt.Sprint("warm=", warm), fmt.Sprint("batch=", batch)}
	var recv *peerResult
	var send *peerResult
	switch tr {
	case "go-chan":
		res, _, err := runGroup(proc{}, []proc{{argv: rc.goPeer("chan-stream", common...), cpu: -1}}, rc.timeout)
		if err != nil {
			return repResult{}, err
		}
		recv = res[0]
	case "shmipc-go":
		sock := rc.tmpFile("shm.sock")
		defer os.Remove(sock)
		res, sres, err := runGroup(
			proc{argv: rc.goPeer("shm-stream-recv", append(common, "addr="+sock)...), cpu: cpuFor(1)},
			[]proc{{argv: rc.goPeer("shm-stream-send", common...), cpu: cpuFor(0)}}, rc.timeout)
		if err != nil {
			return repResult{}, err
		}
		recv, send = sres, res[0]
	case "unix", "tcp", "pipe":
		// The receiver is the server (it reports the rate); the sender the client.
		srv := proc{argv: rc.goPeer("net-stream-recv", append(common, "tr="+tr)...), cpu: cpuFor(1)}
		cl := proc{argv: rc.goPeer("net-stream-send", append(common, "tr="+tr)...), cpu: cpuFor(0)}
		var res []*peerResult
		var sres *peerResult
		var err error
		switch tr {
		case "pipe":
			ar, aw, err := os.Pipe()
			if err != nil {
				return repResult{}, err
			}
			defer ar.Close() // (closed already when both children started)
			defer aw.Close()
			srv.files = []*os.File{ar, ar} // the receiver reads fd 3 (fd 4 unused)
			cl.files = []*os.File{ar, aw}  // the sender writes fd 4 (fd 3 unused)
			res, sres, err = runPipePair(rc, srv, cl, []*os.File{ar, aw})
			if err != nil {
				return repResult{}, err
			}
			recv, send = sres, res[0]
		default:
			if tr == "unix" {
				sock := rc.tmpFile("net.sock")
				defer os.Remove(sock)
				srv.argv = append(srv.argv, "addr="+sock)
			}
			res, sres, err = runGroup(srv, []proc{cl}, rc.timeout)
			if err != nil {
				return repResult{}, err
			}
			recv, send = sres, res[0]
		}
	default: // exipc pairs, NAME or NAME-ringN
		base, ring, _ := strings.Cut(tr, "-ring")
		var pr = exPairs[0]
		for _, p := range exPairs {
			if p.name == base {
				pr = p
			}
		}
		dom := newDomain()
		defer dropDomain(dom)
		ex := append(common, "dom="+dom, "svc=stream", fmt.Sprint("heap=", heapFor(size, true)), "chans=16")
		if ring != "" {
			ex = append(ex, "ring="+ring)
		}
		res, sres, err := runGroup(
			proc{argv: rc.exArgv(pr.server, "stream-recv", ex...), cpu: cpuFor(1)},
			[]proc{{argv: rc.exArgv(pr.client, "stream-send", ex...), cpu: cpuFor(0)}}, rc.timeout)
		if err != nil {
			return repResult{}, err
		}
		recv, send = sres, res[0]
	}
	r := rateOf(recv, -1)
	r.allocs = allocsPer(n, recv, send)
	return r, nil
}

func runHandles(rc *runCtx, client, server string) (repResult, error) {
	dom := newDomain()
	defer dropDomain(dom)
	n := rc.n(3000000)
	a := []string{"dom=" + dom, "svc=handles", fmt.Sprint("n=", n), fmt.Sprint("warm=", n/10), "batch=64", "pool=256",
		"heap=4194304", "chans=16"}
	res, sres, err := runGroup(
		proc{argv: rc.exArgv(server, "handles-recv", a...), cpu: cpuFor(1)},
		[]proc{{argv: rc.exArgv(client, "handles-send", a...), cpu: cpuFor(0)}}, rc.timeout)
	if err != nil {
		return repResult{}, err
	}
	r := rateOf(sres, -1)
	r.allocs = allocsPer(n, res[0], sres)
	return r, nil
}

func runFanIn(rc *runCtx, tr string, clients int) (repResult, error) {
	per := rc.n(8000 / clients)
	if tr == "unix" {
		per = rc.n(4000 / clients)
	}
	var srv proc
	var cl []proc
	var outs []string
	args := []string{"size=64", fmt.Sprint("clients=", clients)}
	for i := range clients {
		out := rc.tmpFile(fmt.Sprintf("fanin-%d.bin", i))
		outs = append(outs, out)
		defer os.Remove(out)
		ca := []string{"size=64", fmt.Sprint("n=", per), fmt.Sprint("warm=", max(per/10, 10)), "out=" + out}
		if tr == "unix" {
			cl = append(cl, proc{argv: rc.goPeer("net-pp-client", append(ca, "tr=unix")...), cpu: -1})
		} else {
			cl = append(cl, proc{argv: rc.goPeer("ex-fanin-client", ca...), cpu: -1})
		}
	}
	if tr == "unix" {
		sock := rc.tmpFile("fanin.sock")
		defer os.Remove(sock)
		srv = proc{argv: rc.goPeer("net-fanin-server", append(args, "tr=unix", "addr="+sock)...), cpu: -1}
	} else {
		dom := newDomain()
		defer dropDomain(dom)
		ex := []string{"dom=" + dom, "svc=fanin", "heap=4194304", "chans=16"}
		srv = proc{argv: rc.goPeer("ex-fanin-server", append(args, ex...)...), cpu: -1}
		for i := range cl {
			cl[i].argv = append(cl[i].argv, ex...)
		}
	}
	res, _, err := runGroup(srv, cl, rc.timeout)
	if err != nil {
		return repResult{}, err
	}
	var all []uint32
	for _, out := range outs {
		s, err := readSamples(out)
		if err != nil {
			return repResult{}, err
		}
		all = append(all, s...)
	}
	r := aggregateRate(res)
	r.samples = all
	return r, nil
}

func runRPC(rc *runCtx, tr string, size, clients int) (repResult, error) {
	per := rc.n(max(20000/clients, 200))
	if tr == "unix" {
		per = rc.n(max(6000/clients, 100))
	}
	out := rc.tmpFile("rpc.bin")
	defer os.Remove(out)
	a := []string{fmt.Sprint("size=", size), fmt.Sprint("clients=", clients), fmt.Sprint("n=", per),
		fmt.Sprint("warm=", max(per/10, 10)), "out=" + out}
	var srv, cl proc
	if tr == "unix" {
		sock := rc.tmpFile("rpc.sock")
		defer os.Remove(sock)
		srv = proc{argv: rc.goPeer("net-fanin-server", append(a, "tr=unix", "addr="+sock)...), cpu: -1}
		cl = proc{argv: rc.goPeer("rpc-client", append(a, "tr=unix", "addr="+sock)...), cpu: -1}
	} else {
		dom := newDomain()
		defer dropDomain(dom)
		ex := append(a, "dom="+dom, "svc=rpc", "heap=16777216", fmt.Sprint("chans=", clients+16))
		srv = proc{argv: rc.goPeer("ex-rpc-server", ex...), cpu: -1}
		cl = proc{argv: rc.goPeer("rpc-client", append(ex, "tr=exipc")...), cpu: -1}
	}
	res, _, err := runGroup(srv, []proc{cl}, rc.timeout)
	if err != nil {
		return repResult{}, err
	}
	r := aggregateRate(res)
	if r.samples, err = readSamples(out); err != nil {
		return repResult{}, err
	}
	return r, nil
}

// runPOP3 runs pop3bench once for one size and client count: it measures
// exipc and the Unix socket one after the other; the Unix figure is the
// paired reference.
func runPOP3(rc *runCtx, size, clients int) (repResult, error) {
	dur := time.Duration(float64(time.Second) * rc.scale)
	dur = max(dur, 200*time.Millisecond)
	cmd := exec.Command(filepath.Join(rc.mailstore, "pop3bench"),
		"-store", filepath.Join(rc.mailstore, "store"), "-pop3d", filepath.Join(rc.mailstore, "pop3d"),
		"-sizes", fmt.Sprint(size), "-conns", fmt.Sprint(clients), "-reps", "1", "-time", dur.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return repResult{}, fmt.Errorf("pop3bench: %v: %s", err, lastLines(string(out), 5))
	}
	// Rows: size, via, RETR/s, MB/s, p50 µs, p99 µs, cpu µs/RETR[, ratio].
	var ex, ux, exCPU, uxCPU float64
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			continue
		}
		cpu, _ := strconv.ParseFloat(f[6], 64)
		switch f[1] {
		case "exipc":
			ex, exCPU = v, cpu*1e3
		case "unix":
			ux, uxCPU = v, cpu*1e3
		}
	}
	if ex == 0 || ux == 0 {
		return repResult{}, fmt.Errorf("pop3bench printed no rates: %s", lastLines(string(out), 5))
	}
	return repResult{value: ex, refVal: ux, allocs: -1, cpu: exCPU, refCPU: uxCPU}, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(len(l)-n, 0):], " | ")
}

func runChans(rc *runCtx, tr string, k int) (repResult, error) {
	rounds := rc.n(max(40000/k, 20))
	if tr == "unix" {
		rounds = rc.n(max(6000/k, 10))
	}
	a := []string{"size=64", fmt.Sprint("k=", k), fmt.Sprint("clients=", k), fmt.Sprint("rounds=", rounds), fmt.Sprint("warm=", max(rounds/10, 2))}
	var res []*peerResult
	var err error
	if tr == "unix" {
		sock := rc.tmpFile("chans.sock")
		defer os.Remove(sock)
		res, _, err = runGroup(
			proc{argv: rc.goPeer("net-fanin-server", append(a, "tr=unix", "addr="+sock)...), cpu: cpuFor(1)},
			[]proc{{argv: rc.goPeer("net-chans-client", append(a, "tr=unix")...), cpu: cpuFor(0)}}, rc.timeout)
	} else {
		dom := newDomain()
		defer dropDomain(dom)
		ex := append(a, "dom="+dom, "svc=chans", "heap=4194304", fmt.Sprint("chans=", k+16))
		// Both ends only poll (TryRecv), never wait: pinning them changes
		// nothing in exipc's waiting and keeps the two spinners apart.
		res, _, err = runGroup(
			proc{argv: rc.goPeer("ex-chans-server", ex...), cpu: cpuFor(1), pin: true},
			[]proc{{argv: rc.goPeer("ex-chans-client", ex...), cpu: cpuFor(0), pin: true}}, rc.timeout)
	}
	if err != nil {
		return repResult{}, err
	}
	return rateOf(res[0], -1), nil
}

func runMicro(rc *runCtx, item string) (repResult, error) {
	dom := newDomain()
	defer dropDomain(dom)
	res, _, err := runGroup(proc{}, []proc{{argv: rc.goPeer("micro", "item="+item, fmt.Sprint("n=", rc.n(1000000)),
		"dom="+dom, "svc=micro", "heap=1048576", "chans=16"), cpu: -1}}, rc.timeout)
	if err != nil {
		return repResult{}, err
	}
	r := res[0]
	return repResult{value: float64(r.end-r.start) / float64(r.count), allocs: float64(r.allocs) / float64(r.count)}, nil
}

// ---- results of one run ----------------------------------------------------

func latencyOf(s []uint32, allocs float64) repResult {
	c := append([]uint32(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	med := 0.0
	if len(c) > 0 {
		med = float64(c[len(c)/2])
	}
	return repResult{value: med, samples: s, allocs: allocs}
}

func rateOf(r *peerResult, allocs float64) repResult {
	el := r.end - r.start
	if el <= 0 {
		return repResult{allocs: allocs}
	}
	return repResult{value: float64(r.count) / (float64(el) / 1e9), allocs: allocs}
}

// aggregateRate: every client's operations over the span from the first
// start to the last end.
func aggregateRate(res []*peerResult) repResult {
	var first, last int64
	total := 0
	for i, r := range res {
		if i == 0 || r.start < first {
			first = r.start
		}
		if r.end > last {
			last = r.end
		}
		total += r.count
	}
	if last <= first {
		return repResult{allocs: -1}
	}
	return repResult{value: float64(total) / (float64(last-first) / 1e9), allocs: -1}
}

// allocsPer: heap allocations per operation over the Go peers that counted
// them (the larger side), or -1 when none did.
func allocsPer(n int, rs ...*peerResult) float64 {
	best := -1.0
	for _, r := range rs {
		if r != nil && r.allocs >= 0 && n > 0 {
			best = max(best, float64(r.allocs)/float64(n))
		}
	}
	return best
}
