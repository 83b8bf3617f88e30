package conntest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/conn"
)

var seq atomic.Int64

func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
}

func domain(t *testing.T) (*exipc.Domain, string) {
	t.Helper()
	name := unique("nettest")
	d, err := exipc.Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		if err := exipc.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unlink: %v", err)
		}
	})
	return d, name
}

// Both ends in this process.
func TestConnInProcess(t *testing.T) {
	d, _ := domain(t)
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		svc := unique("svc")
		l, err := conn.Listen(d, svc)
		if err != nil {
			return nil, nil, nil, err
		}
		defer l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c1, err = conn.Dial(ctx, d, svc); err != nil {
			return nil, nil, nil, err
		}
		if c2, err = l.Accept(); err != nil {
			c1.Close()
			return nil, nil, nil, err
		}
		return c1, c2, func() { c1.Close(); c2.Close() }, nil
	})
}

const relayEnv = "EXIPC_NETTEST_RELAY"

// TestRelay is the other process of TestConnCrossProcess: for each exipc
// stream it accepts it dials the test's Unix socket and copies bytes both
// ways, closing each side when the other ends. (It does nothing unless
// started by that test.)
func TestRelay(t *testing.T) {
	arg := os.Getenv(relayEnv)
	if arg == "" {
		t.Skip("the relay process of TestConnCrossProcess")
	}
	f := strings.Fields(arg)
	name, svc, sock := f[0], f[1], f[2]
	d, err := exipc.Open(name, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
	l, err := conn.Listen(d, svc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	var wg sync.WaitGroup
	for {
		x, err := l.Accept()
		if err != nil {
			break
		}
		u, err := net.Dial("unix", sock)
		if err != nil { // the test is over
			x.Close()
			break
		}
		wg.Add(2)
		go func() { // exipc -> unix
			defer wg.Done()
			io.Copy(u, x)
			u.(*net.UnixConn).CloseWrite()
		}()
		go func() { // unix -> exipc
			defer wg.Done()
			io.Copy(x, u)
			x.Close()
			u.Close()
		}()
	}
	wg.Wait()
	os.Exit(0)
}

// c1 is an exipc stream to another process, which relays it to c2, a Unix
// socket of this process: every deadline, close and back-pressure case of
// the suite runs on c1 with its peer in the other process.
func TestConnCrossProcess(t *testing.T) {
	d, name := domain(t)
	sock := filepath.Join(t.TempDir(), "relay.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	svc := unique("relay")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestRelay$", "-test.count=1")
	cmd.Env = append(os.Environ(), relayEnv+"="+name+" "+svc+" "+sock)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line := make([]byte, 6)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("relay did not start: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)

	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c1, err = conn.Dial(ctx, d, svc); err != nil {
			return nil, nil, nil, err
		}
		ul.(*net.UnixListener).SetDeadline(time.Now().Add(10 * time.Second))
		if c2, err = ul.Accept(); err != nil {
			c1.Close()
			return nil, nil, nil, err
		}
		return c1, c2, func() { c1.Close(); c2.Close() }, nil
	})
	ul.Close()
}
