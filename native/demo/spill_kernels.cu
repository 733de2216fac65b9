// spill_kernels.cu: the demo's GPU kernels (fill, verify, verify_const, read). Compiled to PTX
// (spill_kernels.ptx, committed) with `make -C native/demo ptx`; the demo embeds the PTX and the
// driver JITs it, so building the demo needs no nvcc. Semantics: native/demo/spill_pattern.h.
#include "spill_pattern.h"

typedef unsigned long long u64;

// Grid-stride loops: any launch shape covers all n_words.
extern "C" __global__ void spill_fill(u64 *buf, u64 n_words, u64 seed, u64 base) {
  u64 stride = (u64)gridDim.x * blockDim.x;
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n_words; i += stride)
    buf[i] = spill_pattern(seed, base + i);
}

extern "C" __global__ void spill_verify(const u64 *buf, u64 n_words, u64 seed, u64 base, u64 *mismatches) {
  u64 stride = (u64)gridDim.x * blockDim.x;
  u64 bad = 0;
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n_words; i += stride)
    bad += buf[i] != spill_pattern(seed, base + i);
  if (bad) atomicAdd(mismatches, bad);
}

extern "C" __global__ void spill_verify_const(const u64 *buf, u64 n_words, u64 value, u64 *mismatches) {
  u64 stride = (u64)gridDim.x * blockDim.x;
  u64 bad = 0;
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n_words; i += stride)
    bad += buf[i] != value;
  if (bad) atomicAdd(mismatches, bad);
}

// Bandwidth kernel: 16-byte loads (uint4), four independent loads in flight per thread per
// iteration, XOR-folded in 32 bits. The sink is written only when the fold hits an impossible
// value, which keeps the loads alive without a store or an atomic per warp. On the H100 this form
// read spillover's host pages at 51 GB/s (the same as hwprobe's kernel, which it mirrors), where a
// 64-bit-sum variant with a warp reduction and one atomic per warp measured 45 GB/s.
extern "C" __global__ void spill_read(const u64 *buf, u64 n_words, u64 *sink) {
  const uint4 *v = reinterpret_cast<const uint4 *>(buf);
  u64 n_vec = n_words / 2;
  u64 stride = (u64)gridDim.x * blockDim.x;
  u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  unsigned acc = 0;
  for (; i + 3 * stride < n_vec; i += 4 * stride) {
    uint4 a = v[i], b = v[i + stride], c = v[i + 2 * stride], d = v[i + 3 * stride];
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n_vec; i += stride) {
    uint4 a = v[i];
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (((u64)blockIdx.x * blockDim.x + threadIdx.x) == 0 && (n_words & 1)) acc ^= (unsigned)buf[n_words - 1];
  if (acc == 0x9e3779b9u) atomicAdd(sink, 1ull);
}
