package exipc_test

import (
	"context"
	"testing"
	"time"

	"github.com/exipc/exipc"
)

// The data plane must not allocate on the Go heap: Send, Recv, TryRecv,
// Alloc, Bytes and Free, their batch forms, and the bare ErrQueueFull and
// ErrEmpty paths callers spin on.
func TestZeroAllocs(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 4 << 20, RingCapacity: 64})
	c, s, _ := pair(t, d)
	bg := context.Background()
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()

	check := func(what string, f func()) {
		t.Helper()
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", what, n)
		}
	}
	check("Alloc+Send+Recv+Bytes+Free", func() {
		h, b, err := d.Alloc(64)
		if err != nil {
			panic(err)
		}
		b[0] = 1
		if err := c.Send(h); err != nil {
			panic(err)
		}
		h2, err := s.Recv(bg)
		if err != nil {
			panic(err)
		}
		if b2, err := d.Bytes(h2); err != nil || b2[0] != 1 {
			panic(err)
		}
		if err := d.Free(h2); err != nil {
			panic(err)
		}
	})
	head, body := []byte("head"), make([]byte, 60)
	check("SendCopy+RecvBytes+Free", func() {
		if _, err := c.SendCopy(head, body); err != nil {
			panic(err)
		}
		h2, b2, err := s.RecvBytes(bg)
		if err != nil || len(b2) != 64 {
			panic(err)
		}
		if err := d.Free(h2); err != nil {
			panic(err)
		}
	})
	check("TryRecvBytes empty", func() {
		if _, _, err := s.TryRecvBytes(); err != exipc.ErrEmpty {
			panic(err)
		}
	})
	fb := make([]exipc.Handle, 8)
	check("Alloc+FreeBatch", func() {
		for i := range fb {
			fb[i], _, _ = d.Alloc(64)
		}
		if err := d.FreeBatch(fb); err != nil {
			panic(err)
		}
	})
	bh, bb := make([]exipc.Handle, 16), make([][]byte, 16)
	rh, rb := make([]exipc.Handle, 16), make([][]byte, 16)
	check("AllocBatch+SendBatch+RecvBatchBytes+FreeBatch", func() {
		n, err := d.AllocBatch(64, bh, bb)
		if err != nil {
			panic(err)
		}
		if k, err := c.SendBatch(bh[:n]); k != n || err != nil {
			panic(err)
		}
		for m := 0; m < n; {
			k, err := s.RecvBatchBytes(bg, rh, rb)
			if err != nil {
				panic(err)
			}
			if err := d.FreeBatch(rh[:k]); err != nil {
				panic(err)
			}
			m += k
		}
	})
	check("Recv with a deadline ctx", func() {
		h, _, _ := d.Alloc(64)
		c.Send(h)
		h2, err := s.Recv(ctx)
		if err != nil {
			panic(err)
		}
		d.Free(h2)
	})
	check("TryRecv", func() {
		h, _, _ := d.Alloc(64)
		c.Send(h)
		h2, err := s.TryRecv()
		if err != nil {
			panic(err)
		}
		d.Free(h2)
	})
	check("TryRecv empty", func() {
		if _, err := s.TryRecv(); err != exipc.ErrEmpty {
			panic(err)
		}
	})
	hs := make([]exipc.Handle, 32)
	got := make([]exipc.Handle, 32)
	check("SendBatch+RecvBatch", func() {
		for i := range hs {
			hs[i], _, _ = d.Alloc(16)
		}
		if n, err := c.SendBatch(hs); n != len(hs) || err != nil {
			panic(err)
		}
		for m := 0; m < len(hs); {
			n, err := s.RecvBatch(bg, got)
			if err != nil {
				panic(err)
			}
			for _, h := range got[:n] {
				d.Free(h)
			}
			m += n
		}
	})
	// Fill the ring, then Send on it full.
	var full []exipc.Handle
	for {
		h, _, _ := d.Alloc(16)
		if err := c.Send(h); err != nil {
			full = append(full, h)
			break
		}
	}
	check("Send full", func() {
		if err := c.Send(full[0]); err != exipc.ErrQueueFull {
			panic(err)
		}
	})
	check("SendBatch full", func() {
		if _, err := c.SendBatch(full); err != exipc.ErrQueueFull {
			panic(err)
		}
	})
	// A sender retrying on a full heap must not allocate either.
	hd, _ := openDomain(t, &exipc.Options{Size: 64 << 10, MaxBlock: 64 << 10})
	if _, _, err := hd.Alloc(64 << 10); err != nil {
		t.Fatal(err)
	}
	check("Alloc on a full heap", func() {
		if _, _, err := hd.Alloc(64 << 10); err != exipc.ErrHeapFull {
			panic(err)
		}
	})
}

// BenchmarkRoundTrip measures one message through one process's own
// channel: Alloc, Send, Recv, Bytes, Free.
func BenchmarkRoundTrip(b *testing.B) {
	d, _ := openDomain(b, nil)
	c, s, _ := pair(b, d)
	bg := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h, _, _ := d.Alloc(64)
		c.Send(h)
		h2, _ := s.Recv(bg)
		d.Bytes(h2)
		d.Free(h2)
	}
}
