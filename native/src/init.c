/*
** init.c: lazy process-level initialisation (first hooked call, via pthread_once; no
** constructors), the global lock, the exit handler and fork safety. Nothing here calls CUDA.
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker_client.h"
#include "sp.h"

sp_state sp_g = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t core_once = PTHREAD_ONCE_INIT;
static int passthrough = 1;

uint64_t sp_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sp_lock(void) { pthread_mutex_lock(&sp_g.lock); }
void sp_unlock(void) { pthread_mutex_unlock(&sp_g.lock); }

static void on_exit_handler(void) {
  sp_lock();
  sp_exit_summary();
  sp_stats_exit();
  sp_unlock();
  if (sp_g.broker) sp_broker_close();
}

static void before_fork(void) { sp_lock(); }
static void after_fork_parent(void) { sp_unlock(); }

/* The child starts clean: the parent's driver state (contexts, handles, VA) is not usable in a
** child, its stats file and broker lease belong to the parent. Only the configuration stays. */
static void after_fork_child(void) {
  pthread_mutex_init(&sp_g.lock, NULL);
  sp_table_forget_all();
  sp_npending = 0;
  sp_stats_after_fork();
  sp_migrate_after_fork();
  sp_stream_after_fork();
  sp_vhandles_after_fork();
  if (sp_g.broker) sp_broker_after_fork();
  sp_g.broker = 0;
  sp_g.broker_tried = 0;
  sp_g.pinned_lease = 0;
  memset(&sp_g.pinned_pool, 0, sizeof(sp_g.pinned_pool));
  memset(sp_g.dev, 0, sizeof(sp_g.dev));
  sp_g.pinned_peak = 0;
  sp_g.alloc_calls = sp_g.free_calls = sp_g.tiered_allocs = sp_g.passthrough_allocs = 0;
  sp_g.oom_returned = sp_g.pages_vram = sp_g.pages_pinned = sp_g.pool_grows = 0;
  sp_g.lease_denials = sp_g.bad_args = sp_g.largest_alloc = 0;
  sp_g.pages_promoted = sp_g.pages_demoted = sp_g.migrate_passes = sp_g.evictions = sp_g.migrate_ns = 0;
  sp_g.launches_scanned = sp_g.launches_unscannable = 0;
  sp_g.tiered_lo = sp_g.tiered_hi = 0;
  sp_g.start_ns = sp_now_ns();
}

static void core_init(void) {
  if (sp_config_parse(&sp_cfg) != 0) {
    sp_cfg.passthrough = 1;
    sp_cfg.log_level = SP_LOG_OFF;
    passthrough = 1;
    return;
  }
  passthrough = sp_cfg.passthrough;
  if (passthrough) return;
  sp_pinned_limit_update();
  uint64_t host_reserve = sp_host_reserve(sp_g.mem_total);
  sp_g.grow_step = 128ull << 20;
  sp_g.next_buffer_id = 1ull << 48;
  sp_g.start_ns = sp_now_ns();
  atexit(on_exit_handler);
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  sp_g.core_ready = 1;
  sp_log(SP_LOG_DEBUG, "pinned limit %llu MiB (MemAvailable %llu MiB, host reserve %llu MiB), threshold %llu",
         (unsigned long long)(sp_g.pinned_limit >> 20), (unsigned long long)(sp_g.mem_available >> 20),
         (unsigned long long)(host_reserve >> 20), (unsigned long long)sp_cfg.threshold);
}

int sp_active(void) {
  pthread_once(&core_once, core_init);
  return !passthrough;
}
