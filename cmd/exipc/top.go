package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unsafe"
)

// top redraws stat in place every interval, with rates since the previous
// frame, until q (or Ctrl-C). On a terminal it switches to the alternate
// screen and reads keys unbuffered, restoring both on the way out; without
// one it still redraws, and quits when q arrives on stdin.
func cmdTop(args []string, stdin io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	interval := fs.Duration("interval", time.Second, "time between refreshes")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *interval < 10*time.Millisecond {
		return &usageError{"top: --interval must be at least 10ms"}
	}
	name := pos[0]
	in, fi, err := open(name)
	if err != nil {
		return err
	}
	defer in.Close()

	tty := isTerminal(stdin) && isTerminal(out)
	if tty {
		restore, err := rawMode(stdin.(*os.File))
		if err == nil {
			defer restore()
		}
		fmt.Fprint(out, "\x1b[?1049h\x1b[?25l") // alternate screen, hide cursor
		defer fmt.Fprint(out, "\x1b[?25h\x1b[?1049l")
	}
	keys := make(chan byte, 16)
	go func() {
		b := make([]byte, 64)
		for {
			n, err := stdin.Read(b)
			for _, c := range b[:n] {
				keys <- c
			}
			if err != nil {
				return
			}
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)

	tick := time.NewTicker(*interval)
	defer tick.Stop()
	var prev *snapshot
	var frame bytes.Buffer
	for {
		s, err := take(in, fi)
		if err != nil {
			return domainErr(name, err)
		}
		frame.Reset()
		frame.WriteString("\x1b[H") // home; each line then clears its rest
		fmt.Fprintf(&frame, "exipc top %s  every %v  %s  (q quits)\n", name, *interval, s.At.Format("15:04:05"))
		printStat(lineClearer{&frame}, s, prev)
		frame.WriteString("\x1b[J") // clear what an older, longer frame left below
		out.Write(frame.Bytes())
		prev = s
		select {
		case <-tick.C:
		case <-sig:
			return nil
		case c := <-keys:
			if c == 'q' || c == 'Q' || c == 3 {
				return nil
			}
		}
	}
}

// lineClearer writes through, ending each line with "erase to end of line",
// so a frame drawn over a longer one leaves nothing of it behind.
type lineClearer struct{ w io.Writer }

func (l lineClearer) Write(p []byte) (int, error) {
	n := len(p)
	_, err := l.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\x1b[K\n")))
	return n, err
}

func isTerminal(x any) bool {
	f, ok := x.(*os.File)
	if !ok {
		return false
	}
	var t syscall.Termios
	return ioctl(f.Fd(), syscall.TCGETS, &t) == nil
}

func ioctl(fd uintptr, req uintptr, t *syscall.Termios) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(t))); e != 0 {
		return e
	}
	return nil
}

// rawMode turns off line buffering and echo (keys arrive one by one; signals
// still work) and returns the function that puts the terminal back.
func rawMode(f *os.File) (func(), error) {
	var old syscall.Termios
	if err := ioctl(f.Fd(), syscall.TCGETS, &old); err != nil {
		return nil, err
	}
	t := old
	t.Lflag &^= syscall.ICANON | syscall.ECHO
	t.Cc[syscall.VMIN] = 1
	t.Cc[syscall.VTIME] = 0
	if err := ioctl(f.Fd(), syscall.TCSETS, &t); err != nil {
		return nil, err
	}
	return func() { ioctl(f.Fd(), syscall.TCSETS, &old) }, nil
}
