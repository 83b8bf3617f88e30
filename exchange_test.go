package exipc_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/exipc/exipc"
)

// echo serves ch with SendRecvBytes until its peer goes: each request is
// answered with a copy of itself, the request freed in the same call.
func echo(t testing.TB, d *exipc.Domain, ch *exipc.Chan) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var done, out exipc.Handle
	for {
		h, b, err := ch.SendRecvBytes(ctx, done, out)
		if err != nil {
			if !errors.Is(err, exipc.ErrPeerDead) {
				t.Errorf("echo: SendRecvBytes: %v", err)
			}
			return
		}
		o, ob, err := d.Alloc(len(b))
		if err != nil {
			t.Errorf("echo: Alloc: %v", err)
			return
		}
		copy(ob, b)
		done, out = h, o
	}
}

// call makes n calls on ch with SendCopyRecvBytes and checks every reply.
func call(t testing.TB, d *exipc.Domain, ch *exipc.Chan, tag string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var head [8]byte
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(head[:], uint64(i))
		sent, h, b, err := ch.SendCopyRecvBytes(ctx, head[:], []byte(tag))
		if sent == 0 || err != nil {
			t.Errorf("%s: call %d: sent %v, %v", tag, i, sent, err)
			return
		}
		if len(b) != 8+len(tag) || binary.LittleEndian.Uint64(b) != uint64(i) || string(b[8:]) != tag {
			t.Errorf("%s: call %d: reply %q", tag, i, b)
		}
		if err := d.Free(h); err != nil {
			t.Errorf("%s: Free: %v", tag, err)
		}
	}
}

// Request and response with the fused steps, one pair and then more
// callers than Ps (the waits that arm in the same call): every reply is the
// caller's own, none is lost, and nothing stays allocated.
func TestSendRecvBytes(t *testing.T) {
	for _, pairs := range []int{1, 12} {
		t.Run(fmt.Sprint(pairs, "-pairs"), func(t *testing.T) {
			d, _ := openDomain(t, &exipc.Options{Size: 4 << 20})
			var wg sync.WaitGroup
			for p := 0; p < pairs; p++ {
				c, s, _ := pair(t, d)
				wg.Go(func() { echo(t, d, s) })
				wg.Go(func() {
					call(t, d, c, fmt.Sprint("caller ", p), 2000)
					c.Close()
				})
			}
			wg.Wait()
			if st, err := d.Stat(); err != nil || st.HeapBlocksUsed != 0 {
				t.Errorf("after the calls: %d blocks used (%v)", st.HeapBlocksUsed, err)
			}
		})
	}
}

// Who owns what when the send fails: on a full ring the reply is still the
// caller's and the request was freed; towards a peer that went both are
// freed; a refused SendCopyRecvBytes sends and keeps nothing.
func TestSendRecvBytesRefused(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20, RingCapacity: 4})
	c, s, _ := pair(t, d)
	ctx := ctxTimeout(t, 10*time.Second)
	used := func() uint64 { t.Helper(); return blocksUsed(t, d) }
	for i := 0; i < 4; i++ { // fill the server's ring towards the client
		if _, err := s.SendCopy([]byte{byte(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	req, _, err := d.Alloc(16)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := d.Alloc(16)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SendRecvBytes(ctx, req, out); err != exipc.ErrQueueFull {
		t.Fatalf("SendRecvBytes on a full ring = %v, want bare ErrQueueFull", err)
	}
	if _, err := d.Bytes(req); !errors.Is(err, exipc.ErrBadHandle) {
		t.Errorf("the request after a full ring: %v, want freed", err)
	}
	if _, err := d.Bytes(out); err != nil {
		t.Errorf("the reply after a full ring: %v, want still the caller's", err)
	}
	// A refused SendCopyRecvBytes: the client's ring is not full, the
	// server's is; fill the client's too.
	for i := 0; i < 4; i++ {
		if _, err := c.SendCopy([]byte{byte(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	base := used()
	if sent, _, _, err := c.SendCopyRecvBytes(ctx, []byte("x"), nil); sent != 0 || err != exipc.ErrQueueFull {
		t.Errorf("SendCopyRecvBytes on a full ring = %v, %v, want 0, bare ErrQueueFull", sent, err)
	}
	if got := used(); got != base {
		t.Errorf("a refused SendCopyRecvBytes left %d blocks allocated", got-base)
	}
	// The client goes: a send towards it fails, and out is freed.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ { // drain what the client sent before it closed
		h, _, err := s.RecvBytes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d.Free(h)
	}
	base = used()
	if _, _, err := s.SendRecvBytes(ctx, 0, out); !errors.Is(err, exipc.ErrPeerDead) {
		t.Errorf("SendRecvBytes towards a closed peer = %v, want ErrPeerDead", err)
	}
	if got := used(); got != base-1 {
		t.Errorf("blocks used %d -> %d: the refused reply was not freed", base, got)
	}
	// A closed end: both handles freed, nothing sent.
	h1, _, _ := d.Alloc(8)
	h2, _, _ := d.Alloc(8)
	s.Close()
	if _, _, err := s.SendRecvBytes(ctx, h1, h2); !errors.Is(err, exipc.ErrClosed) {
		t.Errorf("SendRecvBytes on a closed end = %v, want ErrClosed", err)
	}
	if got := used(); got != base-1 {
		t.Errorf("blocks used %d after SendRecvBytes on a closed end, want %d", got, base-1)
	}
}

// One fused round trip allocates nothing, in either process's role.
func TestSendRecvBytesAllocs(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20})
	c, s, _ := pair(t, d)
	var wg sync.WaitGroup
	wg.Go(func() { echo(t, d, s) })
	ctx := context.Background()
	head := []byte("0123456789abcdef")
	n := testing.AllocsPerRun(2000, func() {
		sent, h, _, err := c.SendCopyRecvBytes(ctx, head, nil)
		if sent == 0 || err != nil {
			t.Fatal(err)
		}
		d.Free(h)
	})
	c.Close()
	wg.Wait()
	if n != 0 {
		t.Errorf("%v allocations per fused round trip, want 0", n)
	}
}
