package bench

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// human formats a rate like llama-bench: two decimals under 10k, thousands separated above.
func human(x float64) string {
	if x >= 10000 {
		return commas(int64(x + 0.5))
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func pct(f float64) string {
	if f <= 0 {
		return "—"
	}
	if f < 0.001 {
		return fmt.Sprintf("%.4f%%", 100*f)
	}
	return fmt.Sprintf("%.1f%%", 100*f)
}

func mdTable(w io.Writer, head []string, rows [][]string, right map[int]bool) {
	width := make([]int, len(head))
	for i, h := range head {
		width[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if right[i] {
				b.WriteString(" " + pad + c + " |")
			} else {
				b.WriteString(" " + c + pad + " |")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(head)
	sep := make([]string, len(head))
	for i := range head {
		d := strings.Repeat("-", width[i])
		if right[i] {
			d = d[:len(d)-1] + ":"
		}
		sep[i] = d
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

// WriteMarkdown writes the results as a markdown table (the terminal output too).
func (r *Report) WriteMarkdown(w io.Writer) {
	if r.Kind == "kernels" {
		r.writeKernelTable(w)
		return
	}
	head := []string{"model", "dtype", "backend", "device", "test", "t/s", "median", "% of floor"}
	var rows [][]string
	for _, x := range r.Results {
		ts := human(x.Mean) + " ± " + human(x.SD)
		med := human(x.Median)
		if x.Error != "" {
			ts, med = "ERROR: "+x.Error, ""
		}
		rows = append(rows, []string{x.Model, x.DType, x.Backend, x.Device, x.Test, ts, med, pct(x.FracOfFloor)})
	}
	mdTable(w, head, rows, map[int]bool{5: true, 6: true, 7: true})
}

func (r *Report) writeKernelTable(w io.Writer) {
	head := []string{"shapes", "kernel", "case", "us (median)", "± sd", "GB/s", "TFLOP/s", "% of ceiling", "check"}
	// The library baseline's columns: where this run tried cuBLAS (a GPU run) or a result has one.
	withBase := r.Ceilings.Baseline != ""
	for _, x := range r.Results {
		withBase = withBase || x.Baseline != nil
	}
	right := map[int]bool{3: true, 4: true, 5: true, 6: true, 7: true}
	if withBase {
		head = append(head, "cuBLAS us (fp8 rows: cuBLASLt fp8)", "cuBLAS GB/s", "cuBLAS TFLOP/s", "ours/cuBLAS")
		for i := 9; i < 13; i++ {
			right[i] = true
		}
	}
	var rows [][]string
	for _, x := range r.Results {
		shapes, _, _ := strings.Cut(x.Model, "|")
		chk := x.Check
		if x.Detail != "" && x.Check != "PASS" {
			chk += " (" + x.Detail + ")"
		}
		var row []string
		switch {
		case x.Error != "":
			row = []string{shapes, x.Kernel, x.Shape, "ERROR: " + x.Error, "", "", "", "", chk}
		case x.Check == "FAIL":
			row = []string{shapes, x.Kernel, x.Shape, "FAIL", "", "", "", "", chk}
		default:
			row = []string{shapes, x.Kernel, x.Shape, fmt.Sprintf("%.1f", x.Median), fmt.Sprintf("%.1f", x.SD),
				fmt.Sprintf("%.1f", x.GBs), fmt.Sprintf("%.3f", x.TFLOPs), pct(x.FracOfFloor), chk}
		}
		if withBase {
			row = append(row, baselineCells(x)...)
		}
		rows = append(rows, row)
	}
	mdTable(w, head, rows, right)
	if withBase {
		fmt.Fprintln(w, "\ncuBLAS: cublasGemmEx, bf16 x and W, f32 compute, on the case's own inputs, timed like ours; fp8 rows "+
			"run cublasLtMatmul fp8 instead: the case's e4m3 W bytes (scale 1: no 128x128 block scales in cuBLASLt on sm_90) "+
			"times its x quantized to e4m3 with one per-tensor scale, bf16 out, checked against a Go product of those values. "+
			"ours/cuBLAS = our median / its median (above 1: ours is slower). "+
			"- : no baseline (see the baseline line above the table, or the JSON).")
	}
}

// baselineCells are a result's four baseline columns: "-" where a linear case has none (cuBLAS
// not available, or an error), blank for kernels without a library equivalent.
func baselineCells(x Result) []string {
	b := x.Baseline
	switch {
	case b == nil && x.Kernel == "linear":
		return []string{"-", "", "", ""}
	case b == nil:
		return []string{"", "", "", ""}
	case b.Check == "FAIL":
		return []string{"FAIL (" + b.Detail + ")", "", "", ""}
	case b.Error != "" || b.Median <= 0:
		return []string{"-", "", "", ""}
	}
	ratio := "-"
	if b.Ratio > 0 {
		ratio = fmt.Sprintf("%.2fx", b.Ratio)
	}
	return []string{fmt.Sprintf("%.1f", b.Median), fmt.Sprintf("%.1f", b.GBs), fmt.Sprintf("%.3f", b.TFLOPs), ratio}
}

// WriteSummary writes the lines that go above the table on a terminal: code, device, ceilings,
// load costs.
func (r *Report) WriteSummary(w io.Writer) {
	dirty := ""
	if r.Git.Dirty {
		dirty = " (dirty)"
	}
	load := ""
	if r.Host.LoadAvg > 0 {
		load = fmt.Sprintf(", load %.2f at the start", r.Host.LoadAvg)
	}
	fmt.Fprintf(w, "commit %s%s (%s); host %s, %d cores%s\n", short(r.Git.Commit), dirty, r.Git.Source, r.Host.CPU,
		r.Host.Cores, load)
	dev := r.Device.Backend + ": " + r.Device.Name
	if r.Device.Driver != "" {
		dev += ", driver " + r.Device.Driver
	}
	if r.Device.CUDA != "" {
		dev += ", CUDA " + r.Device.CUDA
	}
	fmt.Fprintln(w, dev)
	c := r.Ceilings
	if c.Error != "" {
		fmt.Fprintf(w, "ceilings: not measured (%s)\n", c.Error)
	} else if c.CopyGBs > 0 {
		fmt.Fprintf(w, "ceilings (this run): copy %.1f GB/s (%d MiB, read+write), gemm %.3f TFLOP/s (%s)\n",
			c.CopyGBs, c.CopyBytes>>20, c.GEMMTFLOPs, c.GEMMShape)
	}
	if c.Baseline != "" {
		s := "baseline: " + c.Baseline
		if c.CublasGEMMTFLOPs > 0 {
			s += fmt.Sprintf("; cuBLAS gemm %.3f TFLOP/s on the ceiling's shape (bf16 in and out)", c.CublasGEMMTFLOPs)
		}
		if c.CublasLtFP8TFLOPs > 0 {
			s += fmt.Sprintf("; cuBLASLt fp8 gemm %.3f TFLOP/s on the ceiling's shape (e4m3 in, bf16 out)", c.CublasLtFP8TFLOPs)
		}
		fmt.Fprintln(w, s)
	}
	if m := r.Model; m != nil {
		fmt.Fprintf(w, "model %s: %d layers, %s, %s params (%s active), %s of weights, %s read per decoded token\n",
			m.Name, m.Layers, m.DType, humanCount(m.Params), humanCount(m.ActiveParams), HumanBytes(m.WeightBytes),
			HumanBytes(m.ActiveBytesPerToken))
	}
	if l := r.Load; l != nil {
		s := fmt.Sprintf("load %.2f s, first token %.2f s after process start", l.LoadS, l.FirstTokenS)
		if l.SynthS > 0 {
			s += fmt.Sprintf(" (+ %.1f s synthesising, not counted)", l.SynthS)
		}
		s += "; peak host memory " + HumanBytes(l.PeakHostBytes)
		if r.Device.Backend != "cpu" {
			s += "; device memory used by the model " + HumanBytes(l.DeviceUsed)
		}
		fmt.Fprintln(w, s)
	}
	if m := r.Memory; m != nil {
		s := fmt.Sprintf("memory: weights %s (%.1f%% of the checkpoint's %s), made from them at load %s, KV cache %s (%d bytes per token per layer, %d tokens), workspaces %s",
			HumanBytes(m.WeightBytes), 100*m.WeightRatio, HumanBytes(m.CheckpointBytes), HumanBytes(m.DerivedBytes),
			HumanBytes(m.KVCacheBytes), m.KVBytesPerTokenLayer, m.KVTokens, HumanBytes(m.WorkspaceBytes))
		if m.DevicePeakBytes > 0 {
			s += "; device peak " + HumanBytes(m.DevicePeakBytes)
		}
		fmt.Fprintln(w, s)
	}
}

// WriteProfile writes the profile tables.
func (r *Report) WriteProfile(w io.Writer) {
	for _, t := range r.Profile {
		fmt.Fprintf(w, "\nprofile %s: %d step(s), %.3f ms/step under the profiler (Sync around every kernel)\n", t.Test, t.Steps, t.MsPerStep)
		var rows [][]string
		for _, x := range t.Rows {
			calls := fmt.Sprintf("%.1f", x.CallsPerStep)
			if x.CallsPerStep == 0 {
				calls = ""
			}
			rows = append(rows, []string{x.Kernel, calls, fmt.Sprintf("%.3f", x.MsPerStep), fmt.Sprintf("%.1f", x.Percent)})
		}
		mdTable(w, []string{"kernel", "calls/step", "ms/step", "% of step"}, rows, map[int]bool{1: true, 2: true, 3: true})
	}
}

func short(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func humanCount(n int64) string {
	f := float64(n)
	switch {
	case f >= 1e9:
		return fmt.Sprintf("%.2fB", f/1e9)
	case f >= 1e6:
		return fmt.Sprintf("%.2fM", f/1e6)
	case f >= 1e3:
		return fmt.Sprintf("%.1fK", f/1e3)
	}
	return strconv.FormatInt(n, 10)
}

// HumanBytes writes a byte count with a decimal unit (12.3 GB).
func HumanBytes(b int64) string {
	f := float64(b)
	for _, u := range []string{"B", "KB", "MB", "GB", "TB"} {
		if f < 1000 || u == "TB" {
			if u == "B" {
				return fmt.Sprintf("%d B", b)
			}
			return fmt.Sprintf("%.1f %s", f, u)
		}
		f /= 1000
	}
	return ""
}

// CSVHeader are the columns of WriteCSV.
var CSVHeader = []string{"key", "kind", "model", "dtype", "backend", "device", "test", "kernel", "shape", "tokens", "batch",
	"unit", "n", "mean", "sd", "median", "min", "max", "floor", "floor_basis", "frac_of_floor", "gb_s", "tflop_s",
	"check", "error", "commit", "date", "cpu", "gpu_driver", "cuda", "copy_gb_s", "gemm_tflop_s",
	"baseline", "baseline_median_us", "baseline_gb_s", "baseline_tflop_s", "ours_over_baseline", "baseline_check",
	"baseline_error", "cublas_gemm_tflop_s", "cublaslt_fp8_gemm_tflop_s"}

// WriteCSV writes one row per figure, with the run's context repeated on each row.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	f := func(x float64) string { return strconv.FormatFloat(finite(x), 'g', 8, 64) }
	for _, x := range r.Results {
		row := []string{x.Key, r.Kind, x.Model, x.DType, x.Backend, x.Device, x.Test, x.Kernel, x.Shape,
			strconv.Itoa(x.Tokens), strconv.Itoa(x.Batch), x.Unit, strconv.Itoa(x.N), f(x.Mean), f(x.SD), f(x.Median),
			f(x.Min), f(x.Max), f(x.Floor), x.FloorBasis, f(x.FracOfFloor), f(x.GBs), f(x.TFLOPs), x.Check, x.Error,
			r.Git.Commit, r.Date, r.Host.CPU, r.Device.Driver, r.Device.CUDA, f(r.Ceilings.CopyGBs), f(r.Ceilings.GEMMTFLOPs)}
		if b := x.Baseline; b != nil {
			row = append(row, b.Lib, f(b.Median), f(b.GBs), f(b.TFLOPs), f(b.Ratio), b.Check, b.Error)
		} else {
			row = append(row, "", "", "", "", "", "", "")
		}
		row = append(row, f(r.Ceilings.CublasGEMMTFLOPs), f(r.Ceilings.CublasLtFP8TFLOPs))
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
