// Command exipc is the operator's view of exipc domains: which exist, who is
// attached, what is queued, how full the heap is; and the two repairs, reap
// and rm. It attaches read-only (exipc.Inspect): it never creates a domain,
// never registers as a process, and on a damaged domain prints an error
// rather than crashing.
//
//	exipc ls [--json]                 domains in /dev/shm
//	exipc stat NAME [--json]          processes, services, channels, heap by size class, counters
//	exipc top NAME [--interval D]     stat refreshed in place, with rates
//	exipc reap NAME                   clean dead processes; prints how many
//	exipc rm NAME [--force]           unlink; refuses (exit 1) while live processes are attached
//	exipc metrics NAME                the same figures as OpenMetrics text
//
// Exit status: 0 ok, 1 error, 2 usage. Errors go to stderr and name the
// domain and the cause.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const usageText = `usage:
  exipc ls [--json]                 domains in /dev/shm
  exipc stat NAME [--json]          processes, services, channels, heap by size class, counters
  exipc top NAME [--interval D]     stat refreshed in place, with rates (q quits)
  exipc reap NAME                   clean dead processes; prints how many
  exipc rm NAME [--force]           unlink; refuses (exit 1) while live processes are attached
  exipc metrics NAME                the same figures as OpenMetrics text
`

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "ls":
		err = cmdLs(rest, stdout)
	case "stat":
		err = cmdStat(rest, stdout)
	case "top":
		err = cmdTop(rest, stdin, stdout)
	case "reap":
		err = cmdReap(rest, stdout)
	case "rm":
		err = cmdRm(rest, stdout)
	case "metrics":
		err = cmdMetrics(rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return 0
	default:
		err = &usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "exipc: %s\n%s", ue.msg, usageText)
		return 2
	}
	fmt.Fprintf(stderr, "exipc %s: %v\n", cmd, err)
	return 1
}

// parse parses a command's flags, which may come before or after its
// arguments, and returns the arguments; want is how many.
func parse(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, &usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != want {
		if want == 0 {
			return nil, &usageError{fmt.Sprintf("%s takes no argument, got %s", fs.Name(), strings.Join(pos, " "))}
		}
		return nil, &usageError{fmt.Sprintf("%s needs one domain NAME", fs.Name())}
	}
	return pos, nil
}
