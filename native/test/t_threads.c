/*
** t_threads.c: 16 threads allocate, fill, verify and free at once (small, passthrough and tiered
** sizes mixed, past the budgets). No page may be handed to two live allocations (each thread's
** pattern must survive while the others write theirs) and, at the end, every byte and page is
** accounted for: tiers empty, pool all free, no VA reservation or mapping left in the fake.
*/
#include <pthread.h>

#include "t_common.h"

#define THREADS 16
#define ROUNDS 40

static CUcontext g_ctx;
static int g_ooms[THREADS];

static void *worker(void *arg) {
  int id = (int)(long)arg;
  CU(cuCtxSetCurrent(g_ctx));
  static const size_t sizes[] = {512 * 1024, 3 * MiB, 6 * MiB, 10 * MiB};
  unsigned int *back = malloc(10 * MiB);
  for (int r = 0; r < ROUNDS; r++) {
    size_t n = sizes[(id + r) % 4];
    CUdeviceptr p;
    CUresult rc = cuMemAlloc_v2(&p, n);
    if (rc == CUDA_ERROR_OUT_OF_MEMORY) {
      g_ooms[id]++;
      continue;
    }
    CHECK(rc == CUDA_SUCCESS, "thread %d alloc %zu: %d", id, n, rc);
    unsigned int pat = 0x9E3779B9u * (unsigned)(id * ROUNDS + r + 1);
    CU(cuMemsetD32_v2(p, pat, n / 4));
    usleep(200); /* let the other threads map and write */
    CU(cuMemcpyDtoH_v2(back, p, n));
    for (size_t i = 0; i < n / 4; i++)
      CHECK(back[i] == pat, "thread %d round %d word %zu: 0x%x, want 0x%x (page shared?)", id, r, i, back[i], pat);
    CU(cuMemFree_v2(p));
  }
  free(back);
  return NULL;
}

int main(void) {
  g_ctx = t_setup();
  pthread_t th[THREADS];
  for (long i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, worker, (void *)i);
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  int ooms = 0;
  for (int i = 0; i < THREADS; i++) ooms += g_ooms[i];
  sp_stats s;
  CHECK(t_read_stats(getpid(), &s) == 0, "stats");
  unsigned long long done = (unsigned long long)THREADS * ROUNDS;
  CHECK(s.alloc_calls == done, "alloc_calls %llu, want %llu", (unsigned long long)s.alloc_calls, done);
  CHECK(s.free_calls == done - (unsigned long long)ooms, "free_calls %llu", (unsigned long long)s.free_calls);
  CHECK(s.oom_returned == (unsigned long long)ooms, "oom_returned %llu vs %d", (unsigned long long)s.oom_returned, ooms);
  CHECK(s.tiered_allocs > 0 && s.passthrough_allocs > 0, "no mix: tiered %llu passthrough %llu",
        (unsigned long long)s.tiered_allocs, (unsigned long long)s.passthrough_allocs);
  CHECK(s.gpu[0].tier_bytes[0] == 0 && s.gpu[0].tier_bytes[1] == 0 && s.gpu[0].passthrough_bytes == 0,
        "bytes left: %llu %llu %llu", (unsigned long long)s.gpu[0].tier_bytes[0],
        (unsigned long long)s.gpu[0].tier_bytes[1], (unsigned long long)s.gpu[0].passthrough_bytes);
  CHECK(s.pinned_used_bytes == 0 && s.pinned_pool_bytes <= s.pinned_limit, "pool used %llu pool %llu limit %llu",
        (unsigned long long)s.pinned_used_bytes, (unsigned long long)s.pinned_pool_bytes,
        (unsigned long long)s.pinned_limit);
  void (*live)(unsigned long *) = (void (*)(unsigned long *))dlsym(RTLD_DEFAULT, "fakecuda_live");
  if (live) {
    unsigned long l[5];
    live(l);
    CHECK(l[0] == 0 && l[2] == 0 && l[3] == 0, "fake still has allocs %lu, reservations %lu, mappings %lu", l[0], l[2],
          l[3]);
    /* every physical page left is a pooled one */
    unsigned long pooled = (unsigned long)(s.pinned_pool_bytes / PAGE);
    CHECK(l[4] >= pooled, "fake has %lu handles, pool says %lu", l[4], pooled);
  }
  printf("ok threads allocs=%llu tiered=%llu ooms=%d\n", done, (unsigned long long)s.tiered_allocs, ooms);
  return 0;
}
