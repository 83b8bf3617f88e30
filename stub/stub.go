// Package stub is a request/response layer over exipc channels: Exchange 2000's
// protocol stubs (expop in the store, drviis in the front end), in Go.
//
// Every message is one heap block: a 32-byte little-endian header, then the
// body in the same block. A client writes its request in place in the shared
// heap and sends the block's handle; the server reads the body in place,
// builds its reply in a new block and sends that handle back; the client
// reads the reply body in place (Reply.Body) and releases it. The body is
// never copied through the kernel.
//
// Many calls may be in flight on one channel at once (pipelining): each
// request carries a correlation id that its reply echoes, and replies may
// come back in any order. A call waits until its context is done; a reply
// that comes after that is dropped. An error reply comes back as an *Error
// carrying the server's status code and message.
//
// The wire format is the C core's (exipc_stub_* in native/exipc.h): a Go
// client can call a C server and a C client a Go server.
package stub

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire constants (the same as EXIPC_STUB_* in exipc.h).
const (
	Magic      uint32 = 0x62747378 // "xstb" as little-endian bytes
	Version    uint16 = 1
	HeaderSize        = 32
)

// Kind says what a message is.
type Kind uint8

// The kinds of message.
const (
	KindRequest  Kind = 1
	KindResponse Kind = 2
	KindError    Kind = 3
)

// Status codes below zero belong to the stub layer (negative errno values,
// as in C); codes above zero belong to the service.
const (
	StatusOK        int32 = 0
	StatusNoMemory  int32 = -12 // -ENOMEM: no heap block for the reply
	StatusNoHandler int32 = -38 // -ENOSYS: no handler registered for the op
	StatusMalformed int32 = -71 // -EPROTO: the request failed the header checks
	StatusInternal  int32 = -5  // -EIO: the handler failed with a plain error
)

// ErrMalformed: a block is shorter than a header, or its magic, version, kind
// or body length is wrong.
var ErrMalformed = errors.New("stub: malformed message")

// Header is the decoded message header.
type Header struct {
	Kind    Kind
	ID      uint64 // correlation id: chosen by the client, echoed by the server
	Op      uint32 // method
	Status  int32  // 0, or an error reply's code
	BodyLen uint32 // bytes of body after the header
}

// Put encodes h into the first HeaderSize bytes of b (magic and version
// included). b must be at least HeaderSize long.
func (h Header) Put(b []byte) {
	_ = b[HeaderSize-1]
	binary.LittleEndian.PutUint32(b[0:], Magic)
	binary.LittleEndian.PutUint16(b[4:], Version)
	b[6] = byte(h.Kind)
	b[7] = 0
	binary.LittleEndian.PutUint64(b[8:], h.ID)
	binary.LittleEndian.PutUint32(b[16:], h.Op)
	binary.LittleEndian.PutUint32(b[20:], uint32(h.Status))
	binary.LittleEndian.PutUint32(b[24:], h.BodyLen)
	binary.LittleEndian.PutUint32(b[28:], 0)
}

// Parse decodes the message in block b and returns its header and body (a
// subslice of b). It checks everything a hostile peer could get wrong:
// length, magic, version, kind, and a body length within the block.
func Parse(b []byte) (Header, []byte, error) {
	if len(b) < HeaderSize {
		return Header{}, nil, ErrMalformed
	}
	if binary.LittleEndian.Uint32(b[0:]) != Magic || binary.LittleEndian.Uint16(b[4:]) != Version {
		return Header{}, nil, ErrMalformed
	}
	h := Header{
		Kind:    Kind(b[6]),
		ID:      binary.LittleEndian.Uint64(b[8:]),
		Op:      binary.LittleEndian.Uint32(b[16:]),
		Status:  int32(binary.LittleEndian.Uint32(b[20:])),
		BodyLen: binary.LittleEndian.Uint32(b[24:]),
	}
	if h.Kind < KindRequest || h.Kind > KindError || uint64(h.BodyLen) > uint64(len(b)-HeaderSize) {
		return Header{}, nil, ErrMalformed
	}
	return h, b[HeaderSize : HeaderSize+int(h.BodyLen)], nil
}

// Error is an error reply: the server's status code and message. Match it
// with errors.As.
type Error struct {
	Op     uint32
	Status int32
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("stub: op %d: status %d: %s", e.Op, e.Status, e.Msg)
}

// Errorf returns an *Error with the given status, for a handler to return.
func Errorf(status int32, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}
