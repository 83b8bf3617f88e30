// Command pop3bench measures POP3 RETR through pop3d and the C store, with
// the store reached over exipc and over a Unix socket: the same pop3d and
// store code, only the transport swapped. It prints RETR/s, MB/s and
// latency percentiles for each, and the exipc/Unix ratio, for a few message
// sizes; runs alternate between the transports so that drift on a shared
// machine hits both alike.
//
//	pop3bench -store build/mailstore/store -pop3d build/mailstore/pop3d
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	storeBin := flag.String("store", "build/mailstore/store", "the store binary")
	popBin := flag.String("pop3d", "build/mailstore/pop3d", "the pop3d binary")
	sizes := flag.String("sizes", "1024,65536,1048000", "message sizes in bytes")
	dur := flag.Duration("time", 2*time.Second, "measuring time per run")
	reps := flag.Int("reps", 3, "runs per transport and size (alternating); the median is reported")
	conns := flag.Int("conns", 1, "concurrent POP3 clients (each its own mailbox)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("pop3bench: ")

	dir, err := os.MkdirTemp("", "pop3bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fmt.Printf("POP3 RETR through pop3d -> store: exipc vs Unix socket (%d client(s), %v per run, median of %d)\n",
		*conns, *dur, *reps)
	fmt.Printf("%-9s %-6s %10s %9s %9s %9s %9s %9s\n", "size", "via", "RETR/s", "MB/s", "p50 µs", "p99 µs", "cpu µs", "ratio")
	for _, s := range strings.Split(*sizes, ",") {
		size, err := strconv.Atoi(s)
		if err != nil {
			log.Fatal(err)
		}
		db := filepath.Join(dir, fmt.Sprintf("bench-%d.db", size))
		count := 100
		if size > 100000 {
			count = 20
		}
		for c := 0; c < *conns; c++ {
			run(*storeBin, "gen", db, fmt.Sprintf("u%d", c), "pw", strconv.Itoa(count), s, "1")
		}
		res := map[string][]result{}
		for r := 0; r < *reps; r++ {
			for _, via := range []string{"exipc", "unix"} {
				res[via] = append(res[via], measure(*storeBin, *popBin, db, dir, via, *conns, count, *dur))
			}
		}
		ex, ux := median(res["exipc"]), median(res["unix"])
		for _, v := range []struct {
			via string
			r   result
		}{{"exipc", ex}, {"unix", ux}} {
			ratio := ""
			if v.via == "exipc" {
				ratio = fmt.Sprintf("%.2fx", ex.rate/ux.rate)
			}
			fmt.Printf("%-9s %-6s %10.0f %9.1f %9.1f %9.1f %9.2f %9s\n", human(size), v.via, v.r.rate,
				v.r.rate*float64(size)/1e6, us(v.r.p50), us(v.r.p99), us(v.r.cpu), ratio)
		}
	}
	fmt.Println("cpu = CPU time of store and pop3d together per RETR, over the measured window")
	fmt.Println("ratio = exipc RETR/s ÷ Unix-socket RETR/s (above 1: exipc faster)")
}

type result struct {
	rate          float64
	p50, p99, cpu time.Duration // cpu: store + pop3d CPU time per RETR
}

func median(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].rate < rs[j].rate })
	return rs[len(rs)/2]
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func human(n int) string {
	switch {
	case n >= 1<<20-4096:
		return fmt.Sprintf("%.0fMiB", float64(n)/(1<<20))
	case n >= 1024:
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

func run(bin string, args ...string) {
	if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		log.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, b)
	}
}

// start runs a server and waits for its first line of output.
func start(bin string, args ...string) (*exec.Cmd, string) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	return cmd, line
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

func measure(storeBin, popBin, db, dir, via string, conns, count int, dur time.Duration) result {
	domain := fmt.Sprintf("pop3bench-%d", os.Getpid())
	sock := filepath.Join(dir, "store.sock")
	var st, pop *exec.Cmd
	var line string
	if via == "exipc" {
		st, _ = start(storeBin, "serve", db, domain)
		pop, line = start(popBin, "-addr", "127.0.0.1:0", "-domain", domain)
	} else {
		st, _ = start(storeBin, "serve-unix", db, sock)
		pop, line = start(popBin, "-addr", "127.0.0.1:0", "-transport", "unix", "-socket", sock)
	}
	defer stop(st)
	defer stop(pop)
	f := strings.Fields(line)
	if len(f) < 4 {
		log.Fatalf("pop3d said %q", line)
	}
	addr := f[3]
	type out struct {
		lat []time.Duration
	}
	ch := make(chan out, conns)
	cpu0 := cpuTime(st.Process.Pid) + cpuTime(pop.Process.Pid)
	deadline := time.Now().Add(dur)
	for c := 0; c < conns; c++ {
		go func(c int) {
			ch <- out{client(addr, fmt.Sprintf("u%d", c), count, deadline)}
		}(c)
	}
	var all []time.Duration
	for c := 0; c < conns; c++ {
		all = append(all, (<-ch).lat...)
	}
	cpu := cpuTime(st.Process.Pid) + cpuTime(pop.Process.Pid) - cpu0
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		log.Fatal("no RETR completed")
	}
	return result{rate: float64(len(all)) / dur.Seconds(), p50: all[len(all)/2], p99: all[len(all)*99/100],
		cpu: cpu / time.Duration(len(all))}
}

// cpuTime is the CPU time a process's threads have used so far: the sum of
// the first field (ns on a CPU) of /proc/PID/task/*/schedstat. A thread that
// has exited is no longer counted; the servers here keep theirs.
func cpuTime(pid int) time.Duration {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		log.Fatalf("cpu time of %d: %v", pid, err)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			log.Fatalf("schedstat of %d/%s: %q", pid, t.Name(), b)
		}
		sum += time.Duration(ns)
	}
	return sum
}

// client logs in and RETRs messages round-robin until the deadline; it
// returns each RETR's latency (command sent to the final ".").
func client(addr, user string, count int, deadline time.Time) []time.Duration {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReaderSize(c, 256<<10)
	expect := func() string {
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "+OK") {
			log.Fatalf("%s: %q %v", user, l, err)
		}
		return l
	}
	expect()
	fmt.Fprintf(c, "USER %s\r\n", user)
	expect()
	fmt.Fprintf(c, "PASS pw\r\n")
	expect()
	var lat []time.Duration
	for i := 0; time.Now().Before(deadline); i++ {
		t0 := time.Now()
		fmt.Fprintf(c, "RETR %d\r\n", i%count+1)
		expect()
		for {
			l, err := r.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				log.Fatal(err)
			}
			if len(l) == 3 && l[0] == '.' {
				break
			}
		}
		lat = append(lat, time.Since(t0))
	}
	fmt.Fprintf(c, "QUIT\r\n")
	io.Copy(io.Discard, r)
	return lat
}
