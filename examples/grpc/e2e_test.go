package grpcexample

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/examples/grpc/echo"
)

// The server runs as its own process (built from ./server); this test
// process is the client: 10,000 verified unary calls and 10,000 verified
// stream messages over exipc, fewer over a Unix socket and TCP (the same
// client code, another dialer).
func TestTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	if out, err := exec.Command("go", "build", "-o", bin, "./server").CombinedOutput(); err != nil {
		t.Fatalf("go build ./server: %v\n%s", err, out)
	}
	name := fmt.Sprintf("grpcex-%d", os.Getpid())
	t.Cleanup(func() {
		if err := exipc.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unlink: %v", err)
		}
	})
	calls := 10000
	if testing.Short() {
		calls = 2000
	}
	for _, tc := range []struct {
		network, addr string
		calls         int
	}{
		{"exipc", name + "/echo", calls},
		{"unix", filepath.Join(dir, "echo.sock"), 1000},
		{"tcp", "127.0.0.1:0", 1000},
	} {
		t.Run(tc.network, func(t *testing.T) {
			addr := tc.addr
			if tc.network == "tcp" {
				addr = freePort(t)
			}
			cmd := exec.Command(bin, "-net", tc.network, "-addr", addr)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
			line := make([]byte, 6)
			if _, err := io.ReadFull(out, line); err != nil || string(line) != "ready\n" {
				t.Fatalf("server did not start: %q %v", line, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			t0 := time.Now()
			for _, size := range []int{64, 4096} {
				if err := echo.Run(ctx, tc.network, addr, tc.calls, tc.calls, size); err != nil {
					t.Fatalf("%d B: %v", size, err)
				}
			}
			t.Logf("%s: 2 x (%d unary + %d stream) verified in %v", tc.network, tc.calls, tc.calls, time.Since(t0))
		})
	}
}

func freePort(t *testing.T) string {
	l, _, err := echo.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
