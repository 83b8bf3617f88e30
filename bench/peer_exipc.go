package main

// The Go end of every exipc workload: the same protocol as bench/c/cbench.c,
// so that any Go end can face any C end.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/exipc/exipc"
)

var bg = context.Background()

// exOpen opens the domain and binds one channel: the server listens, says
// "ready" and accepts; the client connects.
func exOpen(a args, server bool) (*exipc.Domain, *exipc.Listener, *exipc.Chan) {
	d := exDomain(a)
	svc := a.str("svc", "\x00")
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if server {
		l, err := d.Listen(svc)
		if err != nil {
			fatalf("%v", err)
		}
		fmt.Println("ready")
		c, err := l.Accept(ctx)
		if err != nil {
			fatalf("%v", err)
		}
		return d, l, c
	}
	c, err := d.Connect(ctx, svc)
	if err != nil {
		fatalf("%v", err)
	}
	return d, nil, c
}

func exDomain(a args) *exipc.Domain {
	d, err := exipc.Open(a.str("dom", "\x00"), &exipc.Options{
		Size:         uint64(a.int("heap", 64<<20)),
		MaxChans:     uint32(a.int("chans", 2048)),
		MaxProcs:     64,
		RingCapacity: uint32(a.int("ring", 0)), // 0: the default (256)
	})
	if err != nil {
		fatalf("%v", err)
	}
	return d
}

// exSend allocates a block, copies src into it, stamps its first 8 bytes
// and sends it, giving the CPU away while the heap or the ring is full.
func exSend(d *exipc.Domain, c *exipc.Chan, src []byte, stamp uint64) {
	for {
		h, b, err := d.Alloc(len(src))
		if err != nil {
			if errors.Is(err, exipc.ErrHeapFull) {
				yield()
				continue
			}
			fatalf("alloc: %v", err)
		}
		copy(b, src)
		put64(b, stamp)
		for {
			err = c.Send(h)
			if err != exipc.ErrQueueFull {
				break
			}
			yield()
		}
		if err != nil {
			fatalf("send: %v", err)
		}
		return
	}
}

// exSendFused is exSend with the fused call: allocate, copy (the stamp, then
// the rest of src) and send in one call into C.
func exSendFused(c *exipc.Chan, src []byte, stamp uint64) {
	var head [8]byte
	put64(head[:], stamp)
	for {
		_, err := c.SendCopy(head[:], src[8:])
		if err == nil {
			return
		}
		if err != exipc.ErrQueueFull && err != exipc.ErrHeapFull {
			fatalf("send: %v", err)
		}
		yield()
	}
}

// exRecvFused is exRecv with the fused call: the handle and its block in
// one call into C (TryRecvBytes / RecvBytes), then Free.
func exRecvFused(d *exipc.Domain, c *exipc.Chan, spin bool, size int) (v uint64, eof bool) {
	var h exipc.Handle
	var b []byte
	var err error
	if spin {
		for {
			h, b, err = c.TryRecvBytes()
			if err != exipc.ErrEmpty {
				break
			}
		}
	} else {
		h, b, err = c.RecvBytes(bg)
	}
	if err != nil {
		if errors.Is(err, exipc.ErrPeerDead) {
			return 0, true
		}
		fatalf("recv: %v", err)
	}
	if len(b) != size {
		fatalf("bytes: %d bytes, want %d", len(b), size)
	}
	sink += touch(b)
	v = get64(b)
	if err := d.Free(h); err != nil {
		fatalf("free: %v", err)
	}
	return v, false
}

// pingPongCalls returns the send and receive of a ping-pong peer: the
// classic calls, or with calls=fused the fused ones.
func pingPongCalls(a args, d *exipc.Domain, c *exipc.Chan) (send func(src []byte, stamp uint64), recv func(spin bool, size int) (uint64, bool)) {
	if a.str("calls", "classic") == "fused" {
		return func(src []byte, stamp uint64) { exSendFused(c, src, stamp) },
			func(spin bool, size int) (uint64, bool) { return exRecvFused(d, c, spin, size) }
	}
	return func(src []byte, stamp uint64) { exSend(d, c, src, stamp) },
		func(spin bool, size int) (uint64, bool) { return exRecv(d, c, spin, size) }
}

// exRecv receives one block (polling TryRecv, or parking in Recv), reads it
// all, frees it and returns its first 8 bytes; eof at the peer's close.
func exRecv(d *exipc.Domain, c *exipc.Chan, spin bool, size int) (v uint64, eof bool) {
	var h exipc.Handle
	var err error
	if spin {
		for {
			h, err = c.TryRecv()
			if err != exipc.ErrEmpty {
				break
			}
		}
	} else {
		h, err = c.Recv(bg)
	}
	if err != nil {
		if errors.Is(err, exipc.ErrPeerDead) {
			return 0, true
		}
		fatalf("recv: %v", err)
	}
	v = exRead(d, h, size)
	if err := d.Free(h); err != nil {
		fatalf("free: %v", err)
	}
	return v, false
}

// exRead reads the whole block h and returns its first 8 bytes.
func exRead(d *exipc.Domain, h exipc.Handle, size int) uint64 {
	b, err := d.Bytes(h)
	if err != nil || len(b) != size {
		fatalf("bytes: %d bytes, want %d: %v", len(b), size, err)
	}
	sink += touch(b)
	return get64(b)
}

func exClose(d *exipc.Domain, l *exipc.Listener, c *exipc.Chan) {
	c.Close()
	if l != nil {
		l.Close()
	}
	d.Close()
}

// exPingPongServer echoes blocks until the client closes. In park mode it
// records the one-way latency of every request (from the client's clock in
// the payload to the end of reading it) and waits parkGap before replying.
func exPingPongServer(a args) {
	size, spin := a.int("size", 64), a.str("mode", "spin") != "park"
	warm, n := a.int("warm", 0), a.int("n", 0)
	samples := make([]uint32, n)
	src := makeSrc(size)
	d, l, c := exOpen(a, true)
	send, recv := pingPongCalls(a, d, c)
	var m0 uint64
	for i := 0; ; i++ {
		if i == warm {
			m0 = mallocs()
		}
		v, eof := recv(spin, size)
		if eof {
			break
		}
		if spin {
			send(src, v+1)
			continue
		}
		if i >= warm && i-warm < n {
			samples[i-warm] = clamp32(nanotime() - int64(v))
		}
		spinFor(parkGap)
		send(src, uint64(nanotime()))
	}
	allocs := int64(mallocs() - m0)
	writeSamples(a.str("out", ""), samples)
	exClose(d, l, c)
	report(0, 0, n, allocs)
}

// exPingPongClient times n round trips after warm ones. Spin mode: one
// sample per round trip. Park mode: the one-way latency of each reply (the
// server records the other way; the driver adds them up).
func exPingPongClient(a args) {
	size, spin := a.int("size", 64), a.str("mode", "spin") != "park"
	n := a.int("n", 10000)
	warm := a.int("warm", n/10)
	samples := make([]uint32, n)
	src := makeSrc(size)
	d, l, c := exOpen(a, false)
	send, recv := pingPongCalls(a, d, c)
	var m0 uint64
	var start int64
	t := nanotime()
	for i := 0; i < n+warm; i++ {
		if i == warm {
			m0 = mallocs()
			start = nanotime()
			t = start
		}
		var stamp uint64
		if spin {
			stamp = uint64(i)
		} else {
			stamp = uint64(nanotime())
		}
		send(src, stamp)
		v, eof := recv(spin, size)
		if eof {
			fatalf("the server closed")
		}
		t2 := nanotime()
		if spin {
			if v != uint64(i)+1 {
				fatalf("reply %d to %d", v, i)
			}
			if i >= warm {
				samples[i-warm] = clamp32(t2 - t)
			}
		} else {
			if i >= warm {
				samples[i-warm] = clamp32(t2 - int64(v))
			}
			spinFor(parkGap)
			t2 = nanotime()
		}
		t = t2
	}
	end := t
	allocs := int64(mallocs() - m0)
	writeSamples(a.str("out", ""), samples)
	exClose(d, l, c)
	report(start, end, n, allocs)
}

// exStreamSend sends n+warm messages, one Send each (batch=1) or SendBatch
// of up to batch, then closes the channel.
func exStreamSend(a args) {
	size, batch := a.int("size", 64), max(a.int("batch", 1), 1)
	total := a.int("n", 100000) + a.int("warm", 0)
	src := makeSrc(size)
	d, l, c := exOpen(a, false)
	m0 := mallocs()
	if batch == 1 {
		for i := 0; i < total; i++ {
			exSend(d, c, src, uint64(i))
		}
	} else {
		pend := make([]exipc.Handle, batch)
		bufs := make([][]byte, batch)
		np, next, sent := 0, 0, 0
		for sent < total {
			for np < batch && next < total {
				// One call into C per batch of blocks (AllocBatch).
				k, err := d.AllocBatch(size, pend[np:min(batch, np+total-next)], bufs[np:])
				if err != nil {
					if errors.Is(err, exipc.ErrHeapFull) {
						break
					}
					fatalf("alloc: %v", err)
				}
				for _, b := range bufs[np : np+k] {
					copy(b, src)
					put64(b, uint64(next))
					next++
				}
				np += k
			}
			if np == 0 {
				yield()
				continue
			}
			k, err := c.SendBatch(pend[:np])
			if k > 0 {
				np = copy(pend, pend[k:np])
				sent += k
				continue
			}
			if err != exipc.ErrQueueFull {
				fatalf("send: %v", err)
			}
			yield()
		}
	}
	allocs := int64(mallocs() - m0)
	exClose(d, l, c)
	report(0, 0, total, allocs)
}

// exStreamRecv receives, reads and frees n+warm messages and times the last
// n: polling TryRecv one at a time (batch=1) or RecvBatch.
func exStreamRecv(a args) {
	size, batch := a.int("size", 64), max(a.int("batch", 1), 1)
	n, warm := a.int("n", 100000), a.int("warm", 0)
	total := n + warm
	d, l, c := exOpen(a, true)
	var start int64
	var m0 uint64
	got := 0
	if batch == 1 {
		for ; got < total; got++ {
			if got == warm {
				m0 = mallocs()
				start = nanotime()
			}
			v, eof := exRecv(d, c, true, size)
			if eof {
				fatalf("peer closed after %d of %d", got, total)
			}
			if v != uint64(got) {
				fatalf("message %d has sequence %d", got, v)
			}
		}
	} else {
		// One call into C to receive a batch with its blocks
		// (RecvBatchBytes) and one to free it (FreeBatch).
		hs := make([]exipc.Handle, batch)
		bufs := make([][]byte, batch)
		m0 = mallocs()
		for got < total {
			k, err := c.RecvBatchBytes(bg, hs, bufs)
			if err != nil {
				fatalf("recv after %d of %d: %v", got, total, err)
			}
			if got <= warm && got+k > warm {
				start = nanotime()
			}
			for _, b := range bufs[:k] {
				if len(b) != size {
					fatalf("message %d: %d bytes, want %d", got, len(b), size)
				}
				sink += touch(b)
				if v := get64(b); v != uint64(got) {
					fatalf("message %d has sequence %d", got, v)
				}
				got++
			}
			if err := d.FreeBatch(hs[:k]); err != nil {
				fatalf("free: %v", err)
			}
		}
	}
	end := nanotime()
	allocs := int64(mallocs() - m0)
	exClose(d, l, c)
	report(start, end, n, allocs)
}

// exHandlesSend circulates a pool of blocks: sends them in batches of up
// to batch and, when none is left, waits for the receiver to return some
// (RecvBatch takes all that are back). Only handles move.
func exHandlesSend(a args) {
	batch, pool := max(a.int("batch", 64), 1), max(a.int("pool", 256), 1)
	total := a.int("n", 1000000) + a.int("warm", 0)
	d, l, c := exOpen(a, false)
	free := make([]exipc.Handle, pool)
	for i := range free {
		h, b, err := d.Alloc(64)
		if err != nil {
			fatalf("alloc: %v", err)
		}
		clear(b)
		free[i] = h
	}
	m0 := mallocs()
	nfree, sent := pool, 0
	for sent < total {
		if nfree == 0 {
			k, err := c.RecvBatch(bg, free)
			if err != nil {
				fatalf("recv: %v", err)
			}
			nfree = k
		}
		want := min(nfree, batch, total-sent)
		k, err := c.SendBatch(free[nfree-want : nfree])
		if k > 0 {
			copy(free[nfree-want:], free[nfree-want+k:nfree])
			nfree -= k
			sent += k
		} else if err != exipc.ErrQueueFull {
			fatalf("send: %v", err)
		}
	}
	allocs := int64(mallocs() - m0)
	exClose(d, l, c)
	report(0, 0, total, allocs)
}

// exHandlesRecv receives handles in batches and sends them straight back.
func exHandlesRecv(a args) {
	batch := max(a.int("batch", 64), 1)
	n, warm := a.int("n", 1000000), a.int("warm", 0)
	total := n + warm
	d, l, c := exOpen(a, true)
	hs := make([]exipc.Handle, batch)
	m0 := mallocs()
	var start int64
	got := 0
	for got < total {
		k, err := c.RecvBatch(bg, hs)
		if err != nil {
			fatalf("recv after %d of %d: %v", got, total, err)
		}
		if got <= warm && got+k > warm {
			start = nanotime()
		}
		got += k
		for off := 0; off < k; {
			j, err := c.SendBatch(hs[off:k])
			if errors.Is(err, exipc.ErrPeerDead) {
				break // the sender has all it needed and left
			}
			if err != nil && err != exipc.ErrQueueFull {
				fatalf("send back: %v", err)
			}
			off += j
		}
	}
	end := nanotime()
	allocs := int64(mallocs() - m0)
	exClose(d, l, c)
	report(start, end, n, allocs)
}

// exFanInServer accepts `clients` channels and echoes on each from its own
// goroutine with a blocking Recv, until every client has closed.
func exFanInServer(a args) {
	size, clients := a.int("size", 64), max(a.int("clients", 1), 1)
	src := makeSrc(size)
	d := exDomain(a)
	l, err := d.Listen(a.str("svc", "\x00"))
	if err != nil {
		fatalf("%v", err)
	}
	fmt.Println("ready")
	done := make(chan struct{})
	for range clients {
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		c, err := l.Accept(ctx)
		cancel()
		if err != nil {
			fatalf("accept: %v", err)
		}
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				v, eof := exRecv(d, c, false, size)
				if eof {
					c.Close()
					return
				}
				exSend(d, c, src, v+1)
			}
		}()
	}
	for range clients {
		<-done
	}
	l.Close()
	d.Close()
	report(0, 0, 0, -1)
}

// exFanInClient is one of the clients: blocking round trips.
func exFanInClient(a args) {
	size, n := a.int("size", 64), a.int("n", 10000)
	warm := a.int("warm", n/10)
	src := makeSrc(size)
	d, l, c := exOpen(a, false)
	samples := make([]uint32, n)
	var start int64
	t := nanotime()
	for i := 0; i < n+warm; i++ {
		if i == warm {
			start = nanotime()
			t = start
		}
		exSend(d, c, src, uint64(i))
		v, eof := exRecv(d, c, false, size)
		if eof || v != uint64(i)+1 {
			fatalf("reply %d to %d (eof %v)", v, i, eof)
		}
		t2 := nanotime()
		if i >= warm {
			samples[i-warm] = clamp32(t2 - t)
		}
		t = t2
	}
	writeSamples(a.str("out", ""), samples)
	exClose(d, l, c)
	report(start, t, n, -1)
}

// exChansServer accepts k channels and sweeps them all with TryRecv,
// echoing whatever it finds, until every client end has closed.
func exChansServer(a args) {
	size, k := a.int("size", 64), max(a.int("k", 1), 1)
	src := makeSrc(size)
	d := exDomain(a)
	l, err := d.Listen(a.str("svc", "\x00"))
	if err != nil {
		fatalf("%v", err)
	}
	fmt.Println("ready")
	cs := make([]*exipc.Chan, k)
	for i := range cs {
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		cs[i], err = l.Accept(ctx)
		cancel()
		if err != nil {
			fatalf("accept %d of %d: %v", i, k, err)
		}
	}
	live := k
	dead := make([]bool, k)
	for live > 0 {
		for i, c := range cs {
			if dead[i] {
				continue
			}
			h, err := c.TryRecv()
			if err == exipc.ErrEmpty {
				continue
			}
			if err != nil {
				if errors.Is(err, exipc.ErrPeerDead) {
					dead[i] = true
					live--
					c.Close()
					continue
				}
				fatalf("recv: %v", err)
			}
			v := exRead(d, h, size)
			d.Free(h)
			exSend(d, c, src, v+1)
		}
	}
	l.Close()
	d.Close()
	report(0, 0, 0, -1)
}

// exChansClient binds k channels; each round sends one message on every
// channel, then sweeps them until every reply is in.
func exChansClient(a args) {
	size, k, rounds := a.int("size", 64), max(a.int("k", 1), 1), max(a.int("rounds", 100), 1)
	warm := a.int("warm", rounds/10)
	src := makeSrc(size)
	d := exDomain(a)
	svc := a.str("svc", "\x00")
	cs := make([]*exipc.Chan, k)
	for i := range cs {
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		var err error
		cs[i], err = d.Connect(ctx, svc)
		cancel()
		if err != nil {
			fatalf("connect %d of %d: %v", i, k, err)
		}
	}
	got := make([]bool, k)
	var start int64
	for r := 0; r < rounds+warm; r++ {
		if r == warm {
			start = nanotime()
		}
		for _, c := range cs {
			exSend(d, c, src, uint64(r))
		}
		clear(got)
		for left := k; left > 0; {
			for i, c := range cs {
				if got[i] {
					continue
				}
				h, err := c.TryRecv()
				if err == exipc.ErrEmpty {
					continue
				}
				if err != nil {
					fatalf("recv: %v", err)
				}
				if v := exRead(d, h, size); v != uint64(r)+1 {
					fatalf("reply %d in round %d", v, r)
				}
				d.Free(h)
				got[i] = true
				left--
			}
		}
	}
	end := nanotime()
	for _, c := range cs {
		c.Close()
	}
	d.Close()
	report(start, end, rounds*k, -1)
}
