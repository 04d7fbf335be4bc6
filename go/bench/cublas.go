package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/deepgo/deepgo/go/backend"
)

// The library baseline of `deepgo bench kernels`: cuBLAS's cublasGemmEx, loaded at run time with
// purego (no cgo: the program builds with CGO_ENABLED=0 and runs where there is no CUDA at all;
// there OpenCublas says "cuBLAS not available: ..." and the bench prints "-" for the baseline).
//
// Row-major to column-major: our linear is y[M,N] = x[M,K] . W[N,K]^T, every matrix row-major.
// cuBLAS is column-major, and a row-major [R,C] matrix with leading dimension ld is, read
// column-major, its transpose [C,R] with the same ld. So y^T[N,M] = W[N,K] . x^T[K,M], where
// W[N,K] is the transpose of the stored column-major [K,N] (op(A) = T, lda = ldw), x^T is the
// stored column-major [K,M] as is (op(B) = N, ldb = ldx), and y^T is the stored column-major
// [N,M] (ldc = ldy): cublasGemmEx(T, N, m=N, n=M, k=K, W, ldw, x, ldx, y, ldy).

// ErrNoCublas wraps every reason the baseline cannot run.
var ErrNoCublas = errors.New("cuBLAS not available")

// cuBLAS / CUDA constants (cublas_api.h, library_types.h).
const (
	cublasOpN         = 0
	cublasOpT         = 1
	cudaR32F          = 0
	cudaR16F          = 2
	cudaR16BF         = 14
	cublasCompute32F  = 68
	cublasGemmDefault = -1
	cublasStatusOK    = 0
)

type cublasLib struct {
	path    string
	create  func(h *uintptr) int32
	destroy func(h uintptr) int32
	stream  func(h, s uintptr) int32
	version func(h uintptr, v *int32) int32
	gemmEx  func(h uintptr, ta, tb, m, n, k int32, alpha unsafe.Pointer, a uintptr, at, lda int32, b uintptr, bt,
		ldb int32, beta unsafe.Pointer, c uintptr, ct, ldc, compute, algo int32) int32
	statusString func(st int32) string // nil when the library lacks it
	drv          *cuDriver
}

// cuDriver is the driver, to make device d's primary context current on the calling thread (d > 0
// only: the libraries' runtime picks device 0's primary context on a thread with none current).
type cuDriver struct {
	deviceGet     func(dev *int32, ordinal int32) int32
	primaryRetain func(ctx *uintptr, dev int32) int32
	ctxSetCurrent func(ctx uintptr) int32
}

// loadDriver, loadCublas and loadCublasLt open their library once per process.
var (
	loadDriver   = sync.OnceValues(openDriver)
	loadCublas   = sync.OnceValues(openCublasLib)
	loadCublasLt = sync.OnceValues(openCublasLtLib)
)

func openDriver() (*cuDriver, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("only loaded on Linux (this is %s)", runtime.GOOS)
	}
	cu, err := purego.Dlopen("libcuda.so.1", purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("the NVIDIA driver library libcuda.so.1 cannot be loaded (%w)", err)
	}
	d := &cuDriver{}
	for _, f := range []struct {
		fptr any
		name string
	}{{&d.deviceGet, "cuDeviceGet"}, {&d.primaryRetain, "cuDevicePrimaryCtxRetain"}, {&d.ctxSetCurrent, "cuCtxSetCurrent"}} {
		if err := bindFunc(cu, f.fptr, f.name); err != nil {
			return nil, fmt.Errorf("libcuda.so.1: %w", err)
		}
	}
	return d, nil
}

// primaryContext makes device dev's primary context current on the calling (locked) thread and
// returns it; 0 for device 0, whose context the runtime takes by itself.
func (d *cuDriver) primaryContext(dev int) (uintptr, error) {
	if dev <= 0 {
		return 0, nil
	}
	var dd int32
	if st := d.deviceGet(&dd, int32(dev)); st != 0 {
		return 0, fmt.Errorf("cuDeviceGet(%d): CUresult %d", dev, st)
	}
	var ctx uintptr
	if st := d.primaryRetain(&ctx, dd); st != 0 {
		return 0, fmt.Errorf("cuDevicePrimaryCtxRetain(%d): CUresult %d", dev, st)
	}
	if st := d.ctxSetCurrent(ctx); st != 0 {
		return 0, fmt.Errorf("cuCtxSetCurrent: CUresult %d", st)
	}
	return ctx, nil
}

// makeCurrent makes ctx (from primaryContext) current on the calling thread; 0 does nothing.
func (d *cuDriver) makeCurrent(ctx uintptr) {
	if ctx != 0 {
		_ = d.ctxSetCurrent(ctx)
	}
}

// bindFunc registers lib's C function name into fptr: a missing symbol (an older library) is an
// error, not purego's panic.
func bindFunc(lib uintptr, fptr any, name string) (err error) {
	if _, e := purego.Dlsym(lib, name); e != nil {
		return fmt.Errorf("symbol %s missing", name)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("binding %s: %v", name, r)
		}
	}()
	purego.RegisterLibFunc(fptr, lib, name)
	return nil
}

// dlopenFirst opens the first candidate that loads; a candidate with a folder is tried only when the
// file is there, after pre(path) (nil: nothing). It returns the handle and path (0, "" when none
// loads) and the candidates that failed.
func dlopenFirst(cands []string, pre func(path string)) (uintptr, string, []string) {
	var tried []string
	for _, p := range cands {
		if strings.Contains(p, "/") {
			if _, e := os.Stat(p); e != nil {
				continue
			}
			if pre != nil {
				pre(p)
			}
		}
		if h, e := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_LOCAL); e == nil {
			return h, p, tried
		}
		tried = append(tried, p)
	}
	return 0, "", tried
}

// cublasCandidates: $DEEPGO_CUBLAS (a file), then the sonames the dynamic loader finds, then the
// toolkit's usual folders.
func cublasCandidates() []string {
	var out []string
	if p := os.Getenv("DEEPGO_CUBLAS"); p != "" {
		out = append(out, p)
	}
	names := []string{"libcublas.so.13", "libcublas.so.12"}
	out = append(out, names...)
	var dirs []string
	for _, v := range []string{"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"} {
		if d := os.Getenv(v); d != "" {
			dirs = append(dirs, filepath.Join(d, "lib64"), filepath.Join(d, "lib"))
		}
	}
	dirs = append(dirs, "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
		"/usr/local/cuda/targets/sbsa-linux/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu")
	for _, d := range dirs {
		for _, n := range names {
			out = append(out, filepath.Join(d, n))
		}
	}
	return out
}

func openCublasLib() (*cublasLib, error) {
	drv, err := loadDriver()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCublas, err)
	}
	// Its libcublasLt beside it first, so a folder outside the loader's path works.
	preloadLt := func(p string) {
		lt := filepath.Join(filepath.Dir(p), strings.Replace(filepath.Base(p), "libcublas.", "libcublasLt.", 1))
		if _, e := os.Stat(lt); e == nil {
			_, _ = purego.Dlopen(lt, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		}
	}
	h, path, tried := dlopenFirst(cublasCandidates(), preloadLt)
	if h == 0 {
		return nil, fmt.Errorf("%w: libcublas.so.13 / .12 not found (tried %s; set DEEPGO_CUBLAS to the file)", ErrNoCublas,
			strings.Join(tried, ", "))
	}
	l := &cublasLib{path: path, drv: drv}
	for _, f := range []struct {
		fptr any
		name string
	}{{&l.create, "cublasCreate_v2"}, {&l.destroy, "cublasDestroy_v2"}, {&l.stream, "cublasSetStream_v2"},
		{&l.version, "cublasGetVersion_v2"}, {&l.gemmEx, "cublasGemmEx"}} {
		if err := bindFunc(h, f.fptr, f.name); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrNoCublas, path, err)
		}
	}
	if bindFunc(h, &l.statusString, "cublasGetStatusString") != nil {
		l.statusString = nil
	}
	return l, nil
}

func (l *cublasLib) errf(op string, st int32) error {
	s := fmt.Sprintf("status %d", st)
	if l.statusString != nil {
		s = fmt.Sprintf("%s (%d)", l.statusString(st), st)
	}
	return fmt.Errorf("cublas %s: %s", op, s)
}

// Cublas is a cuBLAS handle bound to a backend's device and stream.
type Cublas struct {
	l       *cublasLib
	h       uintptr
	ctx     uintptr // device > 0: its primary context, made current before each call
	Version int     // cublasGetVersion: major*10000 + minor*100 + patch
	Stream  bool    // false: the default stream (the backend did not expose its own)
}

// streamer is what go/backend/cuda's Backend exposes for interop.
type streamer interface {
	Stream() uintptr
	DeviceIndex() int
}

// target is where a library handle for a backend goes: its stream (own: the backend's, else the
// default stream: the bench syncs around every timing anyway) and, on a device other than 0, its
// primary context.
type target struct {
	stream, ctx uintptr
	own         bool
}

// openTarget starts opening a handle on be: why be is not a CUDA device, if it is not (wrapping
// sentinel); the library (load); then, on the calling thread, which the caller keeps locked, be's
// device's primary context made current.
func openTarget[L any](be backend.Backend, sentinel error, load func() (*L, error)) (*L, target, error) {
	var t target
	if be.HostIsDevice() {
		return nil, t, fmt.Errorf("%w: the %s backend is not a CUDA device", sentinel, be.Name())
	}
	if be.Name() != "cuda" {
		return nil, t, fmt.Errorf("%w: the %s backend is not CUDA", sentinel, be.Name())
	}
	l, err := load()
	if err != nil {
		return nil, t, err
	}
	dev := 0
	if s, ok := be.(streamer); ok {
		t.stream, dev, t.own = s.Stream(), s.DeviceIndex(), true
	}
	drv, err := loadDriver() // loaded by load already
	if err == nil {
		t.ctx, err = drv.primaryContext(dev)
	}
	if err != nil {
		return nil, t, fmt.Errorf("%w: %w", sentinel, err)
	}
	return l, t, nil
}

// OpenCublas creates a cuBLAS handle on be's device, queued on be's stream where the backend
// exposes it (else the default stream: the bench syncs around every timing anyway). The error,
// when there is one, wraps ErrNoCublas and says why.
func OpenCublas(be backend.Backend) (*Cublas, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l, t, err := openTarget(be, ErrNoCublas, loadCublas)
	if err != nil {
		return nil, err
	}
	c := &Cublas{l: l, ctx: t.ctx, Stream: t.own}
	if st := l.create(&c.h); st != cublasStatusOK {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoCublas, l.path, l.errf("create", st))
	}
	if st := l.stream(c.h, t.stream); st != cublasStatusOK {
		_ = l.destroy(c.h)
		return nil, fmt.Errorf("%w: %v", ErrNoCublas, l.errf("set stream", st))
	}
	var v int32
	if st := l.version(c.h, &v); st == cublasStatusOK {
		c.Version = int(v)
	}
	return c, nil
}

// Describe names the library: "cuBLAS 13.0.2 (/usr/local/cuda/lib64/libcublas.so.13)".
func (c *Cublas) Describe() string { return describeLib("cuBLAS", c.Version, c.l.path, c.Stream) }

// describeLib: "name major.minor.patch (path[, default stream])" from a version major*10000 +
// minor*100 + patch.
func describeLib(name string, v int, path string, ownStream bool) string {
	s := fmt.Sprintf("%s %d.%d.%d (%s", name, v/10000, v/100%100, v%100, path)
	if !ownStream {
		s += ", default stream"
	}
	return s + ")"
}

// Close destroys the handle.
func (c *Cublas) Close() {
	if c == nil || c.h == 0 {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.current()
	_ = c.l.destroy(c.h)
	c.h = 0
}

func (c *Cublas) current() { c.l.drv.makeCurrent(c.ctx) }

func cudaType(dt backend.DType) (int32, error) {
	switch dt {
	case backend.BF16:
		return cudaR16BF, nil
	case backend.F16:
		return cudaR16F, nil
	case backend.F32:
		return cudaR32F, nil
	}
	return 0, fmt.Errorf("cublas: no %v operand in this baseline", dt)
}

// GemmArgs is our linear in cuBLAS terms: y[M,N] (+)= x[M,K] . W[N,K]^T, row-major, with
// leading dimensions in elements; dtypes bf16/f16/f32 (x and W the same), f32 compute.
type GemmArgs struct {
	X, W, Y        uintptr
	M, N, K        int64
	LDX, LDW, LDY  int64
	XDType, YDType backend.DType
	Accumulate     bool
	alpha, beta    float32
	xt, yt         int32
	ready          bool
	// The column-major call: C[m,n] = op(A)[m,k] . op(B)[k,n], A = W, B = x, C = y.
	ta, tb        int32
	m32, n32, k32 int32
	lda, ldb, ldc int32
}

// Prepare validates the arguments once (sizes fit cuBLAS's int, dtypes map), so that the timed
// Gemm does no work besides the call.
func (g *GemmArgs) Prepare() error {
	var err error
	if g.xt, err = cudaType(g.XDType); err != nil {
		return err
	}
	if g.yt, err = cudaType(g.YDType); err != nil {
		return err
	}
	for _, v := range []int64{g.M, g.N, g.K, g.LDX, g.LDW, g.LDY} {
		if v <= 0 || v > math.MaxInt32 {
			return fmt.Errorf("cublas: dimension %d out of int range", v)
		}
	}
	if g.LDX < g.K || g.LDW < g.K || g.LDY < g.N {
		return fmt.Errorf("cublas: leading dimension below the row length (ldx %d ldw %d k %d, ldy %d n %d)",
			g.LDX, g.LDW, g.K, g.LDY, g.N)
	}
	g.alpha, g.beta = 1, 0
	if g.Accumulate {
		g.beta = 1
	}
	g.ta, g.tb = cublasOpT, cublasOpN
	g.m32, g.n32, g.k32 = int32(g.N), int32(g.M), int32(g.K)
	g.lda, g.ldb, g.ldc = int32(g.LDW), int32(g.LDX), int32(g.LDY)
	g.ready = true
	return nil
}

// Gemm queues one cublasGemmEx on the handle's stream (see the top of this file for the mapping).
func (c *Cublas) Gemm(g *GemmArgs) error {
	if !g.ready {
		if err := g.Prepare(); err != nil {
			return err
		}
	}
	runtime.LockOSThread()
	c.current()
	st := c.l.gemmEx(c.h, g.ta, g.tb, g.m32, g.n32, g.k32, unsafe.Pointer(&g.alpha),
		g.W, g.xt, g.lda, g.X, g.xt, g.ldb, unsafe.Pointer(&g.beta), g.Y, g.yt, g.ldc, cublasCompute32F, cublasGemmDefault)
	runtime.UnlockOSThread()
	runtime.KeepAlive(g)
	if st != cublasStatusOK {
		return c.l.errf(fmt.Sprintf("gemm_ex M=%d N=%d K=%d", g.M, g.N, g.K), st)
	}
	return nil
}

// cublasBaseline is what runCase needs: the cuBLAS handle (bf16 cases) and the cuBLASLt one (fp8
// cases), or why there is none.
type cublasBaseline struct {
	c     *Cublas
	err   error
	lt    *CublasLt
	ltErr error
}

// openBaseline opens cuBLAS and, on a GPU, cuBLASLt for the linear baseline, and measures each on
// the ceiling's GEMM shape (where the ceilings were measured). ce.Baseline names what loaded, or
// says why not. nil where no result needs a reason (not a GPU, no library).
func openBaseline(be backend.Backend, gpu bool, co CeilingOptions, ce *Ceilings, log io.Writer) *cublasBaseline {
	b := &cublasBaseline{}
	var parts []string
	if c, err := OpenCublas(be); err != nil {
		b.err = err
		parts = append(parts, err.Error())
		logf(log, "%v: the baseline columns read -", err)
	} else {
		b.c = c
		rate := func() (float64, error) { return cublasGEMMCeiling(be, c, co) }
		parts = append(parts, c.Describe()+libCeiling(ce, log, "cuBLAS gemm", rate, &ce.CublasGEMMTFLOPs))
	}
	// Off a GPU cuBLASLt fails for the same reason as cuBLAS: said once.
	if gpu {
		parts = append(parts, b.openLt(be, co, ce, log))
	}
	ce.Baseline = strings.Join(parts, "; ")
	if !gpu && b.c == nil {
		return nil
	}
	return b
}

// libCeiling measures one library's rate on the ceiling's shape into *into, where the ceilings
// were measured; it returns what ceilings.baseline adds ("; <what> ceiling: <error>" or "").
func libCeiling(ce *Ceilings, log io.Writer, what string, rate func() (float64, error), into *float64) string {
	if ce.Error != "" {
		return ""
	}
	logf(log, "measuring the %s ceiling", what)
	t, err := rate()
	if err != nil {
		return "; " + what + " ceiling: " + err.Error()
	}
	*into = t
	return ""
}

// close destroys the handles.
func (b *cublasBaseline) close() {
	if b == nil {
		return
	}
	b.c.Close()
	if err := b.lt.Close(); err != nil {
		b.ltErr = err
	}
}

// linearBaseline times the library on a linear case's own input sets (same x, same W, fresh
// outputs), with the same warm-up, repetitions and rotation as our kernel, after checking its
// output on set 0 (calls[0] has already run). bf16 weights: cuBLAS bf16, checked against ours; fp8
// weights: cuBLASLt fp8 (fp8Baseline).
func (b *cublasBaseline) linearBaseline(be backend.Backend, a *arena, kc kcase, calls []*kcall, o KernelOptions,
	oursMedian float64) *Baseline {
	if calls[0].lin.W.DType == backend.F8E4M3 {
		return b.fp8Baseline(be, a, kc, calls, o, oursMedian)
	}
	bl := &Baseline{Lib: "cublas", Variant: "cublasGemmEx bf16 x bf16 W, f32 compute"}
	if b == nil || b.c == nil {
		err := b.errOr()
		bl.Error = err.Error()
		return bl
	}
	gs := make([]*GemmArgs, len(calls))
	for s, c := range calls {
		l := c.lin
		if l == nil {
			bl.Error = "no linear arguments for input set"
			return bl
		}
		if l.XDType != backend.BF16 {
			bl.Error = fmt.Sprintf("x is %v: the baseline runs bf16 activations only", l.XDType)
			return bl
		}
		if l.W.DType != backend.BF16 {
			bl.Error = fmt.Sprintf("weight %v: no cuBLAS baseline", l.W.DType)
			return bl
		}
		g := &GemmArgs{X: l.X, W: l.W.Data, M: l.M, N: l.W.Rows, K: l.W.Cols, LDX: l.LDX, LDW: l.W.LD, LDY: l.LDY,
			XDType: backend.BF16, YDType: l.YDType, Accumulate: l.Accumulate != 0}
		g.Y = a.out(l.M * l.LDY * l.YDType.Size())
		if a.err != nil {
			bl.Error = a.err.Error()
			return bl
		}
		if err := g.Prepare(); err != nil {
			bl.Error = err.Error()
			return bl
		}
		gs[s] = g
	}
	g0 := gs[0]
	bl.Bytes = float64(g0.N*g0.K*2 + g0.M*g0.K*2 + g0.M*g0.N*g0.YDType.Size())
	// Check: cuBLAS's y on set 0 against ours (the whole output).
	if err := b.c.Gemm(g0); err != nil {
		bl.Error = err.Error()
		return bl
	}
	if err := be.Sync(); err != nil {
		bl.Error = err.Error()
		return bl
	}
	out := calls[0].outs[0]
	n := out.rows * out.rowElems * out.dt.Size()
	ours, err := download(be, out.ptr, n)
	if err == nil {
		var theirs []byte
		if theirs, err = download(be, g0.Y, n); err == nil {
			tol := math.Max(kc.tol, 1e-2)
			ok, e, msg := compareOut(toF32(theirs, out.dt), toF32(ours, out.dt), false, tol)
			if !ok {
				bl.Check, bl.Detail = "FAIL", fmt.Sprintf("cuBLAS vs ours, all %d rows: %s", out.rows, msg)
				return bl
			}
			bl.Check, bl.Detail = "PASS", fmt.Sprintf("cuBLAS vs ours, all %d rows, rel err %.2g (tol %.2g)", out.rows, e, tol)
		}
	}
	if err != nil {
		bl.Error = err.Error()
		return bl
	}
	i := 0
	timeBaseline(be, o, kc, bl, oursMedian, func() error {
		err := b.c.Gemm(gs[i%len(gs)])
		i++
		return err
	})
	return bl
}

// timeBaseline times call (which rotates the library's input sets) exactly as ours is timed
// (timeCalls) and fills bl's figures; an error goes in bl.Error.
func timeBaseline(be backend.Backend, o KernelOptions, kc kcase, bl *Baseline, oursMedian float64, call func() error) {
	us, err := timeCalls(be, o, call)
	if err != nil {
		bl.Error = err.Error()
		return
	}
	bl.Stats = Summarize(us)
	if sec := bl.Median / 1e6; sec > 0 {
		bl.GBs = bl.Bytes / sec / 1e9
		bl.TFLOPs = kc.flops / sec / 1e12
		bl.Ratio = oursMedian / bl.Median
	}
}

func (b *cublasBaseline) errOr() error {
	if b != nil && b.err != nil {
		return b.err
	}
	return fmt.Errorf("%w: not opened", ErrNoCublas)
}

// cublasGEMMCeiling times cuBLAS on the ceiling's GEMM shape (bf16 in, bf16 out where our
// ceiling ran bf16 out), the library's rate beside ours.
func cublasGEMMCeiling(be backend.Backend, c *Cublas, o CeilingOptions) (float64, error) {
	x, err := be.Alloc(o.M * o.K * 2)
	if err != nil {
		return 0, err
	}
	defer be.Free(x)
	w, err := be.Alloc(o.N * o.K * 2)
	if err != nil {
		return 0, err
	}
	defer be.Free(w)
	y, err := be.Alloc(o.M * o.N * 2)
	if err != nil {
		return 0, err
	}
	defer be.Free(y)
	if err := fill(be, x, o.M*o.K*2, 2, genBF16(12, 1)); err != nil {
		return 0, err
	}
	if err := fill(be, w, o.N*o.K*2, 2, genBF16(13, 0.03)); err != nil {
		return 0, err
	}
	g := &GemmArgs{X: x, W: w, Y: y, M: o.M, N: o.N, K: o.K, LDX: o.K, LDW: o.K, LDY: o.N, XDType: backend.BF16,
		YDType: backend.BF16}
	if err := g.Prepare(); err != nil {
		return 0, err
	}
	reps := o.Reps
	if reps <= 0 {
		reps = 5
	}
	ts, err := timeSynced(be, 2, reps, func() error { return c.Gemm(g) })
	if err != nil {
		return 0, err
	}
	return Summarize(rates(ts, 2*float64(o.M)*float64(o.N)*float64(o.K)/1e12)).Max, nil
}
