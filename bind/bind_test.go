package bind

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/exipc/exipc/native"
)

func TestBind(t *testing.T) {
	name := fmt.Sprintf("bindtest-%d", os.Getpid())
	d, err := Open(name, &native.Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := Unlink(name); err != nil {
			t.Error(err)
		}
		if err := Unlink(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("second Unlink = %v", err)
		}
	}()
	l, err := d.Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Listen("svc"); !errors.Is(err, native.ErrServiceExists) {
		t.Errorf("Listen twice = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := d.Connect(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryAccept(); err != native.ErrEmpty {
		t.Errorf("TryAccept with none pending = %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 15*time.Millisecond)
	defer cancel2()
	if _, err := d.Connect(short, "absent"); !errors.Is(err, native.ErrNoService) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect(absent) = %v, want ErrNoService and DeadlineExceeded", err)
	}
	if len(d.ends) != 2 || len(d.lns) != 1 {
		t.Errorf("tracking %d ends and %d listeners, want 2 and 1", len(d.ends), len(d.lns))
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	if len(d.ends) != 1 {
		t.Errorf("a closed end is still tracked")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if len(d.ends) != 0 || len(d.lns) != 0 {
		t.Errorf("after Close: tracking %d ends and %d listeners", len(d.ends), len(d.lns))
	}
	if err := s.Close(); !errors.Is(err, native.ErrClosed) {
		t.Errorf("end Close after domain Close = %v", err)
	}
	if err := l.Close(); !errors.Is(err, native.ErrClosed) {
		t.Errorf("listener Close after domain Close = %v", err)
	}
	if err := d.Close(); !errors.Is(err, native.ErrClosed) {
		t.Errorf("second domain Close = %v", err)
	}
}
