//go:build exipc_testing

package exipc

// Fuzz targets for the safety model (docs/safety.md, "Safety"): whatever a process
// that maps a domain writes into it, another exipc process gets success or a
// documented error from every call, never a crash, a pointer outside the
// segment or a hang. Plain `go test` runs each target over its seeds
// (f.Add below and testdata/fuzz/NAME); `make fuzz` fuzzes each for
// FUZZTIME.
//
// The hostile peer is this test itself: it maps the domain's file a second
// time, raw, and writes into the regions that exipc_testhook.h locates
// (native.LayoutOf), between calls of the public API.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/exipc/exipc/native"
)

// fuzzOpts is a small domain: quick to create for every input.
var fuzzOpts = Options{Size: 256 << 10, MaxProcs: 4, MaxChans: 4, RingCapacity: 8, MaxBlock: 4096}

var fuzzSeq atomic.Int64

func fuzzName() string { return fmt.Sprintf("fz-%d-%d", os.Getpid(), fuzzSeq.Add(1)) }

// hangGuard crashes the process (so that the fuzzer records the input) if
// the returned stop is not called within a minute: no call here may block
// for more than its timeout plus the queue manager's 2 s lock wait.
func hangGuard(what string) (stop func() bool) {
	t := time.AfterFunc(time.Minute, func() { panic("exipc fuzz: hang in " + what) })
	return t.Stop
}

// allowed fails t unless err is nil or matches one of the documented errors.
func allowed(t *testing.T, op string, err error, ok ...error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, e := range ok {
		if errors.Is(err, e) {
			return
		}
	}
	t.Fatalf("%s: undocumented error %v (%T)", op, err, errors.Unwrap(err))
}

// rawMap maps domain NAME's file read-write, as any process of the domain can.
func rawMap(t *testing.T, name string, size uint64) []byte {
	t.Helper()
	f, err := os.OpenFile("/dev/shm/exipc."+name, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("raw mmap: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	return m
}

// inArena checks that b, returned by Bytes or Alloc, lies inside the arena
// of d's own mapping.
func inArena(t *testing.T, d *Domain, L native.Layout, b []byte) {
	t.Helper()
	if len(b) == 0 {
		t.Fatalf("empty block")
	}
	base, size := d.d.Mapping()
	p := uintptr(unsafe.Pointer(&b[0]))
	lo, hi := base+uintptr(L.OffArena), base+uintptr(size)
	if p < lo || p >= hi || uint64(len(b)) > L.MaxBlock || uintptr(len(b)) > hi-p {
		t.Fatalf("block [%#x, +%d) outside the arena [%#x, %#x)", p, len(b), lo, hi)
	}
}

// ---- a span of the segment and the values a peer writes there --------------

type span struct {
	name     string
	off, len uint64
	width    uint64 // 4 or 8: the words of the region
}

func ringSpans(L native.Layout) []span {
	var s []span
	for r := uint64(0); r < 2*L.MaxChans; r++ {
		b := L.OffRings + r*L.RingStride
		s = append(s,
			span{"ring.tail", b + L.RingTail, 8, 8},
			span{"ring.head", b + L.RingHead, 8, 8},
			span{"ring.sleeping", b + L.RingSleeping, 4, 4},
			span{"ring.slots", b + L.RingSlots, L.RingCapacity * 8, 8})
	}
	return s
}

func heapSpans(L native.Layout) []span {
	return []span{
		{"hdr.slabs_carved", L.HdrSlabsCarved, 8, 8},
		{"hdr.freelist", L.HdrFreelist, L.NClasses * L.HdrFreelistStride, 8},
		{"page_table", L.OffSlabs, L.NSlabs * 32, 4}, // 32-byte page descriptors
		{"block_meta", L.OffMeta, L.NGranules * L.MetaSize, 8},
		{"block_meta.word", L.OffMeta, L.NGranules * L.MetaSize, 8}, // twice as likely
		{"arena", L.OffArena, L.ArenaSize, 8},
	}
}

func tableSpans(L native.Layout) []span {
	return []span{
		{"hdr.counters", L.HdrCounters, L.HdrSlabsCarved - L.HdrCounters, 4},
		{"hdr.lock", L.HdrLock, L.HdrLockSize, 4},
		{"procs", L.OffProcs, L.MaxProcs * L.ProcSize, 4},
		{"services", L.OffServices, L.MaxChans * L.SvcSize, 4},
		{"chans", L.OffChans, L.MaxChans * L.ChanSize, 4},
		{"ready", L.OffReady, L.MaxProcs * L.ReadyStride, 8},
	}
}

// input reads a fuzz input as a stream of bytes; past its end it reads 0.
type input struct {
	b []byte
	i int
}

func (in *input) more() bool { return in.i < len(in.b) }
func (in *input) u8() byte {
	if in.i >= len(in.b) {
		in.i++
		return 0
	}
	in.i++
	return in.b[in.i-1]
}
func (in *input) u32() uint32 {
	var v [4]byte
	for i := range v {
		v[i] = in.u8()
	}
	return binary.LittleEndian.Uint32(v[:])
}
func (in *input) u64() uint64 { return uint64(in.u32()) | uint64(in.u32())<<32 }

// scribble writes one word chosen by the input into one of spans.
func scribble(m []byte, L native.Layout, spans []span, in *input) {
	s := spans[int(in.u8())%len(spans)]
	off := s.off + uint64(in.u32())%s.len
	off &^= s.width - 1
	if off+s.width > s.off+s.len {
		return
	}
	kind, raw := in.u8(), in.u64()
	p := unsafe.Pointer(&m[off])
	var cur uint64
	if s.width == 8 {
		cur = atomic.LoadUint64((*uint64)(p))
	} else {
		cur = uint64(atomic.LoadUint32((*uint32)(p)))
	}
	var v uint64
	switch kind % 12 {
	case 0:
		v = 0
	case 1:
		v = cur + 1
	case 2:
		v = cur - 1
	case 3:
		v = cur + L.RingCapacity + raw%3
	case 4:
		v = cur ^ 1<<(raw%64)
	case 5:
		v = raw % 16
	case 6: // a handle or a free-list link: {gen or tag, granule}
		v = (raw>>32)%4<<32 | (raw&0xffffffff)%(L.NGranules+2)
	case 7: // an owner: {kind:2, id}
		v = (raw>>40)%4<<30 | raw%(2*L.MaxChans+2)
	case 8:
		v = ^uint64(0)
	case 9:
		v = 0x80000000
	case 10:
		v = cur &^ 0xffffffff // keep the gen, owner := free
	default:
		v = raw
	}
	if s.width == 8 {
		atomic.StoreUint64((*uint64)(p), v)
	} else {
		atomic.StoreUint32((*uint32)(p), uint32(v))
	}
}

// ---- the hostile-peer interpreter -----------------------------------------------

// world is two domain handles (two process slots) on one fresh domain, a
// listener on a and a channel between them, plus the handles each owns.
type world struct {
	t      *testing.T
	L      native.Layout
	m      []byte
	a, b   *Domain
	l      *Listener
	cc, sc *Chan // client end (on b), server end (on a)
	own    map[*Domain][]Handle
	strict bool // block metadata is not scribbled: ownership is exact
}

func newWorld(t *testing.T, strict bool) *world {
	name := fuzzName()
	a, err := Open(name, &fuzzOpts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b, err := Open(name, &fuzzOpts)
	if err != nil {
		a.Close()
		Unlink(name)
		t.Fatalf("Open again: %v", err)
	}
	L, rc := native.LayoutOf((*native.Options)(&fuzzOpts))
	if rc < 0 {
		t.Fatalf("LayoutOf: %d", rc)
	}
	w := &world{t: t, L: L, a: a, b: b, own: map[*Domain][]Handle{}, strict: strict}
	w.m = rawMap(t, name, L.TotalSize)
	t.Cleanup(func() {
		stop := hangGuard("close")
		defer stop()
		b.Close()
		a.Close()
		Unlink(name) // not before: an unlinked domain is gone for its users (ErrDomainGone)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if w.l, err = a.Listen("s"); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if w.cc, err = b.Connect(ctx, "s"); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if w.sc, err = w.l.Accept(ctx); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	return w
}

func (w *world) pickDomain(in *input) *Domain {
	if in.u8()&1 == 0 {
		return w.a
	}
	return w.b
}

func (w *world) endOf(d *Domain) *Chan {
	if d == w.a {
		return w.sc
	}
	return w.cc
}

// pickHandle returns one of d's handles (removed from its list if take), or
// an arbitrary value from the input.
func (w *world) pickHandle(d *Domain, in *input, take bool) (Handle, bool) {
	hs := w.own[d]
	sel := in.u8()
	if len(hs) == 0 || sel >= 200 {
		return Handle(in.u64()), false
	}
	i := int(sel) % len(hs)
	h := hs[i]
	if take {
		w.own[d] = append(hs[:i], hs[i+1:]...)
	}
	return h, true
}

// drop forgets h from d's handles: it was sent (the input may name one of
// ours by value, not through pickHandle).
func (w *world) drop(d *Domain, h Handle) {
	hs := w.own[d]
	for i := range hs {
		if hs[i] == h {
			w.own[d] = append(hs[:i], hs[i+1:]...)
			return
		}
	}
}

// received checks a handle a receive gave d: it is d's now.
func (w *world) received(d *Domain, h Handle) {
	b, err := d.Bytes(h)
	if err != nil {
		if w.strict {
			w.t.Fatalf("received %#x but Bytes says %v", h, err)
		}
		return
	}
	inArena(w.t, d, w.L, b)
	w.own[d] = append(w.own[d], h)
}

var (
	errsSend = []error{ErrQueueFull, ErrPeerDead, ErrBadHandle, ErrCorrupt, ErrClosed}
	errsRecv = []error{ErrEmpty, ErrPeerDead, ErrBadHandle, ErrCorrupt, ErrClosed, context.DeadlineExceeded}
)

// run interprets the input: calls of the API, and scribbles on spans.
func (w *world) run(in *input, spans []span) {
	t := w.t
	ctxFor := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), time.Duration(1+in.u8()%3)*time.Millisecond)
	}
	for n := 0; in.more() && n < 200; n++ {
		op := in.u8() % 16
		t0 := time.Now()
		stop := hangGuard(fmt.Sprintf("op %d", op))
		switch op {
		case 0, 1, 2: // the peer writes
			scribble(w.m, w.L, spans, in)
		case 3:
			d := w.pickDomain(in)
			h, b, err := d.Alloc(1 + int(in.u8())*16)
			allowed(t, "alloc", err, ErrHeapFull, ErrCorrupt)
			if err == nil {
				inArena(t, d, w.L, b)
				w.own[d] = append(w.own[d], h)
			}
		case 4:
			d := w.pickDomain(in)
			h, mine := w.pickHandle(d, in, true)
			err := d.Free(h)
			allowed(t, "free", err, ErrBadHandle)
			if w.strict && mine && err != nil {
				t.Fatalf("free of our own %#x: %v", h, err)
			}
		case 5:
			d := w.pickDomain(in)
			h, mine := w.pickHandle(d, in, false)
			b, err := d.Bytes(h)
			allowed(t, "bytes", err, ErrBadHandle)
			if err == nil {
				inArena(t, d, w.L, b)
			} else if w.strict && mine {
				t.Fatalf("bytes of our own %#x: %v", h, err)
			}
		case 6:
			d := w.pickDomain(in)
			h, mine := w.pickHandle(d, in, true)
			err := w.endOf(d).Send(h)
			allowed(t, "send", err, errsSend...)
			if err != nil && mine {
				w.own[d] = append(w.own[d], h) // refused: still ours
			} else if err == nil && !mine {
				w.drop(d, h)
			}
		case 7:
			d := w.pickDomain(in)
			var hs []Handle
			var mine []bool
			for k := int(in.u8() % 5); k >= 0; k-- {
				h, m := w.pickHandle(d, in, true)
				hs = append(hs, h)
				mine = append(mine, m)
			}
			n, err := w.endOf(d).SendBatch(hs)
			allowed(t, "send batch", err, errsSend...)
			if n < 0 || n > len(hs) {
				t.Fatalf("SendBatch(%d) = %d", len(hs), n)
			}
			for i := range hs {
				if i >= n && mine[i] {
					w.own[d] = append(w.own[d], hs[i]) // not sent: still ours
				} else if i < n && !mine[i] {
					w.drop(d, hs[i])
				}
			}
		case 8:
			d := w.pickDomain(in)
			h, err := w.endOf(d).TryRecv()
			allowed(t, "try recv", err, errsRecv...)
			if err == nil {
				w.received(d, h)
			}
		case 9:
			d := w.pickDomain(in)
			ctx, cancel := ctxFor()
			h, err := w.endOf(d).Recv(ctx)
			cancel()
			allowed(t, "recv", err, errsRecv...)
			if err == nil {
				w.received(d, h)
			}
		case 10:
			d := w.pickDomain(in)
			ctx, cancel := ctxFor()
			hs := make([]Handle, 1+in.u8()%8)
			n, err := w.endOf(d).RecvBatch(ctx, hs)
			cancel()
			allowed(t, "recv batch", err, errsRecv...)
			if n < 0 || n > len(hs) {
				t.Fatalf("RecvBatch(%d) = %d", len(hs), n)
			}
			for _, h := range hs[:n] {
				w.received(d, h)
			}
		case 11:
			d := w.pickDomain(in)
			l, err := d.Listen(fmt.Sprintf("x%d", in.u8()%4))
			allowed(t, "listen", err, ErrServiceExists, ErrLimit, ErrCorrupt)
			if err == nil {
				ctx, cancel := ctxFor()
				c, err := w.pickDomain(in).Connect(ctx, l.l.Service())
				cancel()
				allowed(t, "connect", err, ErrNoService, ErrLimit, ErrCorrupt, context.DeadlineExceeded)
				s, err := l.TryAccept()
				allowed(t, "try accept", err, ErrEmpty, ErrCorrupt)
				for _, x := range []*Chan{c, s} {
					if x != nil {
						allowed(t, "close chan", x.Close())
					}
				}
				allowed(t, "close listener", l.Close())
			}
		case 12:
			s, err := w.l.TryAccept()
			allowed(t, "try accept", err, ErrEmpty, ErrCorrupt, ErrClosed)
			if s != nil {
				allowed(t, "close chan", s.Close())
			}
		case 13:
			st, err := w.pickDomain(in).Stat()
			allowed(t, "stat", err)
			if uint64(st.ProcsAlive) > w.L.MaxProcs || uint64(st.ChansBound) > w.L.MaxChans ||
				uint64(st.Services) > w.L.MaxChans || st.HeapBlocksUsed > w.L.NGranules ||
				st.HeapBytesUsed > w.L.ArenaSize || st.HeapBytesTotal != w.L.ArenaSize {
				t.Fatalf("stat out of range: %+v", st)
			}
		case 14:
			n, err := w.pickDomain(in).Reap()
			allowed(t, "reap", err, ErrCorrupt)
			if n < 0 || uint64(n) > w.L.MaxProcs {
				t.Fatalf("reap = %d", n)
			}
		case 15: // close one end: the other must drain, then see ErrPeerDead
			if in.u8()&1 == 0 {
				allowed(t, "close chan", w.cc.Close(), ErrClosed)
			} else {
				allowed(t, "close chan", w.sc.Close(), ErrClosed)
			}
		}
		stop()
		if slowLog && time.Since(t0) > 200*time.Millisecond {
			fmt.Fprintf(os.Stderr, "slow op %d: %v\n", op, time.Since(t0))
		}
	}
}

var slowLog = os.Getenv("EXIPC_FUZZ_SLOW") != ""

// seedInputs returns n pseudo-random inputs of up to size bytes whose ops
// byte-stream leans on scribbles (a fixed seed: the same every run).
func seedInputs(seed int64, n, size int) [][]byte {
	r := rand.New(rand.NewSource(seed))
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, 8+r.Intn(size))
		r.Read(b)
		out[i] = b
	}
	return out
}

// FuzzRing: a peer writes ring indices, slots and sleeping flags of a live
// channel between sends and receives.
func FuzzRing(f *testing.F) {
	// Hand-written: send 3, then tail := head + capacity + 1 on ring 0, recv.
	f.Add([]byte{3, 1, 3, 1, 3, 1, 6, 1, 0, 6, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 8, 0})
	f.Add([]byte{3, 1, 6, 1, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 9, 0, 2, 10, 0, 2, 7})
	f.Add([]byte{0, 2, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 9, 0, 1})
	for _, b := range seedInputs(1, 24, 200) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w := newWorld(t, true)
		in := &input{b: data}
		// Something in flight both ways first.
		for i := 0; i < 3; i++ {
			for _, d := range []*Domain{w.a, w.b} {
				if h, _, err := d.Alloc(100); err == nil {
					if w.endOf(d).Send(h) != nil {
						d.Free(h)
					}
				}
			}
		}
		w.run(in, ringSpans(w.L))
	})
}

// FuzzHeap: a peer writes free-list heads, the carve index, the slab table,
// block metadata and payloads between allocs, frees, sends and receives.
func FuzzHeap(f *testing.F) {
	f.Add([]byte{3, 0, 5, 3, 0, 5, 4, 0, 0, 0, 1, 0, 0, 0, 0, 6, 5, 0, 0, 0, 0, 0, 0, 0, 3, 0, 5, 13, 0, 14, 0})
	f.Add([]byte{3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 3, 0, 0})
	f.Add([]byte{3, 1, 9, 0, 2, 7, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 1, 0, 8, 0, 4, 0, 0})
	for _, b := range seedInputs(2, 24, 200) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w := newWorld(t, false)
		in := &input{b: data}
		for i := 0; i < 4; i++ { // carve some slabs of a few classes
			for _, size := range []int{10, 100, 1000, 4000} {
				if h, _, err := w.a.Alloc(size); err == nil {
					if i%2 == 0 {
						w.a.Free(h)
					} else {
						w.own[w.a] = append(w.own[w.a], h)
					}
				}
			}
		}
		w.run(in, heapSpans(w.L))
	})
}

// FuzzTables: a peer writes the queue manager's tables (process slots,
// services, channels), its lock, its counters and the doorbell bitmaps.
func FuzzTables(f *testing.F) {
	f.Add([]byte{0, 2, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 11, 0, 14, 0, 13, 0})
	f.Add([]byte{0, 4, 8, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 12, 11, 1, 0, 15, 1, 9, 0, 0})
	f.Add([]byte{0, 1, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 11, 2, 1, 14, 1})
	for _, b := range seedInputs(3, 24, 200) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w := newWorld(t, true)
		w.run(&input{b: data}, tableSpans(w.L))
	})
}

// FuzzHandle: Bytes and Free with arbitrary handles. Only the exact handle
// of a live block this process owns passes; everything else, including the
// handles of blocks another process owns, is ErrBadHandle.
func FuzzHandle(f *testing.F) {
	name := fuzzName()
	d, err := Open(name, &fuzzOpts)
	if err != nil {
		f.Fatalf("Open: %v", err)
	}
	e, err := Open(name, &fuzzOpts)
	if err != nil {
		f.Fatalf("Open again: %v", err)
	}
	f.Cleanup(func() { e.Close(); d.Close(); Unlink(name) })
	L, _ := native.LayoutOf((*native.Options)(&fuzzOpts))
	live := map[Handle]int{}
	for _, size := range []int{1, 64, 65, 1000, 4096} {
		h, _, err := d.Alloc(size)
		if err != nil {
			f.Fatalf("Alloc: %v", err)
		}
		live[h] = size
		f.Add(uint64(h), uint8(0))
		f.Add(uint64(h)^1, uint8(1))
		f.Add(uint64(h)^1<<32, uint8(1))
		f.Add(uint64(h)+1<<32, uint8(1))
		f.Add(uint64(h)|1<<63, uint8(1))
	}
	theirs, _, _ := e.Alloc(100)
	f.Add(uint64(theirs), uint8(1))
	f.Add(uint64(0), uint8(1))
	f.Add(^uint64(0), uint8(1))
	f.Add(uint64(1)<<32|L.NGranules, uint8(1))
	f.Fuzz(func(t *testing.T, h uint64, op uint8) {
		size, ok := live[Handle(h)]
		b, err := d.Bytes(Handle(h))
		if ok {
			if err != nil || len(b) != size {
				t.Fatalf("Bytes(live %#x) = %d bytes, %v", h, len(b), err)
			}
			inArena(t, d, L, b)
		} else if !errors.Is(err, ErrBadHandle) {
			t.Fatalf("Bytes(%#x) = %d bytes, %v; want ErrBadHandle", h, len(b), err)
		}
		if op&1 == 0 {
			return
		}
		err = d.Free(Handle(h))
		if ok {
			if err != nil {
				t.Fatalf("Free(live %#x): %v", h, err)
			}
			delete(live, Handle(h))
			nh, _, err := d.Alloc(size) // keep as many live blocks
			if err != nil {
				t.Fatalf("Alloc: %v", err)
			}
			live[nh] = size
		} else if !errors.Is(err, ErrBadHandle) {
			t.Fatalf("Free(%#x) = %v; want ErrBadHandle", h, err)
		}
	})
}

// attachImage is the file of a fresh, idle domain: a valid segment to
// mutate (built once per process).
var attachImage []byte

func validImage(t testing.TB) []byte {
	if attachImage != nil {
		return attachImage
	}
	name := fuzzName()
	d, err := Open(name, &fuzzOpts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	d.Close()
	img, err := os.ReadFile("/dev/shm/exipc." + name)
	Unlink(name)
	if err != nil {
		t.Fatalf("read image: %v", err)
	}
	attachImage = img
	return img
}

// FuzzAttach: attach to a file whose header and tables are arbitrary. The
// input is either the whole file (first byte even) or patches to a valid
// image (first byte odd): {offset:4, length:1, bytes}, offsets mostly in the
// header and tables. Open must fail with a documented error, or give a
// domain on which every call works or fails with a documented error.
func FuzzAttach(f *testing.F) {
	img := validImage(f)
	L, _ := native.LayoutOf((*native.Options)(&fuzzOpts))
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add(append([]byte{0}, img[:256]...))
	f.Add(append([]byte{0}, img[:L.HdrSize]...))
	f.Add([]byte{1})                                         // the valid image itself
	f.Add([]byte{1, 8, 0, 0, 0, 4, 2, 0, 0, 0})              // version 2 -> another
	f.Add([]byte{1, 16, 0, 0, 0, 8, 0, 0, 0, 0, 1, 0, 0, 0}) // total size
	patch := func(off uint32, b ...byte) []byte {
		p := []byte{1, byte(off), byte(off >> 8), byte(off >> 16), byte(off >> 24), byte(len(b))}
		return append(p, b...)
	}
	f.Add(patch(uint32(L.HdrReady), 0, 0, 0, 0))
	f.Add(patch(uint32(L.HdrReady), 2, 0, 0, 0))
	f.Add(patch(uint32(L.OffProcs), 1, 0, 0, 0))       // slot 0 alive, nobody holds it
	f.Add(patch(uint32(L.OffProcs), 7, 0, 0, 0))       // slot 0 in no known state
	f.Add(patch(uint32(L.OffServices), 1, 0, 0, 0, 1)) // a service listening, owner garbage
	f.Add(patch(uint32(L.OffChans), 2, 0, 0, 0, 9))    // a bound channel
	f.Add(patch(uint32(L.HdrLock), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	f.Add(patch(uint32(L.HdrFreelist), 0xff, 0xff, 0, 0, 0, 0, 0, 0))
	f.Add(patch(uint32(L.OffSlabs), 1, 0, 0, 0))
	f.Add(patch(uint32(L.OffMeta), 0, 0, 0, 0x40, 1, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		var file []byte
		if len(data) == 0 || data[0]&1 == 0 {
			if len(data) > 0 {
				file = data[1:]
			}
		} else {
			file = append([]byte(nil), img...)
			in := &input{b: data[1:]}
			for in.more() {
				off := uint64(in.u32())
				if off&0x80000000 == 0 {
					off %= L.OffSlabs // header and tables, mostly
				}
				off %= uint64(len(file))
				n := int(in.u8() % 32)
				for i := 0; i < n && off+uint64(i) < uint64(len(file)); i++ {
					file[off+uint64(i)] = in.u8()
				}
			}
		}
		name := fuzzName()
		path := "/dev/shm/exipc." + name
		fd, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0600)
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		_, err = fd.Write(file)
		fd.Close()
		if err != nil {
			os.Remove(path)
			t.Fatalf("write: %v", err)
		}
		stop := hangGuard("open")
		d, err := Open(name, nil)
		stop()
		os.Remove(path)
		if err != nil {
			allowed(t, "open", err, ErrCorrupt, ErrIncompatible, ErrLimit, syscall.ETIMEDOUT)
			return
		}
		stop = hangGuard("use")
		defer stop()
		defer d.Close()
		if _, err := d.Stat(); err != nil {
			t.Fatalf("stat: %v", err)
		}
		_, err = d.Reap()
		allowed(t, "reap", err, ErrCorrupt)
		l, err := d.Listen("svc")
		allowed(t, "listen", err, ErrServiceExists, ErrLimit, ErrCorrupt)
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		c, err := d.Connect(ctx, "svc")
		allowed(t, "connect", err, ErrNoService, ErrLimit, ErrCorrupt, context.DeadlineExceeded)
		h, b, err := d.Alloc(100)
		allowed(t, "alloc", err, ErrHeapFull, ErrCorrupt)
		if err == nil {
			if _, size := d.d.Mapping(); size == L.TotalSize { // the image's own shape
				inArena(t, d, L, b)
			}
			if c != nil {
				err = c.Send(h)
				allowed(t, "send", err, errsSend...)
				if err != nil {
					allowed(t, "free", d.Free(h), ErrBadHandle)
				}
			} else {
				allowed(t, "free", d.Free(h), ErrBadHandle)
			}
		}
		if l != nil {
			s, err := l.TryAccept()
			allowed(t, "try accept", err, ErrEmpty, ErrCorrupt)
			if s != nil {
				h, err := s.TryRecv()
				allowed(t, "try recv", err, errsRecv...)
				if err == nil {
					allowed(t, "free", d.Free(h), ErrBadHandle)
				}
				s.Close()
			}
			l.Close()
		}
		if c != nil {
			c.Close()
		}
	})
}
