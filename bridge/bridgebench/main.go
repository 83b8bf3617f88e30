// Command bridgebench measures exipc-bridge in one run against plain nats.go
// and adds its rows and goals to the report of `make bench`
// (bench/results/latest.json and latest.md).
//
//	bridgebench -bridge build/exipc-bridge [-out DIR] [-filter REGEXP] [-reps 5] [-scale 1]
//
// It starts a nats-server (itself, re-executed, embedding nats-server/v2) on
// 127.0.0.1, two domains standing in for two hosts and a bridge on each, a
// stub server in domain B and a plain nats.go responder (each a process of its
// own, itself re-executed); the stub client (domain A) and the nats.go
// requester run here:
//
//   - bridge-rpc/latency: one 64 B ECHO call at a time, through the bridges
//     and as a nats.go Request/Respond, paired repetition by repetition;
//   - bridge-rpc/throughput: 16 calls in flight from 16 goroutines;
//   - both also for the same stub call within one domain (exipc-local, no
//     bridge): the bridged call pays that twice, plus the NATS round trip;
//   - both also through the library form (exipc-bridge-lib): two more
//     domains, C and D, where the bridges are package natsbridge inside the
//     client's process (this one, importing) and inside the stub server's
//     process (exporting): no bridge process, two processes and nats-server
//     as for plain nats.go;
//   - bridge-stream: 64 KiB messages on a raw channel, MB/s.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/bridge/natsbridge"
	"github.com/exipc/exipc/stub"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

const (
	opEcho   = 1
	rpcBody  = 64
	inFlight = 16
	chunk    = 64 << 10
)

// Result is one row, in the shape of bench/report.go's Result.
type Result struct {
	Name         string    `json:"name"`
	Workload     string    `json:"workload"`
	Transport    string    `json:"transport"`
	PayloadBytes int       `json:"payload_bytes"`
	Param        int       `json:"param,omitempty"`
	Metric       string    `json:"metric"`
	Unit         string    `json:"unit"`
	Min          float64   `json:"min"`
	Median       float64   `json:"median"`
	Max          float64   `json:"max"`
	Reps         []float64 `json:"reps"`
	P50          *float64  `json:"p50,omitempty"`
	P99          *float64  `json:"p99,omitempty"`
	Samples      int64     `json:"samples,omitempty"`
	Ratio        *Ratio    `json:"ratio,omitempty"`
	RefReps      []float64 `json:"ref_reps,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// Ratio is bench/report.go's Ratio: time per operation against the
// reference, below 1 faster.
type Ratio struct {
	To     string  `json:"to"`
	Label  string  `json:"label"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Goal is bench/report.go's Goal.
type Goal struct {
	Goal   string  `json:"goal"`
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
	Unit   string  `json:"unit"`
	Met    bool    `json:"met"`
	Detail string  `json:"detail"`
}

func main() {
	role := flag.String("role", "", "internal: nats (run the nats-server)")
	port := flag.Int("port", 0, "internal: the nats-server's port")
	bridge := flag.String("bridge", "build/exipc-bridge", "the exipc-bridge binary")
	out := flag.String("out", "bench/results", "directory of latest.json / latest.md to add to")
	filter := flag.String("filter", "", "run only if bridge-rpc or bridge-stream matches this regexp")
	reps := flag.Int("reps", 5, "repetitions")
	scale := flag.Float64("scale", 1, "scales the duration of each repetition")
	flag.StringVar(&kinds, "kinds", "", "run only these bridge-rpc transports, comma-separated (for profiling)")
	flag.StringVar(&only, "only", "", "run only the latency or the throughput part of bridge-rpc (for profiling)")
	flag.Parse()
	switch *role {
	case "nats":
		os.Exit(natsMain(*port))
	case "responder":
		os.Exit(responderMain(flag.Arg(0)))
	case "stubserver":
		os.Exit(stubServerMain(flag.Arg(0), ""))
	case "stubserverlib":
		os.Exit(stubServerMain(flag.Arg(0), flag.Arg(1)))
	}
	wantRPC, wantStream := true, true
	if *filter != "" {
		re, err := regexp.Compile(*filter)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bridgebench: -filter: %v\n", err)
			os.Exit(2)
		}
		wantRPC = re.MatchString("bridge-rpc/latency") || re.MatchString("bridge-rpc/throughput")
		wantStream = re.MatchString("bridge-stream/exipc-bridge/64KiB")
	}
	if !wantRPC && !wantStream {
		return
	}
	r, err := newRig(*bridge)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bridgebench: %v\n", err)
		os.Exit(1)
	}
	var results []*Result
	var goals []Goal
	if wantRPC {
		rs, gs := r.rpc(*reps, *scale)
		results, goals = append(results, rs...), append(goals, gs...)
	}
	if wantStream {
		results = append(results, r.stream(*reps, *scale))
	}
	r.close()
	if err := report(*out, results, goals); err != nil {
		fmt.Fprintf(os.Stderr, "bridgebench: %v\n", err)
		os.Exit(1)
	}
}

func natsMain(port int) int {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		return 1
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Shutdown()
	return 0
}

// waitSignal prints "ready" and waits for SIGTERM or SIGINT.
func waitSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("ready")
	<-sig
}

// responderMain is the plain nats.go server: a process of its own, as the
// stub server is.
func responderMain(url string) int {
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	if _, err := nc.Subscribe("plain.echo", func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		return 1
	}
	if err := nc.Flush(); err != nil {
		return 1
	}
	waitSignal()
	return 0
}

// stubServerMain serves ECHO on benchrpc in the domain, in a process of its
// own; with a NATS URL, on benchrpclib, exported by an in-process bridge
// (package natsbridge, the library form).
func stubServerMain(domain, url string) int {
	d, err := exipc.Open(domain, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer d.Close()
	svc := "benchrpc"
	if url != "" {
		svc = "benchrpclib"
	}
	l, err := d.Listen(svc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s := stub.NewServer(d)
	s.Handle(opEcho, func(ctx context.Context, req *stub.Request, w *stub.Writer) error {
		b, err := w.Body(len(req.Body))
		if err != nil {
			return err
		}
		copy(b, req.Body)
		return nil
	})
	var br *natsbridge.Bridge
	if url != "" {
		if br, err = natsbridge.Start(libConfig(d, url, []string{svc}, nil)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	waitSignal()
	if br != nil {
		br.Close()
	}
	cancel()
	<-done
	l.Close()
	return 0
}

// libConfig is the library form's bridge on d's domain, as docs/bridge.md
// advises: a handle of its own (WaitAdaptive). BRIDGEBENCH_LIB=shared runs
// it on d itself, BRIDGEBENCH_LIB=park on its own handle with WaitPark (to
// compare).
func libConfig(d *exipc.Domain, url string, exports, imports []string) natsbridge.Config {
	cfg := natsbridge.Config{Domain: d.Name(), URL: url, Exports: exports, Imports: imports}
	switch os.Getenv("BRIDGEBENCH_LIB") {
	case "shared":
		cfg.Handle = d
	case "park":
		cfg.WaitPolicy = exipc.WaitPark
	}
	return cfg
}

type rig struct {
	procs        []*exec.Cmd
	url          string
	a, b         *exipc.Domain
	c            *exipc.Domain      // the library form's client side (D is the server's process's)
	libBridge    *natsbridge.Bridge // in this process, on c, importing benchrpclib
	names        []string
	client       *stub.Client
	local        *stub.Client // in domain B, no bridge: what exipc alone costs
	lib          *stub.Client // in domain C, through natsbridge here and in the server's process
	cancel       context.CancelFunc
	served       sync.WaitGroup
	req          *nats.Conn
	streamServer *exipc.Listener
}

func startReady(argv ...string) (*exec.Cmd, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s said %q", filepath.Base(argv[0]), line)
	}
	return cmd, nil
}

func newRig(bridge string) (_ *rig, err error) {
	r := &rig{}
	defer func() {
		if err != nil {
			r.close() // what was set up so far (r, not the nil returned)
		}
	}()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	exe, _ := os.Executable()
	p, err := startReady(exe, "-role", "nats", "-port", strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	r.procs = append(r.procs, p)
	r.url = "nats://127.0.0.1:" + strconv.Itoa(port)
	for _, tag := range []string{"a", "b", "c", "d"} {
		name := fmt.Sprintf("bridgebench-%s-%d", tag, os.Getpid())
		r.names = append(r.names, name)
		if tag == "d" {
			continue // the library-form server's process opens it
		}
		d, err := exipc.Open(name, nil)
		if err != nil {
			return nil, err
		}
		switch tag {
		case "a":
			r.a = d
		case "b":
			r.b = d
		case "c":
			r.c = d
		}
	}
	// Domain B: the stub server (a process of its own) and the stream sink
	// (here); its bridge exports them.
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	if p, err = startReady(exe, "-role", "stubserver", r.names[1]); err != nil {
		return nil, err
	}
	r.procs = append(r.procs, p)
	if r.streamServer, err = r.b.Listen("benchstream"); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{bridge, "-domain", r.names[1], "-nats", r.url, "-export", "benchrpc", "-export", "benchstream"},
		{bridge, "-domain", r.names[0], "-nats", r.url, "-import", "benchrpc", "-import", "benchstream"},
	} {
		p, err := startReady(args...)
		if err != nil {
			return nil, err
		}
		r.procs = append(r.procs, p)
	}
	// The library form: domain D's stub server exports benchrpclib itself,
	// and this process imports it into domain C.
	if p, err = startReady(exe, "-role", "stubserverlib", r.names[3], r.url); err != nil {
		return nil, err
	}
	r.procs = append(r.procs, p)
	if r.libBridge, err = natsbridge.Start(libConfig(r.c, r.url, nil, []string{"benchrpclib"})); err != nil {
		return nil, err
	}
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	if r.lib, err = stub.Dial(dctx, r.c, "benchrpclib"); err != nil {
		return nil, err
	}
	if r.client, err = stub.Dial(dctx, r.a, "benchrpc"); err != nil {
		return nil, err
	}
	if r.local, err = stub.Dial(dctx, r.b, "benchrpc"); err != nil {
		return nil, err
	}
	// Plain nats.go: the requester here, the responder in a process of its own.
	if r.req, err = nats.Connect(r.url); err != nil {
		return nil, err
	}
	if p, err = startReady(exe, "-role", "responder", r.url); err != nil {
		return nil, err
	}
	r.procs = append(r.procs, p)
	return r, nil
}

func (r *rig) close() {
	for _, c := range []*stub.Client{r.client, r.local, r.lib} {
		if c != nil {
			c.Close()
		}
	}
	if r.libBridge != nil {
		r.libBridge.Close()
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.served.Wait()
	if r.streamServer != nil {
		r.streamServer.Close()
	}
	if r.req != nil {
		r.req.Close()
	}
	for i := len(r.procs) - 1; i >= 0; i-- {
		r.procs[i].Process.Signal(syscall.SIGTERM)
		r.procs[i].Wait()
	}
	for _, d := range []*exipc.Domain{r.a, r.b, r.c} {
		if d != nil {
			d.Close()
		}
	}
	for _, n := range r.names {
		exipc.Unlink(n)
	}
}

// call is one request/reply of either kind.
type call func(body []byte) error

func (r *rig) bridgeCall(body []byte) error { return stubCall(r.client, body) }
func (r *rig) localCall(body []byte) error  { return stubCall(r.local, body) }
func (r *rig) libCall(body []byte) error    { return stubCall(r.lib, body) }

func stubCall(c *stub.Client, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := c.Call(ctx, opEcho, body)
	if err != nil {
		return err
	}
	if len(rep.Body) != len(body) {
		err = errors.New("short reply")
	}
	rep.Release()
	return err
}

func (r *rig) plainCall(body []byte) error {
	m, err := r.req.Request("plain.echo", body, 10*time.Second)
	if err == nil && len(m.Data) != len(body) {
		err = errors.New("short reply")
	}
	return err
}

// latency makes n calls one at a time and returns their times (ns), sorted.
func latency(f call, n int) ([]float64, error) {
	body := make([]byte, rpcBody)
	for i := 0; i < n/10; i++ { // warm up
		if err := f(body); err != nil {
			return nil, err
		}
	}
	ts := make([]float64, n)
	for i := range ts {
		t0 := time.Now()
		if err := f(body); err != nil {
			return nil, err
		}
		ts[i] = float64(time.Since(t0).Nanoseconds())
	}
	sort.Float64s(ts)
	return ts, nil
}

// throughput runs inFlight goroutines calling for d and returns calls/s.
func throughput(f call, d time.Duration) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	t0 := time.Now()
	for g := 0; g < inFlight; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := make([]byte, rpcBody)
			for time.Now().Before(stop) {
				if err := f(body); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		return 0, e
	}
	return float64(n.Load()) / time.Since(t0).Seconds(), nil
}

func pct(sorted []float64, p float64) float64 {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func summary(vals []float64) (lo, med, hi float64) {
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	return s[0], s[len(s)/2], s[len(s)-1]
}

func ptr(v float64) *float64 { return &v }

var only, kinds string

func (r *rig) rpc(reps int, scale float64) ([]*Result, []Goal) {
	n := max(200, int(3000*scale))
	dur := time.Duration(float64(time.Second) * scale)
	lat := map[string][]float64{}
	all := map[string][]float64{}
	tput := map[string][]float64{}
	var errs []string
	for rep := 0; rep < reps; rep++ {
		for _, k := range []string{"nats-plain", "exipc-bridge", "exipc-bridge-lib", "exipc-local"} { // the reference first
			if kinds != "" && !strings.Contains(","+kinds+",", ","+k+",") {
				continue
			}
			f := map[string]call{"nats-plain": r.plainCall, "exipc-bridge": r.bridgeCall, "exipc-bridge-lib": r.libCall,
				"exipc-local": r.localCall}[k]
			if only != "throughput" {
				ts, err := latency(f, n)
				if err != nil {
					errs = append(errs, k+": "+err.Error())
					continue
				}
				lat[k] = append(lat[k], pct(ts, 0.5))
				all[k] = append(all[k], ts...)
			}
			if only == "latency" {
				continue
			}
			cps, err := throughput(f, dur)
			if err != nil {
				errs = append(errs, k+": "+err.Error())
				continue
			}
			tput[k] = append(tput[k], cps)
		}
	}
	var out []*Result
	var goals []Goal
	mk := func(k, metric, unit string, vals []float64, samples []float64) *Result {
		res := &Result{Name: "bridge-rpc/" + metric + "/" + k + "/64B", Workload: "bridge-rpc/" + metric,
			Transport: k, PayloadBytes: rpcBody, Metric: map[string]string{"latency": "round trip", "throughput": "calls"}[metric],
			Unit: unit, Reps: vals}
		if metric == "throughput" {
			res.Param = inFlight
		}
		if len(vals) > 0 {
			res.Min, res.Median, res.Max = summary(vals)
		} else {
			res.Error = strings.Join(errs, "; ")
		}
		if len(samples) > 0 {
			sort.Float64s(samples)
			res.P50, res.P99, res.Samples = ptr(pct(samples, 0.5)), ptr(pct(samples, 0.99)), int64(len(samples))
		}
		return res
	}
	ratio := func(res *Result, ref []float64, perOp func(float64) float64, label string) *Ratio {
		if len(ref) != len(res.Reps) || len(ref) == 0 {
			return nil
		}
		rs := make([]float64, len(ref))
		for i := range ref {
			rs[i] = perOp(res.Reps[i]) / perOp(ref[i])
		}
		lo, med, hi := summary(rs)
		res.RefReps = ref
		res.Ratio = &Ratio{To: "bridge-rpc/" + res.Workload[len("bridge-rpc/"):] + "/nats-plain/64B", Label: label,
			Median: med, Min: lo, Max: hi}
		return res.Ratio
	}
	id := func(v float64) float64 { return v }
	inv := func(v float64) float64 { return 1 / v }
	refL := mk("nats-plain", "latency", "ns", lat["nats-plain"], all["nats-plain"])
	brL := mk("exipc-bridge", "latency", "ns", lat["exipc-bridge"], all["exipc-bridge"])
	refT := mk("nats-plain", "throughput", "calls/s", tput["nats-plain"], nil)
	brT := mk("exipc-bridge", "throughput", "calls/s", tput["exipc-bridge"], nil)
	locL := mk("exipc-local", "latency", "ns", lat["exipc-local"], all["exipc-local"])
	locT := mk("exipc-local", "throughput", "calls/s", tput["exipc-local"], nil)
	libL := mk("exipc-bridge-lib", "latency", "ns", lat["exipc-bridge-lib"], all["exipc-bridge-lib"])
	libT := mk("exipc-bridge-lib", "throughput", "calls/s", tput["exipc-bridge-lib"], nil)
	ratio(locL, refL.Reps, id, "plain nats.go")
	ratio(locT, refT.Reps, inv, "plain nats.go")
	out = append(out, refL, brL, libL, locL, refT, brT, libT, locT)
	// The process form's goals keep their names; the library form's say so.
	for _, f := range []struct {
		what     string
		lat, tpt *Result
	}{
		{"through the bridge", brL, brT},
		{"through the bridge, library form (natsbridge in the client's and the server's processes)", libL, libT},
	} {
		if q := ratio(f.lat, refL.Reps, id, "plain nats.go"); q != nil {
			goals = append(goals, Goal{Goal: "stub RPC 64 B " + f.what + " latency <= 1.3x plain nats.go request/reply",
				Value: q.Median, Target: 1.3, Unit: "x", Met: q.Median <= 1.3,
				Detail: fmt.Sprintf("%.2f× plain nats.go (spread %.2f–%.2f; median %.1f µs vs %.1f µs, paired reps)",
					q.Median, q.Min, q.Max, f.lat.Median/1e3, refL.Median/1e3)})
		}
		if q := ratio(f.tpt, refT.Reps, inv, "plain nats.go"); q != nil {
			v := 1 / q.Median // throughput ratio: above 1 more calls/s
			goals = append(goals, Goal{Goal: "stub RPC 64 B " + f.what + " throughput >= 0.8x plain nats.go (16 in flight)",
				Value: v, Target: 0.8, Unit: "x", Met: v >= 0.8,
				Detail: fmt.Sprintf("%.2f× plain nats.go (spread %.2f–%.2f; median %.0f vs %.0f calls/s, paired reps)",
					v, 1/q.Max, 1/q.Min, f.tpt.Median, refT.Median)})
		}
	}
	return out, goals
}

// stream sends 64 KiB messages on a raw channel through the bridges for a
// while and returns the MB/s the server in domain B received.
func (r *rig) stream(reps int, scale float64) *Result {
	res := &Result{Name: "bridge-stream/exipc-bridge/64KiB", Workload: "bridge-stream", Transport: "exipc-bridge",
		PayloadBytes: chunk, Metric: "bytes", Unit: "MB/s"}
	dur := time.Duration(float64(time.Second) * scale)
	for rep := 0; rep < reps; rep++ {
		v, err := r.streamOnce(dur)
		if err != nil {
			res.Error = err.Error()
			break
		}
		res.Reps = append(res.Reps, v)
	}
	if len(res.Reps) > 0 {
		res.Min, res.Median, res.Max = summary(res.Reps)
	}
	return res
}

func (r *rig) streamOnce(dur time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer cancel()
	c, err := r.a.Connect(ctx, "benchstream")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	s, err := r.streamServer.Accept(ctx)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	var got atomic.Int64
	var first, last atomic.Int64 // ns since t0 of the first and last message received
	t0 := time.Now()
	done := make(chan error, 1)
	go func() {
		for {
			h, err := s.Recv(ctx)
			if err != nil {
				if errors.Is(err, exipc.ErrPeerDead) {
					err = nil
				}
				done <- err
				return
			}
			b, _ := r.b.Bytes(h)
			if got.Add(int64(len(b))) == int64(len(b)) {
				first.Store(int64(time.Since(t0)))
			}
			last.Store(int64(time.Since(t0)))
			r.b.Free(h)
		}
	}()
	stop := t0.Add(dur)
	for time.Now().Before(stop) {
		h, b, err := r.a.Alloc(chunk)
		if errors.Is(err, exipc.ErrHeapFull) {
			time.Sleep(20 * time.Microsecond)
			continue
		}
		if err != nil {
			return 0, err
		}
		b[0], b[len(b)-1] = 1, 2
		for {
			err = c.Send(h)
			if err != exipc.ErrQueueFull {
				break
			}
			time.Sleep(20 * time.Microsecond)
		}
		if err != nil {
			r.a.Free(h)
			return 0, err
		}
	}
	c.Close()
	if err := <-done; err != nil {
		return 0, err
	}
	span := time.Duration(last.Load() - first.Load())
	if span <= 0 {
		return 0, errors.New("no data crossed")
	}
	return float64(got.Load()-chunk) / span.Seconds() / 1e6, nil
}

// report adds the rows and goals to DIR/latest.json (creating it if there is
// none) and a section to DIR/latest.md, and prints them.
func report(dir string, results []*Result, goals []Goal) error {
	for _, r := range results {
		line := fmt.Sprintf("%-42s median %10.1f %-8s (min %.1f, max %.1f)", r.Name, r.Median, r.Unit, r.Min, r.Max)
		if r.Ratio != nil {
			line += fmt.Sprintf("  %.2fx %s", r.Ratio.Median, r.Ratio.Label)
		}
		if r.Error != "" {
			line += "  ERROR " + r.Error
		}
		fmt.Println(line)
	}
	for _, g := range goals {
		met := "missed"
		if g.Met {
			met = "met"
		}
		fmt.Printf("goal: %s: %s, %s\n", g.Goal, met, g.Detail)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	jpath := filepath.Join(dir, "latest.json")
	doc := map[string]json.RawMessage{}
	if b, err := os.ReadFile(jpath); err == nil {
		if err := json.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s: %v", jpath, err)
		}
	} else {
		doc["generated"], _ = json.Marshal(time.Now().UTC().Format(time.RFC3339))
		doc["command"], _ = json.Marshal("bridgebench")
	}
	var rs, gs []json.RawMessage
	if v, ok := doc["results"]; ok {
		json.Unmarshal(v, &rs)
	}
	if v, ok := doc["goals"]; ok {
		json.Unmarshal(v, &gs)
	}
	for _, r := range results {
		b, _ := json.Marshal(r)
		rs = append(rs, b)
	}
	for _, g := range goals {
		b, _ := json.Marshal(g)
		gs = append(gs, b)
	}
	doc["results"], _ = json.Marshal(rs)
	doc["goals"], _ = json.Marshal(gs)
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(jpath, append(b, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	md.WriteString("\n## Bridge (exipc-bridge over NATS, same run)\n\n| row | median | min | max | vs reference |\n|---|---|---|---|---|\n")
	for _, r := range results {
		vs := ""
		if r.Ratio != nil {
			vs = fmt.Sprintf("%.2f× %s", r.Ratio.Median, r.Ratio.Label)
		}
		if r.Error != "" {
			vs = "error: " + r.Error
		}
		fmt.Fprintf(&md, "| %s | %.1f %s | %.1f | %.1f | %s |\n", r.Name, r.Median, r.Unit, r.Min, r.Max, vs)
	}
	md.WriteString("\n| goal | | |\n|---|---|---|\n")
	for _, g := range goals {
		met := "**missed**"
		if g.Met {
			met = "met"
		}
		fmt.Fprintf(&md, "| %s | %s | %s |\n", g.Goal, met, g.Detail)
	}
	f, err := os.OpenFile(filepath.Join(dir, "latest.md"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(md.String())
	return err
}
