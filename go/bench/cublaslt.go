package bench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"

	"github.com/deepgo/deepgo/go/backend"
)

// The fp8 library baseline of `deepgo bench kernels`: cuBLASLt's cublasLtMatmul with e4m3 A and B,
// loaded at run time with purego like cuBLAS (cublas.go). cublasGemmEx has no fp8; cuBLASLt does,
// on sm_89 and later, in one layout only ("TN": op(A) = T, op(B) = N), which is exactly the
// row-major mapping of cublas.go: y^T[N,M] = W[N,K] . x^T[K,M] with A = W (op T, stored column-major
// [K,N], lda = ldw) and B = x (op N, stored column-major [K,M], ldb = ldx), D = y^T (ldd = ldy).
// On sm_90 its fp8 scales are one float per tensor: DeepSeek's 128x128 weight block scales have no
// equivalent there, so the baseline multiplies the weight's e4m3 bytes with scale 1 (the rate is the
// point) by x quantized to e4m3 with one scale for the whole tensor.

// ErrNoCublasLt wraps every reason the fp8 baseline cannot run.
var ErrNoCublasLt = errors.New("cuBLASLt not available")

// cuBLASLt constants, read in cublasLt.h of CUDA 12.6 (cublasLtMatmulDescAttributes_t,
// cublasLtMatmulPreferenceAttributes_t, cublasLtMatmulHeuristicResult_t), cublas_api.h
// (cublasStatus_t) and library_types.h (cudaDataType_t); later headers only append to these enums
// (CUDA 12.8 and 13 add A/B_SCALE_MODE = 31/32 after them). cudaR32F, cudaR16BF, cublasOpT/N and
// cublasCompute32F are cublas.go's.
const (
	cudaR8FE4M3 = 28 // CUDA_R_8F_E4M3

	// cublasLtMatmulDescAttributes_t
	ltDescTransA       = 3  // CUBLASLT_MATMUL_DESC_TRANSA, int32 cublasOperation_t
	ltDescTransB       = 4  // CUBLASLT_MATMUL_DESC_TRANSB, int32
	ltDescBScalePtr    = 18 // CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, const void* (device float)
	ltPrefMaxWorkspace = 1  // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64

	// ltWorkspaceBytes is the workspace cuBLASLt may use (split-K and the like): 32 MiB, what
	// NVIDIA's LtFp8Matmul sample gives it.
	ltWorkspaceBytes = 32 << 20
	// ltAlgoRequest: how many heuristic results to ask for; the first usable one runs.
	ltAlgoRequest = 8
)

// ltHeuristicResult is cublasLtMatmulHeuristicResult_t: {cublasLtMatmulAlgo_t algo (uint64_t
// data[8]); size_t workspaceSize; cublasStatus_t state; float wavesCount; int reserved[4]}, 96
// bytes on 64-bit Linux (TestLtHeuristicResultLayout checks the offsets).
type ltHeuristicResult struct {
	Algo          [8]uint64
	WorkspaceSize uint64
	State         int32
	WavesCount    float32
	Reserved      [4]int32
}

// cublasStatusNames are cublasStatus_t's names (cublas_api.h), for a library without
// cublasLtGetStatusName.
var cublasStatusNames = map[int32]string{
	0: "CUBLAS_STATUS_SUCCESS", 1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
	7: "CUBLAS_STATUS_INVALID_VALUE", 8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR",
	13: "CUBLAS_STATUS_EXECUTION_FAILED", 14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED",
	16: "CUBLAS_STATUS_LICENSE_ERROR",
}

type cublasLtLib struct {
	path          string
	create        func(h *uintptr) int32
	destroy       func(h uintptr) int32
	version       func() uintptr
	descCreate    func(d *uintptr, compute, scaleType int32) int32
	descDestroy   func(d uintptr) int32
	descSet       func(d uintptr, attr int32, buf unsafe.Pointer, size uintptr) int32
	layoutCreate  func(l *uintptr, typ int32, rows, cols uint64, ld int64) int32
	layoutDestroy func(l uintptr) int32
	prefCreate    func(p *uintptr) int32
	prefDestroy   func(p uintptr) int32
	prefSet       func(p uintptr, attr int32, buf unsafe.Pointer, size uintptr) int32
	heuristic     func(h, desc, a, b, c, d, pref uintptr, requested int32, results unsafe.Pointer, returned *int32) int32
	matmul        func(h, desc uintptr, alpha unsafe.Pointer, a, adesc, b, bdesc uintptr, beta unsafe.Pointer, c, cdesc,
		d, ddesc uintptr, algo unsafe.Pointer, workspace, workspaceSize, stream uintptr) int32
	statusName   func(st int32) string // nil when the library lacks them
	statusString func(st int32) string
	drv          *cuDriver
}

// cublasLtCandidates: $DEEPGO_CUBLASLT (a file), then libcublasLt beside each cuBLAS candidate
// (its sonames and folders, $DEEPGO_CUBLAS's folder included), so both come from one toolkit.
func cublasLtCandidates() []string {
	var out []string
	if p := os.Getenv("DEEPGO_CUBLASLT"); p != "" {
		out = append(out, p)
	}
	for _, p := range cublasCandidates() {
		b := filepath.Base(p)
		if !strings.HasPrefix(b, "libcublas.") {
			continue
		}
		out = append(out, filepath.Join(filepath.Dir(p), "libcublasLt."+strings.TrimPrefix(b, "libcublas.")))
	}
	return out
}

func openCublasLtLib() (*cublasLtLib, error) {
	drv, err := loadDriver()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCublasLt, err)
	}
	h, path, tried := dlopenFirst(cublasLtCandidates(), nil)
	if h == 0 {
		return nil, fmt.Errorf("%w: libcublasLt.so.13 / .12 not found (tried %s; set DEEPGO_CUBLASLT to the file)",
			ErrNoCublasLt, strings.Join(tried, ", "))
	}
	l, err := bindCublasLt(h, path, drv)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoCublasLt, path, err)
	}
	return l, nil
}

// bindCublasLt binds the functions of the opened library h.
func bindCublasLt(h uintptr, path string, drv *cuDriver) (*cublasLtLib, error) {
	l := &cublasLtLib{path: path, drv: drv}
	for _, f := range []struct {
		fptr any
		name string
	}{
		{&l.create, "cublasLtCreate"}, {&l.destroy, "cublasLtDestroy"}, {&l.version, "cublasLtGetVersion"},
		{&l.descCreate, "cublasLtMatmulDescCreate"}, {&l.descDestroy, "cublasLtMatmulDescDestroy"},
		{&l.descSet, "cublasLtMatmulDescSetAttribute"}, {&l.layoutCreate, "cublasLtMatrixLayoutCreate"},
		{&l.layoutDestroy, "cublasLtMatrixLayoutDestroy"}, {&l.prefCreate, "cublasLtMatmulPreferenceCreate"},
		{&l.prefDestroy, "cublasLtMatmulPreferenceDestroy"}, {&l.prefSet, "cublasLtMatmulPreferenceSetAttribute"},
		{&l.heuristic, "cublasLtMatmulAlgoGetHeuristic"}, {&l.matmul, "cublasLtMatmul"},
	} {
		if err := bindFunc(h, f.fptr, f.name); err != nil {
			return nil, err
		}
	}
	if bindFunc(h, &l.statusName, "cublasLtGetStatusName") != nil {
		l.statusName = nil
	}
	if bindFunc(h, &l.statusString, "cublasLtGetStatusString") != nil {
		l.statusString = nil
	}
	return l, nil
}

// ltStatus names a cublasStatus_t: "CUBLAS_STATUS_NOT_SUPPORTED (15): <the library's words>".
func (l *cublasLtLib) ltStatus(st int32) string {
	name := cublasStatusNames[st]
	if l != nil && l.statusName != nil {
		if s := l.statusName(st); s != "" {
			name = s
		}
	}
	if name == "" {
		name = "unknown cublasStatus_t"
	}
	s := fmt.Sprintf("%s (%d)", name, st)
	if l != nil && l.statusString != nil {
		if w := l.statusString(st); w != "" && w != name {
			s += ": " + w
		}
	}
	return s
}

// check turns a status into nil or an error naming the call and the status.
func (l *cublasLtLib) check(op string, st int32) error {
	if st == cublasStatusOK {
		return nil
	}
	return fmt.Errorf("%s: %s", op, l.ltStatus(st))
}

// CublasLt is a cuBLASLt handle bound to a backend's device; its calls queue on Stream.
type CublasLt struct {
	l       *cublasLtLib
	h       uintptr
	ctx     uintptr
	stream  uintptr
	Version int  // cublasLtGetVersion: major*10000 + minor*100 + patch
	Stream  bool // false: the default stream (the backend did not expose its own)
}

// OpenCublasLt creates a cuBLASLt handle on be's device; its matmuls go on be's stream where the
// backend exposes it. The error, when there is one, wraps ErrNoCublasLt and says why.
func OpenCublasLt(be backend.Backend) (*CublasLt, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l, t, err := openTarget(be, ErrNoCublasLt, loadCublasLt)
	if err != nil {
		return nil, err
	}
	c := &CublasLt{l: l, ctx: t.ctx, stream: t.stream, Stream: t.own}
	if err := l.check("cublasLtCreate", l.create(&c.h)); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoCublasLt, l.path, err)
	}
	c.Version = int(l.version())
	return c, nil
}

// Describe names the library: "cuBLASLt 13.0.2 (/usr/local/cuda/lib64/libcublasLt.so.13)".
func (c *CublasLt) Describe() string { return describeLib("cuBLASLt", c.Version, c.l.path, c.Stream) }

// Close destroys the handle (nil and closed handles: nothing).
func (c *CublasLt) Close() error {
	if c == nil || c.h == 0 {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.current()
	err := c.l.check("cublasLtDestroy", c.l.destroy(c.h))
	c.h = 0
	return err
}

func (c *CublasLt) current() { c.l.drv.makeCurrent(c.ctx) }

// LtFP8Args is an fp8 linear in cuBLASLt terms: y[M,N] = xScale * x[M,K] . W[N,K]^T with x and W
// e4m3, row-major, leading dimensions in elements; y bf16 or f32 (beta 0), f32 compute.
type LtFP8Args struct {
	X, W, Y       uintptr // device memory
	XScale        uintptr // a device float32 multiplying x (cuBLASLt's B scale); 0: 1
	M, N, K       int64
	LDX, LDW, LDY int64
	YDType        backend.DType
}

// ltShape is the column-major problem cuBLASLt gets: D[m,n] = op(A)[m,k] . op(B)[k,n], each stored
// matrix given as rows x cols with its leading dimension.
type ltShape struct {
	ta, tb            int32
	m, n, k           int64
	aRows, aCols, lda int64
	bRows, bCols, ldb int64
	dRows, dCols, ldd int64
	dType             int32
}

// shape validates g against cuBLASLt's fp8 rules and maps it (see the top of this file). The fp8
// rules (cublasLtMatmul's documentation, and what torch._scaled_mm checks): A and B 16-byte aligned
// with leading dimensions that are multiples of 16 bytes, K and N (m) multiples of 16, D's rows
// 16-byte aligned; M (n) is free, so m = 1 decode shapes run.
func (g *LtFP8Args) shape() (ltShape, error) {
	for _, v := range []int64{g.M, g.N, g.K, g.LDX, g.LDW, g.LDY} {
		if v <= 0 || v > math.MaxInt32 {
			return ltShape{}, fmt.Errorf("cublasLt: dimension %d out of int range", v)
		}
	}
	if g.LDX < g.K || g.LDW < g.K || g.LDY < g.N {
		return ltShape{}, fmt.Errorf("cublasLt: leading dimension below the row length (ldx %d ldw %d k %d, ldy %d n %d)",
			g.LDX, g.LDW, g.K, g.LDY, g.N)
	}
	var dt int32
	switch g.YDType {
	case backend.BF16:
		dt = cudaR16BF
	case backend.F32:
		dt = cudaR32F
	default:
		return ltShape{}, fmt.Errorf("cublasLt fp8: y %v (bf16 or f32 only)", g.YDType)
	}
	if g.K%16 != 0 || g.N%16 != 0 {
		return ltShape{}, fmt.Errorf("cublasLt fp8 needs K and N multiples of 16 (K %d, N %d)", g.K, g.N)
	}
	if g.LDX%16 != 0 || g.LDW%16 != 0 || (g.LDY*g.YDType.Size())%16 != 0 {
		return ltShape{}, fmt.Errorf("cublasLt fp8 needs rows 16-byte aligned (ldx %d, ldw %d e4m3; ldy %d %v)",
			g.LDX, g.LDW, g.LDY, g.YDType)
	}
	for _, p := range []struct {
		name string
		ptr  uintptr
	}{{"x", g.X}, {"W", g.W}, {"y", g.Y}, {"x scale", g.XScale}} {
		if p.ptr%16 != 0 {
			return ltShape{}, fmt.Errorf("cublasLt fp8 needs 16-byte aligned operands (%s at %#x)", p.name, p.ptr)
		}
	}
	return ltShape{ta: cublasOpT, tb: cublasOpN, m: g.N, n: g.M, k: g.K,
		aRows: g.K, aCols: g.N, lda: g.LDW, // op(A) = T: A is stored k x m
		bRows: g.K, bCols: g.M, ldb: g.LDX, // op(B) = N: B is stored k x n
		dRows: g.N, dCols: g.M, ldd: g.LDY, dType: dt}, nil
}

// LtPlan is one fp8 matmul made ready: descriptors, the heuristic's algorithm and the workspace,
// so that Run does nothing but the call.
type LtPlan struct {
	c           *CublasLt
	g           LtFP8Args
	desc, pref  uintptr
	la, lb, ld  uintptr
	algo        ltHeuristicResult
	ws          uintptr
	wsSize      uint64
	alpha, beta float32
}

// Plan prepares g's matmul with the workspace ws of wsSize bytes (device memory that outlives the
// plan; plans that run one after the other on the stream may share it).
func (c *CublasLt) Plan(g *LtFP8Args, ws uintptr, wsSize int64) (*LtPlan, error) {
	s, err := g.shape()
	if err != nil {
		return nil, err
	}
	if ws == 0 || ws%16 != 0 || wsSize < 0 {
		return nil, fmt.Errorf("cublasLt: workspace %#x of %d bytes", ws, wsSize)
	}
	p := &LtPlan{c: c, g: *g, ws: ws, wsSize: uint64(wsSize), alpha: 1}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.current()
	if err := p.describe(s); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	if err := p.pickAlgo(s); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	return p, nil
}

// describe creates the matmul descriptor (f32 compute and scale, TN, x's scale), the three layouts
// (C and D share one: same type, same matrix) and the workspace preference.
func (p *LtPlan) describe(s ltShape) error {
	l, g := p.c.l, &p.g
	if err := l.check("cublasLtMatmulDescCreate", l.descCreate(&p.desc, cublasCompute32F, cudaR32F)); err != nil {
		return err
	}
	ta, tb := s.ta, s.tb
	if err := l.check("cublasLtMatmulDescSetAttribute(TRANSA)",
		l.descSet(p.desc, ltDescTransA, unsafe.Pointer(&ta), unsafe.Sizeof(ta))); err != nil {
		return err
	}
	if err := l.check("cublasLtMatmulDescSetAttribute(TRANSB)",
		l.descSet(p.desc, ltDescTransB, unsafe.Pointer(&tb), unsafe.Sizeof(tb))); err != nil {
		return err
	}
	if g.XScale != 0 {
		sp := g.XScale
		if err := l.check("cublasLtMatmulDescSetAttribute(B_SCALE_POINTER)",
			l.descSet(p.desc, ltDescBScalePtr, unsafe.Pointer(&sp), unsafe.Sizeof(sp))); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		out        *uintptr
		what       string
		typ        int32
		rows, cols int64
		ld         int64
	}{{&p.la, "A (W)", cudaR8FE4M3, s.aRows, s.aCols, s.lda}, {&p.lb, "B (x)", cudaR8FE4M3, s.bRows, s.bCols, s.ldb},
		{&p.ld, "C/D (y)", s.dType, s.dRows, s.dCols, s.ldd}} {
		op := fmt.Sprintf("cublasLtMatrixLayoutCreate(%s %dx%d ld %d)", d.what, d.rows, d.cols, d.ld)
		if err := l.check(op, l.layoutCreate(d.out, d.typ, uint64(d.rows), uint64(d.cols), d.ld)); err != nil {
			return err
		}
	}
	if err := l.check("cublasLtMatmulPreferenceCreate", l.prefCreate(&p.pref)); err != nil {
		return err
	}
	ws := p.wsSize
	return l.check("cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)",
		l.prefSet(p.pref, ltPrefMaxWorkspace, unsafe.Pointer(&ws), unsafe.Sizeof(ws)))
}

// pickAlgo asks the heuristic and keeps its best usable answer.
func (p *LtPlan) pickAlgo(s ltShape) error {
	l := p.c.l
	var res [ltAlgoRequest]ltHeuristicResult
	var n int32
	what := fmt.Sprintf("fp8 m=%d n=%d k=%d (M=%d N=%d K=%d), D %v", s.m, s.n, s.k, p.g.M, p.g.N, p.g.K, p.g.YDType)
	st := l.heuristic(p.c.h, p.desc, p.la, p.lb, p.ld, p.ld, p.pref, int32(len(res)), unsafe.Pointer(&res[0]), &n)
	if err := l.check("cublasLtMatmulAlgoGetHeuristic "+what, st); err != nil {
		return err
	}
	if n <= 0 {
		return fmt.Errorf("cublasLtMatmulAlgoGetHeuristic %s: no algorithm", what)
	}
	for _, r := range res[:min(int(n), len(res))] {
		if r.State == cublasStatusOK && r.WorkspaceSize <= p.wsSize {
			p.algo = r
			return nil
		}
	}
	r := res[0]
	return fmt.Errorf("cublasLtMatmulAlgoGetHeuristic %s: %d answers, none usable (first: state %s, workspace %d of %d bytes)",
		what, n, l.ltStatus(r.State), r.WorkspaceSize, p.wsSize)
}

// Run queues the matmul on the handle's stream: D = y, C = y with beta 0 (cuBLASLt wants C's type
// to be D's for fp8 inputs, and never reads it at beta 0).
func (p *LtPlan) Run() error {
	c := p.c
	runtime.LockOSThread()
	c.current()
	st := c.l.matmul(c.h, p.desc, unsafe.Pointer(&p.alpha), p.g.W, p.la, p.g.X, p.lb, unsafe.Pointer(&p.beta),
		p.g.Y, p.ld, p.g.Y, p.ld, unsafe.Pointer(&p.algo.Algo), p.ws, uintptr(p.wsSize), c.stream)
	runtime.UnlockOSThread()
	runtime.KeepAlive(p)
	if st != cublasStatusOK { // formatted only then: Run is the timed call
		return c.l.check(fmt.Sprintf("cublasLtMatmul fp8 M=%d N=%d K=%d", p.g.M, p.g.N, p.g.K), st)
	}
	return nil
}

// Close destroys the descriptors (each once; nil plans: nothing). Work already queued keeps
// running: cuBLASLt copied what it needs at the call.
func (p *LtPlan) Close() error {
	if p == nil {
		return nil
	}
	l := p.c.l
	var errs []error
	destroy := func(h *uintptr, op string, f func(uintptr) int32) {
		if *h != 0 {
			errs = append(errs, l.check(op, f(*h)))
			*h = 0
		}
	}
	destroy(&p.pref, "cublasLtMatmulPreferenceDestroy", l.prefDestroy)
	for _, h := range []*uintptr{&p.la, &p.lb, &p.ld} {
		destroy(h, "cublasLtMatrixLayoutDestroy", l.layoutDestroy)
	}
	destroy(&p.desc, "cublasLtMatmulDescDestroy", l.descDestroy)
	return errors.Join(errs...)
}
