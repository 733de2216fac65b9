/*
** tiered.c: spillover's own allocations: a reserved VA range (2 MiB aligned) backed page by page
** by VRAM pages while the budget allows, then by pinned host pages (HOST_NUMA) from the pool.
** The pointer never moves; the placement policy may later move pages between tiers under it
** (mover.c). Release unmaps the pages and returns them to their pools; callers make sure no work
** still uses the range first (sync free, or an event for cuMemFreeAsync). The page-taking
** functions here also back the program's own tiered cuMemCreate handles (vmm_hooks.c).
*/
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "sp.h"

static sp_pool *pool_of(sp_dev *d, int loc) { return loc == SP_PAGE_HOST ? &sp_g.pinned_pool : &d->vram_pool; }

uint64_t sp_vram_room(const sp_dev *d, int may_use_reserve) {
  uint64_t budget = d->limit - (may_use_reserve ? 0 : d->reserve);
  uint64_t committed = sp_dev_vram_committed(d);
  return (budget > committed ? (budget - committed) / SP_PAGE : 0) + d->vram_pool.nfree;
}

/* Free pooled VRAM pages occupy the card: release just enough of them when that lets a request
** pass to the driver whole; if it cannot fit anyway, keep them. Returns the VRAM committed. */
uint64_t sp_vram_trim_for(sp_dev *d, uint64_t size, uint64_t budget) {
  uint64_t committed = sp_dev_vram_committed(d), pooled = (uint64_t)d->vram_pool.nfree * SP_PAGE;
  if (committed + size <= budget || committed - pooled + size > budget) return committed;
  sp_vram_pool_trim(d->ordinal, (committed + size - budget + SP_PAGE - 1) / SP_PAGE);
  return sp_dev_vram_committed(d);
}

void sp_pages_put(sp_dev *d, uint64_t npages, const CUmemGenericAllocationHandle *pages, const uint8_t *loc) {
  for (uint64_t i = 0; i < npages; i++) sp_pool_put(pool_of(d, loc[i]), pages[i]);
}

int sp_pages_take(sp_dev *d, uint64_t npages, int may_use_reserve, int vram_ok, CUmemGenericAllocationHandle *pages,
                  uint8_t *loc) {
  uint64_t nv = vram_ok ? sp_vram_room(d, may_use_reserve) : 0;
  if (nv > npages) nv = npages;
  uint64_t nh = npages - nv;
  if (nh > sp_g.pinned_pool.nfree && sp_pinned_grow(nh - sp_g.pinned_pool.nfree) == 0 && nh > sp_g.pinned_pool.nfree)
    return -1;
  if (sp_pool_reserve_slots(&d->vram_pool, (size_t)npages) || sp_pool_reserve_slots(&sp_g.pinned_pool, (size_t)npages))
    return -1;
  /* VRAM first (pool, then new); a refused VRAM create turns the rest into host pages. */
  uint64_t got = 0;
  for (; got < nv; got++) {
    loc[got] = SP_PAGE_VRAM;
    if (sp_pool_take(&d->vram_pool, &pages[got]) == 0) continue;
    if (sp_page_create(&pages[got], CU_MEM_LOCATION_TYPE_DEVICE, d->ordinal) != CUDA_SUCCESS) break;
    d->vram_pool.total++;
  }
  for (uint64_t i = got; i < npages; i++) {
    loc[i] = SP_PAGE_HOST;
    if (sp_pool_take(&sp_g.pinned_pool, &pages[i]) == 0) continue;
    if (sp_pinned_grow(1) == 0 || sp_pool_take(&sp_g.pinned_pool, &pages[i]) != 0) {
      sp_pages_put(d, i, pages, loc); /* give back what we took */
      return -1;
    }
  }
  return (int)(got > INT32_MAX ? INT32_MAX : got);
}

/* Pages [0, n) of r are mapped: unmap them, return them to their pools. */
static void unmap_pages(sp_rec *r, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) sp_real.cuMemUnmap(r->va + (CUdeviceptr)i * SP_PAGE, SP_PAGE);
  sp_pages_put(&sp_g.dev[r->dev], n, r->pages, r->loc);
}

void sp_rec_free(sp_rec *r) {
  if (!r) return;
  if (!r->vh) { /* a program handle's mapping borrows the handle's arrays */
    free(r->loc);
    free(r->pages);
  }
  free(r->access);
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

/* The program's descriptors (or READWRITE for r's device), plus READWRITE for each peer of r's
** device not already named. One GPU: exactly one descriptor, as before peers existed. */
static size_t access_of(const sp_rec *r, CUmemAccessDesc *a) {
  size_t n = 0;
  if (r->access) {
    memcpy(a, r->access, r->naccess * sizeof(*a));
    n = r->naccess;
  } else {
    memset(a, 0, sizeof(*a));
    a[0].location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    a[0].location.id = r->dev;
    a[0].flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    n = 1;
  }
  uint32_t peers = r->dev >= 0 && r->dev < SP_MAX_DEV ? sp_g.dev[r->dev].peers : 0;
  for (int p = 0; peers && p < SP_MAX_DEV; p++) {
    if (!(peers >> p & 1)) continue;
    size_t k = 0;
    while (k < n && !(a[k].location.type == CU_MEM_LOCATION_TYPE_DEVICE && a[k].location.id == p)) k++;
    if (k < n) continue;
    memset(&a[n], 0, sizeof(a[n]));
    a[n].location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    a[n].location.id = p;
    a[n].flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    n++;
  }
  return n;
}

CUresult sp_rec_set_access(const sp_rec *r, CUdeviceptr va, uint64_t size) {
  CUmemAccessDesc a[64 + SP_MAX_DEV]; /* cuMemSetAccess keeps at most 64 of the program's */
  size_t n = access_of(r, a);
  return sp_real.cuMemSetAccess(va, size, a, n);
}

CUresult sp_rec_apply_access(const sp_rec *r) {
  CUresult rc = sp_rec_set_access(r, r->va, r->span);
  if (rc == CUDA_SUCCESS) return rc;
  /* Some drivers want one call per mapping when a range mixes location types. */
  for (uint32_t i = 0; i < r->npages; i++) {
    rc = sp_rec_set_access(r, r->va + (CUdeviceptr)i * SP_PAGE, SP_PAGE);
    if (rc != CUDA_SUCCESS) return rc;
  }
  return CUDA_SUCCESS;
}

/* Lock held. vram_ok=0 after the driver refused a VRAM allocation: host pages only. */
CUresult sp_tiered_alloc(sp_dev *d, uint64_t size, int may_use_reserve, int vram_ok, CUdeviceptr *out) {
  uint64_t npages = (size + SP_PAGE - 1) / SP_PAGE;
  if (npages == 0 || npages > UINT32_MAX) return CUDA_ERROR_INVALID_VALUE;
  sp_rec *r = calloc(1, sizeof(*r));
  if (!r || !(r->pages = calloc(npages, sizeof(*r->pages))) || !(r->loc = calloc(npages, 1))) {
    sp_rec_free(r);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  r->size = size;
  r->span = npages * SP_PAGE;
  r->npages = (uint32_t)npages;
  r->dev = d->ordinal;
  r->tiered = r->movable = 1;
  int nv = sp_pages_take(d, npages, may_use_reserve, vram_ok, r->pages, r->loc);
  if (nv < 0 && sp_pending_count()) {
    sp_reap(1); /* frees waiting on events may give pages back */
    nv = sp_pages_take(d, npages, may_use_reserve, vram_ok, r->pages, r->loc);
  }
  if (nv < 0 || sp_real.cuMemAddressReserve(&r->va, r->span, SP_PAGE, 0, 0) != CUDA_SUCCESS) {
    if (nv >= 0) sp_pages_put(d, npages, r->pages, r->loc);
    sp_rec_free(r);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  r->nvram = (uint32_t)nv;
  CUresult rc = CUDA_SUCCESS;
  uint32_t mapped = 0;
  for (; mapped < npages; mapped++) {
    rc = sp_real.cuMemMap(r->va + (CUdeviceptr)mapped * SP_PAGE, SP_PAGE, 0, r->pages[mapped], 0);
    if (rc != CUDA_SUCCESS) break;
  }
  if (rc == CUDA_SUCCESS) rc = sp_rec_apply_access(r);
  if (rc != CUDA_SUCCESS) {
    unmap_pages(r, mapped);
    sp_pages_put(d, npages - mapped, r->pages + mapped, r->loc + mapped);
    sp_real.cuMemAddressFree(r->va, r->span);
    sp_rec_free(r);
    sp_log(SP_LOG_WARN, "mapping a tiered range failed (CUresult %d)", rc);
    return rc;
  }
  if (sp_real.cuCtxGetCurrent) sp_real.cuCtxGetCurrent(&r->ctx);
  r->buffer_id = sp_g.next_buffer_id++;
  if (sp_table_insert(r)) {
    unmap_pages(r, (uint32_t)npages);
    sp_real.cuMemAddressFree(r->va, r->span);
    sp_rec_free(r);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  d->tier_bytes[0] += (uint64_t)r->nvram * SP_PAGE;
  d->tier_bytes[1] += (uint64_t)(npages - r->nvram) * SP_PAGE;
  sp_tiered_window(r);
  sp_g.pages_vram += r->nvram;
  sp_g.pages_pinned += npages - r->nvram;
  sp_g.tiered_allocs++;
  sp_dev_peaks(d);
  sp_log(SP_LOG_DEBUG, "tiered %llu bytes at 0x%llx: %u vram + %llu pinned pages", (unsigned long long)size,
         (unsigned long long)r->va, r->nvram, (unsigned long long)(npages - r->nvram));
  *out = r->va;
  return CUDA_SUCCESS;
}

/* Every tiered range lies inside [tiered_lo, tiered_hi): the launch scan's quick filter. */
void sp_tiered_window(const sp_rec *r) {
  if (!sp_g.tiered_hi || r->va < sp_g.tiered_lo) __atomic_store_n(&sp_g.tiered_lo, r->va, __ATOMIC_RELAXED);
  if (r->va + r->span > sp_g.tiered_hi) __atomic_store_n(&sp_g.tiered_hi, r->va + r->span, __ATOMIC_RELEASE);
}

/* Lock held; the range is idle. */
void sp_tiered_release(sp_rec *r) {
  sp_dev *d = &sp_g.dev[r->dev];
  sp_stream_forget(r);
  unmap_pages(r, r->npages);
  sp_real.cuMemAddressFree(r->va, r->span);
  d->tier_bytes[0] -= (uint64_t)r->nvram * SP_PAGE;
  d->tier_bytes[1] -= (uint64_t)(r->npages - r->nvram) * SP_PAGE;
  if (r->event) {
    if (sp_real.cuEventDestroy_v2) sp_real.cuEventDestroy_v2(r->event);
    sp_npending--;
  }
  sp_table_remove(r);
  sp_rec_free(r);
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
