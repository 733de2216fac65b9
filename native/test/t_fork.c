/*
** t_fork.c: a forked child starts clean: its own stats file (its pid, its counters from zero),
** no parent allocations in its table, and it allocates and frees independently; the parent's
** tiered data and accounting are untouched by the child.
*/
#include <sys/wait.h>

#include "t_common.h"

int main(void) {
  t_setup();
  CUdeviceptr a, p;
  CU(cuMemAlloc_v2(&a, 40 * MiB));
  CU(cuMemAlloc_v2(&p, 20 * MiB)); /* tiered */
  CU(cuMemsetD8_v2(p, 0x5A, 20 * MiB));
  sp_stats before;
  CHECK(t_read_stats(getpid(), &before) == 0, "parent stats");
  pid_t pid = fork();
  CHECK(pid >= 0, "fork");
  if (pid == 0) {
    /* the parent's pointer is not ours to free in the child */
    CUdeviceptr q;
    CU(cuMemAlloc_v2(&q, 30 * MiB)); /* fits in the child's fresh VRAM budget: passthrough */
    CUdeviceptr t;
    CU(cuMemAlloc_v2(&t, 40 * MiB)); /* 30 + 40 > 48: tiered */
    CU(cuMemsetD8_v2(t, 0x11, 40 * MiB));
    sp_stats s;
    CHECK(t_read_stats(getpid(), &s) == 0, "child has no stats file of its own");
    CHECK(s.pid == getpid(), "child stats pid %d", s.pid);
    CHECK(s.alloc_calls == 2 && s.tiered_allocs == 1 && s.passthrough_allocs == 1, "child counters %llu %llu %llu",
          (unsigned long long)s.alloc_calls, (unsigned long long)s.tiered_allocs,
          (unsigned long long)s.passthrough_allocs);
    CU(cuMemFree_v2(t));
    CU(cuMemFree_v2(q));
    CHECK(t_read_stats(getpid(), &s) == 0, "child stats");
    CHECK(s.gpu[0].tier_bytes[1] == 0 && s.gpu[0].passthrough_bytes == 0, "child bytes left");
    printf("child ok\n");
    fflush(stdout);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed (status 0x%x)", status);
  sp_stats after;
  CHECK(t_read_stats(getpid(), &after) == 0, "parent stats after");
  CHECK(after.pid == getpid() && after.alloc_calls == before.alloc_calls &&
            after.gpu[0].tier_bytes[1] == before.gpu[0].tier_bytes[1],
        "child changed the parent's record");
  unsigned char *h = malloc(20 * MiB);
  CU(cuMemcpyDtoH_v2(h, p, 20 * MiB));
  for (size_t i = 0; i < 20 * MiB; i++) CHECK(h[i] == 0x5A, "parent byte %zu changed", i);
  CU(cuMemFree_v2(p));
  CU(cuMemFree_v2(a));
  printf("ok fork\n");
  return 0;
}
