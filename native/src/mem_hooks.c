/*
** mem_hooks.c: the allocation and free hooks. Each decides, under the lock, whether a request
** passes to the driver (counted against the VRAM budget) or becomes a tiered range; frees find
** the record, refuse double/interior frees of our ranges, and release tiered pages only once no
** work can use them. Anything we do not recognise goes to the driver untouched.
*/
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "sp.h"

enum { K_SYNC, K_ASYNC, K_POOL, K_PITCH };

typedef struct alloc_call {
  int kind, ptsz;
  CUstream stream;
  CUmemoryPool pool;
  size_t *pitch, width, height;
  unsigned int elem;
} alloc_call;

#define REAL_OR_NOTFOUND(fn) \
  if (!sp_real.fn) return CUDA_ERROR_NOT_FOUND

static CUresult real_alloc(const alloc_call *c, CUdeviceptr *dptr, size_t size) {
  switch (c->kind) {
  case K_SYNC:
    REAL_OR_NOTFOUND(cuMemAlloc_v2);
    return sp_real.cuMemAlloc_v2(dptr, size);
  case K_ASYNC:
    if (c->ptsz) {
      REAL_OR_NOTFOUND(cuMemAllocAsync_ptsz);
      return sp_real.cuMemAllocAsync_ptsz(dptr, size, c->stream);
    }
    REAL_OR_NOTFOUND(cuMemAllocAsync);
    return sp_real.cuMemAllocAsync(dptr, size, c->stream);
  case K_POOL:
    if (c->ptsz) {
      REAL_OR_NOTFOUND(cuMemAllocFromPoolAsync_ptsz);
      return sp_real.cuMemAllocFromPoolAsync_ptsz(dptr, size, c->pool, c->stream);
    }
    REAL_OR_NOTFOUND(cuMemAllocFromPoolAsync);
    return sp_real.cuMemAllocFromPoolAsync(dptr, size, c->pool, c->stream);
  default:
    REAL_OR_NOTFOUND(cuMemAllocPitch_v2);
    return sp_real.cuMemAllocPitch_v2(dptr, c->pitch, c->width, c->height, c->elem);
  }
}

static void count_bad(CUresult rc) {
  if (rc != CUDA_ERROR_INVALID_VALUE) return;
  sp_lock();
  sp_g.bad_args++;
  sp_stats_publish();
  sp_unlock();
}

/* Lock held: record a passthrough allocation (bytes were counted before the driver call). */
static void record_passthrough(sp_dev *d, CUdeviceptr va, uint64_t size) {
  sp_rec *old = sp_table_find(va);
  if (old && !old->tiered) { /* freed behind our back (an unhooked path): forget the stale one */
    sp_g.dev[old->dev].passthrough_bytes -= old->size;
    sp_table_remove(old);
    free(old);
  }
  sp_rec *r = calloc(1, sizeof(*r));
  if (!r) return;
  r->va = va;
  r->size = r->span = size;
  r->dev = d->ordinal;
  if (sp_table_insert(r)) {
    free(r);
    return;
  }
  sp_g.passthrough_allocs++;
}

/* Lock held. Free pooled VRAM pages occupy the card: release just enough of them when that lets
** a request pass to the driver whole; if it cannot fit anyway, keep them for the tiered range. */
static uint64_t trim_for(sp_dev *d, uint64_t committed, uint64_t size, uint64_t budget) {
  uint64_t pooled = (uint64_t)d->vram_pool.nfree * SP_PAGE;
  if (committed + size <= budget || committed - pooled + size > budget) return committed;
  sp_vram_pool_trim(d->ordinal, (committed + size - budget + SP_PAGE - 1) / SP_PAGE);
  return sp_dev_vram_committed(d);
}

static CUresult do_alloc(const alloc_call *c, CUdeviceptr *dptr, size_t size) {
  sp_cuda_load();
  if (!sp_active()) return real_alloc(c, dptr, size);
  if (!dptr || size == 0) { /* the driver's own error code */
    CUresult rc = real_alloc(c, dptr, size);
    if (rc != CUDA_SUCCESS) count_bad(rc);
    return rc;
  }
  sp_dev *d = sp_dev_current();
  if (!d || !d->tiering) return real_alloc(c, dptr, size);

  sp_lock();
  sp_g.alloc_calls++;
  if (size > sp_g.largest_alloc) sp_g.largest_alloc = size;
  sp_reap(0);
  int small = size <= sp_cfg.threshold; /* PyTorch's 2 MiB small-pool segments: activations */
  uint64_t budget = d->limit - (small ? 0 : d->reserve);
  uint64_t committed = sp_dev_vram_committed(d);
  committed = trim_for(d, committed, size, budget);
  int vram_ok = 1;
  if (committed + size <= budget) {
    d->passthrough_bytes += size; /* claim before dropping the lock */
    sp_unlock();
    CUresult rc = real_alloc(c, dptr, size);
    sp_lock();
    if (rc == CUDA_SUCCESS) {
      uint64_t real_size = size;
      if (c->kind == K_PITCH) { /* count what the driver really gave */
        real_size = (uint64_t)*c->pitch * c->height;
        d->passthrough_bytes = d->passthrough_bytes - size + real_size;
      }
      record_passthrough(d, *dptr, real_size);
      sp_dev_peaks(d);
      sp_stats_publish();
      sp_unlock();
      return rc;
    }
    d->passthrough_bytes -= size;
    if (rc != CUDA_ERROR_OUT_OF_MEMORY) {
      sp_unlock();
      return rc;
    }
    vram_ok = 0; /* the card is fuller than the budget thinks: host pages only */
  }
  CUresult rc = sp_tiered_alloc(d, size, small, vram_ok, dptr);
  if (rc == CUDA_ERROR_OUT_OF_MEMORY) sp_g.oom_returned++;
  sp_stats_publish();
  sp_unlock();
  return rc;
}

SP_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
  alloc_call c = {.kind = K_SYNC};
  return do_alloc(&c, dptr, bytesize);
}

SP_EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
  alloc_call c = {.kind = K_ASYNC, .stream = hStream};
  return do_alloc(&c, dptr, bytesize);
}

SP_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
  alloc_call c = {.kind = K_ASYNC, .stream = hStream, .ptsz = 1};
  return do_alloc(&c, dptr, bytesize);
}

SP_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream hStream) {
  alloc_call c = {.kind = K_POOL, .stream = hStream, .pool = pool};
  return do_alloc(&c, dptr, bytesize);
}

SP_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                                CUstream hStream) {
  alloc_call c = {.kind = K_POOL, .stream = hStream, .pool = pool, .ptsz = 1};
  return do_alloc(&c, dptr, bytesize);
}

/* Tiered pitch allocations use a 512-byte pitch (a multiple of every GPU's pitch alignment). */
SP_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                                      unsigned int ElementSizeBytes) {
  alloc_call c = {.kind = K_PITCH, .pitch = pPitch, .width = WidthInBytes, .height = Height, .elem = ElementSizeBytes};
  int valid = dptr && pPitch && WidthInBytes && Height &&
              (ElementSizeBytes == 4 || ElementSizeBytes == 8 || ElementSizeBytes == 16);
  size_t pitch = (WidthInBytes + 511) & ~(size_t)511;
  if (!valid || pitch < WidthInBytes || Height > SIZE_MAX / pitch) return do_alloc(&c, NULL, 0);
  CUresult rc = do_alloc(&c, dptr, pitch * Height);
  /* a tiered result did not go through the driver: fill the pitch ourselves */
  if (rc == CUDA_SUCCESS) {
    sp_lock();
    sp_rec *r = sp_table_find(*dptr);
    if (r && r->tiered) *pPitch = pitch;
    sp_unlock();
  }
  return rc;
}

/* --------------------------------------------------------------------------------------------- */

void sp_sync_ctx(CUcontext ctx) {
  CUcontext cur = NULL, popped;
  if (sp_real.cuCtxGetCurrent) sp_real.cuCtxGetCurrent(&cur);
  if (ctx && cur != ctx && sp_real.cuCtxPushCurrent_v2 && sp_real.cuCtxPushCurrent_v2(ctx) == CUDA_SUCCESS) {
    sp_real.cuCtxSynchronize();
    sp_real.cuCtxPopCurrent_v2(&popped);
    return;
  }
  if (sp_real.cuCtxSynchronize) sp_real.cuCtxSynchronize();
}

static CUresult real_free(CUdeviceptr p, int async, CUstream s, int ptsz) {
  if (!async) {
    REAL_OR_NOTFOUND(cuMemFree_v2);
    return sp_real.cuMemFree_v2(p);
  }
  if (ptsz) {
    REAL_OR_NOTFOUND(cuMemFreeAsync_ptsz);
    return sp_real.cuMemFreeAsync_ptsz(p, s);
  }
  REAL_OR_NOTFOUND(cuMemFreeAsync);
  return sp_real.cuMemFreeAsync(p, s);
}

static CUresult do_free(CUdeviceptr p, int async, CUstream s, int ptsz) {
  sp_cuda_load();
  if (!sp_active()) return real_free(p, async, s, ptsz);
  sp_lock();
  sp_g.free_calls++;
  sp_reap(0);
  sp_rec *r = p ? sp_table_find(p) : NULL;
  if (!r || r->dying) {
    sp_rec *in = p ? sp_table_containing(p) : NULL;
    if (r || (in && in->tiered)) { /* double free, or inside one of our ranges */
      sp_g.bad_args++;
      sp_stats_publish();
      sp_unlock();
      return CUDA_ERROR_INVALID_VALUE;
    }
    sp_unlock();
    CUresult rc = real_free(p, async, s, ptsz);
    if (rc != CUDA_SUCCESS) count_bad(rc);
    return rc;
  }
  sp_dev *d = &sp_g.dev[r->dev];
  if (!r->tiered) {
    sp_table_remove(r);
    d->passthrough_bytes -= r->size;
    sp_unlock();
    CUresult rc = real_free(p, async, s, ptsz);
    sp_lock();
    if (rc != CUDA_SUCCESS && !sp_table_find(p) && sp_table_insert(r) == 0) {
      d->passthrough_bytes += r->size; /* still allocated */
      r = NULL;
    }
    sp_stats_publish();
    sp_unlock();
    free(r);
    return rc;
  }
  r->dying = 1;
  if (async && sp_real.cuEventCreate) {
    CUevent ev = NULL;
    if (sp_real.cuEventCreate(&ev, CU_EVENT_DISABLE_TIMING) == CUDA_SUCCESS) {
      CUresult rc = ptsz && sp_real.cuEventRecord_ptsz ? sp_real.cuEventRecord_ptsz(ev, s) : sp_real.cuEventRecord(ev, s);
      if (rc == CUDA_SUCCESS) {
        r->event = ev;
        sp_npending++;
        sp_stats_publish();
        sp_unlock();
        return CUDA_SUCCESS;
      }
      sp_real.cuEventDestroy_v2(ev);
    }
  }
  CUcontext ctx = r->ctx;
  sp_unlock();
  sp_sync_ctx(ctx); /* no kernel may still read the pages we are about to unmap */
  sp_lock();
  sp_tiered_release(r);
  sp_stats_publish();
  sp_unlock();
  return CUDA_SUCCESS;
}

SP_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr) { return do_free(dptr, 0, NULL, 0); }
SP_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) { return do_free(dptr, 1, hStream, 0); }
SP_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream) { return do_free(dptr, 1, hStream, 1); }

/* --------------------------------------------------------------------------------------------- */
/* The program's own VMM: DEVICE handles are counted; past the VRAM budget they are created as
** HOST_NUMA instead (same size), counted against the pinned budget. */

SP_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                               unsigned long long flags) {
  sp_cuda_load();
  if (!sp_active()) goto pass;
  if (!handle || !prop || !size || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE) goto pass;
  REAL_OR_NOTFOUND(cuMemCreate);
  sp_lock();
  sp_dev *d = sp_dev_get(prop->location.id);
  if (!d || !d->tiering) {
    sp_unlock();
    goto pass;
  }
  sp_g.alloc_calls++;
  uint64_t budget = d->limit - (size <= sp_cfg.threshold ? 0 : d->reserve);
  uint64_t committed = sp_dev_vram_committed(d);
  committed = trim_for(d, committed, size, budget);
  int host = committed + size > budget;
  if (host && !sp_pinned_can_commit(size)) {
    sp_g.oom_returned++;
    sp_stats_publish();
    sp_unlock();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (host) {
    d->vmm_host_bytes += size;
    sp_g.vmm_host_total += size;
  } else {
    d->vmm_dev_bytes += size;
  }
  sp_unlock();
  CUmemAllocationProp p2 = *prop;
  if (host) {
    p2.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
    p2.location.id = d->numa_id;
  }
  /* Host memory may not support what was asked for device memory: PyTorch's expandable
  ** segments ask for POSIX_FD export, which HOST_NUMA refuses with INVALID_VALUE on driver 580.
  ** Retry plain (and skip the refused attempt from then on); past the budget answer
  ** OUT_OF_MEMORY, the error frameworks recover from, rather than one they treat as fatal. */
  static int strip_export;
  if (host && __atomic_load_n(&strip_export, __ATOMIC_RELAXED)) {
    p2.requestedHandleTypes = CU_MEM_HANDLE_TYPE_NONE;
    memset(&p2.allocFlags, 0, sizeof(p2.allocFlags));
  }
  CUresult rc = sp_real.cuMemCreate(handle, size, &p2, flags);
  if (host && rc != CUDA_SUCCESS && rc != CUDA_ERROR_OUT_OF_MEMORY &&
      (p2.requestedHandleTypes || p2.allocFlags.gpuDirectRDMACapable || p2.allocFlags.compressionType ||
       p2.allocFlags.usage)) {
    sp_log(SP_LOG_WARN, "host memory refused handle types 0x%x (CUresult %d): the program's cuMemCreate past the VRAM budget is not exportable",
           (unsigned)prop->requestedHandleTypes, rc);
    __atomic_store_n(&strip_export, 1, __ATOMIC_RELAXED);
    p2.requestedHandleTypes = CU_MEM_HANDLE_TYPE_NONE;
    memset(&p2.allocFlags, 0, sizeof(p2.allocFlags));
    rc = sp_real.cuMemCreate(handle, size, &p2, flags);
  }
  if (host && rc != CUDA_SUCCESS && rc != CUDA_ERROR_OUT_OF_MEMORY) {
    sp_log(SP_LOG_WARN, "cuMemCreate of %zu bytes in host memory failed (CUresult %d); answering OUT_OF_MEMORY", size, rc);
    rc = CUDA_ERROR_OUT_OF_MEMORY;
  }
  sp_lock();
  if (rc != CUDA_SUCCESS || sp_vmm_insert(*handle, size, d->ordinal, host) != 0) {
    if (host) {
      d->vmm_host_bytes -= size;
      sp_g.vmm_host_total -= size;
    } else {
      d->vmm_dev_bytes -= size;
    }
    if (rc == CUDA_ERROR_OUT_OF_MEMORY) sp_g.oom_returned++;
  }
  sp_stats_publish();
  sp_unlock();
  return rc;
pass:
  REAL_OR_NOTFOUND(cuMemCreate);
  return sp_real.cuMemCreate(handle, size, prop, flags);
}

SP_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
  sp_cuda_load();
  if (!sp_active()) goto pass;
  REAL_OR_NOTFOUND(cuMemRelease);
  uint64_t size = 0;
  int dev = 0, host = 0;
  /* Forget the handle before releasing it: the driver may hand the same value to another
  ** thread's cuMemCreate as soon as it is released. */
  sp_lock();
  int k = sp_vmm_release(handle, &size, &dev, &host);
  sp_unlock();
  CUresult rc = sp_real.cuMemRelease(handle);
  if (k < 0) return rc;
  sp_lock();
  if (rc != CUDA_SUCCESS) { /* undo */
    if (k == 0) sp_vmm_insert(handle, size, dev, host);
    else sp_vmm_retain(handle);
  } else if (k == 0) {
    sp_dev *d = &sp_g.dev[dev];
    if (host) {
      d->vmm_host_bytes -= size;
      sp_g.vmm_host_total -= size;
    } else {
      d->vmm_dev_bytes -= size;
    }
    sp_g.free_calls++;
    sp_stats_publish();
  }
  sp_unlock();
  return rc;
pass:
  REAL_OR_NOTFOUND(cuMemRelease);
  return sp_real.cuMemRelease(handle);
}

/* A retained handle needs one more cuMemRelease before the memory is gone: count references so
** the bytes stay counted until the last one. */
SP_EXPORT CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr) {
  sp_cuda_load();
  REAL_OR_NOTFOUND(cuMemRetainAllocationHandle);
  CUresult rc = sp_real.cuMemRetainAllocationHandle(handle, addr);
  if (rc != CUDA_SUCCESS || !handle || !sp_active()) return rc;
  sp_lock();
  sp_vmm_retain(*handle);
  sp_unlock();
  return rc;
}
