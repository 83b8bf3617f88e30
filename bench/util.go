package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// nanotime is the runtime's CLOCK_MONOTONIC reading (through the vDSO): the
// clock the C peers read with clock_gettime, so one-way latencies can be
// taken across processes, and cheaper than time.Now.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// sink keeps reads of payloads from being optimised away.
var sink uint64

// touch reads every byte of b, as a receiver that uses its data does.
func touch(b []byte) uint64 {
	var s0, s1, s2, s3 uint64
	i := 0
	for ; i+32 <= len(b); i += 32 {
		w := (*[4]uint64)(unsafe.Pointer(&b[i]))
		s0 += w[0]
		s1 += w[1]
		s2 += w[2]
		s3 += w[3]
	}
	for ; i < len(b); i++ {
		s0 += uint64(b[i])
	}
	return s0 + s1 + s2 + s3
}

func put64(b []byte, v uint64) { binary.LittleEndian.PutUint64(b, v) }
func get64(b []byte) uint64    { return binary.LittleEndian.Uint64(b) }

// makeSrc returns the payload a sender copies into each message.
func makeSrc(size int) []byte {
	b := make([]byte, max(size, 8))
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return b[:size]
}

// yield gives the CPU away for a moment (sched_yield): what exipc's docs ask
// of a sender that finds the ring full.
func yield() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }

// spinFor busy-waits ns nanoseconds.
func spinFor(ns int64) {
	until := nanotime() + ns
	for nanotime() < until {
	}
}

// parkGap is how long a park-mode sender waits before sending, so that the
// receiver has finished exipc's 20 µs spin and is asleep on its futex.
const parkGap = 100_000

// args are a peer's key=value arguments.
type args map[string]string

func parseArgs(list []string) args {
	a := args{}
	for _, s := range list {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			fatalf("argument %q is not key=value", s)
		}
		a[k] = v
	}
	return a
}

func (a args) str(k, def string) string {
	if v, ok := a[k]; ok {
		return v
	}
	if def == "\x00" {
		fatalf("missing %s=", k)
	}
	return def
}

func (a args) int(k string, def int) int {
	v, ok := a[k]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		fatalf("bad %s=%s", k, v)
	}
	return n
}

var peerRole = "driver"

func fatalf(format string, v ...any) {
	fmt.Fprintf(os.Stderr, "exipcbench %s: %s\n", peerRole, fmt.Sprintf(format, v...))
	os.Exit(1)
}

// writeSamples stores latency samples as little-endian uint32 nanoseconds.
func writeSamples(path string, s []uint32) {
	if path == "" {
		return
	}
	b := make([]byte, 4*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		fatalf("%v", err)
	}
}

func readSamples(path string) ([]uint32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := make([]uint32, len(b)/4)
	for i := range s {
		s[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return s, nil
}

func clamp32(v int64) uint32 {
	if v < 0 {
		return 0
	}
	if v > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(v)
}

// mallocs counts heap allocations of this process so far (a stop-the-world
// read: call it outside measured loops only).
func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

// report prints a peer's result line. allocs < 0: not counted.
// cpuOf sums the CPU time in ns that the threads of pids have used
// (/proc/PID/task/*/schedstat: nanoseconds, unlike stat's clock ticks).
// A thread that ended is no longer counted: Go peers keep theirs.
// Pids that are gone count 0.
func cpuOf(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
			if err != nil {
				continue
			}
			if f := strings.Fields(string(b)); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				sum += n
			}
		}
	}
	return sum
}

func report(start, end int64, count int, allocs int64) {
	fmt.Printf("result start_ns=%d end_ns=%d count=%d allocs=%d\n", start, end, count, allocs)
}

// reportCPU is report with the CPU time of the measured part (cpu_ns=).
func reportCPU(start, end int64, count int, allocs, cpuNs int64) {
	fmt.Printf("result start_ns=%d end_ns=%d count=%d allocs=%d cpu_ns=%d\n", start, end, count, allocs, cpuNs)
}
