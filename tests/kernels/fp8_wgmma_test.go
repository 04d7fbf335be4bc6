package kernels

// Tests of dg_linear's W8A8 mode on Hopper's fp8 tensor cores (cuda/gemm_fp8_wgmma.cu): e4m3 x
// (quantised per token per 128 channels into the workspace) times e4m3 W with 128x128 block
// scales, wgmma m64n128k32 with each 128-wide k block promoted to f32. The CUDA side takes it on
// a compute capability 9.0 device for m > 32, 128x128 blocks, cols % 128 == 0 and 16-byte W rows;
// elsewhere (and for every call under DEEPGO_W8A8_GEMM=emulate) the f32 emulation runs, which
// these cases then check the same way. TestLinearW8A8Fallback holds shapes that must take the
// emulation wherever they run.
//
//	build/gpu/kernels.test -test.run 'W8A8' -test.v
//	DEEPGO_W8A8_GEMM=emulate build/gpu/kernels.test -test.run 'W8A8' -test.v   # the old path, A/B

import (
	"math"
	"testing"

	"github.com/deepgo/deepgo/go/backend"
)

// tolW8A8: both sides quantise x identically (same amax, same s = amax/448, same e4m3 rounding),
// so what differs is the summation. The CPU adds (q_x s_x)(q_w s_w) in f32; the tensor cores add
// each k block's 128 exact e4m3 x e4m3 products keeping about 14 significant bits (the addends are
// aligned to the largest exponent and truncated), and each block's sum is then scaled and added in
// f32. A block sum thus carries a relative error of a few 1e-4 (sqrt(128) truncations of 2^-14
// of the largest product), and over cols/128 blocks the errors add like the sums do: about 5e-4
// of the output's rms, nmse about 3e-7. The bound allows 1e-2 per element (against |want| plus the
// output's rms) and nmse 1e-5. A wrong layout, a lost or doubled k block (1/sqrt(56) = 13% of the
// output at cols 7168), a wrong scale row or column, or a swizzle mistake is off by far more.
var tolW8A8 = tol{1e-2, 1e-5}

func w8a8Tol(yd backend.DType) tol {
	if yd == backend.BF16 {
		return tolBF16 // the same f32 value rounded to bf16 on both sides; near ties one ulp (2^-8) apart
	}
	return tolW8A8
}

func TestLinearW8A8Wgmma(t *testing.T) {
	e := setup(t)
	i := 0
	for _, m := range []int64{33, 64, 128, 512} {
		for _, rows := range []int64{128, 384, 1536, 200} { // 200: a partial weight tile (TMA zero fill, predicated stores)
			for _, cols := range []int64{128, 512, 7168} {
				// dtypes, accumulate and strides rotate over the shapes; odd cases are strided
				// (x rows 8 elements longer, W rows 16 bytes longer, y rows odd: unpaired stores)
				xd, yd, acc := actTypes[i%2], actTypes[(i/2)%2], int32((i/4)%2)
				ldx, ldw, ldy := cols, cols, rows
				if i%3 == 1 {
					ldx, ldw, ldy = cols+8, cols+16, rows+3
				}
				i++
				t.Run(name("m", m, "rows", rows, "cols", cols, "x", xd, "y", yd, "acc", acc, "ld", ldw != cols),
					func(t *testing.T) {
						r := rng(t)
						w := e.weight(t, r, backend.F8E4M3, rows, cols, ldw, 128, 128)
						e.runLinear(t, r, w, rows, m, ldx, ldy, xd, yd, backend.LinearW8A8, acc, w8a8Tol(yd))
					})
			}
		}
	}
	// every dtype and accumulate combination at two shapes (one with a token tail: 200 = 128 + 72)
	type shape struct{ m, rows, cols int64 }
	for _, sh := range []shape{{128, 384, 512}, {200, 1536, 1024}} {
		for _, xd := range actTypes {
			for _, yd := range actTypes {
				for _, acc := range []int32{0, 1} {
					t.Run(name("sweep", true, "m", sh.m, "rows", sh.rows, "cols", sh.cols, "x", xd, "y", yd, "acc", acc),
						func(t *testing.T) {
							r := rng(t)
							w := e.weight(t, r, backend.F8E4M3, sh.rows, sh.cols, sh.cols, 128, 128)
							e.runLinear(t, r, w, sh.rows, sh.m, sh.cols, sh.rows, xd, yd, backend.LinearW8A8, acc, w8a8Tol(yd))
						})
				}
			}
		}
	}
	// more tiles than SMs: the persistent grid takes several tiles per block (pipeline across tiles)
	t.Run(name("persistent", true, "m", 1000, "rows", 4096, "cols", 1024), func(t *testing.T) {
		r := rng(t)
		w := e.weight(t, r, backend.F8E4M3, 4096, 1024, 1024, 128, 128)
		e.runLinear(t, r, w, 4096, 1000, 1024, 4096, backend.BF16, backend.F32, backend.LinearW8A8, 1, tolW8A8)
	})
	// 2 x 71 = 142 tiles of a long K (56 k blocks): a few blocks take a second tile; a 40-row tail
	t.Run(name("persistent", true, "m", 256, "rows", 9000, "cols", 7168), func(t *testing.T) {
		r := rng(t)
		w := e.weight(t, r, backend.F8E4M3, 9000, 7168, 7168, 128, 128)
		e.runLinear(t, r, w, 9000, 256, 7168, 9000, backend.F32, backend.BF16, backend.LinearW8A8, 0, w8a8Tol(backend.BF16))
	})
}

// TestLinearW8A8Fallback: W8A8 shapes the wgmma path must leave to the emulation (and that must
// still be right): block shapes other than 128x128, cols % 128 != 0, W rows not 16-byte aligned,
// and decode sizes (m <= 32, the GEMV).
func TestLinearW8A8Fallback(t *testing.T) {
	e := setup(t)
	type cs struct {
		name          string
		m, rows, cols int64
		ldw           int64
		br, bc        int32
		xd, yd        backend.DType
	}
	cases := []cs{
		{"block64x128", 100, 384, 512, 512, 64, 128, backend.BF16, backend.F32},
		{"block128x64", 100, 384, 512, 512, 128, 64, backend.F32, backend.BF16},
		{"cols200", 64, 256, 200, 200, 128, 128, backend.BF16, backend.F32},
		{"ldw-unaligned", 64, 256, 512, 516, 128, 128, backend.BF16, backend.F32},
		{"m32-gemv", 32, 384, 512, 512, 128, 128, backend.BF16, backend.BF16},
	}
	for _, c := range cases {
		for _, acc := range []int32{0, 1} {
			t.Run(name("case", c.name, "acc", acc), func(t *testing.T) {
				r := rng(t)
				w := e.weight(t, r, backend.F8E4M3, c.rows, c.cols, c.ldw, c.br, c.bc)
				e.runLinear(t, r, w, c.rows, c.m, c.cols, c.rows, c.xd, c.yd, backend.LinearW8A8, acc,
					linearTol(c.xd, c.yd, backend.F8E4M3, c.m, backend.LinearW8A8))
			})
		}
	}
}

// TestLinearW8A8Blocks: x whose 128-channel blocks span magnitudes from 1e-3 to 1e3 (each block
// gets its own scale; a scale applied to the wrong token or block is off by up to 1e6), with some
// blocks all zero (amax 0: q 0 and scale 0 on both sides, no NaN from 0/0) and a few values far
// above the rest of their block (the others quantise to e4m3 subnormals or zero).
func TestLinearW8A8Blocks(t *testing.T) {
	e := setup(t)
	const m, rows, cols = 96, 256, 1024
	for _, xd := range actTypes {
		t.Run(name("x", xd), func(t *testing.T) {
			r := rng(t)
			w := e.weight(t, r, backend.F8E4M3, rows, cols, cols, 128, 128)
			xv := randn(r, m*cols, 1)
			for tk := 0; tk < m; tk++ {
				for b := 0; b < cols/128; b++ {
					mag := float32(math.Pow(10, float64((tk+2*b)%7-3)))
					for k := b * 128; k < (b+1)*128; k++ {
						v := &xv[tk*cols+k]
						switch {
						case (tk+b)%5 == 0:
							*v = 0
						case (tk*7+k)%97 == 0:
							*v *= 300 * mag
						default:
							*v *= mag
						}
					}
				}
			}
			e.runLinearX(t, r, xv, w, rows, m, cols, rows, xd, backend.F32, backend.LinearW8A8, 0, tolW8A8)
		})
	}
}
