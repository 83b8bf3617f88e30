package exipc_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/internal/ctest"
	"github.com/exipc/exipc/stub"
)

// peerHoldServer is the "hold-server" Go peer: it listens on SERVICE, says
// ready, accepts one channel, sends nsent messages, keeps nkeep blocks, says
// held, and waits to be killed.
func peerHoldServer(domain, service string, nsent, nkeep int) error {
	d, err := exipc.Open(domain, nil)
	if err != nil {
		return err
	}
	l, err := d.Listen(service)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := l.Accept(ctx)
	if err != nil {
		return err
	}
	if err := sendAndKeep(d, c, nsent, nkeep); err != nil {
		return err
	}
	fmt.Println("held")
	time.Sleep(time.Minute)
	return errors.New("not killed within a minute")
}

// Random SIGKILLs of C and Go peers, clients and servers: after each, this
// process receives everything the dead one sent and then ErrPeerDead (in
// flight stub calls: ErrPeerDead), and at the end the domain is exactly
// clean: one process, no block used, every dead one reaped once. The time
// from each kill to the error is reported (never asserted: a benchmark
// figure, see make bench's detect/* rows). EXIPC_KILL_ROUNDS sets the count
// (make torture runs more).
func TestKillTorture(t *testing.T) {
	rounds := 40
	if testing.Short() {
		rounds = 12
	}
	if v, err := strconv.Atoi(os.Getenv("EXIPC_KILL_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	dir := t.TempDir()
	cPeer := cPeerPath(t, dir)
	stubPeer := filepath.Join(dir, "stub_peer")
	if err := ctest.Build("native", stubPeer, []string{"native/test/stub_peer.c"}); err != nil {
		t.Fatal(err)
	}
	d, name := openDomain(t, &exipc.Options{MaxProcs: 64, MaxChans: 512})
	rng := rand.New(rand.NewSource(int64(os.Getpid())))
	kinds := []string{"go-client", "go-server", "c-client", "c-server"}
	took := map[string][]time.Duration{}
	for r := 0; r < rounds; r++ {
		kind := kinds[rng.Intn(len(kinds))]
		service := fmt.Sprintf("kt%d", r)
		dt, err := killRound(t, d, name, service, kind, cPeer, stubPeer, rng)
		if err != nil {
			t.Fatalf("round %d (%s): %v", r, kind, err)
		}
		took[kind] = append(took[kind], dt)
	}
	if _, err := d.Reap(); err != nil {
		t.Fatalf("Reap: %v", err)
	}
	st, err := d.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.ProcsAlive != 1 || st.HeapBlocksUsed != 0 || st.ReapedProcs != uint64(rounds) || st.Services != 0 {
		t.Errorf("after %d kills: %+v, want 1 process, 0 blocks used, %d reaped, no service", rounds, st, rounds)
	}
	for _, k := range kinds {
		s := took[k]
		if len(s) == 0 {
			continue
		}
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		t.Logf("%-9s %3d kills: SIGKILL to ErrPeerDead p50 %v, p99 %v, max %v", k, len(s),
			s[len(s)/2].Round(10*time.Microsecond), s[(len(s)*99+99)/100-1].Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
	}
}

// killRound starts a peer of the kind, kills it at a random moment of its
// work, and returns how long after the kill this side's call said so.
func killRound(t *testing.T, d *exipc.Domain, name, service, kind, cPeer, stubPeer string, rng *rand.Rand) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const nsent, nkeep = 3, 2
	var cmd *exec.Cmd
	var l *exipc.Listener
	var err error
	switch kind {
	case "go-client", "c-client":
		if l, err = d.Listen(service); err != nil {
			return 0, err
		}
		defer l.Close()
		if kind == "go-client" {
			cmd = goPeer(t, "hold", name, service, nsent, nkeep)
		} else {
			cmd = exec.Command(cPeer, "send", name, service, "1000000000", "0")
		}
	case "go-server":
		cmd = goPeer(t, "hold-server", name, service, nsent, nkeep)
	case "c-server":
		cmd = exec.Command(stubPeer, "server", name, service)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := bufio.NewReader(out)
	kill := func() time.Time {
		time.Sleep(time.Duration(rng.Intn(20)) * time.Millisecond)
		t0 := time.Now()
		cmd.Process.Signal(syscall.SIGKILL)
		return t0
	}
	switch kind {
	case "go-client", "go-server":
		var c *exipc.Chan
		if kind == "go-client" {
			c, err = l.Accept(ctx)
		} else {
			if line, _ := lines.ReadString('\n'); line != "ready\n" {
				return 0, fmt.Errorf("peer said %q", line)
			}
			c, err = d.Connect(ctx, service)
		}
		if err != nil {
			return 0, err
		}
		defer c.Close()
		want := "ready\n"
		if kind == "go-server" {
			want = "held\n"
		}
		if line, _ := lines.ReadString('\n'); line != want {
			return 0, fmt.Errorf("peer said %q, want %q", line, want)
		}
		t0 := kill()
		for i := 0; i < nsent; i++ {
			h, b, err := c.RecvBytes(ctx)
			if err != nil {
				return 0, fmt.Errorf("message %d of what the dead peer sent: %v", i, err)
			}
			if checkMsg(b, i) >= 0 {
				return 0, fmt.Errorf("message %d from the dead peer is wrong", i)
			}
			d.Free(h)
		}
		if _, err := c.Recv(ctx); !errors.Is(err, exipc.ErrPeerDead) {
			return 0, fmt.Errorf("after the kill: %v, want ErrPeerDead", err)
		}
		return time.Since(t0), nil
	case "c-client": // a stream: everything up to the kill arrives in order, checked
		c, err := l.Accept(ctx)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		var t0 time.Time
		for i := 0; ; i++ {
			if i == 200 {
				t0 = kill()
			}
			h, b, err := c.RecvBytes(ctx)
			if err != nil {
				if i <= 200 || !errors.Is(err, exipc.ErrPeerDead) {
					return 0, fmt.Errorf("after %d messages: %v, want ErrPeerDead after the kill", i, err)
				}
				return time.Since(t0), nil
			}
			if checkMsg(b, i) >= 0 {
				return 0, fmt.Errorf("message %d of the C stream is wrong", i)
			}
			d.Free(h)
		}
	default: // c-server: a stub call in flight when the server dies
		ch, err := d.Connect(ctx, service)
		if err != nil {
			return 0, err
		}
		cl := stub.NewClient(d, ch)
		defer cl.Close()
		if r, err := cl.Call(ctx, 1, []byte("ping")); err != nil {
			return 0, fmt.Errorf("first call: %v", err)
		} else {
			r.Release()
		}
		res := make(chan error, 1)
		go func() {
			_, err := cl.Call(ctx, 3, binary.LittleEndian.AppendUint32(nil, 5000)) // sleep 5 s
			res <- err
		}()
		time.Sleep(5 * time.Millisecond) // the call is in flight
		t0 := kill()
		if err := <-res; !errors.Is(err, exipc.ErrPeerDead) {
			return 0, fmt.Errorf("call in flight: %v, want ErrPeerDead", err)
		}
		return time.Since(t0), nil
	}
}
