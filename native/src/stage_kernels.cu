// stage_kernels.cu: the streaming engine's page hash and conditional write-back (semantics in
// stage_kernels.h). Compiled to PTX (`make -C native stage-ptx`, needs nvcc) into
// src/stage_kernels_ptx.h, which is committed: building the interposer needs no CUDA toolkit.
#include "stage_kernels.h"

typedef unsigned long long u64;

// The page's hash by the whole block: each thread sums its words' terms, then a shared sum.
__device__ u64 page_hash(const u64 *page) {
  __shared__ u64 total;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  u64 h = 0;
  for (u64 i = threadIdx.x; i < SP_STAGE_PAGE_WORDS; i += blockDim.x) h += sp_stage_term(page[i], i);
  for (int o = 16; o > 0; o >>= 1) h += __shfl_down_sync(0xffffffffu, h, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(&total, h);
  __syncthreads();
  return total;
}

extern "C" __global__ void sp_stage_hash(const u64 *slot, u64 npages, u64 *hashes) {
  u64 p = blockIdx.x;
  if (p >= npages) return;
  u64 h = page_hash(slot + p * SP_STAGE_PAGE_WORDS);
  if (threadIdx.x == 0) hashes[p] = h;
}

extern "C" __global__ void sp_stage_writeback(const u64 *slot, u64 *dst, u64 npages, const u64 *hashes, u64 *written) {
  u64 p = blockIdx.x;
  if (p >= npages) return;
  const u64 *src = slot + p * SP_STAGE_PAGE_WORDS;
  if (page_hash(src) == hashes[p]) return;
  const uint4 *s = reinterpret_cast<const uint4 *>(src);
  uint4 *d = reinterpret_cast<uint4 *>(dst + p * SP_STAGE_PAGE_WORDS);
  for (u64 i = threadIdx.x; i < SP_STAGE_PAGE_WORDS / 2; i += blockDim.x) d[i] = s[i];
  if (threadIdx.x == 0) atomicAdd(written, 1ull);
}
