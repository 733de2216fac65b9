/*
** t_common.h: helpers for the interposer's scenario programs (native/test/t_*.c). Each program
** runs with LD_PRELOAD=libspillover.so against the fake driver (LD_LIBRARY_PATH=build/fake) or a
** real one, prints "ok <scenario>" on success and "FAIL <what>" + exit 1 on the first failed check.
** Driver functions are called directly (linked with -lcuda: the PLT path into our hooks) unless
** a scenario is about another path.
*/
#ifndef T_COMMON_H
#define T_COMMON_H

#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_abi.h"
#include "spillover_protocol.h"

/* driver entry points the tests call directly */
CUresult cuInit(unsigned int);
CUresult cuDeviceGet(CUdevice *, int);
CUresult cuDevicePrimaryCtxRetain(CUcontext *, CUdevice);
CUresult cuCtxSetCurrent(CUcontext);
CUresult cuCtxGetCurrent(CUcontext *);
CUresult cuCtxSynchronize(void);
CUresult cuMemAlloc_v2(CUdeviceptr *, size_t);
CUresult cuMemAllocPitch_v2(CUdeviceptr *, size_t *, size_t, size_t, unsigned int);
CUresult cuMemFree_v2(CUdeviceptr);
CUresult cuMemAllocAsync(CUdeviceptr *, size_t, CUstream);
CUresult cuMemFreeAsync(CUdeviceptr, CUstream);
CUresult cuStreamCreate(CUstream *, unsigned int);
CUresult cuStreamSynchronize(CUstream);
CUresult cuMemGetInfo_v2(size_t *, size_t *);
CUresult cuDeviceTotalMem_v2(size_t *, CUdevice);
CUresult cuDeviceTotalMem(unsigned int *, CUdevice);
CUresult cuMemcpyHtoD_v2(CUdeviceptr, const void *, size_t);
CUresult cuMemcpyDtoH_v2(void *, CUdeviceptr, size_t);
CUresult cuMemcpyDtoD_v2(CUdeviceptr, CUdeviceptr, size_t);
CUresult cuMemsetD8_v2(CUdeviceptr, unsigned char, size_t);
CUresult cuMemsetD32_v2(CUdeviceptr, unsigned int, size_t);
CUresult cuPointerGetAttribute(void *, CUpointer_attribute, CUdeviceptr);
CUresult cuPointerGetAttributes(unsigned int, CUpointer_attribute *, void **, CUdeviceptr);
CUresult cuMemGetAddressRange_v2(CUdeviceptr *, size_t *, CUdeviceptr);
CUresult cuIpcGetMemHandle(CUipcMemHandle *, CUdeviceptr);
CUresult cuMemCreate(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long);
CUresult cuMemRelease(CUmemGenericAllocationHandle);
CUresult cuMemAddressReserve(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
CUresult cuMemAddressFree(CUdeviceptr, size_t);
CUresult cuMemMap(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long);
CUresult cuMemUnmap(CUdeviceptr, size_t);
CUresult cuMemSetAccess(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);

#define MiB ((size_t)1 << 20)
#define PAGE ((size_t)2 << 20)

#define CHECK(cond, ...)                 \
  do {                                   \
    if (!(cond)) {                       \
      printf("FAIL line %d: ", __LINE__); \
      printf(__VA_ARGS__);               \
      printf("\n");                      \
      fflush(stdout);                    \
      exit(1);                           \
    }                                    \
  } while (0)

#define CU(call)                                                  \
  do {                                                            \
    CUresult rc_ = (call);                                        \
    CHECK(rc_ == CUDA_SUCCESS, "%s returned %d", #call, (int)rc_); \
  } while (0)

static inline CUcontext t_setup(void) {
  CUdevice dev;
  CUcontext ctx;
  CU(cuInit(0));
  CU(cuDeviceGet(&dev, 0));
  CU(cuDevicePrimaryCtxRetain(&ctx, dev));
  CU(cuCtxSetCurrent(ctx));
  return ctx;
}

/* 1 if fn lives in libspillover.so */
static inline int t_is_hook(void *fn) {
  Dl_info info;
  if (!fn || !dladdr(fn, &info) || !info.dli_fname) return 0;
  return strstr(info.dli_fname, "libspillover") != NULL;
}

CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *, void *);
CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *, CUmemGenericAllocationHandle);

/* What backs the page holding p: 1 VRAM page, 2 host page, 0 the driver's cuMemAlloc memory.
** The fake answers directly; on a real driver, ask the VMM handle mapped there. */
typedef int (*t_location_fn)(CUdeviceptr);
typedef unsigned long (*t_calls_fn)(const char *);
static inline int t_location_real(CUdeviceptr p) {
  CUmemGenericAllocationHandle h;
  CUmemAllocationProp prop;
  if (cuMemRetainAllocationHandle(&h, (void *)(uintptr_t)p) != CUDA_SUCCESS) return 0;
  memset(&prop, 0, sizeof(prop));
  CUresult rc = cuMemGetAllocationPropertiesFromHandle(&prop, h);
  cuMemRelease(h);
  if (rc != CUDA_SUCCESS) return -1;
  return prop.location.type == CU_MEM_LOCATION_TYPE_DEVICE ? 1 : 2;
}
static inline int t_is_fake(void) { return dlsym(RTLD_DEFAULT, "fakecuda_location_of") != NULL; }
static inline t_location_fn t_location(void) {
  t_location_fn f = (t_location_fn)dlsym(RTLD_DEFAULT, "fakecuda_location_of");
  return f ? f : t_location_real;
}
static inline unsigned long t_calls(const char *name) {
  t_calls_fn f = (t_calls_fn)dlsym(RTLD_DEFAULT, "fakecuda_calls");
  return f ? f(name) : 0;
}

static inline size_t t_env_size(const char *name, size_t dflt) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end;
  double d = strtod(v, &end);
  switch (*end) {
  case 'K': d *= 1024; break;
  case 'M': d *= 1024.0 * 1024; break;
  case 'G': d *= 1024.0 * 1024 * 1024; break;
  default: break;
  }
  return (size_t)d;
}

/* How many 2 MiB pages of [p, p + bytes) are backed by `where` (1 VRAM, 2 host), asked with loc. */
static inline int t_pages_in(t_location_fn loc, CUdeviceptr p, size_t bytes, int where) {
  int n = 0;
  for (size_t i = 0; i < bytes / PAGE; i++) n += loc(p + i * PAGE) == where;
  return n;
}

/* Reads this process's (or pid's) stats record under the seqlock. 0 on success. */
static inline int t_read_stats(int pid, sp_stats *out) {
  const char *dir = getenv("SPILLOVER_STATS_DIR");
  char path[600];
  snprintf(path, sizeof(path), "%s/spillover-%u-%d.stats", dir && *dir ? dir : "/dev/shm", (unsigned)getuid(), pid);
  for (int tries = 0; tries < 1000; tries++) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = pread(fd, out, sizeof(*out), 0);
    uint64_t seq2 = 0;
    ssize_t m = pread(fd, &seq2, sizeof(seq2), offsetof(sp_stats, seq));
    close(fd);
    if (n != (ssize_t)sizeof(*out) || m != (ssize_t)sizeof(seq2)) return -1;
    if ((out->seq & 1) == 0 && out->seq == seq2) return 0;
  }
  return -1;
}

/* This process's stats record; the scenario fails if it cannot be read. */
static inline sp_stats t_stats(void) {
  sp_stats s;
  CHECK(t_read_stats(getpid(), &s) == 0, "cannot read stats");
  return s;
}

#endif /* T_COMMON_H */
