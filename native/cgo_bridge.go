// Package native compiles the exipc C core (the *.c files beside this one)
// and exposes it to Go, one function per C API call. It is the only package
// of the module that imports "C"; ring, heap and bind build on it.
//
// Functions return the C result as an int: 0 or a count on success, a
// negative errno on failure. Errno and Wrap turn that into the sentinel
// errors defined in errors.go.
//
// Values of Domain, Listener and Chan are plain C pointers: this package does
// not guard against use after close. The exipc package does.
package native

/*
#cgo CFLAGS: -std=gnu11 -O2 -fvisibility=hidden -D_GNU_SOURCE
#cgo LDFLAGS: -lpthread

// The C core never calls back into Go and never keeps a pointer it was
// given, so Go out-parameters may stay on the caller's stack: this is what
// keeps Send, Recv, Alloc and Free free of heap allocations.
#cgo noescape exipc_open
#cgo nocallback exipc_open
#cgo noescape exipc_listen
#cgo nocallback exipc_listen
#cgo noescape exipc_accept
#cgo nocallback exipc_accept
#cgo noescape exipc_connect
#cgo nocallback exipc_connect
#cgo noescape exipc_alloc
#cgo nocallback exipc_alloc
#cgo noescape exipc_ptr
#cgo nocallback exipc_ptr
#cgo noescape exipc_free
#cgo nocallback exipc_free
#cgo noescape exipc_send
#cgo nocallback exipc_send
#cgo noescape exipc_recv
#cgo nocallback exipc_recv
#cgo noescape exipc_send_batch
#cgo nocallback exipc_send_batch
#cgo noescape exipc_recv_batch
#cgo nocallback exipc_recv_batch
#cgo noescape exipc_go_alloc
#cgo nocallback exipc_go_alloc
#cgo noescape exipc_stat
#cgo nocallback exipc_stat
#cgo noescape exipc_wait_ready
#cgo nocallback exipc_wait_ready
#cgo nocallback exipc_chan_arm
#cgo nocallback exipc_listener_arm

#include <stdlib.h>
#include "exipc.h"
#include "exipc_testhook.h"
#include "exipc_internal.h"

// Alloc and the block's address in one crossing (a cgo call costs ~25 ns):
// the block was just taken by this process, so its address needs no
// second validation of its owner (heap.c).
static int exipc_go_alloc(exipc_domain_t *d, size_t size, exipc_handle_t *h, void **p) {
    return heap_alloc_ptr(d, size, h, p);
}

// The Go poller reaps on a timer: it must not wait for a reap another
// process has claimed (a stuck or hostile claim would stall every waiter).
static int exipc_go_reap_nowait(exipc_domain_t *d) {
    int rc = check_fork(d);
    return rc != 0 ? rc : cqm_reap_all(d, false, NULL);
}
*/
import "C"

import (
	"strings"
	"syscall"
	"unsafe"
)

// Options mirrors struct exipc_options. Zero fields take the C defaults.
type Options struct {
	Size         uint64 // bytes of heap arena
	MaxProcs     uint32 // process slots
	MaxChans     uint32 // channels (and services)
	RingCapacity uint32 // handles per ring, a power of two
	Mode         uint32 // file mode of a new domain
	MaxBlock     uint32 // largest block exipc_alloc gives (0: half the arena)
	WaitPolicy   uint32 // WaitAdaptive, WaitSpin or WaitPark (this process's choice)
}

// Wait policies (EXIPC_WAIT_*).
const (
	WaitAdaptive = uint32(C.EXIPC_WAIT_ADAPTIVE)
	WaitSpin     = uint32(C.EXIPC_WAIT_SPIN)
	WaitPark     = uint32(C.EXIPC_WAIT_PARK)
)

// Stat mirrors struct exipc_stat.
type Stat struct {
	ProcsAlive, ChansBound, Services              uint32
	HeapBytesTotal, HeapBytesUsed, HeapBlocksUsed uint64
	ReapedProcs                                   uint64
}

// Domain is an open exipc_domain_t. The zero value is no domain.
type Domain struct{ p *C.exipc_domain_t }

// Listener is an open exipc_listener_t. The zero value is no listener.
type Listener struct{ p *C.exipc_listener_t }

// Chan is an open exipc_chan_t. The zero value is no channel.
type Chan struct{ p *C.exipc_chan_t }

var einval = -int(syscall.EINVAL)

// cstring converts a Go name to a C string the caller must free. A name with
// a NUL byte would be silently cut short by C, so it is refused (ok false).
func cstring(s string) (*C.char, bool) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, false
	}
	return C.CString(s), true
}

// cOptions converts opt (nil: all zero, the defaults) to its C struct.
func cOptions(opt *Options) C.struct_exipc_options {
	var o C.struct_exipc_options
	if opt != nil {
		o.size = C.uint64_t(opt.Size)
		o.max_procs = C.uint32_t(opt.MaxProcs)
		o.max_chans = C.uint32_t(opt.MaxChans)
		o.ring_capacity = C.uint32_t(opt.RingCapacity)
		o.mode = C.uint32_t(opt.Mode)
		o.max_block = C.uint32_t(opt.MaxBlock)
		o.wait_policy = C.uint32_t(opt.WaitPolicy)
	}
	return o
}

// Open calls exipc_open: create the domain NAME or attach to it. opt may be
// nil.
func Open(name string, opt *Options) (Domain, int) {
	cname, ok := cstring(name)
	if !ok {
		return Domain{}, einval
	}
	defer C.free(unsafe.Pointer(cname))
	var copt *C.struct_exipc_options
	o := cOptions(opt)
	if opt != nil {
		copt = &o
	}
	var d *C.exipc_domain_t
	rc := int(C.exipc_open(cname, copt, &d))
	if rc < 0 {
		return Domain{}, rc
	}
	return Domain{d}, rc
}

// Unlink calls exipc_unlink: remove the domain's name.
func Unlink(name string) int {
	cname, ok := cstring(name)
	if !ok {
		return einval
	}
	defer C.free(unsafe.Pointer(cname))
	return int(C.exipc_unlink(cname))
}

// Strerror calls exipc_strerror.
func Strerror(rc int) string { return C.GoString(C.exipc_strerror(C.int(rc))) }

// IsZero reports whether d is no domain.
func (d Domain) IsZero() bool { return d.p == nil }

// Close calls exipc_close. d must not be used afterwards, nor any listener
// or channel opened on it.
func (d Domain) Close() int { return int(C.exipc_close(d.p)) }

// Listen calls exipc_listen.
func (d Domain) Listen(service string) (Listener, int) {
	cs, ok := cstring(service)
	if !ok {
		return Listener{}, einval
	}
	defer C.free(unsafe.Pointer(cs))
	var l *C.exipc_listener_t
	rc := int(C.exipc_listen(d.p, cs, &l))
	if rc < 0 {
		return Listener{}, rc
	}
	return Listener{l}, rc
}

// CService is a service name converted once for repeated Connect calls.
type CService struct{ p *C.char }

// NewCService converts service for ConnectC; ok is false if it holds a NUL
// byte. Release it with Free.
func NewCService(service string) (CService, bool) {
	cs, ok := cstring(service)
	return CService{cs}, ok
}

// Free releases the C copy of the name.
func (s CService) Free() { C.free(unsafe.Pointer(s.p)) }

// Connect calls exipc_connect, waiting up to timeoutNs for the service.
func (d Domain) Connect(service CService, timeoutNs int64) (Chan, int) {
	var c *C.exipc_chan_t
	rc := int(C.exipc_connect(d.p, service.p, C.int64_t(timeoutNs), &c))
	if rc < 0 {
		return Chan{}, rc
	}
	return Chan{c}, rc
}

// Alloc calls exipc_alloc.
func (d Domain) Alloc(size int) (uint64, int) {
	if size <= 0 {
		return 0, einval
	}
	var h C.exipc_handle_t
	rc := int(C.exipc_alloc(d.p, C.size_t(size), &h))
	return uint64(h), rc
}

// AllocBytes calls exipc_alloc and returns the handle with the block as a
// slice of exactly size bytes, in one cgo call.
func (d Domain) AllocBytes(size int) (uint64, []byte, int) {
	if size <= 0 {
		return 0, nil, einval
	}
	var h C.exipc_handle_t
	var p unsafe.Pointer
	rc := int(C.exipc_go_alloc(d.p, C.size_t(size), &h, &p))
	if rc < 0 {
		return 0, nil, rc
	}
	return uint64(h), unsafe.Slice((*byte)(p), size), rc
}

// Bytes calls exipc_ptr and returns the block as a slice of shared memory
// with the length asked for at alloc, or nil if h is not a live block owned
// by this process. The slice is valid until the block is freed or sent, or
// the domain closed.
func (d Domain) Bytes(h uint64) []byte {
	var n C.size_t
	p := C.exipc_ptr(d.p, C.exipc_handle_t(h), &n)
	if p == nil {
		return nil
	}
	return unsafe.Slice((*byte)(p), int(n))
}

// Free calls exipc_free.
func (d Domain) Free(h uint64) int { return int(C.exipc_free(d.p, C.exipc_handle_t(h))) }

// Reap calls exipc_reap.
func (d Domain) Reap() int { return int(C.exipc_reap(d.p)) }

// Stat calls exipc_stat.
func (d Domain) Stat() (Stat, int) {
	var st C.struct_exipc_stat
	rc := int(C.exipc_stat(d.p, &st))
	return Stat{
		ProcsAlive:     uint32(st.procs_alive),
		ChansBound:     uint32(st.chans_bound),
		Services:       uint32(st.services),
		HeapBytesTotal: uint64(st.heap_bytes_total),
		HeapBytesUsed:  uint64(st.heap_bytes_used),
		HeapBlocksUsed: uint64(st.heap_blocks_used),
		ReapedProcs:    uint64(st.reaped_procs),
	}, rc
}

// ClassStat mirrors struct exipc_class_stat.
type ClassStat struct{ Size, BlocksUsed, BlocksFree, Slabs uint64 }

// HeapStat mirrors struct exipc_heap_stat (only the classes in use).
type HeapStat struct {
	PageSize, PagesTotal, PagesFree, LargestFreeRun, LargestBlock uint64
	NClasses                                                      uint32
	Classes                                                       [C.EXIPC_MAX_CLASSES]ClassStat
}

// HeapStat calls exipc_heap_stat.
func (d Domain) HeapStat() (HeapStat, int) {
	var st C.struct_exipc_heap_stat
	rc := int(C.exipc_heap_stat(d.p, &st))
	h := HeapStat{
		PageSize: uint64(st.page_size), PagesTotal: uint64(st.pages_total), PagesFree: uint64(st.pages_free),
		LargestFreeRun: uint64(st.largest_free_run), LargestBlock: uint64(st.largest_block),
		NClasses: uint32(st.nclasses),
	}
	for i := 0; i < int(h.NClasses) && i < len(h.Classes); i++ {
		c := &st.cls[i]
		h.Classes[i] = ClassStat{uint64(c.size), uint64(c.blocks_used), uint64(c.blocks_free), uint64(c.slabs)}
	}
	return h, rc
}

// IsZero reports whether l is no listener.
func (l Listener) IsZero() bool { return l.p == nil }

// Accept calls exipc_accept.
func (l Listener) Accept(timeoutNs int64) (Chan, int) {
	var c *C.exipc_chan_t
	rc := int(C.exipc_accept(l.p, C.int64_t(timeoutNs), &c))
	if rc < 0 {
		return Chan{}, rc
	}
	return Chan{c}, rc
}

// Close calls exipc_listener_close.
func (l Listener) Close() int { return int(C.exipc_listener_close(l.p)) }

// IsZero reports whether c is no channel.
func (c Chan) IsZero() bool { return c.p == nil }

// Close calls exipc_chan_close.
func (c Chan) Close() int { return int(C.exipc_chan_close(c.p)) }

// Send calls exipc_send.
func (c Chan) Send(h uint64) int { return int(C.exipc_send(c.p, C.exipc_handle_t(h))) }

// Recv calls exipc_recv.
func (c Chan) Recv(timeoutNs int64) (uint64, int) {
	var h C.exipc_handle_t
	rc := int(C.exipc_recv(c.p, &h, C.int64_t(timeoutNs)))
	return uint64(h), rc
}

// SendBatch calls exipc_send_batch with hs.
func (c Chan) SendBatch(hs []uint64) int {
	if len(hs) == 0 {
		return einval
	}
	return int(C.exipc_send_batch(c.p, (*C.exipc_handle_t)(unsafe.Pointer(&hs[0])), C.size_t(len(hs))))
}

// RecvBatch calls exipc_recv_batch into hs.
func (c Chan) RecvBatch(hs []uint64, timeoutNs int64) int {
	if len(hs) == 0 {
		return einval
	}
	return int(C.exipc_recv_batch(c.p, (*C.exipc_handle_t)(unsafe.Pointer(&hs[0])), C.size_t(len(hs)), C.int64_t(timeoutNs)))
}

// Arm calls exipc_chan_arm: 1 if the channel is ready now, 0 if armed (the
// domain's doorbell rings when it becomes ready), or a negative errno.
func (c Chan) Arm() int { return int(C.exipc_chan_arm(c.p)) }

// ID calls exipc_chan_id: the channel end's bit in WaitReady's words.
func (c Chan) ID() uint32 { return uint32(C.exipc_chan_id(c.p)) }

// Arm calls exipc_listener_arm (see Chan.Arm).
func (l Listener) Arm() int { return int(C.exipc_listener_arm(l.p)) }

// ID calls exipc_listener_id: the listener's bit in WaitReady's words.
func (l Listener) ID() uint32 { return uint32(C.exipc_listener_id(l.p)) }

// ReadyWords calls exipc_ready_words: the length WaitReady's words need.
func (d Domain) ReadyWords() int { return int(C.exipc_ready_words(d.p)) }

// WaitReady calls exipc_wait_ready: sleeps on the doorbell, then takes the
// ready bits into words. Returns how many bits, 0 when woken with none, or a
// negative errno (-EAGAIN, -ETIMEDOUT).
func (d Domain) WaitReady(words []uint64, timeoutNs int64) int {
	if len(words) == 0 {
		return einval
	}
	return int(C.exipc_wait_ready(d.p, (*C.uint64_t)(unsafe.Pointer(&words[0])), C.size_t(len(words)), C.int64_t(timeoutNs)))
}

// ReapNoWait reaps like Reap but does not wait for a reap that another
// process or thread is doing (the poller's periodic reap).
func (d Domain) ReapNoWait() int { return int(C.exipc_go_reap_nowait(d.p)) }

// Wake calls exipc_wake: a WaitReady in progress returns early.
func (d Domain) Wake() int { return int(C.exipc_wake(d.p)) }

// ---- test hooks -------------------------------------------------------------
// Not part of the API: the fuzz targets and corruption tests use them to find
// the regions of a domain's file they scribble on (exipc_testhook.h).

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
