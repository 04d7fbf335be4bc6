package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/deepgo/deepgo/go/backend"
	cpubackend "github.com/deepgo/deepgo/go/backend/cpu"
	"github.com/deepgo/deepgo/go/weights"
)

// TestCublasAbsent: where there is no CUDA (this CI), loading cuBLAS and cuBLASLt fails with a clear
// message and no panic; opening either on a CPU backend is refused the same way.
func TestCublasAbsent(t *testing.T) {
	be, err := cpubackend.New(1)
	if err != nil {
		t.Skipf("cpu backend: %v", err)
	}
	defer be.Close()
	for _, c := range []struct {
		name     string
		sentinel error
		load     func() error
		open     func(backend.Backend) (bool, error) // whether a handle came back
	}{
		{"cuBLAS", ErrNoCublas,
			func() error { _, err := loadCublas(); return err },
			func(be backend.Backend) (bool, error) { c, err := OpenCublas(be); return c != nil, err }},
		{"cuBLASLt", ErrNoCublasLt,
			func() error { _, err := loadCublasLt(); return err },
			func(be backend.Backend) (bool, error) { c, err := OpenCublasLt(be); return c != nil, err }},
	} {
		prefix := c.name + " not available: "
		if err := c.load(); err == nil {
			t.Logf("%s loads here: the absent path is not exercised", c.name)
		} else {
			if !errors.Is(err, c.sentinel) || !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q: want it to wrap %v and start with %q", err, c.sentinel, prefix)
			}
			t.Logf("as expected: %v", err)
		}
		got, err := c.open(be)
		if err == nil || got {
			t.Fatalf("open %s on the cpu backend: a handle, %v: want an error", c.name, err)
		}
		if !errors.Is(err, c.sentinel) || !strings.Contains(err.Error(), prefix+"the cpu backend") {
			t.Errorf("open %s on the cpu backend: %q", c.name, err)
		}
	}
	// A baseline without a handle says why instead of panicking.
	var nb *cublasBaseline
	if e := nb.errOr(); !errors.Is(e, ErrNoCublas) {
		t.Errorf("nil baseline: %v", e)
	}
}

// colMajorGemm is cublasGemmEx's definition (beta 0, alpha 1) on host slices:
// C[m,n] = op(A)[m,k] op(B)[k,n], all column-major, op T reading the stored matrix transposed.
func colMajorGemm(ta, tb, m, n, k int32, a []float32, lda int32, b []float32, ldb int32, c []float32, ldc int32) {
	at := func(i, l int32) float32 { // op(A)[i,l]
		if ta == cublasOpT {
			return a[i*lda+l] // stored [k,m] column-major: element (l,i) at l + i*lda
		}
		return a[l*lda+i]
	}
	bt := func(l, j int32) float32 {
		if tb == cublasOpT {
			return b[l*ldb+j]
		}
		return b[j*ldb+l]
	}
	for j := int32(0); j < n; j++ {
		for i := int32(0); i < m; i++ {
			var s float32
			for l := int32(0); l < k; l++ {
				s += at(i, l) * bt(l, j)
			}
			c[j*ldc+i] = s
		}
	}
}

// mappingInputs are small exact x and W values for the mapping tests.
func mappingInputs(nx, nw int) (x, w []float32) {
	x, w = make([]float32, nx), make([]float32, nw)
	for i := range x {
		x[i] = float32(i%11) - 5
	}
	for i := range w {
		w[i] = float32(i%7)*0.5 - 1
	}
	return x, w
}

// checkLinear checks y against our linear's definition y[M,N] = x[M,K] . W[N,K]^T (row-major,
// padded rows), exactly: the values are small integers and halves.
func checkLinear(t *testing.T, x, w, y []float32, M, N, K, ldx, ldw, ldy int) {
	t.Helper()
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var want float32
			for l := 0; l < K; l++ {
				want += x[i*ldx+l] * w[j*ldw+l]
			}
			if got := y[i*ldy+j]; got != want {
				t.Fatalf("y[%d,%d] = %v, want %v", i, j, got, want)
			}
		}
	}
}

// TestGemmMapping checks the row-major -> column-major mapping that Gemm hands cuBLAS, by running
// the exact call (ops, sizes, leading dimensions, operand order) through cuBLAS's definition on
// the host against our linear's definition y[M,N] = x[M,K] . W[N,K]^T, padded leading dimensions
// included.
func TestGemmMapping(t *testing.T) {
	const M, N, K = 3, 5, 7
	const ldx, ldw, ldy = K + 2, K + 1, N + 3
	x, w := mappingInputs(M*ldx, N*ldw)
	g := &GemmArgs{M: M, N: N, K: K, LDX: ldx, LDW: ldw, LDY: ldy, XDType: backend.BF16, YDType: backend.F32}
	if err := g.Prepare(); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, M*ldy)
	colMajorGemm(g.ta, g.tb, g.m32, g.n32, g.k32, w, g.lda, x, g.ldb, y, g.ldc)
	checkLinear(t, x, w, y, M, N, K, ldx, ldw, ldy)
	bad := &GemmArgs{M: M, N: N, K: K, LDX: K - 1, LDW: K, LDY: N, XDType: backend.BF16, YDType: backend.F32}
	if bad.Prepare() == nil {
		t.Error("ldx < K accepted")
	}
	if (&GemmArgs{M: 1, N: 1, K: 1, LDX: 1, LDW: 1, LDY: 1, XDType: backend.F8E4M3, YDType: backend.F32}).Prepare() == nil {
		t.Error("fp8 operands accepted by the bf16 baseline")
	}
}

// TestBaselineColumns: "-" where a linear case has no baseline, figures and the ratio where it has
// one, FAIL where its output disagreed with ours; the CSV rows stay as wide as the header.
func TestBaselineColumns(t *testing.T) {
	r := &Report{Kind: "kernels", Ceilings: Ceilings{Baseline: "cuBLAS not available: libcublas.so.13 / .12 not found"}}
	r.Results = []Result{
		{Model: "kernels:x", Kernel: "linear", Shape: "a bf16 m=1", Check: "PASS", Stats: Stats{Median: 10}},
		{Model: "kernels:x", Kernel: "linear", Shape: "b bf16 m=1", Check: "PASS", Stats: Stats{Median: 10},
			Baseline: &Baseline{Lib: "cublas", Stats: Stats{Median: 5}, GBs: 100, TFLOPs: 1, Ratio: 2, Check: "PASS"}},
		{Model: "kernels:x", Kernel: "linear", Shape: "c bf16 m=1", Check: "PASS", Stats: Stats{Median: 10},
			Baseline: &Baseline{Lib: "cublas", Check: "FAIL", Detail: "rel err 1.4 > 0.01"}},
		{Model: "kernels:x", Kernel: "linear", Shape: "d bf16 m=1", Check: "PASS", Stats: Stats{Median: 10},
			Baseline: &Baseline{Lib: "cublas", Error: "cuBLAS not available: x"}},
		{Model: "kernels:x", Kernel: "rmsnorm", Shape: "e", Check: "PASS", Stats: Stats{Median: 1}},
	}
	var b bytes.Buffer
	r.WriteMarkdown(&b)
	lines := strings.Split(b.String(), "\n")
	cells := func(shape string) []string {
		for _, l := range lines {
			if strings.Contains(l, shape) {
				f := strings.Split(l, "|")
				for i := range f {
					f[i] = strings.TrimSpace(f[i])
				}
				return f[len(f)-5 : len(f)-1]
			}
		}
		t.Fatalf("no row %q in\n%s", shape, b.String())
		return nil
	}
	if !strings.Contains(lines[0], "cuBLAS us (fp8 rows: cuBLASLt fp8)") || !strings.Contains(lines[0], "ours/cuBLAS") {
		t.Errorf("header %q", lines[0])
	}
	if c := cells("a bf16"); c[0] != "-" {
		t.Errorf("no baseline: %q", c)
	}
	if c := cells("b bf16"); c[0] != "5.0" || c[1] != "100.0" || c[2] != "1.000" || c[3] != "2.00x" {
		t.Errorf("baseline: %q", c)
	}
	if c := cells("c bf16"); !strings.HasPrefix(c[0], "FAIL") {
		t.Errorf("failed baseline: %q", c)
	}
	if c := cells("d bf16"); c[0] != "-" {
		t.Errorf("baseline error: %q", c)
	}
	if c := cells("| e "); c[0] != "" {
		t.Errorf("rmsnorm: %q", c)
	}
	var s bytes.Buffer
	r.WriteSummary(&s)
	if !strings.Contains(s.String(), "baseline: cuBLAS not available") {
		t.Errorf("summary: %s", s.String())
	}
	r.Ceilings = Ceilings{CopyGBs: 1, Baseline: "cuBLAS 13.0.0 (x); cuBLASLt 13.0.0 (y)", CublasGEMMTFLOPs: 600,
		CublasLtFP8TFLOPs: 1200}
	s.Reset()
	r.WriteSummary(&s)
	if !strings.Contains(s.String(), "; cuBLAS gemm 600.000 TFLOP/s") ||
		!strings.Contains(s.String(), "; cuBLASLt fp8 gemm 1200.000 TFLOP/s on the ceiling's shape (e4m3 in, bf16 out)") {
		t.Errorf("summary with both ceilings: %s", s.String())
	}
	var c bytes.Buffer
	if err := r.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(strings.TrimSpace(c.String()), "\n") {
		if n := strings.Count(l, ",") + 1; n != len(CSVHeader) && !strings.Contains(l, "\"") {
			t.Errorf("csv line %d: %d fields, header %d", i, n, len(CSVHeader))
		}
		if i > 0 && !strings.HasSuffix(l, ",600,1200") {
			t.Errorf("csv line %d does not end with the two library ceilings: %s", i, l)
		}
	}
}

// TestLtFP8NoHandle: an fp8 case without a cuBLASLt handle says why (the error of opening it) and
// falls back to nothing; nil plans and handles close quietly.
func TestLtFP8NoHandle(t *testing.T) {
	var nb *cublasBaseline
	lin := &backend.LinearArgs{W: backend.Weight{DType: backend.F8E4M3}, XDType: backend.BF16}
	bl := nb.linearBaseline(nil, nil, kcase{}, []*kcall{{lin: lin}}, KernelOptions{}, 1)
	if bl.Lib != "cublaslt" || bl.Variant != ltFP8Variant || !strings.HasPrefix(bl.Error, "cuBLASLt not available: ") ||
		bl.Median != 0 {
		t.Errorf("fp8 baseline without cuBLASLt: %+v", bl)
	}
	if err := (&cublasBaseline{ltErr: errors.New("x")}).ltErrOr(); err.Error() != "x" {
		t.Errorf("ltErrOr: %v", err)
	}
	var p *LtPlan
	var h *CublasLt
	if p.Close() != nil || h.Close() != nil {
		t.Error("closing nil plans and handles")
	}
}

// TestCublasLtCandidates: $DEEPGO_CUBLASLT first, then libcublasLt beside every cuBLAS candidate,
// $DEEPGO_CUBLAS's folder included; a $DEEPGO_CUBLAS that is not named libcublas.* adds nothing.
func TestCublasLtCandidates(t *testing.T) {
	t.Setenv("DEEPGO_CUBLASLT", "/opt/lt/libcublasLt.so.99")
	t.Setenv("DEEPGO_CUBLAS", "/opt/cb/libcublas.so.12")
	t.Setenv("CUDA_HOME", "")
	got := cublasLtCandidates()
	if len(got) < 4 || got[0] != "/opt/lt/libcublasLt.so.99" || got[1] != "/opt/cb/libcublasLt.so.12" ||
		got[2] != "libcublasLt.so.13" || got[3] != "libcublasLt.so.12" {
		t.Fatalf("candidates %q", got)
	}
	if !slices.Contains(got, "/usr/local/cuda/lib64/libcublasLt.so.13") {
		t.Errorf("no toolkit folder in %q", got)
	}
	for _, p := range got {
		if !strings.HasPrefix(filepath.Base(p), "libcublasLt.so.") {
			t.Errorf("candidate %q", p)
		}
	}
	t.Setenv("DEEPGO_CUBLAS", "/opt/cb/mycublas.so")
	if got := cublasLtCandidates(); got[1] != "libcublasLt.so.13" {
		t.Errorf("odd DEEPGO_CUBLAS: %q", got[:2])
	}
}

// TestLtHeuristicResultLayout: the Go mirror of cublasLtMatmulHeuristicResult_t has the C layout
// (cublasLt.h: algo uint64_t[8], size_t workspaceSize, cublasStatus_t state, float wavesCount,
// int reserved[4]): cuBLASLt writes ltAlgoRequest of them back to back.
func TestLtHeuristicResultLayout(t *testing.T) {
	var r ltHeuristicResult
	if unsafe.Sizeof(r) != 96 || unsafe.Offsetof(r.WorkspaceSize) != 64 || unsafe.Offsetof(r.State) != 72 ||
		unsafe.Offsetof(r.WavesCount) != 76 || unsafe.Offsetof(r.Reserved) != 80 {
		t.Fatalf("size %d, offsets %d %d %d %d", unsafe.Sizeof(r), unsafe.Offsetof(r.WorkspaceSize),
			unsafe.Offsetof(r.State), unsafe.Offsetof(r.WavesCount), unsafe.Offsetof(r.Reserved))
	}
}

// TestLtStatusNames: a status is reported by name (without the library: from cublas_api.h's
// table) with its number.
func TestLtStatusNames(t *testing.T) {
	var l *cublasLtLib
	if s := l.ltStatus(15); s != "CUBLAS_STATUS_NOT_SUPPORTED (15)" {
		t.Errorf("15: %q", s)
	}
	if s := l.ltStatus(99); s != "unknown cublasStatus_t (99)" {
		t.Errorf("99: %q", s)
	}
	l = &cublasLtLib{statusString: func(int32) string { return "the value is invalid" }}
	if err := l.check("cublasLtMatmul", 7); err == nil || err.Error() != "cublasLtMatmul: CUBLAS_STATUS_INVALID_VALUE (7): the value is invalid" {
		t.Errorf("check: %v", err)
	}
	if l.check("x", 0) != nil {
		t.Error("success is an error")
	}
}

// TestLtFP8Mapping runs the exact column-major problem the fp8 plan gives cuBLASLt (ops, sizes,
// stored shapes, leading dimensions) through cublasLtMatmul's definition on the host, against our
// linear y[M,N] = x[M,K] . W[N,K]^T with padded rows; then cuBLASLt's fp8 rules are refused up front.
func TestLtFP8Mapping(t *testing.T) {
	const M, N, K = 3, 16, 32
	const ldx, ldw, ldy = K + 16, K + 32, N + 8
	x, w := mappingInputs(M*ldx, N*ldw)
	g := LtFP8Args{M: M, N: N, K: K, LDX: ldx, LDW: ldw, LDY: ldy, YDType: backend.BF16}
	s, err := g.shape()
	if err != nil {
		t.Fatal(err)
	}
	if s.ta != cublasOpT || s.tb != cublasOpN || s.aRows != s.k || s.aCols != s.m || s.bRows != s.k || s.bCols != s.n ||
		s.dRows != s.m || s.dCols != s.n || s.lda < s.aRows || s.ldb < s.bRows || s.ldd < s.dRows || s.dType != cudaR16BF {
		t.Fatalf("stored shapes do not match the ops: %+v", s)
	}
	y := make([]float32, M*ldy)
	colMajorGemm(s.ta, s.tb, int32(s.m), int32(s.n), int32(s.k), w, int32(s.lda), x, int32(s.ldb), y, int32(s.ldd))
	checkLinear(t, x, w, y, M, N, K, ldx, ldw, ldy)
	f32 := g
	f32.YDType, f32.LDY = backend.F32, N+4
	if s, err := f32.shape(); err != nil || s.dType != cudaR32F {
		t.Errorf("f32 y: %+v %v", s, err)
	}
	bad := map[string]func(g *LtFP8Args){
		"K not a multiple of 16": func(g *LtFP8Args) { g.K, g.LDX, g.LDW = 40, 48, 48 },
		"N not a multiple of 16": func(g *LtFP8Args) { g.N = 24 },
		"ldw not 16-byte":        func(g *LtFP8Args) { g.LDW = K + 8 },
		"ldx not 16-byte":        func(g *LtFP8Args) { g.LDX = K + 1 },
		"bf16 y rows of 40 B":    func(g *LtFP8Args) { g.LDY = N + 4 },
		"ldx below K":            func(g *LtFP8Args) { g.LDX = K - 16 },
		"M zero":                 func(g *LtFP8Args) { g.M = 0 },
		"f16 y":                  func(g *LtFP8Args) { g.YDType = backend.F16 },
		"x misaligned":           func(g *LtFP8Args) { g.X = 0x1008 },
		"scale misaligned":       func(g *LtFP8Args) { g.XScale = 0x1004 },
	}
	for name, mod := range bad {
		b := g
		mod(&b)
		if _, err := b.shape(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestQuantizeE4M3Values: one bf16 value to e4m3 (scale 1 unless said): exact codes, ties to even
// (normal and subnormal), saturation at ±448 like DeepSeek's act_quant clamp (480, 2^20 and Inf
// included: never a NaN out of a number), the sign of zero kept, the scale divided out.
func TestQuantizeE4M3Values(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		v, s float32
		want uint8
	}{
		{0, 1, 0x00}, {float32(math.Copysign(0, -1)), 1, 0x80}, {1, 1, 0x38}, {448, 1, 0x7e}, {-448, 1, 0xfe},
		{0x1p-9, 1, 0x01}, {-0x1p-9, 1, 0x81}, {0x1p-6, 1, 0x08}, // smallest subnormal, smallest normal
		{0x1p-10, 1, 0x00}, {3 * 0x1p-10, 1, 0x02}, // subnormal ties: to 0 and to 2 (even)
		{1.0625, 1, 0x38}, {1.1875, 1, 0x3a}, {-1.0625, 1, 0xb8}, // normal ties: 1.0 and 1.25 (even)
		{480, 1, 0x7e}, {0x1p20, 1, 0x7e}, {-0x1p20, 1, 0xfe}, {inf, 1, 0x7e}, {-inf, 1, 0xfe}, // saturate
		{1, 0.5, 0x40}, {448, 4, 0x6e}, // 2 = 1.0 x 2^1, 112 = 1.75 x 2^6
	} {
		b := weights.F32ToBF16(c.v)
		if weights.BF16ToF32(b) != c.v {
			t.Fatalf("%v is not a bf16 value: the case is wrong", c.v)
		}
		if got := e4m3FromBF16(b, c.s); got != c.want {
			t.Errorf("e4m3(%v / %v) = %#02x, want %#02x", c.v, c.s, got, c.want)
		}
	}
}

// TestQuantizeE4M3RoundTrip: every one of the 254 finite e4m3 codes, widened by the repository's
// decoder (exact in bf16), quantizes back to itself; as one tensor its amax is 448, so the
// per-tensor scale is 1 and the tensor comes back code for code.
func TestQuantizeE4M3RoundTrip(t *testing.T) {
	var src []byte
	var codes []uint8
	for c := 0; c < 256; c++ {
		if c == 0x7f || c == 0xff {
			continue // NaN
		}
		v := weights.E4M3ToF32(uint8(c))
		b := weights.F32ToBF16(v)
		if weights.BF16ToF32(b) != v {
			t.Fatalf("code %#02x: %v is not exact in bf16", c, v)
		}
		if got := e4m3FromBF16(b, 1); got != uint8(c) {
			t.Errorf("code %#02x (%v) -> %#02x", c, v, got)
		}
		src = binary.LittleEndian.AppendUint16(src, b)
		codes = append(codes, uint8(c))
	}
	if len(codes) != 254 {
		t.Fatalf("%d finite codes", len(codes))
	}
	q, s, err := quantizeE4M3(src, 2, 127, 127)
	if err != nil || s != 1 || !bytes.Equal(q, codes) {
		t.Fatalf("tensor of all codes: scale %v, err %v, equal %v", s, err, bytes.Equal(q, codes))
	}
}

// TestQuantizeE4M3Tensor: one scale amax/448 for the whole tensor, padding between rows skipped
// (NaN there is not read), the largest element at 448, q*s close to x; all zeros: scale 1; a NaN
// inside, or a short buffer, is an error.
func TestQuantizeE4M3Tensor(t *testing.T) {
	bf := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint16(b, weights.F32ToBF16(v))
		}
		return b
	}
	nan := float32(math.NaN())
	x := []float32{1, -2, 0.5, nan, 4, 0, -3, nan, 0.1, 3.5, -4, nan}
	q, s, err := quantizeE4M3(bf(x...), 3, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if s != float32(4)/448 || len(q) != 9 {
		t.Fatalf("scale %v (want 4/448), %d codes", s, len(q))
	}
	if q[3] != 0x7e || q[8] != 0xfe || q[4] != 0 {
		t.Errorf("amax codes %#02x %#02x, zero %#02x", q[3], q[8], q[4])
	}
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			want := float64(weights.BF16ToF32(weights.F32ToBF16(x[i*4+j])))
			got := float64(weights.E4M3ToF32(q[i*3+j])) * float64(s)
			if math.Abs(got-want) > math.Abs(want)/16+1e-6 {
				t.Errorf("x[%d,%d] = %v, q*s = %v", i, j, want, got)
			}
		}
	}
	if q, s, err := quantizeE4M3(bf(0, 0, 0, 0), 2, 2, 2); err != nil || s != 1 || !bytes.Equal(q, []byte{0, 0, 0, 0}) {
		t.Errorf("zeros: %v %v %v", q, s, err)
	}
	if _, _, err := quantizeE4M3(bf(1, nan), 1, 2, 2); err == nil {
		t.Error("NaN accepted")
	}
	if _, _, err := quantizeE4M3(bf(1, 2, 3), 2, 2, 2); err == nil {
		t.Error("short buffer accepted")
	}
}

// TestSpread: the sampled rows and columns of the fp8 check start at 0, end at the last index,
// rise, and stay within the count asked.
func TestSpread(t *testing.T) {
	for _, c := range []struct {
		count int64
		n     int
	}{{1, 8}, {3, 8}, {8, 8}, {20, 8}, {512, 8}, {7168, 65}, {129280, 65}} {
		s := spread(c.count, c.n)
		if len(s) == 0 || len(s) > c.n || s[0] != 0 || s[len(s)-1] != c.count-1 || len(s) < min(int(c.count), c.n) {
			t.Errorf("spread(%d, %d) = %v", c.count, c.n, s)
		}
		for i := 1; i < len(s); i++ {
			if s[i] <= s[i-1] {
				t.Errorf("spread(%d, %d) = %v", c.count, c.n, s)
			}
		}
	}
}

// TestLtFP8Check runs the fp8 baseline's host side on the CPU backend: x quantized and uploaded with
// its scale, a bf16 y; then the check passes a y that is the exact product rounded to bf16, and
// fails one that lost the scale, one with an element left unwritten, and one with two columns
// swapped.
func TestLtFP8Check(t *testing.T) {
	be, err := cpubackend.New(1)
	if err != nil {
		t.Skipf("cpu backend: %v", err)
	}
	defer be.Close()
	a := newArena(be, "lt-check")
	defer a.free()
	const M, N, K = 5, 48, 64
	xb := make([]byte, M*(K+16)*2)
	genBF16(1, 1)(xb, 0)
	wb := make([]byte, N*K)
	genE4M3(2)(wb, 0)
	lin := &backend.LinearArgs{X: a.put(xb), W: backend.Weight{Data: a.put(wb), Rows: N, Cols: K, LD: K,
		DType: backend.F8E4M3}, M: M, LDX: K + 16, LDY: N, XDType: backend.BF16, YDType: backend.F32}
	in, err := ltInputs(be, a, lin)
	if err != nil {
		t.Fatal(err)
	}
	g := in.g
	if g.M != M || g.N != N || g.K != K || g.LDX != K || g.LDW != K || g.LDY != N || g.YDType != backend.BF16 ||
		g.W != lin.W.Data {
		t.Fatalf("args %+v", g)
	}
	if q, err := download(be, g.X, M*K); err != nil || !bytes.Equal(q, in.q) {
		t.Fatalf("uploaded x differs (%v)", err)
	}
	if sb, err := download(be, g.XScale, 4); err != nil || toF32(sb, backend.F32)[0] != in.sx || in.sx <= 0 {
		t.Fatalf("uploaded scale %v, want %v (%v)", sb, in.sx, err)
	}
	exact := make([]float32, M*N)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var s float64
			for k := 0; k < K; k++ {
				s += float64(weights.E4M3ToF32(in.q[i*K+k])) * float64(weights.E4M3ToF32(wb[j*K+k]))
			}
			exact[i*N+j] = float32(s * float64(in.sx))
		}
	}
	try := func(name string, y []float32, want string) {
		t.Helper()
		b := make([]byte, 2*len(y))
		for i, v := range y {
			binary.LittleEndian.PutUint16(b[2*i:], weights.F32ToBF16(v))
		}
		if err := be.Upload(g.Y, b); err != nil {
			t.Fatal(err)
		}
		chk, detail, err := checkLtFP8(be, in)
		if err != nil || chk != want {
			t.Errorf("%s: %s (%s), %v; want %s", name, chk, detail, err, want)
		}
		t.Logf("%s: %s %s", name, chk, detail)
	}
	try("exact", exact, "PASS")
	lost := slices.Clone(exact)
	for i := range lost {
		lost[i] /= in.sx
	}
	try("scale lost", lost, "FAIL")
	hole := slices.Clone(exact)
	hole[M*N-1] = float32(math.NaN())
	try("unwritten", hole, "FAIL")
	swapped := slices.Clone(exact)
	for i := 0; i < M; i++ {
		swapped[i*N], swapped[i*N+N-1] = swapped[i*N+N-1], swapped[i*N]
	}
	try("columns swapped", swapped, "FAIL")
}

// ltStub builds testdata/cublaslt_stub.c (cuBLASLt's fp8 API computing on the host) and binds it
// like the real library; it skips where there is no C compiler.
func ltStub(t *testing.T) (*CublasLt, uintptr) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the stub is built for Linux")
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc for the cuBLASLt stub")
	}
	so := filepath.Join(t.TempDir(), "libcublasLt.so.13")
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-O1", "-o", so, "testdata/cublaslt_stub.c", "-lm").CombinedOutput(); err != nil {
		t.Fatalf("building the stub: %v\n%s", err, out)
	}
	h, err := purego.Dlopen(so, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	l, err := bindCublasLt(h, so, &cuDriver{})
	if err != nil {
		t.Fatal(err)
	}
	lt := &CublasLt{l: l, stream: 0xabc0, Stream: true, Version: int(l.version())}
	if err := l.check("cublasLtCreate", l.create(&lt.h)); err != nil {
		t.Fatal(err)
	}
	return lt, h
}

// TestLtFP8Stub runs the whole fp8 baseline (quantize, plan, heuristic, matmul, check, timing,
// cleanup) and the fp8 ceiling through purego against a C stub with cublasLt.h's prototypes on the
// CPU backend: a Go signature of the wrong width or order, a heuristic result of the wrong size or
// an attribute of the wrong size fails here rather than on the GPU.
func TestLtFP8Stub(t *testing.T) {
	lt, h := ltStub(t)
	var live, matmuls func() int32
	var lastStream func() uintptr
	purego.RegisterLibFunc(&live, h, "stub_live")
	purego.RegisterLibFunc(&matmuls, h, "stub_matmuls")
	purego.RegisterLibFunc(&lastStream, h, "stub_last_stream")
	if d := lt.Describe(); !strings.HasPrefix(d, "cuBLASLt 13.0.2 (") {
		t.Errorf("describe %q", d)
	}
	be, err := cpubackend.New(1)
	if err != nil {
		t.Skipf("cpu backend: %v", err)
	}
	defer be.Close()
	run := func(M, N, K int64) *Baseline {
		a := newArena(be, fmt.Sprintf("lt-stub %d %d %d", M, N, K))
		defer a.free()
		calls := make([]*kcall, 2)
		for s := range calls {
			a.startSet(s)
			w := a.randWeight("", N, K, backend.F8E4M3)
			x := a.rand(backend.BF16, M*K, 1)
			calls[s] = &kcall{lin: &backend.LinearArgs{X: x, W: w, M: M, LDX: K, LDY: N, XDType: backend.BF16,
				YDType: backend.F32}}
		}
		if a.err != nil {
			t.Fatal(a.err)
		}
		kc := kcase{flops: 2 * float64(M*N*K)}
		b := &cublasBaseline{lt: lt}
		return b.linearBaseline(be, a, kc, calls, KernelOptions{Reps: 2, Quick: true}, 10)
	}
	before := matmuls()
	bl := run(5, 48, 64)
	if bl.Error != "" || bl.Check != "PASS" || bl.Lib != "cublaslt" || bl.Median <= 0 || bl.Ratio <= 0 || bl.TFLOPs <= 0 {
		t.Fatalf("baseline %+v", bl)
	}
	if bl.Bytes != 48*64+5*64+5*48*2 {
		t.Errorf("bytes %v", bl.Bytes)
	}
	if matmuls()-before < 4 || lastStream() != 0xabc0 || live() != 0 {
		t.Errorf("%d matmuls, stream %#x, %d descriptors alive", matmuls()-before, lastStream(), live())
	}
	t.Logf("%s; %s", bl.Detail, bl.Variant)
	if bl := run(1, 48, 64); bl.Error != "" || bl.Check != "PASS" { // decode: m = 1
		t.Errorf("m=1: %+v", bl)
	}
	if bl := run(7, 48, 64); !strings.Contains(bl.Error, "CUBLAS_STATUS_NOT_SUPPORTED (15): the stub says no") ||
		bl.Median != 0 || live() != 0 {
		t.Errorf("heuristic refusal: %+v (%d alive)", bl, live())
	}
	if bl := run(4, 40, 64); !strings.Contains(bl.Error, "multiples of 16") {
		t.Errorf("N = 40: %+v", bl)
	}
	rate, err := cublasLtFP8Ceiling(be, lt, CeilingOptions{M: 16, N: 32, K: 64, Reps: 2})
	if err != nil || rate <= 0 || live() != 0 {
		t.Errorf("ceiling %v, %v, %d alive", rate, err, live())
	}
	if err := lt.Close(); err != nil || lt.h != 0 {
		t.Errorf("close: %v", err)
	}
}
