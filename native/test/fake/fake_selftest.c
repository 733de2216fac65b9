/*
** fake_selftest.c: checks that the CPU test double behaves like the CUDA driver in the ways the
** interposer relies on, so that tests run against it mean something. Run one scenario per call:
**   fake_selftest vmm | oom | procaddr | kernels | nohostnuma | nvml | copies | graphs | peers
** with LD_LIBRARY_PATH=native/build/fake (it dlopens "libcuda.so.1" as libcudart does).
** Prints "ok <check>" per check and "PASS <scenario>"; on the first failure prints
** "FAIL <check>: <detail>" and exits 1.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../demo/spill_pattern.h"
#include "fake_cuda.h"

/* Prototypes, used only through __typeof__ to type the dlsym'd pointers. */
CUresult cuInit(unsigned int);
CUresult cuDeviceGet(CUdevice *, int);
CUresult cuDeviceTotalMem_v2(size_t *, CUdevice);
CUresult cuDevicePrimaryCtxRetain(CUcontext *, CUdevice);
CUresult cuCtxSetCurrent(CUcontext);
CUresult cuMemGetInfo_v2(size_t *, size_t *);
CUresult cuMemAlloc_v2(CUdeviceptr *, size_t);
CUresult cuMemFree_v2(CUdeviceptr);
CUresult cuMemAddressReserve(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
CUresult cuMemAddressFree(CUdeviceptr, size_t);
CUresult cuMemCreate(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long);
CUresult cuMemRelease(CUmemGenericAllocationHandle);
CUresult cuMemMap(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long);
CUresult cuMemUnmap(CUdeviceptr, size_t);
CUresult cuMemSetAccess(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);
CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *, void *);
CUresult cuMemcpyHtoD_v2(CUdeviceptr, const void *, size_t);
CUresult cuMemcpyDtoH_v2(void *, CUdeviceptr, size_t);
CUresult cuMemcpyDtoD_v2(CUdeviceptr, CUdeviceptr, size_t);
CUresult cuMemsetD32_v2(CUdeviceptr, unsigned int, size_t);
CUresult cuMemGetAddressRange_v2(CUdeviceptr *, size_t *, CUdeviceptr);
CUresult cuPointerGetAttribute(void *, int, CUdeviceptr);
CUresult cuGetProcAddress_v2(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);
CUresult cuGetProcAddress(const char *, void **, int, cuuint64_t);
CUresult cuModuleLoadData(CUmodule *, const void *);
CUresult cuModuleGetFunction(CUfunction *, CUmodule, const char *);
CUresult cuLaunchKernel(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                        void **, void **);
CUresult cuFuncGetParamInfo(CUfunction, size_t, size_t *, size_t *);
CUresult cuStreamCreate(CUstream *, unsigned int);
CUresult cuStreamBeginCapture_v2(CUstream, int);
CUresult cuStreamEndCapture(CUstream, CUgraph *);
CUresult cuStreamIsCapturing(CUstream, int *);
CUresult cuMemsetD32Async(CUdeviceptr, unsigned int, size_t, CUstream);
CUresult cuGraphCreate(CUgraph *, unsigned int);
CUresult cuGraphDestroy(CUgraph);
CUresult cuGraphAddKernelNode_v2(CUgraphNode *, CUgraph, const CUgraphNode *, size_t, const CUDA_KERNEL_NODE_PARAMS_v2 *);
CUresult cuGraphAddChildGraphNode(CUgraphNode *, CUgraph, const CUgraphNode *, size_t, CUgraph);
CUresult cuGraphGetNodes(CUgraph, CUgraphNode *, size_t *);
CUresult cuGraphNodeGetType(CUgraphNode, CUgraphNodeType *);
CUresult cuGraphKernelNodeGetParams_v2(CUgraphNode, CUDA_KERNEL_NODE_PARAMS_v2 *);
CUresult cuGraphMemsetNodeGetParams(CUgraphNode, CUDA_MEMSET_NODE_PARAMS *);
CUresult cuGraphChildGraphNodeGetGraph(CUgraphNode, CUgraph *);
CUresult cuGraphInstantiateWithFlags(CUgraphExec *, CUgraph, unsigned long long);
CUresult cuGraphLaunch(CUgraphExec, CUstream);
CUresult cuGraphExecKernelNodeSetParams_v2(CUgraphExec, CUgraphNode, const CUDA_KERNEL_NODE_PARAMS_v2 *);
CUresult cuGraphExecUpdate_v2(CUgraphExec, CUgraph, CUgraphExecUpdateResultInfo *);
CUresult cuGraphExecDestroy(CUgraphExec);
CUresult cuCtxEnablePeerAccess(CUcontext, unsigned int);
CUresult cuCtxDisablePeerAccess(CUcontext);
CUresult cuDeviceCanAccessPeer(int *, CUdevice, CUdevice);
CUresult cuMemcpyPeer(CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t);
CUresult cuMemGetAccess(unsigned long long *, const CUmemLocation *, CUdeviceptr);

static void *g_lib;
static const char *g_scenario;

#define LOAD(name) __typeof__(&name) p_##name = (__typeof__(&name))must_sym(#name)
#define LOADF(name) __typeof__(&name) name##_ = (__typeof__(&name))must_sym(#name)

static void *must_sym(const char *name) {
  void *p = dlsym(g_lib, name);
  if (!p) {
    printf("FAIL dlsym %s: %s\n", name, dlerror());
    exit(1);
  }
  return p;
}

static void check(int cond, const char *what, const char *fmt, long long a, long long b) {
  if (!cond) {
    printf("FAIL %s: ", what);
    printf(fmt, a, b);
    printf("\n");
    exit(1);
  }
  printf("ok %s\n", what);
}

/* A CUresult equality check with both codes in the failure line. */
#define EXPECT_RC(expr, want, what) check((expr) == (want), what, "got %lld, want %lld", (long long)(expr), (long long)(want))
#define CALL_RC(expr, want, what)                                                              \
  do {                                                                                         \
    CUresult rc_ = (expr);                                                                     \
    check(rc_ == (want), what, "got CUresult %lld, want %lld", (long long)rc_, (long long)(want)); \
  } while (0)
#define EXPECT(cond, what, a, b) check((cond), what, "values %lld, %lld", (long long)(a), (long long)(b))

static void init_ctx(void) {
  LOADF(cuInit);
  LOADF(cuDevicePrimaryCtxRetain);
  LOADF(cuCtxSetCurrent);
  CUcontext ctx;
  CALL_RC(cuInit_(0), CUDA_SUCCESS, "cuInit");
  CALL_RC(cuDevicePrimaryCtxRetain_(&ctx, 0), CUDA_SUCCESS, "primary context");
  CALL_RC(cuCtxSetCurrent_(ctx), CUDA_SUCCESS, "set current");
}

static CUmemAllocationProp prop_for(CUmemLocationType t) {
  CUmemAllocationProp p;
  memset(&p, 0, sizeof p);
  p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  p.location.type = t;
  p.location.id = 0;
  return p;
}

#define MiB ((size_t)1 << 20)

static void scenario_vmm(void) {
  LOAD(cuMemAddressReserve);
  LOAD(cuMemAddressFree);
  LOAD(cuMemCreate);
  LOAD(cuMemRelease);
  LOAD(cuMemMap);
  LOAD(cuMemUnmap);
  LOAD(cuMemSetAccess);
  LOAD(cuMemcpyHtoD_v2);
  LOAD(cuMemcpyDtoH_v2);
  LOAD(cuMemRetainAllocationHandle);
  LOAD(cuPointerGetAttribute);
  LOAD(cuMemGetAddressRange_v2);
  LOAD(fakecuda_location_of);
  LOAD(fakecuda_vram_used);
  LOAD(fakecuda_live);
  LOAD(fakecuda_free_with_mappings);
  init_ctx();

  CUdeviceptr va;
  CALL_RC(p_cuMemAddressReserve(&va, 3 * MiB, 0, 0, 0), CUDA_ERROR_INVALID_VALUE, "reserve size not a multiple of 2 MiB");
  CALL_RC(p_cuMemAddressReserve(&va, 8 * MiB, 0, 0, 0), CUDA_SUCCESS, "reserve 8 MiB");
  EXPECT(va % (2 * MiB) == 0, "reservation is 2 MiB aligned", va, 0);
  EXPECT(p_fakecuda_location_of(va) == 0, "reserved VA is unmapped", p_fakecuda_location_of(va), 0);

  CUmemAllocationProp dprop = prop_for(CU_MEM_LOCATION_TYPE_DEVICE);
  CUmemAllocationProp hprop = prop_for(CU_MEM_LOCATION_TYPE_HOST_NUMA);
  CUmemGenericAllocationHandle dev_h, host_h;
  CALL_RC(p_cuMemCreate(&dev_h, 2 * MiB, &dprop, 0), CUDA_SUCCESS, "create DEVICE 2 MiB");
  CALL_RC(p_cuMemCreate(&host_h, 2 * MiB, &hprop, 0), CUDA_SUCCESS, "create HOST_NUMA 2 MiB");
  EXPECT(p_fakecuda_vram_used(0) == 2 * MiB, "only the DEVICE handle counts against VRAM", p_fakecuda_vram_used(0), 2 * MiB);

  CALL_RC(p_cuMemMap(va, 2 * MiB, 4096, dev_h, 0), CUDA_ERROR_INVALID_VALUE, "map with offset != 0 is refused");
  CALL_RC(p_cuMemMap(va, 2 * MiB, 0, dev_h, 0), CUDA_SUCCESS, "map DEVICE page at +0");
  CALL_RC(p_cuMemMap(va, 2 * MiB, 0, host_h, 0), CUDA_ERROR_ALREADY_MAPPED, "second map over a mapped page is refused");
  CALL_RC(p_cuMemMap(va + 2 * MiB, 2 * MiB, 0, host_h, 0), CUDA_SUCCESS, "map HOST page at +2 MiB");
  EXPECT(p_fakecuda_location_of(va) == 1, "page 0 is DEVICE", p_fakecuda_location_of(va), 1);
  EXPECT(p_fakecuda_location_of(va + 2 * MiB + 10) == 2, "page 1 is HOST", p_fakecuda_location_of(va + 2 * MiB + 10), 2);

  uint64_t word = 0x1234;
  CALL_RC(p_cuMemcpyHtoD_v2(va, &word, 8), CUDA_ERROR_ILLEGAL_ADDRESS, "copy before cuMemSetAccess faults");
  CUmemAccessDesc acc = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
  CALL_RC(p_cuMemSetAccess(va, 6 * MiB, &acc, 1), CUDA_ERROR_INVALID_VALUE, "set access over an unmapped page is refused");
  CALL_RC(p_cuMemSetAccess(va, 4 * MiB, &acc, 1), CUDA_SUCCESS, "set access over both pages");

  /* Write a pattern across the DEVICE/HOST boundary: one range, two tiers. */
  size_t n = 4 * MiB / 8;
  uint64_t *buf = malloc(4 * MiB), *back = malloc(4 * MiB);
  for (size_t i = 0; i < n; i++) buf[i] = spill_pattern(7, i);
  CALL_RC(p_cuMemcpyHtoD_v2(va, buf, 4 * MiB), CUDA_SUCCESS, "copy 4 MiB across the tier boundary");
  CALL_RC(p_cuMemcpyDtoH_v2(back, va, 4 * MiB), CUDA_SUCCESS, "copy it back");
  EXPECT(memcmp(buf, back, 4 * MiB) == 0, "round trip across tiers is exact", 0, 0);

  CUdeviceptr base = 0;
  size_t size = 0;
  CALL_RC(p_cuMemGetAddressRange_v2(&base, &size, va + 2 * MiB + 8), CUDA_SUCCESS, "address range of a mapped page");
  EXPECT(base == va + 2 * MiB && size == 2 * MiB, "address range is the mapping", base - va, size);
  size_t range_size = 0;
  CALL_RC(p_cuPointerGetAttribute(&range_size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, va + 8), CUDA_SUCCESS, "RANGE_SIZE");
  EXPECT(range_size == 8 * MiB, "RANGE_SIZE is the reservation", range_size, 8 * MiB);

  /* Remap: move page 1's bytes onto a new DEVICE handle (copy, unmap, map, set access). */
  CUmemGenericAllocationHandle dev2;
  CALL_RC(p_cuMemCreate(&dev2, 2 * MiB, &dprop, 0), CUDA_SUCCESS, "create second DEVICE handle");
  CUdeviceptr staging;
  CALL_RC(p_cuMemAddressReserve(&staging, 2 * MiB, 0, 0, 0), CUDA_SUCCESS, "reserve staging");
  CALL_RC(p_cuMemMap(staging, 2 * MiB, 0, dev2, 0), CUDA_SUCCESS, "map staging");
  CALL_RC(p_cuMemSetAccess(staging, 2 * MiB, &acc, 1), CUDA_SUCCESS, "staging access");
  memcpy((void *)(uintptr_t)staging, (void *)(uintptr_t)(va + 2 * MiB), 2 * MiB);
  CALL_RC(p_cuMemUnmap(staging, 2 * MiB), CUDA_SUCCESS, "unmap staging");
  CALL_RC(p_cuMemUnmap(va + 2 * MiB, MiB), CUDA_ERROR_INVALID_VALUE, "unmapping half a mapping is refused");
  CALL_RC(p_cuMemUnmap(va + 2 * MiB, 2 * MiB), CUDA_SUCCESS, "unmap the HOST page");
  EXPECT(p_fakecuda_location_of(va + 2 * MiB) == 0, "unmapped page reads as unmapped", p_fakecuda_location_of(va + 2 * MiB), 0);
  CALL_RC(p_cuMemcpyDtoH_v2(back, va + 2 * MiB, 8), CUDA_ERROR_ILLEGAL_ADDRESS, "copy from an unmapped page faults");
  CALL_RC(p_cuMemMap(va + 2 * MiB, 2 * MiB, 0, dev2, 0), CUDA_SUCCESS, "map the DEVICE copy in its place");
  CALL_RC(p_cuMemSetAccess(va + 2 * MiB, 2 * MiB, &acc, 1), CUDA_SUCCESS, "access on the remapped page");
  EXPECT(p_fakecuda_location_of(va + 2 * MiB) == 1, "page 1 is DEVICE now", p_fakecuda_location_of(va + 2 * MiB), 1);
  CALL_RC(p_cuMemcpyDtoH_v2(back, va, 4 * MiB), CUDA_SUCCESS, "read the whole range after the remap");
  EXPECT(memcmp(buf, back, 4 * MiB) == 0, "data followed the handle across the remap", 0, 0);

  /* The HOST handle is unmapped but still referenced: its bytes survive a map elsewhere. */
  CALL_RC(p_cuMemMap(va + 4 * MiB, 2 * MiB, 0, host_h, 0), CUDA_SUCCESS, "map the old HOST handle at +4 MiB");
  CALL_RC(p_cuMemSetAccess(va + 4 * MiB, 2 * MiB, &acc, 1), CUDA_SUCCESS, "access at +4 MiB");
  CALL_RC(p_cuMemcpyDtoH_v2(back, va + 4 * MiB, 2 * MiB), CUDA_SUCCESS, "read the HOST handle again");
  EXPECT(memcmp(buf + n / 2, back, 2 * MiB) == 0, "HOST handle kept its bytes while unmapped", 0, 0);

  /* Release semantics: memory goes when the last mapping and the last reference go. */
  CUmemGenericAllocationHandle again;
  CALL_RC(p_cuMemRetainAllocationHandle(&again, (void *)(uintptr_t)(va + 100)), CUDA_SUCCESS, "retain handle by address");
  EXPECT(again == dev_h, "retain returns the mapped handle", again == dev_h, 1);
  CALL_RC(p_cuMemRelease(dev_h), CUDA_SUCCESS, "release (retain ref)");
  CALL_RC(p_cuMemRelease(dev_h), CUDA_SUCCESS, "release (create ref) while mapped");
  CALL_RC(p_cuMemRelease(dev2), CUDA_SUCCESS, "release dev2 while mapped");
  EXPECT(p_fakecuda_vram_used(0) == 4 * MiB, "mapped handles still hold VRAM after release", p_fakecuda_vram_used(0), 4 * MiB);
  CALL_RC(p_cuMemcpyDtoH_v2(back, va, 8), CUDA_SUCCESS, "released-but-mapped memory is still readable");
  CALL_RC(p_cuMemUnmap(va, 4 * MiB), CUDA_SUCCESS, "unmap two whole mappings at once");
  EXPECT(p_fakecuda_vram_used(0) == 0, "VRAM freed when the last mapping goes", p_fakecuda_vram_used(0), 0);
  CALL_RC(p_cuMemRelease(dev_h), CUDA_ERROR_INVALID_VALUE, "releasing a freed handle is refused");
  CALL_RC(p_cuMemUnmap(va + 4 * MiB, 2 * MiB), CUDA_SUCCESS, "unmap the HOST mapping");
  CALL_RC(p_cuMemRelease(host_h), CUDA_SUCCESS, "release the HOST handle");
  CALL_RC(p_cuMemAddressFree(va, 8 * MiB), CUDA_SUCCESS, "free the reservation");
  CALL_RC(p_cuMemAddressFree(staging, 2 * MiB), CUDA_SUCCESS, "free the staging reservation");
  unsigned long live[5];
  p_fakecuda_live(live);
  EXPECT(live[2] == 0 && live[3] == 0 && live[4] == 0, "nothing left: reservations, mappings, handles", live[3], live[4]);
  EXPECT(p_fakecuda_free_with_mappings() == 0, "no reservation was freed with mappings", p_fakecuda_free_with_mappings(), 0);
  free(buf);
  free(back);
}

static void scenario_oom(void) {
  LOAD(cuMemAlloc_v2);
  LOAD(cuMemFree_v2);
  LOAD(cuMemGetInfo_v2);
  LOAD(cuDeviceTotalMem_v2);
  LOAD(cuMemCreate);
  LOAD(cuMemRelease);
  init_ctx();
  /* Expects FAKE_CUDA_VRAM=64M. */
  size_t total = 0, free_b = 0, dev_total = 0;
  CALL_RC(p_cuMemGetInfo_v2(&free_b, &total), CUDA_SUCCESS, "cuMemGetInfo");
  CALL_RC(p_cuDeviceTotalMem_v2(&dev_total, 0), CUDA_SUCCESS, "cuDeviceTotalMem");
  EXPECT(total == 64 * MiB && dev_total == 64 * MiB && free_b == 64 * MiB, "capacity is FAKE_CUDA_VRAM", total, dev_total);
  CUdeviceptr a, b;
  CALL_RC(p_cuMemAlloc_v2(&a, 48 * MiB), CUDA_SUCCESS, "alloc 48 MiB of 64");
  CALL_RC(p_cuMemAlloc_v2(&b, 32 * MiB), CUDA_ERROR_OUT_OF_MEMORY, "alloc 32 MiB more is OUT_OF_MEMORY");
  CALL_RC(p_cuMemAlloc_v2(&b, 0), CUDA_ERROR_INVALID_VALUE, "alloc 0 bytes is INVALID_VALUE");
  CALL_RC(p_cuMemGetInfo_v2(&free_b, &total), CUDA_SUCCESS, "cuMemGetInfo after alloc");
  EXPECT(free_b == 16 * MiB, "free drops by the allocation", free_b, 16 * MiB);
  CUmemAllocationProp dprop = prop_for(CU_MEM_LOCATION_TYPE_DEVICE);
  CUmemAllocationProp hprop = prop_for(CU_MEM_LOCATION_TYPE_HOST_NUMA);
  CUmemGenericAllocationHandle h;
  CALL_RC(p_cuMemCreate(&h, 32 * MiB, &dprop, 0), CUDA_ERROR_OUT_OF_MEMORY, "DEVICE cuMemCreate beyond VRAM is OOM");
  CALL_RC(p_cuMemCreate(&h, 32 * MiB, &hprop, 0), CUDA_SUCCESS, "HOST_NUMA cuMemCreate does not use VRAM");
  CALL_RC(p_cuMemRelease(h), CUDA_SUCCESS, "release host handle");
  CALL_RC(p_cuMemCreate(&h, 16 * MiB, &dprop, 0), CUDA_SUCCESS, "DEVICE cuMemCreate filling VRAM exactly");
  CALL_RC(p_cuMemAlloc_v2(&b, 1), CUDA_ERROR_OUT_OF_MEMORY, "then one byte more is OOM");
  CALL_RC(p_cuMemRelease(h), CUDA_SUCCESS, "release device handle");
  CALL_RC(p_cuMemFree_v2(a), CUDA_SUCCESS, "free 48 MiB");
  CALL_RC(p_cuMemFree_v2(a), CUDA_ERROR_INVALID_VALUE, "double free is INVALID_VALUE");
  CALL_RC(p_cuMemAlloc_v2(&b, 64 * MiB), CUDA_SUCCESS, "the whole 64 MiB fits again");
  CALL_RC(p_cuMemFree_v2(b), CUDA_SUCCESS, "free it");
}

static void scenario_procaddr(void) {
  LOAD(cuGetProcAddress_v2);
  LOAD(cuGetProcAddress);
  struct {
    const char *base;
    int version;
    cuuint64_t flags;
    const char *want; /* NULL = no function */
    CUdriverProcAddressQueryResult status;
  } cases[] = {
      {"cuMemAlloc", 13000, 0, "cuMemAlloc_v2", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuMemAlloc", 3020, 0, "cuMemAlloc_v2", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuMemAlloc", 13000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "cuMemAlloc_v2", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuMemAllocAsync", 11020, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "cuMemAllocAsync_ptsz", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuMemAllocAsync", 11020, CU_GET_PROC_ADDRESS_LEGACY_STREAM, "cuMemAllocAsync", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuLaunchKernel", 4000, 0, "cuLaunchKernel", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuLaunchKernel", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "cuLaunchKernel_ptsz", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuMemcpyHtoD", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "cuMemcpyHtoD_v2_ptds", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuMemcpyHtoDAsync", 12000, 0, "cuMemcpyHtoDAsync_v2", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuDeviceTotalMem", 2000, 0, "cuDeviceTotalMem", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuDeviceTotalMem", 3020, 0, "cuDeviceTotalMem_v2", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuCtxCreate", 12000, 0, "cuCtxCreate_v2", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuCtxCreate", 13000, 0, "cuCtxCreate_v4", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuGetProcAddress", 12000, 0, "cuGetProcAddress_v2", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuGetProcAddress", 11030, 0, "cuGetProcAddress", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuEventElapsedTime", 13000, 0, "cuEventElapsedTime_v2", CU_GET_PROC_ADDRESS_SUCCESS},
      {"cuMemCreate", 10000, 0, NULL, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT},
      {"cuNoSuchFunction", 13000, 0, NULL, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND},
  };
  char what[160];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    void *fn = (void *)1;
    CUdriverProcAddressQueryResult st = 99;
    snprintf(what, sizeof what, "getProcAddress(%s, %d, %llu)", cases[i].base, cases[i].version,
             (unsigned long long)cases[i].flags);
    CALL_RC(p_cuGetProcAddress_v2(cases[i].base, &fn, cases[i].version, cases[i].flags, &st), CUDA_SUCCESS, what);
    void *want = cases[i].want ? dlsym(g_lib, cases[i].want) : NULL;
    snprintf(what, sizeof what, "%s@%d -> %s", cases[i].base, cases[i].version, cases[i].want ? cases[i].want : "NULL");
    EXPECT(fn == want && st == cases[i].status, what, st, cases[i].status);
  }
  void *fn = NULL;
  CALL_RC(p_cuGetProcAddress_v2("cuMemAlloc", &fn, 13010, 0, NULL), CUDA_ERROR_INVALID_VALUE,
          "a version newer than the driver is INVALID_VALUE");
  CALL_RC(p_cuGetProcAddress("cuMemFree", &fn, 12000, 0), CUDA_SUCCESS, "4-argument cuGetProcAddress");
  EXPECT(fn == dlsym(g_lib, "cuMemFree_v2"), "4-argument form resolves cuMemFree_v2", 0, 0);
}

static void scenario_kernels(void) {
  LOAD(cuModuleLoadData);
  LOAD(cuModuleGetFunction);
  LOAD(cuLaunchKernel);
  LOAD(cuFuncGetParamInfo);
  LOAD(cuMemAlloc_v2);
  LOAD(cuMemsetD32_v2);
  LOAD(cuMemcpyDtoH_v2);
  LOAD(cuMemAddressReserve);
  init_ctx();
  CUmodule mod;
  CUfunction fill, verify, bogus;
  CALL_RC(p_cuModuleLoadData(&mod, "any image"), CUDA_SUCCESS, "load module");
  CALL_RC(p_cuModuleGetFunction(&fill, mod, SPILL_KERNEL_FILL), CUDA_SUCCESS, "get spill_fill");
  CALL_RC(p_cuModuleGetFunction(&verify, mod, SPILL_KERNEL_VERIFY), CUDA_SUCCESS, "get spill_verify");
  CALL_RC(p_cuModuleGetFunction(&bogus, mod, "no_such_kernel"), CUDA_ERROR_NOT_FOUND, "unknown kernel is NOT_FOUND");
  size_t off = 0, sz = 0;
  CALL_RC(p_cuFuncGetParamInfo(verify, 4, &off, &sz), CUDA_SUCCESS, "param info of verify's 5th param");
  EXPECT(off == 32 && sz == 8, "param 4 at offset 32, 8 bytes", off, sz);
  CALL_RC(p_cuFuncGetParamInfo(verify, 5, &off, &sz), CUDA_ERROR_INVALID_VALUE, "param 5 does not exist");

  CUdeviceptr buf, counter;
  unsigned long long n = MiB / 8, seed = 42, base = 0;
  CALL_RC(p_cuMemAlloc_v2(&buf, MiB), CUDA_SUCCESS, "alloc buffer");
  CALL_RC(p_cuMemAlloc_v2(&counter, 8), CUDA_SUCCESS, "alloc counter");
  CALL_RC(p_cuMemsetD32_v2(counter, 0, 2), CUDA_SUCCESS, "zero counter");
  void *fargs[] = {&buf, &n, &seed, &base};
  CALL_RC(p_cuLaunchKernel(fill, 132, 1, 1, 256, 1, 1, 0, NULL, fargs, NULL), CUDA_SUCCESS, "launch fill");
  void *vargs[] = {&buf, &n, &seed, &base, &counter};
  CALL_RC(p_cuLaunchKernel(verify, 132, 1, 1, 256, 1, 1, 0, NULL, vargs, NULL), CUDA_SUCCESS, "launch verify");
  unsigned long long bad = 1;
  CALL_RC(p_cuMemcpyDtoH_v2(&bad, counter, 8), CUDA_SUCCESS, "read counter");
  EXPECT(bad == 0, "verify finds no mismatch after fill", bad, 0);
  CALL_RC(p_cuMemsetD32_v2(buf + 4096, 0xdeadbeef, 4), CUDA_SUCCESS, "corrupt 16 bytes");
  CALL_RC(p_cuLaunchKernel(verify, 132, 1, 1, 256, 1, 1, 0, NULL, vargs, NULL), CUDA_SUCCESS, "verify again");
  CALL_RC(p_cuMemcpyDtoH_v2(&bad, counter, 8), CUDA_SUCCESS, "read counter again");
  EXPECT(bad == 2, "verify counts the 2 corrupted words", bad, 2);
  CALL_RC(p_cuLaunchKernel(fill, 1, 1, 1, 2048, 1, 1, 0, NULL, fargs, NULL), CUDA_ERROR_INVALID_VALUE,
          "2048 threads per block is refused");
  CUdeviceptr va;
  CALL_RC(p_cuMemAddressReserve(&va, 2 * MiB, 0, 0, 0), CUDA_SUCCESS, "reserve");
  void *uargs[] = {&va, &n, &seed, &base};
  CALL_RC(p_cuLaunchKernel(fill, 1, 1, 1, 256, 1, 1, 0, NULL, uargs, NULL), CUDA_ERROR_ILLEGAL_ADDRESS,
          "a kernel writing unmapped VA faults");
}

static void scenario_nohostnuma(void) {
  LOAD(cuMemCreate);
  init_ctx();
  int (*attr)(int *, int, CUdevice) = (int (*)(int *, int, CUdevice))must_sym("cuDeviceGetAttribute");
  int v = -1;
  CALL_RC(attr(&v, CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 0), CUDA_SUCCESS, "attribute 141");
  EXPECT(v == 0, "HOST_NUMA VMM reported unsupported", v, 0);
  CUmemAllocationProp hprop = prop_for(CU_MEM_LOCATION_TYPE_HOST_NUMA);
  CUmemGenericAllocationHandle h;
  CALL_RC(p_cuMemCreate(&h, 2 * MiB, &hprop, 0), CUDA_ERROR_NOT_SUPPORTED, "HOST_NUMA cuMemCreate is NOT_SUPPORTED");
}

static void scenario_nvml(void) {
  LOAD(cuMemAlloc_v2);
  LOAD(cuDeviceTotalMem_v2);
  init_ctx();
  void *nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW);
  if (!nvml) {
    printf("FAIL dlopen libnvidia-ml.so.1: %s\n", dlerror());
    exit(1);
  }
  int (*init)(void) = (int (*)(void))dlsym(nvml, "nvmlInit_v2");
  int (*handle)(unsigned, void **) = (int (*)(unsigned, void **))dlsym(nvml, "nvmlDeviceGetHandleByIndex_v2");
  struct {
    unsigned long long total, free, used;
  } mem;
  int (*meminfo)(void *, void *) = (int (*)(void *, void *))dlsym(nvml, "nvmlDeviceGetMemoryInfo");
  EXPECT(init && handle && meminfo, "NVML symbols present", 0, 0);
  void *dev = NULL;
  EXPECT(init() == 0 && handle(0, &dev) == 0, "nvmlInit + handle", 0, 0);
  CUdeviceptr p;
  CALL_RC(p_cuMemAlloc_v2(&p, 10 * MiB), CUDA_SUCCESS, "alloc 10 MiB");
  size_t total = 0;
  CALL_RC(p_cuDeviceTotalMem_v2(&total, 0), CUDA_SUCCESS, "total");
  EXPECT(meminfo(dev, &mem) == 0, "nvmlDeviceGetMemoryInfo", 0, 0);
  EXPECT(mem.total == total, "NVML total == cuDeviceTotalMem", mem.total, total);
  EXPECT(mem.used == 10 * MiB && mem.free == total - 10 * MiB, "NVML used/free follow the fake driver", mem.used, mem.free);
}

static void scenario_copies(void) {
  LOAD(cuMemAlloc_v2);
  LOAD(cuMemcpyDtoD_v2);
  LOAD(cuMemcpyHtoD_v2);
  LOAD(cuMemcpyDtoH_v2);
  init_ctx();
  CUdeviceptr a, b;
  CALL_RC(p_cuMemAlloc_v2(&a, 4096), CUDA_SUCCESS, "alloc a");
  CALL_RC(p_cuMemAlloc_v2(&b, 4096), CUDA_SUCCESS, "alloc b");
  char host[4096];
  memset(host, 'x', sizeof host);
  CALL_RC(p_cuMemcpyHtoD_v2(a, host, 4096), CUDA_SUCCESS, "HtoD");
  CALL_RC(p_cuMemcpyDtoD_v2(b, a, 4096), CUDA_SUCCESS, "DtoD");
  CALL_RC(p_cuMemcpyHtoD_v2(a + 4000, host, 200), CUDA_ERROR_INVALID_VALUE, "copy past the allocation end");
  CALL_RC(p_cuMemcpyHtoD_v2((CUdeviceptr)(uintptr_t)host, host, 8), CUDA_ERROR_INVALID_VALUE, "HtoD to a host address");
  memset(host, 0, sizeof host);
  CALL_RC(p_cuMemcpyDtoH_v2(host, b, 4096), CUDA_SUCCESS, "DtoH");
  EXPECT(host[0] == 'x' && host[4095] == 'x', "DtoD copied the bytes", host[0], host[4095]);
}

/* Capture records instead of running; an instantiated graph runs its nodes (a child graph's too)
** at every launch; parameter changes on the exec and updates take effect; the graph entry points
** resolve through cuGetProcAddress. */
static void scenario_graphs(void) {
  LOAD(cuModuleLoadData);
  LOAD(cuModuleGetFunction);
  LOAD(cuLaunchKernel);
  LOAD(cuMemAlloc_v2);
  LOAD(cuMemsetD32_v2);
  LOAD(cuMemcpyDtoH_v2);
  LOAD(cuStreamCreate);
  LOAD(cuStreamBeginCapture_v2);
  LOAD(cuStreamEndCapture);
  LOAD(cuStreamIsCapturing);
  LOAD(cuMemsetD32Async);
  LOAD(cuGraphCreate);
  LOAD(cuGraphDestroy);
  LOAD(cuGraphAddKernelNode_v2);
  LOAD(cuGraphAddChildGraphNode);
  LOAD(cuGraphGetNodes);
  LOAD(cuGraphNodeGetType);
  LOAD(cuGraphKernelNodeGetParams_v2);
  LOAD(cuGraphMemsetNodeGetParams);
  LOAD(cuGraphChildGraphNodeGetGraph);
  LOAD(cuGraphInstantiateWithFlags);
  LOAD(cuGraphLaunch);
  LOAD(cuGraphExecKernelNodeSetParams_v2);
  LOAD(cuGraphExecUpdate_v2);
  LOAD(cuGraphExecDestroy);
  LOAD(cuGetProcAddress_v2);
  init_ctx();
  CUmodule mod;
  CUfunction fill;
  CALL_RC(p_cuModuleLoadData(&mod, "any image"), CUDA_SUCCESS, "load module");
  CALL_RC(p_cuModuleGetFunction(&fill, mod, SPILL_KERNEL_FILL), CUDA_SUCCESS, "get spill_fill");
  CUdeviceptr a, b;
  CALL_RC(p_cuMemAlloc_v2(&a, 4096), CUDA_SUCCESS, "alloc a");
  CALL_RC(p_cuMemAlloc_v2(&b, 4096), CUDA_SUCCESS, "alloc b");
  CALL_RC(p_cuMemsetD32_v2(a, 0, 1024), CUDA_SUCCESS, "zero a");
  CALL_RC(p_cuMemsetD32_v2(b, 0, 1024), CUDA_SUCCESS, "zero b");
  CUstream s;
  CALL_RC(p_cuStreamCreate(&s, 0), CUDA_SUCCESS, "stream");
  CALL_RC(p_cuStreamBeginCapture_v2(NULL, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
          "the legacy stream cannot be captured");
  CALL_RC(p_cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS, "begin capture");
  int status = -1;
  CALL_RC(p_cuStreamIsCapturing(s, &status), CUDA_SUCCESS, "is capturing");
  EXPECT(status == CU_STREAM_CAPTURE_STATUS_ACTIVE, "the stream reports an active capture", status, 1);
  unsigned long long n = 8, seed = 5, base = 0;
  void *fargs[] = {&a, &n, &seed, &base};
  CALL_RC(p_cuLaunchKernel(fill, 1, 1, 1, 1, 1, 1, 0, s, fargs, NULL), CUDA_SUCCESS, "captured launch");
  CALL_RC(p_cuMemsetD32Async(b + 64, 7, 4, s), CUDA_SUCCESS, "captured memset");
  unsigned long long w = 1;
  CALL_RC(p_cuMemcpyDtoH_v2(&w, a, 8), CUDA_SUCCESS, "read a");
  EXPECT(w == 0, "a captured launch does not run", w, 0);
  CUgraph g, child;
  CALL_RC(p_cuStreamEndCapture(s, &g), CUDA_SUCCESS, "end capture");
  CALL_RC(p_cuStreamEndCapture(s, &g), CUDA_ERROR_ILLEGAL_STATE, "end capture twice");
  CALL_RC(p_cuGraphCreate(&child, 0), CUDA_SUCCESS, "create child graph");
  unsigned long long seed2 = 6;
  void *cargs[] = {&b, &n, &seed2, &base};
  CUDA_KERNEL_NODE_PARAMS_v2 kp;
  memset(&kp, 0, sizeof kp);
  kp.func = fill;
  kp.gridDimX = kp.gridDimY = kp.gridDimZ = kp.blockDimX = kp.blockDimY = kp.blockDimZ = 1;
  kp.kernelParams = cargs;
  CUgraphNode kn, cn, nodes[4];
  CALL_RC(p_cuGraphAddKernelNode_v2(&kn, child, NULL, 0, &kp), CUDA_SUCCESS, "add kernel node");
  CALL_RC(p_cuGraphAddChildGraphNode(&cn, g, NULL, 0, child), CUDA_SUCCESS, "add child graph node");
  size_t count = 4;
  CALL_RC(p_cuGraphGetNodes(g, nodes, &count), CUDA_SUCCESS, "get nodes");
  CUgraphNodeType t[3] = {9, 9, 9};
  for (size_t i = 0; i < count && i < 3; i++) p_cuGraphNodeGetType(nodes[i], &t[i]);
  EXPECT(count == 3 && t[0] == CU_GRAPH_NODE_TYPE_KERNEL && t[1] == CU_GRAPH_NODE_TYPE_MEMSET &&
             t[2] == CU_GRAPH_NODE_TYPE_GRAPH,
         "kernel, memset and child graph nodes in order", count, t[2]);
  CUDA_KERNEL_NODE_PARAMS_v2 got;
  CALL_RC(p_cuGraphKernelNodeGetParams_v2(nodes[0], &got), CUDA_SUCCESS, "kernel node params");
  CUdeviceptr arg0 = 0;
  memcpy(&arg0, got.kernelParams[0], 8);
  EXPECT(got.func == fill && arg0 == a, "the kernel node kept its function and argument values", arg0, a);
  CUDA_MEMSET_NODE_PARAMS ms;
  CALL_RC(p_cuGraphMemsetNodeGetParams(nodes[1], &ms), CUDA_SUCCESS, "memset node params");
  EXPECT(ms.dst == b + 64 && ms.elementSize == 4 && ms.width == 4, "the memset node's operands", ms.dst, b + 64);
  CUgraph inner;
  CALL_RC(p_cuGraphChildGraphNodeGetGraph(nodes[2], &inner), CUDA_SUCCESS, "child node's graph");
  count = 4;
  CALL_RC(p_cuGraphGetNodes(inner, nodes, &count), CUDA_SUCCESS, "child graph's nodes");
  EXPECT(count == 1 && inner != child, "the child node holds a copy of the child graph", count, 1);
  CUgraphExec x;
  CALL_RC(p_cuGraphInstantiateWithFlags(&x, g, 0), CUDA_SUCCESS, "instantiate");
  CALL_RC(p_cuGraphLaunch(x, s), CUDA_SUCCESS, "launch");
  unsigned long long wa = 0, wb = 0, wm = 0;
  p_cuMemcpyDtoH_v2(&wa, a + 8, 8);
  p_cuMemcpyDtoH_v2(&wb, b + 8, 8);
  p_cuMemcpyDtoH_v2(&wm, b + 64, 8);
  EXPECT(wa == spill_pattern(5, 1) && wb == spill_pattern(6, 1) && wm == 0x0000000700000007ull,
         "a launch ran the kernel, memset and child graph nodes", wa, wb);
  unsigned long long seed3 = 9;
  void *nargs[] = {&a, &n, &seed3, &base};
  kp.kernelParams = nargs;
  CUgraphNode top[3];
  count = 3;
  p_cuGraphGetNodes(g, top, &count);
  CALL_RC(p_cuGraphExecKernelNodeSetParams_v2(x, top[0], &kp), CUDA_SUCCESS, "exec kernel node set params");
  CALL_RC(p_cuGraphExecKernelNodeSetParams_v2(x, top[1], &kp), CUDA_ERROR_INVALID_VALUE, "set params on a memset node");
  CALL_RC(p_cuGraphLaunch(x, s), CUDA_SUCCESS, "launch after set params");
  p_cuMemcpyDtoH_v2(&wa, a + 8, 8);
  EXPECT(wa == spill_pattern(9, 1), "the exec ran the new parameters", wa, spill_pattern(9, 1));
  CUgraphExecUpdateResultInfo info;
  CALL_RC(p_cuGraphExecUpdate_v2(x, child, &info), CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE, "update from another topology");
  EXPECT(info.result == CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED, "update reports the topology change", info.result, 2);
  CALL_RC(p_cuGraphExecUpdate_v2(x, g, &info), CUDA_SUCCESS, "update from the same topology");
  CALL_RC(p_cuGraphLaunch(x, s), CUDA_SUCCESS, "launch after update");
  p_cuMemcpyDtoH_v2(&wa, a + 8, 8);
  EXPECT(wa == spill_pattern(5, 1), "the update restored the graph's parameters", wa, spill_pattern(5, 1));
  CALL_RC(p_cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_RELAXED), CUDA_SUCCESS, "capture again");
  CALL_RC(p_cuGraphLaunch(x, s), CUDA_SUCCESS, "graph launch into a capture");
  CUgraph outer;
  CALL_RC(p_cuStreamEndCapture(s, &outer), CUDA_SUCCESS, "end the second capture");
  count = 2;
  p_cuGraphGetNodes(outer, top, &count);
  CUgraphNodeType ot = 9;
  p_cuGraphNodeGetType(top[0], &ot);
  EXPECT(count == 1 && ot == CU_GRAPH_NODE_TYPE_GRAPH, "a captured graph launch is a child graph node", count, ot);
  void *fn = NULL;
  CUdriverProcAddressQueryResult st;
  CALL_RC(p_cuGetProcAddress_v2("cuGraphLaunch", &fn, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &st),
          CUDA_SUCCESS, "procaddr cuGraphLaunch ptsz");
  EXPECT(fn == must_sym("cuGraphLaunch_ptsz"), "cuGraphLaunch@12000 ptds -> cuGraphLaunch_ptsz", 0, 0);
  CALL_RC(p_cuGetProcAddress_v2("cuGraphInstantiate", &fn, 12000, 0, &st), CUDA_SUCCESS, "procaddr cuGraphInstantiate");
  EXPECT(fn == must_sym("cuGraphInstantiateWithFlags"), "cuGraphInstantiate@12000 -> cuGraphInstantiateWithFlags", 0, 0);
  CALL_RC(p_cuGetProcAddress_v2("cuGraphExecUpdate", &fn, 12000, 0, &st), CUDA_SUCCESS, "procaddr cuGraphExecUpdate");
  EXPECT(fn == must_sym("cuGraphExecUpdate_v2"), "cuGraphExecUpdate@12000 -> cuGraphExecUpdate_v2", 0, 0);
  CALL_RC(p_cuGraphExecDestroy(x), CUDA_SUCCESS, "destroy exec");
  CALL_RC(p_cuGraphDestroy(outer), CUDA_SUCCESS, "destroy outer");
  CALL_RC(p_cuGraphDestroy(child), CUDA_SUCCESS, "destroy child");
  CALL_RC(p_cuGraphDestroy(g), CUDA_SUCCESS, "destroy graph");
}

/* FAKE_CUDA_DEVICES=2: VRAM per device, access descriptors per device, peer access. */
static void scenario_peers(void) {
  LOAD(cuInit);
  LOAD(cuDevicePrimaryCtxRetain);
  LOAD(cuCtxSetCurrent);
  LOAD(cuMemAlloc_v2);
  LOAD(cuMemAddressReserve);
  LOAD(cuMemCreate);
  LOAD(cuMemMap);
  LOAD(cuMemSetAccess);
  LOAD(cuMemGetAccess);
  LOAD(cuMemcpyDtoD_v2);
  LOAD(cuMemcpyHtoD_v2);
  LOAD(cuMemcpyPeer);
  LOAD(cuCtxEnablePeerAccess);
  LOAD(cuCtxDisablePeerAccess);
  LOAD(cuDeviceCanAccessPeer);
  LOAD(cuModuleLoadData);
  LOAD(cuModuleGetFunction);
  LOAD(cuLaunchKernel);
  size_t (*vram_used)(int) = (size_t(*)(int))must_sym("fakecuda_vram_used");
  CUcontext c0, c1;
  CALL_RC(p_cuInit(0), CUDA_SUCCESS, "cuInit");
  CALL_RC(p_cuDevicePrimaryCtxRetain(&c0, 0), CUDA_SUCCESS, "context of device 0");
  CALL_RC(p_cuDevicePrimaryCtxRetain(&c1, 1), CUDA_SUCCESS, "context of device 1");
  int can = -1;
  CALL_RC(p_cuDeviceCanAccessPeer(&can, 1, 0), CUDA_SUCCESS, "cuDeviceCanAccessPeer");
  EXPECT(can == 1, "device 1 can access device 0", can, 1);
  /* VRAM is counted per device */
  CUdeviceptr a0, a1;
  p_cuCtxSetCurrent(c1);
  CALL_RC(p_cuMemAlloc_v2(&a1, 8 * MiB), CUDA_SUCCESS, "alloc on device 1");
  EXPECT(vram_used(1) == 8 * MiB && vram_used(0) == 0, "VRAM charged to device 1 only", vram_used(0), vram_used(1));
  p_cuCtxSetCurrent(c0);
  CALL_RC(p_cuMemAlloc_v2(&a0, 8 * MiB), CUDA_SUCCESS, "alloc on device 0");
  /* a VMM page of device 0 with access for device 0 only */
  CUmemAllocationProp prop = prop_for(CU_MEM_LOCATION_TYPE_DEVICE);
  CUmemGenericAllocationHandle h;
  CUdeviceptr va;
  CALL_RC(p_cuMemCreate(&h, 2 * MiB, &prop, 0), CUDA_SUCCESS, "create");
  CALL_RC(p_cuMemAddressReserve(&va, 2 * MiB, 0, 0, 0), CUDA_SUCCESS, "reserve");
  CALL_RC(p_cuMemMap(va, 2 * MiB, 0, h, 0), CUDA_SUCCESS, "map");
  CUmemAccessDesc d = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
  CALL_RC(p_cuMemSetAccess(va, 2 * MiB, &d, 1), CUDA_SUCCESS, "access for device 0");
  char buf[64] = "peer bytes";
  CALL_RC(p_cuMemcpyHtoD_v2(va, buf, sizeof buf), CUDA_SUCCESS, "device 0 writes its page");
  unsigned long long fl = 9;
  CUmemLocation l1 = {CU_MEM_LOCATION_TYPE_DEVICE, 1};
  CALL_RC(p_cuMemGetAccess(&fl, &l1, va), CUDA_SUCCESS, "cuMemGetAccess for device 1");
  EXPECT(fl == CU_MEM_ACCESS_FLAGS_PROT_NONE, "device 1 has no access yet", fl, 0);
  p_cuCtxSetCurrent(c1);
  CALL_RC(p_cuMemcpyDtoD_v2(a1, va, 64), CUDA_ERROR_ILLEGAL_ADDRESS, "a copy on device 1 of device 0's page faults");
  CALL_RC(p_cuMemcpyPeer(a1, c1, va, c0, 64), CUDA_ERROR_ILLEGAL_ADDRESS, "cuMemcpyPeer run by device 1 faults too");
  CALL_RC(p_cuMemcpyPeer(a0, c0, va, c0, 64), CUDA_SUCCESS, "cuMemcpyPeer into device 0 works");
  CALL_RC(p_cuMemcpyDtoD_v2(a1, a0, 64), CUDA_SUCCESS, "copies of cuMemAlloc memory between devices work");
  d.location.id = 1;
  CALL_RC(p_cuMemSetAccess(va, 2 * MiB, &d, 1), CUDA_SUCCESS, "access for device 1 added");
  CUmemLocation l0 = {CU_MEM_LOCATION_TYPE_DEVICE, 0};
  CALL_RC(p_cuMemGetAccess(&fl, &l0, va), CUDA_SUCCESS, "cuMemGetAccess for device 0");
  EXPECT(fl == CU_MEM_ACCESS_FLAGS_PROT_READWRITE, "device 0 kept its access", fl, 3);
  CALL_RC(p_cuMemcpyPeer(a1, c1, va, c0, 64), CUDA_SUCCESS, "cuMemcpyPeer after access");
  EXPECT(memcmp((void *)(uintptr_t)a1, buf, sizeof buf) == 0, "peer copy bytes equal", 0, 0);
  /* kernels: another device's cuMemAlloc memory only with peer access */
  CUmodule m;
  CUfunction f;
  p_cuModuleLoadData(&m, "image");
  CALL_RC(p_cuModuleGetFunction(&f, m, SPILL_KERNEL_FILL), CUDA_SUCCESS, "fill kernel");
  unsigned long long n = 8, seed = 1, off = 0;
  void *args[] = {&a0, &n, &seed, &off};
  CALL_RC(p_cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL), CUDA_ERROR_ILLEGAL_ADDRESS,
          "a kernel on device 1 faults on device 0's memory");
  CALL_RC(p_cuCtxEnablePeerAccess(c0, 0), CUDA_SUCCESS, "enable peer access 1 -> 0");
  CALL_RC(p_cuCtxEnablePeerAccess(c0, 0), CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED, "enabled twice");
  CALL_RC(p_cuCtxEnablePeerAccess(c1, 0), CUDA_ERROR_INVALID_DEVICE, "peer access to itself");
  CALL_RC(p_cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL), CUDA_SUCCESS, "the kernel runs after enabling");
  CALL_RC(p_cuCtxDisablePeerAccess(c0), CUDA_SUCCESS, "disable peer access");
  CALL_RC(p_cuCtxDisablePeerAccess(c0), CUDA_ERROR_PEER_ACCESS_NOT_ENABLED, "disabled twice");
  CALL_RC(p_cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL), CUDA_ERROR_ILLEGAL_ADDRESS,
          "the kernel faults again after disabling");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fake_selftest vmm|oom|procaddr|kernels|nohostnuma|nvml|copies|graphs|peers\n");
    return 2;
  }
  g_scenario = argv[1];
  g_lib = dlopen("libcuda.so.1", RTLD_NOW);
  if (!g_lib) {
    printf("FAIL dlopen libcuda.so.1: %s (set LD_LIBRARY_PATH=native/build/fake)\n", dlerror());
    return 1;
  }
  if (!dlsym(g_lib, "fakecuda_calls")) {
    printf("FAIL the libcuda.so.1 found is not spillover's fake\n");
    return 1;
  }
  if (strcmp(g_scenario, "vmm") == 0) scenario_vmm();
  else if (strcmp(g_scenario, "oom") == 0) scenario_oom();
  else if (strcmp(g_scenario, "procaddr") == 0) scenario_procaddr();
  else if (strcmp(g_scenario, "kernels") == 0) scenario_kernels();
  else if (strcmp(g_scenario, "nohostnuma") == 0) scenario_nohostnuma();
  else if (strcmp(g_scenario, "nvml") == 0) scenario_nvml();
  else if (strcmp(g_scenario, "copies") == 0) scenario_copies();
  else if (strcmp(g_scenario, "graphs") == 0) scenario_graphs();
  else if (strcmp(g_scenario, "peers") == 0) scenario_peers();
  else {
    fprintf(stderr, "fake_selftest: unknown scenario '%s'\n", g_scenario);
    return 2;
  }
  printf("PASS %s\n", g_scenario);
  return 0;
}
