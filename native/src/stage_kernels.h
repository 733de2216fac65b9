/*
** stage_kernels.h: the streaming engine's two GPU kernels, shared by their CUDA source
** (src/stage_kernels.cu -> stage_kernels_ptx.h, committed), the engine (stream.c) and the CPU test
** double's emulation of them (test/fake/fake_cuda.c). Both sides must hash a page the same way.
**
** A staged page's hash is taken when it is staged and again before its slot is reused; a page
** whose hash changed was written by a kernel and is copied back to the range's own pages.
**   sp_stage_hash      (u64 *slot, u64 npages, u64 *hashes)          hashes[i] = hash of page i
**   sp_stage_writeback (u64 *slot, u64 *dst, u64 npages, u64 *hashes, u64 *written)
**                      every page i whose hash differs from hashes[i] is copied to dst and counted
**   sp_stage_copy      (u64 *dst, u64 *src, u64 npages, u64 *hashes)
**                      dst = src, and hashes[i] += hash of page i (hashes zeroed first): the staging
**                      copy by the SMs (SPILLOVER_STREAM_COPY=kernel), SP_STAGE_COPY_SPLIT blocks a page
** One block per 2 MiB page (the copy: SP_STAGE_COPY_SPLIT); every parameter is 8 bytes.
*/
#ifndef SP_STAGE_KERNELS_H
#define SP_STAGE_KERNELS_H

#ifdef __CUDACC__
#define SP_STAGE_HD __host__ __device__ __forceinline__
#else
#define SP_STAGE_HD static inline
#endif

#define SP_STAGE_PAGE_WORDS (262144ull) /* 2 MiB of 8-byte words */
#define SP_STAGE_KERNEL_HASH "sp_stage_hash"
#define SP_STAGE_KERNEL_WRITEBACK "sp_stage_writeback"
#define SP_STAGE_KERNEL_COPY "sp_stage_copy"
#define SP_STAGE_COPY_SPLIT 8ull /* blocks per page: enough reads in flight to fill the link */

/* One word's term of a page hash: the splitmix64 finaliser of the word mixed with its index, so
** the page hash (the wrapping sum of the terms) is order-independent, which lets every thread sum
** its share, yet a moved or changed word changes it. */
SP_STAGE_HD unsigned long long sp_stage_term(unsigned long long word, unsigned long long index) {
  unsigned long long x = word ^ (index * 0x9E3779B97F4A7C15ull);
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 32;
  return x;
}

#endif /* SP_STAGE_KERNELS_H */
