package main

// The test rig: a real nats-server (this test binary re-executed, embedding
// github.com/nats-io/nats-server/v2) on 127.0.0.1 with a random port, bridges
// (this test binary re-executed as exipc-bridge), domains standing in for
// hosts, and the C programs built against the core.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/internal/ctest"
	"github.com/nats-io/nats-server/v2/server"
)

func TestMain(m *testing.M) {
	switch os.Getenv("BRIDGE_TEST_AS") {
	case "bridge":
		os.Exit(run(os.Args[1:]))
	case "nats":
		os.Exit(natsMain())
	case "connserver":
		os.Exit(connServerMain())
	case "libserver":
		os.Exit(libServerMain())
	}
	os.Exit(m.Run())
}

// natsMain runs an embedded nats-server as configured by NATS_* variables
// and prints "ready" once it accepts connections.
func natsMain() int {
	port, _ := strconv.Atoi(os.Getenv("NATS_PORT"))
	opts := &server.Options{Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true}
	if v := os.Getenv("NATS_MAX_PAYLOAD"); v != "" {
		n, _ := strconv.Atoi(v)
		opts.MaxPayload = int32(n)
	}
	opts.Username, opts.Password = os.Getenv("NATS_USER"), os.Getenv("NATS_PASSWORD")
	opts.Authorization = os.Getenv("NATS_TOKEN")
	if k := os.Getenv("NATS_NKEY"); k != "" {
		opts.Nkeys = []*server.NkeyUser{{Nkey: k}}
	}
	if cert := os.Getenv("NATS_TLS_CERT"); cert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: os.Getenv("NATS_TLS_KEY"),
			CaFile: os.Getenv("NATS_TLS_CA"), Verify: os.Getenv("NATS_TLS_CA") != ""})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify = tc, true, os.Getenv("NATS_TLS_CA") != ""
	}
	s, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats-server not ready")
		return 1
	}
	readyUntilSignal()
	s.Shutdown()
	return 0
}

// readyUntilSignal says "ready" (what proc waits for) and returns on
// SIGTERM or SIGINT: the life of a child process of these tests.
func readyUntilSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("ready")
	<-sig
}

// proc is a child process that printed "ready".
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	name string
	done chan struct{}
}

// startProc starts the test binary as role (or argv[0] when role is ""),
// waits for a "ready" line, and stops it at the end of the test.
func startProc(t *testing.T, name string, env []string, argv ...string) *proc {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &prefixWriter{t: t, prefix: name + ": "}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, name: name, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		ready <- line
		io.Copy(io.Discard, r)
	}()
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			p.kill()
			t.Fatalf("%s said %q, not ready", name, line)
		}
	case <-time.After(20 * time.Second):
		p.kill()
		t.Fatalf("%s not ready after 20 s", name)
	}
	return p
}

// stop ends the process with SIGTERM (SIGKILL after 5 s).
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.t.Errorf("%s still runs 5 s after SIGTERM", p.name)
		p.kill()
	}
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

type prefixWriter struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		fmt.Fprintf(os.Stderr, "%s%s\n", w.prefix, l)
	}
	return len(b), nil
}

// natsServer is a nats-server process on a fixed loopback port, so that it
// can be killed and started again at the same URL.
type natsServer struct {
	t    *testing.T
	port int
	env  []string
	p    *proc
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startNATS(t *testing.T, env ...string) *natsServer {
	s := &natsServer{t: t, port: freePort(t), env: env}
	s.start()
	return s
}

func (s *natsServer) start() {
	exe, _ := os.Executable()
	env := append([]string{"BRIDGE_TEST_AS=nats", "NATS_PORT=" + strconv.Itoa(s.port)}, s.env...)
	s.p = startProc(s.t, "nats-server", env, exe)
}

func (s *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

var domainSeq atomic.Int64

// host is a domain standing in for a host, opened by the test process.
type host struct {
	name string
	d    *exipc.Domain
}

func newHost(t *testing.T, tag string, opts *exipc.Options) *host {
	t.Helper()
	name := fmt.Sprintf("bridge-%s-%d-%d", tag, os.Getpid(), domainSeq.Add(1))
	d, err := exipc.Open(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		if err := exipc.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unlink %s: %v", name, err)
		}
	})
	return &host{name: name, d: d}
}

// startBridge runs the test binary as exipc-bridge on domain h.
func startBridge(t *testing.T, h *host, url string, args ...string) *proc {
	t.Helper()
	exe, _ := os.Executable()
	argv := append([]string{exe, "-domain", h.name, "-nats", url}, args...)
	return startProc(t, "bridge["+h.name+"]", []string{"BRIDGE_TEST_AS=bridge"}, argv...)
}

var cbuilt struct {
	once             sync.Once
	dir              string
	stubPeer, client string
	store            string
	err              error
}

// cPrograms builds native/test/stub_peer.c and testdata/cclient.c once.
func cPrograms(t *testing.T) (stubPeer, client string) {
	t.Helper()
	cbuilt.once.Do(func() {
		dir, err := os.MkdirTemp("", "bridgetest")
		if err != nil {
			cbuilt.err = err
			return
		}
		cbuilt.dir = dir
		cbuilt.stubPeer = filepath.Join(dir, "stub_peer")
		cbuilt.client = filepath.Join(dir, "cclient")
		if cbuilt.err = ctest.Build("../native", cbuilt.stubPeer, []string{"../native/test/stub_peer.c"}); cbuilt.err != nil {
			return
		}
		cbuilt.err = ctest.Build("../native", cbuilt.client, []string{"testdata/cclient.c"})
	})
	if cbuilt.err != nil {
		t.Fatal(cbuilt.err)
	}
	return cbuilt.stubPeer, cbuilt.client
}
