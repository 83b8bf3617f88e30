package exipc_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exipc/exipc"
)

var nameSeq atomic.Int64

// uniqueName returns a domain or service name no other test (or test
// process) uses: it carries the pid.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), nameSeq.Add(1))
}

// shmPath is the file of domain NAME.
func shmPath(name string) string { return "/dev/shm/exipc." + name }

// openDomain opens a fresh domain and registers its Close and Unlink, and a
// check that nothing is left in /dev/shm, with t.Cleanup.
func openDomain(t testing.TB, opts *exipc.Options) (*exipc.Domain, string) {
	t.Helper()
	name := uniqueName("exipctest")
	d, err := exipc.Open(name, opts)
	if err != nil {
		t.Fatalf("Open(%q, %+v): %v", name, opts, err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil && !errors.Is(err, exipc.ErrClosed) {
			t.Errorf("Close domain: %v", err)
		}
		cleanupName(t, name)
	})
	return d, name
}

// cleanupName unlinks domain NAME if it is still there and checks its file
// is gone.
func cleanupName(t testing.TB, name string) {
	t.Helper()
	if err := exipc.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Unlink(%q): %v", name, err)
	}
	if _, err := os.Stat(shmPath(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still exists after Unlink (stat: %v)", shmPath(name), err)
	}
}

// pair returns both ends of a fresh channel on d: the client's (connected)
// and the server's (accepted), and the listener.
func pair(t testing.TB, d *exipc.Domain) (client, server *exipc.Chan, l *exipc.Listener) {
	t.Helper()
	svc := uniqueName("svc")
	l, err := d.Listen(svc)
	if err != nil {
		t.Fatalf("Listen(%q): %v", svc, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err = d.Connect(ctx, svc)
	if err != nil {
		t.Fatalf("Connect(%q): %v", svc, err)
	}
	server, err = l.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept(%q): %v", svc, err)
	}
	return client, server, l
}

// settleGoroutines waits up to a second for the goroutine count to drop to
// at most want, and returns the last count seen.
func settleGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 100 && n > want; i++ {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// blocksUsed is d's count of heap blocks in use.
func blocksUsed(t testing.TB, d *exipc.Domain) uint64 {
	t.Helper()
	st, err := d.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.HeapBlocksUsed
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
