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

/* Lock held. VRAM pages this request lacks: as a tiered range (movable), or passed to the driver. */
static uint64_t vram_short(const sp_dev *d, int movable, int small, uint64_t size, uint64_t budget, uint64_t pages) {
  if (movable) {
    uint64_t room = sp_vram_room(d, small);
    return pages > room ? pages - room : 0;
  }
  uint64_t in_use = sp_dev_vram_committed(d) - (uint64_t)d->vram_pool.nfree * SP_PAGE;
  return in_use + size > budget ? (in_use + size - budget + SP_PAGE - 1) / SP_PAGE : 0;
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
  sp_dev_note_alloc(d);
  sp_reap(0);
  int small = size <= sp_cfg.threshold; /* PyTorch's 2 MiB small-pool segments: activations */
  /* Large synchronous allocations (weights, KV caches, the caching allocators' segments) become
  ** tiered ranges even while VRAM has room, so the policy can move them out later when hotter
  ** memory arrives: the driver's own allocations can never move. Stream-ordered ones (alloc and
  ** free every step) pass to the driver while they fit: mapping pages per call would cost more. */
  int movable = sp_cfg.migrate && !small && (c->kind == K_SYNC || c->kind == K_PITCH);
  uint64_t budget = d->limit - (small ? 0 : d->reserve);
  uint64_t pages = (size + SP_PAGE - 1) / SP_PAGE;
  uint64_t short_by = vram_short(d, movable, small, size, budget, pages);
  if (short_by && sp_cfg.migrate) { /* a fresh allocation is hot: the coldest VRAM pages leave first */
    sp_unlock();
    sp_migrate_evict(d, short_by);
    sp_lock();
  }
  int vram_ok = 1;
  if (!movable && sp_vram_trim_for(d, size, budget) + size <= budget) {
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
