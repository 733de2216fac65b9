/*
** t_broker_workload.c: a CUDA program for the broker's end-to-end tests (test/broker/e2e.test.ts,
** the dashboard test): under LD_PRELOAD=libspillover.so against the fake driver it allocates
** COUNT buffers of SIZE_MIB each, SLEEP_MS apart, printing each CUresult, then optionally holds
** until stdin closes. With a small VRAM limit the buffers spill to pinned pages leased from the
** broker; past the lease the interposer must return CUDA_ERROR_OUT_OF_MEMORY (2).
**
**   t_broker_workload COUNT SIZE_MIB SLEEP_MS [hold]
**   prints "alloc I rc=N" per buffer, then "done ok=N oom=M"
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <time.h>

#include "t_common.h"

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: t_broker_workload COUNT SIZE_MIB SLEEP_MS [hold]\n");
    return 2;
  }
  int count = atoi(argv[1]);
  size_t size = (size_t)atoi(argv[2]) * MiB;
  long sleep_ms = atol(argv[3]);
  int hold = argc > 4 && strcmp(argv[4], "hold") == 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  t_setup();
  int ok = 0, oom = 0;
  for (int i = 0; i < count; i++) {
    CUdeviceptr p = 0;
    CUresult rc = cuMemAlloc_v2(&p, size);
    if (rc == CUDA_SUCCESS) {
      ok++;
      cuMemsetD8_v2(p, (unsigned char)i, size); /* touch it, as a real program would */
    } else if (rc == CUDA_ERROR_OUT_OF_MEMORY) {
      oom++;
    }
    printf("alloc %d rc=%d\n", i, (int)rc);
    struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
  }
  printf("done ok=%d oom=%d\n", ok, oom);
  if (hold) {
    char c;
    while (read(0, &c, 1) > 0) {
    }
  }
  return 0;
}
