// Command pop3d is the POP3 front end of the mail store example: Exchange 2000's
// protocol process (IIS). It serves RFC 1939 on a TCP address and forwards
// every command to the store (examples/mailstore/store.c) through the Go
// stub over exipc: the request goes into the shared heap, its handle onto
// the store's queue, and the reply — a whole message for RETR — comes back
// as a handle to a block that pop3d writes to the client in place.
//
//	pop3d -addr 127.0.0.1:1110 -domain mailstore
//	pop3d -transport unix -socket /tmp/store.sock     (same code over a Unix socket, for comparison)
//
// pop3d creates the domain if the store has not (both ask for the same
// shape) and leaves it on SIGINT/SIGTERM: the name is removed only if no
// other process (the store) is still attached. If the store dies, commands get
// -ERR at once; when it is started again, pop3d connects again on the next
// command.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/stub"
)

// The domain's shape; store.c asks for the same.
const (
	domainSize     = 64 << 20
	domainMaxBlock = 0 // the default: half the arena, 32 MiB
	// maxMessage is the largest message over the Unix socket; over exipc,
	// the domain's largest block (HeapStat) less the stub header.
	maxMessage = domainSize/2 - stub.HeaderSize
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1110", "TCP address to serve POP3 on (loopback only)")
	domain := flag.String("domain", "mailstore", "exipc domain shared with the store")
	service := flag.String("service", "pop3store", "the store's service")
	transport := flag.String("transport", "exipc", "exipc, or unix (the comparison)")
	socket := flag.String("socket", "", "the store's Unix socket (-transport unix)")
	callTimeout := flag.Duration("call-timeout", 5*time.Second, "deadline of one call to the store")
	dialTimeout := flag.Duration("dial-timeout", 300*time.Millisecond, "how long a command waits for the store to appear")
	idle := flag.Duration("idle", 10*time.Minute, "close a connection idle this long")
	maxConns := flag.Int("max-conns", 256, "concurrent POP3 connections")
	unlink := flag.Bool("unlink", true, "remove the domain at exit if no other process is attached")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("pop3d: ")

	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("-addr %s: only a loopback address is served", *addr)
	}

	var d *exipc.Domain
	var store Transport
	limit := maxMessage
	switch *transport {
	case "exipc":
		d, err = exipc.Open(*domain, &exipc.Options{Size: domainSize, MaxBlock: domainMaxBlock})
		if err != nil {
			log.Fatal(err)
		}
		store = &exipcTransport{d: d, service: *service, dialTimeout: *dialTimeout}
		if hs, err := d.HeapStat(); err == nil {
			limit = int(hs.LargestBlock) - stub.HeaderSize
		}
	case "unix":
		if *socket == "" {
			log.Fatal("-transport unix needs -socket")
		}
		store = &unixTransport{path: *socket, maxBody: maxMessage}
	default:
		log.Fatalf("-transport %s: exipc or unix", *transport)
	}
	cleanup := func() {
		store.Close()
		if d != nil {
			if *unlink {
				d.Leave() // the last one out removes the name; the store may stay
			} else {
				d.Close()
			}
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		cleanup()
		log.Fatal(err)
	}
	fmt.Printf("pop3d: listening on %s (store over %s)\n", ln.Addr(), *transport)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		ln.Close()
	}()

	cfg := &config{store: store, callTimeout: *callTimeout, idle: *idle, maxMessage: limit}
	sem := make(chan struct{}, *maxConns)
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	for {
		conn, err := ln.Accept()
		if err != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			conn.Write([]byte("-ERR [SYS/TEMP] too many connections, try again later\r\n"))
			conn.Close()
			continue
		}
		mu.Lock()
		open[conn] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer func() {
				mu.Lock()
				delete(open, conn)
				mu.Unlock()
				<-sem
				wg.Done()
			}()
			serveConn(cfg, conn)
		}()
	}
	mu.Lock()
	for c := range open {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	cleanup()
}
