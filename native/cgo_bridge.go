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
#cgo noescape go_arena
#cgo nocallback go_arena
#cgo noescape go_alloc
#cgo nocallback go_alloc
#cgo noescape go_alloc_ptr
#cgo nocallback go_alloc_ptr
#cgo noescape go_ptr
#cgo nocallback go_ptr
#cgo noescape go_free
#cgo nocallback go_free
#cgo noescape go_send
#cgo nocallback go_send
#cgo noescape go_recv
#cgo nocallback go_recv
#cgo noescape go_send_batch
#cgo nocallback go_send_batch
#cgo noescape go_recv_batch
#cgo nocallback go_recv_batch
#cgo noescape go_free_batch
#cgo nocallback go_free_batch
#cgo noescape go_send_copy
#cgo nocallback go_send_copy
#cgo noescape go_recv_view
#cgo nocallback go_recv_view
#cgo noescape go_recv_view_arm
#cgo nocallback go_recv_view_arm
#cgo noescape go_send_recv_view
#cgo nocallback go_send_recv_view
#cgo noescape go_send_copy_recv_view
#cgo nocallback go_send_copy_recv_view
#cgo noescape go_alloc_batch
#cgo nocallback go_alloc_batch
#cgo noescape go_recv_batch_view
#cgo nocallback go_recv_batch_view
#cgo noescape exipc_stat
#cgo nocallback exipc_stat
#cgo noescape exipc_wait_ready
#cgo nocallback exipc_wait_ready
#cgo nocallback exipc_chan_arm
#cgo nocallback exipc_listener_arm

#include <stdlib.h>
#include "exipc.h"
#include "exipc_internal.h"


// The hot calls, as Go calls them: object pointers as integers and buffers
// as byte pointers, so that cgo's run-time pointer check (cgocheck), which
// inspects every unsafe.Pointer and every pointer to a struct holding
// pointers, has nothing to inspect (it cost a fifth of the instructions of
// a message). Addresses of blocks come back as offsets into the arena, which
// Go adds to the arena's base (ArenaBase), or as a returned pointer.
#define GO_D(d) ((exipc_domain_t *)(d))
#define GO_C(c) ((exipc_chan_t *)(c))
static void *go_arena(uintptr_t d) { return D_ARENA(GO_D(d)); }
static int go_alloc(uintptr_t d, size_t size, exipc_handle_t *h) { return exipc_alloc(GO_D(d), size, h); }
static void *go_ptr(uintptr_t d, exipc_handle_t h, size_t *len) { return exipc_ptr(GO_D(d), h, len); }
static int go_free(uintptr_t d, exipc_handle_t h) { return exipc_free(GO_D(d), h); }
static int go_send(uintptr_t c, exipc_handle_t h) { return exipc_send(GO_C(c), h); }
static int go_recv(uintptr_t c, exipc_handle_t *h, int64_t t) { return exipc_recv(GO_C(c), h, t); }
static int go_send_batch(uintptr_t c, const exipc_handle_t *hs, size_t n) { return exipc_send_batch(GO_C(c), hs, n); }
static int go_recv_batch(uintptr_t c, exipc_handle_t *hs, size_t n, int64_t t) { return ring_recv_batch_nospin(GO_C(c), hs, n, t); }
static int go_free_batch(uintptr_t d, const exipc_handle_t *hs, size_t n) { return exipc_free_batch(GO_D(d), hs, n); }
static int go_send_copy(uintptr_t c, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, exipc_handle_t *h) {
    return exipc_send_copy(GO_C(c), a, alen, b, blen, h);
}
static int go_recv_view(uintptr_t c, exipc_handle_t *h, uint64_t *off, size_t *len, int64_t t) {
    void *p;
    int rc = exipc_recv_view(GO_C(c), h, &p, len, t, EXIPC_RECV_NOSPIN);
    if (rc == 0)
        *off = (uint64_t)((uint8_t *)p - D_ARENA(GO_C(c)->d));
    return rc;
}
// A receive that would park next arms the channel in the same crossing:
// exipc_recv_view without waiting, then, with nothing there, exipc_chan_arm.
// Returns 0 (received), 1 (nothing there, armed: the doorbell rings when
// something comes), -EAGAIN (nothing there, not armed: the arm found the
// channel ready, look again) or another negative errno.
static int go_recv_view_arm(uintptr_t c, exipc_handle_t *h, uint64_t *off, size_t *len, int arm) {
    int rc = go_recv_view(c, h, off, len, 0);
    if (rc != -EAGAIN || !arm)
        return rc;
    int r = exipc_chan_arm(GO_C(c));
    if (r == 0)
        return 1;
    if (r < 0)
        return r;
    return go_recv_view(c, h, off, len, 0);
}
// A replier's step in one crossing: free `done` (0: none), send `out` (0:
// none), then go_recv_view_arm. *sent is the send's result: 0, -EAGAIN (the
// ring is full: out is still the caller's) or another negative errno (then
// out was freed here: nothing leaks); after a failed send nothing is
// received and that result is returned.
static int go_send_recv_view(uintptr_t c, exipc_handle_t done, exipc_handle_t out, int *sent,
                             exipc_handle_t *h, uint64_t *off, size_t *len, int arm) {
    *sent = 0;
    if (done != 0)
        exipc_free(GO_C(c)->d, done);
    if (out != 0) {
        int rc = exipc_send(GO_C(c), out);
        if (rc < 0) {
            if (rc != -EAGAIN)
                exipc_free(GO_C(c)->d, out);
            *sent = rc;
            return rc;
        }
    }
    return go_recv_view_arm(c, h, off, len, arm);
}
// A caller's step in one crossing: exipc_send_copy, then go_recv_view_arm.
// *sent is exipc_send_copy's result (on an error nothing was sent and
// nothing stays allocated, and nothing is received).
static int go_send_copy_recv_view(uintptr_t c, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                                  int *sent, exipc_handle_t *sh, exipc_handle_t *h, uint64_t *off, size_t *len, int arm) {
    int rc = exipc_send_copy(GO_C(c), a, alen, b, blen, sh);
    *sent = rc;
    if (rc < 0)
        return rc;
    return go_recv_view_arm(c, h, off, len, arm);
}
static int go_alloc_batch(uintptr_t d, size_t size, exipc_handle_t *hs, uint64_t *offs, size_t n) {
    void *ptrs[64];
    int rc = exipc_alloc_batch(GO_D(d), size, hs, ptrs, n < 64 ? n : 64);
    for (int i = 0; i < rc; i++)
        offs[i] = (uint64_t)((uint8_t *)ptrs[i] - D_ARENA(GO_D(d)));
    return rc;
}
static int go_recv_batch_view(uintptr_t c, exipc_handle_t *hs, uint64_t *offs, size_t *lens, size_t n, int64_t t) {
    void *ptrs[64];
    int rc = exipc_recv_batch_view(GO_C(c), hs, ptrs, lens, n < 64 ? n : 64, t);
    for (int i = 0; i < rc; i++)
        offs[i] = (uint64_t)((uint8_t *)ptrs[i] - D_ARENA(GO_C(c)->d));
    return rc;
}
static int go_alloc_ptr(uintptr_t d, size_t size, exipc_handle_t *h, uint64_t *off) {
    void *p;
    int rc = heap_alloc_ptr(GO_D(d), size, h, &p); // the block and its address (heap.c)
    if (rc == 0)
        *off = (uint64_t)((uint8_t *)p - D_ARENA(GO_D(d)));
    return rc;
}

// The Go poller reaps on a timer where the kernel cannot tell it of deaths:
// it must not wait for a reap another process has claimed (a stuck or
// hostile claim would stall every waiter). It checks for an unlink too.
static int exipc_go_reap_nowait(exipc_domain_t *d) {
    int rc = check_fork(d);
    if (rc != 0)
        return rc;
    watch_check_unlink(d);
    return cqm_reap_all(d, false, NULL);
}

// How long the Go poller may sleep: -1 (no limit) when the watcher hears of
// every death and of the unlink from the kernel (watch.c), else the slice.
static int64_t exipc_go_wait_slice(exipc_domain_t *d) {
    int64_t s = wait_slice_ns(d);
    return s == INT64_MAX ? -1 : s;
}
*/
import "C"

import (
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// Options mirrors struct exipc_options. Zero fields take the C defaults.
type Options struct {
	Size         uint64  // bytes of heap arena
	MaxProcs     uint32  // process slots
	MaxChans     uint32  // channels (and services)
	RingCapacity uint32  // handles per ring, a power of two
	Mode         uint32  // file mode of a new domain
	MaxBlock     uint32  // largest block exipc_alloc gives (0: half the arena)
	WaitPolicy   uint32  // WaitAdaptive, WaitSpin or WaitPark (this process's choice)
	AttachOnly   bool    // EXIPC_ATTACH_ONLY
	TrustUID     *uint32 // EXIPC_TRUST_UID with this uid
	TrustGID     *uint32 // EXIPC_TRUST_GID with this gid
	TrustAny     bool    // EXIPC_TRUST_ANY
	ProcQuota    uint32  // blocks one process may hold (0: no limit)
}

// Wait policies (EXIPC_WAIT_*).
const (
	WaitAdaptive = uint32(C.EXIPC_WAIT_ADAPTIVE)
	WaitSpin     = uint32(C.EXIPC_WAIT_SPIN)
	WaitPark     = uint32(C.EXIPC_WAIT_PARK)
)

// SpinBeforePark is how long an adaptive wait spins before it parks
// (SPIN_BEFORE_PARK_NS): the Go wait loop uses the C core's budget.
const SpinBeforePark = time.Duration(C.SPIN_BEFORE_PARK_NS)

// Stat mirrors struct exipc_stat.
type Stat struct {
	ProcsAlive, ChansBound, Services              uint32
	HeapBytesTotal, HeapBytesUsed, HeapBlocksUsed uint64
	ReapedProcs                                   uint64
}

// Domain is an open exipc_domain_t. The zero value is no domain.
type Domain struct {
	p     *C.exipc_domain_t
	arena unsafe.Pointer // the heap arena's base in this process
}

func (d Domain) u() C.uintptr_t { return C.uintptr_t(uintptr(unsafe.Pointer(d.p))) }
func (c Chan) u() C.uintptr_t   { return C.uintptr_t(uintptr(unsafe.Pointer(c.p))) }

// block is the slice of n bytes at offset off of the arena.
func (d Domain) block(off C.uint64_t, n int) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(d.arena, uintptr(off))), n)
}

// Listener is an open exipc_listener_t. The zero value is no listener.
type Listener struct {
	p     *C.exipc_listener_t
	arena unsafe.Pointer // its domain's arena base (see Domain)
}

// Chan is an open exipc_chan_t. The zero value is no channel.
type Chan struct {
	p     *C.exipc_chan_t
	arena unsafe.Pointer // its domain's arena base (see Domain)
}

func (c Chan) block(off C.uint64_t, n int) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(c.arena, uintptr(off))), n)
}

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
		if opt.AttachOnly {
			o.flags |= C.EXIPC_ATTACH_ONLY
		}
		if opt.TrustUID != nil {
			o.flags |= C.EXIPC_TRUST_UID
			o.trust_uid = C.uint32_t(*opt.TrustUID)
		}
		if opt.TrustGID != nil {
			o.flags |= C.EXIPC_TRUST_GID
			o.trust_gid = C.uint32_t(*opt.TrustGID)
		}
		if opt.TrustAny {
			o.flags |= C.EXIPC_TRUST_ANY
		}
		o.proc_quota = C.uint32_t(opt.ProcQuota)
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
	return Domain{d, C.go_arena(C.uintptr_t(uintptr(unsafe.Pointer(d))))}, rc
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

// Leave calls exipc_leave: close, and remove the name if we were the last.
func (d Domain) Leave() int { return int(C.exipc_leave(d.p)) }

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
	return Listener{l, d.arena}, rc
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
	return Chan{c, d.arena}, rc
}

// Alloc calls exipc_alloc.
func (d Domain) Alloc(size int) (uint64, int) {
	if size <= 0 {
		return 0, einval
	}
	var h C.exipc_handle_t
	rc := int(C.go_alloc(d.u(), C.size_t(size), &h))
	return uint64(h), rc
}

// AllocBytes calls exipc_alloc and returns the handle with the block as a
// slice of exactly size bytes, in one cgo call.
func (d Domain) AllocBytes(size int) (uint64, []byte, int) {
	if size <= 0 {
		return 0, nil, einval
	}
	var h C.exipc_handle_t
	var off C.uint64_t
	rc := int(C.go_alloc_ptr(d.u(), C.size_t(size), &h, &off))
	if rc < 0 {
		return 0, nil, rc
	}
	return uint64(h), d.block(off, size), rc
}

// Bytes calls exipc_ptr and returns the block as a slice of shared memory
// with the length asked for at alloc, or nil if h is not a live block owned
// by this process. The slice is valid until the block is freed or sent, or
// the domain closed.
func (d Domain) Bytes(h uint64) []byte {
	var n C.size_t
	p := C.go_ptr(d.u(), C.exipc_handle_t(h), &n)
	if p == nil {
		return nil
	}
	return unsafe.Slice((*byte)(p), int(n))
}

// Free calls exipc_free.
func (d Domain) Free(h uint64) int { return int(C.go_free(d.u(), C.exipc_handle_t(h))) }

// BatchMax is how many blocks AllocBatch and RecvBatchView move per cgo
// call (their scratch arrays live on the stack).
const BatchMax = 64

// AllocBatch calls exipc_alloc_batch: up to len(hs) blocks of size bytes
// (at most BatchMax), their handles in hs and the blocks, exactly size
// bytes each, in bufs. Returns how many, or a negative errno.
func (d Domain) AllocBatch(size int, hs []uint64, bufs [][]byte) int {
	n := min(len(hs), len(bufs), BatchMax)
	if size <= 0 || n == 0 {
		return einval
	}
	var offs [BatchMax]C.uint64_t
	rc := int(C.go_alloc_batch(d.u(), C.size_t(size), (*C.exipc_handle_t)(unsafe.Pointer(&hs[0])), &offs[0], C.size_t(n)))
	for i := 0; i < rc; i++ {
		bufs[i] = d.block(offs[i], size)
	}
	return rc
}

// FreeBatch calls exipc_free_batch.
func (d Domain) FreeBatch(hs []uint64) int {
	if len(hs) == 0 {
		return 0
	}
	return int(C.go_free_batch(d.u(), (*C.exipc_handle_t)(unsafe.Pointer(&hs[0])), C.size_t(len(hs))))
}

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

// HeapStat calls exipc_heap_stat.
func (d Domain) HeapStat() (HeapStat, int) {
	var st C.struct_exipc_heap_stat
	if rc := int(C.exipc_heap_stat(d.p, &st)); rc < 0 {
		return HeapStat{}, rc
	}
	return heapStatFromC(&st), 0
}

// heapStatFromC copies a struct exipc_heap_stat, cutting cls to nclasses.
func heapStatFromC(h *C.struct_exipc_heap_stat) HeapStat {
	hs := HeapStat{uint64(h.page_size), uint64(h.pages_total), uint64(h.pages_free),
		uint64(h.largest_free_run), uint64(h.largest_block), nil}
	n := min(int(h.nclasses), len(h.cls))
	hs.Classes = make([]ClassStat, 0, n)
	for i := 0; i < n; i++ {
		c := h.cls[i]
		hs.Classes = append(hs.Classes, ClassStat{uint64(c.size), uint64(c.blocks_used), uint64(c.blocks_free), uint64(c.slabs)})
	}
	return hs
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
	return Chan{c, l.arena}, rc
}

// Close calls exipc_listener_close.
func (l Listener) Close() int { return int(C.exipc_listener_close(l.p)) }

// IsZero reports whether c is no channel.
func (c Chan) IsZero() bool { return c.p == nil }

// Close calls exipc_chan_close.
func (c Chan) Close() int { return int(C.exipc_chan_close(c.p)) }

// Send calls exipc_send.
func (c Chan) Send(h uint64) int { return int(C.go_send(c.u(), C.exipc_handle_t(h))) }

// Recv calls exipc_recv.
func (c Chan) Recv(timeoutNs int64) (uint64, int) {
	var h C.exipc_handle_t
	rc := int(C.go_recv(c.u(), &h, C.int64_t(timeoutNs)))
	return uint64(h), rc
}

// SendCopy calls exipc_send_copy: a block holding a then b, allocated,
// filled and sent in one cgo call. It returns the handle sent.
func (c Chan) SendCopy(a, b []byte) (uint64, int) {
	var pa, pb *C.uint8_t
	if len(a) > 0 {
		pa = (*C.uint8_t)(&a[0])
	}
	if len(b) > 0 {
		pb = (*C.uint8_t)(&b[0])
	}
	var h C.exipc_handle_t
	rc := int(C.go_send_copy(c.u(), pa, C.size_t(len(a)), pb, C.size_t(len(b)), &h))
	return uint64(h), rc
}

// RecvView calls exipc_recv_view: one handle and its block as a slice of
// shared memory, in one cgo call. With a timeout, it sleeps in C at once
// when nothing is there (EXIPC_RECV_NOSPIN): the Go wait loop spins itself.
func (c Chan) RecvView(timeoutNs int64) (uint64, []byte, int) {
	var h C.exipc_handle_t
	var off C.uint64_t
	var n C.size_t
	rc := int(C.go_recv_view(c.u(), &h, &off, &n, C.int64_t(timeoutNs)))
	if rc < 0 {
		return 0, nil, rc
	}
	return uint64(h), c.block(off, int(n)), rc
}

// RecvViewArm is RecvView without waiting that, with nothing there and arm
// set, arms the channel in the same cgo call (Arm): rc 1 means armed, -EAGAIN
// nothing there and not armed (look again).
func (c Chan) RecvViewArm(arm bool) (uint64, []byte, int) {
	var h C.exipc_handle_t
	var off C.uint64_t
	var n C.size_t
	rc := int(C.go_recv_view_arm(c.u(), &h, &off, &n, cbool(arm)))
	if rc != 0 {
		return 0, nil, rc
	}
	return uint64(h), c.block(off, int(n)), rc
}

// SendRecvView frees done and sends out (either may be 0: none), then does
// RecvViewArm, in one cgo call. sent is the send's result: 0, -EAGAIN (ring
// full: out is still the caller's) or another errno (out was freed); after a
// failed send rc is that result and nothing was received.
func (c Chan) SendRecvView(done, out uint64, arm bool) (sent int, h uint64, b []byte, rc int) {
	var ch C.exipc_handle_t
	var off C.uint64_t
	var n C.size_t
	var s C.int
	rc = int(C.go_send_recv_view(c.u(), C.exipc_handle_t(done), C.exipc_handle_t(out), &s, &ch, &off, &n, cbool(arm)))
	if rc != 0 {
		return int(s), 0, nil, rc
	}
	return int(s), uint64(ch), c.block(off, int(n)), rc
}

// SendCopyRecvView is SendCopy then RecvViewArm in one cgo call. src is
// SendCopy's result and sh the handle it sent; after a failed send rc is
// that result.
func (c Chan) SendCopyRecvView(a, b []byte, arm bool) (src int, sh, h uint64, buf []byte, rc int) {
	var pa, pb *C.uint8_t
	if len(a) > 0 {
		pa = (*C.uint8_t)(&a[0])
	}
	if len(b) > 0 {
		pb = (*C.uint8_t)(&b[0])
	}
	var ch C.exipc_handle_t
	var off C.uint64_t
	var n C.size_t
	var s C.int
	var sent C.exipc_handle_t
	rc = int(C.go_send_copy_recv_view(c.u(), pa, C.size_t(len(a)), pb, C.size_t(len(b)), &s, &sent, &ch, &off, &n, cbool(arm)))
	if rc != 0 {
		return int(s), uint64(sent), 0, nil, rc
	}
	return int(s), uint64(sent), uint64(ch), c.block(off, int(n)), rc
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// SendBatch calls exipc_send_batch with hs.
func (c Chan) SendBatch(hs []uint64) int {
	if len(hs) == 0 {
		return einval
	}
	return int(C.go_send_batch(c.u(), (*C.exipc_handle_t)(unsafe.Pointer(&hs[0])), C.size_t(len(hs))))
}

// RecvBatchView calls exipc_recv_batch_view: up to len(hs) handles (at
// most BatchMax) into hs, and their blocks into bufs.
func (c Chan) RecvBatchView(hs []uint64, bufs [][]byte, timeoutNs int64) int {
	n := min(len(hs), len(bufs), BatchMax)
	if n == 0 {
		return einval
	}
	var offs [BatchMax]C.uint64_t
	var lens [BatchMax]C.size_t
	rc := int(C.go_recv_batch_view(c.u(), (*C.exipc_handle_t)(unsafe.Pointer(&hs[0])), &offs[0], &lens[0], C.size_t(n), C.int64_t(timeoutNs)))
	for i := 0; i < rc; i++ {
		bufs[i] = c.block(offs[i], int(lens[i]))
	}
	return rc
}

// RecvBatch calls exipc_recv_batch into hs, without its spin before
// parking when timeoutNs is not 0: the Go waiter spins first (poll.Wait).
func (c Chan) RecvBatch(hs []uint64, timeoutNs int64) int {
	if len(hs) == 0 {
		return einval
	}
	return int(C.go_recv_batch(c.u(), (*C.exipc_handle_t)(unsafe.Pointer(&hs[0])), C.size_t(len(hs)), C.int64_t(timeoutNs)))
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

// WaitSlice is how long the poller may sleep before it reaps by itself: -1
// when the C watcher hears of every peer's death and of the unlink from the
// kernel (pidfd, inotify), else a slice in nanoseconds.
func (d Domain) WaitSlice() int64 { return int64(C.exipc_go_wait_slice(d.p)) }

// Wake calls exipc_wake: a WaitReady in progress returns early.
func (d Domain) Wake() int { return int(C.exipc_wake(d.p)) }

// ---- inspection (read-only, no process slot) --------------------------------

// Inspector is an open exipc_inspector_t. The zero value is no inspector.
type Inspector struct{ p *C.exipc_inspector_t }

// InspectInfo mirrors struct exipc_inspect_info.
type InspectInfo struct {
	TotalSize, ArenaSize                       uint64
	MaxProcs, MaxChans, RingCapacity, MaxBlock uint32
	CreatorUID, LayoutVersion                  uint32
	ReapedProcs, ReapTakeovers, ReapStragglers uint64
	LockRepairs, Allocs, Frees                 uint64
}

// ProcInfo mirrors struct exipc_proc_info. State is one of ProcAlive,
// ProcDead, ProcReaping.
type ProcInfo struct {
	Slot, State, Gen                    uint32
	Pid                                 int32
	Chans, Services                     uint32
	BlocksOwned, BlocksCached, Doorbell uint64
}

// Process slot states of ProcInfo.State (EXIPC_PROC_*).
const (
	ProcAlive   = uint32(C.EXIPC_PROC_ALIVE)
	ProcDead    = uint32(C.EXIPC_PROC_DEAD)
	ProcReaping = uint32(C.EXIPC_PROC_REAPING)
)

// ServiceInfo mirrors struct exipc_service_info.
type ServiceInfo struct {
	Index, OwnerSlot uint32
	OwnerPid         int32
	Pending          uint32
	Name             string
}

// ChanEndInfo mirrors struct exipc_chan_end_info.
type ChanEndInfo struct {
	Slot                                  uint32
	Pid                                   int32
	Closed, Alive                         bool
	Sent, Received, FullRefusals, Wakeups uint64
}

// ChanInfo mirrors struct exipc_chan_info. Queued[0] is client -> server,
// Queued[1] server -> client; End[0] the client, End[1] the server.
type ChanInfo struct {
	Index, State, ServiceIndex, RingCapacity uint32
	Service                                  string
	Queued                                   [2]uint64
	End                                      [2]ChanEndInfo
}

// Channel states of ChanInfo.State (EXIPC_CHAN_*).
const (
	ChanPending = uint32(C.EXIPC_CHAN_PENDING)
	ChanBound   = uint32(C.EXIPC_CHAN_BOUND)
)

// ClassStat mirrors struct exipc_class_stat.
type ClassStat struct{ Size, BlocksUsed, BlocksFree, Slabs uint64 }

// HeapStat mirrors struct exipc_heap_stat, with Classes cut to nclasses.
type HeapStat struct {
	PageSize, PagesTotal, PagesFree, LargestFreeRun, LargestBlock uint64
	Classes                                                       []ClassStat
}

// InspectOpen calls exipc_inspect_open.
func InspectOpen(name string) (Inspector, int) {
	cname, ok := cstring(name)
	if !ok {
		return Inspector{}, einval
	}
	defer C.free(unsafe.Pointer(cname))
	var p *C.exipc_inspector_t
	rc := int(C.exipc_inspect_open(cname, &p))
	if rc < 0 {
		return Inspector{}, rc
	}
	return Inspector{p}, 0
}

// InspectReap calls exipc_inspect_reap: reap NAME's dead processes without
// registering. Returns how many it cleaned.
func InspectReap(name string) int {
	cname, ok := cstring(name)
	if !ok {
		return einval
	}
	defer C.free(unsafe.Pointer(cname))
	return int(C.exipc_inspect_reap(cname))
}

// Close calls exipc_inspect_close.
func (in Inspector) Close() int { return int(C.exipc_inspect_close(in.p)) }

// Info calls exipc_inspect_info.
func (in Inspector) Info() (InspectInfo, int) {
	var c C.struct_exipc_inspect_info
	if rc := int(C.exipc_inspect_info(in.p, &c)); rc < 0 {
		return InspectInfo{}, rc
	}
	return InspectInfo{
		uint64(c.total_size), uint64(c.arena_size),
		uint32(c.max_procs), uint32(c.max_chans), uint32(c.ring_capacity), uint32(c.max_block),
		uint32(c.creator_uid), uint32(c.layout_version),
		uint64(c.reaped_procs), uint64(c.reap_takeovers), uint64(c.reap_stragglers),
		uint64(c.lock_repairs), uint64(c.allocs), uint64(c.frees),
	}, 0
}

// Stat calls exipc_inspect_stat.
func (in Inspector) Stat() (Stat, int) {
	var s C.struct_exipc_stat
	if rc := int(C.exipc_inspect_stat(in.p, &s)); rc < 0 {
		return Stat{}, rc
	}
	return Stat{uint32(s.procs_alive), uint32(s.chans_bound), uint32(s.services),
		uint64(s.heap_bytes_total), uint64(s.heap_bytes_used), uint64(s.heap_blocks_used),
		uint64(s.reaped_procs)}, 0
}

// Procs calls exipc_inspect_procs with room for every slot.
func (in Inspector) Procs(maxProcs uint32) ([]ProcInfo, int) {
	buf := make([]C.struct_exipc_proc_info, maxProcs+1)
	rc := int(C.exipc_inspect_procs(in.p, &buf[0], C.size_t(len(buf))))
	if rc < 0 {
		return nil, rc
	}
	out := make([]ProcInfo, 0, rc)
	for _, p := range buf[:min(rc, len(buf))] {
		out = append(out, ProcInfo{uint32(p.slot), uint32(p.state), uint32(p.gen), int32(p.pid),
			uint32(p.chans), uint32(p.services), uint64(p.blocks_owned), uint64(p.blocks_cached),
			uint64(p.doorbell)})
	}
	return out, 0
}

// Services calls exipc_inspect_services with room for every entry.
func (in Inspector) Services(maxChans uint32) ([]ServiceInfo, int) {
	buf := make([]C.struct_exipc_service_info, maxChans+1)
	rc := int(C.exipc_inspect_services(in.p, &buf[0], C.size_t(len(buf))))
	if rc < 0 {
		return nil, rc
	}
	out := make([]ServiceInfo, 0, rc)
	for i := range buf[:min(rc, len(buf))] {
		s := &buf[i]
		out = append(out, ServiceInfo{uint32(s.index), uint32(s.owner_slot), int32(s.owner_pid),
			uint32(s.pending), C.GoString(&s.name[0])})
	}
	return out, 0
}

// Chans calls exipc_inspect_chans with room for every entry.
func (in Inspector) Chans(maxChans uint32) ([]ChanInfo, int) {
	buf := make([]C.struct_exipc_chan_info, maxChans+1)
	rc := int(C.exipc_inspect_chans(in.p, &buf[0], C.size_t(len(buf))))
	if rc < 0 {
		return nil, rc
	}
	out := make([]ChanInfo, 0, rc)
	for i := range buf[:min(rc, len(buf))] {
		c := &buf[i]
		ci := ChanInfo{Index: uint32(c.index), State: uint32(c.state), ServiceIndex: uint32(c.service_index),
			RingCapacity: uint32(c.ring_capacity), Service: C.GoString(&c.service[0]),
			Queued: [2]uint64{uint64(c.queued[0]), uint64(c.queued[1])}}
		for s := 0; s < 2; s++ {
			e := &c.end[s]
			ci.End[s] = ChanEndInfo{uint32(e.slot), int32(e.pid), e.closed != 0, e.alive != 0,
				uint64(e.sent), uint64(e.received), uint64(e.full_refusals), uint64(e.wakeups)}
		}
		out = append(out, ci)
	}
	return out, 0
}

// Heap calls exipc_inspect_heap.
func (in Inspector) Heap() (HeapStat, int) {
	var h C.struct_exipc_heap_stat
	if rc := int(C.exipc_inspect_heap(in.p, &h)); rc < 0 {
		return HeapStat{}, rc
	}
	return heapStatFromC(&h), 0
}
