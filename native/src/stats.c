/*
** stats.c: the 4096-byte stats record (include/spillover_protocol.h) in
** $SPILLOVER_STATS_DIR/spillover-<uid>-<pid>.stats, published under a seqlock on every
** allocation and free: readers copy the file and retry while seq is odd or changed. Writers are
** serialised by the global lock. Created when the process first uses a device.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker_client.h"
#include "sp.h"

static sp_stats *map;
static char path[600];
static sp_stats shadow;

static void read_cmdline(char *dst, size_t cap) {
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  dst[0] = '\0';
  if (fd < 0) return;
  ssize_t n = read(fd, dst, cap - 1);
  close(fd);
  if (n <= 0) return;
  for (ssize_t i = 0; i < n; i++)
    if (dst[i] == '\0') dst[i] = ' ';
  while (n > 0 && dst[n - 1] == ' ') n--;
  dst[n] = '\0';
}

void sp_stats_open(void) {
  if (map || !sp_g.core_ready) return;
  snprintf(path, sizeof(path), "%s/spillover-%u-%d.stats", sp_cfg.stats_dir, (unsigned)getuid(), (int)getpid());
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    sp_log(SP_LOG_WARN, "SPILLOVER_STATS_DIR: cannot create %s (%s); no stats record for this process, so spillover status and top do not see it",
           path, strerror(errno));
    path[0] = '\0';
    return;
  }
  if (ftruncate(fd, SP_STATS_SIZE) != 0) {
    close(fd);
    unlink(path);
    path[0] = '\0';
    return;
  }
  void *m = mmap(NULL, SP_STATS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) {
    unlink(path);
    path[0] = '\0';
    return;
  }
  map = m;
  memset(&shadow, 0, sizeof(shadow));
  shadow.magic = SP_STATS_MAGIC;
  shadow.version = SP_STATS_VERSION;
  shadow.size = SP_STATS_SIZE;
  shadow.pid = (int32_t)getpid();
  shadow.start_unix_ns = sp_g.start_ns;
  read_cmdline(shadow.cmdline, sizeof(shadow.cmdline));
}

/* Largest live allocations, largest first (insertion into a 16-slot list). */
static void fill_top(sp_stats *s) {
  uint32_t n = 0;
  for (size_t i = 0; i < sp_table_count(); i++) {
    const sp_rec *r = sp_table_at(i);
    if (r->dying || !r->tiered) continue;
    uint32_t pos = n;
    while (pos > 0 && s->top[pos - 1].size < r->size) pos--;
    if (pos >= SP_STATS_TOP_ALLOCS) continue;
    uint32_t last = n < SP_STATS_TOP_ALLOCS ? n : SP_STATS_TOP_ALLOCS - 1;
    memmove(&s->top[pos + 1], &s->top[pos], (last - pos) * sizeof(s->top[0]));
    sp_stats_alloc *a = &s->top[pos];
    memset(a, 0, sizeof(*a));
    a->dptr = r->va;
    a->size = r->size;
    a->device = (uint32_t)r->dev;
    a->kind = SP_ALLOC_TIERED;
    a->vram_bytes = r->tiered ? (uint64_t)r->nvram * SP_PAGE : r->size;
    a->pinned_bytes = r->tiered ? (uint64_t)(r->npages - r->nvram) * SP_PAGE : 0;
    if (n < SP_STATS_TOP_ALLOCS) n++;
  }
  s->top_count = n;
}

void sp_stats_publish(void) {
  if (!map) return;
  sp_stats *s = &shadow;
  s->update_unix_ns = sp_now_ns();
  int tiering = 0;
  for (int i = 0; i < SP_MAX_DEV; i++) tiering |= sp_g.dev[i].ready && sp_g.dev[i].tiering;
  s->mode = !tiering ? SP_MODE_PASSTHROUGH : sp_g.broker ? SP_MODE_BROKER : SP_MODE_STANDALONE;
  s->pinned_limit = sp_g.pinned_limit;
  if (sp_g.broker) {
    uint64_t cap = sp_broker_lease_cap();
    if (cap < s->pinned_limit) s->pinned_limit = cap;
  }
  s->pinned_lease = sp_g.pinned_lease;
  s->pinned_pool_bytes = sp_g.pinned_pool.total * SP_PAGE;
  s->pinned_used_bytes = (sp_g.pinned_pool.total - sp_g.pinned_pool.nfree) * SP_PAGE;
  s->pinned_peak_bytes = sp_g.pinned_peak;
  s->alloc_calls = sp_g.alloc_calls;
  s->free_calls = sp_g.free_calls;
  s->tiered_allocs = sp_g.tiered_allocs;
  s->passthrough_allocs = sp_g.passthrough_allocs;
  s->oom_returned = sp_g.oom_returned;
  s->pages_vram = sp_g.pages_vram;
  s->pages_pinned = sp_g.pages_pinned;
  s->pool_grows = sp_g.pool_grows;
  s->migrations = sp_g.pages_promoted + sp_g.pages_demoted;
  s->stream = (sp_stats_stream){sp_g.stream_staged_bytes, sp_g.stream_staged_ranges, sp_g.stream_hits,
                               sp_g.stream_late, sp_g.stream_writeback_pages, sp_g.stream_inplace,
                               sp_g.stream_copy_ns, sp_g.stream_budget, sp_g.stream_fallbacks, {0}};
  s->lease_denials = sp_g.lease_denials;
  s->bad_args = sp_g.bad_args;
  s->largest_alloc = sp_g.largest_alloc;
  uint32_t count = 0;
  for (int i = 0; i < SP_MAX_DEV; i++) {
    const sp_dev *d = &sp_g.dev[i];
    sp_stats_gpu *g = &s->gpu[i];
    if (!d->ready) continue;
    count = (uint32_t)i + 1;
    g->vram_physical = d->physical;
    g->vram_limit = d->limit;
    g->vram_reserve = d->reserve;
    for (int t = 0; t < 2; t++) {
      g->tier_bytes[t] = d->tier_bytes[t];
      g->tier_peak[t] = d->tier_peak[t];
    }
    g->passthrough_bytes = d->passthrough_bytes;
    g->passthrough_peak = d->passthrough_peak;
    g->program_vmm_bytes = d->vmm_dev_bytes + d->vvmm_bytes[0];
    g->program_vmm_host_bytes = d->vvmm_bytes[1];
    g->reported_total = sp_dev_reported_total(d);
    g->reported_free = d->reported_free;
  }
  s->gpu_count = count;
  fill_top(s);

  /* seqlock write: odd, body, even */
  uint64_t seq = __atomic_load_n(&map->seq, __ATOMIC_RELAXED);
  __atomic_store_n(&map->seq, seq + 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  s->seq = seq + 1;
  const size_t seq_off = offsetof(sp_stats, seq), after = seq_off + sizeof(uint64_t);
  memcpy(map, s, seq_off);
  memcpy((char *)map + after, (const char *)s + after, SP_STATS_SIZE - after);
  __atomic_store_n(&map->seq, seq + 2, __ATOMIC_RELEASE);
}

void sp_stats_exit(void) {
  if (!map) return;
  shadow.exited = 1;
  sp_stats_publish();
  if (!sp_cfg.keep_stats && path[0]) unlink(path);
}

/* Child of fork: the mapping is the parent's file; drop it and start our own on first use. */
void sp_stats_after_fork(void) {
  if (map) munmap(map, SP_STATS_SIZE);
  map = NULL;
  path[0] = '\0';
}
