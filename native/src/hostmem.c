/*
** hostmem.c: how much host memory this process may pin. The room is MemAvailable, or the room
** under our cgroup's memory limit where that is lower (cgroup v2 memory.max - memory.current, v1
** memory.limit_in_bytes - memory.usage_in_bytes, on every level up to the root); the pinned limit
** is what is pinned already plus that room, less the host reserve, and never above an explicit
** SPILLOVER_PINNED_LIMIT. Read at start and again whenever the pinned pool would grow past the
** limit, so the limit follows a machine whose memory grows as it is used (or is taken back).
** SPILLOVER_TEST_HOST_ROOT (tests only) puts proc/ and sys/fs/cgroup/ under a simulated tree.
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp.h"

static int read_u64(const char *path, uint64_t *out) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  unsigned long long v;
  int ok = fscanf(f, "%llu", &v) == 1;
  fclose(f);
  if (!ok || v >= (1ull << 62)) return -1; /* "max", or v1's page-rounded 2^63: no limit */
  *out = v;
  return 0;
}

/* The tightest cgroup limit on our path and the least room under any limit on the way. */
static void cgroup_room(const char *root, uint64_t *limit, uint64_t *room) {
  char line[512], path[512] = "", file[1200];
  const char *base = "sys/fs/cgroup", *max_name = "memory.max", *cur_name = "memory.current";
  snprintf(file, sizeof file, "%s/proc/self/cgroup", root);
  FILE *f = fopen(file, "r");
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    /* "hierarchy-id:controllers:path" */
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c1 = *c2 = '\0';
    const char *controllers = c1 + 1;
    if (!strcmp(line, "0") && !controllers[0]) {
      snprintf(path, sizeof path, "%s", c2 + 1); /* v2, unless v1 has the memory controller */
    } else if (strstr(controllers, "memory")) {
      snprintf(path, sizeof path, "%s", c2 + 1);
      base = "sys/fs/cgroup/memory";
      max_name = "memory.limit_in_bytes";
      cur_name = "memory.usage_in_bytes";
      break;
    }
  }
  fclose(f);
  if (path[0] != '/') return;
  size_t len = strlen(path);
  while (len > 0 && path[len - 1] == '/') path[--len] = '\0';
  for (;;) {
    uint64_t max, cur = 0;
    snprintf(file, sizeof file, "%s/%s%s/%s", root, base, path, max_name);
    if (read_u64(file, &max) == 0) {
      snprintf(file, sizeof file, "%s/%s%s/%s", root, base, path, cur_name);
      if (read_u64(file, &cur) != 0) cur = 0;
      uint64_t r = max > cur ? max - cur : 0;
      if (max < *limit) *limit = max;
      if (r < *room) *room = r;
    }
    if (len == 0) break;
    char *slash = strrchr(path, '/');
    *slash = '\0';
    len = strlen(path);
  }
}

void sp_host_mem(uint64_t *total, uint64_t *avail) {
  const char *root = sp_cfg.test_host_root;
  char file[600], line[256];
  *total = *avail = 0;
  snprintf(file, sizeof file, "%s/proc/meminfo", root);
  FILE *f = fopen(file, "r");
  if (f) {
    while (fgets(line, sizeof line, f)) {
      unsigned long long kb;
      if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) *total = kb * 1024ull;
      else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) *avail = kb * 1024ull;
    }
    fclose(f);
  }
  uint64_t limit = UINT64_MAX, room = UINT64_MAX;
  cgroup_room(root, &limit, &room);
  if (limit < *total) *total = limit;
  if (room < *avail) *avail = room;
}

uint64_t sp_host_reserve(uint64_t total) {
  uint64_t tenth = total / 10;
  return sp_size_resolve(&sp_cfg.host_reserve, total, tenth > (4ull << 30) ? tenth : (4ull << 30));
}

/* Lock held (or at init). Re-reads the host and sets sp_g.pinned_limit; returns it. */
uint64_t sp_pinned_limit_update(void) {
  uint64_t committed = sp_pinned_committed();
  sp_host_mem(&sp_g.mem_total, &sp_g.mem_available);
  uint64_t reserve = sp_host_reserve(sp_g.mem_total);
  uint64_t ceiling = committed + (sp_g.mem_available > reserve ? sp_g.mem_available - reserve : 0);
  uint64_t lim = sp_size_resolve(&sp_cfg.pinned_limit, sp_g.mem_total, ceiling);
  uint64_t old = sp_g.pinned_limit;
  sp_g.pinned_limit = (lim > ceiling ? ceiling : lim) / SP_PAGE * SP_PAGE;
  if (sp_g.core_ready && sp_g.pinned_limit != old)
    sp_log(SP_LOG_INFO, "pinned limit %llu -> %llu MiB (room %llu MiB of %llu MiB, host reserve %llu MiB)",
           (unsigned long long)(old >> 20), (unsigned long long)(sp_g.pinned_limit >> 20),
           (unsigned long long)(sp_g.mem_available >> 20), (unsigned long long)(sp_g.mem_total >> 20),
           (unsigned long long)(reserve >> 20));
  return sp_g.pinned_limit;
}

int sp_pinned_limit_allows(uint64_t bytes) {
  if (bytes <= sp_g.pinned_limit) return 1;
  /* An explicit limit already reached needs no look at the host. */
  if (sp_cfg.pinned_limit.kind == 1 && sp_g.pinned_limit >= sp_cfg.pinned_limit.bytes / SP_PAGE * SP_PAGE) return 0;
  return bytes <= sp_pinned_limit_update();
}
