package kernels

import (
	"fmt"
	"testing"

	"github.com/deepgo/deepgo/go/backend"
)

// BenchmarkLinear times dg_linear on DeepSeek-V3 shapes, on the GPU (impl=cuda) and, for the small
// cases, on the CPU (impl=cpu). GB/s counts the weight bytes read once per call (the roofline of
// the decode GEMV); TFLOP/s counts 2*m*rows*cols.
//
//	build/gpu/kernels.test -test.run - -test.bench 'Linear/impl=cuda' -test.benchtime 200x
//	benchstat -col /impl old.txt new.txt
func BenchmarkLinear(b *testing.B) {
	e := setup(b)
	type shape struct {
		name       string
		rows, cols int64
	}
	shapes := []shape{
		{"q_b", 24576, 1536},
		{"kv_a", 576, 7168},
		{"o_proj", 7168, 16384},
		{"dense_up", 18432, 7168},
		{"lm_head", 129280, 7168},
		// peer-7b's decode GEMVs: q_a + kv_a stacked, o_proj, shared gate + up stacked, shared down
		{"p7_qkv_a", 2112, 2048},
		{"p7_o_proj", 2048, 2048},
		{"p7_sh_gate_up", 5632, 2048},
		{"p7_sh_down", 2048, 2816},
	}
	for _, impl := range []side{onGPU, onCPU} {
		for _, sh := range shapes {
			for _, wd := range []backend.DType{backend.BF16, backend.F8E4M3} {
				if sh.name == "lm_head" && wd == backend.F8E4M3 {
					continue
				}
				for _, m := range []int64{1, 8, 64, 512} {
					if impl == onCPU && (m > 8 || sh.rows*sh.cols > 30_000_000) {
						continue
					}
					implName := "cuda"
					if impl == onCPU {
						implName = "cpu"
					}
					b.Run(fmt.Sprintf("impl=%s/w=%s/shape=%s/m=%d", implName, wd, sh.name, m), func(b *testing.B) {
						benchLinear(b, e, impl, sh.rows, sh.cols, m, wd)
					})
				}
			}
		}
	}
}

func benchLinear(b *testing.B, e *env, s side, rows, cols, m int64, wd backend.DType) {
	be := e.be(s)
	wbytes := rows * cols * wd.Size()
	w, err := be.Alloc(wbytes)
	if err != nil {
		b.Skip(err)
	}
	defer be.Free(w)
	_ = be.Memset(w, 0x3c, wbytes) // finite values in every dtype
	var scale uintptr
	if wd == backend.F8E4M3 {
		n := ((rows + 127) / 128) * ((cols + 127) / 128) * 4
		if scale, err = be.Alloc(n); err != nil {
			b.Skip(err)
		}
		defer be.Free(scale)
		_ = be.Memset(scale, 0x3c, n)
	}
	x, _ := be.Alloc(m * cols * 2)
	y, _ := be.Alloc(m * rows * 2)
	defer be.Free(x)
	defer be.Free(y)
	_ = be.Memset(x, 0x3c, m*cols*2)
	a := backend.LinearArgs{X: x, Y: y, M: m, LDX: cols, LDY: rows, XDType: backend.BF16, YDType: backend.BF16,
		W: backend.Weight{Data: w, Scale: scale, Rows: rows, Cols: cols, LD: cols, DType: wd}}
	if wd == backend.F8E4M3 {
		a.W.BlockRows, a.W.BlockCols = 128, 128
	}
	if !be.LinearSupported(&a) {
		b.Skip("unsupported")
	}
	sec := timeCalls(b, be, func() error { return be.Linear(&a) })
	b.ReportMetric(float64(wbytes)/sec/1e9, "GB/s")
	b.ReportMetric(2*float64(m*rows*cols)/sec/1e12, "TFLOP/s")
}

// BenchmarkMLAPrefill times dg_mla_prefill on the GPU for one causal prompt of T tokens at the
// DeepSeek-V3 head shape (192/128; 16 heads as peer-7b, 128 as V3) in BF16. TFLOP/s counts
// heads * T(T+1)/2 * 2*(qk + v). DEEPGO_MLA_PREFILL=scalar times the scalar kernel instead.
//
//	build/gpu/kernels.test -test.run - -test.bench MLAPrefill -test.benchtime 100x
func BenchmarkMLAPrefill(b *testing.B) {
	e := setup(b)
	for _, c := range [][2]int64{{16, 512}, {16, 4096}, {128, 512}} { // the scalar kernel needs ~0.3 s for 16 x 4096
		b.Run(fmt.Sprintf("heads=%d/tokens=%d", c[0], c[1]), func(b *testing.B) {
			benchMLAPrefill(b, e.gpu, c[0], c[1])
		})
	}
}

func benchMLAPrefill(b *testing.B, be backend.Backend, heads, T int64) {
	const nope, rope, vd = 128, 64, 128
	qk := int64(nope + rope)
	bufs := []int64{T * heads * qk * 2, T * heads * (nope + vd) * 2, T * rope * 2, T * heads * vd * 2, 8}
	ptrs := make([]uintptr, len(bufs))
	for i, n := range bufs {
		p, err := be.Alloc(n)
		if err != nil {
			b.Skip(err)
		}
		defer be.Free(p)
		_ = be.Memset(p, 0x3c, n) // bf16 1.1: finite scores
		ptrs[i] = p
	}
	if err := be.Upload(ptrs[4], i32bytes([]int32{0, int32(T)})); err != nil {
		b.Fatal(err)
	}
	a := backend.MLAPrefillArgs{Q: ptrs[0], KV: ptrs[1], KPE: ptrs[2], Out: ptrs[3], CuQ: ptrs[4], CuK: ptrs[4],
		NSeqs: 1, NHeads: heads, MaxQ: T, MaxK: T, LDQTok: heads * qk, LDQHead: qk, LDKVTok: heads * (nope + vd),
		LDKVHead: nope + vd, LDKPE: rope, LDOutTok: heads * vd, LDOutHead: vd, Scale: 0.0721,
		Nope: nope, Rope: rope, V: vd, DType: backend.BF16}
	sec := timeCalls(b, be, func() error { return be.MLAPrefill(&a) })
	b.ReportMetric(float64(heads*T*(T+1)/2*2*(qk+vd))/sec/1e12, "TFLOP/s")
	b.ReportMetric(sec*1e6, "us/call")
}

// timeCalls runs call once untimed, then b.N times between device syncs, and returns the
// seconds per call.
func timeCalls(b *testing.B, be backend.Backend, call func() error) float64 {
	if err := call(); err != nil {
		b.Fatal(err)
	}
	_ = be.Sync()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	return b.Elapsed().Seconds() / float64(b.N)
}
