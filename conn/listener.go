package conn

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/exipc/exipc"
)

// Listener is a net.Listener on a service of an exipc domain.
type Listener struct {
	d      *exipc.Domain
	l      *exipc.Listener
	addr   Addr
	ctx    context.Context // done once Close is called
	cancel context.CancelFunc
	once   sync.Once
}

// Listen listens on SERVICE of the domain d and returns a net.Listener
// whose Accept gives *Conn values. Its Addr is DOMAIN/SERVICE, network
// "exipc". A service a live process listens on already gives an error
// matching exipc.ErrServiceExists.
func Listen(d *exipc.Domain, service string) (net.Listener, error) {
	l, err := d.Listen(service)
	if err != nil {
		return nil, err
	}
	ln := &Listener{d: d, l: l, addr: Addr{Domain: d.Name(), Service: service}}
	ln.ctx, ln.cancel = context.WithCancel(context.Background())
	return ln, nil
}

// Accept waits for the next client and returns its Conn. After Close it
// returns an error matching net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	ch, err := l.l.Accept(l.ctx)
	if err != nil {
		if l.ctx.Err() != nil || errors.Is(err, exipc.ErrClosed) {
			err = net.ErrClosed
		}
		return nil, &net.OpError{Op: "accept", Net: "exipc", Addr: l.addr, Err: err}
	}
	return newConn(l.d, ch, l.addr), nil
}

// Close stops listening and unblocks a pending Accept. Conns accepted
// stay open; clients connected but not accepted see their peer gone.
func (l *Listener) Close() error {
	first := false
	l.once.Do(func() { first = true })
	if !first {
		return &net.OpError{Op: "close", Net: "exipc", Addr: l.addr, Err: net.ErrClosed}
	}
	l.cancel()
	return l.l.Close()
}

// Addr returns DOMAIN/SERVICE.
func (l *Listener) Addr() net.Addr { return l.addr }

// Dial connects to SERVICE of the domain d and returns the client's Conn.
// If nobody listens on SERVICE it waits for the service until ctx is done,
// then returns an error matching exipc.ErrNoService. It does not wait for
// the server to accept (the service's queue of clients is its backlog).
func Dial(ctx context.Context, d *exipc.Domain, service string) (net.Conn, error) {
	ch, err := d.Connect(ctx, service)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "exipc", Addr: Addr{d.Name(), service}, Err: err}
	}
	return newConn(d, ch, Addr{Domain: d.Name(), Service: service}), nil
}
