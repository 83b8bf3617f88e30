// Package poll is the Go side of waiting: one poller per domain sleeps on
// the process's doorbell and wakes exactly the goroutines whose channel or
// listener rang, and Wait is the one loop that applies the wait policy
// (spin, then park) for every blocking call of the Go layers.
package poll

import (
	"context"
	"errors"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/exipc/exipc/internal/guard"
	"github.com/exipc/exipc/native"
)

// ReapEvery is how often a running poller reaps dead processes when nothing
// rings, in the one case the kernel does not tell the domain's watcher of a
// death (a peer in another pid namespace, or no pidfd): such a peer killed
// without a word then shows up as a closed end within about this time.
// Otherwise the poller sleeps without a timeout: nothing wakes while nothing
// happens.
const ReapEvery = 50 * time.Millisecond

// spinFor is how long WaitAdaptive spins before it parks: the C core's own
// budget (SPIN_BEFORE_PARK_NS), so that Go and C waiters behave alike.
const spinFor = native.SpinBeforePark

// hotFor is how long the poller keeps looking at the ready bits without
// sleeping after the last ring: about one vCPU wake-up on the machines
// measured, so that a process exchanging with a busy peer never sleeps
// between two rings, and an idle one sleeps soon.
const hotFor = 2 * spinFor

// yieldMask: one empty look in yieldMask+1 yields the thread to the kernel
// (sched_yield) rather than only the P to the Go scheduler.
const yieldMask = 31

// spinners counts the goroutines of this process that spin in Wait under
// WaitAdaptive; at most maxSpinners do at once (the Ps left over when one
// runs the peer's work), so that a hundred waiting goroutines do not take
// every CPU from the process that would answer them. The others park at
// once and are woken by the poller.
var (
	spinners    atomic.Int32
	maxSpinners = int32(max(runtime.GOMAXPROCS(0)-1, 0))
)

// spinSlot takes a spinning slot; false if all are taken.
func spinSlot() bool {
	if spinners.Add(1) <= maxSpinners {
		return true
	}
	spinners.Add(-1)
	return false
}

// Poller is a domain's one waiting thread. Goroutines that must wait in
// Recv, RecvBatch or Accept arm their channel or listener in C and park on
// their Waiter's Go channel; the poller, one goroutine, sleeps on
// the process's doorbell (one futex word, whatever the number of channels)
// and wakes exactly the waiters whose bits were rung. Goroutines park,
// threads do not: ten thousand blocked receivers cost one thread.
//
// The poller starts with the first wait and stops with Close.
type Poller struct {
	d      native.Domain
	policy uint32
	spins  bool // the poller may stay awake after a ring (hotFor)

	mu      sync.Mutex
	waiters map[uint32]*Waiter
	running atomic.Bool
	stopped bool
	stop    atomic.Bool
	done    chan struct{}
}

// Waiter is one channel end's or listener's place in the poller: a Go
// channel of capacity 1 that the poller signals when its bit rings.
type Waiter struct {
	c     chan struct{}
	id    uint32
	group atomic.Pointer[Waiter] // also signalled, while a Poll watches this one
}

// NewGroup returns a Waiter for Poll: it is signalled whenever any of the
// waiters it is joined to (Join) is.
func NewGroup() *Waiter { return &Waiter{c: make(chan struct{}, 1)} }

// Join makes w signal g too, until Leave.
func (w *Waiter) Join(g *Waiter) { w.group.Store(g) }

// Leave undoes Join.
func (w *Waiter) Leave(g *Waiter) { w.group.CompareAndSwap(g, nil) }

// C is the channel a group waiter is signalled on.
func (w *Waiter) C() <-chan struct{} { return w.c }

// Drain drops a pending signal.
func (w *Waiter) Drain() { w.drain() }

// NewPoller returns the (not yet running) poller of domain d; policy is the
// domain's native.Wait* choice for this process.
func NewPoller(d native.Domain, policy uint32) *Poller {
	return &Poller{d: d, policy: policy, spins: policy != native.WaitPark && runtime.NumCPU() > 1 && runtime.GOMAXPROCS(0) > 1,
		waiters: make(map[uint32]*Waiter)}
}

// Register gives the object whose ready bit is id a Waiter.
func (p *Poller) Register(id uint32) *Waiter {
	w := &Waiter{c: make(chan struct{}, 1), id: id}
	p.mu.Lock()
	p.waiters[id] = w
	p.mu.Unlock()
	return w
}

// Unregister removes w (its object was closed; its id may be reused).
func (p *Poller) Unregister(w *Waiter) {
	p.mu.Lock()
	if p.waiters[w.id] == w {
		delete(p.waiters, w.id)
	}
	p.mu.Unlock()
}

// Wake signals w without blocking (a pending signal is enough).
func (w *Waiter) Wake() {
	select {
	case w.c <- struct{}{}:
	default:
	}
	if g := w.group.Load(); g != nil {
		g.Wake()
	}
}

func (w *Waiter) drain() {
	select {
	case <-w.c:
	default:
	}
}

// Ensure starts the poller if it is not running; false once it is closed.
func (p *Poller) Ensure() bool { return p.ensure() }

func (p *Poller) ensure() bool {
	if p.running.Load() {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	if !p.running.Load() {
		p.done = make(chan struct{})
		p.running.Store(true)
		go p.loop()
	}
	return true
}

func (p *Poller) loop() {
	defer close(p.done)
	words := make([]uint64, p.d.ReadyWords())
	last := time.Now()
	// Hot: something rang less than hotFor ago. Then the poller looks at the
	// ready bits without sleeping, yielding its P between looks, so that the
	// doorbell's asleep bit stays clear and a producer that rings this
	// process makes no system call (and wakes no vCPU). With many callers
	// that keeps both processes of an exchange running; once nothing rang
	// for hotFor it sleeps in C (and is rung with a futex wake).
	hot := false
	sliced := false
	var ringAt time.Time
	for k := 0; !p.stop.Load(); k++ {
		n := -int(syscall.EAGAIN)
		if hot {
			n = p.d.WaitReady(words, 0)
			if n == -int(syscall.EAGAIN) {
				if k&15 == 0 && time.Since(ringAt) >= hotFor {
					hot = false
				} else if k&yieldMask == yieldMask {
					// Now and then let the kernel run another thread on
					// this CPU (the peer's, often): a poller that only
					// yields its P keeps its thread runnable, and on a
					// small machine a goroutine queued behind a thread
					// the kernel has set aside waits for it.
					syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
				} else {
					runtime.Gosched()
				}
				continue
			}
		} else {
			timeout := int64(-1)
			if sliced = p.d.WaitSlice() >= 0; sliced {
				timeout = int64(ReapEvery)
			}
			n = p.d.WaitReady(words, timeout)
		}
		if n == -int(syscall.EIDRM) || n == -int(syscall.EBADF) {
			// The domain is gone (or this is a forked child): wake every
			// waiter, whose call then returns the error, and stop.
			p.mu.Lock()
			for _, wt := range p.waiters {
				wt.Wake()
			}
			p.mu.Unlock()
			return
		}
		if n > 0 {
			p.mu.Lock()
			for i, w := range words {
				for w != 0 {
					b := bits.TrailingZeros64(w)
					w &= w - 1
					if wt := p.waiters[uint32(i*64+b)]; wt != nil {
						wt.Wake()
					}
				}
			}
			p.mu.Unlock()
			if p.spins {
				hot, ringAt = true, time.Now()
			}
		}
		if sliced {
			if now := time.Now(); now.Sub(last) >= ReapEvery && !p.stop.Load() {
				last = now
				p.d.ReapNoWait()
			}
		}
	}
}

// Close stops the poller and waits for its thread to leave C; the domain
// may then be closed. Waits that start later fail (their objects are closed
// before the poller).
func (p *Poller) Close() {
	p.mu.Lock()
	p.stopped = true
	running := p.running.Load()
	p.mu.Unlock()
	if !running {
		return
	}
	p.stop.Store(true)
	p.d.Wake()
	<-p.done
}

// Site is what Wait waits on: a channel's receiving side or a listener.
type Site interface {
	// Arm asks C for the doorbell when the site becomes ready: 1 if it is
	// ready already, 0 if armed, or a negative errno.
	Arm() int
	// Closed reports whether the site's object is being closed.
	Closed() bool
}

// Mode says what a Wait's try function can do besides a plain try(0).
type Mode uint8

const (
	// Direct: try(t) with t > 0 may sleep in C for up to t nanoseconds (see
	// Wait).
	Direct Mode = 1 << iota
	// Fused: try(TryArm) tries without blocking and, with nothing there,
	// arms the site in the same call into C, reporting (false, ErrArmed).
	// (false, nil) then means nothing there and not armed: look again.
	Fused
)

// TryArm is the timeout a Fused try is given when the wait would park on
// the poller next: try, else arm, in one crossing (where try then Arm take
// two).
const TryArm int64 = -1

// ErrArmed is what a Fused try returns when try(TryArm) armed its site.
var ErrArmed = errors.New("poll: armed")

// Wait blocks the calling goroutine until try reports done (a result, or an
// error other than "nothing there"), ctx is done (it returns ErrDone), or
// the site is closed (native.ErrClosed). The domain's policy decides whether
// to spin first (WaitAdaptive: the C core's budget, about 20 µs, if fewer
// than GOMAXPROCS-1 goroutines of the process spin already, and no more
// goroutines wait than there are Ps), spin only (WaitSpin) or wait at once
// (WaitPark).
//
// try(0) must not block. With mode Fused, a try that would be followed at
// once by Arm and a park (more goroutines wait than there are Ps) is
// try(TryArm) instead: one crossing into C where two would do. With mode
// Direct, try(t) with t > 0 may sleep
// in C for up to t nanoseconds (parked on the ring's own futex, without
// spinning): then, while fewer than maxDirect goroutines do so, a waiting
// goroutine sleeps there, so that the producer's wake-up reaches its thread
// directly, one hop, instead of the poller's thread and then the goroutine.
// It does so for one slice only (guard.MaxSlice): a waiter that slept a
// whole slice without anything arriving is idle, and parks on the poller,
// where it costs nothing until something happens (a direct sleeper would
// wake every slice to look at ctx). Otherwise it parks on the poller at
// once. It does not allocate.
func (p *Poller) Wait(ctx context.Context, w *Waiter, site Site, try func(timeoutNs int64) (bool, error), mode Mode) error {
	direct, fused := mode&Direct != 0, mode&Fused != 0 && p.policy != native.WaitSpin
	done := ctx.Done()
	var spinUntil time.Time
	spinning := false // holds a spinning slot (WaitAdaptive)
	sleptIn := false  // one direct slice ran out: park from now on
	counted := false  // counted in waiting
	crowd := false    // more than maxAlone goroutines wait: park at once
	defer func() {
		if spinning {
			spinners.Add(-1)
		}
		if counted {
			waiting.Add(-1)
		}
	}()
	for spins := 0; ; spins++ {
		if site.Closed() {
			return native.ErrClosed
		}
		// In a crowd the wait parks on the poller right after this try:
		// let the try arm the site too.
		armed := false
		if fused && !spinning && (counted && crowd || !counted && waiting.Load() >= maxAlone) {
			w.drain()
			ok, err := try(TryArm)
			if ok {
				return err
			}
			// (false, nil): ready as it armed; the park below arms again
			// and finds it so.
			armed = err == ErrArmed
		} else if ok, err := try(0); ok {
			return err
		}
		if !counted {
			counted = true
			crowd = waiting.Add(1) > maxAlone
		} else if spins == 0 {
			crowd = waiting.Load() > maxAlone
		}
		select {
		case <-done:
			return ErrDone
		default:
		}
		if armed {
			if err := p.park(w, done); err != nil {
				return err
			}
			spins = -1
			continue
		}
		switch p.policy {
		case native.WaitSpin:
			if spins&1023 == 1023 {
				runtime.Gosched()
			}
			continue
		case native.WaitAdaptive:
			if spins == 0 && !crowd && spinSlot() {
				spinning = true
				spinUntil = time.Now().Add(spinFor)
				continue
			}
			if spinning && (spins&15 != 0 || time.Now().Before(spinUntil)) {
				continue
			}
		}
		if spinning {
			spinners.Add(-1)
			spinning = false
		}
		if direct && !sleptIn && !crowd && directSlot() {
			ok, err := p.sleepIn(ctx, try)
			directs.Add(-1)
			sleptIn = !ok
			if ok && err != nil && site.Closed() {
				// Closed while we slept (the peer end too, perhaps, as a
				// domain Close does): the close, not its side effect.
				return native.ErrClosed
			}
			if ok {
				return err
			}
			spins = -1
			continue
		}
		// Park: arm (store + re-check in C, the Dekker pair with the
		// producer), then sleep on the Go channel the poller signals.
		w.drain()
		switch r := site.Arm(); {
		case r == 1:
			continue
		case r < 0:
			return native.Errno(r, nil, nil)
		}
		if err := p.park(w, done); err != nil {
			return err
		}
		spins = -1 // after a wake-up, spin again (if a slot is free) before parking
	}
}

// park sleeps until the poller signals w (nil) or done closes (ErrDone);
// ErrClosed if the poller has stopped.
func (p *Poller) park(w *Waiter, done <-chan struct{}) error {
	if !p.ensure() {
		return native.ErrClosed
	}
	select {
	case <-w.c:
		return nil
	case <-done:
		return ErrDone
	}
}

// sleepIn is one slice of a direct wait: try with the time left to ctx's
// deadline, at most guard.MaxSlice (a cancelled ctx or a Close is seen at
// the next slice). try reports a slice that ran out as nothing there.
func (p *Poller) sleepIn(ctx context.Context, try func(int64) (bool, error)) (bool, error) {
	t, err := guard.Slice(ctx)
	if err != nil {
		return false, nil // the loop sees ctx done
	}
	return try(t)
}

// waiting counts the goroutines of this process in Wait that found nothing
// at their first try. Beyond maxAlone of them (one per P) none spins or
// sleeps in C: they all park on the poller at once, which then stays awake
// while they are rung (hotFor) and hands each ring to its goroutine without
// a system call on either side. A spinning goroutine there would only take
// a CPU from the goroutines (and the peer process) that have work.
var (
	waiting  atomic.Int32
	maxAlone = int32(runtime.GOMAXPROCS(0))
)

// directs counts the goroutines sleeping in C in a direct wait. Each holds
// an OS thread while it sleeps and is woken by a futex call of the producer,
// so at most maxDirect do: with many waiters, the poller's one doorbell
// serves the rest, and a burst of wake-ups costs one thread wake. That is
// one fewer than the Ps (but at least one): a goroutine asleep in C keeps
// its P until the runtime's monitor takes it back, which, in a process that
// was idle a moment ago, can be milliseconds; with every P held that way,
// the process's other goroutines could not run at all, so they never joined
// the count that sends waiters to the poller, and two callers served
// directly while ninety-eight runnable ones waited (the stub bench with 100
// clients: 2,200 direct sleeps per 22,000 calls, all with at most two
// goroutines counted as waiting, at 60-150 k calls/s against 300-400 k
// without them).
var (
	directs   atomic.Int32
	maxDirect = int32(max(runtime.GOMAXPROCS(0)-1, 1))
)

func directSlot() bool {
	if directs.Add(1) <= maxDirect {
		return true
	}
	directs.Add(-1)
	return false
}

// ErrDone: a Wait ended because its done channel closed; the caller
// returns its context's error.
var ErrDone = &doneError{}

type doneError struct{}

func (*doneError) Error() string { return "context done" }
