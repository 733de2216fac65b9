/*
** t_mgpu.c: two GPUs (FAKE_CUDA_DEVICES=2 on the fake driver, whose copies and kernels fault on
** VMM pages whose access descriptors do not name the device doing them). Scenarios:
**  limits      SPILLOVER_VRAM_LIMIT=0:64M,1:96M SPILLOVER_VRAM_RESERVE=0:16M,1:0: each device
**              reports and spends its own budget and reserve
**  copy        a tiered range on device 0 (VRAM and host pages) copied to device 1 and back with
**              cuMemcpyPeer, cuMemcpyDtoD and cuMemcpy: every byte equal; its pointer attributes
**              answer for device 0 while device 1 is current
**  peer        after cuCtxEnablePeerAccess a kernel on device 1 reads device 0's tiered range, also
**              after its pages moved tiers and for a range made afterwards; cuCtxDisablePeerAccess
**              takes that access away again
**  exportable  an exportable cuMemCreate on device 1 past its limit stays one VRAM handle and
**              exports, a cold range of device 1 leaving VRAM for it; device 0 untouched
**  peerstaged  the streaming engine of device 0 holds a written staged copy of a range; a kernel
**              on device 1 whose first pointer is device 1's own range adds into that range
**              through peer access: the staged copy goes back first, so the final words hold
**              both writes (run with SPILLOVER_STREAM_RATIO=0 SPILLOVER_MIGRATE=0)
**  onegpu      while only device 0 is used, copies cost no driver call of ours; once device 1
**              is used, its first copy of a tiered range grants access once, later ones nothing
*/
#include "../demo/spill_pattern.h"
#include "t_common.h"

CUresult cuModuleLoadData(CUmodule *, const void *);
CUresult cuModuleGetFunction(CUfunction *, CUmodule, const char *);
CUresult cuLaunchKernel(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                        void **, void **);
CUresult cuCtxEnablePeerAccess(CUcontext, unsigned int);
CUresult cuCtxDisablePeerAccess(CUcontext);
CUresult cuMemcpyPeer(CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t);
CUresult cuMemcpy(CUdeviceptr, CUdeviceptr, size_t);
CUresult cuMemExportToShareableHandle(void *, CUmemGenericAllocationHandle, int, unsigned long long);

static CUcontext ctx[2];
static t_location_fn loc;
static CUfunction k_fill, k_verify;
static CUdeviceptr counter[2]; /* each device's verify counter, in its own cuMemAlloc memory */

static void use(int dev) { CU(cuCtxSetCurrent(ctx[dev])); }

static void setup(void) {
  CU(cuInit(0));
  for (int i = 0; i < 2; i++) {
    CUdevice d;
    CU(cuDeviceGet(&d, i));
    CU(cuDevicePrimaryCtxRetain(&ctx[i], d));
  }
  loc = t_location();
  CUmodule m;
  use(0);
  CU(cuModuleLoadData(&m, "fake image"));
  CU(cuModuleGetFunction(&k_fill, m, SPILL_KERNEL_FILL));
  CU(cuModuleGetFunction(&k_verify, m, SPILL_KERNEL_VERIFY));
  for (int i = 1; i >= 0; i--) {
    use(i);
    CU(cuMemAlloc_v2(&counter[i], 2 * MiB));
    CU(cuMemsetD8_v2(counter[i], 0, 8));
  }
}

static void fill(CUdeviceptr p, size_t bytes, unsigned long long seed) {
  unsigned long long n = bytes / 8, off = 0;
  void *args[] = {&p, &n, &seed, &off};
  CU(cuLaunchKernel(k_fill, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
}

/* A verify kernel on the current device (dev); returns its CUresult, counts bad words. */
static CUresult verify(int dev, CUdeviceptr p, size_t bytes, unsigned long long seed) {
  unsigned long long n = bytes / 8, off = 0;
  void *args[] = {&p, &n, &seed, &off, &counter[dev]};
  return cuLaunchKernel(k_verify, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL);
}

static unsigned long long bad_words(int dev) {
  unsigned long long bad = 0;
  use(dev);
  CU(cuMemcpyDtoH_v2(&bad, counter[dev], sizeof(bad)));
  return bad;
}

static int limits(void) {
  setup();
  size_t fr, tot[2];
  for (int i = 0; i < 2; i++) {
    use(i);
    CU(cuMemGetInfo_v2(&fr, &tot[i]));
  }
  CHECK(tot[0] == (64 + 128) * MiB && tot[1] == (96 + 128) * MiB, "totals %zu/%zu MiB, want 192/224", tot[0] >> 20,
        tot[1] >> 20);
  /* 80M on each: device 0 has 46M above its reserve (the counter holds 2M): 23 VRAM pages, the
  ** rest host; device 1 (no reserve) has 94M: the driver's, whole; 40M more there: 7 + 13 pages */
  CUdeviceptr a, b, c;
  use(0);
  CU(cuMemAlloc_v2(&a, 80 * MiB));
  use(1);
  CU(cuMemAlloc_v2(&b, 80 * MiB));
  CU(cuMemAlloc_v2(&c, 40 * MiB));
  CHECK(t_pages_in(loc, a, 80 * MiB, 1) == 23 && t_pages_in(loc, a, 80 * MiB, 2) == 17, "device 0: %d VRAM pages, want 23",
        t_pages_in(loc, a, 80 * MiB, 1));
  CHECK(t_pages_in(loc, b, 80 * MiB, 1) == 0 && t_pages_in(loc, b, 80 * MiB, 2) == 0, "device 1: 80M not the driver's");
  CHECK(t_pages_in(loc, c, 40 * MiB, 1) == 7 && t_pages_in(loc, c, 40 * MiB, 2) == 13, "device 1: %d VRAM pages, want 7",
        t_pages_in(loc, c, 40 * MiB, 1));
  sp_stats s = t_stats();
  CHECK(s.gpu[0].vram_limit == 64 * MiB && s.gpu[1].vram_limit == 96 * MiB, "stats limits %llu/%llu",
        (unsigned long long)s.gpu[0].vram_limit, (unsigned long long)s.gpu[1].vram_limit);
  CHECK(s.gpu[0].vram_reserve == 16 * MiB && s.gpu[1].vram_reserve == 0, "stats reserves %llu/%llu",
        (unsigned long long)s.gpu[0].vram_reserve, (unsigned long long)s.gpu[1].vram_reserve);
  CHECK(s.gpu[1].passthrough_bytes == 82 * MiB && s.gpu[1].tier_bytes[0] == 14 * MiB &&
            s.gpu[1].tier_bytes[1] == 26 * MiB,
        "device 1: passthrough %llu, tiers %llu/%llu", (unsigned long long)s.gpu[1].passthrough_bytes,
        (unsigned long long)s.gpu[1].tier_bytes[0], (unsigned long long)s.gpu[1].tier_bytes[1]);
  CHECK(s.gpu[0].tier_bytes[1] == 34 * MiB, "device 0 pinned %llu", (unsigned long long)s.gpu[0].tier_bytes[1]);
  CU(cuMemFree_v2(c));
  use(0);
  CU(cuMemFree_v2(a));
  use(1);
  CU(cuMemFree_v2(b));
  printf("ok limits\n");
  return 0;
}

/* Every byte of p (on device dev) read back on its own device, against the pattern. */
static void expect_pattern(int dev, CUdeviceptr p, size_t bytes, unsigned long long seed, const char *what) {
  unsigned long long *h = malloc(bytes);
  use(dev);
  CU(cuMemcpyDtoH_v2(h, p, bytes));
  size_t bad = 0;
  for (size_t i = 0; i < bytes / 8; i++) bad += h[i] != spill_pattern(seed, i);
  free(h);
  CHECK(bad == 0, "%s: %zu words differ", what, bad);
}

static int copy(void) {
  setup();
  size_t n = 80 * MiB;
  CUdeviceptr src, back, back2, back3, dst;
  use(0);
  CU(cuMemAlloc_v2(&src, n));
  CHECK(t_pages_in(loc, src, n, 1) > 0 && t_pages_in(loc, src, n, 2) > 0, "setup: the source is not in both tiers");
  fill(src, n, 5);
  use(1);
  CU(cuMemAlloc_v2(&dst, n)); /* device 1's own tiered range, both tiers too */
  CHECK(t_pages_in(loc, dst, n, 1) > 0 && t_pages_in(loc, dst, n, 2) > 0, "setup: the copy target is not in both tiers");
  /* device 1 is current: a device 0 pointer still answers for device 0 */
  int ordinal = -1;
  CUcontext owner = NULL;
  CU(cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, src + 70 * MiB));
  CU(cuPointerGetAttribute(&owner, CU_POINTER_ATTRIBUTE_CONTEXT, src + 70 * MiB));
  CHECK(ordinal == 0 && owner == ctx[0], "device 0's pointer answers device %d", ordinal);
  /* the copies run on device 1, reading device 0's pages */
  CU(cuMemcpyPeer(dst, ctx[1], src, ctx[0], n));
  expect_pattern(1, dst, n, 5, "cuMemcpyPeer 0->1");
  CU(cuMemsetD8_v2(dst, 0, n));
  use(1);
  CU(cuMemcpyDtoD_v2(dst, src, n));
  expect_pattern(1, dst, n, 5, "cuMemcpyDtoD 0->1 on device 1");
  /* and back: to fresh device 0 ranges, from either device */
  use(0);
  CU(cuMemAlloc_v2(&back, n));
  CU(cuMemAlloc_v2(&back2, n));
  CU(cuMemAlloc_v2(&back3, n));
  CU(cuMemcpyPeer(back, ctx[0], dst, ctx[1], n));
  expect_pattern(0, back, n, 5, "cuMemcpyPeer 1->0");
  use(1);
  CU(cuMemcpyDtoD_v2(back2, dst, n));
  expect_pattern(0, back2, n, 5, "cuMemcpyDtoD 1->0 on device 1");
  use(0);
  CU(cuMemcpy(back3, dst, n));
  expect_pattern(0, back3, n, 5, "cuMemcpy 1->0 on device 0");
  /* the host side from the other device */
  unsigned long long w = 0;
  use(1);
  CU(cuMemcpyDtoH_v2(&w, src + 70 * MiB, 8));
  CHECK(w == spill_pattern(5, 70 * MiB / 8), "cuMemcpyDtoH of device 0's host page from device 1");
  use(0);
  CU(cuMemFree_v2(src));
  CU(cuMemFree_v2(back));
  CU(cuMemFree_v2(back2));
  CU(cuMemFree_v2(back3));
  use(1);
  CU(cuMemFree_v2(dst));
  printf("ok copy\n");
  return 0;
}

static int peer(void) {
  setup();
  /* device 0's VRAM full of the driver's small allocations: `hot` lands in host memory */
  CUdeviceptr smalls[31], hot, warm;
  use(0);
  for (int i = 0; i < 31; i++) CU(cuMemAlloc_v2(&smalls[i], 2 * MiB));
  CU(cuMemAlloc_v2(&hot, 8 * MiB));
  CHECK(t_pages_in(loc, hot, 8 * MiB, 2) == 4, "setup: not in host memory");
  fill(hot, 8 * MiB, 11);
  use(1);
  CHECK(verify(1, hot, 8 * MiB, 11) == CUDA_ERROR_ILLEGAL_ADDRESS, "device 1 read device 0's range before peer access");
  CU(cuCtxEnablePeerAccess(ctx[0], 0));
  CU(verify(1, hot, 8 * MiB, 11));
  CHECK(bad_words(1) == 0, "device 1 read wrong words");
  /* device 0 frees its small allocations and keeps naming `hot`: its pages move into VRAM */
  use(0);
  for (int i = 0; i < 31; i++) CU(cuMemFree_v2(smalls[i]));
  for (int i = 0; i < 5000; i++) CU(verify(0, hot, 64, 11));
  CHECK(t_pages_in(loc, hot, 8 * MiB, 1) == 4, "hot range: %d of 4 pages moved into VRAM", t_pages_in(loc, hot, 8 * MiB, 1));
  CHECK(bad_words(0) == 0, "device 0 read wrong words");
  use(1);
  CU(verify(1, hot, 8 * MiB, 11));
  CHECK(bad_words(1) == 0, "device 1 read wrong words after the move");
  /* a range made after peer access was enabled */
  use(0);
  CU(cuMemAlloc_v2(&warm, 8 * MiB));
  fill(warm, 8 * MiB, 12);
  use(1);
  CU(verify(1, warm, 8 * MiB, 12));
  CHECK(bad_words(1) == 0, "device 1 read wrong words of a new range");
  CU(cuCtxDisablePeerAccess(ctx[0]));
  CHECK(verify(1, warm, 8 * MiB, 12) == CUDA_ERROR_ILLEGAL_ADDRESS, "access stayed after cuCtxDisablePeerAccess");
  use(0);
  CU(cuMemFree_v2(hot));
  CU(cuMemFree_v2(warm));
  printf("ok peer\n");
  return 0;
}

static int exportable(void) {
  setup();
  CUdeviceptr cold;
  use(1);
  CU(cuMemAlloc_v2(&cold, 40 * MiB)); /* device 1: limit 64M, reserve 16M: 24 VRAM pages */
  fill(cold, 40 * MiB, 3);
  CHECK(t_pages_in(loc, cold, 40 * MiB, 1) == 20, "setup: %d VRAM pages, want 20", t_pages_in(loc, cold, 40 * MiB, 1));
  CUmemAllocationProp prop;
  memset(&prop, 0, sizeof(prop));
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 1;
  prop.requestedHandleTypes = 1; /* POSIX_FD, as NCCL asks */
  CUmemGenericAllocationHandle h;
  CU(cuMemCreate(&h, 32 * MiB, &prop, 0));
  CUmemAllocationProp back;
  CU(cuMemGetAllocationPropertiesFromHandle(&back, h));
  CHECK(back.requestedHandleTypes == 1 && back.location.id == 1, "the exportable handle is not the driver's own");
  int fd = -1;
  CU(cuMemExportToShareableHandle(&fd, h, 1, 0));
  CHECK(fd >= 0, "no file descriptor");
  close(fd);
  CUdeviceptr va;
  CU(cuMemAddressReserve(&va, 32 * MiB, PAGE, 0, 0));
  CU(cuMemMap(va, 32 * MiB, 0, h, 0));
  CUmemAccessDesc a;
  memset(&a, 0, sizeof(a));
  a.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  a.location.id = 1;
  a.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  CU(cuMemSetAccess(va, 32 * MiB, &a, 1));
  CHECK(t_pages_in(loc, va, 32 * MiB, 1) == 16, "exportable memory: %d of 16 pages in VRAM", t_pages_in(loc, va, 32 * MiB, 1));
  CHECK(t_pages_in(loc, cold, 40 * MiB, 2) >= 12, "cold range: only %d pages left VRAM", t_pages_in(loc, cold, 40 * MiB, 2));
  CU(verify(1, cold, 40 * MiB, 3));
  CHECK(bad_words(1) == 0, "%llu words changed", bad_words(1));
  sp_stats s = t_stats();
  CHECK(s.gpu[1].program_vmm_bytes == 32 * MiB && s.gpu[0].program_vmm_bytes == 0, "vmm counted on %llu/%llu",
        (unsigned long long)s.gpu[0].program_vmm_bytes, (unsigned long long)s.gpu[1].program_vmm_bytes);
  CHECK(s.gpu[1].vram_limit == 64 * MiB && s.gpu[0].vram_limit == 256 * MiB, "limits %llu/%llu",
        (unsigned long long)s.gpu[0].vram_limit, (unsigned long long)s.gpu[1].vram_limit);
  use(1);
  CU(cuMemUnmap(va, 32 * MiB));
  CU(cuMemRelease(h));
  CU(cuMemAddressFree(va, 32 * MiB));
  CU(cuMemFree_v2(cold));
  printf("ok exportable\n");
  return 0;
}

/* While one GPU is in use a copy costs no driver call of ours; once a second is used, the first
** copy of a tiered range from it grants access once, the next ones nothing. */
static int onegpu(void) {
  typedef void (*reset_fn)(void);
  reset_fn reset = (reset_fn)dlsym(RTLD_DEFAULT, "fakecuda_reset_calls");
  CHECK(reset != NULL, "not the fake driver");
  CUdevice d0;
  CU(cuInit(0));
  CU(cuDeviceGet(&d0, 0));
  CU(cuDevicePrimaryCtxRetain(&ctx[0], d0));
  use(0);
  CUdeviceptr a, b;
  CU(cuMemAlloc_v2(&a, 80 * MiB));
  CU(cuMemAlloc_v2(&b, 80 * MiB));
  size_t total1;
  CU(cuDeviceTotalMem_v2(&total1, 1)); /* asking about device 1 is not using it */
  reset();
  for (int i = 0; i < 100; i++) CU(cuMemcpyDtoD_v2(b, a, 80 * MiB));
  unsigned long extra = t_calls("cuCtxGetDevice") + t_calls("cuCtxGetCurrent") + t_calls("cuMemSetAccess");
  CHECK(extra == 0 && t_calls("cuMemcpyDtoD_v2") == 100, "100 copies on one GPU made %lu calls of ours", extra);
  CUdevice d1;
  CU(cuDeviceGet(&d1, 1));
  CU(cuDevicePrimaryCtxRetain(&ctx[1], d1));
  use(1);
  CUdeviceptr c;
  CU(cuMemAlloc_v2(&c, 2 * MiB)); /* device 1 in use */
  reset();
  CU(cuMemcpyDtoD_v2(c, a, 2 * MiB));
  unsigned long granted = t_calls("cuMemSetAccess");
  CHECK(granted >= 2, "the first copy from device 1 set access %lu times (a and b)", granted);
  reset();
  for (int i = 0; i < 10; i++) CU(cuMemcpyDtoD_v2(c, b, 2 * MiB));
  CHECK(t_calls("cuMemSetAccess") == 0, "later copies set access again (%lu)", t_calls("cuMemSetAccess"));
  CU(cuMemFree_v2(c));
  use(0);
  CU(cuMemFree_v2(a));
  CU(cuMemFree_v2(b));
  printf("ok onegpu\n");
  return 0;
}

static int peerstaged(void) {
  setup();
  CUmodule m;
  CUfunction k_read;
  use(0);
  CU(cuModuleLoadData(&m, "fake image"));
  CU(cuModuleGetFunction(&k_read, m, SPILL_KERNEL_READ));
  CUdeviceptr smalls[31], a, b;
  for (int i = 0; i < 31; i++) CU(cuMemAlloc_v2(&smalls[i], 2 * MiB));
  CU(cuMemAlloc_v2(&a, 4 * MiB)); /* device 0, host pages: what the engine stages */
  for (int i = 0; i < 31; i++) CU(cuMemFree_v2(smalls[i]));
  CHECK(t_pages_in(loc, a, 4 * MiB, 2) == 2, "setup: not in host memory");
  for (int i = 0; i < 5; i++) fill(a, 4 * MiB, 40 + i); /* timed in place three times, then staged */
  use(1);
  CUdeviceptr smalls1[31];
  for (int i = 0; i < 31; i++) CU(cuMemAlloc_v2(&smalls1[i], 2 * MiB));
  CU(cuMemAlloc_v2(&b, 4 * MiB)); /* device 1's own tiered range (host pages), named first */
  CHECK(t_pages_in(loc, b, 4 * MiB, 2) == 2, "setup: b not in host memory");
  CU(cuCtxEnablePeerAccess(ctx[0], 0));
  fill(b, 4 * MiB, 77);
  unsigned long long n = 4 * MiB / 8, sum = 0;
  for (unsigned long long i = 0; i < n; i++) sum += spill_pattern(77, i);
  void *args[] = {&b, &n, &a}; /* a[0] += the words of b */
  CU(cuLaunchKernel(k_read, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
  CU(cuCtxSynchronize());
  use(0);
  unsigned long long w0 = 0, w1 = 0;
  CU(cuMemcpyDtoH_v2(&w0, a, 8));
  CU(cuMemcpyDtoH_v2(&w1, a + 8, 8));
  CHECK(w1 == spill_pattern(44, 1), "a[1] is not the last fill's word");
  CHECK(w0 == spill_pattern(44, 0) + sum, "a[0]: device 1's addition into the range was lost (or read a stale word)");
  CU(cuMemFree_v2(a));
  use(1);
  CU(cuMemFree_v2(b));
  for (int i = 0; i < 31; i++) CU(cuMemFree_v2(smalls1[i]));
  printf("ok peerstaged\n");
  return 0;
}

int main(int argc, char **argv) {
  const char *s = argc > 1 ? argv[1] : "";
  if (!strcmp(s, "limits")) return limits();
  if (!strcmp(s, "copy")) return copy();
  if (!strcmp(s, "peer")) return peer();
  if (!strcmp(s, "exportable")) return exportable();
  if (!strcmp(s, "onegpu")) return onegpu();
  if (!strcmp(s, "peerstaged")) return peerstaged();
  fprintf(stderr, "usage: t_mgpu limits|copy|peer|exportable|onegpu|peerstaged\n");
  return 2;
}
