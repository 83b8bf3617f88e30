package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/exipc/exipc"
)

// reap cleans up after the dead without joining the domain
// (exipc.ReapDomain): it takes no process slot, so it works when dead
// processes fill the table, and it can never create a domain by mistake.
func cmdReap(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("reap", flag.ContinueOnError)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	before, err := snapshotOf(name)
	if err != nil {
		return err
	}
	n, err := exipc.ReapDomain(name)
	if err != nil {
		return domainErr(name, err)
	}
	after, err := snapshotOf(name)
	if err != nil {
		return err
	}
	still := map[uint64]bool{}
	for _, p := range after.Procs {
		still[uint64(p.Slot)<<32|uint64(p.Gen)] = true
	}
	for _, p := range before.Procs {
		if p.State != exipc.ProcAlive && !still[uint64(p.Slot)<<32|uint64(p.Gen)] {
			fmt.Fprintf(out, "cleaned slot %d (pid %d): %d channel ends, %d services, %d blocks owned, %d cached\n",
				p.Slot, p.Pid, p.Chans, p.Services, p.BlocksOwned, p.BlocksCached)
		}
	}
	fmt.Fprintf(out, "reaped %d dead process(es) in %s; blocks used %d -> %d\n", n, name,
		before.Stat.HeapBlocksUsed, after.Stat.HeapBlocksUsed)
	return nil
}

func cmdRm(args []string, out io.Writer) error {
	fset := flag.NewFlagSet("rm", flag.ContinueOnError)
	force := fset.Bool("force", false, "remove even while live processes are attached, or a file that is not a domain")
	pos, err := parse(fset, args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if _, err := statFile(name); err != nil {
		return domainErr(name, err)
	}
	s, err := snapshotOf(name)
	switch {
	case err != nil && !*force:
		return fmt.Errorf("%v; not removed (--force removes it anyway)", err)
	case err == nil && s.Stat.ProcsAlive > 0 && !*force:
		var who []string
		for _, p := range s.Procs {
			if p.State == exipc.ProcAlive {
				who = append(who, fmt.Sprintf("pid %d (slot %d)", p.Pid, p.Slot))
			}
		}
		return fmt.Errorf("domain %q: %d live process(es) attached: %s; not removed (--force removes it anyway)",
			name, s.Stat.ProcsAlive, strings.Join(who, ", "))
	}
	if err := exipc.Unlink(name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return domainErr(name, err)
		}
		// A name the core refuses cannot be a file we listed; say why.
		if rmErr := os.Remove(domainPath(name)); rmErr != nil {
			return domainErr(name, err)
		}
	}
	fmt.Fprintf(out, "removed %s\n", domainPath(name))
	return nil
}
