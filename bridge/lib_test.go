package main

// The library form: package natsbridge inside the processes of the client
// and the server, no exipc-bridge process on either side.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/bridge/natsbridge"
)

// libServerMain is a Go stub server (ECHO, SLEEP, WHO) on LIB_SVC in
// LIB_DOMAIN that exports the service itself over NATS at LIB_NATS: a
// process of its own, as a remote host's server would be.
func libServerMain() int {
	domain, svc, url := os.Getenv("LIB_DOMAIN"), os.Getenv("LIB_SVC"), os.Getenv("LIB_NATS")
	d, err := exipc.Open(domain, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer d.Close()
	l, err := d.Listen(svc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	s := testServer(d, "lib-"+domain)
	// The bridge shares nothing with the server but the domain's name.
	b, err := natsbridge.Start(natsbridge.Config{Domain: domain, URL: url, Exports: []string{svc}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	readyUntilSignal()
	cancel()
	<-done
	return 0
}

// startLibServer runs libServerMain on svc in h.
func startLibServer(t *testing.T, h *host, url, svc string) *proc {
	t.Helper()
	exe, _ := os.Executable()
	return startProc(t, "libserver["+h.name+"]",
		[]string{"BRIDGE_TEST_AS=libserver", "LIB_DOMAIN=" + h.name, "LIB_SVC=" + svc, "LIB_NATS=" + url}, exe)
}

// libImport starts an in-process bridge importing svc into h.
func libImport(t *testing.T, h *host, url, svc string, handle bool) *natsbridge.Bridge {
	t.Helper()
	cfg := natsbridge.Config{Domain: h.name, URL: url, Imports: []string{svc}}
	if handle {
		cfg.Handle = h.d
	}
	b, err := natsbridge.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestLibraryForm: a Go client in A calls a Go server in B, each side's
// bridge in its own process (this test imports in-process; the server
// process exports in-process): 20,000 echoes checked byte for byte, 16 in
// flight, then a C client; killing the server's process (server and bridge
// at once) ends a call with ErrPeerDead within 2 s, and a new server process
// is reached without restarting anything.
func TestLibraryForm(t *testing.T) {
	for _, handle := range []bool{false, true} {
		t.Run(map[bool]string{false: "own-handle", true: "shared-handle"}[handle], func(t *testing.T) {
			ns := startNATS(t)
			a, b := newHost(t, "a", nil), newHost(t, "b", nil)
			srv := startLibServer(t, b, ns.url(), "libsvc")
			libImport(t, a, ns.url(), "libsvc", handle)
			c := dial(t, a, "libsvc")
			n := 20000
			if testing.Short() {
				n = 2000
			}
			echoCalls(t, c, n, 16, 3000)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, err := c.Call(ctx, opWho, nil)
			if err != nil || string(r.Body) != "lib-"+b.name {
				t.Fatalf("WHO: %v %q, want the library server", err, r.Body)
			}
			r.Release()
			_, client := cPrograms(t)
			out, err := exec.Command(client, a.name, "libsvc", "2000", "2048").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "calls ok") {
				t.Fatalf("C client: %v\n%s", err, out)
			}
			callSleepAndKill(t, c, "remote server process with its bridge", srv.kill)
			startLibServer(t, b, ns.url(), "libsvc")
			checkCall(t, a, "libsvc")
			c.Close()
			waitNoBlocks(t, a)
		})
	}
}

// TestLibraryMixesWithCommand: the library form speaks exipc-bridge's
// protocol: a library importer reaches an exipc-bridge exporter, an
// exipc-bridge importer reaches a library exporter; killing the exporting
// exipc-bridge ends a call through the library importer with ErrPeerDead
// within 2 s.
func TestLibraryMixesWithCommand(t *testing.T) {
	ns := startNATS(t)
	a, b, c := newHost(t, "a", nil), newHost(t, "b", nil), newHost(t, "c", nil)
	goServer(t, b, "cmdsvc", "b")
	bb := startBridge(t, b, ns.url(), "-export", "cmdsvc")
	libImport(t, a, ns.url(), "cmdsvc", false)
	startLibServer(t, b, ns.url(), "libsvc2")
	startBridge(t, c, ns.url(), "-import", "libsvc2")
	checkCall(t, a, "cmdsvc")
	checkCall(t, c, "libsvc2")
	cl := dial(t, a, "cmdsvc")
	checkCall(t, a, "cmdsvc")
	callSleepAndKill(t, cl, "exporting exipc-bridge", bb.kill)
}

// TestLibraryClose: closing an in-process bridge ends its channels
// (ErrPeerDead for the local client, after which a new Start serves again)
// and leaves a Handle it was given open.
func TestLibraryClose(t *testing.T) {
	ns := startNATS(t)
	a, b := newHost(t, "a", nil), newHost(t, "b", nil)
	startLibServer(t, b, ns.url(), "closesvc")
	br, err := natsbridge.Start(natsbridge.Config{Handle: a.d, URL: ns.url(), Imports: []string{"closesvc"}})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, a, "closesvc")
	echoCalls(t, c, 100, 4, 1000)
	callSleepAndKill(t, c, "in-process bridge closed", func() { br.Close() })
	if _, err := a.d.Stat(); err != nil {
		t.Fatalf("the handle given to the bridge: %v after Close", err)
	}
	libImport(t, a, ns.url(), "closesvc", true)
	checkCall(t, a, "closesvc")
	if _, err := natsbridge.Start(natsbridge.Config{URL: ns.url()}); err == nil {
		t.Fatal("Start without Domain or Handle succeeded")
	}
	if _, err := natsbridge.Start(natsbridge.Config{Domain: a.name, URL: ns.url(), Imports: []string{"a.b"}}); err == nil ||
		errors.Is(err, exipc.ErrClosed) {
		t.Fatalf("Start with service a.b: %v, want refused", err)
	}
}
