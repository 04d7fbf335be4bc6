package kernels

// Tests of the fast fp8 GEMM tiles (cuda/gemm.cuh gemm_tile_fast_fp8, 64x128, and
// gemm_tile_fast_fp8_n64, 64x64): dg_linear with bf16 x and e4m3 weights at m > 32, and the
// grouped MoE GEMM with e4m3 experts (n > 8). The CUDA side takes them where x and W rows are
// 16-byte aligned, cols % 16 == 0 and block_cols % 32 == 0; the other cases here check that the
// generic tiles still take the rest. dg_linear picks the 64x128 tile only when its grid fills
// the GPU (TestLinearFP8Tile's grid128 case); DEEPGO_FP8_TILE=64 or =128 forces one for a run:
//
//	build/gpu/kernels.test -test.run 'FP8' -test.v
//	DEEPGO_FP8_TILE=128 build/gpu/kernels.test -test.run 'LinearFP8' -test.v

import (
	"math"
	"math/rand"
	"testing"

	"github.com/deepgo/deepgo/go/backend"
)

// tolFP8Exact: the fast fp8 tile multiplies exact bf16 copies of the e4m3 codes (every e4m3 value
// is a bf16 value) and applies each block scale to an f32 partial sum, so with f32 y it matches
// the CPU's f32 dequantisation up to f32 summation order (nmse ~1e-12). A block scale folded into
// the bf16 operand (the generic tile's rounding, relative error up to 2^-8 per weight) gives
// nmse ~1e-6 and fails this bound; so does a wrong scale block, a lost K-block or a wrong code.
var tolFP8Exact = tol{1e-3, 1e-7}

type fp8LinearCase struct {
	name          string
	rows, cols    int64
	ldw, ldx, ldy int64
	br, bc        int32
	fast          bool // expected on the fast fp8 tile (else the generic mma tile: tolMMA)
}

func TestLinearFP8Tile(t *testing.T) {
	e := setup(t)
	cases := []fp8LinearCase{
		{"rows300-cols512", 300, 512, 512, 512, 300, 128, 128, true},
		{"cols320-bc128", 256, 320, 320, 320, 256, 128, 128, true},          // last K-block 64 wide
		{"cols336-ktail", 300, 336, 336, 336, 301, 128, 128, true},          // K % 32 == 16: half a k tile zero-filled
		{"strided-br64-bc96", 200, 384, 400, 392, 203, 64, 96, true},        // a scale per row inside a tile; 3-tile K-blocks
		{"br100-bc32", 130, 256, 256, 264, 130, 100, 32, true},              // row blocks across tiles; a K-block per tile
		{"bc48-generic", 300, 384, 384, 384, 300, 128, 48, false},           // block_cols % 32 != 0
		{"ldw-unaligned-generic", 300, 256, 260, 256, 300, 128, 128, false}, // W rows not 16-byte aligned
	}
	for _, c := range cases {
		for _, m := range []int64{33, 64, 200, 512} {
			for _, yd := range actTypes {
				for _, acc := range []int32{0, 1} {
					t.Run(name("case", c.name, "m", m, "y", yd, "acc", acc), func(t *testing.T) {
						testLinearFP8(t, e, c, m, yd, acc)
					})
				}
			}
		}
	}
	// A grid of 16 x 17 = 272 blocks of 64x128 (>= 2 per SM on 132 SMs): the 64x128 tile.
	big := fp8LinearCase{"grid128", 2048, 256, 256, 256, 2048, 128, 128, true}
	for _, acc := range []int32{0, 1} {
		t.Run(name("case", big.name, "m", 1088, "y", backend.F32, "acc", acc), func(t *testing.T) {
			testLinearFP8(t, e, big, 1088, backend.F32, acc)
		})
	}
}

func testLinearFP8(t *testing.T, e *env, c fp8LinearCase, m int64, yd backend.DType, acc int32) {
	r := rng(t)
	w := e.weight(t, r, backend.F8E4M3, c.rows, c.cols, c.ldw, c.br, c.bc)
	runLinearFP8(t, e, r, w, c, m, yd, acc)
}

func runLinearFP8(t *testing.T, e *env, r *rand.Rand, w *dweight, c fp8LinearCase, m int64, yd backend.DType, acc int32) {
	t.Helper()
	tl := tolMMA
	if c.fast {
		tl = tolFP8Exact
		if yd == backend.BF16 {
			tl = tolBF16 // the same f32 value rounded on both sides; a tie may go one bf16 ulp apart
		}
	}
	e.runLinear(t, r, w, c.rows, m, c.ldx, c.ldy, backend.BF16, yd, backend.LinearDefault, acc, tl)
}

// fp8CodeWeight builds an e4m3 weight whose codes cover every exponent field (0: zero and the
// subnormals, 15 without the NaN mantissa), every mantissa and both signs; class(r, k) is the
// exponent field of element (r, k) and must be constant over each br x bc scale block. Each
// block's scale is 2^(7-E) times a random factor, so every class weighs about as much in the
// outputs and a conversion mistake in any one (subnormals flushed, say) fails the comparison.
func (e *env) fp8CodeWeight(t testing.TB, r *rand.Rand, rows, cols, ld int64, br, bc int32,
	class func(r, k int64) int) *dweight {
	t.Helper()
	codes := make([]byte, rows*ld)
	for i := int64(0); i < rows; i++ {
		for k := int64(0); k < ld; k++ {
			ex := r.Intn(15)
			if k < cols {
				ex = class(i, k)
			}
			mant := r.Intn(8)
			if ex == 15 {
				mant = r.Intn(7) // 0x7f / 0xff are NaN
			}
			codes[i*ld+k] = byte(r.Intn(2)<<7 | ex<<3 | mant)
		}
	}
	nbr, nbc := (rows+int64(br)-1)/int64(br), (cols+int64(bc)-1)/int64(bc)
	sc := make([]float32, nbr*nbc)
	norm := 1 / math.Sqrt(float64(cols))
	for b := range sc {
		rb, kb := int64(b)/nbc, int64(b)%nbc
		ex := class(rb*int64(br), kb*int64(bc))
		sc[b] = float32(math.Ldexp(norm*(0.5+r.Float64()), 7-ex))
	}
	dw := &dweight{w: backend.Weight{Rows: rows, Cols: cols, LD: ld, DType: backend.F8E4M3, BlockRows: br,
		BlockCols: bc}}
	dw.scale = e.upload(t, f32bytes(sc))
	dw.data = e.upload(t, codes)
	return dw
}

// TestLinearFP8AllCodes: every e4m3 code through the fast tile's e4m3 -> bf16 conversion, both
// scale paths (one scale row per tile: br 128; a scale per output row: br 16).
func TestLinearFP8AllCodes(t *testing.T) {
	e := setup(t)
	type cs struct {
		name   string
		br, bc int32
		class  func(r, k int64) int
	}
	cases := []cs{
		{"exponent-by-row", 16, 128, func(r, k int64) int { return int(r/16) % 16 }},
		{"exponent-by-kblock", 128, 32, func(r, k int64) int { return int(k/32) % 16 }},
	}
	for _, c := range cases {
		for _, m := range []int64{64, 200} {
			t.Run(name("case", c.name, "m", m), func(t *testing.T) {
				r := rng(t)
				lc := fp8LinearCase{c.name, 256, 512, 512, 512, 256, c.br, c.bc, true}
				w := e.fp8CodeWeight(t, r, lc.rows, lc.cols, lc.ldw, c.br, c.bc, c.class)
				runLinearFP8(t, e, r, w, lc, m, backend.F32, 0)
			})
		}
	}
}

type moeFP8Case struct {
	name             string
	experts, topK    int32
	hidden, inter, n int64
	ldxPad           int64 // ld_x = hidden + ldxPad (0 or 8: aligned, the fast tiles for gate/up)
	br, bc           int32
	oddLdPad         int64 // odd experts' weights get ld = cols + oddLdPad (4: unaligned, generic tile)
}

// TestMoEFFNFP8Grouped: e4m3 experts on the grouped GEMM path (n > 8) with bf16 x whose rows are
// 16-byte aligned, so gate, up and down run gemm_tile_fast_fp8_n64 (down always: its A is the
// workspace's bf16 SiLU product).
func TestMoEFFNFP8Grouped(t *testing.T) {
	e := setup(t)
	cases := []moeFP8Case{
		{"inter320", 8, 4, 512, 320, 33, 0, 128, 128, 0},       // gate/up rows past 256 in half a tile; down K 320
		{"inter320-n200", 8, 6, 512, 320, 200, 8, 128, 128, 0}, // several tiles per expert, strided x
		{"blocks64x96", 8, 4, 384, 256, 129, 0, 64, 96, 0},     // a scale per row inside a tile; 3-tile K-blocks
		{"mixed-align", 8, 4, 512, 256, 64, 0, 128, 128, 4},    // odd experts unaligned: per-tile fallback
	}
	for _, c := range cases {
		for _, yd := range actTypes {
			for _, acc := range []int32{0, 1} {
				t.Run(name("case", c.name, "y", yd, "acc", acc), func(t *testing.T) {
					testMoEFFNFP8(t, e, c, yd, acc)
				})
			}
		}
	}
}

func testMoEFFNFP8(t *testing.T, e *env, c moeFP8Case, yd backend.DType, acc int32) {
	r := rng(t)
	var gate, up, down []*dweight
	for i := int32(0); i < c.experts; i++ {
		pad := int64(0)
		if i%2 == 1 {
			pad = c.oddLdPad
		}
		gate = append(gate, e.weight(t, r, backend.F8E4M3, c.inter, c.hidden, c.hidden+pad, c.br, c.bc))
		up = append(up, e.weight(t, r, backend.F8E4M3, c.inter, c.hidden, c.hidden+pad, c.br, c.bc))
		down = append(down, e.weight(t, r, backend.F8E4M3, c.hidden, c.inter, c.inter+pad, c.br, c.bc))
	}
	// as TestMoEFFN: bf16 x (and the SiLU product handed to down as bf16 on the GPU)
	e.runMoEFFN(t, r, gate, up, down, c.experts, c.topK, c.hidden, c.inter, c.n, c.hidden+c.ldxPad, c.hidden+2,
		backend.BF16, yd, backend.LinearDefault, acc, tolMMA)
}
