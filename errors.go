package exipc

import "github.com/exipc/exipc/native"

// The errors of exipc, matched with errors.Is. They are the same values as
// those of package native, where they are defined.
var (
	// ErrQueueFull: the ring towards the peer is full (Send, SendBatch). The
	// refused handles still belong to the sender.
	ErrQueueFull = native.ErrQueueFull
	// ErrEmpty: nothing to receive (TryRecv) or to accept (TryAccept).
	ErrEmpty = native.ErrEmpty
	// ErrPeerDead: the peer closed its end or died, and everything it sent
	// has been received.
	ErrPeerDead = native.ErrPeerDead
	// ErrHeapFull: no free block of the asked size now; the same size can
	// succeed once blocks are freed.
	ErrHeapFull = native.ErrHeapFull
	// ErrTooLarge: larger than any block this domain can ever give; the
	// error names the size asked and the limit.
	ErrTooLarge = native.ErrTooLarge
	// ErrDomainGone: the domain was unlinked while this process was
	// attached; reopen it by name (a restarted server may have created it
	// anew).
	ErrDomainGone = native.ErrDomainGone
	// ErrBadHandle: the handle is zero, forged, stale, freed, in flight or
	// not owned by this process.
	ErrBadHandle = native.ErrBadHandle
	// ErrCorrupt: shared state failed a check; another process wrote
	// garbage into the domain.
	ErrCorrupt = native.ErrCorrupt
	// ErrNoService: no process listens on the service.
	ErrNoService = native.ErrNoService
	// ErrServiceExists: a live process already listens on the service.
	ErrServiceExists = native.ErrServiceExists
	// ErrIncompatible: the domain was built with another layout version or
	// cache-line size.
	ErrIncompatible = native.ErrIncompatible
	// ErrInvalid: a bad argument (name, size or options).
	ErrInvalid = native.ErrInvalid
	// ErrClosed: the Domain, Listener or Chan is closed.
	ErrClosed = native.ErrClosed
	// ErrLimit: a table of the domain (processes, services, channels) is
	// full.
	ErrLimit = native.ErrLimit
	// ErrForked: a forked child used a domain its parent opened.
	ErrForked = native.ErrForked
)

// Error is the type of most errors exipc returns: the operation, the domain
// or service name, and the cause (a sentinel above, a syscall.Errno, or a
// context error). errors.Is sees through it.
type Error = native.Error
