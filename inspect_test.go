package exipc_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"

	"github.com/exipc/exipc"
)

// The inspector's view of a domain matches the member's own (Stat and the
// C call behind it), without registering: procs_alive does not move.
func TestInspectMatchesMember(t *testing.T) {
	d, name := openDomain(t, &exipc.Options{RingCapacity: 4})
	l, err := d.Listen("insp")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := d.Connect(ctx, "insp")
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		h, _, err := d.Alloc(300)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(h); err != nil {
			t.Fatal(err)
		}
	}
	h, _, _ := d.Alloc(300)
	if err := c.Send(h); !errors.Is(err, exipc.ErrQueueFull) {
		t.Fatalf("fifth send: %v, want ErrQueueFull", err)
	}
	if r, err := s.TryRecv(); err != nil {
		t.Fatal(err)
	} else {
		d.Free(r)
	}

	in, err := exipc.Inspect(name)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	want, _ := d.Stat()
	got, err := in.Stat()
	if err != nil || got != want {
		t.Errorf("Inspector.Stat = %+v, %v; Domain.Stat = %+v", got, err, want)
	}
	procs, err := in.Procs()
	if err != nil || len(procs) != 1 || int(procs[0].Pid) != os.Getpid() || procs[0].State != exipc.ProcAlive ||
		procs[0].BlocksOwned != 1 || procs[0].Services != 1 || procs[0].Chans != 2 {
		t.Errorf("Procs = %+v, %v", procs, err)
	}
	svcs, err := in.Services()
	if err != nil || len(svcs) != 1 || svcs[0].Name != "insp" || int(svcs[0].OwnerPid) != os.Getpid() {
		t.Errorf("Services = %+v, %v", svcs, err)
	}
	chans, err := in.Chans()
	if err != nil || len(chans) != 1 {
		t.Fatalf("Chans = %+v, %v", chans, err)
	}
	ch := chans[0]
	if ch.State != exipc.ChanBound || ch.Service != "insp" || ch.Queued != [2]uint64{3, 0} ||
		ch.End[0].Sent != 4 || ch.End[1].Received != 1 || ch.End[0].FullRefusals != 1 || ch.RingCapacity != 4 {
		t.Errorf("Chans[0] = %+v", ch)
	}
	heap, err := in.Heap()
	if err != nil || len(heap.Classes) == 0 {
		t.Fatalf("Heap = %+v, %v", heap, err)
	}
	var used uint64
	for _, cl := range heap.Classes {
		used += cl.BlocksUsed
	}
	if used != want.HeapBlocksUsed {
		t.Errorf("heap classes: %d blocks used, Stat says %d", used, want.HeapBlocksUsed)
	}
	info, err := in.Info()
	if err != nil || info.Allocs != 5 || info.Frees != 1 || info.RingCapacity != 4 {
		t.Errorf("Info = %+v, %v", info, err)
	}
	in.Close()
	if _, err := in.Stat(); !errors.Is(err, exipc.ErrClosed) {
		t.Errorf("Stat after Close: %v, want ErrClosed", err)
	}
}

func TestInspectAbsentCreatesNothing(t *testing.T) {
	name := uniqueName("absent")
	if _, err := exipc.Inspect(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Inspect(absent) = %v, want fs.ErrNotExist", err)
	}
	if _, err := exipc.ReapDomain(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReapDomain(absent) = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(shmPath(name)); err == nil {
		os.Remove(shmPath(name))
		t.Errorf("an absent domain was created")
	}
	if _, err := exipc.Inspect("bad/name"); !errors.Is(err, exipc.ErrInvalid) {
		t.Errorf("Inspect(bad/name) = %v, want ErrInvalid", err)
	}
}

// Inspect looks at a domain from outside, without joining it.
func ExampleInspect() {
	name := fmt.Sprintf("example-inspect-%d", os.Getpid())
	d, err := exipc.Open(name, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer exipc.Unlink(name)
	defer d.Close()
	d.Listen("pop3")

	in, err := exipc.Inspect(name)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer in.Close()
	st, _ := in.Stat()
	svcs, _ := in.Services()
	fmt.Println("processes:", st.ProcsAlive)
	fmt.Println("services:", svcs[0].Name, svcs[0].Pending)
	// Output:
	// processes: 1
	// services: pop3 0
}
