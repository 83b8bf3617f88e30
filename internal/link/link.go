// Package link hands the Go layers the parts of each other that they must
// not export to users: the binding layer creates channel ends (ring) and
// the heap view (heap) of a domain, closes them with it, and polls them.
// ring and heap fill in these functions when they are initialised; bind,
// which imports both, calls them.
package link

import (
	"github.com/exipc/exipc/internal/guard"
	"github.com/exipc/exipc/internal/poll"
	"github.com/exipc/exipc/native"
)

// EndCtl is the binding layer's handle on a channel end (*ring.End).
type EndCtl interface {
	// Arm asks for the poller's signal when the end has something to
	// receive; it reports whether that is so already.
	Arm() (bool, error)
	// Mark marks the end closed without waiting (Shut must follow).
	Mark()
	// Shut closes the end, storing the C result in *rc if this call freed
	// it, and reports whether this call was the first to close it.
	Shut(rc *int) bool
	// Waiter is the end's place in the domain's poller.
	Waiter() *poll.Waiter
}

var (
	// NewEnd wraps an open C channel bound to service; p is its domain's
	// poller, onClose (may be nil) runs once after the C channel is closed.
	// end is a *ring.End.
	NewEnd func(c native.Chan, service string, p *poll.Poller, onClose func(EndCtl)) (end any, ctl EndCtl)
	// CtlOf returns the EndCtl of a *ring.End.
	CtlOf func(end any) EndCtl
	// NewHeap returns the *heap.Heap of domain d, whose life g guards.
	NewHeap func(g *guard.Guard, d native.Domain, name string) any
)
