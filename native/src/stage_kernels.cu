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

// The staging copy by the SMs, hashing on the way: kernels read host VMM pages at 93% of the
// link (measured), without a copy engine. Each block copies 1/SP_STAGE_COPY_SPLIT of a page with
// four 16-byte loads in flight per thread and adds its share of the page hash.
extern "C" __global__ void sp_stage_copy(u64 *dst, const u64 *src, u64 npages, u64 *hashes) {
  __shared__ u64 total;
  u64 page = blockIdx.x / SP_STAGE_COPY_SPLIT, part = blockIdx.x % SP_STAGE_COPY_SPLIT;
  if (page >= npages) return;
  const u64 words = SP_STAGE_PAGE_WORDS / SP_STAGE_COPY_SPLIT, first = part * words;
  const uint4 *s = reinterpret_cast<const uint4 *>(src + page * SP_STAGE_PAGE_WORDS + first);
  uint4 *d = reinterpret_cast<uint4 *>(dst + page * SP_STAGE_PAGE_WORDS + first);
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  u64 h = 0;
  const u64 vecs = words / 2, step = blockDim.x;
  for (u64 i = threadIdx.x; i < vecs; i += 4 * step) {
    uint4 v[4];
#pragma unroll
    for (int k = 0; k < 4; k++)
      if (i + k * step < vecs) v[k] = s[i + k * step];
#pragma unroll
    for (int k = 0; k < 4; k++) {
      u64 j = i + k * step;
      if (j >= vecs) break;
      d[j] = v[k];
      u64 w0 = ((u64)v[k].y << 32) | v[k].x, w1 = ((u64)v[k].w << 32) | v[k].z;
      h += sp_stage_term(w0, first + 2 * j) + sp_stage_term(w1, first + 2 * j + 1);
    }
  }
  for (int o = 16; o > 0; o >>= 1) h += __shfl_down_sync(0xffffffffu, h, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(&total, h);
  __syncthreads();
  if (threadIdx.x == 0) atomicAdd(&hashes[page], total);
}
