package bench

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/deepgo/deepgo/go/backend"
	cpubackend "github.com/deepgo/deepgo/go/backend/cpu"
	"github.com/deepgo/deepgo/go/engine"
	"github.com/deepgo/deepgo/go/model/deepseek"
	"github.com/deepgo/deepgo/go/weights"
)

// KernelOptions of `deepgo bench kernels`.
type KernelOptions struct {
	Backend     string
	Device      int
	Threads     int
	Shapes      []string // presets whose shapes to run (deepseek-v3, peer-7b, tiny)
	Reps        int      // timed samples per case (0: 20 on a GPU, 5 on the CPU)
	Warmup      int
	Quick       bool  // a smoke run: few small cases, 2 samples
	M           []int // linear and other per-token kernels: token counts
	Ctx         int   // mla_decode context (0: 4096 on a GPU, 512 on the CPU)
	DecodeBatch int   // mla_decode batch (0: 64 on a GPU, 16 on the CPU)
	Filter      string
	NoCheck     bool
	Ceilings    *CeilingOptions
	Command     string
	Log         io.Writer
}

// A kernel case: one kernel at one shape. rows is the dimension the reference may cut
// (tokens, sequences): every kernel here computes each row independently of later rows, so the
// reference runs the first refRows rows of the same inputs and the outputs' first rows compare.
type kcase struct {
	kernel, shapes, name string
	rows                 int
	bytes, flops         float64 // per call, the fewest bytes moved and operations done
	build                func(a *arena, rows int) (*kcall, error)
	tol                  float64 // relative L2 error allowed against the reference
	note                 string
}

// kcall is a case built on one backend with one input set.
type kcall struct {
	run  func() error
	outs []kout
	// scalar is a plain Go reference of outs[0] for its first rows: the values at idx (nil: all of
	// the first rows, in order), when there is one.
	scalar func(rows int) (idx []int64, want []float32, err error)
	// lin: a linear case's arguments, for the library baseline (cuBLAS) on the same inputs.
	lin *backend.LinearArgs
}

// kout is an output buffer: rows of rowElems elements.
type kout struct {
	ptr      uintptr
	dt       backend.DType
	rowElems int64
	rows     int64
	ids      bool // integer ids: compared for equality
}

const refRows = 8

// arena allocates a case's buffers on one backend and fills them from seeded streams, so that
// the same case built on two backends gets the same inputs.
type arena struct {
	be     backend.Backend
	base   uint64
	set    int
	n      uint64
	allocs []uintptr
	shared map[string]uintptr
	ref    bool // building the reference: only what the first rows need
	err    error
}

func newArena(be backend.Backend, name string) *arena {
	h := fnv.New64a()
	h.Write([]byte(name))
	return &arena{be: be, base: h.Sum64(), shared: map[string]uintptr{}}
}

func (a *arena) startSet(s int) { a.set, a.n = s, 0 }

func (a *arena) nextSeed() uint64 {
	a.n++
	return splitmix64(a.base ^ uint64(a.set+1)*0xd1b54a32d192ed03 ^ a.n*0x9e3779b97f4a7c15)
}

func keySeed(base uint64, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return splitmix64(base ^ h.Sum64())
}

func (a *arena) alloc(bytes int64) uintptr {
	if a.err != nil {
		return 0
	}
	p, err := a.be.Alloc(max(bytes, 64))
	if err != nil {
		a.err = fmt.Errorf("alloc %d bytes: %w", bytes, err)
		return 0
	}
	a.allocs = append(a.allocs, p)
	return p
}

// rand: n random elements of dt, magnitude about scale.
func (a *arena) rand(dt backend.DType, n int64, scale float32) uintptr {
	return a.randSeeded(a.nextSeed(), dt, n, scale)
}

func (a *arena) randSeeded(seed uint64, dt backend.DType, n int64, scale float32) uintptr {
	p := a.alloc(n * dt.Size())
	if a.err == nil {
		if err := fill(a.be, p, n*dt.Size(), int(dt.Size()), genFor(dt, seed, scale)); err != nil {
			a.err = err
		}
	}
	return p
}

// sharedRand is one buffer for every input set (large weights), seeded by key.
func (a *arena) sharedRand(key string, dt backend.DType, n int64, scale float32) uintptr {
	if p, ok := a.shared[key]; ok {
		return p
	}
	p := a.randSeeded(keySeed(a.base, key), dt, n, scale)
	a.shared[key] = p
	return p
}

// put uploads host bytes.
func (a *arena) put(b []byte) uintptr {
	p := a.alloc(int64(len(b)))
	if a.err == nil && len(b) > 0 {
		if err := a.be.Upload(p, b); err != nil {
			a.err = err
		}
	}
	return p
}

// out allocates an output poisoned with 0xFF bytes (NaN for floats, -1 for ids).
func (a *arena) out(bytes int64) uintptr {
	p := a.alloc(bytes)
	if a.err == nil {
		if err := a.be.Memset(p, 0xFF, max(bytes, 64)); err != nil {
			a.err = err
		}
	}
	return p
}

func (a *arena) free() {
	for _, p := range a.allocs {
		_ = a.be.Free(p)
	}
	a.allocs = nil
}

func i32bytes(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// toF32 decodes device bytes of dt.
func toF32(b []byte, dt backend.DType) []float32 {
	n := int64(len(b)) / max(dt.Size(), 1)
	out := make([]float32, n)
	for i := int64(0); i < n; i++ {
		switch dt {
		case backend.F32:
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		case backend.BF16:
			out[i] = weights.BF16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		case backend.F16:
			out[i] = weights.F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		case backend.F8E4M3:
			out[i] = weights.E4M3ToF32(b[i])
		case backend.I32:
			out[i] = float32(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
	}
	return out
}

// cacheBytes is the last-level cache to defeat: input sets rotate until they cover twice this.
func cacheBytes(be backend.Backend) int64 {
	if !be.HostIsDevice() {
		return 64 << 20 // H100/H200 L2 is 50 MB
	}
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpu0/cache/index3/size"); err == nil {
		s := strings.TrimSpace(string(b))
		mult := int64(1)
		if strings.HasSuffix(s, "K") {
			mult, s = 1<<10, strings.TrimSuffix(s, "K")
		} else if strings.HasSuffix(s, "M") {
			mult, s = 1<<20, strings.TrimSuffix(s, "M")
		}
		if v, err := strconv.ParseInt(s, 10, 64); err == nil && v > 0 {
			return v * mult
		}
	}
	return 32 << 20
}

// RunKernels benchmarks every kernel of the contract at the shapes of the named presets.
func RunKernels(o KernelOptions) (*Report, error) {
	if o.Backend == "" {
		o.Backend = "auto"
	}
	if len(o.Shapes) == 0 {
		o.Shapes = []string{"deepseek-v3", "peer-7b"}
	}
	be, err := engine.OpenBackend(o.Backend, o.Device, o.Threads)
	if err != nil {
		return nil, err
	}
	defer be.Close()
	gpu := !be.HostIsDevice()
	if o.Reps <= 0 {
		o.Reps = 5
		if gpu {
			o.Reps = 20
		}
		if o.Quick {
			o.Reps = 2
		}
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if len(o.M) == 0 {
		o.M = []int{1, 64}
		if gpu {
			o.M = []int{1, 64, 512}
		}
		if o.Quick {
			o.M = []int{4}
		}
	}
	if o.Ctx <= 0 {
		o.Ctx = 512
		if gpu {
			o.Ctx = 4096
		}
		if o.Quick {
			o.Ctx = 128
		}
	}
	if o.DecodeBatch <= 0 {
		o.DecodeBatch = 16
		if gpu {
			o.DecodeBatch = 64
		}
		if o.Quick {
			o.DecodeBatch = 4
		}
	}
	rep := &Report{Schema: Schema, Kind: "kernels", Date: time.Now().UTC().Format(time.RFC3339), Command: o.Command,
		Git: Git(), Host: Host()}
	rep.Device = DeviceInfo{Backend: be.Name(), Name: be.Device()}
	if _, t, err := be.MemInfo(); err == nil {
		rep.Device.MemTotal = t
	}
	if gpu {
		rep.Device.Driver, rep.Device.CUDA = gpuDriver(o.Device)
	} else {
		rep.Device.Threads = o.Threads
	}
	rep.Settings = map[string]any{"shapes": o.Shapes, "reps": o.Reps, "warmup": o.Warmup, "quick": o.Quick, "m": o.M,
		"mla_decode_ctx": o.Ctx, "mla_decode_batch": o.DecodeBatch, "filter": o.Filter, "check": !o.NoCheck,
		"threads": o.Threads}
	if !gpu {
		rep.Notes = append(rep.Notes, fmt.Sprintf("cpu defaults: linear m=%v (no 512), mla_decode batch %d ctx %d, "+
			"mla_prefill 256 tokens (GPU: m=1,64,512, batch 64 ctx 4096, 512 and 4096 tokens); pass --m/--ctx/--decode-batch to change",
			o.M, o.DecodeBatch, o.Ctx))
	}

	co := DefaultCeilingOptions(be)
	if o.Ceilings != nil {
		co = *o.Ceilings
	}
	if o.Quick && o.Ceilings == nil {
		co = CeilingOptions{CopyBytes: 32 << 20, M: 64, N: 512, K: 512, Reps: 3}
	}
	logf(o.Log, "measuring ceilings (copy %d MiB, gemm %dx%dx%d)", co.CopyBytes>>20, co.M, co.N, co.K)
	if rep.Ceilings, err = MeasureCeilings(be, co); err != nil {
		rep.Ceilings.Error = err.Error()
	}

	// The library baseline (cuBLAS, cuBLASLt for fp8) for linear on a CUDA device. Elsewhere (or
	// without the library) the reason goes in ceilings.baseline and the baseline columns read "-".
	bl := openBaseline(be, gpu, co, &rep.Ceilings, o.Log)
	defer bl.close()

	// The reference: the CPU library for a GPU; plain Go (where written) for the CPU itself.
	var ref backend.Backend
	if gpu && !o.NoCheck {
		c, err := cpubackend.New(0)
		if err != nil {
			return nil, fmt.Errorf("reference cpu backend: %w", err)
		}
		ref = c
		defer c.Close()
	}
	act, cacheDT := backend.F32, backend.F32
	if gpu {
		act, cacheDT = backend.BF16, backend.BF16
	}
	var cases []kcase
	for _, s := range o.Shapes {
		c, err := deepseek.Preset(s, 0)
		if err != nil {
			return nil, err
		}
		cases = append(cases, kernelCases(s, c, o, act, cacheDT, gpu)...)
	}
	cache := cacheBytes(be)
	for _, kc := range cases {
		if !filterMatch(o.Filter, kc.kernel+" "+kc.name) {
			continue
		}
		logf(o.Log, "%s %s %s", kc.shapes, kc.kernel, kc.name)
		rep.Results = append(rep.Results, runCase(be, ref, kc, o, cache, rep.Ceilings, bl))
	}
	if len(rep.Results) == 0 {
		return nil, fmt.Errorf("bench kernels: no case matches --filter %q", o.Filter)
	}
	if bl != nil && bl.c != nil {
		rep.Notes = append(rep.Notes, "baseline (linear, bf16 weights): cublasGemmEx, bf16 x and W, f32 compute, our y dtype, on the "+
			"case's own input sets (same warm-up, repetitions, rotation), output checked against ours; "+
			"ours/cuBLAS = our median over its median")
	}
	if bl != nil && bl.lt != nil {
		rep.Notes = append(rep.Notes, "baseline (linear, fp8 weights): cublasLtMatmul fp8, the case's e4m3 W bytes with scale 1 "+
			"(cuBLASLt has no 128x128 block scales on sm_90) times its x quantized once per input set to e4m3 with one "+
			"per-tensor scale (amax/448), f32 compute, bf16 out, timed like the bf16 baseline; checked against a Go product of "+
			"those e4m3 values (not against ours, whose block scales it lacks); bytes = e4m3 W + e4m3 x + bf16 y")
	}
	rep.Notes = append(rep.Notes, "figures are microseconds per call (median and spread over samples; a sample times several calls in a row, rotating input sets so caches do not flatter); GB/s and TFLOP/s from the median; % of ceiling = max(bytes / copy bandwidth, FLOPs / GEMM rate) / time")
	return rep, nil
}

func runCase(be, ref backend.Backend, kc kcase, o KernelOptions, cache int64, ce Ceilings, bl *cublasBaseline) Result {
	key := ResultKey("kernels:"+kc.shapes, "", be.Name(), kc.kernel+" "+kc.name)
	x := Result{Key: key, Model: "kernels:" + kc.shapes, Backend: be.Name(), Device: be.Device(),
		Test: kc.kernel + " " + kc.name, Unit: "us", Kernel: kc.kernel, Shape: kc.name, Bytes: kc.bytes, FLOPs: kc.flops,
		Detail: kc.note}
	sets := 1
	if kc.bytes > 0 {
		sets = int(math.Ceil(2 * float64(cache) / kc.bytes))
	}
	sets = min(max(sets, 1), 8)
	if o.Quick {
		sets = min(sets, 2)
	}
	a := newArena(be, kc.shapes+"/"+kc.kernel+"/"+kc.name)
	defer a.free()
	calls := make([]*kcall, sets)
	for s := range calls {
		a.startSet(s)
		c, err := kc.build(a, kc.rows)
		if err == nil {
			err = a.err
		}
		if err != nil {
			x.Error = err.Error()
			return x
		}
		calls[s] = c
	}
	// Check the first call's output.
	if err := calls[0].run(); err != nil {
		x.Error = err.Error()
		return x
	}
	if err := be.Sync(); err != nil {
		x.Error = err.Error()
		return x
	}
	if o.NoCheck {
		x.Check = "SKIP"
		x.Detail = joinNote(kc.note, "--no-check")
	} else {
		x.Check, x.Detail = checkCase(be, ref, kc, calls[0])
		x.Detail = joinNote(x.Detail, kc.note)
		if x.Check == "FAIL" {
			return x
		}
	}
	// Time: warm-up, then calibrate the calls per sample to about a millisecond.
	i := 0
	us, err := timeCalls(be, o, func() error {
		err := calls[i%sets].run()
		i++
		return err
	})
	if err != nil {
		x.Error = err.Error()
		return x
	}
	x.Stats = Summarize(us)
	sec := x.Median / 1e6
	if sec > 0 {
		x.GBs = kc.bytes / sec / 1e9
		x.TFLOPs = kc.flops / sec / 1e12
	}
	var tb, tf float64
	if ce.CopyGBs > 0 {
		tb = kc.bytes / (ce.CopyGBs * 1e9)
	}
	if ce.GEMMTFLOPs > 0 {
		tf = kc.flops / (ce.GEMMTFLOPs * 1e12)
	}
	if fl := math.Max(tb, tf); fl > 0 {
		x.Floor = fl * 1e6
		x.FloorBasis = "copy"
		if tf > tb {
			x.FloorBasis = "gemm"
		}
		if sec > 0 {
			x.FracOfFloor = fl / sec
		}
	}
	if bl != nil && calls[0].lin != nil {
		x.Baseline = bl.linearBaseline(be, a, kc, calls, o, x.Median)
	}
	return x
}

// timeCalls times call (which rotates its input sets): max(warmup, 1) warm-up calls, one timed
// call to size a sample to about a millisecond (at most 200 calls; 4 with --quick), then o.Reps
// samples of that many calls in a row between Syncs; microseconds per call.
func timeCalls(be backend.Backend, o KernelOptions, call func() error) ([]float64, error) {
	for w := 0; w < max(o.Warmup, 1); w++ {
		if err := call(); err != nil {
			return nil, err
		}
	}
	_ = be.Sync()
	t0 := time.Now()
	if err := call(); err != nil {
		return nil, err
	}
	_ = be.Sync()
	one := time.Since(t0).Seconds()
	inner := 1
	if one < 1e-3 {
		inner = min(int(1e-3/max(one, 1e-7)), 200)
	}
	if o.Quick {
		inner = min(inner, 4)
	}
	var us []float64
	for r := 0; r < o.Reps; r++ {
		if err := be.Sync(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		for k := 0; k < inner; k++ {
			if err := call(); err != nil {
				return nil, err
			}
		}
		if err := be.Sync(); err != nil {
			return nil, err
		}
		us = append(us, time.Since(t0).Seconds()*1e6/float64(inner))
	}
	return us, nil
}

func joinNote(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// checkCase compares the first call's outputs with the reference: the CPU library on the same
// inputs (first refRows rows) when ref is set, else the case's plain Go reference, else SKIP.
func checkCase(be, ref backend.Backend, kc kcase, c *kcall) (string, string) {
	// Every element written, none NaN (outputs were poisoned).
	got := make([][]float32, len(c.outs))
	for i, o := range c.outs {
		b, err := download(be, o.ptr, o.rows*o.rowElems*o.dt.Size())
		if err != nil {
			return "FAIL", err.Error()
		}
		got[i] = toF32(b, o.dt)
		for j, v := range got[i] {
			if math.IsNaN(float64(v)) || (o.ids && v < 0) {
				return "FAIL", fmt.Sprintf("output %d element %d not written (or NaN)", i, j)
			}
		}
	}
	rows := min(kc.rows, refRows)
	if ref != nil {
		a := newArena(ref, kc.shapes+"/"+kc.kernel+"/"+kc.name)
		a.ref = true
		defer a.free()
		a.startSet(0)
		rc, err := kc.build(a, rows)
		if err == nil {
			err = a.err
		}
		if err == nil {
			err = rc.run()
		}
		if err != nil {
			return "FAIL", "reference (cpu): " + err.Error()
		}
		worst := 0.0
		for i, o := range rc.outs {
			b, err := download(ref, o.ptr, o.rows*o.rowElems*o.dt.Size())
			if err != nil {
				return "FAIL", err.Error()
			}
			want := toF32(b, o.dt)
			ok, e, msg := compareOut(got[i][:len(want)], want, c.outs[i].ids, kc.tol)
			if !ok {
				return "FAIL", fmt.Sprintf("output %d vs cpu: %s", i, msg)
			}
			worst = math.Max(worst, e)
		}
		return "PASS", fmt.Sprintf("vs cpu, first %d rows, rel err %.2g", rows, worst)
	}
	if c.scalar == nil {
		return "SKIP", "no Go reference: the CPU library is the reference (go/backend/cpu tests check it)"
	}
	idx, want, err := c.scalar(rows)
	if err != nil {
		return "FAIL", "go reference: " + err.Error()
	}
	g := got[0][:len(want)]
	if idx != nil {
		g = make([]float32, len(idx))
		for i, j := range idx {
			g[i] = got[0][j]
		}
	}
	ok, e, msg := compareOut(g, want, c.outs[0].ids, kc.tol)
	if !ok {
		return "FAIL", "vs go reference: " + msg
	}
	return "PASS", fmt.Sprintf("vs go reference, first %d rows, rel err %.2g", rows, e)
}

// compareOut: ids must match exactly (99% for sampling-like outputs is left to tol >= 1 meaning
// a fraction); floats by relative L2 error.
func compareOut(got, want []float32, ids bool, tol float64) (bool, float64, string) {
	if len(got) != len(want) {
		return false, 0, fmt.Sprintf("%d elements, want %d", len(got), len(want))
	}
	if ids {
		bad, first := 0, -1
		for i := range got {
			if got[i] != want[i] {
				bad++
				if first < 0 {
					first = i
				}
			}
		}
		frac := float64(bad) / float64(max(len(got), 1))
		if frac > tol {
			return false, frac, fmt.Sprintf("%d of %d ids differ (first at %d: %v, want %v)", bad, len(got), first, got[first], want[first])
		}
		return true, frac, ""
	}
	var num, den float64
	first := -1
	for i := range got {
		d := float64(got[i]) - float64(want[i])
		if math.IsNaN(d) {
			return false, math.Inf(1), fmt.Sprintf("NaN at %d", i)
		}
		num += d * d
		den += float64(want[i]) * float64(want[i])
		if first < 0 && math.Abs(d) > 0.05*math.Abs(float64(want[i]))+1e-3 {
			first = i
		}
	}
	e := math.Sqrt(num / math.Max(den, 1e-30))
	if e > tol {
		s := fmt.Sprintf("rel err %.3g > %.3g", e, tol)
		if first >= 0 {
			s += fmt.Sprintf(" (first large difference at %d: %v, want %v)", first, got[first], want[first])
		}
		return false, e, s
	}
	return true, e, ""
}

// filterMatch: an empty filter takes every case; else the case's text contains one of the filter's
// "|"-separated alternatives ("|" because case names hold commas: "gate_proj,up_proj").
func filterMatch(filter, text string) bool {
	if filter == "" {
		return true
	}
	for _, f := range strings.Split(filter, "|") {
		if f != "" && strings.Contains(text, f) {
			return true
		}
	}
	return false
}
