/*
** t_tiers.c: tiered placement. Run with SPILLOVER_VRAM_LIMIT=64M SPILLOVER_VRAM_RESERVE=16M
** SPILLOVER_PINNED_LIMIT=<P> SPILLOVER_HOST_RESERVE=0 against the fake driver:
**  place     fits -> passed to the driver; past the budget -> VRAM pages then host pages, one
**            allocation straddling both (asked page by page of the fake)
**  reuse     freed pages return to the pools and are reused with no new cuMemCreate
**  oom       CUDA_ERROR_OUT_OF_MEMORY exactly when VRAM budget + pinned budget are spent (P=64M)
**  copy      memcpy/memset across the tier boundary, bytes verified
**  async     cuMemAllocAsync/cuMemFreeAsync: deferred release, pages reused afterwards
**  vmm       the program's own cuMemCreate: whole while the budget allows, then split in pages
*/
#include "t_common.h"

static t_location_fn loc;

static void expect_pages(CUdeviceptr p, size_t bytes, int nvram) {
  size_t pages = (bytes + PAGE - 1) / PAGE;
  for (size_t i = 0; i < pages; i++) {
    int want = (int)i < nvram ? 1 : 2, got = loc(p + i * PAGE);
    CHECK(got == want, "page %zu of 0x%llx: location %d, want %d", i, (unsigned long long)p, got, want);
    /* the real-driver way of asking (used on a GPU) must agree with the fake's introspection */
    if (loc != t_location_real) CHECK(t_location_real(p + i * PAGE) == want, "handle properties disagree, page %zu", i);
  }
}

static int place(void) {
  CUdeviceptr a, b, c;
  CU(cuMemAlloc_v2(&a, 40 * MiB)); /* 40 <= 64-16: the driver's own memory */
  CHECK(loc(a) == 0, "40M should be passed to the driver (location %d)", loc(a));
  CU(cuMemAlloc_v2(&b, 20 * MiB)); /* 8M of VRAM budget left: 4 VRAM pages + 6 host pages */
  expect_pages(b, 20 * MiB, 4);
  CU(cuMemAlloc_v2(&c, 10 * MiB)); /* all host */
  expect_pages(c, 10 * MiB, 0);
  sp_stats s = t_stats();
  CHECK(s.gpu[0].tier_bytes[0] == 8 * MiB && s.gpu[0].tier_bytes[1] == 22 * MiB, "tier bytes %llu/%llu",
        (unsigned long long)s.gpu[0].tier_bytes[0], (unsigned long long)s.gpu[0].tier_bytes[1]);
  CHECK(s.gpu[0].passthrough_bytes == 40 * MiB, "passthrough %llu", (unsigned long long)s.gpu[0].passthrough_bytes);
  CHECK(s.tiered_allocs == 2 && s.passthrough_allocs == 1, "counts %llu %llu", (unsigned long long)s.tiered_allocs,
        (unsigned long long)s.passthrough_allocs);
  /* small allocations may use the reserve, and pass to the driver */
  CUdeviceptr small;
  CU(cuMemAlloc_v2(&small, 1 * MiB));
  CHECK(loc(small) == 0, "1M should pass through");
  CU(cuMemFree_v2(small));
  CU(cuMemFree_v2(a));
  CU(cuMemFree_v2(b));
  CU(cuMemFree_v2(c));
  s = t_stats();
  CHECK(s.gpu[0].tier_bytes[0] == 0 && s.gpu[0].tier_bytes[1] == 0 && s.gpu[0].passthrough_bytes == 0,
        "bytes left after frees");
  printf("ok place\n");
  return 0;
}

static int reuse(void) {
  CUdeviceptr a, b;
  CU(cuMemAlloc_v2(&a, 40 * MiB));
  CU(cuMemAlloc_v2(&b, 30 * MiB)); /* 4 VRAM + 11 host pages */
  expect_pages(b, 30 * MiB, 4);
  sp_stats s1 = t_stats();
  unsigned long creates = t_calls("cuMemCreate");
  CHECK(creates > 0 || !t_is_fake(), "no cuMemCreate counted");
  CU(cuMemFree_v2(b));
  sp_stats s2 = t_stats();
  CHECK(s2.pinned_pool_bytes == s1.pinned_pool_bytes && s2.pinned_used_bytes == 0, "pool after free: %llu used %llu",
        (unsigned long long)s2.pinned_pool_bytes, (unsigned long long)s2.pinned_used_bytes);
  for (int round = 0; round < 3; round++) {
    CU(cuMemAlloc_v2(&b, 30 * MiB));
    expect_pages(b, 30 * MiB, 4);
    CU(cuMemFree_v2(b));
  }
  CHECK(t_calls("cuMemCreate") == creates, "pages re-created: %lu -> %lu", creates, t_calls("cuMemCreate"));
  sp_stats s3 = t_stats();
  CHECK(s3.pool_grows == s1.pool_grows && s3.pinned_pool_bytes == s1.pinned_pool_bytes, "pool grew again");
  CU(cuMemFree_v2(a));
  printf("ok reuse creates=%lu pool=%llu\n", creates, (unsigned long long)s3.pinned_pool_bytes);
  return 0;
}

static int oom(void) {
  /* VRAM 64M (reserve 16M), pinned 64M: large allocations get 48M of VRAM + 64M of host. */
  CUdeviceptr a, b, c, d;
  CU(cuMemAlloc_v2(&a, 48 * MiB));
  CU(cuMemAlloc_v2(&b, 64 * MiB));
  expect_pages(b, 64 * MiB, 0);
  CUresult rc = cuMemAlloc_v2(&c, 2 * MiB + 4096); /* just above the threshold: no reserve */
  CHECK(rc == CUDA_ERROR_OUT_OF_MEMORY, "past both budgets: rc %d, want 2", rc);
  CHECK(cuMemAlloc_v2(&c, 64 * MiB + 1) == CUDA_ERROR_OUT_OF_MEMORY, "huge alloc not refused");
  /* up to the threshold, the VRAM reserve is still there */
  CU(cuMemAlloc_v2(&d, 1 * MiB));
  CU(cuMemFree_v2(b));
  CU(cuMemAlloc_v2(&b, 64 * MiB)); /* exactly the pinned budget again */
  sp_stats s = t_stats();
  CHECK(s.oom_returned == 2, "oom_returned %llu", (unsigned long long)s.oom_returned);
  CHECK(s.pinned_pool_bytes == 64 * MiB, "pinned pool %llu exceeds the budget", (unsigned long long)s.pinned_pool_bytes);
  CU(cuMemFree_v2(a));
  CU(cuMemFree_v2(b));
  CU(cuMemFree_v2(d));
  printf("ok oom\n");
  return 0;
}

static int copy(void) {
  CUdeviceptr a, b, plain;
  size_t n = 20 * MiB;
  CU(cuMemAlloc_v2(&a, 40 * MiB));
  CU(cuMemAlloc_v2(&b, n)); /* 4 VRAM pages, 6 host */
  expect_pages(b, n, 4);
  unsigned char *h = malloc(n), *back = malloc(n);
  for (size_t i = 0; i < n; i++) h[i] = (unsigned char)(i * 131 + (i >> 20));
  CU(cuMemcpyHtoD_v2(b, h, n));
  memset(back, 0, n);
  CU(cuMemcpyDtoH_v2(back, b, n));
  CHECK(!memcmp(h, back, n), "HtoD/DtoH round trip differs");
  /* memset across the VRAM/host boundary at 8M */
  CU(cuMemsetD8_v2(b + 7 * MiB, 0xAB, 2 * MiB));
  CU(cuMemcpyDtoH_v2(back, b, n));
  for (size_t i = 0; i < n; i++) {
    unsigned char want = i >= 7 * MiB && i < 9 * MiB ? 0xAB : h[i];
    CHECK(back[i] == want, "byte %zu is %u, want %u", i, back[i], want);
  }
  /* device to device: tiered -> driver memory -> tiered (other offset) */
  CU(cuMemAlloc_v2(&plain, 1 * MiB));
  CU(cuMemcpyDtoD_v2(plain, b + 8 * MiB - 512 * 1024, 1 * MiB));
  CU(cuMemcpyDtoD_v2(b, plain, 1 * MiB));
  CU(cuMemcpyDtoH_v2(back, b, 1 * MiB));
  for (size_t i = 0; i < 1 * MiB; i++) {
    size_t src = 8 * MiB - 512 * 1024 + i;
    unsigned char want = src >= 7 * MiB && src < 9 * MiB ? 0xAB : h[src];
    CHECK(back[i] == want, "DtoD byte %zu", i);
  }
  CU(cuMemsetD32_v2(b + 12 * MiB, 0x01020304u, 1024));
  unsigned int w[1024];
  CU(cuMemcpyDtoH_v2(w, b + 12 * MiB, sizeof(w)));
  for (int i = 0; i < 1024; i++) CHECK(w[i] == 0x01020304u, "memsetD32 word %d", i);
  CU(cuMemFree_v2(plain));
  CU(cuMemFree_v2(b));
  CU(cuMemFree_v2(a));
  free(h);
  free(back);
  printf("ok copy\n");
  return 0;
}

static int async_(void) {
  CUstream s;
  CU(cuStreamCreate(&s, 0));
  CUdeviceptr a, b;
  CU(cuMemAllocAsync(&a, 48 * MiB, s)); /* passes through */
  CU(cuMemAllocAsync(&b, 24 * MiB, s)); /* tiered, host */
  expect_pages(b, 24 * MiB, 0);
  CU(cuMemsetD8_v2(b, 7, 24 * MiB));
  unsigned long creates = t_calls("cuMemCreate");
  CU(cuMemFreeAsync(b, s));
  /* the free is deferred until the stream reaches it; a double free is refused meanwhile */
  CHECK(cuMemFreeAsync(b, s) == CUDA_ERROR_INVALID_VALUE, "double cuMemFreeAsync accepted");
  CU(cuStreamSynchronize(s));
  CUdeviceptr c;
  CU(cuMemAllocAsync(&c, 24 * MiB, s)); /* reaps the finished free, reuses its pages */
  expect_pages(c, 24 * MiB, 0);
  CHECK(t_calls("cuMemCreate") == creates, "async reuse created pages");
  sp_stats st;
  CHECK(t_read_stats(getpid(), &st) == 0, "stats");
  CHECK(st.gpu[0].tier_bytes[1] == 24 * MiB, "pinned tier %llu after reap", (unsigned long long)st.gpu[0].tier_bytes[1]);
  CU(cuMemFreeAsync(c, s));
  CU(cuMemFreeAsync(a, s));
  CU(cuStreamSynchronize(s));
  printf("ok async\n");
  return 0;
}

static int vmm(void) {
  CUmemAllocationProp prop;
  memset(&prop, 0, sizeof(prop));
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  CUmemGenericAllocationHandle h1, h2;
  prop.requestedHandleTypes = 1; /* exportable (POSIX_FD): one real VRAM handle while it fits */
  CU(cuMemCreate(&h1, 32 * MiB, &prop, 0));
  prop.requestedHandleTypes = 0;
  CU(cuMemCreate(&h2, 32 * MiB, &prop, 0)); /* 16M left: split, 8 VRAM + 8 host pages */
  CUdeviceptr va;
  CU(cuMemAddressReserve(&va, 64 * MiB, PAGE, 0, 0));
  CU(cuMemMap(va, 32 * MiB, 0, h1, 0));
  CU(cuMemMap(va + 32 * MiB, 32 * MiB, 0, h2, 0));
  CUmemAccessDesc ad = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
  CU(cuMemSetAccess(va, 64 * MiB, &ad, 1));
  CHECK(loc(va) == 1 && loc(va + 32 * MiB) == 1 && loc(va + 63 * MiB) == 2, "program VMM locations %d %d %d", loc(va),
        loc(va + 32 * MiB), loc(va + 63 * MiB));
  /* a retained handle is one more reference: releasing it must not un-count the memory */
  CUmemGenericAllocationHandle r1, r2;
  CU(cuMemRetainAllocationHandle(&r1, (void *)(uintptr_t)va));
  CU(cuMemRetainAllocationHandle(&r2, (void *)(uintptr_t)(va + 32 * MiB)));
  CHECK(r1 == h1 && r2 == h2, "retained handles differ from the created ones");
  CU(cuMemRelease(r1));
  CU(cuMemRelease(r2));
  sp_stats s;
  CHECK(t_read_stats(getpid(), &s) == 0, "stats");
  CHECK(s.gpu[0].program_vmm_bytes == 48 * MiB && s.gpu[0].program_vmm_host_bytes == 16 * MiB, "vmm counts %llu %llu",
        (unsigned long long)s.gpu[0].program_vmm_bytes, (unsigned long long)s.gpu[0].program_vmm_host_bytes);
  size_t fr, tot;
  CU(cuMemGetInfo_v2(&fr, &tot));
  CHECK(tot - fr == 64 * MiB, "usage %zu, want 64M", tot - fr);
  CU(cuMemUnmap(va, 64 * MiB)); /* the driver's handle and ours in one call */
  CU(cuMemAddressFree(va, 64 * MiB));
  CU(cuMemRelease(h1));
  CU(cuMemRelease(h2));
  CHECK(t_read_stats(getpid(), &s) == 0, "stats");
  CHECK(s.gpu[0].program_vmm_bytes == 0 && s.gpu[0].program_vmm_host_bytes == 0, "vmm not uncounted");
  printf("ok vmm\n");
  return 0;
}

int main(int argc, char **argv) {
  const char *s = argc > 1 ? argv[1] : "";
  loc = t_location();
  t_setup();
  if (!strcmp(s, "place")) return place();
  if (!strcmp(s, "reuse")) return reuse();
  if (!strcmp(s, "oom")) return oom();
  if (!strcmp(s, "copy")) return copy();
  if (!strcmp(s, "async")) return async_();
  if (!strcmp(s, "vmm")) return vmm();
  fprintf(stderr, "usage: t_tiers place|reuse|oom|copy|async|vmm\n");
  return 2;
}
