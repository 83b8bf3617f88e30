package exipc

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/exipc/exipc/native"
)

// ClassStat describes one size class of the heap.
type ClassStat struct {
	Size       uint64 // block size, bytes; in the last entry of HeapStat.Classes, LargestBlock
	BlocksUsed uint64 // blocks owned or in flight
	BlocksFree uint64 // free blocks in the class's slabs (process caches included)
	Slabs      uint64 // slabs of the class; in the last entry, the pages held by large blocks
}

// HeapStat describes a domain's heap: a pool of pages from which slabs of
// each size class (64 B to 16 KiB, four per doubling) and large blocks
// (runs of pages) are taken, and to which they go back once free.
type HeapStat struct {
	PageSize       uint64      // bytes of a page
	PagesTotal     uint64      // pages of the arena
	PagesFree      uint64      // pages in no slab and no large block
	LargestFreeRun uint64      // bytes of the longest free run: the largest block that fits now
	LargestBlock   uint64      // bytes: the largest block the domain can ever give (Options.MaxBlock)
	Classes        []ClassStat // the slab classes, smallest first, then one entry for large blocks
}

// HeapStat returns the heap's figures. It only reads the domain: figures
// taken while other processes allocate are a snapshot, exact when the heap
// is quiet.
func (d *Domain) HeapStat() (HeapStat, error) {
	st, err := d.d.HeapStat()
	return heapStat(st), err
}

// heapStat converts the native figures.
func heapStat(st native.HeapStat) HeapStat {
	h := HeapStat{
		PageSize: st.PageSize, PagesTotal: st.PagesTotal, PagesFree: st.PagesFree,
		LargestFreeRun: st.LargestFreeRun, LargestBlock: st.LargestBlock,
		Classes: make([]ClassStat, 0, len(st.Classes)),
	}
	for _, c := range st.Classes {
		h.Classes = append(h.Classes, ClassStat(c))
	}
	return h
}

// allocError gives Alloc's error for size: a too large ask names the size
// and the domain's limit.
func (d *Domain) allocError(size int, err error) error {
	if !errors.Is(err, syscall.EMSGSIZE) && !errors.Is(err, ErrTooLarge) {
		return err
	}
	limit := "the domain's largest block (Options.MaxBlock)"
	if st, serr := d.HeapStat(); serr == nil {
		limit = fmt.Sprintf("%d bytes, the domain's largest block (Options.MaxBlock)", st.LargestBlock)
	}
	return native.WrapErr("alloc", d.d.Name(), fmt.Errorf("%d bytes asked, above %s: %w", size, limit, ErrTooLarge))
}
