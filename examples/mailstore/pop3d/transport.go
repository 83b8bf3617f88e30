package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/stub"
)

// The store's ops (examples/mailstore/store.c).
const (
	opAuth uint32 = iota + 1
	opStat
	opList
	opUidl
	opRetr
	opTop
	opDele
	opRset
	opNoop
	opQuit
	opLogout
)

// The store's error statuses.
const (
	errNoSession int32 = iota + 1
	errAuth
	errLocked
	errNoMsg
	errDeleted
	errTooBig
	errBadReq
	errDB
)

// Transport carries a call to the store and its reply. The POP3 code is the
// same whatever the transport: exipc (the shared heap) or a Unix socket (for
// the benchmark's comparison).
type Transport interface {
	// Call sends op with body and returns the reply; an error reply comes back
	// as a *stub.Error.
	Call(ctx context.Context, op uint32, body []byte) (*Reply, error)
	Close() error
}

// Reply is a store's response. Body is valid until Release.
type Reply struct {
	Body    []byte
	release func()
}

// Release gives the reply's memory back (for exipc: frees the heap block).
func (r *Reply) Release() {
	if r != nil && r.release != nil {
		r.release()
		r.release = nil
	}
}

// errStoreDown: the store is not there (not started, killed, or restarting).
var errStoreDown = errors.New("store unavailable")

// ---- exipc ------------------------------------------------------------------

// exipcTransport calls the store through the Go stub on one channel, shared
// (pipelined) by every POP3 session. When the store dies the channel's
// client fails; the next call connects again (reconnect on demand), so a
// restarted store is used without restarting pop3d.
type exipcTransport struct {
	d           *exipc.Domain
	service     string
	dialTimeout time.Duration

	mu sync.Mutex
	c  *stub.Client
}

func (t *exipcTransport) client(ctx context.Context) (*stub.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c != nil && t.c.Err() == nil {
		return t.c, nil
	}
	if t.c != nil {
		t.c.Close()
		t.c = nil
	}
	dctx, cancel := context.WithTimeout(ctx, t.dialTimeout)
	defer cancel()
	c, err := stub.Dial(dctx, t.d, t.service)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStoreDown, err)
	}
	t.c = c
	return c, nil
}

func (t *exipcTransport) Call(ctx context.Context, op uint32, body []byte) (*Reply, error) {
	c, err := t.client(ctx)
	if err != nil {
		return nil, err
	}
	r, err := c.Call(ctx, op, body)
	if err != nil {
		if errors.Is(err, exipc.ErrPeerDead) || errors.Is(err, exipc.ErrClosed) {
			return nil, fmt.Errorf("%w: %w", errStoreDown, err)
		}
		return nil, err
	}
	return &Reply{Body: r.Body, release: r.Release}, nil
}

func (t *exipcTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c != nil {
		t.c.Close()
		t.c = nil
	}
	return nil
}

// ---- Unix socket --------------------------------------------------------------

// unixTransport sends the same frames (stub header + body) over Unix stream
// sockets: one call at a time per connection, from a pool of connections.
type unixTransport struct {
	path    string
	maxBody int

	mu   sync.Mutex
	idle []net.Conn
	id   uint64
}

func (t *unixTransport) Call(ctx context.Context, op uint32, body []byte) (*Reply, error) {
	t.mu.Lock()
	var conn net.Conn
	if n := len(t.idle); n > 0 {
		conn, t.idle = t.idle[n-1], t.idle[:n-1]
	}
	t.id++
	id := t.id
	t.mu.Unlock()
	if conn == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", t.path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errStoreDown, err)
		}
		conn = c
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Time{})
	}
	r, err := t.roundTrip(conn, id, op, body)
	if err != nil {
		var se *stub.Error
		if errors.As(err, &se) {
			t.put(conn)
			return nil, err
		}
		conn.Close()
		return nil, fmt.Errorf("%w: %w", errStoreDown, err)
	}
	t.put(conn)
	return r, nil
}

func (t *unixTransport) roundTrip(conn net.Conn, id uint64, op uint32, body []byte) (*Reply, error) {
	frame := make([]byte, stub.HeaderSize+len(body))
	stub.Header{Kind: stub.KindRequest, ID: id, Op: op, BodyLen: uint32(len(body))}.Put(frame)
	copy(frame[stub.HeaderSize:], body)
	if _, err := conn.Write(frame); err != nil {
		return nil, err
	}
	var h [stub.HeaderSize]byte
	if _, err := io.ReadFull(conn, h[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(h[24:])
	if int64(n) > int64(t.maxBody) {
		return nil, fmt.Errorf("reply of %d bytes", n)
	}
	buf := make([]byte, stub.HeaderSize+int(n))
	copy(buf, h[:])
	if _, err := io.ReadFull(conn, buf[stub.HeaderSize:]); err != nil {
		return nil, err
	}
	hd, rb, err := stub.Parse(buf)
	if err != nil || hd.ID != id {
		return nil, fmt.Errorf("bad reply frame")
	}
	if hd.Kind == stub.KindError {
		return nil, &stub.Error{Op: hd.Op, Status: hd.Status, Msg: string(rb)}
	}
	return &Reply{Body: rb}, nil
}

func (t *unixTransport) put(c net.Conn) {
	t.mu.Lock()
	t.idle = append(t.idle, c)
	t.mu.Unlock()
}

func (t *unixTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.idle {
		c.Close()
	}
	t.idle = nil
	return nil
}
