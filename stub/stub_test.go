package stub_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/stub"
)

// The test ops, the same numbers as native/test/stub_peer.c.
const (
	opEcho  = 1
	opFail  = 2
	opSleep = 3
	opSum   = 4
	opNone  = 99
)

var seq atomic.Int64

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
}

// openDomain opens a fresh domain, closed and unlinked at cleanup.
func openDomain(t *testing.T, opts *exipc.Options) (*exipc.Domain, string) {
	t.Helper()
	name := uniqueName("stubtest")
	d, err := exipc.Open(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		if err := exipc.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unlink: %v", err)
		}
	})
	return d, name
}

// testServer registers the test ops on a Go server.
func testServer(d *exipc.Domain) *stub.Server {
	s := stub.NewServer(d)
	s.Handle(opEcho, func(ctx context.Context, req *stub.Request, w *stub.Writer) error {
		b, err := w.Body(len(req.Body))
		if err != nil {
			return err
		}
		copy(b, req.Body)
		return nil
	})
	s.Handle(opFail, func(ctx context.Context, req *stub.Request, w *stub.Writer) error {
		return stub.Errorf(42, "failed: %s", req.Body)
	})
	s.Handle(opSleep, func(ctx context.Context, req *stub.Request, w *stub.Writer) error {
		ms := binary.LittleEndian.Uint32(req.Body)
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	})
	s.Handle(opSum, stub.Func(func(ctx context.Context, req *stub.Request) ([]byte, error) {
		var sum uint64
		for _, c := range req.Body {
			sum += uint64(c)
		}
		return binary.LittleEndian.AppendUint64(nil, sum), nil
	}))
	return s
}

func pattern(n, i int) []byte {
	b := make([]byte, n)
	for k := range b {
		b[k] = byte(i*31 + k*7)
	}
	return b
}

func TestHeaderRoundTrip(t *testing.T) {
	b := make([]byte, stub.HeaderSize+3)
	stub.Header{Kind: stub.KindRequest, ID: 0x0102030405060708, Op: 77, Status: -5, BodyLen: 3}.Put(b)
	copy(b[stub.HeaderSize:], "abc")
	want := []byte{'x', 's', 't', 'b', 1, 0, 1, 0, 8, 7, 6, 5, 4, 3, 2, 1, 77, 0, 0, 0, 0xfb, 0xff, 0xff, 0xff, 3, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(b[:32], want) {
		t.Fatalf("header % x, want % x (the C test checks the same bytes)", b[:32], want)
	}
	h, body, err := stub.Parse(b)
	if err != nil || h.ID != 0x0102030405060708 || h.Op != 77 || h.Status != -5 || string(body) != "abc" {
		t.Fatalf("Parse = %+v %q %v", h, body, err)
	}
	for i, mut := range []func([]byte){
		func(b []byte) { b[0] ^= 1 },    // magic
		func(b []byte) { b[4] = 2 },     // version
		func(b []byte) { b[6] = 9 },     // kind
		func(b []byte) { b[24] = 4 },    // body past the block
		func(b []byte) { b[27] = 0x80 }, // huge body
	} {
		c := append([]byte(nil), b...)
		mut(c)
		if _, _, err := stub.Parse(c); !errors.Is(err, stub.ErrMalformed) {
			t.Errorf("mutation %d: Parse err = %v, want ErrMalformed", i, err)
		}
	}
	if _, _, err := stub.Parse(b[:31]); !errors.Is(err, stub.ErrMalformed) {
		t.Errorf("short block: %v", err)
	}
}

// TestInProcess exercises a Go client against a Go server in one process:
// concurrent pipelined calls, error replies, unknown ops, deadlines, a full
// queue, and no block left behind.
func TestInProcess(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 8 << 20, RingCapacity: 16})
	l, err := d.Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := testServer(d)
	var closed atomic.Int32
	srv.OnClose = func(uint64) { closed.Add(1) }
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	defer func() {
		cancel()
		<-served
		l.Close()
	}()

	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	c, err := stub.Dial(cctx, d, "svc")
	if err != nil {
		t.Fatal(err)
	}
	runCalls(t, c, 8, 200)

	// A full queue is an error at once, never a wait.
	sleepy := binary.LittleEndian.AppendUint32(nil, 300)
	var wg sync.WaitGroup
	var full atomic.Int32
	start := time.Now()
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Call(cctx, opSleep, sleepy)
			if errors.Is(err, exipc.ErrQueueFull) {
				full.Add(1)
				return
			}
			if err != nil {
				t.Errorf("sleep call: %v", err)
			}
			r.Release()
		}()
	}
	wg.Wait()
	if full.Load() == 0 {
		t.Errorf("200 slow calls on a ring of 16 with 64 in flight: no ErrQueueFull")
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("slow calls took %v", el)
	}
	c.Close()
	if _, err := c.Call(cctx, opEcho, nil); !errors.Is(err, exipc.ErrClosed) {
		t.Errorf("call after Close: %v, want ErrClosed", err)
	}
	waitBlocks(t, d, 0)
	deadline := time.Now().Add(5 * time.Second)
	for closed.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if closed.Load() != 1 {
		t.Errorf("OnClose called %d times, want 1", closed.Load())
	}
}

// runCalls makes n calls from each of g goroutines and checks every reply,
// then the error paths.
func runCalls(t *testing.T, c *stub.Client, g, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < g; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				body := pattern((w*n+i)*4099%(64<<10), w*n+i)
				var r *stub.Reply
				var err error
				for {
					r, err = c.Call(ctx, opEcho, body)
					if !errors.Is(err, exipc.ErrQueueFull) {
						break
					}
					time.Sleep(50 * time.Microsecond)
				}
				if err != nil {
					t.Errorf("echo %d/%d: %v", w, i, err)
					return
				}
				if !bytes.Equal(r.Body, body) {
					t.Errorf("echo %d/%d: %d bytes back, want %d, or contents differ", w, i, len(r.Body), len(body))
				}
				r.Release()
			}
		}()
	}
	wg.Wait()

	_, err := c.Call(ctx, opFail, []byte("boom"))
	var e *stub.Error
	if !errors.As(err, &e) || e.Status != 42 || e.Msg != "failed: boom" || e.Op != opFail {
		t.Errorf("fail op: %v (%#v)", err, e)
	}
	_, err = c.Call(ctx, opNone, nil)
	if !errors.As(err, &e) || e.Status != stub.StatusNoHandler {
		t.Errorf("unknown op: %v", err)
	}
	r, err := c.Call(ctx, opSum, []byte{1, 2, 3, 250})
	if err != nil || binary.LittleEndian.Uint64(r.Body) != 256 {
		t.Errorf("sum: %v %v", r, err)
	}
	r.Release()
	// A deadline: the call gives up, the late reply is dropped, the client
	// goes on working.
	dctx, dcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = c.Call(dctx, opSleep, binary.LittleEndian.AppendUint32(nil, 300))
	dcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow call with a 50 ms deadline: %v", err)
	}
	r, err = c.Call(ctx, opEcho, []byte("after"))
	if err != nil || string(r.Body) != "after" {
		t.Errorf("echo after a deadline: %v", err)
	}
	r.Release()
}

// waitBlocks waits until the domain holds want blocks (replies in flight
// are freed asynchronously).
func waitBlocks(t *testing.T, d *exipc.Domain, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := d.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if st.HeapBlocksUsed == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("heap blocks used %d, want %d", st.HeapBlocksUsed, want)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A client has no goroutine of its own: the callers receive their replies.
// Idle, it leaves the goroutine count where it was; with many callers every
// reply still reaches its own caller (runCalls checks each body).
func TestClientNoGoroutine(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 8 << 20, RingCapacity: 64})
	l, err := d.Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- testServer(d).Serve(ctx, l) }()
	defer func() {
		cancel()
		<-served
		l.Close()
	}()
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	settle := func() int {
		n := runtime.NumGoroutine()
		for i := 0; i < 50; i++ { // the server's goroutine for the channel may still be starting
			time.Sleep(2 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		return n
	}
	c0, err := stub.Dial(cctx, d, "svc") // the server side of a first channel settles in
	if err != nil {
		t.Fatal(err)
	}
	defer c0.Close()
	before := settle()
	c, err := stub.Dial(cctx, d, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The server adds one goroutine for the new channel; the client none.
	if after := settle(); after > before+1 {
		t.Errorf("Dial: %d goroutines, %d before: the client started %d of its own", after, before, after-before-1)
	}
	runCalls(t, c, 16, 100)
}
