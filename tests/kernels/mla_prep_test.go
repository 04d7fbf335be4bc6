package kernels

import (
	"math"
	"math/rand"
	"testing"

	"github.com/deepgo/deepgo/go/backend"
)

// prepCase is one layout of MLA's prologue: q (qDim 0: none) and kv share rows (the stacked
// q_a | kv_a projection) or live apart.
type prepCase struct {
	n, qDim, latent, rope int64
	stacked               bool
}

// prepIO is one mla_prep call's buffers on both sides: the rows it normalises in place (q == kv
// when stacked, q nil without q), the cache it stores to, and the read-only inputs.
type prepIO struct {
	a                        backend.MLAPrepArgs // shapes, strides and dtypes; pointers come from args
	q, kv, cache             *dual
	kvOff                    int64 // elements from the start of a kv row to the latent
	qw, kvw, pos, inv, slots *dual
	qHost, kvHost            []byte
}

func (p *prepIO) args(s side) *backend.MLAPrepArgs {
	a := p.a
	a.Q, a.KV = p.q.on(s), p.kv.on(s)+uintptr(p.kvOff*a.DType.Size())
	a.QWeight, a.KVWeight, a.Pos, a.InvFreq = p.qw.on(s), p.kvw.on(s), p.pos.on(s), p.inv.on(s)
	a.Slots, a.Cache = p.slots.on(s), p.cache.on(s)
	return &a
}

// twin gives the same call on fresh copies of the buffers it writes.
func (p *prepIO) twin(e *env, t *testing.T) *prepIO {
	c := *p
	c.kv = e.upload(t, p.kvHost)
	c.q = c.kv
	if p.q != p.kv && p.q != nil {
		c.q = e.upload(t, p.qHost)
	}
	c.cache = e.poisoned(t, p.cache.bytes)
	return &c
}

// newPrep builds a case's inputs with strides wider than the data, shuffled slots (two of them
// skipped when n > 2) and positions up to 160k.
func newPrep(e *env, t *testing.T, r *rand.Rand, c prepCase, dt, cd, qw, kvw backend.DType) *prepIO {
	width := c.latent + c.rope
	p := &prepIO{a: backend.MLAPrepArgs{N: c.n, QDim: c.qDim, Latent: c.latent, LDKV: width + 3, Eps: 1e-6,
		MScale: 0.7 + 0.3*r.Float32(), RopeDim: int32(c.rope), DType: dt, QWDType: qw, KVWDType: kvw, CacheDType: cd}}
	if c.qDim > 0 && c.stacked {
		p.a.LDKV += c.qDim
		p.a.LDQ, p.kvOff = p.a.LDKV, c.qDim
	}
	p.kvHost = encode(randn(r, int(c.n*p.a.LDKV), 2), dt)
	p.kv = e.upload(t, p.kvHost)
	if c.qDim > 0 {
		p.q = p.kv
		if !c.stacked {
			p.a.LDQ = c.qDim + 5
			p.qHost = encode(randn(r, int(c.n*p.a.LDQ), 2), dt)
			p.q = e.upload(t, p.qHost)
		}
		p.qw = e.upload(t, encode(randn(r, int(c.qDim), 1), qw))
	}
	p.kvw = e.upload(t, encode(randn(r, int(c.latent), 1), kvw))
	nSlots := 2*c.n + 1
	pos, slots := make([]int32, c.n), make([]int32, c.n)
	for i, s := range r.Perm(int(nSlots))[:c.n] {
		pos[i], slots[i] = int32(r.Intn(163840)), int32(s)
	}
	pos[0] = 0
	if c.n > 2 {
		slots[1], slots[c.n-1] = -1, -1
	}
	inv := make([]float32, c.rope/2)
	for i := range inv {
		inv[i] = float32(math.Pow(10000, -2*float64(i)/float64(c.rope)))
	}
	p.pos, p.slots, p.inv = e.upload(t, i32bytes(pos)), e.upload(t, i32bytes(slots)), e.upload(t, f32bytes(inv))
	p.cache = e.poisoned(t, nSlots*width*cd.Size())
	return p
}

// sameBits requires a buffer the fused op wrote to hold, element for element, the bytes its twin
// got from the op sequence, on each backend: the op must not change the model's output.
func (e *env) sameBits(t *testing.T, what string, got, want *dual, dt backend.DType) {
	t.Helper()
	gg, gc := e.download(t, got)
	wg, wc := e.download(t, want)
	for _, sd := range []struct {
		name      string
		got, want []byte
	}{{e.gpu.Name(), gg, wg}, {"cpu", gc, wc}} {
		es := int(dt.Size())
		for i := 0; i+es <= len(sd.want); i += es {
			if string(sd.got[i:i+es]) != string(sd.want[i:i+es]) {
				t.Errorf("%s on %s: element %d is %g, the op sequence gives %g", what, sd.name, i/es,
					decode(sd.got[i:i+es], dt)[0], decode(sd.want[i:i+es], dt)[0])
				break
			}
		}
	}
}

// TestMLAPrep: the fused prologue against the four ops it replaces on the same backend (bit for
// bit, on the GPU and on the CPU), and the GPU against the CPU.
func TestMLAPrep(t *testing.T) {
	e := setup(t)
	cases := []prepCase{
		{1, 1536, 512, 64, true},   // DeepSeek-V3 decode: q_a | kv_a stacked
		{33, 1536, 512, 64, false}, // a prefill chunk, q_a and kv_a apart
		{4, 0, 512, 64, false},     // no q_lora_rank
		{7, 7, 13, 6, true},
		{3, 0, 5, 2, false},
		{2, 2100, 8200, 64, false}, // rmsnorm's other block sizes: q on 1024 threads, a latent past 8192
	}
	wdts := []backend.DType{backend.F32, backend.BF16, backend.F16}
	for ci, c := range cases {
		for _, dt := range actTypes {
			for _, cd := range actTypes {
				qw, kvw := wdts[ci%3], wdts[(ci+1)%3]
				t.Run(name("n", c.n, "q", c.qDim, "latent", c.latent, "rope", c.rope, "stacked", c.stacked, "x", dt,
					"cache", cd), func(t *testing.T) {
					fused := newPrep(e, t, rng(t), c, dt, cd, qw, kvw)
					seq := fused.twin(e, t)
					e.run(t, func(b backend.Backend, s side) error { return backend.MLAPrepUnfused(b, seq.args(s)) })
					e.run(t, func(b backend.Backend, s side) error { return b.MLAPrep(fused.args(s)) })
					e.sameBits(t, "kv rows", fused.kv, seq.kv, dt)
					if c.qDim > 0 && !c.stacked {
						e.sameBits(t, "q rows", fused.q, seq.q, dt)
					}
					e.sameBits(t, "cache", fused.cache, seq.cache, cd)
					e.checkOut(t, "kv rows", fused.kv, dt, tolFor(dt, dt == backend.BF16))
					if c.qDim > 0 && !c.stacked {
						e.checkOut(t, "q rows", fused.q, dt, tolFor(dt, dt == backend.BF16))
					}
					e.checkOut(t, "cache", fused.cache, cd, tolFor(cd, dt == backend.BF16))
				})
			}
		}
	}
}
