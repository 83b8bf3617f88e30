package conn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/exipc/exipc"
)

var seq atomic.Int64

func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
}

// domain opens a fresh domain, closed and unlinked at the end of the test.
func domain(t testing.TB, opts *exipc.Options) (*exipc.Domain, string) {
	t.Helper()
	name := unique("conntest")
	d, err := exipc.Open(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		if err := exipc.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unlink %s: %v", name, err)
		}
	})
	return d, name
}

// pipe returns a client and a server Conn over one channel of d.
func pipe(t testing.TB, d *exipc.Domain) (client, server net.Conn) {
	t.Helper()
	svc := unique("svc")
	l, err := Listen(d, svc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err = Dial(ctx, d, svc)
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// writeRandom writes total bytes of a seeded stream in writes of random
// sizes (1 B to 300 KiB) and returns its SHA-256.
func writeRandom(w io.Writer, seed int64, total int) ([32]byte, error) {
	r := rand.New(rand.NewSource(seed))
	h := sha256.New()
	buf := make([]byte, 300<<10)
	for total > 0 {
		n := 1 + r.Intn(len(buf))
		if r.Intn(4) > 0 {
			n = 1 + r.Intn(200) // mostly small: exercises coalescing
		}
		n = min(n, total)
		r.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return [32]byte{}, err
		}
		total -= n
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s, nil
}

// readAll reads until an error and returns the bytes' count and SHA-256,
// reading in random sizes.
func readAll(r io.Reader, seed int64) (int, [32]byte, error) {
	rr := rand.New(rand.NewSource(seed))
	h := sha256.New()
	buf := make([]byte, 100<<10)
	total := 0
	for {
		n, err := r.Read(buf[:1+rr.Intn(len(buf))])
		h.Write(buf[:n])
		total += n
		if err != nil {
			var s [32]byte
			copy(s[:], h.Sum(nil))
			return total, s, err
		}
	}
}

func TestStreamAndEOF(t *testing.T) {
	d, _ := domain(t, nil)
	c, s := pipe(t, d)
	const total = 24 << 20
	done := make(chan error, 1)
	var sum [32]byte
	go func() {
		var err error
		sum, err = writeRandom(c, 1, total)
		if err == nil {
			err = c.Close()
		}
		done <- err
	}()
	n, got, err := readAll(s, 2)
	if err != io.EOF {
		t.Fatalf("read ended with %v after %d bytes, want io.EOF", err, n)
	}
	if werr := <-done; werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	if n != total || got != sum {
		t.Fatalf("read %d bytes (sum %x), want %d (sum %x)", n, got[:4], total, sum[:4])
	}
	// io.EOF again, and nothing left in the heap once the server closes.
	if _, err := s.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("second read: %v, want io.EOF", err)
	}
	s.Close()
	waitHeapEmpty(t, d)
}

func waitHeapEmpty(t *testing.T, d *exipc.Domain) {
	t.Helper()
	var st exipc.Stat
	for i := 0; i < 200; i++ {
		st, _ = d.Stat()
		if st.HeapBlocksUsed == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d heap blocks still used after both ends closed", st.HeapBlocksUsed)
}

// A reader that does not read: Write blocks (never fails) until its
// deadline; what it counted arrives once the reader reads.
func TestBackPressure(t *testing.T) {
	d, _ := domain(t, &exipc.Options{Size: 4 << 20, RingCapacity: 16})
	c, s := pipe(t, d)
	buf := bytes.Repeat([]byte{7}, 100<<10)
	c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	sent := 0
	var err error
	for i := 0; i < 1000; i++ {
		var n int
		n, err = c.Write(buf)
		sent += n
		if err != nil {
			break
		}
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a reader that does not read: %v after %d bytes, want a deadline error", err, sent)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%v: not a net.Error with Timeout()", err)
	}
	if sent == 0 || sent > 4<<20 {
		t.Fatalf("%d bytes accepted before blocking", sent)
	}
	st, _ := d.Stat()
	t.Logf("%d bytes accepted before Write blocked; heap %d of %d bytes used", sent, st.HeapBytesUsed, st.HeapBytesTotal)
	type res struct {
		n   int
		err error
	}
	rc := make(chan res, 1)
	go func() { n, _, err := readAll(s, 3); rc <- res{n, err} }()
	c.SetWriteDeadline(time.Time{})
	if _, err := c.Write([]byte{9}); err != nil {
		t.Fatalf("Write after the deadline was lifted: %v", err)
	}
	c.Close()
	r := <-rc
	if n, err := r.n, r.err; err != io.EOF || n != sent+1 {
		t.Fatalf("reader got %d bytes and %v, want %d and io.EOF", n, err, sent+1)
	}
}

func TestCloseUnblocks(t *testing.T) {
	d, _ := domain(t, &exipc.Options{RingCapacity: 16})
	c, s := pipe(t, d)
	errs := make(chan error, 2)
	go func() { _, err := c.Read(make([]byte, 10)); errs <- err }()
	go func() {
		var err error
		for err == nil {
			_, err = c.Write(make([]byte, 64<<10))
		}
		errs <- err
	}()
	time.Sleep(100 * time.Millisecond)
	c.Close()
	for i := 0; i < 2; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("pending call after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not unblock a pending call")
		}
	}
	if _, err := c.Read(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if _, err := c.Write([]byte{1}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	_ = s
}

func TestCloseWrite(t *testing.T) {
	d, _ := domain(t, nil)
	c, s := pipe(t, d)
	if _, err := c.Write([]byte("question")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*Conn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after CloseWrite: %v", err)
	}
	q, err := io.ReadAll(s)
	if err != nil || string(q) != "question" {
		t.Fatalf("server read %q, %v", q, err)
	}
	if _, err := s.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	a, err := io.ReadAll(c)
	if err != nil || string(a) != "answer" {
		t.Fatalf("client read %q, %v", a, err)
	}
}

func TestDeadlines(t *testing.T) {
	d, _ := domain(t, nil)
	c, _ := pipe(t, d)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	t0 := time.Now()
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(t0) < 40*time.Millisecond {
		t.Fatalf("Read: %v after %v", err, time.Since(t0))
	}
	// Moving the deadline while Read waits takes effect.
	c.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	c.SetReadDeadline(time.Now())
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline set during Read did not end it")
	}
}

// A hostile peer sends blocks whose header lies: the reader gets
// ErrCorrupt and does not read past the block.
func TestCorruptBlock(t *testing.T) {
	for _, tc := range []struct {
		name string
		fill func(b []byte)
	}{
		{"length", func(b []byte) {
			binary.LittleEndian.PutUint32(b[0:], 1<<20)
			binary.LittleEndian.PutUint32(b[4:], kindData)
		}},
		{"kind", func(b []byte) {
			binary.LittleEndian.PutUint32(b[0:], 4)
			binary.LittleEndian.PutUint32(b[4:], 0xdead)
		}},
		{"short", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := domain(t, nil)
			svc := unique("svc")
			l, err := Listen(d, svc)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			raw, err := d.Connect(context.Background(), svc)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			s, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			size := 16
			if tc.fill == nil {
				size = 4
			}
			h, b, err := d.Alloc(size)
			if err != nil {
				t.Fatal(err)
			}
			if tc.fill != nil {
				tc.fill(b)
			}
			if err := raw.Send(h); err != nil {
				t.Fatal(err)
			}
			n, err := s.Read(make([]byte, 64))
			if n != 0 || !errors.Is(err, exipc.ErrCorrupt) {
				t.Fatalf("Read of a bad block: %d, %v; want 0 and ErrCorrupt", n, err)
			}
		})
	}
}

// ---- across two processes ---------------------------------------------------------

const helperEnv = "EXIPC_CONN_HELPER"

// TestHelper is the other process of the cross-process tests (it does
// nothing unless started by one of them).
func TestHelper(t *testing.T) {
	arg := os.Getenv(helperEnv)
	if arg == "" {
		t.Skip("the helper process of the cross-process tests")
	}
	f := strings.Fields(arg)
	role, name, svc := f[0], f[1], f[2]
	d, err := exipc.Open(name, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	l, err := Listen(d, svc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	c, err := l.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	switch role {
	case "echo": // copy back until EOF, then close
		if _, err := io.Copy(c, c); err != nil {
			fmt.Fprintln(os.Stderr, "helper: echo:", err)
			os.Exit(1)
		}
		c.Close()
	case "write": // write N seeded bytes, close
		n, _ := strconv.Atoi(f[3])
		if _, err := writeRandom(c, 7, n); err != nil {
			fmt.Fprintln(os.Stderr, "helper: write:", err)
			os.Exit(1)
		}
		c.Close()
	case "hang": // write a little, then wait to be killed
		c.Write([]byte("hello"))
		time.Sleep(time.Minute)
	}
	d.Close()
	os.Exit(0)
}

// startHelper starts this test binary as the helper process in ROLE,
// listening on a fresh service of domain NAME, and waits until it listens.
func startHelper(t *testing.T, role, name string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	svc := unique("x")
	cmd := exec.Command(exe, "-test.run=^TestHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(append([]string{role, name, svc}, extra...), " "))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, 6)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("helper did not start: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)
	return cmd, svc
}

func dialT(t *testing.T, d *exipc.Domain, svc string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, d, svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Bytes written in random sizes come back, in order, from another process;
// CloseWrite makes the echo end and the client read io.EOF.
func TestCrossProcessEcho(t *testing.T) {
	d, name := domain(t, nil)
	cmd, svc := startHelper(t, "echo", name)
	c := dialT(t, d, svc)
	total := 16 << 20
	if testing.Short() {
		total = 4 << 20
	}
	var sum [32]byte
	werr := make(chan error, 1)
	go func() {
		var err error
		if sum, err = writeRandom(c, 11, total); err == nil {
			err = c.(*Conn).CloseWrite()
		}
		werr <- err
	}()
	n, got, err := readAll(c, 12)
	if err != io.EOF {
		t.Fatalf("read %d bytes, then %v; want io.EOF", n, err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if n != total || got != sum {
		t.Fatalf("echo: %d bytes (sum %x), want %d (sum %x)", n, got[:4], total, sum[:4])
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// A peer that writes and closes: everything, then io.EOF.
func TestCrossProcessEOF(t *testing.T) {
	d, name := domain(t, nil)
	const total = 3<<20 + 17
	_, svc := startHelper(t, "write", name, strconv.Itoa(total))
	c := dialT(t, d, svc)
	want, _ := writeRandom(io.Discard, 7, total)
	n, got, err := readAll(c, 5)
	if err != io.EOF || n != total || got != want {
		t.Fatalf("read %d bytes (sum ok %v), %v; want %d and io.EOF", n, got == want, err, total)
	}
}

// A peer killed with SIGKILL: what it wrote, then ErrPeerDead, not io.EOF;
// Write fails the same way.
func TestCrossProcessKill(t *testing.T) {
	d, name := domain(t, nil)
	cmd, svc := startHelper(t, "hang", name)
	c := dialT(t, d, svc)
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var rerr error
	var took time.Duration
	go func() {
		defer wg.Done()
		t0 := time.Now()
		_, rerr = c.Read(buf)
		took = time.Since(t0)
	}()
	time.Sleep(50 * time.Millisecond)
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	wg.Wait()
	if rerr == io.EOF || !errors.Is(rerr, exipc.ErrPeerDead) {
		t.Fatalf("Read after the peer's SIGKILL: %v, want ErrPeerDead", rerr)
	}
	t.Logf("Read blocked %v; ErrPeerDead %v after the kill", took, time.Since(t0))
	if _, err := c.Write([]byte("x")); !errors.Is(err, exipc.ErrPeerDead) {
		t.Fatalf("Write after the peer's SIGKILL: %v, want ErrPeerDead", err)
	}
}
