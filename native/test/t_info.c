/*
** t_info.c: what the program is told. Run with SPILLOVER_VRAM_LIMIT=64M SPILLOVER_VRAM_RESERVE=16M
** SPILLOVER_PINNED_LIMIT=128M:
**  capacity  total = limit + pinned from cuMemGetInfo, cuDeviceTotalMem (v2 and v1) and NVML
**            (v1 and v2 structs); free = total - usage in all tiers, equal everywhere
**  attrs     a tiered pointer answers like cuMemAlloc memory (type, range, ordinal, context,
**            stable buffer id, not IPC capable, mapped); cuMemGetAddressRange gives the whole range
**  ipc       cuIpcGetMemHandle on a tiered pointer -> CUDA_ERROR_NOT_SUPPORTED (801)
*/
#include "t_common.h"

typedef nvmlReturn_t (*nvml_init_fn)(void);
typedef nvmlReturn_t (*nvml_handle_fn)(unsigned int, nvmlDevice_t *);
typedef nvmlReturn_t (*nvml_mem_fn)(nvmlDevice_t, nvmlMemory_t *);
typedef nvmlReturn_t (*nvml_mem2_fn)(nvmlDevice_t, nvmlMemory_v2_t *);

static void agree(size_t expect_total, size_t expect_used) {
  size_t fr = 0, tot = 0, t2 = 0;
  unsigned int t1 = 0;
  CU(cuMemGetInfo_v2(&fr, &tot));
  CU(cuDeviceTotalMem_v2(&t2, 0));
  CU(cuDeviceTotalMem(&t1, 0));
  CHECK(tot == expect_total, "cuMemGetInfo total %zu, want %zu", tot, expect_total);
  CHECK(tot - fr == expect_used, "cuMemGetInfo used %zu, want %zu", tot - fr, expect_used);
  CHECK(t2 == tot && t1 == tot, "cuDeviceTotalMem %zu / v1 %u vs %zu", t2, t1, tot);

  void *nv = dlopen("libnvidia-ml.so.1", RTLD_NOW);
  CHECK(nv, "nvml: %s", dlerror());
  nvml_init_fn init = (nvml_init_fn)dlsym(nv, "nvmlInit_v2");
  nvml_handle_fn by_index = (nvml_handle_fn)dlsym(nv, "nvmlDeviceGetHandleByIndex_v2");
  nvml_mem_fn mem = (nvml_mem_fn)dlsym(nv, "nvmlDeviceGetMemoryInfo");
  nvml_mem2_fn mem2 = (nvml_mem2_fn)dlsym(nv, "nvmlDeviceGetMemoryInfo_v2");
  CHECK(init && by_index && mem && mem2, "nvml symbols");
  CHECK(init() == NVML_SUCCESS, "nvmlInit_v2");
  nvmlDevice_t d;
  CHECK(by_index(0, &d) == NVML_SUCCESS, "nvml handle");
  nvmlMemory_t m;
  CHECK(mem(d, &m) == NVML_SUCCESS, "nvmlDeviceGetMemoryInfo");
  CHECK(m.total == tot && m.free == fr && m.used == expect_used, "nvml v1 total %llu free %llu used %llu", m.total,
        m.free, m.used);
  nvmlMemory_v2_t m2;
  memset(&m2, 0, sizeof(m2));
  m2.version = nvmlMemory_v2;
  CHECK(mem2(d, &m2) == NVML_SUCCESS, "nvmlDeviceGetMemoryInfo_v2");
  CHECK(m2.total == tot && m2.free == fr && m2.used == expect_used && m2.reserved == 0,
        "nvml v2 total %llu free %llu used %llu reserved %llu", m2.total, m2.free, m2.used, m2.reserved);
  CHECK(m2.version == nvmlMemory_v2, "nvml v2 version field changed");
}

static int capacity(void) {
  size_t total = t_env_size("SPILLOVER_VRAM_LIMIT", 0) + t_env_size("SPILLOVER_PINNED_LIMIT", 0);
  agree(total, 0);
  CUdeviceptr a, b;
  CU(cuMemAlloc_v2(&a, 40 * MiB));
  CU(cuMemAlloc_v2(&b, 30 * MiB)); /* 4 VRAM + 11 host pages */
  agree(total, 70 * MiB);
  CU(cuMemFree_v2(a));
  agree(total, 30 * MiB);
  CU(cuMemFree_v2(b));
  agree(total, 0);
  printf("ok capacity total=%zu\n", total);
  return 0;
}

static int attrs(CUcontext ctx) {
  CUdeviceptr a, p;
  CU(cuMemAlloc_v2(&a, 40 * MiB));
  size_t n = 20 * MiB + 4096; /* not a page multiple: the range is what was asked for */
  CU(cuMemAlloc_v2(&p, n));
  CUdeviceptr probes[] = {p, p + 3 * MiB + 17, p + n - 1};
  unsigned long long id0 = 0;
  for (int i = 0; i < 3; i++) {
    CUdeviceptr q = probes[i];
    unsigned int type = 0;
    CUdeviceptr start = 0;
    size_t size = 0;
    int ord = -1;
    CUcontext c = NULL;
    unsigned long long id = 0;
    CU(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, q));
    CU(cuPointerGetAttribute(&start, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, q));
    CU(cuPointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, q));
    CU(cuPointerGetAttribute(&ord, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, q));
    CU(cuPointerGetAttribute(&c, CU_POINTER_ATTRIBUTE_CONTEXT, q));
    CU(cuPointerGetAttribute(&id, CU_POINTER_ATTRIBUTE_BUFFER_ID, q));
    CHECK(type == CU_MEMORYTYPE_DEVICE, "memory type %u", type);
    CHECK(start == p && size == n, "range 0x%llx+%zu, want 0x%llx+%zu", start, size, p, n);
    CHECK(ord == 0 && c == ctx, "ordinal %d ctx %p", ord, (void *)c);
    if (i == 0) id0 = id;
    CHECK(id == id0 && id != 0, "buffer id not stable: %llu vs %llu", id, id0);
    int ipc = -1, mapped = -1;
    CU(cuPointerGetAttribute(&ipc, CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE, q));
    CU(cuPointerGetAttribute(&mapped, CU_POINTER_ATTRIBUTE_MAPPED, q));
    CHECK((ipc & 0xff) == 0 && (mapped & 0xff) == 1, "ipc capable %d mapped %d", ipc, mapped);
    CUdeviceptr base = 0;
    size_t rsz = 0;
    CU(cuMemGetAddressRange_v2(&base, &rsz, q));
    CHECK(base == p && rsz == n, "address range 0x%llx+%zu", base, rsz);
  }
  /* plural form */
  CUpointer_attribute which[3] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_RANGE_SIZE,
                                  CU_POINTER_ATTRIBUTE_BUFFER_ID};
  unsigned int type = 0;
  size_t size = 0;
  unsigned long long id = 0;
  void *data[3] = {&type, &size, &id};
  CU(cuPointerGetAttributes(3, which, data, p + 5 * MiB));
  CHECK(type == CU_MEMORYTYPE_DEVICE && size == n && id == id0, "cuPointerGetAttributes %u %zu %llu", type, size, id);
  /* the passthrough allocation keeps the driver's own answers */
  unsigned long long ida = 0;
  CU(cuPointerGetAttribute(&ida, CU_POINTER_ATTRIBUTE_BUFFER_ID, a));
  CHECK(ida != id0, "buffer ids collide");
  CU(cuMemFree_v2(p));
  CU(cuMemFree_v2(a));
  printf("ok attrs\n");
  return 0;
}

static int ipc(void) {
  CUdeviceptr a, p;
  CU(cuMemAlloc_v2(&a, 40 * MiB));
  CU(cuMemAlloc_v2(&p, 20 * MiB));
  CUipcMemHandle h;
  CUresult rc = cuIpcGetMemHandle(&h, p);
  CHECK(rc == CUDA_ERROR_NOT_SUPPORTED, "tiered IPC: rc %d, want 801", rc);
  rc = cuIpcGetMemHandle(&h, p + 4 * MiB);
  CHECK(rc == CUDA_ERROR_NOT_SUPPORTED, "tiered IPC interior: rc %d, want 801", rc);
  CU(cuIpcGetMemHandle(&h, a)); /* driver memory still shares */
  CU(cuMemFree_v2(p));
  CU(cuMemFree_v2(a));
  printf("ok ipc\n");
  return 0;
}

int main(int argc, char **argv) {
  const char *s = argc > 1 ? argv[1] : "";
  CUcontext ctx = t_setup();
  if (!strcmp(s, "capacity")) return capacity();
  if (!strcmp(s, "attrs")) return attrs(ctx);
  if (!strcmp(s, "ipc")) return ipc();
  fprintf(stderr, "usage: t_info capacity|attrs|ipc\n");
  return 2;
}
