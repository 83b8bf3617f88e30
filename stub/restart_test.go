package stub_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/stub"
)

const restartEnv = "EXIPC_STUB_RESTART_SERVER" // the domain's name: run as the restarted server

// TestRestartServerMain is the server process of TestServerRestarts: it
// serves echo on "rsvc" until it is killed. Nothing in a normal run.
func TestRestartServerMain(t *testing.T) {
	name := os.Getenv(restartEnv)
	if name == "" {
		t.Skip("runs only as the server process of TestServerRestarts")
	}
	d, err := exipc.Open(name, &exipc.Options{MaxProcs: 256, MaxChans: 512})
	if err != nil {
		fmt.Fprintln(os.Stderr, "restart server:", err)
		os.Exit(1)
	}
	l, err := d.Listen("rsvc")
	if err != nil {
		fmt.Fprintln(os.Stderr, "restart server:", err)
		os.Exit(1)
	}
	s := testServer(d)
	fmt.Println("ready")
	s.Serve(context.Background(), l)
	os.Exit(0)
}

// A server restarted many times under 100 stub clients, once in the same
// domain and once unlinking it (and so creating it anew) at every restart:
// the clients reconnect by themselves, every reply is checked, and the only
// calls that fail are those made while the server was down.
func TestServerRestarts(t *testing.T) {
	for _, unlink := range []bool{false, true} {
		t.Run(fmt.Sprintf("unlink=%v", unlink), func(t *testing.T) { testServerRestarts(t, unlink) })
	}
}

type window struct{ from, to time.Time }

func testServerRestarts(t *testing.T, unlink bool) {
	restarts, nclients := 50, 100
	if testing.Short() {
		restarts, nclients = 8, 20
	}
	name := uniqueName("restart")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var server *exec.Cmd
	start := func() {
		t.Helper()
		cmd := exec.Command(exe, "-test.run=^TestRestartServerMain$", "-test.count=1")
		cmd.Env = append(os.Environ(), restartEnv+"="+name)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			t.Fatalf("restart server: %q, %v", line, err)
		}
		server = cmd
	}
	start()
	t.Cleanup(func() {
		if server != nil {
			server.Process.Kill()
			server.Wait()
		}
		exipc.Unlink(name)
	})
	d, err := exipc.Open(name, &exipc.Options{AttachOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	var (
		mu       sync.Mutex
		down     []window
		failures []window
		failErrs []error
		ok       atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for i := 0; i < nclients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err := stub.Dial(dctx, d, "rsvc")
			cancel()
			if err != nil {
				t.Errorf("Dial: %v", err)
				return
			}
			defer c.Close()
			for n := uint32(0); !stop.Load(); n++ {
				body := binary.LittleEndian.AppendUint32([]byte(fmt.Sprintf("client %p call ", c)), n)
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				from := time.Now()
				r, err := c.Call(cctx, opEcho, body)
				cancel()
				if err == nil {
					if !bytes.Equal(r.Body, body) {
						t.Errorf("reply %q to %q", r.Body, body)
					}
					r.Release()
					ok.Add(1)
					continue
				}
				mu.Lock()
				failures = append(failures, window{from, time.Now()})
				failErrs = append(failErrs, err)
				mu.Unlock()
				time.Sleep(time.Millisecond) // a failed call: the server is down; do not spin
			}
		}()
	}
	for i := 0; i < restarts; i++ {
		time.Sleep(40 * time.Millisecond) // traffic with the server up
		killed := time.Now()
		server.Process.Signal(syscall.SIGKILL)
		server.Wait()
		server = nil
		// The server is down until this process has cleaned up after it:
		// before that, a client's call may still go to the dead server's
		// channel and fail with ErrPeerDead. The domain's watcher does it
		// on its own, usually within a millisecond, but on a loaded machine
		// its thread may run after the new server is up (calls failed up
		// to 14 ms after a restart at load average 27-40). Reap waits for
		// a reaper at work, or does it.
		if _, err := d.Reap(); err != nil && !errors.Is(err, exipc.ErrDomainGone) { // unlink=true: d is of the first domain
			t.Errorf("reap: %v", err)
		}
		if unlink {
			exipc.Unlink(name) // the way a server that unlinks on exit leaves it
		}
		start()
		mu.Lock()
		down = append(down, window{killed, time.Now()})
		mu.Unlock()
	}
	time.Sleep(100 * time.Millisecond)
	final := ok.Load()
	stop.Store(true)
	wg.Wait()

	// Every failed call overlaps a down window (a call in flight when the
	// server was killed ends after it; one made while it was down starts in
	// it). Small slack for the clocks of the two goroutines' views.
	const slack = 5 * time.Millisecond
	bad := 0
	for k, f := range failures {
		overlaps := false
		for _, w := range down {
			if f.from.Before(w.to.Add(slack)) && f.to.After(w.from.Add(-slack)) {
				overlaps = true
				break
			}
		}
		if !overlaps {
			bad++
			if bad <= 5 {
				t.Errorf("a call failed while the server was up (%v .. %v): %v", f.from.Format("15:04:05.000"), f.to.Format("15:04:05.000"), failErrs[k])
			}
		}
		if !errors.Is(failErrs[k], exipc.ErrPeerDead) && !errors.Is(failErrs[k], context.DeadlineExceeded) &&
			!errors.Is(failErrs[k], exipc.ErrQueueFull) {
			t.Errorf("failed call: %v, want ErrPeerDead (in flight) or its context's end (made while down)", failErrs[k])
		}
	}
	if final == 0 {
		t.Fatal("no call succeeded")
	}
	t.Logf("%d restarts, %d clients: %d calls answered, %d failed (all while the server was down: %v)",
		restarts, nclients, final, len(failures), bad == 0)
}
