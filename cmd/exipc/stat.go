package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/exipc/exipc"
)

// ---- ls -------------------------------------------------------------------

type lsEntry struct {
	fileInfo
	ProcsAlive int    `json:"procs_alive"`
	Procs      int    `json:"procs"` // slots in use, dead ones included
	Ok         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
}

func cmdLs(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	names, err := listNames()
	if err != nil {
		return fmt.Errorf("reading %s: %w", shmDir, err)
	}
	list := make([]lsEntry, 0, len(names))
	for _, n := range names {
		e := lsEntry{}
		fi, err := statFile(n)
		if err != nil {
			continue // gone since the listing
		}
		e.fileInfo = fi
		if s, err := snapshotRaw(n); err != nil {
			e.Error = cause(err)
		} else {
			e.Ok = true
			e.ProcsAlive = int(s.Stat.ProcsAlive)
			e.Procs = len(s.Procs)
		}
		list = append(list, e)
	}
	if *asJSON {
		return writeJSON(out, list)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tBYTES\tMODE\tOWNER\tPROCS\tSTATUS")
	for _, e := range list {
		status, procs := "ok", fmt.Sprintf("%d", e.ProcsAlive)
		if !e.Ok {
			status, procs = e.Error, "-"
		} else if e.Procs > e.ProcsAlive {
			status = fmt.Sprintf("ok, %d dead (exipc reap %s)", e.Procs-e.ProcsAlive, e.Name)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", e.Name, e.Bytes, e.Mode, e.Owner, procs, status)
	}
	return tw.Flush()
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ---- stat -------------------------------------------------------------------

type statJSON struct {
	Name        string        `json:"name"`
	Path        string        `json:"path"`
	Bytes       int64         `json:"bytes"`
	Mode        string        `json:"mode"`
	UID         uint32        `json:"uid"`
	Owner       string        `json:"owner"`
	Layout      layoutJSON    `json:"layout"`
	Stat        statFields    `json:"stat"`
	Counters    countersJSON  `json:"counters"`
	Procs       []procJSON    `json:"procs"`
	ServiceList []serviceJSON `json:"service_list"`
	Chans       []chanJSON    `json:"chans"`
	Heap        heapJSON      `json:"heap"`
}

type layoutJSON struct {
	Version      uint32 `json:"version"`
	ArenaBytes   uint64 `json:"arena_bytes"`
	MaxProcs     uint32 `json:"max_procs"`
	MaxChans     uint32 `json:"max_chans"`
	RingCapacity uint32 `json:"ring_capacity"`
	MaxBlock     uint32 `json:"max_block"`
	CreatorUID   uint32 `json:"creator_uid"`
}

// statFields: struct exipc_stat by its C names.
type statFields struct {
	ProcsAlive     uint32 `json:"procs_alive"`
	ChansBound     uint32 `json:"chans_bound"`
	Services       uint32 `json:"services"`
	HeapBytesTotal uint64 `json:"heap_bytes_total"`
	HeapBytesUsed  uint64 `json:"heap_bytes_used"`
	HeapBlocksUsed uint64 `json:"heap_blocks_used"`
	ReapedProcs    uint64 `json:"reaped_procs"`
}

type countersJSON struct {
	ReapedProcs    uint64 `json:"reaped_procs"`
	ReapTakeovers  uint64 `json:"reap_takeovers"`
	ReapStragglers uint64 `json:"reap_stragglers"`
	LockRepairs    uint64 `json:"lock_repairs"`
	Allocs         uint64 `json:"allocs"`
	Frees          uint64 `json:"frees"`
	Wakeups        uint64 `json:"wakeups"`   // sum over channel ends in use
	Doorbells      uint64 `json:"doorbells"` // sum over processes
}

type procJSON struct {
	Slot         uint32 `json:"slot"`
	Pid          int32  `json:"pid"`
	State        string `json:"state"`
	Chans        uint32 `json:"chans"`
	Services     uint32 `json:"services"`
	BlocksOwned  uint64 `json:"blocks_owned"`
	BlocksCached uint64 `json:"blocks_cached"`
	Doorbell     uint64 `json:"doorbell"`
}

type serviceJSON struct {
	Name    string `json:"name"`
	Pid     int32  `json:"pid"`
	Slot    uint32 `json:"slot"`
	Pending uint32 `json:"pending"`
}

type endJSON struct {
	Pid          int32  `json:"pid"`
	Slot         int64  `json:"slot"` // -1: none yet
	Alive        bool   `json:"alive"`
	Closed       bool   `json:"closed"`
	Sent         uint64 `json:"sent"`
	Received     uint64 `json:"received"`
	FullRefusals uint64 `json:"full_refusals"`
	Wakeups      uint64 `json:"wakeups"`
}

type chanJSON struct {
	Index          uint32  `json:"index"`
	State          string  `json:"state"`
	Service        string  `json:"service"`
	RingCapacity   uint32  `json:"ring_capacity"`
	ClientPid      int32   `json:"client_pid"`
	ServerPid      int32   `json:"server_pid"`
	QueuedToServer uint64  `json:"queued_to_server"`
	QueuedToClient uint64  `json:"queued_to_client"`
	Client         endJSON `json:"client"`
	Server         endJSON `json:"server"`
}

type heapJSON struct {
	PageSize       uint64      `json:"page_size"`
	PagesTotal     uint64      `json:"pages_total"`
	PagesFree      uint64      `json:"pages_free"`
	LargestFreeRun uint64      `json:"largest_free_run"`
	LargestBlock   uint64      `json:"largest_block"`
	Classes        []classJSON `json:"classes"`
}

type classJSON struct {
	Size       uint64 `json:"size"`
	BlocksUsed uint64 `json:"blocks_used"`
	BlocksFree uint64 `json:"blocks_free"`
	Slabs      uint64 `json:"slabs"`
}

func endOf(e exipc.ChanEndInfo) endJSON {
	slot := int64(e.Slot)
	if e.Slot == 0xffffffff {
		slot = -1
	}
	return endJSON{e.Pid, slot, e.Alive, e.Closed, e.Sent, e.Received, e.FullRefusals, e.Wakeups}
}

func chanState(c exipc.ChanInfo) string {
	switch {
	case c.State == exipc.ChanPending:
		return "pending"
	case c.End[0].Closed && c.End[1].Closed:
		return "closed"
	case c.End[0].Closed || c.End[1].Closed:
		return "half-closed"
	}
	return "bound"
}

func (s *snapshot) wakeups() (w uint64) {
	for _, c := range s.Chans {
		w += c.End[0].Wakeups + c.End[1].Wakeups
	}
	return w
}

func (s *snapshot) doorbells() (n uint64) {
	for _, p := range s.Procs {
		n += p.Doorbell
	}
	return n
}

func (s *snapshot) toJSON() statJSON {
	j := statJSON{
		Name: s.File.Name, Path: s.File.Path, Bytes: s.File.Bytes, Mode: s.File.Mode, UID: s.File.UID,
		Owner: s.File.Owner,
		Layout: layoutJSON{s.Info.LayoutVersion, s.Info.ArenaSize, s.Info.MaxProcs, s.Info.MaxChans,
			s.Info.RingCapacity, s.Info.MaxBlock, s.Info.CreatorUID},
		Stat: statFields(s.Stat),
		Counters: countersJSON{s.Info.ReapedProcs, s.Info.ReapTakeovers, s.Info.ReapStragglers,
			s.Info.LockRepairs, s.Info.Allocs, s.Info.Frees, s.wakeups(), s.doorbells()},
		Procs:       []procJSON{},
		ServiceList: []serviceJSON{},
		Chans:       []chanJSON{},
		Heap: heapJSON{s.Heap.PageSize, s.Heap.PagesTotal, s.Heap.PagesFree, s.Heap.LargestFreeRun,
			s.Heap.LargestBlock, []classJSON{}},
	}
	for _, p := range s.Procs {
		j.Procs = append(j.Procs, procJSON{p.Slot, p.Pid, stateName(p.State), p.Chans, p.Services,
			p.BlocksOwned, p.BlocksCached, p.Doorbell})
	}
	for _, sv := range s.Services {
		j.ServiceList = append(j.ServiceList, serviceJSON{sv.Name, sv.OwnerPid, sv.OwnerSlot, sv.Pending})
	}
	for _, c := range s.Chans {
		j.Chans = append(j.Chans, chanJSON{c.Index, chanState(c), c.Service, c.RingCapacity,
			c.End[0].Pid, c.End[1].Pid, c.Queued[0], c.Queued[1], endOf(c.End[0]), endOf(c.End[1])})
	}
	for _, c := range s.Heap.Classes {
		j.Heap.Classes = append(j.Heap.Classes, classJSON(c))
	}
	return j
}

func cmdStat(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("stat", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	s, err := snapshotOf(pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(out, s.toJSON())
	}
	printStat(out, s, nil)
	return nil
}

// printStat prints the tables of s; with prev (top), rates since prev too.
func printStat(out io.Writer, s, prev *snapshot) {
	st, info := s.Stat, s.Info
	fmt.Fprintf(out, "domain %s  %s  %s, mode %s, owner %s\n", s.File.Name, s.File.Path,
		human(uint64(s.File.Bytes)), s.File.Mode, s.File.Owner)
	fmt.Fprintf(out, "procs %d alive of %d slots  channels %d bound of %d  services %d  ring %d handles\n",
		st.ProcsAlive, info.MaxProcs, st.ChansBound, info.MaxChans, st.Services, info.RingCapacity)
	fmt.Fprintf(out, "heap %s used of %s (%d blocks)  allocs %d  frees %d",
		human(st.HeapBytesUsed), human(st.HeapBytesTotal), st.HeapBlocksUsed, info.Allocs, info.Frees)
	dt := 0.0
	if prev != nil {
		dt = s.At.Sub(prev.At).Seconds()
	}
	if dt > 0 {
		fmt.Fprintf(out, "  allocs/s %.0f  frees/s %.0f", rate(info.Allocs, prev.Info.Allocs, dt),
			rate(info.Frees, prev.Info.Frees, dt))
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "reaped %d  reap takeovers %d  stragglers %d  lock repairs %d  wake-ups %d  doorbells %d\n",
		info.ReapedProcs, info.ReapTakeovers, info.ReapStragglers, info.LockRepairs, s.wakeups(), s.doorbells())

	fmt.Fprintln(out, "\nPROCESSES")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tPID\tSTATE\tCHANS\tSERVICES\tBLOCKS\tCACHED\tDOORBELL")
	for _, p := range s.Procs {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\n", p.Slot, p.Pid, stateName(p.State), p.Chans,
			p.Services, p.BlocksOwned, p.BlocksCached, p.Doorbell)
	}
	tw.Flush()

	fmt.Fprintln(out, "\nSERVICES")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tSLOT\tPENDING")
	for _, sv := range s.Services {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", sv.Name, pidText(sv.OwnerPid), sv.OwnerSlot, sv.Pending)
	}
	tw.Flush()

	fmt.Fprintln(out, "\nCHANNELS (C: client end, S: server end)")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if dt > 0 {
		fmt.Fprintln(tw, "CHAN\tSERVICE\tSTATE\tC PID\tS PID\tQ C>S\tQ S>C\tSENT C\tSENT S\tMSG/S C>S\tMSG/S S>C\tFULL C\tFULL S\tWAKE C\tWAKE S\tCAP")
	} else {
		fmt.Fprintln(tw, "CHAN\tSERVICE\tSTATE\tC PID\tS PID\tQ C>S\tQ S>C\tSENT C\tRECV C\tSENT S\tRECV S\tFULL C\tFULL S\tWAKE C\tWAKE S\tCAP")
	}
	for _, c := range s.Chans {
		svc := c.Service
		if svc == "" {
			svc = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t", c.Index, svc, chanState(c), pidText(c.End[0].Pid),
			pidText(c.End[1].Pid), c.Queued[0], c.Queued[1])
		if dt > 0 {
			r0, r1 := chanRates(c, prev, dt)
			fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.0f\t", c.End[0].Sent, c.End[1].Sent, r0, r1)
		} else {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t", c.End[0].Sent, c.End[0].Received, c.End[1].Sent, c.End[1].Received)
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\n", c.End[0].FullRefusals, c.End[1].FullRefusals,
			c.End[0].Wakeups, c.End[1].Wakeups, c.RingCapacity)
	}
	tw.Flush()

	h := s.Heap
	fmt.Fprintf(out, "\nHEAP  pages of %s: %d free of %d (largest free run %d); largest block now %s\n",
		human(h.PageSize), h.PagesFree, h.PagesTotal, h.LargestFreeRun, human(h.LargestBlock))
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tUSED\tFREE\tSLABS")
	shown := 0
	for _, c := range h.Classes {
		if c.Slabs == 0 && c.BlocksUsed == 0 {
			continue
		}
		shown++
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", human(c.Size), c.BlocksUsed, c.BlocksFree, c.Slabs)
	}
	if shown == 0 {
		fmt.Fprintln(tw, "(no slab carved yet)\t\t\t")
	}
	tw.Flush()
}

func rate(now, before uint64, dt float64) float64 {
	if now < before {
		return 0 // reset (a reused entry)
	}
	return float64(now-before) / dt
}

// chanRates: messages per second each way since prev, for the same channel
// life (same index and the same ends' pids); a new life counts from zero.
func chanRates(c exipc.ChanInfo, prev *snapshot, dt float64) (float64, float64) {
	for _, p := range prev.Chans {
		if p.Index == c.Index && p.End[0].Pid == c.End[0].Pid && p.End[0].Slot == c.End[0].Slot &&
			p.End[0].Sent <= c.End[0].Sent && p.End[1].Sent <= c.End[1].Sent {
			return rate(c.End[0].Sent, p.End[0].Sent, dt), rate(c.End[1].Sent, p.End[1].Sent, dt)
		}
	}
	return float64(c.End[0].Sent) / dt, float64(c.End[1].Sent) / dt
}
