package cpu

import (
	"fmt"
	"math"
	"sort"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/deepgo/deepgo/go/backend"
)

// ---- moe_gate ----

type gateCfg struct {
	E, topK, nGroup, topkGroup int
	scoring, method            int32
	norm                       bool
	scaling                    float32
	nShared                    int // fixed entries E+j, weight 1, after the top_k
}

// refGate follows the header's text in float64.
func refGate(logits []float64, bias []float64, c gateCfg) ([]int32, []float64) {
	E := c.E
	s := make([]float64, E)
	if c.scoring == backend.ScoreSigmoid {
		for e := range s {
			s[e] = 1 / (1 + math.Exp(-logits[e]))
		}
	} else {
		mx := math.Inf(-1)
		for _, v := range logits {
			mx = math.Max(mx, v)
		}
		var sum float64
		for e := range s {
			s[e] = math.Exp(logits[e] - mx)
			sum += s[e]
		}
		for e := range s {
			s[e] /= sum
		}
	}
	ch := make([]float64, E)
	for e := range ch {
		ch[e] = s[e]
		if c.method != backend.TopkGreedy && bias != nil {
			ch[e] += bias[e]
		}
	}
	// top returns indices of the k largest of v (ties: lower index first)
	top := func(v []float64, k int) []int {
		idx := make([]int, len(v))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] > v[idx[b]] })
		return idx[:k]
	}
	if c.method != backend.TopkGreedy {
		gs := E / c.nGroup
		gsc := make([]float64, c.nGroup)
		for g := range gsc {
			if c.method == backend.TopkNoauxTC {
				t2 := top(ch[g*gs:(g+1)*gs], min(2, gs))
				for _, i := range t2 {
					gsc[g] += ch[g*gs+i]
				}
			} else {
				gsc[g] = math.Inf(-1)
				for _, v := range s[g*gs : (g+1)*gs] {
					gsc[g] = math.Max(gsc[g], v)
				}
			}
		}
		keep := map[int]bool{}
		for _, g := range top(gsc, c.topkGroup) {
			keep[g] = true
		}
		for e := range ch {
			if !keep[e/gs] {
				ch[e] = math.Inf(-1)
			}
		}
	}
	ids := top(ch, c.topK)
	out := make([]int32, c.topK)
	w := make([]float64, c.topK)
	var sum float64
	for k, e := range ids {
		out[k] = int32(e)
		w[k] = s[e]
		sum += s[e]
	}
	for k := range w {
		if c.norm {
			w[k] /= sum + 1e-20
		}
		w[k] *= float64(c.scaling)
	}
	for j := 0; j < c.nShared; j++ {
		out = append(out, int32(E+j))
		w = append(w, 1)
	}
	return out, w
}

func runGate(t *testing.T, b *Backend, name string, c gateCfg, logits [][]float64, bias []float64) ([]int32, []float64) {
	n := len(logits)
	ld := c.E + 1
	lg := newTensor(t, backend.F32, n*ld)
	lg.poison()
	for i, row := range logits {
		for e, v := range row {
			lg.set(i*ld+e, float32(v))
		}
	}
	ids := i32s(t, make([]int32, n*(c.topK+c.nShared)))
	w := newTensor(t, backend.F32, n*(c.topK+c.nShared))
	w.poison()
	a := &backend.MoEGateArgs{Logits: lg.addr, IDs: ids.addr, Weights: w.addr, N: int64(n), LDLogits: int64(ld),
		Scaling: c.scaling, NExperts: int32(c.E), TopK: int32(c.topK), NGroup: int32(c.nGroup), TopkGroup: int32(c.topkGroup),
		Scoring: c.scoring, Method: c.method, NShared: int32(c.nShared)}
	if c.norm {
		a.NormTopkProb = 1
	}
	var biasF []float64
	if bias != nil {
		bt := newTensor(t, backend.F32, c.E)
		for e, v := range bias {
			bt.set(e, float32(v))
		}
		a.Bias = bt.addr
		biasF = bt.vals()
	}
	require.NoError(t, b.MoEGate(a))
	var wantW []float64
	var wantIDs []int32
	for i := range logits {
		row := make([]float64, c.E)
		for e := range row {
			row[e] = lg.get(i*ld + e)
		}
		id, ww := refGate(row, biasF, c)
		wantIDs = append(wantIDs, id...)
		wantW = append(wantW, ww...)
	}
	require.Equal(t, wantIDs, ids.i32(), name)
	requireClose(t, name, w.vals(), wantW, tolF32)
	return ids.i32(), w.vals()
}

func sig(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func TestMoEGateHand(t *testing.T) {
	b := testBackend(t)
	// group dropping and ties: groups of 2; group scores (top-2 sums) 1.0, 1.46, 0.96, 1.0;
	// keep 2 groups: group 1, then group 0 (tie with group 3, lower index). Expert 4 (the best
	// single score) is in a dropped group. Experts 2 and 3 tie: 2 first.
	c := gateCfg{E: 8, topK: 3, nGroup: 4, topkGroup: 2, scoring: backend.ScoreSigmoid, method: backend.TopkNoauxTC, norm: true, scaling: 2.5}
	ids, w := runGate(t, b, "groups", c, [][]float64{{2, -2, 1, 1, 3, -5, -2, 2}}, nil)
	require.Equal(t, []int32{0, 2, 3}, ids)
	sum := sig(2) + 2*sig(1)
	requireClose(t, "groups/w", w, []float64{2.5 * sig(2) / sum, 2.5 * sig(1) / sum, 2.5 * sig(1) / sum}, tolF32)

	// the bias changes the choice, not the weights
	c = gateCfg{E: 4, topK: 2, nGroup: 1, topkGroup: 1, scoring: backend.ScoreSigmoid, method: backend.TopkNoauxTC, norm: true, scaling: 1}
	ids, w = runGate(t, b, "bias", c, [][]float64{{1, 0.5, 0, -1}}, []float64{0, 0, 1, 0})
	require.Equal(t, []int32{2, 0}, ids)
	sum = sig(0) + sig(1)
	requireClose(t, "bias/w", w, []float64{sig(0) / sum, sig(1) / sum}, tolF32)

	// no normalisation: w = s * scaling
	c.norm, c.scaling = false, 2
	_, w = runGate(t, b, "nonorm", c, [][]float64{{1, 0.5, 0, -1}}, []float64{0, 0, 1, 0})
	requireClose(t, "nonorm/w", w, []float64{2 * sig(0), 2 * sig(1)}, tolF32)

	// dropped groups are -inf, not 0: kept candidates with negative biased scores still win
	c = gateCfg{E: 4, topK: 2, nGroup: 2, topkGroup: 1, scoring: backend.ScoreSigmoid, method: backend.TopkNoauxTC, norm: true, scaling: 1}
	ids, _ = runGate(t, b, "neginf", c, [][]float64{{5, -5, -5, -5}}, []float64{-2, -2, -3, -3})
	require.Equal(t, []int32{0, 1}, ids)

	// softmax + greedy, and group-limited greedy (group score = max s)
	runGate(t, b, "softmax-greedy", gateCfg{E: 5, topK: 2, scoring: backend.ScoreSoftmax, method: backend.TopkGreedy, scaling: 1},
		[][]float64{{0.1, 2, 2, -1, 0.5}}, nil)
	ids, _ = runGate(t, b, "glg", gateCfg{E: 6, topK: 2, nGroup: 3, topkGroup: 1, scoring: backend.ScoreSoftmax,
		method: backend.TopkGroupLimitedGreedy, scaling: 1}, [][]float64{{1, 1, 3, -9, 2, 2}}, nil)
	require.Equal(t, []int32{2, 3}, ids)
}

func TestMoEGateRandom(t *testing.T) {
	b := testBackend(t)
	cfgs := []gateCfg{
		{E: 256, topK: 8, nGroup: 8, topkGroup: 4, scoring: backend.ScoreSigmoid, method: backend.TopkNoauxTC, norm: true, scaling: 2.5},
		{E: 64, topK: 6, nGroup: 1, topkGroup: 1, scoring: backend.ScoreSigmoid, method: backend.TopkNoauxTC, norm: true, scaling: 2.446},
		{E: 12, topK: 3, nGroup: 4, topkGroup: 2, scoring: backend.ScoreSoftmax, method: backend.TopkGroupLimitedGreedy, scaling: 1},
		{E: 7, topK: 7, scoring: backend.ScoreSoftmax, method: backend.TopkGreedy, norm: true, scaling: 1},
		// the shared experts appended (peer-7b's 2, DeepSeek-V3's 1)
		{E: 64, topK: 6, nGroup: 1, topkGroup: 1, scoring: backend.ScoreSigmoid, method: backend.TopkNoauxTC, norm: true, scaling: 2.446, nShared: 2},
		{E: 256, topK: 8, nGroup: 8, topkGroup: 4, scoring: backend.ScoreSigmoid, method: backend.TopkNoauxTC, norm: true, scaling: 2.5, nShared: 1},
	}
	for ci, c := range cfgs {
		for _, withBias := range []bool{false, true} {
			name := fmt.Sprintf("cfg=%d/bias=%v", ci, withBias)
			t.Run(name, func(t *testing.T) {
				rng := seedRand(name)
				n := []int{1, 3, 17}[ci%3]
				logits := make([][]float64, n)
				for i := range logits {
					logits[i] = make([]float64, c.E)
					for e := range logits[i] {
						logits[i][e] = rng.NormFloat64() * 2
					}
				}
				var bias []float64
				if withBias {
					bias = make([]float64, c.E)
					for e := range bias {
						bias[e] = rng.NormFloat64() * 0.1
					}
				}
				runGate(t, b, name, c, logits, bias)
			})
		}
	}
	lg := newTensor(t, backend.F32, 8)
	ids := i32s(t, make([]int32, 8))
	base := backend.MoEGateArgs{Logits: lg.addr, IDs: ids.addr, Weights: lg.addr, N: 1, LDLogits: 8, NExperts: 8, TopK: 2,
		NGroup: 3, TopkGroup: 1}
	requireErr(t, b.MoEGate(&base), backend.StatusInvalid) // 3 groups do not divide 8
	base.NGroup, base.TopK = 4, 3
	requireErr(t, b.MoEGate(&base), backend.StatusInvalid) // 3 > 2 experts in 1 kept group
	base.TopK, base.Method = 2, 7
	requireErr(t, b.MoEGate(&base), backend.StatusInvalid)
	base.Method, base.NShared = backend.TopkNoauxTC, -1
	requireErr(t, b.MoEGate(&base), backend.StatusInvalid)
}

// ---- moe_ffn ----

func descArray(t *testing.T, ws []*weight) uintptr {
	size := int(unsafe.Sizeof(backend.Weight{}))
	buf := newTensor(t, backend.I32, len(ws)*size/4)
	arr := unsafe.Slice((*backend.Weight)(buf.ptr), len(ws))
	for i, w := range ws {
		arr[i] = w.w
	}
	return buf.addr
}

// refDense: out[r] = sum_k W[r,k] x[k] (float64), W8A8: kernel.py's form.
func refDense(w *weight, x []float64, w8a8 bool) []float64 {
	rows, cols := int(w.w.Rows), int(w.w.Cols)
	out := make([]float64, rows)
	if w8a8 {
		xr := make([]float32, cols)
		for k := range xr {
			xr[k] = float32(x[k])
		}
		bc := int(w.w.BlockCols)
		q, s := actQuant(xr, bc)
		for r := range out {
			for bi := 0; bi*bc < cols; bi++ {
				var p float64
				for k := bi * bc; k < min(cols, (bi+1)*bc); k++ {
					p += float64(q[k]) * w.q(r, k)
				}
				out[r] += p * float64(s[bi]) * w.s(r, bi*bc)
			}
		}
		return out
	}
	for r := range out {
		for k := 0; k < cols; k++ {
			out[r] += w.at(r, k) * x[k]
		}
	}
	return out
}

func TestMoEFFN(t *testing.T) {
	b := testBackend(t)
	type mc struct {
		wd     backend.DType
		xd, yd backend.DType
		mode   int32
	}
	var cases []mc
	for _, wd := range weightDTypes {
		for _, xd := range actDTypes {
			for _, yd := range actDTypes {
				cases = append(cases, mc{wd, xd, yd, backend.LinearDefault})
				if wd == backend.F8E4M3 {
					cases = append(cases, mc{wd, xd, yd, backend.LinearW8A8})
				}
			}
		}
	}
	for ci, c := range cases {
		for _, n := range []int{1, 3, 17} {
			acc := (ci+n)%2 == 1
			name := fmt.Sprintf("w=%s/x=%s/y=%s/mode=%d/n=%d/acc=%v", c.wd, c.xd, c.yd, c.mode, n, acc)
			t.Run(name, func(t *testing.T) {
				rng := seedRand(name)
				E, topK := 6, 1+rng.Intn(3)
				hidden, inter := 1+rng.Intn(150), 1+rng.Intn(70)
				if n == 17 {
					hidden, inter = 257, 129
				}
				br, bc := 128, 128
				if rng.Intn(2) == 0 {
					br, bc = 5+rng.Intn(5), 4+rng.Intn(9)
				}
				var gate, up, down []*weight
				for e := 0; e < E; e++ {
					gate = append(gate, newWeightBlocks(t, rng, c.wd, inter, hidden, hidden+rng.Intn(2), 0.3, br, bc))
					up = append(up, newWeightBlocks(t, rng, c.wd, inter, hidden, hidden, 0.3, br, bc))
					down = append(down, newWeightBlocks(t, rng, c.wd, hidden, inter, inter+1, 0.3, br, bc))
				}
				ldx, ldy := hidden+rng.Intn(3), hidden+rng.Intn(3)
				x := newTensor(t, c.xd, n*ldx).fill(rng, 1)
				y := newTensor(t, c.yd, n*ldy)
				y.poison()
				ids := make([]int32, n*topK)
				wts := make([]float32, n*topK)
				for i := 0; i < n; i++ {
					perm := rng.Perm(E)
					for k := 0; k < topK; k++ {
						ids[i*topK+k] = int32(perm[k])
						wts[i*topK+k] = float32(0.2 + rng.Float64())
					}
				}
				if n > 1 {
					ids[topK] = -1 // skipped
				}
				want := make([]float64, n*hidden)
				for i := 0; i < n; i++ {
					xv := make([]float64, hidden)
					for k := range xv {
						xv[k] = x.get(i*ldx + k)
					}
					if acc {
						for k := 0; k < hidden; k++ {
							y.set(i*ldy+k, float32(rng.NormFloat64()))
							want[i*hidden+k] = y.get(i*ldy + k)
						}
					}
					for k := 0; k < topK; k++ {
						e := ids[i*topK+k]
						if e < 0 {
							continue
						}
						g := refDense(gate[e], xv, c.mode == backend.LinearW8A8)
						u := refDense(up[e], xv, c.mode == backend.LinearW8A8)
						h := make([]float64, inter)
						for j := range h {
							h[j] = g[j] / (1 + math.Exp(-g[j])) * u[j]
						}
						d := refDense(down[e], h, c.mode == backend.LinearW8A8)
						for j := range d {
							want[i*hidden+j] += float64(wts[i*topK+k]) * d[j]
						}
					}
				}
				a := &backend.MoEFFNArgs{X: x.addr, IDs: i32s(t, ids).addr, Weights: f32s(t, wts).addr,
					Gate: descArray(t, gate), Up: descArray(t, up), Down: descArray(t, down), Y: y.addr, N: int64(n),
					Hidden: int64(hidden), Inter: int64(inter), LDX: int64(ldx), LDY: int64(ldy), NExperts: int32(E),
					TopK: int32(topK), XDType: c.xd, YDType: c.yd, Mode: c.mode}
				if acc {
					a.Accumulate = 1
				}
				a.Workspace = newWS(t, b.MoEFFNWorkspaceSize(a))
				require.NoError(t, b.MoEFFN(a))
				var got []float64
				for i := 0; i < n; i++ {
					for k := 0; k < hidden; k++ {
						got = append(got, y.get(i*ldy+k))
					}
				}
				tl := tol{Rel: 1e-4, Abs: 1e-4, NMSE: 1e-8}
				if c.yd == backend.BF16 {
					tl = tolBF16
				}
				if c.mode == backend.LinearW8A8 {
					// the silu output is re-quantised: a value on an e4m3 rounding boundary may go
					// either way between float32 and float64 arithmetic
					tl = tol{Rel: 2e-2, Abs: 2e-2, NMSE: 1e-4}
				}
				requireClose(t, name, got, want, tl)
			})
		}
	}
}

func TestMoEFFNErrors(t *testing.T) {
	b := testBackend(t)
	rng := seedRand("moeerr")
	w := newWeight(t, rng, backend.F32, 4, 8, 8, 1)
	wd := newWeight(t, rng, backend.F32, 8, 4, 4, 1)
	x := newTensor(t, backend.F32, 8)
	ids := i32s(t, []int32{0})
	wts := f32s(t, []float32{1})
	a := backend.MoEFFNArgs{X: x.addr, IDs: ids.addr, Weights: wts.addr, Gate: descArray(t, []*weight{w}),
		Up: descArray(t, []*weight{w}), Down: descArray(t, []*weight{wd}), Y: x.addr, N: 1, Hidden: 8, Inter: 4,
		LDX: 8, LDY: 8, NExperts: 1, TopK: 1, XDType: backend.F32, YDType: backend.F32}
	requireErr(t, b.MoEFFN(&a), backend.StatusInvalid) // no workspace
	a.Workspace = newWS(t, b.MoEFFNWorkspaceSize(&a))
	y := newTensor(t, backend.F32, 8)
	a.Y = y.addr
	require.NoError(t, b.MoEFFN(&a))
	bad := a
	bad.Mode = backend.LinearW8A8
	requireErr(t, b.MoEFFN(&bad), backend.StatusInvalid)
	bad = a
	bad.Down = bad.Gate // wrong shape
	requireErr(t, b.MoEFFN(&bad), backend.StatusInvalid)
	bad = a
	bad.IDs = i32s(t, []int32{3}).addr // expert out of range
	requireErr(t, b.MoEFFN(&bad), backend.StatusInvalid)
}
