package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// metrics prints a snapshot as OpenMetrics text (application/openmetrics-text
// 1.0.0): exipc_* families, labels domain, service, pid (and slot, chan,
// end, size where a family needs them), ending with "# EOF". Counters are
// written as NAME_total under "# TYPE NAME counter".
func cmdMetrics(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("metrics", flag.ContinueOnError)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	s, err := snapshotOf(pos[0])
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	writeMetrics(w, s)
	return w.Flush()
}

type label struct{ k, v string }

type family struct {
	name, typ, help, unit string
	samples               []sample
}

type sample struct {
	labels []label
	value  uint64
}

func escape(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func (f *family) add(v uint64, labels ...label) { f.samples = append(f.samples, sample{labels, v}) }

func (f *family) write(w io.Writer) {
	fmt.Fprintf(w, "# TYPE %s %s\n", f.name, f.typ)
	if f.unit != "" {
		fmt.Fprintf(w, "# UNIT %s %s\n", f.name, f.unit)
	}
	fmt.Fprintf(w, "# HELP %s %s\n", f.name, f.help)
	suffix := ""
	if f.typ == "counter" {
		suffix = "_total"
	}
	for _, s := range f.samples {
		var b strings.Builder
		b.WriteString(f.name + suffix)
		b.WriteByte('{')
		for i, l := range s.labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l.k + `="` + escape(l.v) + `"`)
		}
		b.WriteString("} ")
		b.WriteString(strconv.FormatUint(s.value, 10))
		fmt.Fprintln(w, b.String())
	}
}

func writeMetrics(w io.Writer, s *snapshot) {
	dom := label{"domain", s.File.Name}
	var fams []*family
	fam := func(name, typ, help string) *family {
		f := &family{name: name, typ: typ, help: help}
		if strings.HasSuffix(name, "_bytes") {
			f.unit = "bytes"
		}
		fams = append(fams, f)
		return f
	}
	st, info := s.Stat, s.Info
	fam("exipc_procs_alive", "gauge", "Process slots held by live processes.").add(uint64(st.ProcsAlive), dom)
	fam("exipc_procs_max", "gauge", "Process slots of the domain.").add(uint64(info.MaxProcs), dom)
	fam("exipc_chans_bound", "gauge", "Channels with at least one open end.").add(uint64(st.ChansBound), dom)
	fam("exipc_services", "gauge", "Listening services.").add(uint64(st.Services), dom)
	fam("exipc_heap_total_bytes", "gauge", "Bytes of heap arena.").add(st.HeapBytesTotal, dom)
	fam("exipc_heap_used_bytes", "gauge", "Bytes of blocks not free (whole size classes).").add(st.HeapBytesUsed, dom)
	fam("exipc_heap_blocks_used", "gauge", "Heap blocks owned or in flight.").add(st.HeapBlocksUsed, dom)
	fam("exipc_reaped_procs", "counter", "Dead processes cleaned.").add(info.ReapedProcs, dom)
	fam("exipc_reap_takeovers", "counter", "Reaps taken over from a reaper that died.").add(info.ReapTakeovers, dom)
	fam("exipc_reap_stragglers", "counter", "Blocks reapers found in flight in no ring.").add(info.ReapStragglers, dom)
	fam("exipc_lock_repairs", "counter", "Times a locker found the table lock's holder dead.").add(info.LockRepairs, dom)
	fam("exipc_allocs", "counter", "Heap blocks allocated.").add(info.Allocs, dom)
	fam("exipc_frees", "counter", "Heap blocks freed.").add(info.Frees, dom)

	pInfo := fam("exipc_proc_info", "gauge", "A process slot in use (value 1), with its state.")
	pChans := fam("exipc_proc_channels", "gauge", "Channel ends a process holds open.")
	pSvcs := fam("exipc_proc_services", "gauge", "Services a process listens on.")
	pOwned := fam("exipc_proc_blocks_owned", "gauge", "Heap blocks a process owns.")
	pCached := fam("exipc_proc_blocks_cached", "gauge", "Free heap blocks in a process's local cache.")
	pBell := fam("exipc_proc_doorbell_rings", "counter", "Times a process's doorbell was rung.")
	for _, p := range s.Procs {
		l := []label{dom, {"pid", strconv.Itoa(int(p.Pid))}, {"slot", strconv.Itoa(int(p.Slot))}}
		pInfo.add(1, append(l[:3:3], label{"state", stateName(p.State)})...)
		pChans.add(uint64(p.Chans), l...)
		pSvcs.add(uint64(p.Services), l...)
		pOwned.add(p.BlocksOwned, l...)
		pCached.add(p.BlocksCached, l...)
		pBell.add(p.Doorbell, l...)
	}

	sPend := fam("exipc_service_pending_connects", "gauge", "Channels connected to a service, not accepted yet.")
	for _, sv := range s.Services {
		sPend.add(uint64(sv.Pending), dom, label{"service", sv.Name}, label{"pid", strconv.Itoa(int(sv.OwnerPid))})
	}

	cCap := fam("exipc_chan_ring_capacity", "gauge", "Handles a ring of the channel holds.")
	cQueued := fam("exipc_chan_queued", "gauge", "Handles an end sent that its peer has not received yet.")
	cSent := fam("exipc_chan_sent", "counter", "Handles an end sent.")
	cRecv := fam("exipc_chan_received", "counter", "Handles an end received.")
	cFull := fam("exipc_chan_full_refusals", "counter", "Sends refused because the ring was full.")
	cWake := fam("exipc_chan_wakeups", "counter", "Wake-ups an end issued to its parked peer.")
	for _, c := range s.Chans {
		ch := strconv.Itoa(int(c.Index))
		svc := label{"service", c.Service}
		cCap.add(uint64(c.RingCapacity), dom, svc, label{"chan", ch})
		for e, end := range []string{"client", "server"} {
			x := c.End[e]
			if x.Slot == 0xffffffff {
				continue // pending: no server end yet
			}
			l := []label{dom, svc, {"pid", strconv.Itoa(int(x.Pid))}, {"chan", ch}, {"end", end}}
			cQueued.add(c.Queued[e], l...)
			cSent.add(x.Sent, l...)
			cRecv.add(x.Received, l...)
			cFull.add(x.FullRefusals, l...)
			cWake.add(x.Wakeups, l...)
		}
	}

	h := s.Heap
	fam("exipc_heap_page_bytes", "gauge", "Bytes of a heap page (slab).").add(h.PageSize, dom)
	fam("exipc_heap_pages", "gauge", "Heap pages.").add(h.PagesTotal, dom)
	fam("exipc_heap_pages_free", "gauge", "Heap pages not given to any size class.").add(h.PagesFree, dom)
	fam("exipc_heap_largest_block_bytes", "gauge", "Largest block an allocation could get now.").add(h.LargestBlock, dom)
	hUsed := fam("exipc_heap_class_blocks_used", "gauge", "Blocks of a size class owned or in flight.")
	hFree := fam("exipc_heap_class_blocks_free", "gauge", "Blocks of a size class free.")
	hSlabs := fam("exipc_heap_class_slabs", "gauge", "Slabs carved for a size class.")
	for _, c := range h.Classes {
		l := []label{dom, {"size", strconv.FormatUint(c.Size, 10)}}
		hUsed.add(c.BlocksUsed, l...)
		hFree.add(c.BlocksFree, l...)
		hSlabs.add(c.Slabs, l...)
	}

	for _, f := range fams {
		f.write(w)
	}
	fmt.Fprintln(w, "# EOF")
}
