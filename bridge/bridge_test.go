package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/internal/ctest"
	"github.com/exipc/exipc/stub"
)

const (
	opEcho  = 1
	opSleep = 3
	opWho   = 77 // test servers only: reply = the server's name
)

// goServer serves ECHO, SLEEP and WHO on svc in h until the test ends.
func goServer(t *testing.T, h *host, svc, who string) {
	t.Helper()
	l, err := h.d.Listen(svc)
	if err != nil {
		t.Fatal(err)
	}
	s := testServer(h.d, who)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done; l.Close() })
}

// testServer is a stub server of d answering ECHO, SLEEP (the body's LE
// uint32 milliseconds) and WHO (who).
func testServer(d *exipc.Domain, who string) *stub.Server {
	s := stub.NewServer(d)
	s.Handle(opEcho, func(ctx context.Context, req *stub.Request, w *stub.Writer) error {
		b, err := w.Body(len(req.Body))
		if err != nil {
			return err
		}
		copy(b, req.Body)
		return nil
	})
	s.Handle(opSleep, func(ctx context.Context, req *stub.Request, w *stub.Writer) error {
		select {
		case <-time.After(time.Duration(binary.LittleEndian.Uint32(req.Body)) * time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	})
	s.Handle(opWho, stub.Func(func(ctx context.Context, req *stub.Request) ([]byte, error) {
		return []byte(who), nil
	}))
	return s
}

// cServer starts native/test/stub_peer.c serving svc in h.
func cServer(t *testing.T, h *host, svc string) *exec.Cmd {
	t.Helper()
	peer, _ := cPrograms(t)
	cmd := exec.Command(peer, "server", h.name, svc)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); !strings.Contains(line, "serving") {
		t.Fatalf("C server said %q", line)
	}
	return cmd
}

func dial(t *testing.T, h *host, svc string) *stub.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := stub.Dial(ctx, h.d, svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pattern(b []byte, i int) {
	for k := range b {
		b[k] = byte(i*131 + k*7 + k>>8)
	}
}

// echoCalls makes n ECHO calls of 0..maxLen-1 bytes from `par` goroutines,
// each reply checked byte for byte.
func echoCalls(t *testing.T, c *stub.Client, n, par, maxLen int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	for g := 0; g < par; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var want []byte
			for i := g; i < n; i += par {
				want = want[:0]
				want = append(want, make([]byte, i*4099%maxLen)...)
				pattern(want, i)
				r, err := c.Call(ctx, opEcho, want)
				if err == nil && !bytes.Equal(r.Body, want) {
					err = fmt.Errorf("reply %d: %d bytes differ from the %d sent", i, len(r.Body), len(want))
				}
				if r != nil {
					r.Release()
				}
				if err != nil {
					mu.Lock()
					bad++
					if bad < 5 {
						t.Errorf("call %d: %v", i, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if bad > 0 {
		t.Fatalf("%d of %d goroutines failed", bad, par)
	}
}

// twoHosts: a NATS server and two domains, A importing svc from B.
func twoHosts(t *testing.T, svc string, natsEnv ...string) (ns *natsServer, a, b *host, ba, bb *proc) {
	ns = startNATS(t, natsEnv...)
	a, b = newHost(t, "a", nil), newHost(t, "b", nil)
	bb = startBridge(t, b, ns.url(), "-export", svc)
	ba = startBridge(t, a, ns.url(), "-import", svc)
	return
}

// waitNoBlocks waits until the domain has no block in use (everything
// crossing the bridge was freed).
func waitNoBlocks(t *testing.T, h *host) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.d.Reap()
		st, err := h.d.Stat()
		if err == nil && st.HeapBlocksUsed == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d blocks still in use (err %v)", h.name, st.HeapBlocksUsed, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGoClientCServer: a Go client in A calls the C stub server in B through
// two bridges: 100,000 echoes, checked byte for byte.
func TestGoClientCServer(t *testing.T) {
	_, a, b, _, _ := twoHosts(t, "csvc")
	cServer(t, b, "csvc")
	c := dial(t, a, "csvc")
	n := 100000
	if testing.Short() {
		n = 5000
	}
	start := time.Now()
	echoCalls(t, c, n, 8, 2048)
	t.Logf("%d echo calls Go client -> C server through the bridge in %v", n, time.Since(start))
	c.Close()
	waitNoBlocks(t, a)
}

// TestCClientGoServer: the C client in A calls a Go stub server in B:
// 100,000 pipelined echoes, checked byte for byte by the C client.
func TestCClientGoServer(t *testing.T) {
	_, a, b, _, _ := twoHosts(t, "gosvc")
	goServer(t, b, "gosvc", "b")
	_, client := cPrograms(t)
	n := "100000"
	if testing.Short() {
		n = "5000"
	}
	start := time.Now()
	out, err := exec.Command(client, a.name, "gosvc", n, "2048").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "calls ok") {
		t.Fatalf("C client: %v\n%s", err, out)
	}
	t.Logf("%s through the bridge in %v", strings.TrimSpace(string(out)), time.Since(start))
	waitNoBlocks(t, a)
}

// TestOrderAndBoundaries: raw channel messages of 1 byte to 1 MiB, in both
// directions at once, arrive whole and in order; with a NATS max_payload of
// 64 KiB the large ones cross in parts.
func TestOrderAndBoundaries(t *testing.T) {
	_, a, b, _, _ := twoHosts(t, "raw", "NATS_MAX_PAYLOAD=65536")
	l, err := b.d.Listen("raw")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ca, err := a.d.Connect(ctx, "raw")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	sizes := []int{1, 2, 100, 4096, 65535, 65536, 65537, 200000, 1 << 20}
	n := 3000
	size := func(i int) int {
		if i%50 == 0 {
			return sizes[(i/50)%len(sizes)]
		}
		return 1 + i*37%3000
	}
	send := func(d *exipc.Domain, c *exipc.Chan, errc chan<- error) {
		for i := 0; i < n; i++ {
			h, buf, err := d.Alloc(size(i))
			for errors.Is(err, exipc.ErrHeapFull) {
				time.Sleep(time.Millisecond)
				h, buf, err = d.Alloc(size(i))
			}
			if err != nil {
				errc <- err
				return
			}
			pattern(buf, i)
			for {
				err = c.Send(h)
				if err != exipc.ErrQueueFull {
					break
				}
				time.Sleep(50 * time.Microsecond)
			}
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}
	recv := func(d *exipc.Domain, c *exipc.Chan, errc chan<- error) {
		want := make([]byte, 1<<20)
		for i := 0; i < n; i++ {
			h, err := c.Recv(ctx)
			if err != nil {
				errc <- fmt.Errorf("message %d: %w", i, err)
				return
			}
			got, _ := d.Bytes(h)
			w := want[:size(i)]
			pattern(w, i)
			if !bytes.Equal(got, w) {
				errc <- fmt.Errorf("message %d: %d bytes, want %d (or contents differ)", i, len(got), len(w))
				return
			}
			d.Free(h)
		}
		errc <- nil
	}
	errc := make(chan error, 4)
	go send(a.d, ca, errc)
	go recv(b.d, cb, errc)
	go send(b.d, cb, errc)
	go recv(a.d, ca, errc)
	for i := 0; i < 4; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// A close crosses after the messages: the peer sees ErrPeerDead.
	ca.Close()
	if _, err := cb.Recv(ctx); !errors.Is(err, exipc.ErrPeerDead) {
		t.Fatalf("after the remote close: %v, want ErrPeerDead", err)
	}
	cb.Close()
	waitNoBlocks(t, a)
	waitNoBlocks(t, b)
}

// TestBackPressure: a server that does not read makes the client's Send
// return ErrQueueFull after a bounded number of messages (the two rings and
// the credit window), and nothing is lost once it reads.
func TestBackPressure(t *testing.T) {
	_, a, b, _, _ := twoHosts(t, "slow")
	l, err := b.d.Listen("slow")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca, err := a.d.Connect(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	// Bound: ring A (256) + the batch bridge A holds while it waits for
	// credit (32) + the window (128) + ring B (256), and a little slack.
	const bound = 256 + 32 + 128 + 256 + 8
	sent, full := 0, 0
	for sent < 10*bound && full < 200 {
		h, buf, err := a.d.Alloc(100)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(buf, uint32(sent))
		if err := ca.Send(h); err == exipc.ErrQueueFull {
			a.d.Free(h)
			full++
			time.Sleep(5 * time.Millisecond) // let the bridges move what they can
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		full = 0
		sent++
	}
	t.Logf("Send refused after %d messages towards a server that does not read", sent)
	if sent >= 10*bound {
		t.Fatalf("sent %d messages without ErrQueueFull: the bridge buffers without bound", sent)
	}
	if sent > bound {
		t.Fatalf("sent %d messages before ErrQueueFull, more than the bound %d", sent, bound)
	}
	for i := 0; i < sent; i++ {
		h, err := cb.Recv(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		buf, _ := b.d.Bytes(h)
		if got := binary.LittleEndian.Uint32(buf); got != uint32(i) {
			t.Fatalf("message %d carries %d", i, got)
		}
		b.d.Free(h)
	}
}

// callSleepAndKill starts a 5 s SLEEP call, kills with kill, and checks the
// call ends with ErrPeerDead within 2 s.
func callSleepAndKill(t *testing.T, c *stub.Client, what string, kill func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, opSleep, binary.LittleEndian.AppendUint32(nil, 5000))
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	kill()
	select {
	case err := <-done:
		took := time.Since(start)
		if !errors.Is(err, exipc.ErrPeerDead) {
			t.Fatalf("%s killed: call ended with %v, want ErrPeerDead", what, err)
		}
		t.Logf("%s killed: ErrPeerDead after %v", what, took)
	case <-time.After(2 * time.Second):
		t.Fatalf("%s killed: the call still waits after 2 s", what)
	}
}

func checkCall(t *testing.T, h *host, svc string) {
	t.Helper()
	c := dial(t, h, svc)
	echoCalls(t, c, 50, 2, 5000)
	c.Close()
}

// TestKillRemoteServer: the C server behind the exporting bridge is killed
// mid-call; a new server is reached without restarting the bridges.
func TestKillRemoteServer(t *testing.T) {
	_, a, b, _, _ := twoHosts(t, "ksvc")
	srv := cServer(t, b, "ksvc")
	c := dial(t, a, "ksvc")
	checkCall(t, a, "ksvc")
	callSleepAndKill(t, c, "remote server", func() { srv.Process.Kill() })
	cServer(t, b, "ksvc")
	checkCall(t, a, "ksvc")
}

// TestKillRemoteBridge: the exporting bridge is killed mid-call; a new one
// serves new channels.
func TestKillRemoteBridge(t *testing.T) {
	ns, a, b, _, bb := twoHosts(t, "kb")
	goServer(t, b, "kb", "b")
	c := dial(t, a, "kb")
	checkCall(t, a, "kb")
	callSleepAndKill(t, c, "remote bridge", bb.kill)
	startBridge(t, b, ns.url(), "-export", "kb")
	checkCall(t, a, "kb")
}

// TestKillNATS: the NATS server is killed mid-call; once it is back at the
// same URL, new channels work without restarting anything.
func TestKillNATS(t *testing.T) {
	ns, a, b, _, _ := twoHosts(t, "kn")
	goServer(t, b, "kn", "b")
	c := dial(t, a, "kn")
	checkCall(t, a, "kn")
	callSleepAndKill(t, c, "NATS server", ns.p.kill)
	ns.start()
	deadline := time.Now().Add(15 * time.Second)
	for {
		cl := dial(t, a, "kn")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r, err := cl.Call(ctx, opWho, nil)
		cancel()
		cl.Close()
		if err == nil {
			r.Release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after NATS came back, a new call still fails: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkCall(t, a, "kn")
}

// TestTwoExporters: channels opened on an imported service spread over the
// two exporters (a NATS queue group), and both answer correctly.
func TestTwoExporters(t *testing.T) {
	ns := startNATS(t)
	a, b1, b2 := newHost(t, "a", nil), newHost(t, "b1", nil), newHost(t, "b2", nil)
	goServer(t, b1, "pair", "b1")
	goServer(t, b2, "pair", "b2")
	startBridge(t, b1, ns.url(), "-export", "pair")
	startBridge(t, b2, ns.url(), "-export", "pair")
	startBridge(t, a, ns.url(), "-import", "pair")
	count := map[string]int{}
	for i := 0; i < 40; i++ {
		c := dial(t, a, "pair")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := c.Call(ctx, opWho, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		count[string(r.Body)]++
		r.Release()
		echoCalls(t, c, 20, 2, 3000)
		c.Close()
	}
	t.Logf("channels per exporter: %v", count)
	if count["b1"] == 0 || count["b2"] == 0 || count["b1"]+count["b2"] != 40 {
		t.Fatalf("channels per exporter: %v, want both used", count)
	}
	// Each open went to one exporter only: none is left holding a channel.
	for _, h := range []*host{b1, b2} {
		deadline := time.Now().Add(3 * time.Second)
		for {
			st, err := h.d.Stat()
			if err == nil && st.ChansBound == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d channels still bound after every client closed", h.name, st.ChansBound)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestNoExporter: a channel to an imported service that nobody exports ends
// with ErrPeerDead at once.
func TestNoExporter(t *testing.T) {
	ns := startNATS(t)
	a := newHost(t, "a", nil)
	startBridge(t, a, ns.url(), "-import", "nobody")
	c := dial(t, a, "nobody")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := c.Call(ctx, opEcho, []byte("x")); !errors.Is(err, exipc.ErrPeerDead) {
		t.Fatalf("call with no exporter: %v, want ErrPeerDead", err)
	}
	t.Logf("no exporter: ErrPeerDead after %v", time.Since(start))
}

// TestBridgeSIGTERM: a bridge exits 0 on SIGTERM, and the channels it
// carried end with ErrPeerDead on both sides.
func TestBridgeSIGTERM(t *testing.T) {
	_, a, b, ba, _ := twoHosts(t, "term")
	goServer(t, b, "term", "b")
	c := dial(t, a, "term")
	checkCall(t, a, "term")
	ba.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ba.done:
	case <-time.After(5 * time.Second):
		t.Fatal("bridge still runs 5 s after SIGTERM")
	}
	if code := ba.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("bridge exit code %d after SIGTERM, want 0", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Call(ctx, opEcho, []byte("x")); !errors.Is(err, exipc.ErrPeerDead) {
		t.Fatalf("call after the bridge stopped: %v, want ErrPeerDead", err)
	}
}

var mailBuilt struct {
	once         sync.Once
	store, pop3d string
	err          error
	skip         string
}

// mailPrograms builds the mail store (C, SQLite) and pop3d once.
func mailPrograms(t *testing.T) (store, pop3d string) {
	t.Helper()
	mailBuilt.once.Do(func() {
		if _, err := exec.LookPath("python3"); err != nil {
			mailBuilt.skip = "python3 not installed (.ci/run installs it)"
			return
		}
		if _, err := os.Stat("/usr/include/sqlite3.h"); err != nil {
			mailBuilt.skip = "sqlite3.h not installed: apt-get install libsqlite3-dev (.ci/run does)"
			return
		}
		dir, err := os.MkdirTemp("", "bridgemail")
		if err != nil {
			mailBuilt.err = err
			return
		}
		mailBuilt.store = filepath.Join(dir, "store")
		mailBuilt.pop3d = filepath.Join(dir, "pop3d")
		if mailBuilt.err = ctest.Build("../native", mailBuilt.store, []string{"../examples/mailstore/store.c"}, "-lsqlite3"); mailBuilt.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", mailBuilt.pop3d, "./examples/mailstore/pop3d")
		cmd.Dir = ".."
		if b, err := cmd.CombinedOutput(); err != nil {
			mailBuilt.err = fmt.Errorf("building pop3d: %v\n%s", err, b)
		}
	})
	if mailBuilt.skip != "" {
		t.Skip(mailBuilt.skip)
	}
	if mailBuilt.err != nil {
		t.Fatal(mailBuilt.err)
	}
	return mailBuilt.store, mailBuilt.pop3d
}

// startLine starts argv and waits for a stdout line containing want; the
// process gets SIGTERM at the end of the test.
func startLine(t *testing.T, want string, argv ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	r := bufio.NewReader(out)
	line, _ := r.ReadString('\n')
	if !strings.Contains(line, want) {
		t.Fatalf("%s said %q", filepath.Base(argv[0]), line)
	}
	go io.Copy(io.Discard, r)
	return cmd, line
}

// TestPOP3AcrossHosts: the POP3 front end in domain A, the mail store in
// domain B, the store's service carried by two bridges; Python's poplib
// retrieves every mailbox and compares it with the database byte for byte.
func TestPOP3AcrossHosts(t *testing.T) {
	store, pop3d := mailPrograms(t)
	ns := startNATS(t)
	a, b := newHost(t, "pop-a", nil), newHost(t, "pop-b", nil)
	db := filepath.Join(t.TempDir(), "mail.db")
	gen := func(args ...string) {
		if out, err := exec.Command(store, append([]string{"gen", db}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("store gen: %v\n%s", err, out)
		}
	}
	gen("one", "pw1", "1", "1000", "1")
	gen("hundred", "pw100", "100", "20000", "2")
	gen("tenk", "pwtenk", "2000", "120", "3")
	gen("big", "pwbig", "4", fmt.Sprint(1<<20-64), "4")
	startLine(t, "serving", store, "serve", db, b.name)
	startBridge(t, b, ns.url(), "-export", "pop3store")
	startBridge(t, a, ns.url(), "-import", "pop3store")
	_, line := startLine(t, "listening", pop3d, "-addr", "127.0.0.1:0", "-domain", a.name,
		"-call-timeout", "10s", "-unlink=false")
	f := strings.Fields(line)
	host, port, err := net.SplitHostPort(f[3])
	if err != nil {
		t.Fatalf("pop3d said %q", line)
	}
	for _, args := range [][]string{
		{host, port, db, "one:pw1", "hundred:pw100", "tenk:pwtenk", "big:pwbig"},
		{"--oversize", host, port, db, "one:pw1"},
	} {
		out, err := exec.Command("python3", append([]string{"../examples/mailstore/pop3check.py"}, args...)...).CombinedOutput()
		t.Logf("pop3check: %s", out)
		if err != nil {
			t.Fatalf("pop3check %v: %v", args, err)
		}
	}
}

// cutProxy forwards TCP connections from a loopback port to target; cut
// closes the connections it carries (new ones are still accepted).
type cutProxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l}
	t.Cleanup(func() { l.Close(); p.cut() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) url() string { return "nats://" + p.l.Addr().String() }

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestRemoteBridgeReconnects: the exporting bridge loses its NATS connection
// and gets it back at once (the NATS server lives on); the importing side,
// which saw nothing drop, still ends the call with ErrPeerDead within 2 s,
// and new channels work.
func TestRemoteBridgeReconnects(t *testing.T) {
	ns := startNATS(t)
	px := newCutProxy(t, "127.0.0.1:"+strconv.Itoa(ns.port))
	a, b := newHost(t, "a", nil), newHost(t, "b", nil)
	goServer(t, b, "rc", "b")
	startBridge(t, b, px.url(), "-export", "rc")
	startBridge(t, a, ns.url(), "-import", "rc")
	c := dial(t, a, "rc")
	checkCall(t, a, "rc")
	callSleepAndKill(t, c, "remote bridge's NATS connection", px.cut)
	deadline := time.Now().Add(10 * time.Second)
	for {
		cl := dial(t, a, "rc")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r, err := cl.Call(ctx, opWho, nil)
		cancel()
		cl.Close()
		if err == nil {
			r.Release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the reconnect, a new call still fails: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
