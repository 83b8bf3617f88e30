// Package echo is the gRPC service of the example: a unary Echo and a
// bidirectional Chat stream whose replies the client can verify (every byte
// of a reply is the request's plus one). It needs no generated code: the
// messages are raw bytes (Codec) and the service is described by hand
// (ServiceDesc), as protoc-gen-go-grpc would.
package echo

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// Msg is a message: raw bytes.
type Msg struct{ B []byte }

// Codec marshals *Msg as its bytes. Pass it with grpc.ForceServerCodec and
// grpc.ForceCodec.
type Codec struct{}

// Marshal returns m's bytes.
func (Codec) Marshal(v any) ([]byte, error) { return v.(*Msg).B, nil }

// Unmarshal copies data into m (gRPC may reuse data).
func (Codec) Unmarshal(data []byte, v any) error {
	m := v.(*Msg)
	m.B = append(m.B[:0], data...)
	return nil
}

// Name is the codec's content subtype.
func (Codec) Name() string { return "raw" }

var _ encoding.Codec = Codec{}

// Service is what the server implements.
type Service interface {
	Echo(context.Context, *Msg) (*Msg, error)
	Chat(grpc.ServerStream) error
}

// Reply is the answer to req: every byte plus one, in place.
func Reply(req []byte) []byte {
	for i := range req {
		req[i]++
	}
	return req
}

// Check reports whether reply answers req.
func Check(req, reply []byte) bool {
	if len(req) != len(reply) {
		return false
	}
	for i := range req {
		if reply[i] != req[i]+1 {
			return false
		}
	}
	return true
}

// Server is the service's implementation.
type Server struct{}

// Echo answers one request.
func (Server) Echo(_ context.Context, m *Msg) (*Msg, error) {
	m.B = Reply(m.B)
	return m, nil
}

// Chat answers every message of the stream, in order, until the client
// closes its side.
func (Server) Chat(s grpc.ServerStream) error {
	for {
		// A fresh message each time: gRPC may still hold the bytes of the
		// last one sent (the codec does not copy them).
		var m Msg
		if err := s.RecvMsg(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		m.B = Reply(m.B)
		if err := s.SendMsg(&m); err != nil {
			return err
		}
	}
}

// Method names.
const (
	EchoMethod = "/exipc.example.Echo/Echo"
	ChatMethod = "/exipc.example.Echo/Chat"
)

// ServiceDesc describes the service to grpc.Server.RegisterService.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: "exipc.example.Echo",
	HandlerType: (*Service)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(Msg)
			if err := dec(in); err != nil {
				return nil, err
			}
			if icpt == nil {
				return srv.(Service).Echo(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: EchoMethod}
			return icpt(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return srv.(Service).Echo(ctx, req.(*Msg))
			})
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Chat",
		Handler:       func(srv any, s grpc.ServerStream) error { return srv.(Service).Chat(s) },
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "echo",
}

// NewServer returns a gRPC server with the service registered.
func NewServer(opts ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodec(Codec{})}, opts...)...)
	s.RegisterService(&ServiceDesc, Server{})
	return s
}

// Call makes one Echo call.
func Call(ctx context.Context, cc *grpc.ClientConn, req, reply *Msg) error {
	return cc.Invoke(ctx, EchoMethod, req, reply, grpc.ForceCodec(Codec{}))
}

// Chat opens a Chat stream.
func Chat(ctx context.Context, cc *grpc.ClientConn) (grpc.ClientStream, error) {
	return cc.NewStream(ctx, &ServiceDesc.Streams[0], ChatMethod, grpc.ForceCodec(Codec{}))
}
