// Package conn gives exipc channels the shape of net.Conn and net.Listener,
// so that code written for sockets — net/http, gRPC, anything that takes a
// net.Listener or a dialer — runs over a shared-memory domain unchanged.
//
// A Conn is a byte stream over one exipc channel. Each Write puts its bytes
// into heap blocks of the domain (large writes split over several blocks,
// at most MaxBlock bytes each) and sends their handles; each Read copies
// out of the received block and frees it when it is used up. Those are the
// only two copies: into the shared block and out of it.
//
// When the peer falls behind and the ring towards it is full, Write keeps
// the blocks it could not send in a short queue of its own and appends
// later small writes to the last of them (coalescing), so a burst of small
// writes costs few handles. The queue is bounded: once it holds
// MaxPending bytes, Write blocks until the peer catches up or the write
// deadline passes. A full heap blocks Write the same way. Write never fails
// because the ring or the heap is full.
//
// A graceful Close (or CloseWrite) sends an end-of-stream mark after the
// data; the peer reads everything, then io.EOF. A peer that dies without
// it gives an error matching exipc.ErrPeerDead instead. Calls on a Conn
// closed locally return an error matching net.ErrClosed; deadlines give
// errors matching os.ErrDeadlineExceeded whose Timeout() is true.
//
// Every block received is checked (its header's kind and length against
// the block's size) before its bytes are used; a block that fails gives an
// error matching exipc.ErrCorrupt and ends the stream.
package conn

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exipc/exipc"
)

// Sizes of the stream's blocks.
const (
	// MaxBlock is the size of the largest block a Write allocates (header
	// included): a larger write is split over several blocks.
	MaxBlock = 64 << 10
	// MaxPending bounds the bytes a Conn holds in blocks it could not send
	// yet (the ring towards the peer was full). Beyond it Write blocks.
	MaxPending = 256 << 10
	// coalesceBlock is the size of a block allocated while others wait to
	// be sent: later small writes are appended to it.
	coalesceBlock = 16 << 10
	// maxPendingBlocks bounds the handles waiting to be sent.
	maxPendingBlocks = 32
	// recvBatch is how many handles one receive takes at most.
	recvBatch = 32
	// Linger is how long a Conn closed with blocks still unsent (the peer
	// was behind) keeps trying to deliver them, and the end-of-stream mark,
	// in the background before it gives up.
	Linger = 5 * time.Second
)

// ReadSpin is how long a Read with nothing to read keeps looking (yielding
// to the process's other goroutines between looks) before it parks on the
// domain's poller. Zero parks at once (the least CPU); set it before the
// first Read.
var ReadSpin = 50 * time.Microsecond

// spinners counts the Reads of this process spinning now. Past
// maxSpinners, a Read parks at once: many spinning readers (a server with
// many idle streams) would take the CPU from the goroutines that do the
// work. Two measured best on 2 vCPUs (HTTP, 16 streams: 22 k req/s with
// one spinner, 39 k with two, 21 k with four).
var spinners atomic.Int32

var maxSpinners = int32(min(runtime.NumCPU(), 2))

// A block is an 8-byte header, then the payload:
//
//	[0:4] payload length (little endian), at most len(block)-8
//	[4:8] kind: kindData or kindEOF (an end-of-stream mark has no payload)
const (
	hdrLen   = 8
	kindData = 0x61746164 // "data"
	kindEOF  = 0x20666f65 // "eof "
)

// Addr is the address of a Conn or Listener: a service of a domain.
type Addr struct {
	Domain, Service string
}

// Network returns "exipc".
func (a Addr) Network() string { return "exipc" }

// String returns "DOMAIN/SERVICE".
func (a Addr) String() string { return a.Domain + "/" + a.Service }

// Conn is a net.Conn over an exipc channel. It is safe for concurrent use:
// Reads are serialised among themselves, and Writes among themselves.
type Conn struct {
	d    *exipc.Domain
	ch   *exipc.Chan
	addr Addr

	closed    atomic.Bool
	closeOnce sync.Once
	base      context.Context // done once Close is called
	cancel    context.CancelFunc

	rd, wd deadline

	// Reading side, under rmu.
	rmu  sync.Mutex
	cur  exipc.Handle // the block being read, 0 if none
	buf  []byte       // its unread payload
	q    [recvBatch]exipc.Handle
	qh   int   // q[qh:qn] are received, not yet read
	qn   int   //
	rerr error // sticky: io.EOF, peer dead, corrupt

	// Writing side, under wmu.
	wmu      sync.Mutex
	pend     [maxPendingBlocks]exipc.Handle // allocated and filled, not yet sent, in order
	pendN    [maxPendingBlocks]int          // payload bytes of each
	npend    int
	pendB    int    // payload bytes in pend
	tail     []byte // the last pending block, which later writes may extend
	werr     error  // sticky: peer dead, closed for writing
	shut     bool   // CloseWrite sent the end-of-stream mark
	flushing bool   // a flusher goroutine is running
	maxBlk   int    // largest block the domain gives, learned on ErrInvalid
}

func newConn(d *exipc.Domain, ch *exipc.Chan, addr Addr) *Conn {
	c := &Conn{d: d, ch: ch, addr: addr, maxBlk: MaxBlock}
	c.base, c.cancel = context.WithCancel(context.Background())
	return c
}

// LocalAddr returns the service's address, DOMAIN/SERVICE.
func (c *Conn) LocalAddr() net.Addr { return c.addr }

// RemoteAddr returns the service's address, DOMAIN/SERVICE (both ends of a
// channel name the same service).
func (c *Conn) RemoteAddr() net.Addr { return c.addr }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set deadline", net.ErrClosed)
	}
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline sets the deadline of pending and future Reads; a zero t
// means none. A Read blocked when it passes returns an error matching
// os.ErrDeadlineExceeded.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set deadline", net.ErrClosed)
	}
	c.rd.set(t)
	return nil
}

// SetWriteDeadline sets the deadline of pending and future Writes; a zero t
// means none.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set deadline", net.ErrClosed)
	}
	c.wd.set(t)
	return nil
}

func (c *Conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "exipc", Source: c.addr, Addr: c.addr, Err: err}
}

// ---- reading ----------------------------------------------------------------

// Read reads up to len(p) bytes. It blocks until at least one byte is
// there, the peer has closed (io.EOF once everything it wrote was read) or
// died (an error matching exipc.ErrPeerDead), the read deadline passes, or
// the Conn is closed (net.ErrClosed).
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closed.Load() {
		return 0, c.opErr("read", net.ErrClosed)
	}
	if c.rd.expired() {
		return 0, c.opErr("read", os.ErrDeadlineExceeded)
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for n < len(p) {
		if len(c.buf) == 0 && !c.next() {
			break
		}
		k := copy(p[n:], c.buf)
		c.buf = c.buf[k:]
		n += k
		if len(c.buf) == 0 {
			c.release()
		}
	}
	if n > 0 {
		return n, nil
	}
	if c.rerr != nil {
		return 0, c.readErr()
	}
	// Nothing here: wait for the next batch of handles.
	if err := c.wait(); err != nil {
		return 0, err
	}
	for n < len(p) && (len(c.buf) > 0 || c.next()) {
		k := copy(p[n:], c.buf)
		c.buf = c.buf[k:]
		n += k
		if len(c.buf) == 0 {
			c.release()
		}
	}
	if n == 0 && c.rerr != nil {
		return 0, c.readErr()
	}
	return n, nil
}

func (c *Conn) readErr() error {
	if c.rerr == io.EOF {
		return io.EOF
	}
	return c.opErr("read", c.rerr)
}

// release frees the block just read up.
func (c *Conn) release() {
	if c.cur != 0 {
		c.d.Free(c.cur)
		c.cur = 0
	}
	c.buf = nil
}

// next makes the next received block with payload the current one, taking
// it from the handles already received. It reports whether there is one.
// An end-of-stream mark or a bad block sets rerr.
func (c *Conn) next() bool {
	for c.qh < c.qn && c.rerr == nil {
		h := c.q[c.qh]
		c.qh++
		b, err := c.d.Bytes(h)
		if err != nil {
			c.rerr = err
			continue
		}
		if len(b) < hdrLen {
			c.d.Free(h)
			c.rerr = errCorrupt
			continue
		}
		n := binary.LittleEndian.Uint32(b[0:4])
		switch kind := binary.LittleEndian.Uint32(b[4:8]); {
		case kind == kindEOF && n == 0:
			c.d.Free(h)
			c.rerr = io.EOF
			continue
		case kind != kindData || uint64(n) > uint64(len(b)-hdrLen):
			c.d.Free(h)
			c.rerr = errCorrupt
			continue
		case n == 0:
			c.d.Free(h)
			continue
		}
		c.cur, c.buf = h, b[hdrLen:hdrLen+int(n)]
		return true
	}
	if c.rerr != nil {
		c.drainQueue()
	}
	return false
}

// drainQueue frees the handles received but not to be read.
func (c *Conn) drainQueue() {
	for ; c.qh < c.qn; c.qh++ {
		c.d.Free(c.q[c.qh])
	}
	c.qh, c.qn = 0, 0
}

var errCorrupt = &streamError{"exipc conn: bad block from the peer", exipc.ErrCorrupt}

type streamError struct {
	msg string
	err error
}

func (e *streamError) Error() string { return e.msg }
func (e *streamError) Unwrap() error { return e.err }

// wait receives the next batch of handles into q, blocking until at least
// one comes, the deadline passes or the Conn closes. A peer gone sets rerr
// and returns nil: the caller reports it.
func (c *Conn) wait() error {
	// A first look without a context: a handle is often there already.
	if h, err := c.ch.TryRecv(); err == nil {
		c.q[0], c.qh, c.qn = h, 0, 1
		return nil
	} else if err != exipc.ErrEmpty {
		return c.recvFailed(err)
	}
	// Then a short spin that lets this process's other goroutines run: an
	// RPC's answer usually comes within it, and catching it here saves the
	// wake-up of a parked receiver (tens of µs on an idle vCPU).
	if got, err := c.spin(); got || err != nil {
		return err
	}
	for {
		ctx, done, err := c.rd.context(c)
		if err != nil {
			return c.opErr("read", err)
		}
		n, err := c.ch.RecvBatch(ctx, c.q[:])
		done()
		if err == nil {
			c.qh, c.qn = 0, n
			return nil
		}
		if ctx.Err() == nil || errors.Is(err, exipc.ErrPeerDead) {
			return c.recvFailed(err)
		}
		// The context ended: Close, a deadline that passed, or a deadline
		// that changed. rd.context tells which on the next turn.
	}
}

// spin looks for a handle for up to ReadSpin, yielding between looks, if
// no other Read of the process spins already. It reports whether it got
// one (or the error that ended the stream).
func (c *Conn) spin() (bool, error) {
	if ReadSpin <= 0 || runtime.NumCPU() < 2 {
		return false, nil
	}
	if spinners.Add(1) > maxSpinners {
		spinners.Add(-1)
		return false, nil
	}
	defer spinners.Add(-1)
	t0 := time.Now()
	for i := 1; ; i++ {
		h, err := c.ch.TryRecv()
		if err == nil {
			c.q[0], c.qh, c.qn = h, 0, 1
			return true, nil
		} else if err != exipc.ErrEmpty {
			return true, c.recvFailed(err)
		}
		if i&7 == 0 && (time.Since(t0) > ReadSpin || c.closed.Load() || c.rd.expired()) {
			return false, nil
		}
		runtime.Gosched()
	}
}

func (c *Conn) recvFailed(err error) error {
	if c.closed.Load() {
		return c.opErr("read", net.ErrClosed)
	}
	c.rerr = err
	return nil
}

// ---- writing ----------------------------------------------------------------

// Write writes p to the stream and returns len(p), or fewer bytes and an
// error: the write deadline passed (os.ErrDeadlineExceeded; the bytes
// counted are still delivered), the peer is gone (exipc.ErrPeerDead) or the
// Conn was closed (net.ErrClosed). A full ring or heap makes it wait, never
// fail. Write may return before the peer's ring holds the last bytes (they
// wait in a block of this Conn that is sent as soon as there is room).
func (c *Conn) Write(p []byte) (int, error) {
	if c.closed.Load() { // do not queue behind a lingering Close
		return 0, c.opErr("write", net.ErrClosed)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		return 0, err
	}
	if c.wd.expired() {
		return 0, c.opErr("write", os.ErrDeadlineExceeded)
	}
	n := 0
	for n < len(p) {
		// The peer is behind: extend the last block waiting to be sent.
		if c.npend > 0 && len(c.tail) > 0 {
			k := c.appendTail(p[n:])
			n += k
			if n == len(p) {
				break
			}
		}
		k, err := c.writeBlock(p[n:])
		n += k
		if err != nil {
			c.flush()
			c.startFlusher()
			return n, err
		}
	}
	if c.npend > 0 {
		c.flush()
		c.startFlusher()
	}
	return n, nil
}

// writable reports why nothing may be written, if so.
func (c *Conn) writable() error {
	if c.closed.Load() {
		return c.opErr("write", net.ErrClosed)
	}
	if c.werr != nil {
		return c.opErr("write", c.werr)
	}
	return nil
}

// appendTail copies as much of p as fits into the last pending block.
func (c *Conn) appendTail(p []byte) int {
	b := c.tail
	used := int(binary.LittleEndian.Uint32(b[0:4]))
	k := copy(b[hdrLen+used:], p)
	binary.LittleEndian.PutUint32(b[0:4], uint32(used+k))
	c.pendB += k
	c.pendN[c.npend-1] += k
	if hdrLen+used+k == len(b) {
		c.tail = nil
	}
	return k
}

// writeBlock puts the start of p into a new block and sends it or queues
// it; it returns how many bytes of p it took. It waits while the pending
// queue is full or the heap is.
func (c *Conn) writeBlock(p []byte) (int, error) {
	for try := 0; ; try++ {
		if c.npend == maxPendingBlocks || c.pendB >= MaxPending {
			if err := c.flush(); err != nil {
				return 0, err
			}
			if c.npend == maxPendingBlocks || c.pendB >= MaxPending {
				if err := c.pause(try); err != nil {
					return 0, err
				}
				continue
			}
		}
		size := hdrLen + len(p)
		if c.npend > 0 && size < coalesceBlock {
			size = coalesceBlock // others wait: leave room for the next writes
		}
		size = min(size, c.maxBlk)
		h, b, err := c.d.Alloc(size)
		if err != nil {
			switch {
			case errors.Is(err, exipc.ErrHeapFull):
				c.flush()
				if err := c.pause(try); err != nil {
					return 0, err
				}
				continue
			case errors.Is(err, exipc.ErrInvalid) && c.maxBlk > 4<<10:
				c.maxBlk /= 2 // a domain with smaller blocks
				continue
			}
			return 0, c.fail(err)
		}
		k := copy(b[hdrLen:], p)
		binary.LittleEndian.PutUint32(b[0:4], uint32(k))
		binary.LittleEndian.PutUint32(b[4:8], kindData)
		if c.npend == 0 {
			err := c.ch.Send(h)
			if err == nil {
				return k, nil
			}
			if err != exipc.ErrQueueFull {
				c.d.Free(h)
				return 0, c.fail(err)
			}
		}
		c.pend[c.npend] = h
		c.pendN[c.npend] = k
		c.npend++
		c.pendB += k
		c.tail = nil
		if hdrLen+k < len(b) {
			c.tail = b
		}
		return k, nil
	}
}

// flush sends what it can of the pending blocks, in order.
func (c *Conn) flush() error {
	if c.npend == 0 {
		return nil
	}
	k, err := c.ch.SendBatch(c.pend[:c.npend])
	if err != nil && err != exipc.ErrQueueFull {
		c.dropPending()
		return c.fail(err)
	}
	if k > 0 {
		for i := 0; i < k; i++ {
			c.pendB -= c.pendN[i]
		}
		copy(c.pend[:], c.pend[k:c.npend])
		copy(c.pendN[:], c.pendN[k:c.npend])
		c.npend -= k
		if c.npend == 0 {
			c.tail = nil
		}
	}
	return nil
}

func (c *Conn) dropPending() {
	for i := 0; i < c.npend; i++ {
		c.d.Free(c.pend[i])
	}
	c.npend, c.pendB, c.tail = 0, 0, nil
}

// fail records a send-side error for good (the peer is gone, or the domain
// is) and returns it as the Write's error.
func (c *Conn) fail(err error) error {
	if c.closed.Load() {
		return c.opErr("write", net.ErrClosed)
	}
	if c.werr == nil {
		c.werr = err
	}
	return c.opErr("write", err)
}

// pause waits a little before the next try to send or allocate (the ring
// or the heap is full: the peer must read first). It gives the CPU away
// rather than spin on the ring's cache line. It returns the error that
// ends the wait: the deadline or Close.
func (c *Conn) pause(try int) error {
	if c.closed.Load() {
		return c.opErr("write", net.ErrClosed)
	}
	if c.wd.expired() {
		return c.opErr("write", os.ErrDeadlineExceeded)
	}
	time.Sleep(backoff(try))
	if c.closed.Load() {
		return c.opErr("write", net.ErrClosed)
	}
	if c.wd.expired() {
		return c.opErr("write", os.ErrDeadlineExceeded)
	}
	return nil
}

// backoff is the pause before try number try: 5 µs doubling up to 1 ms
// (Close and a new deadline are seen within that).
func backoff(try int) time.Duration {
	if try > 8 {
		return time.Millisecond
	}
	return 5 * time.Microsecond << try
}

// startFlusher makes sure a goroutine sends the pending blocks once there
// is room, so that bytes a Write accepted reach the peer even if nothing
// is written after them. Called with wmu held.
func (c *Conn) startFlusher() {
	if c.npend == 0 || c.flushing || c.closed.Load() {
		return
	}
	c.flushing = true
	go func() {
		for try := 0; ; try++ {
			time.Sleep(backoff(try))
			c.wmu.Lock()
			if c.closed.Load() {
				c.flushing = false
				c.wmu.Unlock()
				return // Close delivers the rest
			}
			err := c.flush()
			if err != nil || c.npend == 0 {
				c.flushing = false
				c.wmu.Unlock()
				return
			}
			c.wmu.Unlock()
		}
	}()
}

// ---- closing ----------------------------------------------------------------

// CloseWrite shuts the writing side: what was written is delivered, then
// the peer reads io.EOF. Reading goes on until the peer closes too.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		if c.shut {
			return nil
		}
		return err
	}
	c.shut = true
	c.werr = errWriteShut
	if !c.sendEOF(time.Now().Add(Linger)) {
		return c.opErr("close write", exipc.ErrPeerDead)
	}
	return nil
}

var errWriteShut = &streamError{"exipc conn: write after CloseWrite", net.ErrClosed}

// sendEOF delivers the pending blocks, then an end-of-stream mark, trying
// until the deadline. It reports whether the mark was sent. Called with
// wmu held.
func (c *Conn) sendEOF(until time.Time) bool {
	var h exipc.Handle
	for try := 0; ; try++ {
		if err := c.flush(); err != nil {
			break
		}
		if c.npend == 0 {
			if h == 0 {
				var b []byte
				var err error
				h, b, err = c.d.Alloc(hdrLen)
				if err == nil {
					binary.LittleEndian.PutUint32(b[0:4], 0)
					binary.LittleEndian.PutUint32(b[4:8], kindEOF)
				} else if !errors.Is(err, exipc.ErrHeapFull) {
					break
				} else {
					h = 0
				}
			}
			if h != 0 {
				err := c.ch.Send(h)
				if err == nil {
					return true
				}
				if err != exipc.ErrQueueFull {
					break
				}
			}
		}
		if time.Now().After(until) {
			break
		}
		time.Sleep(backoff(try))
	}
	if h != 0 {
		c.d.Free(h)
	}
	c.dropPending()
	return false
}

// Close closes the Conn: pending and later calls return net.ErrClosed. What
// was written is still delivered, then the peer reads io.EOF; if the peer
// is behind, that goes on in the background for up to Linger.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.closed.Store(true)
		c.cancel() // wakes a blocked Read
		c.rd.set(time.Time{})
	})
	if !first {
		return c.opErr("close", net.ErrClosed)
	}
	// Reading side: give back what was received and not read.
	c.rmu.Lock()
	c.release()
	c.drainQueue()
	c.rmu.Unlock()

	c.wmu.Lock() // a blocked Write sees the flag within a pause
	if c.shut || c.werr != nil {
		c.dropPending()
		c.wmu.Unlock()
		return c.closeChan()
	}
	c.shut = true
	if c.flush(); c.npend == 0 {
		ok := c.sendEOF(time.Now())
		c.wmu.Unlock()
		if ok {
			return c.closeChan()
		}
	} else {
		c.wmu.Unlock()
	}
	// The peer is behind: deliver the rest in the background.
	go func() {
		c.wmu.Lock()
		c.sendEOF(time.Now().Add(Linger))
		c.wmu.Unlock()
		c.closeChan()
	}()
	return nil
}

func (c *Conn) closeChan() error {
	if err := c.ch.Close(); err != nil && !errors.Is(err, exipc.ErrClosed) {
		return c.opErr("close", err)
	}
	return nil
}

// ---- deadlines ------------------------------------------------------------------

// deadline is one direction's deadline and the context of the wait in
// progress, which a new deadline cancels so that the wait starts again with
// it.
type deadline struct {
	mu     sync.Mutex
	t      time.Time
	cancel context.CancelFunc // of the wait in progress, or nil
	gen    uint64
	has    atomic.Bool // t is not zero
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	d.t = t
	d.has.Store(!t.IsZero())
	d.gen++
	if d.cancel != nil {
		d.cancel()
		d.cancel = nil
	}
	d.mu.Unlock()
}

// expired reports whether the deadline has passed.
func (d *deadline) expired() bool {
	if !d.has.Load() {
		return false
	}
	d.mu.Lock()
	t := d.t
	d.mu.Unlock()
	return !t.IsZero() && !time.Now().Before(t)
}

// context returns the context a wait uses — done when the deadline passes,
// the deadline changes or the Conn closes — and the function to call after
// the wait; or the error that forbids waiting at all.
func (d *deadline) context(c *Conn) (context.Context, func(), error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.closed.Load() {
		return nil, nil, net.ErrClosed
	}
	if !d.t.IsZero() && !time.Now().Before(d.t) {
		return nil, nil, os.ErrDeadlineExceeded
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if d.t.IsZero() {
		ctx, cancel = context.WithCancel(c.base)
	} else {
		ctx, cancel = context.WithDeadline(c.base, d.t)
	}
	d.cancel = cancel
	gen := d.gen
	return ctx, func() {
		d.mu.Lock()
		if d.gen == gen {
			d.cancel = nil
		}
		d.mu.Unlock()
		cancel()
	}, nil
}
