package kernels

import (
	"math/rand"
	"testing"
	"unsafe"

	"github.com/deepgo/deepgo/go/backend"
)

func TestMoEGate(t *testing.T) {
	e := setup(t)
	type cfg struct {
		name                          string
		experts, topK, group, topkGrp int32
		scoring, method, norm         int32
		bias                          bool
		scaling                       float32
		shared                        int32
	}
	cfgs := []cfg{
		{"deepseek-v3", 256, 8, 8, 4, backend.ScoreSigmoid, backend.TopkNoauxTC, 1, true, 2.5, 0},
		{"noaux-nobias", 64, 6, 4, 2, backend.ScoreSigmoid, backend.TopkNoauxTC, 1, false, 1, 0},
		{"v2-group-limited", 160, 6, 8, 3, backend.ScoreSoftmax, backend.TopkGroupLimitedGreedy, 0, false, 16, 0},
		{"greedy-softmax", 64, 6, 1, 1, backend.ScoreSoftmax, backend.TopkGreedy, 0, false, 1, 0},
		{"greedy-odd", 7, 2, 1, 1, backend.ScoreSigmoid, backend.TopkGreedy, 1, true, 1, 0},
		{"peer-7b-shared", 64, 6, 1, 1, backend.ScoreSigmoid, backend.TopkNoauxTC, 1, true, 2.446, 2},
		{"deepseek-v3-shared", 256, 8, 8, 4, backend.ScoreSigmoid, backend.TopkNoauxTC, 1, true, 2.5, 1},
	}
	for _, c := range cfgs {
		for _, n := range []int64{1, 7, 129} {
			t.Run(name("cfg", c.name, "n", n), func(t *testing.T) {
				r := rng(t)
				ld := int64(c.experts) + 2
				logits := e.upload(t, f32bytes(randn(r, int(n*ld), 2)))
				var bias *dual
				if c.bias {
					bias = e.upload(t, f32bytes(randn(r, int(c.experts), 0.1)))
				}
				ids := e.poisoned(t, n*int64(c.topK+c.shared)*4)
				w := e.poisoned(t, n*int64(c.topK+c.shared)*4)
				e.run(t, func(b backend.Backend, s side) error {
					return b.MoEGate(&backend.MoEGateArgs{Logits: logits.on(s), Bias: bias.on(s), IDs: ids.on(s),
						Weights: w.on(s), N: n, LDLogits: ld, Scaling: c.scaling, NExperts: c.experts, TopK: c.topK,
						NGroup: c.group, TopkGroup: c.topkGrp, Scoring: c.scoring, Method: c.method, NormTopkProb: c.norm, NShared: c.shared})
				})
				e.checkI32(t, "ids", ids)
				e.checkOut(t, "weights", w, backend.F32, tolF32)
			})
		}
	}
}

// uploadDescs puts one side's weight descriptors into that side's memory (pointers differ per side).
func (e *env) uploadDescs(t testing.TB, ws []*dweight) *dual {
	t.Helper()
	size := int64(len(ws)) * int64(unsafe.Sizeof(backend.Weight{}))
	d := e.alloc(t, size)
	for _, s := range []side{onGPU, onCPU} {
		descs := make([]backend.Weight, len(ws))
		for i, w := range ws {
			descs[i] = w.on(s)
		}
		b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(descs))), size)
		if err := e.be(s).Upload(d.on(s), b); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestMoEFFN(t *testing.T) {
	e := setup(t)
	type shape struct {
		experts, topK    int32
		hidden, inter, n int64
		tight            bool // x and y rows of hidden elements (else hidden+1, hidden+2)
	}
	shapes := []shape{
		{8, 2, 129, 64, 1, false},
		{8, 3, 256, 200, 7, false},
		{16, 6, 512, 320, 3, false}, // the SIMT GEMV path with aligned rows (16-byte loads, fp8 chunk scales)
		{16, 4, 384, 256, 129, false},
		// bf16 x with 16-byte rows: the tensor-core GEMVs (split-K, partial row tiles, fp8 tiles,
		// and the per-row fallback inside them for f32/f16 experts and fp8 down rows of 200);
		// one read per assignment where tokens seldom share experts, else sorted by expert
		{16, 6, 512, 320, 1, true},
		{64, 2, 256, 128, 3, true},
		{8, 3, 256, 200, 7, true},   // sorted
		{16, 8, 1024, 136, 2, true}, // sorted
		{4, 2, 256, 128, 20, true},  // sorted, ~10 rows per expert: two passes of 8
		{32, 20, 256, 128, 1, true}, // top_k > 16: back to the SIMT GEMVs
	}
	for _, sh := range shapes {
		for _, wd := range weightTypes {
			for _, xd := range actTypes {
				for _, yd := range actTypes {
					modes := []int32{backend.LinearDefault}
					if wd == backend.F8E4M3 {
						modes = append(modes, backend.LinearW8A8)
					}
					for _, mode := range modes {
						acc := int32(sh.n % 2)
						t.Run(name("E", sh.experts, "k", sh.topK, "hidden", sh.hidden, "inter", sh.inter, "n", sh.n, "tight", sh.tight, "w", wd,
							"x", xd, "y", yd, "mode", mode), func(t *testing.T) {
							testMoEFFN(t, e, sh.experts, sh.topK, sh.hidden, sh.inter, sh.n, sh.tight, wd, xd, yd, mode, acc)
						})
					}
				}
			}
		}
	}
}

func testMoEFFN(t *testing.T, e *env, E, K int32, hidden, inter, n int64, tight bool, wd, xd, yd backend.DType, mode, acc int32) {
	r := rng(t)
	var gate, up, down []*dweight
	for i := int32(0); i < E; i++ {
		gate = append(gate, e.weight(t, r, wd, inter, hidden, hidden, 128, 128))
		up = append(up, e.weight(t, r, wd, inter, hidden, hidden, 128, 128))
		down = append(down, e.weight(t, r, wd, hidden, inter, inter, 128, 128))
	}
	tl := tolF32
	if xd == backend.BF16 || yd == backend.BF16 || mode == backend.LinearW8A8 {
		tl = tolMMA
	}
	ldx, ldy := hidden+1, hidden+2
	if tight {
		ldx, ldy = hidden, hidden
	}
	e.runMoEFFN(t, r, gate, up, down, E, K, hidden, inter, n, ldx, ldy, xd, yd, mode, acc, tl)
}

// runMoEFFN runs dg_moe_ffn on both sides over these experts: every token routed to K distinct
// random experts with random weights (the second choice skipped, id -1, when n > 1), random x
// [n, ldx], y [n, ldy] filled when acc (poisoned otherwise); y's hidden columns compared with tl.
func (e *env) runMoEFFN(t *testing.T, r *rand.Rand, gate, up, down []*dweight, E, K int32, hidden, inter, n, ldx,
	ldy int64, xd, yd backend.DType, mode, acc int32, tl tol) {
	t.Helper()
	gd, ud, dd := e.uploadDescs(t, gate), e.uploadDescs(t, up), e.uploadDescs(t, down)
	ids := make([]int32, n*int64(K))
	wts := make([]float32, n*int64(K))
	for tk := int64(0); tk < n; tk++ {
		perm := r.Perm(int(E))
		for k := int64(0); k < int64(K); k++ {
			ids[tk*int64(K)+k] = int32(perm[k])
			wts[tk*int64(K)+k] = r.Float32()
		}
	}
	if n > 1 {
		ids[1] = -1 // a skipped choice
	}
	idb, wb := e.upload(t, i32bytes(ids)), e.upload(t, f32bytes(wts))
	x := e.upload(t, encode(randn(r, int(n*ldx), 1), xd))
	y := e.alloc(t, n*ldy*yd.Size())
	if acc != 0 {
		e.fill(t, y, encode(randn(r, int(n*ldy), 1), yd))
	} else {
		e.poison(t, y)
	}
	args := func(s side) backend.MoEFFNArgs {
		return backend.MoEFFNArgs{X: x.on(s), IDs: idb.on(s), Weights: wb.on(s), Gate: gd.on(s), Up: ud.on(s),
			Down: dd.on(s), Y: y.on(s), N: n, Hidden: hidden, Inter: inter, LDX: ldx, LDY: ldy, NExperts: E, TopK: K,
			XDType: xd, YDType: yd, Accumulate: acc, Mode: mode}
	}
	ws := e.workspaces(t, func(s side) int64 { a := args(s); return e.be(s).MoEFFNWorkspaceSize(&a) })
	e.run(t, func(b backend.Backend, s side) error {
		a := args(s)
		a.Workspace = ws.on(s)
		return b.MoEFFN(&a)
	})
	e.checkRows(t, "y", y, yd, n, hidden, ldy, tl)
}
