package exipc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/exipc/exipc"
)

// exampleName is a domain name private to this run of the examples.
func exampleName(what string) string {
	return fmt.Sprintf("example-%s-%d", what, os.Getpid())
}

func ExampleOpen() {
	name := exampleName("open")
	d, err := exipc.Open(name, &exipc.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer exipc.Unlink(name) // remove /dev/shm/exipc.NAME when done
	defer d.Close()

	st, err := d.Stat()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("processes:", st.ProcsAlive, "blocks used:", st.HeapBlocksUsed)
	// Output: processes: 1 blocks used: 0
}

func ExampleDomain_Listen() {
	name := exampleName("listen")
	d, err := exipc.Open(name, &exipc.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer exipc.Unlink(name)
	defer d.Close()

	l, err := d.Listen("echo")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	// Usually another process connects; here this one does.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := d.Connect(ctx, "echo")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	_, err = d.Listen("echo")
	fmt.Println(err)
	// Output: exipc: listen "echo": service already exists
}

func ExampleDomain_Connect() {
	name := exampleName("connect")
	d, err := exipc.Open(name, &exipc.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer exipc.Unlink(name)
	defer d.Close()

	// Nobody listens on "pop3": Connect waits for it until the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = d.Connect(ctx, "pop3")
	fmt.Println(errors.Is(err, exipc.ErrNoService), errors.Is(err, context.DeadlineExceeded))
	// Output: true true
}

func ExampleDomain_Alloc() {
	name := exampleName("alloc")
	d, err := exipc.Open(name, &exipc.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer exipc.Unlink(name)
	defer d.Close()

	h, b, err := d.Alloc(5) // b is the block itself, in shared memory
	if err != nil {
		log.Fatal(err)
	}
	copy(b, "hello")
	again, _ := d.Bytes(h) // the same block, found from its handle
	fmt.Println(string(again), len(again))
	if err := d.Free(h); err != nil {
		log.Fatal(err)
	}
	_, err = d.Bytes(h) // a freed handle is refused
	fmt.Println(errors.Is(err, exipc.ErrBadHandle))
	// Output:
	// hello 5
	// true
}

func ExampleChan_Send() {
	name := exampleName("send")
	d, err := exipc.Open(name, &exipc.Options{Size: 1 << 20, RingCapacity: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer exipc.Unlink(name)
	defer d.Close()
	client, server := examplePair(d, "greet")

	for i := 0; i < 3; i++ {
		h, b, err := d.Alloc(8)
		if err != nil {
			log.Fatal(err)
		}
		b[0] = byte(i)
		if err := client.Send(h); err != nil {
			// The ring holds 2 handles: the third is refused and still ours.
			fmt.Println(i, err)
			d.Free(h)
		}
	}
	client.Close() // the server still gets what was sent, then ErrPeerDead
	for {
		h, err := server.Recv(context.Background())
		if err != nil {
			fmt.Println(err)
			break
		}
		b, _ := d.Bytes(h)
		fmt.Println("got", b[0])
		d.Free(h)
	}
	// Output:
	// 2 exipc: queue full
	// got 0
	// got 1
	// exipc: recv "greet": peer closed or dead
}

func ExampleChan_Recv() {
	name := exampleName("recv")
	d, err := exipc.Open(name, &exipc.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer exipc.Unlink(name)
	defer d.Close()
	client, server := examplePair(d, "time")

	h, b, _ := d.Alloc(len("ping"))
	copy(b, "ping")
	client.Send(h)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	h, err = server.Recv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	b, _ = d.Bytes(h)
	fmt.Println(string(b))
	d.Free(h)

	// Nothing more comes: Recv gives up when the context does.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	_, err = server.Recv(ctx2)
	fmt.Println(err)
	_, err = server.TryRecv()
	fmt.Println(err)
	// Output:
	// ping
	// context deadline exceeded
	// exipc: nothing to receive
}

// examplePair connects a channel to SERVICE on d and accepts it.
func examplePair(d *exipc.Domain, service string) (client, server *exipc.Chan) {
	l, err := d.Listen(service)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err = d.Connect(ctx, service)
	if err != nil {
		log.Fatal(err)
	}
	server, err = l.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	return client, server
}

// A server loop: one goroutine accepts clients and receives from all of
// them, with no goroutine per channel. Poll parks until the listener or any
// channel is ready; TryAccept and TryRecv then take what is there.
func ExampleDomain_Poll() {
	name := exampleName("poll")
	srv, err := exipc.Open(name, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer exipc.Unlink(name)
	defer srv.Close()
	l, err := srv.Listen("echo")
	if err != nil {
		log.Fatal(err)
	}

	// Three clients (another process, in real life) each send one request.
	cli, err := exipc.Open(name, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	for i := 1; i <= 3; i++ {
		c, err := cli.Connect(context.Background(), "echo")
		if err != nil {
			log.Fatal(err)
		}
		h, b, _ := cli.Alloc(16)
		copy(b, fmt.Sprintf("request %d", i))
		if err := c.Send(h); err != nil {
			log.Fatal(err)
		}
		defer c.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	items := []exipc.PollItem{{Listener: l}}
	served := 0
	for served < 3 {
		if _, err := srv.Poll(ctx, items); err != nil {
			log.Fatal(err)
		}
		for i := range items {
			it := &items[i]
			switch {
			case !it.Ready:
			case it.Listener != nil:
				for {
					c, err := it.Listener.TryAccept()
					if err != nil {
						break // ErrEmpty: nobody else waiting
					}
					items = append(items, exipc.PollItem{Chan: c})
				}
			default:
				h, err := it.Chan.TryRecv()
				if err != nil {
					continue // ErrEmpty, or ErrPeerDead once a client has gone
				}
				b, _ := srv.Bytes(h)
				fmt.Printf("%s\n", bytes.TrimRight(b, "\x00"))
				srv.Free(h)
				served++
			}
		}
	}
	// Output:
	// request 1
	// request 2
	// request 3
}

// SendCopy and RecvBytes move a message with one call into C on each side
// (Alloc, copy and Send; Recv and Bytes).
func ExampleChan_SendCopy() {
	name := exampleName("sendcopy")
	d, err := exipc.Open(name, &exipc.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer exipc.Unlink(name)
	defer d.Close()
	l, err := d.Listen("copy")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := d.Connect(ctx, "copy") // usually another process
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()

	if _, err := client.SendCopy([]byte("HELO "), []byte("exipc")); err != nil {
		log.Fatal(err)
	}
	h, b, err := server.RecvBytes(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", b)
	d.Free(h)
	// Output: HELO exipc
}
