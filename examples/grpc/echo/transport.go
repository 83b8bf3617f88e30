package echo

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/conn"
)

// Listen listens on network "exipc" (addr DOMAIN/SERVICE: the domain is
// created if need be), "unix" (a socket path) or "tcp" (host:port). The
// returned function releases what Listen opened besides the listener (for
// exipc: it closes the domain and removes its name).
func Listen(network, addr string) (net.Listener, func(), error) {
	if network != "exipc" {
		l, err := net.Listen(network, addr)
		return l, func() {}, err
	}
	d, svc, err := openDomain(addr)
	if err != nil {
		return nil, nil, err
	}
	l, err := conn.Listen(d, svc)
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	return l, func() { d.Close(); exipc.Unlink(d.Name()) }, nil
}

// Dialer returns a dial function for grpc.WithContextDialer (or an
// http.Transport's DialContext) that reaches addr over network, and the
// function that releases what it opened.
func Dialer(network, addr string) (func(context.Context, string) (net.Conn, error), func(), error) {
	if network != "exipc" {
		var nd net.Dialer
		return func(ctx context.Context, _ string) (net.Conn, error) {
			return nd.DialContext(ctx, network, addr)
		}, func() {}, nil
	}
	d, svc, err := openDomain(addr)
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context, _ string) (net.Conn, error) {
		return conn.Dial(ctx, d, svc)
	}, func() { d.Close() }, nil
}

func openDomain(addr string) (*exipc.Domain, string, error) {
	name, svc, ok := strings.Cut(addr, "/")
	if !ok {
		return nil, "", fmt.Errorf("exipc address %q: want DOMAIN/SERVICE", addr)
	}
	d, err := exipc.Open(name, nil)
	return d, svc, err
}
