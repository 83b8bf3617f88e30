package exipc

import (
	"sync"

	"github.com/exipc/exipc/native"
)

// Inspector looks at a domain from outside, read-only: it never creates a
// file, never registers a process and never takes the domain's lock. Every
// call reads the domain anew; figures are a snapshot taken while others keep
// working. A damaged domain gives ErrCorrupt, never a crash or a hang.
// Create it with Inspect; it is safe for use by one goroutine at a time.
type Inspector struct {
	mu   sync.Mutex
	in   native.Inspector
	name string
	info InspectInfo
}

// InspectInfo is a domain's shape and its cumulative counters.
type InspectInfo struct {
	TotalSize      uint64 // bytes of the segment
	ArenaSize      uint64 // bytes of heap arena
	MaxProcs       uint32 // process slots
	MaxChans       uint32 // channels (and services)
	RingCapacity   uint32 // handles per ring
	MaxBlock       uint32 // largest block
	CreatorUID     uint32 // user that created the domain, as its header records
	LayoutVersion  uint32 // layout version of the segment
	ReapedProcs    uint64 // dead processes cleaned so far
	ReapTakeovers  uint64 // reaps taken over from a reaper that died
	ReapStragglers uint64 // blocks reapers found in flight in no ring
	LockRepairs    uint64 // times a locker found the lock's holder dead
	Allocs         uint64 // blocks allocated so far (derived from block generations)
	Frees          uint64 // blocks freed so far (the same)
}

// Process slot states (ProcInfo.State).
const (
	ProcAlive   = native.ProcAlive   // registered and alive
	ProcDead    = native.ProcDead    // registered, its process gone: to be reaped
	ProcReaping = native.ProcReaping // being cleaned by a reaper
)

// ProcInfo is one process slot in use.
type ProcInfo struct {
	Slot, State, Gen uint32 // slot index, ProcAlive/ProcDead/ProcReaping, registration generation
	Pid              int32  // as the process recorded it (its pid namespace)
	Chans            uint32 // channel ends it holds open
	Services         uint32 // services it listens on
	BlocksOwned      uint64 // heap blocks it owns
	BlocksCached     uint64 // free blocks kept in its local cache
	Doorbell         uint64 // times its doorbell was rung
}

// ServiceInfo is one listening service.
type ServiceInfo struct {
	Index, OwnerSlot uint32 // table index; slot of the listening process
	OwnerPid         int32  // pid of the listening process
	Pending          uint32 // channels connected, not accepted yet
	Name             string
}

// ChanEndInfo is one end of a channel.
type ChanEndInfo struct {
	Slot         uint32 // process slot (0xffffffff: none yet)
	Pid          int32  // 0: none
	Closed       bool   // closed, or its process reaped
	Alive        bool   // its process is alive
	Sent         uint64 // handles this end sent
	Received     uint64 // handles this end received
	FullRefusals uint64 // sends refused because the ring was full
	Wakeups      uint64 // wake-ups it issued to its parked peer
}

// Channel states (ChanInfo.State).
const (
	ChanPending = native.ChanPending // connected, not accepted yet
	ChanBound   = native.ChanBound   // accepted
)

// ChanInfo is one channel in use. End[0] is the client (Connect), End[1]
// the server (Accept); Queued[0] counts handles queued client to server,
// Queued[1] server to client.
type ChanInfo struct {
	Index, State, ServiceIndex, RingCapacity uint32
	Service                                  string // service it was connected to ("" if gone)
	Queued                                   [2]uint64
	End                                      [2]ChanEndInfo
}

// Inspect opens the domain NAME read-only. An absent domain gives an error
// matching fs.ErrNotExist, one that may not be read fs.ErrPermission, a file
// that is not a domain ErrCorrupt, another layout ErrIncompatible.
func Inspect(name string) (*Inspector, error) {
	in, rc := native.InspectOpen(name)
	if err := native.Wrap("inspect", name, rc, nil, nil); err != nil {
		return nil, err
	}
	i := &Inspector{in: in, name: name}
	info, rc := in.Info()
	if err := native.Wrap("inspect", name, rc, nil, nil); err != nil {
		in.Close()
		return nil, err
	}
	i.info = InspectInfo(info)
	return i, nil
}

// ReapDomain cleans up after every dead process of the domain NAME without
// joining it (so it works when dead processes fill every slot, and never
// creates a domain), and returns how many it cleaned.
func ReapDomain(name string) (int, error) {
	rc := native.InspectReap(name)
	if err := native.Wrap("reap", name, rc, nil, nil); err != nil {
		return 0, err
	}
	return rc, nil
}

// do runs f on the open inspector, or returns ErrClosed.
func (i *Inspector) do(op string, f func() int) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.in == (native.Inspector{}) {
		return native.WrapErr(op, i.name, ErrClosed)
	}
	return native.Wrap(op, i.name, f(), nil, nil)
}

// Close releases the inspector. Closing twice is a no-op.
func (i *Inspector) Close() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.in != (native.Inspector{}) {
		i.in.Close()
		i.in = native.Inspector{}
	}
	return nil
}

// Name returns the domain's name.
func (i *Inspector) Name() string { return i.name }

// Info returns the domain's shape and cumulative counters.
func (i *Inspector) Info() (InspectInfo, error) {
	var info native.InspectInfo
	err := i.do("inspect info", func() (rc int) { info, rc = i.in.Info(); return })
	return InspectInfo(info), err
}

// Stat returns the domain-wide counters, as Domain.Stat does for a member.
func (i *Inspector) Stat() (Stat, error) {
	var st native.Stat
	err := i.do("inspect stat", func() (rc int) { st, rc = i.in.Stat(); return })
	return Stat(st), err
}

// Procs returns the process slots in use, in slot order.
func (i *Inspector) Procs() ([]ProcInfo, error) {
	var ps []native.ProcInfo
	err := i.do("inspect procs", func() (rc int) { ps, rc = i.in.Procs(i.info.MaxProcs); return })
	out := make([]ProcInfo, len(ps))
	for k, p := range ps {
		out[k] = ProcInfo(p)
	}
	return out, err
}

// Services returns the listening services, in table order.
func (i *Inspector) Services() ([]ServiceInfo, error) {
	var ss []native.ServiceInfo
	err := i.do("inspect services", func() (rc int) { ss, rc = i.in.Services(i.info.MaxChans); return })
	out := make([]ServiceInfo, len(ss))
	for k, s := range ss {
		out[k] = ServiceInfo(s)
	}
	return out, err
}

// Chans returns the channels in use, in table order.
func (i *Inspector) Chans() ([]ChanInfo, error) {
	var cs []native.ChanInfo
	err := i.do("inspect chans", func() (rc int) { cs, rc = i.in.Chans(i.info.MaxChans); return })
	out := make([]ChanInfo, len(cs))
	for k, c := range cs {
		out[k] = ChanInfo{c.Index, c.State, c.ServiceIndex, c.RingCapacity, c.Service, c.Queued,
			[2]ChanEndInfo{ChanEndInfo(c.End[0]), ChanEndInfo(c.End[1])}}
	}
	return out, err
}

// Heap returns the heap's figures, by size class.
func (i *Inspector) Heap() (HeapStat, error) {
	var h native.HeapStat
	err := i.do("inspect heap", func() (rc int) { h, rc = i.in.Heap(); return })
	return heapStat(h), err
}
