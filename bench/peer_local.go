package main

// Workloads inside one process: Go channels (the floor of a hand-off
// between goroutines) and the micro measurements (one cgo call, the calls of
// the exipc API, allocations per call).

/*
static void bench_noop(void) {}
*/
import "C"

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exipc/exipc"
)

// chanPingPong: two goroutines hand a payload back and forth over two
// unbuffered channels; each reads the other's buffer in full.
func chanPingPong(a args) {
	size, n := a.int("size", 64), a.int("n", 10000)
	warm := a.int("warm", n/10)
	ping, pong := make(chan []byte), make(chan []byte)
	src := makeSrc(size)
	go func() {
		out := make([]byte, size)
		for m := range ping {
			sink += touch(m)
			copy(out, src)
			put64(out, get64(m)+1)
			pong <- out
		}
	}()
	out := make([]byte, size)
	samples := make([]uint32, n)
	var start int64
	m0 := mallocs()
	t := nanotime()
	for i := 0; i < n+warm; i++ {
		if i == warm {
			start = nanotime()
			t = start
		}
		copy(out, src)
		put64(out, uint64(i))
		ping <- out
		m := <-pong
		sink += touch(m)
		if get64(m) != uint64(i)+1 {
			fatalf("reply %d to %d", get64(m), i)
		}
		t2 := nanotime()
		if i >= warm {
			samples[i-warm] = clamp32(t2 - t)
		}
		t = t2
	}
	close(ping)
	allocs := int64(mallocs() - m0)
	writeSamples(a.str("out", ""), samples)
	report(start, t, n, allocs)
}

// chanStream: a pool of buffers circulates between a sending and a
// receiving goroutine over buffered channels; batch > 1 moves batch buffers
// per channel operation.
func chanStream(a args) {
	size, batch := a.int("size", 64), max(a.int("batch", 1), 1)
	n, warm := a.int("n", 100000), a.int("warm", 0)
	total := n + warm
	per := netBatch(size, batch)
	if batch == 1 {
		per = 1
	}
	slots := max(4, min(256/per, (64<<20)/(per*size)))
	free, data := make(chan [][]byte, slots), make(chan [][]byte, slots)
	for range slots {
		bt := make([][]byte, per)
		for j := range bt {
			bt[j] = make([]byte, size)
		}
		free <- bt
	}
	src := makeSrc(size)
	go func() {
		for i := 0; i < total; {
			bt := <-free
			m := min(per, total-i)
			for j := range m {
				copy(bt[j], src)
				put64(bt[j], uint64(i+j))
			}
			data <- bt[:m]
			i += m
		}
	}()
	m0 := mallocs()
	var start int64
	for got := 0; got < total; {
		bt := <-data
		if got <= warm && got+len(bt) > warm {
			start = nanotime()
		}
		for _, b := range bt {
			sink += touch(b)
			if get64(b) != uint64(got) {
				fatalf("message %d has sequence %d", got, get64(b))
			}
			got++
		}
		free <- bt[:cap(bt)]
	}
	end := nanotime()
	report(start, end, n, int64(mallocs()-m0))
}

// micro times one call (or pair of calls) in a loop and counts its heap
// allocations with testing.AllocsPerRun. item: cgo (an empty C function),
// bytes (Domain.Bytes of a valid handle), allocfree (Alloc + Free of 64 B),
// sendrecv (Send + TryRecv on a channel whose two ends are in this
// process), atomic (a Go atomic store: the floor of any call).
func micro(a args) {
	item, n := a.str("item", "\x00"), a.int("n", 1000000)
	var op func()
	var cleanup func()
	switch item {
	case "atomic":
		var x atomic.Uint64
		op = func() { x.Store(1) }
	case "cgo":
		op = func() { C.bench_noop() }
	default:
		d := exDomain(a)
		h, _, err := d.Alloc(64)
		if err != nil {
			fatalf("alloc: %v", err)
		}
		cleanup = func() { d.Close() }
		switch item {
		case "bytes":
			op = func() {
				if _, err := d.Bytes(h); err != nil {
					fatalf("bytes: %v", err)
				}
			}
		case "allocfree":
			op = func() {
				h, _, err := d.Alloc(64)
				if err != nil {
					fatalf("alloc: %v", err)
				}
				d.Free(h)
			}
		case "sendrecv", "classic", "fused", "batch64":
			svc := a.str("svc", "\x00")
			l, err := d.Listen(svc)
			if err != nil {
				fatalf("listen: %v", err)
			}
			ctx, cancel := context.WithTimeout(bg, 10*time.Second)
			c1, err := d.Connect(ctx, svc)
			if err != nil {
				fatalf("connect: %v", err)
			}
			c2, err := l.Accept(ctx)
			cancel()
			if err != nil {
				fatalf("accept: %v", err)
			}
			src := makeSrc(64)
			hs, bufs := make([]exipc.Handle, 64), make([][]byte, 64)
			rhs, rbufs := make([]exipc.Handle, 64), make([][]byte, 64)
			left := 0 // batch64: messages of the current batch not yet counted
			switch item {
			case "sendrecv":
				op = func() {
					if err := c1.Send(h); err != nil {
						fatalf("send: %v", err)
					}
					var err error
					if h, err = c2.TryRecv(); err != nil {
						fatalf("tryrecv: %v", err)
					}
				}
			case "classic":
				op = func() {
					h, b, err := d.Alloc(64)
					if err != nil {
						fatalf("alloc: %v", err)
					}
					copy(b, src)
					if err := c1.Send(h); err != nil {
						fatalf("send: %v", err)
					}
					if h, err = c2.TryRecv(); err != nil {
						fatalf("tryrecv: %v", err)
					}
					b, err = d.Bytes(h)
					if err != nil {
						fatalf("bytes: %v", err)
					}
					sink += touch(b)
					d.Free(h)
				}
			case "fused":
				op = func() {
					if _, err := c1.SendCopy(nil, src); err != nil {
						fatalf("send: %v", err)
					}
					h, b, err := c2.TryRecvBytes()
					if err != nil {
						fatalf("tryrecv: %v", err)
					}
					sink += touch(b)
					d.Free(h)
				}
			case "batch64":
				op = func() {
					if left > 0 {
						left--
						return
					}
					n, err := d.AllocBatch(64, hs, bufs)
					if err != nil || n != 64 {
						fatalf("alloc batch: %d, %v", n, err)
					}
					for _, b := range bufs {
						copy(b, src)
					}
					if k, err := c1.SendBatch(hs); k != 64 || err != nil {
						fatalf("send batch: %d, %v", k, err)
					}
					for m := 0; m < 64; {
						k, err := c2.RecvBatchBytes(bg, rhs, rbufs)
						if err != nil {
							fatalf("recv batch: %v", err)
						}
						for _, b := range rbufs[:k] {
							sink += touch(b)
						}
						d.FreeBatch(rhs[:k])
						m += k
					}
					left = 63
				}
			}
		default:
			fatalf("unknown item %q", item)
		}
	}
	for range n / 10 {
		op()
	}
	t0 := nanotime()
	for range n {
		op()
	}
	t1 := nanotime()
	allocs := testing.AllocsPerRun(1000, op)
	if cleanup != nil {
		cleanup()
	}
	fmt.Printf("result start_ns=%d end_ns=%d count=%d allocs=%d\n", t0, t1, n, int64(allocs*float64(n)))
}
