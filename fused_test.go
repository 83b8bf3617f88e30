package exipc_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/exipc/exipc"
)

// The fused calls do what their sequences do: the bytes arrive, a refused
// send leaves nothing allocated, a batch free stops at the first bad handle.
func TestFusedCalls(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20, RingCapacity: 4})
	c, s, _ := pair(t, d)
	bg := context.Background()
	used := func() uint64 { t.Helper(); return blocksUsed(t, d) }

	for i := 0; i < 4; i++ {
		head, body := []byte{byte(i), 'h'}, bytes.Repeat([]byte{byte('a' + i)}, 100*i)
		if _, err := c.SendCopy(head, body); err != nil {
			t.Fatalf("SendCopy %d: %v", i, err)
		}
	}
	base := used()
	if _, err := c.SendCopy([]byte("x"), nil); err != exipc.ErrQueueFull {
		t.Errorf("SendCopy on a full ring = %v, want bare ErrQueueFull", err)
	}
	if got := used(); got != base {
		t.Errorf("a refused SendCopy left %d blocks allocated", got-base)
	}
	if _, err := c.SendCopy(nil, nil); !errors.Is(err, exipc.ErrInvalid) {
		t.Errorf("SendCopy of nothing = %v, want ErrInvalid", err)
	}
	var got []exipc.Handle
	for i := 0; i < 4; i++ {
		h, b, err := s.RecvBytes(bg)
		if err != nil {
			t.Fatalf("RecvBytes %d: %v", i, err)
		}
		want := append([]byte{byte(i), 'h'}, bytes.Repeat([]byte{byte('a' + i)}, 100*i)...)
		if !bytes.Equal(b, want) {
			t.Errorf("RecvBytes %d: %q, want %q", i, b, want)
		}
		b2, err := d.Bytes(h)
		if err != nil || &b2[0] != &b[0] || len(b2) != len(b) {
			t.Errorf("RecvBytes %d: view differs from Bytes (%v)", i, err)
		}
		got = append(got, h)
	}
	if _, _, err := s.TryRecvBytes(); err != exipc.ErrEmpty {
		t.Errorf("TryRecvBytes on empty = %v", err)
	}
	// A stale handle in the middle: the ones before are freed, the rest kept.
	bad := append([]exipc.Handle{got[0], got[1], got[1]}, got[2:]...)
	if err := d.FreeBatch(bad); !errors.Is(err, exipc.ErrBadHandle) {
		t.Errorf("FreeBatch with a double free = %v, want ErrBadHandle", err)
	}
	if _, err := d.Bytes(got[2]); err != nil {
		t.Errorf("FreeBatch freed past the bad handle: %v", err)
	}
	if err := d.FreeBatch(got[2:]); err != nil {
		t.Fatal(err)
	}
	if n := used(); n != 0 {
		t.Errorf("%d blocks still used", n)
	}
}

// AllocBatch, RecvBatchBytes and FreeBatch: every block arrives with its own
// bytes, a partial AllocBatch on a small heap is a count, not an error.
func TestFusedBatches(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 1 << 20, RingCapacity: 256})
	c, s, _ := pair(t, d)
	bg := context.Background()
	hs := make([]exipc.Handle, 100)
	bufs := make([][]byte, 100)
	n, err := d.AllocBatch(100, hs, bufs)
	if err != nil || n != 64 {
		t.Fatalf("AllocBatch(100 of 100 B) = %d, %v; want 64 (one call's worth), nil", n, err)
	}
	for i, b := range bufs[:n] {
		if len(b) != 100 {
			t.Fatalf("block %d: %d bytes", i, len(b))
		}
		b2, err := d.Bytes(hs[i])
		if err != nil || &b2[0] != &b[0] {
			t.Fatalf("block %d: not the block of its handle (%v)", i, err)
		}
		for j := range b {
			b[j] = byte(i)
		}
	}
	if k, err := c.SendBatch(hs[:n]); k != n || err != nil {
		t.Fatalf("SendBatch = %d, %v", k, err)
	}
	got := make([]exipc.Handle, 100)
	views := make([][]byte, 100)
	seen := 0
	for seen < n {
		k, err := s.RecvBatchBytes(bg, got[seen:], views[seen:])
		if err != nil {
			t.Fatal(err)
		}
		seen += k
	}
	for i := 0; i < n; i++ {
		if got[i] != hs[i] || len(views[i]) != 100 || views[i][0] != byte(i) || views[i][99] != byte(i) {
			t.Fatalf("received %d: handle %#x (sent %#x), %d bytes, first %d", i, got[i], hs[i], len(views[i]), views[i][0])
		}
	}
	if err := d.FreeBatch(got[:n]); err != nil {
		t.Fatal(err)
	}
	// Fill the heap: the batch that runs out returns what it got.
	total := 0
	var all []exipc.Handle
	for {
		k, err := d.AllocBatch(64<<10, hs, bufs)
		if err == exipc.ErrHeapFull {
			break
		}
		if err != nil || k < 1 {
			t.Fatalf("AllocBatch = %d, %v", k, err)
		}
		total += k
		all = append(all, hs[:k]...)
	}
	if total == 0 {
		t.Fatal("no 64 KiB block at all")
	}
	if err := d.FreeBatch(all); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Stat(); st.HeapBlocksUsed != 0 {
		t.Errorf("%d blocks still used", st.HeapBlocksUsed)
	}
}
