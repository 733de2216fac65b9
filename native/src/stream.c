/*
** stream.c: the streaming engine. A kernel that re-reads its inputs (a prefill GEMM reads each
** weight tile once per output tile) runs many times the link's time when its inputs are host
** pages read in place. For such launches the engine copies the named ranges, whole, into a VRAM
** staging arena on its own copy stream, ahead of use, and the launch reads the staged copy: the
** 8-byte words of its parameters that pointed into the range are rewritten to the same offset in
** the copy (the scan found them; nothing else changes), and the launch's stream waits for the
** copy in stream order (an event), never the CPU.
**
**  - Which launches: learned per function by measurement. The first launches of a function that
**    name host pages are timed with events (in place); if one took SPILLOVER_STREAM_RATIO (1.5)
**    times the link time of the host bytes it names or more, the function re-reads and its launches
**    stage (a copy overlapped with other work costs about 1x). Read-once kernels (decode GEMVs at
**    about 1.0x, embedding lookups) keep reading in place.
**  - Ahead of use: each staged range remembers the staged range used after it, for each of the
**    last two ranges used before it (forward and backward passes of a training step walk the
**    same layers both ways); after a launch the engine walks that chain and stages what comes
**    next while the arena has room that no launch still needs. The arena is a ring: a slot is reused in staging order, and the copy
**    stream first waits for the last launch (per stream) that read it.
**  - Written pages come back: every staged page is hashed on the GPU when staged; before its slot
**    is reused a kernel re-hashes it and copies changed pages back to the range's own pages. Until
**    that write-back has run, launches, copies and graphs that name the range wait for it.
**  - Only launches of functions that stage are rewritten. Any other launch that names a staged
**    range first unstages it (the write-back on the write-back stream, the launch's stream waiting for
**    it, no CPU wait) and reads the range's own pages. Pointers the scan cannot see (stored in
**    device memory) read the range's own pages: correct for data no staged launch writes.
**  - The arena is a tiered range of ours that never moves (inside the VRAM limit, never the
**    reserve, made with an eviction like any fresh allocation), SPILLOVER_STREAM_BUDGET of the
**    limit (default 25%); after IDLE_NS without staging it goes back to placement.
**  - Graph launches and launches while a capture runs are never rewritten (replays read in place:
**    graphs are what decode loops use); a graph launch settles the staged ranges it names first,
**    and a capture begins with every staged range settled.
**  - Three streams of the engine's own, at the greatest priority the context has: copies (a copy
**    engine, cuMemcpyDtoDAsync), hash kernels and write-back kernels. Our kernels wait for SMs the
**    program's kernels hold; on the copy stream itself they would leave the copy engine idle
**    meanwhile, so a copy waits only for the write-backs of slots that left since the copy before
**    it (no reader or write-back then still uses what it overwrites or reads). With
**    SPILLOVER_STREAM_COPY=kernel one kernel on the SMs copies and hashes (on the hash stream).
**  - Any failure (no room, a copy refused, our module not loading) falls back to reading in
**    place; eight stagings failing in a row give the arena back and turn the engine off for the
**    device. Waits for the engine's streams never hold the interposer's lock (except at frees, whose
**    work has been waited for already).
** SPILLOVER_STREAM=0 turns it off.
*/
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sp.h"
#include "stage_kernels.h"
#include "stage_kernels_ptx.h"

#define MAX_SLOTS 256
#define SLOT_STREAMS 4         /* streams whose last read of a slot is tracked */
#define MAX_FNS 4096           /* functions with a decision (open addressing) */
#define SAMPLES 3              /* timed in-place launches per function before deciding */
#define MAX_SAMPLES 32         /* timings in flight */
#define LINK_GUESS_BPS 50e9    /* the link before the engine has measured its own copies */
#define MIN_SAMPLE_BYTES (4ull << 20)
#define LOOKAHEAD 64           /* ranges walked ahead per launch */
#define MAX_LAUNCH_REFS 64
#define IDLE_NS 1000000000ull  /* no staging for this long: the arena goes back to placement */
#define MIN_ARENA (4 * SP_PAGE) /* a smaller staging arena is not worth its copies */
#define MAX_FAILURES 8         /* stagings failed in a row before the engine stops for the device */
#define MAX_ARG_BYTES 32768    /* kernel parameters a launch may carry (CUDA 12.1+: 32764) */
#define STREAM_PER_THREAD ((CUstream)0x2)

#define TIMED 512              /* staging copies timed and not yet counted */

typedef struct slot {
  sp_rec *r;     /* the range; NULL when it was freed while staged (nothing to write back) */
  uint64_t off;  /* place in the arena */
  uint64_t span; /* bytes */
  int used, consumed;
  int pinned; /* launches being prepared that read it (several threads: a count) */
  CUevent copied, ready; /* the copy done (copy stream); the hashes taken too (hash stream) */
  CUevent use_ev[SLOT_STREAMS];
  CUstream use_st[SLOT_STREAMS];
  int nuse;
  int next_victim; /* the use_st entry a fifth stream takes over */
} slot;

typedef struct engine {
  int state; /* 0 not set up, 1 running (arena made), 2 set up, arena given back while idle,
                3 starting (another thread makes the arena), 4 giving the arena back, -1 off */
  int stop;  /* stagings kept failing: the arena goes back at the next chance, then off */
  uint64_t written_base; /* write-back pages counted in arenas given back */
  CUcontext ctx;
  CUstream copy, hash, wb; /* copies; hash kernels (and the kernel copy); write-backs */
  CUmodule mod;
  CUfunction f_hash, f_writeback, f_copy;
  CUdeviceptr arena;   /* size bytes of slots, then one page of hashes and the write counter */
  uint64_t size, head;
  sp_rec *arena_rec;
  uint64_t last_stage_ns; /* the last staging or staged read: the arena leaves after IDLE_NS without */
  CUevent wb_done;     /* recorded after every write-back (wb stream) */
  CUevent reuse;       /* slots that left: their readers and write-backs done (wb stream) */
  int left;            /* a slot left since the copy stream last waited for e->reuse */
  int wb_pending;      /* a write-back was enqueued since wb_done was last seen complete */
  uint64_t wb_gen;     /* write-backs enqueued (a range's stage_wb is the number of its own) */
  uint64_t written_now; /* the arena's write-back counter, as last read */
  CUevent order;       /* a program stream's point a staging copy waits for */
  slot slots[MAX_SLOTS];
  sp_rec *last;        /* the staged range the last launch read: successor learning */
  uint64_t prev_id;    /* buffer_id of the staged range read before it (0: none) */
  sp_rec *soon[LOOKAHEAD]; /* staged ranges the chain says are read next (kept when room is made) */
  int nsoon;
  double link_bps;     /* measured from our own copies */
  int failures;        /* stagings failed in a row */
  struct {
    CUevent a, b; /* around one staging copy on the copy stream (or the hash stream's kernel copy) */
    uint64_t bytes;
  } timed[TIMED];
  uint64_t timed_head, timed_tail; /* copies timed / counted, in staging order */
} engine;

typedef struct fn_decision {
  const void *fn;
  uint8_t samples;
  int8_t stage; /* -1 undecided, 0 in place, 1 stage */
  float ratio;  /* largest in-place time / link time seen */
} fn_decision;

typedef struct sample {
  const void *fn;
  CUevent a, b;
  uint64_t host_bytes;
  int live;
} sample;

static engine eng[SP_MAX_DEV];
static fn_decision fns[MAX_FNS];
static sample samples[MAX_SAMPLES];
static int live; /* any slot in use or write-back pending: copies and graphs must check */

/* ---- small helpers ----------------------------------------------------------------------- */

static CUstream ptsz_stream(CUstream s, int ptsz) { return ptsz && !s ? STREAM_PER_THREAD : s; }

static fn_decision *decision_of(const void *fn) {
  size_t i = (size_t)(((uint64_t)(uintptr_t)fn * 0x9E3779B97F4A7C15ull) >> 20) & (MAX_FNS - 1);
  for (size_t k = 0; k < MAX_FNS; k++, i = (i + 1) & (MAX_FNS - 1)) {
    if (fns[i].fn == fn) return &fns[i];
    if (!fns[i].fn) {
      fns[i] = (fn_decision){fn, 0, -1, 0};
      return &fns[i];
    }
  }
  return NULL; /* full: undecided forever, reads in place */
}

static uint64_t host_bytes_of(const sp_rec *r) { return (uint64_t)(r->npages - r->nvram) * SP_PAGE; }

static slot *slot_of(const sp_rec *r) {
  if (!r->stage_slot || r->dev < 0 || r->dev >= SP_MAX_DEV) return NULL;
  slot *s = &eng[r->dev].slots[r->stage_slot - 1];
  return s->used && s->r == r ? s : NULL;
}

/* The engine's stream, events and kernels belong to its context: make it current for work on it
** from a call in another context (a copy on GPU 1 settling a range of GPU 0). 1: pushed. */
static int ctx_enter(const engine *e) {
  CUcontext cur = NULL;
  if (sp_real.cuCtxGetCurrent(&cur) != CUDA_SUCCESS || cur == e->ctx) return 0;
  return sp_real.cuCtxPushCurrent_v2 && sp_real.cuCtxPushCurrent_v2(e->ctx) == CUDA_SUCCESS;
}
static void ctx_leave(int pushed) {
  CUcontext c;
  if (pushed) sp_real.cuCtxPopCurrent_v2(&c);
}

/* Lock held: the device state of the current context, if initialised. */
static sp_dev *sp_dev_current_locked(void) {
  CUdevice dev;
  if (!sp_real.cuCtxGetDevice || sp_real.cuCtxGetDevice(&dev) != CUDA_SUCCESS || dev < 0 || dev >= SP_MAX_DEV)
    return NULL;
  return sp_g.dev[dev].ready ? &sp_g.dev[dev] : NULL;
}

static CUresult wait_event(CUstream s, CUevent e) {
  return sp_real.cuStreamWaitEvent ? sp_real.cuStreamWaitEvent(s, e, 0) : CUDA_ERROR_NOT_FOUND;
}

/* ---- timing samples: does a function re-read what it names? ------------------------------ */

static void decide(const void *fn, double ratio, double link) {
  fn_decision *d = decision_of(fn);
  if (!d || d->stage >= 0) return;
  if (ratio > d->ratio) d->ratio = (float)ratio;
  if (++d->samples < SAMPLES) return;
  d->stage = d->ratio >= sp_cfg.stream_ratio;
  sp_log(SP_LOG_DEBUG, "stream: function %p %s (in place %.1fx the link time at %.1f GB/s)", fn,
         d->stage ? "stages" : "reads in place", d->ratio, link / 1e9);
}

/* Lock held. Finished timings become decisions. */
static void poll_samples(double link) {
  if (link <= 0) link = LINK_GUESS_BPS;
  for (int i = 0; i < MAX_SAMPLES; i++) {
    sample *s = &samples[i];
    if (!s->live || sp_real.cuEventQuery(s->b) == CUDA_ERROR_NOT_READY) continue;
    float ms = 0;
    s->live = 0;
    if (sp_real.cuEventElapsedTime(&ms, s->a, s->b) != CUDA_SUCCESS) continue;
    decide(s->fn, (double)ms * 1e-3 / ((double)s->host_bytes / link), link);
  }
}

static sample *sample_start(const void *fn, CUstream s, uint64_t host_bytes) {
  for (int i = 0; i < MAX_SAMPLES; i++) {
    sample *x = &samples[i];
    if (x->live) continue;
    if (!x->a && (sp_real.cuEventCreate(&x->a, 0) != CUDA_SUCCESS || sp_real.cuEventCreate(&x->b, 0) != CUDA_SUCCESS))
      return NULL;
    if (sp_real.cuEventRecord(x->a, s) != CUDA_SUCCESS) return NULL;
    *x = (sample){fn, x->a, x->b, host_bytes, 1};
    return x;
  }
  return NULL;
}

/* ---- the engine of a device -------------------------------------------------------------- */

/* A stream of the engine's, at the context's greatest priority: the block scheduler then gives
** our short kernels the next free SM slot instead of queueing them behind a long GEMM. */
static CUresult our_stream(CUstream *s) {
  int least = 0, greatest = 0;
  if (sp_real.cuStreamCreateWithPriority && sp_real.cuCtxGetStreamPriorityRange &&
      sp_real.cuCtxGetStreamPriorityRange(&least, &greatest) == CUDA_SUCCESS &&
      sp_real.cuStreamCreateWithPriority(s, CU_STREAM_NON_BLOCKING, greatest) == CUDA_SUCCESS)
    return CUDA_SUCCESS;
  return sp_real.cuStreamCreate(s, CU_STREAM_NON_BLOCKING);
}

/* Lock held. Our module, streams and events in the context (once per device). */
static int engine_setup(engine *e, CUcontext ctx) {
  e->ctx = ctx;
  e->link_bps = LINK_GUESS_BPS;
  if (!sp_real.cuStreamCreate || !sp_real.cuModuleLoadData || !sp_real.cuModuleGetFunction ||
      !sp_real.cuStreamWaitEvent || !sp_real.cuEventElapsedTime || !sp_real.cuMemcpyDtoDAsync_v2 ||
      !sp_real.cuStreamSynchronize)
    return -1;
  if (our_stream(&e->copy) != CUDA_SUCCESS || our_stream(&e->hash) != CUDA_SUCCESS ||
      our_stream(&e->wb) != CUDA_SUCCESS || sp_real.cuModuleLoadData(&e->mod, sp_stage_ptx) != CUDA_SUCCESS ||
      sp_real.cuModuleGetFunction(&e->f_hash, e->mod, SP_STAGE_KERNEL_HASH) != CUDA_SUCCESS ||
      sp_real.cuModuleGetFunction(&e->f_writeback, e->mod, SP_STAGE_KERNEL_WRITEBACK) != CUDA_SUCCESS ||
      sp_real.cuModuleGetFunction(&e->f_copy, e->mod, SP_STAGE_KERNEL_COPY) != CUDA_SUCCESS ||
      sp_real.cuEventCreate(&e->wb_done, CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS ||
      sp_real.cuEventCreate(&e->order, CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS ||
      sp_real.cuEventCreate(&e->reuse, CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS) {
    sp_log(SP_LOG_WARN, "stream: the staging stream or kernels could not be set up; reading host pages in place");
    return -1;
  }
  for (int i = 0; i < MAX_SLOTS; i++) {
    slot *s = &e->slots[i];
    if (sp_real.cuEventCreate(&s->copied, CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS ||
        sp_real.cuEventCreate(&s->ready, CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS)
      return -1;
    for (int k = 0; k < SLOT_STREAMS; k++)
      if (sp_real.cuEventCreate(&s->use_ev[k], CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS) return -1;
  }
  for (int i = 0; i < TIMED; i++)
    if (sp_real.cuEventCreate(&e->timed[i].a, 0) != CUDA_SUCCESS || sp_real.cuEventCreate(&e->timed[i].b, 0) != CUDA_SUCCESS)
      return -1;
  return 0;
}

/* Lock held. The arena, made with an eviction like a fresh allocation so it lands in VRAM, never
** in the reserve. 0: running. */
static int arena_make(engine *e, sp_dev *d) {
  uint64_t budget = sp_size_resolve(&sp_cfg.stream_budget, d->limit, d->limit / 4) / SP_PAGE * SP_PAGE;
  if (budget > d->limit / 2) budget = d->limit / 2 / SP_PAGE * SP_PAGE;
  if (budget < MIN_ARENA) {
    sp_log(SP_LOG_INFO, "stream: a staging budget of %llu bytes is too small; reading host pages in place",
           (unsigned long long)budget);
    return -1;
  }
  uint64_t pages = budget / SP_PAGE + 1; /* + the page of hashes */
  sp_unlock();
  sp_migrate_evict(d, pages); /* room first, as for any fresh allocation */
  sp_lock();
  /* Never the reserve: late allocations (activations, graph pools) land there. What room there
  ** is above it, if not all that was asked for. */
  uint64_t room = sp_vram_room(d, 0);
  if (room < pages) {
    pages = room;
    budget = (pages ? pages - 1 : 0) * SP_PAGE;
  }
  CUdeviceptr va = 0;
  if (budget < MIN_ARENA || sp_tiered_alloc(d, pages * SP_PAGE, 0, 1, &va) != CUDA_SUCCESS) {
    sp_log(SP_LOG_INFO, "stream: no VRAM above the reserve for a staging arena; reading host pages in place");
    sp_g.stream_fallbacks++;
    return -1;
  }
  sp_rec *r = sp_table_find(va);
  if (!r || r->nvram != r->npages) {
    if (r) sp_tiered_release(r);
    sp_log(SP_LOG_INFO, "stream: no VRAM for a %llu MiB staging arena; reading host pages in place",
           (unsigned long long)(budget >> 20));
    sp_g.stream_fallbacks++;
    return -1;
  }
  /* On the hash stream, not the legacy one (which our non-blocking streams do not follow, and
  ** which may be queued behind the program's kernels): hash kernels and kernel copies come after
  ** it there, write-backs and the counter's reads after those. */
  if (!sp_real.cuMemsetD8Async || sp_real.cuMemsetD8Async(va + budget, 0, SP_PAGE, e->hash) != CUDA_SUCCESS) {
    sp_tiered_release(r); /* hashes and the write-back counter start from zero */
    sp_g.stream_fallbacks++;
    return -1;
  }
  r->movable = 0;
  r->stage_arena = 1;
  e->arena_rec = r;
  e->arena = va;
  e->size = budget;
  e->head = 0;
  e->last_stage_ns = sp_now_ns();
  sp_g.stream_budget += budget;
  sp_log(SP_LOG_INFO, "stream: staging arena of %llu MiB on device %d", (unsigned long long)(budget >> 20),
         d->ordinal);
  return 0;
}

/* Lock held. Starts (or restarts after an idle release) the engine of a device. */
static void engine_start(engine *e, sp_dev *d, CUcontext ctx) {
  int was = e->state;
  if (was == 0 && engine_setup(e, ctx) != 0) {
    e->state = -1;
    return;
  }
  if (e->ctx != ctx) return; /* set up in another context: that one's launches only */
  e->state = 3; /* arena_make drops the lock to evict: no other thread starts meanwhile */
  int ok = arena_make(e, d) == 0;
  e->state = ok ? 1 : (was == 0 ? -1 : 2);
  if (!ok) e->last_stage_ns = sp_now_ns(); /* no retry at every launch */
}

static CUdeviceptr hashes_of(const engine *e, uint64_t off) { return e->arena + e->size + off / SP_PAGE * 8; }
static CUdeviceptr written_counter(const engine *e) { return e->arena + e->size + SP_PAGE - 8; }

static CUresult launch_ours(CUfunction f, uint64_t blocks, void **args, CUstream s) {
  return sp_real.cuLaunchKernel(f, (unsigned)blocks, 1, 1, 256, 1, 1, 0, s, args, NULL);
}

/* Lock held. Stagings complete in order on their stream: the oldest timed copies that have
** completed count now (copy-engine busy time, and the link measured by our own copies), so the
** busy time is current without waiting for anything. */
static void poll_copies(engine *e) {
  while (e->timed_tail != e->timed_head) {
    uint64_t i = e->timed_tail % TIMED;
    CUresult q = sp_real.cuEventQuery(e->timed[i].b);
    if (q == CUDA_ERROR_NOT_READY) return;
    float ms = 0;
    if (q == CUDA_SUCCESS && sp_real.cuEventElapsedTime(&ms, e->timed[i].a, e->timed[i].b) == CUDA_SUCCESS && ms > 0) {
      sp_g.stream_copy_ns += (uint64_t)((double)ms * 1e6);
      e->link_bps = (double)e->timed[i].bytes / ((double)ms * 1e-3);
    }
    e->timed_tail++;
  }
}

/* Lock held. The staging copy of r into the slot at dst on stream cs, timed when a timer is free,
** and the slot's page hashes: a copy engine, then the hash kernel on the hash stream; or
** (SPILLOVER_STREAM_COPY=kernel) one kernel doing both on the SMs. s->ready: both done. */
static CUresult stage_copy(engine *e, slot *s, CUdeviceptr dst, const sp_rec *r, CUdeviceptr hashes, CUstream cs) {
  CUdeviceptr src = r->va;
  uint64_t npages = r->span / SP_PAGE;
  if (e->timed_head - e->timed_tail >= TIMED) poll_copies(e);
  int timed = e->timed_head - e->timed_tail < TIMED;
  uint64_t ti = e->timed_head % TIMED;
  if (timed) timed = sp_real.cuEventRecord(e->timed[ti].a, cs) == CUDA_SUCCESS;
  CUresult rc;
  if (sp_cfg.stream_copy_kernel) {
    void *args[] = {&dst, &src, &npages, &hashes};
    rc = sp_real.cuMemsetD8Async ? sp_real.cuMemsetD8Async(hashes, 0, npages * 8, cs) : CUDA_ERROR_NOT_FOUND;
    if (rc == CUDA_SUCCESS) rc = launch_ours(e->f_copy, npages * SP_STAGE_COPY_SPLIT, args, cs);
  } else {
    rc = sp_real.cuMemcpyDtoDAsync_v2(dst, src, r->span, cs);
  }
  if (rc == CUDA_SUCCESS && timed && sp_real.cuEventRecord(e->timed[ti].b, cs) == CUDA_SUCCESS) {
    e->timed[ti].bytes = r->span;
    e->timed_head++;
  }
  if (rc != CUDA_SUCCESS || sp_cfg.stream_copy_kernel) return rc;
  void *args[] = {&dst, &npages, &hashes};
  rc = sp_real.cuEventRecord(s->copied, cs);
  if (rc == CUDA_SUCCESS) rc = wait_event(e->hash, s->copied);
  return rc == CUDA_SUCCESS ? launch_ours(e->f_hash, npages, args, e->hash) : rc;
}

/* Lock held. The slot leaves the ring: the write-back stream waits for its staging and its last
** readers, writes back the pages a kernel changed and marks the write-back done for later readers
** of the range (and for the next staging copy, wherever it lands: e->reuse, recorded by stage()). */
static void unstage(engine *e, slot *s) {
  wait_event(e->wb, s->ready); /* staged ahead and never read: its hashes are still being taken */
  for (int k = 0; k < s->nuse; k++) wait_event(e->wb, s->use_ev[k]);
  if (s->r) {
    CUdeviceptr src = e->arena + s->off, dst = s->r->va, hashes = hashes_of(e, s->off), written = written_counter(e);
    uint64_t npages = s->span / SP_PAGE;
    void *args[] = {&src, &dst, &npages, &hashes, &written};
    if (launch_ours(e->f_writeback, npages, args, e->wb) == CUDA_SUCCESS &&
        sp_real.cuEventRecord(e->wb_done, e->wb) == CUDA_SUCCESS) {
      s->r->stage_wb = ++e->wb_gen;
      e->wb_pending = 1;
    } else { /* the written pages cannot come back: wait, then copy the whole slot back */
      sp_log(SP_LOG_WARN, "stream: write-back kernel refused; copying the staged range back whole");
      sp_real.cuMemcpyDtoDAsync_v2(dst, src, s->span, e->wb);
      sp_real.cuStreamSynchronize(e->wb);
    }
    s->r->stage_slot = 0;
  }
  s->used = s->consumed = s->nuse = 0;
  s->r = NULL;
  e->left = 1;
}

/* Lock held. Is s needed sooner than whatever would take its place? Read by a launch being
** prepared; one of the ranges the successor chain says come next (e->soon, unless `any`); while
** only prefetching, also the range read last and the ranges staged ahead and not yet read. */
static int needed(const engine *e, const slot *s, int demand, int any) {
  if (s->pinned) return 1;
  for (int k = 0; !any && k < e->nsoon; k++)
    if (s->r && s->r == e->soon[k]) return 1;
  return !demand && (!s->consumed || (s->r && s->r == e->last));
}

/* Lock held. Is the region [off, off + n) free of slots still needed? */
static int region_free(const engine *e, uint64_t off, uint64_t n, int demand, int any) {
  for (int i = 0; i < MAX_SLOTS; i++) {
    const slot *s = &e->slots[i];
    if (s->used && s->off < off + n && s->off + s->span > off && needed(e, s, demand, any)) return 0;
  }
  return 1;
}

/* Lock held. Room for n bytes in the ring: the slots in the way leave, unless one is still needed.
** The place after the last staging comes first (staging order); when a slot there is needed sooner
** (the walk turned: a training step's backward pass reads the layers it just read forward), the
** places after the other slots. A launch that needs room now takes a slot the chain wants only if
** nothing else is free. */
static int64_t ring_take(engine *e, uint64_t n, int demand) {
  if (n > e->size) return -1;
  int64_t at = -1;
  for (int any = 0; at < 0 && any <= demand; any++) {
    uint64_t off = e->head + n <= e->size ? e->head : 0;
    if (region_free(e, off, n, demand, any)) at = (int64_t)off;
    for (int i = 0; at < 0 && i < MAX_SLOTS; i++) {
      const slot *s = &e->slots[i];
      uint64_t o = s->off + s->span;
      if (s->used && o + n <= e->size && region_free(e, o, n, demand, any)) at = (int64_t)o;
    }
    if (at < 0 && region_free(e, 0, n, demand, any)) at = 0;
  }
  if (at < 0) return -1;
  uint64_t off = (uint64_t)at;
  for (int i = 0; i < MAX_SLOTS; i++) {
    slot *s = &e->slots[i];
    if (s->used && s->off < off + n && s->off + s->span > off) unstage(e, s);
  }
  e->head = off + n;
  return (int64_t)off;
}

/* Lock held. Copies r into a slot on the copy stream; the slot, or NULL (read in place). Unless
** nothing has named r in place since its last staging (weights, in a repeating workload), the copy
** first waits for what stream s has enqueued so far: a kernel there may still be writing r. */
static slot *stage(engine *e, sp_rec *r, int demand, CUstream s_prog) {
  int idx = -1;
  for (int i = 0; i < MAX_SLOTS; i++)
    if (!e->slots[i].used) {
      idx = i;
      break;
    }
  if (idx < 0) return NULL;
  int64_t off = ring_take(e, r->span, demand);
  if (off < 0) return NULL;
  /* copy engine, or SMs: the stream the slot is filled on */
  CUstream cs = sp_cfg.stream_copy_kernel ? e->hash : e->copy;
  slot *s = &e->slots[idx];
  CUdeviceptr dst = e->arena + (uint64_t)off, hashes = hashes_of(e, (uint64_t)off);
  if (r->stage_wb && sp_real.cuEventQuery(e->wb_done) == CUDA_SUCCESS) r->stage_wb = 0;
  CUresult rc = CUDA_SUCCESS;
  /* Every slot that left since the last such wait, not only those ring_take just took: one that
  ** left earlier (a read-once launch or a settle unstaged it) may lie under this copy with its
  ** readers and write-back still to run, and r's own write-back, which the copy reads after, may too. */
  if (e->left) {
    rc = sp_real.cuEventRecord(e->reuse, e->wb);
    if (rc == CUDA_SUCCESS) rc = wait_event(cs, e->reuse);
    if (rc == CUDA_SUCCESS) e->left = 0;
  }
  if (rc == CUDA_SUCCESS && !r->stage_clean) {
    rc = sp_real.cuEventRecord(e->order, s_prog);
    if (rc == CUDA_SUCCESS) rc = wait_event(cs, e->order);
  }
  if (rc == CUDA_SUCCESS) rc = stage_copy(e, s, dst, r, hashes, cs);
  if (rc == CUDA_SUCCESS) rc = sp_real.cuEventRecord(s->ready, sp_cfg.stream_copy_kernel ? cs : e->hash);
  if (rc != CUDA_SUCCESS) {
    sp_log(SP_LOG_DEBUG, "stream: staging %llu bytes at 0x%llx failed (CUresult %d); read in place",
           (unsigned long long)r->span, (unsigned long long)r->va, rc);
    sp_g.stream_fallbacks++;
    e->head = (uint64_t)off; /* nothing lives there now */
    if (++e->failures >= MAX_FAILURES && !e->stop) {
      e->stop = 1; /* the arena goes back at the next chance (sp_stream_idle), then off */
      sp_log(SP_LOG_WARN, "stream: %d stagings in a row failed (CUresult %d); reading host pages in place from now on",
             e->failures, rc);
    }
    sp_stats_publish();
    return NULL;
  }
  s->r = r; /* the slot's events stay its own */
  s->off = (uint64_t)off;
  s->span = r->span;
  s->used = 1;
  s->consumed = s->pinned = s->nuse = 0;
  r->stage_slot = idx + 1;
  r->stage_streamed = 1;
  r->stage_clean = 1;
  r->stage_writer = 0;
  e->last_stage_ns = sp_now_ns();
  e->failures = 0;
  live = 1;
  sp_log(SP_LOG_DEBUG, "stream: staged %llu bytes at 0x%llx into the slot at %llu MiB (%s)", (unsigned long long)r->span,
         (unsigned long long)r->va, (unsigned long long)((uint64_t)off >> 20), demand ? "late" : "ahead");
  sp_g.stream_staged_bytes += r->span;
  sp_g.stream_staged_ranges++;
  if (demand) sp_g.stream_late++;
  return s;
}

/* Lock held. Bytes of the launch's parameters (the layout's end, or the extra buffer's size). */
static size_t param_bytes(CUfunction f, void **params, void **extra) {
  if (params) {
    uint32_t np = 0;
    const uint32_t *lay = sp_scan_layout(f, &np);
    size_t end = 0;
    for (uint32_t i = 0; lay && i < np; i++)
      if (lay[2 * i] + lay[2 * i + 1] > end) end = lay[2 * i] + lay[2 * i + 1];
    return lay ? end : SIZE_MAX;
  }
  for (int m = 0; m < 6 && extra[m] != CU_LAUNCH_PARAM_END; m += 2)
    if (extra[m] == CU_LAUNCH_PARAM_BUFFER_SIZE && extra[m + 1]) return *(const size_t *)extra[m + 1];
  return SIZE_MAX;
}

/* Lock held. The slot's reader entry for stream s, reserved now (its event is recorded after the
** launch). A fifth stream takes over an entry: the write-back stream first waits for that entry's last
** reader, so a later reuse of the slot still follows every reader. */
static int reader_entry(engine *e, slot *sl, CUstream s) {
  for (int j = 0; j < sl->nuse; j++)
    if (sl->use_st[j] == s) return j;
  if (sl->nuse < SLOT_STREAMS) {
    sl->use_st[sl->nuse] = s;
    return sl->nuse++;
  }
  int j = sl->next_victim;
  sl->next_victim = (j + 1) % SLOT_STREAMS;
  wait_event(e->wb, sl->use_ev[j]);
  sl->use_st[j] = s;
  return j;
}

/* Lock held. Every slot that no other launch is preparing leaves, and stream s waits for the
** write-backs: for a launch whose staged ranges the engine cannot all see. The launch may be in
** another context: our work is enqueued in the engine's, s waits in its own (a null s names the
** current context's stream). */
static void settle_engine_async(engine *e, CUstream s) {
  int any = 0, pushed = ctx_enter(e);
  for (int k = 0; k < MAX_SLOTS; k++)
    if (e->slots[k].used && !e->slots[k].pinned) {
      unstage(e, &e->slots[k]);
      any = 1;
    }
  ctx_leave(pushed);
  if (any || e->wb_pending) wait_event(s, e->wb_done);
}

/* Lock held. A launch names r, a range of another device than the launch's first one (peer
** access): it reads r's own pages, so r's staged copy goes back first and the launch's stream
** waits for the write-back (an event of another device's context: stream waits cross devices). */
static void settle_for_peer(sp_rec *r, CUstream s) {
  if (r->dev < 0 || r->dev >= SP_MAX_DEV) return;
  engine *o = &eng[r->dev];
  if (o->state != 1 && o->state != 4) return;
  slot *sl = slot_of(r);
  if (sl && !sl->pinned) {
    int pushed = ctx_enter(o);
    unstage(o, sl);
    ctx_leave(pushed);
  }
  if (sl || r->stage_wb) wait_event(s, o->wb_done);
  r->stage_clean = r->stage_writer = 0; /* written, maybe, on a stream of another device */
}

/* Lock held. Rewritable only if every pointer word was seen: a truncated list, or parameters
** longer than the scan reads, could leave one word of a staged range pointing at its own pages. */
static int rewritable_launch(CUfunction f, void **params, void **extra, int n) {
  return n < MAX_LAUNCH_REFS && param_bytes(f, params, extra) <= SP_SCAN_MAX_BYTES;
}

/* ---- a launch ---------------------------------------------------------------------------- */

static void predict(engine *e);

static __thread unsigned char arg_copy[MAX_ARG_BYTES];
static __thread void *param_ptrs[1024];
static __thread void *extra_new[8];
static __thread size_t extra_len;

/* No locks held, before the fence. Starts the engine of the current device when a function that
** stages is about to be launched (the start may evict, which takes the fence). */
void sp_stream_prepare(CUfunction f) {
  if (!sp_cfg.stream || !sp_host_tier_used() || sp_capturing_anywhere()) return;
  sp_stream_idle();
  CUcontext ctx = NULL;
  if (sp_real.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || !ctx) return;
  sp_lock();
  poll_samples(LINK_GUESS_BPS);
  fn_decision *fd = decision_of(f);
  int stages = fd && fd->stage == 1;
  sp_unlock();
  sp_dev *d = stages ? sp_dev_current() : NULL;
  if (!d || !d->tiering || sp_capturing_anywhere()) return;
  sp_lock();
  engine *e = &eng[d->ordinal];
  if (e->state == 0 || (e->state == 2 && sp_now_ns() - e->last_stage_ns > IDLE_NS / 4)) engine_start(e, d, ctx);
  sp_unlock();
}

/* Fence held. Rewrites the launch to read staged copies where that pays (see the top); on return
** L says what to launch with. */
void sp_stream_before(sp_stream_launch *L, CUfunction f, CUstream s, int ptsz, void **params, void **extra) {
  L->params = params;
  L->extra = extra;
  L->nslots = 0;
  L->sample = NULL;
  L->dev = -1;
  L->stream = L->stream_for_sample = ptsz_stream(s, ptsz);
  if (!sp_cfg.stream || !f || (!params && !extra)) return;
  if (!live && !sp_host_tier_used()) return;
  /* While any stream captures, nothing: a capture in global mode is invalidated by many calls
  ** from any thread, and replays read in place anyway. */
  if (sp_capturing_anywhere()) return;
  s = ptsz_stream(s, ptsz);
  sp_param_ref refs[MAX_LAUNCH_REFS];
  sp_lock();
  int n = sp_scan_params(f, params, extra, refs, MAX_LAUNCH_REFS);
  if (n < 0 && live) { /* its parameters cannot be read: any staged range may be among them */
    sp_dev *cd = sp_dev_current_locked();
    if (cd && eng[cd->ordinal].state == 1) settle_engine_async(&eng[cd->ordinal], s);
  }
  if (n <= 0) {
    sp_unlock();
    return;
  }
  int dev = refs[0].r->dev;
  engine *e = &eng[dev];
  CUcontext ctx = NULL;
  int running = e->state == 1 && sp_real.cuCtxGetCurrent(&ctx) == CUDA_SUCCESS && ctx == e->ctx;
  /* Unseen words may name any staged range; a launch in another context (of this device, whose
  ** mappings it shares, or a peer's) is never rewritten: it reads the ranges' own pages. */
  if (e->state == 1 && (!running || !rewritable_launch(f, params, extra, n))) {
    settle_engine_async(e, s);
    running = 0;
  }
  poll_samples(e->link_bps);
  if (e->state == 1) poll_copies(e);
  fn_decision *fd = decision_of(f);
  int rewritable = 1; /* (checked above: a launch that is not has settled every slot) */
  uint64_t host = 0;
  int nslot = 0;
  slot *use[MAX_LAUNCH_REFS];
  int use_idx[MAX_LAUNCH_REFS];
  sp_rec *used_r[MAX_LAUNCH_REFS];
  for (int i = 0; i < n; i++) {
    sp_rec *r = refs[i].r;
    int seen = 0;
    for (int k = 0; k < i; k++) seen |= refs[k].r == r;
    if (seen) continue;
    if (r->dev != dev) {
      settle_for_peer(r, s);
      continue;
    }
    int stages = fd && fd->stage == 1 && rewritable;
    slot *sl = running ? slot_of(r) : NULL;
    if (sl && !stages && !sl->pinned) { /* a read-once kernel reads the range's own pages, up to date */
      unstage(e, sl);
      sl = NULL;
    }
    if (!sl && running && !e->stop && stages && host_bytes_of(r) && r->span <= e->size / 2 && r->movable &&
        !r->stage_arena) {
      predict(e); /* the slots the chain wants next stay, if any other can go */
      sl = stage(e, r, 1, s);
      e->nsoon = 0;
    }
    if (sl) {
      sl->pinned++;
      use_idx[nslot] = reader_entry(e, sl, s);
      use[nslot] = sl;
      used_r[nslot++] = r;
      continue;
    }
    host += host_bytes_of(r);
    /* read in place: it may be written, on this stream (one stream is known; two are not) */
    r->stage_writer = r->stage_clean || (r->stage_writer && r->stage_writer_stream == s);
    r->stage_writer_stream = s;
    r->stage_clean = 0;
    if (r->stage_wb) { /* its write-back may still be running */
      if (sp_real.cuEventQuery(e->wb_done) == CUDA_SUCCESS) r->stage_wb = e->wb_pending = 0;
      else wait_event(s, e->wb_done);
    }
  }
  if (host && !nslot) sp_g.stream_inplace++;
  if (fd && fd->stage < 0 && host >= MIN_SAMPLE_BYTES && !nslot) L->sample = sample_start(f, s, host);
  if (!nslot) {
    sp_unlock();
    return;
  }
  /* The rewritten parameters: every word that named a staged range names the same offset in its
  ** slot. Parameters are copied whole (their sizes from the layout) into this thread's buffer. */
  size_t used_bytes = 0;
  int ok = 1;
  if (params) {
    uint32_t np = 0;
    const uint32_t *lay = sp_scan_layout(f, &np);
    if (!lay || np > 1024) ok = 0;
    for (uint32_t i = 0; ok && i < np; i++) param_ptrs[i] = params[i];
    for (int i = 0; ok && i < n; i++) {
      int k = 0;
      while (k < nslot && used_r[k] != refs[i].r) k++;
      if (k == nslot) continue;
      uint32_t p = refs[i].param, size = lay[2 * p + 1];
      if (param_ptrs[p] == params[p]) { /* first word of this parameter: copy it */
        if (used_bytes + size > MAX_ARG_BYTES) {
          ok = 0;
          break;
        }
        memcpy(arg_copy + used_bytes, params[p], size);
        param_ptrs[p] = arg_copy + used_bytes;
        used_bytes += (size + 7) & ~(size_t)7;
      }
      CUdeviceptr v = refs[i].value - refs[i].r->va + e->arena + use[k]->off;
      memcpy((unsigned char *)param_ptrs[p] + refs[i].off, &v, sizeof(v));
    }
    if (ok) L->params = param_ptrs;
  } else {
    const unsigned char *buf = NULL;
    size_t len = 0;
    int m = 0;
    for (; m < 6 && extra[m] != CU_LAUNCH_PARAM_END; m += 2) {
      if (extra[m] == CU_LAUNCH_PARAM_BUFFER_POINTER) buf = extra[m + 1];
      else if (extra[m] == CU_LAUNCH_PARAM_BUFFER_SIZE && extra[m + 1]) len = *(const size_t *)extra[m + 1];
    }
    if (!buf || len > MAX_ARG_BYTES) ok = 0;
    if (ok) {
      memcpy(arg_copy, buf, len);
      for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < nslot && used_r[k] != refs[i].r) k++;
        if (k == nslot) continue;
        CUdeviceptr v = refs[i].value - refs[i].r->va + e->arena + use[k]->off;
        memcpy(arg_copy + refs[i].off, &v, sizeof(v));
      }
      extra_len = len;
      extra_new[0] = CU_LAUNCH_PARAM_BUFFER_POINTER;
      extra_new[1] = arg_copy;
      extra_new[2] = CU_LAUNCH_PARAM_BUFFER_SIZE;
      extra_new[3] = &extra_len;
      extra_new[4] = CU_LAUNCH_PARAM_END;
      L->extra = extra_new;
    }
  }
  for (int k = 0; k < nslot && ok; k++) ok = wait_event(s, use[k]->ready) == CUDA_SUCCESS;
  if (!ok) { /* read in place after all (the slots stay staged for the next launch) */
    for (int k = 0; k < nslot; k++) use[k]->pinned--;
    L->params = params;
    L->extra = extra;
    sp_g.stream_inplace++;
    sp_unlock();
    return;
  }
  L->dev = dev;
  L->stream = s;
  L->nslots = nslot;
  L->stages = fd && fd->stage == 1 && rewritable;
  for (int k = 0; k < nslot; k++) {
    L->slots[k] = (int)(use[k] - e->slots);
    L->use_idx[k] = use_idx[k];
  }
  sp_unlock();
}

/* Lock held. cur was read after the range numbered pred and before next: learn it. */
static void learn_next(sp_rec *cur, uint64_t pred, const sp_rec *next) {
  int k = cur->stage_next[0].pred_id == pred ? 0 : cur->stage_next[1].pred_id == pred ? 1 : 1 - cur->stage_next_new;
  cur->stage_next[k] = (struct sp_stage_next){pred, next->va, next->buffer_id};
  cur->stage_next_new = k;
}

/* Lock held. What came after cur when the range numbered pred came before it, else what came
** after cur last time; NULL if that range is gone. */
static sp_rec *next_of(const sp_rec *cur, uint64_t pred) {
  const struct sp_stage_next *n = &cur->stage_next[cur->stage_next_new];
  for (int k = 0; k < 2; k++)
    if (cur->stage_next[k].va && cur->stage_next[k].pred_id == pred) n = &cur->stage_next[k];
  sp_rec *r = n->va ? sp_table_find(n->va) : NULL;
  return r && r->buffer_id == n->id && !r->dying ? r : NULL;
}

/* Lock held. One step of the walk along the successor chain from (e->last, e->prev_id): the next
** range, or NULL at the chain's end or once the walk is back where it started (a repeating step
** walked whole). The range last read is on the walk again when the next pass turns back to it. */
static sp_rec *walk_next(const engine *e, sp_rec **r, uint64_t *pred) {
  sp_rec *next = next_of(*r, *pred);
  if (!next) return NULL;
  *pred = (*r)->buffer_id;
  *r = next;
  return next == e->last && *pred == e->prev_id ? NULL : next;
}

/* Lock held. e->soon: the staged ranges the successor chain says are read next. */
static void predict(engine *e) {
  e->nsoon = 0;
  sp_rec *r = e->last;
  uint64_t pred = e->prev_id;
  for (int step = 0; r && step < LOOKAHEAD && walk_next(e, &r, &pred); step++)
    if (slot_of(r)) e->soon[e->nsoon++] = r;
}

/* Lock held. The successor chain from the range last read: stage what comes next while there
** is room that no launch still needs. A staging never takes the slot of a range the chain reads
** before it (e->soon, built along the walk). */
static void prefetch(engine *e, CUstream s_prog) {
  uint64_t ahead = 0; /* bytes staged and not yet read: at most half the arena */
  for (int i = 0; i < MAX_SLOTS; i++)
    if (e->slots[i].used && !e->slots[i].consumed) ahead += e->slots[i].span;
  sp_rec *r = e->last;
  uint64_t pred = e->prev_id;
  e->nsoon = 0;
  for (int step = 0; r && step < LOOKAHEAD && walk_next(e, &r, &pred); step++) {
    if (slot_of(r)) {
      e->soon[e->nsoon++] = r;
      continue;
    }
    /* A range named in place since it was staged may still be being written: its copy waits for
    ** the one stream that named it, and a range that copies or several streams named is left
    ** for the launch that needs it (stage() then waits for that launch's stream). */
    if (!host_bytes_of(r) || r->span > e->size / 2 || !r->movable) continue;
    if (!r->stage_clean && !r->stage_writer) continue;
    /* the per-thread stream's handle names this thread's stream, not the writer thread's */
    if (!r->stage_clean && r->stage_writer_stream == STREAM_PER_THREAD) continue;
    if (ahead + r->span > e->size / 2 || !stage(e, r, 0, r->stage_clean ? s_prog : r->stage_writer_stream)) break;
    ahead += r->span;
  }
  e->nsoon = 0;
}

/* Fence held. After the real launch: the slots' last reader on this stream, the successor chain,
** the next stagings; the timing sample's end. */
void sp_stream_after(sp_stream_launch *L, CUresult rc) {
  if (L->sample) {
    sp_lock();
    sp_real.cuEventRecord(L->sample->b, L->stream_for_sample);
    sp_unlock();
  }
  if (!L->nslots) return;
  sp_lock();
  engine *e = &eng[L->dev];
  for (int k = 0; k < L->nslots; k++) {
    slot *s = &e->slots[L->slots[k]];
    if (s->pinned > 0) s->pinned--;
    if (rc != CUDA_SUCCESS || !s->used) continue;
    sp_real.cuEventRecord(s->use_ev[L->use_idx[k]], L->stream);
    s->consumed = 1;
    e->last_stage_ns = sp_now_ns();
    sp_g.stream_hits++;
    sp_rec *r = L->stages ? s->r : NULL; /* the order of a re-reading pass, not of decode */
    if (r && r != e->last) {
      if (e->last) learn_next(e->last, e->prev_id, r);
      e->prev_id = e->last ? e->last->buffer_id : 0;
      e->last = r;
    }
  }
  /* a capture begun since the launch was prepared: our event on its stream would join it */
  if (rc == CUDA_SUCCESS && L->stages && !sp_capturing_anywhere()) prefetch(e, L->stream);
  static uint64_t last_publish;
  uint64_t now = sp_now_ns();
  if (now - last_publish > 20000000ull) { /* the stats record, at most every 20 ms from here */
    last_publish = now;
    sp_stats_publish();
  }
  sp_unlock();
}

/* ---- waiting for the engine's streams, outside the lock ----------------------------------- */

/* Waits on the engine's streams run without the lock: their work waits for program kernels, and one of
** those may be waiting (cuStreamWaitValue32) for a host thread that needs the lock. A write-back is
** numbered when enqueued (stage_wb holds its number); a wait clears the flags it covered. */

/* No locks held. Waits for e's write-backs enqueued up to number gen, then clears the flags of
** its device's ranges they covered and counts the written pages (drain: all three streams). */
static void wb_wait(engine *e, int dev, uint64_t gen, int drain) {
  int pushed = ctx_enter(e);
  CUresult rc = drain ? sp_real.cuStreamSynchronize(e->copy) : sp_real.cuEventSynchronize(e->wb_done);
  if (drain && rc == CUDA_SUCCESS) rc = sp_real.cuStreamSynchronize(e->hash);
  if (drain && rc == CUDA_SUCCESS) rc = sp_real.cuStreamSynchronize(e->wb);
  uint64_t w = 0;
  int counted = rc == CUDA_SUCCESS && sp_real.cuMemcpyDtoHAsync_v2 &&
                sp_real.cuMemcpyDtoHAsync_v2(&w, written_counter(e), sizeof(w), e->wb) == CUDA_SUCCESS &&
                sp_real.cuStreamSynchronize(e->wb) == CUDA_SUCCESS;
  ctx_leave(pushed);
  sp_lock();
  if (rc == CUDA_SUCCESS) {
    for (size_t k = 0; k < sp_table_count(); k++) {
      sp_rec *r = sp_table_at(k);
      if (r->dev == dev && r->stage_wb && r->stage_wb <= gen) r->stage_wb = 0;
    }
    if (e->wb_gen <= gen) e->wb_pending = 0;
  }
  if (counted) e->written_now = w;
  sp_stream_stats();
  sp_stats_publish();
  sp_unlock();
}

/* ---- giving the arena back ---------------------------------------------------------------- */

/* No locks held. An arena no launch has staged into or read for IDLE_NS (a decode phase, graph
** replays) goes back: every slot leaves (written pages back), the engine's streams drain (they waited for
** the slots' last readers), and its VRAM returns to placement, which fills it with hot pages. The
** next launch that stages makes it again. While they drain (state 4), launches read in
** place and nothing stages. */
void sp_stream_idle(void) {
  if (!__atomic_load_n(&live, __ATOMIC_RELAXED) || sp_capturing_anywhere()) return;
  uint64_t now = sp_now_ns();
  for (int i = 0; i < SP_MAX_DEV; i++) {
    engine *e = &eng[i];
    sp_lock();
    int go = e->state == 1 && (e->stop || now - e->last_stage_ns >= IDLE_NS);
    for (int k = 0; go && k < MAX_SLOTS; k++) /* a thread between preparing a launch and making it */
      if (e->slots[k].used && e->slots[k].pinned) go = 0;
    uint64_t gen = 0;
    if (go) {
      int pushed = ctx_enter(e);
      for (int k = 0; k < MAX_SLOTS; k++)
        if (e->slots[k].used) unstage(e, &e->slots[k]);
      ctx_leave(pushed);
      e->state = 4;
      gen = e->wb_gen;
    }
    sp_unlock();
    if (!go) continue;
    wb_wait(e, i, gen, 1);
    sp_lock();
    if (e->wb_pending) { /* the drain failed: keep the arena, try later */
      e->state = 1;
      e->last_stage_ns = now;
      sp_unlock();
      continue;
    }
    e->written_base += e->written_now;
    e->written_now = 0;
    sp_stream_stats();
    sp_log(SP_LOG_INFO, "stream: no staging for %.1f s: the %llu MiB staging arena of device %d goes back",
           (double)IDLE_NS / 1e9, (unsigned long long)(e->size >> 20), i);
    sp_g.stream_budget -= e->size;
    for (size_t k = 0; k < sp_table_count(); k++) { /* read in place from now on: placement decides */
      sp_rec *r = sp_table_at(k);
      if (r->dev == i) r->stage_streamed = 0;
    }
    sp_tiered_release(e->arena_rec);
    e->arena_rec = NULL;
    e->arena = 0;
    e->size = e->head = 0;
    e->last = NULL;
    e->last_stage_ns = now;
    poll_copies(e); /* the streams drained: every timed copy completed */
    e->timed_tail = e->timed_head;
    e->state = e->stop ? -1 : 2;
    sp_stats_publish();
    sp_unlock();
  }
}

/* ---- other readers and writers of staged ranges ------------------------------------------ */

/* Lock held. Starts settling r: its slot leaves (the write-back enqueued). Returns the number of
** the write-back to wait for (wb_wait, without the lock) before r's own pages are up to date, or 0. */
static uint64_t settle_begin(sp_rec *r) {
  if (r->dev < 0 || r->dev >= SP_MAX_DEV) return 0;
  engine *e = &eng[r->dev];
  if (e->state != 1) return r->stage_wb;
  int pushed = ctx_enter(e);
  slot *s = slot_of(r);
  if (s && !s->pinned) {
    unstage(e, s);
    /* While staged, only rewritten launches wrote it (any other launch unstages first), and the
    ** write-back is waited for next: nothing is pending on it. Callers that write it next say so. */
    r->stage_clean = 1;
    r->stage_writer = 0;
  }
  ctx_leave(pushed);
  return r->stage_wb;
}

void sp_stream_touch(CUdeviceptr p) {
  if (!__atomic_load_n(&live, __ATOMIC_RELAXED) || !p || sp_capturing_anywhere()) return;
  sp_lock();
  sp_rec *r = sp_table_containing(p);
  uint64_t gen = 0;
  int dev = 0;
  if (r && r->tiered) {
    dev = r->dev;
    if (r->stage_slot || r->stage_wb) gen = settle_begin(r);
    r->stage_clean = r->stage_writer = 0; /* a copy's stream is not known here */
  }
  sp_unlock();
  if (gen) wb_wait(&eng[dev], dev, gen, 0);
}

/* Called with graph_hooks' lock held (not ours). */
void sp_stream_touch_refs(const sp_refs *refs, CUstream s) {
  if (!__atomic_load_n(&live, __ATOMIC_RELAXED) || !refs || sp_capturing_anywhere()) return;
  uint64_t gen[SP_MAX_DEV] = {0};
  sp_lock();
  for (size_t i = 0; i < refs->n; i++) {
    sp_rec *r = sp_table_find(refs->v[i].va);
    if (!r || !r->tiered || r->dev < 0 || r->dev >= SP_MAX_DEV) continue;
    /* named in place by the replay on s, after the settle (which waits for the write-back): s is
    ** then its only writer, unless another stream already was */
    int only_s = r->stage_clean || r->stage_slot || (r->stage_writer && r->stage_writer_stream == s);
    if (r->stage_slot || r->stage_wb) {
      uint64_t g = settle_begin(r);
      if (g > gen[r->dev]) gen[r->dev] = g;
    }
    r->stage_writer = only_s;
    r->stage_writer_stream = s;
    r->stage_clean = 0;
  }
  sp_unlock();
  for (int d = 0; d < SP_MAX_DEV; d++)
    if (gen[d]) wb_wait(&eng[d], d, gen[d], 0);
}

void sp_stream_settle_all(void) {
  if (!__atomic_load_n(&live, __ATOMIC_RELAXED) || sp_capturing_anywhere()) return;
  uint64_t gen[SP_MAX_DEV] = {0};
  sp_lock();
  for (int i = 0; i < SP_MAX_DEV; i++) {
    engine *e = &eng[i];
    if (e->state != 1) continue;
    for (int k = 0; k < MAX_SLOTS; k++)
      if (e->slots[k].used && e->slots[k].r && !e->slots[k].pinned) settle_begin(e->slots[k].r);
    if (e->wb_pending) gen[i] = e->wb_gen; /* also write-backs of slots that left earlier */
  }
  sp_unlock();
  for (int d = 0; d < SP_MAX_DEV; d++)
    if (gen[d]) wb_wait(&eng[d], d, gen[d], 0);
}

/* Lock held: r is about to be unmapped. Nothing of ours may still read or write it. The frees
** that get here have waited for the program's work on r (a context synchronisation, or the free's
** event), which the engine's work on r follows, so these waits end at once. */
void sp_stream_forget(sp_rec *r) {
  if (r->dev < 0 || r->dev >= SP_MAX_DEV) return;
  engine *e = &eng[r->dev];
  if (e->last == r) e->last = NULL; /* the successor walk starts there, staged or not */
  if (!r->stage_slot && !r->stage_wb) return;
  if (e->state != 1 && e->state != 4) return;
  int pushed = ctx_enter(e);
  slot *s = slot_of(r);
  if (s) {
    sp_real.cuEventSynchronize(s->ready); /* the staging copy reads r */
    s->r = NULL;                          /* freed: nothing to write back */
  }
  if (r->stage_wb) sp_real.cuEventSynchronize(e->wb_done);
  ctx_leave(pushed);
  r->stage_slot = 0;
  r->stage_wb = 0;
}

/* Lock held: the write-back pages counted so far (read at the waits above; no driver call). */
void sp_stream_stats(void) {
  uint64_t total = 0;
  for (int i = 0; i < SP_MAX_DEV; i++) total += eng[i].written_base + eng[i].written_now;
  sp_g.stream_writeback_pages = total;
}

/* Child of fork: the parent's driver objects are not ours. */
void sp_stream_after_fork(void) {
  memset(eng, 0, sizeof(eng));
  memset(fns, 0, sizeof(fns));
  memset(samples, 0, sizeof(samples));
  live = 0;
}
