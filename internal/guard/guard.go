// Package guard keeps a C object of the core alive while Go calls use it,
// and slices context-driven waits so that a Close or a cancelled context is
// noticed promptly. The ring, heap and bind layers share it.
package guard

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exipc/exipc/native"
)

// Guard keeps a C object alive while Go calls use it. Every operation runs
// between Enter and Leave; Shut marks the object closed, waits for the
// operations in flight and frees it once. A C pointer is therefore never
// passed to C after it was freed, whatever goroutines do.
//
// Enter and Leave are an uncontended RWMutex read lock (two atomic adds) and
// never allocate. Blocking operations must poll Closed between wait slices
// (at most MaxSlice apart) so that Shut does not wait long.
type Guard struct {
	mu     sync.RWMutex
	closed atomic.Bool
	freed  bool // under mu (write)
}

// Enter begins an operation. It returns false, and the operation must fail
// with ErrClosed, if the object is closed.
func (g *Guard) Enter() bool {
	g.mu.RLock()
	if g.closed.Load() {
		g.mu.RUnlock()
		return false
	}
	return true
}

// Leave ends an operation begun by a successful Enter.
func (g *Guard) Leave() { g.mu.RUnlock() }

// Closed reports whether Shut has been called. Blocking operations check it
// between wait slices.
func (g *Guard) Closed() bool { return g.closed.Load() }

// Mark marks the object closed without waiting: new operations fail, and
// blocking ones give up at their next slice. Shut must follow.
func (g *Guard) Mark() { g.closed.Store(true) }

// Shut marks the object closed, waits until no operation is in flight and,
// if nobody did so before, runs release (which frees the C object). It
// reports whether this call was the one that marked the object closed.
// Several Shut calls may race: exactly one runs release, and every one of
// them returns only after release has finished.
func (g *Guard) Shut(release func()) (first bool) {
	first = !g.closed.Swap(true)
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.freed {
		g.freed = true
		release()
	}
	return first
}

// MaxSlice is the longest single wait handed to C by a context-driven wait.
// Between slices the Go side checks the context and the closed flag, so a
// cancelled context or a Close is noticed within MaxSlice.
const MaxSlice = 5 * time.Millisecond

// Slice returns the timeout in nanoseconds for the next C wait under ctx:
// the time left to ctx's deadline, at most MaxSlice. When ctx is done it
// returns ctx's error instead (context.DeadlineExceeded once the deadline
// has passed, even if ctx's timer has not fired yet). It does not allocate.
func Slice(ctx context.Context) (int64, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	default:
	}
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return 0, native.CtxErr(ctx)
		}
		if left < MaxSlice {
			return int64(left), nil
		}
	}
	return int64(MaxSlice), nil
}
