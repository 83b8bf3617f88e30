package exipc_test

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exipc/exipc"
)

func TestBadDomainNames(t *testing.T) {
	bad := []string{"", strings.Repeat("a", 201), "a/b", "..", ".", ".x", "a b", "a\x00b", "é", "a*b"}
	for _, name := range bad {
		d, err := exipc.Open(name, nil)
		if err == nil {
			d.Close()
			exipc.Unlink(name)
			t.Errorf("Open(%q) succeeded, want ErrInvalid", name)
			continue
		}
		if !errors.Is(err, exipc.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", name, err)
		}
		if err := exipc.Unlink(name); !errors.Is(err, exipc.ErrInvalid) {
			t.Errorf("Unlink(%q) = %v, want ErrInvalid", name, err)
		}
	}
}

func TestLongestDomainName(t *testing.T) {
	prefix := uniqueName("long")
	name := prefix + strings.Repeat("x", 200-len(prefix))
	d, err := exipc.Open(name, &exipc.Options{Size: 1 << 20})
	if err != nil {
		t.Fatalf("Open(200-char name): %v", err)
	}
	d.Close()
	cleanupName(t, name)
}

func TestBadOptions(t *testing.T) {
	for _, o := range []exipc.Options{
		{RingCapacity: 3},
		{RingCapacity: 100},
		{RingCapacity: 1 << 17},
		{MaxBlock: 10},                     // below the smallest block
		{Size: 1 << 20, MaxBlock: 2 << 20}, // above the arena
	} {
		name := uniqueName("badopt")
		d, err := exipc.Open(name, &o)
		if err == nil {
			d.Close()
			t.Errorf("Open(%+v) succeeded, want ErrInvalid", o)
		} else if !errors.Is(err, exipc.ErrInvalid) {
			t.Errorf("Open(%+v) = %v, want ErrInvalid", o, err)
		}
		cleanupName(t, name)
	}
}

func TestBadServiceNames(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	for _, svc := range []string{"", strings.Repeat("s", 48), "a/b", "a b", "a\x00b"} {
		if l, err := d.Listen(svc); !errors.Is(err, exipc.ErrInvalid) {
			if err == nil {
				l.Close()
			}
			t.Errorf("Listen(%q) = %v, want ErrInvalid", svc, err)
		}
		ctx := ctxTimeout(t, time.Second)
		if c, err := d.Connect(ctx, svc); !errors.Is(err, exipc.ErrInvalid) {
			if err == nil {
				c.Close()
			}
			t.Errorf("Connect(%q) = %v, want ErrInvalid", svc, err)
		}
	}
}

func TestFreshStat(t *testing.T) {
	d, _ := openDomain(t, nil)
	st, err := d.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.ProcsAlive != 1 || st.HeapBlocksUsed != 0 || st.ChansBound != 0 || st.Services != 0 {
		t.Errorf("fresh Stat = %+v, want ProcsAlive 1, no blocks, channels or services", st)
	}
	if st.HeapBytesTotal == 0 {
		t.Errorf("fresh Stat = %+v, want HeapBytesTotal > 0", st)
	}
	c, s, l := pair(t, d)
	h, _, err := d.Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	st, _ = d.Stat()
	if st.ChansBound != 1 || st.Services != 1 || st.HeapBlocksUsed != 1 {
		t.Errorf("Stat with one channel, service and block = %+v", st)
	}
	d.Free(h)
	c.Close()
	s.Close()
	l.Close()
	st, _ = d.Stat()
	if st.ChansBound != 0 || st.Services != 0 {
		t.Errorf("Stat after closing everything = %+v, want no channels or services", st)
	}
}

func TestUnlink(t *testing.T) {
	name := uniqueName("unlink")
	d, err := exipc.Open(name, &exipc.Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fi, err := os.Stat(shmPath(name))
	if err != nil {
		t.Fatalf("after Open: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode of %s = %v, want 0600", shmPath(name), perm)
	}
	if err := exipc.Unlink(name); err != nil {
		t.Fatalf("Unlink: %v", err)
	}
	if _, err := os.Stat(shmPath(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Unlink, stat %s: %v", shmPath(name), err)
	}
	err = exipc.Unlink(name)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second Unlink = %v, want fs.ErrNotExist", err)
	}
	// The open domain keeps working after Unlink.
	h, b, err := d.Alloc(10)
	if err != nil {
		t.Fatalf("Alloc after Unlink: %v", err)
	}
	b[9] = 1
	if err := d.Free(h); err != nil {
		t.Fatalf("Free after Unlink: %v", err)
	}
}

func TestAttach(t *testing.T) {
	// A second Open of an existing domain attaches, with the domain's own
	// options (the ring capacity set at creation wins).
	d, name := openDomain(t, &exipc.Options{Size: 1 << 20, RingCapacity: 4})
	_ = d
	d2, err := exipc.Open(name, nil)
	if err != nil {
		t.Skipf("second Open in one process: %v", err)
	}
	defer d2.Close()
	c, s, _ := pair(t, d2)
	defer c.Close()
	defer s.Close()
	n := 0
	for ; n < 100; n++ {
		h, _, err := d2.Alloc(8)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(h); err != nil {
			d2.Free(h)
			break
		}
	}
	if n != 4 {
		t.Errorf("attached domain took %d handles, want the creator's RingCapacity 4", n)
	}
}

func TestHandles(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	h, b, err := d.Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 100 {
		t.Fatalf("Alloc(100) gave %d bytes", len(b))
	}
	for i := range b {
		b[i] = byte(i)
	}
	if h == 0 {
		t.Fatalf("Alloc gave handle 0")
	}
	b2, err := d.Bytes(h)
	if err != nil || len(b2) != 100 || &b2[0] != &b[0] {
		t.Fatalf("Bytes(live handle) = %d bytes, %v; want the same 100 bytes", len(b2), err)
	}

	bad := func(what string, x exipc.Handle) {
		t.Helper()
		if x == h {
			return
		}
		if _, err := d.Bytes(x); !errors.Is(err, exipc.ErrBadHandle) {
			t.Errorf("Bytes(%s %#x) = %v, want ErrBadHandle", what, uint64(x), err)
		}
		if err := d.Free(x); !errors.Is(err, exipc.ErrBadHandle) {
			t.Errorf("Free(%s %#x) = %v, want ErrBadHandle", what, uint64(x), err)
		}
	}
	bad("zero", 0)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1000; i++ {
		bad("random", exipc.Handle(r.Uint64()))
	}
	for bit := 0; bit < 64; bit++ {
		bad("bit-flipped", h^exipc.Handle(1)<<bit)
	}
	// The live block is untouched by all this.
	if b2, err := d.Bytes(h); err != nil || b2[99] != 99 {
		t.Fatalf("Bytes(live handle) after bad calls: %v", err)
	}

	if err := d.Free(h); err != nil {
		t.Fatalf("Free: %v", err)
	}
	bad("freed", h)
	if err := d.Free(h); !errors.Is(err, exipc.ErrBadHandle) {
		t.Errorf("double Free = %v, want ErrBadHandle", err)
	}

	// Stale: free, then allocate until the block is reused (same size
	// class); the old handle must stay refused.
	h1, _, err := d.Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	d.Free(h1)
	var live []exipc.Handle
	for i := 0; i < 64; i++ {
		h2, _, err := d.Alloc(100)
		if err != nil {
			t.Fatal(err)
		}
		if h2 == h1 {
			t.Fatalf("a reused block got its old handle back %#x", uint64(h1))
		}
		live = append(live, h2)
	}
	bad("stale", h1)
	bad("stale", h)
	for _, x := range live {
		if _, err := d.Bytes(x); err != nil {
			t.Errorf("Bytes(live %#x): %v", uint64(x), err)
		}
		if err := d.Free(x); err != nil {
			t.Errorf("Free(live %#x): %v", uint64(x), err)
		}
	}
	st, _ := d.Stat()
	if st.HeapBlocksUsed != 0 {
		t.Errorf("HeapBlocksUsed = %d after freeing everything, want 0", st.HeapBlocksUsed)
	}
}

func TestAllocSizes(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 4 << 20, MaxBlock: 64 << 10})
	for _, n := range []int{0, -1} {
		if _, _, err := d.Alloc(n); !errors.Is(err, exipc.ErrInvalid) {
			t.Errorf("Alloc(%d) = %v, want ErrInvalid", n, err)
		}
	}
	if _, _, err := d.Alloc(64<<10 + 1); !errors.Is(err, exipc.ErrTooLarge) {
		t.Errorf("Alloc(MaxBlock+1) = %v, want ErrTooLarge", err)
	}
	for _, n := range []int{1, 63, 64, 65, 1000, 4096, 64 << 10} {
		h, b, err := d.Alloc(n)
		if err != nil {
			t.Errorf("Alloc(%d): %v", n, err)
			continue
		}
		if len(b) != n {
			t.Errorf("Alloc(%d) gave %d bytes", n, len(b))
		}
		b[0], b[n-1] = 1, 2
		if b2, _ := d.Bytes(h); len(b2) != n {
			t.Errorf("Bytes after Alloc(%d) gave %d bytes", n, len(b2))
		}
		if err := d.Free(h); err != nil {
			t.Errorf("Free: %v", err)
		}
	}
}

func TestHeapFull(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 64 << 10, MaxBlock: 4 << 10})
	var hs []exipc.Handle
	var err error
	for i := 0; i < 10000; i++ {
		var h exipc.Handle
		h, _, err = d.Alloc(1000)
		if err != nil {
			break
		}
		hs = append(hs, h)
	}
	if !errors.Is(err, exipc.ErrHeapFull) {
		t.Fatalf("after %d blocks of 1000 bytes in a 64 KiB heap: %v, want ErrHeapFull", len(hs), err)
	}
	if len(hs) == 0 || len(hs) > 64 {
		t.Errorf("a 64 KiB heap held %d blocks of 1000 bytes", len(hs))
	}
	for _, h := range hs {
		if err := d.Free(h); err != nil {
			t.Fatalf("Free: %v", err)
		}
	}
	// Everything freed can be had again.
	for i := range hs {
		h, _, err := d.Alloc(1000)
		if err != nil {
			t.Fatalf("Alloc %d of %d after freeing all: %v", i, len(hs), err)
		}
		hs[i] = h
	}
	for _, h := range hs {
		d.Free(h)
	}
}

func TestRingCapacity(t *testing.T) {
	const capacity = 8
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20, RingCapacity: capacity})
	c, s, _ := pair(t, d)
	var sent []exipc.Handle
	for i := 0; i < capacity; i++ {
		h, b, err := d.Alloc(16)
		if err != nil {
			t.Fatal(err)
		}
		b[0] = byte(i)
		if err := c.Send(h); err != nil {
			t.Fatalf("Send %d of %d: %v", i+1, capacity, err)
		}
		sent = append(sent, h)
	}
	// In flight: no longer ours.
	if _, err := d.Bytes(sent[0]); !errors.Is(err, exipc.ErrBadHandle) {
		t.Errorf("Bytes(handle in flight) = %v, want ErrBadHandle", err)
	}
	if err := d.Free(sent[0]); !errors.Is(err, exipc.ErrBadHandle) {
		t.Errorf("Free(handle in flight) = %v, want ErrBadHandle", err)
	}
	extra, b, err := d.Alloc(16)
	if err != nil {
		t.Fatal(err)
	}
	b[0] = 0xee
	if err := c.Send(extra); err != exipc.ErrQueueFull {
		t.Fatalf("Send on a full ring = %v, want the bare ErrQueueFull", err)
	}
	if n, err := c.SendBatch([]exipc.Handle{extra}); n != 0 || err != exipc.ErrQueueFull {
		t.Fatalf("SendBatch on a full ring = %d, %v; want 0, ErrQueueFull", n, err)
	}
	// The refused handle is still ours.
	if b, err := d.Bytes(extra); err != nil || b[0] != 0xee {
		t.Fatalf("Bytes(refused handle) = %v", err)
	}
	if err := d.Free(extra); err != nil {
		t.Fatalf("Free(refused handle): %v", err)
	}
	ctx := ctxTimeout(t, 5*time.Second)
	for i := 0; i < capacity; i++ {
		h, err := s.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		if h != sent[i] {
			t.Errorf("Recv %d = %#x, want %#x (order)", i, uint64(h), uint64(sent[i]))
		}
		b, err := d.Bytes(h)
		if err != nil || len(b) != 16 || b[0] != byte(i) {
			t.Fatalf("Bytes(received %d) = %v, %v", i, b, err)
		}
		if err := d.Free(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.TryRecv(); err != exipc.ErrEmpty {
		t.Errorf("TryRecv on an empty ring = %v, want the bare ErrEmpty", err)
	}
}

func TestSendBatchPartial(t *testing.T) {
	const capacity = 8
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20, RingCapacity: capacity})
	c, s, _ := pair(t, d)
	alloc := func(n int) []exipc.Handle {
		hs := make([]exipc.Handle, n)
		for i := range hs {
			h, _, err := d.Alloc(32)
			if err != nil {
				t.Fatal(err)
			}
			hs[i] = h
		}
		return hs
	}
	hs := alloc(5)
	if n, err := c.SendBatch(hs); n != 5 || err != nil {
		t.Fatalf("SendBatch(5) into an empty ring of 8 = %d, %v", n, err)
	}
	hs2 := alloc(5)
	n, err := c.SendBatch(hs2)
	if n != 3 || err != nil {
		t.Fatalf("SendBatch(5) into a ring holding 5 of 8 = %d, %v; want 3, nil", n, err)
	}
	if n, err := c.SendBatch(hs2[3:]); n != 0 || err != exipc.ErrQueueFull {
		t.Fatalf("SendBatch into a full ring = %d, %v; want 0, ErrQueueFull", n, err)
	}
	if n, err := c.SendBatch(nil); n != 0 || err != nil {
		t.Errorf("SendBatch(nil) = %d, %v; want 0, nil", n, err)
	}
	for _, h := range hs2[3:] {
		if err := d.Free(h); err != nil {
			t.Errorf("Free(handle a batch left with the sender): %v", err)
		}
	}
	want := append(hs, hs2[:3]...)
	got := make([]exipc.Handle, 16)
	ctx := ctxTimeout(t, 5*time.Second)
	m, err := s.RecvBatch(ctx, got)
	if err != nil || m != capacity {
		t.Fatalf("RecvBatch = %d, %v; want %d", m, err, capacity)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("RecvBatch[%d] = %#x, want %#x", i, uint64(got[i]), uint64(want[i]))
		}
		d.Free(got[i])
	}
	if n, err := s.RecvBatch(ctxTimeout(t, 20*time.Millisecond), got); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RecvBatch on an empty ring = %d, %v; want DeadlineExceeded", n, err)
	}
}

func TestRecvDeadline(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	c, s, _ := pair(t, d)
	_ = c
	const wait = 30 * time.Millisecond
	start := time.Now()
	_, err := s.Recv(ctxTimeout(t, wait))
	el := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv with a deadline = %v, want DeadlineExceeded", err)
	}
	if el < wait || el > wait+time.Second {
		t.Errorf("Recv with a %v deadline returned after %v", wait, el)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := s.Recv(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Recv with a cancelled ctx = %v, want Canceled", err)
	}
	// A done ctx fails at once.
	if _, err := s.Recv(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Recv with a done ctx = %v, want Canceled", err)
	}
}

func TestRecvWakes(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	c, s, _ := pair(t, d)
	got := make(chan error, 1)
	go func() {
		h, err := s.Recv(context.Background())
		if err == nil {
			err = d.Free(h)
		}
		got <- err
	}()
	time.Sleep(30 * time.Millisecond) // let it park
	h, _, _ := d.Alloc(8)
	if err := c.Send(h); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("blocked Recv: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Recv did not wake up on Send")
	}
}

func TestConnectNoService(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	const wait = 50 * time.Millisecond
	start := time.Now()
	_, err := d.Connect(ctxTimeout(t, wait), "nosuch")
	el := time.Since(start)
	if !errors.Is(err, exipc.ErrNoService) {
		t.Fatalf("Connect to an absent service = %v, want ErrNoService", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect to an absent service = %v, want it to match DeadlineExceeded too", err)
	}
	if want := `exipc: connect "nosuch": service does not exist`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error text %q, want it to start with %q", err.Error(), want)
	}
	var xe *exipc.Error
	if !errors.As(err, &xe) || xe.Op != "connect" || xe.Name != "nosuch" {
		t.Errorf("errors.As(*exipc.Error) = %+v", xe)
	}
	if el < wait || el > wait+time.Second {
		t.Errorf("Connect with a %v deadline returned after %v", wait, el)
	}
	// No deadline: waits until cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	if _, err := d.Connect(ctx, "nosuch"); !errors.Is(err, context.Canceled) {
		t.Errorf("Connect with a cancelled ctx = %v, want Canceled", err)
	}
}

func TestConnectWaitsForService(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	svc := uniqueName("late")
	type result struct {
		c   *exipc.Chan
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := d.Connect(ctxTimeout(t, 10*time.Second), svc)
		done <- result{c, err}
	}()
	time.Sleep(50 * time.Millisecond)
	l, err := d.Listen(svc)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Connect to a service that appeared later: %v", r.err)
	}
	s, err := l.Accept(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	h, _, _ := d.Alloc(8)
	if err := r.c.Send(h); err != nil {
		t.Fatal(err)
	}
	if h2, err := s.TryRecv(); err != nil || h2 != h {
		t.Fatalf("TryRecv = %#x, %v; want %#x", uint64(h2), err, uint64(h))
	}
	d.Free(h)
}

func TestAccept(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	l, err := d.Listen(uniqueName("acc"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryAccept(); err != exipc.ErrEmpty {
		t.Errorf("TryAccept with none pending = %v, want ErrEmpty", err)
	}
	start := time.Now()
	if _, err := l.Accept(ctxTimeout(t, 20*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Accept with a deadline = %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Errorf("Accept returned after %v, before its deadline", el)
	}
}

func TestListenTwice(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	svc := uniqueName("twice")
	l, err := d.Listen(svc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Listen(svc)
	if !errors.Is(err, exipc.ErrServiceExists) {
		t.Fatalf("second Listen = %v, want ErrServiceExists", err)
	}
	if want := `exipc: listen "` + svc + `": service already exists`; err.Error() != want {
		t.Errorf("error text %q, want %q", err.Error(), want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := d.Listen(svc)
	if err != nil {
		t.Fatalf("Listen after the first listener closed: %v", err)
	}
	l2.Close()
}

func TestListenerCloseRefusesPending(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	svc := uniqueName("pending")
	l, err := d.Listen(svc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Connect(ctxTimeout(t, time.Second), svc)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := c.Recv(ctxTimeout(t, 5*time.Second)); !errors.Is(err, exipc.ErrPeerDead) {
		t.Errorf("Recv on a channel whose listener closed before accepting = %v, want ErrPeerDead", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestPeerClose(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	c, s, _ := pair(t, d)
	for i := 0; i < 3; i++ {
		h, b, err := d.Alloc(8)
		if err != nil {
			t.Fatal(err)
		}
		b[0] = byte(i)
		if err := c.Send(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close with messages in flight: %v", err)
	}
	ctx := ctxTimeout(t, 5*time.Second)
	for i := 0; i < 3; i++ {
		h, err := s.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv %d after the peer closed: %v (nothing sent may be lost)", i, err)
		}
		if b, err := d.Bytes(h); err != nil || b[0] != byte(i) {
			t.Fatalf("message %d: %v %v", i, b, err)
		}
		d.Free(h)
	}
	if _, err := s.Recv(ctx); !errors.Is(err, exipc.ErrPeerDead) {
		t.Errorf("Recv after draining = %v, want ErrPeerDead", err)
	}
	if _, err := s.TryRecv(); !errors.Is(err, exipc.ErrPeerDead) {
		t.Errorf("TryRecv after draining = %v, want ErrPeerDead", err)
	}
	h, _, _ := d.Alloc(8)
	if err := s.Send(h); !errors.Is(err, exipc.ErrPeerDead) {
		t.Errorf("Send to a closed peer = %v, want ErrPeerDead", err)
	}
	if err := d.Free(h); err != nil {
		t.Errorf("Free(handle refused by a dead peer): %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of a channel whose peer closed = %v, want nil", err)
	}
	st, _ := d.Stat()
	if st.ChansBound != 0 || st.HeapBlocksUsed != 0 {
		t.Errorf("Stat after both ends closed = %+v", st)
	}
}

func TestClosed(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	c, s, l := pair(t, d)
	h, _, _ := d.Alloc(8)

	closedChan := func(who string, ch *exipc.Chan) {
		t.Helper()
		ctx := ctxTimeout(t, time.Second)
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, exipc.ErrClosed) {
				t.Errorf("%s.%s on a closed Chan = %v, want ErrClosed", who, op, err)
			}
		}
		check("Send", ch.Send(h))
		_, err := ch.SendBatch([]exipc.Handle{h})
		check("SendBatch", err)
		_, err = ch.SendBatch(nil)
		check("SendBatch(nil)", err)
		_, err = ch.Recv(ctx)
		check("Recv", err)
		_, err = ch.TryRecv()
		check("TryRecv", err)
		_, err = ch.RecvBatch(ctx, make([]exipc.Handle, 4))
		check("RecvBatch", err)
		check("Close", ch.Close())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	closedChan("client", c)

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(ctxTimeout(t, time.Second)); !errors.Is(err, exipc.ErrClosed) {
		t.Errorf("Accept on a closed Listener = %v, want ErrClosed", err)
	}
	if _, err := l.TryAccept(); !errors.Is(err, exipc.ErrClosed) {
		t.Errorf("TryAccept on a closed Listener = %v, want ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, exipc.ErrClosed) {
		t.Errorf("second Listener.Close = %v, want ErrClosed", err)
	}

	// Closing the domain closes what is still open on it.
	l2, err := d.Listen(uniqueName("still"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Domain.Close: %v", err)
	}
	closedChan("server", s)
	if _, err := l2.Accept(ctxTimeout(t, time.Second)); !errors.Is(err, exipc.ErrClosed) {
		t.Errorf("Accept on a Listener of a closed Domain = %v, want ErrClosed", err)
	}
	if err := l2.Close(); !errors.Is(err, exipc.ErrClosed) {
		t.Errorf("Listener.Close after Domain.Close = %v, want ErrClosed", err)
	}
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, exipc.ErrClosed) {
			t.Errorf("Domain.%s on a closed Domain = %v, want ErrClosed", op, err)
		}
	}
	_, err = d.Listen("x")
	check("Listen", err)
	_, err = d.Connect(ctxTimeout(t, time.Second), "x")
	check("Connect", err)
	_, _, err = d.Alloc(8)
	check("Alloc", err)
	_, err = d.Bytes(h)
	check("Bytes", err)
	check("Free", d.Free(h))
	_, err = d.Reap()
	check("Reap", err)
	_, err = d.Stat()
	check("Stat", err)
	check("Close", d.Close())
}

// A Close must wake calls blocked on the object and make them fail with
// ErrClosed, within a wait slice.
func TestCloseWakesBlocked(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	c, s, l := pair(t, d)
	_ = c
	errs := make(chan error, 4)
	go func() { _, err := s.Recv(context.Background()); errs <- err }()
	go func() { _, err := s.RecvBatch(context.Background(), make([]exipc.Handle, 8)); errs <- err }()
	go func() { _, err := l.Accept(context.Background()); errs <- err }()
	go func() { _, err := d.Connect(context.Background(), "never"); errs <- err }()
	time.Sleep(30 * time.Millisecond)
	start := time.Now()
	if err := d.Close(); err != nil {
		t.Fatalf("Domain.Close with calls blocked: %v", err)
	}
	for i := 0; i < 4; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, exipc.ErrClosed) {
				t.Errorf("blocked call after Close = %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a blocked call did not return after Domain.Close")
		}
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Close and the blocked calls took %v", el)
	}
}

func TestConcurrentUse(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 8 << 20, RingCapacity: 64})
	c, s, _ := pair(t, d)
	const senders, each = 4, 2000
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				var h exipc.Handle
				var b []byte
				var err error
				for {
					h, b, err = d.Alloc(8)
					if err != exipc.ErrHeapFull && !errors.Is(err, exipc.ErrHeapFull) {
						break
					}
					runtime.Gosched()
				}
				if err != nil {
					t.Errorf("Alloc: %v", err)
					return
				}
				b[0], b[1] = byte(g), byte(i)
				b[2], b[3] = byte(i>>8), 0
				for {
					err = c.Send(h)
					if err != exipc.ErrQueueFull {
						break
					}
					runtime.Gosched()
				}
				if err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		}()
	}
	// Two receiving goroutines share the receiving end.
	var mu sync.Mutex
	seen := make(map[[2]int]bool)
	var rwg sync.WaitGroup
	for r := 0; r < 2; r++ {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for {
				h, err := s.Recv(context.Background())
				if errors.Is(err, exipc.ErrPeerDead) {
					return
				}
				if err != nil {
					t.Errorf("Recv: %v", err)
					return
				}
				b, err := d.Bytes(h)
				if err != nil {
					t.Errorf("Bytes: %v", err)
					return
				}
				k := [2]int{int(b[0]), int(b[1]) | int(b[2])<<8}
				d.Free(h)
				mu.Lock()
				if seen[k] {
					t.Errorf("message %v received twice", k)
				}
				seen[k] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	c.Close()
	rwg.Wait()
	if len(seen) != senders*each {
		t.Errorf("received %d distinct messages, want %d", len(seen), senders*each)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	name := uniqueName("leak")
	d, err := exipc.Open(name, &exipc.Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanupName(t, name)
	c, s, l := pair(t, d)
	s.Recv(ctxTimeout(t, 10*time.Millisecond))
	l.Accept(ctxTimeout(t, 10*time.Millisecond))
	d.Connect(ctxTimeout(t, 10*time.Millisecond), "absent")
	h, _, _ := d.Alloc(8)
	c.Send(h)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if n := settleGoroutines(before); n > before {
		t.Errorf("%d goroutines after Close, %d before Open", n, before)
	}
}

func TestErrorText(t *testing.T) {
	_, err := exipc.Open("a/b", nil)
	if want := `exipc: open "a/b": invalid argument`; err == nil || err.Error() != want {
		t.Errorf("Open(\"a/b\") error text %q, want %q", err, want)
	}
	if got := exipc.ErrQueueFull.Error(); got != "exipc: queue full" {
		t.Errorf("ErrQueueFull text %q", got)
	}
	err = exipc.Unlink(uniqueName("absent"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), `exipc: unlink "absent-`) {
		t.Errorf("Unlink(absent) = %v", err)
	}
}
