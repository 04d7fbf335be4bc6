package kernels

import (
	"bytes"
	"testing"

	"github.com/deepgo/deepgo/go/backend"
	"github.com/deepgo/deepgo/go/backend/cuda"
)

// TestGraphCapture records a decode-step-like sequence of kernels (rmsnorm, GEMV and mma linear,
// mla_prep, mla_decode with split-K, moe_gate, moe_ffn, sample) into a CUDA graph in global
// capture mode, which fails if any kernel call allocates, copies to the host or synchronises;
// then replays it and checks that the replay writes exactly what the direct calls wrote.
func TestGraphCapture(t *testing.T) {
	e := setup(t)
	g, ok := e.gpu.(*cuda.Backend)
	if !ok {
		t.Skip("self-test: no CUDA backend")
	}
	r := rng(t)
	const (
		B, hidden, rope, latent, heads = 4, 1024, 64, 512, 16
		bs, maxBlocks                  = 64, 8
		E, K, inter                    = 16, 2, 256
		vocab                          = 129280
	)
	type buf struct {
		p    uintptr
		init []byte
	}
	var bufs []*buf
	mk := func(init []byte, size int64) *buf {
		if init != nil {
			size = int64(len(init))
		}
		p, err := g.Alloc(size)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Free(p) })
		if init == nil {
			init = bytes.Repeat([]byte{0xFF}, int(size))
		}
		b := &buf{p, init}
		bufs = append(bufs, b)
		return b
	}
	bf := func(n int, s float32) []byte { return encode(randn(r, n, s), backend.BF16) }
	reset := func() { // every buffer back to its initial bytes (outputs to 0xFF)
		for _, b := range bufs {
			if err := g.Upload(b.p, b.init); err != nil {
				t.Fatal(err)
			}
		}
	}
	x := mk(bf(B*hidden, 1), 0)
	res := mk(bf(B*hidden, 1), 0)
	nw := mk(bf(hidden, 1), 0)
	xn := mk(nil, B*hidden*2)
	wkv := e.weight(t, r, backend.F8E4M3, latent+rope, hidden, hidden, 128, 128).on(onGPU)
	wbig := e.weight(t, r, backend.BF16, 512, hidden, hidden, 0, 0).on(onGPU)
	kv := mk(nil, B*(latent+rope)*2)
	big := mk(nil, 64*512*4)
	xbig := mk(bf(64*hidden, 1), 0)
	cache := mk(bf(B*maxBlocks*bs*(latent+rope), 1), 0)
	table := make([]int32, B*maxBlocks)
	for i := range table {
		table[i] = int32(i)
	}
	lens := []int32{1, 100, 300, 512}
	slots := make([]int32, B)
	for b := range slots {
		slots[b] = int32(b*maxBlocks*bs) + lens[b] - 1
	}
	tb, sl, sb := mk(i32bytes(table), 0), mk(i32bytes(lens), 0), mk(i32bytes(slots), 0)
	kvNorm, inv := mk(bf(latent, 1), 0), mk(f32bytes(randn(r, rope/2, 0.1)), 0)
	qlat, qpe := mk(bf(B*heads*latent, 1), 0), mk(bf(B*heads*rope, 1), 0)
	olat := mk(nil, B*heads*latent*2)
	glog := mk(f32bytes(randn(r, B*E, 2)), 0)
	ids, wts := mk(nil, B*K*4), mk(nil, B*K*4)
	var gw, uw, dw []*dweight
	for i := 0; i < E; i++ {
		gw = append(gw, e.weight(t, r, backend.BF16, inter, hidden, hidden, 0, 0))
		uw = append(uw, e.weight(t, r, backend.BF16, inter, hidden, hidden, 0, 0))
		dw = append(dw, e.weight(t, r, backend.BF16, hidden, inter, inter, 0, 0))
	}
	gd, ud, dd := e.uploadDescs(t, gw), e.uploadDescs(t, uw), e.uploadDescs(t, dw)
	y := mk(nil, B*hidden*2)
	logits := mk(f32bytes(randn(r, B*vocab, 2)), 0)
	temp := mk(f32bytes([]float32{0, 1, 0.7, 1}), 0)
	topk := mk(i32bytes([]int32{0, 0, 50, 0}), 0)
	topp := mk(f32bytes([]float32{1, 1, 0.9, 0.95}), 0)
	minp := mk(f32bytes([]float32{0, 0, 0, 0.05}), 0)
	uni := mk(f32bytes([]float32{0.5, 0.25, 0.75, 0.125}), 0)
	tok := mk(nil, B*4)

	dec := backend.MLADecodeArgs{QLat: qlat.p, QPE: qpe.p, Cache: cache.p, BlockTable: tb.p, SeqLens: sl.p, Out: olat.p,
		Batch: B, NHeads: heads, MaxBlocks: maxBlocks, MaxSeqLen: maxBlocks * bs, LDQTok: heads * latent,
		LDQHead: latent, LDQPETok: heads * rope, LDQPEHead: rope, LDOutTok: heads * latent, LDOutHead: latent,
		Scale: 0.135, Latent: latent, Rope: rope, BlockSize: bs, QPerSeq: 1, DType: backend.BF16,
		CacheDType: backend.BF16}
	decWS := mk(nil, g.MLADecodeWorkspaceSize(&dec))
	dec.Workspace = decWS.p
	moe := backend.MoEFFNArgs{X: xn.p, IDs: ids.p, Weights: wts.p, Gate: gd.g, Up: ud.g, Down: dd.g, Y: y.p, N: B,
		Hidden: hidden, Inter: inter, LDX: hidden, LDY: hidden, NExperts: E, TopK: K, XDType: backend.BF16,
		YDType: backend.BF16}
	moeWS := mk(nil, g.MoEFFNWorkspaceSize(&moe))
	moe.Workspace = moeWS.p
	smp := backend.SampleArgs{Logits: logits.p, Temperature: temp.p, TopK: topk.p, TopP: topp.p, MinP: minp.p,
		Uniform: uni.p, Out: tok.p, N: B, Vocab: vocab, LD: vocab}
	smpWS := mk(nil, g.SampleWorkspaceSize(&smp))
	smp.Workspace = smpWS.p

	step := func() error {
		calls := []func() error{
			func() error {
				return g.RMSNorm(&backend.RMSNormArgs{X: x.p, Residual: res.p, Weight: nw.p, Out: xn.p, N: B, Dim: hidden,
					LDX: hidden, LDResidual: hidden, LDOut: hidden, Eps: 1e-6, XDType: backend.BF16, WDType: backend.BF16,
					OutDType: backend.BF16})
			},
			func() error {
				return g.Linear(&backend.LinearArgs{X: xn.p, Y: kv.p, W: wkv, M: B, LDX: hidden, LDY: latent + rope,
					XDType: backend.BF16, YDType: backend.BF16})
			},
			func() error {
				return g.Linear(&backend.LinearArgs{X: xbig.p, Y: big.p, W: wbig, M: 64, LDX: hidden, LDY: 512,
					XDType: backend.BF16, YDType: backend.F32})
			},
			func() error {
				return g.MLAPrep(&backend.MLAPrepArgs{KV: kv.p, KVWeight: kvNorm.p, Pos: sl.p, InvFreq: inv.p, Slots: sb.p,
					Cache: cache.p, N: B, Latent: latent, LDKV: latent + rope, Eps: 1e-6, MScale: 1, RopeDim: rope,
					DType: backend.BF16, KVWDType: backend.BF16, CacheDType: backend.BF16})
			},
			func() error { return g.MLADecode(&dec) },
			func() error {
				return g.MoEGate(&backend.MoEGateArgs{Logits: glog.p, IDs: ids.p, Weights: wts.p, N: B, LDLogits: E,
					Scaling: 2.5, NExperts: E, TopK: K, NGroup: 4, TopkGroup: 2, Scoring: backend.ScoreSigmoid,
					Method: backend.TopkNoauxTC, NormTopkProb: 1})
			},
			func() error { return g.MoEFFN(&moe) },
			func() error { return g.Sample(&smp) },
		}
		for _, c := range calls {
			if err := c(); err != nil {
				return err
			}
		}
		return nil
	}
	outs := []*buf{x, xn, kv, big, cache, olat, ids, wts, y, tok}
	snapshot := func() [][]byte {
		var s [][]byte
		for _, o := range outs {
			b := make([]byte, len(o.init))
			if err := g.Download(b, o.p); err != nil {
				t.Fatal(err)
			}
			s = append(s, b)
		}
		return s
	}

	reset()
	if err := step(); err != nil {
		t.Fatalf("direct step: %v", err)
	}
	direct := snapshot()

	reset()
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := g.CaptureBegin(); err != nil {
		t.Fatal(err)
	}
	stepErr := step()
	graph, err := g.CaptureEnd()
	if stepErr != nil || err != nil {
		t.Fatalf("capture: step %v, end %v", stepErr, err)
	}
	defer graph.Destroy()
	for rep := 0; rep < 2; rep++ {
		reset()
		if err := graph.Launch(); err != nil {
			t.Fatal(err)
		}
		replay := snapshot()
		for i := range outs {
			if !bytes.Equal(direct[i], replay[i]) {
				t.Errorf("replay %d: output %d differs from the direct run", rep, i)
			}
		}
	}
	t.Logf("captured and replayed a %d-kernel-call step; tokens %v", 8,
		bytesI32(direct[len(direct)-1]))
}
