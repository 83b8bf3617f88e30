// Package bind is the control plane of exipc on the Go side: opening and
// closing domains, listening on services, accepting and connecting channels,
// reaping dead processes. It keeps track of every listener and channel end a
// domain has open, so that closing the domain closes them first and no C
// pointer is used after it was freed.
//
// Accept parks on the domain's poller like Recv does; Connect, waiting for
// a service to appear, waits in C waits of at most guard.MaxSlice, checking
// the context and the closed flags between them.
package bind

import (
	"context"
	"sync"

	"github.com/exipc/exipc/heap"
	"github.com/exipc/exipc/internal/guard"
	"github.com/exipc/exipc/internal/link"
	"github.com/exipc/exipc/internal/poll"
	"github.com/exipc/exipc/native"
	"github.com/exipc/exipc/ring"
)

// Domain is an open domain: its heap (Alloc, Bytes, Free) and the listeners
// and channel ends open on it.
type Domain struct {
	*heap.Heap

	g      guard.Guard   // the domain's life: every call runs inside it
	nd     native.Domain // use only inside g.Enter/Leave
	name   string        // for error messages
	mu     sync.Mutex    // guards lns and ends
	lns    map[*Listener]struct{}
	ends   map[link.EndCtl]struct{}
	poller *poll.Poller
}

// Open creates the domain NAME or attaches to it. opt may be nil.
func Open(name string, opt *native.Options) (*Domain, error) {
	nd, rc := native.Open(name, opt)
	if rc < 0 {
		return nil, native.Wrap("open", name, rc, nil, nil)
	}
	var policy uint32
	if opt != nil {
		policy = opt.WaitPolicy
	}
	d := &Domain{
		nd:     nd,
		name:   name,
		lns:    make(map[*Listener]struct{}),
		ends:   make(map[link.EndCtl]struct{}),
		poller: poll.NewPoller(nd, policy),
	}
	d.Heap = link.NewHeap(&d.g, nd, name).(*heap.Heap)
	return d, nil
}

// Unlink removes the domain's name at once; processes attached to it get
// ErrDomainGone from then on. An absent domain gives an error matching
// fs.ErrNotExist.
func Unlink(name string) error {
	return native.Wrap("unlink", name, native.Unlink(name), nil, nil)
}

// Close closes every listener and channel end still open on the domain
// (waiting for their calls in flight), unregisters the process and unmaps
// the domain. Closing it again returns native.ErrClosed.
func (d *Domain) Close() error {
	_, err := d.close(false)
	return err
}

// Leave is Close, and also removes the domain's name if no other live
// process is attached any more (exipc_leave). It reports whether it did.
func (d *Domain) Leave() (bool, error) { return d.close(true) }

func (d *Domain) close(leave bool) (bool, error) {
	var rc int
	first := d.g.Shut(func() {
		// Mark everything closed first, so that calls blocked on any of it
		// fail with ErrClosed rather than see a peer closed by us. Then
		// listeners: an Accept in flight may still add an end.
		d.mu.Lock()
		lns := make([]*Listener, 0, len(d.lns))
		for l := range d.lns {
			l.g.Mark()
			l.w.Wake()
			lns = append(lns, l)
		}
		for e := range d.ends {
			e.Mark()
		}
		d.mu.Unlock()
		for _, l := range lns {
			var lrc int
			l.shut(&lrc)
		}
		d.mu.Lock()
		ends := make([]link.EndCtl, 0, len(d.ends))
		for e := range d.ends {
			ends = append(ends, e)
		}
		d.mu.Unlock()
		for _, e := range ends {
			var erc int
			e.Shut(&erc)
		}
		d.poller.Close()
		if leave {
			rc = d.nd.Leave()
		} else {
			rc = d.nd.Close()
		}
	})
	if !first {
		return false, native.WrapErr("close", d.name, native.ErrClosed)
	}
	return rc == 1, native.Wrap("close", d.name, rc, nil, nil)
}

// newEnd wraps a C channel and tracks it until it is closed.
func (d *Domain) newEnd(c native.Chan, service string) *ring.End {
	e, ctl := link.NewEnd(c, service, d.poller, d.untrackEnd)
	e.(*ring.End).SetFree(d.Heap.Free)
	d.mu.Lock()
	d.ends[ctl] = struct{}{}
	d.mu.Unlock()
	return e.(*ring.End)
}

func (d *Domain) untrackEnd(e link.EndCtl) {
	d.mu.Lock()
	delete(d.ends, e)
	d.mu.Unlock()
}

// Listen starts listening on SERVICE. Errors: native.ErrServiceExists,
// native.ErrInvalid, native.ErrLimit, native.ErrClosed.
func (d *Domain) Listen(service string) (*Listener, error) {
	if !d.g.Enter() {
		return nil, native.WrapErr("listen", service, native.ErrClosed)
	}
	defer d.g.Leave()
	nl, rc := d.nd.Listen(service)
	if rc < 0 {
		return nil, native.Wrap("listen", service, rc, nil, nil)
	}
	l := &Listener{l: nl, d: d, service: service, w: d.poller.Register(nl.ID())}
	d.mu.Lock()
	d.lns[l] = struct{}{}
	d.mu.Unlock()
	return l, nil
}

// Connect binds a new channel to SERVICE and returns this process's end; it
// does not wait for the server to accept. If the service does not exist it
// waits for it until ctx is done: the error then matches both
// native.ErrNoService and ctx's error.
func (d *Domain) Connect(ctx context.Context, service string) (*ring.End, error) {
	cs, ok := native.NewCService(service)
	if !ok {
		return nil, native.WrapErr("connect", service, native.ErrInvalid)
	}
	defer cs.Free()
	if !d.g.Enter() {
		return nil, native.WrapErr("connect", service, native.ErrClosed)
	}
	defer d.g.Leave()
	missing := false
	for {
		if d.g.Closed() {
			return nil, native.WrapErr("connect", service, native.ErrClosed)
		}
		t, err := guard.Slice(ctx)
		if err != nil {
			if missing {
				err = &native.Timeout{Cause: native.ErrNoService, Ctx: err}
			}
			return nil, native.WrapErr("connect", service, err)
		}
		c, rc := d.nd.Connect(cs, t)
		if rc >= 0 {
			return d.newEnd(c, service), nil
		}
		if native.IsNoEnt(rc) || native.IsWaitAgain(rc) {
			missing = true
			continue
		}
		return nil, native.Wrap("connect", service, rc, nil, native.ErrNoService)
	}
}

// Reap cleans up after every dead process of the domain and returns how
// many this call cleaned.
func (d *Domain) Reap() (int, error) {
	if !d.g.Enter() {
		return 0, native.WrapErr("reap", d.name, native.ErrClosed)
	}
	rc := d.nd.Reap()
	d.g.Leave()
	if rc < 0 {
		return 0, native.Wrap("reap", d.name, rc, nil, nil)
	}
	return rc, nil
}

// Stat returns the domain-wide counters.
func (d *Domain) Stat() (native.Stat, error) {
	if !d.g.Enter() {
		return native.Stat{}, native.WrapErr("stat", d.name, native.ErrClosed)
	}
	st, rc := d.nd.Stat()
	d.g.Leave()
	if rc < 0 {
		return native.Stat{}, native.Wrap("stat", d.name, rc, nil, nil)
	}
	return st, nil
}

// HeapStat calls exipc_heap_stat.
func (d *Domain) HeapStat() (native.HeapStat, error) {
	if !d.g.Enter() {
		return native.HeapStat{}, native.WrapErr("heapstat", d.name, native.ErrClosed)
	}
	st, rc := d.nd.HeapStat()
	d.g.Leave()
	if rc < 0 {
		return native.HeapStat{}, native.Wrap("heapstat", d.name, rc, nil, nil)
	}
	return st, nil
}

// Listener listens on one service of a domain.
type Listener struct {
	g        guard.Guard
	acceptMu sync.Mutex // the C core serves one accepting thread at a time
	l        native.Listener
	d        *Domain
	service  string
	w        *poll.Waiter
}

// arm is Poll's view of a listener, like ring.End.Arm.
func (l *Listener) arm() (bool, error) {
	if !l.g.Enter() {
		return true, nil
	}
	r := l.l.Arm()
	l.g.Leave()
	if r < 0 {
		return false, native.Wrap("poll", l.service, r, nil, nil)
	}
	return r == 1, nil
}

// Poll waits until at least one of ends has something to receive (or its
// peer has gone, or it is closed) or one of lns has a channel to accept,
// marks those in ready (len(ends)+len(lns), ends first) and returns how many.
// One goroutine serves any number of channels this way; it parks on the
// domain's poller like Recv. Readiness is a hint: the TryRecv or TryAccept
// that follows may still find nothing.
func (d *Domain) Poll(ctx context.Context, ends []*ring.End, lns []*Listener, ready []bool) (int, error) {
	if !d.g.Enter() {
		return 0, native.WrapErr("poll", d.name, native.ErrClosed)
	}
	defer d.g.Leave()
	g := poll.NewGroup()
	ctls := make([]link.EndCtl, len(ends))
	for i, e := range ends {
		ctls[i] = link.CtlOf(e)
		ctls[i].Waiter().Join(g)
		defer ctls[i].Waiter().Leave(g)
	}
	for _, l := range lns {
		l.w.Join(g)
		defer l.w.Leave(g)
	}
	for {
		g.Drain()
		n := 0
		for i, e := range ctls {
			r, err := e.Arm()
			if err != nil {
				return 0, err
			}
			ready[i] = r
			if r {
				n++
			}
		}
		for i, l := range lns {
			r, err := l.arm()
			if err != nil {
				return 0, err
			}
			ready[len(ends)+i] = r
			if r {
				n++
			}
		}
		if n > 0 {
			return n, nil
		}
		if d.g.Closed() || !d.poller.Ensure() {
			return 0, native.WrapErr("poll", d.name, native.ErrClosed)
		}
		select {
		case <-g.C():
		case <-ctx.Done():
			return 0, native.CtxErr(ctx)
		}
	}
}

// site is the listener as the poller's Wait sees it.
type site Listener

func (l *site) Arm() int     { return l.l.Arm() }
func (l *site) Closed() bool { return l.g.Closed() }

// Service returns the name the listener listens on.
func (l *Listener) Service() string { return l.service }

// Accept takes the oldest channel connected to the service, waiting until
// one comes, ctx is done (ctx's error) or the listener is closed
// (native.ErrClosed).
func (l *Listener) Accept(ctx context.Context) (*ring.End, error) {
	if !l.g.Enter() {
		return nil, native.WrapErr("accept", l.service, native.ErrClosed)
	}
	defer l.g.Leave()
	l.acceptMu.Lock()
	defer l.acceptMu.Unlock()
	var end *ring.End
	err := l.d.poller.Wait(ctx, l.w, (*site)(l), func(int64) (bool, error) {
		c, rc := l.l.Accept(0)
		if rc >= 0 {
			end = l.d.newEnd(c, l.service)
			return true, nil
		}
		if native.IsAgain(rc) {
			return false, nil
		}
		return true, native.Wrap("accept", l.service, rc, native.ErrEmpty, nil)
	}, 0)
	switch err {
	case nil:
		return end, nil
	case poll.ErrDone:
		return nil, native.CtxErr(ctx)
	case native.ErrClosed:
		return nil, native.WrapErr("accept", l.service, native.ErrClosed)
	}
	return nil, err
}

// TryAccept takes the oldest connected channel without blocking; with none
// pending it returns the bare native.ErrEmpty.
func (l *Listener) TryAccept() (*ring.End, error) {
	if !l.g.Enter() {
		return nil, native.WrapErr("accept", l.service, native.ErrClosed)
	}
	defer l.g.Leave()
	l.acceptMu.Lock()
	defer l.acceptMu.Unlock()
	c, rc := l.l.Accept(0)
	if rc >= 0 {
		return l.d.newEnd(c, l.service), nil
	}
	if native.IsAgain(rc) {
		return nil, native.ErrEmpty
	}
	return nil, native.Wrap("accept", l.service, rc, native.ErrEmpty, nil)
}

// Close stops listening; channels connected but not yet accepted are closed
// (their clients see native.ErrPeerDead). Closing it again returns
// native.ErrClosed.
func (l *Listener) Close() error {
	var rc int
	if !l.shut(&rc) {
		return native.WrapErr("close", l.service, native.ErrClosed)
	}
	return native.Wrap("close", l.service, rc, nil, nil)
}

func (l *Listener) shut(rc *int) bool {
	l.w.Wake()
	return l.g.Shut(func() {
		*rc = l.l.Close()
		l.d.poller.Unregister(l.w)
		l.d.mu.Lock()
		delete(l.d.lns, l)
		l.d.mu.Unlock()
	})
}
