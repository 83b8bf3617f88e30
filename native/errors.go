package native

import (
	"context"
	"strconv"
	"syscall"
)

// This file is the one place where exipc's sentinel errors live. Package
// exipc re-exports the same values, so errors.Is matches whichever package a
// caller names.

// sentinel is the type of the exported error values. Its Error text starts
// with "exipc: "; inside a wrapped *Error only the short text is used, so a
// wrapped error reads `exipc: connect "pop3": service does not exist`.
type sentinel struct {
	full  string // "exipc: " + short
	short string
}

// Error returns "exipc: " and the short text.
func (e *sentinel) Error() string { return e.full }

func newSentinel(short string) error {
	return &sentinel{full: "exipc: " + short, short: short}
}

// fromC is a sentinel whose text is the C core's for errno (exipc_strerror):
// one table of texts for C and Go.
// Errno maps that code to it.
func fromC(errno syscall.Errno) error {
	e := newSentinel(Strerror(-int(errno)))
	byErrno[errno] = e
	return e
}

// byErrno: the sentinel of every C error code that has one of its own.
var byErrno = map[syscall.Errno]error{}

// The sentinel errors. Match them with errors.Is. Those that stand for one C
// error code take its text from the C core; the others mean something only
// Go distinguishes (-EAGAIN as a full ring or as nothing to receive, -ENOENT
// from connect, a closed Go object).
var (
	// ErrQueueFull: the ring towards the peer holds ring_capacity handles
	// (-EAGAIN from a send). The refused handle still belongs to the sender.
	ErrQueueFull = newSentinel("queue full")
	// ErrEmpty: nothing to receive or accept and the call may not block
	// (-EAGAIN from a receive or accept with timeout 0).
	ErrEmpty = newSentinel("nothing to receive")
	// ErrNoService: no process listens on the service (-ENOENT from connect).
	ErrNoService = newSentinel("service does not exist")
	// ErrClosed: the Domain, Listener or Chan was closed on the Go side.
	ErrClosed = newSentinel("use of closed object")

	// ErrPeerDead: the other end closed or died and everything it sent has
	// been received (-EPIPE).
	ErrPeerDead = fromC(syscall.EPIPE)
	// ErrHeapFull: no free block of the asked size now (-ENOMEM).
	ErrHeapFull = fromC(syscall.ENOMEM)
	// ErrTooLarge: larger than any block the domain can ever give
	// (-EMSGSIZE).
	ErrTooLarge = fromC(syscall.EMSGSIZE)
	// ErrBadHandle: the handle is stale, freed, forged, in flight or out of
	// range (-EBADMSG).
	ErrBadHandle = fromC(syscall.EBADMSG)
	// ErrCorrupt: shared state or a message failed a check (-EPROTO).
	ErrCorrupt = fromC(syscall.EPROTO)
	// ErrServiceExists: the service is taken by a live process (-EEXIST).
	ErrServiceExists = fromC(syscall.EEXIST)
	// ErrIncompatible: the segment has another layout version or cache-line
	// size (-ENOTSUP).
	ErrIncompatible = fromC(syscall.ENOTSUP)
	// ErrInvalid: a bad argument — name, size or options (-EINVAL).
	ErrInvalid = fromC(syscall.EINVAL)
	// ErrLimit: a table of the domain (processes, services, channels) is
	// full (-EMFILE).
	ErrLimit = fromC(syscall.EMFILE)
	// ErrForked: a forked child used its parent's domain (-EBADF).
	ErrForked = fromC(syscall.EBADF)
	// ErrDomainGone: the domain was unlinked while this process was
	// attached (-EIDRM): reopen it by name.
	ErrDomainGone = fromC(syscall.EIDRM)
)

// Errno converts a negative errno returned by the C core into the matching
// sentinel, or into a syscall.Errno for the others (so errors.Is(err,
// fs.ErrPermission) works for EACCES). eagain is what -EAGAIN means for the
// call (ErrQueueFull for a send, ErrEmpty for a receive or accept) and
// noent what -ENOENT means (ErrNoService for connect; nil means the plain
// errno, which matches fs.ErrNotExist). rc >= 0 gives nil.
func Errno(rc int, eagain, noent error) error {
	if rc >= 0 {
		return nil
	}
	e := syscall.Errno(-rc)
	switch {
	case e == syscall.EAGAIN && eagain != nil:
		return eagain
	case e == syscall.ENOENT && noent != nil:
		return noent
	}
	if s, ok := byErrno[e]; ok {
		return s
	}
	return syscall.Errno(-rc)
}

// Error is an exipc failure wrapped with the operation and the name it
// concerned. Unwrap returns the sentinel (or syscall.Errno), so errors.Is
// matches it.
type Error struct {
	Op   string // "open", "connect", "send", ...
	Name string // domain or service name; may be empty
	Err  error  // a sentinel, a syscall.Errno, or a *Timeout
}

// Error formats the error as `exipc: OP "NAME": reason`.
func (e *Error) Error() string {
	s := "exipc: " + e.Op
	if e.Name != "" {
		s += " " + strconv.Quote(e.Name)
	}
	return s + ": " + shortText(e.Err)
}

// Unwrap returns the underlying sentinel or errno.
func (e *Error) Unwrap() error { return e.Err }

func shortText(err error) string {
	if s, ok := err.(*sentinel); ok {
		return s.short
	}
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Timeout is the cause of a wait that ran out of context while the awaited
// thing was missing: it matches both Cause (e.g. ErrNoService) and Ctx
// (context.DeadlineExceeded or context.Canceled).
type Timeout struct {
	Cause error
	Ctx   error
}

// Error describes both causes.
func (e *Timeout) Error() string { return shortText(e.Cause) + " (" + e.Ctx.Error() + ")" }

// Unwrap returns both causes, for errors.Is.
func (e *Timeout) Unwrap() []error { return []error{e.Cause, e.Ctx} }

// Wrap returns nil for rc >= 0, else an *Error for OP and NAME whose cause is
// Errno(rc, eagain, noent).
func Wrap(op, name string, rc int, eagain, noent error) error {
	if rc >= 0 {
		return nil
	}
	return &Error{Op: op, Name: name, Err: Errno(rc, eagain, noent)}
}

// WrapErr wraps an existing cause (a sentinel or ctx error) with OP and NAME.
func WrapErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Name: name, Err: err}
}

// CtxErr returns ctx.Err(), or context.DeadlineExceeded when the deadline
// has passed but the context's timer has not fired yet.
func CtxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// IsWaitAgain reports whether rc from a sliced wait means "nothing yet,
// wait another slice" (-ETIMEDOUT, or -EAGAIN from a zero slice).
func IsWaitAgain(rc int) bool {
	return rc == -int(syscall.ETIMEDOUT) || rc == -int(syscall.EAGAIN)
}

// IsNoEnt reports whether rc is -ENOENT.
func IsNoEnt(rc int) bool { return rc == -int(syscall.ENOENT) }

// IsAgain reports whether rc is -EAGAIN.
func IsAgain(rc int) bool { return rc == -int(syscall.EAGAIN) }
