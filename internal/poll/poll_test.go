package poll

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exipc/exipc/native"
)

// fakeSite is a site with nothing ever there: Arm never reports ready.
type fakeSite struct{}

func (fakeSite) Arm() int     { return 0 }
func (fakeSite) Closed() bool { return false }

// Under WaitAdaptive, however many goroutines wait at once, at most
// maxSpinners of them spin (call try in a loop); the others park at once.
func TestSpinnersCapped(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one P: nobody spins")
	}
	name := fmt.Sprintf("polltest-%d", os.Getpid())
	d, rc := native.Open(name, &native.Options{Size: 1 << 20})
	if rc < 0 {
		t.Fatalf("open: %s", native.Strerror(rc))
	}
	p := NewPoller(d, native.WaitAdaptive)
	defer func() { p.Close(); d.Close(); native.Unlink(name) }() // not before: an unlinked domain is gone

	const waiters = 100
	// A goroutine's first try comes before it decides to spin or park; any
	// later one (nothing ever arrives, nothing wakes it) is a spin. Count
	// the goroutines inside a later try at the same moment.
	var spinningNow, most, later atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < waiters; i++ {
		w := p.Register(uint32(i))
		calls := 0
		try := func(int64) (bool, error) {
			calls++
			if calls == 1 {
				time.Sleep(50 * time.Microsecond) // let the others pile in
				return false, nil
			}
			later.Add(1)
			n := spinningNow.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(2 * time.Microsecond)
			spinningNow.Add(-1)
			return false, nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Wait(ctx, w, fakeSite{}, try, 0); err != ErrDone {
				t.Errorf("Wait = %v, want ErrDone", err)
			}
		}()
	}
	wg.Wait()
	if later.Load() == 0 {
		t.Fatal("nobody spun at all")
	}
	if m := most.Load(); m > maxSpinners {
		t.Errorf("%d goroutines spun at once, want at most %d (GOMAXPROCS-1)", m, maxSpinners)
	}
	if got := spinners.Load(); got != 0 {
		t.Errorf("%d spinning slots still held after every Wait returned", got)
	}
	t.Logf("at most %d goroutines spun at once (cap %d), %d spinning tries", most.Load(), maxSpinners, later.Load())
}
