/*
** migrate.c: when placement runs. It joins the scan (scan.c: uses per range), the policy
** (policy.c: which pages should move) and the mover (mover.c: copy, then remap under the same
** address) at two moments:
**   - a pass, every few thousand launches or 20 ms of launching (sp_migrate_pass, from the launch
**     and graph-launch hooks, never from a stream being captured): hot host pages come into VRAM,
**     trading places with much colder VRAM pages when VRAM is full. A pass that would move nothing
**     costs no synchronisation, which is the steady state of a repeating workload;
**   - an allocation that would land in host memory (sp_migrate_evict, from mem_hooks.c and
**     vmm_hooks.c): the coldest VRAM pages leave first, unless a stream capture is under way
**     anywhere in the process (a synchronisation would break it; the next pass corrects instead).
** Both hold the fence for writing: every fenced entry point (launch_hooks.c, fenced.def,
** graph_hooks.c) holds it for reading while it enqueues, so no page changes backing meanwhile.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sp.h"

#define MAX_PASS_PAGES 1024 /* 2 GiB moved per pass at most */

/* Writer-preferring: a pass waiting for the fence is not starved by a stream of launches. */
static pthread_rwlock_t fence = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

void sp_fence_enter(void) { pthread_rwlock_rdlock(&fence); }
void sp_fence_leave(void) { pthread_rwlock_unlock(&fence); }

/* ---- stream captures in progress (capture_hooks.c) --------------------------------------- */

static int captures;

void sp_capture_begin(void) { __atomic_add_fetch(&captures, 1, __ATOMIC_ACQ_REL); }
void sp_capture_end(void) {
  if (__atomic_load_n(&captures, __ATOMIC_ACQUIRE) > 0) __atomic_sub_fetch(&captures, 1, __ATOMIC_ACQ_REL);
}
int sp_capturing_anywhere(void) { return __atomic_load_n(&captures, __ATOMIC_ACQUIRE) > 0; }

/* ---- the candidates ---------------------------------------------------------------------- */

/* Lock held. Movable ranges of device d in context ctx (a move synchronises that context). */
static sp_rec **candidates(const sp_dev *d, CUcontext ctx, size_t *n) {
  sp_rec **recs = malloc(sp_table_count() * sizeof(*recs) + 1);
  *n = 0;
  if (!recs) return NULL;
  for (size_t i = 0; i < sp_table_count(); i++) {
    sp_rec *r = sp_table_at(i);
    if (r->tiered && r->movable && !r->dying && r->dev == d->ordinal && r->ctx == ctx) recs[(*n)++] = r;
  }
  return recs;
}

/* Lock held. VRAM pages a pass may fill: the budget above the reserve, which stays free for the
** next fresh allocation (the reserve is what late allocations land in). */
static uint64_t pass_room(const sp_dev *d) {
  uint64_t in_use = sp_dev_vram_committed(d) - (uint64_t)d->vram_pool.nfree * SP_PAGE;
  uint64_t budget = d->limit - d->reserve;
  return budget > in_use ? (budget - in_use) / SP_PAGE : 0;
}

/* Lock held: is there anything a pass could want to move? (No sync, no fence: cheap.) */
static int anything_wanted(void) {
  for (size_t i = 0; i < sp_table_count(); i++) {
    sp_rec *r = sp_table_at(i);
    if (r->tiered && !r->dying && sp_policy_wants_room(r)) return 1;
  }
  return 0;
}

/* Runs plan() and the mover under the fence, with the thread's capture mode relaxed (a capture
** elsewhere in the process must not be invalidated by our synchronisation). Lock not held. */
typedef size_t (*plan_fn)(sp_dev *d, sp_rec **recs, size_t n, uint64_t arg, sp_move *out, size_t max);

/* Lock held, debug log only: which ranges a placement run moves (moves come grouped by range). */
static void log_moves(const sp_move *m, size_t nm, int is_pass) {
  if (sp_cfg.log_level < SP_LOG_DEBUG) return;
  int lines = 0;
  for (size_t i = 0; i < nm && lines < 12;) {
    size_t j = i;
    uint32_t in = 0, out = 0;
    for (; j < nm && m[j].r == m[i].r; j++) {
      if (m[j].to == SP_PAGE_VRAM) in++;
      else out++;
    }
    const sp_rec *r = m[i].r;
    sp_log(SP_LOG_DEBUG, "  %s: range 0x%llx (%u pages, %u in VRAM, uses %u, buffer %llu): %u to VRAM, %u to host",
           is_pass ? "pass" : "eviction", (unsigned long long)r->va, r->npages, r->nvram, r->uses,
           (unsigned long long)r->buffer_id, in, out);
    lines++;
    i = j;
  }
}

static size_t placement_run(sp_dev *d, CUcontext ctx, plan_fn plan, uint64_t arg, int is_pass) {
  uint64_t t0 = sp_now_ns();
  size_t done = 0, n = 0;
  pthread_rwlock_wrlock(&fence);
  sp_lock();
  sp_rec **recs = candidates(d, ctx, &n);
  sp_move *moves = recs ? malloc(MAX_PASS_PAGES * sizeof(*moves)) : NULL;
  if (moves && n) {
    size_t nm = plan(d, recs, n, arg, moves, MAX_PASS_PAGES);
    log_moves(moves, nm, is_pass);
    if (nm) {
      int mode = CU_STREAM_CAPTURE_MODE_RELAXED, swapped = 0;
      if (sp_real.cuThreadExchangeStreamCaptureMode)
        swapped = sp_real.cuThreadExchangeStreamCaptureMode(&mode) == CUDA_SUCCESS;
      done = sp_move_pages(d->ordinal, moves, nm);
      if (swapped) sp_real.cuThreadExchangeStreamCaptureMode(&mode);
      if (done < nm) sp_log(SP_LOG_WARN, "placement moved %zu of %zu pages; the rest stay where they are", done, nm);
    }
  }
  if (done) {
    if (is_pass) sp_g.migrate_passes++;
    else sp_g.evictions++;
    sp_g.migrate_ns += sp_now_ns() - t0;
    sp_log(SP_LOG_DEBUG, "%s: %zu pages moved in %.1f ms", is_pass ? "placement pass" : "eviction for an allocation",
           done, (double)(sp_now_ns() - t0) / 1e6);
  }
  if (is_pass) sp_use_decay();
  sp_stats_publish();
  sp_unlock();
  pthread_rwlock_unlock(&fence);
  free(moves);
  free(recs);
  return done;
}

static size_t plan_pass(sp_dev *d, sp_rec **recs, size_t n, uint64_t arg, sp_move *out, size_t max) {
  (void)arg;
  uint64_t room = pass_room(d);
  if (!sp_policy_worth_a_pass(recs, n, room)) return 0;
  return sp_policy_pass(recs, n, room, out, max);
}

static size_t plan_evict(sp_dev *d, sp_rec **recs, size_t n, uint64_t need, sp_move *out, size_t max) {
  (void)d;
  return sp_policy_evict(recs, n, need, out, max);
}

static int current(sp_dev **d, CUcontext *ctx) {
  *ctx = NULL;
  if (!sp_real.cuCtxGetCurrent || sp_real.cuCtxGetCurrent(ctx) != CUDA_SUCCESS || !*ctx) return 0;
  *d = sp_dev_current();
  return *d && (*d)->tiering;
}

void sp_migrate_pass(void) {
  sp_dev *d;
  CUcontext ctx;
  sp_lock();
  int ready = sp_use_pass_ready(), wanted = ready && anything_wanted();
  if (ready && !wanted) sp_use_decay(); /* nothing in host memory is hot: decay, no fence */
  sp_unlock();
  if (!wanted) return;
  /* No pass from here (no context, or a device that does not tier): the interval ends all the
  ** same, or every later launch here would ask again, each a scan of the whole table. */
  if (!current(&d, &ctx)) {
    sp_lock();
    sp_use_decay();
    sp_unlock();
    return;
  }
  placement_run(d, ctx, plan_pass, 0, 1);
}

size_t sp_migrate_evict(sp_dev *d, uint64_t pages) {
  CUcontext ctx = NULL;
  CUdevice cur = -1;
  if (!sp_cfg.migrate || !pages || sp_capturing_anywhere()) return 0;
  if (!sp_real.cuCtxGetCurrent || sp_real.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || !ctx) return 0;
  /* The mover copies in the current context: only pages of its own device (a cuMemCreate for
  ** another GPU while this one is current makes no room rather than copy from the wrong GPU). */
  if (sp_real.cuCtxGetDevice(&cur) != CUDA_SUCCESS || cur != d->ordinal) return 0;
  return placement_run(d, ctx, plan_evict, pages, 0);
}

/* Child of fork: the parent's threads (and any fence they held) are gone; so is the driver state. */
void sp_migrate_after_fork(void) {
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&fence, &a);
  pthread_rwlockattr_destroy(&a);
  captures = 0;
  sp_scan_after_fork();
  sp_mover_after_fork();
}
