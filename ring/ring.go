// Package ring is the data plane of an exipc channel: one process's end of a
// pair of SPSC handle rings. It moves 64-bit heap handles (never data) with
// one cgo call per Send, Recv or batch, and no heap allocation.
//
// Ends come from the binding layer (package bind: Accept and Connect); what
// a program calls on one is here: Send, Recv and their batch and Try forms,
// and Close.
//
// An End is safe for concurrent use: the C core allows one sending and one
// receiving thread at a time per channel, so senders are serialised by one
// mutex and receivers by another, and a guard keeps the C channel alive
// while any call uses it.
package ring

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/cpu"

	"github.com/exipc/exipc/internal/guard"
	"github.com/exipc/exipc/internal/link"
	"github.com/exipc/exipc/internal/poll"
	"github.com/exipc/exipc/native"
)

// End is one process's end of a bound channel.
//
// The sending and the receiving side each have their own guard and mutex,
// on cache lines of their own: a goroutine that sends and one that receives
// on the same End do not pull a line back and forth between their cores.
type End struct {
	send half
	_    cpu.CacheLinePad
	recv half
	_    cpu.CacheLinePad

	c       native.Chan
	service string            // for error messages
	onClose func(link.EndCtl) // called once after the C channel is closed; may be nil
	closing atomic.Bool
	p       *poll.Poller       // the domain's poller: blocked receives park on it
	w       *poll.Waiter       // this end's place in it
	free    func(uint64) error // the domain's Free (SetFree), or nil
}

// recvSite is the End as Wait sees it: its receiving side.
type recvSite End

func (s *recvSite) Arm() int     { return s.c.Arm() }
func (s *recvSite) Closed() bool { return s.recv.g.Closed() }

// half is one direction's share of an End: its guard keeps the C channel
// alive while a call of that direction uses it, and mu lets one goroutine
// at a time into C (the C core allows one sending and one receiving thread
// per channel).
type half struct {
	g  guard.Guard
	mu sync.Mutex
}

// ctl is the binding layer's view of an End (link.EndCtl).
type ctl End

func init() {
	link.NewEnd = func(c native.Chan, service string, p *poll.Poller, onClose func(link.EndCtl)) (any, link.EndCtl) {
		e := newEnd(c, service, p, onClose)
		return e, (*ctl)(e)
	}
	link.CtlOf = func(e any) link.EndCtl { return (*ctl)(e.(*End)) }
}

// newEnd wraps an open C channel bound to SERVICE; p is its domain's poller.
// onClose, if not nil, is called once when the end has been closed (the
// binding layer untracks it).
func newEnd(c native.Chan, service string, p *poll.Poller, onClose func(link.EndCtl)) *End {
	return &End{c: c, service: service, onClose: onClose, p: p, w: p.Register(c.ID())}
}

// Service returns the name of the service the channel is bound to.
func (e *End) Service() string { return e.service }

// Send enqueues h towards the peer; on success h belongs to the receiver.
// It never blocks. A full ring gives the bare native.ErrQueueFull (no
// allocation: callers spin on it); then h still belongs to the caller, as it
// does after any other error.
func (e *End) Send(h uint64) error {
	if !e.send.g.Enter() {
		return native.WrapErr("send", e.service, native.ErrClosed)
	}
	e.send.mu.Lock()
	rc := e.c.Send(h)
	e.send.mu.Unlock()
	e.send.g.Leave()
	if rc >= 0 {
		return nil
	}
	if native.IsAgain(rc) {
		return native.ErrQueueFull
	}
	return native.Wrap("send", e.service, rc, native.ErrQueueFull, nil)
}

// SendCopy allocates a block holding head then body, copies them in and
// sends it, in one call into C; it returns the handle sent (it belongs to
// the receiver). On any error nothing was sent and nothing stays allocated;
// a full ring gives the bare native.ErrQueueFull and an empty heap the bare
// native.ErrHeapFull (no allocation: callers retry on them).
func (e *End) SendCopy(head, body []byte) (uint64, error) {
	if !e.send.g.Enter() {
		return 0, native.WrapErr("send", e.service, native.ErrClosed)
	}
	e.send.mu.Lock()
	h, rc := e.c.SendCopy(head, body)
	e.send.mu.Unlock()
	e.send.g.Leave()
	if rc >= 0 {
		return h, nil
	}
	switch {
	case native.IsAgain(rc):
		return 0, native.ErrQueueFull
	case rc == -int(syscall.ENOMEM):
		return 0, native.ErrHeapFull
	}
	return 0, native.Wrap("send", e.service, rc, native.ErrQueueFull, nil)
}

// SendBatch sends hs in order with one publication and returns how many
// were sent (k); hs[k:] still belong to the caller. A partial send (0 < k <
// len(hs)) is not an error. When nothing could be sent because the ring is
// full it returns 0 and the bare native.ErrQueueFull. An empty hs sends
// nothing and returns 0, nil.
func (e *End) SendBatch(hs []uint64) (int, error) {
	if len(hs) == 0 {
		if e.send.g.Closed() {
			return 0, native.WrapErr("send", e.service, native.ErrClosed)
		}
		return 0, nil
	}
	if !e.send.g.Enter() {
		return 0, native.WrapErr("send", e.service, native.ErrClosed)
	}
	e.send.mu.Lock()
	rc := e.c.SendBatch(hs)
	e.send.mu.Unlock()
	e.send.g.Leave()
	if rc >= 0 {
		return rc, nil
	}
	if native.IsAgain(rc) {
		return 0, native.ErrQueueFull
	}
	return 0, native.Wrap("send", e.service, rc, native.ErrQueueFull, nil)
}

// TryRecv dequeues one handle without blocking. An empty ring gives the bare
// native.ErrEmpty (no allocation); a peer that closed or died, once
// everything it sent was received, gives native.ErrPeerDead.
func (e *End) TryRecv() (uint64, error) {
	if !e.recv.g.Enter() {
		return 0, native.WrapErr("recv", e.service, native.ErrClosed)
	}
	e.recv.mu.Lock()
	h, rc := e.c.Recv(0)
	e.recv.mu.Unlock()
	e.recv.g.Leave()
	if rc >= 0 {
		return h, nil
	}
	if native.IsAgain(rc) {
		return 0, native.ErrEmpty
	}
	return 0, native.Wrap("recv", e.service, rc, native.ErrEmpty, nil)
}

// TryRecvView is TryRecv returning the block too, as a slice of shared
// memory with the length asked for at alloc, in one call into C.
func (e *End) TryRecvView() (uint64, []byte, error) {
	if !e.recv.g.Enter() {
		return 0, nil, native.WrapErr("recv", e.service, native.ErrClosed)
	}
	e.recv.mu.Lock()
	h, b, rc := e.c.RecvView(0)
	e.recv.mu.Unlock()
	e.recv.g.Leave()
	if rc >= 0 {
		return h, b, nil
	}
	if native.IsAgain(rc) {
		return 0, nil, native.ErrEmpty
	}
	return 0, nil, native.Wrap("recv", e.service, rc, native.ErrEmpty, nil)
}

// RecvView is Recv returning the block too (see TryRecvView): each try is
// one call into C.
func (e *End) RecvView(ctx context.Context) (uint64, []byte, error) {
	if !e.recv.g.Enter() {
		return 0, nil, native.WrapErr("recv", e.service, native.ErrClosed)
	}
	defer e.recv.g.Leave()
	e.recv.mu.Lock()
	defer e.recv.mu.Unlock()
	var h uint64
	var b []byte
	err := e.p.Wait(ctx, e.w, (*recvSite)(e), func(t int64) (bool, error) {
		var rc int
		h, b, rc = e.look(t)
		return e.lookResult(t, rc)
	}, poll.Direct|poll.Fused)
	return h, b, e.waitErr(ctx, err)
}

// SendRecvView frees done and sends out (either may be 0: none), then
// receives like RecvView; the free, the send and the first try (and, when
// the wait would park at once, the arm) take one call into C. When the send
// fails nothing is received: a full ring gives the bare native.ErrQueueFull
// and out is still the caller's; after any other error out has been freed.
func (e *End) SendRecvView(ctx context.Context, done, out uint64) (uint64, []byte, error) {
	if !e.recv.g.Enter() {
		e.freeUnsent(done, out)
		return 0, nil, native.WrapErr("recv", e.service, native.ErrClosed)
	}
	defer e.recv.g.Leave()
	e.recv.mu.Lock()
	defer e.recv.mu.Unlock()
	var h uint64
	var b []byte
	first, sendErr := true, error(nil)
	err := e.p.Wait(ctx, e.w, (*recvSite)(e), func(t int64) (bool, error) {
		var rc int
		if first {
			first = false
			if !e.send.g.Enter() {
				e.freeUnsent(done, out)
				sendErr = native.WrapErr("send", e.service, native.ErrClosed)
				return true, sendErr
			}
			var sent int
			e.send.mu.Lock()
			sent, h, b, rc = e.c.SendRecvView(done, out, t == poll.TryArm)
			e.send.mu.Unlock()
			e.send.g.Leave()
			if sent < 0 {
				sendErr = e.sendErr(sent)
				return true, sendErr
			}
		} else {
			h, b, rc = e.look(t)
		}
		return e.lookResult(t, rc)
	}, poll.Direct|poll.Fused)
	if first { // closed before the send: free what the call owned
		e.freeUnsent(done, out)
	}
	if sendErr != nil {
		return 0, nil, sendErr
	}
	return h, b, e.waitErr(ctx, err)
}

// SendCopyRecvView is SendCopy then RecvView, the send and the first try
// (and the arm, see SendRecvView) in one call into C; sent is the handle
// sent. When the send fails (sent 0) nothing was sent, nothing stays
// allocated and nothing is received: a full
// ring gives the bare native.ErrQueueFull, an empty heap the bare
// native.ErrHeapFull.
func (e *End) SendCopyRecvView(ctx context.Context, head, body []byte) (sent, h uint64, b []byte, err error) {
	if !e.recv.g.Enter() {
		return 0, 0, nil, native.WrapErr("send", e.service, native.ErrClosed)
	}
	defer e.recv.g.Leave()
	e.recv.mu.Lock()
	defer e.recv.mu.Unlock()
	first, sendErr := true, error(nil)
	err = e.p.Wait(ctx, e.w, (*recvSite)(e), func(t int64) (bool, error) {
		var rc int
		if first {
			first = false
			if !e.send.g.Enter() {
				sendErr = native.WrapErr("send", e.service, native.ErrClosed)
				return true, sendErr
			}
			var src int
			e.send.mu.Lock()
			src, sent, h, b, rc = e.c.SendCopyRecvView(head, body, t == poll.TryArm)
			e.send.mu.Unlock()
			e.send.g.Leave()
			if src < 0 {
				sendErr = e.sendErr(src)
				return true, sendErr
			}
		} else {
			h, b, rc = e.look(t)
		}
		return e.lookResult(t, rc)
	}, poll.Direct|poll.Fused)
	if first {
		return 0, 0, nil, native.WrapErr("send", e.service, native.ErrClosed)
	}
	if sendErr != nil {
		return 0, 0, nil, sendErr
	}
	return sent, h, b, e.waitErr(ctx, err)
}

// SetFree gives the end its domain's (guarded) Free, for the blocks a
// SendRecvView owned but could not hand to C (the end closed first).
func (e *End) SetFree(free func(uint64) error) { e.free = free }

// freeUnsent frees the blocks a SendRecvView that never reached C owned.
func (e *End) freeUnsent(done, out uint64) {
	if e.free == nil {
		return
	}
	if done != 0 {
		e.free(done)
	}
	if out != 0 {
		e.free(out)
	}
}

// sendErr is Send's error for C result rc < 0.
func (e *End) sendErr(rc int) error {
	switch {
	case native.IsAgain(rc):
		return native.ErrQueueFull
	case rc == -int(syscall.ENOMEM):
		return native.ErrHeapFull
	}
	return native.Wrap("send", e.service, rc, native.ErrQueueFull, nil)
}

// look is one try of a poll.Fused|poll.Direct wait: with t poll.TryArm a
// try that arms the end when nothing is there, else a try that may sleep
// up to t ns in C. lookResult classifies its rc.
func (e *End) look(t int64) (uint64, []byte, int) {
	if t == poll.TryArm {
		return e.c.RecvViewArm(true)
	}
	return e.c.RecvView(t)
}

func (e *End) lookResult(t int64, rc int) (bool, error) {
	if t == poll.TryArm {
		return e.armResult(rc)
	}
	return e.result(rc)
}

// armResult classifies a RecvViewArm: received (or an error), armed
// (poll.ErrArmed), or nothing there and not armed.
func (e *End) armResult(rc int) (bool, error) {
	if rc == 1 {
		return false, poll.ErrArmed
	}
	return e.result(rc)
}

// Recv dequeues one handle, waiting until one arrives, the peer goes
// (native.ErrPeerDead), ctx is done (ctx's error) or the end is closed
// (native.ErrClosed). A waiting goroutine spins or parks as the domain's
// wait policy says; parked, it holds no thread: the domain's poller wakes it.
func (e *End) Recv(ctx context.Context) (uint64, error) {
	if !e.recv.g.Enter() {
		return 0, native.WrapErr("recv", e.service, native.ErrClosed)
	}
	defer e.recv.g.Leave()
	e.recv.mu.Lock()
	defer e.recv.mu.Unlock()
	var h uint64
	err := e.p.Wait(ctx, e.w, (*recvSite)(e), func(t int64) (bool, error) {
		var rc int
		h, _, rc = e.look(t)
		return e.lookResult(t, rc)
	}, poll.Direct|poll.Fused)
	return h, e.waitErr(ctx, err)
}

// RecvBatch receives up to len(hs) handles into hs, waiting like Recv for
// the first, and returns how many. An empty hs returns 0, nil.
func (e *End) RecvBatch(ctx context.Context, hs []uint64) (int, error) {
	if !e.recv.g.Enter() {
		return 0, native.WrapErr("recv", e.service, native.ErrClosed)
	}
	defer e.recv.g.Leave()
	if len(hs) == 0 {
		return 0, nil
	}
	e.recv.mu.Lock()
	defer e.recv.mu.Unlock()
	n := 0
	err := e.p.Wait(ctx, e.w, (*recvSite)(e), func(t int64) (bool, error) {
		rc := e.c.RecvBatch(hs, t)
		if rc > 0 {
			n = rc
		}
		return e.result(rc)
	}, poll.Direct)
	return n, e.waitErr(ctx, err)
}

// RecvBatchView is RecvBatch returning each block too, as a slice of shared
// memory, in bufs: up to min(len(hs), len(bufs), native.BatchMax) per call,
// one call into C per try.
func (e *End) RecvBatchView(ctx context.Context, hs []uint64, bufs [][]byte) (int, error) {
	if !e.recv.g.Enter() {
		return 0, native.WrapErr("recv", e.service, native.ErrClosed)
	}
	defer e.recv.g.Leave()
	if len(hs) == 0 || len(bufs) == 0 {
		return 0, nil
	}
	e.recv.mu.Lock()
	defer e.recv.mu.Unlock()
	n := 0
	err := e.p.Wait(ctx, e.w, (*recvSite)(e), func(int64) (bool, error) {
		rc := e.c.RecvBatchView(hs, bufs, 0)
		if rc > 0 {
			n = rc
		}
		return e.result(rc)
	}, 0)
	return n, e.waitErr(ctx, err)
}

// Waiter is the end's place in its domain's poller.
func (e *ctl) Waiter() *poll.Waiter { return e.w }

// Arm asks for the poller's signal when the end has something to receive
// (or its peer goes). It reports whether that is so already; a closed end
// reports ready, so that the caller's next call returns ErrClosed.
func (e *ctl) Arm() (bool, error) {
	if !e.recv.g.Enter() {
		return true, nil
	}
	defer e.recv.g.Leave()
	// The C arm reads the receiving side's index: not while a Recv runs.
	// A Recv in progress has armed the end itself, and its waiter, joined
	// to the poll's group, signals the poll too.
	if !e.recv.mu.TryLock() {
		return false, nil
	}
	r := e.c.Arm()
	e.recv.mu.Unlock()
	if r < 0 {
		return false, native.Wrap("poll", e.service, r, nil, nil)
	}
	return r == 1, nil
}

// result classifies a non-blocking receive: done with no error, keep
// waiting (nothing there), or done with an error.
func (e *End) result(rc int) (bool, error) {
	if rc >= 0 {
		return true, nil
	}
	if native.IsAgain(rc) || rc == -int(syscall.ETIMEDOUT) { // nothing there (yet)
		return false, nil
	}
	return true, native.Wrap("recv", e.service, rc, native.ErrEmpty, nil)
}

func (e *End) waitErr(ctx context.Context, err error) error {
	switch err {
	case nil:
		return nil
	case poll.ErrDone:
		return native.CtxErr(ctx)
	case native.ErrClosed:
		return native.WrapErr("recv", e.service, native.ErrClosed)
	}
	return err
}

// Close closes this end: the peer receives everything sent so far, then
// native.ErrPeerDead; handles in flight towards this end are freed. It waits
// for calls in flight (a blocked Recv returns within guard.MaxSlice).
// Closing an end whose peer died returns nil; closing it again returns
// native.ErrClosed.
func (e *End) Close() error {
	var rc int
	if !e.shut(&rc) {
		return native.WrapErr("close", e.service, native.ErrClosed)
	}
	return native.Wrap("close", e.service, rc, nil, nil)
}

// Mark marks the end closed without waiting: calls fail with
// native.ErrClosed from now on, and a blocked Recv gives up at its next
// slice. Shut must follow.
func (e *ctl) Mark() { (*End)(e).mark() }

// Shut is shut, for the binding layer.
func (e *ctl) Shut(rc *int) bool { return (*End)(e).shut(rc) }

func (e *End) mark() {
	e.send.g.Mark()
	e.recv.g.Mark()
	e.w.Wake() // a parked Recv sees the mark now
}

// shut closes the end like Close, storing the C result in *rc if this call
// freed it, and reports whether this call was the first to close it. The
// binding layer uses it to close the ends a domain still has open. Every
// shut returns only once the C channel is closed.
func (e *End) shut(rc *int) bool {
	first := !e.closing.Swap(true)
	e.mark()
	e.send.g.Shut(func() {}) // wait for sends in flight
	e.recv.g.Shut(func() {
		*rc = e.c.Close()
		e.p.Unregister(e.w)
		if e.onClose != nil {
			e.onClose((*ctl)(e))
		}
	})
	return first
}
