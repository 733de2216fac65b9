/*
** spill_pattern.h: the data pattern and kernel parameter layout shared by the demo's GPU kernels
** (spill_kernels.cu -> spill_kernels.ptx), the demo's host code and the CPU test double's
** emulation of those kernels (native/test/fake/fake_cuda.c). Both sides must produce the same
** 64-bit word for (seed, index), or verification would fail on one of them.
**
** Kernels (every parameter is 8 bytes, so parameter i sits at offset 8*i):
**   spill_fill        (u64 *buf, u64 n_words, u64 seed, u64 base)
**                      buf[i] = spill_pattern(seed, base + i)
**   spill_verify      (const u64 *buf, u64 n_words, u64 seed, u64 base, u64 *mismatches)
**                      *mismatches += count of i with buf[i] != spill_pattern(seed, base + i)
**   spill_verify_const(const u64 *buf, u64 n_words, u64 value, u64 *mismatches)
**                      *mismatches += count of i with buf[i] != value
**   spill_read        (const u64 *buf, u64 n_words, u64 *sink)
**                      reads every byte, for bandwidth; *sink is only a keep-alive (the GPU
**                      kernel bumps it on an impossible XOR fold, the CPU double adds the sum)
*/
#ifndef SPILL_PATTERN_H
#define SPILL_PATTERN_H

#ifdef __CUDACC__
#define SPILL_HD __host__ __device__ __forceinline__
#else
#define SPILL_HD static inline
#endif

/* splitmix64 finaliser of (index, seed): cheap, and every word differs from its neighbours, so a
** page mapped at the wrong offset or a stale page is caught. */
SPILL_HD unsigned long long spill_pattern(unsigned long long seed, unsigned long long index) {
  unsigned long long x = index * 0x9E3779B97F4A7C15ull + seed;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 32;
  return x;
}

#define SPILL_KERNEL_FILL "spill_fill"
#define SPILL_KERNEL_VERIFY "spill_verify"
#define SPILL_KERNEL_VERIFY_CONST "spill_verify_const"
#define SPILL_KERNEL_READ "spill_read"

#endif /* SPILL_PATTERN_H */
