// Package heap wraps the shared slab heap of an exipc domain: Alloc, Bytes
// and Free hand out blocks of shared memory as []byte, with no copy and no
// heap allocation on the Go side.
package heap

import (
	"github.com/exipc/exipc/native"
	"syscall"
)

// Heap is the heap of one open domain. Its Guard is the domain's life: the
// binding layer closes the domain through it, and every Heap call runs
// inside it, so no call reaches C after the domain was closed.
type Heap struct {
	G    native.Guard
	d    native.Domain
	name string // domain name, for error messages
}

// Init sets the domain the heap belongs to. Call it once, before any other
// method.
func (hp *Heap) Init(d native.Domain, name string) {
	hp.d = d
	hp.name = name
}

// Domain returns the C domain; use it only inside hp.G.Enter/Leave.
func (hp *Heap) Domain() native.Domain { return hp.d }

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
	if !hp.G.Enter() {
		return 0, nil, native.WrapErr("alloc", hp.name, native.ErrClosed)
	}
	h, b, rc := hp.d.AllocBytes(size)
	hp.G.Leave()
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
	if !hp.G.Enter() {
		return nil, native.WrapErr("bytes", hp.name, native.ErrClosed)
	}
	b := hp.d.Bytes(h)
	hp.G.Leave()
	if b == nil {
		return nil, native.WrapErr("bytes", hp.name, native.ErrBadHandle)
	}
	return b, nil
}

// Free returns the block h, owned by this process, to the heap. A handle
// that is not such a block gives native.ErrBadHandle.
func (hp *Heap) Free(h uint64) error {
	if !hp.G.Enter() {
		return native.WrapErr("free", hp.name, native.ErrClosed)
	}
	rc := hp.d.Free(h)
	hp.G.Leave()
	if rc < 0 {
		return native.Wrap("free", hp.name, rc, nil, nil)
	}
	return nil
}
