//go:build exipc_testing

package main

// The command is tested as an operator runs it: the built binary, run as a
// process of its own, against domains that other real processes (a C host,
// a Go host: this test binary re-executed) hold open.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/internal/ctest"
	"github.com/exipc/exipc/native"
)

var (
	binDir  string // 0755: the CLI, the C host and a copy of this binary, runnable by nobody
	cliBin  string
	cHost   string
	selfBin string
	seq     atomic.Int64
)

func TestMain(m *testing.M) {
	if role := os.Getenv("EXIPC_CLI_TEST_HOST"); role != "" {
		os.Exit(goHost(role, os.Args[len(os.Args)-2], os.Args[len(os.Args)-1]))
	}
	os.Exit(setupAndRun(m))
}

func setupAndRun(m *testing.M) int {
	var err error
	binDir, err = os.MkdirTemp("", "exipc-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	os.Chmod(binDir, 0o755)
	cliBin = filepath.Join(binDir, "exipc")
	if b, err := exec.Command("go", "build", "-o", cliBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, b)
		return 1
	}
	cHost = filepath.Join(binDir, "chost")
	if err := ctest.Build("../../native", cHost, []string{"testdata/chost.c"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	selfBin = filepath.Join(binDir, "self.test")
	if exe, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(exe); err == nil {
			os.WriteFile(selfBin, b, 0o755)
		}
	}
	return m.Run()
}

// goHost is this binary as a Go host of the domain: roles "member" (connect
// to SERVICE without being accepted, send 2, listen on go-svc), "pump"
// (a channel to itself, one message every millisecond), "idle" (open only).
// It prints "ready" and runs until stdin closes.
func goHost(role, name, service string) int {
	// No watcher: a host killed beside this one stays dead until the test's
	// `exipc reap`, as it would beside a peer that cannot watch it.
	native.SetNoWatch(true)
	d, err := exipc.Open(name, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gohost:", err)
		return 1
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stop := make(chan struct{})
	switch role {
	case "member":
		if _, err := d.Listen("go-svc"); err != nil {
			fmt.Fprintln(os.Stderr, "gohost:", err)
			return 1
		}
		c, err := d.Connect(ctx, service)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gohost:", err)
			return 1
		}
		for i := 0; i < 2; i++ {
			h, _, err := d.Alloc(100)
			if err == nil {
				err = c.Send(h)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "gohost:", err)
				return 1
			}
		}
	case "pump":
		l, err := d.Listen(service)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gohost:", err)
			return 1
		}
		c, err := d.Connect(ctx, service)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gohost:", err)
			return 1
		}
		s, err := l.Accept(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gohost:", err)
			return 1
		}
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				h, _, err := d.Alloc(64)
				if err != nil {
					continue
				}
				if c.Send(h) != nil {
					d.Free(h)
					continue
				}
				if r, err := s.Recv(context.Background()); err == nil {
					d.Free(r)
				}
			}
		}()
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	close(stop)
	time.Sleep(5 * time.Millisecond)
	return 0
}

type host struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	pidv  int
}

// startHost runs a host process and waits for its "ready".
func startHost(t *testing.T, cred *syscall.Credential, bin string, args ...string) *host {
	t.Helper()
	return startHostEnv(t, cred, nil, bin, args...)
}

func startHostEnv(t *testing.T, cred *syscall.Credential, env []string, bin string, args ...string) *host {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	h := &host{cmd, stdin, cmd.Process.Pid}
	t.Cleanup(func() { h.kill() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := sc.Scan() && sc.Text() == "ready"
		ready <- ok
		io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("%s %v: no ready line", bin, args)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s %v: not ready after 20 s", bin, args)
	}
	return h
}

func startGoHost(t *testing.T, cred *syscall.Credential, role, name, service string) *host {
	t.Helper()
	return startHostEnv(t, cred, []string{"EXIPC_CLI_TEST_HOST=" + role}, selfBin, "-test.run=^$", name, service)
}

func (h *host) pid() int { return h.pidv }

// stop closes stdin and waits for a clean exit.
func (h *host) stop(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("host %d: %v", h.pid(), err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("host %d did not exit", h.pid())
		h.cmd.Process.Kill()
	}
	h.cmd = nil
}

func (h *host) kill() {
	if h.cmd != nil && h.cmd.Process != nil {
		h.cmd.Process.Kill()
		h.cmd.Wait()
		h.cmd = nil
	}
}

// cli runs the command; returns stdout, stderr and the exit status.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return cliAs(t, nil, args...)
}

func cliAs(t *testing.T, cred *syscall.Credential, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(cliBin, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start exipc: %v", err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("exipc %v hung", args)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func uniqueName(tag string) string {
	return fmt.Sprintf("clitest-%s-%d-%d", tag, os.Getpid(), seq.Add(1))
}

func cleanup(t *testing.T, name string) {
	t.Cleanup(func() { os.Remove(domainPath(name)) })
}

func statJSONOf(t *testing.T, name string) statJSON {
	t.Helper()
	out, errs, rc := cli(t, "stat", name, "--json")
	if rc != 0 {
		t.Fatalf("stat --json: exit %d: %s", rc, errs)
	}
	var s statJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("stat --json: %v\n%s", err, out)
	}
	return s
}

func procByPid(s statJSON, pid int) *procJSON {
	for i := range s.Procs {
		if int(s.Procs[i].Pid) == pid {
			return &s.Procs[i]
		}
	}
	return nil
}

// C and Go hosts attached; stat, ls and rm see both; after the C host is
// SIGKILLed it is dead, reap cleans it, and rm goes through once the Go host
// has left.
func TestHostsKillReapRm(t *testing.T) {
	name := uniqueName("hosts")
	cleanup(t, name)
	c := startHost(t, nil, cHost, name, "c-svc", "5", "3")
	g := startGoHost(t, nil, "member", name, "c-svc")

	s := statJSONOf(t, name)
	if s.Name != name || s.Stat.ProcsAlive != 2 || s.Stat.Services != 2 || s.Stat.ChansBound != 2 {
		t.Errorf("stat: name %q procs_alive %d services %d chans_bound %d, want %q 2 2 2",
			s.Name, s.Stat.ProcsAlive, s.Stat.Services, s.Stat.ChansBound, name)
	}
	pc, pg := procByPid(s, c.pid()), procByPid(s, g.pid())
	if pc == nil || pg == nil || pc.State != "alive" || pg.State != "alive" {
		t.Fatalf("procs %+v: want both hosts (%d, %d) alive", s.Procs, c.pid(), g.pid())
	}
	// C host: 3 blocks kept (the 5 queued are in flight); its two ends, one service.
	if pc.BlocksOwned != 3 || pc.Chans != 2 || pc.Services != 1 {
		t.Errorf("C host %+v: want blocks_owned 3, chans 2, services 1", *pc)
	}
	if pg.Chans != 1 || pg.Services != 1 {
		t.Errorf("Go host %+v: want chans 1, services 1", *pg)
	}
	svc := map[string]serviceJSON{}
	for _, x := range s.ServiceList {
		svc[x.Name] = x
	}
	if x := svc["c-svc"]; int(x.Pid) != c.pid() || x.Pending != 1 {
		t.Errorf("service c-svc %+v: want pid %d, 1 pending connect (the Go host's)", x, c.pid())
	}
	if x := svc["go-svc"]; int(x.Pid) != g.pid() || x.Pending != 0 {
		t.Errorf("service go-svc %+v: want pid %d", x, g.pid())
	}
	var bound, pending *chanJSON
	for i := range s.Chans {
		switch s.Chans[i].State {
		case "bound":
			bound = &s.Chans[i]
		case "pending":
			pending = &s.Chans[i]
		}
	}
	if bound == nil || pending == nil {
		t.Fatalf("chans %+v: want one bound, one pending", s.Chans)
	}
	if int(bound.ClientPid) != c.pid() || int(bound.ServerPid) != c.pid() || bound.QueuedToServer != 5 ||
		bound.QueuedToClient != 0 || bound.Client.Sent != 5 || bound.Server.Received != 0 || bound.Service != "c-svc" {
		t.Errorf("bound chan %+v", *bound)
	}
	if int(pending.ClientPid) != g.pid() || pending.ServerPid != 0 || pending.QueuedToServer != 2 {
		t.Errorf("pending chan %+v: want client %d, no server, 2 queued", *pending, g.pid())
	}
	used := uint64(0)
	for _, cl := range s.Heap.Classes {
		used += cl.BlocksUsed
	}
	if used != 5+3+2 || used != s.Stat.HeapBlocksUsed {
		t.Errorf("heap classes hold %d blocks used, stat %d; want 10", used, s.Stat.HeapBlocksUsed)
	}

	// ls sees it, with both attached.
	out, _, rc := cli(t, "ls", "--json")
	var list []lsEntry
	if rc != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("ls --json: exit %d\n%s", rc, out)
	}
	found := false
	for _, e := range list {
		if e.Name == name {
			found = true
			if !e.Ok || e.ProcsAlive != 2 || e.Mode != "0600" || e.UID != uint32(os.Geteuid()) ||
				e.Path != "/dev/shm/exipc."+name || e.Bytes <= 0 {
				t.Errorf("ls entry %+v", e)
			}
		}
	}
	if !found {
		t.Errorf("ls --json: %s missing", name)
	}
	out, _, _ = cli(t, "ls")
	if !strings.Contains(out, name) || !strings.HasPrefix(out, "NAME") {
		t.Errorf("ls:\n%s", out)
	}

	// rm refuses, naming who is attached.
	_, errs, rc := cli(t, "rm", name)
	if rc != 1 || !strings.Contains(errs, strconv.Itoa(c.pid())) || !strings.Contains(errs, strconv.Itoa(g.pid())) {
		t.Errorf("rm with two live hosts: exit %d, stderr %q: want 1 naming pids %d and %d", rc, errs, c.pid(), g.pid())
	}
	if _, err := os.Stat(domainPath(name)); err != nil {
		t.Fatalf("rm removed a live domain")
	}

	// Kill the C host: dead, then reaped.
	c.kill()
	s = statJSONOf(t, name)
	if p := procByPid(s, c.pid()); p == nil || p.State != "dead" || s.Stat.ProcsAlive != 1 {
		t.Errorf("after SIGKILL: %+v, procs_alive %d: want the C host dead", p, s.Stat.ProcsAlive)
	}
	out, errs, rc = cli(t, "reap", name)
	if rc != 0 || !strings.Contains(out, "reaped 1 ") || !strings.Contains(out, fmt.Sprintf("(pid %d)", c.pid())) {
		t.Errorf("reap: exit %d\n%s%s", rc, out, errs)
	}
	s = statJSONOf(t, name)
	if procByPid(s, c.pid()) != nil || s.Stat.ReapedProcs != 1 || len(s.Procs) != 1 || s.Stat.HeapBlocksUsed != 0 {
		// The Go host's two blocks were in flight towards the dead listener: freed too.
		t.Errorf("after reap: procs %+v reaped %d blocks %d: want the Go host alone, 1 reaped, no block used",
			s.Procs, s.Stat.ReapedProcs, s.Stat.HeapBlocksUsed)
	}
	if out, _, _ = cli(t, "reap", name); !strings.Contains(out, "reaped 0 ") {
		t.Errorf("second reap:\n%s", out)
	}

	// Human stat prints the tables.
	out, _, rc = cli(t, "stat", name)
	for _, want := range []string{"PROCESSES", "SERVICES", "CHANNELS", "HEAP", "go-svc", strconv.Itoa(g.pid())} {
		if rc != 0 || !strings.Contains(out, want) {
			t.Errorf("stat: exit %d, no %q in\n%s", rc, want, out)
		}
	}

	g.stop(t)
	out, errs, rc = cli(t, "rm", name)
	if rc != 0 || !strings.Contains(out, "removed") {
		t.Errorf("rm with nobody attached: exit %d %s%s", rc, out, errs)
	}
	if _, err := os.Stat(domainPath(name)); err == nil {
		t.Errorf("rm left the file")
	}
	if _, errs, rc = cli(t, "stat", name); rc != 1 || !strings.Contains(errs, name) || !strings.Contains(errs, "no such domain") {
		t.Errorf("stat of a removed domain: exit %d, %q", rc, errs)
	}
}

func TestRmForce(t *testing.T) {
	name := uniqueName("force")
	cleanup(t, name)
	g := startGoHost(t, nil, "idle", name, "x")
	if _, _, rc := cli(t, "rm", name); rc != 1 {
		t.Fatalf("rm: exit %d, want 1", rc)
	}
	if out, errs, rc := cli(t, "rm", "--force", name); rc != 0 {
		t.Fatalf("rm --force: exit %d %s%s", rc, out, errs)
	}
	if _, err := os.Stat(domainPath(name)); err == nil {
		t.Errorf("rm --force left the file")
	}
	g.stop(t)
}

// A file that is not a domain: listed with its error, refused by stat (1),
// kept by rm unless --force.
func TestGarbageFile(t *testing.T) {
	name := "x"
	f, err := os.OpenFile(domainPath(name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		name = uniqueName("x") // exipc.x is someone else's right now
		f, err = os.OpenFile(domainPath(name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
	}
	cleanup(t, name)
	f.Write(bytes.Repeat([]byte("not a domain "), 500))
	f.Close()
	out, _, rc := cli(t, "ls", "--json")
	var list []lsEntry
	if rc != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("ls --json with a garbage file: exit %d\n%s", rc, out)
	}
	seen := false
	for _, e := range list {
		if e.Name == name {
			seen = true
			if e.Ok || !strings.Contains(e.Error, "not a valid domain") || e.Bytes != 6500 {
				t.Errorf("ls entry of garbage: %+v", e)
			}
		}
	}
	if !seen {
		t.Errorf("ls does not list %s", name)
	}
	for _, cmd := range []string{"stat", "metrics", "reap", "top"} {
		_, errs, rc := cli(t, cmd, name)
		if rc != 1 || !strings.Contains(errs, `"`+name+`"`) || !strings.Contains(errs, "protocol error") {
			t.Errorf("%s of garbage: exit %d, stderr %q: want 1, the name and the errno text", cmd, rc, errs)
		}
	}
	if _, _, rc := cli(t, "rm", name); rc != 1 {
		t.Errorf("rm of garbage without --force: exit %d, want 1", rc)
	}
	if _, _, rc := cli(t, "rm", "--force", name); rc != 0 {
		t.Errorf("rm --force of garbage: exit %d", rc)
	}
	if _, err := os.Stat(domainPath(name)); err == nil {
		t.Errorf("garbage file still there")
	}
}

// A domain scribbled on: a bad header, a bad table entry, a truncated file.
// Each gives exit 1 and the errno text, within the time limit of cli().
func TestScribbled(t *testing.T) {
	name := uniqueName("scrib")
	cleanup(t, name)
	h := startHost(t, nil, cHost, name, "s", "1", "1")
	h.stop(t)
	lay, rc := native.LayoutOf(nil)
	if rc != 0 {
		t.Fatal(rc)
	}
	orig, err := os.ReadFile(domainPath(name))
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(domainPath(name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, errs, rc := cli(t, "stat", name); rc != 0 {
		t.Fatalf("stat of the intact domain: exit %d %s", rc, errs)
	}
	cases := []struct {
		what string
		edit func([]byte) []byte
	}{
		{"magic", func(b []byte) []byte { b[0] ^= 0xff; return b }},
		{"header size", func(b []byte) []byte { b[24] ^= 0x10; return b }},
		{"proc state", func(b []byte) []byte { b[lay.OffProcs] = 77; return b }},
		{"channel state", func(b []byte) []byte { b[lay.OffChans] = 9; return b }},
		{"service state", func(b []byte) []byte { b[lay.OffServices] = 5; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"header only", func(b []byte) []byte { return b[:100] }},
	}
	for _, tc := range cases {
		b := append([]byte(nil), orig...)
		write(tc.edit(b))
		for _, cmd := range []string{"stat", "metrics"} {
			_, errs, rc := cli(t, cmd, name)
			if rc != 1 || !strings.Contains(errs, name) || !strings.Contains(errs, "protocol error") {
				t.Errorf("%s, %s: exit %d, stderr %q: want 1 with the domain and the errno text", tc.what, cmd, rc, errs)
			}
		}
	}
}

// Another user's domain: ls shows its owner; that user cannot read ours.
func TestOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a domain as user nobody: skipped")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody: skipped")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	nobody := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	theirs := uniqueName("nobody")
	cleanup(t, theirs)
	h := startHost(t, nobody, cHost, theirs, "n", "1", "1")
	out, _, rc := cli(t, "ls", "--json")
	var list []lsEntry
	if rc != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("ls --json: exit %d", rc)
	}
	seen := false
	for _, e := range list {
		if e.Name == theirs {
			seen = true
			if e.UID != uint32(uid) || e.Owner != "nobody" || e.Mode != "0600" || !e.Ok || e.ProcsAlive != 1 {
				t.Errorf("ls entry of nobody's domain: %+v", e)
			}
		}
	}
	if !seen {
		t.Errorf("ls does not list %s", theirs)
	}
	// Root may read it; reaping it (writing) follows the core's trust rule.
	if s := statJSONOf(t, theirs); s.UID != uint32(uid) || s.Stat.ProcsAlive != 1 || int(s.Procs[0].Pid) != h.pid() {
		t.Errorf("stat of nobody's domain: uid %d procs %+v", s.UID, s.Procs)
	}
	if _, errs, rc := cli(t, "reap", theirs); rc != 1 || !strings.Contains(errs, "permission denied") {
		t.Errorf("reap of nobody's 0600 domain as root: exit %d %q, want 1 permission denied", rc, errs)
	}
	// nobody cannot read a domain of ours.
	ours := uniqueName("root")
	cleanup(t, ours)
	g := startGoHost(t, nil, "idle", ours, "x")
	_, errs, rc := cliAs(t, nobody, "stat", ours)
	if rc != 1 || !strings.Contains(errs, ours) || !strings.Contains(errs, "permission denied") {
		t.Errorf("stat of root's domain as nobody: exit %d %q, want 1 permission denied", rc, errs)
	}
	if _, errs, rc = cliAs(t, nobody, "rm", ours); rc != 1 {
		t.Errorf("rm of root's domain as nobody: exit %d %q", rc, errs)
	}
	g.stop(t)
	h.stop(t)
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"frob"}, {"stat"}, {"stat", "a", "b"}, {"ls", "x"}, {"ls", "--bogus"},
		{"top", "x", "--interval", "1ns"}} {
		if _, errs, rc := cli(t, args...); rc != 2 || !strings.Contains(errs, "usage") {
			t.Errorf("exipc %v: exit %d %q, want 2 with usage", args, rc, errs)
		}
	}
	if _, errs, rc := cli(t, "stat", "bad/name"); rc != 1 || !strings.Contains(errs, "bad/name") {
		t.Errorf("stat bad/name: exit %d %q", rc, errs)
	}
	before, _ := listNames()
	cli(t, "stat", "clitest-never-there")
	cli(t, "reap", "clitest-never-there")
	cli(t, "metrics", "clitest-never-there")
	if _, err := os.Stat(domainPath("clitest-never-there")); err == nil {
		t.Errorf("an absent name was created")
	}
	_ = before
}

// top under tmux: it draws, shows a rate for a channel that carries
// messages, redraws in place, and q quits.
func TestTopTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed: skipped")
	}
	name := uniqueName("top")
	cleanup(t, name)
	g := startGoHost(t, nil, "pump", name, "pump")
	sock := fmt.Sprintf("exipc-cli-%d", os.Getpid())
	tmux := func(args ...string) (string, error) {
		b, err := exec.Command("tmux", append([]string{"-L", sock}, args...)...).CombinedOutput()
		return string(b), err
	}
	defer tmux("kill-server")
	if out, err := tmux("new-session", "-d", "-x", "200", "-y", "50", "-s", "top",
		cliBin+" top "+name+" --interval 200ms; sleep 30"); err != nil {
		t.Fatalf("tmux new-session: %v %s", err, out)
	}
	var screen string
	deadline := time.Now().Add(15 * time.Second)
	rateSeen := false
	for time.Now().Before(deadline) && !rateSeen {
		time.Sleep(200 * time.Millisecond)
		screen, _ = tmux("capture-pane", "-p", "-t", "top")
		for _, line := range strings.Split(screen, "\n") {
			f := strings.Fields(line)
			// CHAN SERVICE STATE C-PID S-PID Q Q SENT-C SENT-S MSG/S-C>S ...
			if len(f) >= 10 && f[1] == "pump" && f[2] == "bound" {
				if r, err := strconv.ParseFloat(f[9], 64); err == nil && r > 0 {
					rateSeen = true
				}
			}
		}
	}
	if !strings.Contains(screen, "exipc top "+name) || !strings.Contains(screen, "MSG/S C>S") {
		t.Fatalf("top screen:\n%s", screen)
	}
	if !rateSeen {
		t.Errorf("top shows no message rate for the pumping channel:\n%s", screen)
	}
	if n := strings.Count(screen, "exipc top "+name); n != 1 {
		t.Errorf("title shown %d times: not redrawn in place:\n%s", n, screen)
	}
	if _, err := tmux("send-keys", "-t", "top", "q"); err != nil {
		t.Fatal(err)
	}
	// After q, top exits and the shell's `sleep` runs: no exipc process left
	// in the pane, and the normal screen is back (the title is gone).
	quit := false
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		cmdName, _ := tmux("display-message", "-p", "-t", "top", "#{pane_current_command}")
		screen, _ = tmux("capture-pane", "-p", "-t", "top")
		if strings.TrimSpace(cmdName) == "sleep" && !strings.Contains(screen, "exipc top") {
			quit = true
			break
		}
	}
	if !quit {
		t.Errorf("q did not quit top:\n%s", screen)
	}
	g.stop(t)
}
