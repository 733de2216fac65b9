/*
** t_graph.c: CUDA graph launches count as use (native/src/graph_hooks.c). Run with the interposer
** test budget (SPILLOVER_VRAM_LIMIT=64M SPILLOVER_VRAM_RESERVE=16M, SPILLOVER_MIGRATE=1) against the
** fake driver, whose graphs run their nodes on the CPU. The ranges are made in host memory while
** VRAM is full of the driver's small allocations, which are then freed: VRAM has room for every
** range. Each range is filled by a copy, so graph nodes are the only launches that name it:
**  promote    four host ranges, each named by one kind of node of one instantiated graph (a
**             captured kernel launch, a captured async copy, a captured async memset, a kernel node
**             added by cuGraphAddKernelNode to a child graph), move into VRAM after graph launches;
**             a range no node names stays; every byte is unchanged (verified by kernels)
**  off        SPILLOVER_MIGRATE=0: the same launches move nothing
**  setparams  cuGraphExecKernelNodeSetParams_v2 points the exec's kernel node at another range:
**             launches charge the new range (it moves), not the old (it stays)
**  update     the same through cuGraphExecUpdate_v2 with a graph that names the other range
**  generic    the same through cuGraphExecNodeSetParams
**  setnodes   a memset node and a child graph node re-pointed (cuGraphExecMemsetNodeSetParams,
**             cuGraphExecChildGraphNodeSetParams): the new ranges move, the old ones stay
**  capture    launching the graph into a stream being captured runs no placement pass; launched
**             for real afterwards, the same graph's range moves
*/
#include "../demo/spill_pattern.h"
#include "t_common.h"

CUresult cuModuleLoadData(CUmodule *, const void *);
CUresult cuModuleGetFunction(CUfunction *, CUmodule, const char *);
CUresult cuLaunchKernel(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                        void **, void **);
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr, CUdeviceptr, size_t, CUstream);
CUresult cuMemsetD32Async(CUdeviceptr, unsigned int, size_t, CUstream);
CUresult cuStreamBeginCapture_v2(CUstream, int);
CUresult cuStreamEndCapture(CUstream, CUgraph *);
CUresult cuGraphCreate(CUgraph *, unsigned int);
CUresult cuGraphDestroy(CUgraph);
CUresult cuGraphAddKernelNode_v2(CUgraphNode *, CUgraph, const CUgraphNode *, size_t, const CUDA_KERNEL_NODE_PARAMS_v2 *);
CUresult cuGraphAddChildGraphNode(CUgraphNode *, CUgraph, const CUgraphNode *, size_t, CUgraph);
CUresult cuGraphInstantiateWithFlags(CUgraphExec *, CUgraph, unsigned long long);
CUresult cuGraphInstantiateWithParams(CUgraphExec *, CUgraph, CUDA_GRAPH_INSTANTIATE_PARAMS *);
CUresult cuGraphExecKernelNodeSetParams_v2(CUgraphExec, CUgraphNode, const CUDA_KERNEL_NODE_PARAMS_v2 *);
CUresult cuGraphExecUpdate_v2(CUgraphExec, CUgraph, CUgraphExecUpdateResultInfo *);
CUresult cuGraphExecNodeSetParams(CUgraphExec, CUgraphNode, CUgraphNodeParams *);
CUresult cuGraphExecMemsetNodeSetParams(CUgraphExec, CUgraphNode, const CUDA_MEMSET_NODE_PARAMS *, CUcontext);
CUresult cuGraphExecChildGraphNodeSetParams(CUgraphExec, CUgraphNode, CUgraph);
CUresult cuGraphGetNodes(CUgraph, CUgraphNode *, size_t *);
CUresult cuGraphExecDestroy(CUgraphExec);
CUresult cuGraphLaunch(CUgraphExec, CUstream);

#define RANGE (4 * MiB) /* two pages */
#define MAX_LAUNCHES 20000
#define MEMSET_BYTES 64 /* what the memset node writes, at the start of its range */

static t_location_fn loc;
static CUfunction k_verify;
static CUdeviceptr counter; /* 2 MiB of the driver's memory: bad-word count at 0, copy target at 4096 */
static CUstream s;
static CUcontext ctx;

static unsigned long long migrations(void) {
  sp_stats st;
  CHECK(t_read_stats(getpid(), &st) == 0, "cannot read stats");
  return (unsigned long long)st.migrations;
}

static unsigned long long bad_words(void) {
  unsigned long long bad = 0;
  CU(cuMemcpyDtoH_v2(&bad, counter, sizeof(bad)));
  return bad;
}

/* The whole VRAM limit is full of the driver's small allocations, which nothing can move: the
** ranges made next land in host pages. make_room() frees them, so those ranges may move in. */
static CUdeviceptr smalls[31];

static void setup(void) {
  CUmodule m;
  CU(cuModuleLoadData(&m, "fake image"));
  CU(cuModuleGetFunction(&k_verify, m, SPILL_KERNEL_VERIFY));
  CU(cuMemAlloc_v2(&counter, 2 * MiB));
  CU(cuMemsetD8_v2(counter, 0, 8));
  for (int i = 0; i < 31; i++) CU(cuMemAlloc_v2(&smalls[i], 2 * MiB)); /* with the counter: 64M */
  CU(cuStreamCreate(&s, 0));
}

static void make_room(void) {
  for (int i = 0; i < 31; i++) CU(cuMemFree_v2(smalls[i]));
}

/* A host range holding spill_pattern(seed, i), written by a copy (no launch names it). */
static CUdeviceptr host_range(unsigned long long seed) {
  CUdeviceptr p;
  CU(cuMemAlloc_v2(&p, RANGE));
  CHECK(t_pages_in(loc, p, RANGE, 2) == 2, "setup: range not in host memory");
  unsigned long long *buf = malloc(RANGE);
  for (size_t i = 0; i < RANGE / 8; i++) buf[i] = spill_pattern(seed, i);
  CU(cuMemcpyHtoD_v2(p, buf, RANGE));
  free(buf);
  return p;
}

/* Kernel-node parameters of a verify over `words` words of p from word `off` (argument storage
** in *a, which must outlive the call that copies it). */
typedef struct vargs {
  unsigned long long p, n, seed, off, bad;
  void *ptrs[5];
} vargs;

static CUDA_KERNEL_NODE_PARAMS_v2 verify_params(vargs *a, CUdeviceptr p, size_t words, unsigned long long seed,
                                                size_t off) {
  *a = (vargs){p, words, seed, off, counter, {0}};
  a->ptrs[0] = &a->p, a->ptrs[1] = &a->n, a->ptrs[2] = &a->seed, a->ptrs[3] = &a->off, a->ptrs[4] = &a->bad;
  CUDA_KERNEL_NODE_PARAMS_v2 kp;
  memset(&kp, 0, sizeof(kp));
  kp.func = k_verify;
  kp.gridDimX = kp.gridDimY = kp.gridDimZ = kp.blockDimX = kp.blockDimY = kp.blockDimZ = 1;
  kp.kernelParams = a->ptrs;
  return kp;
}

static void verify(CUdeviceptr p, size_t words, unsigned long long seed, size_t off) {
  vargs a;
  CUDA_KERNEL_NODE_PARAMS_v2 kp = verify_params(&a, p + off * 8, words, seed, off);
  CU(cuLaunchKernel(k_verify, 1, 1, 1, 1, 1, 1, 0, NULL, kp.kernelParams, NULL));
}

/* Launches x on s until every page of `want` (and of `also`, if not 0) is in VRAM; returns the
** launches made. */
static int launch_until2(CUgraphExec x, CUdeviceptr want, CUdeviceptr also) {
  int i = 0;
  while (i < MAX_LAUNCHES && (t_pages_in(loc, want, RANGE, 1) < 2 || (also && t_pages_in(loc, also, RANGE, 1) < 2))) {
    CU(cuGraphLaunch(x, s));
    i++;
  }
  return i;
}

static int launch_until(CUgraphExec x, CUdeviceptr want) { return launch_until2(x, want, 0); }

/* A graph with one kernel node that verifies the first 8 words of p. */
static CUgraph one_node_graph(CUdeviceptr p, unsigned long long seed, CUgraphNode *node) {
  CUgraph g;
  vargs a;
  CUDA_KERNEL_NODE_PARAMS_v2 kp = verify_params(&a, p, 8, seed, 0);
  CU(cuGraphCreate(&g, 0));
  CU(cuGraphAddKernelNode_v2(node, g, NULL, 0, &kp));
  return g;
}

static int promote(int expect_moves) {
  setup();
  CUdeviceptr kern = host_range(11), copy = host_range(22), set = host_range(33), child = host_range(44),
              cold = host_range(55);
  make_room();
  /* captured: a kernel launch, an async copy (to the counter's memory), an async memset */
  CUgraph g, c;
  CU(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
  vargs a;
  CUDA_KERNEL_NODE_PARAMS_v2 kp = verify_params(&a, kern, 8, 11, 0);
  CU(cuLaunchKernel(k_verify, 1, 1, 1, 1, 1, 1, 0, s, kp.kernelParams, NULL));
  CU(cuMemcpyDtoDAsync_v2(counter + 4096, copy, 64, s));
  CU(cuMemsetD32Async(set, 0x5eed, MEMSET_BYTES / 4, s));
  CU(cuStreamEndCapture(s, &g));
  /* built: a child graph with a kernel node */
  CUgraphNode n;
  kp = verify_params(&a, child, 8, 44, 0);
  CU(cuGraphCreate(&c, 0));
  CU(cuGraphAddKernelNode_v2(&n, c, NULL, 0, &kp));
  CU(cuGraphAddChildGraphNode(&n, g, NULL, 0, c));
  CUgraphExec x;
  CU(cuGraphInstantiateWithFlags(&x, g, 0));
  CU(cuGraphDestroy(g)); /* as PyTorch does: the exec is all that is left */
  CU(cuGraphDestroy(c));
  CHECK(migrations() == 0, "pages moved before any graph launch");

  int launches = 0;
  if (expect_moves) launches = launch_until(x, kern);
  else
    for (; launches < 5000; launches++) CU(cuGraphLaunch(x, s));
  CU(cuGraphLaunch(x, s)); /* once more after any move: the graph still reads the right bytes */
  CHECK(bad_words() == 0, "graph launches saw %llu wrong words", bad_words());
  if (expect_moves) {
    CHECK(t_pages_in(loc, kern, RANGE, 1) == 2, "captured kernel's range: %d of 2 pages in VRAM after %d graph launches",
          t_pages_in(loc, kern, RANGE, 1), launches);
    CHECK(t_pages_in(loc, copy, RANGE, 1) == 2, "captured copy's range: %d of 2 pages in VRAM", t_pages_in(loc, copy, RANGE, 1));
    CHECK(t_pages_in(loc, set, RANGE, 1) == 2, "captured memset's range: %d of 2 pages in VRAM", t_pages_in(loc, set, RANGE, 1));
    CHECK(t_pages_in(loc, child, RANGE, 1) == 2, "child graph's range: %d of 2 pages in VRAM", t_pages_in(loc, child, RANGE, 1));
    CHECK(t_pages_in(loc, cold, RANGE, 2) == 2, "a range no node names moved");
    CHECK(migrations() == 8, "migrations %llu, want 8", migrations());
  } else {
    CHECK(migrations() == 0 && t_pages_in(loc, kern, RANGE, 2) == 2 && t_pages_in(loc, child, RANGE, 2) == 2,
          "SPILLOVER_MIGRATE=0 moved pages");
  }
  /* every byte, wherever it lives now */
  verify(kern, RANGE / 8, 11, 0);
  verify(copy, RANGE / 8, 22, 0);
  verify(child, RANGE / 8, 44, 0);
  verify(cold, RANGE / 8, 55, 0);
  verify(set, (RANGE - MEMSET_BYTES) / 8, 33, MEMSET_BYTES / 8);
  unsigned long long first[MEMSET_BYTES / 8], copied[8];
  CU(cuMemcpyDtoH_v2(first, set, sizeof(first)));
  for (int i = 0; i < MEMSET_BYTES / 8; i++) CHECK(first[i] == 0x00005eed00005eedull, "memset word %d: %llx", i, first[i]);
  CU(cuMemcpyDtoH_v2(copied, counter + 4096, sizeof(copied)));
  for (int i = 0; i < 8; i++) CHECK(copied[i] == spill_pattern(22, (uint64_t)i), "copied word %d differs", i);
  CHECK(bad_words() == 0, "%llu words changed", bad_words());
  CU(cuGraphExecDestroy(x));
  printf("ok %s\n", expect_moves ? "promote" : "off");
  return 0;
}

/* The exec's kernel node is pointed from `old` to `now`: how (0 cuGraphExecKernelNodeSetParams_v2,
** 1 cuGraphExecUpdate_v2, 2 cuGraphExecNodeSetParams). */
static const char *const repoint_names[] = {"setparams", "update", "generic"};

static int repoint(int how) {
  setup();
  CUdeviceptr old = host_range(66), now = host_range(77);
  make_room();
  CUgraphNode n;
  CUgraph g = one_node_graph(old, 66, &n);
  CUgraphExec x;
  CUDA_GRAPH_INSTANTIATE_PARAMS ip;
  memset(&ip, 0, sizeof(ip));
  CU(cuGraphInstantiateWithParams(&x, g, &ip));
  if (how == 1) {
    CUgraphNode n2;
    CUgraph g2 = one_node_graph(now, 77, &n2);
    CUgraphExecUpdateResultInfo info;
    CU(cuGraphExecUpdate_v2(x, g2, &info));
    CU(cuGraphDestroy(g2));
  } else {
    vargs a;
    CUDA_KERNEL_NODE_PARAMS_v2 kp = verify_params(&a, now, 8, 77, 0);
    if (how == 0) {
      CU(cuGraphExecKernelNodeSetParams_v2(x, n, &kp));
    } else {
      CUgraphNodeParams np;
      memset(&np, 0, sizeof(np));
      np.type = CU_GRAPH_NODE_TYPE_KERNEL;
      np.kernel = kp;
      CU(cuGraphExecNodeSetParams(x, n, &np));
    }
  }
  int launches = launch_until(x, now);
  CHECK(bad_words() == 0, "the graph did not read the new range (%llu wrong words)", bad_words());
  CHECK(t_pages_in(loc, now, RANGE, 1) == 2, "new range: %d of 2 pages in VRAM after %d launches", t_pages_in(loc, now, RANGE, 1),
        launches);
  for (int i = 0; i < 200; i++) CU(cuGraphLaunch(x, s)); /* VRAM has room for it: it must not be charged */
  CHECK(t_pages_in(loc, old, RANGE, 2) == 2, "the range the node named before moved: still charged");
  CHECK(migrations() == 2, "migrations %llu, want 2", migrations());
  verify(old, RANGE / 8, 66, 0);
  verify(now, RANGE / 8, 77, 0);
  CHECK(bad_words() == 0, "%llu words changed", bad_words());
  CU(cuGraphExecDestroy(x));
  CU(cuGraphDestroy(g));
  printf("ok %s\n", repoint_names[how]);
  return 0;
}

static int setnodes(void) {
  setup();
  CUdeviceptr set_old = host_range(101), set_new = host_range(102), child_old = host_range(103),
              child_new = host_range(104);
  make_room();
  CUgraph g, c_old, c_new;
  CU(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
  CU(cuMemsetD32Async(set_old, 0x5eed, MEMSET_BYTES / 4, s));
  CU(cuStreamEndCapture(s, &g));
  CUgraphNode n, nodes[2];
  c_old = one_node_graph(child_old, 103, &n);
  CU(cuGraphAddChildGraphNode(&n, g, NULL, 0, c_old));
  size_t count = 2;
  CU(cuGraphGetNodes(g, nodes, &count));
  CHECK(count == 2, "graph has %zu nodes", count);
  CUgraphExec x;
  CU(cuGraphInstantiateWithFlags(&x, g, 0));
  CUDA_MEMSET_NODE_PARAMS mp = {set_new, 0, 0x5eed, 4, MEMSET_BYTES / 4, 1};
  CU(cuGraphExecMemsetNodeSetParams(x, nodes[0], &mp, ctx));
  c_new = one_node_graph(child_new, 104, &n);
  CU(cuGraphExecChildGraphNodeSetParams(x, nodes[1], c_new));
  int launches = launch_until2(x, set_new, child_new);
  CHECK(bad_words() == 0, "the child graph did not read its new range (%llu wrong words)", bad_words());
  CHECK(t_pages_in(loc, set_new, RANGE, 1) == 2 && t_pages_in(loc, child_new, RANGE, 1) == 2,
        "new ranges: %d and %d of 2 pages in VRAM after %d launches", t_pages_in(loc, set_new, RANGE, 1),
        t_pages_in(loc, child_new, RANGE, 1), launches);
  for (int i = 0; i < 200; i++) CU(cuGraphLaunch(x, s));
  CHECK(t_pages_in(loc, set_old, RANGE, 2) == 2 && t_pages_in(loc, child_old, RANGE, 2) == 2,
        "a range the nodes named before moved: still charged");
  CHECK(migrations() == 4, "migrations %llu, want 4", migrations());
  verify(set_old, RANGE / 8, 101, 0); /* the memset never ran there */
  verify(set_new, (RANGE - MEMSET_BYTES) / 8, 102, MEMSET_BYTES / 8);
  verify(child_old, RANGE / 8, 103, 0);
  verify(child_new, RANGE / 8, 104, 0);
  CHECK(bad_words() == 0, "%llu words changed", bad_words());
  unsigned long long first = 0;
  CU(cuMemcpyDtoH_v2(&first, set_new, 8));
  CHECK(first == 0x00005eed00005eedull, "the memset node did not write its new range");
  CU(cuGraphExecDestroy(x));
  CU(cuGraphDestroy(g));
  CU(cuGraphDestroy(c_old));
  CU(cuGraphDestroy(c_new));
  printf("ok setnodes\n");
  return 0;
}

static int capture(void) {
  setup();
  CUdeviceptr hot = host_range(88);
  make_room();
  CUgraphNode n;
  CUgraph g = one_node_graph(hot, 88, &n);
  CUgraphExec x;
  CU(cuGraphInstantiateWithFlags(&x, g, 0));
  CUstream cap;
  CU(cuStreamCreate(&cap, 0));
  CU(cuStreamBeginCapture_v2(cap, CU_STREAM_CAPTURE_MODE_GLOBAL));
  for (int i = 0; i < 5000; i++) CU(cuGraphLaunch(x, cap)); /* enough to make a pass due, many times over */
  CHECK(migrations() == 0 && t_pages_in(loc, hot, RANGE, 2) == 2, "a placement pass ran during capture");
  CUgraph captured;
  CU(cuStreamEndCapture(cap, &captured));
  CU(cuGraphDestroy(captured));
  int launches = launch_until(x, hot);
  CHECK(t_pages_in(loc, hot, RANGE, 1) == 2, "after capture: %d of 2 pages in VRAM after %d launches", t_pages_in(loc, hot, RANGE, 1),
        launches);
  verify(hot, RANGE / 8, 88, 0);
  CHECK(bad_words() == 0, "%llu words changed", bad_words());
  CU(cuGraphExecDestroy(x));
  CU(cuGraphDestroy(g));
  printf("ok capture\n");
  return 0;
}

int main(int argc, char **argv) {
  const char *sc = argc > 1 ? argv[1] : "";
  loc = t_location();
  ctx = t_setup();
  if (!strcmp(sc, "promote")) return promote(1);
  if (!strcmp(sc, "off")) return promote(0);
  if (!strcmp(sc, "setparams")) return repoint(0);
  if (!strcmp(sc, "update")) return repoint(1);
  if (!strcmp(sc, "generic")) return repoint(2);
  if (!strcmp(sc, "setnodes")) return setnodes();
  if (!strcmp(sc, "capture")) return capture();
  fprintf(stderr, "usage: t_graph promote|off|setparams|update|generic|setnodes|capture\n");
  return 2;
}
