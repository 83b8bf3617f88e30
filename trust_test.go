package exipc_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/exipc/exipc"
)

// The squatter: a process of another user that creates a name first. Run as
// the test binary itself, re-executed under that user's uid and gid.
const squatEnv = "EXIPC_TEST_SQUAT" // "domain NAME MODE" or "garbage NAME"

// otherUser returns the uid and gid of the unprivileged user exipc-test,
// creating it when the tests run as root; it skips otherwise.
func otherUser(t *testing.T) (uid, gid uint32) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates the user exipc-test and runs a process as that user")
	}
	u, err := user.Lookup("exipc-test")
	if err != nil {
		// Left in place afterwards, so concurrent runs do not race to delete it.
		exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "exipc-test").Run()
		if u, err = user.Lookup("exipc-test"); err != nil {
			t.Skipf("cannot create the user exipc-test: %v", err)
		}
	}
	id, _ := strconv.Atoi(u.Uid)
	g, _ := strconv.Atoi(u.Gid)
	return uint32(id), uint32(g)
}

// runAs runs this test binary as uid:gid with squatEnv=spec and waits.
func runAs(t *testing.T, uid, gid uint32, spec string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The go test binary sits in a directory only we can read: copy it
	// where the other user can execute it.
	dir, err := os.MkdirTemp("", "exipc-squat-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "squatter")
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err == nil {
		_, err = io.Copy(dst, src)
		dst.Close()
	}
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestSquatterMain$", "-test.count=1")
	cmd.Env = append(os.Environ(), squatEnv+"="+spec)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("squatter %q as uid %d: %v\n%s", spec, uid, err, out)
	}
}

// TestSquatterMain is the squatter process; it does nothing in a normal run.
func TestSquatterMain(t *testing.T) {
	spec := os.Getenv(squatEnv)
	if spec == "" {
		t.Skip("runs only as the squatter process of the trust tests")
	}
	f := strings.Fields(spec)
	switch {
	case len(f) == 3 && f[0] == "domain":
		mode, _ := strconv.ParseUint(f[2], 8, 32)
		d, err := exipc.Open(f[1], &exipc.Options{Mode: uint32(mode)})
		if err != nil {
			t.Fatal(err)
		}
		d.Close() // the domain stays, owned by this user
	case len(f) == 2 && f[0] == "garbage":
		junk := make([]byte, 8192)
		for i := range junk {
			junk[i] = byte(i*131 + 7)
		}
		if err := os.WriteFile("/dev/shm/exipc."+f[1], junk, 0o666); err != nil {
			t.Fatal(err)
		}
		os.Chmod("/dev/shm/exipc."+f[1], 0o666)
	default:
		t.Fatalf("bad %s=%q", squatEnv, spec)
	}
}

func ownerOf(t *testing.T, name string) uint32 {
	t.Helper()
	fi, err := os.Stat(shmPath(name))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid
}

// A squatter's valid 0666 domain is refused to a server meaning to create
// its own and to a client, with an error that names the owner; trusting the
// squatter's uid is the only way in.
func TestTrustSquattedDomain(t *testing.T) {
	uid, gid := otherUser(t)
	name := uniqueName("squat")
	runAs(t, uid, gid, "domain "+name+" 0666")
	t.Cleanup(func() { cleanupName(t, name) })
	if got := ownerOf(t, name); got != uid {
		t.Fatalf("squatted domain owned by %d, want %d", got, uid)
	}
	for _, opts := range []*exipc.Options{nil, {AttachOnly: true}, {Mode: 0o666}} {
		d, err := exipc.Open(name, opts)
		if err == nil {
			d.Close()
			t.Fatalf("Open(%+v) of another user's domain succeeded", opts)
		}
		if !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("Open(%+v): %v, want an error matching fs.ErrPermission", opts, err)
		}
		if want := "owned by uid " + strconv.Itoa(int(uid)) + " (exipc-test)"; !strings.Contains(err.Error(), want) {
			t.Fatalf("Open(%+v): %q does not name the owner (%q)", opts, err, want)
		}
	}
	other := uid + 1
	if _, err := exipc.Open(name, &exipc.Options{TrustUID: &other}); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Open trusting uid %d: %v, want fs.ErrPermission", other, err)
	}
	d, err := exipc.Open(name, &exipc.Options{TrustUID: &uid})
	if err != nil {
		t.Fatalf("Open trusting the owner's uid: %v", err)
	}
	if st, err := d.Stat(); err != nil || st.ProcsAlive != 1 {
		t.Fatalf("Stat after trusted attach: %+v, %v", st, err)
	}
	d.Close()
}

// A squatter's garbage file is refused as untrusted before a byte of it is
// read; trusted, it is refused as not a domain.
func TestTrustSquattedGarbage(t *testing.T) {
	uid, gid := otherUser(t)
	name := uniqueName("squatjunk")
	runAs(t, uid, gid, "garbage "+name)
	t.Cleanup(func() { os.Remove(shmPath(name)) })
	if _, err := exipc.Open(name, nil); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Open of a squatted garbage file: %v, want fs.ErrPermission", err)
	}
	if _, err := exipc.Open(name, &exipc.Options{TrustUID: &uid}); !errors.Is(err, exipc.ErrCorrupt) {
		t.Fatalf("Open of a trusted garbage file: %v, want ErrCorrupt", err)
	}
	if got := ownerOf(t, name); got != uid {
		t.Fatalf("the garbage file changed owner: %d", got)
	}
}

// A group-shared domain: the other user creates it 0660 for its own group;
// we attach trusting that group (root is not asked to be a member: the
// kernel lets it open the file, and trust is exipc's own check).
func TestTrustGroup(t *testing.T) {
	uid, gid := otherUser(t)
	name := uniqueName("group")
	runAs(t, uid, gid, "domain "+name+" 0660")
	t.Cleanup(func() { cleanupName(t, name) })
	if _, err := exipc.Open(name, nil); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Open without trust: %v, want fs.ErrPermission", err)
	}
	d, err := exipc.Open(name, &exipc.Options{TrustGID: &gid})
	if err != nil {
		t.Fatalf("Open trusting gid %d: %v", gid, err)
	}
	d.Close()
}

// AttachOnly creates nothing; its error matches fs.ErrNotExist.
func TestAttachOnly(t *testing.T) {
	name := uniqueName("attachonly")
	_, err := exipc.Open(name, &exipc.Options{AttachOnly: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(AttachOnly) of no domain: %v, want fs.ErrNotExist", err)
	}
	if _, serr := os.Stat(shmPath(name)); !errors.Is(serr, fs.ErrNotExist) {
		t.Fatalf("Open(AttachOnly) created %s", shmPath(name))
	}
	d, _ := openDomainNamed(t, name, nil)
	e, err := exipc.Open(name, &exipc.Options{AttachOnly: true})
	if err != nil {
		t.Fatalf("Open(AttachOnly) of an existing domain: %v", err)
	}
	if st, _ := d.Stat(); st.ProcsAlive != 2 {
		t.Fatalf("ProcsAlive %d after an attach-only open, want 2", st.ProcsAlive)
	}
	e.Close()
}

// openDomainNamed opens (creates) domain NAME with cleanup, like openDomain.
func openDomainNamed(t *testing.T, name string, opts *exipc.Options) (*exipc.Domain, string) {
	t.Helper()
	d, err := exipc.Open(name, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	t.Cleanup(func() {
		d.Close()
		cleanupName(t, name)
	})
	return d, name
}
