package stub

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exipc/exipc"
)

// Request is a request as a handler sees it.
type Request struct {
	Op   uint32
	ID   uint64
	Conn uint64 // the channel it came on: unique for the server's life
	// Body is the request's body in place in the shared heap, valid until the
	// handler returns.
	Body []byte
}

// Handler serves one op. It builds a response with w (or leaves it empty)
// and returns nil; or returns an error: an *Error goes back with its status
// and message, any other error with StatusInternal and its text. ctx is
// done when the client's channel goes or the server stops.
// req and w are the server's, valid until the handler returns (the server
// reuses them for the channel's next request).
type Handler func(ctx context.Context, req *Request, w *Writer) error

// Func adapts a function that returns the response body as a slice (copied
// into the shared heap) to a Handler.
func Func(f func(ctx context.Context, req *Request) ([]byte, error)) Handler {
	return func(ctx context.Context, req *Request, w *Writer) error {
		body, err := f(ctx, req)
		if err != nil {
			return err
		}
		b, err := w.Body(len(body))
		if err != nil {
			return err
		}
		copy(b, body)
		return nil
	}
}

// Writer builds a handler's response in the shared heap.
type Writer struct {
	d *exipc.Domain
	h exipc.Handle
	b []byte // the whole block
	n int    // body length
}

// Body allocates the response body, n bytes in the shared heap, and returns
// it to be filled in place. Calling it again replaces the earlier body.
func (w *Writer) Body(n int) ([]byte, error) {
	w.release()
	h, b, err := w.d.Alloc(HeaderSize + n)
	if err != nil {
		return nil, err
	}
	w.h, w.b, w.n = h, b, n
	return b[HeaderSize:], nil
}

// SetLen shortens the body allocated with Body to n bytes.
func (w *Writer) SetLen(n int) {
	if w.b != nil && n >= 0 && n <= len(w.b)-HeaderSize {
		w.n = n
	}
}

func (w *Writer) release() {
	if w.h != 0 {
		w.d.Free(w.h)
		w.h, w.b, w.n = 0, nil, 0
	}
}

// Server serves requests on a service: a handler per op (Exchange 2000's stub per
// protocol). Register handlers before serving.
type Server struct {
	d        *exipc.Domain
	mu       sync.Mutex                          // serialises Handle
	handlers atomic.Pointer[map[uint32]*handler] // copied on Handle: read without a lock per request
	conns    atomic.Uint64

	// MaxInFlight bounds the requests of one channel handled at once
	// (default 64). When it is reached the server stops receiving from that
	// channel, and the client's queue fills: backpressure.
	MaxInFlight int
	// OnClose, if set, is called with a channel's Conn when its client has
	// gone and all its requests were answered.
	OnClose func(conn uint64)
}

// handler is a registered Handler and what the server has learnt of it.
type handler struct {
	fn  Handler
	avg atomic.Int64 // running mean of its run time, ns (weight 1/8 per run)
}

// inlineFor is how long a handler may run, on average, on the goroutine
// that receives from the channel. A handler whose recent runs took longer
// runs in a goroutine of its own, so that it does not hold up the requests
// behind it; once its runs are short again it comes back. (A mean, not the
// last run: one run that the scheduler happened to preempt does not move a
// short handler off the fast path.)
const inlineFor = 50 * time.Microsecond

func (h *handler) inline() bool { return h.avg.Load() <= int64(inlineFor) }

func (h *handler) ran(d time.Duration) {
	old := h.avg.Load()
	h.avg.Store(old + (int64(d)-old)/8) // racy updates only blur the mean
}

// NewServer returns a server on domain d with no handlers.
func NewServer(d *exipc.Domain) *Server {
	s := &Server{d: d}
	s.handlers.Store(&map[uint32]*handler{})
	return s
}

// Handle registers h for op, replacing any earlier handler. Requests for an
// op with no handler get an error reply with StatusNoHandler.
//
// A handler runs on the goroutine that received its request (no hand-off to
// another goroutine) while its recent runs took less than about 50 µs on
// average; otherwise each request for op runs in a goroutine of its own, up
// to MaxInFlight at once per channel.
func (s *Server) Handle(op uint32, h Handler) {
	s.mu.Lock()
	old := *s.handlers.Load()
	m := make(map[uint32]*handler, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[op] = &handler{fn: h}
	s.handlers.Store(&m)
	s.mu.Unlock()
}

// Serve accepts channels on l and serves each in its own goroutine until ctx
// is done; then it waits for them to finish and returns ctx's error.
func (s *Server) Serve(ctx context.Context, l *exipc.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		ch, err := l.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.ServeChan(ctx, ch)
			ch.Close()
		}()
	}
}

// ServeChan serves the requests of one channel until its client goes (then
// it returns nil) or ctx is done. It does not close ch.
func (s *Server) ServeChan(ctx context.Context, ch *exipc.Chan) error {
	conn := s.conns.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	max := s.MaxInFlight
	if max <= 0 {
		max = 64
	}
	// sem holds a token per request handled in a goroutine of its own; the
	// inline ones need none (one at a time, on this goroutine).
	sem := make(chan struct{}, max)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		if s.OnClose != nil {
			s.OnClose(conn)
		}
	}()
	var inl inlineReq // reused by every request handled inline
	h, b, err := s.next(ctx, ch, sem, 0, 0)
	for {
		if err != nil {
			if errors.Is(err, exipc.ErrPeerDead) {
				return nil
			}
			return err
		}
		hd, body, perr := Parse(b)
		if perr != nil || hd.Kind != KindRequest {
			s.d.Free(h) // garbage, or not a request: no id to answer
			h, b, err = s.next(ctx, ch, sem, 0, 0)
			continue
		}
		fn := (*s.handlers.Load())[hd.Op]
		if fn == nil || fn.inline() {
			// The request's free, the reply's send and the next receive
			// go into C together.
			out := s.run(ctx, conn, hd, body, fn, &inl)
			h, b, err = s.next(ctx, ch, sem, h, out)
			continue
		}
		sem <- struct{}{} // never blocks: only this loop adds, and it checked for room
		wg.Add(1)
		go func(h exipc.Handle, hd Header, body []byte) {
			defer func() { <-sem; wg.Done() }()
			out := s.run(ctx, conn, hd, body, fn, nil)
			s.d.Free(h)
			if out != 0 {
				s.send(ctx, ch, out)
			}
		}(h, hd, body)
		h, b, err = s.next(ctx, ch, sem, 0, 0)
	}
}

// next frees done and sends out (the request just answered and its reply;
// 0 for none), then receives the channel's next request: all of it in one
// call into C (SendRecvBytes) unless MaxInFlight requests run in goroutines
// of their own (then it waits for one of them first) or the client's ring
// is full (then the reply waits for room).
func (s *Server) next(ctx context.Context, ch *exipc.Chan, sem chan struct{}, done, out exipc.Handle) (exipc.Handle, []byte, error) {
	if len(sem) == cap(sem) { // MaxInFlight in goroutines: wait for one before receiving more
		if done != 0 {
			s.d.Free(done)
		}
		if out != 0 {
			s.send(ctx, ch, out)
		}
		select {
		case sem <- struct{}{}:
			<-sem
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
		return ch.RecvBytes(ctx)
	}
	if done == 0 && out == 0 {
		return ch.RecvBytes(ctx)
	}
	h, b, err := ch.SendRecvBytes(ctx, done, out)
	if err == exipc.ErrQueueFull { // out is still ours (done was freed)
		s.send(ctx, ch, out)
		return ch.RecvBytes(ctx)
	}
	return h, b, err
}

// inlineReq is the Request and Writer of the requests a ServeChan handles
// on its own goroutine, one after the other: allocated once per channel.
type inlineReq struct {
	req Request
	w   Writer
}

// run runs the handler of a request (parsed: hd, body) and returns the
// reply's block (an error reply if the handler failed), or 0 if not even an
// error reply found room in the heap. The request's block is the caller's
// to free.
func (s *Server) run(ctx context.Context, conn uint64, hd Header, body []byte, fn *handler, inl *inlineReq) exipc.Handle {
	var err error
	if inl == nil {
		inl = new(inlineReq)
	}
	w := &inl.w
	*w = Writer{d: s.d}
	if fn == nil {
		err = &Error{Status: StatusNoHandler, Msg: "no handler for this op"}
	} else {
		req := &inl.req
		*req = Request{Op: hd.Op, ID: hd.ID, Conn: conn, Body: body}
		start := time.Now()
		err = fn.fn(ctx, req, w)
		fn.ran(time.Since(start))
		req.Body = nil
	}
	if err != nil {
		w.release()
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Status: StatusInternal, Msg: err.Error()}
		}
		return s.errorBlock(hd, e.Status, e.Msg)
	}
	if w.b == nil {
		if _, err := w.Body(0); err != nil {
			return s.errorBlock(hd, StatusNoMemory, "no heap for the reply")
		}
	}
	Header{Kind: KindResponse, ID: hd.ID, Op: hd.Op, BodyLen: uint32(w.n)}.Put(w.b)
	return w.h
}

func (s *Server) errorBlock(req Header, status int32, msg string) exipc.Handle {
	if status == 0 {
		status = StatusInternal
	}
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	h, b, err := s.d.Alloc(HeaderSize + len(msg))
	if err != nil {
		return 0
	}
	Header{Kind: KindError, ID: req.ID, Op: req.Op, Status: status, BodyLen: uint32(len(msg))}.Put(b)
	copy(b[HeaderSize:], msg)
	return h
}

// send sends a reply, waiting for room while the client's ring is full (it
// is reading: it asked) until the client goes or ctx is done.
func (s *Server) send(ctx context.Context, ch *exipc.Chan, h exipc.Handle) {
	pause := 20 * time.Microsecond
	for {
		err := ch.Send(h)
		if err == nil {
			return
		}
		if !errors.Is(err, exipc.ErrQueueFull) || ctx.Err() != nil {
			s.d.Free(h)
			return
		}
		time.Sleep(pause)
		if pause < time.Millisecond {
			pause *= 2
		}
	}
}
