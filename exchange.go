package exipc

import "context"

// SendRecvBytes is a server's step of request and response on one channel:
// it frees done (a request answered), sends out (its response), then
// receives the next handle like RecvBytes. Either handle may be 0: nothing to
// free, nothing to send. The free, the send and the first look at the ring
// take one call into C (where Free, Send and RecvBytes take three), and so
// does the arm of a receive that waits on the domain's poller at once.
//
// done is freed whatever happens. When the send fails nothing is received:
// on a full ring it returns ErrQueueFull itself (not wrapped), and out is
// still the caller's; after any other error out has been sent or freed.
func (c *Chan) SendRecvBytes(ctx context.Context, done, out Handle) (Handle, []byte, error) {
	h, b, err := c.e.SendRecvView(ctx, uint64(done), uint64(out))
	return Handle(h), b, err
}

// SendCopyRecvBytes is a caller's step of request and response: SendCopy of
// head and body, then RecvBytes, with the send and the first look at the
// ring in one call into C (and, in a crowd of waiters, the arm). sent is the
// handle sent, or 0 when the send failed: then err is SendCopy's error
// (ErrQueueFull and ErrHeapFull not wrapped), nothing stays allocated and
// nothing was received. Otherwise h, b and err are RecvBytes's.
func (c *Chan) SendCopyRecvBytes(ctx context.Context, head, body []byte) (sent, h Handle, b []byte, err error) {
	s, rh, rb, err := c.e.SendCopyRecvView(ctx, head, body)
	return Handle(s), Handle(rh), rb, err
}
