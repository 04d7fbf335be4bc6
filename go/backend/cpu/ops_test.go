package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	kern "github.com/deepgo/deepgo/cpu"
	"github.com/deepgo/deepgo/go/backend"
)

// ---- layout: every Go mirror has the C struct's size and field offsets ----

func TestLayout(t *testing.T) {
	mirrors := map[string]any{
		"dg_weight":           backend.Weight{},
		"dg_embed_args":       backend.EmbedArgs{},
		"dg_rmsnorm_args":     backend.RMSNormArgs{},
		"dg_linear_args":      backend.LinearArgs{},
		"dg_head_matmul_args": backend.HeadMatmulArgs{},
		"dg_rope_args":        backend.RopeArgs{},
		"dg_kv_store_args":    backend.KVStoreArgs{},
		"dg_kv_gather_args":   backend.KVGatherArgs{},
		"dg_mla_prep_args":    backend.MLAPrepArgs{},
		"dg_mla_prefill_args": backend.MLAPrefillArgs{},
		"dg_mla_decode_args":  backend.MLADecodeArgs{},
		"dg_silu_mul_args":    backend.SiluMulArgs{},
		"dg_moe_gate_args":    backend.MoEGateArgs{},
		"dg_moe_ffn_args":     backend.MoEFFNArgs{},
		"dg_argmax_args":      backend.ArgmaxArgs{},
		"dg_sample_args":      backend.SampleArgs{},
		"dg_convert_args":     backend.ConvertArgs{},
	}
	require.Len(t, kern.StructNames(), len(mirrors))
	for _, name := range kern.StructNames() {
		m, ok := mirrors[name]
		require.True(t, ok, name)
		typ := reflect.TypeOf(m)
		require.Equal(t, kern.Sizeof(name), typ.Size(), "sizeof %s vs %s", name, typ)
		// every field, in order: C offsetof == Go offset (pad_ fields are Go's blank fields)
		fields := kern.FieldNames(name)
		require.Equal(t, len(fields), typ.NumField(), "field count of %s", name)
		for i, f := range fields {
			require.Equal(t, kern.Offsetof(name, f), int64(typ.Field(i).Offset), "offsetof %s.%s vs %s.%s", name, f,
				typ, typ.Field(i).Name)
		}
	}
	// a few spelled out with unsafe.Offsetof
	var la backend.LinearArgs
	require.Equal(t, kern.Offsetof("dg_linear_args", "w"), int64(unsafe.Offsetof(la.W)))
	require.Equal(t, kern.Offsetof("dg_linear_args", "mode"), int64(unsafe.Offsetof(la.Mode)))
	var da backend.MLADecodeArgs
	require.Equal(t, kern.Offsetof("dg_mla_decode_args", "scale"), int64(unsafe.Offsetof(da.Scale)))
	require.Equal(t, kern.Offsetof("dg_mla_decode_args", "cache_dtype"), int64(unsafe.Offsetof(da.CacheDType)))
	var ma backend.MoEFFNArgs
	require.Equal(t, kern.Offsetof("dg_moe_ffn_args", "mode"), int64(unsafe.Offsetof(ma.Mode)))
	var ga backend.MoEGateArgs
	require.Equal(t, kern.Offsetof("dg_moe_gate_args", "norm_topk_prob"), int64(unsafe.Offsetof(ga.NormTopkProb)))
}

func TestBackendBasics(t *testing.T) {
	b := testBackend(t)
	require.Equal(t, "cpu", b.Name())
	require.True(t, b.HostIsDevice())
	require.NotEmpty(t, b.Device())
	t.Log("device:", b.Device())
	if runtime.GOARCH == "arm64" && os.Getenv("DG_SIMD") == "" {
		require.Contains(t, b.Device(), "neon", "arm64 picks the NEON kernels")
	}
	require.Equal(t, int32(1), kern.APIVersion())
	free, total, err := b.MemInfo()
	require.NoError(t, err)
	require.Greater(t, total, int64(0))
	require.Greater(t, free, int64(0))
	p, err := b.Alloc(1000)
	require.NoError(t, err)
	require.Zero(t, p%64)
	src := []byte("hello, device memory")
	require.NoError(t, b.Upload(p, src))
	q, err := b.Alloc(100)
	require.NoError(t, err)
	require.NoError(t, b.CopyDevice(q, p, int64(len(src))))
	dst := make([]byte, len(src))
	require.NoError(t, b.Download(dst, q))
	require.Equal(t, src, dst)
	require.NoError(t, b.Memset(q, 7, 4))
	require.NoError(t, b.Download(dst[:4], q))
	require.Equal(t, []byte{7, 7, 7, 7}, dst[:4])
	require.NoError(t, b.Free(p))
	require.NoError(t, b.Free(q))
	h, err := b.HostAlloc(128)
	require.NoError(t, err)
	require.Len(t, h, 128)
	require.NoError(t, b.HostFree(h))
	require.Error(t, b.HostFree(make([]byte, 4)))
	require.NoError(t, b.Sync())
	_, err = b.Alloc(-1)
	requireErr(t, err, backend.StatusInvalid)
	require.NoError(t, b.SetThreads(1))
	require.NoError(t, b.SetThreads(0))
}

// ---- conversions ----

func TestDTypeConversions(t *testing.T) {
	// e4m3 table against known values (torch float8_e4m3fn)
	require.Equal(t, float32(448), e4m3Val(0x7e))
	require.Equal(t, float32(-448), e4m3Val(0xfe))
	require.Equal(t, float32(1), e4m3Val(0x38))
	require.Equal(t, float32(math.Ldexp(1, -9)), e4m3Val(0x01))
	require.True(t, math.IsNaN(float64(e4m3Val(0x7f))))
	require.Equal(t, uint16(0x3f80), bf16Bits(1))
	require.Equal(t, uint16(0x3f80), bf16Bits(1.00390625)) // tie -> even
	require.Equal(t, uint16(0x3f82), bf16Bits(1.01171875)) // tie -> even (up)
	require.Equal(t, uint16(0x3c00), f16Bits(1))
}

func TestConvert(t *testing.T) {
	b := testBackend(t)
	all := []backend.DType{backend.F32, backend.BF16, backend.F16, backend.F8E4M3}
	for _, sd := range all {
		for _, dd := range all {
			supported := sd != backend.F8E4M3 && dd != backend.F8E4M3 || sd == backend.F8E4M3 && dd != backend.F16
			for _, n := range []int{1, 7, 300, 70000} {
				name := fmt.Sprintf("%s->%s/n=%d", sd, dd, n)
				t.Run(name, func(t *testing.T) {
					rng := seedRand(name)
					src := newTensor(t, sd, n)
					for i := 0; i < n; i++ {
						v := float32(rng.NormFloat64() * math.Pow(10, float64(rng.Intn(9)-4)))
						if sd == backend.F8E4M3 {
							v = float32(rng.NormFloat64() * 50)
						}
						src.set(i, v)
					}
					dst := newTensor(t, dd, n)
					dst.poison()
					err := b.Convert(&backend.ConvertArgs{Src: src.addr, Dst: dst.addr, N: int64(n), SrcDType: sd, DstDType: dd})
					if !supported {
						requireErr(t, err, backend.StatusUnsupported)
						return
					}
					require.NoError(t, err)
					want := make([]float64, n)
					for i := range want {
						want[i] = float64(roundTo(dd, float32(src.get(i))))
					}
					requireClose(t, name, dst.vals(), want, tolExct)
				})
			}
		}
	}
	requireErr(t, b.Convert(&backend.ConvertArgs{N: 1}), backend.StatusInvalid)
}

// ---- embed ----

func TestEmbed(t *testing.T) {
	b := testBackend(t)
	for _, td := range []backend.DType{backend.F32, backend.BF16, backend.F16} {
		for _, od := range []backend.DType{backend.F32, backend.BF16, backend.F16} {
			for _, n := range []int{1, 3, 17} {
				name := fmt.Sprintf("table=%s/out=%s/n=%d", td, od, n)
				t.Run(name, func(t *testing.T) {
					rng := seedRand(name)
					vocab, hidden := 50, 1+rng.Intn(300)
					ld := hidden + rng.Intn(3)
					tab := newTensor(t, td, vocab*ld).fill(rng, 1)
					ids := make([]int32, n)
					for i := range ids {
						ids[i] = int32(rng.Intn(vocab))
					}
					if n > 1 {
						ids[1] = -1
						ids[n-1] = int32(vocab) // out of range: zeros
					}
					ldo := hidden + rng.Intn(3)
					out := newTensor(t, od, n*ldo)
					out.poison()
					require.NoError(t, b.Embed(&backend.EmbedArgs{IDs: i32s(t, ids).addr, Out: out.addr,
						Table: backend.Weight{Data: tab.addr, Rows: int64(vocab), Cols: int64(hidden), LD: int64(ld), DType: td},
						N:     int64(n), LDOut: int64(ldo), OutDType: od}))
					var got, want []float64
					for i, id := range ids {
						for k := 0; k < hidden; k++ {
							got = append(got, out.get(i*ldo+k))
							if id < 0 || int(id) >= vocab {
								want = append(want, 0)
							} else {
								want = append(want, float64(roundTo(od, float32(tab.get(int(id)*ld+k)))))
							}
						}
					}
					requireClose(t, name, got, want, tolExct)
				})
			}
		}
	}
	requireErr(t, b.Embed(&backend.EmbedArgs{N: 1}), backend.StatusInvalid)
}

// ---- rmsnorm ----

func TestRMSNorm(t *testing.T) {
	b := testBackend(t)
	for _, xd := range actDTypes {
		for _, wd := range []backend.DType{backend.F32, backend.BF16, backend.F16} {
			for _, od := range actDTypes {
				for _, resid := range []bool{false, true} {
					for _, dim := range []int{1, 7, 129, 1000} {
						alias := resid && dim == 129 && xd == od
						name := fmt.Sprintf("x=%s/w=%s/out=%s/resid=%v/dim=%d/alias=%v", xd, wd, od, resid, dim, alias)
						t.Run(name, func(t *testing.T) {
							rng := seedRand(name)
							n := []int{1, 3, 17}[rng.Intn(3)]
							ldx := dim + rng.Intn(3)
							x := newTensor(t, xd, n*ldx).fill(rng, 2)
							w := newTensor(t, wd, dim).fill(rng, 1)
							var r *tensor
							ldr := dim + rng.Intn(2)
							if resid {
								r = newTensor(t, xd, n*ldr).fill(rng, 1)
							}
							ldo := ldx
							out := x
							if !alias {
								ldo = dim + rng.Intn(3)
								out = newTensor(t, od, n*ldo)
								out.poison()
							}
							eps := float32(1e-6)
							// reference (float64 except the roundings the spec names)
							wantX := make([]float64, 0, n*dim)
							want := make([]float64, 0, n*dim)
							for i := 0; i < n; i++ {
								row := make([]float32, dim)
								var ss float64
								for k := 0; k < dim; k++ {
									v := float32(x.get(i*ldx + k))
									if resid {
										v = roundTo(xd, v+float32(r.get(i*ldr+k)))
									}
									row[k] = v
									ss += float64(v) * float64(v)
								}
								inv := 1 / math.Sqrt(ss/float64(dim)+float64(eps))
								for k := 0; k < dim; k++ {
									wantX = append(wantX, float64(row[k]))
									nv := float64(roundTo(xd, float32(float64(row[k])*inv)))
									want = append(want, w.get(k)*nv)
								}
							}
							a := &backend.RMSNormArgs{X: x.addr, Weight: w.addr, Out: out.addr, N: int64(n), Dim: int64(dim),
								LDX: int64(ldx), LDOut: int64(ldo), Eps: eps, XDType: xd, WDType: wd, OutDType: od}
							if resid {
								a.Residual, a.LDResidual = r.addr, int64(ldr)
							}
							if alias {
								a.OutDType = xd
							}
							require.NoError(t, b.RMSNorm(a))
							var got, gotX []float64
							for i := 0; i < n; i++ {
								for k := 0; k < dim; k++ {
									got = append(got, out.get(i*ldo+k))
									if !alias {
										gotX = append(gotX, x.get(i*ldx+k))
									}
								}
							}
							tl := tolFor(od)
							if xd == backend.BF16 {
								tl = tolBF16 // the normalised value is rounded to bf16: one ulp may differ
							}
							requireClose(t, name, got, want, tl)
							if resid && !alias {
								requireClose(t, name+"/x", gotX, wantX, tolExct)
							}
						})
					}
				}
			}
		}
	}
	requireErr(t, b.RMSNorm(&backend.RMSNormArgs{N: 1, Dim: 1}), backend.StatusInvalid)
	x := newTensor(t, backend.F32, 4)
	requireErr(t, b.RMSNorm(&backend.RMSNormArgs{X: x.addr, Weight: x.addr, Out: x.addr, N: 1, Dim: 4, LDX: 4, LDOut: 4,
		XDType: backend.F16, WDType: backend.F32, OutDType: backend.F32}), backend.StatusUnsupported)
	// out aliasing x must keep x's dtype and stride
	requireErr(t, b.RMSNorm(&backend.RMSNormArgs{X: x.addr, Weight: x.addr, Out: x.addr, N: 1, Dim: 2, LDX: 2, LDOut: 2,
		XDType: backend.F32, WDType: backend.F32, OutDType: backend.BF16}), backend.StatusInvalid)
}

// ---- silu_mul ----

func TestSiluMul(t *testing.T) {
	b := testBackend(t)
	for _, dt := range actDTypes {
		for _, dim := range []int{1, 7, 300, 1409} {
			name := fmt.Sprintf("dt=%s/dim=%d", dt, dim)
			t.Run(name, func(t *testing.T) {
				rng := seedRand(name)
				n := 1 + rng.Intn(17)
				ldg, ldu, ldo := dim+rng.Intn(3), dim+rng.Intn(3), dim+rng.Intn(3)
				g := newTensor(t, dt, n*ldg).fill(rng, 3)
				u := newTensor(t, dt, n*ldu).fill(rng, 1)
				o := newTensor(t, dt, n*ldo)
				o.poison()
				require.NoError(t, b.SiluMul(&backend.SiluMulArgs{Gate: g.addr, Up: u.addr, Out: o.addr, N: int64(n),
					Dim: int64(dim), LDGate: int64(ldg), LDUp: int64(ldu), LDOut: int64(ldo), DType: dt}))
				var got, want []float64
				for i := 0; i < n; i++ {
					for k := 0; k < dim; k++ {
						gv := g.get(i*ldg + k)
						want = append(want, gv/(1+math.Exp(-gv))*u.get(i*ldu+k))
						got = append(got, o.get(i*ldo+k))
					}
				}
				requireClose(t, name, got, want, tolFor(dt))
			})
		}
	}
	requireErr(t, b.SiluMul(&backend.SiluMulArgs{N: 1, Dim: 1}), backend.StatusInvalid)
}

// ---- rope ----

func TestRope(t *testing.T) {
	b := testBackend(t)
	for _, dt := range actDTypes {
		for _, rd := range []int{2, 8, 64} {
			name := fmt.Sprintf("dt=%s/rope=%d", dt, rd)
			t.Run(name, func(t *testing.T) {
				rng := seedRand(name)
				nTok, nHeads := 1+rng.Intn(17), 1+rng.Intn(4)
				off := rng.Intn(5)
				ldHead := off + rd + rng.Intn(3)
				ldTok := nHeads*ldHead + rng.Intn(3)
				x := newTensor(t, dt, nTok*ldTok).fill(rng, 1)
				orig := x.vals()
				pos := make([]int32, nTok)
				for i := range pos {
					pos[i] = int32(rng.Intn(5000))
				}
				inv := make([]float32, rd/2)
				for i := range inv {
					inv[i] = float32(math.Pow(10000, -2*float64(i)/float64(rd)))
				}
				msc := float32(1 + rng.Float64()*0.2)
				require.NoError(t, b.Rope(&backend.RopeArgs{X: x.addr, Pos: i32s(t, pos).addr, InvFreq: f32s(t, inv).addr,
					NTok: int64(nTok), NHeads: int64(nHeads), LDTok: int64(ldTok), LDHead: int64(ldHead), Offset: int64(off),
					MScale: msc, RopeDim: int32(rd), DType: dt}))
				want := append([]float64(nil), orig...)
				for ti := 0; ti < nTok; ti++ {
					for h := 0; h < nHeads; h++ {
						p := ti*ldTok + h*ldHead + off
						for i := 0; i < rd/2; i++ {
							ang := float64(float32(pos[ti]) * inv[i])
							c, s := math.Cos(ang)*float64(msc), math.Sin(ang)*float64(msc)
							x0, x1 := orig[p+2*i], orig[p+2*i+1]
							want[p+2*i] = x0*c - x1*s
							want[p+2*i+1] = x0*s + x1*c
						}
					}
				}
				requireClose(t, name, x.vals(), want, tolFor(dt))
			})
		}
	}
	requireErr(t, b.Rope(&backend.RopeArgs{NTok: 1, NHeads: 1, RopeDim: 2}), backend.StatusInvalid)
}

// ---- kv cache ----

func TestKVStoreGather(t *testing.T) {
	b := testBackend(t)
	for _, sd := range actDTypes {
		for _, cd := range actDTypes {
			for _, dd := range actDTypes {
				name := fmt.Sprintf("src=%s/cache=%s/dst=%s", sd, cd, dd)
				t.Run(name, func(t *testing.T) {
					rng := seedRand(name)
					width, bs, nBlocks := 1+rng.Intn(80), 1+rng.Intn(8), 12
					n := 1 + rng.Intn(bs*6)
					cache := newTensor(t, cd, nBlocks*bs*width)
					cache.poison()
					table := rng.Perm(nBlocks)[:(n+bs-1)/bs]
					bt := make([]int32, len(table))
					slots := make([]int32, n)
					for p := range slots {
						bt[p/bs] = int32(table[p/bs])
						slots[p] = int32(table[p/bs]*bs + p%bs)
					}
					ldSrc := width + rng.Intn(3)
					src := newTensor(t, sd, n*ldSrc).fill(rng, 1)
					// one skipped row (slot -1): its cache row keeps the poison
					skip := rng.Intn(n)
					keep := slots[skip]
					slots[skip] = -1
					require.NoError(t, b.KVStore(&backend.KVStoreArgs{Src: src.addr, Slots: i32s(t, slots).addr, Cache: cache.addr,
						N: int64(n), LDSrc: int64(ldSrc), Width: int64(width), SrcDType: sd, CacheDType: cd}))
					for k := 0; k < width; k++ {
						v := cache.get(int(keep)*width + k)
						require.True(t, v != v, "skipped slot written")
					}
					slots[skip] = keep
					src.set(skip*ldSrc, float32(src.get(skip*ldSrc))) // unchanged
					require.NoError(t, b.KVStore(&backend.KVStoreArgs{Src: src.addr, Slots: i32s(t, slots).addr, Cache: cache.addr,
						N: int64(n), LDSrc: int64(ldSrc), Width: int64(width), SrcDType: sd, CacheDType: cd}))
					ldDst := width + rng.Intn(3)
					dst := newTensor(t, dd, n*ldDst)
					dst.poison()
					require.NoError(t, b.KVGather(&backend.KVGatherArgs{Cache: cache.addr, BlockTable: i32s(t, bt).addr,
						Dst: dst.addr, N: int64(n), Width: int64(width), LDDst: int64(ldDst), BlockSize: int32(bs),
						CacheDType: cd, DstDType: dd}))
					var got, want []float64
					for p := 0; p < n; p++ {
						for k := 0; k < width; k++ {
							want = append(want, float64(roundTo(dd, roundTo(cd, float32(src.get(p*ldSrc+k))))))
							got = append(got, dst.get(p*ldDst+k))
						}
					}
					requireClose(t, name, got, want, tolExct)
				})
			}
		}
	}
	requireErr(t, b.KVStore(&backend.KVStoreArgs{N: 1, Width: 1}), backend.StatusInvalid)
	requireErr(t, b.KVGather(&backend.KVGatherArgs{N: 1, Width: 1, BlockSize: 1}), backend.StatusInvalid)
}

// ---- mla_prep ----

// prepShape is one layout of MLA's prologue: q (qDim 0: none) and kv share rows (the stacked
// q_a | kv_a projection) or live apart, with row strides wider than the data.
type prepShape struct {
	n, qDim, latent, rope int
	stacked               bool
}

// prepBufs builds random inputs of a shape; the same rng seed gives the same bytes, so two calls
// give twin inputs for the fused op and the sequence. It returns the args and the buffers the op
// writes: the rows (q | kv, or q and kv), then the cache.
func prepBufs(t *testing.T, rng *rand.Rand, sh prepShape, dt, cd, qw, kvw backend.DType) (*backend.MLAPrepArgs,
	[]*tensor) {
	a := &backend.MLAPrepArgs{N: int64(sh.n), QDim: int64(sh.qDim), Latent: int64(sh.latent), Eps: 1e-6,
		MScale: float32(0.8 + 0.4*rng.Float64()), RopeDim: int32(sh.rope), DType: dt, QWDType: qw, KVWDType: kvw,
		CacheDType: cd}
	rows := prepRows(t, rng, sh, a)
	if sh.qDim > 0 {
		a.QWeight = newTensor(t, qw, sh.qDim).fill(rng, 1).addr
	}
	a.KVWeight = newTensor(t, kvw, sh.latent).fill(rng, 1).addr
	nSlots := 2*sh.n + 1
	pos, slots := make([]int32, sh.n), make([]int32, sh.n)
	for i, s := range rng.Perm(nSlots)[:sh.n] {
		pos[i], slots[i] = int32(rng.Intn(163840)), int32(s)
	}
	slots[rng.Intn(sh.n)] = -1 // skipped: its cache row keeps the poison
	inv := make([]float32, sh.rope/2)
	for i := range inv {
		inv[i] = float32(math.Pow(10000, -2*float64(i)/float64(sh.rope)))
	}
	a.Pos, a.InvFreq, a.Slots = i32s(t, pos).addr, f32s(t, inv).addr, i32s(t, slots).addr
	cache := newTensor(t, cd, nSlots*(sh.latent+sh.rope))
	cache.poison()
	a.Cache = cache.addr
	return a, append(rows, cache)
}

// prepRows allocates and fills the rows of q and kv in the shape's layout, strides wider than the data.
func prepRows(t *testing.T, rng *rand.Rand, sh prepShape, a *backend.MLAPrepArgs) []*tensor {
	dt := a.DType
	a.LDKV = int64(sh.latent + sh.rope + 1 + rng.Intn(3))
	switch {
	case sh.qDim > 0 && sh.stacked: // one row [q | kv | pad]
		a.LDKV += int64(sh.qDim)
		x := newTensor(t, dt, sh.n*int(a.LDKV)).fill(rng, 2)
		a.Q, a.LDQ, a.KV = x.addr, a.LDKV, x.addr+uintptr(int64(sh.qDim)*dt.Size())
		return []*tensor{x}
	case sh.qDim > 0:
		a.LDQ = int64(sh.qDim + 2)
		q := newTensor(t, dt, sh.n*int(a.LDQ)).fill(rng, 2)
		kv := newTensor(t, dt, sh.n*int(a.LDKV)).fill(rng, 2)
		a.Q, a.KV = q.addr, kv.addr
		return []*tensor{q, kv}
	}
	kv := newTensor(t, dt, sh.n*int(a.LDKV)).fill(rng, 2)
	a.KV = kv.addr
	return []*tensor{kv}
}

// requireSameElems fails at the first element whose bytes differ.
func requireSameElems(t *testing.T, what string, got, want *tensor) {
	t.Helper()
	es := int(want.dt.Size())
	for i := 0; i < want.n; i++ {
		if string(got.raw[i*es:(i+1)*es]) != string(want.raw[i*es:(i+1)*es]) {
			require.Failf(t, what+" differs", "element %d of %d: got %v, want %v", i, want.n, got.get(i), want.get(i))
		}
	}
}

// TestMLAPrep: the fused op writes exactly the bytes of the ops it replaces (rmsnorm q, rmsnorm
// kv, rope k_pe, kv_store), in q, kv and the cache, whatever the dtypes and layout.
func TestMLAPrep(t *testing.T) {
	b := testBackend(t)
	shapes := []prepShape{{1, 1536, 512, 64, true}, {5, 1536, 512, 64, false}, {3, 0, 512, 64, false},
		{7, 7, 13, 6, true}, {2, 0, 5, 2, false}, {4, 9, 3, 4, false}}
	wdts := []backend.DType{backend.F32, backend.BF16, backend.F16}
	for si, sh := range shapes {
		for _, dt := range actDTypes {
			for _, cd := range actDTypes {
				qw, kvw := wdts[si%3], wdts[(si+1)%3]
				name := fmt.Sprintf("n=%d/q=%d/latent=%d/rope=%d/stacked=%v/x=%s/cache=%s", sh.n, sh.qDim, sh.latent,
					sh.rope, sh.stacked, dt, cd)
				t.Run(name, func(t *testing.T) {
					fused, got := prepBufs(t, seedRand(name), sh, dt, cd, qw, kvw)
					seq, want := prepBufs(t, seedRand(name), sh, dt, cd, qw, kvw)
					require.NoError(t, b.MLAPrep(fused))
					require.NoError(t, backend.MLAPrepUnfused(b, seq))
					for i := range want {
						requireSameElems(t, fmt.Sprintf("buffer %d (rows..., cache)", i), got[i], want[i])
					}
				})
			}
		}
	}
	good, _ := prepBufs(t, seedRand("errors"), prepShape{2, 4, 6, 4, true}, backend.F32, backend.BF16, backend.F32,
		backend.F32)
	bad := func(f func(a *backend.MLAPrepArgs)) *backend.MLAPrepArgs {
		a := *good
		f(&a)
		return &a
	}
	for what, a := range map[string]*backend.MLAPrepArgs{
		"cache":     bad(func(a *backend.MLAPrepArgs) { a.Cache = 0 }),
		"q":         bad(func(a *backend.MLAPrepArgs) { a.Q = 0 }),
		"ld_kv":     bad(func(a *backend.MLAPrepArgs) { a.LDKV = 9 }),
		"ld_q":      bad(func(a *backend.MLAPrepArgs) { a.LDQ = 3 }),
		"rope_dim":  bad(func(a *backend.MLAPrepArgs) { a.RopeDim = 3 }),
		"latent":    bad(func(a *backend.MLAPrepArgs) { a.Latent = 0 }),
		"n":         bad(func(a *backend.MLAPrepArgs) { a.N = 0 }),
		"q_dim":     bad(func(a *backend.MLAPrepArgs) { a.QDim = -1 }),
		"eps":       bad(func(a *backend.MLAPrepArgs) { a.Eps = -1 }),
		"kv_weight": bad(func(a *backend.MLAPrepArgs) { a.KVWeight = 0 }),
	} {
		err := b.MLAPrep(a)
		requireErr(t, err, backend.StatusInvalid)
		require.Contains(t, err.Error(), what)
	}
	for what, a := range map[string]*backend.MLAPrepArgs{
		"dtype":       bad(func(a *backend.MLAPrepArgs) { a.DType = backend.F16 }),
		"cache_dtype": bad(func(a *backend.MLAPrepArgs) { a.CacheDType = backend.F8E4M3 }),
		"q_w_dtype":   bad(func(a *backend.MLAPrepArgs) { a.QWDType = backend.F8E4M3 }),
		"kv_w_dtype":  bad(func(a *backend.MLAPrepArgs) { a.KVWDType = backend.I32 }),
	} {
		err := b.MLAPrep(a)
		requireErr(t, err, backend.StatusUnsupported)
		require.Contains(t, err.Error(), what)
	}
	// q_dim 0 needs neither q nor its weight
	require.NoError(t, b.MLAPrep(bad(func(a *backend.MLAPrepArgs) { a.QDim, a.Q, a.QWeight, a.QWDType = 0, 0, 0, 99 })))
}

// ---- argmax ----

func TestArgmax(t *testing.T) {
	b := testBackend(t)
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	rows := [][]float32{
		{1, 3, 3, 2},           // tie: lowest index
		{5, 5, 5, 5},           // all equal
		{1, nan, 3, 2},         // NaN: -1
		{-inf, -inf, -inf, -1}, // -inf fine
		{inf, 1, inf, 0},       // +inf tie
		{nan, nan, nan, nan},
		{-2, -1, -3, -1},
	}
	wantIDs := []int32{1, 0, -1, 3, 0, -1, 1}
	ld := 6
	lg := newTensor(t, backend.F32, len(rows)*ld)
	lg.poison() // padding is NaN and must be ignored
	for i, r := range rows {
		for k, v := range r {
			lg.set(i*ld+k, v)
		}
	}
	out := i32s(t, make([]int32, len(rows)))
	require.NoError(t, b.Argmax(&backend.ArgmaxArgs{Logits: lg.addr, Out: out.addr, N: int64(len(rows)), Vocab: 4, LD: int64(ld)}))
	require.Equal(t, wantIDs, out.i32())
	// random, larger
	rng := seedRand("argmax")
	n, vocab := 5, 129280
	lg2 := newTensor(t, backend.F32, n*vocab).fill(rng, 3)
	out2 := i32s(t, make([]int32, n))
	require.NoError(t, b.Argmax(&backend.ArgmaxArgs{Logits: lg2.addr, Out: out2.addr, N: int64(n), Vocab: int64(vocab), LD: int64(vocab)}))
	for i := 0; i < n; i++ {
		best := 0
		for k := 1; k < vocab; k++ {
			if lg2.get(i*vocab+k) > lg2.get(i*vocab+best) {
				best = k
			}
		}
		require.Equal(t, int32(best), out2.i32()[i])
	}
	requireErr(t, b.Argmax(&backend.ArgmaxArgs{N: 1, Vocab: 1, LD: 1}), backend.StatusInvalid)
	requireErr(t, b.Argmax(&backend.ArgmaxArgs{Logits: lg.addr, Out: out.addr, N: 1, Vocab: 4, LD: 2}), backend.StatusInvalid)
}

// Every op rejects a NULL args pointer with a message.
func TestNullArgs(t *testing.T) {
	b := testBackend(t)
	calls := map[string]func() error{
		"embed":       func() error { return b.Embed(nil) },
		"rmsnorm":     func() error { return b.RMSNorm(nil) },
		"linear":      func() error { return b.Linear(nil) },
		"head_matmul": func() error { return b.HeadMatmul(nil) },
		"rope":        func() error { return b.Rope(nil) },
		"kv_store":    func() error { return b.KVStore(nil) },
		"kv_gather":   func() error { return b.KVGather(nil) },
		"mla_prep":    func() error { return b.MLAPrep(nil) },
		"mla_prefill": func() error { return b.MLAPrefill(nil) },
		"mla_decode":  func() error { return b.MLADecode(nil) },
		"silu_mul":    func() error { return b.SiluMul(nil) },
		"moe_gate":    func() error { return b.MoEGate(nil) },
		"moe_ffn":     func() error { return b.MoEFFN(nil) },
		"argmax":      func() error { return b.Argmax(nil) },
		"sample":      func() error { return b.Sample(nil) },
		"convert":     func() error { return b.Convert(nil) },
	}
	for name, f := range calls {
		err := f()
		requireErr(t, err, backend.StatusInvalid)
		require.True(t, strings.Contains(err.Error(), "args is NULL"), "%s: %v", name, err)
	}
	require.Zero(t, b.LinearWorkspaceSize(nil))
	require.Zero(t, b.MoEFFNWorkspaceSize(nil))
	require.Zero(t, b.SampleWorkspaceSize(nil))
	require.False(t, b.LinearSupported(nil))
}
