package exipc

import (
	"fmt"

	"github.com/exipc/exipc/native"
)

// Bounds of Options, as the C core checks them (native/exipc.h).
const (
	minArena    = 64 << 10
	maxArena    = 64 << 30
	maxProcs    = 1024
	maxChans    = 65536
	maxRing     = 65536
	minMaxBlock = 64
	maxMaxBlock = 1 << 31
	pageSize    = 4096
)

// checkOptions says which option is invalid and why, as an error matching
// ErrInvalid, or returns nil (the C core checks them again).
func checkOptions(name string, o *Options) error {
	if o == nil {
		return nil
	}
	bad := func(format string, a ...any) error {
		return native.WrapErr("open", name, fmt.Errorf("invalid options: "+format+": %w", append(a, ErrInvalid)...))
	}
	arena := o.Size
	if arena == 0 {
		arena = 32 << 20
	}
	arena = (arena + pageSize - 1) / pageSize * pageSize
	switch {
	case o.Size != 0 && (arena < minArena || arena > maxArena):
		return bad("Size %d is outside %d..%d bytes", o.Size, minArena, uint64(maxArena))
	case o.MaxProcs > maxProcs:
		return bad("MaxProcs %d is above %d", o.MaxProcs, maxProcs)
	case o.MaxChans > maxChans:
		return bad("MaxChans %d is above %d", o.MaxChans, maxChans)
	case o.RingCapacity != 0 && (o.RingCapacity < 2 || o.RingCapacity > maxRing || o.RingCapacity&(o.RingCapacity-1) != 0):
		return bad("RingCapacity %d is not a power of two in 2..%d", o.RingCapacity, maxRing)
	case o.MaxBlock != 0 && o.MaxBlock < minMaxBlock:
		return bad("MaxBlock %d is below the smallest block, %d bytes", o.MaxBlock, minMaxBlock)
	case o.MaxBlock != 0 && uint64(o.MaxBlock) > arena:
		return bad("MaxBlock %d is above the arena (Size, %d bytes): no block can be larger than the heap", o.MaxBlock, arena)
	case uint64(o.MaxBlock) > maxMaxBlock:
		return bad("MaxBlock %d is above %d", o.MaxBlock, uint64(maxMaxBlock))
	case o.Mode != 0 && (o.Mode&^0o666 != 0 || o.Mode&0o600 != 0o600):
		return bad("Mode %#o must give the owner read and write and hold only read/write bits (like 0600, 0660, 0666)", o.Mode)
	case o.WaitPolicy > WaitPark:
		return bad("WaitPolicy %d is not WaitAdaptive, WaitSpin or WaitPark", o.WaitPolicy)
	}
	return nil
}
