package exipc_test

// Cross-process stream tests: two real processes, Go or C at either end,
// exchange NSMALL small messages and NBIG of 64 KiB, every byte checked and
// an FNV-1a checksum compared. The Go peer is this test binary run again
// with EXIPC_TEST_PEER set (see TestPeerMain); the C peer is
// native/test/peer.c. Both implement the protocol described there.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/internal/ctest"
)

const (
	peerEnv    = "EXIPC_TEST_PEER" // "send|recv DOMAIN SERVICE NSMALL NBIG"
	cPeerEnv   = "EXIPC_C_PEER"    // path of a built native/test/peer.c
	bigLen     = 65536
	peerBatch  = 64
	fnvOffset  = 14695981039346656037
	fnvPrime   = 1099511628211
	streamWait = 120 * time.Second
)

func msgLen(i, nsmall int) int {
	if i < nsmall {
		return 8 + i%57
	}
	return bigLen
}

func fillMsg(b []byte, i int) {
	binary.LittleEndian.PutUint64(b, uint64(i))
	v := byte(i*131 + 8*7)
	for j := 8; j < len(b); j++ {
		b[j] = v
		v += 7
	}
}

// checkMsg returns the index of the first wrong byte of message i, or -1.
func checkMsg(b []byte, i int) int {
	if len(b) < 8 {
		return 0
	}
	if binary.LittleEndian.Uint64(b) != uint64(i) {
		return 0
	}
	v := byte(i*131 + 8*7)
	for j := 8; j < len(b); j++ {
		if b[j] != v {
			return j
		}
		v += 7
	}
	return -1
}

func fnv1a(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// TestPeerMain is not a test: it is the Go peer process of the stream tests
// when EXIPC_TEST_PEER is set, and skips otherwise.
func TestPeerMain(t *testing.T) {
	spec := os.Getenv(peerEnv)
	if spec == "" {
		t.Skip("runs only as a peer process of the stream tests")
	}
	f := strings.Fields(spec)
	var nsmall, nbig int
	var err error
	if len(f) == 5 {
		nsmall, err = strconv.Atoi(f[3])
		if err == nil {
			nbig, err = strconv.Atoi(f[4])
		}
	}
	if len(f) != 5 || err != nil || (f[0] != "send" && f[0] != "recv" && f[0] != "hold" && f[0] != "hold-server" && f[0] != "wave") {
		fmt.Fprintf(os.Stderr, "usage: %s=\"send|recv|hold|wave DOMAIN SERVICE N M\"\n", peerEnv)
		os.Exit(2)
	}
	if f[0] == "wave" {
		if err := peerWave(f[1], f[2], nsmall, nbig); err != nil {
			fmt.Fprintf(os.Stderr, "go peer wave: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if f[0] == "hold-server" {
		err := peerHoldServer(f[1], f[2], nsmall, nbig)
		fmt.Fprintf(os.Stderr, "go peer hold-server: %v\n", err)
		os.Exit(1)
	}
	if f[0] == "hold" {
		err := peerHold(f[1], f[2], nsmall, nbig)
		fmt.Fprintf(os.Stderr, "go peer hold: %v\n", err)
		os.Exit(1)
	}
	var sum uint64
	var count int
	var took time.Duration
	if f[0] == "send" {
		sum, count, took, err = peerSend(f[1], f[2], nsmall, nbig)
	} else {
		sum, count, took, err = peerRecv(f[1], f[2], nsmall, nbig)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "go peer %s: %v\n", f[0], err)
		os.Exit(1)
	}
	fmt.Printf("checksum=%016x count=%d\n", sum, count)
	fmt.Fprintf(os.Stderr, "go peer %s: %d messages in %v once bound: %.0f messages/s\n",
		f[0], count, took.Round(time.Millisecond), float64(count)/took.Seconds())
	os.Exit(0)
}

// peerSend is the sending Go peer. took is the time from the channel being
// bound to the last message sent.
func peerSend(domain, service string, nsmall, nbig int) (sum uint64, count int, took time.Duration, err error) {
	d, err := exipc.Open(domain, &exipc.Options{Size: 64 << 20})
	if err != nil {
		return 0, 0, 0, err
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, err := d.Connect(ctx, service)
	cancel()
	if err != nil {
		return 0, 0, 0, err
	}
	start := time.Now()
	total := nsmall + nbig
	pend := make([]exipc.Handle, 0, peerBatch)
	sum = fnvOffset
	lastProgress := time.Now()
	stalled := func(sent int) error {
		if time.Since(lastProgress) > 30*time.Second {
			return fmt.Errorf("no progress for 30 s after %d of %d messages", sent, total)
		}
		yield()
		return nil
	}
	next, sent := 0, 0
	for sent < total {
		for len(pend) < peerBatch && next < total {
			n := msgLen(next, nsmall)
			h, b, err := d.Alloc(n)
			if errors.Is(err, exipc.ErrHeapFull) {
				break // send what we have, or wait for the receiver to free
			}
			if err != nil {
				return 0, 0, 0, fmt.Errorf("alloc message %d: %w", next, err)
			}
			if len(b) != n {
				return 0, 0, 0, fmt.Errorf("alloc(%d) gave %d bytes", n, len(b))
			}
			fillMsg(b, next)
			sum = fnv1a(sum, b)
			pend = append(pend, h)
			next++
		}
		if len(pend) > 0 {
			k, err := c.SendBatch(pend)
			if k > 0 {
				pend = pend[:copy(pend, pend[k:])]
				sent += k
				lastProgress = time.Now()
				continue
			}
			if err != exipc.ErrQueueFull {
				return 0, 0, 0, fmt.Errorf("send message %d: %w", sent, err)
			}
		}
		if err := stalled(sent); err != nil {
			return 0, 0, 0, err
		}
	}
	if err := c.Close(); err != nil {
		return 0, 0, 0, err
	}
	return sum, total, time.Since(start), nil
}

// peerRecv is the receiving Go peer. took is the time from the channel
// being accepted to ErrPeerDead after the last message.
func peerRecv(domain, service string, nsmall, nbig int) (sum uint64, count int, took time.Duration, err error) {
	d, err := exipc.Open(domain, &exipc.Options{Size: 64 << 20})
	if err != nil {
		return 0, 0, 0, err
	}
	defer d.Close()
	l, err := d.Listen(service)
	if err != nil {
		return 0, 0, 0, err
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c, err := l.Accept(ctx)
	cancel()
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.Close()
	start := time.Now()
	total := nsmall + nbig
	hs := make([]exipc.Handle, peerBatch)
	sum = fnvOffset
	seq := 0
	for seq < total {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := c.RecvBatch(ctx, hs)
		cancel()
		if err != nil {
			return 0, 0, 0, fmt.Errorf("receiving message %d of %d: %w", seq, total, err)
		}
		for _, h := range hs[:n] {
			if seq >= total {
				return 0, 0, 0, fmt.Errorf("more than %d messages", total)
			}
			b, err := d.Bytes(h)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("message %d: %w", seq, err)
			}
			if want := msgLen(seq, nsmall); len(b) != want {
				return 0, 0, 0, fmt.Errorf("message %d: length %d, want %d", seq, len(b), want)
			}
			if j := checkMsg(b, seq); j >= 0 {
				if j < 8 {
					return 0, 0, 0, fmt.Errorf("message %d: sequence field is %d (out of order?)", seq, binary.LittleEndian.Uint64(b))
				}
				return 0, 0, 0, fmt.Errorf("message %d: byte %d is %#02x, want %#02x", seq, j, b[j], byte(seq*131+j*7))
			}
			sum = fnv1a(sum, b)
			if err := d.Free(h); err != nil {
				return 0, 0, 0, fmt.Errorf("free message %d: %w", seq, err)
			}
			seq++
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if h, err := c.Recv(ctx); !errors.Is(err, exipc.ErrPeerDead) {
		if err == nil {
			return 0, 0, 0, fmt.Errorf("a message (%#x) after the last one, want ErrPeerDead", uint64(h))
		}
		return 0, 0, 0, fmt.Errorf("after the last message: %w, want ErrPeerDead", err)
	}
	return sum, total, time.Since(start), nil
}

// peerHold is a peer that is killed by the test: it connects, sends NSENT
// messages, allocates NKEEP more blocks that it keeps, says "ready" on
// stdout and waits to be killed.
func peerHold(domain, service string, nsent, nkeep int) error {
	d, err := exipc.Open(domain, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Connect(ctx, service)
	if err != nil {
		return err
	}
	if err := sendAndKeep(d, c, nsent, nkeep); err != nil {
		return err
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return errors.New("not killed within a minute")
}

// sendAndKeep allocates nsent+nkeep checked messages on c's domain, sends
// the first nsent and keeps the rest (a peer that dies holding blocks).
func sendAndKeep(d *exipc.Domain, c *exipc.Chan, nsent, nkeep int) error {
	for i := 0; i < nsent+nkeep; i++ {
		h, b, err := d.Alloc(msgLen(i, nsent+nkeep))
		if err != nil {
			return err
		}
		fillMsg(b, i)
		if i < nsent {
			if err := c.Send(h); err != nil {
				return err
			}
		}
	}
	return nil
}

// yield gives the CPU away for a moment while the ring or the heap is full.
// sched_yield, not runtime.Gosched: with no other goroutine to run, Gosched
// returns at once and the retry loop keeps pulling the ring's index cache
// line away from the receiver (measured here: the Go sender took 2.5 times
// as long with Gosched).
func yield() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }

// streamSizes returns how many small and big messages a stream carries.
func streamSizes() (nsmall, nbig int) {
	if testing.Short() || raceEnabled {
		return 100_000, 200
	}
	return 1_000_000, 1000
}

// goPeer returns the command line of a Go peer.
func goPeer(t *testing.T, role, domain, service string, nsmall, nbig int) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestPeerMain$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s %d %d", peerEnv, role, domain, service, nsmall, nbig))
	return cmd
}

var cPeer struct {
	once sync.Once
	path string
	err  error
	skip string
}

// cPeerPath returns the C peer's binary: $EXIPC_C_PEER, or native/test/peer.c
// built once into dir.
func cPeerPath(t *testing.T, dir string) string {
	cPeer.once.Do(func() {
		if p := os.Getenv(cPeerEnv); p != "" {
			cPeer.path = p
			return
		}
		if _, err := os.Stat("native/test/peer.c"); err != nil {
			cPeer.skip = "native/test/peer.c does not exist yet (and EXIPC_C_PEER is not set)"
			return
		}
		out := filepath.Join(dir, "peer")
		if err := ctest.Build("native", out, []string{"native/test/peer.c"}); err != nil {
			cPeer.err = err
			return
		}
		cPeer.path = out
	})
	if cPeer.skip != "" {
		t.Skip(cPeer.skip)
	}
	if cPeer.err != nil {
		t.Fatal(cPeer.err)
	}
	return cPeer.path
}

var checksumLine = regexp.MustCompile(`(?m)^checksum=([0-9a-f]{16}) count=(\d+)$`)

func TestStream(t *testing.T) {
	nsmall, nbig := streamSizes()
	dir := t.TempDir()
	type peerFn func(t *testing.T, role, domain, service string) *exec.Cmd
	goFn := func(t *testing.T, role, domain, service string) *exec.Cmd {
		return goPeer(t, role, domain, service, nsmall, nbig)
	}
	cFn := func(t *testing.T, role, domain, service string) *exec.Cmd {
		return exec.Command(cPeerPath(t, dir), role, domain, service, strconv.Itoa(nsmall), strconv.Itoa(nbig))
	}
	for _, tc := range []struct {
		name           string
		sender, recver peerFn
	}{
		{"go-to-go", goFn, goFn},
		{"go-to-c", goFn, cFn},
		{"c-to-go", cFn, goFn},
		{"c-to-c", cFn, cFn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			domain := uniqueName("stream")
			service := "stream"
			t.Cleanup(func() { cleanupName(t, domain) })
			recv := tc.recver(t, "recv", domain, service)
			send := tc.sender(t, "send", domain, service)
			runStream(t, recv, send, nsmall+nbig)
		})
	}
}

type peerRun struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	err            error
	done           chan struct{}
}

func startPeer(t *testing.T, name string, cmd *exec.Cmd) *peerRun {
	p := &peerRun{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s peer %v: %v", name, cmd.Args, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p
}

func runStream(t *testing.T, recvCmd, sendCmd *exec.Cmd, total int) {
	recv := startPeer(t, "receiving", recvCmd)
	start := time.Now()
	send := startPeer(t, "sending", sendCmd)
	timeout := time.After(streamWait)
	var last time.Time
	for _, p := range []*peerRun{send, recv} {
		select {
		case <-p.done:
			last = time.Now()
		case <-timeout:
			send.cmd.Process.Kill()
			recv.cmd.Process.Kill()
			<-send.done
			<-recv.done
			t.Fatalf("stream did not finish within %v\nsender stderr:\n%s\nreceiver stderr:\n%s",
				streamWait, send.stderr.String(), recv.stderr.String())
		}
	}
	elapsed := last.Sub(start)
	var sums [2]string
	failed := false
	for i, p := range []*peerRun{send, recv} {
		if p.err != nil {
			t.Errorf("%s peer %v: %v\nstdout:\n%s\nstderr:\n%s", p.name, p.cmd.Args[0], p.err, p.stdout.String(), p.stderr.String())
			failed = true
			continue
		}
		m := checksumLine.FindStringSubmatch(p.stdout.String())
		if m == nil {
			t.Errorf("%s peer printed no checksum line; stdout:\n%s", p.name, p.stdout.String())
			failed = true
			continue
		}
		if n, _ := strconv.Atoi(m[2]); n != total {
			t.Errorf("%s peer: count=%d, want %d", p.name, n, total)
		}
		sums[i] = m[0]
		if s := strings.TrimSpace(p.stderr.String()); s != "" {
			t.Logf("%s peer: %s", p.name, s)
		}
	}
	if failed {
		return
	}
	if sums[0] != sums[1] {
		t.Errorf("checksums differ: sender %q, receiver %q", sums[0], sums[1])
	}
	t.Logf("%d messages in %v: %.0f messages/s (including process start-up)", total, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds())
}

// A peer killed with SIGKILL: everything it sent is still received, then the
// survivor gets ErrPeerDead within a bounded time, and Reap (or the receiver
// noticing the death) frees the blocks the dead process owned.
func TestPeerCrash(t *testing.T) {
	d, name := openDomain(t, nil)
	service := "crash"
	l, err := d.Listen(service)
	if err != nil {
		t.Fatal(err)
	}
	const nsent, nkeep = 3, 2
	cmd := goPeer(t, "hold", name, service, nsent, nkeep)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	s, err := l.Accept(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("peer said %q, %v; stderr:\n%s", line, err, stderr.String())
	}
	if st, _ := d.Stat(); st.ProcsAlive != 2 || st.HeapBlocksUsed != nsent+nkeep {
		t.Errorf("Stat with the peer alive = %+v, want 2 processes and %d blocks", st, nsent+nkeep)
	}
	cmd.Process.Kill()
	cmd.Wait()
	killed := time.Now()

	ctx := ctxTimeout(t, 10*time.Second)
	for i := 0; i < nsent; i++ {
		h, err := s.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv %d of what the dead peer sent: %v", i, err)
		}
		b, err := d.Bytes(h)
		if err != nil || checkMsg(b, i) >= 0 {
			t.Fatalf("message %d from the dead peer: %v", i, err)
		}
		d.Free(h)
	}
	_, err = s.Recv(ctx)
	took := time.Since(killed)
	if !errors.Is(err, exipc.ErrPeerDead) {
		t.Fatalf("Recv after the peer was killed = %v, want ErrPeerDead", err)
	}
	t.Logf("the receiver learnt of the death %v after SIGKILL", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("ErrPeerDead came %v after SIGKILL", took)
	}
	if _, err := d.Reap(); err != nil {
		t.Errorf("Reap: %v", err)
	}
	st, err := d.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.ProcsAlive != 1 || st.ReapedProcs != 1 || st.HeapBlocksUsed != 0 {
		t.Errorf("Stat after the peer was reaped = %+v, want 1 process alive, 1 reaped, no blocks used", st)
	}
	if n, err := d.Reap(); n != 0 || err != nil {
		t.Errorf("second Reap = %d, %v; want 0", n, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of a channel whose peer died = %v, want nil", err)
	}
}
