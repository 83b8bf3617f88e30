// Package ctest builds C programs against the exipc C core for the tests
// that run C peers (stream, stub and mail-store tests). It is test support
// only: the library does not import it.
package ctest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles the C core in nativeDir (its *.c files, less those marked
// //go:build ignore, as cgo does) with srcs into the program out, linked
// with the extra flags libs. The compiler is `go env CC`, else gcc.
func Build(nativeDir, out string, srcs []string, libs ...string) error {
	core, _ := filepath.Glob(filepath.Join(nativeDir, "*.c"))
	args := []string{"-std=gnu11", "-O2", "-pthread", "-D_GNU_SOURCE", "-I" + nativeDir}
	for _, s := range core {
		if !buildIgnored(s) {
			args = append(args, s)
		}
	}
	args = append(args, srcs...)
	args = append(args, "-o", out)
	args = append(args, libs...)
	cc := strings.Fields(goEnv("CC"))
	if len(cc) == 0 {
		cc = []string{"gcc"}
	}
	if b, err := exec.Command(cc[0], append(cc[1:], args...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %s %s: %v\n%s", filepath.Base(out), strings.Join(cc, " "),
			strings.Join(args, " "), err, b)
	}
	return nil
}

func goEnv(key string) string {
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// buildIgnored reports whether a C file starts with a //go:build ignore line
// (a C program with main kept beside the core).
func buildIgnored(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	return sc.Scan() && strings.HasPrefix(strings.TrimSpace(sc.Text()), "//go:build ignore")
}
