package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/deepgo/deepgo/go/backend"
	"github.com/deepgo/deepgo/go/engine"
	"github.com/deepgo/deepgo/go/model/deepseek"
	"github.com/deepgo/deepgo/go/weights"
)

// Options of an end-to-end run (deepgo bench).
type Options struct {
	ModelDir  string // a model folder, or:
	Synthetic string // a preset, synthesised once into CacheDir and reused
	Layers    int    // cut the preset to this many layers (0: all)
	DType     string // synthetic weights: bf16 or fp8 (default bf16; fp8 for deepseek-v3)
	Seed      uint64
	CacheDir  string // where synthetic checkpoints are kept ("" : DefaultCacheDir())

	Prompt  []int // prefill tests: one sequence of this many tokens in one step (pp<N>)
	Gen     int   // decode tests: this many steps of one new token per sequence (tg<N>)
	Batches []int // sequences decoded together (tg<N>@b<B>; 1 is plain tg<N>)
	Reps    int   // timed repetitions per test
	Warmup  int   // untimed repetitions before them

	Backend string // auto, cpu, cuda
	Device  int
	Threads int
	W8A8    bool
	// HostLogits: decode steps download every sequence's logits row (what host sampling
	// needs) instead of picking the greedy token on the device and downloading only its id.
	HostLogits bool

	Profile      bool
	ProfileSteps int // decode steps per profiled tg test (0: min(Gen, 16))

	Ceilings     *CeilingOptions // nil: DefaultCeilingOptions
	SkipCeilings bool
	Command      string
	Log          io.Writer // progress lines (nil: none)
}

// DefaultCacheDir is $DEEPGO_BENCH_CACHE, else <user cache>/deepgo/bench, else a temp folder.
func DefaultCacheDir() string {
	if d := os.Getenv("DEEPGO_BENCH_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "deepgo", "bench")
	}
	return filepath.Join(os.TempDir(), "deepgo-bench")
}

const synthMarker = ".deepgo-bench-complete"

// SyntheticModel returns the folder of a synthetic checkpoint, writing it first unless a
// complete one is there. took is 0 when it was reused.
func SyntheticModel(cache, preset string, layers int, dtype string, seed uint64, log io.Writer) (dir string, took time.Duration, err error) {
	c, err := deepseek.Preset(preset, layers)
	if err != nil {
		return "", 0, err
	}
	if cache == "" {
		cache = DefaultCacheDir()
	}
	dir = filepath.Join(cache, fmt.Sprintf("%s-L%d-%s-seed%d", preset, c.NumHiddenLayers, dtype, seed))
	if _, err := os.Stat(filepath.Join(dir, synthMarker)); err == nil {
		return dir, 0, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", 0, fmt.Errorf("bench: cache folder: %w", err)
	}
	tmp := fmt.Sprintf("%s.partial-%d", dir, os.Getpid())
	_ = os.RemoveAll(tmp)
	logf(log, "synthesising %s (%d layers, %s) into %s", preset, c.NumHiddenLayers, dtype, dir)
	t0 := time.Now()
	if _, err := engine.Synthesize(preset, layers, dtype, seed, tmp, nil); err != nil {
		_ = os.RemoveAll(tmp)
		return "", 0, err
	}
	if err := os.WriteFile(filepath.Join(tmp, synthMarker), []byte("ok\n"), 0o644); err != nil {
		return "", 0, err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", 0, fmt.Errorf("bench: %w", err)
	}
	return dir, time.Since(t0), nil
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "bench: "+format+"\n", args...)
	}
}

// loaded is an open model for benchmarking.
type loaded struct {
	cfg  *weights.Config
	ck   *weights.Checkpoint
	be   backend.Backend // what the model runs on (the Profiler when profiling)
	raw  backend.Backend // the backend itself
	prof *Profiler
	m    *deepseek.Model

	freePre int64 // device memory free before the model was loaded
}

func (l *loaded) close() {
	if l.m != nil {
		l.m.Close()
	}
	if l.raw != nil {
		l.raw.Close()
	}
	if l.ck != nil {
		l.ck.Close()
	}
}

// linearDType names the dtype of the linear weights of a checkpoint: bf16, fp8, f32 or f16.
func linearDType(ck *weights.Checkpoint) string {
	for _, n := range ck.Names() {
		if !strings.HasSuffix(n, "self_attn.kv_a_proj_with_mqa.weight") {
			continue
		}
		t, err := ck.Tensor(n)
		if err != nil {
			break
		}
		switch t.DType {
		case weights.F8E4M3:
			return "fp8"
		case weights.BF16:
			return "bf16"
		case weights.F16:
			return "f16"
		case weights.F32:
			return "f32"
		}
		return strings.ToLower(t.DType.String())
	}
	return "unknown"
}

func tensorBytes(ck *weights.Checkpoint, name string) int64 {
	if t, err := ck.Tensor(name); err == nil {
		return t.NumBytes()
	}
	return 0
}

// stepCost is what one step must move and compute at the least.
type stepCost struct {
	bytes float64 // weight bytes read (experts: the expected number of distinct ones)
	flops float64
}

// costs of a step: rows tokens through every layer, logitRows of them through the lm_head.
// Routed experts are assumed uniformly chosen: rows tokens touch E*(1-(1-k/E)^rows) distinct
// experts per MoE layer. Attention over the cache is not counted (small at these lengths).
func stepCosts(c *weights.Config, ck *weights.Checkpoint, rows, logitRows int) stepCost {
	E, k := float64(max(c.NRoutedExperts, 1)), float64(c.NumExpertsPerTok)
	distinct := 1 - math.Pow(1-k/E, float64(rows))
	var sc stepCost
	for _, s := range deepseek.TensorSpecs(c) {
		b := float64(tensorBytes(ck, s.Name) + tensorBytes(ck, s.Name+"_scale_inv"))
		n := float64(s.Elements())
		switch {
		case s.Expert:
			sc.bytes += b * distinct
			sc.flops += 2 * n * k / E * float64(rows)
		case s.Name == "model.embed_tokens.weight":
			sc.bytes += b * math.Min(1, float64(rows)/float64(max(s.Shape[0], 1)))
		case s.Name == "lm_head.weight":
			sc.bytes += b
			sc.flops += 2 * n * float64(logitRows)
		case len(s.Shape) == 2:
			sc.bytes += b
			sc.flops += 2 * n * float64(rows)
		default:
			sc.bytes += b
		}
	}
	if c.TieWordEmbeddings {
		t := float64(c.VocabSize) * float64(c.HiddenSize)
		sc.bytes += float64(tensorBytes(ck, "model.embed_tokens.weight"))
		sc.flops += 2 * t * float64(logitRows)
	}
	return sc
}

// floor is the best rate in tokens/s for a step of `tokens` tokens with this cost.
func floor(cost stepCost, tokens int, ce Ceilings) (tps float64, basis string) {
	var tb, tf float64
	if ce.CopyGBs > 0 {
		tb = cost.bytes / (ce.CopyGBs * 1e9)
	}
	if ce.GEMMTFLOPs > 0 {
		tf = cost.flops / (ce.GEMMTFLOPs * 1e12)
	}
	t := math.Max(tb, tf)
	if t <= 0 {
		return 0, ""
	}
	basis = "copy"
	if tf > tb {
		basis = "gemm"
	}
	return float64(tokens) / t, basis
}

func (o *Options) defaults() error {
	if o.ModelDir == "" && o.Synthetic == "" {
		return errors.New("bench: give --model DIR or --synthetic PRESET")
	}
	if o.ModelDir != "" && o.Synthetic != "" {
		return errors.New("bench: --model and --synthetic exclude each other")
	}
	if o.DType == "" {
		o.DType = "bf16"
		if o.Synthetic == "deepseek-v3" {
			o.DType = "fp8"
		}
	}
	if o.Reps <= 0 {
		o.Reps = 5
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if len(o.Batches) == 0 {
		o.Batches = []int{1}
	}
	for _, b := range o.Batches {
		if b <= 0 {
			return fmt.Errorf("bench: batch size %d", b)
		}
	}
	for _, p := range o.Prompt {
		if p < 0 {
			return fmt.Errorf("bench: prompt length %d", p)
		}
	}
	if o.Gen < 0 {
		return fmt.Errorf("bench: -n %d", o.Gen)
	}
	if o.ProfileSteps <= 0 {
		o.ProfileSteps = min(max(o.Gen, 1), 16)
	}
	if o.Backend == "" {
		o.Backend = "auto"
	}
	return nil
}

// Run runs the end-to-end benchmark and returns its report.
func Run(o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	rep := &Report{Schema: Schema, Kind: "e2e", Date: time.Now().UTC().Format(time.RFC3339), Command: o.Command,
		Git: Git(), Host: Host(), Load: &LoadInfo{}}
	var synthTook time.Duration
	dir, name := o.ModelDir, filepath.Base(filepath.Clean(o.ModelDir))
	if o.Synthetic != "" {
		var err error
		if dir, synthTook, err = SyntheticModel(o.CacheDir, o.Synthetic, o.Layers, o.DType, o.Seed, o.Log); err != nil {
			return nil, err
		}
		name = o.Synthetic
		rep.Load.SynthS = synthTook.Seconds()
	}
	maxP := 0
	for _, p := range o.Prompt {
		maxP = max(maxP, p)
	}
	maxB := 0
	for _, b := range o.Batches {
		maxB = max(maxB, b)
	}
	if o.Gen == 0 {
		maxB = 1
	}

	// Load, timed: backend, weights bound, cache and workspaces allocated.
	logf(o.Log, "loading %s", dir)
	t0 := time.Now()
	l, err := openModel(dir, o, maxP, maxB)
	if err != nil {
		return nil, err
	}
	defer l.close()
	rep.Load.LoadS = time.Since(t0).Seconds()
	rep.Load.DeviceFreePre = l.freePre
	rep.Load.DeviceFreePost, rep.Load.DeviceTotal, _ = l.raw.MemInfo()
	if !l.raw.HostIsDevice() {
		rep.Load.DeviceUsed = rep.Load.DeviceFreePre - rep.Load.DeviceFreePost
	}
	rep.Memory = memoryInfo(l.m.Memory())
	minFree := rep.Load.DeviceFreePost
	sampleFree := func() { /* the device's fullest point: after the load, after each test */
		if free, _, err := l.raw.MemInfo(); err == nil && free < minFree {
			minFree = free
		}
	}
	defer func() {
		if !l.raw.HostIsDevice() && rep.Load.DeviceFreePre > 0 {
			rep.Memory.DevicePeakBytes = rep.Load.DeviceFreePre - minFree
		}
	}()

	total, active := deepseek.ParamCounts(l.cfg)
	dt := linearDType(l.ck)
	mi := &ModelInfo{Name: name, Dir: dir, Preset: o.Synthetic, Synthetic: o.Synthetic != "",
		Layers: l.cfg.NumHiddenLayers, DType: dt, Params: total, ActiveParams: active,
		HeadParams: int64(l.cfg.VocabSize) * int64(l.cfg.HiddenSize), WeightBytes: l.m.WeightBytes,
		ActiveBytesPerToken: int64(stepCosts(l.cfg, l.ck, 1, 1).bytes), Linear: "w8a16"}
	if o.W8A8 {
		mi.Linear = "w8a8"
	}
	if dt != "fp8" {
		mi.Linear = dt
	}
	rep.Model = mi
	rep.Device = DeviceInfo{Backend: l.raw.Name(), Name: l.raw.Device(), MemTotal: rep.Load.DeviceTotal}
	if l.raw.Name() == "cpu" {
		rep.Device.Threads = o.Threads
	} else {
		rep.Device.Driver, rep.Device.CUDA = gpuDriver(o.Device)
	}
	rep.Settings = map[string]any{"prompt": o.Prompt, "gen": o.Gen, "batches": o.Batches, "reps": o.Reps,
		"warmup": o.Warmup, "threads": o.Threads, "w8a8": o.W8A8, "host_logits": o.HostLogits, "profile": o.Profile, "seed": o.Seed,
		"act_dtype": l.m.Opts.ActDType.String(), "cache_dtype": l.m.Opts.CacheDType.String(),
		"max_context": l.m.Opts.MaxContext, "max_batch": l.m.Opts.MaxBatch, "max_tokens": l.m.Opts.MaxTokens}

	r := &runner{l: l, o: o, rng: o.Seed*0x9e3779b97f4a7c15 + 7}
	// The first token: one step as a real request would make it (the first prefill test, or one
	// decode step), timed from the process start.
	firstP := 1
	if maxP > 0 {
		firstP = o.Prompt[0]
		if firstP == 0 {
			firstP = maxP
		}
	}
	if _, err := r.prefill(firstP); err != nil {
		return nil, err
	}
	rep.Load.FirstTokenS = (time.Since(processStart) - synthTook).Seconds()

	if !o.SkipCeilings {
		co := DefaultCeilingOptions(l.raw)
		if o.Ceilings != nil {
			co = *o.Ceilings
		}
		logf(o.Log, "measuring ceilings (copy %d MiB, gemm %dx%dx%d)", co.CopyBytes>>20, co.M, co.N, co.K)
		rep.Ceilings, err = MeasureCeilings(l.raw, co)
		if err != nil {
			rep.Ceilings.Error = err.Error()
			rep.Notes = append(rep.Notes, "ceilings not measured: "+err.Error())
		}
	}

	res := func(test string) Result {
		return Result{Key: ResultKey(name, dt, l.raw.Name(), test), Model: name, DType: dt, Backend: l.raw.Name(),
			Device: l.raw.Device(), Test: test, Unit: "t/s", Higher: true}
	}
	for _, p := range o.Prompt {
		if p == 0 {
			continue
		}
		x := res(fmt.Sprintf("pp%d", p))
		x.Tokens, x.Batch = p, 1
		logf(o.Log, "%s: %d warm-up + %d runs", x.Test, o.Warmup, o.Reps)
		ts, err := r.repeat(func() (float64, error) { return r.prefill(p) })
		if err != nil {
			x.Error = err.Error()
		} else {
			x.Stats = Summarize(rates(ts, float64(p)))
			x.Floor, x.FloorBasis = floor(stepCosts(l.cfg, l.ck, p, 1), p, rep.Ceilings)
		}
		sampleFree()
		rep.Results = append(rep.Results, finishFloor(x))
	}
	if o.Gen > 0 {
		for _, b := range o.Batches {
			test := fmt.Sprintf("tg%d", o.Gen)
			if b != 1 {
				test += fmt.Sprintf("@b%d", b)
			}
			x := res(test)
			x.Tokens, x.Batch = o.Gen, b
			logf(o.Log, "%s: %d warm-up + %d runs", x.Test, o.Warmup, o.Reps)
			ts, err := r.repeat(func() (float64, error) { return r.decode(b, o.Gen) })
			if err != nil {
				x.Error = err.Error()
			} else {
				x.Stats = Summarize(rates(ts, float64(b*o.Gen)))
				x.Floor, x.FloorBasis = floor(stepCosts(l.cfg, l.ck, b, b), b, rep.Ceilings)
			}
			sampleFree()
			rep.Results = append(rep.Results, finishFloor(x))
		}
	}
	if o.Profile {
		rep.Profile = r.profile()
		if reflect.ValueOf(l.raw).MethodByName("CaptureGraph").IsValid() {
			rep.Notes = append(rep.Notes, "profile: the timing decorator hides the backend's CUDA-graph capture, so profiled steps run kernel by kernel (the timed runs above use graphs where the model captures them)")
		}
	}
	rep.Load.PeakHostBytes = PeakRSS()
	if l.raw.Name() == "cpu" {
		rep.Notes = append(rep.Notes, "cpu: weights are used in place from the memory-mapped checkpoint; peak_host_bytes counts the mapped pages touched")
	}
	if o.Gen > 0 {
		if o.HostLogits {
			rep.Notes = append(rep.Notes, "decode: every sequence's logits row is downloaded each step (--host-logits)")
		} else {
			rep.Notes = append(rep.Notes, "decode: greedy token picked on the device, only the ids downloaded (--host-logits downloads the logits)")
		}
	}
	rep.Notes = append(rep.Notes, "floors: decode = weight bytes a step reads (routed experts: expected distinct ones under uniform routing) / copy bandwidth, or FLOPs / GEMM rate when larger; prefill = 2 x active params x tokens (+ lm_head for the last token) / GEMM rate, or bytes / copy bandwidth when larger; attention not counted")
	return rep, nil
}

func finishFloor(x Result) Result {
	if x.Floor > 0 && x.Mean > 0 {
		x.FracOfFloor = x.Mean / x.Floor
	}
	return x
}

func openModel(dir string, o Options, maxP, maxB int) (*loaded, error) {
	l := &loaded{}
	var err error
	if l.cfg, err = weights.LoadConfig(dir); err != nil {
		return nil, err
	}
	arch := false
	for _, a := range l.cfg.Architectures {
		arch = arch || a == deepseek.Architecture
	}
	if !arch {
		return nil, fmt.Errorf("config.json: architectures %v: deepgo runs %s models only", l.cfg.Architectures, deepseek.Architecture)
	}
	if l.ck, err = weights.Open(dir); err != nil {
		return nil, err
	}
	if l.raw, err = engine.OpenBackend(o.Backend, o.Device, o.Threads); err != nil {
		l.close()
		return nil, err
	}
	l.freePre, _, _ = l.raw.MemInfo()
	l.be = l.raw
	if o.Profile {
		l.prof = NewProfiler(l.raw)
		l.be = l.prof
	}
	opts := deepseek.Options{MaxBatch: maxB, MaxContext: max(maxP, o.Gen) + 64, MaxTokens: max(maxP, maxB, 1),
		ActDType: backend.F32, CacheDType: backend.F32}
	if !l.raw.HostIsDevice() {
		opts.ActDType, opts.CacheDType = backend.BF16, backend.BF16
	}
	if o.W8A8 {
		opts.LinearMode = backend.LinearW8A8
	}
	if l.m, err = deepseek.Load(l.cfg, l.ck, l.be, opts); err != nil {
		l.close()
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	return l, nil
}

// runner runs the tests on a loaded model.
type runner struct {
	l   *loaded
	o   Options
	rng uint64
}

func (r *runner) tokens(n int) []int32 {
	v := uint64(max(r.l.cfg.VocabSize, 1))
	out := make([]int32, n)
	for i := range out {
		r.rng++
		out[i] = int32(splitmix64(r.rng) % v)
	}
	return out
}

// repeat runs f Warmup times untimed, then Reps times, returning the times it reports.
func (r *runner) repeat(f func() (float64, error)) ([]float64, error) {
	for i := 0; i < r.o.Warmup; i++ {
		if _, err := f(); err != nil {
			return nil, err
		}
	}
	var ts []float64
	for i := 0; i < r.o.Reps; i++ {
		t, err := f()
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// prefill: one sequence of p tokens in one step, the last token's logits back on the host.
func (r *runner) prefill(p int) (float64, error) {
	m := r.l.m
	seq := &deepseek.Sequence{}
	defer m.KV.Release(seq)
	toks := r.tokens(p)
	if err := r.l.raw.Sync(); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if _, err := m.Step([]deepseek.Request{{Seq: seq, Tokens: toks, Logits: deepseek.LogitsLast}}); err != nil {
		return 0, fmt.Errorf("pp%d: %w", p, err)
	}
	if err := r.l.raw.Sync(); err != nil {
		return 0, err
	}
	return time.Since(t0).Seconds(), nil
}

// decode: b sequences from empty, n steps of one new (random) token each; each step picks every
// sequence's greedy token on the device and downloads the ids (as the scheduler does for
// greedy requests), or with HostLogits downloads every logits row (as host sampling needs).
func (r *runner) decode(b, n int) (float64, error) {
	m := r.l.m
	seqs := make([]deepseek.Sequence, b)
	defer func() {
		for i := range seqs {
			m.KV.Release(&seqs[i])
		}
	}()
	reqs := make([]deepseek.Request, b)
	steps := make([][]int32, n)
	for s := range steps {
		steps[s] = r.tokens(b)
	}
	if err := r.l.raw.Sync(); err != nil {
		return 0, err
	}
	t0 := time.Now()
	for s := 0; s < n; s++ {
		for i := range reqs {
			reqs[i] = deepseek.Request{Seq: &seqs[i], Tokens: steps[s][i : i+1], Logits: deepseek.LogitsLast,
				Argmax: !r.o.HostLogits}
		}
		if _, _, err := m.StepIDs(reqs); err != nil {
			return 0, fmt.Errorf("decode step %d of %d sequences: %w", s, b, err)
		}
	}
	if err := r.l.raw.Sync(); err != nil {
		return 0, err
	}
	return time.Since(t0).Seconds(), nil
}

// profile runs each test once more under the Profiler: one prefill step, ProfileSteps decode steps.
func (r *runner) profile() []ProfileTable {
	p, m := r.l.prof, r.l.m
	var out []ProfileTable
	for _, n := range r.o.Prompt {
		if n == 0 {
			continue
		}
		seq := &deepseek.Sequence{}
		toks := r.tokens(n)
		p.Start()
		t0 := time.Now()
		_, err := m.Step([]deepseek.Request{{Seq: seq, Tokens: toks, Logits: deepseek.LogitsLast}})
		_ = r.l.raw.Sync()
		p.AddStep(time.Since(t0))
		p.Stop()
		m.KV.Release(seq)
		if err == nil {
			out = append(out, p.Table(fmt.Sprintf("pp%d", n)))
		}
	}
	if r.o.Gen > 0 {
		for _, b := range r.o.Batches {
			seqs := make([]deepseek.Sequence, b)
			reqs := make([]deepseek.Request, b)
			p.Start()
			var err error
			for s := 0; s < r.o.ProfileSteps && err == nil; s++ {
				toks := r.tokens(b)
				for i := range reqs {
					reqs[i] = deepseek.Request{Seq: &seqs[i], Tokens: toks[i : i+1], Logits: deepseek.LogitsLast,
						Argmax: !r.o.HostLogits}
				}
				t0 := time.Now()
				_, _, err = m.StepIDs(reqs)
				_ = r.l.raw.Sync()
				p.AddStep(time.Since(t0))
			}
			p.Stop()
			for i := range seqs {
				m.KV.Release(&seqs[i])
			}
			test := fmt.Sprintf("tg%d", r.o.Gen)
			if b != 1 {
				test += fmt.Sprintf("@b%d", b)
			}
			if err == nil {
				out = append(out, p.Table(test))
			}
		}
	}
	return out
}

func memoryInfo(m deepseek.Memory) *MemoryInfo {
	mi := &MemoryInfo{CheckpointBytes: m.Checkpoint, WeightBytes: m.Weights, DerivedBytes: m.Derived, KVCacheBytes: m.KVCache,
		KVBytesPerTokenLayer: m.KVPerTokenLayer, KVTokens: m.KVTokens, WorkspaceBytes: m.Workspace}
	if m.Checkpoint > 0 {
		mi.WeightRatio = float64(m.Weights) / float64(m.Checkpoint)
	}
	return mi
}
