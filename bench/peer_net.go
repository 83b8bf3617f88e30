package main

// The byte-stream peers: Unix domain socket, pipe and TCP loopback, the same
// workloads as exipc's. Messages are SIZE bytes back to back; the sender
// copies its payload into a buffer and writes it, the receiver reads it all
// into a buffer and reads every byte.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

// netListen starts listening for transport unix (addr: a path) or tcp
// (127.0.0.1, a free port) and says "ready addr=ADDR".
func netListen(a args) net.Listener {
	tr := a.str("tr", "\x00")
	var ln net.Listener
	var err error
	switch tr {
	case "unix":
		path := a.str("addr", "\x00")
		os.Remove(path)
		ln, err = net.Listen("unix", path)
	case "tcp":
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	default:
		fatalf("no listener for transport %q", tr)
	}
	if err != nil {
		fatalf("listen: %v", err)
	}
	fmt.Printf("ready addr=%s\n", ln.Addr().String())
	return ln
}

// netConn returns the server's or the client's end of the byte stream.
// Pipes: the driver hands fd 3 (read) and fd 4 (write) to both ends.
func netConn(a args, server bool) (io.Reader, io.Writer, func()) {
	tr := a.str("tr", "\x00")
	if tr == "pipe" {
		if server {
			fmt.Println("ready")
		}
		r, w := os.NewFile(3, "pipe-r"), os.NewFile(4, "pipe-w")
		return r, w, func() { w.Close(); r.Close() }
	}
	if server {
		ln := netListen(a)
		c, err := ln.Accept()
		if err != nil {
			fatalf("accept: %v", err)
		}
		ln.Close()
		return c, c, func() { c.Close() }
	}
	c := netDial(a)
	return c, c, func() { c.Close() }
}

func netDial(a args) net.Conn {
	network := a.str("tr", "\x00")
	c, err := net.Dial(network, a.str("addr", "\x00"))
	if err != nil {
		fatalf("dial: %v", err)
	}
	return c
}

// netPingPongServer echoes messages until the client closes.
func netPingPongServer(a args) {
	size := a.int("size", 64)
	r, w, closeFn := netConn(a, true)
	buf, out, src := make([]byte, size), make([]byte, size), makeSrc(size)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			fatalf("read: %v", err)
		}
		sink += touch(buf)
		copy(out, src)
		put64(out, get64(buf)+1)
		if _, err := w.Write(out); err != nil {
			fatalf("write: %v", err)
		}
	}
	closeFn()
	report(0, 0, 0, -1)
}

// netPingPongClient times n round trips after warm ones.
func netPingPongClient(a args) {
	size, n := a.int("size", 64), a.int("n", 1000)
	warm := a.int("warm", n/10)
	r, w, closeFn := netConn(a, false)
	buf, out, src := make([]byte, size), make([]byte, size), makeSrc(size)
	samples := make([]uint32, n)
	var start int64
	t := nanotime()
	for i := 0; i < n+warm; i++ {
		if i == warm {
			start = nanotime()
			t = start
		}
		copy(out, src)
		put64(out, uint64(i))
		if _, err := w.Write(out); err != nil {
			fatalf("write: %v", err)
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			fatalf("read: %v", err)
		}
		sink += touch(buf)
		if v := get64(buf); v != uint64(i)+1 {
			fatalf("reply %d to %d", v, i)
		}
		t2 := nanotime()
		if i >= warm {
			samples[i-warm] = clamp32(t2 - t)
		}
		t = t2
	}
	writeSamples(a.str("out", ""), samples)
	closeFn()
	report(start, t, n, -1)
}

// netBatch is how many messages a batched sender writes with one call.
func netBatch(size, batch int) int { return max(1, min(batch, (4<<20)/size)) }

// netStreamSend writes n+warm messages: one write each (batch=1) or batch
// messages per write.
func netStreamSend(a args) {
	size, batch := a.int("size", 64), max(a.int("batch", 1), 1)
	total := a.int("n", 100000) + a.int("warm", 0)
	_, w, closeFn := netConn(a, false)
	src := makeSrc(size)
	k := netBatch(size, batch)
	buf := make([]byte, k*size)
	for i := 0; i < total; {
		m := min(k, total-i)
		for j := range m {
			msg := buf[j*size : (j+1)*size]
			copy(msg, src)
			put64(msg, uint64(i+j))
		}
		if _, err := w.Write(buf[:m*size]); err != nil {
			fatalf("write: %v", err)
		}
		i += m
	}
	closeFn()
	report(0, 0, total, -1)
}

// netStreamRecv reads n+warm messages and times the last n: one read call
// per message (batch=1) or through a buffer of batch messages.
func netStreamRecv(a args) {
	size, batch := a.int("size", 64), max(a.int("batch", 1), 1)
	n, warm := a.int("n", 100000), a.int("warm", 0)
	r, _, closeFn := netConn(a, true)
	var br *bufio.Reader
	if batch > 1 {
		br = bufio.NewReaderSize(r, max(netBatch(size, batch)*size, 4096))
	}
	buf := make([]byte, size)
	var start int64
	for i := 0; i < n+warm; i++ {
		if i == warm {
			start = nanotime()
		}
		var msg []byte
		if br != nil {
			var err error
			if msg, err = br.Peek(size); err != nil {
				fatalf("read message %d: %v", i, err)
			}
		} else {
			if _, err := io.ReadFull(r, buf); err != nil {
				fatalf("read message %d: %v", i, err)
			}
			msg = buf
		}
		sink += touch(msg)
		if v := get64(msg); v != uint64(i) {
			fatalf("message %d has sequence %d", i, v)
		}
		if br != nil {
			br.Discard(size)
		}
	}
	end := nanotime()
	closeFn()
	report(start, end, n, -1)
}

// netFanInServer accepts `clients` connections and echoes on each from its
// own goroutine.
func netFanInServer(a args) {
	size, clients := a.int("size", 64), max(a.int("clients", 1), 1)
	ln := netListen(a)
	var wg sync.WaitGroup
	for range clients {
		c, err := ln.Accept()
		if err != nil {
			fatalf("accept: %v", err)
		}
		wg.Go(func() { echo(c, size) })
	}
	ln.Close()
	wg.Wait()
	report(0, 0, 0, -1)
}

func echo(c net.Conn, size int) {
	defer c.Close()
	buf, out, src := make([]byte, size), make([]byte, size), makeSrc(size)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		sink += touch(buf)
		copy(out, src)
		put64(out, get64(buf)+1)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// netChansClient opens k connections; each round writes one message on
// every connection, then reads every reply.
func netChansClient(a args) {
	size, k, rounds := a.int("size", 64), max(a.int("k", 1), 1), max(a.int("rounds", 100), 1)
	warm := a.int("warm", rounds/10)
	cs := make([]net.Conn, k)
	for i := range cs {
		cs[i] = netDial(a)
	}
	buf, out, src := make([]byte, size), make([]byte, size), makeSrc(size)
	var start int64
	for r := 0; r < rounds+warm; r++ {
		if r == warm {
			start = nanotime()
		}
		for _, c := range cs {
			copy(out, src)
			put64(out, uint64(r))
			if _, err := c.Write(out); err != nil {
				fatalf("write: %v", err)
			}
		}
		for _, c := range cs {
			if _, err := io.ReadFull(c, buf); err != nil {
				fatalf("read: %v", err)
			}
			sink += touch(buf)
			if v := get64(buf); v != uint64(r)+1 {
				fatalf("reply %d in round %d", v, r)
			}
		}
	}
	end := nanotime()
	for _, c := range cs {
		c.Close()
	}
	report(start, end, rounds*k, -1)
}
