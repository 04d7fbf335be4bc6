package kernels

// Tests of dg_linear's W8A8 mode on Hopper's fp8 tensor cores (cuda/gemm_fp8_wgmma.cu): e4m3 x
// (quantised per token per 128 channels into the workspace) times e4m3 W with 128x128 block
// scales, wgmma m64n128k32 with each 128-wide k block promoted to f32. The CUDA side takes it on
// a compute capability 9.0 device for m > 8 (1..8: the W8A8 GEMV, w8a8_gemv_test.go), 128x128 blocks, cols % 128 == 0 and 16-byte W rows;
// elsewhere (and for every call under DEEPGO_W8A8_GEMM=emulate) the f32 emulation runs, which
// these cases then check the same way. TestLinearW8A8Fallback holds shapes that must take the
// emulation wherever they run.
//
//	build/gpu/kernels.test -test.run 'W8A8' -test.v
//	DEEPGO_W8A8_GEMM=emulate build/gpu/kernels.test -test.run 'W8A8' -test.v   # the f32 emulation, A/B
//	DEEPGO_W8A8_GEMM=nosplit build/gpu/kernels.test -test.run 'W8A8' -test.v   # whole tiles, no stream-K

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

// TestLinearW8A8StreamK: the default schedule cuts the weight blocks' k-blocks into one range per
// group of mt blocks (mt token blocks), so a tile's k-blocks can be split between consecutive groups:
// each later part is written as an f32 partial that the block holding the tile's first k-block adds
// (in group order) before it stores y, with accumulate applied once. These shapes cut tiles into
// 2-3 parts (mt 5: 26 groups, 130 blocks), 7 parts (ranges of 8 k-blocks), 16 parts with a partial
// weight tile, and many short tiles (cols 2048); bf16 and f32 y with and without accumulate. A part
// lost, added twice, read before it is written or added to the wrong tile is off by far more than
// tolW8A8. DEEPGO_W8A8_GEMM=nosplit runs whole tiles (the A/B path) and must pass the same cases.
func TestLinearW8A8StreamK(t *testing.T) {
	e := setup(t)
	type shape struct{ m, rows, cols int64 }
	i := 0
	for _, sh := range []shape{{200, 256, 7168}, {100, 200, 16384}, {512, 1024, 2048}} {
		for _, yd := range actTypes {
			for _, acc := range []int32{0, 1} {
				xd := actTypes[i%2]
				i++
				t.Run(name("m", sh.m, "rows", sh.rows, "cols", sh.cols, "x", xd, "y", yd, "acc", acc), func(t *testing.T) {
					r := rng(t)
					w := e.weight(t, r, backend.F8E4M3, sh.rows, sh.cols, sh.cols, 128, 128)
					e.runLinear(t, r, w, sh.rows, sh.m, sh.cols, sh.rows, xd, yd, backend.LinearW8A8, acc, w8a8Tol(yd))
				})
			}
		}
	}
	t.Run(name("m", 640, "rows", 1536, "cols", 7168, "x", backend.BF16, "y", backend.BF16, "acc", 1), func(t *testing.T) {
		r := rng(t)
		w := e.weight(t, r, backend.F8E4M3, 1536, 7168, 7168, 128, 128)
		e.runLinear(t, r, w, 1536, 640, 7168, 1536, backend.BF16, backend.BF16, backend.LinearW8A8, 1, tolBF16)
	})
}

// TestLinearW8A8WholeTiles: shapes whose whole tiles fill their last wave (>= 95% of the SMs) skip
// stream-K; on a 132-SM H100, 132 and 264 weight tiles of one token block are one and two full waves.
func TestLinearW8A8WholeTiles(t *testing.T) {
	e := setup(t)
	for _, rows := range []int64{132 * 128, 264*128 - 50} {
		for _, yd := range actTypes {
			t.Run(name("rows", rows, "y", yd), func(t *testing.T) {
				r := rng(t)
				const m, cols = 100, 256
				w := e.weight(t, r, backend.F8E4M3, rows, cols, cols, 128, 128)
				e.runLinear(t, r, w, rows, m, cols, rows, backend.BF16, yd, backend.LinearW8A8, int32(rows%2), w8a8Tol(yd))
			})
		}
	}
}

// TestLinearW8A8Deterministic: the same call gives the same bits (the split points depend only on the
// shape and the SM count, and each tile's parts are added in a fixed order), also after the
// workspace held another call's partials and flags (poisoned in between, then a call with other x).
func TestLinearW8A8Deterministic(t *testing.T) {
	e := setup(t)
	const m, rows, cols = 256, 1024, 7168
	for _, yd := range actTypes {
		t.Run(name("y", yd), func(t *testing.T) {
			r := rng(t)
			w := e.weight(t, r, backend.F8E4M3, rows, cols, cols, 128, 128)
			x := e.upload(t, encode(randn(r, m*cols, 1), backend.BF16))
			x2 := e.upload(t, encode(randn(r, m*cols, 1), backend.BF16))
			args := func(x, y *dual, s side) backend.LinearArgs {
				return backend.LinearArgs{X: x.on(s), Y: y.on(s), W: w.on(s), M: m, LDX: cols, LDY: rows,
					XDType: backend.BF16, YDType: yd, Mode: backend.LinearW8A8}
			}
			y1, y2, y3 := e.poisoned(t, m*rows*yd.Size()), e.poisoned(t, m*rows*yd.Size()), e.poisoned(t, m*rows*yd.Size())
			ga := args(x, y1, onGPU)
			if !e.gpu.LinearSupported(&ga) {
				t.Skipf("UNSUPPORTED on cuda: %+v", ga)
			}
			ws := e.workspaces(t, func(s side) int64 { a := args(x, y1, s); return e.be(s).LinearWorkspaceSize(&a) })
			call := func(x, y *dual) {
				e.run(t, func(b backend.Backend, s side) error {
					a := args(x, y, s)
					a.Workspace = ws.on(s)
					return b.Linear(&a)
				})
			}
			call(x, y1)
			if err := e.gpu.Memset(ws.g, 0xFF, e.gpu.LinearWorkspaceSize(&ga)); err != nil { // stale flags read 1
				t.Fatalf("gpu memset: %v", err)
			}
			call(x2, y3)
			call(x, y2)
			e.checkRows(t, "y1", y1, yd, m, rows, rows, w8a8Tol(yd))
			e.checkRows(t, "y3", y3, yd, m, rows, rows, w8a8Tol(yd))
			e.sameBits(t, "y of the repeated call", y2, y1, yd)
		})
	}
}

// TestLinearW8A8Fallback: W8A8 shapes the wgmma path must leave to the emulation (and that must
// still be right): block shapes other than 128x128, cols % 128 != 0, W rows not 16-byte aligned;
// and m = 32, batched decode, which the wgmma path takes since the W8A8 GEMV took m <= 8.
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
		{"m32", 32, 384, 512, 512, 128, 128, backend.BF16, backend.BF16},
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
