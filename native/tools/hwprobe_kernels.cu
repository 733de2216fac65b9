// Read kernel for native/tools/hwprobe.c: streams a buffer with 16-byte loads (VRAM, mapped pinned
// host memory, or VMM host pages) so hwprobe can time it. The XOR result is written only when it
// hits an impossible value, which keeps the loads alive without a store per thread.
// Regenerate the embedded PTX: make -C native hwprobe-ptx (needs nvcc).
#include <stdint.h>

extern "C" __global__ void hwprobe_read(const uint4 *__restrict__ p, unsigned long long n, unsigned int *out) {
  unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
  unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
  unsigned int acc = 0;
  for (; i + 3 * stride < n; i += 4 * stride) {
    uint4 a = p[i], b = p[i + stride], c = p[i + 2 * stride], d = p[i + 3 * stride];
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n; i += stride) {
    uint4 a = p[i];
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (acc == 0x9e3779b9u) atomicAdd(out, 1u);
}
