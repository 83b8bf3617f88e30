package main

// Request/response through the stub layer (package stub) against the same
// exchange over Unix sockets: the first thing a user builds on exipc.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/stub"
)

const rpcEcho = 1

// exRPCServer serves `clients` channels with a stub server whose one op
// echoes the request body, until every client has gone.
func exRPCServer(a args) {
	clients := max(a.int("clients", 1), 1)
	d := exDomain(a)
	l, err := d.Listen(a.str("svc", "\x00"))
	if err != nil {
		fatalf("%v", err)
	}
	srv := stub.NewServer(d)
	srv.Handle(rpcEcho, func(ctx context.Context, req *stub.Request, w *stub.Writer) error {
		b, err := w.Body(len(req.Body))
		if err != nil {
			return err
		}
		copy(b, req.Body)
		return nil
	})
	fmt.Println("ready")
	var wg sync.WaitGroup
	for range clients {
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		c, err := l.Accept(ctx)
		cancel()
		if err != nil {
			fatalf("accept: %v", err)
		}
		wg.Go(func() {
			srv.ServeChan(bg, c)
			c.Close()
		})
	}
	wg.Wait()
	l.Close()
	d.Close()
	report(0, 0, 0, -1)
}

// rpcClient makes n calls (after warm) from each of `clients` goroutines,
// each on a connection of its own: a stub.Client (tr=exipc) or a Unix socket
// (tr=unix) to an echo server. Latency samples: every call of goroutine 0.
func rpcClient(a args) {
	size, n, clients := a.int("size", 64), a.int("n", 10000), max(a.int("clients", 1), 1)
	warm := a.int("warm", n/10)
	tr := a.str("tr", "\x00")
	src := makeSrc(size)
	var d *exipc.Domain
	if tr == "exipc" {
		d = exDomain(a)
	}
	type conn struct {
		call  func(i int)
		close func()
	}
	dial := func() conn {
		if tr == "exipc" {
			ctx, cancel := context.WithTimeout(bg, 30*time.Second)
			defer cancel()
			c, err := stub.Dial(ctx, d, a.str("svc", "\x00"))
			if err != nil {
				fatalf("dial: %v", err)
			}
			return conn{call: func(i int) {
				for {
					r, err := c.Call(bg, rpcEcho, src)
					if err == nil {
						if len(r.Body) != size {
							fatalf("reply of %d bytes, want %d", len(r.Body), size)
						}
						sink += touch(r.Body)
						r.Release()
						return
					}
					if !isFull(err) {
						fatalf("call %d: %v", i, err)
					}
					time.Sleep(time.Microsecond)
				}
			}, close: func() { c.Close() }}
		}
		nc := netDial(a)
		buf := make([]byte, size)
		return conn{call: func(i int) {
			if _, err := nc.Write(src); err != nil {
				fatalf("write: %v", err)
			}
			if _, err := io.ReadFull(nc, buf); err != nil {
				fatalf("read: %v", err)
			}
			sink += touch(buf)
		}, close: func() { nc.Close() }}
	}
	conns := make([]conn, clients)
	for i := range conns {
		conns[i] = dial()
	}
	samples := make([]uint32, n)
	var wg, warmed sync.WaitGroup
	var start, end int64
	var mu sync.Mutex
	ready := make(chan struct{})
	for g := range clients {
		warmed.Add(1)
		wg.Go(func() {
			cn := conns[g]
			for i := 0; i < warm; i++ {
				cn.call(i)
			}
			warmed.Done()
			<-ready
			t := nanotime()
			for i := 0; i < n; i++ {
				cn.call(i)
				if g == 0 {
					t2 := nanotime()
					samples[i] = clamp32(t2 - t)
					t = t2
				}
			}
			mu.Lock()
			end = max(end, nanotime())
			mu.Unlock()
		})
	}
	warmed.Wait()
	start = nanotime()
	close(ready)
	wg.Wait()
	for _, cn := range conns {
		cn.close()
	}
	writeSamples(a.str("out", ""), samples)
	if d != nil {
		d.Close()
	}
	report(start, end, n*clients, -1)
}

func isFull(err error) bool {
	return errors.Is(err, exipc.ErrQueueFull) || errors.Is(err, exipc.ErrHeapFull)
}
