/*
** t_placement.c: the placement policy's rules (native/src/policy.c, migrate.c, vmm_hooks.c) on the
** fake driver, with placement on (SPILLOVER_MIGRATE=1) and the test budget (64M limit, 16M
** reserve: 48M of VRAM for large allocations). Bytes are checked by kernels and copies.
**  fresh       a fresh allocation that does not fit: the coldest range's VRAM pages leave first,
**              and the new range is all VRAM; the evicted bytes are intact in host memory
**  vmm         the program's cuMemCreate past the budget is split across tiers behind the handle
**              it gets: mapped, written, unmapped and mapped again elsewhere with the bytes kept;
**              mapped twice; retained; its properties are the program's; export is refused
**  vmm-hot     host pages of a program mapping that launches keep naming move into VRAM once
**              the driver's small allocations that filled it are freed
**  exportable  an exportable cuMemCreate stays one real VRAM handle: a cold range leaves to make room
**  steady      a repeating step (an activation range named often, weights once) moves pages while
**              it warms up, then none
*/
#include "t_kernels.h"

CUresult cuMemExportToShareableHandle(void *, CUmemGenericAllocationHandle, int, unsigned long long);

static t_location_fn loc;

static int fresh(void) {
  kernels(); /* 2M of the budget */
  CUdeviceptr weights, act;
  CU(cuMemAlloc_v2(&weights, 40 * MiB)); /* tiered, all VRAM: 6M left above the reserve */
  CHECK(t_pages_in(loc, weights, 40 * MiB, 1) == 20, "weights: %d of 20 pages in VRAM", t_pages_in(loc, weights, 40 * MiB, 1));
  fill(weights, 40 * MiB, 5);
  CU(cuMemAlloc_v2(&act, 16 * MiB)); /* 8 pages, 3 free: 5 of the weights' pages leave */
  CHECK(t_pages_in(loc, act, 16 * MiB, 1) == 8, "fresh range: %d of 8 pages in VRAM", t_pages_in(loc, act, 16 * MiB, 1));
  CHECK(t_pages_in(loc, weights, 40 * MiB, 2) == 5, "weights: %d pages in host, want 5", t_pages_in(loc, weights, 40 * MiB, 2));
  CHECK(loc(weights) == 1, "eviction should take the end of a range first");
  fill(act, 16 * MiB, 6);
  verify_launch(weights, 40 * MiB, 5, 0);
  verify_launch(act, 16 * MiB, 6, 0);
  CHECK(bad_words() == 0, "%llu words changed", bad_words());
  sp_stats s = t_stats();
  CHECK(s.migrations == 5, "migrations %llu, want 5", (unsigned long long)s.migrations);
  CU(cuMemFree_v2(act));
  CU(cuMemFree_v2(weights));
  printf("ok fresh\n");
  return 0;
}

static CUmemAllocationProp device_prop(unsigned handle_types) {
  CUmemAllocationProp prop;
  memset(&prop, 0, sizeof(prop));
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  prop.requestedHandleTypes = handle_types;
  return prop;
}

static void map_rw(CUdeviceptr va, size_t size, CUmemGenericAllocationHandle h) {
  CUmemAccessDesc ad = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
  CU(cuMemMap(va, size, 0, h, 0));
  CU(cuMemSetAccess(va, size, &ad, 1));
}

static int vmm(void) {
  kernels();
  CUmemAllocationProp prop = device_prop(0);
  CUmemGenericAllocationHandle h;
  CU(cuMemCreate(&h, 80 * MiB, &prop, 0)); /* 23 pages fit above the reserve, 17 go to host */
  CUdeviceptr va, vb;
  CU(cuMemAddressReserve(&va, 80 * MiB, PAGE, 0, 0));
  CU(cuMemAddressReserve(&vb, 160 * MiB, PAGE, 0, 0));
  map_rw(va, 80 * MiB, h);
  CHECK(t_pages_in(loc, va, 80 * MiB, 1) == 23 && t_pages_in(loc, va, 80 * MiB, 2) == 17, "split %d VRAM + %d host pages",
        t_pages_in(loc, va, 80 * MiB, 1), t_pages_in(loc, va, 80 * MiB, 2));
  fill(va, 80 * MiB, 7);
  sp_stats s = t_stats();
  CHECK(s.gpu[0].program_vmm_bytes == 46 * MiB && s.gpu[0].program_vmm_host_bytes == 34 * MiB, "vmm counts %llu %llu",
        (unsigned long long)s.gpu[0].program_vmm_bytes, (unsigned long long)s.gpu[0].program_vmm_host_bytes);
  CUdeviceptr base = 0;
  size_t size = 0;
  CU(cuMemGetAddressRange_v2(&base, &size, va + 70 * MiB)); /* the second placement record of the mapping */
  CHECK(base == va && size == 80 * MiB, "address range %llx+%zu, want the whole mapping", (unsigned long long)base, size);
  CUmemGenericAllocationHandle r;
  CU(cuMemRetainAllocationHandle(&r, (void *)(uintptr_t)(va + 70 * MiB)));
  CHECK(r == h, "retained handle differs from the created one");
  CU(cuMemRelease(r));
  CUmemAllocationProp back;
  CU(cuMemGetAllocationPropertiesFromHandle(&back, h));
  CHECK(back.location.type == CU_MEM_LOCATION_TYPE_DEVICE && back.requestedHandleTypes == 0, "properties changed");
  int fd = -1;
  CHECK(cuMemExportToShareableHandle(&fd, h, 1, 0) == CUDA_ERROR_NOT_SUPPORTED, "export of a tiered handle");
  CU(cuMemUnmap(va, 80 * MiB));
  /* mapped again elsewhere, twice (the first 32M of the handle again at vb + 80M), bytes kept */
  map_rw(vb, 80 * MiB, h);
  map_rw(vb + 80 * MiB, 32 * MiB, h);
  verify_launch(vb, 80 * MiB, 7, 0);
  CHECK(bad_words() == 0, "%llu words changed after remapping", bad_words());
  unsigned long long w1 = 0, w2 = 0;
  CU(cuMemcpyDtoH_v2(&w1, vb + 20 * MiB, 8));
  CU(cuMemcpyDtoH_v2(&w2, vb + 80 * MiB + 20 * MiB, 8));
  CHECK(w1 == w2 && w1 == spill_pattern(7, 20 * MiB / 8), "the two mappings disagree");
  CU(cuMemUnmap(vb, 112 * MiB)); /* both mappings in one call, as PyTorch does */
  CU(cuMemRelease(h));
  s = t_stats();
  CHECK(s.gpu[0].program_vmm_bytes == 0 && s.gpu[0].program_vmm_host_bytes == 0, "vmm not uncounted");
  CHECK(cuMemRelease(h) == CUDA_ERROR_INVALID_VALUE, "a second release of the handle");
  CU(cuMemAddressFree(va, 80 * MiB));
  CU(cuMemAddressFree(vb, 160 * MiB));
  printf("ok vmm\n");
  return 0;
}

static int vmm_hot(void) {
  kernels();
  CUdeviceptr smalls[31]; /* VRAM full of the driver's small allocations: nothing can leave */
  for (int i = 0; i < 31; i++) CU(cuMemAlloc_v2(&smalls[i], 2 * MiB));
  CUmemAllocationProp prop = device_prop(0);
  CUmemGenericAllocationHandle h;
  CU(cuMemCreate(&h, 16 * MiB, &prop, 0));
  CUdeviceptr va;
  CU(cuMemAddressReserve(&va, 16 * MiB, PAGE, 0, 0));
  map_rw(va, 16 * MiB, h);
  CHECK(t_pages_in(loc, va, 16 * MiB, 2) == 8, "setup: %d pages of the handle in host memory", t_pages_in(loc, va, 16 * MiB, 2));
  for (int i = 0; i < 31; i++) CU(cuMemFree_v2(smalls[i]));
  fill(va, 16 * MiB, 9);
  for (int i = 0; i < 5000; i++) verify_launch(va, 64, 9, 0);
  CHECK(t_pages_in(loc, va, 16 * MiB, 2) == 0, "%d pages of a hot mapping stayed in host", t_pages_in(loc, va, 16 * MiB, 2));
  verify_launch(va, 16 * MiB, 9, 0);
  CHECK(bad_words() == 0, "%llu words changed", bad_words());
  CU(cuMemUnmap(va, 16 * MiB));
  CU(cuMemRelease(h));
  CU(cuMemAddressFree(va, 16 * MiB));
  printf("ok vmm-hot\n");
  return 0;
}

static int exportable(void) {
  kernels();
  CUdeviceptr cold;
  CU(cuMemAlloc_v2(&cold, 40 * MiB));
  fill(cold, 40 * MiB, 3);
  CUmemAllocationProp prop = device_prop(1); /* POSIX_FD, as NCCL asks */
  CUmemGenericAllocationHandle h;
  CU(cuMemCreate(&h, 32 * MiB, &prop, 0));
  CUmemAllocationProp back;
  CU(cuMemGetAllocationPropertiesFromHandle(&back, h));
  CHECK(back.requestedHandleTypes == 1, "the exportable handle is not the driver's own");
  CUdeviceptr va;
  CU(cuMemAddressReserve(&va, 32 * MiB, PAGE, 0, 0));
  map_rw(va, 32 * MiB, h);
  CHECK(t_pages_in(loc, va, 32 * MiB, 1) == 16, "exportable memory: %d of 16 pages in VRAM", t_pages_in(loc, va, 32 * MiB, 1));
  CHECK(t_pages_in(loc, cold, 40 * MiB, 2) == 13, "cold range: %d pages left VRAM, want 13", t_pages_in(loc, cold, 40 * MiB, 2));
  verify_launch(cold, 40 * MiB, 3, 0);
  CHECK(bad_words() == 0, "%llu words changed", bad_words());
  CU(cuMemUnmap(va, 32 * MiB));
  CU(cuMemRelease(h));
  CU(cuMemAddressFree(va, 32 * MiB));
  CU(cuMemFree_v2(cold));
  printf("ok exportable\n");
  return 0;
}

static void step(CUdeviceptr act, CUdeviceptr *w, int nw) {
  for (int i = 0; i < 20; i++) verify_launch(act, 64, 1, 0);
  for (int i = 0; i < nw; i++) verify_launch(w[i], 64, 2 + (unsigned long long)i, 0);
}

static int steady(void) {
  kernels();
  CUdeviceptr w[3], act;
  for (int i = 0; i < 3; i++) {
    CU(cuMemAlloc_v2(&w[i], 16 * MiB));
    fill(w[i], 16 * MiB, 2 + (unsigned long long)i);
  }
  CU(cuMemAlloc_v2(&act, 8 * MiB));
  fill(act, 8 * MiB, 1);
  CHECK(t_pages_in(loc, act, 8 * MiB, 1) == 4, "the activations are not in VRAM");
  for (int i = 0; i < 300; i++) step(act, w, 3); /* warm-up */
  unsigned long long before = t_stats().migrations;
  for (int i = 0; i < 600; i++) step(act, w, 3);
  unsigned long long after = t_stats().migrations;
  CHECK(after == before, "%llu pages moved in the steady state", after - before);
  CHECK(t_pages_in(loc, act, 8 * MiB, 1) == 4, "the activations left VRAM");
  CHECK(bad_words() == 0, "%llu words changed", bad_words());
  printf("ok steady (%llu pages moved while warming up)\n", before);
  return 0;
}

int main(int argc, char **argv) {
  const char *s = argc > 1 ? argv[1] : "";
  loc = t_location();
  t_setup();
  if (!strcmp(s, "fresh")) return fresh();
  if (!strcmp(s, "vmm")) return vmm();
  if (!strcmp(s, "vmm-hot")) return vmm_hot();
  if (!strcmp(s, "exportable")) return exportable();
  if (!strcmp(s, "steady")) return steady();
  fprintf(stderr, "usage: t_placement fresh|vmm|vmm-hot|exportable|steady\n");
  return 2;
}
