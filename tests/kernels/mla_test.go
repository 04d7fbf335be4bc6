package kernels

import (
	"math"
	"testing"

	"github.com/deepgo/deepgo/go/backend"
)

func TestMLAPrefill(t *testing.T) {
	e := setup(t)
	for _, d := range []mlaDims{{128, 64, 128}, {16, 8, 24}} {
		for _, seqs := range [][][2]int64{
			{{1, 1}},
			{{7, 7}, {5, 40}},
			{{129, 129}, {33, 200}, {1, 77}},
		} {
			for _, dt := range actTypes {
				t.Run(name("nope", d.nope, "rope", d.rope, "v", d.v, "seqs", len(seqs), "q0", seqs[0][0], "dtype", dt), func(t *testing.T) {
					testMLAPrefill(t, e, d, seqs, 3, 0, dt)
				})
			}
		}
	}
	// The shapes of the BF16 tensor-core kernel (cuda/mla_prefill_mma.cu: 64-row query tiles,
	// 64-key tiles): 16 heads of DeepSeek's 192/128, one 512-token prompt; varlen with chunked
	// prefill (qlen < klen: a cached prefix), empty sequences and lengths off the tile size; v
	// above 128 (its 256-wide accumulator); padded strides that keep 16-byte rows (still the
	// tensor-core kernel) and odd ones (the scalar kernel's fallback). F32 runs the scalar kernel.
	for _, c := range []struct {
		d     mlaDims
		heads int64
		pad   int64 // extra elements per head row of q, kv, out and per k_pe row
		seqs  [][2]int64
	}{
		{mlaDims{128, 64, 128}, 16, 0, [][2]int64{{512, 512}}},
		{mlaDims{128, 64, 128}, 16, 0, [][2]int64{{100, 300}, {64, 64}, {0, 50}, {200, 200}, {0, 0}, {1, 1}, {65, 1000}, {127, 128}}},
		{mlaDims{64, 64, 192}, 5, 0, [][2]int64{{70, 90}, {130, 130}}},
		{mlaDims{128, 64, 128}, 4, 8, [][2]int64{{70, 70}, {30, 100}}},
		{mlaDims{128, 64, 128}, 4, 1, [][2]int64{{70, 70}, {30, 100}}},
	} {
		for _, dt := range actTypes {
			t.Run(name("nope", c.d.nope, "rope", c.d.rope, "v", c.d.v, "heads", c.heads, "pad", c.pad, "seqs", len(c.seqs), "q0", c.seqs[0][0], "dtype", dt),
				func(t *testing.T) { testMLAPrefill(t, e, c.d, c.seqs, c.heads, c.pad, dt) })
		}
	}
}

type mlaDims struct{ nope, rope, v int32 }

// testMLAPrefill runs dg_mla_prefill on both sides for sequences of (qlen, klen) and compares.
// pad: extra elements after each head's q, kv and out rows and each k_pe row (strided layouts).
func testMLAPrefill(t *testing.T, e *env, d mlaDims, seqs [][2]int64, heads, pad int64, dt backend.DType) {
	r := rng(t)
	cuQ, cuK := []int32{0}, []int32{0}
	maxQ, maxK := int64(0), int64(0)
	for _, s := range seqs {
		cuQ = append(cuQ, cuQ[len(cuQ)-1]+int32(s[0]))
		cuK = append(cuK, cuK[len(cuK)-1]+int32(s[1]))
		maxQ, maxK = max(maxQ, s[0]), max(maxK, s[1])
	}
	rows, keys := int64(cuQ[len(cuQ)-1]), int64(cuK[len(cuK)-1])
	dqk, dkv := int64(d.nope+d.rope), int64(d.nope+d.v)
	ldQ, ldKV, ldPE, ldOut := dqk+pad, dkv+pad, int64(d.rope)+pad, int64(d.v)+pad
	q := e.upload(t, encode(randn(r, int(rows*heads*ldQ), 1), dt))
	kv := e.upload(t, encode(randn(r, int(keys*heads*ldKV), 1), dt))
	kpe := e.upload(t, encode(randn(r, int(keys*ldPE), 1), dt))
	out := e.poisoned(t, rows*heads*ldOut*dt.Size())
	cq, ck := e.upload(t, i32bytes(cuQ)), e.upload(t, i32bytes(cuK))
	scale := float32(1 / math.Sqrt(float64(dqk)))
	args := func(s side) backend.MLAPrefillArgs {
		return backend.MLAPrefillArgs{Q: q.on(s), KV: kv.on(s), KPE: kpe.on(s), Out: out.on(s), CuQ: cq.on(s),
			CuK: ck.on(s), NSeqs: int64(len(seqs)), NHeads: heads, MaxQ: maxQ, MaxK: maxK,
			LDQTok: heads * ldQ, LDQHead: ldQ, LDKVTok: heads * ldKV, LDKVHead: ldKV, LDKPE: ldPE,
			LDOutTok: heads * ldOut, LDOutHead: ldOut, Scale: scale, Nope: d.nope, Rope: d.rope,
			V: d.v, DType: dt}
	}
	ws := e.workspaces(t, func(s side) int64 { a := args(s); return e.be(s).MLAPrefillWorkspaceSize(&a) })
	e.run(t, func(b backend.Backend, s side) error {
		a := args(s)
		a.Workspace = ws.on(s)
		return b.MLAPrefill(&a)
	})
	if pad == 0 {
		e.checkOut(t, "out", out, dt, tolFor(dt, false))
	} else {
		e.checkRows(t, "out", out, dt, rows*heads, int64(d.v), ldOut, tolFor(dt, false))
	}
}

// workspaces allocates each side's own workspace size (they differ between libraries).
func (e *env) workspaces(t testing.TB, size func(s side) int64) *dual {
	t.Helper()
	d := &dual{}
	for _, s := range []side{onGPU, onCPU} {
		n := size(s)
		if n <= 0 {
			continue
		}
		p, err := e.be(s).Alloc(n)
		if err != nil {
			t.Fatalf("workspace of %d bytes: %v", n, err)
		}
		b := e.be(s)
		t.Cleanup(func() { _ = b.Free(p) })
		if s == onGPU {
			d.g = p
		} else {
			d.c = p
		}
	}
	return d
}

func TestMLADecode(t *testing.T) {
	e := setup(t)
	type dims struct{ latent, rope int32 }
	for _, d := range []dims{{512, 64}, {40, 8}} {
		for _, sc := range []struct {
			lens    []int32
			qPerSeq int32
			heads   int64
		}{
			{[]int32{1}, 1, 16},
			{[]int32{77, 1, 600}, 1, 5},
			{[]int32{5, 300}, 2, 16},
			{[]int32{2100}, 1, 128},
			// 20 heads: a partly empty head group on the tensor-core path (bf16, latent 512).
			{[]int32{33, 129}, 1, 20},
			// 64 rows of 32 heads: few splits, so each covers two or more key tiles there.
			{[]int32{1500, 1333, 64, 6, 900, 1499, 700, 1200, 31, 1024, 1025, 400, 999, 1400, 77, 1100}, 4, 32},
			// 64 and 128 heads: the wgmma path on H100/H200 (bf16, latent 512). Few rows: many splits,
			// partial last tiles, one key, rows that fit in one 64-key tile.
			{[]int32{1, 63, 64, 65, 700, 2100}, 1, 128},
			{[]int32{2, 63, 64, 65, 700, 2100}, 2, 128},
			{[]int32{1, 130, 1000}, 1, 64},
			// 64 rows of 128 heads fill the GPU's SMs: one split, out written by the kernel itself.
			{wgmmaOneSplitLens(), 1, 128},
		} {
			for _, dt := range actTypes {
				for _, cd := range actTypes {
					t.Run(name("latent", d.latent, "lens", sc.lens, "qps", sc.qPerSeq, "heads", sc.heads, "dtype", dt, "cache", cd),
						func(t *testing.T) {
							testMLADecode(t, e, d.latent, d.rope, sc.lens, sc.qPerSeq, sc.heads, dt, cd)
						})
				}
			}
		}
	}
}

// wgmmaOneSplitLens are 64 sequence lengths from 1 to 1500 (1, 63, 64, 65 among them): with 128
// heads, 64 rows x 2 head groups fill an H100's 132 SMs, so the wgmma decode runs one split.
func wgmmaOneSplitLens() []int32 {
	lens := make([]int32, 64)
	for i := range lens {
		lens[i] = int32(1 + (i*397)%1500)
	}
	lens[1], lens[2], lens[3] = 63, 64, 65
	return lens
}

func testMLADecode(t *testing.T, e *env, latent, rope int32, lens []int32, qps int32, heads int64, dt, cd backend.DType) {
	r := rng(t)
	const bs = 64
	batch := int64(len(lens))
	maxLen := int64(0)
	for _, l := range lens {
		maxLen = max(maxLen, int64(l))
	}
	maxLen += 17 // the launch bound need not be tight
	maxBlocks := (maxLen + bs - 1) / bs
	nBlocks := batch*maxBlocks + 3
	width := int64(latent + rope)
	cache := e.upload(t, encode(randn(r, int(nBlocks*bs*width), 1), cd))
	perm := r.Perm(int(nBlocks))
	table := make([]int32, batch*maxBlocks)
	for i := range table {
		table[i] = int32(perm[i])
	}
	rows := batch * int64(qps)
	qlat := e.upload(t, encode(randn(r, int(rows*heads*int64(latent)), 1), dt))
	qpe := e.upload(t, encode(randn(r, int(rows*heads*int64(rope)), 1), dt))
	out := e.poisoned(t, rows*heads*int64(latent)*dt.Size())
	tb, sl := e.upload(t, i32bytes(table)), e.upload(t, i32bytes(lens))
	scale := float32(0.1352337789)
	args := func(s side) backend.MLADecodeArgs {
		return backend.MLADecodeArgs{QLat: qlat.on(s), QPE: qpe.on(s), Cache: cache.on(s), BlockTable: tb.on(s),
			SeqLens: sl.on(s), Out: out.on(s), Batch: batch, NHeads: heads, MaxBlocks: maxBlocks, MaxSeqLen: maxLen,
			LDQTok: heads * int64(latent), LDQHead: int64(latent), LDQPETok: heads * int64(rope), LDQPEHead: int64(rope),
			LDOutTok: heads * int64(latent), LDOutHead: int64(latent), Scale: scale, Latent: latent, Rope: rope,
			BlockSize: bs, QPerSeq: qps, DType: dt, CacheDType: cd}
	}
	ws := e.workspaces(t, func(s side) int64 { a := args(s); return e.be(s).MLADecodeWorkspaceSize(&a) })
	e.run(t, func(b backend.Backend, s side) error {
		a := args(s)
		a.Workspace = ws.on(s)
		return b.MLADecode(&a)
	})
	e.checkOut(t, "o_lat", out, dt, tolFor(dt, false))
}
