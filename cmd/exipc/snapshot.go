package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/exipc/exipc"
)

// shmDir and shmPrefix: where the core keeps domains (/dev/shm/exipc.NAME).
const (
	shmDir    = "/dev/shm"
	shmPrefix = "exipc."
)

func domainPath(name string) string { return shmDir + "/" + shmPrefix + name }

// fileInfo is what ls shows of a file named exipc.* without opening it.
type fileInfo struct {
	Name  string `json:"name"`
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
	Mode  string `json:"mode"`
	UID   uint32 `json:"uid"`
	Owner string `json:"owner"`
}

func statFile(name string) (fileInfo, error) {
	p := domainPath(name)
	st, err := os.Lstat(p)
	if err != nil {
		return fileInfo{}, err
	}
	fi := fileInfo{Name: name, Path: p, Bytes: st.Size(), Mode: fmt.Sprintf("%04o", st.Mode().Perm())}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		fi.UID = sys.Uid
	}
	fi.Owner = userName(fi.UID)
	return fi, nil
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return strconv.FormatUint(uint64(uid), 10)
}

// snapshot is one read of a domain: every figure stat, top and metrics show.
type snapshot struct {
	At       time.Time
	File     fileInfo
	Info     exipc.InspectInfo
	Stat     exipc.Stat
	Procs    []exipc.ProcInfo
	Services []exipc.ServiceInfo
	Chans    []exipc.ChanInfo
	Heap     exipc.HeapStat
}

// take reads every figure of the domain through in.
func take(in *exipc.Inspector, fi fileInfo) (*snapshot, error) {
	s := &snapshot{At: time.Now(), File: fi}
	var err error
	if s.Info, err = in.Info(); err != nil {
		return nil, err
	}
	if s.Stat, err = in.Stat(); err != nil {
		return nil, err
	}
	if s.Procs, err = in.Procs(); err != nil {
		return nil, err
	}
	if s.Services, err = in.Services(); err != nil {
		return nil, err
	}
	if s.Chans, err = in.Chans(); err != nil {
		return nil, err
	}
	if s.Heap, err = in.Heap(); err != nil {
		return nil, err
	}
	return s, nil
}

// open inspects NAME and reads its file's metadata.
func open(name string) (*exipc.Inspector, fileInfo, error) {
	fi, err := statFile(name)
	if err != nil {
		return nil, fileInfo{}, domainErr(name, err)
	}
	in, err := exipc.Inspect(name)
	if err != nil {
		return nil, fileInfo{}, domainErr(name, err)
	}
	return in, fi, nil
}

// snapshotOf opens, reads and closes NAME; errors name the domain.
func snapshotOf(name string) (*snapshot, error) {
	s, err := snapshotRaw(name)
	if err != nil {
		return nil, domainErr(name, err)
	}
	return s, nil
}

// snapshotRaw is snapshotOf with the library's error as it is.
func snapshotRaw(name string) (*snapshot, error) {
	fi, err := statFile(name)
	if err != nil {
		return nil, err
	}
	in, err := exipc.Inspect(name)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	return take(in, fi)
}

// domainErr words err for an operator: the domain, its file, and the cause
// in plain words (the errno text).
func domainErr(name string, err error) error {
	return fmt.Errorf("domain %q (%s): %s", name, domainPath(name), cause(err))
}

func cause(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such domain"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied (" + syscall.EACCES.Error() + ")"
	case errors.Is(err, exipc.ErrCorrupt):
		return "not a valid domain: shared state corrupt, truncated or half created (" + syscall.EPROTO.Error() + ")"
	case errors.Is(err, exipc.ErrIncompatible):
		return "incompatible domain layout (another version or cache-line size)"
	}
	var e *exipc.Error
	if errors.As(err, &e) && e.Err != nil {
		return e.Err.Error()
	}
	return err.Error()
}

// stateName is the JSON and table word for a process state.
func stateName(s uint32) string {
	switch s {
	case exipc.ProcAlive:
		return "alive"
	case exipc.ProcDead:
		return "dead"
	case exipc.ProcReaping:
		return "reaping"
	}
	return "unknown"
}

// listNames returns the names of the files exipc.* in /dev/shm, sorted.
func listNames() ([]string, error) {
	ents, err := os.ReadDir(shmDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutPrefix(e.Name(), shmPrefix); ok && n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// human prints a byte count with a binary unit.
func human(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v == float64(uint64(v)) {
		return fmt.Sprintf("%d %ciB", uint64(v), "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}

func pidText(pid int32) string {
	if pid == 0 {
		return "-"
	}
	return strconv.Itoa(int(pid))
}
