package heap

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/exipc/exipc/internal/guard"
	"github.com/exipc/exipc/native"
)

func TestHeap(t *testing.T) {
	name := fmt.Sprintf("heaptest-%d", os.Getpid())
	d, rc := native.Open(name, &native.Options{Size: 1 << 20})
	if rc < 0 {
		t.Fatalf("open: %s", native.Strerror(rc))
	}
	defer native.Unlink(name) // not before: an unlinked domain is gone
	var g guard.Guard
	hp := newHeap(&g, d, name)

	h, b, err := hp.Alloc(300)
	if err != nil || len(b) != 300 {
		t.Fatalf("Alloc(300) = %d bytes, %v", len(b), err)
	}
	b[299] = 7
	b2, err := hp.Bytes(h)
	if err != nil || &b2[0] != &b[0] || len(b2) != 300 {
		t.Fatalf("Bytes = %d bytes, %v", len(b2), err)
	}
	if _, _, err := hp.Alloc(0); !errors.Is(err, native.ErrInvalid) {
		t.Errorf("Alloc(0) = %v", err)
	}
	if err := hp.Free(h); err != nil {
		t.Fatal(err)
	}
	if err := hp.Free(h); !errors.Is(err, native.ErrBadHandle) {
		t.Errorf("double Free = %v", err)
	}
	if _, err := hp.Bytes(h); !errors.Is(err, native.ErrBadHandle) {
		t.Errorf("Bytes(freed) = %v", err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		h, _, _ := hp.Alloc(64)
		hp.Bytes(h)
		hp.Free(h)
	}); n != 0 {
		t.Errorf("Alloc+Bytes+Free: %v allocations, want 0", n)
	}

	g.Shut(func() { d.Close() })
	if _, _, err := hp.Alloc(8); !errors.Is(err, native.ErrClosed) {
		t.Errorf("Alloc after Shut = %v", err)
	}
	if _, err := hp.Bytes(1); !errors.Is(err, native.ErrClosed) {
		t.Errorf("Bytes after Shut = %v", err)
	}
	if err := hp.Free(1); !errors.Is(err, native.ErrClosed) {
		t.Errorf("Free after Shut = %v", err)
	}
}
