/*
** device.c: per-device budgets (VRAM limit and reserve, initialised when a context for the device
** is first seen), the pinned budget/lease checks, and the capacity numbers every reporting hook
** uses, so cuMemGetInfo, cuDeviceTotalMem and NVML always agree.
*/
#define _GNU_SOURCE
#include "broker_client.h"
#include "sp.h"
#include "spillover_protocol.h"

uint64_t sp_dev_vram_committed(const sp_dev *d) {
  return d->passthrough_bytes + d->vmm_dev_bytes + d->vram_pool.total * SP_PAGE;
}

uint64_t sp_dev_usage(const sp_dev *d) {
  return d->passthrough_bytes + d->vmm_dev_bytes + d->vvmm_bytes[0] + d->vvmm_bytes[1] + d->tier_bytes[0] +
         d->tier_bytes[1];
}

uint64_t sp_dev_reported_total(const sp_dev *d) { return d->limit + sp_g.pinned_limit; }

uint64_t sp_pinned_committed(void) { return sp_g.pinned_pool.total * SP_PAGE; }

void sp_dev_peaks(sp_dev *d) {
  for (int t = 0; t < 2; t++)
    if (d->tier_bytes[t] > d->tier_peak[t]) d->tier_peak[t] = d->tier_bytes[t];
  if (d->passthrough_bytes > d->passthrough_peak) d->passthrough_peak = d->passthrough_bytes;
}

int sp_pinned_can_commit(uint64_t extra) {
  uint64_t committed = sp_pinned_committed();
  if (!sp_pinned_limit_allows(committed + extra)) return 0;
  if (!sp_g.broker) return 1;
  if (committed + extra > sp_broker_lease_cap()) {
    sp_g.lease_denials++;
    return 0;
  }
  if (committed + extra <= sp_g.pinned_lease) return 1;
  uint64_t need = committed + extra - sp_g.pinned_lease, total = 0;
  int deny = 0;
  uint64_t got = sp_broker_pinned_grow(need, &total, &deny);
  sp_g.pinned_lease += got;
  if (got < need) {
    sp_g.lease_denials++;
    /* Unlike a full machine, a quota does not pass: say once why allocations now fail. */
    static int quota_told;
    if (deny == SP_DENY_QUOTA && !quota_told) {
      quota_told = 1;
      sp_log(SP_LOG_WARN, "the broker refused more pinned memory: this user is at its quota "
                          "(lease %llu MiB); allocations past it return CUDA_ERROR_OUT_OF_MEMORY",
             (unsigned long long)(total >> 20));
    }
    return 0;
  }
  return 1;
}

static int attr(int a, CUdevice dev, int dflt) {
  int v = dflt;
  if (!sp_real.cuDeviceGetAttribute || sp_real.cuDeviceGetAttribute(&v, a, dev) != CUDA_SUCCESS) return dflt;
  return v;
}

/* Free VRAM now, from a context of this device: the current one, else the primary context if
** the program already made it active; else the physical total (no context is created for us). */
static uint64_t free_vram(CUdevice dev, uint64_t physical) {
  CUcontext cur = NULL;
  CUdevice cdev = -1;
  size_t fr = 0, tot = 0;
  if (sp_real.cuCtxGetCurrent && sp_real.cuCtxGetCurrent(&cur) == CUDA_SUCCESS && cur &&
      sp_real.cuCtxGetDevice(&cdev) == CUDA_SUCCESS && cdev == dev &&
      sp_real.cuMemGetInfo_v2(&fr, &tot) == CUDA_SUCCESS)
    return fr;
  unsigned int flags = 0;
  int active = 0;
  if (sp_real.cuDevicePrimaryCtxGetState && sp_real.cuDevicePrimaryCtxGetState(dev, &flags, &active) == CUDA_SUCCESS &&
      active && sp_real.cuDevicePrimaryCtxRetain) {
    CUcontext pctx;
    if (sp_real.cuDevicePrimaryCtxRetain(&pctx, dev) == CUDA_SUCCESS) {
      if (sp_real.cuCtxPushCurrent_v2(pctx) == CUDA_SUCCESS) {
        CUresult rc = sp_real.cuMemGetInfo_v2(&fr, &tot);
        CUcontext popped;
        sp_real.cuCtxPopCurrent_v2(&popped);
        sp_real.cuDevicePrimaryCtxRelease_v2(dev);
        if (rc == CUDA_SUCCESS) return fr;
      } else {
        sp_real.cuDevicePrimaryCtxRelease_v2(dev);
      }
    }
  }
  return physical;
}

static void broker_connect(void) {
  if (sp_g.broker_tried) return;
  sp_g.broker_tried = 1;
  if (sp_cfg.broker_off) return;
  int count = 1;
  if (sp_real.cuDeviceGetCount) sp_real.cuDeviceGetCount(&count);
  uint64_t lease = 0, step = 0;
  if (sp_broker_open(count, sp_g.grow_step, &lease, &step)) {
    sp_g.broker = 1;
    sp_g.pinned_lease = lease;
    if (step >= SP_PAGE) sp_g.grow_step = step / SP_PAGE * SP_PAGE;
    sp_log(SP_LOG_INFO, "broker lease %llu MiB, grow step %llu MiB", (unsigned long long)(lease >> 20),
           (unsigned long long)(step >> 20));
  }
}

sp_dev *sp_dev_get(int ordinal) {
  if (ordinal < 0 || ordinal >= SP_MAX_DEV) return NULL;
  sp_dev *d = &sp_g.dev[ordinal];
  if (d->ready) return d;
  size_t phys = 0;
  if (!sp_real.cuDeviceTotalMem_v2 || sp_real.cuDeviceTotalMem_v2(&phys, ordinal) != CUDA_SUCCESS) return NULL;
  broker_connect();
  sp_stats_open();
  d->ordinal = ordinal;
  d->physical = phys;
  d->numa_id = attr(CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, ordinal, 0);
  if (d->numa_id < 0) d->numa_id = 0;
  d->pci_domain = attr(CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, ordinal, -1);
  d->pci_bus = attr(CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, ordinal, -1);
  d->pci_device = attr(CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, ordinal, -1);
  d->tiering = attr(CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, ordinal, 0) &&
               attr(CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, ordinal, 0) &&
               sp_real.cuMemCreate && sp_real.cuMemMap && sp_real.cuMemAddressReserve && sp_real.cuMemSetAccess;
  const sp_size *ls = sp_cfg.vram_limit_dev[ordinal].kind ? &sp_cfg.vram_limit_dev[ordinal] : &sp_cfg.vram_limit;
  const sp_size *rs = sp_cfg.vram_reserve_dev[ordinal].kind ? &sp_cfg.vram_reserve_dev[ordinal] : &sp_cfg.vram_reserve;
  uint64_t lim = ls->kind ? sp_size_resolve(ls, phys, phys) : free_vram(ordinal, phys);
  if (lim > phys) {
    static int said; /* once per process, not once per device */
    if (!said++)
      sp_log(SP_LOG_WARN, "SPILLOVER_VRAM_LIMIT (%llu MiB) is more than device %d has (%llu MiB); using %llu MiB",
             (unsigned long long)(lim >> 20), ordinal, (unsigned long long)(phys >> 20),
             (unsigned long long)(phys >> 20));
    lim = phys;
  }
  if (sp_g.broker) lim = sp_broker_vram(ordinal, lim, phys);
  d->limit = lim;
  uint64_t tenth = lim / 10;
  uint64_t res = sp_size_resolve(rs, lim, tenth < (1ull << 30) ? tenth : (1ull << 30));
  d->reserve = res > lim ? lim : res;
  d->ready = 1;
  if (!d->tiering)
    sp_log(SP_LOG_WARN, "device %d lacks VMM with host NUMA memory; its allocations pass through", ordinal);
  sp_log(SP_LOG_DEBUG, "device %d: physical %llu MiB, limit %llu MiB, reserve %llu MiB, numa %d", ordinal,
         (unsigned long long)(phys >> 20), (unsigned long long)(lim >> 20), (unsigned long long)(d->reserve >> 20),
         d->numa_id);
  sp_stats_publish();
  return d;
}

/* Lock held. d allocates: once a second device does, copies start checking which device needs
** access to tiered ranges (peer.c). Capacity queries alone (a framework asking every device's
** total) do not count: a program that uses one GPU of several keeps the single-GPU path. */
void sp_dev_note_alloc(sp_dev *d) {
  if (d->allocated) return;
  d->allocated = 1;
  for (int i = 0; i < SP_MAX_DEV; i++)
    if (i != d->ordinal && sp_g.dev[i].allocated) __atomic_store_n(&sp_g.multi, 1, __ATOMIC_RELAXED);
}

sp_dev *sp_dev_current(void) {
  CUdevice dev;
  if (!sp_real.cuCtxGetDevice || sp_real.cuCtxGetDevice(&dev) != CUDA_SUCCESS) return NULL;
  sp_lock();
  sp_dev *d = sp_dev_get(dev);
  sp_unlock();
  return d;
}
