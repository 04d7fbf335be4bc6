package deepseek

import (
	"fmt"
	"os"

	"github.com/deepgo/deepgo/go/backend"
)

// workspace is every activation buffer of a step, allocated once at load for the largest step
// (Options.MaxTokens rows), so that a step allocates nothing.
type workspace struct {
	allocs []uintptr
	bytes  int64 // device bytes of allocs

	h, d, x         uintptr // residual stream (f32), its pending delta (f32), normalised input (act)
	qa, q, kva, ao  uintptr
	qkva            uintptr // stacked q_a | kv_a output (layers bound with qkvA)
	qlat, olat      uintptr
	gath, kvb       uintptr // prefill: gathered latent cache rows, kv_b output
	g, u            uintptr // MLP gate/up outputs
	rlog, ids, wts  uintptr // router logits, chosen experts, their weights
	xsel, logits    uintptr
	pick            uintptr // device argmax: R int32 ids, then R f32 logits (R = MaxLogitRows)
	pickHost        []int32 // its host copy (2R words)
	tok, pos, slots uintptr // int32 per token
	selRows         uintptr
	cuQ, cuK        uintptr
	btab, seqLens   uintptr // decode block tables and lengths
	gbt             uintptr // prefill block tables
	linWS, preWS    uintptr
	decWS, moeWS    uintptr
	linWSBytes      int64

	// The per-step int32 arrays (tok .. selRows above) live in one device buffer, stepBuf, at
	// fixed offsets, filled from one pinned staging buffer by one asynchronous copy per step.
	stepBuf                                  uintptr
	stepHost                                 []byte
	stepBytes                                int64
	offTok, offPos, offSlots, offCuQ, offCuK int64
	offGbt, offBtab, offLens, offSel         int64
	uploadPending                            bool // a step's copy was queued and not waited for

	graphs       map[int]Graph // captured decode steps by batch size
	noGraph      bool          // capture failed or is disabled (DEEPGO_CUDA_GRAPH=0)
	graphVerbose bool          // DEEPGO_CUDA_GRAPH=verbose: say when a step is captured or capture fails
	graphErr     error

	maxKeys   int // prefill keys per step
	maxBlocks int // block-table columns
	interMax  int
}

func (w *workspace) free(be backend.Backend) {
	for _, g := range w.graphs {
		_ = g.Destroy()
	}
	w.graphs = nil
	if w.stepHost != nil {
		_ = be.HostFree(w.stepHost)
		w.stepHost = nil
	}
	for _, p := range w.allocs {
		_ = be.Free(p)
	}
	w.allocs = nil
}

func (m *Model) allocWorkspace() error {
	c, o, w := m.Cfg, m.Opts, &m.ws
	a := o.ActDType.Size()
	T, B, H := int64(o.MaxTokens), int64(o.MaxBatch), int64(c.HiddenSize)
	heads := int64(c.NumAttentionHeads)
	width := int64(c.KvLoraRank + c.QkRopeHeadDim)
	w.maxKeys = max(o.MaxContext, o.MaxTokens)
	w.maxBlocks = (o.MaxContext + o.BlockSize - 1) / o.BlockSize
	w.interMax = max(c.IntermediateSize, c.NSharedExperts*c.MoeIntermediateSize)
	K := int64(w.maxKeys)
	k := int64(max(c.NumExpertsPerTok, 1))
	E := int64(max(c.NRoutedExperts, 1))
	R := int64(o.MaxLogitRows)

	var err error
	alloc := func(dst *uintptr, bytes int64, what string) {
		if err != nil || bytes <= 0 {
			return
		}
		var p uintptr
		if p, err = m.be.Alloc(bytes); err != nil {
			err = fmt.Errorf("workspace %s (%d bytes): %w", what, bytes, err)
			return
		}
		w.allocs = append(w.allocs, p)
		w.bytes += bytes
		*dst = p
	}
	alloc(&w.h, T*H*4, "residual")
	alloc(&w.d, T*H*4, "delta")
	alloc(&w.x, T*H*a, "x")
	alloc(&w.qa, T*int64(c.QLoraRank)*a, "q_a")
	alloc(&w.q, T*heads*int64(c.QKHeadDim())*a, "q")
	alloc(&w.kva, T*width*a, "kv_a")
	if c.HasQLora && c.QLoraRank > 0 {
		alloc(&w.qkva, T*(int64(c.QLoraRank)+width)*a, "q_a | kv_a")
	}
	alloc(&w.ao, T*heads*int64(c.VHeadDim)*a, "attention output")
	alloc(&w.qlat, T*heads*int64(c.KvLoraRank)*a, "q_lat")
	alloc(&w.olat, T*heads*int64(c.KvLoraRank)*a, "o_lat")
	alloc(&w.gath, K*width*a, "gathered cache")
	alloc(&w.kvb, K*heads*int64(c.QkNopeHeadDim+c.VHeadDim)*a, "kv_b output")
	alloc(&w.g, 2*T*int64(w.interMax)*a, "mlp gate (| up when stacked)")
	alloc(&w.u, T*int64(w.interMax)*a, "mlp up")
	alloc(&w.rlog, T*E*4, "router logits")
	kS := k + int64(c.NSharedExperts) // moe_gate appends the shared experts (shared_experts.go)
	alloc(&w.ids, T*kS*4, "expert ids")
	alloc(&w.wts, T*kS*4, "expert weights")
	alloc(&w.xsel, R*H*a, "selected rows")
	alloc(&w.logits, R*int64(c.VocabSize)*4, "logits")
	alloc(&w.pick, 2*R*4, "argmax ids")
	w.pickHost = make([]int32, 2*R)
	// The per-step arrays: one device buffer, one pinned staging copy (see upload).
	off := int64(0)
	field := func(dst *int64, bytes int64) {
		*dst = off
		off += (bytes + 255) / 256 * 256
	}
	field(&w.offTok, T*4)
	field(&w.offPos, T*4)
	field(&w.offSlots, T*4)
	field(&w.offCuQ, (B+1)*4)
	field(&w.offCuK, (B+1)*4)
	field(&w.offGbt, B*int64(w.maxBlocks)*4)
	field(&w.offBtab, B*int64(w.maxBlocks)*4)
	field(&w.offLens, B*4)
	field(&w.offSel, R*4)
	w.stepBytes = off
	alloc(&w.stepBuf, off, "per-step arrays")
	if err != nil {
		return err
	}
	w.tok, w.pos, w.slots = w.stepBuf+uintptr(w.offTok), w.stepBuf+uintptr(w.offPos), w.stepBuf+uintptr(w.offSlots)
	w.cuQ, w.cuK = w.stepBuf+uintptr(w.offCuQ), w.stepBuf+uintptr(w.offCuK)
	w.gbt, w.btab = w.stepBuf+uintptr(w.offGbt), w.stepBuf+uintptr(w.offBtab)
	w.seqLens, w.selRows = w.stepBuf+uintptr(w.offLens), w.stepBuf+uintptr(w.offSel)
	if w.stepHost, err = m.be.HostAlloc(off); err != nil {
		return fmt.Errorf("workspace per-step staging (%d bytes): %w", off, err)
	}
	w.noGraph = os.Getenv("DEEPGO_CUDA_GRAPH") == "0"
	w.graphVerbose = os.Getenv("DEEPGO_CUDA_GRAPH") == "verbose"

	// Kernel scratch: ask each kernel for its largest case.
	lin := int64(0)
	for _, ly := range m.lays {
		for _, wt := range []backend.Weight{ly.attn.qA, ly.attn.qB, ly.attn.q, ly.attn.kvA, ly.attn.kvB,
			ly.attn.o, ly.dense.gate, ly.dense.up, ly.dense.down, ly.shared.gate, ly.shared.up, ly.shared.down,
			ly.attn.qkvA, ly.dense.gateUp, ly.shared.gateUp} {
			if wt.Data == 0 {
				continue
			}
			la := backend.LinearArgs{W: wt, M: max(T, K), LDX: wt.Cols, LDY: wt.Rows,
				XDType: o.ActDType, YDType: o.ActDType, Mode: m.linearMode(wt)}
			lin = max(lin, m.be.LinearWorkspaceSize(&la))
		}
	}
	w.linWSBytes = lin
	alloc(&w.linWS, lin, "linear scratch")
	pa := m.prefillArgs(int64(o.MaxBatch), int64(o.MaxTokens), K)
	alloc(&w.preWS, m.be.MLAPrefillWorkspaceSize(&pa), "prefill attention scratch")
	da := m.decodeArgs(0, B, int64(o.MaxContext))
	alloc(&w.decWS, m.be.MLADecodeWorkspaceSize(&da), "decode attention scratch")
	if c.NRoutedExperts > 0 {
		fa := backend.MoEFFNArgs{N: T, Hidden: H, Inter: int64(c.MoeIntermediateSize), LDX: H, LDY: H,
			NExperts: int32(c.NRoutedExperts), TopK: int32(c.NumExpertsPerTok), XDType: o.ActDType,
			YDType: backend.F32, Mode: o.LinearMode}
		bytes := m.be.MoEFFNWorkspaceSize(&fa)
		if S := int32(c.NSharedExperts); S > 0 { // short steps run the shared experts inside (shared_experts.go)
			fa.N, fa.NExperts, fa.TopK = min(T, sharedFusedMaxRows), fa.NExperts+S, fa.TopK+S
			bytes = max(bytes, m.be.MoEFFNWorkspaceSize(&fa))
		}
		alloc(&w.moeWS, bytes, "moe scratch")
	}
	return err
}

// linearMode is the configured mode for fp8 weights; other weights have only the default.
func (m *Model) linearMode(w backend.Weight) int32 {
	if w.DType == backend.F8E4M3 {
		return m.Opts.LinearMode
	}
	return backend.LinearDefault
}
