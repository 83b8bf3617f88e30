package native

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestErrno(t *testing.T) {
	for _, tc := range []struct {
		rc            int
		eagain, noent error
		want          error
	}{
		{0, nil, nil, nil},
		{5, nil, nil, nil},
		{-int(syscall.EAGAIN), ErrQueueFull, nil, ErrQueueFull},
		{-int(syscall.EAGAIN), ErrEmpty, nil, ErrEmpty},
		{-int(syscall.EPIPE), nil, nil, ErrPeerDead},
		{-int(syscall.ENOMEM), nil, nil, ErrHeapFull},
		{-int(syscall.EBADMSG), nil, nil, ErrBadHandle},
		{-int(syscall.EPROTO), nil, nil, ErrCorrupt},
		{-int(syscall.ENOENT), nil, ErrNoService, ErrNoService},
		{-int(syscall.ENOENT), nil, nil, fs.ErrNotExist},
		{-int(syscall.EEXIST), nil, nil, ErrServiceExists},
		{-int(syscall.ENOTSUP), nil, nil, ErrIncompatible},
		{-int(syscall.EINVAL), nil, nil, ErrInvalid},
		{-int(syscall.EMFILE), nil, nil, ErrLimit},
		{-int(syscall.EBADF), nil, nil, ErrForked},
		{-int(syscall.EACCES), nil, nil, fs.ErrPermission},
		{-int(syscall.ENOSPC), nil, nil, syscall.ENOSPC},
	} {
		err := Wrap("op", "name", tc.rc, tc.eagain, tc.noent)
		if tc.want == nil {
			if err != nil {
				t.Errorf("Wrap(%d) = %v, want nil", tc.rc, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("Wrap(%d) = %v, want it to match %v", tc.rc, err, tc.want)
		}
		if !strings.HasPrefix(err.Error(), `exipc: op "name": `) {
			t.Errorf("Wrap(%d) text %q", tc.rc, err.Error())
		}
	}
	if got := Wrap("listen", "pop3", -int(syscall.EEXIST), nil, nil).Error(); got != `exipc: listen "pop3": service already exists` {
		t.Errorf("text %q", got)
	}
	to := WrapErr("connect", "x", &Timeout{Cause: ErrNoService, Ctx: context.DeadlineExceeded})
	if !errors.Is(to, ErrNoService) || !errors.Is(to, context.DeadlineExceeded) {
		t.Errorf("Timeout error %v does not match both causes", to)
	}
}

// The C core names every errno it returns.
func TestStrerror(t *testing.T) {
	for _, e := range []syscall.Errno{syscall.EAGAIN, syscall.EPIPE, syscall.ETIMEDOUT, syscall.ENOMEM,
		syscall.EBADMSG, syscall.EPROTO, syscall.ENOENT, syscall.EEXIST, syscall.EINVAL, syscall.ENOTSUP,
		syscall.ENOSPC, syscall.EMFILE, syscall.EBADF} {
		if s := Strerror(-int(e)); s == "" {
			t.Errorf("Strerror(-%d) is empty", int(e))
		}
	}
	if Strerror(0) == "" || Strerror(-99999) == "" {
		t.Errorf("Strerror of 0 or an unknown value is empty")
	}
}

// A small end-to-end check of the bridge itself.
func TestBridge(t *testing.T) {
	name := fmt.Sprintf("nativetest-%d", os.Getpid())
	d, rc := Open(name, &Options{Size: 1 << 20, RingCapacity: 4})
	if rc < 0 {
		t.Fatalf("Open: %s", Strerror(rc))
	}
	defer func() {
		d.Close()
		if rc := Unlink(name); rc != 0 {
			t.Errorf("Unlink: %s", Strerror(rc))
		}
		if rc := Unlink(name); rc != -int(syscall.ENOENT) {
			t.Errorf("second Unlink = %d, want -ENOENT", rc)
		}
	}()
	if _, rc := Open("bad\x00name", nil); rc != -int(syscall.EINVAL) {
		t.Errorf("Open(name with NUL) = %d, want -EINVAL", rc)
	}
	l, rc := d.Listen("svc")
	if rc < 0 {
		t.Fatalf("Listen: %s", Strerror(rc))
	}
	cs, _ := NewCService("svc")
	defer cs.Free()
	c, rc := d.Connect(cs, int64(time.Second))
	if rc < 0 {
		t.Fatalf("Connect: %s", Strerror(rc))
	}
	s, rc := l.Accept(int64(time.Second))
	if rc < 0 {
		t.Fatalf("Accept: %s", Strerror(rc))
	}
	hs := make([]uint64, 6)
	for i := range hs {
		h, rc := d.Alloc(10)
		if rc < 0 {
			t.Fatalf("Alloc: %s", Strerror(rc))
		}
		d.Bytes(h)[0] = byte(i)
		hs[i] = h
	}
	if n := c.SendBatch(hs); n != 4 {
		t.Errorf("SendBatch(6) into a ring of 4 = %d", n)
	}
	if rc := c.Send(hs[4]); rc != -int(syscall.EAGAIN) {
		t.Errorf("Send into a full ring = %d, want -EAGAIN", rc)
	}
	got := make([]uint64, 8)
	if n := s.RecvBatch(got, 0); n != 4 {
		t.Errorf("RecvBatch = %d, want 4", n)
	}
	for i, h := range got[:4] {
		if b := d.Bytes(h); len(b) != 10 || b[0] != byte(i) {
			t.Errorf("received block %d = %v", i, b)
		}
		d.Free(h)
	}
	if _, rc := s.Recv(0); rc != -int(syscall.EAGAIN) {
		t.Errorf("Recv(0) on empty = %d, want -EAGAIN", rc)
	}
	if _, rc := s.Recv(int64(time.Millisecond)); rc != -int(syscall.ETIMEDOUT) {
		t.Errorf("Recv(1ms) on empty = %d, want -ETIMEDOUT", rc)
	}
	d.Free(hs[4])
	d.Free(hs[5])
	st, rc := d.Stat()
	if rc < 0 || st.ProcsAlive != 1 || st.ChansBound != 1 || st.Services != 1 || st.HeapBlocksUsed != 0 {
		t.Errorf("Stat = %+v, %d", st, rc)
	}
	c.Close()
	s.Close()
	l.Close()
}
