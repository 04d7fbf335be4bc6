package kernels

// Tests of W8A8 decode on the e4m3 tensor cores (cuda/gemv_w8a8.cu, cuda/moe_gemv_w8a8.cu): for
// 1..8 tokens, dg_linear and dg_moe_ffn in W8A8 mode quantise x per token per 128 channels in
// shared memory and run mma.sync m16n8k32 e4m3 against the weight bytes, each 64-column round's
// sum scaled by both scales. The CUDA side takes these shapes on sm_89+ (elsewhere, and under
// DEEPGO_W8A8_GEMV=emulate, the f32 emulation runs and must pass the same cases); the CPU side
// is the readable definition (x quantised then dequantised, f32 sums).
//
//	build/gpu/kernels.test -test.run 'W8A8Gemv' -test.v
//	DEEPGO_W8A8_GEMV=emulate build/gpu/kernels.test -test.run 'W8A8Gemv' -test.v   # the emulation
//
// Bounds: both sides quantise x (and the MoE's f32 SiLU product) identically, so what differs is
// the summation: tolW8A8 for f32 y, tolBF16 for bf16 y. The SiLU product comes from sums in
// another order, so an element of H within ~1e-6 of an e4m3 rounding boundary can round the other
// way (one step: 6% of that element, ~6e-4 of the output's rms at these widths), rarely, and
// inside tolW8A8. A token's x row or an expert's rows misplaced, a scale from the wrong block, or
// a round counted twice is off by far more.

import (
	"testing"

	"github.com/deepgo/deepgo/go/backend"
)

func TestLinearW8A8Gemv(t *testing.T) {
	e := setup(t)
	type shape struct{ rows, cols int64 }
	// DeepSeek-V3 and peer-7b widths; 200 rows: a partial row tile; 320 and 1408 columns: a
	// partial 128-column block and a partial iteration
	shapes := []shape{{2048, 7168}, {200, 1408}, {576, 2048}, {130, 320}, {24576, 1536}}
	i := 0
	for _, sh := range shapes {
		for _, m := range []int64{1, 2, 3, 5, 8} {
			xd, yd, acc := actTypes[i%2], actTypes[(i/2)%2], int32((i/3)%2)
			ldx, ldw, ldy := sh.cols, sh.cols, sh.rows
			br := int32(128)
			if i%4 == 3 { // strided rows (16-byte x rows, 16 more weight bytes), 64-row scale blocks
				ldx, ldw, ldy, br = sh.cols+8, sh.cols+16, sh.rows+3, 64
			}
			i++
			t.Run(name("rows", sh.rows, "cols", sh.cols, "m", m, "x", xd, "y", yd, "acc", acc, "br", br, "ld", ldw != sh.cols),
				func(t *testing.T) {
					r := rng(t)
					w := e.weight(t, r, backend.F8E4M3, sh.rows, sh.cols, ldw, br, 128)
					e.runLinear(t, r, w, sh.rows, m, ldx, ldy, xd, yd, backend.LinearW8A8, acc, w8a8Tol(yd))
				})
		}
	}
	// x with an all-zero block (scale 0, codes 0), a block of one large outlier (every other
	// value rounds to the smallest codes or to zero) and a token that is zero throughout
	t.Run("blocks", func(t *testing.T) {
		r := rng(t)
		const rows, cols, m = 256, 1024, 4
		x := randn(r, m*cols, 1)
		for c := 128; c < 256; c++ {
			x[c] = 0
		}
		x[cols+300] = 3e4
		for c := 0; c < cols; c++ {
			x[2*cols+c] = 0
		}
		w := e.weight(t, r, backend.F8E4M3, rows, cols, cols, 128, 128)
		e.runLinearX(t, r, x, w, rows, m, cols, rows, backend.F32, backend.F32, backend.LinearW8A8, 0, tolW8A8)
	})
}

func TestMoEFFNW8A8Gemv(t *testing.T) {
	e := setup(t)
	type shape struct {
		experts, topK int32
		hidden, inter int64
	}
	// peer-7b's widths (6 routed + 2 shared as experts), DeepSeek-V3's (8 + 1), and a small one
	// with a partial iteration (inter 320); few experts, to keep the weights small
	shapes := []shape{{12, 8, 2048, 1408}, {10, 9, 7168, 2048}, {8, 3, 256, 320}}
	i := 0
	for _, sh := range shapes {
		for _, n := range []int64{1, 2, 5, 8} {
			xd, yd, acc := actTypes[i%2], actTypes[(i/2)%2], int32((i/3)%2)
			i++
			if sh.hidden > 4096 && n > 2 {
				continue // DeepSeek-V3's widths: two token counts are enough
			}
			t.Run(name("E", sh.experts, "k", sh.topK, "hidden", sh.hidden, "inter", sh.inter, "n", n, "x", xd, "y", yd, "acc", acc),
				func(t *testing.T) {
					r := rng(t)
					var gate, up, down []*dweight
					for k := int32(0); k < sh.experts; k++ {
						gate = append(gate, e.weight(t, r, backend.F8E4M3, sh.inter, sh.hidden, sh.hidden, 128, 128))
						up = append(up, e.weight(t, r, backend.F8E4M3, sh.inter, sh.hidden, sh.hidden, 128, 128))
						down = append(down, e.weight(t, r, backend.F8E4M3, sh.hidden, sh.inter, sh.inter, 128, 128))
					}
					e.runMoEFFN(t, r, gate, up, down, sh.experts, sh.topK, sh.hidden, sh.inter, n, sh.hidden, sh.hidden,
						xd, yd, backend.LinearW8A8, acc, w8a8Tol(yd))
				})
		}
	}
	// experts the tile cannot read (64-column scale blocks) take the per-row dot product
	t.Run("plain", func(t *testing.T) {
		r := rng(t)
		var gate, up, down []*dweight
		for k := 0; k < 4; k++ {
			gate = append(gate, e.weight(t, r, backend.F8E4M3, 96, 256, 256, 32, 64))
			up = append(up, e.weight(t, r, backend.F8E4M3, 96, 256, 256, 32, 64))
			down = append(down, e.weight(t, r, backend.F8E4M3, 256, 96, 96, 32, 64))
		}
		e.runMoEFFN(t, r, gate, up, down, 4, 2, 256, 96, 3, 256, 256, backend.BF16, backend.F32, backend.LinearW8A8, 0, tolW8A8)
	})
}
