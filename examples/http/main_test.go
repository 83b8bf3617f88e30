package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/exipc/exipc"
)

// TestServerProcess is the server of TestTwoProcesses when started by it.
func TestServerProcess(t *testing.T) {
	name := os.Getenv("EXIPC_HTTP_EXAMPLE")
	if name == "" {
		t.Skip("the server process of TestTwoProcesses")
	}
	d, err := exipc.Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := serve(d, "web"); err != nil {
		t.Fatal(err)
	}
}

// The server in its own process; GETs and POSTs from 8 goroutines of this
// one, every body checked.
func TestTwoProcesses(t *testing.T) {
	name := fmt.Sprintf("httpex-%d", os.Getpid())
	d, err := exipc.Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		d.Close()
		if err := exipc.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Error(err)
		}
	}()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^TestServerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "EXIPC_HTTP_EXAMPLE="+name)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	line := make([]byte, 6)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("server did not start: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)

	c := Client(d, "web")
	defer c.CloseIdleConnections()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < 250; i++ {
				if i%2 == 0 {
					resp, err := c.Get("http://web/hello")
					if err != nil {
						errc <- err
						return
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || string(b) != "hello over exipc" {
						errc <- fmt.Errorf("GET: %q, %v", b, err)
						return
					}
					continue
				}
				body := make([]byte, r.Intn(200<<10))
				r.Read(body)
				resp, err := c.Post("http://web/echo", "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					errc <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(b, body) {
					errc <- fmt.Errorf("POST of %d B: got %d B back, %v", len(body), len(b), err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}
