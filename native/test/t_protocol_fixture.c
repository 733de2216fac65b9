/*
** t_protocol_fixture.c: writes and checks the shared protocol fixtures in test/fixtures/protocol/
** from the C definitions in spillover_protocol.h, so the C and TypeScript sides are held to the
** same bytes (test/protocol/fixtures.test.ts drives it).
**
**   t_protocol_fixture write DIR   writes DIR/frames.bin (10 frames) and DIR/stats.bin
**   t_protocol_fixture check DIR   exits 0 iff both files equal what `write` would produce
**   t_protocol_fixture offsets     prints the struct layout as JSON (checked against src/protocol/)
**
** Build: gcc -std=c11 -Wall -Werror -Inative/include native/test/t_protocol_fixture.c
*/
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover_protocol.h"

#define GiB (1024ull * 1024 * 1024)
#define MiB (1024ull * 1024)

static sp_frame mk(uint16_t type, uint64_t seq, uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  sp_frame f;
  memset(&f, 0, sizeof f);
  f.magic = SP_PROTO_MAGIC;
  f.version = SP_PROTO_VERSION;
  f.type = type;
  f.seq = seq;
  f.a = a;
  f.b = b;
  f.c = c;
  f.d = d;
  return f;
}

static void frames(sp_frame out[10]) {
  out[0] = mk(SP_MSG_HELLO, 1, 4242, 2, 1 * GiB, 0);
  out[1] = mk(SP_MSG_WELCOME, 1, 1 * GiB, 256 * MiB, 777, 0);
  out[2] = mk(SP_MSG_VRAM_REQUEST, 2, 1, 8 * GiB, 80 * GiB, 0);
  out[3] = mk(SP_MSG_VRAM_GRANT, 2, 1, 6 * GiB, 0, 0);
  out[4] = mk(SP_MSG_PINNED_GROW, 3, 512 * MiB, 0, 0, 0);
  out[5] = mk(SP_MSG_PINNED_GRANT, 3, 0, 1 * GiB, SP_DENY_PRESSURE, 0);
  out[6] = mk(SP_MSG_PINNED_RETURN, 4, 256 * MiB, 0, 0, 0);
  out[7] = mk(SP_MSG_LEASE_UPDATE, 0, UINT64_MAX, SP_PRESSURE_CRITICAL, 0, 0);
  out[8] = mk(SP_MSG_BYE, 5, 0, 0, 0, 0);
  out[9] = mk(SP_MSG_ERROR, 0, SP_ERR_OUT_OF_ORDER, 0, 0, 0);
}

static void stats(sp_stats *s) {
  memset(s, 0, sizeof *s);
  s->magic = SP_STATS_MAGIC;
  s->version = SP_STATS_VERSION;
  s->size = SP_STATS_SIZE;
  s->seq = 42;
  s->pid = 4242;
  s->gpu_count = 2;
  s->start_unix_ns = 1790000000000000000ull;
  s->update_unix_ns = 1790000001500000000ull;
  s->mode = SP_MODE_BROKER;
  s->exited = 0;
  s->pinned_limit = 16 * GiB;
  s->pinned_lease = 8 * GiB;
  s->pinned_pool_bytes = 6 * GiB;
  s->pinned_used_bytes = 5 * GiB;
  s->pinned_peak_bytes = 7 * GiB;
  s->alloc_calls = 1000;
  s->free_calls = 900;
  s->tiered_allocs = 50;
  s->passthrough_allocs = 950;
  s->oom_returned = 3;
  s->pages_vram = 4096;
  s->pages_pinned = 2560;
  s->migrations = 12;
  s->pool_grows = 6;
  s->lease_denials = 1;
  s->bad_args = 2;
  s->largest_alloc = 4 * GiB;
  strcpy(s->cmdline, "python3 train.py --epochs 3");
  for (uint32_t g = 0; g < 2; g++) {
    sp_stats_gpu *p = &s->gpu[g];
    p->vram_physical = 80 * GiB;
    p->vram_limit = (g == 0 ? 70 : 40) * GiB;
    p->vram_reserve = 1 * GiB;
    p->tier_bytes[SP_TIER_VRAM] = (g == 0 ? 60 : 30) * GiB;
    p->tier_bytes[SP_TIER_PINNED] = (g == 0 ? 5 : 0) * GiB;
    p->tier_bytes[SP_TIER_SWAP] = 0;
    p->tier_peak[SP_TIER_VRAM] = (g == 0 ? 65 : 31) * GiB;
    p->tier_peak[SP_TIER_PINNED] = (g == 0 ? 7 : 0) * GiB;
    p->tier_peak[SP_TIER_SWAP] = 0;
    p->passthrough_bytes = 100 * MiB + g;
    p->passthrough_peak = 200 * MiB + g;
    p->program_vmm_bytes = 2 * GiB;
    p->program_vmm_host_bytes = 512 * MiB;
    p->reported_total = (g == 0 ? 70 : 40) * GiB;
    p->reported_free = 3 * GiB;
  }
  s->top_count = 2;
  s->top[0] = (sp_stats_alloc){ 0x7f1234500000ull, 4 * GiB, 3 * GiB, 1 * GiB, 0, SP_ALLOC_TIERED, 0 };
  s->top[1] = (sp_stats_alloc){ 0x7f2000000000ull, 2 * GiB, 2 * GiB, 0, 1, SP_ALLOC_PROGRAM_VMM, 0 };
  /* every field distinct, so a decoder that reads one at another's offset is caught */
  s->stream.staged_bytes = 48 * GiB;
  s->stream.staged_ranges = 640;
  s->stream.stage_hits = 12800;
  s->stream.late_stages = 7;
  s->stream.writeback_pages = 96;
  s->stream.inplace_launches = 320;
  s->stream.copy_busy_ns = 2750000000ull;
  s->stream.budget_bytes = 10 * GiB;
  s->stream.fallbacks = 2;
}

static int write_file(const char *dir, const char *name, const void *p, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "t_protocol_fixture: cannot write %s\n", path);
    return 1;
  }
  return 0;
}

static int check_file(const char *dir, const char *name, const void *p, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "t_protocol_fixture: cannot read %s\n", path);
    return 1;
  }
  unsigned char *buf = malloc(n + 1);
  size_t got = fread(buf, 1, n + 1, f);
  fclose(f);
  int bad = got != n || memcmp(buf, p, n) != 0;
  if (bad) {
    size_t i = 0;
    while (i < got && i < n && buf[i] == ((const unsigned char *)p)[i]) i++;
    fprintf(stderr, "t_protocol_fixture: %s differs (size %zu, expected %zu; first difference at byte %zu)\n",
            path, got, n, i);
  }
  free(buf);
  return bad;
}

#define F(s, m) printf("  \"%s.%s\": %zu,\n", #s, #m, offsetof(s, m))

static void offsets(void) {
  printf("{\n");
  F(sp_frame, magic); F(sp_frame, version); F(sp_frame, type); F(sp_frame, seq);
  F(sp_frame, a); F(sp_frame, b); F(sp_frame, c); F(sp_frame, d); F(sp_frame, reserved);
  F(sp_stats, magic); F(sp_stats, version); F(sp_stats, size); F(sp_stats, seq); F(sp_stats, pid);
  F(sp_stats, gpu_count); F(sp_stats, start_unix_ns); F(sp_stats, update_unix_ns); F(sp_stats, mode);
  F(sp_stats, exited); F(sp_stats, pinned_limit); F(sp_stats, pinned_lease); F(sp_stats, pinned_pool_bytes);
  F(sp_stats, pinned_used_bytes); F(sp_stats, pinned_peak_bytes); F(sp_stats, alloc_calls);
  F(sp_stats, oom_returned); F(sp_stats, largest_alloc); F(sp_stats, cmdline); F(sp_stats, gpu);
  F(sp_stats, top_count); F(sp_stats, top); F(sp_stats, stream); F(sp_stats, padding);
  F(sp_stats_gpu, vram_physical); F(sp_stats_gpu, tier_bytes); F(sp_stats_gpu, tier_peak);
  F(sp_stats_gpu, passthrough_bytes); F(sp_stats_gpu, program_vmm_bytes); F(sp_stats_gpu, reported_total);
  F(sp_stats_gpu, reported_free);
  F(sp_stats_alloc, dptr); F(sp_stats_alloc, size); F(sp_stats_alloc, device); F(sp_stats_alloc, kind);
  F(sp_stats_stream, staged_bytes); F(sp_stats_stream, staged_ranges); F(sp_stats_stream, stage_hits);
  F(sp_stats_stream, late_stages); F(sp_stats_stream, writeback_pages); F(sp_stats_stream, inplace_launches);
  F(sp_stats_stream, copy_busy_ns); F(sp_stats_stream, budget_bytes); F(sp_stats_stream, fallbacks);
  F(sp_stats_stream, reserved);
  printf("  \"sizeof.sp_stats_gpu\": %zu,\n  \"sizeof.sp_stats_alloc\": %zu,\n  \"sizeof.sp_stats_stream\": %zu,\n"
         "  \"sizeof.sp_stats\": %zu\n}\n",
         sizeof(sp_stats_gpu), sizeof(sp_stats_alloc), sizeof(sp_stats_stream), sizeof(sp_stats));
}

int main(int argc, char **argv) {
  sp_frame fr[10];
  static sp_stats st;
  frames(fr);
  stats(&st);
  if (argc == 2 && strcmp(argv[1], "offsets") == 0) {
    offsets();
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "write") == 0) {
    return write_file(argv[2], "frames.bin", fr, sizeof fr) | write_file(argv[2], "stats.bin", &st, sizeof st);
  }
  if (argc == 3 && strcmp(argv[1], "check") == 0) {
    return check_file(argv[2], "frames.bin", fr, sizeof fr) | check_file(argv[2], "stats.bin", &st, sizeof st);
  }
  fprintf(stderr, "usage: t_protocol_fixture write DIR | check DIR | offsets\n");
  return 2;
}
