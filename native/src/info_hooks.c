/*
** info_hooks.c: capacity and pointer queries. Capacity: total = VRAM limit + pinned budget,
** free = total - this process's usage in all tiers, the same numbers from cuMemGetInfo and
** cuDeviceTotalMem (nvml_hooks.c uses them too). A tiered pointer answers like device memory
** from cuMemAlloc: memory type DEVICE, its whole range, a stable buffer id; IPC is refused.
*/
#define _GNU_SOURCE
#include <limits.h>
#include <string.h>

#include "sp.h"

/* The capacity the current device reports when it tiers (1), else 0: keep the driver's answer.
** Also refreshes the stats record, which shows the free bytes last reported. */
static int current_capacity(uint64_t *free_b, uint64_t *total_b) {
  if (!sp_active()) return 0;
  sp_dev *d = sp_dev_current();
  if (!d || !d->tiering) return 0;
  sp_lock();
  uint64_t total = sp_dev_reported_total(d), used = sp_dev_usage(d);
  *total_b = total;
  *free_b = total > used ? total - used : 0;
  d->reported_free = *free_b;
  sp_stats_publish();
  sp_unlock();
  return 1;
}

SP_EXPORT CUresult cuMemGetInfo_v2(size_t *free_b, size_t *total_b) {
  sp_cuda_load();
  if (!sp_real.cuMemGetInfo_v2) return CUDA_ERROR_NOT_FOUND;
  CUresult rc = sp_real.cuMemGetInfo_v2(free_b, total_b);
  uint64_t f, t;
  if (rc != CUDA_SUCCESS || !current_capacity(&f, &t)) return rc;
  if (free_b) *free_b = (size_t)f;
  if (total_b) *total_b = (size_t)t;
  return rc;
}

static unsigned int clamp32(uint64_t v) { return v > UINT_MAX ? UINT_MAX : (unsigned int)v; }

SP_EXPORT CUresult cuMemGetInfo(unsigned int *free_b, unsigned int *total_b) {
  sp_cuda_load();
  if (!sp_real.cuMemGetInfo) return CUDA_ERROR_NOT_FOUND;
  CUresult rc = sp_real.cuMemGetInfo(free_b, total_b);
  uint64_t f, t;
  if (rc != CUDA_SUCCESS || !current_capacity(&f, &t)) return rc;
  if (free_b) *free_b = clamp32(f);
  if (total_b) *total_b = clamp32(t);
  return rc;
}

static int total_for(CUdevice dev, uint64_t *total) {
  if (!sp_active()) return 0;
  sp_lock();
  sp_dev *d = sp_dev_get(dev);
  int ok = d && d->tiering;
  if (ok) *total = sp_dev_reported_total(d);
  sp_unlock();
  return ok;
}

SP_EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
  sp_cuda_load();
  if (!sp_real.cuDeviceTotalMem_v2) return CUDA_ERROR_NOT_FOUND;
  CUresult rc = sp_real.cuDeviceTotalMem_v2(bytes, dev);
  uint64_t t;
  if (rc == CUDA_SUCCESS && bytes && total_for(dev, &t)) *bytes = (size_t)t;
  return rc;
}

SP_EXPORT CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev) {
  sp_cuda_load();
  if (!sp_real.cuDeviceTotalMem) return CUDA_ERROR_NOT_FOUND;
  CUresult rc = sp_real.cuDeviceTotalMem(bytes, dev);
  uint64_t t;
  if (rc == CUDA_SUCCESS && bytes && total_for(dev, &t)) *bytes = clamp32(t);
  return rc;
}

/* ---- pointers ------------------------------------------------------------------------------ */

typedef struct tinfo {
  CUdeviceptr va;
  uint64_t size, buffer_id;
  int dev;
  CUcontext ctx;
} tinfo;

/* 1 if p lies in a live tiered range (copied out under the lock). */
static int tiered_lookup(CUdeviceptr p, tinfo *t) {
  if (!sp_active()) return 0;
  sp_lock();
  sp_rec *r = sp_table_containing(p);
  int hit = r && r->tiered && !r->dying;
  if (hit && r->vh) { /* a program mapping answers as one range, as the driver's would */
    sp_rec *first = sp_table_find(r->map_va);
    *t = (tinfo){r->map_va, r->map_size, first ? first->buffer_id : r->buffer_id, r->dev, r->ctx};
  } else if (hit) {
    *t = (tinfo){r->va, r->size, r->buffer_id, r->dev, r->ctx};
  }
  sp_unlock();
  return hit;
}

/* 1 = answered (rc in *rc), 0 = the driver's answer stands. */
static int tiered_attr(const tinfo *t, CUpointer_attribute a, void *data, CUdeviceptr p, CUresult *rc) {
  *rc = CUDA_SUCCESS;
  switch (a) {
  case CU_POINTER_ATTRIBUTE_CONTEXT: *(CUcontext *)data = t->ctx; return 1;
  case CU_POINTER_ATTRIBUTE_MEMORY_TYPE: *(unsigned int *)data = CU_MEMORYTYPE_DEVICE; return 1;
  case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: *(CUdeviceptr *)data = p; return 1;
  case CU_POINTER_ATTRIBUTE_HOST_POINTER: *rc = CUDA_ERROR_INVALID_VALUE; return 1; /* as device memory */
  case CU_POINTER_ATTRIBUTE_BUFFER_ID: *(unsigned long long *)data = t->buffer_id; return 1;
  case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *(int *)data = t->dev; return 1;
  case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR: *(CUdeviceptr *)data = t->va; return 1;
  case CU_POINTER_ATTRIBUTE_RANGE_SIZE: *(size_t *)data = (size_t)t->size; return 1;
  default: return 0;
  }
}

/* Booleans the driver normally answers for mapped VMM memory; filled only if it did not. */
static int tiered_bool(CUpointer_attribute a, void *data) {
  switch (a) {
  case CU_POINTER_ATTRIBUTE_IS_MANAGED:
  case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE: *(unsigned char *)data = 0; return 1;
  case CU_POINTER_ATTRIBUTE_MAPPED: *(unsigned char *)data = 1; return 1;
  default: return 0;
  }
}

SP_EXPORT CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr) {
  sp_cuda_load();
  if (!sp_real.cuPointerGetAttribute) return CUDA_ERROR_NOT_FOUND;
  tinfo t;
  if (!data || !tiered_lookup(ptr, &t)) return sp_real.cuPointerGetAttribute(data, attribute, ptr);
  CUresult rc;
  if (tiered_attr(&t, attribute, data, ptr, &rc)) return rc;
  rc = sp_real.cuPointerGetAttribute(data, attribute, ptr);
  if (rc != CUDA_SUCCESS && tiered_bool(attribute, data)) rc = CUDA_SUCCESS;
  return rc;
}

SP_EXPORT CUresult cuPointerGetAttributes(unsigned int numAttributes, CUpointer_attribute *attributes, void **data,
                                          CUdeviceptr ptr) {
  sp_cuda_load();
  if (!sp_real.cuPointerGetAttributes) return CUDA_ERROR_NOT_FOUND;
  CUresult rc = sp_real.cuPointerGetAttributes(numAttributes, attributes, data, ptr);
  tinfo t;
  if (!attributes || !data || !tiered_lookup(ptr, &t)) return rc;
  /* The plural form never fails for an attribute it cannot answer: like the driver, leave it. */
  for (unsigned int i = 0; i < numAttributes; i++) {
    CUresult one;
    if (!data[i]) continue;
    if (!tiered_attr(&t, attributes[i], data[i], ptr, &one) && rc != CUDA_SUCCESS) tiered_bool(attributes[i], data[i]);
    if (attributes[i] == CU_POINTER_ATTRIBUTE_HOST_POINTER) *(void **)data[i] = NULL;
  }
  return CUDA_SUCCESS;
}

SP_EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr) {
  sp_cuda_load();
  tinfo t;
  if (tiered_lookup(dptr, &t)) {
    if (pbase) *pbase = t.va;
    if (psize) *psize = (size_t)t.size;
    return CUDA_SUCCESS;
  }
  if (!sp_real.cuMemGetAddressRange_v2) return CUDA_ERROR_NOT_FOUND;
  return sp_real.cuMemGetAddressRange_v2(pbase, psize, dptr);
}

SP_EXPORT CUresult cuIpcGetMemHandle(CUipcMemHandle *pHandle, CUdeviceptr dptr) {
  sp_cuda_load();
  tinfo t;
  if (tiered_lookup(dptr, &t)) return CUDA_ERROR_NOT_SUPPORTED; /* legacy IPC cannot share VMM ranges */
  if (!sp_real.cuIpcGetMemHandle) return CUDA_ERROR_NOT_FOUND;
  return sp_real.cuIpcGetMemHandle(pHandle, dptr);
}
