package main

// gRPC and net/http over exipc (package conn), a Unix socket and TCP, in the
// same run: unary calls of 64 B and 4 KiB with 1 caller (latency) and 16
// callers (throughput), a bidirectional stream (throughput), and HTTP
// requests. The server is one process, the client another; the client's
// callers share one gRPC connection (HTTP: one connection per caller).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/exipc/exipc/conn"

	grpcecho "github.com/exipc/exipc/examples/grpc/echo"
)

var connTransports = []string{"exipc", "unix", "tcp"}

func init() {
	peerRoles["conn-server"] = connServer
	peerRoles["conn-client"] = connClient
}

// connCells are the workloads of this file (registered by buildCells).
func connCells() []*cell {
	var cells []*cell
	for _, size := range []int{64, 4 << 10} {
		for _, callers := range []int{1, 16} {
			for _, tr := range connTransports {
				c := &cell{name: fmt.Sprintf("grpc-unary/%s/%s/%d-callers", tr, sizeLabel(size), callers),
					workload: "grpc-unary", transport: tr, size: size, param: callers,
					run: func(rc *runCtx) (repResult, error) { return runConn(rc, "grpc", "unary", tr, size, callers) }}
				if callers == 1 {
					c.kind, c.metric, c.unit = latency, "round trip", "ns"
				} else {
					c.kind, c.metric, c.unit = rate, "calls/s", "1/s"
				}
				if tr != "unix" {
					c.ref, c.refLabel = fmt.Sprintf("grpc-unary/unix/%s/%d-callers", sizeLabel(size), callers), "unix"
				}
				cells = append(cells, c)
			}
		}
	}
	for _, tr := range connTransports {
		c := &cell{name: fmt.Sprintf("grpc-stream/%s/4KiB", tr), workload: "grpc-stream", transport: tr, size: 4 << 10,
			kind: rate, metric: "msgs/s", unit: "1/s",
			run: func(rc *runCtx) (repResult, error) { return runConn(rc, "grpc", "stream", tr, 4<<10, 1) }}
		if tr != "unix" {
			c.ref, c.refLabel = "grpc-stream/unix/4KiB", "unix"
		}
		cells = append(cells, c)
	}
	for _, callers := range []int{1, 16} {
		for _, tr := range connTransports {
			c := &cell{name: fmt.Sprintf("http/%s/%d-callers", tr, callers), workload: "http", transport: tr,
				size: 64, param: callers,
				run: func(rc *runCtx) (repResult, error) { return runConn(rc, "http", "get", tr, 64, callers) }}
			if callers == 1 {
				c.kind, c.metric, c.unit = latency, "round trip", "ns"
			} else {
				c.kind, c.metric, c.unit = rate, "req/s", "1/s"
			}
			if tr != "unix" {
				c.ref, c.refLabel = fmt.Sprintf("http/unix/%d-callers", callers), "unix"
			}
			cells = append(cells, c)
		}
	}
	return cells
}

// connGoals: the goals for gRPC and HTTP over exipc against the
// Unix socket, measured in the same run.
func connGoals(get func(name, metric string) *Result) []Goal {
	var goals []Goal
	nan := math.NaN()
	ratio := func(goal, ex, ux string, target float64, atMost bool) {
		g := Goal{Goal: goal, Value: nan, Target: target, Unit: "x"}
		a, b := get(ex, ""), get(ux, "")
		if a != nil && b != nil && b.Median > 0 {
			g.Value = a.Median / b.Median
			if atMost {
				g.Met = g.Value <= target
			} else {
				g.Met = g.Value >= target
			}
			g.Detail = fmt.Sprintf("%.2f× (%s: %s, %s: %s)", g.Value, ex, fmtValue(a.Median, a.Unit), ux, fmtValue(b.Median, b.Unit))
			if a.CPUPerOp != nil && b.CPUPerOp != nil {
				// CPU time of both processes per call: where a CPU-bound
				// run's rate comes from.
				g.Detail += fmt.Sprintf("; CPU per call, both processes: %s vs %s", fmtValue(*a.CPUPerOp, "ns"), fmtValue(*b.CPUPerOp, "ns"))
			}
		}
		goals = append(goals, g)
	}
	for _, s := range []string{"64B", "4KiB"} {
		ratio("gRPC unary "+s+", 16 callers: exipc >= 1.3x the Unix socket's calls/s",
			"grpc-unary/exipc/"+s+"/16-callers", "grpc-unary/unix/"+s+"/16-callers", 1.3, false)
		ratio("gRPC unary "+s+", 1 caller: exipc p50 <= 0.8x the Unix socket's",
			"grpc-unary/exipc/"+s+"/1-callers", "grpc-unary/unix/"+s+"/1-callers", 0.8, true)
	}
	ratio("gRPC stream 4 KiB: exipc >= 1.3x the Unix socket's msgs/s",
		"grpc-stream/exipc/4KiB", "grpc-stream/unix/4KiB", 1.3, false)
	ratio("HTTP, 16 callers: exipc >= 1.3x the Unix socket's req/s", "http/exipc/16-callers", "http/unix/16-callers", 1.3, false)
	ratio("HTTP, 1 caller: exipc p50 <= 0.8x the Unix socket's", "http/exipc/1-callers", "http/unix/1-callers", 0.8, true)
	return goals
}

func runConn(rc *runCtx, proto, mode, tr string, size, callers int) (repResult, error) {
	n := rc.n(4000)
	switch {
	case mode == "stream":
		n = rc.n(100000)
	case callers > 1:
		n = rc.n(12000) // a rate: long enough that a scheduling hiccup is a small part
	}
	per := max(n/callers, 20)
	out := rc.tmpFile("conn.bin")
	defer os.Remove(out)
	sargs := []string{"proto=" + proto, "tr=" + tr}
	switch tr {
	case "unix":
		sock := rc.tmpFile("conn.sock")
		defer os.Remove(sock)
		sargs = append(sargs, "addr="+sock)
	case "exipc":
		dom := newDomain()
		defer dropDomain(dom)
		sargs = append(sargs, "addr="+dom+"/svc")
	}
	cargs := []string{"proto=" + proto, "tr=" + tr, "mode=" + mode, fmt.Sprint("size=", size),
		fmt.Sprint("callers=", callers), fmt.Sprint("n=", per), fmt.Sprint("warm=", max(per/10, 10)), "out=" + out}
	res, _, err := runGroup(proc{argv: rc.goPeer("conn-server", sargs...), cpu: -1},
		[]proc{{argv: rc.goPeer("conn-client", cargs...), cpu: -1, srvPid: true}}, rc.timeout)
	if err != nil {
		return repResult{}, err
	}
	var r repResult
	if callers == 1 && mode != "stream" {
		s, err := readSamples(out)
		if err != nil {
			return repResult{}, err
		}
		r = latencyOf(s, -1)
	} else {
		r = rateOf(res[0], -1)
	}
	if res[0].cpuNs > 0 {
		r.cpu = float64(res[0].cpuNs) / float64(per*callers)
	}
	return r, nil
}

// countingListener tells when every connection it gave has been closed by
// the peer (Read saw EOF or an error) after at least one came.
type countingListener struct {
	net.Listener
	live atomic.Int64
	seen atomic.Bool
	done chan struct{}
	once sync.Once
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.live.Add(1)
	l.seen.Store(true)
	return &countedConn{Conn: c, l: l}, nil
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if ne, ok := err.(net.Error); err != nil && !(ok && ne.Timeout()) { // net/http aborts reads with a deadline
		c.once.Do(func() {
			if c.l.live.Add(-1) == 0 {
				c.l.once.Do(func() { close(c.l.done) })
			}
		})
	}
	return n, err
}

// connServer serves the echo gRPC service or an HTTP echo handler until
// every client connection has gone.
func connServer(a args) {
	spinFromEnv()
	tr, addr := a.str("tr", "\x00"), a.str("addr", "")
	if tr == "tcp" {
		addr = "127.0.0.1:0"
	}
	if tr == "unix" {
		os.Remove(addr)
	}
	ln, release, err := grpcecho.Listen(tr, addr)
	if err != nil {
		fatalf("listen: %v", err)
	}
	defer release()
	l := &countingListener{Listener: ln, done: make(chan struct{})}
	if tr == "tcp" {
		addr = ln.Addr().String()
	}
	fmt.Printf("ready addr=%s\n", addr)
	switch a.str("proto", "grpc") {
	case "grpc":
		s := grpcecho.NewServer()
		go func() { <-l.done; s.Stop() }()
		s.Serve(l)
	case "http":
		s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Write(grpcecho.Reply(b))
		})}
		go func() { <-l.done; s.Close() }()
		s.Serve(l)
	}
	report(0, 1, 0, -1)
}

// connClient makes n calls (after warm ones) from each of callers
// goroutines and reports them all; with one caller it writes each call's
// time to out.
func connClient(a args) {
	spinFromEnv()
	tr, addr, mode := a.str("tr", "\x00"), a.str("addr", "\x00"), a.str("mode", "unary")
	size, callers, n, warm := a.int("size", 64), a.int("callers", 1), a.int("n", 1000), a.int("warm", 100)
	// The CPU time of both processes over the measured part: this one's
	// and the server's (srvpid=, from the driver).
	pids := []int{os.Getpid(), a.int("srvpid", 0)}
	ctx := context.Background()
	var call func(g int, req, reply *grpcecho.Msg) error
	var closeFn func()
	switch a.str("proto", "grpc") {
	case "grpc":
		cc, c, err := grpcecho.NewClient(tr, addr)
		if err != nil {
			fatalf("client: %v", err)
		}
		closeFn = c
		if mode == "stream" {
			streamClient(ctx, cc, size, n, warm, pids)
			closeFn()
			return
		}
		call = func(_ int, req, reply *grpcecho.Msg) error { return grpcecho.Call(ctx, cc, req, reply) }
	case "http":
		dial, release, err := grpcecho.Dialer(tr, addr)
		if err != nil {
			fatalf("client: %v", err)
		}
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx, "")
		}, MaxIdleConnsPerHost: callers}}
		closeFn = func() { hc.CloseIdleConnections(); release() }
		call = func(_ int, req, reply *grpcecho.Msg) error {
			resp, err := hc.Post("http://bench/echo", "application/octet-stream", bytes.NewReader(req.B))
			if err != nil {
				return err
			}
			reply.B, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			return err
		}
	}
	samples := make([]uint32, n)
	var wg sync.WaitGroup
	var start, end atomic.Int64
	var ready sync.WaitGroup
	ready.Add(callers)
	gate := make(chan struct{})
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			req, reply := &grpcecho.Msg{B: makeSrc(size)}, &grpcecho.Msg{}
			one := func(i int) {
				put64(req.B, uint64(g)<<32|uint64(i))
				if err := call(g, req, reply); err != nil {
					fatalf("call: %v", err)
				}
				if !grpcecho.Check(req.B, reply.B) {
					fatalf("wrong reply")
				}
			}
			for i := 0; i < warm; i++ {
				one(i)
			}
			ready.Done()
			<-gate
			t := nanotime()
			for i := 0; i < n; i++ {
				one(i)
				if g == 0 && callers == 1 {
					t2 := nanotime()
					samples[i] = clamp32(t2 - t)
					t = t2
				}
			}
		}(g)
	}
	ready.Wait()
	cpu0 := cpuOf(pids)
	start.Store(nanotime())
	close(gate)
	wg.Wait()
	end.Store(nanotime())
	cpu1 := cpuOf(pids)
	if callers == 1 {
		writeSamples(a.str("out", ""), samples)
	}
	closeFn()
	reportCPU(start.Load(), end.Load(), n*callers, -1, cpu1-cpu0)
}

// streamClient sends n messages (after warm) on one Chat stream while it
// reads the replies, and reports the messages answered per second.
func streamClient(ctx context.Context, cc *grpc.ClientConn, size, n, warm int, pids []int) {
	s, err := grpcecho.Chat(ctx, cc)
	if err != nil {
		fatalf("chat: %v", err)
	}
	total := n + warm
	errc := make(chan error, 1)
	go func() {
		src := makeSrc(size)
		for i := 0; i < total; i++ {
			b := append([]byte(nil), src...)
			put64(b, uint64(i))
			if err := s.SendMsg(&grpcecho.Msg{B: b}); err != nil {
				errc <- err
				return
			}
		}
		errc <- s.CloseSend()
	}()
	var m grpcecho.Msg
	var start, cpu0 int64
	exp := makeSrc(size)
	for i := 0; i < total; i++ {
		if i == warm {
			cpu0 = cpuOf(pids)
			start = nanotime()
		}
		if err := s.RecvMsg(&m); err != nil {
			fatalf("stream recv %d: %v", i, err)
		}
		copy(exp, makeSrcCached(size))
		put64(exp, uint64(i))
		if !grpcecho.Check(exp, m.B) {
			fatalf("stream reply %d wrong", i)
		}
	}
	end := nanotime()
	cpu1 := cpuOf(pids)
	if err := <-errc; err != nil {
		fatalf("stream send: %v", err)
	}
	reportCPU(start, end, n, -1, cpu1-cpu0)
}

var srcCache = map[int][]byte{}

func makeSrcCached(size int) []byte {
	if b, ok := srcCache[size]; ok {
		return b
	}
	b := makeSrc(size)
	srcCache[size] = b
	return b
}

// spinFromEnv sets conn.ReadSpin from EXIPCBENCH_READSPIN (a duration), to
// measure its effect.
func spinFromEnv() {
	if v := os.Getenv("EXIPCBENCH_READSPIN"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			conn.ReadSpin = d
		}
	}
}
