/*
** log.c: stderr logging gated by SPILLOVER_LOG, and the one-line per-process summary printed at
** exit at level info. One write(2) per line so lines from several processes do not interleave.
*/
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "sp.h"

void sp_log(int level, const char *fmt, ...) {
  if (level > sp_cfg.log_level || level == SP_LOG_OFF) return;
  char buf[512];
  int n = snprintf(buf, sizeof(buf), "spillover[%d]: ", (int)getpid());
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) return;
  size_t len = (size_t)n + ((size_t)m < sizeof(buf) - (size_t)n - 1 ? (size_t)m : sizeof(buf) - (size_t)n - 2);
  buf[len++] = '\n';
  ssize_t w = write(2, buf, len);
  (void)w;
}

static unsigned long long mib(uint64_t b) { return (unsigned long long)((b + (1ull << 19)) >> 20); }

/* Lock held. Totals over devices; one line. */
void sp_exit_summary(void) {
  if (sp_cfg.log_level < SP_LOG_INFO || !sp_g.core_ready) return;
  uint64_t vram = 0, vram_peak = 0, pin = 0, pin_peak = 0, pt = 0, pt_peak = 0, vmm = 0, vmm_host = 0;
  for (int i = 0; i < SP_MAX_DEV; i++) {
    const sp_dev *d = &sp_g.dev[i];
    if (!d->ready) continue;
    vram += d->tier_bytes[0];
    vram_peak += d->tier_peak[0];
    pin += d->tier_bytes[1];
    pin_peak += d->tier_peak[1];
    pt += d->passthrough_bytes;
    pt_peak += d->passthrough_peak;
    vmm += d->vmm_dev_bytes + d->vvmm_bytes[0];
    vmm_host += d->vvmm_bytes[1];
  }
  sp_log(SP_LOG_INFO,
         "summary: vram %llu MiB (peak %llu), pinned %llu MiB (peak %llu), passthrough %llu MiB (peak %llu), "
         "program vmm %llu MiB + %llu MiB host, pinned pool %llu MiB (peak %llu); allocs %llu (tiered %llu, "
         "passthrough %llu), frees %llu, pages vram %llu pinned %llu, ooms %llu, bad args %llu; migration: %llu pages "
         "to vram, %llu to host in %llu passes and %llu evictions (%.1f ms), launches scanned %llu (unscannable %llu)",
         mib(vram), mib(vram_peak), mib(pin), mib(pin_peak), mib(pt), mib(pt_peak), mib(vmm), mib(vmm_host),
         mib(sp_g.pinned_pool.total * SP_PAGE), mib(sp_g.pinned_peak), (unsigned long long)sp_g.alloc_calls,
         (unsigned long long)sp_g.tiered_allocs, (unsigned long long)sp_g.passthrough_allocs,
         (unsigned long long)sp_g.free_calls, (unsigned long long)sp_g.pages_vram,
         (unsigned long long)sp_g.pages_pinned, (unsigned long long)sp_g.oom_returned,
         (unsigned long long)sp_g.bad_args, (unsigned long long)sp_g.pages_promoted,
         (unsigned long long)sp_g.pages_demoted, (unsigned long long)sp_g.migrate_passes,
         (unsigned long long)sp_g.evictions, (double)sp_g.migrate_ns / 1e6,
         (unsigned long long)sp_g.launches_scanned, (unsigned long long)sp_g.launches_unscannable);
}
