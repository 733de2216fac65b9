/*
** pool.c: pools of 2 MiB physical pages (one cuMemCreate handle each, since cuMemMap only maps a
** handle whole). VRAM pages are created on demand per device; pinned host pages are created in
** chunks (pinning costs 0.2-0.5 s/GiB) within the pinned budget and the broker's lease; a pool
** that would grow past the budget first re-reads the host's memory (hostmem.c). Freed pages go
** back to their pool and are reused without new creates. All functions: lock held.
*/
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "broker_client.h"
#include "sp.h"

int sp_pool_reserve_slots(sp_pool *p, size_t n) {
  if (p->nfree + n <= p->cap) return 0;
  size_t cap = p->cap ? p->cap : 64;
  while (cap < p->nfree + n) cap *= 2;
  CUmemGenericAllocationHandle *f = realloc(p->free, cap * sizeof(*f));
  if (!f) return -1;
  p->free = f;
  p->cap = cap;
  return 0;
}

int sp_pool_put(sp_pool *p, CUmemGenericAllocationHandle h) {
  if (sp_pool_reserve_slots(p, 1)) return -1;
  p->free[p->nfree++] = h;
  return 0;
}

int sp_pool_take(sp_pool *p, CUmemGenericAllocationHandle *h) {
  if (!p->nfree) return -1;
  *h = p->free[--p->nfree];
  return 0;
}

CUresult sp_page_create(CUmemGenericAllocationHandle *h, int loc_type, int loc_id) {
  CUmemAllocationProp prop;
  memset(&prop, 0, sizeof(prop));
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_NONE;
  prop.location.type = loc_type;
  prop.location.id = loc_id;
  if (!sp_real.cuMemCreate) return CUDA_ERROR_NOT_SUPPORTED;
  return sp_real.cuMemCreate(h, SP_PAGE, &prop, 0);
}

/* Grows the pinned pool by at least `pages_wanted` pages if the budget allows, rounding up to
** the grow step. Returns the number of pages added (0..). */
uint64_t sp_pinned_grow(uint64_t pages_wanted) {
  uint64_t step_pages = sp_g.grow_step / SP_PAGE;
  uint64_t want = pages_wanted > step_pages ? pages_wanted : step_pages;
  uint64_t committed = sp_pinned_committed();
  /* Past the limit: the machine may have grown (or a cgroup shrunk) since it was read. */
  if (committed + want * SP_PAGE > sp_g.pinned_limit) sp_pinned_limit_allows(committed + want * SP_PAGE);
  uint64_t room = sp_g.pinned_limit > committed ? (sp_g.pinned_limit - committed) / SP_PAGE : 0;
  if (want > room) want = room;
  if (want < pages_wanted) return 0;
  if (!sp_pinned_can_commit(want * SP_PAGE)) {
    /* The broker may grant less than a full step: retry with exactly what is needed. */
    want = pages_wanted;
    if (!sp_pinned_can_commit(want * SP_PAGE)) return 0;
  }
  if (sp_pool_reserve_slots(&sp_g.pinned_pool, (size_t)want)) return 0;
  int numa = 0;
  for (int i = 0; i < SP_MAX_DEV; i++)
    if (sp_g.dev[i].ready) {
      numa = sp_g.dev[i].numa_id;
      break;
    }
  uint64_t made = 0;
  for (; made < want; made++) {
    CUmemGenericAllocationHandle h;
    if (sp_page_create(&h, CU_MEM_LOCATION_TYPE_HOST_NUMA, numa) != CUDA_SUCCESS) break;
    sp_g.pinned_pool.free[sp_g.pinned_pool.nfree++] = h;
    sp_g.pinned_pool.total++;
  }
  if (made) sp_g.pool_grows++;
  uint64_t pool = sp_g.pinned_pool.total * SP_PAGE;
  if (pool > sp_g.pinned_peak) sp_g.pinned_peak = pool;
  sp_log(SP_LOG_DEBUG, "pinned pool +%llu pages (now %llu MiB)", (unsigned long long)made,
         (unsigned long long)(pool >> 20));
  return made;
}

void sp_vram_pool_trim(int dev, uint64_t pages) {
  sp_pool *p = &sp_g.dev[dev].vram_pool;
  while (pages-- && p->nfree) {
    CUmemGenericAllocationHandle h = p->free[--p->nfree];
    if (sp_real.cuMemRelease) sp_real.cuMemRelease(h);
    p->total--;
  }
}

/* With a broker: when its lease cap (SP_MSG_LEASE_UPDATE) falls below the pool, release free
** pinned pages down to the cap and give that lease back. Pages in use are never taken away. */
void sp_pinned_trim_to_cap(void) {
  if (!sp_g.broker) return;
  uint64_t cap = sp_broker_lease_cap(), released = 0;
  sp_pool *p = &sp_g.pinned_pool;
  while (p->nfree && sp_pinned_committed() > cap) {
    CUmemGenericAllocationHandle h = p->free[--p->nfree];
    if (sp_real.cuMemRelease) sp_real.cuMemRelease(h);
    p->total--;
    released += SP_PAGE;
  }
  if (!released) return;
  sp_g.pinned_lease = sp_g.pinned_lease > released ? sp_g.pinned_lease - released : 0;
  sp_broker_pinned_return(released);
  sp_log(SP_LOG_INFO, "lease cap %llu MiB: returned %llu MiB of free pinned pages", (unsigned long long)(cap >> 20),
         (unsigned long long)(released >> 20));
}
