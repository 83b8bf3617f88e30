// Package exipc is shared-memory interprocess communication for Linux.
//
// Processes that open the same Domain map one POSIX shared-memory segment
// (/dev/shm/exipc.NAME) holding a heap (a pool of pages, cut into slabs of
// size classes and large blocks) and pairs of lock-free handle
// rings. A sender allocates a block of the shared heap, writes its message
// into it in place and sends only the block's 64-bit Handle on a Chan; the
// receiver gets the Handle and reads the same block in place. Nothing is
// copied and, in steady state, Send, Recv, TryRecv, Alloc, Bytes and Free
// make no Go heap allocation.
//
// A process Listens on a named service and Accepts channels; another
// Connects to the service. Each Chan is a bound pair of rings, one per
// direction. When a peer closes its end or dies, the survivor still receives
// everything that was sent, then ErrPeerDead (like EOF on a socket). Dead
// processes are cleaned up by Reap: their blocks, channels and services are
// released.
//
// # Ownership
//
// A block belongs to the process that allocated or received it. Sending a
// Handle gives the block to the receiver: the sender must not touch or free
// it afterwards. A Handle that Send refuses (ErrQueueFull, ErrPeerDead) still
// belongs to the sender. The []byte returned by Alloc and Bytes is the block
// itself, in shared memory; it must not be used after the block was sent or
// freed, nor after the Domain was closed (the memory is then unmapped).
//
// # Errors
//
// Errors are sentinels (ErrQueueFull, ErrPeerDead, ErrNoService, ...) matched
// with errors.Is, usually wrapped in an *Error naming the operation and the
// domain or service: `exipc: connect "pop3": service does not exist`. On the
// hot paths Send returns the bare ErrQueueFull and TryRecv the bare ErrEmpty,
// so that spinning on them costs no allocation. A wait that runs out of
// context returns an error matching ctx.Err().
//
// # Concurrency
//
// Domain, Listener and Chan are safe for concurrent use. Several goroutines
// may send on one Chan (they take turns) while others receive. Close waits
// for calls in flight; a blocked Recv or Accept notices it within 5 ms. Every
// call on a closed Domain, Listener or Chan returns ErrClosed, and closing a
// Domain closes every Listener and Chan still open on it.
//
// exipc needs cgo: the C core in the native directory is compiled with the
// package.
package exipc
