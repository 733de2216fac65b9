/*
** fake_shadow.c: a stand-in for an LD_PRELOADed interposer in the fake's own tests. It exports a
** few driver names that return CUDA_ERROR_UNKNOWN; the fake's cuGetProcAddress table and internal
** calls must still reach the fake's own functions (the real driver's are not interposable either).
*/
#include "../../include/cuda_abi.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
  (void)p;
  (void)n;
  return CUDA_ERROR_UNKNOWN;
}

EXPORT CUresult cuMemGetInfo_v2(size_t *f, size_t *t) {
  (void)f;
  (void)t;
  return CUDA_ERROR_UNKNOWN;
}

EXPORT CUresult cuLaunchKernel(void) { return CUDA_ERROR_UNKNOWN; }
