package main

// Death notice and idle cost (the watcher, native/watch.c):
//   - detect/exipc-go/{server,client}: a Go receiver parked in Recv, its peer
//     process SIGKILLed; the time from the kill to Recv's ErrPeerDead (the
//     kernel's teardown of the dead process and the reap included), as the
//     server (the peer connected) and as the client (the peer listened);
//   - detect/exipc-c/{recv,poll}: the same for a C receiver parked in
//     exipc_recv or exipc_poll (native/test/bench_detect.c, EXIPC_DETECT_OUT);
//   - idle/exipc-go/1000: the CPU a Go process with 1,000 receivers parked in
//     Recv uses while nothing happens, in ms of CPU per second.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/exipc/exipc"
)

func detectCells(add func(*cell)) {
	for _, role := range []string{"server", "client"} {
		add(&cell{name: "detect/exipc-go/" + role, workload: "detect", transport: "exipc-go-" + role, kind: latency,
			metric: "SIGKILL to ErrPeerDead", unit: "ns",
			run: func(rc *runCtx) (repResult, error) { return runDetectGo(rc, role) }})
	}
	for _, how := range []string{"recv", "poll"} {
		add(&cell{name: "detect/exipc-c/" + how, workload: "detect", transport: "exipc-c-" + how, kind: latency,
			metric: "SIGKILL to -EPIPE", unit: "ns",
			run: func(rc *runCtx) (repResult, error) { return runDetectC(rc, how) }})
	}
	add(&cell{name: "idle/exipc-go/1000", workload: "idle", transport: "exipc-go", param: 1000, kind: latency,
		metric: "CPU while idle, 1,000 parked receivers", unit: "cpu-ms/s",
		run: func(rc *runCtx) (repResult, error) { return runIdle(rc, 1000) }})
}

func runDetectGo(rc *runCtx, role string) (repResult, error) {
	out := rc.tmpFile("detect-" + role + ".bin")
	defer os.Remove(out)
	dom := newDomain()
	defer dropDomain(dom)
	_, _, err := runGroup(proc{}, []proc{{argv: rc.goPeer("detect", "role="+role, "dom="+dom,
		fmt.Sprint("n=", max(10, rc.n(40))), "out="+out), cpu: -1}}, rc.timeout)
	if err != nil {
		return repResult{}, err
	}
	s, err := readSamples(out)
	if err != nil {
		return repResult{}, err
	}
	return latencyOf(s, -1), nil
}

func runDetectC(rc *runCtx, how string) (repResult, error) {
	bin := filepath.Join(filepath.Dir(rc.cpeer), "bench_detect")
	out := rc.tmpFile("detect-c-" + how + ".bin")
	defer os.Remove(out)
	ctx, cancel := context.WithTimeout(context.Background(), rc.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, fmt.Sprint(max(10, rc.n(40))), how)
	cmd.Env = append(os.Environ(), "EXIPC_DETECT_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return repResult{}, fmt.Errorf("%s: %v: %s (build it with `make bench`)", bin, err, b)
	}
	s, err := readSamples(out)
	if err != nil {
		return repResult{}, err
	}
	return latencyOf(s, -1), nil
}

func runIdle(rc *runCtx, n int) (repResult, error) {
	dom := newDomain()
	defer dropDomain(dom)
	secs := max(2, int(10*rc.scale+0.5))
	res, _, err := runGroup(proc{}, []proc{{argv: rc.goPeer("idle", "dom="+dom, fmt.Sprint("n=", n),
		fmt.Sprint("secs=", secs), fmt.Sprint("chans=", n+16)), cpu: -1}}, rc.timeout+time.Duration(secs)*time.Second)
	if err != nil {
		return repResult{}, err
	}
	r := res[0] // start 0, end: CPU ns used, count: seconds
	return repResult{value: float64(r.end-r.start) / 1e6 / float64(r.count), allocs: -1}, nil
}

// detectPeer is the Go receiver: n times, a peer process (this binary,
// detect-child) connects to it or listens for it, a goroutine parks in Recv,
// and the peer is SIGKILLed.
func detectPeer(a args) {
	role, n := a.str("role", "server"), a.int("n", 40)
	self, err := os.Executable()
	if err != nil {
		fatalf("%v", err)
	}
	d := exDomain(a)
	defer d.Close()
	samples := make([]uint32, 0, n)
	for i := 0; i < n; i++ {
		svc := fmt.Sprintf("det%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		childRole := "client"
		if role == "client" {
			childRole = "server"
		}
		var l *exipc.Listener
		if role == "server" {
			if l, err = d.Listen(svc); err != nil {
				fatalf("listen: %v", err)
			}
		}
		child := exec.Command(self, "peer", "detect-child", "role="+childRole, "dom="+a.str("dom", ""), "svc="+svc)
		child.Stderr = os.Stderr
		pipe, _ := child.StdoutPipe()
		if err := child.Start(); err != nil {
			fatalf("child: %v", err)
		}
		if line, err := bufio.NewReader(pipe).ReadString('\n'); err != nil || line != "ready\n" {
			fatalf("child: %q %v", line, err)
		}
		var c *exipc.Chan
		if role == "server" {
			c, err = l.Accept(ctx)
		} else {
			c, err = d.Connect(ctx, svc)
		}
		if err != nil {
			fatalf("bind: %v", err)
		}
		done := make(chan time.Time, 1)
		go func() {
			_, err := c.Recv(ctx)
			if !errors.Is(err, exipc.ErrPeerDead) {
				fatalf("recv: %v, want ErrPeerDead", err)
			}
			done <- time.Now()
		}()
		time.Sleep(30 * time.Millisecond) // parked past the spin
		t0 := time.Now()
		child.Process.Signal(syscall.SIGKILL)
		t1 := <-done
		child.Wait()
		samples = append(samples, clamp32(t1.Sub(t0).Nanoseconds()))
		c.Close()
		if l != nil {
			l.Close()
		}
		cancel()
	}
	writeSamples(a.str("out", ""), samples)
	report(0, 0, n, -1)
}

// detectChild is the peer that gets killed: it connects to (or listens on)
// svc, says ready, and waits.
func detectChild(a args) {
	d := exDomain(a)
	ctx := context.Background()
	svc := a.str("svc", "det")
	if a.str("role", "client") == "server" {
		l, err := d.Listen(svc)
		if err != nil {
			fatalf("listen: %v", err)
		}
		fmt.Println("ready")
		if _, err := l.Accept(ctx); err != nil {
			fatalf("accept: %v", err)
		}
	} else {
		if _, err := d.Connect(ctx, svc); err != nil {
			fatalf("connect: %v", err)
		}
		fmt.Println("ready")
	}
	select {}
}

// idlePeer parks n receivers (a peer handle in this process connects them)
// and reports the CPU the process uses over secs seconds of nothing.
func idlePeer(a args) {
	n, secs := a.int("n", 1000), a.int("secs", 5)
	d := exDomain(a)
	defer d.Close()
	peer := exDomain(a)
	defer peer.Close()
	l, err := d.Listen("idle")
	if err != nil {
		fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		if _, err := peer.Connect(ctx, "idle"); err != nil {
			fatalf("connect: %v", err)
		}
		c, err := l.Accept(ctx)
		if err != nil {
			fatalf("accept: %v", err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.Recv(ctx) }()
	}
	time.Sleep(time.Second) // every receiver parked
	// Let the runtime settle first: the collection and the scavenging that
	// the setup's garbage calls for would otherwise land in the window as a
	// one-off of a few ms (seen: 0.1-0.5 cpu-ms/s over 5 s, while the
	// threads' schedstat showed no run time at all once settled).
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(time.Second)
	u0 := cpuNs()
	time.Sleep(time.Duration(secs) * time.Second)
	used := cpuNs() - u0
	cancel()
	wg.Wait()
	report(0, used, secs, -1)
}

func cpuNs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
