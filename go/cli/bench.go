package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/deepgo/deepgo/go/bench"
)

// `deepgo bench` (end to end), `deepgo bench kernels`, `deepgo bench compare`. The subcommand is
// registered in register_bench.go: an init() in this file would run before cli.go's, which
// creates the command table.

const benchSummary = "measure prefill/decode speed (llama-bench style), kernels, and compare result files"

func init() { register("bench", benchSummary, runBench) }

func runBench(e *env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "kernels":
			return runBenchKernels(e, args[1:])
		case "compare":
			return runBenchCompare(e, args[1:])
		case "show":
			return runBenchShow(e, args[1:])
		case "serve":
			return runBenchServe(e, args[1:])
		}
	}
	return runBenchE2E(e, args)
}

// outputFlags are the result-file flags every bench command shares.
type outputFlags struct {
	json, csv, md string
	format        string
}

func (o *outputFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&o.json, "json", "", "write the full result (JSON) to this file")
	fs.StringVar(&o.csv, "csv", "", "write one CSV row per figure to this file")
	fs.StringVar(&o.md, "md", "", "write the markdown table to this file")
	fs.StringVarP(&o.format, "output", "o", "", "print the result to stdout as json, csv or md instead of the terminal table")
}

func (o *outputFlags) check() error {
	switch o.format {
	case "", "json", "csv", "md":
		return nil
	}
	return usagef("-o %q: want json, csv or md", o.format)
}

// write sends the report where the flags say; terminal output is the summary, the table and the
// profile.
func (o *outputFlags) write(e *env, r *bench.Report) error {
	if o.json != "" {
		if err := r.WriteJSON(o.json); err != nil {
			return err
		}
	}
	if o.csv != "" {
		if err := writeFile(o.csv, r.WriteCSV); err != nil {
			return err
		}
	}
	if o.md != "" {
		if err := writeFile(o.md, func(w io.Writer) error { r.WriteMarkdown(w); return nil }); err != nil {
			return err
		}
	}
	switch o.format {
	case "json":
		b, err := r.MarshalIndent()
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	case "csv":
		return r.WriteCSV(e.stdout)
	case "md":
		r.WriteMarkdown(e.stdout)
		return nil
	}
	r.WriteSummary(e.stdout)
	fmt.Fprintln(e.stdout)
	r.WriteMarkdown(e.stdout)
	r.WriteProfile(e.stdout)
	for _, n := range r.Notes {
		fmt.Fprintln(e.stdout, "note: "+n)
	}
	return nil
}

func writeFile(path string, f func(io.Writer) error) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f(out); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return out.Close()
}

func commandLine(args []string) string {
	return strings.TrimSpace("deepgo " + strings.Join(args, " "))
}

func runBenchE2E(e *env, args []string) error {
	fs := newFlags(e, "bench", "--model DIR | --synthetic PRESET [-p 512] [-n 128] [-b 1,32] [-r 5] [--json FILE]\n"+
		"       deepgo bench kernels [--backend cpu|cuda] [--shapes deepseek-v3,peer-7b] [-r N] [--quick]\n"+
		"       deepgo bench compare OLD.json NEW.json [--threshold F]\n"+
		"       deepgo bench show FILE.json [-o md|csv|json]")
	var o bench.Options
	fs.StringVarP(&o.ModelDir, "model", "m", "", "model folder")
	fs.StringVar(&o.Synthetic, "synthetic", "", "benchmark a random-weight checkpoint of this preset (tiny, peer-7b, deepseek-v3), made once and kept in --cache-dir")
	fs.IntVar(&o.Layers, "layers", 0, "--synthetic: cut the preset to this many layers (0: all)")
	fs.StringVar(&o.DType, "dtype", "", "--synthetic: weights bf16 or fp8 (default: fp8 for deepseek-v3, else bf16)")
	fs.Uint64Var(&o.Seed, "seed", 1, "--synthetic: weight seed; also seeds the benchmark's token ids")
	fs.StringVar(&o.CacheDir, "cache-dir", "", "where synthetic checkpoints are kept (default $DEEPGO_BENCH_CACHE or the user cache folder)")
	prompt := fs.IntSliceP("n-prompt", "p", []int{512}, "prefill tests: prompt lengths (comma list; 0: none)")
	fs.IntVarP(&o.Gen, "n-gen", "n", 128, "decode test: tokens generated per sequence (0: none)")
	batches := fs.IntSliceP("batch-size", "b", []int{1}, "decode tests: sequences decoded together (comma list)")
	fs.IntVarP(&o.Reps, "repetitions", "r", 5, "timed repetitions of each test")
	fs.IntVar(&o.Warmup, "warmup", 1, "untimed repetitions before them")
	fs.StringVar(&o.Backend, "backend", "auto", "kernel backend: auto, cpu or cuda")
	fs.IntVar(&o.Device, "device", 0, "GPU index")
	fs.IntVarP(&o.Threads, "threads", "t", 0, "CPU threads (0: one per core)")
	fs.BoolVar(&o.W8A8, "w8a8", false, "fp8 weights: quantise activations to fp8 too")
	fs.BoolVar(&o.HostLogits, "host-logits", false, "decode tests: download every sequence's logits each step (host sampling) instead of the greedy ids picked on the device")
	fs.BoolVar(&o.Profile, "profile", false, "time each kernel kind per step (one more run of each test, Sync around every kernel)")
	fs.IntVar(&o.ProfileSteps, "profile-steps", 0, "decode steps profiled per tg test (0: min(n, 16))")
	fs.BoolVar(&o.SkipCeilings, "no-ceilings", false, "skip measuring the device's copy bandwidth and GEMM rate (no floors)")
	var out outputFlags
	out.add(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	if (o.ModelDir == "") == (o.Synthetic == "") {
		return usagef("give one of --model DIR or --synthetic PRESET")
	}
	o.Prompt, o.Batches = *prompt, *batches
	o.Command = commandLine(append([]string{"bench"}, args...))
	o.Log = e.stderr
	r, err := bench.Run(o)
	if err != nil {
		return err
	}
	if err := out.write(e, r); err != nil {
		return err
	}
	for _, x := range r.Results {
		if x.Error != "" {
			return fmt.Errorf("%s failed: %s", x.Test, x.Error)
		}
	}
	return nil
}

func runBenchKernels(e *env, args []string) error {
	fs := newFlags(e, "bench kernels", "[--backend cpu|cuda] [--shapes deepseek-v3,peer-7b] [-r N] [--quick] [--json FILE]")
	var o bench.KernelOptions
	fs.StringVar(&o.Backend, "backend", "auto", "kernel backend: auto, cpu or cuda")
	fs.IntVar(&o.Device, "device", 0, "GPU index")
	fs.IntVarP(&o.Threads, "threads", "t", 0, "CPU threads (0: one per core)")
	shapes := fs.StringSlice("shapes", []string{"deepseek-v3", "peer-7b"}, "shape sets (presets) to run")
	fs.IntVarP(&o.Reps, "repetitions", "r", 0, "timed repetitions per case (0: 20 on a GPU, 5 on the CPU)")
	fs.IntVar(&o.Warmup, "warmup", 2, "untimed calls before them")
	fs.BoolVar(&o.Quick, "quick", false, "a few small cases per kernel, 2 repetitions (a smoke test: checks the harness, not speed)")
	ms := fs.IntSlice("m", nil, "linear: token counts (default 1,64,512 on a GPU; 1,64 on the CPU)")
	fs.IntVar(&o.Ctx, "ctx", 0, "mla_decode context length (default 4096 on a GPU, 512 on the CPU)")
	fs.IntVar(&o.DecodeBatch, "decode-batch", 0, "mla_decode batch (default 64 on a GPU, 16 on the CPU)")
	fs.StringVar(&o.Filter, "filter", "", "only cases whose name contains this text, or one of several separated by | (e.g. linear, moe_ffn, 'q_b_proj|o_proj')")
	fs.BoolVar(&o.NoCheck, "no-check", false, "skip the correctness check of the first repetition")
	var out outputFlags
	out.add(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	o.Shapes, o.M = *shapes, *ms
	o.Command = commandLine(append([]string{"bench", "kernels"}, args...))
	o.Log = e.stderr
	r, err := bench.RunKernels(o)
	if err != nil {
		return err
	}
	if err := out.write(e, r); err != nil {
		return err
	}
	fails := 0
	for _, x := range r.Results {
		if x.Failed() {
			fails++
		}
	}
	if fails > 0 {
		return fmt.Errorf("%d kernel case(s) failed (FAIL or ERROR above)", fails)
	}
	return nil
}

func runBenchCompare(e *env, args []string) error {
	fs := newFlags(e, "bench compare", "OLD.json NEW.json [--threshold F]")
	var o bench.CompareOptions
	fs.Float64Var(&o.Threshold, "threshold", 0, "relative change that counts (e.g. 0.05); default: the noise rule, |new-old| > 2 sqrt(sd_old²+sd_new²) and > 2%")
	fs.Float64Var(&o.IgnoreBelowUS, "ignore-below-us", 0, "kernel figures: call a change of calls under this many microseconds (old and new) the same (launch-bound; e.g. 20)")
	format := fs.StringP("output", "o", "", "json: print the comparison as JSON")
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		return err // pflag has printed the usage
	}
	if err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 2 {
		return usagef("want two result files, OLD.json NEW.json (got %d)", fs.NArg())
	}
	if o.Threshold < 0 {
		return usagef("--threshold %v: want a relative change >= 0", o.Threshold)
	}
	old, err := bench.LoadReport(fs.Arg(0))
	if err != nil {
		return usagef("%v", err)
	}
	nw, err := bench.LoadReport(fs.Arg(1))
	if err != nil {
		return usagef("%v", err)
	}
	cs := bench.Compare(old, nw, o)
	var bad int
	if *format == "json" {
		b, err := jsonIndent(cs)
		if err != nil {
			return err
		}
		e.stdout.Write(b)
		for _, c := range cs {
			if c.Regressed() {
				bad++
			}
		}
	} else {
		fmt.Fprintf(e.stdout, "old: %s, commit %.12s, %s\nnew: %s, commit %.12s, %s\n\n", fs.Arg(0), old.Git.Commit,
			old.Device.Name, fs.Arg(1), nw.Git.Commit, nw.Device.Name)
		bad = bench.WriteComparison(e.stdout, cs)
	}
	if bad > 0 {
		return fmt.Errorf("%w: %d figure(s) slower beyond the noise or failing", bench.ErrRegressed, bad)
	}
	return nil
}

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// runBenchShow prints a result file as the run printed it (summary, table, profile, notes), or
// converts it to csv / md.
func runBenchShow(e *env, args []string) error {
	fs := newFlags(e, "bench show", "FILE.json [-o md|csv|json]")
	var out outputFlags
	out.add(fs)
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		return err
	}
	if err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 1 {
		return usagef("want one result file")
	}
	if err := out.check(); err != nil {
		return err
	}
	r, err := bench.LoadReport(fs.Arg(0))
	if err != nil {
		return usagef("%v", err)
	}
	return out.write(e, r)
}
