/*
** fake_nvml.c: libnvidia-ml.so.1 for machines without a GPU, the NVML half of the CPU test
** double. It describes the same devices as the fake libcuda.so.1 (FAKE_CUDA_DEVICES,
** FAKE_CUDA_VRAM) and takes "used" memory from the fake libcuda in this process when it is
** loaded (dlopen RTLD_NOLOAD + fakecuda_vram_used), so that the capacities NVML and the driver
** report agree, as the real pair do. Without the fake libcuda loaded, used memory is 0.
**
** Layouts and return codes come from native/include/cuda_abi.h (copied from nvml.h).
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../include/cuda_abi.h"

#define EXPORT __attribute__((visibility("default")))
#define MAX_DEVICES 16

/* The handle the fake hands out: an index into g_dev. */
struct nvmlDevice_st {
  int index;
};

static int g_init_count;
static int g_devices = 1;
static unsigned long long g_vram = 1ull << 30;
static struct nvmlDevice_st g_dev[MAX_DEVICES];

static unsigned long long parse_size(const char *s, unsigned long long dflt) {
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || v == 0) return dflt;
  unsigned long long mul = 1;
  switch (*end) {
  case 'K': case 'k': mul = 1ull << 10; end++; break;
  case 'M': case 'm': mul = 1ull << 20; end++; break;
  case 'G': case 'g': mul = 1ull << 30; end++; break;
  case 'T': case 't': mul = 1ull << 40; end++; break;
  default: break;
  }
  if (*end == 'i' && mul > 1) end++;
  if ((*end == 'B' || *end == 'b') && mul > 1) end++;
  return *end == '\0' ? v * mul : dflt;
}

static nvmlReturn_t do_init(void) {
  const char *v = getenv("FAKE_CUDA_VRAM");
  g_vram = v && *v ? parse_size(v, 1ull << 30) : 1ull << 30;
  const char *d = getenv("FAKE_CUDA_DEVICES");
  g_devices = 1;
  if (d && *d) {
    int n = atoi(d);
    g_devices = n < 0 ? 0 : n > MAX_DEVICES ? MAX_DEVICES : n;
  }
  for (int i = 0; i < MAX_DEVICES; i++) g_dev[i].index = i;
  g_init_count++;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlInit_v2(void) { return do_init(); }
EXPORT nvmlReturn_t nvmlInit(void) { return do_init(); }
EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
  (void)flags;
  return do_init();
}

EXPORT nvmlReturn_t nvmlShutdown(void) {
  if (g_init_count == 0) return NVML_ERROR_UNINITIALIZED;
  g_init_count--;
  return NVML_SUCCESS;
}

#define NEED_INIT()                                                                            \
  do {                                                                                         \
    if (g_init_count == 0) return NVML_ERROR_UNINITIALIZED;                                    \
  } while (0)

static int valid(nvmlDevice_t d) { return d >= &g_dev[0] && d < &g_dev[g_devices]; }

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
  NEED_INIT();
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  *count = (unsigned int)g_devices;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
  NEED_INIT();
  if (!device || index >= (unsigned int)g_devices) return NVML_ERROR_INVALID_ARGUMENT;
  *device = &g_dev[index];
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
  return nvmlDeviceGetHandleByIndex_v2(index, device);
}

/* Used bytes as the fake libcuda of this process sees them (0 if it is not loaded). */
static unsigned long long used_bytes(int dev) {
  void *h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
  if (!h) return 0;
  size_t (*fn)(int) = (size_t(*)(int))dlsym(h, "fakecuda_vram_used");
  unsigned long long v = fn ? fn(dev) : 0;
  dlclose(h);
  return v;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
  NEED_INIT();
  if (!valid(d) || !m) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned long long used = used_bytes(d->index);
  if (used > g_vram) used = g_vram;
  m->total = g_vram;
  m->used = used;
  m->free = g_vram - used;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
  NEED_INIT();
  if (!valid(d) || !m) return NVML_ERROR_INVALID_ARGUMENT;
  if (m->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  unsigned long long used = used_bytes(d->index);
  if (used > g_vram) used = g_vram;
  m->total = g_vram;
  m->reserved = 0;
  m->used = used;
  m->free = g_vram - used;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len) {
  NEED_INIT();
  if (!valid(d) || !name) return NVML_ERROR_INVALID_ARGUMENT;
  char buf[96];
  int n = snprintf(buf, sizeof buf, "spillover fake GPU %d (CPU test double)", d->index);
  if ((unsigned int)n + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(name, buf, (size_t)n + 1);
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int len) {
  NEED_INIT();
  if (!valid(d) || !uuid) return NVML_ERROR_INVALID_ARGUMENT;
  /* The same 16 bytes as the fake cuDeviceGetUuid ("spillover-fake\0" + index), as GPU-<hex>. */
  static const unsigned char base[16] = {'s', 'p', 'i', 'l', 'l', 'o', 'v', 'e', 'r', '-', 'f', 'a', 'k', 'e', 0, 0};
  unsigned char b[16];
  memcpy(b, base, 16);
  b[15] = (unsigned char)d->index;
  char buf[64];
  snprintf(buf, sizeof buf, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
           b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  if (strlen(buf) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
  strcpy(uuid, buf);
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int len) {
  NEED_INIT();
  if (!version) return NVML_ERROR_INVALID_ARGUMENT;
  const char *v = "580.0.0-fake";
  if (strlen(v) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
  strcpy(version, v);
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
  if (!v) return NVML_ERROR_INVALID_ARGUMENT;
  *v = 13000;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { return nvmlSystemGetCudaDriverVersion(v); }

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *pci) {
  NEED_INIT();
  if (!valid(d) || !pci) return NVML_ERROR_INVALID_ARGUMENT;
  memset(pci, 0, sizeof *pci);
  pci->domain = 0;
  pci->bus = 0x10u + (unsigned int)d->index;
  pci->device = 0;
  pci->pciDeviceId = 0x233010deu;
  snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "0000:%02x:00.0", pci->bus);
  snprintf(pci->busId, sizeof pci->busId, "00000000:%02x:00.0", pci->bus);
  return NVML_SUCCESS;
}

#define LINK_QUERY(name, value)                                                                \
  EXPORT nvmlReturn_t name(nvmlDevice_t d, unsigned int *out) {                                \
    NEED_INIT();                                                                               \
    if (!valid(d) || !out) return NVML_ERROR_INVALID_ARGUMENT;                                 \
    *out = value;                                                                              \
    return NVML_SUCCESS;                                                                       \
  }

LINK_QUERY(nvmlDeviceGetCurrPcieLinkGeneration, 5)
LINK_QUERY(nvmlDeviceGetMaxPcieLinkGeneration, 5)
LINK_QUERY(nvmlDeviceGetCurrPcieLinkWidth, 16)
LINK_QUERY(nvmlDeviceGetMaxPcieLinkWidth, 16)

/* Reports this process (if it holds fake VRAM) as the only compute process. */
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count,
                                                            nvmlProcessInfo_t *infos) {
  NEED_INIT();
  if (!valid(d) || !count) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned long long used = used_bytes(d->index);
  unsigned int n = used > 0 ? 1 : 0;
  if (*count < n || (n && !infos)) {
    *count = n;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  *count = n;
  if (n) infos[0] = (nvmlProcessInfo_t){(unsigned int)getpid(), used, 0xFFFFFFFFu, 0xFFFFFFFFu};
  return NVML_SUCCESS;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t r) {
  switch (r) {
  case NVML_SUCCESS: return "Success";
  case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
  case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
  case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
  case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
  case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument Version Mismatch";
  default: return "Unknown Error";
  }
}
