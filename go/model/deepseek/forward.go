package deepseek

import (
	"fmt"
	"math"
	"os"

	"github.com/deepgo/deepgo/go/backend"
)

// What a request wants back from a step.
const (
	LogitsNone = iota // only fill the cache (a prefill chunk that is not the last)
	LogitsLast        // the last token's logits (the next-token distribution)
	LogitsAll         // every token's logits
)

// Request is one sequence's share of a step: new tokens appended after Seq.Len cached ones.
type Request struct {
	Seq    *Sequence
	Tokens []int32
	Logits int
	// Argmax (with Logits == LogitsLast, through StepIDs only) picks the greedy next token on
	// the device (argmax, ties to the lowest id) and downloads only its id, not the logits row.
	Argmax bool
}

// Step runs one forward pass over several sequences (continuous batching: prefill chunks and
// single-token decodes together) and returns, per request, the logits rows it asked for
// (rows x vocab, row-major; nil for LogitsNone). On success each Seq.Len grows by its tokens.
func (m *Model) Step(reqs []Request) ([][]float32, error) {
	for i, r := range reqs {
		if r.Argmax {
			return nil, fmt.Errorf("step: request %d asks for a device argmax: use StepIDs", i)
		}
	}
	out, _, err := m.StepIDs(reqs)
	return out, err
}

// StepIDs is Step for requests that may set Argmax. For such a request ids[i] is the token with
// the largest logit (ties: the lowest id) and out[i] is nil, unless its row holds a NaN, a +Inf
// or only -Inf: then ids[i] is -1 and out[i] is the logits row, so that the caller's host rules
// decide (go/sampling reports those rows as errors). For the other requests ids[i] is -1 and
// out[i] is as from Step.
func (m *Model) StepIDs(reqs []Request) ([][]float32, []int32, error) {
	for i, r := range reqs {
		if r.Argmax && r.Logits != LogitsLast {
			return nil, nil, fmt.Errorf("step: request %d: Argmax needs Logits == LogitsLast", i)
		}
	}
	plan, err := m.plan(reqs)
	if err != nil {
		return nil, nil, err
	}
	if err := m.upload(plan); err != nil {
		return nil, nil, err
	}
	ran, err := m.replayDecode(plan)
	if err != nil {
		return nil, nil, err
	}
	if !ran {
		if err := m.forward(plan); err != nil {
			return nil, nil, err
		}
	}
	out, ids, err := m.collectLogits(plan, ran)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range reqs {
		r.Seq.Len += len(r.Tokens)
	}
	return out, ids, nil
}

// Graph is a captured step (a CUDA graph) that a backend can replay.
type Graph interface {
	Launch() error
	Destroy() error
}

// graphBackend is a backend that can capture the kernels that record queues into a Graph
// (go/backend/cuda). The model needs nothing else from it.
type graphBackend interface {
	CaptureGraph(record func() error) (interface {
		Launch() error
		Destroy() error
	}, error)
}

// replayDecode runs a decode-only step through a CUDA graph captured once per batch size: the
// whole forward pass and the lm_head over every row, with every per-step value (tokens,
// positions, slots, block tables, lengths, selected rows) in the device buffers that upload
// filled. The attention's launch shape is fixed by MaxContext (mla_decode's split count depends
// only on max_seq_len), so one graph serves every length. It reports false when the step does not
// qualify (prefill rows, rows without logits, no capture on this backend, DEEPGO_CUDA_GRAPH=0),
// and then the caller runs the step kernel by kernel.
func (m *Model) replayDecode(p *stepPlan) (bool, error) {
	gb, ok := m.be.(graphBackend)
	if !ok || m.ws.noGraph || p.nPre > 0 || len(p.logitRows) != p.rows || p.rows > m.Opts.MaxLogitRows {
		return false, nil
	}
	key := p.rows
	if p.allPick {
		key |= 1 << 30 // this graph also picks every row's argmax
	}
	g := m.ws.graphs[key]
	if g == nil {
		fixed := *p
		fixed.maxLen = m.Opts.MaxContext
		n := int64(p.rows)
		cg, err := gb.CaptureGraph(func() error {
			if err := m.forward(&fixed); err != nil {
				return err
			}
			if err := m.logitsKernels(n); err != nil {
				return err
			}
			if fixed.allPick {
				return m.pickKernels(0, n, fixed.logitPick)
			}
			return nil
		})
		if err != nil {
			// Capture is an optimisation: run this and later steps kernel by kernel.
			m.ws.noGraph = true
			m.ws.graphErr = err
			if m.ws.graphVerbose {
				fmt.Fprintf(os.Stderr, "deepseek: decode graph capture failed, running kernel by kernel: %v\n", err)
			}
			return false, nil
		}
		if m.ws.graphVerbose {
			fmt.Fprintf(os.Stderr, "deepseek: captured the decode step for %d rows\n", p.rows)
		}
		if m.ws.graphs == nil {
			m.ws.graphs = map[int]Graph{}
		}
		g = cg
		m.ws.graphs[key] = g
	}
	if err := g.Launch(); err != nil {
		return false, fmt.Errorf("step: graph launch: %w", err)
	}
	return true, nil
}

// stepPlan is a step laid out in rows: prefill requests first, then single-token decodes.
type stepPlan struct {
	reqs            []Request
	order           []int // request index of each prefill/decode group member, in row order
	nPre, nDec      int   // requests in each group
	rowsPre, rows   int   // token rows of the prefill group, and in all
	keysPre         int   // cached + new tokens of the prefill group
	maxQ, maxK      int
	maxLen          int
	tok, pos, slots []int32
	cuQ, cuK        []int32
	gbt, btab, lens []int32
	rowOf           []int // first row of each request
	logitRows       []int32
	logitOwner      []int  // request of each logits row
	logitPick       []bool // the row's request wants the device argmax
	anyPick         bool
	allPick         bool // every logits row is picked on the device
}

func (m *Model) plan(reqs []Request) (*stepPlan, error) {
	o := m.Opts
	if len(reqs) == 0 {
		return nil, fmt.Errorf("step: no requests")
	}
	if len(reqs) > o.MaxBatch {
		return nil, fmt.Errorf("step: %d sequences, the model was loaded for at most %d", len(reqs), o.MaxBatch)
	}
	p := &stepPlan{reqs: reqs, rowOf: make([]int, len(reqs))}
	for i, r := range reqs {
		n := len(r.Tokens)
		if r.Seq == nil || n == 0 {
			return nil, fmt.Errorf("step: request %d has no sequence or no tokens", i)
		}
		if r.Seq.Len+n > o.MaxContext {
			return nil, fmt.Errorf("step: sequence of %d tokens exceeds the context of %d", r.Seq.Len+n, o.MaxContext)
		}
		for _, t := range r.Tokens {
			if t < 0 || int(t) >= m.Cfg.VocabSize {
				return nil, fmt.Errorf("step: token id %d outside the vocabulary [0, %d)", t, m.Cfg.VocabSize)
			}
		}
		p.rows += n
		if n > 1 {
			p.nPre++
			p.rowsPre += n
			p.keysPre += r.Seq.Len + n
		}
	}
	if p.rows > o.MaxTokens {
		return nil, fmt.Errorf("step: %d tokens, the model was loaded for at most %d per step", p.rows, o.MaxTokens)
	}
	if p.keysPre > m.ws.maxKeys {
		return nil, fmt.Errorf("step: prefill of %d keys exceeds the %d the workspace holds", p.keysPre, m.ws.maxKeys)
	}
	for i, r := range reqs {
		if len(r.Tokens) > 1 {
			p.order = append(p.order, i)
		}
	}
	for i, r := range reqs {
		if len(r.Tokens) == 1 {
			p.order = append(p.order, i)
		}
	}
	p.nDec = len(reqs) - p.nPre
	for _, i := range p.order {
		r := reqs[i]
		if err := m.KV.Reserve(r.Seq, r.Seq.Len+len(r.Tokens)); err != nil {
			return nil, err
		}
	}
	mb := m.ws.maxBlocks
	p.cuQ, p.cuK = []int32{0}, []int32{0}
	p.btab = make([]int32, p.nDec*mb)
	p.gbt = make([]int32, p.nPre*mb)
	for gi, i := range p.order {
		r := reqs[i]
		s := r.Seq
		p.rowOf[i] = len(p.tok)
		n := len(r.Tokens)
		for j, t := range r.Tokens {
			at := s.Len + j
			p.tok = append(p.tok, t)
			p.pos = append(p.pos, int32(at))
			p.slots = append(p.slots, s.Blocks[at/m.KV.BlockSize]*int32(m.KV.BlockSize)+int32(at%m.KV.BlockSize))
		}
		if gi < p.nPre {
			p.cuQ = append(p.cuQ, p.cuQ[len(p.cuQ)-1]+int32(n))
			p.cuK = append(p.cuK, p.cuK[len(p.cuK)-1]+int32(s.Len+n))
			copy(p.gbt[gi*mb:], s.Blocks)
			p.maxQ = max(p.maxQ, n)
			p.maxK = max(p.maxK, s.Len+n)
		} else {
			d := gi - p.nPre
			copy(p.btab[d*mb:], s.Blocks)
			p.lens = append(p.lens, int32(s.Len+n))
			p.maxLen = max(p.maxLen, s.Len+n)
		}
	}
	for i, r := range reqs {
		switch r.Logits {
		case LogitsLast:
			p.logitRows = append(p.logitRows, int32(p.rowOf[i]+len(r.Tokens)-1))
			p.logitOwner = append(p.logitOwner, i)
			p.logitPick = append(p.logitPick, r.Argmax)
			p.anyPick = p.anyPick || r.Argmax
		case LogitsAll:
			for j := range r.Tokens {
				p.logitRows = append(p.logitRows, int32(p.rowOf[i]+j))
				p.logitOwner = append(p.logitOwner, i)
				p.logitPick = append(p.logitPick, false)
			}
		}
	}
	p.allPick = len(p.logitRows) > 0
	for _, pk := range p.logitPick {
		p.allPick = p.allPick && pk
	}
	return p, nil
}

// upload packs every per-step int32 array (tokens, positions, slots, cu_q/cu_k, block tables,
// lengths, the first chunk of logits rows) into the pinned staging buffer at fixed offsets and
// sends it in one asynchronous copy, ordered before the step's kernels on the stream.
func (m *Model) upload(p *stepPlan) error {
	w := &m.ws
	if w.uploadPending {
		// The previous step's copy may still be reading the staging buffer (a step without
		// logits never waited): wait before overwriting it.
		if err := m.be.Sync(); err != nil {
			return fmt.Errorf("step: upload: %w", err)
		}
		w.uploadPending = false
	}
	h := w.stepHost
	for _, u := range []struct {
		off int64
		src []int32
	}{{w.offTok, p.tok}, {w.offPos, p.pos}, {w.offSlots, p.slots}, {w.offCuQ, p.cuQ}, {w.offCuK, p.cuK},
		{w.offGbt, p.gbt}, {w.offBtab, p.btab}, {w.offLens, p.lens},
		{w.offSel, p.logitRows[:min(len(p.logitRows), m.Opts.MaxLogitRows)]}} {
		copy(h[u.off:], bytesOf(u.src))
	}
	if err := m.be.UploadAsync(w.stepBuf, h[:w.stepBytes]); err != nil {
		return fmt.Errorf("step: upload: %w", err)
	}
	w.uploadPending = true
	return nil
}

func (m *Model) forward(p *stepPlan) error {
	c, w, be := m.Cfg, &m.ws, m.be
	T, H := int64(p.rows), int64(c.HiddenSize)
	err := be.Embed(&backend.EmbedArgs{IDs: w.tok, Out: w.h, Table: m.embed, N: T, LDOut: H, OutDType: backend.F32})
	if err != nil {
		return err
	}
	for l := range m.lays {
		ly := &m.lays[l]
		// x = norm(h += d): the previous layer's FFN output joins the residual stream here.
		res := w.d
		if l == 0 {
			res = 0
		}
		if err := m.norm(w.h, res, ly.inNorm, w.x, T, H, float32(c.RmsNormEps)); err != nil {
			return fmt.Errorf("layer %d input norm: %w", l, err)
		}
		if err := m.attention(p, l); err != nil {
			return fmt.Errorf("layer %d attention: %w", l, err)
		}
		if err := m.norm(w.h, w.d, ly.postNorm, w.x, T, H, float32(c.RmsNormEps)); err != nil {
			return fmt.Errorf("layer %d post-attention norm: %w", l, err)
		}
		if ly.moe {
			err = m.moe(p, ly)
		} else {
			err = m.mlp(ly.dense, w.x, w.d, T, 0)
		}
		if err != nil {
			return fmt.Errorf("layer %d ffn: %w", l, err)
		}
	}
	return m.norm(w.h, w.d, m.finalNorm, w.x, T, H, float32(c.RmsNormEps))
}

// norm: x := norm(h += res) (res 0: no add), for T rows of width dim.
func (m *Model) norm(h, res uintptr, wt vec, out uintptr, T, dim int64, eps float32) error {
	return m.be.RMSNorm(&backend.RMSNormArgs{X: h, Residual: res, Weight: wt.ptr, Out: out, N: T, Dim: dim,
		LDX: dim, LDResidual: dim, LDOut: dim, Eps: eps, XDType: backend.F32, WDType: wt.dtype,
		OutDType: m.Opts.ActDType})
}

// linear: y[T, w.Rows] (+)= x[T, w.Cols] . W^T with explicit row strides.
func (m *Model) linear(x uintptr, ldx int64, wt backend.Weight, y uintptr, ldy int64, T int64,
	ydt backend.DType, accumulate bool) error {
	a := backend.LinearArgs{X: x, Y: y, Workspace: m.ws.linWS, W: wt, M: T, LDX: ldx, LDY: ldy,
		XDType: m.Opts.ActDType, YDType: ydt, Mode: m.linearMode(wt)}
	if accumulate {
		a.Accumulate = 1
	}
	return m.be.Linear(&a)
}

// mlp: d (+)= down(silu(gate(x)) * up(x)) for T rows. With gate and up stacked, one linear
// writes [gate | up] per row (stride 2I) and silu_mul reads the halves.
func (m *Model) mlp(wt mlpWeights, x, d uintptr, T int64, accumulate int) error {
	act := m.Opts.ActDType
	H, I := int64(m.Cfg.HiddenSize), wt.gate.Rows
	w := &m.ws
	if wt.gateUp.Data != 0 {
		ld := 2 * I
		if err := m.linear(x, H, wt.gateUp, w.g, ld, T, act, false); err != nil {
			return err
		}
		if err := m.be.SiluMul(&backend.SiluMulArgs{Gate: w.g, Up: w.g + uintptr(I*act.Size()), Out: w.g, N: T,
			Dim: I, LDGate: ld, LDUp: ld, LDOut: ld, DType: act}); err != nil {
			return err
		}
		return m.linear(w.g, ld, wt.down, d, H, T, backend.F32, accumulate != 0)
	}
	if err := m.linear(x, H, wt.gate, w.g, I, T, act, false); err != nil {
		return err
	}
	if err := m.linear(x, H, wt.up, w.u, I, T, act, false); err != nil {
		return err
	}
	if err := m.be.SiluMul(&backend.SiluMulArgs{Gate: w.g, Up: w.u, Out: w.g, N: T, Dim: I, LDGate: I,
		LDUp: I, LDOut: I, DType: act}); err != nil {
		return err
	}
	return m.linear(w.g, I, wt.down, d, H, T, backend.F32, accumulate != 0)
}

func (m *Model) moe(p *stepPlan, ly *layer) error {
	c, w, be := m.Cfg, &m.ws, m.be
	T, H, E := int64(p.rows), int64(c.HiddenSize), int64(c.NRoutedExperts)
	if err := m.linear(w.x, H, ly.router, w.rlog, E, T, backend.F32, false); err != nil {
		return err
	}
	ga := backend.MoEGateArgs{Logits: w.rlog, Bias: ly.bias, IDs: w.ids, Weights: w.wts, N: T, LDLogits: E,
		Scaling: float32(c.RoutedScalingFactor), NExperts: int32(E), TopK: int32(c.NumExpertsPerTok),
		NGroup: int32(c.NGroup), TopkGroup: int32(c.TopkGroup)}
	if c.ScoringFunc == "softmax" {
		ga.Scoring = backend.ScoreSoftmax
	}
	switch c.TopkMethod {
	case "greedy":
		ga.Method = backend.TopkGreedy
	case "group_limited_greedy":
		ga.Method = backend.TopkGroupLimitedGreedy
	}
	if c.NormTopkProb {
		ga.NormTopkProb = 1
	}
	fa := backend.MoEFFNArgs{X: w.x, IDs: w.ids, Weights: w.wts, Gate: ly.expGate, Up: ly.expUp,
		Down: ly.expDown, Y: w.d, Workspace: w.moeWS, N: T, Hidden: H, Inter: int64(c.MoeIntermediateSize),
		LDX: H, LDY: H, NExperts: int32(E), TopK: int32(c.NumExpertsPerTok), XDType: m.Opts.ActDType,
		YDType: backend.F32, Mode: m.Opts.LinearMode}
	if ly.nShared > 0 && T <= sharedFusedMaxRows {
		// the shared experts as experts E.. of the S tables, chosen by every token with weight 1
		ga.NShared = int32(ly.nShared)
		fa.Gate, fa.Up, fa.Down = ly.expGateS, ly.expUpS, ly.expDownS
		fa.NExperts += ga.NShared
		fa.TopK += ga.NShared
	}
	if err := be.MoEGate(&ga); err != nil {
		return err
	}
	if ly.hasShared && ga.NShared == 0 {
		if err := m.mlp(ly.shared, w.x, w.d, T, 0); err != nil {
			return err
		}
		fa.Accumulate = 1
	}
	return be.MoEFFN(&fa)
}

func (m *Model) attention(p *stepPlan, l int) error {
	c, w, be := m.Cfg, &m.ws, m.be
	a := &m.lays[l].attn
	act := m.Opts.ActDType
	T, H := int64(p.rows), int64(c.HiddenSize)
	heads, qk := int64(c.NumAttentionHeads), int64(c.QKHeadDim())
	nope, vd := int64(c.QkNopeHeadDim), int64(c.VHeadDim)
	lat := int64(c.KvLoraRank)
	es := act.Size()

	// kv_a -> [c | k_pe] and q_a; one mla_prep normalises q_a and c in place, ropes k_pe and stores
	// [c | k_pe] in the cache (all of it needs only the projections, so it comes before q_b).
	in, err := m.attnProject(a, T)
	if err != nil {
		return err
	}
	cache := m.KV.Layers[l]
	if err := m.mlaPrep(a, in, cache, T); err != nil {
		return err
	}
	if err := m.query(a, in, T); err != nil {
		return err
	}
	if p.nPre > 0 {
		if err := m.prefillAttention(p, l, cache); err != nil {
			return err
		}
	}
	if p.nDec > 0 {
		r0 := int64(p.rowsPre)
		nd := int64(p.nDec)
		qrow := w.q + uintptr(r0*heads*qk*es)
		// q_lat = W_kc^T q_nope per head: on W_kc^T's rows where it is bound (absorb.go)
		ha := backend.HeadMatmulArgs{X: qrow, Y: w.qlat, W: a.kvB, NTok: nd, NHeads: heads,
			InDim: nope, OutDim: lat, Row0: 0, HeadStride: nope + vd, LDXTok: heads * qk, LDXHead: qk,
			LDYTok: heads * lat, LDYHead: lat, Trans: 0, XDType: act, YDType: act}
		if a.kcT.Data != 0 {
			ha.W, ha.HeadStride, ha.Trans = a.kcT, lat, 1
		}
		if err := be.HeadMatmul(&ha); err != nil {
			return err
		}
		da := m.decodeArgs(qrow+uintptr(nope*es), nd, int64(p.maxLen))
		da.Cache = cache
		if err := be.MLADecode(&da); err != nil {
			return err
		}
		if err := be.HeadMatmul(&backend.HeadMatmulArgs{X: w.olat, Y: w.ao + uintptr(r0*heads*vd*es), W: a.kvB,
			NTok: nd, NHeads: heads, InDim: lat, OutDim: vd, Row0: nope, HeadStride: nope + vd,
			LDXTok: heads * lat, LDXHead: lat, LDYTok: heads * vd, LDYHead: vd, Trans: 1, XDType: act,
			YDType: act}); err != nil {
			return err
		}
	}
	return m.linear(w.ao, heads*vd, a.o, w.d, H, T, backend.F32, false)
}

// attnIn is where the attention's input projections wrote q_a (0 without q_lora) and kv_a, with
// their row strides.
type attnIn struct {
	qa, kva    uintptr
	ldqa, ldkv int64
}

// attnProject runs q_a (with q_lora) and kv_a on T rows of x. Stacked, one linear writes
// [q_a | kv_a] per row (stride q_lora_rank + width).
func (m *Model) attnProject(a *attnWeights, T int64) (attnIn, error) {
	c, w, act := m.Cfg, &m.ws, m.Opts.ActDType
	H, qr, width := int64(c.HiddenSize), int64(c.QLoraRank), int64(c.KvLoraRank+c.QkRopeHeadDim)
	if a.hasQLora && a.qkvA.Data != 0 {
		ld := qr + width
		in := attnIn{qa: w.qkva, kva: w.qkva + uintptr(qr*act.Size()), ldqa: ld, ldkv: ld}
		return in, m.linear(w.x, H, a.qkvA, w.qkva, ld, T, act, false)
	}
	in := attnIn{kva: w.kva, ldkv: width}
	if a.hasQLora {
		in.qa, in.ldqa = w.qa, qr
		if err := m.linear(w.x, H, a.qA, w.qa, qr, T, act, false); err != nil {
			return in, err
		}
	}
	return in, m.linear(w.x, H, a.kvA, w.kva, width, T, act, false)
}

// mlaPrep normalises q_a (with q_lora) and the latent c in place, ropes k_pe and stores [c | k_pe]
// of the T rows in the layer's cache, in one call.
func (m *Model) mlaPrep(a *attnWeights, in attnIn, cache uintptr, T int64) error {
	c, w, act := m.Cfg, &m.ws, m.Opts.ActDType
	// transformers builds q_a_layernorm and kv_a_layernorm with eps 1e-6 whatever rms_norm_eps says.
	pa := backend.MLAPrepArgs{KV: in.kva, KVWeight: a.kvANorm.ptr, Pos: w.pos, InvFreq: m.invFreq, Slots: w.slots,
		Cache: cache, N: T, Latent: int64(c.KvLoraRank), LDKV: in.ldkv, Eps: 1e-6, MScale: m.Rope.CosSinFactor,
		RopeDim: int32(c.QkRopeHeadDim), DType: act, KVWDType: a.kvANorm.dtype, CacheDType: m.KV.DType}
	if a.hasQLora {
		pa.Q, pa.QWeight, pa.QDim, pa.LDQ, pa.QWDType = in.qa, a.qANorm.ptr, int64(c.QLoraRank), in.ldqa, a.qANorm.dtype
	}
	return m.be.MLAPrep(&pa)
}

// query writes q = q_b(q_a) (q_a normalised by mlaPrep) or q_proj(x) for T rows into w.q, and
// ropes each head's rope part.
func (m *Model) query(a *attnWeights, in attnIn, T int64) error {
	c, w, act := m.Cfg, &m.ws, m.Opts.ActDType
	heads, qk := int64(c.NumAttentionHeads), int64(c.QKHeadDim())
	var err error
	if a.hasQLora {
		err = m.linear(in.qa, in.ldqa, a.qB, w.q, heads*qk, T, act, false)
	} else {
		err = m.linear(w.x, int64(c.HiddenSize), a.q, w.q, heads*qk, T, act, false)
	}
	if err != nil {
		return err
	}
	return m.be.Rope(&backend.RopeArgs{X: w.q, Pos: w.pos, InvFreq: m.invFreq, NTok: T, NHeads: heads,
		LDTok: heads * qk, LDHead: qk, Offset: int64(c.QkNopeHeadDim), MScale: m.Rope.CosSinFactor,
		RopeDim: int32(c.QkRopeHeadDim), DType: act})
}

func (m *Model) prefillAttention(p *stepPlan, l int, cache uintptr) error {
	c, w, be := m.Cfg, &m.ws, m.be
	a := &m.lays[l].attn
	act := m.Opts.ActDType
	es := act.Size()
	lat, rope := int64(c.KvLoraRank), int64(c.QkRopeHeadDim)
	width := lat + rope
	heads := int64(c.NumAttentionHeads)
	nv := int64(c.QkNopeHeadDim + c.VHeadDim)
	mb := int64(m.ws.maxBlocks)
	for i := 0; i < p.nPre; i++ {
		k0, k1 := int64(p.cuK[i]), int64(p.cuK[i+1])
		if err := be.KVGather(&backend.KVGatherArgs{Cache: cache, BlockTable: w.gbt + uintptr(int64(i)*mb*4),
			Dst: w.gath + uintptr(k0*width*es), N: k1 - k0, Width: width, LDDst: width,
			BlockSize: int32(m.KV.BlockSize), CacheDType: m.KV.DType, DstDType: act}); err != nil {
			return err
		}
	}
	K := int64(p.keysPre)
	if err := m.linear(w.gath, width, a.kvB, w.kvb, heads*nv, K, act, false); err != nil {
		return err
	}
	pa := m.prefillArgs(int64(p.nPre), int64(p.maxQ), int64(p.maxK))
	pa.KV, pa.KPE = w.kvb, w.gath+uintptr(lat*es)
	return be.MLAPrefill(&pa)
}

func (m *Model) prefillArgs(nSeqs, maxQ, maxK int64) backend.MLAPrefillArgs {
	c, w := m.Cfg, &m.ws
	heads, qk := int64(c.NumAttentionHeads), int64(c.QKHeadDim())
	nv := int64(c.QkNopeHeadDim + c.VHeadDim)
	return backend.MLAPrefillArgs{Q: w.q, KV: w.kvb, KPE: w.gath, Out: w.ao, CuQ: w.cuQ, CuK: w.cuK,
		Workspace: w.preWS, NSeqs: nSeqs, NHeads: heads, MaxQ: maxQ, MaxK: maxK, LDQTok: heads * qk,
		LDQHead: qk, LDKVTok: heads * nv, LDKVHead: nv, LDKPE: int64(c.KvLoraRank + c.QkRopeHeadDim),
		LDOutTok: heads * int64(c.VHeadDim), LDOutHead: int64(c.VHeadDim), Scale: m.Rope.SoftmaxScale,
		Nope: int32(c.QkNopeHeadDim), Rope: int32(c.QkRopeHeadDim), V: int32(c.VHeadDim), DType: m.Opts.ActDType}
}

func (m *Model) decodeArgs(qpe uintptr, batch, maxLen int64) backend.MLADecodeArgs {
	c, w := m.Cfg, &m.ws
	heads, qk, lat := int64(c.NumAttentionHeads), int64(c.QKHeadDim()), int64(c.KvLoraRank)
	a := backend.MLADecodeArgs{QLat: w.qlat, QPE: qpe, BlockTable: w.btab, SeqLens: w.seqLens, Out: w.olat,
		Workspace: w.decWS, Batch: batch, NHeads: heads, MaxBlocks: int64(w.maxBlocks), MaxSeqLen: maxLen,
		LDQTok: heads * lat, LDQHead: lat, LDQPETok: heads * qk, LDQPEHead: qk, LDOutTok: heads * lat,
		LDOutHead: lat, Scale: m.Rope.SoftmaxScale, Latent: int32(lat), Rope: int32(c.QkRopeHeadDim),
		BlockSize: int32(m.Opts.BlockSize), QPerSeq: 1, DType: m.Opts.ActDType, CacheDType: m.Opts.CacheDType}
	if m.KV != nil {
		a.Cache = m.KV.Layers[0]
	}
	return a
}

// logitsKernels gathers the n selected rows (ids in selRows) of the final normalised x and runs
// the lm_head over them into the logits buffer.
func (m *Model) logitsKernels(n int64) error {
	c, w, be := m.Cfg, &m.ws, m.be
	H, V := int64(c.HiddenSize), int64(c.VocabSize)
	xTable := backend.Weight{Data: w.x, Rows: int64(m.Opts.MaxTokens), Cols: H, LD: H, DType: m.Opts.ActDType}
	if err := be.Embed(&backend.EmbedArgs{IDs: w.selRows, Out: w.xsel, Table: xTable, N: n, LDOut: H,
		OutDType: m.Opts.ActDType}); err != nil {
		return fmt.Errorf("lm_head rows: %w", err)
	}
	if err := m.linear(w.xsel, H, m.head, w.logits, V, n, backend.F32, false); err != nil {
		return fmt.Errorf("lm_head: %w", err)
	}
	return nil
}

// pickKernels runs the device argmax over logits rows [0, n) of the current chunk and gathers,
// for every picked row k (pick[k]), its largest logit next to the id: w.pick holds R int32 ids
// and then R f32 values (R = MaxLogitRows).
func (m *Model) pickKernels(k0, n int64, pick []bool) error {
	w, be := &m.ws, m.be
	V, R := int64(m.Cfg.VocabSize), int64(m.Opts.MaxLogitRows)
	if err := be.Argmax(&backend.ArgmaxArgs{Logits: w.logits, Out: w.pick, N: n, Vocab: V, LD: V}); err != nil {
		return fmt.Errorf("argmax: %w", err)
	}
	for k := int64(0); k < n; k++ {
		if !pick[k0+k] {
			continue
		}
		// One logits row as a [V, 1] table: out = row[id] (an id of -1, a NaN row, gives 0).
		row := backend.Weight{Data: w.logits + uintptr(k*V*4), Rows: V, Cols: 1, LD: 1, DType: backend.F32}
		if err := be.Embed(&backend.EmbedArgs{IDs: w.pick + uintptr(k*4), Out: w.pick + uintptr((R+k)*4), Table: row,
			N: 1, LDOut: 1, OutDType: backend.F32}); err != nil {
			return fmt.Errorf("argmax value: %w", err)
		}
	}
	return nil
}

// collectLogits runs the final lm_head over the rows requests asked for, in chunks of
// MaxLogitRows, and copies them to the host (for rows picked on the device: the id and its
// logit only). The first chunk's row ids came with upload; when graphed, the replayed graph
// already computed that chunk (and its picks when every row is picked).
func (m *Model) collectLogits(p *stepPlan, graphed bool) ([][]float32, []int32, error) {
	c, w, be := m.Cfg, &m.ws, m.be
	V := int64(c.VocabSize)
	out := make([][]float32, len(p.reqs))
	ids := make([]int32, len(p.reqs))
	for i := range ids {
		ids[i] = -1
	}
	rows, owner := p.logitRows, p.logitOwner
	R := m.Opts.MaxLogitRows
	for s := 0; s < len(rows); s += R {
		e := min(s+R, len(rows))
		n := int64(e - s)
		if s > 0 {
			if err := be.Upload(w.selRows, bytesOf(rows[s:e])); err != nil {
				return nil, nil, err
			}
		}
		if !graphed || s > 0 {
			if err := m.logitsKernels(n); err != nil {
				return nil, nil, err
			}
		}
		full := make([]bool, n) // rows whose logits go to the host
		nFull := 0
		if p.anyPick {
			if !graphed || s > 0 || !p.allPick {
				if err := m.pickKernels(int64(s), n, p.logitPick); err != nil {
					return nil, nil, err
				}
			}
			h := w.pickHost
			if err := be.Download(bytesOf(h), w.pick); err != nil {
				return nil, nil, err
			}
			w.uploadPending = false
			for k := 0; k < int(n); k++ {
				if !p.logitPick[s+k] {
					full[k] = true
					nFull++
					continue
				}
				id, v := h[k], math.Float32frombits(uint32(h[R+k]))
				if id < 0 || math.IsInf(float64(v), 0) {
					full[k] = true // NaN, +Inf or all -Inf: the host rules decide
					nFull++
					continue
				}
				ids[owner[s+k]] = id
			}
			if nFull == 0 {
				continue
			}
		} else {
			for k := range full {
				full[k] = true
			}
		}
		// Download the contiguous span of rows that go to the host.
		lo, hi := int64(-1), int64(0)
		for k := int64(0); k < n; k++ {
			if full[k] {
				if lo < 0 {
					lo = k
				}
				hi = k + 1
			}
		}
		buf := make([]float32, (hi-lo)*V)
		if err := be.Download(bytesOf(buf), w.logits+uintptr(lo*V*4)); err != nil {
			return nil, nil, err
		}
		w.uploadPending = false
		for k := lo; k < hi; k++ {
			if !full[k] {
				continue
			}
			i := owner[s+int(k)]
			row := buf[(k-lo)*V : (k-lo+1)*V : (k-lo+1)*V]
			if out[i] == nil {
				out[i] = row // no copy; a later row's append copies
				continue
			}
			out[i] = append(out[i], row...)
		}
	}
	return out, ids, nil
}
