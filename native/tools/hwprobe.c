/*
** hwprobe: measures the numbers `spillover plan` needs on this machine and prints one JSON object
** on stdout (`spillover bench hw` turns it into the hardware profile):
**   host->device and device->host pinned copies (copy engine), a kernel reading mapped pinned host
**   memory (zero-copy), a kernel reading VMM HOST_NUMA pages (spillover's data path), a kernel
**   reading VRAM, VRAM size, the PCIe link (NVML, else sysfs), and CPU RAM read bandwidth with
**   1, 2, 4, ... all threads (pthreads: what llama.cpp's CPU backend is bounded by).
** Driver API through dlopen("libcuda.so.1") only: builds with gcc alone; the read kernel is
** embedded PTX (hwprobe_ptx.h, from hwprobe_kernels.cu).
**
** usage: hwprobe [--cpu-only] [--device N] [--bytes MiB] [--ram-bytes MiB]
** exit: 0 measured; 3 no usable GPU/driver (JSON {"ok":false,"code":"no_gpu",...}); 1 other error.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../include/cuda_abi.h"
#include "hwprobe_ptx.h"

#define GB 1e9

/* ---- driver entry points ------------------------------------------------------------------ */
static struct {
  CUresult (*Init)(unsigned);
  CUresult (*DeviceGetCount)(int *);
  CUresult (*DeviceGet)(CUdevice *, int);
  CUresult (*DeviceGetName)(char *, int, CUdevice);
  CUresult (*DeviceTotalMem)(size_t *, CUdevice);
  CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*DeviceGetPCIBusId)(char *, int, CUdevice);
  CUresult (*PrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*CtxSetCurrent)(CUcontext);
  CUresult (*CtxSynchronize)(void);
  CUresult (*ModuleLoadData)(CUmodule *, const void *);
  CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*MemGetInfo)(size_t *, size_t *);
  CUresult (*MemAlloc)(CUdeviceptr *, size_t);
  CUresult (*MemFree)(CUdeviceptr);
  CUresult (*MemHostAlloc)(void **, size_t, unsigned);
  CUresult (*MemFreeHost)(void *);
  CUresult (*MemHostGetDevicePointer)(CUdeviceptr *, void *, unsigned);
  CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
  CUresult (*MemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
  CUresult (*MemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*EventCreate)(CUevent *, unsigned);
  CUresult (*EventRecord)(CUevent, CUstream);
  CUresult (*EventSynchronize)(CUevent);
  CUresult (*EventElapsedTime)(float *, CUevent, CUevent);
  CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                           void **, void **);
  CUresult (*MemCreate)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long);
  CUresult (*MemRelease)(CUmemGenericAllocationHandle);
  CUresult (*MemAddressReserve)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
  CUresult (*MemAddressFree)(CUdeviceptr, size_t);
  CUresult (*MemMap)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long);
  CUresult (*MemUnmap)(CUdeviceptr, size_t);
  CUresult (*MemSetAccess)(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);
  CUresult (*MemGetAllocationGranularity)(size_t *, const CUmemAllocationProp *, int);
  CUresult (*GetErrorString)(CUresult, const char **);
} cu;

static void *libcuda;

static int json_fail(const char *code, int exit_code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  printf("{\"ok\":false,\"code\":\"%s\",\"error\":\"", code);
  for (const char *p = msg; *p; p++) {
    if (*p == '"' || *p == '\\') putchar('\\');
    if ((unsigned char)*p < 0x20) continue;
    putchar(*p);
  }
  printf("\"}\n");
  return exit_code;
}

static const char *errstr(CUresult r) {
  const char *s = NULL;
  if (cu.GetErrorString && cu.GetErrorString(r, &s) == CUDA_SUCCESS && s) return s;
  return "unknown CUDA error";
}

static void *sym(const char *a, const char *b) {
  void *p = dlsym(libcuda, a);
  if (!p && b) p = dlsym(libcuda, b);
  return p;
}

#define LOAD(field, name, alt)                                   \
  do {                                                           \
    *(void **)(&cu.field) = sym(name, alt);                      \
    if (!cu.field) missing = missing ? missing : name;           \
  } while (0)

static const char *load_driver(void) {
  const char *path = getenv("SPILLOVER_LIBCUDA");
  if (!path || !*path) path = "libcuda.so.1";
  libcuda = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!libcuda) return dlerror();
  const char *missing = NULL;
  LOAD(Init, "cuInit", NULL);
  LOAD(DeviceGetCount, "cuDeviceGetCount", NULL);
  LOAD(DeviceGet, "cuDeviceGet", NULL);
  LOAD(DeviceGetName, "cuDeviceGetName", NULL);
  LOAD(DeviceTotalMem, "cuDeviceTotalMem_v2", "cuDeviceTotalMem");
  LOAD(DeviceGetAttribute, "cuDeviceGetAttribute", NULL);
  LOAD(DeviceGetPCIBusId, "cuDeviceGetPCIBusId", NULL);
  LOAD(PrimaryCtxRetain, "cuDevicePrimaryCtxRetain", NULL);
  LOAD(CtxSetCurrent, "cuCtxSetCurrent", NULL);
  LOAD(CtxSynchronize, "cuCtxSynchronize", NULL);
  LOAD(ModuleLoadData, "cuModuleLoadData", NULL);
  LOAD(ModuleGetFunction, "cuModuleGetFunction", NULL);
  LOAD(MemGetInfo, "cuMemGetInfo_v2", "cuMemGetInfo");
  LOAD(MemAlloc, "cuMemAlloc_v2", "cuMemAlloc");
  LOAD(MemFree, "cuMemFree_v2", "cuMemFree");
  LOAD(MemHostAlloc, "cuMemHostAlloc", NULL);
  LOAD(MemFreeHost, "cuMemFreeHost", NULL);
  LOAD(MemHostGetDevicePointer, "cuMemHostGetDevicePointer_v2", "cuMemHostGetDevicePointer");
  LOAD(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", "cuMemcpyHtoDAsync");
  LOAD(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoHAsync");
  LOAD(MemsetD8, "cuMemsetD8_v2", "cuMemsetD8");
  LOAD(EventCreate, "cuEventCreate", NULL);
  LOAD(EventRecord, "cuEventRecord", NULL);
  LOAD(EventSynchronize, "cuEventSynchronize", NULL);
  LOAD(EventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime");
  LOAD(LaunchKernel, "cuLaunchKernel", NULL);
  LOAD(GetErrorString, "cuGetErrorString", NULL);
  /* VMM is optional: without it vmm_host_read_gbs is null. */
  *(void **)(&cu.MemCreate) = sym("cuMemCreate", NULL);
  *(void **)(&cu.MemRelease) = sym("cuMemRelease", NULL);
  *(void **)(&cu.MemAddressReserve) = sym("cuMemAddressReserve", NULL);
  *(void **)(&cu.MemAddressFree) = sym("cuMemAddressFree", NULL);
  *(void **)(&cu.MemMap) = sym("cuMemMap", NULL);
  *(void **)(&cu.MemUnmap) = sym("cuMemUnmap", NULL);
  *(void **)(&cu.MemSetAccess) = sym("cuMemSetAccess", NULL);
  *(void **)(&cu.MemGetAllocationGranularity) = sym("cuMemGetAllocationGranularity", NULL);
  if (missing) {
    static char buf[160];
    snprintf(buf, sizeof buf, "%s: missing %s", path, missing);
    return buf;
  }
  return NULL;
}

/* ---- GPU measurements ---------------------------------------------------------------------- */
static CUevent ev0, ev1;
static CUfunction kread;
static CUdeviceptr dscratch;
static int sm_count = 1;
static char gpu_err[512];

#define TRY(call)                                                                                  \
  do {                                                                                             \
    CUresult r_ = (call);                                                                          \
    if (r_ != CUDA_SUCCESS) {                                                                      \
      snprintf(gpu_err, sizeof gpu_err, "%s failed: %s (%d)", #call, errstr(r_), r_);              \
      return -1.0;                                                                                 \
    }                                                                                              \
  } while (0)

/* Best of `reps` timings of an H2D (dir 0) or D2H (dir 1) copy of `bytes`, in GB/s. */
static double time_copy(int dir, void *host, CUdeviceptr dev, size_t bytes, int reps) {
  double best = 0;
  for (int i = 0; i <= reps; i++) {
    TRY(cu.EventRecord(ev0, NULL));
    if (dir == 0) TRY(cu.MemcpyHtoDAsync(dev, host, bytes, NULL));
    else TRY(cu.MemcpyDtoHAsync(host, dev, bytes, NULL));
    TRY(cu.EventRecord(ev1, NULL));
    TRY(cu.EventSynchronize(ev1));
    float ms = 0;
    TRY(cu.EventElapsedTime(&ms, ev0, ev1));
    double gbs = (double)bytes / (ms / 1e3) / GB;
    if (i > 0 && gbs > best) best = gbs; /* the first run warms up */
  }
  return best;
}

/* Best of `reps` runs of the read kernel over `bytes` at device address p, in GB/s. */
static double time_read(CUdeviceptr p, size_t bytes, int reps) {
  unsigned long long n = bytes / 16;
  void *args[] = {&p, &n, &dscratch};
  unsigned grid = (unsigned)sm_count * 8u;
  double best = 0;
  for (int i = 0; i <= reps; i++) {
    TRY(cu.EventRecord(ev0, NULL));
    TRY(cu.LaunchKernel(kread, grid, 1, 1, 512, 1, 1, 0, NULL, args, NULL));
    TRY(cu.EventRecord(ev1, NULL));
    TRY(cu.EventSynchronize(ev1));
    float ms = 0;
    TRY(cu.EventElapsedTime(&ms, ev0, ev1));
    double gbs = (double)bytes / (ms / 1e3) / GB;
    if (i > 0 && gbs > best) best = gbs;
  }
  return best;
}

/* Kernel read of HOST_NUMA VMM pages mapped into one reserved range: spillover's own data path. */
static double time_vmm_host(CUdevice dev, size_t bytes, int reps) {
  if (!cu.MemCreate || !cu.MemAddressReserve || !cu.MemMap || !cu.MemSetAccess || !cu.MemGetAllocationGranularity) {
    snprintf(gpu_err, sizeof gpu_err, "driver has no VMM API");
    return -1.0;
  }
  int supported = 0, numa = 0;
  if (cu.DeviceGetAttribute(&supported, CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev) != CUDA_SUCCESS || !supported) {
    snprintf(gpu_err, sizeof gpu_err, "HOST_NUMA VMM allocations not supported on this device/driver");
    return -1.0;
  }
  if (cu.DeviceGetAttribute(&numa, CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, dev) != CUDA_SUCCESS || numa < 0) numa = 0;
  CUmemAllocationProp prop;
  memset(&prop, 0, sizeof prop);
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
  prop.location.id = numa;
  size_t gran = 0;
  TRY(cu.MemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
  if (gran == 0) gran = 2u << 20;
  bytes = (bytes + gran - 1) / gran * gran;
  CUmemGenericAllocationHandle h;
  TRY(cu.MemCreate(&h, bytes, &prop, 0));
  CUdeviceptr va = 0;
  double r = -1.0;
  if (cu.MemAddressReserve(&va, bytes, 0, 0, 0) == CUDA_SUCCESS) {
    if (cu.MemMap(va, bytes, 0, h, 0) == CUDA_SUCCESS) {
      CUmemAccessDesc d;
      d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
      d.location.id = dev;
      d.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
      if (cu.MemSetAccess(va, bytes, &d, 1) == CUDA_SUCCESS) r = time_read(va, bytes, reps);
      else snprintf(gpu_err, sizeof gpu_err, "cuMemSetAccess on HOST_NUMA pages failed");
      cu.MemUnmap(va, bytes);
    } else snprintf(gpu_err, sizeof gpu_err, "cuMemMap of HOST_NUMA pages failed");
    cu.MemAddressFree(va, bytes);
  } else snprintf(gpu_err, sizeof gpu_err, "cuMemAddressReserve failed");
  cu.MemRelease(h);
  return r;
}

/* ---- PCIe link ------------------------------------------------------------------------------- */
struct link { int gen, width, max_gen, max_width; const char *source; };

static void link_from_nvml(const char *busid, struct link *l) {
  const char *path = getenv("SPILLOVER_LIBNVML");
  void *h = dlopen(path && *path ? path : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return;
  nvmlReturn_t (*init)(void) = (nvmlReturn_t(*)(void))dlsym(h, "nvmlInit_v2");
  nvmlReturn_t (*byBus)(const char *, nvmlDevice_t *) = (nvmlReturn_t(*)(const char *, nvmlDevice_t *))dlsym(h, "nvmlDeviceGetHandleByPciBusId_v2");
  typedef nvmlReturn_t (*getu)(nvmlDevice_t, unsigned *);
  getu cg = (getu)dlsym(h, "nvmlDeviceGetCurrPcieLinkGeneration"), cw = (getu)dlsym(h, "nvmlDeviceGetCurrPcieLinkWidth");
  getu mg = (getu)dlsym(h, "nvmlDeviceGetMaxPcieLinkGeneration"), mw = (getu)dlsym(h, "nvmlDeviceGetMaxPcieLinkWidth");
  nvmlDevice_t d;
  if (init && byBus && init() == NVML_SUCCESS && byBus(busid, &d) == NVML_SUCCESS) {
    unsigned v;
    if (cg && cg(d, &v) == NVML_SUCCESS) l->gen = (int)v;
    if (cw && cw(d, &v) == NVML_SUCCESS) l->width = (int)v;
    if (mg && mg(d, &v) == NVML_SUCCESS) l->max_gen = (int)v;
    if (mw && mw(d, &v) == NVML_SUCCESS) l->max_width = (int)v;
    if (l->gen > 0) l->source = "nvml";
  }
  /* NVML stays loaded: nvmlShutdown is not needed for a one-shot tool. */
}

static int read_int_file(const char *path, double *out) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int ok = fscanf(f, "%lf", out) == 1 ? 0 : -1;
  fclose(f);
  return ok;
}

static int gen_of_gts(double gts) {
  return gts >= 60 ? 6 : gts >= 30 ? 5 : gts >= 15 ? 4 : gts >= 7.5 ? 3 : gts >= 4.5 ? 2 : gts > 0 ? 1 : 0;
}

static void link_from_sysfs(const char *busid, struct link *l) {
  char lower[64], path[256];
  size_t n = strlen(busid);
  if (n >= sizeof lower) return;
  for (size_t i = 0; i <= n; i++) lower[i] = (char)((busid[i] >= 'A' && busid[i] <= 'F') ? busid[i] + 32 : busid[i]);
  double v;
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/current_link_speed", lower);
  if (read_int_file(path, &v) == 0) { l->gen = gen_of_gts(v); l->source = "sysfs"; }
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/current_link_width", lower);
  if (read_int_file(path, &v) == 0) l->width = (int)v;
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/max_link_speed", lower);
  if (read_int_file(path, &v) == 0) l->max_gen = gen_of_gts(v);
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/max_link_width", lower);
  if (read_int_file(path, &v) == 0) l->max_width = (int)v;
}

/* ---- CPU RAM read ---------------------------------------------------------------------------- */
struct ram_job { const uint64_t *p; size_t n; uint64_t sum; pthread_barrier_t *bar; };

static void *ram_reader(void *arg) {
  struct ram_job *j = arg;
  pthread_barrier_wait(j->bar);
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 8 <= j->n; i += 8) {
    a += j->p[i] ^ j->p[i + 4];
    b += j->p[i + 1] ^ j->p[i + 5];
    c += j->p[i + 2] ^ j->p[i + 6];
    d += j->p[i + 3] ^ j->p[i + 7];
  }
  for (; i < j->n; i++) a += j->p[i];
  j->sum = a + b + c + d;
  pthread_barrier_wait(j->bar);
  return NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* GB/s reading `bytes` of `buf` with `threads` threads, best of `reps`; -1 on failure. */
static double ram_read(const uint64_t *buf, size_t bytes, int threads, int reps, uint64_t *sink) {
  pthread_t *tid = calloc((size_t)threads, sizeof *tid);
  struct ram_job *jobs = calloc((size_t)threads, sizeof *jobs);
  if (!tid || !jobs) { free(tid); free(jobs); return -1; }
  size_t words = bytes / 8, per = words / (size_t)threads;
  double best = 0;
  for (int r = 0; r < reps; r++) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads + 1);
    int started = 0;
    for (int t = 0; t < threads; t++) {
      jobs[t] = (struct ram_job){buf + (size_t)t * per, per, 0, &bar};
      if (pthread_create(&tid[t], NULL, ram_reader, &jobs[t]) != 0) break;
      started++;
    }
    if (started != threads) { /* cannot proceed without every thread at the barrier */
      free(tid); free(jobs);
      return -1;
    }
    pthread_barrier_wait(&bar);
    double t0 = now_s();
    pthread_barrier_wait(&bar);
    double dt = now_s() - t0;
    for (int t = 0; t < threads; t++) { pthread_join(tid[t], NULL); *sink += jobs[t].sum; }
    pthread_barrier_destroy(&bar);
    double gbs = (double)(per * (size_t)threads * 8) / dt / GB;
    if (gbs > best) best = gbs;
  }
  free(tid);
  free(jobs);
  return best;
}

static unsigned long long meminfo_kb(const char *key) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long v = 0;
  size_t k = strlen(key);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, k) == 0 && line[k] == ':') { v = strtoull(line + k + 1, NULL, 10); break; }
  }
  fclose(f);
  return v;
}

static void print_cpu(size_t ram_bytes_req) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) ncpu = 1;
  unsigned long long avail = meminfo_kb("MemAvailable") * 1024ull;
  size_t bytes = ram_bytes_req;
  if (avail && bytes > avail / 4) bytes = (size_t)(avail / 4);
  bytes = bytes / (64u * (size_t)ncpu) * (64u * (size_t)ncpu);
  printf("\"cpu\":{\"threads\":%ld,", ncpu);
  uint64_t *buf = bytes ? malloc(bytes) : NULL;
  if (!buf) {
    printf("\"ram_read_gbs\":null,\"ram_read_by_threads\":[],\"ram_error\":\"cannot allocate the test buffer\",");
  } else {
    /* Touch every page with non-zero data so reads hit real memory, not the zero page. */
    for (size_t i = 0; i < bytes / 8; i++) buf[i] = i * 0x9e3779b97f4a7c15ull;
    uint64_t sink = 0;
    double best = 0;
    printf("\"ram_bytes\":%zu,\"ram_read_by_threads\":[", bytes);
    int first = 1;
    for (long t = 1;; t = t * 2 > ncpu && t < ncpu ? ncpu : t * 2) {
      double g = ram_read(buf, bytes, (int)t, 3, &sink);
      if (g > 0) {
        printf("%s{\"threads\":%ld,\"gbs\":%.2f}", first ? "" : ",", t, g);
        first = 0;
        if (g > best) best = g;
      }
      if (t >= ncpu) break;
    }
    printf("],\"ram_read_gbs\":%.2f,\"checksum\":%llu,", best, (unsigned long long)(sink & 0xffff));
    free(buf);
  }
  unsigned long long total = meminfo_kb("MemTotal") * 1024ull;
  if (total) printf("\"mem_total_bytes\":%llu}", total);
  else printf("\"mem_total_bytes\":null}");
}

static void print_num(const char *key, double v) {
  if (v > 0) printf("\"%s\":%.2f,", key, v);
  else printf("\"%s\":null,", key);
}

int main(int argc, char **argv) {
  int cpu_only = 0, devno = 0;
  size_t bytes = 1024u << 20, ram_bytes = 2048u << 20;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--cpu-only")) cpu_only = 1;
    else if (!strcmp(argv[i], "--device") && i + 1 < argc) devno = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--bytes") && i + 1 < argc) bytes = (size_t)strtoull(argv[++i], NULL, 10) << 20;
    else if (!strcmp(argv[i], "--ram-bytes") && i + 1 < argc) ram_bytes = (size_t)strtoull(argv[++i], NULL, 10) << 20;
    else return json_fail("usage", 2, "unknown argument %s (usage: hwprobe [--cpu-only] [--device N] [--bytes MiB] [--ram-bytes MiB])", argv[i]);
  }
  if (bytes < (16u << 20)) bytes = 16u << 20;
  if (cpu_only) {
    printf("{\"ok\":true,\"tool\":\"hwprobe\",\"version\":1,\"device\":null,");
    print_cpu(ram_bytes);
    printf("}\n");
    return 0;
  }
  const char *why = load_driver();
  if (why) return json_fail("no_gpu", 3, "no CUDA driver: %s", why);
  /* The CPU test double answers the driver API but cannot run PTX: say what it is rather than
  ** blame the driver version when the read kernel does not load. */
  if (dlsym(libcuda, "fakecuda_calls"))
    return json_fail("no_gpu", 3,
                     "this libcuda is spillover's CPU test double (native/build/fake), not an NVIDIA driver; "
                     "unset SPILLOVER_LIBCUDA (or LD_LIBRARY_PATH) to measure the NVIDIA driver");
  CUresult r = cu.Init(0);
  if (r != CUDA_SUCCESS) return json_fail("no_gpu", 3, "cuInit failed: %s (%d): no usable NVIDIA GPU", errstr(r), r);
  int count = 0;
  if (cu.DeviceGetCount(&count) != CUDA_SUCCESS || count == 0) return json_fail("no_gpu", 3, "the CUDA driver sees no GPU");
  if (devno < 0 || devno >= count) return json_fail("usage", 2, "--device %d: this machine has %d GPU(s)", devno, count);
  CUdevice dev;
  CUcontext ctx;
  CUmodule mod;
  char name[256] = "", busid[64] = "";
  size_t total = 0, free_b = 0, total_b = 0;
  int ccmaj = 0, ccmin = 0;
  if ((r = cu.DeviceGet(&dev, devno)) || (r = cu.DeviceGetName(name, sizeof name, dev)) || (r = cu.DeviceTotalMem(&total, dev)) ||
      (r = cu.PrimaryCtxRetain(&ctx, dev)) || (r = cu.CtxSetCurrent(ctx)))
    return json_fail("error", 1, "device %d setup failed: %s (%d)", devno, errstr(r), r);
  cu.DeviceGetAttribute(&sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
  cu.DeviceGetAttribute(&ccmaj, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  cu.DeviceGetAttribute(&ccmin, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  cu.DeviceGetPCIBusId(busid, sizeof busid, dev);
  if ((r = cu.ModuleLoadData(&mod, hwprobe_ptx)) || (r = cu.ModuleGetFunction(&kread, mod, "hwprobe_read")))
    return json_fail("error", 1, "cannot load the read kernel (PTX for sm_90, needs a CUDA 13 driver): %s (%d)", errstr(r), r);
  if ((r = cu.EventCreate(&ev0, CU_EVENT_DEFAULT)) || (r = cu.EventCreate(&ev1, CU_EVENT_DEFAULT)) || (r = cu.MemAlloc(&dscratch, 64)) ||
      (r = cu.MemsetD8(dscratch, 0, 64)))
    return json_fail("error", 1, "setup failed: %s (%d)", errstr(r), r);
  if (cu.MemGetInfo(&free_b, &total_b) == CUDA_SUCCESS && bytes > free_b / 4) bytes = free_b / 4 / (2u << 20) * (2u << 20);

  void *host = NULL, *mapped = NULL;
  CUdeviceptr dbuf = 0, dmapped = 0;
  double h2d = -1, d2h = -1, zc = -1, vmm = -1, vram = -1;
  char errs[4][512] = {"", "", "", ""};
  if ((r = cu.MemHostAlloc(&host, bytes, 0)) || (r = cu.MemAlloc(&dbuf, bytes)))
    return json_fail("error", 1, "cannot allocate %zu MiB pinned + device buffers: %s (%d)", bytes >> 20, errstr(r), r);
  memset(host, 0x5a, bytes);
  h2d = time_copy(0, host, dbuf, bytes, 3);
  d2h = time_copy(1, host, dbuf, bytes, 3);
  if (h2d < 0 || d2h < 0) snprintf(errs[0], sizeof errs[0], "%s", gpu_err);
  /* VRAM: several passes' worth, so the 50 MB L2 does not flatter it. */
  vram = time_read(dbuf, bytes, 5);
  if (vram < 0) snprintf(errs[1], sizeof errs[1], "%s", gpu_err);
  cu.MemFreeHost(host);
  if (cu.MemHostAlloc(&mapped, bytes, CU_MEMHOSTALLOC_DEVICEMAP) == CUDA_SUCCESS && cu.MemHostGetDevicePointer(&dmapped, mapped, 0) == CUDA_SUCCESS) {
    memset(mapped, 0x3c, bytes);
    zc = time_read(dmapped, bytes, 3);
    if (zc < 0) snprintf(errs[2], sizeof errs[2], "%s", gpu_err);
    cu.MemFreeHost(mapped);
  } else snprintf(errs[2], sizeof errs[2], "cannot allocate mapped pinned memory");
  vmm = time_vmm_host(dev, bytes, 3);
  if (vmm < 0) snprintf(errs[3], sizeof errs[3], "%s", gpu_err);
  cu.MemFree(dbuf);

  struct link l = {0, 0, 0, 0, NULL};
  link_from_nvml(busid, &l);
  if (!l.source) link_from_sysfs(busid, &l);

  printf("{\"ok\":true,\"tool\":\"hwprobe\",\"version\":1,");
  printf("\"device\":{\"index\":%d,\"name\":\"%s\",\"vram_bytes\":%zu,\"cc\":\"%d.%d\",\"sm_count\":%d,\"pci_bus_id\":\"%s\"},", devno, name, total,
         ccmaj, ccmin, sm_count, busid);
  printf("\"pcie\":{");
  if (l.gen > 0) printf("\"gen\":%d,\"width\":%d,\"max_gen\":%d,\"max_width\":%d,\"source\":\"%s\"", l.gen, l.width, l.max_gen, l.max_width, l.source);
  else printf("\"gen\":null,\"width\":null,\"max_gen\":null,\"max_width\":null,\"source\":null");
  printf("},\"bytes\":%zu,", bytes);
  print_num("h2d_gbs", h2d);
  print_num("d2h_gbs", d2h);
  print_num("zero_copy_read_gbs", zc);
  print_num("vmm_host_read_gbs", vmm);
  print_num("vram_read_gbs", vram);
  printf("\"errors\":[");
  int first = 1;
  for (int i = 0; i < 4; i++) {
    if (!errs[i][0]) continue;
    printf("%s\"", first ? "" : ",");
    for (const char *p = errs[i]; *p; p++) {
      if (*p == '"' || *p == '\\') putchar('\\');
      if ((unsigned char)*p >= 0x20) putchar(*p);
    }
    putchar('"');
    first = 0;
  }
  printf("],");
  print_cpu(ram_bytes);
  printf("}\n");
  return 0;
}
