// Package heap wraps the shared slab heap of an exipc domain: Alloc, Bytes
// and Free hand out blocks of shared memory as []byte, with no copy and no
// heap allocation on the Go side. A domain's Heap comes with the domain
// (package bind); this package is what a program calls on it.
package heap

import (
	"syscall"

	"github.com/exipc/exipc/internal/guard"
	"github.com/exipc/exipc/internal/link"
	"github.com/exipc/exipc/native"
)

// Heap is the heap of one open domain. Every call runs inside the domain's
// guard (its life, held by the binding layer), so no call reaches C after
// the domain was closed.
type Heap struct {
	g    *guard.Guard
	d    native.Domain
	name string // domain name, for error messages
}

func init() {
	link.NewHeap = func(g *guard.Guard, d native.Domain, name string) any { return newHeap(g, d, name) }
}

func newHeap(g *guard.Guard, d native.Domain, name string) *Heap {
	return &Heap{g: g, d: d, name: name}
}

// Name returns the domain's name.
func (hp *Heap) Name() string { return hp.name }

// Alloc allocates a block of size bytes owned by this process and returns
// its handle and the block itself, a slice of shared memory of exactly size
// bytes. Errors: native.ErrInvalid (size 0 or less), native.ErrClosed,
// syscall.EMSGSIZE wrapped (above the largest block; package exipc names the
// limit),
// and the bare native.ErrHeapFull (no allocation: callers retry on it, as
// they do on a full ring).
func (hp *Heap) Alloc(size int) (uint64, []byte, error) {
	if size <= 0 {
		return 0, nil, native.WrapErr("alloc", hp.name, native.ErrInvalid)
	}
	if !hp.g.Enter() {
		return 0, nil, native.WrapErr("alloc", hp.name, native.ErrClosed)
	}
	h, b, rc := hp.d.AllocBytes(size)
	hp.g.Leave()
	if rc < 0 {
		if rc == -int(syscall.ENOMEM) {
			return 0, nil, native.ErrHeapFull
		}
		return 0, nil, native.Wrap("alloc", hp.name, rc, nil, nil)
	}
	return h, b, nil
}

// Bytes returns the block h (owned by this process) as a slice of shared
// memory with the length asked for at alloc. A handle that is zero, forged,
// stale, freed or in flight gives native.ErrBadHandle.
func (hp *Heap) Bytes(h uint64) ([]byte, error) {
	if !hp.g.Enter() {
		return nil, native.WrapErr("bytes", hp.name, native.ErrClosed)
	}
	b := hp.d.Bytes(h)
	hp.g.Leave()
	if b == nil {
		return nil, native.WrapErr("bytes", hp.name, native.ErrBadHandle)
	}
	return b, nil
}

// Free returns the block h, owned by this process, to the heap. A handle
// that is not such a block gives native.ErrBadHandle.
func (hp *Heap) Free(h uint64) error {
	if !hp.g.Enter() {
		return native.WrapErr("free", hp.name, native.ErrClosed)
	}
	rc := hp.d.Free(h)
	hp.g.Leave()
	if rc < 0 {
		return native.Wrap("free", hp.name, rc, nil, nil)
	}
	return nil
}

// FreeBatch frees every handle of hs, in order, in one call into C. It
// stops at the first that is not a block owned by this process
// (native.ErrBadHandle): those before it are freed, those after untouched.
func (hp *Heap) FreeBatch(hs []uint64) error {
	if !hp.g.Enter() {
		return native.WrapErr("free", hp.name, native.ErrClosed)
	}
	rc := hp.d.FreeBatch(hs)
	hp.g.Leave()
	if rc < 0 {
		return native.Wrap("free", hp.name, rc, nil, nil)
	}
	return nil
}

// AllocBatch allocates up to min(len(hs), len(bufs)) blocks of size bytes in
// one call into C (at most native.BatchMax per call): their handles go to
// hs and the blocks, exactly size bytes each, to bufs. It returns how many;
// fewer when the heap ran out part way. With none it returns 0 and the bare
// native.ErrHeapFull, or another error.
func (hp *Heap) AllocBatch(size int, hs []uint64, bufs [][]byte) (int, error) {
	if size <= 0 || len(hs) == 0 || len(bufs) == 0 {
		return 0, native.WrapErr("alloc", hp.name, native.ErrInvalid)
	}
	if !hp.g.Enter() {
		return 0, native.WrapErr("alloc", hp.name, native.ErrClosed)
	}
	rc := hp.d.AllocBatch(size, hs, bufs)
	hp.g.Leave()
	if rc < 0 {
		if rc == -int(syscall.ENOMEM) {
			return 0, native.ErrHeapFull
		}
		return 0, native.Wrap("alloc", hp.name, rc, nil, nil)
	}
	return rc, nil
}
