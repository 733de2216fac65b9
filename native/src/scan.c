/*
** scan.c: the launch scan. Which tiered ranges does each launch name? A kernel's parameter layout
** (cuFuncGetParamInfo, or cuKernelGetParamInfo for a CUkernel) is cached per function; every
** 8-byte word of its parameters that points into a tiered range is a reference. A direct launch is
** charged at once (sp_use_note); a graph is scanned once when it is instantiated and charged at
** every launch (graph_hooks.c, through sp_scan_kernel and sp_use_charge). Uses per range are what
** the placement policy (policy.c) ranks by; passes halve them, at most every 500 ms (sp_use_decay),
** so they measure recent use. The scan decides nothing and moves nothing.
*/
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "sp.h"

#define PASS_LAUNCHES 4096   /* a pass at least every this many charged launches, */
#define PASS_NS 20000000ull  /* or after 20 ms */
#define PASS_MIN_LAUNCHES 64 /* and this many launches (a pass may cost a context sync) */
/* Uses halve at most this often, however often passes run: a window must span whole steps of a
** repeating workload (a prefill takes hundreds of ms), or ranges used once per step count 4x apart
** depending on where the window fell, and trade places pass after pass (each a context sync). */
#define DECAY_NS 500000000ull
#define MAX_SCAN_BYTES SP_SCAN_MAX_BYTES
#define MAX_PARAMS 1024

/* ---- kernel parameter layouts (lock held) ------------------------------------------------ */

typedef struct layout {
  const void *fn;
  uint32_t n;   /* parameters; UINT32_MAX: the driver could not say (the launch is not scanned) */
  uint32_t *ps; /* n pairs: offset, size */
} layout;

static layout *layouts;
static size_t layouts_cap, layouts_used;
static uint64_t launch_seq, launches_since_pass, last_pass_ns, last_decay_ns;

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

/* ---- finding references ------------------------------------------------------------------ */

/* Calls visit(range, ctx) for every word of the kernel's parameters inside a tiered range. */
typedef void (*visit_fn)(sp_rec *r, void *ctx);

static void visit_bytes(const unsigned char *p, size_t n, visit_fn visit, void *ctx) {
  CUdeviceptr hi = __atomic_load_n(&sp_g.tiered_hi, __ATOMIC_ACQUIRE);
  CUdeviceptr lo = __atomic_load_n(&sp_g.tiered_lo, __ATOMIC_RELAXED);
  for (size_t k = 0; k + sizeof(CUdeviceptr) <= n; k += sizeof(CUdeviceptr)) {
    CUdeviceptr v;
    memcpy(&v, p + k, sizeof(v));
    if (v < lo || v >= hi) continue;
    sp_rec *r = sp_table_containing(v);
    if (r && r->tiered && !r->dying) visit(r, ctx);
  }
}

/* -1: the parameters cannot be read (no layout). */
static int visit_kernel(CUfunction f, void **params, void **extra, visit_fn visit, void *ctx) {
  layout *l = layout_of(f);
  if (!l || l->n == UINT32_MAX) {
    sp_g.launches_unscannable++;
    return -1;
  }
  size_t budget = MAX_SCAN_BYTES;
  if (params) {
    for (uint32_t i = 0; i < l->n && budget >= 8; i++) {
      size_t size = l->ps[2 * i + 1] < budget ? l->ps[2 * i + 1] : budget;
      if (size >= 8 && params[i]) visit_bytes(params[i], size, visit, ctx);
      budget -= size;
    }
  } else if (extra) {
    const unsigned char *buf = NULL;
    size_t len = 0;
    for (int i = 0; i < 64 && extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
      if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) buf = extra[i + 1];
      else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE && extra[i + 1]) len = *(const size_t *)extra[i + 1];
    }
    if (buf) visit_bytes(buf, len < budget ? len : budget, visit, ctx);
  }
  sp_g.launches_scanned++;
  return 0;
}

/* ---- charging use ------------------------------------------------------------------------ */

static void add_use(sp_rec *r, uint32_t n) { r->uses = r->uses > UINT32_MAX - n ? UINT32_MAX : r->uses + n; }

/* A direct launch: each range counts once however many parameters name it. */
static void charge_once(sp_rec *r, void *ctx) {
  (void)ctx;
  if (r->use_seq == launch_seq) return;
  r->use_seq = launch_seq;
  add_use(r, 1);
}

/* Lock held: one more launch was charged; is a pass due? */
static int pass_due(uint64_t launches) {
  launches_since_pass += launches;
  return launches_since_pass >= PASS_LAUNCHES ||
         (launches_since_pass >= PASS_MIN_LAUNCHES && sp_now_ns() - last_pass_ns >= PASS_NS);
}

/* Bytes of tiered pages in host memory now (a racy read is fine: it only gates the scan). */
int sp_host_tier_used(void) {
  for (int i = 0; i < SP_MAX_DEV; i++) {
    const sp_dev *d = &sp_g.dev[i];
    if (__atomic_load_n(&d->tier_bytes[1], __ATOMIC_RELAXED) || __atomic_load_n(&d->vvmm_bytes[1], __ATOMIC_RELAXED))
      return 1;
  }
  return 0;
}

/* While every tiered page is in VRAM, use decides nothing (no pass has a page to bring in), so
** direct launches are not scanned: a program that fits pays nothing per launch. */
int sp_use_note(CUfunction f, void **params, void **extra) {
  if (!__atomic_load_n(&sp_g.tiered_hi, __ATOMIC_ACQUIRE) || !f || (!params && !extra) || !sp_host_tier_used())
    return 0;
  sp_lock();
  launch_seq++;
  visit_kernel(f, params, extra, charge_once, NULL);
  int due = pass_due(1);
  sp_unlock();
  return due;
}

static void collect(sp_rec *r, void *ctx) {
  sp_refs *out = ctx;
  for (size_t i = 0; i < out->n; i++)
    if (out->v[i].va == r->va && out->v[i].buffer_id == r->buffer_id) {
      if (out->v[i].seq != launch_seq) {
        out->v[i].seq = launch_seq;
        out->v[i].count++;
      }
      return;
    }
  if (out->n == out->cap) {
    size_t cap = out->cap ? out->cap * 2 : 16;
    sp_ref *v = realloc(out->v, cap * sizeof(*v));
    if (!v) return;
    out->v = v;
    out->cap = cap;
  }
  out->v[out->n++] = (sp_ref){r->va, r->buffer_id, 1, launch_seq};
}

int sp_scan_kernel(CUfunction f, void **params, void **extra, sp_refs *out) {
  if (!f || (!params && !extra)) return 0;
  launch_seq++; /* one kernel node names a range once */
  return visit_kernel(f, params, extra, collect, out);
}

void sp_scan_pointer(CUdeviceptr p, sp_refs *out) {
  sp_rec *r = sp_table_containing(p);
  if (!r || !r->tiered || r->dying) return;
  launch_seq++;
  collect(r, out);
}

/* A graph launch paces passes like the kernel launches it stands for (each node naming a tiered
** range counts): a decode step replayed as one graph is hundreds of kernels, and counting it as one
** launch would leave a repeating graph workload without a pass for minutes. */
int sp_use_charge(const sp_refs *refs) {
  if (!refs || !refs->n || !sp_host_tier_used()) return 0;
  sp_lock();
  launch_seq++;
  uint64_t nodes = 0;
  for (size_t i = 0; i < refs->n; i++) {
    nodes += refs->v[i].count;
    sp_rec *r = sp_table_find(refs->v[i].va);
    if (r && r->tiered && !r->dying && r->buffer_id == refs->v[i].buffer_id) {
      add_use(r, refs->v[i].count);
      r->use_seq = launch_seq;
    }
  }
  int due = pass_due(nodes ? nodes : 1);
  sp_unlock();
  return due;
}

/* ---- positions (the streaming engine rewrites the words it finds) ------------------------- */

typedef struct positions {
  sp_param_ref *out;
  int max, n;
  uint32_t param; /* the parameter being visited */
} positions;

static void visit_pos(const unsigned char *p, size_t n, positions *ps) {
  CUdeviceptr hi = __atomic_load_n(&sp_g.tiered_hi, __ATOMIC_ACQUIRE);
  CUdeviceptr lo = __atomic_load_n(&sp_g.tiered_lo, __ATOMIC_RELAXED);
  for (size_t k = 0; k + sizeof(CUdeviceptr) <= n && ps->n < ps->max; k += sizeof(CUdeviceptr)) {
    CUdeviceptr v;
    memcpy(&v, p + k, sizeof(v));
    if (v < lo || v > hi) continue;
    sp_rec *r = v < hi ? sp_table_containing(v) : NULL;
    /* one past the end of a range ([begin, end) parameters) belongs to it when no range starts there */
    if (!r && v > lo) {
      sp_rec *q = sp_table_containing(v - 1);
      if (q && q->va + q->span == v) r = q;
    }
    if (r && r->tiered && !r->dying) ps->out[ps->n++] = (sp_param_ref){ps->param, (uint32_t)k, v, r};
  }
}

int sp_scan_params(CUfunction f, void **params, void **extra, sp_param_ref *out, int max) {
  if (!f || (!params && !extra)) return 0;
  layout *l = layout_of(f);
  if (!l || l->n == UINT32_MAX) return -1;
  positions ps = {out, max, 0, 0};
  size_t budget = MAX_SCAN_BYTES;
  if (params) {
    for (uint32_t i = 0; i < l->n && budget >= 8; i++) {
      size_t size = l->ps[2 * i + 1] < budget ? l->ps[2 * i + 1] : budget;
      ps.param = i;
      if (size >= 8 && params[i]) visit_pos(params[i], size, &ps);
      budget -= size;
    }
  } else {
    const unsigned char *buf = NULL;
    size_t len = 0;
    for (int i = 0; i < 64 && extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
      if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) buf = extra[i + 1];
      else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE && extra[i + 1]) len = *(const size_t *)extra[i + 1];
    }
    if (buf) visit_pos(buf, len < budget ? len : budget, &ps);
  }
  return ps.n;
}

const uint32_t *sp_scan_layout(CUfunction f, uint32_t *n) {
  layout *l = layout_of(f);
  if (!l || l->n == UINT32_MAX) return NULL;
  *n = l->n;
  return l->ps;
}

void sp_refs_free(sp_refs *r) {
  free(r->v);
  memset(r, 0, sizeof(*r));
}

/* Lock held. Every pass, moving or not, ends here: counts decay, the next interval starts. */
void sp_use_decay(void) {
  uint64_t now = sp_now_ns();
  if (now - last_decay_ns >= DECAY_NS) {
    for (size_t i = 0; i < sp_table_count(); i++) sp_table_at(i)->uses >>= 1;
    last_decay_ns = now;
  }
  launches_since_pass = 0;
  last_pass_ns = now;
}

int sp_use_pass_ready(void) { return launches_since_pass >= PASS_MIN_LAUNCHES; }

/* Child of fork: the parent's functions are not valid here (its table is leaked in the child). */
void sp_scan_after_fork(void) {
  layouts = NULL;
  layouts_cap = layouts_used = 0;
  launch_seq = launches_since_pass = last_pass_ns = last_decay_ns = 0;
}
