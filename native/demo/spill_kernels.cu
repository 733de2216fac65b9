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

// Bandwidth kernel: 16-byte loads (ulonglong2), four independent loads in flight per thread per
// iteration so that reads of host memory across PCIe have enough parallelism, then a warp
// reduction and one atomic per warp.
extern "C" __global__ void spill_read(const u64 *buf, u64 n_words, u64 *sink) {
  const ulonglong2 *v = reinterpret_cast<const ulonglong2 *>(buf);
  u64 n_vec = n_words / 2;
  u64 stride = (u64)gridDim.x * blockDim.x;
  u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  u64 acc = 0;
  for (; i + 3 * stride < n_vec; i += 4 * stride) {
    ulonglong2 a = v[i], b = v[i + stride], c = v[i + 2 * stride], d = v[i + 3 * stride];
    acc += a.x + a.y + b.x + b.y + c.x + c.y + d.x + d.y;
  }
  for (; i < n_vec; i += stride) {
    ulonglong2 a = v[i];
    acc += a.x + a.y;
  }
  if (((u64)blockIdx.x * blockDim.x + threadIdx.x) == 0 && (n_words & 1)) acc += buf[n_words - 1];
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
  if ((threadIdx.x & 31) == 0) atomicAdd(sink, acc);
}
