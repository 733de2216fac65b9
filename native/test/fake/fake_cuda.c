/*
** fake_cuda.c: libcuda.so.1 for machines without a GPU. A CPU-only test double of the CUDA
** driver API, faithful enough that libspillover.so (the interposer) and the demo program run on
** it unmodified: same symbol names, signatures and CUresult codes as the real driver for every
** error it models.
**
** Model:
**  - Device memory is host memory: a device pointer is a host address. cuMemAlloc* = an
**    anonymous mmap, charged against a fake VRAM capacity (FAKE_CUDA_VRAM bytes, default 1 GiB,
**    per device; FAKE_CUDA_DEVICES devices, default 1). Exhausted -> CUDA_ERROR_OUT_OF_MEMORY.
**  - VMM: cuMemAddressReserve = PROT_NONE mmap; cuMemCreate = a range of one sparse memfd
**    (the "physical" memory, DEVICE counted against fake VRAM, HOST_NUMA not); cuMemMap = mmap
**    MAP_SHARED|MAP_FIXED of that range (PROT_NONE until cuMemSetAccess), so data follows the
**    handle across remaps; cuMemUnmap restores the PROT_NONE reservation; the handle is freed
**    when the user's references and all mappings are gone (cuMemRelease semantics).
**    FAKE_CUDA_NO_HOST_NUMA=1 makes HOST_NUMA cuMemCreate fail with CUDA_ERROR_NOT_SUPPORTED.
**  - Everything is synchronous: streams and events exist for validation and timing only.
**  - Kernels: cuModuleLoadData accepts any image; the kernels of native/demo/spill_pattern.h and
**    the streaming engine's (native/src/stage_kernels.h) run on the CPU; any other name is
**    CUDA_ERROR_NOT_FOUND.
**  - Device accesses (copies, memsets, kernels) are checked first: an address that no
**    allocation owns is CUDA_ERROR_INVALID_VALUE (copies) / CUDA_ERROR_ILLEGAL_ADDRESS (kernels),
**    and a VMM page that is unmapped or lacks access is CUDA_ERROR_ILLEGAL_ADDRESS, where the
**    real GPU would fault, instead of crashing the test with SIGSEGV.
**  - cuGetExportTable returns CUDA_ERROR_NOT_SUPPORTED: there are no private tables to give.
**  - Graphs (the graph section): stream capture of launches, async copies and memsets; kernel
**    and child-graph nodes added by API; instantiate, update, node parameter changes on an exec;
**    a launch runs the nodes in creation order on the CPU. No other node types, no edges.
**  - Several devices (FAKE_CUDA_DEVICES): VRAM counted per device, a primary context each. A
**    copy or kernel runs on the current context's device (cuMemcpyPeer: the destination's) and
**    may touch a VMM page only if the page's access descriptors name that device; a kernel may
**    touch another device's cuMemAlloc memory only after cuCtxEnablePeerAccess (copies may).
**  - Not modelled: the 32-bit v1 entry points (except cuDeviceTotalMem), arrays/textures,
**    IPC open, per-context peer state, cuDevicePrimaryCtxReset freeing the context's memory.
**
** Test-only introspection: the fakecuda_* functions at the end (see fake_cuda.h).
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../../demo/spill_pattern.h"
#include "../../src/stage_kernels.h"
#include "fake_cuda.h"

#define EXPORT __attribute__((visibility("default")))
#define GRANULARITY ((size_t)2 << 20)
#define MAX_DEVICES 16
#define ARENA_SIZE ((off_t)1 << 44) /* sparse memfd: 16 TiB of address space for handles */

/* ------------------------------------------------------------------------------------------
** Call counters: one per entry point, keyed by the function's own name (__func__).
** ---------------------------------------------------------------------------------------- */

typedef struct fc_counter {
  const char *name;
  atomic_ulong count;
  atomic_int registered;
  struct fc_counter *next;
} fc_counter;

static fc_counter *g_counters;
static pthread_mutex_t g_counter_lock = PTHREAD_MUTEX_INITIALIZER;

static void counter_hit(fc_counter *c) {
  if (!atomic_load(&c->registered)) {
    pthread_mutex_lock(&g_counter_lock);
    if (!atomic_load(&c->registered)) {
      c->next = g_counters;
      g_counters = c;
      atomic_store(&c->registered, 1);
    }
    pthread_mutex_unlock(&g_counter_lock);
  }
  atomic_fetch_add(&c->count, 1);
}

#define COUNT()                                                                                \
  do {                                                                                         \
    static fc_counter fc_c_ = {__func__, 0, 0, NULL};                                          \
    counter_hit(&fc_c_);                                                                       \
  } while (0)

/* ------------------------------------------------------------------------------------------
** State
** ---------------------------------------------------------------------------------------- */

#define CTX_MAGIC 0x43545846u   /* "FXTC" */
#define STREAM_MAGIC 0x53545246u
#define EVENT_MAGIC 0x45565446u
#define MODULE_MAGIC 0x4d4f4446u
#define FUNC_MAGIC 0x464e4346u
#define POOL_MAGIC 0x504f4f46u
#define HANDLE_MAGIC 0x484e4446u
#define GRAPH_MAGIC 0x47525046u
#define NODE_MAGIC 0x4e4f4e46u
#define EXEC_MAGIC 0x43584546u

struct CUctx_st {
  uint32_t magic;
  int device;
  int primary;
  int refcount;
  unsigned int flags;
};

struct CUstream_st {
  uint32_t magic;
  CUcontext ctx;
  unsigned int flags;
  CUgraph capture; /* being captured into this graph (cuStreamBeginCapture) */
};

struct CUevent_st {
  uint32_t magic;
  unsigned int flags;
  int recorded;
  double t_ms;
};

typedef enum { K_FILL, K_VERIFY, K_VERIFY_CONST, K_READ, K_STAGE_HASH, K_STAGE_WRITEBACK, K_STAGE_COPY } kernel_id;

struct CUmod_st {
  uint32_t magic;
  int loaded;
};

struct CUfunc_st {
  uint32_t magic;
  CUmodule mod;
  kernel_id id;
  int nparams;
};

struct CUmemPoolHandle_st {
  uint32_t magic;
  CUmemPoolProps props;
  int is_default;
};

typedef struct fake_handle {
  uint32_t magic;
  size_t size;
  off_t off;         /* offset of its "physical" bytes in the arena memfd */
  CUmemAllocationProp prop;
  int user_refs;     /* cuMemCreate + cuMemRetainAllocationHandle - cuMemRelease */
  int mappings;      /* live cuMemMap mappings of this handle */
  struct fake_handle *next;
} fake_handle;

typedef enum { R_ALLOC, R_HOST, R_RESERVE } region_kind;

typedef struct region {
  region_kind kind;
  uintptr_t base;
  size_t size;      /* bytes the program asked for */
  size_t map_size;  /* bytes mmapped (>= size) */
  int device;
  CUcontext ctx;
  unsigned long long buffer_id;
  size_t charged;   /* fake VRAM bytes charged */
  CUmemoryPool pool;
  struct region *next;
} region;

typedef struct mapping {
  uintptr_t va;
  size_t size;
  fake_handle *h;
  int prot[MAX_DEVICES]; /* CUmemAccess_flags granted, per device (cuMemSetAccess) */
  region *res;
  struct mapping *next;
} mapping;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_initialized;
static int g_init_error;
static int g_device_count = 1;
static size_t g_vram_total = (size_t)1 << 30;
static int g_no_host_numa;
static size_t g_vram_used[MAX_DEVICES];
static size_t g_host_vmm_used;
static struct CUctx_st g_primary[MAX_DEVICES];
static struct CUmemPoolHandle_st g_default_pool[MAX_DEVICES];
static region *g_regions;
static mapping *g_mappings;
static fake_handle *g_handles;
static unsigned long long g_next_buffer_id = 1;
static int g_arena_fd = -1;
static off_t g_arena_next;

static __thread CUcontext t_stack[64];
static __thread int t_depth;
static uint32_t g_peer[MAX_DEVICES]; /* g_peer[x] bit p: device x may touch device p's cuMemAlloc memory */
static __thread int t_exec_dev = -1; /* the device doing a cuMemcpyPeer (else the current context's) */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Parses a byte count: digits with an optional K/M/G/T suffix (binary). Returns 0 when bad. */
static int parse_size(const char *s, size_t *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) return 0;
  unsigned long long mul = 1;
  if (*end == 'K' || *end == 'k') mul = 1ull << 10, end++;
  else if (*end == 'M' || *end == 'm') mul = 1ull << 20, end++;
  else if (*end == 'G' || *end == 'g') mul = 1ull << 30, end++;
  else if (*end == 'T' || *end == 't') mul = 1ull << 40, end++;
  if (*end == 'i' && mul > 1) end++;
  if ((*end == 'B' || *end == 'b') && mul > 1) end++;
  if (*end != '\0' || v == 0) return 0;
  *out = (size_t)(v * mul);
  return 1;
}

/* Reads the FAKE_CUDA_* knobs once; a bad value makes cuInit fail with one clear line. */
static CUresult configure(void) {
  const char *v = getenv("FAKE_CUDA_VRAM");
  if (v && *v && !parse_size(v, &g_vram_total)) {
    fprintf(stderr,
            "fake libcuda: FAKE_CUDA_VRAM=%s is not a size; use bytes or a K/M/G suffix, e.g. 256M\n", v);
    return CUDA_ERROR_INVALID_VALUE;
  }
  const char *d = getenv("FAKE_CUDA_DEVICES");
  if (d && *d) {
    char *end = NULL;
    long n = strtol(d, &end, 10);
    if (*end != '\0' || n < 0 || n > MAX_DEVICES) {
      fprintf(stderr, "fake libcuda: FAKE_CUDA_DEVICES=%s must be an integer 0..%d\n", d, MAX_DEVICES);
      return CUDA_ERROR_INVALID_VALUE;
    }
    g_device_count = (int)n;
  }
  const char *h = getenv("FAKE_CUDA_NO_HOST_NUMA");
  g_no_host_numa = h && strcmp(h, "1") == 0;
  for (int i = 0; i < MAX_DEVICES; i++) {
    g_primary[i] = (struct CUctx_st){CTX_MAGIC, i, 1, 0, 0};
    g_default_pool[i].magic = POOL_MAGIC;
    g_default_pool[i].props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    g_default_pool[i].props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    g_default_pool[i].props.location.id = i;
    g_default_pool[i].is_default = 1;
  }
  return g_device_count == 0 ? CUDA_ERROR_NO_DEVICE : CUDA_SUCCESS;
}

#define NEED_INIT()                                                                            \
  do {                                                                                         \
    if (!g_initialized) return CUDA_ERROR_NOT_INITIALIZED;                                     \
  } while (0)

static int valid_device(CUdevice d) { return d >= 0 && d < g_device_count; }

static int valid_ctx(CUcontext c) {
  if (!c) return 0;
  for (int i = 0; i < g_device_count; i++)
    if (c == &g_primary[i]) return 1;
  return c->magic == CTX_MAGIC;
}

static CUcontext current_ctx(void) { return t_depth > 0 ? t_stack[t_depth - 1] : NULL; }

/* The context every device-touching call needs: CUDA_ERROR_INVALID_CONTEXT without one. */
#define NEED_CTX(var)                                                                          \
  NEED_INIT();                                                                                 \
  CUcontext var = current_ctx();                                                               \
  if (!var || !valid_ctx(var)) return CUDA_ERROR_INVALID_CONTEXT

static int valid_stream(CUstream s) {
  return s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD || s->magic == STREAM_MAGIC;
}

/* Stream capture (the graph section below): work enqueued on a capturing stream is recorded. */
static CUgraph capturing_into(CUstream s);
static CUresult capture_kernel(CUgraph g, CUfunction f, const unsigned dims[7], const uint64_t *args);
static CUresult capture_copy(CUgraph g, uintptr_t dst, uintptr_t src, size_t n, int dkind, int skind);
static CUresult capture_memset(CUgraph g, CUdeviceptr dst, unsigned int value, size_t n, unsigned int elem);

/* ------------------------------------------------------------------------------------------
** Address bookkeeping (callers hold g_lock)
** ---------------------------------------------------------------------------------------- */

static region *find_region(uintptr_t p) {
  for (region *r = g_regions; r; r = r->next)
    if (p >= r->base && p < r->base + (r->kind == R_RESERVE ? r->size : (r->size ? r->size : 1))) return r;
  return NULL;
}

static mapping *find_mapping(uintptr_t p) {
  for (mapping *m = g_mappings; m; m = m->next)
    if (p >= m->va && p < m->va + m->size) return m;
  return NULL;
}

static int valid_handle(fake_handle *h) {
  for (fake_handle *x = g_handles; x; x = x->next)
    if (x == h) return 1;
  return 0;
}

static void handle_maybe_free(fake_handle *h) {
  if (h->user_refs > 0 || h->mappings > 0) return;
  for (fake_handle **pp = &g_handles; *pp; pp = &(*pp)->next)
    if (*pp == h) {
      *pp = h->next;
      break;
    }
  if (h->prop.location.type == CU_MEM_LOCATION_TYPE_DEVICE)
    g_vram_used[h->prop.location.id] -= h->size;
  else
    g_host_vmm_used -= h->size;
  fallocate(g_arena_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, h->off, (off_t)h->size);
  h->magic = 0;
  free(h);
}

typedef enum { ACC_READ = 1, ACC_WRITE = 2, ACC_KERNEL = 4 } access_kind;

/* The device doing the access: cuMemcpyPeer's destination device, else the current context's. */
static int exec_device(void) {
  if (t_exec_dev >= 0) return t_exec_dev;
  CUcontext c = t_depth > 0 ? t_stack[t_depth - 1] : NULL;
  return c ? c->device : 0;
}

/* Can the device touch [p, p+n)? Returns CUDA_SUCCESS, CUDA_ERROR_INVALID_VALUE (no CUDA memory
** there) or CUDA_ERROR_ILLEGAL_ADDRESS (a VMM page without a mapping or without access).
** `host_ok` lets unknown addresses through as pageable host memory (unified cuMemcpy). */
static CUresult check_range(uintptr_t p, size_t n, access_kind acc, int host_ok) {
  if (n == 0) return CUDA_SUCCESS;
  if (p + n < p) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  CUresult rc = CUDA_SUCCESS;
  region *r = find_region(p);
  int dev = exec_device();
  if (!r) {
    rc = host_ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
  } else if (r->kind != R_RESERVE) {
    if (p + n > r->base + r->size) rc = CUDA_ERROR_INVALID_VALUE;
    /* A kernel reads another device's cuMemAlloc memory only with peer access enabled (copies
    ** between devices are the driver's business and always work). */
    else if ((acc & ACC_KERNEL) && r->kind == R_ALLOC && r->device != dev && !(g_peer[dev] >> r->device & 1))
      rc = CUDA_ERROR_ILLEGAL_ADDRESS;
  } else if (p + n > r->base + r->size) {
    rc = CUDA_ERROR_INVALID_VALUE;
  } else {
    uintptr_t at = p;
    while (at < p + n) {
      mapping *m = find_mapping(at);
      int need = (acc & ACC_WRITE) ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE : CU_MEM_ACCESS_FLAGS_PROT_READ;
      /* VMM memory: only the devices its access descriptors name, kernels and copies alike. */
      if (!m || (m->prot[dev] & need) != need) {
        rc = CUDA_ERROR_ILLEGAL_ADDRESS;
        break;
      }
      at = m->va + m->size;
    }
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

/* Kernels fault (CUDA_ERROR_ILLEGAL_ADDRESS) on anything that is not device-accessible. */
static CUresult check_kernel_range(uint64_t p, uint64_t n, access_kind acc) {
  CUresult rc = check_range((uintptr_t)p, (size_t)n, acc | ACC_KERNEL, 0);
  return rc == CUDA_ERROR_INVALID_VALUE ? CUDA_ERROR_ILLEGAL_ADDRESS : rc;
}

static void region_add(region *r) {
  r->next = g_regions;
  g_regions = r;
}

static void region_remove(region *r) {
  for (region **pp = &g_regions; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      return;
    }
}

/* ------------------------------------------------------------------------------------------
** Initialisation, version, devices
** ---------------------------------------------------------------------------------------- */

EXPORT CUresult cuInit(unsigned int flags) {
  COUNT();
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  if (!g_initialized && !g_init_error) {
    CUresult rc = configure();
    if (rc != CUDA_SUCCESS) g_init_error = rc;
    else g_initialized = 1;
  }
  CUresult rc = g_initialized ? CUDA_SUCCESS : g_init_error;
  pthread_mutex_unlock(&g_lock);
  return rc;
}

EXPORT CUresult cuDriverGetVersion(int *v) {
  COUNT();
  if (!v) return CUDA_ERROR_INVALID_VALUE;
  *v = FAKE_CUDA_DRIVER_VERSION;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGet(CUdevice *dev, int ordinal) {
  COUNT();
  NEED_INIT();
  if (!dev) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(ordinal)) return CUDA_ERROR_INVALID_DEVICE;
  *dev = ordinal;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetCount(int *count) {
  COUNT();
  NEED_INIT();
  if (!count) return CUDA_ERROR_INVALID_VALUE;
  *count = g_device_count;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
  COUNT();
  NEED_INIT();
  if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  snprintf(name, (size_t)len, "spillover fake GPU %d (CPU test double)", dev);
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
  COUNT();
  NEED_INIT();
  if (!bytes) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  *bytes = g_vram_total;
  return CUDA_SUCCESS;
}

/* The CUDA 2.0 entry point with a 32-bit count, kept because old callers dlsym it by this name. */
EXPORT CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev) {
  COUNT();
  NEED_INIT();
  if (!bytes) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  *bytes = g_vram_total > UINT_MAX ? UINT_MAX : (unsigned int)g_vram_total;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetAttribute(int *pi, int attrib, CUdevice dev) {
  COUNT();
  NEED_INIT();
  if (!pi) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  if (attrib < 1 || attrib >= CU_DEVICE_ATTRIBUTE_MAX) return CUDA_ERROR_INVALID_VALUE;
  int v = 0;
  switch (attrib) {
  case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: v = 1024; break;
  case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: v = 1024; break;
  case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: v = INT_MAX; break;
  case CU_DEVICE_ATTRIBUTE_WARP_SIZE: v = 32; break;
  case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: v = 132; break;
  case CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY: v = 1; break;
  case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS: v = 1; break;
  case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: v = 0x10 + dev; break;
  case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID: v = 0; break;
  case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID: v = 0; break;
  case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH: v = 5120; break;
  case CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT: v = 2; break;
  case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: v = 1; break;
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: v = 9; break;
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: v = 0; break;
  case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY: v = 1; break;
  case CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS: v = 1; break;
  case CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED: v = 1; break;
  case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: v = 1; break;
  case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED: v = 1; break;
  case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: v = 1; break;
  case CU_DEVICE_ATTRIBUTE_NUMA_CONFIG: v = 0; break;
  case CU_DEVICE_ATTRIBUTE_NUMA_ID: v = -1; break;
  case CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID: v = 0; break;
  case CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: v = !g_no_host_numa; break;
  case CU_DEVICE_ATTRIBUTE_HOST_NUMA_MEMORY_POOLS_SUPPORTED: v = !g_no_host_numa; break;
  case CU_DEVICE_ATTRIBUTE_HOST_MEMORY_POOLS_SUPPORTED: v = !g_no_host_numa; break;
  case CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: v = !g_no_host_numa; break;
  default: v = 0; break;
  }
  *pi = v;
  return CUDA_SUCCESS;
}

static void fill_uuid(CUuuid *uuid, CUdevice dev) {
  static const char base[16] = {'s', 'p', 'i', 'l', 'l', 'o', 'v', 'e', 'r', '-', 'f', 'a', 'k', 'e', 0, 0};
  memcpy(uuid->bytes, base, 16);
  uuid->bytes[15] = (char)dev;
}

EXPORT CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev) {
  COUNT();
  NEED_INIT();
  if (!uuid) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  fill_uuid(uuid, dev);
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev) {
  COUNT();
  NEED_INIT();
  if (!uuid) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  fill_uuid(uuid, dev);
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev) {
  COUNT();
  NEED_INIT();
  if (!pciBusId || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  snprintf(pciBusId, (size_t)len, "0000:%02x:00.0", 0x10 + dev);
  return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------------------------
** Contexts
** ---------------------------------------------------------------------------------------- */

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
  COUNT();
  NEED_INIT();
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  pthread_mutex_lock(&g_lock);
  g_primary[dev].refcount++;
  pthread_mutex_unlock(&g_lock);
  *pctx = &g_primary[dev];
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
  COUNT();
  NEED_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  pthread_mutex_lock(&g_lock);
  CUresult rc = CUDA_SUCCESS;
  if (g_primary[dev].refcount <= 0) rc = CUDA_ERROR_INVALID_CONTEXT;
  else g_primary[dev].refcount--;
  pthread_mutex_unlock(&g_lock);
  return rc;
}

EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev) {
  COUNT();
  NEED_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  pthread_mutex_lock(&g_lock);
  g_primary[dev].refcount = 0;
  pthread_mutex_unlock(&g_lock);
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active) {
  COUNT();
  NEED_INIT();
  if (!flags || !active) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  *flags = g_primary[dev].flags;
  *active = g_primary[dev].refcount > 0;
  return CUDA_SUCCESS;
}

static CUresult push_ctx(CUcontext c) {
  if (t_depth >= (int)(sizeof t_stack / sizeof t_stack[0])) return CUDA_ERROR_UNKNOWN;
  t_stack[t_depth++] = c;
  return CUDA_SUCCESS;
}

static CUresult ctx_create(CUcontext *pctx, unsigned int flags, CUdevice dev) {
  NEED_INIT();
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  struct CUctx_st *c = calloc(1, sizeof *c);
  if (!c) return CUDA_ERROR_OUT_OF_MEMORY;
  *c = (struct CUctx_st){CTX_MAGIC, dev, 0, 1, flags};
  *pctx = c;
  return push_ctx(c);
}

EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev) {
  COUNT();
  return ctx_create(pctx, flags, dev);
}

/* CUDA 13's cuCtxCreate: the params struct (exec affinity, CIG) is ignored by the fake. */
EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, void *ctxCreateParams, unsigned int flags, CUdevice dev) {
  COUNT();
  (void)ctxCreateParams;
  return ctx_create(pctx, flags, dev);
}

EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx) {
  COUNT();
  NEED_INIT();
  if (!ctx || !valid_ctx(ctx) || ctx->primary) return CUDA_ERROR_INVALID_CONTEXT;
  for (int i = 0; i < t_depth; i++)
    if (t_stack[i] == ctx) {
      memmove(&t_stack[i], &t_stack[i + 1], (size_t)(t_depth - i - 1) * sizeof(CUcontext));
      t_depth--;
      i--;
    }
  ctx->magic = 0;
  free(ctx);
  return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetCurrent(CUcontext *pctx) {
  COUNT();
  NEED_INIT();
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  *pctx = current_ctx();
  return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxSetCurrent(CUcontext ctx) {
  COUNT();
  NEED_INIT();
  if (ctx && !valid_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
  if (!ctx) {
    if (t_depth > 0) t_depth--;
    return CUDA_SUCCESS;
  }
  if (t_depth == 0) return push_ctx(ctx);
  t_stack[t_depth - 1] = ctx;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxPushCurrent_v2(CUcontext ctx) {
  COUNT();
  NEED_INIT();
  if (!valid_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
  return push_ctx(ctx);
}

EXPORT CUresult cuCtxPopCurrent_v2(CUcontext *pctx) {
  COUNT();
  NEED_INIT();
  if (t_depth == 0) return CUDA_ERROR_INVALID_CONTEXT;
  CUcontext c = t_stack[--t_depth];
  if (pctx) *pctx = c;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetDevice(CUdevice *dev) {
  COUNT();
  NEED_CTX(c);
  if (!dev) return CUDA_ERROR_INVALID_VALUE;
  *dev = c->device;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxSynchronize(void) {
  COUNT();
  NEED_CTX(c);
  (void)c;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxSynchronize_v2(CUcontext ctx) {
  COUNT();
  NEED_INIT();
  if (!ctx) ctx = current_ctx();
  if (!ctx || !valid_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version) {
  COUNT();
  NEED_INIT();
  if (!version) return CUDA_ERROR_INVALID_VALUE;
  if (!ctx) ctx = current_ctx();
  if (!ctx || !valid_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
  *version = 3020;
  return CUDA_SUCCESS;
}

/* Peer access, per device pair (the fake keeps no per-context state): kernels on the current
** device may then touch the peer's cuMemAlloc memory. VMM memory follows its access descriptors. */
EXPORT CUresult cuCtxEnablePeerAccess(CUcontext peer, unsigned int flags) {
  COUNT();
  NEED_CTX(c);
  if (!peer || !valid_ctx(peer)) return CUDA_ERROR_INVALID_CONTEXT;
  if (flags) return CUDA_ERROR_INVALID_VALUE;
  if (peer->device == c->device) return CUDA_ERROR_INVALID_DEVICE;
  pthread_mutex_lock(&g_lock);
  CUresult rc = (g_peer[c->device] >> peer->device & 1) ? CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED : CUDA_SUCCESS;
  g_peer[c->device] |= 1u << peer->device;
  pthread_mutex_unlock(&g_lock);
  return rc;
}

EXPORT CUresult cuCtxDisablePeerAccess(CUcontext peer) {
  COUNT();
  NEED_CTX(c);
  if (!peer || !valid_ctx(peer)) return CUDA_ERROR_INVALID_CONTEXT;
  pthread_mutex_lock(&g_lock);
  CUresult rc = (g_peer[c->device] >> peer->device & 1) ? CUDA_SUCCESS : CUDA_ERROR_PEER_ACCESS_NOT_ENABLED;
  g_peer[c->device] &= ~(1u << peer->device);
  pthread_mutex_unlock(&g_lock);
  return rc;
}

EXPORT CUresult cuDeviceCanAccessPeer(int *can, CUdevice dev, CUdevice peer) {
  COUNT();
  NEED_INIT();
  if (!can) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev) || !valid_device(peer)) return CUDA_ERROR_INVALID_DEVICE;
  *can = dev != peer;
  return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------------------------
** Linear device memory (cuMemAlloc family) and pinned host memory
** ---------------------------------------------------------------------------------------- */

static CUresult alloc_region(CUdeviceptr *dptr, size_t bytes, region_kind kind, int device, CUcontext ctx,
                             CUmemoryPool pool, int charge) {
  if (!dptr) return CUDA_ERROR_INVALID_VALUE;
  if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t map_size = (bytes + page - 1) / page * page;
  pthread_mutex_lock(&g_lock);
  if (charge && g_vram_used[device] + bytes > g_vram_total) {
    pthread_mutex_unlock(&g_lock);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  void *p = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  region *r = p == MAP_FAILED ? NULL : calloc(1, sizeof *r);
  if (!r) {
    if (p != MAP_FAILED) munmap(p, map_size);
    pthread_mutex_unlock(&g_lock);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  *r = (region){kind, (uintptr_t)p, bytes, map_size, device, ctx, g_next_buffer_id++, charge ? bytes : 0, pool, NULL};
  if (charge) g_vram_used[device] += bytes;
  region_add(r);
  pthread_mutex_unlock(&g_lock);
  *dptr = (CUdeviceptr)(uintptr_t)p;
  return CUDA_SUCCESS;
}

/* Frees a region starting exactly at p of one of the given kinds. */
static CUresult free_region(uintptr_t p, region_kind kind) {
  pthread_mutex_lock(&g_lock);
  region *r = find_region(p);
  if (!r || r->base != p || r->kind != kind) {
    pthread_mutex_unlock(&g_lock);
    return CUDA_ERROR_INVALID_VALUE;
  }
  region_remove(r);
  if (r->charged) g_vram_used[r->device] -= r->charged;
  pthread_mutex_unlock(&g_lock);
  munmap((void *)r->base, r->map_size);
  free(r);
  return CUDA_SUCCESS;
}

EXPORT CUresult cuMemGetInfo_v2(size_t *free_b, size_t *total_b) {
  COUNT();
  NEED_CTX(c);
  if (!free_b || !total_b) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  size_t used = g_vram_used[c->device];
  pthread_mutex_unlock(&g_lock);
  *total_b = g_vram_total;
  *free_b = used >= g_vram_total ? 0 : g_vram_total - used;
  return CUDA_SUCCESS;
}

/* The CUDA 2.0 entry point with 32-bit counts (clamped), kept for callers that dlsym it. */
EXPORT CUresult cuMemGetInfo(unsigned int *free_b, unsigned int *total_b) {
  COUNT();
  size_t f = 0, t = 0;
  if (!free_b || !total_b) return CUDA_ERROR_INVALID_VALUE;
  CUresult rc = cuMemGetInfo_v2(&f, &t);
  if (rc != CUDA_SUCCESS) return rc;
  *free_b = f > UINT_MAX ? UINT_MAX : (unsigned int)f;
  *total_b = t > UINT_MAX ? UINT_MAX : (unsigned int)t;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
  COUNT();
  NEED_CTX(c);
  return alloc_region(dptr, bytesize, R_ALLOC, c->device, c, NULL, 1);
}

EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t width, size_t height,
                                   unsigned int elementSize) {
  COUNT();
  NEED_CTX(c);
  if (!pPitch || width == 0 || height == 0) return CUDA_ERROR_INVALID_VALUE;
  if (elementSize != 4 && elementSize != 8 && elementSize != 16) return CUDA_ERROR_INVALID_VALUE;
  size_t pitch = (width + 511) / 512 * 512;
  CUresult rc = alloc_region(dptr, pitch * height, R_ALLOC, c->device, c, NULL, 1);
  if (rc == CUDA_SUCCESS) *pPitch = pitch;
  return rc;
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr) {
  COUNT();
  NEED_CTX(c);
  (void)c;
  if (dptr == 0) return CUDA_SUCCESS;
  return free_region((uintptr_t)dptr, R_ALLOC);
}

static CUresult stream_device(CUstream s, CUcontext *ctx_out) {
  if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
  CUcontext c = (s && s != CU_STREAM_LEGACY && s != CU_STREAM_PER_THREAD) ? s->ctx : current_ctx();
  if (!c || !valid_ctx(c)) return CUDA_ERROR_INVALID_CONTEXT;
  *ctx_out = c;
  return CUDA_SUCCESS;
}

static CUresult alloc_async(CUdeviceptr *dptr, size_t bytes, CUstream s) {
  NEED_INIT();
  CUcontext c;
  CUresult rc = stream_device(s, &c);
  if (rc != CUDA_SUCCESS) return rc;
  return alloc_region(dptr, bytes, R_ALLOC, c->device, c, &g_default_pool[c->device], 1);
}

EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytes, CUstream s) {
  COUNT();
  return alloc_async(dptr, bytes, s);
}

EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytes, CUstream s) {
  COUNT();
  return alloc_async(dptr, bytes, s);
}

static CUresult alloc_from_pool(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream s) {
  NEED_INIT();
  if (!pool || pool->magic != POOL_MAGIC) return CUDA_ERROR_INVALID_VALUE;
  CUcontext c;
  CUresult rc = stream_device(s, &c);
  if (rc != CUDA_SUCCESS) return rc;
  int on_device = pool->props.location.type == CU_MEM_LOCATION_TYPE_DEVICE;
  int dev = on_device ? pool->props.location.id : c->device;
  return alloc_region(dptr, bytes, on_device ? R_ALLOC : R_HOST, dev, c, pool, on_device);
}

EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream s) {
  COUNT();
  return alloc_from_pool(dptr, bytes, pool, s);
}

EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream s) {
  COUNT();
  return alloc_from_pool(dptr, bytes, pool, s);
}

static CUresult free_async(CUdeviceptr dptr, CUstream s) {
  NEED_INIT();
  if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
  if (dptr == 0) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  region *r = find_region((uintptr_t)dptr);
  region_kind k = r ? r->kind : R_ALLOC;
  pthread_mutex_unlock(&g_lock);
  return free_region((uintptr_t)dptr, k == R_HOST ? R_HOST : R_ALLOC);
}

EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream s) {
  COUNT();
  return free_async(dptr, s);
}

EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream s) {
  COUNT();
  return free_async(dptr, s);
}

EXPORT CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *props) {
  COUNT();
  NEED_INIT();
  if (!pool || !props) return CUDA_ERROR_INVALID_VALUE;
  if (props->allocType != CU_MEM_ALLOCATION_TYPE_PINNED) return CUDA_ERROR_INVALID_VALUE;
  CUmemLocationType lt = props->location.type;
  if (lt == CU_MEM_LOCATION_TYPE_DEVICE) {
    if (!valid_device(props->location.id)) return CUDA_ERROR_INVALID_VALUE;
  } else if (lt == CU_MEM_LOCATION_TYPE_HOST_NUMA || lt == CU_MEM_LOCATION_TYPE_HOST) {
    if (g_no_host_numa) return CUDA_ERROR_NOT_SUPPORTED;
  } else {
    return CUDA_ERROR_INVALID_VALUE;
  }
  struct CUmemPoolHandle_st *p = calloc(1, sizeof *p);
  if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
  p->magic = POOL_MAGIC;
  p->props = *props;
  *pool = p;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool) {
  COUNT();
  NEED_INIT();
  if (!pool || pool->magic != POOL_MAGIC || pool->is_default) return CUDA_ERROR_INVALID_VALUE;
  pool->magic = 0;
  free(pool);
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool, CUdevice dev) {
  COUNT();
  NEED_INIT();
  if (!pool) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  *pool = &g_default_pool[dev];
  return CUDA_SUCCESS;
}

static CUresult host_alloc(void **pp, size_t bytes) {
  NEED_CTX(c);
  if (!pp) return CUDA_ERROR_INVALID_VALUE;
  CUdeviceptr d = 0;
  CUresult rc = alloc_region(&d, bytes, R_HOST, c->device, c, NULL, 0);
  if (rc == CUDA_SUCCESS) *pp = (void *)(uintptr_t)d;
  return rc;
}

EXPORT CUresult cuMemAllocHost_v2(void **pp, size_t bytesize) {
  COUNT();
  return host_alloc(pp, bytesize);
}

EXPORT CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int flags) {
  COUNT();
  if (flags & ~0x7u) return CUDA_ERROR_INVALID_VALUE;
  return host_alloc(pp, bytesize);
}

EXPORT CUresult cuMemFreeHost(void *p) {
  COUNT();
  NEED_INIT();
  return free_region((uintptr_t)p, R_HOST);
}

EXPORT CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p, unsigned int flags) {
  COUNT();
  NEED_CTX(c);
  (void)c;
  if (!pdptr || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  region *r = find_region((uintptr_t)p);
  int ok = r && r->kind == R_HOST;
  pthread_mutex_unlock(&g_lock);
  if (!ok) return CUDA_ERROR_INVALID_VALUE;
  *pdptr = (CUdeviceptr)(uintptr_t)p;
  return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------------------------------
** Virtual memory management
** ---------------------------------------------------------------------------------------- */

static int location_ok(const CUmemLocation *loc, int allow_host) {
  if (loc->type == CU_MEM_LOCATION_TYPE_DEVICE) return valid_device(loc->id);
  if (allow_host && (loc->type == CU_MEM_LOCATION_TYPE_HOST_NUMA || loc->type == CU_MEM_LOCATION_TYPE_HOST))
    return loc->type == CU_MEM_LOCATION_TYPE_HOST || loc->id == 0;
  return 0;
}

EXPORT CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop, int option) {
  COUNT();
  NEED_INIT();
  if (!granularity || !prop) return CUDA_ERROR_INVALID_VALUE;
  if (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM && option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED)
    return CUDA_ERROR_INVALID_VALUE;
  if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED || !location_ok(&prop->location, 1))
    return CUDA_ERROR_INVALID_VALUE;
  *granularity = GRANULARITY;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
                                    unsigned long long flags) {
  COUNT();
  NEED_INIT();
  if (!ptr || size == 0 || size % GRANULARITY != 0 || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (alignment == 0) alignment = GRANULARITY;
  if (alignment & (alignment - 1)) return CUDA_ERROR_INVALID_VALUE;
  if (alignment < GRANULARITY) alignment = GRANULARITY;
  void *p = MAP_FAILED;
  if (addr && addr % alignment == 0)
    p = mmap((void *)(uintptr_t)addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) {
    size_t span = size + alignment;
    uint8_t *raw = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    uintptr_t aligned = ((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1);
    if (aligned > (uintptr_t)raw) munmap(raw, aligned - (uintptr_t)raw);
    uintptr_t end = (uintptr_t)raw + span;
    if (end > aligned + size) munmap((void *)(aligned + size), end - (aligned + size));
    p = (void *)aligned;
  }
  region *r = calloc(1, sizeof *r);
  if (!r) {
    munmap(p, size);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  pthread_mutex_lock(&g_lock);
  *r = (region){R_RESERVE, (uintptr_t)p, size, size, 0, NULL, g_next_buffer_id++, 0, NULL, NULL};
  region_add(r);
  pthread_mutex_unlock(&g_lock);
  *ptr = (CUdeviceptr)(uintptr_t)p;
  return CUDA_SUCCESS;
}

static void unmap_one(mapping *m) {
  mmap((void *)m->va, m->size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  for (mapping **pp = &g_mappings; *pp; pp = &(*pp)->next)
    if (*pp == m) {
      *pp = m->next;
      break;
    }
  m->h->mappings--;
  handle_maybe_free(m->h);
  free(m);
}

static unsigned long g_free_with_mappings;

EXPORT CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size) {
  COUNT();
  NEED_INIT();
  pthread_mutex_lock(&g_lock);
  region *r = find_region((uintptr_t)ptr);
  if (!r || r->kind != R_RESERVE || r->base != (uintptr_t)ptr || r->size != size) {
    pthread_mutex_unlock(&g_lock);
    return CUDA_ERROR_INVALID_VALUE;
  }
  /* The real driver's behaviour with mappings left is undocumented; the fake unmaps them and
  ** counts the event (fakecuda_free_with_mappings) so tests can insist it never happens. */
  for (mapping *m = g_mappings, *next; m; m = next) {
    next = m->next;
    if (m->res == r) {
      g_free_with_mappings++;
      unmap_one(m);
    }
  }
  region_remove(r);
  pthread_mutex_unlock(&g_lock);
  munmap((void *)r->base, r->size);
  free(r);
  return CUDA_SUCCESS;
}

static int arena_open(void) {
  if (g_arena_fd >= 0) return 1;
  int fd = memfd_create("fakecuda-physical", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (ftruncate(fd, ARENA_SIZE) != 0) {
    close(fd);
    return 0;
  }
  g_arena_fd = fd;
  return 1;
}

EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                            unsigned long long flags) {
  COUNT();
  NEED_INIT();
  if (!handle || !prop || size == 0 || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (size % GRANULARITY != 0) return CUDA_ERROR_INVALID_VALUE;
  if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED) return CUDA_ERROR_INVALID_VALUE;
  CUmemLocationType lt = prop->location.type;
  int on_device = lt == CU_MEM_LOCATION_TYPE_DEVICE;
  if (lt == CU_MEM_LOCATION_TYPE_HOST_NUMA || lt == CU_MEM_LOCATION_TYPE_HOST) {
    if (g_no_host_numa) return CUDA_ERROR_NOT_SUPPORTED;
    /* Driver 580 on the H100 machine refuses exportable host handles (POSIX_FD, as PyTorch's
    ** expandable segments ask for) with CUDA_ERROR_INVALID_VALUE (measured by the interposer). */
    if (prop->requestedHandleTypes != 0) return CUDA_ERROR_INVALID_VALUE;
  }
  if (!location_ok(&prop->location, 1)) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  if (on_device && g_vram_used[prop->location.id] + size > g_vram_total) {
    pthread_mutex_unlock(&g_lock);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  fake_handle *h = arena_open() ? calloc(1, sizeof *h) : NULL;
  if (!h) {
    pthread_mutex_unlock(&g_lock);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  h->magic = HANDLE_MAGIC;
  h->size = size;
  h->off = g_arena_next;
  g_arena_next += (off_t)size;
  h->prop = *prop;
  h->user_refs = 1;
  h->next = g_handles;
  g_handles = h;
  if (on_device) g_vram_used[prop->location.id] += size;
  else g_host_vmm_used += size;
  pthread_mutex_unlock(&g_lock);
  *handle = (CUmemGenericAllocationHandle)(uintptr_t)h;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
  COUNT();
  NEED_INIT();
  fake_handle *h = (fake_handle *)(uintptr_t)handle;
  pthread_mutex_lock(&g_lock);
  if (!valid_handle(h) || h->user_refs <= 0) {
    pthread_mutex_unlock(&g_lock);
    return CUDA_ERROR_INVALID_VALUE;
  }
  h->user_refs--;
  handle_maybe_free(h);
  pthread_mutex_unlock(&g_lock);
  return CUDA_SUCCESS;
}

EXPORT CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                         unsigned long long flags) {
  COUNT();
  NEED_INIT();
  fake_handle *h = (fake_handle *)(uintptr_t)handle;
  uintptr_t va = (uintptr_t)ptr;
  if (offset != 0 || flags != 0 || size == 0 || size % GRANULARITY || va % GRANULARITY)
    return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  CUresult rc = CUDA_SUCCESS;
  region *r = find_region(va);
  if (!valid_handle(h) || h->user_refs <= 0) rc = CUDA_ERROR_INVALID_HANDLE;
  else if (size > h->size) rc = CUDA_ERROR_INVALID_VALUE;
  else if (!r || r->kind != R_RESERVE || va + size > r->base + r->size) rc = CUDA_ERROR_INVALID_VALUE;
  else {
    for (mapping *m = g_mappings; m; m = m->next)
      if (m->va < va + size && va < m->va + m->size) rc = CUDA_ERROR_ALREADY_MAPPED;
  }
  mapping *m = NULL;
  if (rc == CUDA_SUCCESS) {
    m = calloc(1, sizeof *m);
    if (!m) rc = CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (rc == CUDA_SUCCESS &&
      mmap((void *)va, size, PROT_NONE, MAP_SHARED | MAP_FIXED, g_arena_fd, h->off) == MAP_FAILED) {
    free(m);
    rc = CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (rc == CUDA_SUCCESS) {
    *m = (mapping){va, size, h, {CU_MEM_ACCESS_FLAGS_PROT_NONE}, r, g_mappings};
    g_mappings = m;
    h->mappings++;
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

EXPORT CUresult cuMemUnmap(CUdeviceptr ptr, size_t size) {
  COUNT();
  NEED_INIT();
  uintptr_t va = (uintptr_t)ptr;
  if (size == 0) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  /* The range must consist of whole mappings: the driver cannot unmap part of one. */
  CUresult rc = CUDA_SUCCESS;
  uintptr_t at = va;
  while (at < va + size) {
    mapping *m = find_mapping(at);
    if (!m || m->va != at || m->va + m->size > va + size) {
      rc = CUDA_ERROR_INVALID_VALUE;
      break;
    }
    at = m->va + m->size;
  }
  if (rc == CUDA_SUCCESS) {
    at = va;
    while (at < va + size) {
      mapping *m = find_mapping(at);
      at = m->va + m->size;
      unmap_one(m);
    }
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

EXPORT CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count) {
  COUNT();
  NEED_INIT();
  uintptr_t va = (uintptr_t)ptr;
  if (!desc || count == 0 || size == 0) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < count; i++) {
    if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE || !valid_device(desc[i].location.id))
      return CUDA_ERROR_INVALID_DEVICE;
    int f = desc[i].flags;
    if (f != CU_MEM_ACCESS_FLAGS_PROT_NONE && f != CU_MEM_ACCESS_FLAGS_PROT_READ &&
        f != CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
      return CUDA_ERROR_INVALID_VALUE;
  }
  pthread_mutex_lock(&g_lock);
  CUresult rc = CUDA_SUCCESS;
  uintptr_t at = va;
  while (at < va + size) { /* every byte must be mapped */
    mapping *m = find_mapping(at);
    if (!m) {
      rc = CUDA_ERROR_INVALID_VALUE;
      break;
    }
    at = m->va + m->size;
  }
  /* Each named device gets its flags; the others keep theirs. The host mapping (the CPU doing the
  ** device's work) is as open as the most any device has. */
  for (at = va; rc == CUDA_SUCCESS && at < va + size;) {
    mapping *m = find_mapping(at);
    for (size_t i = 0; i < count; i++) m->prot[desc[i].location.id] = desc[i].flags;
    int most = 0;
    for (int d = 0; d < MAX_DEVICES; d++)
      if (m->prot[d] > most) most = m->prot[d];
    int os_prot = most == CU_MEM_ACCESS_FLAGS_PROT_READWRITE ? PROT_READ | PROT_WRITE
                  : most == CU_MEM_ACCESS_FLAGS_PROT_READ    ? PROT_READ
                                                              : PROT_NONE;
    if (mprotect((void *)m->va, m->size, os_prot) != 0) rc = CUDA_ERROR_INVALID_VALUE;
    at = m->va + m->size;
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

EXPORT CUresult cuMemGetAccess(unsigned long long *flags, const CUmemLocation *location, CUdeviceptr ptr) {
  COUNT();
  NEED_INIT();
  if (!flags || !location) return CUDA_ERROR_INVALID_VALUE;
  if (location->type != CU_MEM_LOCATION_TYPE_DEVICE || !valid_device(location->id))
    return CUDA_ERROR_INVALID_DEVICE;
  pthread_mutex_lock(&g_lock);
  mapping *m = find_mapping((uintptr_t)ptr);
  if (m) *flags = (unsigned long long)m->prot[location->id];
  pthread_mutex_unlock(&g_lock);
  return m ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *prop, CUmemGenericAllocationHandle handle) {
  COUNT();
  NEED_INIT();
  if (!prop) return CUDA_ERROR_INVALID_VALUE;
  fake_handle *h = (fake_handle *)(uintptr_t)handle;
  pthread_mutex_lock(&g_lock);
  int ok = valid_handle(h);
  if (ok) *prop = h->prop;
  pthread_mutex_unlock(&g_lock);
  return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* POSIX_FD export (type 1) of a handle created with that type: a dup of its memory file. */
EXPORT CUresult cuMemExportToShareableHandle(void *out, CUmemGenericAllocationHandle handle, int type,
                                             unsigned long long flags) {
  COUNT();
  NEED_INIT();
  if (!out || flags || type != 1) return CUDA_ERROR_INVALID_VALUE;
  fake_handle *h = (fake_handle *)(uintptr_t)handle;
  pthread_mutex_lock(&g_lock);
  int ok = valid_handle(h), exportable = ok && (h->prop.requestedHandleTypes & 1);
  int fd = exportable ? dup(g_arena_fd) : -1; /* the arena file: enough for a test double */
  pthread_mutex_unlock(&g_lock);
  if (!ok) return CUDA_ERROR_INVALID_VALUE;
  if (fd < 0) return CUDA_ERROR_NOT_SUPPORTED;
  *(int *)out = fd;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr) {
  COUNT();
  NEED_INIT();
  if (!handle) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  mapping *m = find_mapping((uintptr_t)addr);
  if (m) {
    m->h->user_refs++;
    *handle = (CUmemGenericAllocationHandle)(uintptr_t)m->h;
  }
  pthread_mutex_unlock(&g_lock);
  return m ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ------------------------------------------------------------------------------------------
** Copies and memsets (synchronous; the stream is validated, then ignored)
** ---------------------------------------------------------------------------------------- */

static CUresult do_copy(uintptr_t dst, uintptr_t src, size_t n, int dst_dev, int src_dev) {
  NEED_CTX(c);
  (void)c;
  if (n == 0) return CUDA_SUCCESS;
  if (!dst || !src) return CUDA_ERROR_INVALID_VALUE;
  CUresult rc = dst_dev ? check_range(dst, n, ACC_WRITE, dst_dev == 2) : CUDA_SUCCESS;
  if (rc == CUDA_SUCCESS && src_dev) rc = check_range(src, n, ACC_READ, src_dev == 2);
  if (rc != CUDA_SUCCESS) return rc;
  memmove((void *)dst, (const void *)src, n);
  return CUDA_SUCCESS;
}

/* dst_dev/src_dev: 1 = must be device memory, 2 = unified (host or device), 0 = host. */
EXPORT CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  COUNT();
  return do_copy((uintptr_t)dst, (uintptr_t)src, n, 2, 2);
}
EXPORT CUresult cuMemcpy_ptds(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  COUNT();
  return do_copy((uintptr_t)dst, (uintptr_t)src, n, 2, 2);
}
EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
  COUNT();
  return do_copy((uintptr_t)dst, (uintptr_t)src, n, 1, 0);
}
EXPORT CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dst, const void *src, size_t n) {
  COUNT();
  return do_copy((uintptr_t)dst, (uintptr_t)src, n, 1, 0);
}
EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
  COUNT();
  return do_copy((uintptr_t)dst, (uintptr_t)src, n, 0, 1);
}
EXPORT CUresult cuMemcpyDtoH_v2_ptds(void *dst, CUdeviceptr src, size_t n) {
  COUNT();
  return do_copy((uintptr_t)dst, (uintptr_t)src, n, 0, 1);
}
EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  COUNT();
  return do_copy((uintptr_t)dst, (uintptr_t)src, n, 1, 1);
}
EXPORT CUresult cuMemcpyDtoD_v2_ptds(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  COUNT();
  return do_copy((uintptr_t)dst, (uintptr_t)src, n, 1, 1);
}

/* cuMemcpyPeer: the destination's device does the copy (it must reach the source). */
static CUresult peer_copy(CUdeviceptr dst, CUcontext dc, CUdeviceptr src, CUcontext sc, size_t n) {
  NEED_INIT();
  if (!valid_ctx(dc) || !valid_ctx(sc)) return CUDA_ERROR_INVALID_CONTEXT;
  t_exec_dev = dc->device;
  CUresult rc = do_copy((uintptr_t)dst, (uintptr_t)src, n, 1, 1);
  t_exec_dev = -1;
  return rc;
}
EXPORT CUresult cuMemcpyPeer(CUdeviceptr dst, CUcontext dc, CUdeviceptr src, CUcontext sc, size_t n) {
  COUNT();
  return peer_copy(dst, dc, src, sc, n);
}
EXPORT CUresult cuMemcpyPeerAsync(CUdeviceptr dst, CUcontext dc, CUdeviceptr src, CUcontext sc, size_t n,
                                  CUstream s) {
  COUNT();
  NEED_INIT();
  if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
  return peer_copy(dst, dc, src, sc, n);
}

/* FAKE_CUDA_FAIL_ASYNC_COPY=1: every async copy fails (CUDA_ERROR_UNKNOWN), for callers' fallbacks. */
static int async_copies_fail(void) {
  const char *v = getenv("FAKE_CUDA_FAIL_ASYNC_COPY");
  return v && v[0] == '1';
}

#define ASYNC_COPY(name, dtype, stype, dkind, skind)                                           \
  EXPORT CUresult name(dtype dst, stype src, size_t n, CUstream s) {                           \
    COUNT();                                                                                   \
    NEED_INIT();                                                                               \
    if (async_copies_fail()) return CUDA_ERROR_UNKNOWN;                                        \
    if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;                                    \
    CUgraph g_ = capturing_into(s);                                                            \
    if (g_) return capture_copy(g_, (uintptr_t)dst, (uintptr_t)src, n, dkind, skind);          \
    return do_copy((uintptr_t)dst, (uintptr_t)src, n, dkind, skind);                           \
  }

ASYNC_COPY(cuMemcpyAsync, CUdeviceptr, CUdeviceptr, 2, 2)
ASYNC_COPY(cuMemcpyAsync_ptsz, CUdeviceptr, CUdeviceptr, 2, 2)
ASYNC_COPY(cuMemcpyHtoDAsync_v2, CUdeviceptr, const void *, 1, 0)
ASYNC_COPY(cuMemcpyHtoDAsync_v2_ptsz, CUdeviceptr, const void *, 1, 0)
ASYNC_COPY(cuMemcpyDtoHAsync_v2, void *, CUdeviceptr, 0, 1)
ASYNC_COPY(cuMemcpyDtoHAsync_v2_ptsz, void *, CUdeviceptr, 0, 1)
ASYNC_COPY(cuMemcpyDtoDAsync_v2, CUdeviceptr, CUdeviceptr, 1, 1)
ASYNC_COPY(cuMemcpyDtoDAsync_v2_ptsz, CUdeviceptr, CUdeviceptr, 1, 1)

static CUresult do_memset(CUdeviceptr dst, unsigned int value, size_t n, size_t elem) {
  NEED_CTX(c);
  (void)c;
  if (n == 0) return CUDA_SUCCESS;
  if (n > SIZE_MAX / elem) return CUDA_ERROR_INVALID_VALUE;
  if (elem == 4 && dst % 4) return CUDA_ERROR_INVALID_VALUE;
  CUresult rc = check_range((uintptr_t)dst, n * elem, ACC_WRITE, 0);
  if (rc != CUDA_SUCCESS) return rc;
  if (elem == 1) {
    memset((void *)(uintptr_t)dst, (int)(value & 0xff), n);
  } else {
    uint32_t *p = (uint32_t *)(uintptr_t)dst;
    for (size_t i = 0; i < n; i++) p[i] = value;
  }
  return CUDA_SUCCESS;
}

EXPORT CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) {
  COUNT();
  return do_memset(d, v, n, 1);
}
EXPORT CUresult cuMemsetD8_v2_ptds(CUdeviceptr d, unsigned char v, size_t n) {
  COUNT();
  return do_memset(d, v, n, 1);
}
EXPORT CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned int v, size_t n) {
  COUNT();
  return do_memset(d, v, n, 4);
}
EXPORT CUresult cuMemsetD32_v2_ptds(CUdeviceptr d, unsigned int v, size_t n) {
  COUNT();
  return do_memset(d, v, n, 4);
}

#define ASYNC_SET(name, vtype, elem)                                                           \
  EXPORT CUresult name(CUdeviceptr d, vtype v, size_t n, CUstream s) {                         \
    COUNT();                                                                                   \
    NEED_INIT();                                                                               \
    if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;                                    \
    CUgraph g_ = capturing_into(s);                                                            \
    if (g_) return capture_memset(g_, d, v, n, elem);                                          \
    return do_memset(d, v, n, elem);                                                           \
  }

ASYNC_SET(cuMemsetD8Async, unsigned char, 1)
ASYNC_SET(cuMemsetD8Async_ptsz, unsigned char, 1)
ASYNC_SET(cuMemsetD32Async, unsigned int, 4)
ASYNC_SET(cuMemsetD32Async_ptsz, unsigned int, 4)

/* ------------------------------------------------------------------------------------------
** Pointer queries, IPC
** ---------------------------------------------------------------------------------------- */

/* Fills one attribute for p; returns CUDA_ERROR_INVALID_VALUE if p is not CUDA memory. */
static CUresult pointer_attr(void *data, int attr, uintptr_t p) {
  region *r = find_region(p);
  mapping *m = r && r->kind == R_RESERVE ? find_mapping(p) : NULL;
  if (!r || (r->kind == R_RESERVE && !m && attr != CU_POINTER_ATTRIBUTE_MAPPED &&
             attr != CU_POINTER_ATTRIBUTE_RANGE_START_ADDR && attr != CU_POINTER_ATTRIBUTE_RANGE_SIZE))
    return CUDA_ERROR_INVALID_VALUE;
  int dev = m ? (m->h->prop.location.type == CU_MEM_LOCATION_TYPE_DEVICE ? m->h->prop.location.id : 0) : r->device;
  switch (attr) {
  case CU_POINTER_ATTRIBUTE_CONTEXT: *(CUcontext *)data = r->kind == R_RESERVE ? NULL : r->ctx; break;
  case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
    *(unsigned int *)data = r->kind == R_HOST ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE;
    break;
  case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: *(CUdeviceptr *)data = (CUdeviceptr)p; break;
  case CU_POINTER_ATTRIBUTE_HOST_POINTER:
    if (r->kind != R_HOST) return CUDA_ERROR_INVALID_VALUE;
    *(void **)data = (void *)p;
    break;
  case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS: *(int *)data = 0; break;
  case CU_POINTER_ATTRIBUTE_BUFFER_ID: *(unsigned long long *)data = r->buffer_id; break;
  case CU_POINTER_ATTRIBUTE_IS_MANAGED: *(int *)data = 0; break;
  case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *(int *)data = dev; break;
  case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE: *(int *)data = r->kind == R_ALLOC && !r->pool; break;
  case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR: *(CUdeviceptr *)data = (CUdeviceptr)r->base; break;
  case CU_POINTER_ATTRIBUTE_RANGE_SIZE: *(size_t *)data = r->size; break;
  case CU_POINTER_ATTRIBUTE_MAPPED: *(int *)data = r->kind != R_RESERVE || m != NULL; break;
  case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
    *(unsigned long long *)data = m ? (unsigned long long)m->h->prop.requestedHandleTypes : 0;
    break;
  case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE: *(int *)data = 0; break;
  case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS: *(unsigned long long *)data = m ? (unsigned long long)m->prot[exec_device()] : 3; break;
  case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE: *(CUmemoryPool *)data = r->pool; break;
  case CU_POINTER_ATTRIBUTE_MAPPING_SIZE: *(size_t *)data = m ? m->size : r->size; break;
  case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR: *(CUdeviceptr *)data = m ? m->va : r->base; break;
  case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID: *(unsigned long long *)data = r->buffer_id; break;
  default: return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

EXPORT CUresult cuPointerGetAttribute(void *data, int attribute, CUdeviceptr ptr) {
  COUNT();
  NEED_INIT();
  if (!data) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  CUresult rc = pointer_attr(data, attribute, (uintptr_t)ptr);
  pthread_mutex_unlock(&g_lock);
  return rc;
}

/* Unlike cuPointerGetAttribute, a pointer that is not CUDA memory is not an error: each
** attribute gets its zero value. */
EXPORT CUresult cuPointerGetAttributes(unsigned int n, int *attributes, void **data, CUdeviceptr ptr) {
  COUNT();
  NEED_INIT();
  if (!attributes || !data) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  CUresult rc = CUDA_SUCCESS;
  int known = find_region((uintptr_t)ptr) != NULL;
  for (unsigned int i = 0; i < n && rc == CUDA_SUCCESS; i++) {
    int a = attributes[i];
    if (a < CU_POINTER_ATTRIBUTE_CONTEXT || a > CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID) {
      rc = CUDA_ERROR_INVALID_VALUE;
      break;
    }
    if (!data[i]) continue;
    if (!known || pointer_attr(data[i], a, (uintptr_t)ptr) != CUDA_SUCCESS) {
      size_t sz = (a == CU_POINTER_ATTRIBUTE_MEMORY_TYPE || a == CU_POINTER_ATTRIBUTE_SYNC_MEMOPS ||
                   a == CU_POINTER_ATTRIBUTE_IS_MANAGED || a == CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL ||
                   a == CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE || a == CU_POINTER_ATTRIBUTE_MAPPED ||
                   a == CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE)
                      ? sizeof(int)
                      : sizeof(void *);
      memset(data[i], 0, sz);
      if (a == CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL) *(int *)data[i] = -2;
    }
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr) {
  COUNT();
  NEED_INIT();
  pthread_mutex_lock(&g_lock);
  region *r = find_region((uintptr_t)dptr);
  mapping *m = r && r->kind == R_RESERVE ? find_mapping((uintptr_t)dptr) : NULL;
  CUresult rc = CUDA_SUCCESS;
  if (!r || (r->kind == R_RESERVE && !m)) rc = CUDA_ERROR_NOT_FOUND;
  else if (m) {
    if (pbase) *pbase = m->va;
    if (psize) *psize = m->size;
  } else {
    if (pbase) *pbase = r->base;
    if (psize) *psize = r->size;
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

EXPORT CUresult cuIpcGetMemHandle(CUipcMemHandle *handle, CUdeviceptr dptr) {
  COUNT();
  NEED_CTX(c);
  (void)c;
  if (!handle) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  region *r = find_region((uintptr_t)dptr);
  int ok = r && r->kind == R_ALLOC && !r->pool;
  if (ok) {
    memset(handle, 0, sizeof *handle);
    memcpy(handle->reserved, "fakeipc", 7);
    memcpy(handle->reserved + 8, &r->base, sizeof r->base);
    memcpy(handle->reserved + 16, &r->size, sizeof r->size);
  }
  pthread_mutex_unlock(&g_lock);
  return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ------------------------------------------------------------------------------------------
** Streams, events, host functions
** ---------------------------------------------------------------------------------------- */

EXPORT CUresult cuStreamCreate(CUstream *ph, unsigned int flags) {
  COUNT();
  NEED_CTX(c);
  if (!ph || flags > 1) return CUDA_ERROR_INVALID_VALUE;
  struct CUstream_st *s = calloc(1, sizeof *s);
  if (!s) return CUDA_ERROR_OUT_OF_MEMORY;
  *s = (struct CUstream_st){STREAM_MAGIC, c, flags, NULL};
  *ph = s;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamCreateWithPriority(CUstream *ph, unsigned int flags, int priority) {
  COUNT();
  (void)priority;
  return cuStreamCreate(ph, flags);
}

EXPORT CUresult cuCtxGetStreamPriorityRange(int *least, int *greatest) {
  COUNT();
  NEED_CTX(c);
  (void)c;
  if (least) *least = 0; /* what an H100 or H200 reports */
  if (greatest) *greatest = -5;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamDestroy_v2(CUstream s) {
  COUNT();
  NEED_INIT();
  if (!s || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD || s->magic != STREAM_MAGIC)
    return CUDA_ERROR_INVALID_HANDLE;
  s->magic = 0;
  free(s);
  return CUDA_SUCCESS;
}

#define STREAM_NOOP(name)                                                                      \
  EXPORT CUresult name(CUstream s) {                                                           \
    COUNT();                                                                                   \
    NEED_INIT();                                                                               \
    return valid_stream(s) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;                         \
  }

STREAM_NOOP(cuStreamSynchronize)
STREAM_NOOP(cuStreamSynchronize_ptsz)
STREAM_NOOP(cuStreamQuery)
STREAM_NOOP(cuStreamQuery_ptsz)

static CUresult stream_wait_event(CUstream s, CUevent e, unsigned int flags) {
  NEED_INIT();
  if (!valid_stream(s) || !e || e->magic != EVENT_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
  return flags ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}
EXPORT CUresult cuStreamWaitEvent(CUstream s, CUevent e, unsigned int flags) {
  COUNT();
  return stream_wait_event(s, e, flags);
}
EXPORT CUresult cuStreamWaitEvent_ptsz(CUstream s, CUevent e, unsigned int flags) {
  COUNT();
  return stream_wait_event(s, e, flags);
}

EXPORT CUresult cuEventCreate(CUevent *ph, unsigned int flags) {
  COUNT();
  NEED_CTX(c);
  (void)c;
  if (!ph || (flags & ~0xfu)) return CUDA_ERROR_INVALID_VALUE;
  struct CUevent_st *e = calloc(1, sizeof *e);
  if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
  *e = (struct CUevent_st){EVENT_MAGIC, flags, 0, 0};
  *ph = e;
  return CUDA_SUCCESS;
}

static CUresult event_record(CUevent e, CUstream s) {
  NEED_INIT();
  if (!e || e->magic != EVENT_MAGIC || !valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
  e->recorded = 1;
  e->t_ms = now_ms();
  return CUDA_SUCCESS;
}
EXPORT CUresult cuEventRecord(CUevent e, CUstream s) {
  COUNT();
  return event_record(e, s);
}
EXPORT CUresult cuEventRecord_ptsz(CUevent e, CUstream s) {
  COUNT();
  return event_record(e, s);
}

EXPORT CUresult cuEventQuery(CUevent e) {
  COUNT();
  NEED_INIT();
  return e && e->magic == EVENT_MAGIC ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

EXPORT CUresult cuEventSynchronize(CUevent e) {
  COUNT();
  NEED_INIT();
  return e && e->magic == EVENT_MAGIC ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

static CUresult elapsed(float *ms, CUevent a, CUevent b) {
  NEED_INIT();
  if (!ms) return CUDA_ERROR_INVALID_VALUE;
  if (!a || !b || a->magic != EVENT_MAGIC || b->magic != EVENT_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
  if ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING) return CUDA_ERROR_INVALID_HANDLE;
  if (!a->recorded || !b->recorded) return CUDA_ERROR_INVALID_HANDLE;
  *ms = (float)(b->t_ms - a->t_ms);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b) {
  COUNT();
  return elapsed(ms, a, b);
}
EXPORT CUresult cuEventElapsedTime_v2(float *ms, CUevent a, CUevent b) {
  COUNT();
  return elapsed(ms, a, b);
}

EXPORT CUresult cuEventDestroy_v2(CUevent e) {
  COUNT();
  NEED_INIT();
  if (!e || e->magic != EVENT_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
  e->magic = 0;
  free(e);
  return CUDA_SUCCESS;
}

static CUresult host_func(CUstream s, CUhostFn fn, void *user) {
  NEED_INIT();
  if (!fn) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
  fn(user);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuLaunchHostFunc(CUstream s, CUhostFn fn, void *user) {
  COUNT();
  return host_func(s, fn, user);
}
EXPORT CUresult cuLaunchHostFunc_ptsz(CUstream s, CUhostFn fn, void *user) {
  COUNT();
  return host_func(s, fn, user);
}

/* ------------------------------------------------------------------------------------------
** Modules and kernels (the demo's kernels, run on the CPU)
** ---------------------------------------------------------------------------------------- */

static CUresult module_load(CUmodule *mod, const void *image) {
  NEED_CTX(c);
  (void)c;
  if (!mod || !image) return CUDA_ERROR_INVALID_VALUE;
  struct CUmod_st *m = calloc(1, sizeof *m);
  if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
  *m = (struct CUmod_st){MODULE_MAGIC, 1};
  *mod = m;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleLoadData(CUmodule *mod, const void *image) {
  COUNT();
  return module_load(mod, image);
}

EXPORT CUresult cuModuleLoadDataEx(CUmodule *mod, const void *image, unsigned int n, CUjit_option *opts, void **vals) {
  COUNT();
  if (n > 0 && (!opts || !vals)) return CUDA_ERROR_INVALID_VALUE;
  return module_load(mod, image);
}

EXPORT CUresult cuModuleUnload(CUmodule mod) {
  COUNT();
  NEED_INIT();
  if (!mod || mod->magic != MODULE_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
  /* Functions keep pointing at the dead module so a launch through them is caught. */
  mod->magic = 0;
  mod->loaded = 0;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuModuleGetFunction(CUfunction *fn, CUmodule mod, const char *name) {
  COUNT();
  NEED_INIT();
  if (!fn || !name) return CUDA_ERROR_INVALID_VALUE;
  if (!mod || mod->magic != MODULE_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
  static const struct {
    const char *name;
    kernel_id id;
    int nparams;
  } known[] = {{SPILL_KERNEL_FILL, K_FILL, 4},
               {SPILL_KERNEL_VERIFY, K_VERIFY, 5},
               {SPILL_KERNEL_VERIFY_CONST, K_VERIFY_CONST, 4},
               {SPILL_KERNEL_READ, K_READ, 3},
               {SP_STAGE_KERNEL_HASH, K_STAGE_HASH, 3},
               {SP_STAGE_KERNEL_WRITEBACK, K_STAGE_WRITEBACK, 5},
               {SP_STAGE_KERNEL_COPY, K_STAGE_COPY, 4}};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp(known[i].name, name) == 0) {
      struct CUfunc_st *f = calloc(1, sizeof *f);
      if (!f) return CUDA_ERROR_OUT_OF_MEMORY;
      *f = (struct CUfunc_st){FUNC_MAGIC, mod, known[i].id, known[i].nparams};
      *fn = f;
      return CUDA_SUCCESS;
    }
  return CUDA_ERROR_NOT_FOUND;
}

EXPORT CUresult cuFuncGetParamInfo(CUfunction f, size_t index, size_t *offset, size_t *size) {
  COUNT();
  NEED_INIT();
  if (!f || f->magic != FUNC_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
  if (index >= (size_t)f->nparams) return CUDA_ERROR_INVALID_VALUE;
  if (offset) *offset = index * 8;
  if (size) *size = 8;
  return CUDA_SUCCESS;
}

static CUresult run_kernel(CUfunction f, const uint64_t *a) {
  CUresult rc = CUDA_SUCCESS;
  uint64_t n = a[1];
  if (n > UINT64_MAX / 8) return CUDA_ERROR_ILLEGAL_ADDRESS;
  switch (f->id) {
  case K_FILL: {
    if ((rc = check_kernel_range(a[0], n * 8, ACC_WRITE)) != CUDA_SUCCESS) return rc;
    uint64_t *buf = (uint64_t *)(uintptr_t)a[0];
    for (uint64_t i = 0; i < n; i++) buf[i] = spill_pattern(a[2], a[3] + i);
    break;
  }
  case K_VERIFY: {
    if ((rc = check_kernel_range(a[0], n * 8, ACC_READ)) != CUDA_SUCCESS) return rc;
    if ((rc = check_kernel_range(a[4], 8, ACC_WRITE)) != CUDA_SUCCESS) return rc;
    const uint64_t *buf = (const uint64_t *)(uintptr_t)a[0];
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) bad += buf[i] != spill_pattern(a[2], a[3] + i);
    *(uint64_t *)(uintptr_t)a[4] += bad;
    break;
  }
  case K_VERIFY_CONST: {
    if ((rc = check_kernel_range(a[0], n * 8, ACC_READ)) != CUDA_SUCCESS) return rc;
    if ((rc = check_kernel_range(a[3], 8, ACC_WRITE)) != CUDA_SUCCESS) return rc;
    const uint64_t *buf = (const uint64_t *)(uintptr_t)a[0];
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) bad += buf[i] != a[2];
    *(uint64_t *)(uintptr_t)a[3] += bad;
    break;
  }
  case K_STAGE_HASH:      /* (slot, npages, hashes): the streaming engine's page hashes */
  case K_STAGE_WRITEBACK: { /* (slot, dst, npages, hashes, written): changed pages copied to dst */
    int wb = f->id == K_STAGE_WRITEBACK;
    uint64_t npages = wb ? a[2] : a[1], words = SP_STAGE_PAGE_WORDS, *hashes = (uint64_t *)(uintptr_t)(wb ? a[3] : a[2]);
    if (npages > UINT64_MAX / (words * 8)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    if ((rc = check_kernel_range(a[0], npages * words * 8, ACC_READ)) != CUDA_SUCCESS) return rc;
    if ((rc = check_kernel_range((uint64_t)(uintptr_t)hashes, npages * 8, wb ? ACC_READ : ACC_WRITE)) != CUDA_SUCCESS)
      return rc;
    if (wb && (rc = check_kernel_range(a[4], 8, ACC_WRITE)) != CUDA_SUCCESS) return rc;
    for (uint64_t p = 0; p < npages; p++) {
      const uint64_t *page = (const uint64_t *)(uintptr_t)a[0] + p * words;
      uint64_t h = 0;
      for (uint64_t i = 0; i < words; i++) h += sp_stage_term(page[i], i);
      if (!wb) {
        hashes[p] = h;
        continue;
      }
      if (h == hashes[p]) continue;
      if ((rc = check_kernel_range(a[1] + p * words * 8, words * 8, ACC_WRITE)) != CUDA_SUCCESS) return rc;
      memcpy((uint64_t *)(uintptr_t)a[1] + p * words, page, words * 8);
      *(uint64_t *)(uintptr_t)a[4] += 1;
    }
    break;
  }
  case K_STAGE_COPY: { /* (dst, src, npages, hashes): copy, and add each page's hash */
    uint64_t npages = a[2], words = SP_STAGE_PAGE_WORDS, *hashes = (uint64_t *)(uintptr_t)a[3];
    if (npages > UINT64_MAX / (words * 8)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    if ((rc = check_kernel_range(a[1], npages * words * 8, ACC_READ)) != CUDA_SUCCESS) return rc;
    if ((rc = check_kernel_range(a[0], npages * words * 8, ACC_WRITE)) != CUDA_SUCCESS) return rc;
    if ((rc = check_kernel_range(a[3], npages * 8, ACC_WRITE)) != CUDA_SUCCESS) return rc;
    memcpy((void *)(uintptr_t)a[0], (const void *)(uintptr_t)a[1], npages * words * 8);
    for (uint64_t p = 0; p < npages; p++) {
      const uint64_t *page = (const uint64_t *)(uintptr_t)a[0] + p * words;
      uint64_t h = 0;
      for (uint64_t i = 0; i < words; i++) h += sp_stage_term(page[i], i);
      hashes[p] += h;
    }
    break;
  }
  case K_READ: {
    if ((rc = check_kernel_range(a[0], n * 8, ACC_READ)) != CUDA_SUCCESS) return rc;
    if ((rc = check_kernel_range(a[2], 8, ACC_WRITE)) != CUDA_SUCCESS) return rc;
    const uint64_t *buf = (const uint64_t *)(uintptr_t)a[0];
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) sum += buf[i];
    *(uint64_t *)(uintptr_t)a[2] += sum;
    break;
  }
  }
  return CUDA_SUCCESS;
}

static CUresult launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                       unsigned shmem, CUstream s, void **params, void **extra) {
  NEED_CTX(c);
  (void)c;
  if (!f || f->magic != FUNC_MAGIC || !f->mod || f->mod->magic != MODULE_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
  if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
  if (!gx || !gy || !gz || !bx || !by || !bz || (unsigned long long)bx * by * bz > 1024) return CUDA_ERROR_INVALID_VALUE;
  uint64_t args[8] = {0};
  if (params) {
    for (int i = 0; i < f->nparams; i++) {
      if (!params[i]) return CUDA_ERROR_INVALID_VALUE;
      memcpy(&args[i], params[i], 8);
    }
  } else if (extra) {
    const uint8_t *buf = NULL;
    size_t len = 0;
    for (int i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
      if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) buf = extra[i + 1];
      else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE) len = *(size_t *)extra[i + 1];
      else return CUDA_ERROR_INVALID_VALUE;
    }
    if (!buf || len < (size_t)f->nparams * 8) return CUDA_ERROR_INVALID_VALUE;
    memcpy(args, buf, (size_t)f->nparams * 8);
  } else {
    return CUDA_ERROR_INVALID_VALUE;
  }
  CUgraph g = capturing_into(s);
  if (g) {
    unsigned dims[7] = {gx, gy, gz, bx, by, bz, shmem};
    return capture_kernel(g, f, dims, args);
  }
  return run_kernel(f, args);
}

EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                               unsigned bz, unsigned shmem, CUstream s, void **params, void **extra) {
  COUNT();
  return launch(f, gx, gy, gz, bx, by, bz, shmem, s, params, extra);
}

EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                    unsigned bz, unsigned shmem, CUstream s, void **params, void **extra) {
  COUNT();
  return launch(f, gx, gy, gz, bx, by, bz, shmem, s, params, extra);
}

/* ------------------------------------------------------------------------------------------
** Graphs: a graph is its nodes in creation order (a valid topological order, since a node's
** dependencies exist before it), and a launch runs them in that order, synchronously, like the
** launches and copies they stand for. Kernel nodes keep copies of their 8-byte argument values;
** child graphs and executable graphs are deep copies. Stream capture records kernel launches,
** async copies and async memsets (and graph launches, as child graphs) instead of running them.
** Dependencies are validated and otherwise ignored.
** ---------------------------------------------------------------------------------------- */

struct CUgraphNode_st {
  uint32_t magic;
  CUgraphNodeType type;
  CUfunction fn; /* kernel */
  unsigned dims[7]; /* grid xyz, block xyz, shared bytes */
  uint64_t args[8];
  void *argp[8]; /* &args[i]: the kernelParams cuGraphKernelNodeGetParams hands out */
  CUDA_MEMCPY3D copy;
  CUDA_MEMSET_NODE_PARAMS set;
  CUgraph child; /* owned by the node */
};

struct CUgraph_st {
  uint32_t magic;
  CUgraphNode *nodes;
  size_t n, cap;
};

struct CUgraphExec_st {
  uint32_t magic;
  CUgraph g;          /* its own copy */
  CUgraphNode *from;  /* from[i]: the node of the instantiating graph that g->nodes[i] copies */
};

static int valid_graph(CUgraph g) { return g && g->magic == GRAPH_MAGIC; }
static int valid_node(CUgraphNode n) { return n && n->magic == NODE_MAGIC; }
static int valid_exec(CUgraphExec e) { return e && e->magic == EXEC_MAGIC; }

static CUgraph graph_new(void) {
  CUgraph g = calloc(1, sizeof(*g));
  if (g) g->magic = GRAPH_MAGIC;
  return g;
}

static void graph_free(CUgraph g) {
  if (!g) return;
  for (size_t i = 0; i < g->n; i++) {
    graph_free(g->nodes[i]->child);
    g->nodes[i]->magic = 0;
    free(g->nodes[i]);
  }
  free(g->nodes);
  g->magic = 0;
  free(g);
}

static CUgraph graph_clone(CUgraph g);

/* Appends a copy of *proto (its child graph cloned) to g; NULL when out of memory. */
static CUgraphNode node_add(CUgraph g, const struct CUgraphNode_st *proto) {
  if (g->n == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 16;
    CUgraphNode *v = realloc(g->nodes, cap * sizeof(*v));
    if (!v) return NULL;
    g->nodes = v;
    g->cap = cap;
  }
  CUgraphNode n = malloc(sizeof(*n));
  if (!n) return NULL;
  *n = *proto;
  n->magic = NODE_MAGIC;
  for (int i = 0; i < 8; i++) n->argp[i] = &n->args[i];
  n->child = NULL;
  if (proto->child && !(n->child = graph_clone(proto->child))) {
    free(n);
    return NULL;
  }
  g->nodes[g->n++] = n;
  return n;
}

static CUgraph graph_clone(CUgraph g) {
  CUgraph c = graph_new();
  for (size_t i = 0; c && i < g->n; i++)
    if (!node_add(c, g->nodes[i])) {
      graph_free(c);
      c = NULL;
    }
  return c;
}

static CUresult deps_ok(CUgraph g, const CUgraphNode *deps, size_t ndeps) {
  if (!valid_graph(g) || (ndeps && !deps)) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < ndeps; i++)
    if (!valid_node(deps[i])) return CUDA_ERROR_INVALID_VALUE;
  return CUDA_SUCCESS;
}

/* Kernel arguments as the fake's launches take them: nparams 8-byte values. */
static CUresult kernel_args(CUfunction f, void **params, void **extra, uint64_t *args) {
  if (!f || f->magic != FUNC_MAGIC || (params && extra)) return CUDA_ERROR_INVALID_VALUE;
  memset(args, 0, 8 * sizeof(*args));
  if (params) {
    for (int i = 0; i < f->nparams; i++) {
      if (!params[i]) return CUDA_ERROR_INVALID_VALUE;
      memcpy(&args[i], params[i], 8);
    }
    return CUDA_SUCCESS;
  }
  const uint8_t *buf = NULL;
  size_t len = 0;
  for (int i = 0; extra && extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
    if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) buf = extra[i + 1];
    else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE) len = *(size_t *)extra[i + 1];
    else return CUDA_ERROR_INVALID_VALUE;
  }
  if (!buf || len < (size_t)f->nparams * 8) return CUDA_ERROR_INVALID_VALUE;
  memcpy(args, buf, (size_t)f->nparams * 8);
  return CUDA_SUCCESS;
}

static CUresult kernel_node_set(CUgraphNode n, CUfunction f, const unsigned *dims, void **params, void **extra) {
  uint64_t args[8];
  CUresult rc = kernel_args(f, params, extra, args);
  if (rc != CUDA_SUCCESS) return rc;
  n->fn = f;
  memcpy(n->dims, dims, sizeof(n->dims));
  memcpy(n->args, args, sizeof(args));
  return CUDA_SUCCESS;
}

static CUresult graph_run(CUgraph g) {
  for (size_t i = 0; i < g->n; i++) {
    CUgraphNode n = g->nodes[i];
    CUresult rc = CUDA_SUCCESS;
    switch (n->type) {
    case CU_GRAPH_NODE_TYPE_KERNEL:
      rc = n->fn->mod && n->fn->mod->magic == MODULE_MAGIC ? run_kernel(n->fn, n->args) : CUDA_ERROR_INVALID_HANDLE;
      break;
    case CU_GRAPH_NODE_TYPE_MEMCPY: {
      const CUDA_MEMCPY3D *c = &n->copy;
      uintptr_t src = c->srcMemoryType == CU_MEMORYTYPE_HOST ? (uintptr_t)c->srcHost : (uintptr_t)c->srcDevice;
      uintptr_t dst = c->dstMemoryType == CU_MEMORYTYPE_HOST ? (uintptr_t)c->dstHost : (uintptr_t)c->dstDevice;
      int skind = c->srcMemoryType == CU_MEMORYTYPE_HOST ? 0 : c->srcMemoryType == CU_MEMORYTYPE_DEVICE ? 1 : 2;
      int dkind = c->dstMemoryType == CU_MEMORYTYPE_HOST ? 0 : c->dstMemoryType == CU_MEMORYTYPE_DEVICE ? 1 : 2;
      rc = do_copy(dst + c->dstXInBytes, src + c->srcXInBytes, c->WidthInBytes, dkind, skind);
      break;
    }
    case CU_GRAPH_NODE_TYPE_MEMSET:
      for (size_t r = 0; r < n->set.height && rc == CUDA_SUCCESS; r++)
        rc = do_memset(n->set.dst + r * n->set.pitch, n->set.value, n->set.width, n->set.elementSize);
      break;
    case CU_GRAPH_NODE_TYPE_GRAPH: rc = graph_run(n->child); break;
    default: break;
    }
    if (rc != CUDA_SUCCESS) return rc;
  }
  return CUDA_SUCCESS;
}

/* ---- stream capture ---- */

static CUgraph capturing_into(CUstream s) {
  return s && s != CU_STREAM_LEGACY && s != CU_STREAM_PER_THREAD ? s->capture : NULL;
}

static CUresult capture_kernel(CUgraph g, CUfunction f, const unsigned dims[7], const uint64_t *args) {
  struct CUgraphNode_st proto = {.type = CU_GRAPH_NODE_TYPE_KERNEL, .fn = f};
  memcpy(proto.dims, dims, sizeof(proto.dims));
  memcpy(proto.args, args, sizeof(proto.args));
  return node_add(g, &proto) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

static CUresult capture_copy(CUgraph g, uintptr_t dst, uintptr_t src, size_t n, int dkind, int skind) {
  static const int type[3] = {CU_MEMORYTYPE_HOST, CU_MEMORYTYPE_DEVICE, CU_MEMORYTYPE_UNIFIED};
  struct CUgraphNode_st proto = {.type = CU_GRAPH_NODE_TYPE_MEMCPY};
  CUDA_MEMCPY3D *c = &proto.copy;
  c->srcMemoryType = type[skind];
  c->dstMemoryType = type[dkind];
  if (skind) c->srcDevice = (CUdeviceptr)src;
  else c->srcHost = (const void *)src;
  if (dkind) c->dstDevice = (CUdeviceptr)dst;
  else c->dstHost = (void *)dst;
  c->WidthInBytes = n;
  c->Height = c->Depth = 1;
  return node_add(g, &proto) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

static CUresult capture_memset(CUgraph g, CUdeviceptr dst, unsigned int value, size_t n, unsigned int elem) {
  struct CUgraphNode_st proto = {.type = CU_GRAPH_NODE_TYPE_MEMSET};
  proto.set = (CUDA_MEMSET_NODE_PARAMS){dst, 0, value, elem, n, 1};
  return node_add(g, &proto) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

static CUresult begin_capture(CUstream s, int mode) {
  NEED_INIT();
  if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
  if (mode < CU_STREAM_CAPTURE_MODE_GLOBAL || mode > CU_STREAM_CAPTURE_MODE_RELAXED) return CUDA_ERROR_INVALID_VALUE;
  if (!s || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  if (s->capture) return CUDA_ERROR_ILLEGAL_STATE;
  return (s->capture = graph_new()) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
EXPORT CUresult cuStreamBeginCapture_v2(CUstream s, int mode) {
  COUNT();
  return begin_capture(s, mode);
}
EXPORT CUresult cuStreamBeginCapture_v2_ptsz(CUstream s, int mode) {
  COUNT();
  return begin_capture(s, mode);
}

static CUresult end_capture(CUstream s, CUgraph *out) {
  NEED_INIT();
  if (!out) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
  CUgraph g = capturing_into(s);
  if (!g) return CUDA_ERROR_ILLEGAL_STATE;
  s->capture = NULL;
  *out = g;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamEndCapture(CUstream s, CUgraph *out) {
  COUNT();
  return end_capture(s, out);
}
EXPORT CUresult cuStreamEndCapture_ptsz(CUstream s, CUgraph *out) {
  COUNT();
  return end_capture(s, out);
}

static CUresult is_capturing(CUstream s, int *status) {
  NEED_INIT();
  if (!status) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
  *status = capturing_into(s) ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamIsCapturing(CUstream s, int *status) {
  COUNT();
  return is_capturing(s, status);
}
EXPORT CUresult cuStreamIsCapturing_ptsz(CUstream s, int *status) {
  COUNT();
  return is_capturing(s, status);
}

/* ---- building and reading graphs ---- */

EXPORT CUresult cuGraphCreate(CUgraph *out, unsigned int flags) {
  COUNT();
  NEED_INIT();
  if (!out || flags) return CUDA_ERROR_INVALID_VALUE;
  return (*out = graph_new()) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

EXPORT CUresult cuGraphDestroy(CUgraph g) {
  COUNT();
  NEED_INIT();
  if (!valid_graph(g)) return CUDA_ERROR_INVALID_VALUE;
  graph_free(g);
  return CUDA_SUCCESS;
}

static CUresult add_kernel_node(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, size_t ndeps, CUfunction f,
                                const unsigned *dims, void **params, void **extra) {
  NEED_INIT();
  CUresult rc = deps_ok(g, deps, ndeps);
  if (rc != CUDA_SUCCESS || !out) return rc != CUDA_SUCCESS ? rc : CUDA_ERROR_INVALID_VALUE;
  struct CUgraphNode_st proto = {.type = CU_GRAPH_NODE_TYPE_KERNEL};
  if ((rc = kernel_node_set(&proto, f, dims, params, extra)) != CUDA_SUCCESS) return rc;
  return (*out = node_add(g, &proto)) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

#define KDIMS(p) {(p)->gridDimX, (p)->gridDimY, (p)->gridDimZ, (p)->blockDimX, (p)->blockDimY, (p)->blockDimZ, (p)->sharedMemBytes}

EXPORT CUresult cuGraphAddKernelNode(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, size_t ndeps,
                                     const CUDA_KERNEL_NODE_PARAMS_v1 *p) {
  COUNT();
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  unsigned dims[7] = KDIMS(p);
  return add_kernel_node(out, g, deps, ndeps, p->func, dims, p->kernelParams, p->extra);
}

EXPORT CUresult cuGraphAddKernelNode_v2(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, size_t ndeps,
                                        const CUDA_KERNEL_NODE_PARAMS_v2 *p) {
  COUNT();
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  unsigned dims[7] = KDIMS(p);
  return add_kernel_node(out, g, deps, ndeps, p->func ? p->func : (CUfunction)(void *)p->kern, dims, p->kernelParams,
                         p->extra);
}

EXPORT CUresult cuGraphAddChildGraphNode(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, size_t ndeps,
                                         CUgraph child) {
  COUNT();
  NEED_INIT();
  CUresult rc = deps_ok(g, deps, ndeps);
  if (rc != CUDA_SUCCESS) return rc;
  if (!out || !valid_graph(child) || child == g) return CUDA_ERROR_INVALID_VALUE;
  struct CUgraphNode_st proto = {.type = CU_GRAPH_NODE_TYPE_GRAPH, .child = child}; /* node_add clones it */
  return (*out = node_add(g, &proto)) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

EXPORT CUresult cuGraphGetNodes(CUgraph g, CUgraphNode *nodes, size_t *n) {
  COUNT();
  NEED_INIT();
  if (!valid_graph(g) || !n) return CUDA_ERROR_INVALID_VALUE;
  if (!nodes) {
    *n = g->n;
    return CUDA_SUCCESS;
  }
  for (size_t i = 0; i < *n; i++) nodes[i] = i < g->n ? g->nodes[i] : NULL;
  if (*n > g->n) *n = g->n;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphNodeGetType(CUgraphNode n, CUgraphNodeType *type) {
  COUNT();
  NEED_INIT();
  if (!valid_node(n) || !type) return CUDA_ERROR_INVALID_VALUE;
  *type = n->type;
  return CUDA_SUCCESS;
}

static CUresult kernel_node(CUgraphNode n) {
  NEED_INIT();
  return valid_node(n) && n->type == CU_GRAPH_NODE_TYPE_KERNEL ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

#define KPARAMS(p, n)                                                                          \
  do {                                                                                         \
    (p)->func = (n)->fn;                                                                       \
    (p)->gridDimX = (n)->dims[0], (p)->gridDimY = (n)->dims[1], (p)->gridDimZ = (n)->dims[2];  \
    (p)->blockDimX = (n)->dims[3], (p)->blockDimY = (n)->dims[4], (p)->blockDimZ = (n)->dims[5]; \
    (p)->sharedMemBytes = (n)->dims[6];                                                        \
    (p)->kernelParams = (n)->argp;                                                             \
    (p)->extra = NULL;                                                                         \
  } while (0)

EXPORT CUresult cuGraphKernelNodeGetParams(CUgraphNode n, CUDA_KERNEL_NODE_PARAMS_v1 *p) {
  COUNT();
  CUresult rc = kernel_node(n);
  if (rc != CUDA_SUCCESS || !p) return rc != CUDA_SUCCESS ? rc : CUDA_ERROR_INVALID_VALUE;
  KPARAMS(p, n);
  return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphKernelNodeGetParams_v2(CUgraphNode n, CUDA_KERNEL_NODE_PARAMS_v2 *p) {
  COUNT();
  CUresult rc = kernel_node(n);
  if (rc != CUDA_SUCCESS || !p) return rc != CUDA_SUCCESS ? rc : CUDA_ERROR_INVALID_VALUE;
  KPARAMS(p, n);
  p->kern = NULL;
  p->ctx = NULL;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphMemcpyNodeGetParams(CUgraphNode n, CUDA_MEMCPY3D *p) {
  COUNT();
  NEED_INIT();
  if (!valid_node(n) || n->type != CU_GRAPH_NODE_TYPE_MEMCPY || !p) return CUDA_ERROR_INVALID_VALUE;
  *p = n->copy;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphMemsetNodeGetParams(CUgraphNode n, CUDA_MEMSET_NODE_PARAMS *p) {
  COUNT();
  NEED_INIT();
  if (!valid_node(n) || n->type != CU_GRAPH_NODE_TYPE_MEMSET || !p) return CUDA_ERROR_INVALID_VALUE;
  *p = n->set;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphChildGraphNodeGetGraph(CUgraphNode n, CUgraph *out) {
  COUNT();
  NEED_INIT();
  if (!valid_node(n) || n->type != CU_GRAPH_NODE_TYPE_GRAPH || !out) return CUDA_ERROR_INVALID_VALUE;
  *out = n->child;
  return CUDA_SUCCESS;
}

/* ---- executable graphs ---- */

static CUresult instantiate(CUgraphExec *out, CUgraph g) {
  NEED_INIT();
  if (!out || !valid_graph(g)) return CUDA_ERROR_INVALID_VALUE;
  struct CUgraphExec_st *e = calloc(1, sizeof(*e));
  if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
  e->g = graph_clone(g);
  e->from = malloc((g->n ? g->n : 1) * sizeof(*e->from));
  if (!e->g || !e->from) {
    graph_free(e->g);
    free(e->from);
    free(e);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  memcpy(e->from, g->nodes, g->n * sizeof(*e->from));
  e->magic = EXEC_MAGIC;
  *out = e;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec *out, CUgraph g, unsigned long long flags) {
  COUNT();
  if (flags & ~0xfull) return CUDA_ERROR_INVALID_VALUE;
  return instantiate(out, g);
}

/* The CUDA 10/11 entry points (error node and log buffer) */
EXPORT CUresult cuGraphInstantiate(CUgraphExec *out, CUgraph g, CUgraphNode *err, char *log, size_t size) {
  COUNT();
  if (err) *err = NULL;
  if (log && size) log[0] = 0;
  return instantiate(out, g);
}
EXPORT CUresult cuGraphInstantiate_v2(CUgraphExec *out, CUgraph g, CUgraphNode *err, char *log, size_t size) {
  COUNT();
  if (err) *err = NULL;
  if (log && size) log[0] = 0;
  return instantiate(out, g);
}

static CUresult instantiate_params(CUgraphExec *out, CUgraph g, CUDA_GRAPH_INSTANTIATE_PARAMS *p) {
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  CUresult rc = instantiate(out, g);
  p->hErrNode_out = NULL;
  p->result_out = rc == CUDA_SUCCESS ? 0 : 1; /* CUDA_GRAPH_INSTANTIATE_SUCCESS / _ERROR */
  return rc;
}
EXPORT CUresult cuGraphInstantiateWithParams(CUgraphExec *out, CUgraph g, CUDA_GRAPH_INSTANTIATE_PARAMS *p) {
  COUNT();
  return instantiate_params(out, g, p);
}
EXPORT CUresult cuGraphInstantiateWithParams_ptsz(CUgraphExec *out, CUgraph g, CUDA_GRAPH_INSTANTIATE_PARAMS *p) {
  COUNT();
  return instantiate_params(out, g, p);
}

EXPORT CUresult cuGraphExecDestroy(CUgraphExec e) {
  COUNT();
  NEED_INIT();
  if (!valid_exec(e)) return CUDA_ERROR_INVALID_VALUE;
  graph_free(e->g);
  free(e->from);
  e->magic = 0;
  free(e);
  return CUDA_SUCCESS;
}

static CUresult graph_launch(CUgraphExec e, CUstream s) {
  NEED_CTX(c);
  (void)c;
  if (!valid_exec(e)) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
  CUgraph g = capturing_into(s);
  if (g) { /* launched into a capture: the capture gets it as a child graph */
    struct CUgraphNode_st proto = {.type = CU_GRAPH_NODE_TYPE_GRAPH, .child = e->g};
    return node_add(g, &proto) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
  }
  return graph_run(e->g);
}
EXPORT CUresult cuGraphLaunch(CUgraphExec e, CUstream s) {
  COUNT();
  return graph_launch(e, s);
}
EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec e, CUstream s) {
  COUNT();
  return graph_launch(e, s);
}

/* The exec's copy of node n of the instantiating graph, NULL if it has none. */
static CUgraphNode exec_node(CUgraphExec e, CUgraphNode n) {
  for (size_t i = 0; i < e->g->n; i++)
    if (e->from[i] == n) return e->g->nodes[i];
  return NULL;
}

static CUresult exec_kernel_set(CUgraphExec e, CUgraphNode n, CUfunction f, const unsigned *dims, void **params,
                                void **extra) {
  NEED_INIT();
  if (!valid_exec(e)) return CUDA_ERROR_INVALID_VALUE;
  CUgraphNode mine = exec_node(e, n);
  if (!mine || mine->type != CU_GRAPH_NODE_TYPE_KERNEL) return CUDA_ERROR_INVALID_VALUE;
  return kernel_node_set(mine, f, dims, params, extra);
}

EXPORT CUresult cuGraphExecKernelNodeSetParams(CUgraphExec e, CUgraphNode n, const CUDA_KERNEL_NODE_PARAMS_v1 *p) {
  COUNT();
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  unsigned dims[7] = KDIMS(p);
  return exec_kernel_set(e, n, p->func, dims, p->kernelParams, p->extra);
}

EXPORT CUresult cuGraphExecKernelNodeSetParams_v2(CUgraphExec e, CUgraphNode n, const CUDA_KERNEL_NODE_PARAMS_v2 *p) {
  COUNT();
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  unsigned dims[7] = KDIMS(p);
  return exec_kernel_set(e, n, p->func ? p->func : (CUfunction)(void *)p->kern, dims, p->kernelParams, p->extra);
}

/* The exec's copy of node n, if it is of that type (CUDA_ERROR_INVALID_VALUE otherwise). */
static CUresult exec_node_of(CUgraphExec e, CUgraphNode n, CUgraphNodeType type, CUgraphNode *out) {
  NEED_INIT();
  if (!valid_exec(e)) return CUDA_ERROR_INVALID_VALUE;
  *out = exec_node(e, n);
  return *out && (*out)->type == type ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

static CUresult exec_copy_set(CUgraphExec e, CUgraphNode n, const CUDA_MEMCPY3D *p) {
  CUgraphNode mine;
  CUresult rc = exec_node_of(e, n, CU_GRAPH_NODE_TYPE_MEMCPY, &mine);
  if (rc == CUDA_SUCCESS && (!p || p->Height > 1 || p->Depth > 1)) rc = CUDA_ERROR_INVALID_VALUE; /* 1D only */
  if (rc == CUDA_SUCCESS) mine->copy = *p;
  return rc;
}

static CUresult exec_set_set(CUgraphExec e, CUgraphNode n, CUdeviceptr dst, size_t pitch, unsigned value,
                             unsigned elem, size_t width, size_t height) {
  CUgraphNode mine;
  CUresult rc = exec_node_of(e, n, CU_GRAPH_NODE_TYPE_MEMSET, &mine);
  if (rc == CUDA_SUCCESS && elem != 1 && elem != 4) rc = CUDA_ERROR_INVALID_VALUE; /* what do_memset does */
  if (rc == CUDA_SUCCESS) mine->set = (CUDA_MEMSET_NODE_PARAMS){dst, pitch, value, elem, width, height};
  return rc;
}

static CUresult exec_child_set(CUgraphExec e, CUgraphNode n, CUgraph child) {
  CUgraphNode mine;
  CUresult rc = exec_node_of(e, n, CU_GRAPH_NODE_TYPE_GRAPH, &mine);
  if (rc != CUDA_SUCCESS) return rc;
  if (!valid_graph(child) || child->n != mine->child->n) return CUDA_ERROR_INVALID_VALUE; /* same topology */
  CUgraph fresh = graph_clone(child);
  if (!fresh) return CUDA_ERROR_OUT_OF_MEMORY;
  graph_free(mine->child);
  mine->child = fresh;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphExecMemcpyNodeSetParams(CUgraphExec e, CUgraphNode n, const CUDA_MEMCPY3D *p, CUcontext c) {
  COUNT();
  (void)c;
  return exec_copy_set(e, n, p);
}

EXPORT CUresult cuGraphExecMemsetNodeSetParams(CUgraphExec e, CUgraphNode n, const CUDA_MEMSET_NODE_PARAMS *p,
                                               CUcontext c) {
  COUNT();
  (void)c;
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  return exec_set_set(e, n, p->dst, p->pitch, p->value, p->elementSize, p->width, p->height);
}

EXPORT CUresult cuGraphExecChildGraphNodeSetParams(CUgraphExec e, CUgraphNode n, CUgraph child) {
  COUNT();
  return exec_child_set(e, n, child);
}

EXPORT CUresult cuGraphExecNodeSetParams(CUgraphExec e, CUgraphNode n, CUgraphNodeParams *p) {
  COUNT();
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  switch (p->type) {
  case CU_GRAPH_NODE_TYPE_KERNEL: {
    unsigned dims[7] = KDIMS(&p->kernel);
    CUfunction f = p->kernel.func ? p->kernel.func : (CUfunction)(void *)p->kernel.kern;
    return exec_kernel_set(e, n, f, dims, p->kernel.kernelParams, p->kernel.extra);
  }
  case CU_GRAPH_NODE_TYPE_MEMCPY: return exec_copy_set(e, n, &p->memcpy.copyParams);
  case CU_GRAPH_NODE_TYPE_MEMSET:
    return exec_set_set(e, n, p->memset.dst, p->memset.pitch, p->memset.value, p->memset.elementSize,
                        p->memset.width, p->memset.height);
  case CU_GRAPH_NODE_TYPE_GRAPH: return exec_child_set(e, n, p->graph.graph);
  default: return CUDA_ERROR_INVALID_VALUE;
  }
}

/* Same node count and types, pairwise in creation order: the parameters of g replace the exec's. */
static CUresult exec_update(CUgraphExec e, CUgraph g, CUgraphNode *err, CUgraphExecUpdateResult *result) {
  NEED_INIT();
  *err = NULL;
  *result = CU_GRAPH_EXEC_UPDATE_ERROR;
  if (!valid_exec(e) || !valid_graph(g)) return CUDA_ERROR_INVALID_VALUE;
  *result = CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED;
  if (g->n != e->g->n) return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
  for (size_t i = 0; i < g->n; i++)
    if (g->nodes[i]->type != e->g->nodes[i]->type) {
      *err = g->nodes[i];
      *result = CU_GRAPH_EXEC_UPDATE_ERROR_NODE_TYPE_CHANGED;
      return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
    }
  CUgraph fresh = graph_clone(g);
  if (!fresh) return CUDA_ERROR_OUT_OF_MEMORY;
  graph_free(e->g);
  e->g = fresh; /* e->from keeps naming the instantiating graph's nodes */
  *result = CU_GRAPH_EXEC_UPDATE_SUCCESS;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuGraphExecUpdate(CUgraphExec e, CUgraph g, CUgraphNode *err, CUgraphExecUpdateResult *result) {
  COUNT();
  if (!err || !result) return CUDA_ERROR_INVALID_VALUE;
  return exec_update(e, g, err, result);
}

EXPORT CUresult cuGraphExecUpdate_v2(CUgraphExec e, CUgraph g, CUgraphExecUpdateResultInfo *info) {
  COUNT();
  if (!info) return CUDA_ERROR_INVALID_VALUE;
  info->errorFromNode = NULL;
  return exec_update(e, g, &info->errorNode, &info->result);
}

/* ------------------------------------------------------------------------------------------
** Errors, entry points
** ---------------------------------------------------------------------------------------- */

static const struct {
  CUresult code;
  const char *name;
  const char *text;
} g_errors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_DEINITIALIZED, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_CONTEXT_ALREADY_CURRENT, "CUDA_ERROR_CONTEXT_ALREADY_CURRENT", "context already current"},
    {CUDA_ERROR_MAP_FAILED, "CUDA_ERROR_MAP_FAILED", "mapping of buffer object failed"},
    {CUDA_ERROR_UNMAP_FAILED, "CUDA_ERROR_UNMAP_FAILED", "unmapping of buffer object failed"},
    {CUDA_ERROR_ALREADY_MAPPED, "CUDA_ERROR_ALREADY_MAPPED", "resource already mapped"},
    {CUDA_ERROR_NOT_MAPPED, "CUDA_ERROR_NOT_MAPPED", "resource not mapped"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {CUDA_ERROR_NOT_PERMITTED, "CUDA_ERROR_NOT_PERMITTED", "operation not permitted"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

EXPORT CUresult cuGetErrorString(CUresult error, const char **pStr) {
  COUNT();
  if (!pStr) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < sizeof g_errors / sizeof g_errors[0]; i++)
    if (g_errors[i].code == error) {
      *pStr = g_errors[i].text;
      return CUDA_SUCCESS;
    }
  *pStr = NULL;
  return CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuGetErrorName(CUresult error, const char **pStr) {
  COUNT();
  if (!pStr) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < sizeof g_errors / sizeof g_errors[0]; i++)
    if (g_errors[i].code == error) {
      *pStr = g_errors[i].name;
      return CUDA_SUCCESS;
    }
  *pStr = NULL;
  return CUDA_ERROR_INVALID_VALUE;
}

/* No private tables exist in the fake; libcudart is never run against it. */
EXPORT CUresult cuGetExportTable(const void **ppExportTable, const CUuuid *pExportTableId) {
  COUNT();
  if (!ppExportTable || !pExportTableId) return CUDA_ERROR_INVALID_VALUE;
  *ppExportTable = NULL;
  return CUDA_ERROR_NOT_SUPPORTED;
}

EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags);
EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *symbolStatus);

/* The entry-point table: base name, the CUDA version that introduced this ABI, the function,
** and whether it is the per-thread-default-stream variant. Versions are those of cudaTypedefs.h
** (PFN_<name>_v<version>). A lookup takes the highest version <= the requested one. */
typedef struct {
  const char *base;
  int version;
  void *fn;
  int ptds;
} proc_entry;

#define P(base, ver, fn) {base, ver, (void *)(fn), 0}
#define PT(base, ver, fn) {base, ver, (void *)(fn), 1}

static const proc_entry g_procs[] = {
    P("cuInit", 2000, cuInit),
    P("cuDriverGetVersion", 2020, cuDriverGetVersion),
    P("cuDeviceGet", 2000, cuDeviceGet),
    P("cuDeviceGetCount", 2000, cuDeviceGetCount),
    P("cuDeviceGetName", 2000, cuDeviceGetName),
    P("cuDeviceTotalMem", 2000, cuDeviceTotalMem),
    P("cuDeviceTotalMem", 3020, cuDeviceTotalMem_v2),
    P("cuDeviceGetAttribute", 2000, cuDeviceGetAttribute),
    P("cuDeviceGetUuid", 9020, cuDeviceGetUuid),
    P("cuDeviceGetUuid", 11040, cuDeviceGetUuid_v2),
    P("cuDeviceGetPCIBusId", 4010, cuDeviceGetPCIBusId),
    P("cuDeviceGetDefaultMemPool", 11020, cuDeviceGetDefaultMemPool),
    P("cuDevicePrimaryCtxRetain", 7000, cuDevicePrimaryCtxRetain),
    P("cuDevicePrimaryCtxRelease", 11000, cuDevicePrimaryCtxRelease_v2),
    P("cuDevicePrimaryCtxReset", 11000, cuDevicePrimaryCtxReset_v2),
    P("cuDevicePrimaryCtxGetState", 7000, cuDevicePrimaryCtxGetState),
    P("cuCtxCreate", 3020, cuCtxCreate_v2),
    P("cuCtxCreate", 12050, cuCtxCreate_v4),
    P("cuCtxDestroy", 4000, cuCtxDestroy_v2),
    P("cuCtxGetCurrent", 4000, cuCtxGetCurrent),
    P("cuCtxSetCurrent", 4000, cuCtxSetCurrent),
    P("cuCtxPushCurrent", 4000, cuCtxPushCurrent_v2),
    P("cuCtxPopCurrent", 4000, cuCtxPopCurrent_v2),
    P("cuCtxGetDevice", 2000, cuCtxGetDevice),
    P("cuCtxSynchronize", 2000, cuCtxSynchronize),
    P("cuCtxSynchronize", 13000, cuCtxSynchronize_v2),
    P("cuCtxGetApiVersion", 3020, cuCtxGetApiVersion),
    P("cuCtxEnablePeerAccess", 4000, cuCtxEnablePeerAccess),
    P("cuCtxDisablePeerAccess", 4000, cuCtxDisablePeerAccess),
    P("cuDeviceCanAccessPeer", 4000, cuDeviceCanAccessPeer),
    P("cuMemGetInfo", 2000, cuMemGetInfo),
    P("cuMemGetInfo", 3020, cuMemGetInfo_v2),
    P("cuMemAlloc", 3020, cuMemAlloc_v2),
    P("cuMemAllocPitch", 3020, cuMemAllocPitch_v2),
    P("cuMemFree", 3020, cuMemFree_v2),
    P("cuMemAllocAsync", 11020, cuMemAllocAsync),
    PT("cuMemAllocAsync", 11020, cuMemAllocAsync_ptsz),
    P("cuMemFreeAsync", 11020, cuMemFreeAsync),
    PT("cuMemFreeAsync", 11020, cuMemFreeAsync_ptsz),
    P("cuMemAllocFromPoolAsync", 11020, cuMemAllocFromPoolAsync),
    PT("cuMemAllocFromPoolAsync", 11020, cuMemAllocFromPoolAsync_ptsz),
    P("cuMemPoolCreate", 11020, cuMemPoolCreate),
    P("cuMemPoolDestroy", 11020, cuMemPoolDestroy),
    P("cuMemAllocHost", 3020, cuMemAllocHost_v2),
    P("cuMemHostAlloc", 2020, cuMemHostAlloc),
    P("cuMemFreeHost", 2000, cuMemFreeHost),
    P("cuMemHostGetDevicePointer", 3020, cuMemHostGetDevicePointer_v2),
    P("cuMemAddressReserve", 10020, cuMemAddressReserve),
    P("cuMemAddressFree", 10020, cuMemAddressFree),
    P("cuMemCreate", 10020, cuMemCreate),
    P("cuMemRelease", 10020, cuMemRelease),
    P("cuMemMap", 10020, cuMemMap),
    P("cuMemUnmap", 10020, cuMemUnmap),
    P("cuMemSetAccess", 10020, cuMemSetAccess),
    P("cuMemGetAccess", 10020, cuMemGetAccess),
    P("cuMemGetAllocationGranularity", 10020, cuMemGetAllocationGranularity),
    P("cuMemGetAllocationPropertiesFromHandle", 10020, cuMemGetAllocationPropertiesFromHandle),
    P("cuMemExportToShareableHandle", 10020, cuMemExportToShareableHandle),
    P("cuMemRetainAllocationHandle", 11000, cuMemRetainAllocationHandle),
    P("cuMemcpy", 4000, cuMemcpy),
    PT("cuMemcpy", 7000, cuMemcpy_ptds),
    P("cuMemcpyHtoD", 3020, cuMemcpyHtoD_v2),
    PT("cuMemcpyHtoD", 7000, cuMemcpyHtoD_v2_ptds),
    P("cuMemcpyDtoH", 3020, cuMemcpyDtoH_v2),
    PT("cuMemcpyDtoH", 7000, cuMemcpyDtoH_v2_ptds),
    P("cuMemcpyDtoD", 3020, cuMemcpyDtoD_v2),
    PT("cuMemcpyDtoD", 7000, cuMemcpyDtoD_v2_ptds),
    P("cuMemcpyAsync", 4000, cuMemcpyAsync),
    PT("cuMemcpyAsync", 7000, cuMemcpyAsync_ptsz),
    P("cuMemcpyHtoDAsync", 3020, cuMemcpyHtoDAsync_v2),
    PT("cuMemcpyHtoDAsync", 7000, cuMemcpyHtoDAsync_v2_ptsz),
    P("cuMemcpyDtoHAsync", 3020, cuMemcpyDtoHAsync_v2),
    PT("cuMemcpyDtoHAsync", 7000, cuMemcpyDtoHAsync_v2_ptsz),
    P("cuMemcpyDtoDAsync", 3020, cuMemcpyDtoDAsync_v2),
    P("cuMemcpyPeer", 4000, cuMemcpyPeer),
    P("cuMemcpyPeerAsync", 4000, cuMemcpyPeerAsync),
    PT("cuMemcpyDtoDAsync", 7000, cuMemcpyDtoDAsync_v2_ptsz),
    P("cuMemsetD8", 3020, cuMemsetD8_v2),
    PT("cuMemsetD8", 7000, cuMemsetD8_v2_ptds),
    P("cuMemsetD32", 3020, cuMemsetD32_v2),
    PT("cuMemsetD32", 7000, cuMemsetD32_v2_ptds),
    P("cuMemsetD8Async", 3020, cuMemsetD8Async),
    PT("cuMemsetD8Async", 7000, cuMemsetD8Async_ptsz),
    P("cuMemsetD32Async", 3020, cuMemsetD32Async),
    PT("cuMemsetD32Async", 7000, cuMemsetD32Async_ptsz),
    P("cuPointerGetAttribute", 4000, cuPointerGetAttribute),
    P("cuPointerGetAttributes", 7000, cuPointerGetAttributes),
    P("cuMemGetAddressRange", 3020, cuMemGetAddressRange_v2),
    P("cuIpcGetMemHandle", 4010, cuIpcGetMemHandle),
    P("cuStreamCreate", 2000, cuStreamCreate),
    P("cuStreamCreateWithPriority", 5050, cuStreamCreateWithPriority),
    P("cuCtxGetStreamPriorityRange", 5050, cuCtxGetStreamPriorityRange),
    P("cuStreamDestroy", 4000, cuStreamDestroy_v2),
    P("cuStreamSynchronize", 2000, cuStreamSynchronize),
    PT("cuStreamSynchronize", 7000, cuStreamSynchronize_ptsz),
    P("cuStreamQuery", 2000, cuStreamQuery),
    PT("cuStreamQuery", 7000, cuStreamQuery_ptsz),
    P("cuStreamWaitEvent", 3020, cuStreamWaitEvent),
    PT("cuStreamWaitEvent", 7000, cuStreamWaitEvent_ptsz),
    P("cuEventCreate", 2000, cuEventCreate),
    P("cuEventRecord", 2000, cuEventRecord),
    PT("cuEventRecord", 7000, cuEventRecord_ptsz),
    P("cuEventQuery", 2000, cuEventQuery),
    P("cuEventSynchronize", 2000, cuEventSynchronize),
    P("cuEventElapsedTime", 2000, cuEventElapsedTime),
    P("cuEventElapsedTime", 12080, cuEventElapsedTime_v2),
    P("cuEventDestroy", 4000, cuEventDestroy_v2),
    P("cuLaunchHostFunc", 10000, cuLaunchHostFunc),
    PT("cuLaunchHostFunc", 10000, cuLaunchHostFunc_ptsz),
    P("cuModuleLoadData", 2000, cuModuleLoadData),
    P("cuModuleLoadDataEx", 2010, cuModuleLoadDataEx),
    P("cuModuleGetFunction", 2000, cuModuleGetFunction),
    P("cuModuleUnload", 2000, cuModuleUnload),
    P("cuLaunchKernel", 4000, cuLaunchKernel),
    PT("cuLaunchKernel", 7000, cuLaunchKernel_ptsz),
    P("cuFuncGetParamInfo", 12040, cuFuncGetParamInfo),
    P("cuStreamBeginCapture", 10010, cuStreamBeginCapture_v2),
    PT("cuStreamBeginCapture", 10010, cuStreamBeginCapture_v2_ptsz),
    P("cuStreamEndCapture", 10000, cuStreamEndCapture),
    PT("cuStreamEndCapture", 10000, cuStreamEndCapture_ptsz),
    P("cuStreamIsCapturing", 10000, cuStreamIsCapturing),
    PT("cuStreamIsCapturing", 10000, cuStreamIsCapturing_ptsz),
    P("cuGraphCreate", 10000, cuGraphCreate),
    P("cuGraphDestroy", 10000, cuGraphDestroy),
    P("cuGraphAddKernelNode", 10000, cuGraphAddKernelNode),
    P("cuGraphAddKernelNode", 12000, cuGraphAddKernelNode_v2),
    P("cuGraphAddChildGraphNode", 10000, cuGraphAddChildGraphNode),
    P("cuGraphGetNodes", 10000, cuGraphGetNodes),
    P("cuGraphNodeGetType", 10000, cuGraphNodeGetType),
    P("cuGraphKernelNodeGetParams", 10000, cuGraphKernelNodeGetParams),
    P("cuGraphKernelNodeGetParams", 12000, cuGraphKernelNodeGetParams_v2),
    P("cuGraphMemcpyNodeGetParams", 10000, cuGraphMemcpyNodeGetParams),
    P("cuGraphMemsetNodeGetParams", 10000, cuGraphMemsetNodeGetParams),
    P("cuGraphChildGraphNodeGetGraph", 10000, cuGraphChildGraphNodeGetGraph),
    P("cuGraphInstantiate", 10000, cuGraphInstantiate),
    P("cuGraphInstantiate", 11000, cuGraphInstantiate_v2),
    P("cuGraphInstantiate", 12000, cuGraphInstantiateWithFlags),
    P("cuGraphInstantiateWithFlags", 11040, cuGraphInstantiateWithFlags),
    P("cuGraphInstantiateWithParams", 12000, cuGraphInstantiateWithParams),
    PT("cuGraphInstantiateWithParams", 12000, cuGraphInstantiateWithParams_ptsz),
    P("cuGraphLaunch", 10000, cuGraphLaunch),
    PT("cuGraphLaunch", 10000, cuGraphLaunch_ptsz),
    P("cuGraphExecKernelNodeSetParams", 10010, cuGraphExecKernelNodeSetParams),
    P("cuGraphExecKernelNodeSetParams", 12000, cuGraphExecKernelNodeSetParams_v2),
    P("cuGraphExecUpdate", 10020, cuGraphExecUpdate),
    P("cuGraphExecUpdate", 12000, cuGraphExecUpdate_v2),
    P("cuGraphExecDestroy", 10000, cuGraphExecDestroy),
    P("cuGraphExecMemcpyNodeSetParams", 10020, cuGraphExecMemcpyNodeSetParams),
    P("cuGraphExecMemsetNodeSetParams", 10020, cuGraphExecMemsetNodeSetParams),
    P("cuGraphExecChildGraphNodeSetParams", 11010, cuGraphExecChildGraphNodeSetParams),
    P("cuGraphExecNodeSetParams", 12020, cuGraphExecNodeSetParams),
    P("cuGetErrorString", 6000, cuGetErrorString),
    P("cuGetErrorName", 6000, cuGetErrorName),
    P("cuGetExportTable", 3000, cuGetExportTable),
    P("cuGetProcAddress", 11030, cuGetProcAddress),
    P("cuGetProcAddress", 12000, cuGetProcAddress_v2),
};

static CUresult proc_lookup(const char *symbol, void **pfn, int version, cuuint64_t flags,
                            CUdriverProcAddressQueryResult *status) {
  if (!symbol || !pfn) return CUDA_ERROR_INVALID_VALUE;
  *pfn = NULL;
  if (flags & ~(cuuint64_t)(CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM))
    return CUDA_ERROR_INVALID_VALUE;
  if (version > FAKE_CUDA_DRIVER_VERSION) return CUDA_ERROR_INVALID_VALUE;
  int want_ptds = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
  const proc_entry *best = NULL, *best_ptds = NULL;
  int seen = 0;
  for (size_t i = 0; i < sizeof g_procs / sizeof g_procs[0]; i++) {
    const proc_entry *e = &g_procs[i];
    if (strcmp(e->base, symbol) != 0) continue;
    seen = 1;
    if (e->version > version) continue;
    if (e->ptds) {
      if (!best_ptds || e->version > best_ptds->version) best_ptds = e;
    } else if (!best || e->version > best->version) {
      best = e;
    }
  }
  const proc_entry *pick = want_ptds && best_ptds ? best_ptds : best;
  if (status)
    *status = pick ? CU_GET_PROC_ADDRESS_SUCCESS
              : seen ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                     : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  /* CUDA 13 documents CUDA_SUCCESS with a NULL pfn when nothing matches; symbolStatus says why. */
  if (pick) *pfn = pick->fn;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags) {
  COUNT();
  return proc_lookup(symbol, pfn, cudaVersion, flags, NULL);
}

EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *symbolStatus) {
  COUNT();
  return proc_lookup(symbol, pfn, cudaVersion, flags, symbolStatus);
}

/* ------------------------------------------------------------------------------------------
** Test-only introspection (fake_cuda.h)
** ---------------------------------------------------------------------------------------- */

/* 1 = a VMM page backed by a DEVICE handle, 2 = a VMM page backed by a HOST/HOST_NUMA handle,
** 0 = reserved but unmapped, or cuMemAlloc device memory, 3 = cuMemAllocHost memory,
** -1 = not CUDA memory. */
EXPORT int fakecuda_location_of(CUdeviceptr p) {
  pthread_mutex_lock(&g_lock);
  int rc = -1;
  region *r = find_region((uintptr_t)p);
  if (r && r->kind == R_RESERVE) {
    mapping *m = find_mapping((uintptr_t)p);
    rc = !m ? 0 : m->h->prop.location.type == CU_MEM_LOCATION_TYPE_DEVICE ? 1 : 2;
  } else if (r) {
    rc = r->kind == R_HOST ? 3 : 0;
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

EXPORT size_t fakecuda_vram_used(int dev) {
  if (dev < 0 || dev >= MAX_DEVICES) return 0;
  pthread_mutex_lock(&g_lock);
  size_t v = g_vram_used[dev];
  pthread_mutex_unlock(&g_lock);
  return v;
}

EXPORT size_t fakecuda_vram_total(void) {
  if (!g_initialized) {
    /* NVML may ask before anyone called cuInit: read the same knob. */
    size_t v = (size_t)1 << 30;
    const char *s = getenv("FAKE_CUDA_VRAM");
    if (s && *s && !parse_size(s, &v)) v = (size_t)1 << 30;
    return v;
  }
  return g_vram_total;
}

EXPORT size_t fakecuda_host_vmm_used(void) {
  pthread_mutex_lock(&g_lock);
  size_t v = g_host_vmm_used;
  pthread_mutex_unlock(&g_lock);
  return v;
}

EXPORT unsigned long fakecuda_calls(const char *name) {
  unsigned long n = 0;
  pthread_mutex_lock(&g_counter_lock);
  for (fc_counter *c = g_counters; c; c = c->next)
    if (strcmp(c->name, name) == 0) n += atomic_load(&c->count);
  pthread_mutex_unlock(&g_counter_lock);
  return n;
}

EXPORT void fakecuda_reset_calls(void) {
  pthread_mutex_lock(&g_counter_lock);
  for (fc_counter *c = g_counters; c; c = c->next) atomic_store(&c->count, 0);
  pthread_mutex_unlock(&g_counter_lock);
}

/* Live counts, so tests can check nothing leaked: [0]=cuMemAlloc regions, [1]=host regions,
** [2]=reservations, [3]=mappings, [4]=physical handles. */
EXPORT void fakecuda_live(unsigned long out[5]) {
  memset(out, 0, 5 * sizeof out[0]);
  pthread_mutex_lock(&g_lock);
  for (region *r = g_regions; r; r = r->next) out[r->kind == R_ALLOC ? 0 : r->kind == R_HOST ? 1 : 2]++;
  for (mapping *m = g_mappings; m; m = m->next) out[3]++;
  for (fake_handle *h = g_handles; h; h = h->next) out[4]++;
  pthread_mutex_unlock(&g_lock);
}

EXPORT unsigned long fakecuda_free_with_mappings(void) { return g_free_with_mappings; }
