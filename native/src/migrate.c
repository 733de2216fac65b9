/*
** migrate.c: placement that follows use. First-come placement puts whatever arrives after the
** VRAM budget is full in host memory for good: in an inference program that is the activations,
** which every kernel of a forward touches, while the weights before them are read once. So the
** kernel launches are scanned for pointers into tiered ranges (sp_use_note, from the launch
** hooks), and a pass (sp_migrate_pass) now and then moves pages where their use says:
**   - host pages of hot ranges (densest use per page first) into VRAM the budget has free, the
**     VRAM reserve included (the reserve is for what the program uses most);
**   - when VRAM is full, VRAM pages of tiered ranges at least EVICT_RATIO times colder out to
**     host first. Passthrough allocations (the driver's own) never move.
** A page moves by copying it through a scratch mapping and then mapping the copy under the same
** address, so the program's pointers stay valid. That is only safe while nothing runs or is being
** enqueued: the pass holds the fence for writing (every fenced entry point holds it for reading
** while it enqueues: launch_hooks.c, fenced.def) and synchronises the context first.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sp.h"

#define PASS_LAUNCHES 4096            /* a pass at least every this many scanned launches, */
#define PASS_NS 20000000ull           /* or after 20 ms */
#define PASS_MIN_LAUNCHES 64          /* and this many launches (a pass costs a context sync) */
#define HOT_USES 2                    /* ranges named by fewer launches (decayed) stay put */
#define EVICT_RATIO 4                 /* a VRAM page leaves only for a range this much denser in use */
#define BATCH 32                      /* pages copied per synchronisation: the scratch window */
#define MAX_PASS_PAGES 1024           /* 2 GiB moved per pass at most */
#define MAX_SCAN_BYTES 4096           /* parameter bytes scanned per launch */
#define MAX_PARAMS 1024

/* ---- the fence -------------------------------------------------------------------------- */

/* Writer-preferring: a pass waiting for the fence is not starved by a stream of launches. */
static pthread_rwlock_t fence = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

void sp_fence_enter(void) { pthread_rwlock_rdlock(&fence); }
void sp_fence_leave(void) { pthread_rwlock_unlock(&fence); }

/* ---- kernel parameter layouts (lock held) ------------------------------------------------ */

typedef struct layout {
  const void *fn;
  uint32_t n;   /* parameters; UINT32_MAX: the driver could not say (the launch is not scanned) */
  uint32_t *ps; /* n pairs: offset, size */
} layout;

static layout *layouts;
static size_t layouts_cap, layouts_used;
static uint64_t launch_seq, launches_since_pass, last_pass_ns;

static size_t slot_of(const void *fn, size_t cap) {
  uint64_t h = (uint64_t)(uintptr_t)fn * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 20) & (cap - 1);
}

static int layouts_grow(void) {
  size_t cap = layouts_cap ? layouts_cap * 2 : 1024;
  layout *t = calloc(cap, sizeof(*t));
  if (!t) return -1;
  for (size_t i = 0; i < layouts_cap; i++) {
    if (!layouts[i].fn) continue;
    size_t s = slot_of(layouts[i].fn, cap);
    while (t[s].fn) s = (s + 1) & (cap - 1);
    t[s] = layouts[i];
  }
  free(layouts);
  layouts = t;
  layouts_cap = cap;
  return 0;
}

/* cuFuncGetParamInfo answers for a CUfunction, cuKernelGetParamInfo for a CUkernel (which
** cuLaunchKernel also accepts); past the last parameter both return an error. */
static uint32_t query_params(CUfunction f, uint32_t *ps, int kernel) {
  uint32_t n = 0;
  for (; n < MAX_PARAMS; n++) {
    size_t off = 0, size = 0;
    CUresult rc = kernel ? sp_real.cuKernelGetParamInfo((CUkernel)(void *)f, n, &off, &size)
                         : sp_real.cuFuncGetParamInfo(f, n, &off, &size);
    if (rc != CUDA_SUCCESS) return n == 0 && rc != CUDA_ERROR_INVALID_VALUE ? UINT32_MAX : n;
    ps[2 * n] = (uint32_t)off;
    ps[2 * n + 1] = (uint32_t)size;
  }
  return n;
}

static layout *layout_of(CUfunction f) {
  if (layouts_used * 2 >= layouts_cap && layouts_grow()) return NULL;
  size_t s = slot_of(f, layouts_cap);
  while (layouts[s].fn && layouts[s].fn != f) s = (s + 1) & (layouts_cap - 1);
  if (layouts[s].fn) return &layouts[s];
  static uint32_t buf[2 * MAX_PARAMS];
  uint32_t n = sp_real.cuFuncGetParamInfo ? query_params(f, buf, 0) : UINT32_MAX;
  if (n == UINT32_MAX && sp_real.cuKernelGetParamInfo) n = query_params(f, buf, 1);
  layout l = {f, n, NULL};
  if (n != UINT32_MAX && n > 0) {
    if (!(l.ps = malloc(n * 2 * sizeof(uint32_t)))) return NULL;
    memcpy(l.ps, buf, n * 2 * sizeof(uint32_t));
  }
  layouts[s] = l;
  layouts_used++;
  return &layouts[s];
}

/* ---- counting use ------------------------------------------------------------------------ */

/* A range a pass would bring (more of) into VRAM: used enough, and not all there yet. */
static int wants_vram(const sp_rec *r) { return r->uses >= HOT_USES && r->nvram < r->npages; }

/* Lock held. Every pass, moving or not, ends here: counts decay, the next interval starts. */
static void end_pass(void) {
  for (size_t i = 0; i < sp_table_count(); i++) sp_table_at(i)->uses >>= 1;
  launches_since_pass = 0;
  last_pass_ns = sp_now_ns();
}

static void note_word(const unsigned char *p, CUdeviceptr lo, CUdeviceptr hi) {
  CUdeviceptr v;
  memcpy(&v, p, sizeof(v));
  if (v < lo || v >= hi) return;
  sp_rec *r = sp_table_containing(v);
  if (!r || !r->tiered || r->dying || r->use_seq == launch_seq) return;
  r->use_seq = launch_seq;
  if (r->uses < UINT32_MAX) r->uses++;
}

static void note_bytes(const unsigned char *p, size_t n, CUdeviceptr lo, CUdeviceptr hi) {
  for (size_t k = 0; k + sizeof(CUdeviceptr) <= n; k += sizeof(CUdeviceptr)) note_word(p + k, lo, hi);
}

int sp_use_note(CUfunction f, void **params, void **extra) {
  CUdeviceptr hi = __atomic_load_n(&sp_g.tiered_hi, __ATOMIC_ACQUIRE);
  if (!hi || !f || (!params && !extra)) return 0;
  CUdeviceptr lo = __atomic_load_n(&sp_g.tiered_lo, __ATOMIC_RELAXED);
  sp_lock();
  launch_seq++;
  layout *l = layout_of(f);
  if (!l || l->n == UINT32_MAX) {
    sp_g.launches_unscannable++;
  } else {
    size_t budget = MAX_SCAN_BYTES;
    if (params) {
      for (uint32_t i = 0; i < l->n && budget >= 8; i++) {
        size_t size = l->ps[2 * i + 1] < budget ? l->ps[2 * i + 1] : budget;
        if (size >= 8 && params[i]) note_bytes(params[i], size, lo, hi);
        budget -= size;
      }
    } else {
      const unsigned char *buf = NULL;
      size_t len = 0;
      for (int i = 0; i < 64 && extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
        if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) buf = extra[i + 1];
        else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE && extra[i + 1]) len = *(const size_t *)extra[i + 1];
      }
      if (buf) note_bytes(buf, len < budget ? len : budget, lo, hi);
    }
    sp_g.launches_scanned++;
  }
  launches_since_pass++;
  int due = launches_since_pass >= PASS_LAUNCHES ||
            (launches_since_pass >= PASS_MIN_LAUNCHES && sp_now_ns() - last_pass_ns >= PASS_NS);
  if (due) { /* nothing in host memory: nothing to do but decay (done here, no sync needed) */
    int any_host = 0;
    for (size_t i = 0; i < sp_table_count() && !any_host; i++) {
      sp_rec *r = sp_table_at(i);
      any_host = r->tiered && !r->dying && wants_vram(r);
    }
    if (!any_host) {
      end_pass();
      due = 0;
    }
  }
  sp_unlock();
  return due;
}

/* ---- moving pages (fence held for writing, lock held) ------------------------------------ */

typedef struct move {
  sp_rec *r;
  uint32_t page;
  CUmemGenericAllocationHandle to;
} move;

typedef struct mover {
  sp_dev *d;
  CUdeviceptr scratch;
  move m[BATCH];
  int n, to_host; /* the batch's direction */
  int failed;
} mover;

static CUdeviceptr scratch_va[SP_MAX_DEV];

static void give_back(mover *mv, int to_host, CUmemGenericAllocationHandle h) {
  sp_pool_put(to_host ? &sp_g.pinned_pool : &mv->d->vram_pool, h);
}

/* Copy the batch into its new pages, then swap each page's backing under its address. */
static void flush(mover *mv) {
  sp_dev *d = mv->d;
  int n = mv->n, copied = 0;
  mv->n = 0;
  for (; copied < n; copied++) {
    move *m = &mv->m[copied];
    CUdeviceptr s = mv->scratch + (CUdeviceptr)copied * SP_PAGE;
    if (sp_real.cuMemMap(s, SP_PAGE, 0, m->to, 0) != CUDA_SUCCESS) break;
    if (sp_access_rw(d->ordinal, s, SP_PAGE) != CUDA_SUCCESS ||
        sp_real.cuMemcpyDtoD_v2(s, m->r->va + (CUdeviceptr)m->page * SP_PAGE, SP_PAGE) != CUDA_SUCCESS) {
      sp_real.cuMemUnmap(s, SP_PAGE);
      break;
    }
  }
  int synced = sp_real.cuCtxSynchronize() == CUDA_SUCCESS;
  for (int k = 0; k < n; k++) {
    move *m = &mv->m[k];
    if (k < copied) sp_real.cuMemUnmap(mv->scratch + (CUdeviceptr)k * SP_PAGE, SP_PAGE);
    CUdeviceptr va = m->r->va + (CUdeviceptr)m->page * SP_PAGE;
    if (k >= copied || !synced || sp_real.cuMemUnmap(va, SP_PAGE) != CUDA_SUCCESS) {
      m->r->in_host[m->page] = (uint8_t)!mv->to_host;
      give_back(mv, mv->to_host, m->to);
      mv->failed = 1;
      continue;
    }
    CUmemGenericAllocationHandle from = m->r->pages[m->page];
    if (sp_real.cuMemMap(va, SP_PAGE, 0, m->to, 0) != CUDA_SUCCESS ||
        sp_access_rw(d->ordinal, va, SP_PAGE) != CUDA_SUCCESS) {
      sp_real.cuMemUnmap(va, SP_PAGE);
      CUresult rc = sp_real.cuMemMap(va, SP_PAGE, 0, from, 0);
      if (rc == CUDA_SUCCESS) rc = sp_access_rw(d->ordinal, va, SP_PAGE);
      if (rc != CUDA_SUCCESS) sp_log(SP_LOG_ERROR, "migration could not restore the page at 0x%llx (CUresult %d)",
                                     (unsigned long long)va, rc);
      m->r->in_host[m->page] = (uint8_t)!mv->to_host;
      give_back(mv, mv->to_host, m->to);
      mv->failed = 1;
      continue;
    }
    m->r->pages[m->page] = m->to;
    m->r->in_host[m->page] = (uint8_t)mv->to_host;
    give_back(mv, !mv->to_host, from);
    int dir = mv->to_host ? 1 : -1;
    m->r->nvram -= dir;
    d->tier_bytes[0] -= dir * SP_PAGE;
    d->tier_bytes[1] += dir * SP_PAGE;
    if (mv->to_host) {
      sp_g.pages_demoted++;
      sp_g.pages_pinned++;
    } else {
      sp_g.pages_promoted++;
      sp_g.pages_vram++;
    }
  }
  if (copied < n) sp_log(SP_LOG_WARN, "migration stopped: a page copy could not be set up");
  sp_dev_peaks(d);
}

/* Queue page i of r for the other tier; 0 when its new page could not be had. */
static int queue(mover *mv, sp_rec *r, uint32_t i) {
  int to_host = !r->in_host[i];
  if (mv->n && (mv->to_host != to_host || mv->n == BATCH)) flush(mv);
  if (mv->failed) return 0;
  CUmemGenericAllocationHandle h;
  if (to_host) {
    if (sp_pool_take(&sp_g.pinned_pool, &h) != 0 &&
        (sp_pinned_grow(1) == 0 || sp_pool_take(&sp_g.pinned_pool, &h) != 0))
      return 0;
  } else if (sp_pool_take(&mv->d->vram_pool, &h) != 0) {
    if (sp_page_create(&h, CU_MEM_LOCATION_TYPE_DEVICE, mv->d->ordinal) != CUDA_SUCCESS) return 0;
    mv->d->vram_pool.total++;
  }
  mv->to_host = to_host;
  mv->m[mv->n++] = (move){r, i, h};
  return 1;
}

/* density(a) > density(b): more launches per page */
static int denser(const sp_rec *a, const sp_rec *b) { return (uint64_t)a->uses * b->npages > (uint64_t)b->uses * a->npages; }

static int by_density_desc(const void *x, const void *y) {
  const sp_rec *a = *(sp_rec *const *)x, *b = *(sp_rec *const *)y;
  return denser(b, a) - denser(a, b);
}

/* Free VRAM pages the budget allows, the reserve included. */
static uint64_t vram_room(const sp_dev *d) {
  uint64_t committed = sp_dev_vram_committed(d);
  return (d->limit > committed ? (d->limit - committed) / SP_PAGE : 0) + d->vram_pool.nfree;
}

/* Queue up to `want` VRAM pages of the coldest ranges (after position c, and EVICT_RATIO times
** colder than hot) for host memory, and move them: their VRAM pages return to the pool. */
static uint32_t make_room(mover *mv, sp_rec **recs, size_t *cold_end, size_t c, const sp_rec *hot, uint32_t want) {
  uint32_t got = 0;
  while (got < want && *cold_end > c + 1) {
    sp_rec *cold = recs[*cold_end - 1];
    if ((uint64_t)cold->uses * EVICT_RATIO * hot->npages > (uint64_t)hot->uses * cold->npages) break;
    uint32_t j = cold->npages;
    while (j > 0 && cold->in_host[j - 1]) j--;
    if (j == 0) {
      (*cold_end)--;
      continue;
    }
    if (!queue(mv, cold, j - 1)) break;
    cold->in_host[j - 1] = 2; /* queued; flush sets it to 1 (moved) or the pass resets it to 0 */
    got++;
  }
  if (mv->n) flush(mv);
  return got;
}

/* recs sorted densest first: would a pass move anything? (A pass costs a context sync.) */
static int worth_a_pass(const sp_dev *d, sp_rec **recs, size_t n) {
  int room = vram_room(d) > 0;
  for (size_t c = 0; c < n; c++) {
    const sp_rec *hot = recs[c];
    if (!wants_vram(hot)) continue;
    if (room) return 1;
    for (size_t v = n; v > c + 1; v--) {
      const sp_rec *cold = recs[v - 1];
      if ((uint64_t)cold->uses * EVICT_RATIO * hot->npages > (uint64_t)hot->uses * cold->npages) break;
      if (cold->nvram) return 1;
    }
  }
  return 0;
}

static void plan_device(mover *mv, sp_rec **recs, size_t n) {
  uint64_t moved = 0;
  size_t cold_end = n; /* victims are taken from the cold end */
  for (size_t c = 0; c < n; c++) {
    sp_rec *hot = recs[c];
    if (!wants_vram(hot)) continue;
    for (uint32_t i = 0; i < hot->npages; i++) {
      if (moved >= MAX_PASS_PAGES || mv->failed) goto done;
      if (hot->in_host[i] != 1) continue;
      if (vram_room(mv->d) == 0) {
        uint32_t left = 0;
        for (uint32_t k = i; k < hot->npages && left < BATCH; k++) left += hot->in_host[k] == 1;
        moved += make_room(mv, recs, &cold_end, c, hot, left);
        if (vram_room(mv->d) == 0) goto done;
      }
      if (!queue(mv, hot, i)) goto done;
      moved++;
    }
  }
done:
  if (mv->n) flush(mv);
}

void sp_migrate_pass(void) {
  uint64_t t0 = sp_now_ns();
  CUcontext ctx = NULL;
  if (!sp_real.cuCtxGetCurrent || sp_real.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || !ctx) return;
  sp_dev *d = sp_dev_current(); /* takes the lock itself */
  pthread_rwlock_wrlock(&fence);
  sp_lock();
  int mode = CU_STREAM_CAPTURE_MODE_RELAXED, swapped = 0;
  size_t n = 0;
  sp_rec **recs = NULL;
  if (!d || !d->tiering || launches_since_pass < PASS_MIN_LAUNCHES) goto out;
  if (!scratch_va[d->ordinal] &&
      sp_real.cuMemAddressReserve(&scratch_va[d->ordinal], BATCH * SP_PAGE, SP_PAGE, 0, 0) != CUDA_SUCCESS) {
    scratch_va[d->ordinal] = 0;
    goto out;
  }
  recs = malloc(sp_table_count() * sizeof(*recs) + 1);
  if (!recs) goto out;
  for (size_t i = 0; i < sp_table_count(); i++) {
    sp_rec *r = sp_table_at(i);
    if (r->tiered && !r->dying && r->dev == d->ordinal && r->ctx == ctx) recs[n++] = r;
  }
  /* A capture elsewhere in the process must not be invalidated by our synchronisation. */
  if (sp_real.cuThreadExchangeStreamCaptureMode) swapped = sp_real.cuThreadExchangeStreamCaptureMode(&mode) == CUDA_SUCCESS;
  qsort(recs, n, sizeof(*recs), by_density_desc);
  if (n && worth_a_pass(d, recs, n) && sp_real.cuCtxSynchronize() == CUDA_SUCCESS) {
    mover mv = {.d = d, .scratch = scratch_va[d->ordinal]};
    uint64_t before = sp_g.pages_promoted + sp_g.pages_demoted;
    plan_device(&mv, recs, n);
    for (size_t i = 0; i < n; i++)
      for (uint32_t j = 0; j < recs[i]->npages; j++)
        if (recs[i]->in_host[j] == 2) recs[i]->in_host[j] = 0; /* a queued demotion that did not happen */
    uint64_t moved = sp_g.pages_promoted + sp_g.pages_demoted - before;
    if (moved) {
      sp_g.migrate_passes++;
      sp_g.migrate_ns += sp_now_ns() - t0;
      sp_log(SP_LOG_DEBUG, "migration pass: %llu pages moved in %.1f ms", (unsigned long long)moved,
             (double)(sp_now_ns() - t0) / 1e6);
    }
    if (mv.failed) sp_log(SP_LOG_WARN, "a migration pass failed part-way; pages stay where they are");
  }
  if (swapped) sp_real.cuThreadExchangeStreamCaptureMode(&mode);
out:
  free(recs);
  end_pass();
  sp_stats_publish();
  sp_unlock();
  pthread_rwlock_unlock(&fence);
}

/* Child of fork: the parent's threads (and any fence they held) are gone; so is the driver state. */
void sp_migrate_after_fork(void) {
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&fence, &a);
  pthread_rwlockattr_destroy(&a);
  layouts = NULL; /* the parent's table is leaked in the child: its functions are not valid here */
  layouts_cap = layouts_used = 0;
  launch_seq = launches_since_pass = last_pass_ns = 0;
  memset(scratch_va, 0, sizeof(scratch_va));
}
