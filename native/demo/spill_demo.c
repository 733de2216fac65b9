/*
** spill_demo.c: the proof program for spillover. It uses only the CUDA driver API, reached the way
** libcudart reaches it (dlopen("libcuda.so.1") + cuGetProcAddress_v2), so it goes through the
** interposer exactly as a real CUDA program does.
**
** Verify mode (default): allocates about 3x the VRAM limit in several cuMemAlloc calls, writes every
** byte with a kernel, verifies every byte with a kernel, then copies (cuMemcpyDtoD) and memsets
** (cuMemsetD32) across chunks that live in different tiers and verifies again; prints where the
** pages live (the interposer's stats record), frees everything. Exit 0 only if every byte verified.
**
** Bandwidth mode (--bandwidth): in one run measures (a) pinned host->device copy bandwidth,
** (b) the read kernel over a buffer that spillover placed in pinned host pages, (c) the read kernel
** over a VRAM buffer, and prints (b)/(a) (issue 2 item 8c requires >= 0.90).
**
** Usage: spill_demo [--total SIZE | --factor F] [--chunks N] [--seed N] [--json]
**        spill_demo --bandwidth [--bw-size SIZE] [--copy-size SIZE] [--reps N] [--json]
** SIZE: bytes or K/M/G/T (binary, decimals allowed: 1.5G). The VRAM limit comes from
** SPILLOVER_VRAM_LIMIT (same syntax, or NN%), else the free VRAM the driver reports.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../include/cuda_abi.h"
#include "../include/spillover_protocol.h"
#include "spill_kernels_ptx.h"
#include "spill_pattern.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define MAX_CHUNKS 64

/* ---- driver entry points, fetched through cuGetProcAddress_v2 ------------------------------- */

typedef CUresult (*getproc_v2_fn)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);

static struct {
  CUresult (*cuInit)(unsigned int);
  CUresult (*cuDriverGetVersion)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDeviceTotalMem)(size_t *, CUdevice);
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuCtxSynchronize)(void);
  CUresult (*cuMemGetInfo)(size_t *, size_t *);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemAllocHost)(void **, size_t);
  CUresult (*cuMemFreeHost)(void *);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuMemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t);
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
  CUresult (*cuMemsetD32)(CUdeviceptr, unsigned int, size_t);
  CUresult (*cuModuleLoadData)(CUmodule *, const void *);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             CUstream, void **, void **);
  CUresult (*cuStreamCreate)(CUstream *, unsigned int);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuStreamDestroy)(CUstream);
  CUresult (*cuEventCreate)(CUevent *, unsigned int);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
  CUresult (*cuEventDestroy)(CUevent);
  CUresult (*cuGetErrorName)(CUresult, const char **);
} cu;

static const struct {
  const char *name;
  void **slot;
} g_syms[] = {
#define S(n) {#n, (void **)&cu.n}
    S(cuInit), S(cuDriverGetVersion), S(cuDeviceGet), S(cuDeviceGetName), S(cuDeviceTotalMem),
    S(cuDeviceGetAttribute), S(cuDevicePrimaryCtxRetain), S(cuDevicePrimaryCtxRelease), S(cuCtxSetCurrent),
    S(cuCtxSynchronize), S(cuMemGetInfo), S(cuMemAlloc), S(cuMemFree), S(cuMemAllocHost), S(cuMemFreeHost),
    S(cuMemcpyDtoH), S(cuMemcpyDtoD), S(cuMemcpyHtoDAsync), S(cuMemsetD32), S(cuModuleLoadData),
    S(cuModuleGetFunction), S(cuModuleUnload), S(cuLaunchKernel), S(cuStreamCreate), S(cuStreamSynchronize),
    S(cuStreamDestroy), S(cuEventCreate), S(cuEventRecord), S(cuEventSynchronize), S(cuEventElapsedTime),
    S(cuEventDestroy), S(cuGetErrorName),
#undef S
};

/* The ABI version asked for: 12000 gives the _v2 entry points every CUDA 12/13 driver has. */
#define DEMO_CUDA_VERSION 12000

static const char *errname(CUresult rc) {
  const char *s = NULL;
  if (cu.cuGetErrorName && cu.cuGetErrorName(rc, &s) == CUDA_SUCCESS && s) return s;
  static char buf[32];
  snprintf(buf, sizeof buf, "CUresult %d", rc);
  return buf;
}

static int g_json;
#define say(...)                                                                               \
  do {                                                                                         \
    if (!g_json) printf(__VA_ARGS__);                                                          \
  } while (0)

static void die(const char *fmt, const char *detail) {
  fprintf(stderr, "spill_demo: ");
  fprintf(stderr, fmt, detail);
  fprintf(stderr, "\n");
  exit(1);
}

#define CHECK(call)                                                                            \
  do {                                                                                         \
    CUresult rc_ = (call);                                                                     \
    if (rc_ != CUDA_SUCCESS) {                                                                 \
      fprintf(stderr, "spill_demo: %s failed: %s\n", #call, errname(rc_));                     \
      exit(1);                                                                                 \
    }                                                                                          \
  } while (0)

static void *g_libcuda;

static void load_driver(void) {
  const char *path = getenv("SPILL_DEMO_LIBCUDA");
  g_libcuda = dlopen(path && *path ? path : "libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (!g_libcuda) die("cannot load the CUDA driver (%s); is an NVIDIA driver installed?", dlerror());
  getproc_v2_fn getproc = (getproc_v2_fn)dlsym(g_libcuda, "cuGetProcAddress_v2");
  if (!getproc) die("libcuda.so.1 has no cuGetProcAddress_v2 (%s): the driver is older than CUDA 12", dlerror());
  for (size_t i = 0; i < sizeof g_syms / sizeof g_syms[0]; i++) {
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    CUresult rc = getproc(g_syms[i].name, g_syms[i].slot, DEMO_CUDA_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &st);
    if (rc != CUDA_SUCCESS || !*g_syms[i].slot) die("the driver does not provide %s", g_syms[i].name);
  }
}

/* ---- sizes -------------------------------------------------------------------------------- */

/* "8G", "512M", "1.5GiB", "123456" -> bytes; "25%" -> percent of pct_base. 0 on error. */
static uint64_t parse_size(const char *s, uint64_t pct_base, int allow_pct) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v <= 0 || !isfinite(v)) return 0;
  if (*end == '%') {
    if (!allow_pct || end[1] || v > 100) return 0;
    return (uint64_t)((double)pct_base * v / 100.0);
  }
  double mul = 1;
  switch (*end) {
  case 'K': case 'k': mul = 1024.0; end++; break;
  case 'M': case 'm': mul = 1048576.0; end++; break;
  case 'G': case 'g': mul = 1073741824.0; end++; break;
  case 'T': case 't': mul = 1099511627776.0; end++; break;
  default: break;
  }
  if (*end == 'i' && mul > 1) end++;
  if ((*end == 'B' || *end == 'b')) end++;
  if (*end) return 0;
  return (uint64_t)(v * mul);
}

static double gib(uint64_t b) { return (double)b / (double)GiB; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the interposer's stats record -------------------------------------------------------- */

static char g_stats_path[600];

/* Reads a consistent copy of the stats record (seqlock). Returns 1 if spillover is loaded. */
static int read_stats(sp_stats *out) {
  const char *dir = getenv("SPILLOVER_STATS_DIR");
  snprintf(g_stats_path, sizeof g_stats_path, "%s/spillover-%u-%d.stats", dir && *dir ? dir : "/dev/shm",
           (unsigned)getuid(), (int)getpid());
  for (int attempt = 0; attempt < 200; attempt++) {
    int fd = open(g_stats_path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = pread(fd, out, sizeof *out, 0);
    uint64_t seq2 = 0;
    ssize_t n2 = pread(fd, &seq2, sizeof seq2, offsetof(sp_stats, seq));
    close(fd);
    if (n != (ssize_t)sizeof *out || n2 != (ssize_t)sizeof seq2) return 0;
    if (out->magic != SP_STATS_MAGIC || out->version != SP_STATS_VERSION) return 0;
    if ((out->seq & 1) == 0 && out->seq == seq2) return 1;
    usleep(1000);
  }
  return 0;
}

static const sp_stats_alloc *stats_find(const sp_stats *st, CUdeviceptr p) {
  for (uint32_t i = 0; i < st->top_count && i < SP_STATS_TOP_ALLOCS; i++)
    if (st->top[i].dptr == p) return &st->top[i];
  return NULL;
}

static const char *mode_name(uint32_t m) {
  return m == SP_MODE_STANDALONE ? "standalone" : m == SP_MODE_BROKER ? "broker" : "passthrough";
}

/* ---- kernels ------------------------------------------------------------------------------ */

static CUmodule g_mod;
static CUfunction k_fill, k_verify, k_verify_const, k_read;
static unsigned g_blocks = 132 * 8;
static const unsigned k_threads = 256;
static CUdeviceptr g_counter;

static void load_kernels(int dev) {
  CHECK(cu.cuModuleLoadData(&g_mod, spill_kernels_ptx));
  CHECK(cu.cuModuleGetFunction(&k_fill, g_mod, SPILL_KERNEL_FILL));
  CHECK(cu.cuModuleGetFunction(&k_verify, g_mod, SPILL_KERNEL_VERIFY));
  CHECK(cu.cuModuleGetFunction(&k_verify_const, g_mod, SPILL_KERNEL_VERIFY_CONST));
  CHECK(cu.cuModuleGetFunction(&k_read, g_mod, SPILL_KERNEL_READ));
  int sms = 0;
  if (cu.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev) == CUDA_SUCCESS && sms > 0)
    g_blocks = (unsigned)sms * 8;
  CHECK(cu.cuMemAlloc(&g_counter, 8));
}

static CUresult fill(CUdeviceptr p, uint64_t bytes, uint64_t seed, uint64_t base) {
  unsigned long long n = bytes / 8, s = seed, b = base;
  void *args[] = {&p, &n, &s, &b};
  return cu.cuLaunchKernel(k_fill, g_blocks, 1, 1, k_threads, 1, 1, 0, NULL, args, NULL);
}

/* Runs a counting kernel (its last argument is the device counter) and returns the count;
** UINT64_MAX on a CUDA error. */
static uint64_t count_mismatches(CUfunction k, void **args, const char *what) {
  unsigned long long bad = 0;
  CUresult rc = cu.cuMemsetD32(g_counter, 0, 2);
  if (rc == CUDA_SUCCESS) rc = cu.cuLaunchKernel(k, g_blocks, 1, 1, k_threads, 1, 1, 0, NULL, args, NULL);
  if (rc == CUDA_SUCCESS) rc = cu.cuMemcpyDtoH(&bad, g_counter, 8);
  if (rc != CUDA_SUCCESS) {
    fprintf(stderr, "spill_demo: %s kernel failed: %s\n", what, errname(rc));
    return UINT64_MAX;
  }
  return bad;
}

/* Counts words of [p, p+bytes) that differ from the pattern; UINT64_MAX on a CUDA error. */
static uint64_t verify(CUdeviceptr p, uint64_t bytes, uint64_t seed, uint64_t base) {
  unsigned long long n = bytes / 8, s = seed, b = base;
  CUdeviceptr c = g_counter;
  void *args[] = {&p, &n, &s, &b, &c};
  return count_mismatches(k_verify, args, "verify");
}

/* Counts words of [p, p+bytes) that differ from `value`; UINT64_MAX on a CUDA error. */
static uint64_t verify_const(CUdeviceptr p, uint64_t bytes, uint64_t value) {
  unsigned long long n = bytes / 8, v = value;
  CUdeviceptr c = g_counter;
  void *args[] = {&p, &n, &v, &c};
  return count_mismatches(k_verify_const, args, "verify_const");
}

static CUresult read_kernel(CUdeviceptr p, uint64_t bytes, CUstream s) {
  unsigned long long n = bytes / 8;
  CUdeviceptr c = g_counter;
  void *args[] = {&p, &n, &c};
  return cu.cuLaunchKernel(k_read, g_blocks, 1, 1, k_threads, 1, 1, 0, s, args, NULL);
}

/* ---- options ------------------------------------------------------------------------------ */

typedef struct {
  const char *total_s;
  double factor;
  int chunks;
  uint64_t seed;
  int bandwidth;
  const char *bw_size_s;
  const char *copy_size_s;
  int reps;
} options;

static void usage_error(const char *msg, const char *arg) {
  fprintf(stderr, "spill_demo: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
  fprintf(stderr, "usage: spill_demo [--total SIZE | --factor F] [--chunks N] [--seed N] [--json]\n"
                  "       spill_demo --bandwidth [--bw-size SIZE] [--copy-size SIZE] [--reps N] [--json]\n");
  exit(2);
}

static options parse_args(int argc, char **argv) {
  options o = {NULL, 3.0, 12, 0x5eed, 0, "4G", "1G", 5};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                                                \
  do {                                                                                         \
    if (!v) usage_error("missing value after", a);                                             \
    i++;                                                                                       \
  } while (0)
    if (!strcmp(a, "--json")) g_json = 1;
    else if (!strcmp(a, "--bandwidth")) o.bandwidth = 1;
    else if (!strcmp(a, "--total")) { NEEDV(); o.total_s = v; }
    else if (!strcmp(a, "--factor")) {
      NEEDV();
      char *end;
      o.factor = strtod(v, &end);
      if (*end || !(o.factor > 0 && o.factor <= 64)) usage_error("--factor must be a number in (0, 64]", v);
    } else if (!strcmp(a, "--chunks")) {
      NEEDV();
      char *end;
      long n = strtol(v, &end, 10);
      if (*end || n < 3 || n > MAX_CHUNKS) usage_error("--chunks must be an integer 3..64", v);
      o.chunks = (int)n;
    } else if (!strcmp(a, "--seed")) {
      NEEDV();
      char *end;
      o.seed = strtoull(v, &end, 0);
      if (*end) usage_error("--seed must be an integer", v);
    } else if (!strcmp(a, "--bw-size")) { NEEDV(); o.bw_size_s = v; }
    else if (!strcmp(a, "--copy-size")) { NEEDV(); o.copy_size_s = v; }
    else if (!strcmp(a, "--reps")) {
      NEEDV();
      char *end;
      long n = strtol(v, &end, 10);
      if (*end || n < 1 || n > 1000) usage_error("--reps must be an integer 1..1000", v);
      o.reps = (int)n;
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage_error("help", NULL);
    } else {
      usage_error("unknown argument", a);
    }
#undef NEEDV
  }
  return o;
}

/* ---- common set-up ------------------------------------------------------------------------ */

typedef struct {
  CUdevice dev;
  char name[256];
  size_t total_mem, free_mem, device_total;
  int driver_version;
  int simulated;
  uint64_t limit;
  int limit_from_env;
} device_info;

static device_info setup(void) {
  device_info d;
  memset(&d, 0, sizeof d);
  load_driver();
  CUresult rc = cu.cuInit(0);
  if (rc != CUDA_SUCCESS) {
    fprintf(stderr, "spill_demo: cuInit failed: %s (no usable NVIDIA GPU?)\n", errname(rc));
    exit(1);
  }
  CHECK(cu.cuDriverGetVersion(&d.driver_version));
  CHECK(cu.cuDeviceGet(&d.dev, 0));
  CHECK(cu.cuDeviceGetName(d.name, sizeof d.name, d.dev));
  CHECK(cu.cuDeviceTotalMem(&d.device_total, d.dev));
  CUcontext ctx;
  CHECK(cu.cuDevicePrimaryCtxRetain(&ctx, d.dev));
  CHECK(cu.cuCtxSetCurrent(ctx));
  CHECK(cu.cuMemGetInfo(&d.free_mem, &d.total_mem));
  d.simulated = dlsym(g_libcuda, "fakecuda_calls") != NULL;
  const char *env = getenv("SPILLOVER_VRAM_LIMIT");
  if (env && *env) {
    d.limit = parse_size(env, d.device_total, 1);
    if (!d.limit) {
      fprintf(stderr, "spill_demo: SPILLOVER_VRAM_LIMIT=%s is not a size (use e.g. 8G, 512M, 25%%)\n", env);
      exit(2);
    }
    d.limit_from_env = 1;
  } else {
    d.limit = d.free_mem;
  }
  load_kernels(d.dev);
  say("device 0: %s%s, driver API %d.%d\n", d.name, d.simulated ? " [simulated]" : "", d.driver_version / 1000,
      (d.driver_version % 1000) / 10);
  say("capacity: cuDeviceTotalMem %.2f GiB, cuMemGetInfo free %.2f / total %.2f GiB\n", gib(d.device_total),
      gib(d.free_mem), gib(d.total_mem));
  say("VRAM limit: %.2f GiB (%s)\n", gib(d.limit), d.limit_from_env ? "SPILLOVER_VRAM_LIMIT" : "free VRAM");
  return d;
}

static uint64_t mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
  fclose(f);
  return kb * 1024ull;
}

static void json_str(const char *key, const char *v, int comma) {
  printf("\"%s\":\"", key);
  for (const char *p = v; *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if ((unsigned char)*p < 0x20) printf("\\u%04x", *p);
    else putchar(*p);
  }
  printf("\"%s", comma ? "," : "");
}

static void print_tiers_json(const sp_stats *st, int loaded) {
  if (!loaded) {
    printf("\"spillover\":{\"loaded\":false}");
    return;
  }
  const sp_stats_gpu *g = &st->gpu[0];
  printf("\"spillover\":{\"loaded\":true,\"mode\":\"%s\",\"vram_limit\":%llu,\"vram_reserve\":%llu,"
         "\"tier_bytes\":{\"vram\":%llu,\"pinned\":%llu,\"swap\":%llu},\"passthrough_bytes\":%llu,"
         "\"pinned_pool_bytes\":%llu,\"tiered_allocs\":%llu,\"oom_returned\":%llu}",
         mode_name(st->mode), (unsigned long long)g->vram_limit, (unsigned long long)g->vram_reserve,
         (unsigned long long)g->tier_bytes[SP_TIER_VRAM], (unsigned long long)g->tier_bytes[SP_TIER_PINNED],
         (unsigned long long)g->tier_bytes[SP_TIER_SWAP], (unsigned long long)g->passthrough_bytes,
         (unsigned long long)st->pinned_pool_bytes, (unsigned long long)st->tiered_allocs,
         (unsigned long long)st->oom_returned);
}

static void print_device_json(const device_info *d) {
  printf("\"device\":{");
  json_str("name", d->name, 1);
  printf("\"simulated\":%s,\"driver_version\":%d,\"device_total_mem\":%llu,\"meminfo_free\":%llu,"
         "\"meminfo_total\":%llu,\"vram_limit\":%llu,\"vram_limit_from_env\":%s},",
         d->simulated ? "true" : "false", d->driver_version, (unsigned long long)d->device_total,
         (unsigned long long)d->free_mem, (unsigned long long)d->total_mem, (unsigned long long)d->limit,
         d->limit_from_env ? "true" : "false");
}

/* ---- verify mode -------------------------------------------------------------------------- */

typedef struct {
  CUdeviceptr p;
  uint64_t size;
  uint64_t vram, pinned;
  int known;
} chunk;

static int run_verify(const options *o) {
  device_info d = setup();
  uint64_t total;
  if (o->total_s) {
    total = parse_size(o->total_s, 0, 0);
    if (!total) usage_error("--total must be a size like 24G or 768M", o->total_s);
  } else {
    total = (uint64_t)((double)d.limit * o->factor);
  }
  uint64_t avail = mem_available();
  if (!d.simulated && avail && total > d.limit && total - d.limit > avail / 10 * 9) {
    fprintf(stderr,
            "spill_demo: %.1f GiB would need %.1f GiB of pinned host RAM, more than MemAvailable (%.1f GiB); "
            "set SPILLOVER_VRAM_LIMIT or pass --total\n",
            gib(total), gib(total - d.limit), gib(avail));
    return 2;
  }
  int nchunks = o->chunks;
  uint64_t chunk_size = total / (uint64_t)nchunks / (2 * MiB) * (2 * MiB);
  if (chunk_size < 2 * MiB) chunk_size = 2 * MiB;
  total = chunk_size * (uint64_t)nchunks;
  say("allocating %.2f GiB = %.2fx the limit, in %d cuMemAlloc calls of %.1f MiB\n", gib(total),
      (double)total / (double)d.limit, nchunks, (double)chunk_size / (double)MiB);

  chunk ch[MAX_CHUNKS];
  memset(ch, 0, sizeof ch);
  int allocated = 0;
  CUresult alloc_rc = CUDA_SUCCESS;
  for (int i = 0; i < nchunks; i++) {
    alloc_rc = cu.cuMemAlloc(&ch[i].p, chunk_size);
    if (alloc_rc != CUDA_SUCCESS) break;
    ch[i].size = chunk_size;
    allocated++;
  }
  uint64_t allocated_bytes = (uint64_t)allocated * chunk_size;
  if (alloc_rc != CUDA_SUCCESS) {
    say("allocation %d of %d failed with %s after %.2f GiB:%s\n", allocated + 1, nchunks, errname(alloc_rc),
        gib(allocated_bytes),
        alloc_rc == CUDA_ERROR_OUT_OF_MEMORY ? " without spillover a program cannot allocate beyond the card's memory"
                                              : "");
  }

  /* Pass 1: write every byte, then verify every byte. */
  double t0 = now_s();
  for (int i = 0; i < allocated; i++) CHECK(fill(ch[i].p, ch[i].size, o->seed + (uint64_t)i, 0));
  CHECK(cu.cuCtxSynchronize());
  double t_fill = now_s() - t0;
  uint64_t bad1 = 0;
  t0 = now_s();
  for (int i = 0; i < allocated; i++) {
    uint64_t b = verify(ch[i].p, ch[i].size, o->seed + (uint64_t)i, 0);
    bad1 = b == UINT64_MAX || bad1 == UINT64_MAX ? UINT64_MAX : bad1 + b;
  }
  double t_verify = now_s() - t0;
  say("pass 1: wrote %.2f GiB in %.2f s, verified in %.2f s: %llu mismatched words\n", gib(allocated_bytes), t_fill,
      t_verify, (unsigned long long)bad1);

  /* Pass 2: a device-to-device copy from the first chunk (allocated first: VRAM under spillover)
  ** onto the end of the last one (allocated last: host pages), and a memset inside a middle chunk,
  ** then verify everything again with the expected contents. */
  uint64_t bad2 = 0;
  uint64_t copy_len = 0, set_off = 0, set_len = 0;
  int last = allocated - 1, mid = allocated / 2;
  const unsigned int set_word = 0xA5A5A5A5u;
  if (allocated >= 3) {
    copy_len = ch[0].size / 2 < 64 * MiB ? ch[0].size / 2 : 64 * MiB;
    copy_len &= ~7ull;
    CHECK(cu.cuMemcpyDtoD(ch[last].p + ch[last].size - copy_len, ch[0].p, copy_len));
    set_off = ch[mid].size / 4 & ~7ull;
    set_len = ch[mid].size / 4 & ~7ull;
    CHECK(cu.cuMemsetD32(ch[mid].p + set_off, set_word, set_len / 4));
    CHECK(cu.cuCtxSynchronize());
    for (int i = 0; i < allocated && bad2 != UINT64_MAX; i++) {
      uint64_t seed = o->seed + (uint64_t)i, b = 0;
      if (i == last) {
        uint64_t keep = ch[i].size - copy_len;
        b = verify(ch[i].p, keep, seed, 0);
        uint64_t b2 = verify(ch[i].p + keep, copy_len, o->seed, 0);
        b = b == UINT64_MAX || b2 == UINT64_MAX ? UINT64_MAX : b + b2;
      } else if (i == mid) {
        uint64_t b1 = verify(ch[i].p, set_off, seed, 0);
        uint64_t b2 = verify_const(ch[i].p + set_off, set_len, ((uint64_t)set_word << 32) | set_word);
        uint64_t rest = set_off + set_len;
        uint64_t b3 = verify(ch[i].p + rest, ch[i].size - rest, seed, rest / 8);
        b = b1 == UINT64_MAX || b2 == UINT64_MAX || b3 == UINT64_MAX ? UINT64_MAX : b1 + b2 + b3;
      } else {
        b = verify(ch[i].p, ch[i].size, seed, 0);
      }
      bad2 = b == UINT64_MAX ? UINT64_MAX : bad2 + b;
    }
    say("pass 2: cuMemcpyDtoD %.0f MiB chunk 0 -> end of chunk %d, cuMemsetD32 %.0f MiB in chunk %d: "
        "%llu mismatched words\n",
        (double)copy_len / (double)MiB, last, (double)set_len / (double)MiB, mid, (unsigned long long)bad2);
  }

  /* Where the pages live, while everything is still allocated. */
  sp_stats st;
  memset(&st, 0, sizeof st);
  int loaded = read_stats(&st);
  for (int i = 0; i < allocated; i++) {
    const sp_stats_alloc *a = loaded ? stats_find(&st, ch[i].p) : NULL;
    if (a) {
      ch[i].known = 1;
      ch[i].vram = a->vram_bytes;
      ch[i].pinned = a->pinned_bytes;
    }
  }
  if (!g_json) {
    if (loaded) {
      const sp_stats_gpu *g = &st.gpu[0];
      printf("spillover (%s mode): VRAM limit %.2f GiB, reserve %.2f GiB\n", mode_name(st.mode), gib(g->vram_limit),
             gib(g->vram_reserve));
      printf("tiers: VRAM %.2f GiB | pinned host %.2f GiB | swap %.2f GiB | passed through %.2f MiB\n",
             gib(g->tier_bytes[SP_TIER_VRAM]), gib(g->tier_bytes[SP_TIER_PINNED]), gib(g->tier_bytes[SP_TIER_SWAP]),
             (double)g->passthrough_bytes / (double)MiB);
      for (int i = 0; i < allocated; i++) {
        if (ch[i].known)
          printf("  alloc %2d  0x%012llx  %8.1f MiB  VRAM %8.1f MiB  host %8.1f MiB\n", i, (unsigned long long)ch[i].p,
                 (double)ch[i].size / (double)MiB, (double)ch[i].vram / (double)MiB, (double)ch[i].pinned / (double)MiB);
        else if (st.top_count < SP_STATS_TOP_ALLOCS)
          printf("  alloc %2d  0x%012llx  %8.1f MiB  not tiered: passed to the driver (ordinary VRAM)\n", i,
                 (unsigned long long)ch[i].p, (double)ch[i].size / (double)MiB);
        else
          printf("  alloc %2d  0x%012llx  %8.1f MiB  (not among the record's %u largest)\n", i,
                 (unsigned long long)ch[i].p, (double)ch[i].size / (double)MiB, SP_STATS_TOP_ALLOCS);
      }
    } else {
      printf("spillover not loaded (no stats record at %s): all %.2f GiB are ordinary device memory\n", g_stats_path,
             gib(allocated_bytes));
    }
  }

  for (int i = 0; i < allocated; i++) CHECK(cu.cuMemFree(ch[i].p));
  CHECK(cu.cuMemFree(g_counter));
  CHECK(cu.cuModuleUnload(g_mod));

  int all_allocated = allocated == nchunks;
  int ok = all_allocated && bad1 == 0 && (allocated < 3 || bad2 == 0);
  if (g_json) {
    printf("{\"mode\":\"verify\",");
    print_device_json(&d);
    printf("\"requested_bytes\":%llu,\"allocated_bytes\":%llu,\"chunks_requested\":%d,\"chunk_bytes\":%llu,",
           (unsigned long long)total, (unsigned long long)allocated_bytes, nchunks, (unsigned long long)chunk_size);
    if (alloc_rc != CUDA_SUCCESS) json_str("alloc_error", errname(alloc_rc), 1);
    else printf("\"alloc_error\":null,");
    printf("\"mismatches_pass1\":%lld,\"mismatches_pass2\":%lld,\"verified_bytes\":%llu,", bad1 == UINT64_MAX ? -1LL : (long long)bad1,
           bad2 == UINT64_MAX ? -1LL : (long long)bad2, (unsigned long long)(bad1 == 0 ? allocated_bytes : 0));
    printf("\"fill_seconds\":%.4f,\"verify_seconds\":%.4f,", t_fill, t_verify);
    printf("\"allocations\":[");
    for (int i = 0; i < allocated; i++) {
      printf("%s{\"index\":%d,\"dptr\":%llu,\"size\":%llu,", i ? "," : "", i, (unsigned long long)ch[i].p,
             (unsigned long long)ch[i].size);
      if (ch[i].known)
        printf("\"vram_bytes\":%llu,\"pinned_bytes\":%llu,\"tiered\":true}", (unsigned long long)ch[i].vram,
               (unsigned long long)ch[i].pinned);
      else printf("\"vram_bytes\":null,\"pinned_bytes\":null,\"tiered\":%s}",
                  loaded && st.top_count < SP_STATS_TOP_ALLOCS ? "false" : "null");
    }
    printf("],");
    print_tiers_json(&st, loaded);
    printf(",\"ok\":%s}\n", ok ? "true" : "false");
  } else {
    printf("%s: %s\n", ok ? "PASS" : "FAIL",
           ok ? "every byte verified"
              : !all_allocated ? "not every allocation succeeded"
                               : "verification found mismatches");
  }
  return ok ? 0 : 1;
}

/* ---- bandwidth mode ----------------------------------------------------------------------- */

static double time_reads(CUdeviceptr p, uint64_t bytes, int reps, CUstream s) {
  CUevent a, b;
  CHECK(cu.cuEventCreate(&a, 0));
  CHECK(cu.cuEventCreate(&b, 0));
  CHECK(read_kernel(p, bytes, s)); /* warm-up: first touch, TLBs */
  CHECK(cu.cuEventRecord(a, s));
  for (int r = 0; r < reps; r++) CHECK(read_kernel(p, bytes, s));
  CHECK(cu.cuEventRecord(b, s));
  CHECK(cu.cuEventSynchronize(b));
  float ms = 0;
  CHECK(cu.cuEventElapsedTime(&ms, a, b));
  CHECK(cu.cuEventDestroy(a));
  CHECK(cu.cuEventDestroy(b));
  return ms > 0 ? (double)bytes * reps / ((double)ms / 1e3) / 1e9 : 0;
}

static int run_bandwidth(const options *o) {
  /* The layout below is first-come (a ballast, then the measured buffer): placement by use would
  ** move the cold ballast out for the fresh buffer. The interposer reads its configuration at the
  ** first driver call, which setup() makes. */
  setenv("SPILLOVER_MIGRATE", "0", 1);
  device_info d = setup();
  uint64_t bw_size = parse_size(o->bw_size_s, 0, 0);
  uint64_t copy_size = parse_size(o->copy_size_s, 0, 0);
  if (!bw_size) usage_error("--bw-size must be a size like 4G", o->bw_size_s);
  if (!copy_size) usage_error("--copy-size must be a size like 1G", o->copy_size_s);
  bw_size = bw_size / (2 * MiB) * (2 * MiB);
  copy_size = copy_size / (2 * MiB) * (2 * MiB);
  if (!bw_size || !copy_size) usage_error("sizes must be at least 2 MiB", NULL);
  CUstream s;
  CHECK(cu.cuStreamCreate(&s, 0));

  /* Order matters under spillover: the VRAM buffer first (it fits the budget), then a ballast
  ** as large as the VRAM limit (uses up the budget), then the measured buffer, which must land in
  ** pinned host pages. The stats record says where each actually went. */
  CUdeviceptr vram_buf = 0, ballast = 0, tiered = 0;
  CHECK(cu.cuMemAlloc(&vram_buf, copy_size));
  sp_stats st;
  int loaded = read_stats(&st);
  if (loaded) {
    CUresult rc = cu.cuMemAlloc(&ballast, d.limit);
    if (rc != CUDA_SUCCESS) {
      fprintf(stderr, "spill_demo: ballast allocation of %.2f GiB failed: %s\n", gib(d.limit), errname(rc));
      return 1;
    }
  }
  CUresult rc = cu.cuMemAlloc(&tiered, bw_size);
  if (rc != CUDA_SUCCESS) {
    fprintf(stderr, "spill_demo: allocating the %.2f GiB measured buffer failed: %s%s\n", gib(bw_size), errname(rc),
            loaded ? "" : " (spillover is not loaded)");
    return 1;
  }
  CHECK(fill(vram_buf, copy_size, o->seed, 0));
  CHECK(fill(tiered, bw_size, o->seed + 1, 0));
  CHECK(cu.cuCtxSynchronize());
  uint64_t bad = verify(tiered, bw_size, o->seed + 1, 0);

  uint64_t host_off = 0, host_len = bw_size, vram_in_vram = copy_size;
  const char *placement = "unknown (spillover not loaded)";
  if (loaded && read_stats(&st)) {
    const sp_stats_alloc *ta = stats_find(&st, tiered), *va = stats_find(&st, vram_buf);
    if (ta) {
      /* Spillover fills an allocation's pages VRAM-first: the host pages are its tail. */
      host_off = ta->vram_bytes / (2 * MiB) * (2 * MiB);
      host_len = ta->pinned_bytes / (2 * MiB) * (2 * MiB);
      if (host_off + host_len > bw_size) host_len = bw_size - host_off;
      placement = ta->vram_bytes == 0 ? "all pinned host pages" : "partly VRAM: measuring its host tail only";
    } else {
      placement = "not in the stats record";
    }
    if (va) vram_in_vram = va->vram_bytes;
  }

  /* (a) pinned host -> device copies, the link's practical bound. */
  void *host = NULL;
  CHECK(cu.cuMemAllocHost(&host, copy_size));
  memset(host, 0x5a, copy_size);
  CUevent a, b;
  CHECK(cu.cuEventCreate(&a, 0));
  CHECK(cu.cuEventCreate(&b, 0));
  CHECK(cu.cuMemcpyHtoDAsync(vram_buf, host, copy_size, s)); /* warm-up */
  CHECK(cu.cuEventRecord(a, s));
  for (int r = 0; r < o->reps; r++) CHECK(cu.cuMemcpyHtoDAsync(vram_buf, host, copy_size, s));
  CHECK(cu.cuEventRecord(b, s));
  CHECK(cu.cuEventSynchronize(b));
  float ms = 0;
  CHECK(cu.cuEventElapsedTime(&ms, a, b));
  double h2d = ms > 0 ? (double)copy_size * o->reps / ((double)ms / 1e3) / 1e9 : 0;

  /* (b) the read kernel over the host-backed part of the tiered buffer; (c) over VRAM. */
  double tiered_bw = host_len ? time_reads(tiered + host_off, host_len, o->reps, s) : 0;
  double vram_bw = time_reads(vram_buf, copy_size, o->reps * 4, s);
  double ratio = h2d > 0 ? tiered_bw / h2d : 0;
  int measured = loaded && host_len > 0 && bad == 0;
  /* On the CPU double the speeds are memcpy's: only placement and data are checked there. */
  int pass = measured && (d.simulated || ratio >= 0.90);

  CHECK(cu.cuStreamSynchronize(s));
  CHECK(cu.cuMemFreeHost(host));
  CHECK(cu.cuMemFree(tiered));
  if (ballast) CHECK(cu.cuMemFree(ballast));
  CHECK(cu.cuMemFree(vram_buf));
  CHECK(cu.cuEventDestroy(a));
  CHECK(cu.cuEventDestroy(b));
  CHECK(cu.cuStreamDestroy(s));

  if (g_json) {
    printf("{\"mode\":\"bandwidth\",");
    print_device_json(&d);
    printf("\"tiered_bytes\":%llu,\"tiered_host_offset\":%llu,\"tiered_host_bytes_measured\":%llu,", (unsigned long long)bw_size,
           (unsigned long long)host_off, (unsigned long long)host_len);
    json_str("placement", placement, 1);
    printf("\"copy_bytes\":%llu,\"vram_buffer_vram_bytes\":%llu,\"reps\":%d,\"tiered_mismatches\":%lld,",
           (unsigned long long)copy_size, (unsigned long long)vram_in_vram, o->reps, bad == UINT64_MAX ? -1LL : (long long)bad);
    printf("\"h2d_pinned_copy_gbps\":%.3f,\"tiered_host_read_gbps\":%.3f,\"vram_read_gbps\":%.3f,"
           "\"ratio_tiered_over_copy\":%.4f,\"required_ratio\":0.90,",
           h2d, tiered_bw, vram_bw, ratio);
    print_tiers_json(&st, loaded);
    printf(",\"measured\":%s,\"ok\":%s}\n", measured ? "true" : "false", pass ? "true" : "false");
  } else {
    printf("tiered buffer: %.2f GiB, %s; measured %.2f GiB from offset %.2f GiB; verify mismatches %lld\n", gib(bw_size),
           placement, gib(host_len), gib(host_off), bad == UINT64_MAX ? -1LL : (long long)bad);
    printf("(a) pinned host->device copy (%.2f GiB x %d): %.1f GB/s\n", gib(copy_size), o->reps, h2d);
    printf("(b) read kernel over spillover's host-backed pages: %.1f GB/s\n", tiered_bw);
    printf("(c) read kernel over VRAM: %.1f GB/s\n", vram_bw);
    printf("ratio (b)/(a) = %.3f (required >= 0.90)\n", ratio);
    if (d.simulated) printf("note: simulated device, these numbers are CPU memcpy speeds and mean nothing\n");
    printf("%s: %s\n", !pass ? "FAIL" : d.simulated ? "SIMULATED" : "PASS",
           !loaded ? "spillover is not loaded, nothing was placed in host memory"
           : !measured ? "the tiered buffer could not be measured"
           : d.simulated ? "the buffer was placed in host pages and read back intact; no bandwidth verdict"
           : pass ? "zero-copy reads of tiered pages run at the link's copy bandwidth"
                  : "tiered reads are slower than 0.90 of the copy bandwidth");
  }
  return pass ? 0 : 3;
}

int main(int argc, char **argv) {
  options o = parse_args(argc, argv);
  /* JSON goes out in one write at exit, so stderr lines (the interposer's summary) cannot split it. */
  if (g_json) setvbuf(stdout, NULL, _IOFBF, 1 << 20);
  else setvbuf(stdout, NULL, _IOLBF, 0);
  return o.bandwidth ? run_bandwidth(&o) : run_verify(&o);
}
