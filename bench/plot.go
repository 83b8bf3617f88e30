package main

// Plots: round trip against payload size, throughput against payload size,
// and the latency CDF of 64 B round trips; each as PNG and SVG.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

type series struct {
	label string
	pts   plotter.XYs
}

// sizeTicks labels the payload axis with the sizes measured.
type sizeTicks struct{}

func (sizeTicks) Ticks(lo, hi float64) []plot.Tick {
	var t []plot.Tick
	for _, s := range sizes {
		if float64(s) >= lo*0.99 && float64(s) <= hi*1.01 {
			t = append(t, plot.Tick{Value: float64(s), Label: sizeLabel(s)})
		}
	}
	return t
}

// durTicks labels a log axis of nanoseconds in ns/µs/ms.
type durTicks struct{}

func (durTicks) Ticks(lo, hi float64) []plot.Tick {
	var t []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi*1.0001; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo*0.9999 || v > hi*1.0001 {
				continue
			}
			label := ""
			if m == 1 || m == 5 && hi/lo < 1e4 { // fewer labels over a wide range
				label = strings.ReplaceAll(fmtValue(v, "ns"), ".00", "")
				label = strings.ReplaceAll(label, ".0 ", " ")
			}
			t = append(t, plot.Tick{Value: v, Label: label})
		}
	}
	return t
}

// rateTicks labels a log axis of bytes/s.
type rateTicks struct{}

func (rateTicks) Ticks(lo, hi float64) []plot.Tick {
	var t []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi*1.0001; e++ {
		v := math.Pow(10, e)
		if v < lo*0.9999 {
			continue
		}
		var label string
		switch {
		case v >= 1e9:
			label = fmt.Sprintf("%g GB/s", v/1e9)
		case v >= 1e6:
			label = fmt.Sprintf("%g MB/s", v/1e6)
		default:
			label = fmt.Sprintf("%g kB/s", v/1e3)
		}
		t = append(t, plot.Tick{Value: v, Label: label})
	}
	return t
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Add(plotter.NewGrid())
	return p
}

// addLines draws each series in its own colour and mark. A plot left with
// no data gets linear axes (a log axis over nothing cannot be drawn).
func addLines(p *plot.Plot, ss []series) { addLinesOpt(p, ss, true) }

// roomY widens a log Y axis by the factors below and above the data, so
// that the legend has a corner of its own.
func roomY(p *plot.Plot, ss []series, below, above float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, pt := range s.pts {
			lo, hi = math.Min(lo, pt.Y), math.Max(hi, pt.Y)
		}
	}
	if lo > 0 && !math.IsInf(lo, 0) {
		p.Y.Min, p.Y.Max = lo/below, hi*above
	}
}

func addLinesOpt(p *plot.Plot, ss []series, marks bool) {
	any := false
	for _, s := range ss {
		any = any || len(s.pts) > 0
	}
	if !any {
		p.X.Scale, p.Y.Scale = plot.LinearScale{}, plot.LinearScale{}
		p.X.Tick.Marker, p.Y.Tick.Marker = plot.DefaultTicks{}, plot.DefaultTicks{}
		p.Title.Text += " (no data)"
		return
	}
	for i, s := range ss {
		if len(s.pts) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(s.pts)
		if err != nil {
			continue
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / 7)
		l.Width = vg.Points(1.5)
		if !marks {
			p.Add(l)
			p.Legend.Add(s.label, l)
			continue
		}
		pts.Color = l.Color
		pts.Shape = plotutil.Shape(i)
		pts.Radius = vg.Points(2.5)
		p.Add(l, pts)
		p.Legend.Add(s.label, l, pts)
	}
}

// hline draws a reference as a horizontal line across the payload sizes.
func hline(label string, v float64) series {
	if v <= 0 || math.IsNaN(v) {
		return series{}
	}
	return series{label: label, pts: plotter.XYs{{X: float64(sizes[0]), Y: v}, {X: float64(sizes[len(sizes)-1]), Y: v}}}
}

func medianOf(results []*Result, name, metric string) float64 {
	for _, r := range results {
		if r.Name == name && r.Metric == metric && len(r.Reps) > 0 {
			return r.Median
		}
	}
	return math.NaN()
}

func bySize(results []*Result, prefix, metric string) plotter.XYs {
	var pts plotter.XYs
	for _, s := range sizes {
		if v := medianOf(results, prefix+"/"+sizeLabel(s), metric); v > 0 {
			pts = append(pts, plotter.XY{X: float64(s), Y: v})
		}
	}
	return pts
}

// writePlots writes latency.{png,svg}, throughput.{png,svg} and
// latency_cdf.{png,svg} into dir and returns the files written.
func writePlots(dir string, results []*Result, title string) ([]string, error) {
	var files []string
	save := func(name string, w, h vg.Length, plots ...*plot.Plot) error {
		for _, ext := range []string{"png", "svg"} {
			path := filepath.Join(dir, name+"."+ext)
			if err := saveGrid(path, ext, w, h, plots); err != nil {
				return err
			}
			files = append(files, path)
		}
		return nil
	}

	// 1. Round trip against payload.
	lat := newPlot("Round trip, two processes ("+title+")", "payload (each way)", "median round trip")
	lat.X.Scale, lat.Y.Scale = plot.LogScale{}, plot.LogScale{}
	lat.X.Tick.Marker, lat.Y.Tick.Marker = sizeTicks{}, durTicks{}
	ss := []series{
		{"exipc Go-Go spin", bySize(results, "pingpong-spin/exipc-go-go", "round trip")},
		{"exipc C-C spin", bySize(results, "pingpong-spin/exipc-c-c", "round trip")},
		{"exipc Go-C spin", bySize(results, "pingpong-spin/exipc-go-c", "round trip")},
		{"exipc Go-Go park", bySize(results, "pingpong-park/exipc-go-go", "round trip")},
		{"exipc C-C park", bySize(results, "pingpong-park/exipc-c-c", "round trip")},
		{"Unix socket", bySize(results, "pingpong/unix", "round trip")},
		{"pipe", bySize(results, "pingpong/pipe", "round trip")},
		{"TCP loopback", bySize(results, "pingpong/tcp", "round trip")},
		{"shmipc-go", bySize(results, "pingpong/shmipc-go", "round trip")},
		{"Go channels (1 process)", bySize(results, "pingpong/go-chan", "round trip")},
		hline("ref: cache line", medianOf(results, "ref/cacheline", "round trip")),
		hline("ref: futex wake x2", medianOf(results, "ref/futex", "round trip")),
	}
	addLines(lat, ss)
	roomY(lat, ss, 1.5, 40)
	lat.Legend.Left, lat.Legend.Top = true, true
	if err := save("latency", 8*vg.Inch, 5.5*vg.Inch, lat); err != nil {
		return files, err
	}

	// 2. Throughput against payload, single and batched.
	var tp []*plot.Plot
	for _, mode := range []string{"single", "batch"} {
		what := "one message per call"
		if mode == "batch" {
			what = "batches of 64"
		}
		p := newPlot("One-way stream, "+what, "payload", "median bytes/s")
		p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
		p.X.Tick.Marker, p.Y.Tick.Marker = sizeTicks{}, rateTicks{}
		var ss []series
		for _, tr := range []struct{ name, label string }{
			{"exipc-go-go", "exipc Go->Go"}, {"exipc-c-c", "exipc C->C"}, {"exipc-go-c", "exipc Go->C"},
			{"unix", "Unix socket"}, {"pipe", "pipe"}, {"tcp", "TCP loopback"}, {"shmipc-go", "shmipc-go"},
			{"go-chan", "Go channels"},
		} {
			ss = append(ss, series{tr.label, bySize(results, "stream-"+mode+"/"+tr.name, "bytes/s")})
		}
		addLines(p, ss)
		roomY(p, ss, 60, 1.5)
		p.Legend.Top, p.Legend.Left = false, false
		tp = append(tp, p)
	}
	if err := save("throughput", 12*vg.Inch, 5*vg.Inch, tp...); err != nil {
		return files, err
	}

	// 3. CDF of 64 B round trips.
	cdf := newPlot("Round trips of 64 B: distribution ("+title+")", "round trip", "fraction of round trips ≤ x")
	cdf.X.Scale = plot.LogScale{}
	cdf.X.Tick.Marker = durTicks{}
	cdf.Legend.Left, cdf.Legend.Top = false, false
	var cs []series
	for _, c := range []struct{ name, label string }{
		{"pingpong-spin/exipc-go-go/64B", "exipc Go-Go spin"}, {"pingpong-spin/exipc-c-c/64B", "exipc C-C spin"},
		{"pingpong-park/exipc-go-go/64B", "exipc Go-Go park"}, {"pingpong-park/exipc-c-c/64B", "exipc C-C park"},
		{"pingpong/unix/64B", "Unix socket"}, {"pingpong/shmipc-go/64B", "shmipc-go"}, {"pingpong/go-chan/64B", "Go channels"},
		{"ref/cacheline", "ref: cache line"}, {"ref/futex", "ref: futex wake x2"},
	} {
		var h *Result
		for _, r := range results {
			if r.Name == c.name && r.hist != nil {
				h = r
			}
		}
		var pts plotter.XYs
		if h != nil {
			for _, q := range cdfQuantiles() {
				pts = append(pts, plotter.XY{X: float64(h.hist.ValueAtQuantile(q)), Y: q / 100})
			}
		}
		cs = append(cs, series{c.label, pts})
	}
	addLinesOpt(cdf, cs, false)
	if err := save("latency_cdf", 8*vg.Inch, 5.5*vg.Inch, cdf); err != nil {
		return files, err
	}
	return files, nil
}

func cdfQuantiles() []float64 {
	var q []float64
	for v := 0.5; v < 99; v += 0.5 {
		q = append(q, v)
	}
	return append(q, 99, 99.5, 99.9, 99.99, 100)
}

// saveGrid draws plots side by side on one canvas of the given format.
func saveGrid(path, ext string, w, h vg.Length, plots []*plot.Plot) error {
	var c interface {
		vg.Canvas
		vg.CanvasSizer
	}
	switch ext {
	case "png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110))}
	case "svg":
		c = vgsvg.New(w, h)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	grid := [][]*plot.Plot{plots}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var werr error
	switch cv := c.(type) {
	case vgimg.PngCanvas:
		_, werr = cv.WriteTo(f)
	case *vgsvg.Canvas:
		_, werr = cv.WriteTo(f)
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}
