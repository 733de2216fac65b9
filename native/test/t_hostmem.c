/*
** t_hostmem.c: the pinned limit follows the host (src/hostmem.c). Run against the fake driver
** with SPILLOVER_TEST_HOST_ROOT=<empty dir>, SPILLOVER_VRAM_LIMIT=64M SPILLOVER_VRAM_RESERVE=16M
** SPILLOVER_HOST_RESERVE=16M and no SPILLOVER_PINNED_LIMIT; the program writes the simulated
** proc/meminfo and cgroup files itself, before the interposer first reads them:
**  grow     MemAvailable 80M: a 64M pinned limit, the next allocation is refused; MemAvailable
**           grows (the VM got memory): the pool grows past its first limit, totals agree
**  cgroup   MemAvailable 1G but 96M of room under memory.max: the cgroup wins; the limit is
**           raised: the pool grows
**  explicit (with SPILLOVER_PINNED_LIMIT=64M) the host grows, the explicit limit holds
*/
#include <errno.h>
#include <sys/stat.h>

#include "t_common.h"

static const char *root;

static void put(const char *rel, const char *fmt, unsigned long long a, unsigned long long b) {
  char path[700], tmp[710];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  CHECK(f != NULL, "cannot write %s", tmp);
  fprintf(f, fmt, a, b);
  fclose(f);
  CHECK(rename(tmp, path) == 0, "rename %s", path);
}

static void dirs(void) {
  const char *rel[] = {"proc", "proc/self", "sys", "sys/fs", "sys/fs/cgroup", "sys/fs/cgroup/job"};
  char path[700];
  for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
    snprintf(path, sizeof path, "%s/%s", root, rel[i]);
    CHECK(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s", path);
  }
  put("proc/self/cgroup", "0::/job\n%.0llu%.0llu", 0, 0);
}

static void meminfo(unsigned long long total, unsigned long long avail) {
  put("proc/meminfo", "MemTotal: %llu kB\nMemAvailable: %llu kB\n", total >> 10, avail >> 10);
}

static void cgroup(unsigned long long max, unsigned long long current) {
  if (max) put("sys/fs/cgroup/job/memory.max", "%llu\n%.0llu", max, 0);
  else put("sys/fs/cgroup/job/memory.max", "max\n%.0llu%.0llu", 0, 0);
  put("sys/fs/cgroup/job/memory.current", "%llu\n%.0llu", current, 0);
}

static void expect_total(size_t want) {
  size_t fr, tot;
  CU(cuMemGetInfo_v2(&fr, &tot));
  CHECK(tot == want, "cuMemGetInfo total %zu MiB, want %zu MiB", tot >> 20, want >> 20);
}

static int grow(void) {
  meminfo(1024 * MiB, 80 * MiB);
  cgroup(0, 0);
  t_setup();
  expect_total((64 + 64) * MiB); /* VRAM limit + 80M available - 16M reserve */
  CUdeviceptr a, b, c;
  CU(cuMemAlloc_v2(&a, 48 * MiB)); /* VRAM */
  CU(cuMemAlloc_v2(&b, 64 * MiB)); /* the whole pinned limit */
  meminfo(1024 * MiB, 16 * MiB);   /* what the kernel shows once we pinned 64M */
  CHECK(cuMemAlloc_v2(&c, 32 * MiB) == CUDA_ERROR_OUT_OF_MEMORY, "past the limit must be refused");
  expect_total((64 + 64) * MiB);
  /* The VM grew: 2G now, 112M still available beside our 64M. */
  meminfo(2048 * MiB, 112 * MiB);
  CU(cuMemAlloc_v2(&c, 32 * MiB));
  expect_total((64 + 64 + 96) * MiB); /* pinned 64M + (112M - 16M) */
  sp_stats s;
  CHECK(t_read_stats(getpid(), &s) == 0, "stats");
  CHECK(s.pinned_limit == 160 * MiB, "stats pinned_limit %llu MiB", (unsigned long long)(s.pinned_limit >> 20));
  CHECK(s.gpu[0].tier_bytes[1] == 96 * MiB, "pinned tier %llu MiB", (unsigned long long)(s.gpu[0].tier_bytes[1] >> 20));
  printf("ok grow\n");
  return 0;
}

static int cgroup_limit(void) {
  meminfo(8192 * MiB, 1024 * MiB);
  cgroup(128 * MiB, 32 * MiB); /* 96M of room under the limit: it wins over MemAvailable */
  t_setup();
  expect_total((64 + 80) * MiB);
  CUdeviceptr a, b, c;
  CU(cuMemAlloc_v2(&a, 48 * MiB));
  CU(cuMemAlloc_v2(&b, 64 * MiB));
  cgroup(128 * MiB, 112 * MiB); /* our pool counts in memory.current: 80M, grown a step ahead */
  CHECK(cuMemAlloc_v2(&c, 32 * MiB) == CUDA_ERROR_OUT_OF_MEMORY, "past the cgroup's room must be refused");
  cgroup(256 * MiB, 112 * MiB); /* the limit raised */
  CU(cuMemAlloc_v2(&c, 32 * MiB));
  expect_total((64 + 64 + 144) * MiB);
  printf("ok cgroup\n");
  return 0;
}

static int explicit_limit(void) {
  meminfo(1024 * MiB, 512 * MiB);
  cgroup(0, 0);
  t_setup();
  expect_total((64 + 64) * MiB);
  CUdeviceptr a, b, c;
  CU(cuMemAlloc_v2(&a, 48 * MiB));
  CU(cuMemAlloc_v2(&b, 64 * MiB));
  meminfo(4096 * MiB, 2048 * MiB);
  CHECK(cuMemAlloc_v2(&c, 32 * MiB) == CUDA_ERROR_OUT_OF_MEMORY, "past SPILLOVER_PINNED_LIMIT must be refused");
  expect_total((64 + 64) * MiB);
  printf("ok explicit\n");
  return 0;
}

int main(int argc, char **argv) {
  const char *s = argc > 1 ? argv[1] : "";
  root = getenv("SPILLOVER_TEST_HOST_ROOT");
  CHECK(root && *root, "SPILLOVER_TEST_HOST_ROOT must name an empty directory");
  dirs();
  if (!strcmp(s, "grow")) return grow();
  if (!strcmp(s, "cgroup")) return cgroup_limit();
  if (!strcmp(s, "explicit")) return explicit_limit();
  fprintf(stderr, "usage: t_hostmem grow|cgroup|explicit\n");
  return 2;
}
