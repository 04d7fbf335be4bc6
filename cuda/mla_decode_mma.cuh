/* mla_decode_mma.cuh: the tensor-core pass 1 of dg_mla_decode (mla_decode_mma.cu), for mla.cu. */
#pragma once
#include "common.cuh"

namespace dg {

/* Whether the tensor-core kernel takes these args: bf16 q and cache, latent 512, rope 64, sm_80+,
 * and DEEPGO_MLA_DECODE is not "simt". */
bool mla_decode_mma_ok(const dg_mla_decode_args *a);
/* Its split count for these args: about 16 blocks per SM, at most max_splits. */
int mla_decode_mma_splits(const dg_mla_decode_args *a, int max_splits);
/* Pass 1 into a->workspace ([rows, heads, splits, latent + 2] f32); the combine follows. */
dg_status mla_decode_mma(const dg_mla_decode_args *a, int splits, int64_t chunk, cudaStream_t st);

}  // namespace dg
