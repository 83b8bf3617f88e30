package stub

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/exipc/exipc"
)

// Client calls a server over one channel. It is safe for concurrent use:
// calls from many goroutines are pipelined on the channel. There is no
// receiving goroutine: one waiting caller at a time receives from the
// channel, keeps its own reply and hands each other reply straight to the
// caller waiting for it (at most one hand-off per reply; none with a single
// caller).
type Client struct {
	d  *exipc.Domain
	ch *exipc.Chan

	mu      sync.Mutex
	pending map[uint64]chan result
	nextID  uint64
	err     error // set once the channel is dead or closed: every call fails with it

	recv chan struct{} // holds the token a caller takes to receive
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
// Domain.Connect) and returns a client on the new channel.
func Dial(ctx context.Context, d *exipc.Domain, service string) (*Client, error) {
	ch, err := d.Connect(ctx, service)
	if err != nil {
		return nil, err
	}
	return NewClient(d, ch), nil
}

// NewClient returns a client on channel ch of domain d; the client owns ch
// from then on and closes it in Close.
func NewClient(d *exipc.Domain, ch *exipc.Chan) *Client {
	c := &Client{d: d, ch: ch, pending: make(map[uint64]chan result), nextID: 1,
		recv: make(chan struct{}, 1)}
	c.recv <- struct{}{}
	return c
}

// Call sends a request (op, a copy of body written into the shared heap) and
// waits for its reply until ctx is done. It returns the reply, or: an *Error
// (an error reply from the server); an error matching exipc.ErrQueueFull
// (the server's queue is full: retry later — Call never waits for room) or
// exipc.ErrHeapFull; exipc.ErrPeerDead (the server went; Err is then set and
// every later call fails); or ctx's error. Cancelling ctx abandons the call:
// its reply, if it comes, is dropped.
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
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	id := c.nextID
	c.nextID++
	rc := make(chan result, 1)
	c.pending[id] = rc
	c.mu.Unlock()

	h, b, err := c.d.Alloc(HeaderSize + n)
	if err != nil {
		c.forget(id)
		return nil, fmt.Errorf("stub: call op %d: %w", op, err)
	}
	Header{Kind: KindRequest, ID: id, Op: op, BodyLen: uint32(n)}.Put(b)
	if fill != nil {
		fill(b[HeaderSize:])
	}
	if err := c.ch.Send(h); err != nil {
		c.d.Free(h) // refused: still ours
		return nil, c.sendFailed(id, op, err)
	}
	return c.wait(ctx, id, rc)
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
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	id := c.nextID
	c.nextID++
	rc := make(chan result, 1)
	c.pending[id] = rc
	c.mu.Unlock()

	var hdr [HeaderSize]byte
	Header{Kind: KindRequest, ID: id, Op: op, BodyLen: uint32(len(body))}.Put(hdr[:])
	if _, err := c.ch.SendCopy(hdr[:], body); err != nil {
		return nil, c.sendFailed(id, op, err)
	}
	return c.wait(ctx, id, rc)
}

// sendFailed ends a call whose request could not be sent.
func (c *Client) sendFailed(id uint64, op uint32, err error) error {
	c.forget(id)
	if errors.Is(err, exipc.ErrPeerDead) || errors.Is(err, exipc.ErrClosed) {
		c.fail(err)
	}
	return fmt.Errorf("stub: call op %d: %w", op, err)
}

// wait waits for the reply to id: filed into rc by the caller that receives
// for the client, or received by this caller itself once it holds the
// receiving token.
func (c *Client) wait(ctx context.Context, id uint64, rc chan result) (*Reply, error) {
	for {
		select {
		case r := <-rc:
			return r.r, r.err
		case <-c.recv:
			if r, ok := c.receive(ctx, id, rc); ok {
				return r.r, r.err
			}
			return c.abandon(ctx, id, rc)
		case <-ctx.Done():
			return c.abandon(ctx, id, rc)
		}
	}
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
// replies, files those of other calls, and returns its own (ok true), or
// ok false when ctx is done. It hands the token back before it returns.
func (c *Client) receive(ctx context.Context, id uint64, rc chan result) (result, bool) {
	defer func() { c.recv <- struct{}{} }()
	for {
		select { // filed by the caller that held the token before us
		case r := <-rc:
			return r, true
		default:
		}
		h, b, err := c.ch.RecvBytes(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return result{}, false
			}
			c.fail(fmt.Errorf("stub: %w", err))
			return <-rc, true // fail filed an error for every pending call
		}
		hd, body, err := Parse(b)
		if err != nil || hd.Kind == KindRequest {
			c.d.Free(h)
			continue
		}
		c.mu.Lock()
		to, ok := c.pending[hd.ID]
		delete(c.pending, hd.ID)
		c.mu.Unlock()
		if !ok { // abandoned, unknown or duplicate
			c.d.Free(h)
			continue
		}
		var r result
		if hd.Kind == KindError {
			r.err = &Error{Op: hd.Op, Status: hd.Status, Msg: string(body)}
			c.d.Free(h)
		} else {
			r.r = &Reply{Op: hd.Op, ID: hd.ID, Body: body, d: c.d, h: h}
		}
		if hd.ID == id {
			return r, true
		}
		to <- r
	}
}

// forget stops waiting for id; its reply is freed when it comes.
func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Err returns nil while the client works, and the reason once it does not
// (an error matching exipc.ErrPeerDead or exipc.ErrClosed).
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
// channel (replies still on their way are freed).
func (c *Client) Close() error {
	c.fail(fmt.Errorf("stub: %w", exipc.ErrClosed))
	return c.ch.Close() // wakes a caller receiving: it returns the error filed for it
}

// fail sets the client's error (once) and fails every pending call with it.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	for id, rc := range c.pending {
		rc <- result{err: c.err}
		delete(c.pending, id)
	}
	c.mu.Unlock()
}
