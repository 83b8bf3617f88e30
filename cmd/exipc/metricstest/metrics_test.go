// Package metricstest checks `exipc metrics` with Prometheus's own parsers:
// the OpenMetrics 1.0 decoder and the text-format parser that the
// node_exporter text-file collector uses (it sees a counter NAME as the
// untyped series NAME_total, which Prometheus stores alike). It is a module of its own so the
// library's go.mod keeps its two dependencies.
//
// It runs the built command (EXIPC_CLI, else it builds ../ itself) against a
// domain that a C host (../testdata/chost.c, built here) holds open.
package metricstest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const root = "../../.."

func build(t *testing.T) (cli, chost string) {
	dir := t.TempDir()
	cli = os.Getenv("EXIPC_CLI")
	if cli == "" {
		cli = filepath.Join(dir, "exipc")
		if b, err := exec.Command("go", "build", "-C", root, "-o", cli, "./cmd/exipc").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
	}
	chost = filepath.Join(dir, "chost")
	srcs, _ := filepath.Glob(filepath.Join(root, "native", "*.c"))
	args := []string{"-std=gnu11", "-O2", "-pthread", "-D_GNU_SOURCE", "-I" + filepath.Join(root, "native")}
	for _, s := range srcs {
		b, _ := os.ReadFile(s)
		if !bytes.HasPrefix(b, []byte("//go:build ignore")) {
			args = append(args, s)
		}
	}
	args = append(args, "../testdata/chost.c", "-o", chost)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return cli, chost
}

func TestMetricsParse(t *testing.T) {
	cli, chost := build(t)
	name := fmt.Sprintf("clitest-metrics-%d", os.Getpid())
	defer os.Remove("/dev/shm/exipc." + name)
	host := exec.Command(chost, name, "m-svc", "5", "3")
	stdin, _ := host.StdinPipe()
	stdout, _ := host.StdoutPipe()
	host.Stderr = os.Stderr
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { host.Process.Kill(); host.Wait() }()
	ready := make(chan bool, 1)
	go func() { sc := bufio.NewScanner(stdout); ready <- sc.Scan() && sc.Text() == "ready" }()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("C host: no ready line")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("C host not ready")
	}
	out, err := exec.Command(cli, "metrics", name).Output()
	if err != nil {
		t.Fatalf("exipc metrics: %v", err)
	}
	if !bytes.HasSuffix(out, []byte("# EOF\n")) {
		t.Errorf("output does not end with # EOF")
	}

	// 1. The OpenMetrics 1.0 grammar.
	dec := expfmt.NewDecoder(bytes.NewReader(out), expfmt.FmtOpenMetrics_1_0_0)
	om := map[string]*dto.MetricFamily{}
	for {
		var f dto.MetricFamily
		err := dec.Decode(&f)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("OpenMetrics decode: %v\n%s", err, out)
		}
		om[f.GetName()] = &f
	}
	// 2. The text format, as the text-file collector reads it.
	p := expfmt.NewTextParser(model.UTF8Validation)
	text, err := p.TextToMetricFamilies(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("text parse: %v\n%s", err, out)
	}
	if len(om) < 20 {
		t.Errorf("only %d families decoded", len(om))
	}

	pid := strconv.Itoa(host.Process.Pid)
	for _, fams := range []map[string]*dto.MetricFamily{om, text} {
		check := func(fam string, labels map[string]string, want float64) {
			t.Helper()
			f := fams[fam]
			if f == nil {
				f = fams[fam+"_total"] // a counter: its samples are NAME_total
			}
			if f == nil {
				t.Errorf("no family %s", fam)
				return
			}
			for _, m := range f.GetMetric() {
				got := map[string]string{}
				for _, l := range m.GetLabel() {
					got[l.GetName()] = l.GetValue()
				}
				match := true
				for k, v := range labels {
					if got[k] != v {
						match = false
					}
				}
				if !match {
					continue
				}
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
				if v != want {
					t.Errorf("%s%v = %v, want %v", fam, labels, v, want)
				}
				return
			}
			t.Errorf("%s: no sample with labels %v", fam, labels)
		}
		dom := map[string]string{"domain": name}
		check("exipc_procs_alive", dom, 1)
		check("exipc_services", dom, 1)
		check("exipc_heap_blocks_used", dom, 8)
		check("exipc_allocs", dom, 8)
		check("exipc_reaped_procs", dom, 0)
		client := map[string]string{"domain": name, "service": "m-svc", "pid": pid, "end": "client"}
		server := map[string]string{"domain": name, "service": "m-svc", "pid": pid, "end": "server"}
		check("exipc_chan_queued", client, 5)
		check("exipc_chan_sent", client, 5)
		check("exipc_chan_received", server, 0)
		check("exipc_chan_full_refusals", client, 0)
		check("exipc_service_pending_connects", map[string]string{"domain": name, "service": "m-svc", "pid": pid}, 0)
		check("exipc_proc_blocks_owned", map[string]string{"domain": name, "pid": pid}, 3)
		check("exipc_heap_class_blocks_used", map[string]string{"domain": name, "size": "224"}, 5)  // 200 B blocks: class 224
		check("exipc_heap_class_blocks_used", map[string]string{"domain": name, "size": "3072"}, 3) // 3000 B blocks: class 3072
	}
	if f := om["exipc_chan_sent_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("exipc_chan_sent is not a counter in OpenMetrics")
	}
	for name := range text {
		if !strings.HasPrefix(name, "exipc_") {
			t.Errorf("family %s is not exipc_*", name)
		}
	}
	stdin.Close()
}
