/*
** t_kernels.h: the demo's fill and verify kernels (native/demo/spill_pattern.h) for the placement
** scenarios (t_migrate.c, t_placement.c). The fake driver runs them on the CPU and faults on
** unmapped pages, so a wrong page move shows up as changed words or an illegal address.
*/
#ifndef T_KERNELS_H
#define T_KERNELS_H

#include "../demo/spill_pattern.h"
#include "t_common.h"

CUresult cuModuleLoadData(CUmodule *, const void *);
CUresult cuModuleGetFunction(CUfunction *, CUmodule, const char *);
CUresult cuLaunchKernel(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                        void **, void **);

static CUfunction k_fill, k_verify;
static CUdeviceptr bad_counter; /* 2 MiB of the driver's memory (small: may use the reserve) */

static inline void kernels(void) {
  CUmodule m;
  CU(cuModuleLoadData(&m, "fake image"));
  CU(cuModuleGetFunction(&k_fill, m, SPILL_KERNEL_FILL));
  CU(cuModuleGetFunction(&k_verify, m, SPILL_KERNEL_VERIFY));
  CU(cuMemAlloc_v2(&bad_counter, 2 * MiB));
  CU(cuMemsetD8_v2(bad_counter, 0, 8));
}

static inline void fill(CUdeviceptr p, size_t bytes, unsigned long long seed) {
  unsigned long long n = bytes / 8, off = 0;
  void *args[] = {&p, &n, &seed, &off};
  CU(cuLaunchKernel(k_fill, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
}

/* One verify launch over `bytes` of p, counting bad words; with `extra`, the arguments go as one
** packed buffer (the launch scan reads both forms). */
static inline void verify_launch(CUdeviceptr p, size_t bytes, unsigned long long seed, int extra) {
  unsigned long long n = bytes / 8, off = 0;
  if (!extra) {
    void *args[] = {&p, &n, &seed, &off, &bad_counter};
    CU(cuLaunchKernel(k_verify, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
    return;
  }
  unsigned long long buf[5] = {p, n, seed, off, bad_counter};
  size_t size = sizeof(buf);
  void *ex[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END};
  CU(cuLaunchKernel(k_verify, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, ex));
}

static inline unsigned long long bad_words(void) {
  unsigned long long bad = 0;
  CU(cuMemcpyDtoH_v2(&bad, bad_counter, sizeof(bad)));
  return bad;
}

#endif /* T_KERNELS_H */
