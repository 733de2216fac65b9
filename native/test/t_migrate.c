/*
** t_migrate.c: placement that follows use (native/src/migrate.c). Run with the interposer test
** budget (SPILLOVER_VRAM_LIMIT=64M SPILLOVER_VRAM_RESERVE=16M) against the fake driver, whose
** kernels run on the CPU and fault on unmapped pages:
**  promote  a range placed in host memory while VRAM was full of the driver's small allocations,
**           named by thousands of launches (kernelParams and `extra` both), moves into VRAM once
**           they are freed; a range named once long before stays in host memory; every byte of both is
**           unchanged (verified by kernels)
**  evict    VRAM above the reserve full of a range no launch names: its VRAM pages go to host
**           memory so a hot range can move in; both keep their bytes
**  off      SPILLOVER_MIGRATE=0: the same launches move nothing
*/
#include "t_kernels.h"

static t_location_fn loc;

/* Name `hot` in `launches` cheap launches (a few words each), alternating the two argument forms. */
static void use(CUdeviceptr hot, unsigned long long seed, int launches) {
  for (int i = 0; i < launches; i++) verify_launch(hot, 64, seed, i & 1);
}

/* VRAM full of the driver's small allocations, which nothing can move: what comes next lands in
** host memory. fill_small(0) frees them again. */
static CUdeviceptr smalls[32];
static void fill_small(int take) {
  for (int i = 0; i < 31; i++) {
    if (take) CU(cuMemAlloc_v2(&smalls[i], 2 * MiB));
    else CU(cuMemFree_v2(smalls[i]));
  }
}

static int promote(int expect_moves) {
  kernels();
  CUdeviceptr hot, cold;
  fill_small(1); /* with the counter: the whole 64M limit */
  CU(cuMemAlloc_v2(&hot, 8 * MiB));
  CU(cuMemAlloc_v2(&cold, 8 * MiB));
  CHECK(t_pages_in(loc, hot, 8 * MiB, 2) == 4 && t_pages_in(loc, cold, 8 * MiB, 2) == 4, "setup: not in host memory");
  fill(hot, 8 * MiB, 11);
  fill(cold, 8 * MiB, 22); /* named once, then by nothing while passes go by with VRAM full */
  use(hot, 11, 5000);
  fill_small(0);
  use(hot, 11, 5000);
  CHECK(bad_words() == 0, "the cheap launches saw wrong words");
  sp_stats s = t_stats();
  if (expect_moves) {
    CHECK(t_pages_in(loc, hot, 8 * MiB, 1) == 4, "hot range: %d of 4 pages in VRAM", t_pages_in(loc, hot, 8 * MiB, 1));
    CHECK(t_pages_in(loc, cold, 8 * MiB, 2) == 4, "cold range moved");
    CHECK(s.migrations == 4, "migrations %llu, want 4", (unsigned long long)s.migrations);
    CHECK(s.gpu[0].tier_bytes[0] == 8 * MiB && s.gpu[0].tier_bytes[1] == 8 * MiB, "tier bytes %llu/%llu",
          (unsigned long long)s.gpu[0].tier_bytes[0], (unsigned long long)s.gpu[0].tier_bytes[1]);
  } else {
    CHECK(t_pages_in(loc, hot, 8 * MiB, 2) == 4 && s.migrations == 0, "SPILLOVER_MIGRATE=0 moved pages");
  }
  verify_launch(hot, 8 * MiB, 11, 0);
  verify_launch(cold, 8 * MiB, 22, 0);
  CHECK(bad_words() == 0, "%llu words changed", bad_words());
  unsigned char *back = malloc(8 * MiB);
  CU(cuMemcpyDtoH_v2(back, hot, 8 * MiB));
  unsigned long long w;
  memcpy(&w, back + 5 * MiB, 8);
  CHECK(w == spill_pattern(11, 5 * MiB / 8), "copy after migration reads another word");
  free(back);
  CU(cuMemFree_v2(hot));
  CU(cuMemFree_v2(cold));
  s = t_stats();
  CHECK(s.gpu[0].tier_bytes[0] == 0 && s.gpu[0].tier_bytes[1] == 0, "tier bytes left after frees");
  printf("ok %s\n", expect_moves ? "promote" : "off");
  return 0;
}

static int evict(void) {
  kernels(); /* bad_counter: 2M of the reserve */
  CUdeviceptr warm, hot;
  fill_small(1);
  CU(cuMemAlloc_v2(&hot, 8 * MiB));
  CHECK(t_pages_in(loc, hot, 8 * MiB, 2) == 4, "setup: hot not in host memory");
  fill_small(0);
  CU(cuMemAlloc_v2(&warm, 16 * MiB)); /* reserve - counter... the budget above the reserve: */
  CUdeviceptr filler;
  CU(cuMemAlloc_v2(&filler, 30 * MiB)); /* 16 + 30 + 2 (counter) = 48M: nothing left above the reserve */
  CHECK(t_pages_in(loc, warm, 16 * MiB, 1) == 8, "setup: warm has %d VRAM pages", t_pages_in(loc, warm, 16 * MiB, 1));
  fill(warm, 16 * MiB, 33);
  fill(hot, 8 * MiB, 44);
  use(hot, 44, 5000);
  CHECK(t_pages_in(loc, hot, 8 * MiB, 1) == 4, "hot range: %d of 4 pages in VRAM", t_pages_in(loc, hot, 8 * MiB, 1));
  int warm_host = t_pages_in(loc, warm, 16 * MiB, 2), filler_host = t_pages_in(loc, filler, 30 * MiB, 2);
  CHECK(warm_host + filler_host == 4, "the unused ranges gave %d pages, want 4", warm_host + filler_host);
  sp_stats s = t_stats();
  CHECK(s.migrations == 8, "migrations %llu, want 4 out + 4 in", (unsigned long long)s.migrations);
  verify_launch(warm, 16 * MiB, 33, 0);
  verify_launch(hot, 8 * MiB, 44, 0);
  CHECK(bad_words() == 0, "%llu words changed", bad_words());
  CU(cuMemFree_v2(hot));
  CU(cuMemFree_v2(warm));
  CU(cuMemFree_v2(filler));
  printf("ok evict\n");
  return 0;
}

int main(int argc, char **argv) {
  const char *s = argc > 1 ? argv[1] : "";
  loc = t_location();
  t_setup();
  if (!strcmp(s, "promote")) return promote(1);
  if (!strcmp(s, "off")) return promote(0);
  if (!strcmp(s, "evict")) return evict();
  fprintf(stderr, "usage: t_migrate promote|evict|off\n");
  return 2;
}
