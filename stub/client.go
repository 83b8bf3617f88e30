package stub

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/exipc/exipc"
)

// Client calls a server over one channel at a time. It is safe for
// concurrent use: calls from many goroutines are pipelined on the channel.
// There is no receiving goroutine: one waiting caller at a time receives from
// the channel, keeps its own reply and hands each other reply straight to
// the caller waiting for it (at most one hand-off per reply; none with a
// single caller).
//
// A client made by Dial reconnects by itself when its server goes: the calls
// in flight fail with an error matching exipc.ErrPeerDead, and the next call
// connects again, waiting for a new server until its context ends. If the
// domain itself was unlinked and created anew (exipc.ErrDomainGone), the
// client opens the name again (Domain.Reopen) and uses that domain from then
// on; the domain it was given stays the caller's.
type Client struct {
	service string // what to reconnect to; "" for a client made by NewClient

	mu      sync.Mutex
	d       *exipc.Domain // the domain calls go through now
	own     *exipc.Domain // a domain the client reopened itself (closed by Close), or nil
	ch      *exipc.Chan   // nil while disconnected
	pending map[uint64]pend
	nextID  uint64
	spare   []chan result // reply channels of finished calls, empty, to reuse
	err     error         // set by Close (or, for a NewClient client, by its channel's end): every call fails with it

	recv    chan struct{} // holds the token a caller takes to receive
	dialing chan struct{} // holds the token a caller takes to reconnect
}

// pend is a call waiting for its reply: where to file it, and the channel
// its request went out on (if that channel dies, so does the call).
type pend struct {
	rc chan result
	ch *exipc.Chan
}

type result struct {
	r   *Reply
	err error
}

// Reply is a response. Body is the reply's body in place in the shared heap:
// valid until Release, which every caller must call once.
type Reply struct {
	Op   uint32
	ID   uint64
	Body []byte

	d *exipc.Domain
	h exipc.Handle
}

// Release frees the reply's block. Body must not be used afterwards.
// Releasing twice, or a nil Reply, does nothing.
func (r *Reply) Release() {
	if r == nil || r.h == 0 {
		return
	}
	r.d.Free(r.h)
	r.h, r.Body = 0, nil
}

// Dial connects to SERVICE on d (waiting for it until ctx is done, like
// Domain.Connect) and returns a client that reconnects to SERVICE by itself
// whenever its server goes.
func Dial(ctx context.Context, d *exipc.Domain, service string) (*Client, error) {
	ch, err := d.Connect(ctx, service)
	if err != nil {
		return nil, err
	}
	c := newClient(d, ch)
	c.service = service
	return c, nil
}

// NewClient returns a client on channel ch of domain d; the client owns ch
// from then on and closes it in Close. Such a client does not know what to
// reconnect to: once ch's peer is gone, every call fails (use Dial for a
// client that reconnects).
func NewClient(d *exipc.Domain, ch *exipc.Chan) *Client { return newClient(d, ch) }

func newClient(d *exipc.Domain, ch *exipc.Chan) *Client {
	c := &Client{d: d, ch: ch, pending: make(map[uint64]pend), nextID: 1,
		recv: make(chan struct{}, 1), dialing: make(chan struct{}, 1)}
	c.recv <- struct{}{}
	c.dialing <- struct{}{}
	return c
}

// Call sends a request (op, a copy of body written into the shared heap) and
// waits for its reply until ctx is done. It returns the reply, or: an *Error
// (an error reply from the server); an error matching exipc.ErrQueueFull
// (the server's queue is full: retry later — Call never waits for room) or
// exipc.ErrHeapFull; exipc.ErrPeerDead (the server went while the call was
// in flight; a client made by Dial connects again on the next call); or
// ctx's error (also when no server came back in time). Cancelling ctx
// abandons the call: its reply, if it comes, is dropped.
func (c *Client) Call(ctx context.Context, op uint32, body []byte) (*Reply, error) {
	return c.call(ctx, op, body)
}

// CallFill is Call with the request body built in place: fill gets the
// body's n bytes in the shared heap. Nothing is copied.
func (c *Client) CallFill(ctx context.Context, op uint32, n int, fill func(body []byte)) (*Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n < 0 || uint64(n) > 1<<32-1-HeaderSize {
		return nil, fmt.Errorf("stub: call op %d: body of %d bytes: %w", op, n, exipc.ErrInvalid)
	}
	d, ch, id, rc, err := c.start(ctx)
	if err != nil {
		return nil, fmt.Errorf("stub: call op %d: %w", op, err)
	}
	h, b, err := d.Alloc(HeaderSize + n)
	if err != nil {
		c.forget(id)
		return nil, fmt.Errorf("stub: call op %d: %w", op, err)
	}
	Header{Kind: KindRequest, ID: id, Op: op, BodyLen: uint32(n)}.Put(b)
	if fill != nil {
		fill(b[HeaderSize:])
	}
	if err := ch.Send(h); err != nil {
		d.Free(h) // refused: still ours
		return nil, c.sendFailed(ch, id, op, err)
	}
	return c.wait(ctx, ch, id, rc)
}

// call is Call with the body copied by C: one crossing for alloc, copy and
// send.
func (c *Client) call(ctx context.Context, op uint32, body []byte) (*Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if uint64(len(body)) > 1<<32-1-HeaderSize {
		return nil, fmt.Errorf("stub: call op %d: body of %d bytes: %w", op, len(body), exipc.ErrInvalid)
	}
	_, ch, id, rc, err := c.start(ctx)
	if err != nil {
		return nil, fmt.Errorf("stub: call op %d: %w", op, err)
	}
	var hdr [HeaderSize]byte
	Header{Kind: KindRequest, ID: id, Op: op, BodyLen: uint32(len(body))}.Put(hdr[:])
	select {
	case <-c.recv:
		// Nobody receives for the client: this call will. Its send and its
		// first look for the reply go into C together.
		sent, h, b, err := ch.SendCopyRecvBytes(ctx, hdr[:], body)
		if sent == 0 {
			c.recv <- struct{}{}
			return nil, c.sendFailed(ch, id, op, err)
		}
		if r, ok := c.receive(ctx, ch, id, rc, &recvd{h, b, err}); ok {
			c.reuse(rc)
			return r.r, r.err
		}
		return c.abandon(ctx, id, rc)
	default:
	}
	if _, err := ch.SendCopy(hdr[:], body); err != nil {
		return nil, c.sendFailed(ch, id, op, err)
	}
	return c.wait(ctx, ch, id, rc)
}

// recvd is what a receive returned.
type recvd struct {
	h   exipc.Handle
	b   []byte
	err error
}

// start returns the channel to call on (connecting again first if the last
// one is gone) and a new call id registered on it.
func (c *Client) start(ctx context.Context) (*exipc.Domain, *exipc.Chan, uint64, chan result, error) {
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return nil, nil, 0, nil, err
		}
		if c.ch != nil {
			d, ch, id := c.d, c.ch, c.nextID
			c.nextID++
			var rc chan result
			if n := len(c.spare); n > 0 {
				rc, c.spare = c.spare[n-1], c.spare[:n-1]
			} else {
				rc = make(chan result, 1)
			}
			c.pending[id] = pend{rc, ch}
			c.mu.Unlock()
			return d, ch, id, rc, nil
		}
		c.mu.Unlock()
		if err := c.reconnect(ctx); err != nil {
			return nil, nil, 0, nil, err
		}
	}
}

// reconnect connects to the service again (one caller at a time; the others
// wait for it), reopening the domain's name if the domain is gone. It waits
// for a server until ctx is done.
func (c *Client) reconnect(ctx context.Context) error {
	select {
	case <-c.dialing:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { c.dialing <- struct{}{} }()
	c.mu.Lock()
	d, done := c.d, c.ch != nil || c.err != nil
	c.mu.Unlock()
	if done { // another caller reconnected (or the client was closed) meanwhile
		return nil
	}
	for {
		ch, err := d.Connect(ctx, c.service)
		if err == nil {
			c.mu.Lock()
			if c.err != nil { // closed meanwhile
				c.mu.Unlock()
				ch.Close()
				return nil
			}
			c.ch = ch
			c.mu.Unlock()
			return nil
		}
		if !errors.Is(err, exipc.ErrDomainGone) {
			if ctx.Err() != nil {
				return fmt.Errorf("%w (no server of %q came back in time: %w)", ctx.Err(), c.service, err)
			}
			return err
		}
		// The name was removed (and perhaps created anew by a restarted
		// server): reach whatever domain has it now, once it exists.
		nd, rerr := d.Reopen()
		for errors.Is(rerr, fs.ErrNotExist) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (domain %q is gone and no new one came in time)", ctx.Err(), d.Name())
			case <-time.After(2 * time.Millisecond):
			}
			nd, rerr = d.Reopen()
		}
		if rerr != nil {
			return rerr
		}
		c.mu.Lock()
		old := c.own
		c.d, c.own, d = nd, nd, nd
		c.mu.Unlock()
		if old != nil {
			old.Close() // replies still held from it fail their Release quietly
		}
	}
}

// sendFailed ends a call whose request could not be sent.
func (c *Client) sendFailed(ch *exipc.Chan, id uint64, op uint32, err error) error {
	c.forget(id)
	if gone(err) {
		c.drop(ch, err)
		err = peerDead(err)
	}
	return fmt.Errorf("stub: call op %d: %w", op, err)
}

// gone reports whether err means the channel's server (or domain) is gone.
func gone(err error) bool {
	return errors.Is(err, exipc.ErrPeerDead) || errors.Is(err, exipc.ErrDomainGone)
}

// peerDead makes err match exipc.ErrPeerDead, whatever else it matches: a
// call in flight when the server went fails that way.
func peerDead(err error) error {
	if errors.Is(err, exipc.ErrPeerDead) {
		return err
	}
	return fmt.Errorf("%w: %w", exipc.ErrPeerDead, err)
}

// drop retires channel ch after its server went: the calls in flight on it
// fail with err, and the next call connects again (a NewClient client has
// nothing to reconnect to: it keeps failing with err).
func (c *Client) drop(ch *exipc.Chan, err error) {
	err = peerDead(err)
	c.mu.Lock()
	if c.ch == ch {
		c.ch = nil
		if c.service == "" && c.err == nil {
			c.err = err
		}
	}
	for id, p := range c.pending {
		if p.ch == ch {
			p.rc <- result{err: err}
			delete(c.pending, id)
		}
	}
	c.mu.Unlock()
	ch.Close()
}

// wait waits for the reply to id: filed into rc by the caller that receives
// for the client, or received by this caller itself once it holds the
// receiving token.
func (c *Client) wait(ctx context.Context, ch *exipc.Chan, id uint64, rc chan result) (*Reply, error) {
	for {
		select {
		case r := <-rc:
			c.reuse(rc)
			return r.r, r.err
		case <-c.recv:
			if r, ok := c.receive(ctx, ch, id, rc, nil); ok {
				c.reuse(rc)
				return r.r, r.err
			}
			return c.abandon(ctx, id, rc)
		case <-ctx.Done():
			return c.abandon(ctx, id, rc)
		}
	}
}

// reuse keeps rc for a later call. Only for a call that got its result:
// nothing is filed into rc after that (whoever filed it had removed the call
// from pending first). An abandoned call's rc is not reused: a reply may
// still be on its way into it.
func (c *Client) reuse(rc chan result) {
	c.mu.Lock()
	if len(c.spare) < 64 {
		c.spare = append(c.spare, rc)
	}
	c.mu.Unlock()
}

// abandon stops waiting for id after ctx is done.
func (c *Client) abandon(ctx context.Context, id uint64, rc chan result) (*Reply, error) {
	c.forget(id)
	select { // the reply may have been filed just before
	case r := <-rc:
		r.r.Release()
	default:
	}
	return nil, ctx.Err()
}

// receive runs while this caller holds the receiving token: it receives
// replies on ch (the channel its own request went out on), files those of
// other calls, and returns its own (ok true), or ok false when ctx is done.
// first, if not nil, is a receive made already (with the call's send). It
// hands the token back before it returns.
func (c *Client) receive(ctx context.Context, ch *exipc.Chan, id uint64, rc chan result, first *recvd) (result, bool) {
	defer func() { c.recv <- struct{}{} }()
	c.mu.Lock()
	d := c.d
	c.mu.Unlock()
	for {
		var h exipc.Handle
		var b []byte
		var err error
		if first != nil {
			h, b, err = first.h, first.b, first.err
			first = nil
		} else {
			select { // filed by the caller that held the token before us
			case r := <-rc:
				return r, true
			default:
			}
			h, b, err = ch.RecvBytes(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return result{}, false
			}
			if gone(err) || errors.Is(err, exipc.ErrClosed) {
				c.drop(ch, fmt.Errorf("stub: %w", err)) // files an error for every call on ch, ours included
			} else {
				c.fail(fmt.Errorf("stub: %w", err))
			}
			return <-rc, true
		}
		hd, body, err := Parse(b)
		if err != nil || hd.Kind == KindRequest {
			d.Free(h)
			continue
		}
		c.mu.Lock()
		to, ok := c.pending[hd.ID]
		if ok && to.ch == ch {
			delete(c.pending, hd.ID)
		} else {
			ok = false
		}
		c.mu.Unlock()
		if !ok { // abandoned, unknown or duplicate
			d.Free(h)
			continue
		}
		var r result
		if hd.Kind == KindError {
			r.err = &Error{Op: hd.Op, Status: hd.Status, Msg: string(body)}
			d.Free(h)
		} else {
			r.r = &Reply{Op: hd.Op, ID: hd.ID, Body: body, d: d, h: h}
		}
		if hd.ID == id {
			return r, true
		}
		to.rc <- r
	}
}

// forget stops waiting for id; its reply is freed when it comes.
func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Err returns nil while the client can make calls, and the reason once it
// cannot: an error matching exipc.ErrClosed after Close, or, for a client
// made by NewClient, exipc.ErrPeerDead once its channel's server is gone. A
// client made by Dial that is between servers returns nil: its next call
// connects again.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// InFlight returns how many calls wait for their reply.
func (c *Client) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Close fails every call in flight with exipc.ErrClosed and closes the
// channel (replies still on their way are freed), and a domain the client
// reopened by itself.
func (c *Client) Close() error {
	c.fail(fmt.Errorf("stub: %w", exipc.ErrClosed))
	c.mu.Lock()
	ch, own := c.ch, c.own
	c.ch, c.own = nil, nil
	c.mu.Unlock()
	var err error
	if ch != nil {
		err = ch.Close() // wakes a caller receiving: it returns the error filed for it
	}
	if own != nil {
		own.Close()
	}
	return err
}

// fail sets the client's error (once) and fails every pending call with it.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	for id, p := range c.pending {
		p.rc <- result{err: c.err}
		delete(c.pending, id)
	}
	c.mu.Unlock()
}
