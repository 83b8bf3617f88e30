package exipc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"unsafe"

	"github.com/exipc/exipc/bind"
	"github.com/exipc/exipc/native"
	"github.com/exipc/exipc/ring"
)

// Handle refers to a block of a domain's shared heap. It is valid in every
// process of the domain, wherever the segment is mapped. 0 is never a valid
// handle.
type Handle uint64

// Options are the shape of a new domain. Zero fields take defaults; nil
// Options are all defaults. When the domain exists already, its own values
// win.
type Options struct {
	Size         uint64 // bytes of heap arena (default 32 MiB, at least 64 KiB)
	MaxProcs     uint32 // process slots (default 64)
	MaxChans     uint32 // channels and services (default 256)
	RingCapacity uint32 // handles per ring, a power of two (default 256)
	Mode         uint32 // file mode of a new domain (default 0600)
	MaxBlock     uint32 // largest block Alloc gives, 64 B..Size (default half the arena; 0 = default)
	// WaitPolicy is how this process's blocking receives and accepts wait
	// (this process's choice, not the domain's): WaitAdaptive (default) spins
	// about 20 µs, then parks, with at most GOMAXPROCS-1 goroutines of the
	// process spinning at once (the others park at once); WaitSpin never
	// parks (lowest latency, a busy CPU per waiting goroutine: for a
	// dedicated core); WaitPark parks at once (least CPU, a futex wake-up per
	// message that finds the receiver idle: for many mostly idle channels).
	// A parked Recv sleeps in C on its ring's futex while at most GOMAXPROCS
	// goroutines do (one thread hop per wake-up; a cancelled context or Close
	// is seen within 5 ms), and on the domain's poller otherwise.
	WaitPolicy uint32
	// AttachOnly: attach to an existing domain only. If there is none, Open
	// creates nothing and returns an error matching fs.ErrNotExist.
	AttachOnly bool
	// Trust. By default Open attaches only to a domain whose file belongs to
	// this process's effective uid, root included, and any other owner gives
	// an error matching fs.ErrPermission that names the owner found (another
	// local user could create the name first and read every message).
	// TrustUID also accepts a domain owned by that uid; TrustGID one whose
	// group is that gid (and a domain Open creates gets that group: give it
	// Mode 0660 so the group can open it); TrustAny, any owner (for tools that
	// inspect other users' domains).
	TrustUID *uint32
	TrustGID *uint32
	TrustAny bool
	// ProcQuota (a new domain's): how many blocks each process may hold,
	// owned or sent and still queued on its rings. A process at its quota
	// gets ErrHeapFull from Alloc at once, whatever the heap holds, so one
	// buggy front end cannot take the heap from the store and the others.
	// 0: no limit. Attachers take the domain's value.
	ProcQuota uint32
}

// Wait policies for Options.WaitPolicy.
const (
	WaitAdaptive = native.WaitAdaptive
	WaitSpin     = native.WaitSpin
	WaitPark     = native.WaitPark
)

// Stat holds a domain's counters, domain-wide.
type Stat struct {
	ProcsAlive     uint32 // process slots held by live processes
	ChansBound     uint32 // channels with at least one open end
	Services       uint32 // listening services
	HeapBytesTotal uint64 // bytes of heap arena
	HeapBytesUsed  uint64 // bytes of blocks not free (whole size classes)
	HeapBlocksUsed uint64 // blocks owned or in flight
	ReapedProcs    uint64 // dead processes cleaned so far (cumulative)
}

// Domain is an open shared-memory domain. Create it with Open.
type Domain struct {
	d    *bind.Domain
	opts Options // as opened, for Reopen
}

// Listener listens on a service of a domain. Create it with Domain.Listen.
type Listener struct{ l *bind.Listener }

// Chan is this process's end of a channel: a pair of rings, one per
// direction, between two processes. Get it from Listener.Accept or
// Domain.Connect.
type Chan struct{ e *ring.End }

// Open creates the domain NAME (/dev/shm/exipc.NAME) or attaches to it if it
// exists, and registers the calling process in it. opts may be nil for the
// defaults. Names are 1–200 of [A-Za-z0-9._-], not starting with '.';
// anything else, or a RingCapacity that is not a power of two, gives
// ErrInvalid.
func Open(name string, opts *Options) (*Domain, error) {
	if err := checkOptions(name, opts); err != nil {
		return nil, err
	}
	d, err := bind.Open(name, (*native.Options)(opts))
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			err = ownerError(name, err)
		}
		return nil, err
	}
	dm := &Domain{d: d}
	if opts != nil {
		dm.opts = *opts
	}
	return dm, nil
}

// ownerError adds to a refused Open who owns the domain's file (read again
// here, for the message only: the check itself was made on the opened file).
func ownerError(name string, err error) error {
	fi, serr := os.Lstat("/dev/shm/exipc." + name)
	if serr != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return err
	}
	who := "uid " + strconv.Itoa(int(st.Uid))
	if u, uerr := user.LookupId(strconv.Itoa(int(st.Uid))); uerr == nil {
		who += " (" + u.Username + ")"
	}
	return fmt.Errorf("%w: the domain's file is owned by %s, group %d, mode %04o, and this process runs as uid %d; trust that owner with Options.TrustUID or TrustGID",
		err, who, st.Gid, fi.Mode().Perm(), os.Geteuid())
}

// Unlink removes the domain NAME from /dev/shm at once. Processes attached
// to it get ErrDomainGone from then on (blocked calls included) and must
// Close and Open the name again; use Leave for an ordinary exit. An absent
// domain gives an error matching fs.ErrNotExist.
func Unlink(name string) error { return bind.Unlink(name) }

// Close closes every Listener and Chan still open on the domain, frees the
// blocks this process owns, unregisters the process and unmaps the domain.
// The segment remains until Unlink. Slices returned by Alloc and Bytes must
// not be used afterwards.
func (d *Domain) Close() error { return d.d.Close() }

// Leave is Close, and also removes the domain's name when no other live
// process is attached any more: the last process out cleans up (of two
// leaving at once, exactly the last one). It reports whether it removed the
// name. A server should Leave rather than Unlink on an ordinary exit: an
// Unlink while clients are attached strands them (ErrDomainGone).
func (d *Domain) Leave() (last bool, err error) { return d.d.Leave() }

// Listen starts listening on SERVICE (1–47 of [A-Za-z0-9._-]). A service
// that a live process listens on gives ErrServiceExists.
func (d *Domain) Listen(service string) (*Listener, error) {
	l, err := d.d.Listen(service)
	if err != nil {
		return nil, err
	}
	return &Listener{l}, nil
}

// Connect binds a new channel to SERVICE at once (it does not wait for the
// server to accept). If nobody listens on SERVICE it waits for it until ctx
// is done and then returns an error matching both ErrNoService and
// ctx.Err().
func (d *Domain) Connect(ctx context.Context, service string) (*Chan, error) {
	e, err := d.d.Connect(ctx, service)
	if err != nil {
		return nil, err
	}
	return &Chan{e}, nil
}

// Alloc allocates a block of size bytes and returns its handle and the block
// itself: a slice of shared memory, exactly size bytes long, to be filled in
// place. The block belongs to this process until it is sent or freed.
// Errors: ErrInvalid (size 0), ErrTooLarge (above the domain's largest
// block, Options.MaxBlock: the error names both), ErrHeapFull (it could fit,
// but not now: the bare sentinel, cheap to retry on).
func (d *Domain) Alloc(size int) (Handle, []byte, error) {
	h, b, err := d.d.Alloc(size)
	if err != nil {
		return 0, nil, d.allocError(size, err)
	}
	return Handle(h), b, nil
}

// Bytes returns the block h, which this process owns (it allocated or
// received it), as a slice of shared memory with the length asked for at
// alloc. A zero, forged, stale, freed or in-flight handle gives
// ErrBadHandle.
func (d *Domain) Bytes(h Handle) ([]byte, error) { return d.d.Bytes(uint64(h)) }

// Free returns the block h, which this process owns, to the heap. Freeing
// anything else (a double free, a stale or forged handle, a handle already
// sent) gives ErrBadHandle.
func (d *Domain) Free(h Handle) error { return d.d.Free(uint64(h)) }

// AllocBatch allocates up to min(len(hs), len(bufs)) blocks of size bytes
// each, in one call into C per 64 blocks: the handles go to hs and the
// blocks themselves, exactly size bytes of shared memory each, to bufs. It
// returns how many it allocated: fewer than asked when the heap ran out part
// way (not an error); none gives 0 and ErrHeapFull (not wrapped).
func (d *Domain) AllocBatch(size int, hs []Handle, bufs [][]byte) (int, error) {
	return d.d.AllocBatch(size, handles(hs), bufs)
}

// FreeBatch frees every handle of hs, which this process owns, in order and
// in one call into C (one cgo crossing for the lot). It stops at the first
// it may not free (ErrBadHandle): those before it are freed, those after it
// are untouched.
func (d *Domain) FreeBatch(hs []Handle) error { return d.d.FreeBatch(handles(hs)) }

// Reap cleans up after every dead process of the domain — its blocks,
// channels, services and slot — and returns how many this call cleaned (0
// if there were none or another process cleaned them).
func (d *Domain) Reap() (int, error) { return d.d.Reap() }

// Stat returns the domain's counters.
func (d *Domain) Stat() (Stat, error) {
	st, err := d.d.Stat()
	return Stat(st), err
}

// Accept returns the oldest channel connected to the service, waiting until
// one comes or ctx is done (then it returns ctx.Err()).
func (l *Listener) Accept(ctx context.Context) (*Chan, error) {
	e, err := l.l.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return &Chan{e}, nil
}

// TryAccept returns the oldest channel connected to the service without
// waiting; with none pending it returns ErrEmpty.
func (l *Listener) TryAccept() (*Chan, error) {
	e, err := l.l.TryAccept()
	if err != nil {
		return nil, err
	}
	return &Chan{e}, nil
}

// Close stops listening. Channels connected but not yet accepted are closed;
// their clients see ErrPeerDead. Accepted channels stay open.
func (l *Listener) Close() error { return l.l.Close() }

// Send enqueues h towards the peer and never blocks. On success the block
// belongs to the peer: do not touch or free it. On a full ring Send returns
// ErrQueueFull itself (not wrapped, so that retrying costs no allocation);
// on that or any other error h still belongs to the caller. A caller that
// retries on ErrQueueFull should give the CPU away between tries (a
// sched_yield system call, or a short sleep) rather than spin with
// runtime.Gosched: a tight retry loop keeps pulling the ring's index cache
// line away from the receiver and slows it down.
func (c *Chan) Send(h Handle) error { return c.e.Send(uint64(h)) }

// SendCopy sends a copy of head followed by body (either may be nil) in a
// new block: Alloc, copy and Send in one call into C (one cgo crossing, where
// the three calls take three). It returns the handle sent, which belongs to
// the peer. On any error nothing was sent and nothing stays allocated; a
// full ring gives ErrQueueFull and an empty heap ErrHeapFull, not wrapped,
// as Send does.
func (c *Chan) SendCopy(head, body []byte) (Handle, error) {
	h, err := c.e.SendCopy(head, body)
	return Handle(h), err
}

// SendBatch sends hs in order with one publication and returns how many it
// sent, k; hs[k:] still belong to the caller. Sending fewer than len(hs) is
// not an error; when the ring is full and nothing was sent it returns 0 and
// ErrQueueFull.
func (c *Chan) SendBatch(hs []Handle) (int, error) { return c.e.SendBatch(handles(hs)) }

// Recv dequeues one handle, waiting until one arrives, the peer has closed
// or died and everything it sent was received (ErrPeerDead), or ctx is done
// (an error matching ctx.Err()). The received block belongs to the caller,
// which frees it or sends it on.
func (c *Chan) Recv(ctx context.Context) (Handle, error) {
	h, err := c.e.Recv(ctx)
	return Handle(h), err
}

// TryRecv dequeues one handle without waiting. With nothing there it returns
// ErrEmpty itself (not wrapped, so that polling costs no allocation).
func (c *Chan) TryRecv() (Handle, error) {
	h, err := c.e.TryRecv()
	return Handle(h), err
}

// RecvBytes is Recv that also returns the received block, as Bytes would,
// in the same call into C (Recv then Bytes take two cgo crossings).
func (c *Chan) RecvBytes(ctx context.Context) (Handle, []byte, error) {
	h, b, err := c.e.RecvView(ctx)
	return Handle(h), b, err
}

// TryRecvBytes is TryRecv that also returns the received block (see
// RecvBytes). With nothing there it returns ErrEmpty itself.
func (c *Chan) TryRecvBytes() (Handle, []byte, error) {
	h, b, err := c.e.TryRecvView()
	return Handle(h), b, err
}

// RecvBatchBytes is RecvBatch that also returns each received block, as
// Bytes would, in bufs: up to min(len(hs), len(bufs), 64) in one call into C.
// It returns how many; bufs[i] is the block of hs[i].
func (c *Chan) RecvBatchBytes(ctx context.Context, hs []Handle, bufs [][]byte) (int, error) {
	return c.e.RecvBatchView(ctx, handles(hs), bufs)
}

// RecvBatch receives up to len(hs) handles into hs, waiting like Recv for
// the first, and returns how many it received.
func (c *Chan) RecvBatch(ctx context.Context, hs []Handle) (int, error) {
	return c.e.RecvBatch(ctx, handles(hs))
}

// Close closes this end of the channel. The peer receives everything sent so
// far, then ErrPeerDead; blocks in flight towards this end are freed.
// Closing a channel whose peer already closed or died returns nil.
func (c *Chan) Close() error { return c.e.Close() }

// handles views hs as the []uint64 the lower layers take, without a copy.
func handles(hs []Handle) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.SliceData(hs)), len(hs))
}

// PollItem is one entry of Domain.Poll: set Chan or Listener (not both).
// Poll sets Ready when a TryRecv (or TryAccept) would probably not find
// nothing: a handle waits, the peer has gone, or the object was closed.
type PollItem struct {
	Chan     *Chan
	Listener *Listener
	Ready    bool
}

// Poll waits until at least one item is ready or ctx is done, sets each
// item's Ready and returns how many are. It lets one goroutine serve any
// number of channels and listeners (see the server loop example); like
// Recv, it parks on the domain's poller and holds no thread while it waits.
// Readiness is a hint: follow it with TryRecv / TryAccept, which may still
// return ErrEmpty.
func (d *Domain) Poll(ctx context.Context, items []PollItem) (int, error) {
	var ends []*ring.End
	var lns []*bind.Listener
	for _, it := range items {
		switch {
		case it.Chan != nil && it.Listener == nil:
			ends = append(ends, it.Chan.e)
		case it.Listener != nil && it.Chan == nil:
		default:
			return 0, native.WrapErr("poll", "", native.ErrInvalid)
		}
	}
	for _, it := range items {
		if it.Listener != nil {
			lns = append(lns, it.Listener.l)
		}
	}
	ready := make([]bool, len(ends)+len(lns))
	n, err := d.d.Poll(ctx, ends, lns, ready)
	ie, il := 0, len(ends)
	for i := range items {
		if items[i].Chan != nil {
			items[i].Ready = ready[ie]
			ie++
		} else {
			items[i].Ready = ready[il]
			il++
		}
	}
	return n, err
}

// Name returns the domain's name, as given to Open.
func (d *Domain) Name() string { return d.d.Name() }

// Reopen opens the domain's name again, attach-only, with the options d was
// opened with: after ErrDomainGone it reaches the domain that has the name
// now (a restarted server's), or returns an error matching fs.ErrNotExist
// while there is none. d stays open until it is closed.
func (d *Domain) Reopen() (*Domain, error) {
	o := d.opts
	o.AttachOnly = true
	return Open(d.Name(), &o)
}
