package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/exipc/exipc"
)

// fakeStore answers AUTH and fails every other call with err.
type fakeStore struct{ err error }

func (f *fakeStore) Call(ctx context.Context, op uint32, body []byte) (*Reply, error) {
	if op == opAuth {
		b := binary.LittleEndian.AppendUint64(nil, 7)
		b = binary.LittleEndian.AppendUint32(b, 1)
		return &Reply{Body: binary.LittleEndian.AppendUint64(b, 10)}, nil
	}
	return nil, f.err
}
func (f *fakeStore) Close() error { return nil }

// TestQueueFullIsRetryable: a full queue towards the store gives -ERR with a
// retry hint at once, never a stall.
func TestQueueFullIsRetryable(t *testing.T) {
	cfg := &config{store: &fakeStore{err: exipc.ErrQueueFull}, callTimeout: time.Second, idle: time.Minute,
		maxMessage: 1 << 20}
	a, b := net.Pipe()
	go serveConn(cfg, a)
	r := bufio.NewReader(b)
	b.SetDeadline(time.Now().Add(5 * time.Second))
	say := func(s string) string {
		if s != "" {
			b.Write([]byte(s + "\r\n"))
		}
		l, _ := r.ReadString('\n')
		return strings.TrimSpace(l)
	}
	say("")
	say("USER u")
	if l := say("PASS p"); !strings.HasPrefix(l, "+OK maildrop has 1 messages (10 octets)") {
		t.Fatalf("PASS: %q", l)
	}
	t0 := time.Now()
	if l := say("RETR 1"); l != "-ERR [SYS/TEMP] store busy (queue full), try again in a moment" {
		t.Errorf("RETR with a full queue: %q", l)
	}
	if time.Since(t0) > 500*time.Millisecond {
		t.Errorf("a full queue took %v", time.Since(t0))
	}
	b.Close()
}

func TestDotStuffing(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"a\r\n":                  "a\r\n",
		".a\r\n.\r\nb\r\n..\r\n": "..a\r\n..\r\nb\r\n...\r\n",
		"no newline":             "no newline\r\n",
		"x\r\n.":                 "x\r\n..\r\n",
	} {
		var b bytes.Buffer
		writeDotStuffed(&b, []byte(in))
		if b.String() != want {
			t.Errorf("%q: %q, want %q", in, b.String(), want)
		}
	}
	// Random messages of '.', '\r', '\n' and letters against the rule
	// applied line by line.
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 2000; n++ {
		msg := make([]byte, rng.IntN(64))
		for i := range msg {
			msg[i] = ".\r\nab"[rng.IntN(5)]
		}
		var want bytes.Buffer
		rest := msg
		for len(rest) > 0 {
			line := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				line = rest[:i+1]
			}
			if line[0] == '.' {
				want.WriteByte('.')
			}
			want.Write(line)
			rest = rest[len(line):]
		}
		if len(msg) > 0 && msg[len(msg)-1] != '\n' {
			want.WriteString("\r\n")
		}
		var got bytes.Buffer
		writeDotStuffed(&got, msg)
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%q: %q, want %q", msg, got.Bytes(), want.Bytes())
		}
	}
}
