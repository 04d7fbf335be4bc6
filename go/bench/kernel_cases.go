package bench

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/deepgo/deepgo/go/backend"
	"github.com/deepgo/deepgo/go/weights"
)

// The cases: every kernel of include/deepgo_kernels.h at the shapes a preset's model runs it at.

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func dtName(dt backend.DType) string {
	if dt == backend.F8E4M3 {
		return "fp8"
	}
	return dt.String()
}

func kernelCases(shapes string, c *weights.Config, o KernelOptions, act, cacheDT backend.DType, gpu bool) []kcase {
	H, V := int64(c.HiddenSize), int64(c.VocabSize)
	heads := int64(c.NumAttentionHeads)
	nope, rope, vd := int64(c.QkNopeHeadDim), int64(c.QkRopeHeadDim), int64(c.VHeadDim)
	qk, lat := nope+rope, int64(c.KvLoraRank)
	E, k := int64(c.NRoutedExperts), int64(c.NumExpertsPerTok)
	I, mi := int64(c.IntermediateSize), int64(c.MoeIntermediateSize)
	var cs []kcase

	// linear at the real projection shapes.
	type proj struct {
		name string
		n, k int64
		y    backend.DType
		only backend.DType // 0: bf16 and fp8; else this dtype only
	}
	projs := []proj{
		{"q_a_proj", int64(c.QLoraRank), H, act, 0},
		{"q_b_proj", heads * qk, int64(c.QLoraRank), act, 0},
		{"kv_a_proj_with_mqa", lat + rope, H, act, 0},
		{"kv_b_proj", heads * (nope + vd), lat, act, 0},
		{"o_proj", H, heads * vd, backend.F32, 0},
		{"mlp.gate_proj,up_proj", I, H, act, 0},
		{"mlp.down_proj", H, I, backend.F32, 0},
		{"shared_experts.gate_proj,up_proj", int64(c.NSharedExperts) * mi, H, act, 0},
		{"shared_experts.down_proj", H, int64(c.NSharedExperts) * mi, backend.F32, 0},
		{"mlp.gate (router)", E, H, backend.F32, backend.BF16},
		{"lm_head", V, H, backend.F32, backend.BF16},
	}
	if c.QLoraRank == 0 || !c.HasQLora {
		projs[0] = proj{"q_proj", heads * qk, H, act, 0}
		projs = append(projs[:1], projs[2:]...)
	}
	if o.Quick {
		projs = []proj{projs[0], projs[3], {"o_proj", H, heads * vd, backend.F32, 0}}
	}
	for _, p := range projs {
		if p.n <= 0 || p.k <= 0 {
			continue
		}
		for _, m := range o.M {
			for _, v := range []struct {
				dt   backend.DType
				mode int32
			}{{backend.BF16, backend.LinearDefault}, {backend.F8E4M3, backend.LinearDefault}, {backend.F8E4M3, backend.LinearW8A8}} {
				if p.only != 0 && v.dt != p.only {
					continue
				}
				if o.Quick && v.mode == backend.LinearW8A8 {
					continue
				}
				cs = append(cs, linearCase(shapes, p.name, p.n, p.k, v.dt, v.mode, m, act, p.y))
			}
		}
	}

	// head_matmul: MLA's absorbed kv_b (decode): q_nope -> latent, latent -> v.
	for _, n := range decodeRows(o) {
		for _, wdt := range []backend.DType{backend.BF16, backend.F8E4M3} {
			cs = append(cs, headMatmulCase(shapes, c, 0, n, wdt, act), headMatmulCase(shapes, c, 1, n, wdt, act))
		}
	}

	// Attention.
	cs = append(cs, mlaDecodeCase(shapes, c, o.DecodeBatch, o.Ctx, act, cacheDT))
	pre := []int{256}
	if gpu {
		pre = []int{512, 4096}
	}
	if o.Quick {
		pre = []int{32}
	}
	for _, t := range pre {
		cs = append(cs, mlaPrefillCase(shapes, c, t, act))
	}

	// MoE.
	if E > 0 {
		for _, n := range o.M {
			cs = append(cs, moeGateCase(shapes, c, n))
			for _, wdt := range []backend.DType{backend.BF16, backend.F8E4M3} {
				if o.Quick && wdt == backend.F8E4M3 {
					continue
				}
				cs = append(cs, moeFFNCase(shapes, c, n, wdt, act, gpu, o.Quick))
			}
		}
	}
	_ = k

	// Elementwise and small kernels.
	for _, n := range o.M {
		cs = append(cs, rmsnormCase(shapes, H, n, act), ropeCase(shapes, c, n, act), siluMulCase(shapes, I, n, act),
			embedCase(shapes, V, H, n))
	}
	for _, n := range decodeRows(o) {
		cs = append(cs, argmaxCase(shapes, V, n), sampleCase(shapes, V, n))
	}
	width := lat + rope
	for _, n := range []int{o.DecodeBatch, max(pre[0], 1)} {
		cs = append(cs, kvStoreCase(shapes, width, n, act, cacheDT), mlaPrepCase(shapes, c, n, act, cacheDT))
	}
	cs = append(cs, kvGatherCase(shapes, width, o.Ctx, act, cacheDT))
	rowsConv := 4096 // rows of 4096 elements: 16M elements
	if !gpu {
		rowsConv = 1024
	}
	if o.Quick {
		rowsConv = 16
	}
	for _, p := range [][2]backend.DType{{backend.BF16, backend.F32}, {backend.F32, backend.BF16}, {backend.F8E4M3, backend.BF16}} {
		cs = append(cs, convertCase(shapes, rowsConv, p[0], p[1]))
	}
	return cs
}

// decodeRows are the batch sizes of per-sequence kernels at decode time (1 and the decode batch).
func decodeRows(o KernelOptions) []int {
	if o.DecodeBatch == 1 {
		return []int{1}
	}
	return []int{1, o.DecodeBatch}
}

// randWeight allocates a weight [n, k] of dt (fp8: with 128x128 block scales), values about
// 1/sqrt(k). key != "": one copy for every input set.
func (a *arena) randWeight(key string, n, k int64, dt backend.DType) backend.Weight {
	w := backend.Weight{Rows: n, Cols: k, LD: k, DType: dt}
	s := float32(1 / math.Sqrt(float64(k)))
	if dt == backend.F8E4M3 {
		s = 1
	}
	if key != "" {
		w.Data = a.sharedRand(key, dt, n*k, s)
	} else {
		w.Data = a.rand(dt, n*k, s)
	}
	if dt == backend.F8E4M3 {
		ns := ceilDiv(n, 128) * ceilDiv(k, 128)
		sc := make([]float32, ns)
		seed := a.nextSeed()
		if key != "" {
			seed = keySeed(a.base, key+"/scale")
		}
		for i := range sc {
			sc[i] = float32((1 + 0.5*float64(unit(seed, uint64(i)))) / math.Sqrt(float64(k)))
		}
		if key != "" {
			if p, ok := a.shared[key+"/scale"]; ok {
				w.Scale = p
			} else {
				w.Scale = a.put(f32bytes(sc))
				a.shared[key+"/scale"] = w.Scale
			}
		} else {
			w.Scale = a.put(f32bytes(sc))
		}
		w.BlockRows, w.BlockCols = 128, 128
	}
	return w
}

func weightBytes(n, k int64, dt backend.DType) int64 {
	b := n * k * dt.Size()
	if dt == backend.F8E4M3 {
		b += ceilDiv(n, 128) * ceilDiv(k, 128) * 4
	}
	return b
}

func linearCase(shapes, proj string, N, K int64, wdt backend.DType, mode int32, m int, act, ydt backend.DType) kcase {
	v := dtName(wdt)
	if mode == backend.LinearW8A8 {
		v = "fp8-w8a8"
	}
	tol := 1e-2
	if ydt == backend.F32 && act == backend.F32 {
		tol = 2e-3
	}
	if mode == backend.LinearW8A8 {
		tol = 3e-2
	}
	kc := kcase{kernel: "linear", shapes: shapes, rows: m, tol: tol,
		name:  fmt.Sprintf("%s [%dx%d] %s m=%d", proj, N, K, v, m),
		bytes: float64(weightBytes(N, K, wdt) + int64(m)*K*act.Size() + int64(m)*N*ydt.Size()),
		flops: 2 * float64(m) * float64(N) * float64(K)}
	if mode == backend.LinearW8A8 {
		kc.note = "w8a8: our time includes quantizing x per token per 128 channels on every call (the fp8 baseline's x is quantized once, untimed)"
	}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		w := a.randWeight("", N, K, wdt)
		M := int64(rows)
		x := a.rand(act, M*K, 1)
		y := a.out(M * N * ydt.Size())
		args := &backend.LinearArgs{X: x, Y: y, W: w, M: M, LDX: K, LDY: N, XDType: act, YDType: ydt, Mode: mode}
		if !a.be.LinearSupported(args) {
			return nil, fmt.Errorf("linear %s: not supported by the %s backend", kc.name, a.be.Name())
		}
		if ws := a.be.LinearWorkspaceSize(args); ws > 0 {
			args.Workspace = a.alloc(ws)
		}
		be := a.be
		return &kcall{run: func() error { return be.Linear(args) }, outs: []kout{{ptr: y, dt: ydt, rowElems: N, rows: M}},
			scalar: func(r int) ([]int64, []float32, error) { return linearRef(be, args, r) }, lin: args}, nil
	}
	return kc
}

func headMatmulCase(shapes string, c *weights.Config, trans int32, n int, wdt, act backend.DType) kcase {
	heads := int64(c.NumAttentionHeads)
	nope, rope, vd, lat := int64(c.QkNopeHeadDim), int64(c.QkRopeHeadDim), int64(c.VHeadDim), int64(c.KvLoraRank)
	qk := nope + rope
	rowsW := heads * (nope + vd)
	in, out, ldx := nope, lat, qk
	what := "q_nope.W_uk"
	row0 := int64(0)
	if trans == 1 {
		in, out, ldx, what, row0 = lat, vd, lat, "o_lat.W_uv^T", nope
	}
	kc := kcase{kernel: "head_matmul", shapes: shapes, rows: n, tol: 1e-2,
		name:  fmt.Sprintf("%s heads=%d %dx%d %s n=%d", what, heads, in, out, dtName(wdt), n),
		bytes: float64(heads*in*out*wdt.Size()) + float64(int64(n)*heads*(in+out)*act.Size()),
		flops: 2 * float64(n) * float64(heads) * float64(in) * float64(out)}
	if act == backend.F32 && wdt != backend.F8E4M3 {
		kc.tol = 2e-3
	}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		w := a.randWeight("", rowsW, lat, wdt)
		T := int64(rows)
		x := a.rand(act, T*heads*ldx, 1)
		y := a.out(T * heads * out * act.Size())
		args := &backend.HeadMatmulArgs{X: x, Y: y, W: w, NTok: T, NHeads: heads, InDim: in, OutDim: out, Row0: row0,
			HeadStride: nope + vd, LDXTok: heads * ldx, LDXHead: ldx, LDYTok: heads * out, LDYHead: out, Trans: trans,
			XDType: act, YDType: act}
		be := a.be
		return &kcall{run: func() error { return be.HeadMatmul(args) }, outs: []kout{{ptr: y, dt: act, rowElems: heads * out, rows: T}}}, nil
	}
	return kc
}

func mlaDecodeCase(shapes string, c *weights.Config, batch, ctx int, act, cacheDT backend.DType) kcase {
	heads, rope, lat := int64(c.NumAttentionHeads), int64(c.QkRopeHeadDim), int64(c.KvLoraRank)
	width := lat + rope
	const bs = 64
	mb := ceilDiv(int64(ctx), bs)
	kc := kcase{kernel: "mla_decode", shapes: shapes, rows: batch, tol: 1e-2,
		name: fmt.Sprintf("batch=%d ctx=%d heads=%d latent=%d+%d cache=%s", batch, ctx, heads, lat, rope, cacheDT),
		bytes: float64(int64(batch)*int64(ctx)*width*cacheDT.Size()) +
			float64(int64(batch)*heads*(width+lat)*act.Size()),
		flops: float64(batch) * float64(ctx) * float64(heads) * float64(2*width+2*lat)}
	if act == backend.F32 {
		kc.tol = 2e-3
	}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		B := int64(rows)
		qlat := a.rand(act, B*heads*lat, 1)
		qpe := a.rand(act, B*heads*rope, 1)
		cache := a.rand(cacheDT, B*mb*bs*width, 1)
		// Sequence b owns blocks [b*mb, (b+1)*mb), in a shuffled order (a paged cache).
		bt := make([]int32, B*mb)
		for b := int64(0); b < B; b++ {
			perm := permutation(int(mb), uint64(b)+7)
			for j := range perm {
				bt[b*mb+int64(j)] = int32(b*mb) + int32(perm[j])
			}
		}
		lens := make([]int32, B)
		for i := range lens {
			lens[i] = int32(ctx)
		}
		btp, lensp := a.put(i32bytes(bt)), a.put(i32bytes(lens))
		out := a.out(B * heads * lat * act.Size())
		args := &backend.MLADecodeArgs{QLat: qlat, QPE: qpe, Cache: cache, BlockTable: btp, SeqLens: lensp, Out: out,
			Batch: B, NHeads: heads, MaxBlocks: mb, MaxSeqLen: int64(ctx), LDQTok: heads * lat, LDQHead: lat,
			LDQPETok: heads * rope, LDQPEHead: rope, LDOutTok: heads * lat, LDOutHead: lat,
			Scale: float32(1 / math.Sqrt(float64(c.QKHeadDim()))), Latent: int32(lat), Rope: int32(rope), BlockSize: bs,
			QPerSeq: 1, DType: act, CacheDType: cacheDT}
		if ws := a.be.MLADecodeWorkspaceSize(args); ws > 0 {
			args.Workspace = a.alloc(ws)
		}
		be := a.be
		return &kcall{run: func() error { return be.MLADecode(args) }, outs: []kout{{ptr: out, dt: act, rowElems: heads * lat, rows: B}}}, nil
	}
	return kc
}

// permutation of [0, n) from a seed (Fisher-Yates).
func permutation(n int, seed uint64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(splitmix64(seed*0x9e3779b97f4a7c15+uint64(i)) % uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

func mlaPrefillCase(shapes string, c *weights.Config, T int, act backend.DType) kcase {
	heads := int64(c.NumAttentionHeads)
	nope, rope, vd := int64(c.QkNopeHeadDim), int64(c.QkRopeHeadDim), int64(c.VHeadDim)
	qk := nope + rope
	t := float64(T)
	kc := kcase{kernel: "mla_prefill", shapes: shapes, rows: T, tol: 1e-2,
		name:  fmt.Sprintf("tokens=%d causal heads=%d qk=%d v=%d", T, heads, qk, vd),
		bytes: t * float64(heads*(qk+nope+vd+vd)+rope) * float64(act.Size()),
		flops: float64(heads) * t * (t + 1) / 2 * float64(2*qk+2*vd)}
	if act == backend.F32 {
		kc.tol = 2e-3
	}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		n := int64(rows)
		q := a.rand(act, n*heads*qk, 1)
		kv := a.rand(act, n*heads*(nope+vd), 1)
		kpe := a.rand(act, n*rope, 1)
		out := a.out(n * heads * vd * act.Size())
		cu := a.put(i32bytes([]int32{0, int32(n)}))
		args := &backend.MLAPrefillArgs{Q: q, KV: kv, KPE: kpe, Out: out, CuQ: cu, CuK: cu, NSeqs: 1, NHeads: heads,
			MaxQ: n, MaxK: n, LDQTok: heads * qk, LDQHead: qk, LDKVTok: heads * (nope + vd), LDKVHead: nope + vd,
			LDKPE: rope, LDOutTok: heads * vd, LDOutHead: vd, Scale: float32(1 / math.Sqrt(float64(qk))),
			Nope: int32(nope), Rope: int32(rope), V: int32(vd), DType: act}
		if ws := a.be.MLAPrefillWorkspaceSize(args); ws > 0 {
			args.Workspace = a.alloc(ws)
		}
		be := a.be
		return &kcall{run: func() error { return be.MLAPrefill(args) }, outs: []kout{{ptr: out, dt: act, rowElems: heads * vd, rows: n}}}, nil
	}
	return kc
}

func moeGateCase(shapes string, c *weights.Config, n int) kcase {
	E, k := int64(c.NRoutedExperts), int64(c.NumExpertsPerTok)
	kc := kcase{kernel: "moe_gate", shapes: shapes, rows: n, tol: 1e-4,
		name:  fmt.Sprintf("experts=%d top%d groups=%d/%d n=%d", E, k, c.TopkGroup, c.NGroup, n),
		bytes: float64(int64(n)*E*4 + E*4 + int64(n)*k*8)}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		N := int64(rows)
		logits := a.rand(backend.F32, N*E, 4)
		bias := a.rand(backend.F32, E, 0.1)
		ids := a.out(N * k * 4)
		wts := a.out(N * k * 4)
		args := &backend.MoEGateArgs{Logits: logits, Bias: bias, IDs: ids, Weights: wts, N: N, LDLogits: E,
			Scaling: float32(c.RoutedScalingFactor), NExperts: int32(E), TopK: int32(k), NGroup: int32(c.NGroup),
			TopkGroup: int32(c.TopkGroup), Scoring: backend.ScoreSigmoid, Method: backend.TopkNoauxTC, NormTopkProb: 1}
		be := a.be
		return &kcall{run: func() error { return be.MoEGate(args) }, outs: []kout{
			{ptr: ids, dt: backend.I32, rowElems: k, rows: N, ids: true},
			{ptr: wts, dt: backend.F32, rowElems: k, rows: N}}}, nil
	}
	return kc
}

// moeFFNCase: the routed experts of one MoE layer with the real expert count. On a GPU every
// expert has its own weights; on the CPU (memory) descriptors share a pool of distinct experts
// (expert e uses pool[e % P]), chosen so one token's experts never share.
func moeFFNCase(shapes string, c *weights.Config, n int, wdt, act backend.DType, gpu, quick bool) kcase {
	E, k := int64(c.NRoutedExperts), int64(c.NumExpertsPerTok)
	H, I := int64(c.HiddenSize), int64(c.MoeIntermediateSize)
	per := 2*weightBytes(I, H, wdt) + weightBytes(H, I, wdt)
	pool := E
	budget := int64(3 << 30)
	if quick {
		budget = 256 << 20
	}
	if !gpu && pool*per > budget {
		pool = max(budget/per, k)
	}
	// Token t's experts: k distinct ids, distinct modulo the pool too.
	idsFor := func(N int64) []int32 {
		ids := make([]int32, N*k)
		for t := int64(0); t < N; t++ {
			used := map[int64]bool{}
			for j := int64(0); j < k; j++ {
				for r := uint64(0); ; r++ {
					e := int64(splitmix64(uint64(t)*1000003+uint64(j)*7919+r) % uint64(E))
					if !used[e%pool] {
						used[e%pool] = true
						ids[t*k+j] = int32(e)
						break
					}
				}
			}
		}
		return ids
	}
	distinct := map[int32]bool{}
	for _, e := range idsFor(int64(n)) {
		distinct[e] = true
	}
	note := ""
	if pool < E {
		note = fmt.Sprintf("%d experts share %d distinct weight sets (host memory)", E, pool)
	}
	kc := kcase{kernel: "moe_ffn", shapes: shapes, rows: n, tol: 1e-2, note: note,
		name: fmt.Sprintf("experts=%d top%d hidden=%d inter=%d %s n=%d (%d experts hit)", E, k, H, I, dtName(wdt), n,
			len(distinct)),
		bytes: float64(int64(len(distinct))*per) + float64(int64(n)*H*(act.Size()+4)),
		flops: 6 * float64(n) * float64(k) * float64(H) * float64(I)}
	if act == backend.F32 && wdt == backend.BF16 {
		kc.tol = 2e-3
	}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		N := int64(rows)
		x := a.rand(act, N*H, 1)
		ids := idsFor(N)
		wv := make([]float32, N*k)
		for i := range wv {
			wv[i] = 0.1 + 0.9*float32(splitmix64(uint64(i)+99)%1000)/1000
		}
		need := map[int64]bool{}
		for _, e := range ids {
			need[int64(e)%pool] = true
		}
		// The pool's weight sets; a reference build makes only those its rows route to.
		sets := map[int64][3]backend.Weight{}
		get := func(p int64) [3]backend.Weight {
			if s, ok := sets[p]; ok {
				return s
			}
			s := [3]backend.Weight{
				a.randWeight(fmt.Sprintf("gate%d", p), I, H, wdt),
				a.randWeight(fmt.Sprintf("up%d", p), I, H, wdt),
				a.randWeight(fmt.Sprintf("down%d", p), H, I, wdt)}
			sets[p] = s
			return s
		}
		full := !a.ref // the benchmark build: the whole pool
		gate, up, down := make([]backend.Weight, E), make([]backend.Weight, E), make([]backend.Weight, E)
		var dummy [3]backend.Weight
		for e := int64(0); e < E; e++ {
			p := e % pool
			if !full && !need[p] {
				if dummy[0].Data == 0 {
					dummy = get(p)
				}
				gate[e], up[e], down[e] = dummy[0], dummy[1], dummy[2]
				continue
			}
			s := get(p)
			gate[e], up[e], down[e] = s[0], s[1], s[2]
		}
		tab := func(ws []backend.Weight) uintptr {
			return a.put(unsafe.Slice((*byte)(unsafe.Pointer(&ws[0])), len(ws)*int(unsafe.Sizeof(ws[0]))))
		}
		y := a.out(N * H * 4)
		args := &backend.MoEFFNArgs{X: x, IDs: a.put(i32bytes(ids)), Weights: a.put(f32bytes(wv)), Gate: tab(gate),
			Up: tab(up), Down: tab(down), Y: y, N: N, Hidden: H, Inter: I, LDX: H, LDY: H, NExperts: int32(E),
			TopK: int32(k), XDType: act, YDType: backend.F32}
		if ws := a.be.MoEFFNWorkspaceSize(args); ws > 0 {
			args.Workspace = a.alloc(ws)
		}
		be := a.be
		return &kcall{run: func() error { return be.MoEFFN(args) }, outs: []kout{{ptr: y, dt: backend.F32, rowElems: H, rows: N}}}, nil
	}
	return kc
}

func rmsnormCase(shapes string, H int64, n int, act backend.DType) kcase {
	kc := kcase{kernel: "rmsnorm", shapes: shapes, rows: n, tol: 1e-2,
		name:  fmt.Sprintf("dim=%d +residual n=%d", H, n),
		bytes: float64(int64(n)*H*(4+4+4+act.Size()) + H*2),
		flops: 0}
	if act == backend.F32 {
		kc.tol = 1e-5
	}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		N := int64(rows)
		x := a.rand(backend.F32, N*H, 1)
		res := a.rand(backend.F32, N*H, 1)
		w := a.rand(backend.BF16, H, 1)
		out := a.out(N * H * act.Size())
		args := &backend.RMSNormArgs{X: x, Residual: res, Weight: w, Out: out, N: N, Dim: H, LDX: H, LDResidual: H,
			LDOut: H, Eps: 1e-6, XDType: backend.F32, WDType: backend.BF16, OutDType: act}
		be := a.be
		xs := make([]float32, 0)
		call := &kcall{run: func() error { return be.RMSNorm(args) }, outs: []kout{{ptr: out, dt: act, rowElems: H, rows: N}}}
		// The Go reference (CPU runs) needs x before the call (it is updated in place): read it now.
		if be.HostIsDevice() {
			if b, err := download(be, x, N*H*4); err == nil {
				xs = toF32(b, backend.F32)
			}
		}
		call.scalar = func(r int) ([]int64, []float32, error) {
			rb, err := download(be, res, int64(r)*H*4)
			if err != nil {
				return nil, nil, err
			}
			wb, err := download(be, w, H*2)
			if err != nil {
				return nil, nil, err
			}
			rs, ws := toF32(rb, backend.F32), toF32(wb, backend.BF16)
			out := make([]float32, int64(r)*H)
			for t := int64(0); t < int64(r); t++ {
				ss := 0.0
				v := make([]float64, H)
				for i := int64(0); i < H; i++ {
					v[i] = float64(xs[t*H+i] + rs[t*H+i])
					ss += v[i] * v[i]
				}
				inv := 1 / math.Sqrt(ss/float64(H)+1e-6)
				for i := int64(0); i < H; i++ {
					out[t*H+i] = float32(float64(ws[i]) * v[i] * inv)
				}
			}
			return nil, out, nil
		}
		return call, nil
	}
	return kc
}

func ropeCase(shapes string, c *weights.Config, n int, act backend.DType) kcase {
	heads := int64(c.NumAttentionHeads)
	nope, rope := int64(c.QkNopeHeadDim), int64(c.QkRopeHeadDim)
	qk := nope + rope
	kc := kcase{kernel: "rope", shapes: shapes, rows: n, tol: 1e-2,
		name:  fmt.Sprintf("q heads=%d rope=%d n=%d", heads, rope, n),
		bytes: float64(2 * int64(n) * heads * rope * act.Size())}
	if act == backend.F32 {
		kc.tol = 1e-4
	}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		N := int64(rows)
		x := a.rand(act, N*heads*qk, 1)
		pos := make([]int32, N)
		for i := range pos {
			pos[i] = int32(splitmix64(uint64(i)) % 4096)
		}
		args := &backend.RopeArgs{X: x, Pos: a.put(i32bytes(pos)), InvFreq: a.put(f32bytes(ropeInvFreq(rope))), NTok: N,
			NHeads: heads, LDTok: heads * qk, LDHead: qk, Offset: nope, MScale: 1, RopeDim: int32(rope), DType: act}
		be := a.be
		return &kcall{run: func() error { return be.Rope(args) }, outs: []kout{{ptr: x, dt: act, rowElems: heads * qk, rows: N}}}, nil
	}
	return kc
}

// ropeInvFreq is the plain (no YaRN) inverse frequencies of a rope part of rope elements.
func ropeInvFreq(rope int64) []float32 {
	inv := make([]float32, rope/2)
	for i := range inv {
		inv[i] = float32(math.Pow(10000, -2*float64(i)/float64(rope)))
	}
	return inv
}

func siluMulCase(shapes string, I int64, n int, act backend.DType) kcase {
	kc := kcase{kernel: "silu_mul", shapes: shapes, rows: n, tol: 1e-2,
		name: fmt.Sprintf("dim=%d n=%d", I, n), bytes: float64(3 * int64(n) * I * act.Size())}
	if act == backend.F32 {
		kc.tol = 1e-5
	}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		N := int64(rows)
		g, u := a.rand(act, N*I, 3), a.rand(act, N*I, 1)
		out := a.out(N * I * act.Size())
		args := &backend.SiluMulArgs{Gate: g, Up: u, Out: out, N: N, Dim: I, LDGate: I, LDUp: I, LDOut: I, DType: act}
		be := a.be
		return &kcall{run: func() error { return be.SiluMul(args) }, outs: []kout{{ptr: out, dt: act, rowElems: I, rows: N}},
			scalar: func(r int) ([]int64, []float32, error) {
				gb, err := download(be, g, int64(r)*I*act.Size())
				if err != nil {
					return nil, nil, err
				}
				ub, err := download(be, u, int64(r)*I*act.Size())
				if err != nil {
					return nil, nil, err
				}
				gs, us := toF32(gb, act), toF32(ub, act)
				out := make([]float32, len(gs))
				for i, x := range gs {
					out[i] = float32(float64(x) / (1 + math.Exp(-float64(x))) * float64(us[i]))
				}
				return nil, out, nil
			}}, nil
	}
	return kc
}

func embedCase(shapes string, V, H int64, n int) kcase {
	kc := kcase{kernel: "embed", shapes: shapes, rows: n, tol: 1e-6,
		name: fmt.Sprintf("table=%dx%d bf16 n=%d", V, H, n), bytes: float64(int64(n) * H * (2 + 4))}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		N := int64(rows)
		table := backend.Weight{Data: a.sharedRand("table", backend.BF16, V*H, 1), Rows: V, Cols: H, LD: H, DType: backend.BF16}
		ids := make([]int32, N)
		for i := range ids {
			ids[i] = int32(splitmix64(uint64(i)+5) % uint64(V))
		}
		out := a.out(N * H * 4)
		args := &backend.EmbedArgs{IDs: a.put(i32bytes(ids)), Out: out, Table: table, N: N, LDOut: H, OutDType: backend.F32}
		be := a.be
		return &kcall{run: func() error { return be.Embed(args) }, outs: []kout{{ptr: out, dt: backend.F32, rowElems: H, rows: N}},
			scalar: func(r int) ([]int64, []float32, error) {
				var out []float32
				for _, id := range ids[:r] {
					b, err := download(be, table.Data+uintptr(int64(id)*H*2), H*2)
					if err != nil {
						return nil, nil, err
					}
					out = append(out, toF32(b, backend.BF16)...)
				}
				return nil, out, nil
			}}, nil
	}
	return kc
}

func argmaxCase(shapes string, V int64, n int) kcase {
	kc := kcase{kernel: "argmax", shapes: shapes, rows: n, name: fmt.Sprintf("vocab=%d n=%d", V, n),
		bytes: float64(int64(n) * (V*4 + 4))}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		N := int64(rows)
		logits := a.rand(backend.F32, N*V, 10)
		out := a.out(N * 4)
		args := &backend.ArgmaxArgs{Logits: logits, Out: out, N: N, Vocab: V, LD: V}
		be := a.be
		return &kcall{run: func() error { return be.Argmax(args) }, outs: []kout{{ptr: out, dt: backend.I32, rowElems: 1, rows: N, ids: true}},
			scalar: func(r int) ([]int64, []float32, error) {
				b, err := download(be, logits, int64(r)*V*4)
				if err != nil {
					return nil, nil, err
				}
				l := toF32(b, backend.F32)
				out := make([]float32, r)
				for t := 0; t < r; t++ {
					best := 0
					for i := 1; i < int(V); i++ {
						if l[int64(t)*V+int64(i)] > l[int64(t)*V+int64(best)] {
							best = i
						}
					}
					out[t] = float32(best)
				}
				return nil, out, nil
			}}, nil
	}
	return kc
}

func sampleCase(shapes string, V int64, n int) kcase {
	// Ids compare exactly but for rows whose uniform draw falls within rounding of a boundary:
	// at most one of the reference rows may differ.
	kc := kcase{kernel: "sample", shapes: shapes, rows: n, tol: 1.0 / refRows,
		name:  fmt.Sprintf("vocab=%d n=%d temp=0.8 top_k=50 top_p=0.95 min_p=0.05", V, n),
		bytes: float64(int64(n) * (V*4 + 24))}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		N := int64(rows)
		logits := a.rand(backend.F32, N*V, 10)
		temp, topk, topp, minp := make([]float32, N), make([]int32, N), make([]float32, N), make([]float32, N)
		uni := make([]float32, N)
		for i := range temp {
			temp[i], topk[i], topp[i], minp[i] = 0.8, 50, 0.95, 0.05
			uni[i] = float32(splitmix64(uint64(i)+3)%1000000) / 1e6
		}
		out := a.out(N * 4)
		args := &backend.SampleArgs{Logits: logits, Temperature: a.put(f32bytes(temp)), TopK: a.put(i32bytes(topk)),
			TopP: a.put(f32bytes(topp)), MinP: a.put(f32bytes(minp)), Uniform: a.put(f32bytes(uni)), Out: out, N: N,
			Vocab: V, LD: V}
		if ws := a.be.SampleWorkspaceSize(args); ws > 0 {
			args.Workspace = a.alloc(ws)
		}
		be := a.be
		return &kcall{run: func() error { return be.Sample(args) }, outs: []kout{{ptr: out, dt: backend.I32, rowElems: 1, rows: N, ids: true}}}, nil
	}
	return kc
}

// cacheAndSlots makes a random cache of nSlots rows of width and n distinct slots in it, shuffled
// by seed (the same on every backend and input set).
func (a *arena) cacheAndSlots(nSlots, n, width int64, cacheDT backend.DType, seed uint64) (cache, slots uintptr) {
	perm := permutation(int(nSlots), seed)
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(perm[i])
	}
	return a.rand(cacheDT, nSlots*width, 1), a.put(i32bytes(s))
}

// kvStoreCase: n rows into a cache of 4n slots, each to a distinct random slot.
func kvStoreCase(shapes string, width int64, n int, act, cacheDT backend.DType) kcase {
	slotsN := int64(4 * n)
	kc := kcase{kernel: "kv_store", shapes: shapes, rows: n, tol: 1e-6,
		name:  fmt.Sprintf("width=%d n=%d %s->%s", width, n, act, cacheDT),
		bytes: float64(int64(n) * width * (act.Size() + cacheDT.Size()))}
	if act != cacheDT {
		kc.tol = 1e-2
	}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		// The whole cache is the output; the reference stores every row too (rows is ignored).
		N := int64(n)
		src := a.rand(act, N*width, 1)
		cache, slots := a.cacheAndSlots(slotsN, N, width, cacheDT, 17)
		args := &backend.KVStoreArgs{Src: src, Slots: slots, Cache: cache, N: N, LDSrc: width, Width: width,
			SrcDType: act, CacheDType: cacheDT}
		be := a.be
		return &kcall{run: func() error { return be.KVStore(args) }, outs: []kout{{ptr: cache, dt: cacheDT, rowElems: width, rows: slotsN}}}, nil
	}
	return kc
}

// mlaPrepCase: MLA's prologue on n rows of the stacked [q_a | kv_a] projection (the q_a norm,
// the kv_a norm, k_pe's rope, the store) into a cache of 4n slots, each row to a distinct slot.
func mlaPrepCase(shapes string, c *weights.Config, n int, act, cacheDT backend.DType) kcase {
	qr, lat, rope := int64(c.QLoraRank), int64(c.KvLoraRank), int64(c.QkRopeHeadDim)
	if !c.HasQLora {
		qr = 0
	}
	width, slotsN := lat+rope, int64(4*n)
	ld := qr + width
	kc := kcase{kernel: "mla_prep", shapes: shapes, rows: n, tol: 1e-2,
		name:  fmt.Sprintf("q=%d latent=%d rope=%d n=%d %s->%s", qr, lat, rope, n, act, cacheDT),
		bytes: float64(int64(n)*(2*ld*act.Size()+width*cacheDT.Size()) + (qr+lat)*2)}
	if act == backend.F32 && cacheDT == backend.F32 {
		kc.tol = 1e-4
	}
	kc.build = func(a *arena, rows int) (*kcall, error) {
		// The whole cache is an output; the reference prepares every row too (rows is ignored).
		N := int64(n)
		x := a.rand(act, N*ld, 1)
		cache, slots := a.cacheAndSlots(slotsN, N, width, cacheDT, 29)
		pos := make([]int32, N)
		for i := range pos {
			pos[i] = int32(splitmix64(uint64(i)) % 4096)
		}
		args := &backend.MLAPrepArgs{Q: x, KV: x + uintptr(qr*act.Size()),
			QWeight:  a.sharedRand("q_a_layernorm", backend.BF16, max(qr, 1), 1),
			KVWeight: a.sharedRand("kv_a_layernorm", backend.BF16, lat, 1), Pos: a.put(i32bytes(pos)),
			InvFreq: a.put(f32bytes(ropeInvFreq(rope))), Slots: slots, Cache: cache, N: N, QDim: qr,
			Latent: lat, LDQ: ld, LDKV: ld, Eps: 1e-6, MScale: 1, RopeDim: int32(rope), DType: act,
			QWDType: backend.BF16, KVWDType: backend.BF16, CacheDType: cacheDT}
		be := a.be
		return &kcall{run: func() error { return be.MLAPrep(args) }, outs: []kout{{ptr: x, dt: act, rowElems: ld, rows: N},
			{ptr: cache, dt: cacheDT, rowElems: width, rows: slotsN}}}, nil
	}
	return kc
}

func kvGatherCase(shapes string, width int64, n int, act, cacheDT backend.DType) kcase {
	const bs = 64
	nb := ceilDiv(int64(n), bs)
	kc := kcase{kernel: "kv_gather", shapes: shapes, rows: n, tol: 1e-6,
		name:  fmt.Sprintf("width=%d positions=%d block=%d %s->%s", width, n, bs, cacheDT, act),
		bytes: float64(int64(n) * width * (act.Size() + cacheDT.Size()))}
	if act != cacheDT {
		kc.tol = 1e-2
	}
	perm := permutation(int(nb), 23)
	kc.build = func(a *arena, rows int) (*kcall, error) {
		N := int64(rows)
		cache := a.rand(cacheDT, nb*bs*width, 1)
		bt := make([]int32, nb)
		for i := range bt {
			bt[i] = int32(perm[i])
		}
		dst := a.out(N * width * act.Size())
		args := &backend.KVGatherArgs{Cache: cache, BlockTable: a.put(i32bytes(bt)), Dst: dst, N: N, Width: width,
			LDDst: width, BlockSize: bs, CacheDType: cacheDT, DstDType: act}
		be := a.be
		return &kcall{run: func() error { return be.KVGather(args) }, outs: []kout{{ptr: dst, dt: act, rowElems: width, rows: N}}}, nil
	}
	return kc
}

func convertCase(shapes string, rows int, src, dst backend.DType) kcase {
	const w = 4096
	kc := kcase{kernel: "convert", shapes: shapes, rows: rows, tol: 1e-6,
		name:  fmt.Sprintf("%s->%s n=%d", dtName(src), dtName(dst), rows*w),
		bytes: float64(int64(rows) * w * (src.Size() + dst.Size()))}
	if dst == backend.BF16 || dst == backend.F16 {
		kc.tol = 5e-3
	}
	kc.build = func(a *arena, r int) (*kcall, error) {
		n := int64(r) * w
		s := a.rand(src, n, 1)
		d := a.out(n * dst.Size())
		args := &backend.ConvertArgs{Src: s, Dst: d, N: n, SrcDType: src, DstDType: dst}
		be := a.be
		return &kcall{run: func() error { return be.Convert(args) }, outs: []kout{{ptr: d, dt: dst, rowElems: w, rows: int64(r)}},
			scalar: func(rr int) ([]int64, []float32, error) {
				b, err := download(be, s, int64(rr)*w*src.Size())
				if err != nil {
					return nil, nil, err
				}
				return nil, toF32(b, src), nil
			}}, nil
	}
	return kc
}

// linearRef is a plain Go linear (float64 sums) of the first r rows of a call's inputs, at up to
// 64 output columns spread over the weight's rows (large weights: a sample, not all of it).
func linearRef(be backend.Backend, a *backend.LinearArgs, r int) ([]int64, []float32, error) {
	N, K := a.W.Rows, a.W.Cols
	xb, err := download(be, a.X, int64(r)*K*a.XDType.Size())
	if err != nil {
		return nil, nil, err
	}
	x := toF32(xb, a.XDType)
	br, bc := int64(a.W.BlockRows), int64(a.W.BlockCols)
	if a.W.DType == backend.F8E4M3 && a.Mode == backend.LinearW8A8 {
		// act_quant: per token, per block of bc inputs: e4m3(x / s) * s, s = amax / 448.
		for t := 0; t < r; t++ {
			for j0 := int64(0); j0 < K; j0 += bc {
				amax := 0.0
				for j := j0; j < min(j0+bc, K); j++ {
					amax = math.Max(amax, math.Abs(float64(x[int64(t)*K+j])))
				}
				s := float32(amax / 448)
				if s == 0 {
					continue
				}
				for j := j0; j < min(j0+bc, K); j++ {
					i := int64(t)*K + j
					x[i] = weights.E4M3ToF32(weights.F32ToE4M3(x[i]/s)) * s
				}
			}
		}
	}
	cols := []int64{}
	step := max(N/64, 1)
	for i := int64(0); i < N; i += step {
		cols = append(cols, i)
	}
	if cols[len(cols)-1] != N-1 {
		cols = append(cols, N-1)
	}
	var idx []int64
	var want []float32
	ws := int64(a.W.DType.Size())
	res := make([]float64, r*len(cols))
	for ci, i := range cols {
		wb, err := download(be, a.W.Data+uintptr(i*a.W.LD*ws), K*ws)
		if err != nil {
			return nil, nil, err
		}
		w := toF32(wb, a.W.DType)
		if a.W.DType == backend.F8E4M3 {
			nsc := ceilDiv(K, bc)
			sb, err := download(be, a.W.Scale+uintptr((i/br)*nsc*4), nsc*4)
			if err != nil {
				return nil, nil, err
			}
			sc := toF32(sb, backend.F32)
			for j := range w {
				w[j] *= sc[int64(j)/bc]
			}
		}
		for t := 0; t < r; t++ {
			s := 0.0
			xr := x[int64(t)*K : int64(t+1)*K]
			for j := range xr {
				s += float64(xr[j]) * float64(w[j])
			}
			res[t*len(cols)+ci] = s
		}
	}
	for t := 0; t < r; t++ {
		for ci, i := range cols {
			idx = append(idx, int64(t)*N+i)
			want = append(want, float32(res[t*len(cols)+ci]))
		}
	}
	return idx, want, nil
}
