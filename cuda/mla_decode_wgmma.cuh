/* mla_decode_wgmma.cuh: the Hopper (sm_90a, wgmma) pass 1 of dg_mla_decode (mla_decode_wgmma.cu), for mla.cu. */
#pragma once
#include "common.cuh"

namespace dg {

/* Whether the wgmma kernel takes these args: bf16 q and cache, latent 512, rope 64, heads % 64 == 0,
 * 16-byte aligned q rows and cache, a compute capability 9.0 device running the library's sm_90a
 * code, and DEEPGO_MLA_DECODE is neither "simt" nor "mma". Host side, cheap (cached device checks). */
bool mla_decode_wgmma_ok(const dg_mla_decode_args *a);
/* Its split count for these args (at most max_splits): as few as fill the GPU's SMs in whole waves. */
int mla_decode_wgmma_splits(const dg_mla_decode_args *a, int max_splits);
/* Pass 1 into a->workspace ([rows, heads, splits, latent + 2] f32), after which mla.cu runs the
 * combine; or, with one split and a suitably aligned out, the whole op: *wrote_out is then set and
 * the combine must not run. */
dg_status mla_decode_wgmma(const dg_mla_decode_args *a, int splits, int64_t chunk, bool *wrote_out,
                           cudaStream_t st);

}  // namespace dg
