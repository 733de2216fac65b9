/*
** route.c: the route table, real entry point -> hook of the same ABI. Built once per driver
** library by resolving every hooked (versioned, _ptsz) name in it. dlsym and cuGetProcAddress
** ask the real library first and swap the answer by pointer identity, so the caller's version
** and per-thread-stream choice are kept exactly (a pointer we do not hook is returned as is).
*/
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "sp.h"

#define SP_HOOK_CU(name) extern CUresult name();
#define SP_HOOK_NVML(name) extern nvmlReturn_t name();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include "hooks.def"
#pragma GCC diagnostic pop
#undef SP_HOOK_CU
#undef SP_HOOK_NVML

typedef struct hook_def {
  const char *name;
  void *hook;
  int nvml;
} hook_def;

static const hook_def hook_defs[] = {
#define SP_HOOK_CU(name) {#name, (void *)name, 0},
#define SP_HOOK_NVML(name) {#name, (void *)name, 1},
#include "hooks.def"
#undef SP_HOOK_CU
#undef SP_HOOK_NVML
};
#define NHOOKS (sizeof(hook_defs) / sizeof(hook_defs[0]))

typedef struct route {
  const void *real;
  void *hook;
} route;

/* One table per driver library, each written once (under that library's pthread_once) and
** published by its count with release/acquire, so lookups take no lock. */
static route routes[2][NHOOKS];
static size_t nroutes[2];

static int cmp_route(const void *a, const void *b) {
  const route *x = a, *y = b;
  return (x->real > y->real) - (x->real < y->real);
}

void sp_route_build(void *handle, int nvml) {
  sp_dlsym_fn real_dlsym = sp_real_dlsym_get();
  size_t n = 0;
  if (!real_dlsym || !handle) return;
  for (size_t i = 0; i < NHOOKS; i++) {
    if (hook_defs[i].nvml != nvml) continue;
    void *p = real_dlsym(handle, hook_defs[i].name);
    if (!p || p == hook_defs[i].hook) continue;
    routes[nvml][n].real = p;
    routes[nvml][n].hook = hook_defs[i].hook;
    n++;
  }
  qsort(routes[nvml], n, sizeof(route), cmp_route);
  __atomic_store_n(&nroutes[nvml], n, __ATOMIC_RELEASE);
}

static void *lookup(int t, const void *real_fn) {
  size_t lo = 0, hi = __atomic_load_n(&nroutes[t], __ATOMIC_ACQUIRE);
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (routes[t][mid].real == real_fn) return routes[t][mid].hook;
    if ((const char *)routes[t][mid].real < (const char *)real_fn) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

void *sp_route_lookup(const void *real_fn) {
  void *h = lookup(0, real_fn);
  return h ? h : lookup(1, real_fn);
}

int sp_is_driver_name(const char *name) {
  if (!name) return 0;
  if (name[0] == 'c' && name[1] == 'u' && name[2] >= 'A' && name[2] <= 'Z') return 1;
  return strncmp(name, "nvml", 4) == 0 && name[4] >= 'A' && name[4] <= 'Z';
}
