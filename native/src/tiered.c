/*
** tiered.c: spillover's own allocations: a reserved VA range (2 MiB aligned) backed page by page
** by VRAM pages while the budget allows, then by pinned host pages (HOST_NUMA) from the pool.
** The pointer never moves. Release unmaps the pages and returns them to their pools; callers make
** sure no work still uses the range first (sync free, or an event for cuMemFreeAsync).
*/
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "sp.h"

/* Pages [0, n) of r are mapped: unmap them, return them to their pools. */
static void unmap_pages(sp_rec *r, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    sp_real.cuMemUnmap(r->va + (CUdeviceptr)i * SP_PAGE, SP_PAGE);
    sp_pool *p = r->in_host[i] ? &sp_g.pinned_pool : &sp_g.dev[r->dev].vram_pool;
    sp_pool_put(p, r->pages[i]); /* slots were reserved when the page was taken */
  }
}

static void free_rec(sp_rec *r) {
  free(r->in_host);
  free(r->pages);
  free(r);
}

/* READWRITE access for device dev over [va, va + size) (mapped pages, any location). */
CUresult sp_access_rw(int dev, CUdeviceptr va, uint64_t size) {
  CUmemAccessDesc a;
  memset(&a, 0, sizeof(a));
  a.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  a.location.id = dev;
  a.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  return sp_real.cuMemSetAccess(va, size, &a, 1);
}

static CUresult set_access(sp_rec *r) {
  CUresult rc = sp_access_rw(r->dev, r->va, r->span);
  if (rc == CUDA_SUCCESS) return rc;
  /* Some drivers want one call per mapping when a range mixes location types. */
  for (uint32_t i = 0; i < r->npages; i++) {
    rc = sp_access_rw(r->dev, r->va + (CUdeviceptr)i * SP_PAGE, SP_PAGE);
    if (rc != CUDA_SUCCESS) return rc;
  }
  return CUDA_SUCCESS;
}

/* Lock held. vram_ok=0 after the driver refused a VRAM allocation: host pages only. */
CUresult sp_tiered_alloc(sp_dev *d, uint64_t size, int may_use_reserve, int vram_ok, CUdeviceptr *out) {
  uint64_t npages = (size + SP_PAGE - 1) / SP_PAGE;
  if (npages == 0 || npages > UINT32_MAX) return CUDA_ERROR_INVALID_VALUE;
  for (int attempt = 0; attempt < 2; attempt++) {
    uint64_t budget = d->limit - (may_use_reserve ? 0 : d->reserve);
    uint64_t committed = sp_dev_vram_committed(d);
    uint64_t new_vram = budget > committed ? (budget - committed) / SP_PAGE : 0;
    uint64_t nv = vram_ok ? d->vram_pool.nfree + new_vram : 0;
    if (nv > npages) nv = npages;
    uint64_t nh = npages - nv;
    if (nh > sp_g.pinned_pool.nfree && sp_pinned_grow(nh - sp_g.pinned_pool.nfree) == 0 &&
        nh > sp_g.pinned_pool.nfree) {
      if (attempt == 0 && sp_pending_count()) {
        sp_reap(1); /* frees waiting on events may give pages back */
        continue;
      }
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    sp_rec *r = calloc(1, sizeof(*r));
    if (!r || !(r->pages = calloc(npages, sizeof(*r->pages))) || !(r->in_host = calloc(npages, 1))) {
      if (r) free(r->pages);
      free(r);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    r->size = size;
    r->span = npages * SP_PAGE;
    r->npages = (uint32_t)npages;
    r->dev = d->ordinal;
    r->tiered = 1;
    if (sp_pool_reserve_slots(&d->vram_pool, (size_t)npages) ||
        sp_pool_reserve_slots(&sp_g.pinned_pool, (size_t)npages) ||
        sp_real.cuMemAddressReserve(&r->va, r->span, SP_PAGE, 0, 0) != CUDA_SUCCESS) {
      free_rec(r);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    /* Take pages: VRAM first (pool, then new), pinned for the rest. A refused VRAM create turns
    ** the remaining pages into host pages. */
    uint32_t got = 0;
    CUresult rc = CUDA_SUCCESS;
    for (; got < nv; got++) {
      if (sp_pool_take(&d->vram_pool, &r->pages[got]) == 0) continue;
      if (sp_page_create(&r->pages[got], CU_MEM_LOCATION_TYPE_DEVICE, d->ordinal) != CUDA_SUCCESS) break;
      d->vram_pool.total++;
    }
    r->nvram = got;
    memset(r->in_host + got, 1, npages - got);
    for (uint32_t i = got; i < npages; i++) {
      if (sp_pool_take(&sp_g.pinned_pool, &r->pages[i]) == 0) continue;
      if (sp_pinned_grow(1) == 0 || sp_pool_take(&sp_g.pinned_pool, &r->pages[i]) != 0) {
        /* give back what we took, unmapped */
        for (uint32_t j = 0; j < i; j++)
          sp_pool_put(j < r->nvram ? &d->vram_pool : &sp_g.pinned_pool, r->pages[j]);
        sp_real.cuMemAddressFree(r->va, r->span);
        free_rec(r);
        return CUDA_ERROR_OUT_OF_MEMORY;
      }
    }
    uint32_t mapped = 0;
    for (; mapped < npages; mapped++) {
      rc = sp_real.cuMemMap(r->va + (CUdeviceptr)mapped * SP_PAGE, SP_PAGE, 0, r->pages[mapped], 0);
      if (rc != CUDA_SUCCESS) break;
    }
    if (rc == CUDA_SUCCESS) rc = set_access(r);
    if (rc != CUDA_SUCCESS) {
      unmap_pages(r, mapped);
      for (uint32_t j = mapped; j < npages; j++)
        sp_pool_put(j < r->nvram ? &d->vram_pool : &sp_g.pinned_pool, r->pages[j]);
      sp_real.cuMemAddressFree(r->va, r->span);
      free_rec(r);
      sp_log(SP_LOG_WARN, "mapping a tiered range failed (CUresult %d)", rc);
      return rc;
    }
    if (sp_real.cuCtxGetCurrent) sp_real.cuCtxGetCurrent(&r->ctx);
    r->buffer_id = sp_g.next_buffer_id++;
    if (sp_table_insert(r)) {
      unmap_pages(r, (uint32_t)npages);
      sp_real.cuMemAddressFree(r->va, r->span);
      free_rec(r);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    d->tier_bytes[0] += (uint64_t)r->nvram * SP_PAGE;
    d->tier_bytes[1] += (uint64_t)(npages - r->nvram) * SP_PAGE;
    if (!sp_g.tiered_hi || r->va < sp_g.tiered_lo) __atomic_store_n(&sp_g.tiered_lo, r->va, __ATOMIC_RELAXED);
    if (r->va + r->span > sp_g.tiered_hi) __atomic_store_n(&sp_g.tiered_hi, r->va + r->span, __ATOMIC_RELEASE);
    sp_g.pages_vram += r->nvram;
    sp_g.pages_pinned += npages - r->nvram;
    sp_g.tiered_allocs++;
    sp_dev_peaks(d);
    sp_log(SP_LOG_DEBUG, "tiered %llu bytes at 0x%llx: %u vram + %llu pinned pages", (unsigned long long)size,
           (unsigned long long)r->va, r->nvram, (unsigned long long)(npages - r->nvram));
    *out = r->va;
    return CUDA_SUCCESS;
  }
  return CUDA_ERROR_OUT_OF_MEMORY;
}

/* Lock held; the range is idle. */
void sp_tiered_release(sp_rec *r) {
  sp_dev *d = &sp_g.dev[r->dev];
  unmap_pages(r, r->npages);
  sp_real.cuMemAddressFree(r->va, r->span);
  d->tier_bytes[0] -= (uint64_t)r->nvram * SP_PAGE;
  d->tier_bytes[1] -= (uint64_t)(r->npages - r->nvram) * SP_PAGE;
  if (r->event) {
    if (sp_real.cuEventDestroy_v2) sp_real.cuEventDestroy_v2(r->event);
    sp_npending--;
  }
  sp_table_remove(r);
  free_rec(r);
  sp_pinned_trim_to_cap();
}

/* Deferred frees (cuMemFreeAsync): records stay in the table with dying=1 and an event. */
int sp_npending;

int sp_pending_count(void) { return sp_npending; }

void sp_reap(int wait) {
  if (!sp_npending) return;
  for (size_t i = 0; i < sp_table_count();) {
    sp_rec *r = sp_table_at(i);
    if (r->dying && r->event) {
      CUresult q = wait ? sp_real.cuEventSynchronize(r->event) : sp_real.cuEventQuery(r->event);
      if (q != CUDA_ERROR_NOT_READY) {
        sp_tiered_release(r); /* also on errors: the event is unusable, the stream is gone */
        continue;
      }
    }
    i++;
  }
}
