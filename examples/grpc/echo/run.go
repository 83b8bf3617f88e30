package echo

import (
	"context"
	"fmt"
	"math/rand"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// NewClient returns a client connection to the echo server at addr over
// network (exipc, unix or tcp) and the function that closes it.
func NewClient(network, addr string) (*grpc.ClientConn, func(), error) {
	dial, release, err := Dialer(network, addr)
	if err != nil {
		return nil, nil, err
	}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithContextDialer(dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		release()
		return nil, nil, err
	}
	return cc, func() { cc.Close(); release() }, nil
}

// Run makes calls verified unary calls, then sends stream verified
// messages on one Chat stream (reading the replies as they come), each of
// size bytes of random content.
func Run(ctx context.Context, network, addr string, calls, stream, size int) error {
	cc, closeCC, err := NewClient(network, addr)
	if err != nil {
		return err
	}
	defer closeCC()
	r := rand.New(rand.NewSource(1))
	req, reply := &Msg{B: make([]byte, size)}, &Msg{}
	for i := 0; i < calls; i++ {
		r.Read(req.B)
		if err := Call(ctx, cc, req, reply); err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		if !Check(req.B, reply.B) {
			return fmt.Errorf("call %d: wrong reply", i)
		}
	}
	if stream == 0 {
		return nil
	}
	s, err := Chat(ctx, cc)
	if err != nil {
		return err
	}
	sent := make(chan []byte, 256)
	errc := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewSource(2))
		for i := 0; i < stream; i++ {
			b := make([]byte, size)
			r.Read(b)
			sent <- b
			if err := s.SendMsg(&Msg{B: b}); err != nil {
				errc <- fmt.Errorf("stream send %d: %w", i, err)
				return
			}
		}
		errc <- s.CloseSend()
	}()
	var m Msg
	for i := 0; i < stream; i++ {
		if err := s.RecvMsg(&m); err != nil {
			return fmt.Errorf("stream reply %d: %w", i, err)
		}
		if want := <-sent; !Check(want, m.B) {
			return fmt.Errorf("stream reply %d: wrong", i)
		}
	}
	if err := <-errc; err != nil {
		return err
	}
	return nil
}
