/*
** t_misc.c: robustness and reporting.
**  badargs      NULL / zero size get the driver's own error; a double free, an interior pointer
**               and a foreign pointer get CUDA_ERROR_INVALID_VALUE and change nothing
**  passthrough  (run with a malformed variable or SPILLOVER_DISABLE=1) nothing is tiered, the
**               driver's own numbers are reported, no stats file is written
**  notiering    a card without host-NUMA VMM: everything passes through, driver's numbers
**  stats        decodes this process's stats record and checks it against what was allocated
**  summary      does a little work and exits; the caller checks the SPILLOVER_LOG=info line
*/
#include "t_common.h"

static int badargs(void) {
  CUdeviceptr p, a;
  CUresult r1 = cuMemAlloc_v2(NULL, 4 * MiB), r2 = cuMemAlloc_v2(&p, 0);
  CHECK(r1 == CUDA_ERROR_INVALID_VALUE && r2 == CUDA_ERROR_INVALID_VALUE, "NULL/zero: %d %d", r1, r2);
  CHECK(cuMemAllocAsync(NULL, 4 * MiB, NULL) == CUDA_ERROR_INVALID_VALUE, "async NULL");
  CU(cuMemAlloc_v2(&a, 40 * MiB));
  CU(cuMemAlloc_v2(&p, 20 * MiB)); /* tiered */
  CU(cuMemsetD8_v2(p, 3, 20 * MiB));
  CHECK(cuMemFree_v2(p + 2 * MiB) == CUDA_ERROR_INVALID_VALUE, "interior free accepted");
  CHECK(cuMemFree_v2((CUdeviceptr)0xdead0000ull) == CUDA_ERROR_INVALID_VALUE, "foreign free accepted");
  CHECK(cuMemFree_v2(a + 4096) == CUDA_ERROR_INVALID_VALUE, "interior driver free accepted");
  unsigned char b[16];
  CU(cuMemcpyDtoH_v2(b, p + 19 * MiB, sizeof(b))); /* still mapped */
  CHECK(b[0] == 3 && b[15] == 3, "data changed by refused frees");
  CU(cuMemFree_v2(p));
  CHECK(cuMemFree_v2(p) == CUDA_ERROR_INVALID_VALUE, "double free of a tiered pointer accepted");
  CU(cuMemFree_v2(a));
  CHECK(cuMemFree_v2(a) == CUDA_ERROR_INVALID_VALUE, "double free of a driver pointer accepted");
  sp_stats s;
  CHECK(t_read_stats(getpid(), &s) == 0, "stats");
  CHECK(s.bad_args >= 7, "bad_args %llu", (unsigned long long)s.bad_args);
  CHECK(s.gpu[0].tier_bytes[1] == 0 && s.gpu[0].passthrough_bytes == 0, "accounting after bad frees");
  printf("ok badargs bad=%llu\n", (unsigned long long)s.bad_args);
  return 0;
}

static int passthrough(void) {
  CUdeviceptr p;
  size_t big = 200 * MiB; /* far past SPILLOVER_VRAM_LIMIT, within the fake's 1G */
  CU(cuMemAlloc_v2(&p, big));
  t_location_fn loc = t_location();
  CHECK(!loc || loc(p + big - 1) == 0, "tiered although passing through");
  size_t fr, tot, phys = t_env_size("FAKE_CUDA_VRAM", 1u << 30);
  CU(cuMemGetInfo_v2(&fr, &tot));
  CHECK(tot == phys, "total %zu, want the driver's %zu", tot, phys);
  sp_stats s;
  CHECK(t_read_stats(getpid(), &s) != 0, "a stats file was written while passing through");
  CU(cuMemFree_v2(p));
  printf("ok passthrough\n");
  return 0;
}

/* A card without VMM on host NUMA memory (FAKE_CUDA_NO_HOST_NUMA=1): nothing can be tiered, so
** allocations and capacity are the driver's, and the stats record says so. */
static int notiering(void) {
  CUdeviceptr p;
  size_t big = 200 * MiB, phys = t_env_size("FAKE_CUDA_VRAM", 1u << 30);
  CU(cuMemAlloc_v2(&p, big));
  t_location_fn loc = t_location();
  CHECK(loc(p + big - 1) == 0, "tiered without host NUMA support");
  size_t fr, tot, t2;
  CU(cuMemGetInfo_v2(&fr, &tot));
  CU(cuDeviceTotalMem_v2(&t2, 0));
  CHECK(tot == phys && t2 == phys, "total %zu / %zu, want the driver's %zu", tot, t2, phys);
  sp_stats s;
  CHECK(t_read_stats(getpid(), &s) == 0, "stats");
  CHECK(s.mode == SP_MODE_PASSTHROUGH, "stats mode %u, want passthrough", s.mode);
  CU(cuMemFree_v2(p));
  printf("ok notiering\n");
  return 0;
}

static int stats(void) {
  CUdeviceptr a, b, c;
  CU(cuMemAlloc_v2(&a, 40 * MiB));
  CU(cuMemAlloc_v2(&b, 20 * MiB)); /* 4 VRAM + 6 host */
  CU(cuMemAlloc_v2(&c, 30 * MiB)); /* 15 host */
  size_t fr, tot;
  CU(cuMemGetInfo_v2(&fr, &tot));
  sp_stats s;
  CHECK(t_read_stats(getpid(), &s) == 0, "no stats record");
  CHECK(s.magic == SP_STATS_MAGIC && s.version == SP_STATS_VERSION && s.size == SP_STATS_SIZE, "header");
  CHECK(s.pid == getpid() && s.gpu_count == 1 && s.mode == SP_MODE_STANDALONE && s.exited == 0, "identity");
  CHECK(s.seq % 2 == 0 && s.seq > 0, "seq %llu", (unsigned long long)s.seq);
  CHECK(s.start_unix_ns > 0 && s.update_unix_ns >= s.start_unix_ns, "times");
  const sp_stats_gpu *g = &s.gpu[0];
  CHECK(g->vram_limit == 64 * MiB && g->vram_reserve == 16 * MiB && g->vram_physical == t_env_size("FAKE_CUDA_VRAM", 0),
        "budgets %llu %llu %llu", (unsigned long long)g->vram_limit, (unsigned long long)g->vram_reserve,
        (unsigned long long)g->vram_physical);
  CHECK(g->tier_bytes[0] == 8 * MiB && g->tier_bytes[1] == 42 * MiB && g->passthrough_bytes == 40 * MiB, "tier bytes");
  CHECK(g->reported_total == tot && g->reported_free == fr, "reported %llu/%llu vs %zu/%zu",
        (unsigned long long)g->reported_total, (unsigned long long)g->reported_free, tot, fr);
  CHECK(s.pinned_limit == 128 * MiB && s.pinned_used_bytes == 42 * MiB && s.pinned_pool_bytes >= 42 * MiB,
        "pinned %llu %llu %llu", (unsigned long long)s.pinned_limit, (unsigned long long)s.pinned_used_bytes,
        (unsigned long long)s.pinned_pool_bytes);
  CHECK(s.alloc_calls == 3 && s.tiered_allocs == 2 && s.passthrough_allocs == 1, "counters");
  CHECK(s.pages_vram == 4 && s.pages_pinned == 21 && s.largest_alloc == 40 * MiB, "pages %llu %llu",
        (unsigned long long)s.pages_vram, (unsigned long long)s.pages_pinned);
  CHECK(s.top_count == 2 && s.top[0].dptr == c && s.top[0].size == 30 * MiB && s.top[0].pinned_bytes == 30 * MiB &&
            s.top[1].dptr == b && s.top[1].vram_bytes == 8 * MiB && s.top[1].pinned_bytes == 12 * MiB,
        "top allocations");
  CHECK(strstr(s.cmdline, "t_misc stats") != NULL, "cmdline '%s'", s.cmdline);
  CU(cuMemFree_v2(b));
  CHECK(t_read_stats(getpid(), &s) == 0 && s.free_calls == 1 && s.gpu[0].tier_bytes[0] == 0 &&
            s.gpu[0].tier_bytes[1] == 30 * MiB && s.gpu[0].tier_peak[1] == 42 * MiB,
        "after free");
  /* c and a stay allocated: the exit record is checked by the caller (SPILLOVER_KEEP_STATS=1) */
  printf("ok stats pid=%d\n", (int)getpid());
  return 0;
}

static int summary(void) {
  CUdeviceptr a, b;
  CU(cuMemAlloc_v2(&a, 40 * MiB));
  CU(cuMemAlloc_v2(&b, 20 * MiB));
  CHECK(cuMemAlloc_v2(&b, 1024 * MiB) == CUDA_ERROR_OUT_OF_MEMORY, "1G not refused");
  CU(cuMemFree_v2(a));
  printf("ok summary\n");
  return 0;
}

int main(int argc, char **argv) {
  const char *s = argc > 1 ? argv[1] : "";
  t_setup();
  if (!strcmp(s, "badargs")) return badargs();
  if (!strcmp(s, "passthrough")) return passthrough();
  if (!strcmp(s, "stats")) return stats();
  if (!strcmp(s, "notiering")) return notiering();
  if (!strcmp(s, "summary")) return summary();
  fprintf(stderr, "usage: t_misc badargs|passthrough|notiering|stats|summary\n");
  return 2;
}
