package stub_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
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
	"github.com/exipc/exipc/stub"
)

var cpeer struct {
	once sync.Once
	path string
	err  error
}

// stubPeer returns native/test/stub_peer.c built: $EXIPC_STUB_PEER, or built
// once with the C core's sources.
func stubPeer(t *testing.T) string {
	cpeer.once.Do(func() {
		if p := os.Getenv("EXIPC_STUB_PEER"); p != "" {
			cpeer.path = p
			return
		}
		dir, err := os.MkdirTemp("", "stubpeer")
		if err != nil {
			cpeer.err = err
			return
		}
		out := filepath.Join(dir, "stub_peer")
		if err := ctest.Build("../native", out, []string{"../native/test/stub_peer.c"}); err != nil {
			cpeer.err = err
			return
		}
		cpeer.path = out
	})
	if cpeer.err != nil {
		t.Fatal(cpeer.err)
	}
	return cpeer.path
}

// TestGoClientCServer: a Go client calls the C stub server in another
// process; then the server is killed mid-call.
func TestGoClientCServer(t *testing.T) {
	d, name := openDomain(t, &exipc.Options{Size: 16 << 20})
	cmd := exec.Command(stubPeer(t), "server", name, "csvc")
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, _ := bufio.NewReader(out).ReadString('\n'); !strings.Contains(line, "serving") {
		t.Fatalf("C server said %q", line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := stub.Dial(ctx, d, "csvc")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runCalls(t, c, 4, 100)

	// Killed while a call is in flight: ErrPeerDead, in bounded time.
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, opSleep, binary.LittleEndian.AppendUint32(nil, 5000))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	select {
	case err := <-done:
		if !errors.Is(err, exipc.ErrPeerDead) {
			t.Errorf("call to a killed server: %v, want ErrPeerDead", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("call to a killed server still waits after 3 s")
	}
	// The client reconnects by itself: a later call waits for a new server,
	// and with none coming it ends with its context.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := c.Call(short, opEcho, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("next call with no server: %v, want context.DeadlineExceeded", err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v between servers, want nil (it reconnects)", err)
	}
	c.Close()
	d.Reap()
	waitBlocks(t, d, 0)
}

// TestCClientGoServer: the C stub client, in another process, calls a Go
// server: pipelined echoes checked byte for byte, an error reply, an
// unknown op, a deadline.
func TestCClientGoServer(t *testing.T) {
	d, name := openDomain(t, &exipc.Options{Size: 16 << 20})
	l, err := d.Listen("gosvc")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- testServer(d).Serve(ctx, l) }()
	defer func() {
		cancel()
		<-served
		l.Close()
	}()
	cmd := exec.Command(stubPeer(t), "client", name, "gosvc", "500")
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "calls ok") {
		t.Fatalf("C client: %v\n%s", err, b)
	}
	d.Reap()
	waitBlocks(t, d, 0)
}
