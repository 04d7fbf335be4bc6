package kernels

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/deepgo/deepgo/go/backend"
)

// linearTol: f32 in and out with exact weights: f32 bound; anything through bf16 (activations,
// outputs, or the tensor-core path that rounds A and W to bf16) or W8A8's quantisation: bf16 bound.
func linearTol(xd, yd, wd backend.DType, m int64, mode int32) tol {
	if mode == backend.LinearW8A8 {
		return tolBF16
	}
	if xd == backend.BF16 && m > 8 {
		return tolMMA
	}
	if xd == backend.BF16 || yd == backend.BF16 {
		return tolBF16
	}
	return tolF32
}

func TestLinear(t *testing.T) {
	e := setup(t)
	type shape struct{ rows, cols int64 }
	shapes := []shape{{7, 129}, {129, 200}, {576, 2048}, {1536, 7168}}
	for _, sh := range shapes {
		for _, m := range []int64{1, 2, 7, 8, 9, 32, 129} {
			for _, wd := range weightTypes {
				for _, xd := range actTypes {
					for _, yd := range actTypes {
						modes := []int32{backend.LinearDefault}
						if wd == backend.F8E4M3 {
							modes = append(modes, backend.LinearW8A8)
						}
						for _, mode := range modes {
							acc := int32(m % 2) // both accumulate settings across the sizes
							t.Run(name("rows", sh.rows, "cols", sh.cols, "m", m, "w", wd, "x", xd, "y", yd, "mode", mode, "acc", acc),
								func(t *testing.T) {
									testLinear(t, e, sh.rows, sh.cols, m, wd, xd, yd, mode, acc, false)
								})
						}
					}
				}
			}
		}
	}
	// strided operands (ld > cols) and non-128 fp8 blocks
	for _, m := range []int64{3, 70} {
		for _, wd := range weightTypes {
			t.Run(name("strided", true, "m", m, "w", wd), func(t *testing.T) {
				testLinear(t, e, 130, 300, m, wd, backend.BF16, backend.F32, backend.LinearDefault, 1, true)
			})
		}
	}
	// strides the tensor-core GEMV (m <= 32, bf16 x) accepts: 16-byte x rows, a partial last row
	// tile, fp8 blocks of 64 rows x 128 columns, bf16 and f32 y; 1, 2 and 4 groups of 8 x rows
	for _, m := range []int64{3, 8, 12, 20, 32} {
		for _, wd := range []backend.DType{backend.BF16, backend.F8E4M3} {
			for _, yd := range actTypes {
				t.Run(name("strided16", true, "m", m, "w", wd, "y", yd), func(t *testing.T) {
					r := rng(t)
					const rows, cols = 130, 320
					w := e.weight(t, r, wd, rows, cols, cols+16, 64, 128)
					e.runLinear(t, r, w, rows, m, cols+8, rows+5, backend.BF16, yd, backend.LinearDefault, int32(m%2),
						linearTol(backend.BF16, yd, wd, m, backend.LinearDefault))
				})
			}
		}
	}
}

func testLinear(t *testing.T, e *env, rows, cols, m int64, wd, xd, yd backend.DType, mode, acc int32, strided bool) {
	r := rng(t)
	ldw, ldx, ldy := cols, cols, rows
	br, bc := int32(128), int32(128)
	if strided {
		ldw, ldx, ldy = cols+16, cols+3, rows+5
		br, bc = 64, 96
	}
	w := e.weight(t, r, wd, rows, cols, ldw, br, bc)
	e.runLinear(t, r, w, rows, m, ldx, ldy, xd, yd, mode, acc, linearTol(xd, yd, wd, m, mode))
}

// runLinear runs y (+)= x . W^T on both sides with random x [m, ldx] and y [m, ldy] (filled when
// acc, poisoned otherwise) and compares y's rows columns with tolerance tl.
func (e *env) runLinear(t *testing.T, r *rand.Rand, w *dweight, rows, m, ldx, ldy int64, xd, yd backend.DType,
	mode, acc int32, tl tol) {
	t.Helper()
	e.runLinearX(t, r, randn(r, int(m*ldx), 1), w, rows, m, ldx, ldy, xd, yd, mode, acc, tl)
}

// runLinearX is runLinear with the given x values [m, ldx].
func (e *env) runLinearX(t *testing.T, r *rand.Rand, xv []float32, w *dweight, rows, m, ldx, ldy int64,
	xd, yd backend.DType, mode, acc int32, tl tol) {
	t.Helper()
	x := e.upload(t, encode(xv, xd))
	y := e.alloc(t, m*ldy*yd.Size())
	if acc != 0 {
		e.fill(t, y, encode(randn(r, int(m*ldy), 1), yd))
	} else {
		e.poison(t, y)
	}
	args := func(s side) backend.LinearArgs {
		return backend.LinearArgs{X: x.on(s), Y: y.on(s), W: w.on(s), M: m, LDX: ldx, LDY: ldy, XDType: xd, YDType: yd,
			Accumulate: acc, Mode: mode}
	}
	ga := args(onGPU)
	if !e.gpu.LinearSupported(&ga) {
		t.Skipf("UNSUPPORTED on cuda: %+v", ga)
	}
	ws := e.workspaces(t, func(s side) int64 { a := args(s); return e.be(s).LinearWorkspaceSize(&a) })
	e.run(t, func(b backend.Backend, s side) error {
		a := args(s)
		a.Workspace = ws.on(s)
		return b.Linear(&a)
	})
	e.checkRows(t, "y", y, yd, m, rows, ldy, tl)
}

func TestHeadMatmul(t *testing.T) {
	e := setup(t)
	type cs struct {
		trans                 int32
		heads, in, out, ntok  int64
		headStride, row0, ldw int64
		xpad                  int64 // x elements between heads = in + xpad
	}
	cases := []cs{
		// absorbed q: q_nope [tok, H, 128] . W_uk (rows h*256 + i of kv_b [H*256, 512])
		{0, 4, 128, 512, 1, 256, 0, 512, 1},
		{0, 3, 128, 512, 9, 256, 0, 512, 1},
		// absorbed out: o_lat [tok, H, 512] . W_uv^T (rows h*256 + 128 + j)
		{1, 4, 512, 128, 1, 256, 128, 512, 1},
		{1, 3, 512, 128, 9, 256, 128, 512, 1},
		{0, 2, 7, 9, 3, 20, 1, 9, 1},
		{1, 2, 9, 7, 3, 20, 2, 9, 1},
		// 16-byte x rows: trans 1 takes the tensor-core GEMV (bf16 x, <= 32 tokens), also with
		// heads whose rows start mid scale block and a partial last row tile
		{1, 4, 512, 128, 1, 256, 128, 512, 8},
		{1, 3, 512, 128, 8, 256, 128, 512, 8},
		{1, 3, 512, 128, 13, 256, 128, 512, 8},
		{1, 2, 512, 128, 32, 256, 128, 512, 8},
		{1, 5, 512, 100, 2, 208, 48, 512, 8},
	}
	for _, c := range cases {
		for _, wd := range weightTypes {
			for _, xd := range actTypes {
				for _, yd := range actTypes {
					nm := name("trans", c.trans, "heads", c.heads, "in", c.in, "out", c.out, "tok", c.ntok, "w", wd, "x", xd, "y", yd)
					if c.xpad != 1 {
						nm += fmt.Sprintf("/xpad=%d", c.xpad)
					}
					t.Run(nm,
						func(t *testing.T) {
							r := rng(t)
							wcols := c.out
							if c.trans == 1 {
								wcols = c.in
							}
							wrows := c.row0 + c.heads*c.headStride
							w := e.weight(t, r, wd, wrows, wcols, c.ldw, 128, 128)
							ldxh := c.in + c.xpad
							x := e.upload(t, encode(randn(r, int(c.ntok*c.heads*ldxh), 1), xd))
							y := e.poisoned(t, c.ntok*c.heads*c.out*yd.Size())
							e.run(t, func(b backend.Backend, s side) error {
								return b.HeadMatmul(&backend.HeadMatmulArgs{X: x.on(s), Y: y.on(s), W: w.on(s), NTok: c.ntok,
									NHeads: c.heads, InDim: c.in, OutDim: c.out, Row0: c.row0, HeadStride: c.headStride,
									LDXTok: c.heads * ldxh, LDXHead: ldxh, LDYTok: c.heads * c.out, LDYHead: c.out,
									Trans: c.trans, XDType: xd, YDType: yd})
							})
							e.checkOut(t, "y", y, yd, tolFor(yd, xd == backend.BF16))
						})
				}
			}
		}
	}
}
