package backend

// MLAPrepUnfused runs what MLAPrep replaces, op by op: rmsnorm of q (when QDim > 0) and of the
// latent in place, rope of k_pe (one head at offset Latent), kv_store of [latent | k_pe]. MLAPrep
// must give these bytes on the same backend; the tests hold it to that.
func MLAPrepUnfused(k Kernels, a *MLAPrepArgs) error {
	if a.QDim > 0 {
		if err := k.RMSNorm(&RMSNormArgs{X: a.Q, Weight: a.QWeight, Out: a.Q, N: a.N, Dim: a.QDim, LDX: a.LDQ,
			LDOut: a.LDQ, Eps: a.Eps, XDType: a.DType, WDType: a.QWDType, OutDType: a.DType}); err != nil {
			return err
		}
	}
	if err := k.RMSNorm(&RMSNormArgs{X: a.KV, Weight: a.KVWeight, Out: a.KV, N: a.N, Dim: a.Latent, LDX: a.LDKV,
		LDOut: a.LDKV, Eps: a.Eps, XDType: a.DType, WDType: a.KVWDType, OutDType: a.DType}); err != nil {
		return err
	}
	width := a.Latent + int64(a.RopeDim)
	if err := k.Rope(&RopeArgs{X: a.KV, Pos: a.Pos, InvFreq: a.InvFreq, NTok: a.N, NHeads: 1, LDTok: a.LDKV,
		LDHead: width, Offset: a.Latent, MScale: a.MScale, RopeDim: a.RopeDim, DType: a.DType}); err != nil {
		return err
	}
	return k.KVStore(&KVStoreArgs{Src: a.KV, Slots: a.Slots, Cache: a.Cache, N: a.N, LDSrc: a.LDKV, Width: width,
		SrcDType: a.DType, CacheDType: a.CacheDType})
}
