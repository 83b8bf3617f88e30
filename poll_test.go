package exipc_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/exipc/exipc"
)

// peerWave is the sending side of TestIdleReceivers: it connects nch
// channels, says "ready", waits for a line on stdin, then sends nmsg
// messages to random channels (each carrying its channel and that channel's
// sequence number), and closes everything.
func peerWave(domain, service string, nch, nmsg int) error {
	d, err := exipc.Open(domain, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	chans := make([]*exipc.Chan, nch)
	for i := range chans {
		if chans[i], err = d.Connect(ctx, service); err != nil {
			return fmt.Errorf("connect %d: %w", i, err)
		}
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	seq := make([]uint64, nch)
	rng := rand.New(rand.NewSource(1))
	for n := 0; n < nmsg; n++ {
		k := rng.Intn(nch)
		h, b, err := d.Alloc(16)
		for errors.Is(err, exipc.ErrHeapFull) {
			yield()
			h, b, err = d.Alloc(16)
		}
		if err != nil {
			return err
		}
		binary.LittleEndian.PutUint64(b, uint64(k))
		binary.LittleEndian.PutUint64(b[8:], seq[k])
		seq[k]++
		for err = chans[k].Send(h); errors.Is(err, exipc.ErrQueueFull); err = chans[k].Send(h) {
			yield()
		}
		if err != nil {
			return err
		}
		if n%1000 == 999 {
			time.Sleep(200 * time.Microsecond) // receivers go back to sleep
		}
	}
	for _, c := range chans {
		c.Close()
	}
	return nil
}

// startWave starts the "wave" peer (peerWave) on domain NAME with nch
// channels to SERVICE and nmsg messages, accepts its channels on l and waits
// for it to be ready. Writing a line to the returned stdin starts the wave.
func startWave(t *testing.T, ctx context.Context, l *exipc.Listener, name, service string, nch, nmsg int) (*exec.Cmd, io.Writer, []*exipc.Chan) {
	t.Helper()
	cmd := goPeer(t, "wave", name, service, nch, nmsg)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	chans := make([]*exipc.Chan, nch)
	for i := range chans {
		var err error
		if chans[i], err = l.Accept(ctx); err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("peer said %q, %v", line, err)
	}
	return cmd, stdin, chans
}

// threads is the process's OS thread count.
func threads(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// TestIdleReceivers: thousands of channels, a goroutine blocked in Recv on
// each, from another process. Parked receivers hold no thread (the count
// stays within a handful of the runtime's own), and a wave of messages to
// random channels reaches every receiver, in order.
func TestIdleReceivers(t *testing.T) {
	nch, nmsg := 10000, 50000
	if testing.Short() || raceEnabled { // the race detector allows 8128 goroutines
		nch, nmsg = 2000, 10000
	}
	d, name := openDomain(t, &exipc.Options{MaxChans: uint32(nch + 8), RingCapacity: 16, Size: 8 << 20,
		MaxBlock: 4096, WaitPolicy: exipc.WaitPark})
	l, err := d.Listen("wave")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 2*time.Minute)
	cmd, stdin, chans := startWave(t, ctx, l, name, "wave", nch, nmsg)
	runtime.GC()
	base := threads(t)
	var wg sync.WaitGroup
	var got, bad atomic.Int64
	var parked atomic.Int64
	for i, c := range chans {
		wg.Add(1)
		go func(i int, c *exipc.Chan) {
			defer wg.Done()
			parked.Add(1)
			want := uint64(0)
			for {
				h, err := c.Recv(ctx)
				if errors.Is(err, exipc.ErrPeerDead) {
					return
				}
				if err != nil {
					t.Errorf("channel %d: %v", i, err)
					return
				}
				b, err := d.Bytes(h)
				if err != nil || binary.LittleEndian.Uint64(b) != uint64(i) || binary.LittleEndian.Uint64(b[8:]) != want {
					bad.Add(1)
				}
				want++
				got.Add(1)
				d.Free(h)
			}
		}(i, c)
	}
	for parked.Load() < int64(nch) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // every receiver is parked by now
	idle := threads(t)
	t.Logf("%d receivers parked: %d OS threads (%d before they started)", nch, idle, base)
	if idle > base+8 {
		t.Errorf("%d parked receivers took %d OS threads beyond the %d before: goroutines must park, not threads", nch, idle-base, base)
	}
	start := time.Now()
	fmt.Fprintln(stdin, "go")
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if got.Load() != int64(nmsg) || bad.Load() != 0 {
		t.Fatalf("received %d of %d messages, %d out of order or garbled", got.Load(), nmsg, bad.Load())
	}
	t.Logf("wave of %d messages over %d channels delivered in %v", nmsg, nch, time.Since(start).Round(time.Millisecond))
}

// TestParkedRecvCancel: a parked receiver returns promptly when its context
// is cancelled, and when the domain is closed.
func TestParkedRecvCancel(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{WaitPolicy: exipc.WaitPark})
	_, server, _ := pair(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := server.Recv(ctx)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Recv after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled Recv did not return")
	}
	go func() {
		_, err := server.Recv(context.Background())
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	d.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, exipc.ErrClosed) {
			t.Fatalf("Recv after domain Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake a parked Recv")
	}
}

// BenchmarkIdleParked measures the CPU an idle domain costs with 10,000
// receivers parked in Recv (goroutines; the peer ends are held by a second
// domain handle). It reports CPU time per second of idleness (cpu-ms/s) and
// the OS thread count. EXIPC_IDLE_SECONDS sets the idle time (default 10),
// EXIPC_IDLE_CHANS the number of receivers (default 10,000).
// Run: go test -run '^$' -bench IdleParked -benchtime 1x .
func BenchmarkIdleParked(b *testing.B) {
	nch := 10000
	if v, err := strconv.Atoi(os.Getenv("EXIPC_IDLE_CHANS")); err == nil && v > 0 {
		nch = v
	}
	secs := 10
	if v, err := strconv.Atoi(os.Getenv("EXIPC_IDLE_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	d, name := openDomain(b, &exipc.Options{MaxChans: uint32(nch) + 8, RingCapacity: 16, Size: 4 << 20})
	peer, err := exipc.Open(name, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer peer.Close()
	l, err := d.Listen("idle")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < nch; i++ {
		if _, err := peer.Connect(ctx, "idle"); err != nil {
			b.Fatal(err)
		}
		c, err := l.Accept(ctx)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Recv(ctx)
		}()
	}
	time.Sleep(time.Second) // let every receiver park
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u0, s0 := cpuTime(b)
		time.Sleep(time.Duration(secs) * time.Second)
		u1, s1 := cpuTime(b)
		cpu := (u1 - u0) + (s1 - s0)
		b.ReportMetric(float64(cpu.Milliseconds())/float64(secs), "cpu-ms/s")
		b.ReportMetric(float64(threads(b)), "threads")
	}
	b.StopTimer()
	cancel()
	wg.Wait()
}

func cpuTime(tb testing.TB) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// TestWakeupStress: no lost wake-ups through the Go poller. A peer process
// sends 10 million messages (300,000 in -short or -race runs) to random
// channels of 8, pausing 200 µs every 1,000; each receiver pauses at random
// too, so both sides keep parking and waking. A lost wake-up shows as a
// Recv that runs out of its 30 s deadline with messages still coming.
func TestWakeupStress(t *testing.T) {
	const nch = 8
	nmsg := 10_000_000
	if testing.Short() || raceEnabled {
		nmsg = 300_000
	}
	d, name := openDomain(t, &exipc.Options{MaxChans: 16, RingCapacity: 64, Size: 4 << 20, MaxBlock: 4096})
	l, err := d.Listen("stress")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 5*time.Minute)
	cmd, stdin, chans := startWave(t, ctx, l, name, "stress", nch, nmsg)
	start := time.Now()
	fmt.Fprintln(stdin, "go")
	var wg sync.WaitGroup
	var got, bad, pauses atomic.Int64
	for i, c := range chans {
		wg.Add(1)
		go func(i int, c *exipc.Chan) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(i)))
			want := uint64(0)
			for {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				h, err := c.Recv(rctx)
				cancel()
				if errors.Is(err, exipc.ErrPeerDead) {
					return
				}
				if err != nil {
					t.Errorf("channel %d after %d messages: %v (a lost wake-up?)", i, want, err)
					return
				}
				b, err := d.Bytes(h)
				if err != nil || binary.LittleEndian.Uint64(b) != uint64(i) || binary.LittleEndian.Uint64(b[8:]) != want {
					bad.Add(1)
				}
				want++
				got.Add(1)
				d.Free(h)
				if rng.Intn(4096) == 0 {
					pauses.Add(1)
					time.Sleep(time.Duration(rng.Intn(100)) * time.Microsecond)
				}
			}
		}(i, c)
	}
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if got.Load() != int64(nmsg) || bad.Load() != 0 {
		t.Fatalf("received %d of %d messages, %d out of order or garbled", got.Load(), nmsg, bad.Load())
	}
	t.Logf("%d messages on %d channels in %v, %d receiver pauses", nmsg, nch, time.Since(start).Round(time.Millisecond), pauses.Load())
}
