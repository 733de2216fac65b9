/*
** graph_hooks.c: CUDA graph launches count as use. A graph replay runs the kernels it captured
** without a single cuLaunchKernel, so the launch scan alone never sees a program that runs its
** steps as graphs, and whatever such a program placed in host memory stays there (issue 9: a graph
** decoder's activations). So an executable graph is scanned once, when it is made
** (cuGraphInstantiate*: kernel nodes' parameters, memcpy and memset nodes' device pointers, child
** graphs recursively), into one list of the tiered ranges it names, merged per range with the
** number of nodes naming it. The list is re-scanned where the exec changes (cuGraphExecUpdate
** re-scans it all; cuGraphExec{Kernel,Memcpy,Memset,ChildGraph,}NodeSetParams replace that
** node's share), dropped at cuGraphExecDestroy, and charged at every cuGraphLaunch: one lookup per
** distinct range, however many nodes. A launch may first run a placement pass, as a kernel launch
** may, but never into a stream being captured; it is enqueued under the fence like every fenced
** call. With SPILLOVER_MIGRATE=0 these hooks only pass through; our bookkeeping failing (memory)
** only means an exec is not tracked, never that the program's call fails.
*/
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "sp.h"

#define MAX_DEPTH 16 /* child graphs inside child graphs */

/* Placement charges graph replays; the streaming engine settles the staged ranges they name. */
static int migrating(void) { return sp_active() && (sp_cfg.migrate || sp_cfg.stream); }

/* ---- reference lists, sorted by (va, buffer_id), one entry per range --------------------- */

static int ref_before(const sp_ref *a, CUdeviceptr va, uint64_t id) {
  return a->va < va || (a->va == va && a->buffer_id < id);
}

static size_t refs_lower(const sp_refs *r, CUdeviceptr va, uint64_t id) {
  size_t lo = 0, hi = r->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ref_before(&r->v[mid], va, id)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* dst += sign * src, per range; an entry whose count reaches 0 goes. -1 when dst cannot grow. */
static int refs_merge(sp_refs *dst, const sp_refs *src, int sign) {
  for (size_t k = 0; k < src->n; k++) {
    const sp_ref *s = &src->v[k];
    size_t i = refs_lower(dst, s->va, s->buffer_id);
    int found = i < dst->n && dst->v[i].va == s->va && dst->v[i].buffer_id == s->buffer_id;
    if (sign < 0) {
      if (!found) continue;
      if (dst->v[i].count > s->count) {
        dst->v[i].count -= s->count;
      } else {
        memmove(dst->v + i, dst->v + i + 1, (dst->n - i - 1) * sizeof(*dst->v));
        dst->n--;
      }
      continue;
    }
    if (found) {
      uint64_t c = (uint64_t)dst->v[i].count + s->count;
      dst->v[i].count = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
      continue;
    }
    if (dst->n == dst->cap) {
      size_t cap = dst->cap ? dst->cap * 2 : 8;
      sp_ref *v = realloc(dst->v, cap * sizeof(*v));
      if (!v) return -1;
      dst->v = v;
      dst->cap = cap;
    }
    memmove(dst->v + i + 1, dst->v + i, (dst->n - i) * sizeof(*dst->v));
    dst->v[i] = *s;
    dst->n++;
  }
  return 0;
}

/* ---- scanning a graph (no lock held; the scan functions run under the lock) -------------- */

/* Adds the ranges one kernel names to acc. The scan fills a list of its own, so how it merges
** within one call does not matter here. */
static int scan_kernel(CUfunction f, CUkernel k, void **params, void **extra, sp_refs *acc) {
  CUfunction fn = f ? f : (CUfunction)(void *)k;
  if (!fn || (!params && !extra)) return 0;
  sp_refs one = {0};
  sp_lock();
  sp_scan_kernel(fn, params, extra, &one);
  sp_unlock();
  int rc = refs_merge(acc, &one, 1);
  sp_refs_free(&one);
  return rc;
}

static int scan_pointer(CUdeviceptr p, sp_refs *acc) {
  if (!p) return 0;
  sp_refs one = {0};
  sp_lock();
  sp_scan_pointer(p, &one);
  sp_unlock();
  int rc = refs_merge(acc, &one, 1);
  sp_refs_free(&one);
  return rc;
}

/* The address a 3D copy operand starts at (device or unified memory), 0 for host and arrays. */
static CUdeviceptr copy_start(int type, CUdeviceptr base, size_t x, size_t y, size_t z, size_t pitch, size_t height) {
  if (type != CU_MEMORYTYPE_DEVICE && type != CU_MEMORYTYPE_UNIFIED) return 0;
  return base + x + (y + z * height) * pitch;
}

static int scan_copy(const CUDA_MEMCPY3D *c, sp_refs *acc) {
  CUdeviceptr src = copy_start(c->srcMemoryType, c->srcDevice, c->srcXInBytes, c->srcY, c->srcZ, c->srcPitch, c->srcHeight);
  CUdeviceptr dst = copy_start(c->dstMemoryType, c->dstDevice, c->dstXInBytes, c->dstY, c->dstZ, c->dstPitch, c->dstHeight);
  return scan_pointer(src, acc) | scan_pointer(dst, acc);
}

static int scan_graph(CUgraph g, sp_refs *acc, int depth);

/* Adds what one node names to acc. -1 only when acc could not grow. */
static int scan_node(CUgraphNode n, sp_refs *acc, int depth) {
  CUgraphNodeType type;
  if (!sp_real.cuGraphNodeGetType || sp_real.cuGraphNodeGetType(n, &type) != CUDA_SUCCESS) return 0;
  switch (type) {
  case CU_GRAPH_NODE_TYPE_KERNEL: {
    CUDA_KERNEL_NODE_PARAMS_v2 p;
    memset(&p, 0, sizeof(p));
    if (!sp_real.cuGraphKernelNodeGetParams_v2 || sp_real.cuGraphKernelNodeGetParams_v2(n, &p) != CUDA_SUCCESS)
      return 0;
    return scan_kernel(p.func, p.kern, p.kernelParams, p.extra, acc);
  }
  case CU_GRAPH_NODE_TYPE_MEMCPY: {
    CUDA_MEMCPY3D c;
    if (!sp_real.cuGraphMemcpyNodeGetParams || sp_real.cuGraphMemcpyNodeGetParams(n, &c) != CUDA_SUCCESS) return 0;
    return scan_copy(&c, acc);
  }
  case CU_GRAPH_NODE_TYPE_MEMSET: {
    CUDA_MEMSET_NODE_PARAMS m;
    if (!sp_real.cuGraphMemsetNodeGetParams || sp_real.cuGraphMemsetNodeGetParams(n, &m) != CUDA_SUCCESS) return 0;
    return scan_pointer(m.dst, acc);
  }
  case CU_GRAPH_NODE_TYPE_GRAPH: {
    CUgraph child;
    if (!sp_real.cuGraphChildGraphNodeGetGraph || sp_real.cuGraphChildGraphNodeGetGraph(n, &child) != CUDA_SUCCESS)
      return 0;
    return scan_graph(child, acc, depth + 1);
  }
  default: /* host, event, semaphore, memory and batch-memop nodes; conditional bodies are not read */
    return 0;
  }
}

/* The graph's top-level nodes in the driver's order (malloc'ed), NULL with *n = 0 if none. */
static CUgraphNode *graph_nodes(CUgraph g, size_t *n) {
  *n = 0;
  size_t want = 0;
  if (!sp_real.cuGraphGetNodes || sp_real.cuGraphGetNodes(g, NULL, &want) != CUDA_SUCCESS || !want) return NULL;
  CUgraphNode *v = calloc(want, sizeof(*v));
  if (!v) return NULL;
  if (sp_real.cuGraphGetNodes(g, v, &want) != CUDA_SUCCESS) want = 0;
  *n = want;
  if (!want) {
    free(v);
    v = NULL;
  }
  return v;
}

static int scan_graph(CUgraph g, sp_refs *acc, int depth) {
  if (depth > MAX_DEPTH) return 0;
  size_t n;
  CUgraphNode *nodes = graph_nodes(g, &n);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) rc = scan_node(nodes[i], acc, depth);
  free(nodes);
  return rc;
}

/* ---- executable graphs ------------------------------------------------------------------ */

/* A top-level node that names tiered ranges: the share a cuGraphExec*NodeSetParams replaces. */
typedef struct gnode {
  CUgraphNode node; /* the node of the graph the exec was instantiated from */
  uint32_t order;   /* its position among the graph's nodes: pairs it with an updating graph's */
  sp_refs refs;
} gnode;

typedef struct gexec {
  CUgraphExec exec;
  sp_refs refs;       /* every node, merged per range: what one launch charges */
  CUgraphNode *order; /* the instantiating graph's top-level nodes, in the driver's order */
  size_t norder;
  gnode *nodes; /* sorted by node */
  size_t nnodes;
} gexec;

static pthread_mutex_t glock = PTHREAD_MUTEX_INITIALIZER; /* taken before sp_lock, never after */
static gexec **execs;                                     /* sorted by exec */
static size_t nexecs, capexecs;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void gexec_free(gexec *e) {
  if (!e) return;
  for (size_t i = 0; i < e->nnodes; i++) sp_refs_free(&e->nodes[i].refs);
  free(e->nodes);
  free(e->order);
  sp_refs_free(&e->refs);
  free(e);
}

static int by_node(const void *a, const void *b) {
  const gnode *x = a, *y = b;
  return ((uintptr_t)x->node > (uintptr_t)y->node) - ((uintptr_t)x->node < (uintptr_t)y->node);
}

static gnode *gnode_find(gexec *e, CUgraphNode n) {
  gnode key = {.node = n};
  return e->nnodes ? bsearch(&key, e->nodes, e->nnodes, sizeof(*e->nodes), by_node) : NULL;
}

/* Scans graph g for an exec: NULL only when memory ran out (then the exec is not tracked). */
static gexec *gexec_build(CUgraphExec exec, CUgraph g) {
  gexec *e = calloc(1, sizeof(*e));
  if (!e) return NULL;
  e->exec = exec;
  e->order = graph_nodes(g, &e->norder);
  if (e->norder && !(e->nodes = calloc(e->norder, sizeof(*e->nodes)))) goto fail;
  for (size_t i = 0; i < e->norder; i++) {
    sp_refs one = {0};
    if (scan_node(e->order[i], &one, 0) != 0 || refs_merge(&e->refs, &one, 1) != 0) {
      sp_refs_free(&one);
      goto fail;
    }
    if (one.n) e->nodes[e->nnodes++] = (gnode){e->order[i], (uint32_t)i, one};
    else sp_refs_free(&one);
  }
  if (e->nnodes) qsort(e->nodes, e->nnodes, sizeof(*e->nodes), by_node);
  return e;
fail:
  gexec_free(e);
  return NULL;
}

static size_t execs_lower(CUgraphExec x) {
  size_t lo = 0, hi = nexecs;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if ((uintptr_t)execs[mid]->exec < (uintptr_t)x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* glock held */
static gexec *exec_find(CUgraphExec x) {
  size_t i = execs_lower(x);
  return i < nexecs && execs[i]->exec == x ? execs[i] : NULL;
}

/* glock held. Takes e (or frees it); an entry for the same exec (a reused address) is replaced. */
static void exec_put(gexec *e) {
  size_t i = execs_lower(e->exec);
  if (i < nexecs && execs[i]->exec == e->exec) {
    gexec_free(execs[i]);
    execs[i] = e;
    return;
  }
  if (nexecs == capexecs) {
    size_t cap = capexecs ? capexecs * 2 : 64;
    gexec **v = realloc(execs, cap * sizeof(*v));
    if (!v) {
      gexec_free(e);
      return;
    }
    execs = v;
    capexecs = cap;
  }
  memmove(execs + i + 1, execs + i, (nexecs - i) * sizeof(*execs));
  execs[i] = e;
  nexecs++;
}

/* glock held */
static void exec_drop(CUgraphExec x) {
  size_t i = execs_lower(x);
  if (i >= nexecs || execs[i]->exec != x) return;
  gexec_free(execs[i]);
  memmove(execs + i, execs + i + 1, (nexecs - i - 1) * sizeof(*execs));
  nexecs--;
}

/* Fork: the child may not use the parent's graphs (nor its driver state); forget them. */
static void fork_prepare(void) { pthread_mutex_lock(&glock); }
static void fork_parent(void) { pthread_mutex_unlock(&glock); }
static void fork_child(void) {
  pthread_mutex_init(&glock, NULL);
  execs = NULL; /* leaked in the child, like migrate.c's layouts */
  nexecs = capexecs = 0;
}
static void fork_register(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

static void track(CUgraphExec x, CUgraph g) {
  pthread_once(&fork_once, fork_register);
  gexec *e = gexec_build(x, g);
  pthread_mutex_lock(&glock);
  if (e) exec_put(e);
  else exec_drop(x); /* untracked: a stale entry at this address must not be charged */
  pthread_mutex_unlock(&glock);
}

/* cuGraphExecUpdate succeeded: the exec now has g's parameters. Later
** cuGraphExecKernelNodeSetParams calls still name the nodes of the instantiating graph, which the
** driver paired with g's in order, so the new entry keeps the old node handles. */
static void retrack(CUgraphExec x, CUgraph g) {
  gexec *e = gexec_build(x, g);
  pthread_mutex_lock(&glock);
  gexec *old = exec_find(x);
  if (e && old && old->norder == e->norder) {
    CUgraphNode *keep = old->order;
    old->order = e->order;
    e->order = keep;
    for (size_t i = 0; i < e->nnodes; i++) e->nodes[i].node = e->order[e->nodes[i].order];
    if (e->nnodes) qsort(e->nodes, e->nnodes, sizeof(*e->nodes), by_node);
  }
  if (e) exec_put(e);
  else exec_drop(x);
  pthread_mutex_unlock(&glock);
}

/* A cuGraphExec*NodeSetParams succeeded: node n of exec x now names `fresh` (scanned; ok 0 when
** the scan could not keep up: then nobody can say what the exec names, and it is not charged). */
static void renode(CUgraphExec x, CUgraphNode n, sp_refs fresh, int ok) {
  pthread_mutex_lock(&glock);
  gexec *e = exec_find(x);
  if (e) {
    gnode *old = gnode_find(e, n);
    if (old) refs_merge(&e->refs, &old->refs, -1);
    if (!ok || refs_merge(&e->refs, &fresh, 1) != 0) {
      exec_drop(x); /* cannot say what it names any more: stop charging it */
    } else if (old) {
      sp_refs_free(&old->refs);
      old->refs = fresh;
      fresh = (sp_refs){0};
    } else if (fresh.n) {
      gnode *v = realloc(e->nodes, (e->nnodes + 1) * sizeof(*v));
      if (v) {
        e->nodes = v;
        uint32_t at = UINT32_MAX;
        for (size_t i = 0; i < e->norder; i++)
          if (e->order[i] == n) at = (uint32_t)i;
        if (at != UINT32_MAX) {
          e->nodes[e->nnodes++] = (gnode){n, at, fresh};
          fresh = (sp_refs){0};
          qsort(e->nodes, e->nnodes, sizeof(*e->nodes), by_node);
        }
      }
      /* without a node entry the ranges stay charged; a later change of this node adds to them */
    }
  }
  pthread_mutex_unlock(&glock);
  sp_refs_free(&fresh);
}

/* 1 when a placement pass is due */
static int charge(CUgraphExec x, CUstream s) {
  pthread_mutex_lock(&glock);
  gexec *e = exec_find(x);
  int due = e ? sp_use_charge(&e->refs) : 0;
  if (e) sp_stream_touch_refs(&e->refs, s); /* replays read ranges in place: staged ones settle first */
  pthread_mutex_unlock(&glock);
  return due;
}

/* cuGraphExecNodeSetParams: the generic form of the above. Other node types name no memory we track. */
static int scan_params(const CUgraphNodeParams *p, sp_refs *acc) {
  switch (p->type) {
  case CU_GRAPH_NODE_TYPE_KERNEL:
    return scan_kernel(p->kernel.func, p->kernel.kern, p->kernel.kernelParams, p->kernel.extra, acc);
  case CU_GRAPH_NODE_TYPE_MEMCPY: return scan_copy(&p->memcpy.copyParams, acc);
  case CU_GRAPH_NODE_TYPE_MEMSET: return scan_pointer(p->memset.dst, acc);
  case CU_GRAPH_NODE_TYPE_GRAPH: return scan_graph(p->graph.graph, acc, 1);
  default: return 0;
  }
}

/* ---- the hooks -------------------------------------------------------------------------- */

#define INSTANTIATE(name, params, args)                        \
  SP_EXPORT CUresult name params {                             \
    sp_cuda_load();                                            \
    if (!sp_real.name) return CUDA_ERROR_NOT_FOUND;            \
    CUresult rc = sp_real.name args;                           \
    if (rc == CUDA_SUCCESS && phGraphExec && migrating()) track(*phGraphExec, hGraph); \
    return rc;                                                 \
  }

INSTANTIATE(cuGraphInstantiate, (CUgraphExec * phGraphExec, CUgraph hGraph, CUgraphNode *err, char *log, size_t size),
            (phGraphExec, hGraph, err, log, size))
INSTANTIATE(cuGraphInstantiate_v2,
            (CUgraphExec * phGraphExec, CUgraph hGraph, CUgraphNode *err, char *log, size_t size),
            (phGraphExec, hGraph, err, log, size))
INSTANTIATE(cuGraphInstantiateWithFlags, (CUgraphExec * phGraphExec, CUgraph hGraph, unsigned long long flags),
            (phGraphExec, hGraph, flags))
INSTANTIATE(cuGraphInstantiateWithParams,
            (CUgraphExec * phGraphExec, CUgraph hGraph, CUDA_GRAPH_INSTANTIATE_PARAMS *p), (phGraphExec, hGraph, p))
INSTANTIATE(cuGraphInstantiateWithParams_ptsz,
            (CUgraphExec * phGraphExec, CUgraph hGraph, CUDA_GRAPH_INSTANTIATE_PARAMS *p), (phGraphExec, hGraph, p))
#undef INSTANTIATE

SP_EXPORT CUresult cuGraphExecUpdate(CUgraphExec x, CUgraph g, CUgraphNode *err, CUgraphExecUpdateResult *result) {
  sp_cuda_load();
  if (!sp_real.cuGraphExecUpdate) return CUDA_ERROR_NOT_FOUND;
  CUresult rc = sp_real.cuGraphExecUpdate(x, g, err, result);
  if (rc == CUDA_SUCCESS && migrating()) retrack(x, g);
  return rc;
}

SP_EXPORT CUresult cuGraphExecUpdate_v2(CUgraphExec x, CUgraph g, CUgraphExecUpdateResultInfo *info) {
  sp_cuda_load();
  if (!sp_real.cuGraphExecUpdate_v2) return CUDA_ERROR_NOT_FOUND;
  CUresult rc = sp_real.cuGraphExecUpdate_v2(x, g, info);
  if (rc == CUDA_SUCCESS && migrating()) retrack(x, g);
  return rc;
}

/* The node-parameter changes on an exec: the real call, then the node's share re-scanned (SCAN
** adds what the new parameters name to `fresh` and evaluates to 0, or -1 when it could not). */
#define SET_PARAMS(name, params, args, valid, SCAN)              \
  SP_EXPORT CUresult name params {                               \
    sp_cuda_load();                                              \
    if (!sp_real.name) return CUDA_ERROR_NOT_FOUND;              \
    CUresult rc = sp_real.name args;                             \
    if (rc != CUDA_SUCCESS || !(valid) || !migrating()) return rc; \
    sp_refs fresh = {0};                                         \
    int ok = (SCAN) == 0;                                        \
    renode(x, n, fresh, ok);                                     \
    return rc;                                                   \
  }

SET_PARAMS(cuGraphExecKernelNodeSetParams, (CUgraphExec x, CUgraphNode n, const CUDA_KERNEL_NODE_PARAMS_v1 *p),
           (x, n, p), p, scan_kernel(p->func, NULL, p->kernelParams, p->extra, &fresh))
SET_PARAMS(cuGraphExecKernelNodeSetParams_v2, (CUgraphExec x, CUgraphNode n, const CUDA_KERNEL_NODE_PARAMS_v2 *p),
           (x, n, p), p, scan_kernel(p->func, p->kern, p->kernelParams, p->extra, &fresh))
SET_PARAMS(cuGraphExecMemcpyNodeSetParams, (CUgraphExec x, CUgraphNode n, const CUDA_MEMCPY3D *p, CUcontext c),
           (x, n, p, c), p, scan_copy(p, &fresh))
SET_PARAMS(cuGraphExecMemsetNodeSetParams,
           (CUgraphExec x, CUgraphNode n, const CUDA_MEMSET_NODE_PARAMS *p, CUcontext c), (x, n, p, c), p,
           scan_pointer(p->dst, &fresh))
SET_PARAMS(cuGraphExecChildGraphNodeSetParams, (CUgraphExec x, CUgraphNode n, CUgraph child), (x, n, child), child,
           scan_graph(child, &fresh, 1))
SET_PARAMS(cuGraphExecNodeSetParams, (CUgraphExec x, CUgraphNode n, CUgraphNodeParams *p), (x, n, p), p,
           scan_params(p, &fresh))
#undef SET_PARAMS

SP_EXPORT CUresult cuGraphExecDestroy(CUgraphExec x) {
  sp_cuda_load();
  if (!sp_real.cuGraphExecDestroy) return CUDA_ERROR_NOT_FOUND;
  if (migrating()) { /* before the driver may hand the address out again */
    pthread_mutex_lock(&glock);
    exec_drop(x);
    pthread_mutex_unlock(&glock);
  }
  return sp_real.cuGraphExecDestroy(x);
}

static CUresult graph_launch(sp_cuGraphLaunch_fn real, int ptsz, CUgraphExec x, CUstream s) {
  if (!real) return CUDA_ERROR_NOT_FOUND;
  if (!migrating()) return real(x, s);
  if (charge(x, ptsz && !s ? (CUstream)0x2 : s) && sp_cfg.migrate && !sp_stream_capturing(s)) sp_migrate_pass();
  if (sp_cfg.stream) sp_stream_idle(); /* replays never stage: a decode phase gives the arena back */
  sp_fence_enter();
  CUresult rc = real(x, s);
  sp_fence_leave();
  return rc;
}

SP_EXPORT CUresult cuGraphLaunch(CUgraphExec x, CUstream s) {
  sp_cuda_load();
  return graph_launch(sp_real.cuGraphLaunch, 0, x, s);
}

SP_EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec x, CUstream s) {
  sp_cuda_load();
  return graph_launch(sp_real.cuGraphLaunch_ptsz, 1, x, s);
}
