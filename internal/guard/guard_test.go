package guard

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSlice(t *testing.T) {
	if n, err := Slice(context.Background()); err != nil || n != int64(MaxSlice) {
		t.Errorf("Slice(Background) = %d, %v", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	// A loaded machine may reach the call after the deadline: then the
	// expired answer is the right one.
	if n, err := Slice(ctx); err == nil && (n <= 0 || n > int64(time.Millisecond)) ||
		err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Slice(1ms ctx) = %d, %v", n, err)
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := Slice(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Slice(expired ctx) = %v", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := Slice(ctx2); !errors.Is(err, context.Canceled) {
		t.Errorf("Slice(cancelled ctx) = %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { Slice(ctx2) }); n != 0 {
		t.Errorf("Slice allocates %v times", n)
	}
}

func TestGuard(t *testing.T) {
	var g Guard
	if !g.Enter() {
		t.Fatal("Enter on a fresh guard failed")
	}
	var released atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.Shut(func() { released.Add(1) })
			if released.Load() != 1 {
				t.Errorf("Shut returned before release ran")
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if released.Load() != 0 {
		t.Fatalf("release ran while an operation was in flight")
	}
	if !g.Closed() {
		t.Errorf("Closed() false after Shut began")
	}
	g.Leave()
	wg.Wait()
	if released.Load() != 1 {
		t.Fatalf("release ran %d times, want 1", released.Load())
	}
	if g.Enter() {
		t.Errorf("Enter after Shut succeeded")
	}
}
