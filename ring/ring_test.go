package ring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/exipc/exipc/internal/poll"
	"github.com/exipc/exipc/native"
)

// newPair opens a domain and returns both ends of a channel on it.
func newPair(t *testing.T) (d native.Domain, client, server *End) {
	t.Helper()
	name := fmt.Sprintf("ringtest-%d-%s", os.Getpid(), t.Name())
	d, rc := native.Open(name, &native.Options{Size: 1 << 20, RingCapacity: 4})
	if rc < 0 {
		t.Fatalf("open: %s", native.Strerror(rc))
	}
	l, rc := d.Listen("svc")
	if rc < 0 {
		t.Fatalf("listen: %s", native.Strerror(rc))
	}
	cs, _ := native.NewCService("svc")
	defer cs.Free()
	c, rc := d.Connect(cs, int64(time.Second))
	if rc < 0 {
		t.Fatalf("connect: %s", native.Strerror(rc))
	}
	s, rc := l.Accept(int64(time.Second))
	if rc < 0 {
		t.Fatalf("accept: %s", native.Strerror(rc))
	}
	p := poll.NewPoller(d, native.WaitAdaptive)
	client, server = newEnd(c, "svc", p, nil), newEnd(s, "svc", p, nil)
	t.Cleanup(func() {
		client.Close()
		server.Close()
		p.Close()
		l.Close()
		d.Close()
		native.Unlink(name)
	})
	return d, client, server
}

func TestSendRecv(t *testing.T) {
	d, c, s := newPair(t)
	var sent []uint64
	for i := 0; i < 4; i++ {
		h, rc := d.Alloc(8)
		if rc < 0 {
			t.Fatal(native.Strerror(rc))
		}
		if err := c.Send(h); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		sent = append(sent, h)
	}
	h, _ := d.Alloc(8)
	if err := c.Send(h); err != native.ErrQueueFull {
		t.Errorf("Send on a full ring = %v, want bare ErrQueueFull", err)
	}
	d.Free(h)
	for i := range sent {
		h, err := s.Recv(context.Background())
		if err != nil || h != sent[i] {
			t.Fatalf("Recv %d = %#x, %v", i, h, err)
		}
		d.Free(h)
	}
	if _, err := s.TryRecv(); err != native.ErrEmpty {
		t.Errorf("TryRecv on empty = %v, want bare ErrEmpty", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Millisecond)
	defer cancel()
	if _, err := s.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Recv past deadline = %v", err)
	}
}

func TestCloseWakesRecv(t *testing.T) {
	_, _, s := newPair(t)
	done := make(chan error, 1)
	go func() { _, err := s.Recv(context.Background()); done <- err }()
	time.Sleep(10 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, native.ErrClosed) {
			t.Errorf("Recv blocked across Close = %v, want ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Recv did not return after Close")
	}
	if err := s.Close(); !errors.Is(err, native.ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
}
