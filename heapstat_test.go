package exipc_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/exipc/exipc"
)

func TestAllocTooLarge(t *testing.T) {
	d, _ := openDomain(t, &exipc.Options{Size: 4 << 20, MaxBlock: 1 << 20})
	_, _, err := d.Alloc(1<<20 + 1)
	if !errors.Is(err, exipc.ErrTooLarge) || errors.Is(err, exipc.ErrHeapFull) {
		t.Fatalf("Alloc above MaxBlock: %v, want exipc.ErrTooLarge", err)
	}
	for _, want := range []string{fmt.Sprint(1<<20 + 1), fmt.Sprint(1 << 20), "MaxBlock"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	h, b, err := d.Alloc(1 << 20)
	if err != nil || len(b) != 1<<20 {
		t.Fatalf("Alloc(MaxBlock) = %d bytes, %v", len(b), err)
	}
	st, err := d.HeapStat()
	if err != nil || st.LargestBlock != 1<<20 || st.PageSize != 4096 || st.PagesTotal != 1024 ||
		st.PagesFree != 1024-256 {
		t.Fatalf("HeapStat = %+v, %v", st, err)
	}
	last := st.Classes[len(st.Classes)-1]
	if last.Size != 1<<20 || last.BlocksUsed != 1 || last.Slabs != 256 {
		t.Errorf("large-block entry %+v, want one block of 256 pages", last)
	}
	if err := d.Free(h); err != nil {
		t.Fatal(err)
	}
}

// With default options a block of half the arena (16 MiB) can be had, and
// once everything is freed the whole arena serves any size again.
func TestHeapGivesMemoryBack(t *testing.T) {
	d, _ := openDomain(t, nil)
	var hs []exipc.Handle
	for {
		h, _, err := d.Alloc(64)
		if errors.Is(err, exipc.ErrHeapFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if len(hs) < (32<<20)/64*9/10 {
		t.Fatalf("only %d blocks of 64 B in 32 MiB", len(hs))
	}
	for _, h := range hs {
		if err := d.Free(h); err != nil {
			t.Fatal(err)
		}
	}
	for _, size := range []int{1000, 4096, 64 << 10, 1 << 20, 16 << 20} {
		h, b, err := d.Alloc(size)
		if err != nil || len(b) != size {
			t.Fatalf("Alloc(%d) after 64 B fill and free: %v", size, err)
		}
		if err := d.Free(h); err != nil {
			t.Fatal(err)
		}
	}
	st, err := d.HeapStat()
	if err != nil {
		t.Fatal(err)
	}
	if st.LargestBlock != 16<<20 || st.PagesTotal != 8192 {
		t.Errorf("HeapStat = %+v", st)
	}
	var used uint64
	for _, c := range st.Classes {
		used += c.BlocksUsed
	}
	s, _ := d.Stat()
	if used != 0 || s.HeapBlocksUsed != 0 {
		t.Errorf("blocks used %d (stat %d) after freeing everything", used, s.HeapBlocksUsed)
	}
}

func TestOptionsNameTheOption(t *testing.T) {
	for _, c := range []struct {
		o    exipc.Options
		want string
	}{
		{exipc.Options{Size: 1 << 20, MaxBlock: 2 << 20}, "MaxBlock"},
		{exipc.Options{MaxBlock: 10}, "MaxBlock"},
		{exipc.Options{Size: 1000}, "Size"},
		{exipc.Options{RingCapacity: 3}, "RingCapacity"},
		{exipc.Options{MaxProcs: 5000}, "MaxProcs"},
		{exipc.Options{Mode: 0o777}, "Mode"},
		{exipc.Options{WaitPolicy: 9}, "WaitPolicy"},
	} {
		name := uniqueName("opts")
		d, err := exipc.Open(name, &c.o)
		if err == nil {
			d.Close()
			cleanupName(t, name)
		}
		if !errors.Is(err, exipc.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v) = %v, want exipc.ErrInvalid naming %s", c.o, err, c.want)
		}
	}
}

// Alloc's slice is the block Bytes gives back, for blocks of every kind: a
// slab of many pages (80 B blocks spread over five pages), the biggest
// classes, large runs.
func TestAllocSliceIsTheBlock(t *testing.T) {
	d, _ := openDomain(t, nil)
	for _, size := range []int{80, 100, 5000, 16384, 16385, 1 << 20} {
		var hs []exipc.Handle
		n := 300
		if size >= 1<<20 {
			n = 20
		}
		for i := 0; i < n; i++ {
			h, b, err := d.Alloc(size)
			if err != nil {
				t.Fatalf("Alloc(%d) #%d: %v", size, i, err)
			}
			got, err := d.Bytes(h)
			if err != nil || &got[0] != &b[0] || len(got) != size {
				t.Fatalf("Alloc(%d) #%d: slice at %p, Bytes at %p (%v)", size, i, &b[0], &got[0], err)
			}
			b[0], b[size-1] = byte(i), byte(i>>8)
			hs = append(hs, h)
		}
		for i, h := range hs {
			b, _ := d.Bytes(h)
			if b[0] != byte(i) || b[size-1] != byte(i>>8) {
				t.Fatalf("size %d: block %d was overwritten", size, i)
			}
			d.Free(h)
		}
	}
}
