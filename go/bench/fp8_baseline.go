package bench

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/deepgo/deepgo/go/backend"
	"github.com/deepgo/deepgo/go/weights"
)

// ltFP8Variant says what the fp8 rows' baseline runs.
const ltFP8Variant = "cublasLtMatmul fp8 e4m3 x and W (x quantized per tensor, W's bytes with scale 1), f32 compute, bf16 out"

// ltFP8Tol is the fp8 baseline's check: relative L2 error against a float64 Go product of the very
// e4m3 values it was given. What is left is f32 accumulation on fp8 tensor cores and y's bf16
// rounding (2^-9): a few 1e-3, so the tolerance is loose. A wrong layout is off by about 1, a scale
// lost or applied twice by a factor of hundreds.
const ltFP8Tol = 5e-2

// e4m3FromBF16 quantizes one bf16 value divided by scale s: round to nearest, ties to even,
// saturating at ±448 like DeepSeek's act_quant (which clamps x/s to ±448 before the cast), never a
// NaN out of a number (weights.F32ToE4M3).
func e4m3FromBF16(b uint16, s float32) uint8 {
	return weights.F32ToE4M3(weights.BF16ToF32(b) / s)
}

// quantizeE4M3 quantizes rows x cols little-endian bf16 values (row stride ld elements) to e4m3
// with one scale for the whole tensor: s = amax / 448 (1 where x is all zeros), q = e4m3(x / s),
// so q * s approximates x. The result is compact: [rows, cols], leading dimension cols.
func quantizeE4M3(src []byte, rows, cols, ld int64) ([]byte, float32, error) {
	if rows <= 0 || cols <= 0 || ld < cols || int64(len(src)) < 2*((rows-1)*ld+cols) {
		return nil, 0, fmt.Errorf("quantize: %d bytes for %d rows of %d (ld %d) bf16", len(src), rows, cols, ld)
	}
	at := func(i, j int64) uint16 { return binary.LittleEndian.Uint16(src[2*(i*ld+j):]) }
	var amax float32
	for i := int64(0); i < rows; i++ {
		for j := int64(0); j < cols; j++ {
			v := weights.BF16ToF32(at(i, j))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, 0, fmt.Errorf("quantize: x[%d,%d] = %v", i, j, v)
			}
			amax = max(amax, float32(math.Abs(float64(v))))
		}
	}
	s := amax / weights.E4M3Max
	if s == 0 {
		s = 1
	}
	q := make([]byte, rows*cols)
	for i := int64(0); i < rows; i++ {
		for j := int64(0); j < cols; j++ {
			q[i*cols+j] = e4m3FromBF16(at(i, j), s)
		}
	}
	return q, s, nil
}

// ltInput is one input set of the fp8 baseline: its arguments, and set 0's x on the host for the
// check.
type ltInput struct {
	g  *LtFP8Args
	q  []byte // x quantized, [M, K]
	sx float32
}

// ltInputs prepares one input set: the case's bf16 x quantized once to e4m3 on the host (outside
// the timed loop) and uploaded with its scale, the case's weight bytes as they are, a fresh bf16 y
// [M, N] poisoned with NaN (bf16 whatever the case's y: the fp8 recipe NVIDIA's sample runs).
func ltInputs(be backend.Backend, a *arena, l *backend.LinearArgs) (*ltInput, error) {
	if l.XDType != backend.BF16 {
		return nil, fmt.Errorf("x is %v: the fp8 baseline quantizes bf16 activations only", l.XDType)
	}
	if l.Accumulate != 0 {
		return nil, fmt.Errorf("the case accumulates into y: the fp8 baseline runs beta = 0")
	}
	M, N, K := l.M, l.W.Rows, l.W.Cols
	xb, err := download(be, l.X, 2*((M-1)*l.LDX+K))
	if err != nil {
		return nil, fmt.Errorf("downloading x: %w", err)
	}
	q, sx, err := quantizeE4M3(xb, M, K, l.LDX)
	if err != nil {
		return nil, err
	}
	g := &LtFP8Args{X: a.put(q), W: l.W.Data, XScale: a.put(f32bytes([]float32{sx})), M: M, N: N, K: K, LDX: K,
		LDW: l.W.LD, LDY: N, YDType: backend.BF16}
	g.Y = a.out(M * N * 2)
	if a.err != nil {
		return nil, a.err
	}
	return &ltInput{g: g, q: q, sx: sx}, nil
}

// spread is up to n indices in [0, count), evenly spread, the first and the last included.
func spread(count int64, n int) []int64 {
	step := max(count/int64(max(n-1, 1)), 1)
	var out []int64
	for i := int64(0); i < count && len(out) < n-1; i += step {
		out = append(out, i)
	}
	if len(out) == 0 || out[len(out)-1] != count-1 {
		out = append(out, count-1)
	}
	return out
}

// checkLtFP8 checks the fp8 baseline's y on input set 0: every element written (y was poisoned
// with NaN), then 8 rows x 65 columns spread over y against a float64 Go product of the same
// e4m3 values (x's q with its scale, W's bytes unscaled). Not against ours: ours applies the
// weight's 128x128 block scales, which the baseline cannot.
func checkLtFP8(be backend.Backend, in *ltInput) (check, detail string, err error) {
	g := in.g
	yb, err := download(be, g.Y, g.M*g.LDY*g.YDType.Size())
	if err != nil {
		return "", "", fmt.Errorf("downloading y: %w", err)
	}
	y := toF32(yb, g.YDType)
	for i := int64(0); i < g.M; i++ {
		for j := int64(0); j < g.N; j++ {
			if v := float64(y[i*g.LDY+j]); math.IsNaN(v) || math.IsInf(v, 0) {
				return "FAIL", fmt.Sprintf("cuBLASLt fp8: y[%d,%d] = %v (not written, or not finite)", i, j, v), nil
			}
		}
	}
	rows, cols := spread(g.M, 8), spread(g.N, 65)
	var got, want []float32
	for _, c := range cols {
		wb, err := download(be, g.W+uintptr(c*g.LDW), g.K)
		if err != nil {
			return "", "", fmt.Errorf("downloading W row %d: %w", c, err)
		}
		for _, r := range rows {
			var s float64
			for k, wq := range wb {
				s += float64(weights.E4M3ToF32(in.q[r*g.K+int64(k)])) * float64(weights.E4M3ToF32(wq))
			}
			got = append(got, y[r*g.LDY+c])
			want = append(want, float32(s*float64(in.sx)))
		}
	}
	what := fmt.Sprintf("cuBLASLt fp8 vs a Go product of the same e4m3 x and W, %d rows x %d columns (all %d rows written)",
		len(rows), len(cols), g.M)
	ok, e, msg := compareOut(got, want, false, ltFP8Tol)
	if !ok {
		return "FAIL", what + ": " + msg, nil
	}
	return "PASS", fmt.Sprintf("%s, rel err %.2g (tol %.2g)", what, e, ltFP8Tol), nil
}

// fp8Baseline is linearBaseline for fp8 weights: cuBLASLt fp8 on the case's own input sets (x
// quantized per tensor, W's bytes, a fresh y each), checked on set 0, then timed like ours.
// Without cuBLASLt, or when a call fails, the baseline says why: there is no other fp8 baseline.
func (b *cublasBaseline) fp8Baseline(be backend.Backend, a *arena, kc kcase, calls []*kcall, o KernelOptions,
	oursMedian float64) *Baseline {
	bl := &Baseline{Lib: "cublaslt", Variant: ltFP8Variant}
	if b == nil || b.lt == nil {
		bl.Error = b.ltErrOr().Error()
		return bl
	}
	ws := a.alloc(ltWorkspaceBytes)
	if a.err != nil {
		bl.Error = "cuBLASLt workspace: " + a.err.Error()
		return bl
	}
	var plans []*LtPlan
	defer func() {
		for _, p := range plans {
			if err := p.Close(); err != nil {
				bl.Detail = joinNote(bl.Detail, "cleanup: "+err.Error())
			}
		}
	}()
	var in0 *ltInput
	for s, c := range calls {
		if c.lin == nil {
			bl.Error = "no linear arguments for input set"
			return bl
		}
		in, err := ltInputs(be, a, c.lin)
		if err == nil {
			var p *LtPlan
			if p, err = b.lt.Plan(in.g, ws, ltWorkspaceBytes); err == nil {
				plans = append(plans, p)
			}
		}
		if err != nil {
			bl.Error = fmt.Sprintf("input set %d: %v", s, err)
			return bl
		}
		if s == 0 {
			in0 = in
		}
	}
	g := in0.g
	bl.Bytes = float64(g.N*g.K + g.M*g.K + g.M*g.N*g.YDType.Size())
	if err := plans[0].Run(); err != nil {
		bl.Error = err.Error()
		return bl
	}
	if err := be.Sync(); err != nil {
		bl.Error = "after cublasLtMatmul: " + err.Error()
		return bl
	}
	var err error
	if bl.Check, bl.Detail, err = checkLtFP8(be, in0); err != nil {
		bl.Error = err.Error()
		return bl
	}
	if bl.Check == "FAIL" {
		return bl
	}
	i := 0
	timeBaseline(be, o, kc, bl, oursMedian, func() error {
		err := plans[i%len(plans)].Run()
		i++
		return err
	})
	return bl
}

func (b *cublasBaseline) ltErrOr() error {
	if b != nil && b.ltErr != nil {
		return b.ltErr
	}
	return fmt.Errorf("%w: not opened", ErrNoCublasLt)
}

// openLt opens cuBLASLt into b and measures its fp8 rate on the ceiling's GEMM shape (where the
// ceilings were measured); it returns the words for ceilings.baseline.
func (b *cublasBaseline) openLt(be backend.Backend, co CeilingOptions, ce *Ceilings, log io.Writer) string {
	lt, err := OpenCublasLt(be)
	if err != nil {
		b.ltErr = err
		logf(log, "%v: the fp8 rows' baseline columns read -", err)
		return err.Error()
	}
	b.lt = lt
	rate := func() (float64, error) { return cublasLtFP8Ceiling(be, lt, co) }
	return lt.Describe() + libCeiling(ce, log, "cuBLASLt fp8 gemm", rate, &ce.CublasLtFP8TFLOPs)
}

// cublasLtFP8Ceiling times cuBLASLt fp8 on the ceiling's GEMM shape (random e4m3 x and W, never a
// NaN code, scales 1, bf16 out): the library's fp8 rate beside ours.
func cublasLtFP8Ceiling(be backend.Backend, lt *CublasLt, o CeilingOptions) (float64, error) {
	var bufs [4]uintptr // x, W, y, workspace
	for i, n := range []int64{o.M * o.K, o.N * o.K, o.M * o.N * 2, ltWorkspaceBytes} {
		p, err := be.Alloc(n)
		if err != nil {
			return 0, fmt.Errorf("fp8 gemm buffer of %d bytes: %w", n, err)
		}
		defer be.Free(p)
		bufs[i] = p
	}
	if err := fill(be, bufs[0], o.M*o.K, 1, genE4M3(14)); err != nil {
		return 0, err
	}
	if err := fill(be, bufs[1], o.N*o.K, 1, genE4M3(15)); err != nil {
		return 0, err
	}
	g := &LtFP8Args{X: bufs[0], W: bufs[1], Y: bufs[2], M: o.M, N: o.N, K: o.K, LDX: o.K, LDW: o.K, LDY: o.N,
		YDType: backend.BF16}
	p, err := lt.Plan(g, bufs[3], ltWorkspaceBytes)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	reps := o.Reps
	if reps <= 0 {
		reps = 5
	}
	ts, err := timeSynced(be, 2, reps, p.Run)
	if err != nil {
		return 0, err
	}
	return Summarize(rates(ts, 2*float64(o.M)*float64(o.N)*float64(o.K)/1e12)).Max, nil
}
