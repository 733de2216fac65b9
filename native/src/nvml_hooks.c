/*
** nvml_hooks.c: NVML memory info reports the same capacity as cuMemGetInfo for the CUDA device
** with the same PCI address (matched through the real NVML), so tools and frameworks that size
** themselves from NVML see the tiered capacity. A process that never touched CUDA, or a device
** we cannot match, gets the driver's numbers untouched.
*/
#define _GNU_SOURCE
#include <string.h>

#include "sp.h"

/* Lock held. The initialised CUDA device backing `nd`, or NULL. */
static sp_dev *match(nvmlDevice_t nd) {
  sp_dev *only = NULL;
  int ready = 0;
  for (int i = 0; i < SP_MAX_DEV; i++)
    if (sp_g.dev[i].ready) {
      ready++;
      only = &sp_g.dev[i];
    }
  if (!ready) return NULL;
  nvmlPciInfo_t pci;
  memset(&pci, 0, sizeof(pci));
  if (sp_real.nvmlDeviceGetPciInfo_v3 && sp_real.nvmlDeviceGetPciInfo_v3(nd, &pci) == NVML_SUCCESS) {
    for (int i = 0; i < SP_MAX_DEV; i++) {
      sp_dev *d = &sp_g.dev[i];
      if (d->ready && d->pci_bus >= 0 && (unsigned)d->pci_bus == pci.bus && (unsigned)d->pci_device == pci.device &&
          (unsigned)d->pci_domain == pci.domain)
        return d;
    }
  }
  return ready == 1 ? only : NULL; /* one GPU in use: it is that one */
}

static int numbers(nvmlDevice_t nd, unsigned long long *total, unsigned long long *free_b, unsigned long long *used) {
  if (!sp_active()) return 0;
  sp_lock();
  sp_dev *d = match(nd);
  int ok = d && d->tiering;
  if (ok) {
    uint64_t t = sp_dev_reported_total(d), u = sp_dev_usage(d);
    *total = t;
    *used = u < t ? u : t;
    *free_b = t - *used;
  }
  sp_unlock();
  return ok;
}

SP_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
  sp_nvml_load();
  if (!sp_real.nvmlDeviceGetMemoryInfo) return NVML_ERROR_NOT_SUPPORTED;
  nvmlReturn_t rc = sp_real.nvmlDeviceGetMemoryInfo(device, memory);
  if (rc == NVML_SUCCESS && memory) numbers(device, &memory->total, &memory->free, &memory->used);
  return rc;
}

SP_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
  sp_nvml_load();
  if (!sp_real.nvmlDeviceGetMemoryInfo_v2) return NVML_ERROR_NOT_SUPPORTED;
  nvmlReturn_t rc = sp_real.nvmlDeviceGetMemoryInfo_v2(device, memory);
  /* v2 splits out driver-reserved memory; ours is all usable, and free must equal
  ** cuMemGetInfo's, so reserved reads 0. */
  if (rc == NVML_SUCCESS && memory && numbers(device, &memory->total, &memory->free, &memory->used))
    memory->reserved = 0;
  return rc;
}
