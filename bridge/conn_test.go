package main

// conn streams (net.Conn over an exipc service) through two bridges: a
// conn.Listen server in a process of its own in domain B (exported), conn.Dial
// clients in domain A (imported).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/conn"
)

// The conn server's commands: the first byte a client writes.
const (
	connEcho  = 'e' // echo every byte back; at the client's EOF, Close
	connGen   = 'g' // 8 bytes id, 8 bytes n: write n pattern bytes, CloseWrite, then read the client's bytes to EOF and keep the verdict under id
	connQuery = 'q' // 8 bytes id: write the verdict of that 'g', Close
	connHold  = 'h' // write "ok", then hold the stream open
)

// streamByte is byte i of every test stream: a function of the offset, so
// that any split into writes and reads can be checked.
func streamByte(i int) byte { return byte(i*7 + i>>11 + i>>19) }

func fillStream(b []byte, off int) {
	for k := range b {
		b[k] = streamByte(off + k)
	}
}

// checkStream reports the first offset where b differs from the stream at
// off, or -1.
func checkStream(b []byte, off int) int {
	for k, c := range b {
		if c != streamByte(off+k) {
			return off + k
		}
	}
	return -1
}

// connServerMain is the conn server process (BRIDGE_TEST_AS=connserver):
// it listens with conn.Listen on CONN_SERVICE of CONN_DOMAIN.
func connServerMain() int {
	d, err := exipc.Open(os.Getenv("CONN_DOMAIN"), &exipc.Options{AttachOnly: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer d.Close()
	// A killed predecessor's listener is gone once the domain reaps it.
	l, err := conn.Listen(d, os.Getenv("CONN_SERVICE"))
	for deadline := time.Now().Add(5 * time.Second); errors.Is(err, exipc.ErrServiceExists) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		d.Reap()
		l, err = conn.Listen(d, os.Getenv("CONN_SERVICE"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var mu sync.Mutex
	verdicts := map[uint64]string{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveConn(c, &mu, verdicts)
		}
	}()
	readyUntilSignal()
	l.Close()
	return 0
}

func serveConn(c net.Conn, mu *sync.Mutex, verdicts map[uint64]string) {
	defer c.Close()
	var cmd [1]byte
	if _, err := io.ReadFull(c, cmd[:]); err != nil {
		return
	}
	switch cmd[0] {
	case connEcho:
		if _, err := io.Copy(c, c); err != nil {
			fmt.Fprintln(os.Stderr, "conn server: echo:", err)
		}
	case connGen:
		var hdr [16]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		id, n := binary.LittleEndian.Uint64(hdr[:]), int(binary.LittleEndian.Uint64(hdr[8:]))
		verdict := "ok"
		buf := make([]byte, 300<<10)
		for off := 0; off < n && verdict == "ok"; {
			k := min(n-off, 1+off%len(buf)) // writes of every size up to 300 KiB
			fillStream(buf[:k], off)
			if _, err := c.Write(buf[:k]); err != nil {
				verdict = "write: " + err.Error()
			}
			off += k
		}
		if verdict == "ok" {
			if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				verdict = "close write: " + err.Error()
			}
		}
		if verdict == "ok" { // the client's stream after our EOF: half closed
			got := 0
			for {
				k, err := c.Read(buf)
				if bad := checkStream(buf[:k], got); bad >= 0 {
					verdict = "client byte " + strconv.Itoa(bad) + " differs"
					break
				}
				got += k
				if err == io.EOF {
					verdict = "ok " + strconv.Itoa(got)
					break
				}
				if err != nil {
					verdict = "read: " + err.Error()
					break
				}
			}
		}
		mu.Lock()
		verdicts[id] = verdict
		mu.Unlock()
	case connQuery:
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		mu.Lock()
		v, ok := verdicts[binary.LittleEndian.Uint64(hdr[:])]
		mu.Unlock()
		if !ok {
			v = "no such session"
		}
		c.Write([]byte(v))
	case connHold:
		c.Write([]byte("ok"))
		io.Copy(io.Discard, c)
	}
}

// connRig: NATS, domain B with the conn server process and its exporting
// bridge, domain A with its importing bridge.
type connRig struct {
	ns     *natsServer
	a, b   *host
	ba, bb *proc
	server *proc
	svc    string
}

func newConnRig(t *testing.T) *connRig {
	r := &connRig{svc: "cstream"}
	r.ns, r.a, r.b, r.ba, r.bb = twoHosts(t, r.svc)
	r.startServer(t)
	return r
}

func (r *connRig) startServer(t *testing.T) {
	exe, _ := os.Executable()
	r.server = startProc(t, "conn-server", []string{"BRIDGE_TEST_AS=connserver",
		"CONN_DOMAIN=" + r.b.name, "CONN_SERVICE=" + r.svc}, exe)
}

func (r *connRig) dial(t *testing.T, cmd byte, args ...uint64) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := conn.Dial(ctx, r.a.d, r.svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second)) // a lost byte or mark fails, not hangs
	msg := []byte{cmd}
	for _, a := range args {
		msg = binary.LittleEndian.AppendUint64(msg, a)
	}
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	return c
}

// writeSizes are the sizes of the client's writes, in turn: single bytes,
// the edges of the stream's 64 KiB blocks and of the heap's classes, and
// writes of several MiB.
var writeSizes = []int{1, 2, 3, 7, 8, 9, 63, 64, 65, 100, 1000, 4087, 4088, 4095, 4096, 4097,
	16383, 16384, 16385, 65527, 65528, 65535, 65536, 65537, 131077, 1 << 20, 3<<20 + 17, 1, 5, 300}

// readSizes are the sizes of the reader's buffers, in turn.
var readSizes = []int{1, 13, 4096, 65536, 1 << 20, 7, 300 << 10}

// readStream reads the stream from c until io.EOF (which it wants), checking
// every byte, and returns how many.
func readStream(c net.Conn) (int, error) {
	buf := make([]byte, 1<<20)
	got := 0
	for i := 0; ; i++ {
		k, err := c.Read(buf[:readSizes[i%len(readSizes)]])
		if bad := checkStream(buf[:k], got); bad >= 0 {
			return got, fmt.Errorf("byte %d differs", bad)
		}
		got += k
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
}

// writeStream writes total bytes of the stream to c in writes of writeSizes
// (starting at size index start) and returns the first error.
func writeStream(c net.Conn, total, start int) error {
	buf := make([]byte, 4<<20)
	for off, i := 0, start; off < total; i++ {
		k := min(total-off, writeSizes[i%len(writeSizes)])
		fillStream(buf[:k], off)
		n, err := c.Write(buf[:k])
		if err != nil {
			return err
		}
		if n != k {
			return fmt.Errorf("short write: %d of %d", n, k)
		}
		off += k
	}
	return nil
}

// TestConnEchoThroughBridge: streams of every write size (1 byte to 3 MiB)
// echoed by the conn server behind the bridges, checked byte for byte while
// both directions flow at once; the client's CloseWrite reaches the server
// as io.EOF, and the server's Close reaches the client as io.EOF after the
// whole echo. Four streams at once.
func TestConnEchoThroughBridge(t *testing.T) {
	r := newConnRig(t)
	total := 0
	for _, s := range writeSizes {
		total += s
	}
	total = total*2 + 12345
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for s := 0; s < 4; s++ {
		c := r.dial(t, connEcho)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := writeStream(c, total, s); err != nil {
				errs <- fmt.Errorf("stream %d: write: %v", s, err)
				return
			}
			if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				errs <- fmt.Errorf("stream %d: close write: %v", s, err)
			}
		}()
		go func() {
			defer wg.Done()
			got, err := readStream(c)
			if err == nil && got != total {
				err = fmt.Errorf("io.EOF after %d bytes, want %d", got, total)
			}
			if err != nil {
				errs <- fmt.Errorf("stream %d: read: %v", s, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitNoBlocks(t, r.a)
}

// TestConnHalfCloseThroughBridge: the server writes a stream and shuts its
// side (CloseWrite); the client reads it to io.EOF, then writes its own
// stream, which the server reads to io.EOF after the client's Close; the
// server's verdict comes back on a second stream.
func TestConnHalfCloseThroughBridge(t *testing.T) {
	r := newConnRig(t)
	for i, n := range []int{0, 1, 65536, 5<<20 + 3} {
		id := uint64(i + 1)
		c := r.dial(t, connGen, id, uint64(n))
		got, err := readStream(c)
		if err != nil {
			t.Fatalf("session %d: read: %v after %d bytes", id, err, got)
		}
		if got != n {
			t.Fatalf("session %d: io.EOF after %d bytes, want %d", id, got, n)
		}
		back := 2*n + 1
		if err := writeStream(c, back, i); err != nil {
			t.Fatalf("session %d: write after the server's CloseWrite: %v", id, err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("session %d: close: %v", id, err)
		}
		want := "ok " + strconv.Itoa(back)
		var verdict string
		for deadline := time.Now().Add(10 * time.Second); ; {
			q := r.dial(t, connQuery, id)
			b, err := io.ReadAll(q)
			if err != nil {
				t.Fatalf("session %d: query: %v", id, err)
			}
			q.Close()
			if verdict = string(b); verdict != "no such session" || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if verdict != want {
			t.Fatalf("session %d: the server says %q, want %q", id, verdict, want)
		}
	}
	waitNoBlocks(t, r.a)
}

// holdConn opens a held stream and reads its "ok".
func (r *connRig) holdConn(t *testing.T) net.Conn {
	t.Helper()
	c := r.dial(t, connHold)
	var ok [2]byte
	if _, err := io.ReadFull(c, ok[:]); err != nil || string(ok[:]) != "ok" {
		t.Fatalf("held stream: %q, %v", ok, err)
	}
	return c
}

// readDies checks that a Read blocked on c ends, within 2 s of kill, with an
// error matching exipc.ErrPeerDead, and that a Write then fails too.
func readDies(t *testing.T, c net.Conn, what string, kill func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		var b [16]byte
		_, err := c.Read(b[:])
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	kill()
	select {
	case err := <-done:
		if !errors.Is(err, exipc.ErrPeerDead) {
			t.Fatalf("%s killed: Read gave %v, want an error matching ErrPeerDead", what, err)
		}
		t.Logf("%s killed: Read gave ErrPeerDead after %v", what, time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatalf("%s killed: Read still waits after 2 s", what)
	}
	if _, err := c.Write(bytes.Repeat([]byte{1}, 100)); !errors.Is(err, exipc.ErrPeerDead) {
		t.Fatalf("%s killed: Write gave %v, want an error matching ErrPeerDead", what, err)
	}
}

// TestConnKillThroughBridge: a held stream whose server process is killed
// (SIGKILL) ends with ErrPeerDead, not io.EOF; so does one whose exporting
// bridge is killed, and one whose NATS server is killed; a new server and
// bridge serve new streams, and so does NATS once it is back.
func TestConnKillThroughBridge(t *testing.T) {
	r := newConnRig(t)
	readDies(t, r.holdConn(t), "conn server", r.server.kill)
	r.startServer(t)
	readDies(t, r.holdConn(t), "exporting bridge", r.bb.kill)
	r.bb = startBridge(t, r.b, r.ns.url(), "-export", r.svc)
	readDies(t, r.holdConn(t), "NATS server", r.ns.p.kill)
	r.ns.start()
	for deadline := time.Now().Add(15 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		c, err := conn.Dial(ctx, r.a.d, r.svc)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		_, err = c.Write(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64([]byte{connGen}, 99), 100000))
		got := 0
		if err == nil {
			got, err = readStream(c)
		}
		c.Close()
		if err == nil && got == 100000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after NATS came back, a new stream still fails: %d bytes, %v", got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
