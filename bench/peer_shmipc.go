package main

// The closest Go peer: github.com/cloudwego/shmipc-go v0.2.0 (shared memory
// with a Unix-socket control channel). Memfd mode, because its file-backed
// mode leaves files in /dev/shm. The writer reserves SIZE bytes in shared
// memory and fills them in place; the reader reads them in place.

import (
	"fmt"
	"net"
	"os"

	shmipc "github.com/cloudwego/shmipc-go"
)

func shmConfig(size int) *shmipc.Config {
	shmipc.SetLogLevel(4) // errors only
	conf := shmipc.DefaultConfig()
	conf.MemMapType = shmipc.MemMapTypeMemFd
	conf.LogOutput = os.Stderr
	conf.ShareMemoryBufferCap = 64 << 20
	conf.BufferSliceSizes = []*shmipc.SizePercentPair{
		{Size: uint32(size) + 256, Percent: 70},
		{Size: 16 << 10, Percent: 20},
		{Size: 64 << 10, Percent: 10},
	}
	return conf
}

// shmServer listens on the Unix socket addr, says "ready addr=ADDR", and
// returns the first stream of the first session.
func shmServer(a args) (*shmipc.Session, *shmipc.Stream) {
	path := a.str("addr", "\x00")
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		fatalf("listen: %v", err)
	}
	fmt.Printf("ready addr=%s\n", path)
	conn, err := ln.Accept()
	if err != nil {
		fatalf("accept: %v", err)
	}
	ln.Close()
	s, err := shmipc.Server(conn, shmConfig(a.int("size", 64)))
	if err != nil {
		fatalf("shmipc.Server: %v", err)
	}
	st, err := s.AcceptStream()
	if err != nil {
		fatalf("AcceptStream: %v", err)
	}
	return s, st
}

func shmClient(a args) (*shmipc.SessionManager, *shmipc.Stream) {
	smc := shmipc.DefaultSessionManagerConfig()
	smc.Config = shmConfig(a.int("size", 64))
	smc.Network = "unix"
	smc.Address = a.str("addr", "\x00")
	smc.SessionNum = 1
	sm, err := shmipc.NewSessionManager(smc)
	if err != nil {
		fatalf("NewSessionManager: %v", err)
	}
	st, err := sm.GetStream()
	if err != nil {
		fatalf("GetStream: %v", err)
	}
	return sm, st
}

// shmWrite reserves size bytes in the stream's buffer and fills them.
func shmWrite(st *shmipc.Stream, src []byte, stamp uint64) {
	b, err := st.BufferWriter().Reserve(len(src))
	if err != nil {
		fatalf("Reserve: %v", err)
	}
	copy(b, src)
	put64(b, stamp)
}

// shmRead reads one message in place and returns its first 8 bytes.
func shmRead(st *shmipc.Stream, size int) (uint64, error) {
	r := st.BufferReader()
	m, err := r.ReadBytes(size)
	if err != nil {
		return 0, err
	}
	sink += touch(m)
	v := get64(m)
	r.ReleasePreviousRead()
	return v, nil
}

func shmPingPongServer(a args) {
	size := a.int("size", 64)
	s, st := shmServer(a)
	src := makeSrc(size)
	for {
		v, err := shmRead(st, size)
		if err != nil {
			break // the client closed
		}
		shmWrite(st, src, v+1)
		if err := st.Flush(false); err != nil {
			fatalf("Flush: %v", err)
		}
	}
	st.Close()
	s.Close()
	report(0, 0, 0, -1)
}

func shmPingPongClient(a args) {
	size, n := a.int("size", 64), a.int("n", 1000)
	warm := a.int("warm", n/10)
	sm, st := shmClient(a)
	src := makeSrc(size)
	samples := make([]uint32, n)
	var start int64
	t := nanotime()
	for i := 0; i < n+warm; i++ {
		if i == warm {
			start = nanotime()
			t = start
		}
		shmWrite(st, src, uint64(i))
		if err := st.Flush(false); err != nil {
			fatalf("Flush: %v", err)
		}
		v, err := shmRead(st, size)
		if err != nil || v != uint64(i)+1 {
			fatalf("reply %d to %d: %v", v, i, err)
		}
		t2 := nanotime()
		if i >= warm {
			samples[i-warm] = clamp32(t2 - t)
		}
		t = t2
	}
	writeSamples(a.str("out", ""), samples)
	st.Close()
	sm.Close()
	report(start, t, n, -1)
}

// shmStreamSend writes n+warm messages, flushing after each (batch=1) or
// after every batch, then waits for the receiver's one-byte ack.
func shmStreamSend(a args) {
	size, batch := a.int("size", 64), max(a.int("batch", 1), 1)
	total := a.int("n", 100000) + a.int("warm", 0)
	sm, st := shmClient(a)
	src := makeSrc(size)
	per := netBatch(size, batch)
	if batch == 1 {
		per = 1
	}
	for i := 0; i < total; i++ {
		shmWrite(st, src, uint64(i))
		if (i+1)%per == 0 || i == total-1 {
			if err := st.Flush(false); err != nil {
				fatalf("Flush: %v", err)
			}
		}
	}
	// The ack only keeps us from closing before the receiver has read
	// everything; it may find the stream closed already (the receiver is
	// done and reports the result).
	st.BufferReader().ReadByte()
	st.Close()
	sm.Close()
	report(0, 0, total, -1)
}

func shmStreamRecv(a args) {
	size := a.int("size", 64)
	n, warm := a.int("n", 100000), a.int("warm", 0)
	s, st := shmServer(a)
	var start int64
	for i := 0; i < n+warm; i++ {
		if i == warm {
			start = nanotime()
		}
		v, err := shmRead(st, size)
		if err != nil {
			fatalf("read message %d: %v", i, err)
		}
		if v != uint64(i) {
			fatalf("message %d has sequence %d", i, v)
		}
	}
	end := nanotime()
	st.BufferWriter().WriteByte(1)
	st.Flush(false)
	st.Close()
	s.Close()
	report(start, end, n, -1)
}
