package main

// End-to-end: the C store (store.c, SQLite) and pop3d as real processes,
// driven by Python's poplib, a POP3 client this project did not write
// (pop3check.py compares every message with the database byte for byte).

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/internal/ctest"
)

func TestMain(m *testing.M) {
	if os.Getenv("POP3D_TEST_AS_MAIN") == "1" { // the test binary re-executed as pop3d
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var built struct {
	once  sync.Once
	store string
	err   error
	skip  string
}

// storeBinary returns examples/mailstore/store.c built: $EXIPC_MAILSTORE_STORE
// (make builds it), or built here with the C core's sources.
func storeBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end POP3 tests skipped in -short mode (make test runs them in test-go)")
	}
	built.once.Do(func() {
		if _, err := exec.LookPath("python3"); err != nil {
			built.skip = "python3 not installed (.ci/run installs it)"
			return
		}
		if p := os.Getenv("EXIPC_MAILSTORE_STORE"); p != "" {
			built.store = p
			return
		}
		if _, err := os.Stat("/usr/include/sqlite3.h"); err != nil {
			built.skip = "sqlite3.h not installed: apt-get install libsqlite3-dev (.ci/run does)"
			return
		}
		dir, err := os.MkdirTemp("", "mailstore")
		if err != nil {
			built.err = err
			return
		}
		built.store = filepath.Join(dir, "store")
		built.err = ctest.Build("../../../native", built.store, []string{"../store.c"}, "-lsqlite3")
	})
	if built.skip != "" {
		t.Skip(built.skip)
	}
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.store
}

// rig is a store and a pop3d on a fresh domain and database.
type rig struct {
	t      *testing.T
	store  string
	db     string
	domain string
	addr   string
	st     *exec.Cmd
	pop    *exec.Cmd
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, store: storeBinary(t), db: filepath.Join(t.TempDir(), "mail.db"),
		domain: fmt.Sprintf("pop3e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)}
	t.Cleanup(func() {
		for _, c := range []*exec.Cmd{r.pop, r.st} {
			if c != nil && c.ProcessState == nil {
				c.Process.Signal(syscall.SIGTERM)
				done := make(chan struct{})
				go func() { c.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					c.Process.Kill()
					<-done
				}
			}
		}
		if err := exipc.Unlink(r.domain); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unlink %s: %v", r.domain, err)
		}
	})
	return r
}

func (r *rig) run(args ...string) string {
	r.t.Helper()
	b, err := exec.Command(r.store, args...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("store %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return string(b)
}

// startStore starts `store serve` and waits until it serves.
func (r *rig) startStore() {
	r.t.Helper()
	r.st = exec.Command(r.store, "serve", r.db, r.domain)
	r.st.Stderr = os.Stderr
	out, _ := r.st.StdoutPipe()
	if err := r.st.Start(); err != nil {
		r.t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.Contains(line, "serving") {
		r.t.Fatalf("store said %q", line)
	}
}

// startPop3d starts this test binary as pop3d on a free loopback port.
func (r *rig) startPop3d() {
	r.t.Helper()
	exe, _ := os.Executable()
	r.pop = exec.Command(exe, "-addr", "127.0.0.1:0", "-domain", r.domain, "-call-timeout", "3s")
	r.pop.Env = append(os.Environ(), "POP3D_TEST_AS_MAIN=1")
	r.pop.Stderr = os.Stderr
	out, _ := r.pop.StdoutPipe()
	if err := r.pop.Start(); err != nil {
		r.t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if len(f) < 4 || f[1] != "listening" {
		r.t.Fatalf("pop3d said %q", line)
	}
	r.addr = f[3]
}

func (r *rig) python(args ...string) string {
	r.t.Helper()
	host, port, _ := net.SplitHostPort(r.addr)
	cmd := exec.Command("python3", append([]string{"../pop3check.py"}, args...)...)
	for i, a := range cmd.Args {
		if a == "HOST" {
			cmd.Args[i] = host
		} else if a == "PORT" {
			cmd.Args[i] = port
		}
	}
	b, err := cmd.CombinedOutput()
	r.t.Logf("%s", b)
	if err != nil {
		r.t.Fatalf("pop3check %s: %v", strings.Join(args, " "), err)
	}
	return string(b)
}

// TestPOP3Mailboxes: mailboxes of 1, 100 and 10,000 messages and messages
// up to 1 MiB and one of 16 MiB, all retrieved by poplib and compared with
// the database; a deletion applied at QUIT; a message above the largest
// block refused with an -ERR that names the limit.
func TestPOP3Mailboxes(t *testing.T) {
	r := newRig(t)
	r.run("gen", r.db, "one", "pw1", "1", "1000", "1")
	r.run("gen", r.db, "hundred", "pw100", "100", "20000", "2")
	r.run("gen", r.db, "tenk", "pw10k", "10000", "120", "3")
	r.run("gen", r.db, "big", "pwbig", "4", fmt.Sprint(1<<20-64), "4")
	r.run("gen", r.db, "del", "pwdel", "5", "500", "5")
	r.startStore()
	r.startPop3d()
	r.python("HOST", "PORT", r.db, "one:pw1", "hundred:pw100", "tenk:pw10k", "big:pwbig")
	r.python("--delete", "HOST", "PORT", r.db, "del:pwdel")
	r.python("--oversize", "HOST", "PORT", r.db, "one:pw1")
	r.python("--large", "HOST", "PORT", r.db, "big:pwbig") // 16 MiB, one block of the default demo domain
}

// pop3conn is a raw POP3 connection for the checks poplib cannot make.
type pop3conn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialPOP3(t *testing.T, addr string) *pop3conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := &pop3conn{t: t, c: c, r: bufio.NewReader(c)}
	t.Cleanup(func() { c.Close() })
	if l := p.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("greeting %q", l)
	}
	return p
}

func (p *pop3conn) line() string {
	p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("reading a reply: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

func (p *pop3conn) cmd(s string) string {
	p.t.Helper()
	fmt.Fprintf(p.c, "%s\r\n", s)
	return p.line()
}

// TestPOP3KillStore: the store killed mid-session gives -ERR within a
// bounded time, leaks no block, and a restarted store is served again
// without restarting pop3d.
func TestPOP3KillStore(t *testing.T) {
	r := newRig(t)
	r.run("gen", r.db, "hundred", "pw100", "100", "20000", "2")
	r.run("gen", r.db, "one", "pw1", "1", "1000", "1")
	r.startStore()
	r.startPop3d()

	p := dialPOP3(t, r.addr)
	p.cmd("USER hundred")
	if l := p.cmd("PASS pw100"); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("PASS: %q", l)
	}
	// Malformed input, long lines: -ERR, and the session goes on.
	for _, bad := range []string{"RETR abc", "RETR 0", "TOP 1", "XYZZY", "LIST 1 2 3", "RETR 1\x01",
		strings.Repeat("A", 600), "NOOP " + strings.Repeat("x", 5000)} {
		if l := p.cmd(bad); !strings.HasPrefix(l, "-ERR") {
			t.Errorf("%.20q...: %q, want -ERR", bad, l)
		}
	}
	if l := p.cmd("STAT"); !strings.HasPrefix(l, "+OK 100 ") {
		t.Errorf("STAT: %q", l)
	}

	r.st.Process.Signal(syscall.SIGKILL)
	r.st.Wait()
	t0 := time.Now()
	l := p.cmd("STAT")
	if el := time.Since(t0); !strings.HasPrefix(l, "-ERR") || el > 2*time.Second {
		t.Errorf("STAT with the store killed: %q after %v, want -ERR within 2 s", l, el)
	}
	q := dialPOP3(t, r.addr)
	q.cmd("USER one")
	if l := q.cmd("PASS pw1"); !strings.HasPrefix(l, "-ERR [SYS/TEMP]") {
		t.Errorf("login with no store: %q", l)
	}
	// Nothing leaked: once the dead store is reaped, no block is in use.
	d, err := exipc.Open(r.domain, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Reap()
	st, _ := d.Stat()
	d.Close()
	if st.HeapBlocksUsed != 0 {
		t.Errorf("%d heap blocks in use after the store died", st.HeapBlocksUsed)
	}

	// Restart: pop3d connects again on demand.
	r.startStore()
	if l := p.cmd("STAT"); !strings.HasPrefix(l, "-ERR") {
		t.Errorf("old session after a restart: %q, want -ERR", l)
	}
	p.cmd("QUIT")
	r.python("HOST", "PORT", r.db, "hundred:pw100", "one:pw1")
}
