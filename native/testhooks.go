//go:build exipc_testing

// Test hooks of the bridge: built only with the exipc_testing build tag
// (go test -tags exipc_testing), so the product has none of them. The fuzz
// targets and corruption tests use them to find the regions of a domain's
// file they scribble on (exipc_testhook.h).

package native

/*
#cgo CFLAGS: -DEXIPC_TESTING
#include "exipc_testhook.h"
#include "exipc_internal.h"
*/
import "C"

import "unsafe"

// Layout is struct exipc__layout: where each region of a domain's segment
// lies, in bytes from its start, and the sizes of its table entries.
type Layout struct {
	TotalSize, ArenaSize, NSlabs, NGranules                       uint64
	MaxProcs, MaxChans, RingCapacity, MaxBlock, NClasses          uint64
	OffProcs, OffServices, OffChans, OffRings, RingStride         uint64
	OffReady, ReadyStride                                         uint64
	OffSlabs, OffMeta, OffArena                                   uint64
	HdrSize, HdrParamsSize, HdrReady, HdrCounters, HdrSlabsCarved uint64
	HdrFreelist, HdrFreelistStride, HdrLock, HdrLockSize          uint64
	ProcSize, SvcSize, ChanSize                                   uint64
	RingTail, RingHead, RingSleeping, RingSlots                   uint64
	MetaSize                                                      uint64
}

// LayoutOf returns the layout of a domain created with opt (nil = defaults).
func LayoutOf(opt *Options) (Layout, int) {
	o := cOptions(opt)
	var l C.struct_exipc__layout
	if rc := int(C.exipc__layout_of(&o, &l)); rc < 0 {
		return Layout{}, rc
	}
	return Layout{
		uint64(l.total_size), uint64(l.arena_size), uint64(l.nslabs), uint64(l.ngranules),
		uint64(l.max_procs), uint64(l.max_chans), uint64(l.ring_capacity), uint64(l.max_block), uint64(l.nclasses),
		uint64(l.off_procs), uint64(l.off_services), uint64(l.off_chans), uint64(l.off_rings), uint64(l.ring_stride),
		uint64(l.off_ready), uint64(l.ready_stride),
		uint64(l.off_slabs), uint64(l.off_meta), uint64(l.off_arena),
		uint64(l.hdr_size), uint64(l.hdr_params_size), uint64(l.hdr_ready), uint64(l.hdr_counters), uint64(l.hdr_slabs_carved),
		uint64(l.hdr_freelist), uint64(l.hdr_freelist_stride), uint64(l.hdr_lock), uint64(l.hdr_lock_size),
		uint64(l.proc_size), uint64(l.svc_size), uint64(l.chan_size),
		uint64(l.ring_tail), uint64(l.ring_head), uint64(l.ring_sleeping), uint64(l.ring_slots),
		uint64(l.meta_size),
	}, 0
}

// Mapping returns the address and length of d's mapping of its segment, so
// a test can check that a block lies inside it.
func (d Domain) Mapping() (base uintptr, size uint64) {
	var p unsafe.Pointer
	var n C.uint64_t
	C.exipc__mapping(d.p, &p, &n)
	return uintptr(p), uint64(n)
}

// SetNoWatch stops domains opened from now on from starting their watcher
// (exipc__no_watch): nobody in this process reaps a dead peer behind a
// test's back, so the test decides who reaps; waits fall back to slices.
func SetNoWatch(on bool) {
	v := C.int(0)
	if on {
		v = 1
	}
	C.exipc__no_watch = v
}
