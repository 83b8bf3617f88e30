package exipc

import (
	"context"
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
	// about 20 µs, then parks; WaitSpin never parks (lowest latency, a busy
	// CPU per waiting goroutine: for a dedicated core); WaitPark parks at once
	// (least CPU, a futex wake-up per message that finds the receiver idle:
	// for many mostly idle channels).
	WaitPolicy uint32
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
type Domain struct{ d *bind.Domain }

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
		return nil, err
	}
	return &Domain{d}, nil
}

// Unlink removes the domain NAME from /dev/shm. Processes that have it open
// keep working. An absent domain gives an error matching fs.ErrNotExist.
func Unlink(name string) error { return bind.Unlink(name) }

// Close closes every Listener and Chan still open on the domain, frees the
// blocks this process owns, unregisters the process and unmaps the domain.
// The segment remains until Unlink. Slices returned by Alloc and Bytes must
// not be used afterwards.
func (d *Domain) Close() error { return d.d.Close() }

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
