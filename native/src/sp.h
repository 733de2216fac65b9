/*
** sp.h: internal declarations shared by the interposer's modules: configuration, per-device and
** process state, the allocation table, locking, logging and the real-driver function table.
** Nothing here is exported; the only exported names are the hooks (cu*, nvml*) and dlsym.
*/
#ifndef SP_H
#define SP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda_abi.h"
#include "spillover_protocol.h"

#define SP_EXPORT __attribute__((visibility("default")))
#define SP_PAGE ((uint64_t)2 << 20) /* VMM granularity on current GPUs; one handle per page */
#define SP_MAX_DEV ((int)SP_STATS_MAX_GPUS)

/* ---- real driver functions (real.c) ------------------------------------------------------- */
#define SP_REAL_CU(name, params) typedef CUresult(*sp_##name##_fn) params;
#define SP_REAL_NVML(name, params) typedef nvmlReturn_t(*sp_##name##_fn) params;
#include "real_syms.def"
#undef SP_REAL_CU
#undef SP_REAL_NVML

struct sp_real_table {
#define SP_REAL_CU(name, params) sp_##name##_fn name;
#define SP_REAL_NVML(name, params) sp_##name##_fn name;
#include "real_syms.def"
#undef SP_REAL_CU
#undef SP_REAL_NVML
};
extern struct sp_real_table sp_real;

void sp_cuda_load(void);              /* dlopen libcuda, resolve reals, build the route table */
void sp_nvml_load(void);              /* same for libnvidia-ml */
void *sp_cuda_handle_if_loaded(void); /* NULL unless the program has libcuda loaded */
void *sp_nvml_handle_if_loaded(void);
extern __thread int sp_in_load;       /* set while we dlopen: nested dlsym calls are forwarded raw */

/* ---- routing (route.c): real entry point -> hook with the same ABI ------------------------- */
void sp_route_build(void *handle, int nvml);
void *sp_route_lookup(const void *real_fn);
int sp_is_driver_name(const char *name); /* cu[A-Z]* or nvml[A-Z]* */

/* ---- real dlsym (dlsym_hook.c) ------------------------------------------------------------- */
typedef void *(*sp_dlsym_fn)(void *, const char *);
sp_dlsym_fn sp_real_dlsym_get(void);

/* ---- configuration (config.c) ------------------------------------------------------------- */
typedef struct sp_size {
  int kind; /* 0 unset, 1 bytes, 2 percent */
  uint64_t bytes;
  double pct;
} sp_size;

enum { SP_LOG_OFF = 0, SP_LOG_ERROR, SP_LOG_WARN, SP_LOG_INFO, SP_LOG_DEBUG };

typedef struct sp_config {
  int passthrough; /* SPILLOVER_DISABLE=1 or a malformed variable */
  int log_level;
  sp_size vram_limit, vram_reserve, pinned_limit, host_reserve;
  sp_size vram_limit_dev[SP_MAX_DEV], vram_reserve_dev[SP_MAX_DEV]; /* per-GPU list form ("0:8G,1:12G") */
  uint64_t threshold;
  int broker_off;
  int keep_stats;
  int migrate; /* SPILLOVER_MIGRATE: placement follows use (migrate.c); default on */
  int stream;  /* SPILLOVER_STREAM: the streaming engine (stream.c); default on */
  sp_size stream_budget; /* SPILLOVER_STREAM_BUDGET: its staging arena, of the VRAM limit */
  double stream_ratio;   /* SPILLOVER_STREAM_RATIO: in-place time / link time above which a function stages */
  int stream_copy_kernel; /* SPILLOVER_STREAM_COPY=kernel: staging copies by the SMs, not a copy engine */
  char stats_dir[512];
  char libcuda[512];
  char libnvml[512];
  int libcuda_reported; /* config.c already said SPILLOVER_LIBCUDA cannot be opened */
  char test_host_root[512]; /* SPILLOVER_TEST_HOST_ROOT: a simulated /proc + /sys/fs/cgroup (tests) */
} sp_config;

extern sp_config sp_cfg;
int sp_config_parse(sp_config *c); /* 0 ok; -1 after printing one line naming the bad variable */
int sp_parse_size(const char *s, int allow_pct, sp_size *out);
uint64_t sp_size_resolve(const sp_size *s, uint64_t pct_base, uint64_t dflt);

/* ---- logging (log.c) ---------------------------------------------------------------------- */
void sp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sp_exit_summary(void);

/* ---- pools (pool.c) ----------------------------------------------------------------------- */
typedef struct sp_pool {
  CUmemGenericAllocationHandle *free;
  size_t nfree, cap;
  uint64_t total; /* pages created and not released */
} sp_pool;
int sp_pool_put(sp_pool *p, CUmemGenericAllocationHandle h);
int sp_pool_take(sp_pool *p, CUmemGenericAllocationHandle *h);
int sp_pool_reserve_slots(sp_pool *p, size_t n);
CUresult sp_page_create(CUmemGenericAllocationHandle *h, int loc_type, int loc_id);
uint64_t sp_pinned_grow(uint64_t pages_wanted); /* under lock; returns pages added to the pool */
void sp_vram_pool_trim(int dev, uint64_t pages);  /* release free VRAM pages (under lock) */
void sp_pinned_trim_to_cap(void);                 /* broker lowered the cap: give free pages back */

/* ---- host memory (hostmem.c) -------------------------------------------------------------- */
void sp_host_mem(uint64_t *total, uint64_t *avail); /* MemTotal/MemAvailable, cgroup limit where lower */
uint64_t sp_host_reserve(uint64_t total);           /* SPILLOVER_HOST_RESERVE, or max(4 GiB, 10%) */
uint64_t sp_pinned_limit_update(void);              /* re-reads the host, sets sp_g.pinned_limit */
int sp_pinned_limit_allows(uint64_t bytes);         /* within the limit, re-read if it falls short */

/* ---- devices and budgets (device.c) ------------------------------------------------------- */
typedef struct sp_dev {
  int ready;   /* 0 not yet, 1 initialised */
  int allocated; /* the program allocated on it (sp_dev_note_alloc) */
  int tiering; /* VMM and HOST_NUMA VMM supported: tiered allocations possible */
  int ordinal, numa_id;
  int pci_domain, pci_bus, pci_device;
  uint64_t physical, limit, reserve;
  uint64_t passthrough_bytes, passthrough_peak;
  uint64_t vmm_dev_bytes;                 /* the program's own cuMemCreate, passed whole (exportable) */
  uint64_t tier_bytes[2], tier_peak[2];   /* live spillover pages: VRAM, pinned */
  uint64_t vvmm_bytes[2];                 /* pages behind the program's tiered cuMemCreate handles */
  uint64_t reported_free;
  sp_pool vram_pool;
  uint32_t peers;         /* devices given READWRITE on every tiered range of this one (peer.c) */
  uint32_t peers_refused; /* devices the driver refused that access: not asked again */
} sp_dev;

typedef struct sp_state {
  pthread_mutex_t lock;
  int core_ready;
  uint64_t mem_total, mem_available;
  uint64_t pinned_limit; /* pinned + room - host reserve (hostmem.c), within SPILLOVER_PINNED_LIMIT */
  uint64_t pinned_lease; /* broker grant so far */
  uint64_t grow_step;    /* pinned pool growth step, bytes */
  int broker;            /* connected */
  int broker_tried;
  sp_pool pinned_pool;
  uint64_t pinned_peak;
  sp_dev dev[SP_MAX_DEV];
  int multi; /* a second device allocated, or peer access enabled: copies check peers (peer.c) */
  uint64_t next_buffer_id;
  CUdeviceptr tiered_lo, tiered_hi; /* every tiered range ever made lies inside (launch scan) */
  uint64_t start_ns;
  /* counters (mirrored into the stats record) */
  uint64_t alloc_calls, free_calls, tiered_allocs, passthrough_allocs, oom_returned;
  uint64_t pages_vram, pages_pinned, pool_grows, lease_denials, bad_args, largest_alloc;
  uint64_t pages_promoted, pages_demoted, migrate_passes, evictions, migrate_ns, launches_scanned, launches_unscannable;
  uint64_t stream_staged_bytes, stream_staged_ranges, stream_hits, stream_late, stream_writeback_pages;
  uint64_t stream_inplace, stream_copy_ns, stream_budget, stream_fallbacks;
} sp_state;

extern sp_state sp_g;
void sp_lock(void);
void sp_unlock(void);
int sp_active(void);             /* core init; 1 unless passing everything through */
sp_dev *sp_dev_current(void);    /* device of the current context, initialised; NULL if none */
sp_dev *sp_dev_get(int ordinal); /* initialised device state (lock held), NULL on failure */
uint64_t sp_dev_vram_committed(const sp_dev *d);
uint64_t sp_dev_usage(const sp_dev *d);
uint64_t sp_dev_reported_total(const sp_dev *d);
uint64_t sp_pinned_committed(void);
int sp_pinned_can_commit(uint64_t extra); /* within limit and lease (asks the broker) */
void sp_dev_peaks(sp_dev *d);
void sp_dev_note_alloc(sp_dev *d); /* lock held */

/* ---- allocation table (table.c) ----------------------------------------------------------- */
enum { SP_PAGE_VRAM = 0, SP_PAGE_HOST = 1 }; /* where a page of a tiered range lives: sp_rec.loc */

struct sp_vhandle;

typedef struct sp_rec {
  CUdeviceptr va;
  uint64_t size; /* requested bytes */
  uint64_t span; /* bytes of VA (tiered: npages * SP_PAGE) */
  int dev;
  int tiered;  /* pages of ours behind it (spillover's range, or a mapping of a program handle) */
  int movable; /* the policy may move its pages (a program handle mapped twice may not) */
  int dying;   /* tiered: freed, pages not yet released (waiting on an event or a sync) */
  CUcontext ctx;
  uint64_t buffer_id;
  uint32_t npages, nvram; /* nvram pages are VRAM, the rest pinned host; loc[i] says which */
  CUevent event;          /* cuMemFreeAsync: release once it completes */
  CUmemGenericAllocationHandle *pages;
  uint8_t *loc;            /* per page: SP_PAGE_VRAM or SP_PAGE_HOST */
  struct sp_vhandle *vh;   /* a mapping of the program's own cuMemCreate (vmm_hooks.c): pages and
                              loc point into the handle's arrays; NULL for spillover's ranges */
  CUdeviceptr map_va;      /* a program mapping's whole extent (its records split it in segments) */
  uint64_t map_size;
  CUmemAccessDesc *access; /* the program's cuMemSetAccess on a mapping (NULL: READWRITE for dev) */
  uint32_t naccess;
  uint32_t uses;    /* launches that named the range, halved every placement pass */
  uint64_t use_seq; /* the last launch counted, so one launch counts once */
  /* the streaming engine (stream.c) */
  int stage_slot;   /* 1 + its staging slot while staged, else 0 */
  uint64_t stage_wb; /* the number of a write-back of its staged copy that may still run, or 0 */
  int stage_clean;  /* no launch or copy has named it in place since it was last staged */
  int stage_writer; /* not clean: 1 if every in-place use since was on stage_writer_stream */
  CUstream stage_writer_stream;
  int stage_arena;  /* this range is a staging arena */
  int stage_streamed; /* staged since the arena was made: placement ranks it below ranges read in place (policy.c) */
  /* The staged range read after this one, per range read before it: a training step reads its
  ** layers forward, then backward, and which way the walk goes depends on where it came from. */
  struct sp_stage_next {
    uint64_t pred_id; /* buffer_id of the range read before this one (0: none) */
    CUdeviceptr va;   /* the range read next, and its buffer_id */
    uint64_t id;
  } stage_next[2];
  int stage_next_new; /* the entry learned last */
} sp_rec;

int sp_table_insert(sp_rec *r);
sp_rec *sp_table_find(CUdeviceptr va);        /* exact start address */
sp_rec *sp_table_containing(CUdeviceptr p);   /* any address inside a recorded range */
void sp_table_remove(sp_rec *r);
size_t sp_table_count(void);
sp_rec *sp_table_at(size_t i);
void sp_table_forget_all(void); /* after fork */
void sp_rec_free(sp_rec *r);    /* the record and the arrays it owns */

/* program VMM handles passed to the driver whole (table.c) */
int sp_vmm_insert(CUmemGenericAllocationHandle h, uint64_t size, int dev);
/* Drops one reference (cuMemRelease): -1 not a handle of ours, 0 that was the last one (entry
** removed, size and dev filled), 1 still referenced. sp_vmm_retain adds one (1 if ours). */
int sp_vmm_release(CUmemGenericAllocationHandle h, uint64_t *size, int *dev);
int sp_vmm_retain(CUmemGenericAllocationHandle h);

/* ---- tiered allocations (tiered.c) -------------------------------------------------------- */
/* Lock held. Takes npages pages for device d: VRAM first (pool, then new within the budget) while
** vram_ok, then pinned host pages; fills pages[] and loc[], returns the VRAM count or -1 (OOM). */
int sp_pages_take(sp_dev *d, uint64_t npages, int may_use_reserve, int vram_ok, CUmemGenericAllocationHandle *pages,
                  uint8_t *loc);
void sp_pages_put(sp_dev *d, uint64_t npages, const CUmemGenericAllocationHandle *pages, const uint8_t *loc);
uint64_t sp_vram_room(const sp_dev *d, int may_use_reserve); /* pages a new range may take in VRAM */
uint64_t sp_vram_trim_for(sp_dev *d, uint64_t size, uint64_t budget); /* lock held; VRAM committed after */
CUresult sp_tiered_alloc(sp_dev *d, uint64_t size, int may_use_reserve, int vram_ok, CUdeviceptr *out);
void sp_tiered_release(sp_rec *r); /* lock held; unmaps, returns pages, frees the record */
void sp_tiered_window(const sp_rec *r); /* lock held: widen the launch scan's address window */
CUresult sp_access_rw(int dev, CUdeviceptr va, uint64_t size); /* READWRITE for the device */
/* r's access on part of it: the program's descriptors (or READWRITE for r's device), plus
** READWRITE for every peer of r's device (sp_dev.peers). */
CUresult sp_rec_set_access(const sp_rec *r, CUdeviceptr va, uint64_t size);
CUresult sp_rec_apply_access(const sp_rec *r); /* the whole range (page by page if refused) */
void sp_reap(int wait);            /* lock held; release finished deferred frees */
int sp_pending_count(void);
extern int sp_npending; /* records waiting on a cuMemFreeAsync event */

/* ---- the program's own VMM (vmm_hooks.c) -------------------------------------------------- */
void sp_vhandles_after_fork(void);

/* ---- placement: scan.c (use), policy.c (decisions), mover.c (moves), migrate.c (when) ----- */
#define SP_HOT_USES 2     /* ranges named by fewer launches (decayed) stay where they are */
#define SP_EVICT_RATIO 4  /* a VRAM page leaves in a pass only for a range this much denser in use */
#define SP_MOVE_BATCH 32  /* pages copied per synchronisation: the mover's scratch window */

/* One reference of a launch to a tiered range: the range's start and buffer_id when scanned (a
** range freed and made again at the same address is not charged), and how many launches (graph
** kernel nodes) name it. seq is the scan's own (one node names a range once). */
typedef struct sp_ref {
  CUdeviceptr va;
  uint64_t buffer_id;
  uint32_t count;
  uint64_t seq;
} sp_ref;
typedef struct sp_refs {
  sp_ref *v;
  size_t n, cap;
} sp_refs;

int sp_use_note(CUfunction f, void **params, void **extra); /* charge a direct launch; 1: a pass is due */
/* Lock held. Adds the tiered ranges named by one kernel's parameters (kernelParams or extra; f a
** CUfunction or CUkernel) to out, each once per call; -1 when its parameters cannot be read. */
int sp_scan_kernel(CUfunction f, void **params, void **extra, sp_refs *out);
void sp_scan_pointer(CUdeviceptr p, sp_refs *out); /* lock held: one reference if p is tiered */
int sp_use_charge(const sp_refs *refs);            /* lock not held; 1: a pass is due */
void sp_refs_free(sp_refs *r);
void sp_use_decay(void);     /* lock held: halve every range's uses; a new pass interval starts */
int sp_use_pass_ready(void); /* lock held: enough launches since the last pass */
void sp_scan_after_fork(void);
#define SP_SCAN_MAX_BYTES 4096 /* parameter bytes the launch scan reads per kernel */
/* One parameter word pointing into a tiered range: which parameter (extra buffer: 0), at which
** byte offset in it (in the buffer for extra), its value and the range. */
typedef struct sp_param_ref {
  uint32_t param, off;
  CUdeviceptr value;
  sp_rec *r;
} sp_param_ref;
int sp_scan_params(CUfunction f, void **params, void **extra, sp_param_ref *out, int max); /* lock held */
const uint32_t *sp_scan_layout(CUfunction f, uint32_t *n); /* lock held: n pairs (offset, size) */
int sp_host_tier_used(void); /* any tiered page in host memory now (a racy read) */

typedef struct sp_move {
  sp_rec *r;
  uint32_t page;
  int to; /* SP_PAGE_VRAM or SP_PAGE_HOST */
} sp_move;
int sp_policy_wants_vram(const sp_rec *r); /* hot enough to trade places with colder VRAM pages */
int sp_policy_wants_room(const sp_rec *r); /* named at all: worth free VRAM above the reserve */
void sp_policy_rank(sp_rec **recs, size_t n); /* densest use per page first */
/* A pass over recs (one device): fills out with at most max moves, room = VRAM pages free to fill. */
size_t sp_policy_pass(sp_rec **recs, size_t n, uint64_t room, sp_move *out, size_t max);
int sp_policy_worth_a_pass(sp_rec **recs, size_t n, uint64_t room);
/* `need` VRAM pages for a fresh allocation: the coldest ranges' VRAM pages leave. */
size_t sp_policy_evict(sp_rec **recs, size_t n, uint64_t need, sp_move *out, size_t max);

size_t sp_move_pages(int dev, const sp_move *m, size_t n); /* fence + lock held; moves done */
void sp_mover_after_fork(void);

void sp_fence_enter(void); /* a fenced entry point enqueues: no page changes backing meanwhile */
void sp_fence_leave(void);
void sp_migrate_pass(void);                       /* no locks held */
size_t sp_migrate_evict(sp_dev *d, uint64_t pages); /* no locks held; pages made free in VRAM */
void sp_capture_begin(void);
void sp_capture_end(void);
int sp_capturing_anywhere(void);
int sp_stream_capturing(CUstream s); /* capture_hooks.c: s is being captured (or cannot say) */
void sp_migrate_after_fork(void);
void sp_sync_ctx(CUcontext ctx); /* cuCtxSynchronize on ctx (pushed if not current) */

/* ---- the streaming engine (stream.c) ---------------------------------------------------- */
#define SP_STREAM_MAX_SLOTS_PER_LAUNCH 64
typedef struct sp_stream_launch {
  void **params, **extra; /* what to launch with */
  int dev, nslots;
  int stages; /* the function re-reads: its launches stage and prefetch */
  CUstream stream, stream_for_sample;
  struct sample *sample;
  int slots[SP_STREAM_MAX_SLOTS_PER_LAUNCH];
  int use_idx[SP_STREAM_MAX_SLOTS_PER_LAUNCH]; /* each slot's reader entry for this stream */
} sp_stream_launch;
void sp_stream_prepare(CUfunction f); /* no locks held, before the fence */
void sp_stream_before(sp_stream_launch *L, CUfunction f, CUstream s, int ptsz, void **params, void **extra);
void sp_stream_after(sp_stream_launch *L, CUresult rc);
void sp_stream_touch(CUdeviceptr p);              /* no locks: a copy/memset names p */
void sp_stream_touch_refs(const sp_refs *refs, CUstream s); /* no locks: a graph launch on s names these */
void sp_stream_settle_all(void);                  /* no locks: memory we cannot see is about to be read */
void sp_stream_forget(sp_rec *r);                 /* lock held: r is about to be unmapped */
void sp_stream_stats(void);                       /* lock held: the write-back count into sp_g */
void sp_stream_idle(void);                        /* no locks: an idle arena goes back to placement */
void sp_stream_after_fork(void);

/* ---- peers (peer.c) ----------------------------------------------------------------------- */
/* A copy between addresses of two devices, or of another device's range from the current one:
** the device doing it needs access to our tiered ranges. dctx/sctx: cuMemcpyPeer's contexts (or
** NULL). Only called once sp_g.multi is set, so one GPU pays one load per copy. No locks held. */
void sp_peer_copy(CUdeviceptr dst, CUdeviceptr src, CUcontext dctx, CUcontext sctx);
static inline int sp_peers_possible(void) { return __atomic_load_n(&sp_g.multi, __ATOMIC_RELAXED); }
int sp_ctx_device(CUcontext c); /* the device of a context, -1 if unknown */

/* ---- stats (stats.c) ---------------------------------------------------------------------- */
void sp_stats_open(void);    /* lock held */
void sp_stats_publish(void); /* lock held */
void sp_stats_exit(void);
void sp_stats_after_fork(void);

uint64_t sp_now_ns(void);

#endif /* SP_H */
