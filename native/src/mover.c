/*
** mover.c: moves pages between tiers under the same addresses, so the program's pointers stay
** valid. A move copies the page into its new physical page through a scratch mapping, waits for
** the copies (one context synchronisation per batch of SP_MOVE_BATCH pages), then unmaps the old
** page and maps the new one at the page's address. A page that cannot be copied or remapped keeps
** its old backing (restored if it was already unmapped). Callers hold the fence for writing (no
** launch or copy is being enqueued) and the lock; passes and evictions (migrate.c) call it.
*/
#define _GNU_SOURCE
#include <string.h>

#include "sp.h"

static CUdeviceptr scratch_va[SP_MAX_DEV];

static sp_pool *pool_of(int dev, int loc) { return loc == SP_PAGE_HOST ? &sp_g.pinned_pool : &sp_g.dev[dev].vram_pool; }

/* A new physical page in tier `loc`: from the pool, else created (pinned within the budget). */
static int take_page(int dev, int loc, CUmemGenericAllocationHandle *h) {
  sp_pool *p = pool_of(dev, loc);
  if (sp_pool_take(p, h) == 0) return 1;
  if (loc == SP_PAGE_HOST) return sp_pinned_grow(1) && sp_pool_take(p, h) == 0;
  sp_dev *d = &sp_g.dev[dev];
  if (sp_dev_vram_committed(d) + SP_PAGE > d->limit) return 0;
  if (sp_page_create(h, CU_MEM_LOCATION_TYPE_DEVICE, dev) != CUDA_SUCCESS) return 0;
  p->total++;
  return 1;
}

/* Bookkeeping of one completed move of page i of r to tier `to`. */
static void moved(sp_rec *r, uint32_t i, int to) {
  sp_dev *d = &sp_g.dev[r->dev];
  int64_t dir = to == SP_PAGE_HOST ? 1 : -1;
  r->loc[i] = (uint8_t)to;
  r->nvram -= (int32_t)dir;
  uint64_t *bytes = r->vh ? d->vvmm_bytes : d->tier_bytes;
  bytes[0] -= dir * (int64_t)SP_PAGE;
  bytes[1] += dir * (int64_t)SP_PAGE;
  if (to == SP_PAGE_HOST) {
    sp_g.pages_demoted++;
    sp_g.pages_pinned++;
  } else {
    sp_g.pages_promoted++;
    sp_g.pages_vram++;
  }
}

/* One batch (at most SP_MOVE_BATCH moves, any directions). Returns the moves done. */
static size_t move_batch(const sp_move *m, size_t n, CUdeviceptr scratch, int dev) {
  CUmemGenericAllocationHandle to[SP_MOVE_BATCH];
  size_t copied = 0, done = 0;
  for (; copied < n; copied++) {
    CUdeviceptr s = scratch + (CUdeviceptr)copied * SP_PAGE;
    if (!take_page(dev, m[copied].to, &to[copied])) break;
    if (sp_real.cuMemMap(s, SP_PAGE, 0, to[copied], 0) != CUDA_SUCCESS) {
      sp_pool_put(pool_of(dev, m[copied].to), to[copied]);
      break;
    }
    if (sp_access_rw(dev, s, SP_PAGE) != CUDA_SUCCESS ||
        sp_real.cuMemcpyDtoD_v2(s, m[copied].r->va + (CUdeviceptr)m[copied].page * SP_PAGE, SP_PAGE) != CUDA_SUCCESS) {
      sp_real.cuMemUnmap(s, SP_PAGE);
      sp_pool_put(pool_of(dev, m[copied].to), to[copied]);
      break;
    }
  }
  int synced = sp_real.cuCtxSynchronize() == CUDA_SUCCESS;
  for (size_t k = 0; k < copied; k++) {
    sp_real.cuMemUnmap(scratch + (CUdeviceptr)k * SP_PAGE, SP_PAGE);
    sp_rec *r = m[k].r;
    uint32_t i = m[k].page;
    CUdeviceptr va = r->va + (CUdeviceptr)i * SP_PAGE;
    CUmemGenericAllocationHandle from = r->pages[i];
    if (!synced || sp_real.cuMemUnmap(va, SP_PAGE) != CUDA_SUCCESS) {
      sp_pool_put(pool_of(dev, m[k].to), to[k]);
      continue;
    }
    if (sp_real.cuMemMap(va, SP_PAGE, 0, to[k], 0) != CUDA_SUCCESS || sp_rec_set_access(r, va, SP_PAGE) != CUDA_SUCCESS) {
      sp_real.cuMemUnmap(va, SP_PAGE);
      CUresult rc = sp_real.cuMemMap(va, SP_PAGE, 0, from, 0);
      if (rc == CUDA_SUCCESS) rc = sp_rec_set_access(r, va, SP_PAGE);
      if (rc != CUDA_SUCCESS)
        sp_log(SP_LOG_ERROR, "a page move could not restore the page at 0x%llx (CUresult %d)", (unsigned long long)va, rc);
      sp_pool_put(pool_of(dev, m[k].to), to[k]);
      continue;
    }
    r->pages[i] = to[k];
    sp_pool_put(pool_of(dev, r->loc[i]), from); /* its slot was reserved when the page was taken */
    moved(r, i, m[k].to);
    done++;
  }
  if (copied < n) sp_log(SP_LOG_WARN, "a page move stopped: a page copy could not be set up");
  return done;
}

/* Pages leaving VRAM go first: their VRAM pages return to the pool for the pages coming in. */
size_t sp_move_pages(int dev, const sp_move *m, size_t n) {
  if (!scratch_va[dev] &&
      sp_real.cuMemAddressReserve(&scratch_va[dev], SP_MOVE_BATCH * SP_PAGE, SP_PAGE, 0, 0) != CUDA_SUCCESS) {
    scratch_va[dev] = 0;
    return 0;
  }
  size_t done = 0;
  for (int to = SP_PAGE_HOST; to >= SP_PAGE_VRAM; to--) {
    sp_move batch[SP_MOVE_BATCH];
    size_t k = 0;
    for (size_t i = 0; i <= n; i++) {
      if (i < n && m[i].to == to) batch[k++] = m[i];
      if (k == SP_MOVE_BATCH || (i == n && k)) {
        size_t ok = move_batch(batch, k, scratch_va[dev], dev);
        done += ok;
        if (ok < k) goto out; /* the driver refused something: the rest stays where it is */
        k = 0;
      }
    }
  }
out:
  sp_dev_peaks(&sp_g.dev[dev]);
  return done;
}

void sp_mover_after_fork(void) { memset(scratch_va, 0, sizeof(scratch_va)); }
