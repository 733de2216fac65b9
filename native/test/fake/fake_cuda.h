/*
** fake_cuda.h: the test-only introspection functions exported by the CPU test double
** (native/build/fake/libcuda.so.1). Tests resolve them with dlsym so that a binary built against
** this header still runs (and reports "not the fake") on a real driver.
*/
#ifndef FAKE_CUDA_H
#define FAKE_CUDA_H

#include <stddef.h>

#include "../../include/cuda_abi.h"

/* Version this fake claims to be (cuDriverGetVersion). */
#define FAKE_CUDA_DRIVER_VERSION 13000

/* Where the page holding p lives: 1 = VMM page on a DEVICE handle, 2 = VMM page on a HOST /
** HOST_NUMA handle, 0 = reserved-but-unmapped VA or cuMemAlloc device memory, 3 = memory from
** cuMemAllocHost/cuMemHostAlloc, -1 = not CUDA memory. */
int fakecuda_location_of(CUdeviceptr p);
/* Fake VRAM bytes in use on a device (cuMemAlloc* + DEVICE cuMemCreate handles alive). */
size_t fakecuda_vram_used(int dev);
/* Fake VRAM capacity per device (FAKE_CUDA_VRAM). */
size_t fakecuda_vram_total(void);
/* Bytes of live HOST / HOST_NUMA cuMemCreate handles. */
size_t fakecuda_host_vmm_used(void);
/* How many times the exported function of that exact name (e.g. "cuMemAlloc_v2",
** "cuLaunchKernel_ptsz") was called, however it was reached (symbol or cuGetProcAddress). */
unsigned long fakecuda_calls(const char *name);
void fakecuda_reset_calls(void);
/* Live objects: [0] cuMemAlloc regions, [1] pinned host regions, [2] VA reservations,
** [3] mappings, [4] physical handles. */
void fakecuda_live(unsigned long out[5]);
/* cuMemAddressFree calls that found mappings still in the range (the fake unmapped them). */
unsigned long fakecuda_free_with_mappings(void);

#endif /* FAKE_CUDA_H */
