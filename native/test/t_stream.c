/*
** t_stream.c: the streaming engine (native/src/stream.c) on the fake driver, whose kernels run on
** the CPU and fault on unmapped pages. Run with the interposer test budget (SPILLOVER_VRAM_LIMIT=64M
** SPILLOVER_VRAM_RESERVE=16M), SPILLOVER_MIGRATE=0 (pages stay where they are put) and
** SPILLOVER_STREAM_RATIO=0 (every function stages after its timed in-place launches: the fake's
** CPU kernels are no measure of a GPU's):
**  exact     a host-resident range read by repeated launches is staged, read from the staged copy,
**            and every word the kernels see is the range's own
**  written   a kernel writes a staged range; a copy out of it sees the new words (written back)
**  ring      six ranges in a repeating fill/verify sequence cycle through a smaller arena: later
**            rounds are staged ahead (no late stagings), written pages come back on reuse, every
**            word of every range is right at the end
**  streams   two streams read the same staged range alternately
**  fallback  the staging copy fails: launches read in place, counted as fallbacks, words right
**  off       SPILLOVER_STREAM=0: nothing staged, the same words
**  free      a staged range freed and a new one made: nothing of the old one is written back
**  graph     a graph replay names a range a staging launch wrote: it reads the written words (the
**            capture began with every staged range settled)
**  fivestreams  five streams read and write one staged range: each sees the last words written
**  phases    a repeating staging round, then graph replays that read the ranges in place (a decode
**            phase), then staging rounds again: still staged ahead (the replays' one stream is the
**            only writer the copies wait for)
**  turns     six ranges read forward then backward every round (a training step's layers): after
**            two rounds every staging is made ahead, at the turns too (the successor of a range
**            depends on the range read before it)
**  readonce  a function that does not stage (its first launch: not decided yet) names a staged
**            range a staging launch wrote: the range is written back first and it reads those words
**  otherctx  a second context of the device launches a kernel naming a range a staging launch
**            wrote (its mapping is the device's, seen from every context): it reads the written
**            words (the slot is written back first, in the engine's own context)
**  idle      no staging for a second: the arena goes back (budget 0, its VRAM free), the range
**            keeps its words; launches later make it again and stage
*/
#include "t_kernels.h"

CUresult cuStreamBeginCapture_v2(CUstream, int);
CUresult cuStreamEndCapture(CUstream, CUgraph *);
CUresult cuGraphInstantiateWithFlags(CUgraphExec *, CUgraph, unsigned long long);
CUresult cuGraphLaunch(CUgraphExec, CUstream);
CUresult cuCtxCreate_v2(CUcontext *, unsigned int, CUdevice);
CUresult cuCtxDestroy_v2(CUcontext);

static t_location_fn loc;

/* VRAM full of the driver's small allocations while the ranges are made: they land in host memory. */
static CUdeviceptr smalls[31];
static void in_host(CUdeviceptr *p, int n, size_t bytes) {
  for (int i = 0; i < 31; i++) CU(cuMemAlloc_v2(&smalls[i], 2 * MiB));
  for (int i = 0; i < n; i++) {
    CU(cuMemAlloc_v2(&p[i], bytes));
    CHECK(t_pages_in(loc, p[i], bytes, 2) == (int)(bytes / PAGE), "setup: range %d not in host memory", i);
  }
  for (int i = 0; i < 31; i++) CU(cuMemFree_v2(smalls[i]));
}

static unsigned long long word_at(CUdeviceptr p, size_t off) {
  unsigned long long w = 0;
  CU(cuMemcpyDtoH_v2(&w, p + off, sizeof(w)));
  return w;
}

static int exact(int expect_staging) {
  kernels();
  CUdeviceptr w;
  in_host(&w, 1, 8 * MiB);
  fill(w, 8 * MiB, 7);
  for (int i = 0; i < 10; i++) verify_launch(w, 8 * MiB, 7, i & 1);
  CHECK(bad_words() == 0, "%llu words wrong", bad_words());
  CHECK(word_at(w, 3 * MiB) == spill_pattern(7, 3 * MiB / 8), "a copy out reads another word"); /* settles */
  sp_stats s = t_stats();
  if (expect_staging) {
    CHECK(s.stream.staged_ranges >= 1 && s.stream.staged_bytes >= 8 * MiB, "staged %llu ranges, %llu bytes",
          (unsigned long long)s.stream.staged_ranges, (unsigned long long)s.stream.staged_bytes);
    CHECK(s.stream.stage_hits >= 7, "only %llu launches read the staged copy", (unsigned long long)s.stream.stage_hits);
    CHECK(s.stream.budget_bytes == 16 * MiB, "budget %llu", (unsigned long long)s.stream.budget_bytes);
    CHECK(s.stream.copy_busy_ns > 0, "no copy time counted for %llu stagings", (unsigned long long)s.stream.staged_ranges);
    CHECK(s.stream.writeback_pages == 0, "%llu unwritten pages written back (the staging and write-back hashes differ)",
          (unsigned long long)s.stream.writeback_pages);
  } else {
    CHECK(s.stream.staged_ranges == 0 && s.stream.stage_hits == 0 && s.stream.budget_bytes == 0,
          "SPILLOVER_STREAM=0 staged %llu ranges", (unsigned long long)s.stream.staged_ranges);
  }
  CHECK(t_pages_in(loc, w, 8 * MiB, 2) == 4, "the range's own pages moved");
  CU(cuMemFree_v2(w));
  printf("ok %s\n", expect_staging ? "exact" : "off");
  return 0;
}

static int written(void) {
  kernels();
  CUdeviceptr w;
  in_host(&w, 1, 8 * MiB);
  for (int i = 0; i < 3; i++) fill(w, 8 * MiB, 1); /* fill's timed in-place launches */
  for (int i = 0; i < 5; i++) verify_launch(w, 8 * MiB, 1, 0);
  CHECK(word_at(w, 0) == spill_pattern(1, 0) && t_stats().stream.stage_hits >= 1, "not staged");
  fill(w, 8 * MiB, 2); /* writes the staged copy */
  verify_launch(w, 8 * MiB, 2, 0);
  CHECK(bad_words() == 0, "the staged copy: %llu words wrong", bad_words());
  CHECK(word_at(w, 5 * MiB + 8) == spill_pattern(2, 5 * MiB / 8 + 1), "the written words did not come back");
  sp_stats s = t_stats();
  CHECK(s.stream.writeback_pages == 4, "write-back pages %llu, want 4", (unsigned long long)s.stream.writeback_pages);
  verify_launch(w, 8 * MiB, 2, 1); /* staged again, from the written-back pages */
  CHECK(bad_words() == 0, "after write-back: %llu words wrong", bad_words());
  CU(cuMemFree_v2(w));
  printf("ok written\n");
  return 0;
}

static int ring(void) {
  kernels();
  enum { N = 6 };
  CUdeviceptr r[N];
  in_host(r, N, 4 * MiB); /* 24 MiB through a 16 MiB arena */
  unsigned long long late_after_3 = 0, staged_after_3 = 0;
  for (int round = 0; round < 8; round++) {
    for (int i = 0; i < N; i++) {
      fill(r[i], 4 * MiB, 100 * round + i);
      verify_launch(r[i], 4 * MiB, 100 * round + i, 0);
    }
    if (round == 3) {
      word_at(r[0], 0); /* settles one range: the stats record is written */
      sp_stats s = t_stats();
      late_after_3 = s.stream.late_stages;
      staged_after_3 = s.stream.staged_ranges;
    }
  }
  CHECK(bad_words() == 0, "%llu words wrong", bad_words());
  word_at(r[0], 0);
  sp_stats s = t_stats();
  CHECK(s.stream.staged_ranges > staged_after_3 + 8, "rounds 4-7 staged %llu ranges",
        (unsigned long long)(s.stream.staged_ranges - staged_after_3));
  /* one late staging: the copy that read the stats after round 3 settled r[0], so round 4 restaged it */
  CHECK(s.stream.late_stages <= late_after_3 + 1, "rounds 4-7: %llu late stagings, want 1 (staged ahead)",
        (unsigned long long)(s.stream.late_stages - late_after_3));
  for (int i = 0; i < N; i++) {
    verify_launch(r[i], 4 * MiB, 700 + i, 0);
    CHECK(word_at(r[i], 3 * MiB + 16) == spill_pattern(700 + i, 3 * MiB / 8 + 2), "range %d: last fill not in place", i);
  }
  CHECK(bad_words() == 0, "%llu words wrong at the end", bad_words());
  for (int i = 0; i < N; i++) CU(cuMemFree_v2(r[i]));
  printf("ok ring\n");
  return 0;
}

static int streams(void) {
  kernels();
  CUdeviceptr w;
  CUstream a, b;
  CU(cuStreamCreate(&a, 0));
  CU(cuStreamCreate(&b, 0));
  in_host(&w, 1, 8 * MiB);
  fill(w, 8 * MiB, 5);
  for (int i = 0; i < 12; i++) {
    unsigned long long n = 8 * MiB / 8, seed = 5, off = 0;
    void *args[] = {&w, &n, &seed, &off, &bad_counter};
    CU(cuLaunchKernel(k_verify, 1, 1, 1, 1, 1, 1, 0, i & 1 ? b : a, args, NULL));
  }
  CU(cuStreamSynchronize(a));
  CU(cuStreamSynchronize(b));
  CHECK(bad_words() == 0, "%llu words wrong", bad_words());
  CHECK(word_at(w, 0) == spill_pattern(5, 0), "a copy out reads another word");
  CHECK(t_stats().stream.stage_hits >= 8, "hits %llu", (unsigned long long)t_stats().stream.stage_hits);
  CU(cuMemFree_v2(w));
  printf("ok streams\n");
  return 0;
}

static int fallback(void) {
  kernels();
  CUdeviceptr w;
  in_host(&w, 1, 8 * MiB);
  fill(w, 8 * MiB, 9);
  for (int i = 0; i < 8; i++) verify_launch(w, 8 * MiB, 9, 0);
  CHECK(bad_words() == 0, "%llu words wrong", bad_words());
  sp_stats s = t_stats();
  CHECK(s.stream.fallbacks >= 1 && s.stream.stage_hits == 0, "fallbacks %llu hits %llu",
        (unsigned long long)s.stream.fallbacks, (unsigned long long)s.stream.stage_hits);
  CU(cuMemFree_v2(w));
  printf("ok fallback\n");
  return 0;
}

static int freed(void) {
  kernels();
  CUdeviceptr w, v;
  in_host(&w, 1, 8 * MiB);
  for (int i = 0; i < 3; i++) fill(w, 8 * MiB, 3);
  for (int i = 0; i < 5; i++) verify_launch(w, 8 * MiB, 3, 0);
  fill(w, 8 * MiB, 4); /* the staged copy is written, then the range is freed */
  CU(cuMemFree_v2(w));
  in_host(&v, 1, 8 * MiB);
  fill(v, 8 * MiB, 6);
  for (int i = 0; i < 5; i++) verify_launch(v, 8 * MiB, 6, 0);
  CHECK(bad_words() == 0, "%llu words wrong", bad_words());
  CHECK(word_at(v, MiB) == spill_pattern(6, MiB / 8), "the new range reads old words");
  CU(cuMemFree_v2(v));
  printf("ok free\n");
  return 0;
}

static int idle(void) {
  kernels();
  CUdeviceptr w;
  in_host(&w, 1, 8 * MiB);
  for (int i = 0; i < 3; i++) fill(w, 8 * MiB, 12);
  for (int i = 0; i < 6; i++) verify_launch(w, 8 * MiB, 12, 0);
  fill(w, 8 * MiB, 13); /* the staged copy is written, then nothing stages for a while */
  CHECK(t_stats().stream.budget_bytes == 16 * MiB, "no arena before the pause");
  usleep(1100 * 1000);
  verify_launch(w, 8 * MiB, 13, 0); /* the arena goes back first: this one reads in place */
  sp_stats s = t_stats();
  CHECK(s.stream.budget_bytes == 0, "the arena is still there after 1.1 s idle (%llu bytes)",
        (unsigned long long)s.stream.budget_bytes);
  CHECK(s.gpu[0].tier_bytes[0] == 0, "VRAM of the arena not given back: %llu", (unsigned long long)s.gpu[0].tier_bytes[0]);
  CHECK(bad_words() == 0, "after the arena went back: %llu words wrong", bad_words());
  usleep(300 * 1000);
  for (int i = 0; i < 4; i++) verify_launch(w, 8 * MiB, 13, 0);
  CHECK(word_at(w, 7 * MiB) == spill_pattern(13, 7 * MiB / 8), "the written words did not come back");
  s = t_stats();
  CHECK(s.stream.budget_bytes == 16 * MiB, "the arena was not made again (%llu)", (unsigned long long)s.stream.budget_bytes);
  CHECK(bad_words() == 0, "%llu words wrong", bad_words());
  CU(cuMemFree_v2(w));
  printf("ok idle\n");
  return 0;
}

static int readonce(void) {
  kernels();
  CUmodule m;
  CUfunction k_read;
  CU(cuModuleLoadData(&m, "fake image"));
  CU(cuModuleGetFunction(&k_read, m, SPILL_KERNEL_READ));
  CUdeviceptr w, sink;
  CU(cuMemAlloc_v2(&sink, 2 * MiB));
  CU(cuMemsetD8_v2(sink, 0, 8));
  in_host(&w, 1, 8 * MiB);
  for (int i = 0; i < 3; i++) fill(w, 8 * MiB, 20);
  for (int i = 0; i < 5; i++) verify_launch(w, 8 * MiB, 20, 0);
  fill(w, 8 * MiB, 21); /* a staging launch writes the staged copy */
  unsigned long long n = 8 * MiB / 8, want = 0, got = 0;
  void *args[] = {&w, &n, &sink};
  CU(cuLaunchKernel(k_read, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
  for (unsigned long long i = 0; i < n; i++) want += spill_pattern(21, i);
  CU(cuMemcpyDtoH_v2(&got, sink, sizeof(got)));
  CHECK(got == want, "the read-once kernel saw other words (sum %llx, want %llx)", got, want);
  CUdeviceptr tiny;
  CU(cuMemAlloc_v2(&tiny, MiB)); /* an allocation writes the stats record (a copy would settle w) */
  unsigned long long staged = t_stats().stream.staged_ranges;
  CHECK(staged >= 1, "nothing was staged");
  verify_launch(w, 8 * MiB, 21, 0); /* the slot left for the read-once kernel: staged anew */
  CU(cuMemFree_v2(tiny));
  CHECK(t_stats().stream.staged_ranges == staged + 1, "the staged copy outlived the read-once launch (%llu stagings, want %llu)",
        (unsigned long long)t_stats().stream.staged_ranges, staged + 1);
  CHECK(bad_words() == 0, "%llu words wrong", bad_words());
  CU(cuMemFree_v2(w));
  printf("ok readonce\n");
  return 0;
}

static void fill_on(CUdeviceptr p, size_t bytes, unsigned long long seed, CUstream s) {
  unsigned long long n = bytes / 8, off = 0;
  void *args[] = {&p, &n, &seed, &off};
  CU(cuLaunchKernel(k_fill, 1, 1, 1, 1, 1, 1, 0, s, args, NULL));
}

static void verify_on(CUdeviceptr p, size_t bytes, unsigned long long seed, CUstream s) {
  unsigned long long n = bytes / 8, off = 0;
  void *args[] = {&p, &n, &seed, &off, &bad_counter};
  CU(cuLaunchKernel(k_verify, 1, 1, 1, 1, 1, 1, 0, s, args, NULL));
}

/* w staged and read by staging launches, then written by one (its staged copy). */
static CUdeviceptr staged_and_written(unsigned long long seed) {
  kernels();
  CUdeviceptr w;
  in_host(&w, 1, 8 * MiB);
  for (int i = 0; i < 3; i++) fill(w, 8 * MiB, seed - 1);
  for (int i = 0; i < 5; i++) verify_launch(w, 8 * MiB, seed - 1, 0);
  fill(w, 8 * MiB, seed);
  return w;
}

static int graph(void) {
  CUdeviceptr w = staged_and_written(31);
  CUstream s;
  CUgraph g;
  CUgraphExec x;
  CU(cuStreamCreate(&s, 0));
  CU(cuStreamBeginCapture_v2(s, 0));
  verify_on(w, 8 * MiB, 31, s);
  CU(cuStreamEndCapture(s, &g));
  CU(cuGraphInstantiateWithFlags(&x, g, 0));
  CU(cuGraphLaunch(x, s));
  CU(cuStreamSynchronize(s));
  CHECK(bad_words() == 0, "the replay read %llu stale words", bad_words());
  fill(w, 8 * MiB, 32); /* staged again and written: the next replay must see it too */
  verify_launch(w, 8 * MiB, 32, 0);
  CU(cuGraphLaunch(x, s)); /* verifies seed 31: every word now differs */
  CU(cuStreamSynchronize(s));
  CHECK(bad_words() == 8 * MiB / 8, "the second replay saw %llu changed words, want all", bad_words());
  CU(cuMemFree_v2(w));
  printf("ok graph\n");
  return 0;
}

static int fivestreams(void) {
  CUdeviceptr w = staged_and_written(41);
  CUstream st[5];
  for (int i = 0; i < 5; i++) CU(cuStreamCreate(&st[i], 0));
  for (int i = 0; i < 4; i++) verify_on(w, 8 * MiB, 41, st[i]);
  fill_on(w, 8 * MiB, 42, st[4]); /* a fifth stream writes it */
  verify_on(w, 8 * MiB, 42, st[0]);
  for (int i = 0; i < 5; i++) CU(cuStreamSynchronize(st[i]));
  CHECK(bad_words() == 0, "%llu words wrong", bad_words());
  CHECK(word_at(w, 6 * MiB) == spill_pattern(42, 6 * MiB / 8), "the fifth stream's words did not come back");
  CU(cuMemFree_v2(w));
  printf("ok fivestreams\n");
  return 0;
}

static int otherctx(void) {
  CUdeviceptr w = staged_and_written(51);
  CUcontext a, b;
  CU(cuCtxGetCurrent(&a));
  CU(cuCtxCreate_v2(&b, 0, 0)); /* current now */
  verify_on(w, 8 * MiB, 51, NULL);
  CU(cuStreamSynchronize(NULL));
  CHECK(bad_words() == 0, "the launch in the second context read %llu stale words", bad_words());
  CU(cuCtxDestroy_v2(b));
  CU(cuCtxSetCurrent(a));
  CHECK(word_at(w, 3 * MiB) == spill_pattern(51, 3 * MiB / 8), "the written words did not come back");
  CU(cuMemFree_v2(w));
  printf("ok otherctx\n");
  return 0;
}

static int phases(void) {
  kernels();
  enum { N = 6 };
  CUdeviceptr r[N];
  in_host(r, N, 4 * MiB);
  for (int round = 0; round < 4; round++)
    for (int i = 0; i < N; i++) {
      fill(r[i], 4 * MiB, 100 * round + i);
      verify_launch(r[i], 4 * MiB, 100 * round + i, 0);
    }
  CUstream st;
  CUgraph g;
  CUgraphExec x;
  CU(cuStreamCreate(&st, 0));
  CU(cuStreamBeginCapture_v2(st, 0));
  for (int i = 0; i < N; i++) verify_on(r[i], 4 * MiB, 300 + i, st);
  CU(cuStreamEndCapture(st, &g));
  CU(cuGraphInstantiateWithFlags(&x, g, 0));
  for (int k = 0; k < 3; k++) CU(cuGraphLaunch(x, st));
  CU(cuStreamSynchronize(st));
  CHECK(bad_words() == 0, "the replays read %llu wrong words", bad_words());
  CUdeviceptr tiny;
  CU(cuMemAlloc_v2(&tiny, MiB)); /* writes the stats record */
  unsigned long long late = t_stats().stream.late_stages, staged = t_stats().stream.staged_ranges;
  for (int round = 4; round < 7; round++)
    for (int i = 0; i < N; i++) {
      fill(r[i], 4 * MiB, 100 * round + i);
      verify_launch(r[i], 4 * MiB, 100 * round + i, 0);
    }
  CU(cuMemFree_v2(tiny));
  sp_stats s = t_stats();
  CHECK(bad_words() == 0, "%llu words wrong", bad_words());
  CHECK(s.stream.staged_ranges >= staged + 3 * N, "rounds 4-6 staged %llu ranges", s.stream.staged_ranges - staged);
  /* the first staging after the replays has no predecessor in the chain: one late */
  CHECK(s.stream.late_stages <= late + 1, "after the replays: %llu late stagings, want at most 1",
        (unsigned long long)(s.stream.late_stages - late));
  for (int i = 0; i < N; i++) CU(cuMemFree_v2(r[i]));
  printf("ok phases\n");
  return 0;
}

static int turns(void) {
  kernels();
  enum { N = 6 };
  CUdeviceptr r[N];
  in_host(r, N, 4 * MiB); /* 24 MiB through a 16 MiB arena, 8 MiB staged ahead at most */
  for (int i = 0; i < N; i++) fill(r[i], 4 * MiB, 500 + i);
  unsigned long long late = 0, staged = 0;
  for (int round = 0; round < 6; round++) {
    if (round == 2) {
      CUdeviceptr tiny;
      CU(cuMemAlloc_v2(&tiny, MiB)); /* writes the stats record without settling a range */
      CU(cuMemFree_v2(tiny));
      late = t_stats().stream.late_stages;
      staged = t_stats().stream.staged_ranges;
    }
    for (int i = 0; i < N; i++) verify_launch(r[i], 4 * MiB, 500 + i, 0);
    for (int i = N - 1; i >= 0; i--) verify_launch(r[i], 4 * MiB, 500 + i, 1);
  }
  CUdeviceptr tiny;
  CU(cuMemAlloc_v2(&tiny, MiB));
  CU(cuMemFree_v2(tiny));
  sp_stats s = t_stats();
  CHECK(bad_words() == 0, "%llu words wrong", bad_words());
  /* four of the six fit: each round stages at least the two at the far end of each turn */
  CHECK(s.stream.staged_ranges >= staged + 4 * 4, "rounds 2-5 staged %llu ranges", s.stream.staged_ranges - staged);
  CHECK(s.stream.late_stages == late, "rounds 2-5: %llu late stagings, want 0 (staged ahead, turns included)",
        (unsigned long long)(s.stream.late_stages - late));
  for (int i = 0; i < N; i++) CU(cuMemFree_v2(r[i]));
  printf("ok turns\n");
  return 0;
}

int main(int argc, char **argv) {
  const char *s = argc > 1 ? argv[1] : "";
  loc = t_location();
  t_setup();
  if (!strcmp(s, "exact")) return exact(1);
  if (!strcmp(s, "off")) return exact(0);
  if (!strcmp(s, "written")) return written();
  if (!strcmp(s, "ring")) return ring();
  if (!strcmp(s, "streams")) return streams();
  if (!strcmp(s, "fallback")) return fallback();
  if (!strcmp(s, "free")) return freed();
  if (!strcmp(s, "idle")) return idle();
  if (!strcmp(s, "readonce")) return readonce();
  if (!strcmp(s, "turns")) return turns();
  if (!strcmp(s, "graph")) return graph();
  if (!strcmp(s, "fivestreams")) return fivestreams();
  if (!strcmp(s, "phases")) return phases();
  if (!strcmp(s, "otherctx")) return otherctx();
  fprintf(stderr, "usage: t_stream exact|off|written|ring|streams|fallback|free|idle|readonce|graph|fivestreams|phases|turns|otherctx\n");
  return 2;
}
