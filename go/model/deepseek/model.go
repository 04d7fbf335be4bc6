// Package deepseek is the DeepseekV3ForCausalLM graph (DeepSeek-V3, R1, V3.1, Kimi-K2,
// Moonlight): MLA attention with a paged latent cache, DeepSeek's MoE with shared experts,
// dense SwiGLU layers, YaRN rope. It is written against go/backend only and never knows which
// kernel library runs it. ../shared/REFERENCE.md has the math; transformers'
// modeling_deepseek_v3.py is the numerical truth the tests compare with.
package deepseek

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/deepgo/deepgo/go/backend"
	"github.com/deepgo/deepgo/go/weights"
)

// Architecture is the config.json architecture this package runs.
const Architecture = "DeepseekV3ForCausalLM"

// Options size the buffers allocated at load: nothing is allocated while the model runs.
type Options struct {
	MaxBatch     int // sequences in one step
	MaxContext   int // tokens per sequence (prompt + generated)
	MaxTokens    int // new tokens in one step (a prefill chunk plus the decodes beside it)
	MaxLogitRows int // logits rows computed per lm_head call (more are done in chunks)
	BlockSize    int // tokens per KV block
	NumBlocks    int // KV blocks in the pool; 0: MaxBatch full contexts
	ActDType     backend.DType
	CacheDType   backend.DType
	LinearMode   int32 // backend.LinearDefault or backend.LinearW8A8 (fp8 weights)
	// Progress, when set, is called as weight bytes are placed (done of total).
	Progress func(done, total int64)
}

func (o *Options) defaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1
	}
	if o.MaxContext <= 0 {
		o.MaxContext = 4096
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 512
	}
	if o.MaxTokens > o.MaxBatch*o.MaxContext {
		o.MaxTokens = o.MaxBatch * o.MaxContext
	}
	if o.MaxLogitRows <= 0 {
		o.MaxLogitRows = max(o.MaxBatch, 16)
	}
	if o.MaxLogitRows > o.MaxTokens {
		o.MaxLogitRows = o.MaxTokens
	}
	if o.BlockSize <= 0 {
		o.BlockSize = 64
	}
	if o.NumBlocks <= 0 {
		o.NumBlocks = o.MaxBatch * ((o.MaxContext + o.BlockSize - 1) / o.BlockSize)
	}
}

type attnWeights struct {
	qA, qB, q   backend.Weight // q is q_proj when the config has no q_lora_rank
	qkvA        backend.Weight // q_a and kv_a stacked in one matrix (Data 0: bound apart)
	qANorm      vec
	kvA, kvB, o backend.Weight
	kcT         backend.Weight // W_kc^T for decode (absorb.go; Data 0: trans 0 on kvB)
	kvANorm     vec
	hasQLora    bool
}

type mlpWeights struct {
	gate, up, down backend.Weight
	gateUp         backend.Weight // gate and up stacked in one matrix (Data 0: bound apart)
}

type layer struct {
	inNorm, postNorm vec
	attn             attnWeights
	moe              bool
	dense            mlpWeights // dense layers
	router           backend.Weight
	bias             uintptr // f32 [experts], 0 when absent
	expGate          uintptr // device arrays of n_routed_experts backend.Weight
	expUp, expDown   uintptr
	shared           mlpWeights
	hasShared        bool
	// The routed tables with the shared experts appended as nShared more (shared_experts.go);
	// nShared 0: the shared experts run apart.
	expGateS, expUpS, expDownS uintptr
	nShared                    int
}

// Model is a loaded DeepseekV3ForCausalLM.
type Model struct {
	Cfg       *weights.Config
	Opts      Options
	Rope      Rope
	be        backend.Backend
	ck        *weights.Checkpoint
	bind      *binder
	embed     backend.Weight
	finalNorm vec
	invFreq   uintptr // f32 [rope/2] on the device
	head      backend.Weight
	lays      []layer
	KV        *KVCache
	ws        workspace
	// WeightBytes is the size of the weights placed on the device (or used in place).
	WeightBytes int64
	ckBytes     int64 // every tensor in the checkpoint (Memory().Checkpoint)
}

// Memory is what the model holds on its device, by purpose.
type Memory struct {
	Checkpoint int64 // tensor bytes in the checkpoint (unused ones, such as the MTP layer, are not placed)
	Weights    int64 // weight bytes placed (or used in place on the CPU)
	// Derived: bytes made from the weights at load and kept beside them (the MoE descriptor
	// tables, W_kc transposed for decode, the shared experts' split scales).
	Derived int64
	KVCache int64 // every layer's paged latent cache
	// KVPerTokenLayer is the cache bytes of one token in one layer: (kv_lora_rank +
	// qk_rope_head_dim) elements of the cache dtype (1,152 in bf16 for DeepSeek-V3).
	KVPerTokenLayer int64
	KVTokens        int64 // tokens the cache holds (blocks x block size)
	Workspace       int64 // activations, step buffers, kernel workspaces
}

// Memory reports the model's device allocations.
func (m *Model) Memory() Memory {
	mem := Memory{Checkpoint: m.ckBytes, Weights: m.WeightBytes, Derived: m.bind.derived, Workspace: m.ws.bytes}
	if c := m.KV; c != nil {
		mem.KVTokens = int64(c.NumBlocks) * int64(c.BlockSize)
		mem.KVPerTokenLayer = int64(c.Width) * c.DType.Size()
		mem.KVCache = mem.KVTokens * c.BytesPerToken()
	}
	return mem
}

// Backend is the kernel library the model runs on.
func (m *Model) Backend() backend.Backend { return m.be }

// Load binds a checkpoint to a backend and allocates the cache and the workspaces.
// The checkpoint must stay open while the model lives (the CPU computes from its mapping).
func Load(cfg *weights.Config, ck *weights.Checkpoint, be backend.Backend, opts Options) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	if opts.MaxContext > cfg.MaxPositionEmbeddings && cfg.MaxPositionEmbeddings > 0 {
		opts.MaxContext = cfg.MaxPositionEmbeddings
	}
	if opts.NumBlocks*opts.BlockSize < opts.MaxContext {
		return nil, fmt.Errorf("kv cache of %d blocks x %d tokens cannot hold one context of %d tokens",
			opts.NumBlocks, opts.BlockSize, opts.MaxContext)
	}
	m := &Model{Cfg: cfg, Opts: opts, Rope: NewRope(cfg), be: be, ck: ck}
	total := int64(0)
	for _, n := range ck.Names() {
		if t, err := ck.Tensor(n); err == nil {
			total += t.NumBytes()
		}
	}
	m.bind = &binder{ck: ck, be: be, cfg: cfg}
	if opts.Progress != nil {
		m.bind.progress = func(done int64) { opts.Progress(done, total) }
	}
	err := m.bindAll()
	if err == nil {
		err = m.bind.finishUploads()
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	m.WeightBytes, m.ckBytes = m.bind.bytes, total
	if m.invFreq, err = m.bind.own(bytesOf(m.Rope.InvFreq)); err != nil {
		m.Close()
		return nil, err
	}
	width := cfg.KvLoraRank + cfg.QkRopeHeadDim
	if m.KV, err = newKVCache(be, cfg.NumHiddenLayers, opts.BlockSize, opts.NumBlocks, width, opts.CacheDType); err != nil {
		m.Close()
		return nil, err
	}
	if err = m.allocWorkspace(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func (m *Model) bindAll() error {
	c, b := m.Cfg, m.bind
	var err error
	if m.embed, err = b.matrix("model.embed_tokens.weight", c.VocabSize, c.HiddenSize); err != nil {
		return err
	}
	if m.embed.DType == backend.F8E4M3 {
		return fmt.Errorf("tensor model.embed_tokens.weight: fp8 embeddings are not supported")
	}
	if m.finalNorm, err = b.vector("model.norm.weight", c.HiddenSize); err != nil {
		return err
	}
	if c.TieWordEmbeddings && !m.ck.Has("lm_head.weight") {
		m.head = m.embed
	} else if m.head, err = b.matrix("lm_head.weight", c.VocabSize, c.HiddenSize); err != nil {
		return err
	}
	m.lays = make([]layer, c.NumHiddenLayers)
	for l := range m.lays {
		if err := m.bindLayer(l); err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) bindLayer(l int) error {
	c, b, ly := m.Cfg, m.bind, &m.lays[l]
	p := fmt.Sprintf("model.layers.%d.", l)
	var err error
	H, heads, qk := c.HiddenSize, c.NumAttentionHeads, c.QKHeadDim()
	if ly.inNorm, err = b.vector(p+"input_layernorm.weight", H); err != nil {
		return err
	}
	if ly.postNorm, err = b.vector(p+"post_attention_layernorm.weight", H); err != nil {
		return err
	}
	a := &ly.attn
	a.hasQLora = c.HasQLora && c.QLoraRank > 0
	width := c.KvLoraRank + c.QkRopeHeadDim
	fused := false
	if a.hasQLora && m.fuseOK(c.QLoraRank, width) {
		var parts []backend.Weight
		a.qkvA, parts, fused, err = b.stacked([]string{p + "self_attn.q_a_proj.weight",
			p + "self_attn.kv_a_proj_with_mqa.weight"}, []int{c.QLoraRank, width}, H)
		if err != nil {
			return err
		}
		if fused {
			a.qA, a.kvA = parts[0], parts[1]
		}
	}
	if a.hasQLora {
		if !fused {
			if a.qA, err = b.matrix(p+"self_attn.q_a_proj.weight", c.QLoraRank, H); err != nil {
				return err
			}
		}
		if a.qANorm, err = b.vector(p+"self_attn.q_a_layernorm.weight", c.QLoraRank); err != nil {
			return err
		}
		if a.qB, err = b.matrix(p+"self_attn.q_b_proj.weight", heads*qk, c.QLoraRank); err != nil {
			return err
		}
	} else if a.q, err = b.matrix(p+"self_attn.q_proj.weight", heads*qk, H); err != nil {
		return err
	}
	if !fused {
		if a.kvA, err = b.matrix(p+"self_attn.kv_a_proj_with_mqa.weight", width, H); err != nil {
			return err
		}
	}
	if a.kvANorm, err = b.vector(p+"self_attn.kv_a_layernorm.weight", c.KvLoraRank); err != nil {
		return err
	}
	if a.kvB, err = b.matrix(p+"self_attn.kv_b_proj.weight", heads*(c.QkNopeHeadDim+c.VHeadDim), c.KvLoraRank); err != nil {
		return err
	}
	if err = m.bindKcT(a, p+"self_attn.kv_b_proj.weight"); err != nil {
		return err
	}
	if a.o, err = b.matrix(p+"self_attn.o_proj.weight", H, heads*c.VHeadDim); err != nil {
		return err
	}
	ly.moe = c.IsMoELayer(l)
	if !ly.moe {
		ly.dense, err = m.bindMLP(p+"mlp.", c.IntermediateSize, true)
		return err
	}
	E := c.NRoutedExperts
	if ly.router, err = b.matrix(p+"mlp.gate.weight", E, H); err != nil {
		return err
	}
	if ly.router.DType == backend.F8E4M3 {
		return fmt.Errorf("tensor %smlp.gate.weight: an fp8 router is not supported", p)
	}
	if c.TopkMethod == "noaux_tc" {
		if ly.bias, err = b.f32Vector(p+"mlp.gate.e_score_correction_bias", E); err != nil {
			return err
		}
	}
	gates := make([]backend.Weight, E)
	ups := make([]backend.Weight, E)
	downs := make([]backend.Weight, E)
	for e := 0; e < E; e++ {
		w, err := m.bindMLP(fmt.Sprintf("%smlp.experts.%d.", p, e), c.MoeIntermediateSize, false)
		if err != nil {
			return err
		}
		gates[e], ups[e], downs[e] = w.gate, w.up, w.down
	}
	if ly.expGate, err = b.weightTable(gates); err != nil {
		return err
	}
	if ly.expUp, err = b.weightTable(ups); err != nil {
		return err
	}
	if ly.expDown, err = b.weightTable(downs); err != nil {
		return err
	}
	if c.NSharedExperts > 0 {
		ly.hasShared = true
		if ly.shared, err = m.bindMLP(p+"mlp.shared_experts.", c.NSharedExperts*c.MoeIntermediateSize, true); err != nil {
			return err
		}
		return m.bindSharedTables(ly, p+"mlp.shared_experts.", gates, ups, downs)
	}
	return err
}

// fuseOK: two outputs of a stacked linear, a and b columns wide, are split at column a of one
// row; that keeps 16-byte alignment of both halves and of the row stride for every activation
// dtype (the fast kernels' vector loads), or the weights are bound apart.
func (m *Model) fuseOK(a, b int) bool {
	return os.Getenv("DEEPGO_FUSE_WEIGHTS") != "0" && a%8 == 0 && b%8 == 0
}

// bindMLP binds gate, up and down; stack: gate and up in one matrix where the backend allows
// (dense layers and shared experts; the routed experts go to the MoE kernels' tables).
func (m *Model) bindMLP(prefix string, inter int, stack bool) (mlpWeights, error) {
	var w mlpWeights
	var err error
	H := m.Cfg.HiddenSize
	fused := false
	if stack && m.fuseOK(inter, inter) {
		var parts []backend.Weight
		w.gateUp, parts, fused, err = m.bind.stacked([]string{prefix + "gate_proj.weight", prefix + "up_proj.weight"},
			[]int{inter, inter}, H)
		if err != nil {
			return w, err
		}
		if fused {
			w.gate, w.up = parts[0], parts[1]
		}
	}
	if !fused {
		if w.gate, err = m.bind.matrix(prefix+"gate_proj.weight", inter, H); err != nil {
			return w, err
		}
		if w.up, err = m.bind.matrix(prefix+"up_proj.weight", inter, H); err != nil {
			return w, err
		}
	}
	w.down, err = m.bind.matrix(prefix+"down_proj.weight", H, inter)
	return w, err
}

// Close frees everything the model allocated. The checkpoint is the caller's to close.
func (m *Model) Close() {
	if m.KV != nil {
		m.KV.Close()
		m.KV = nil
	}
	m.ws.free(m.be)
	if m.bind != nil {
		m.bind.free()
	}
}

func bytesOf[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}
