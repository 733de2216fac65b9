/*
** table.c: the allocation table (every allocation made through a hook, sorted by address, for
** exact and interior-pointer lookups) and the list of the program's own VMM handles. Lock held.
*/
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "sp.h"

static sp_rec **recs;
static size_t nrecs, caprecs;

/* index of the first record with va >= p */
static size_t lower_bound(CUdeviceptr p) {
  size_t lo = 0, hi = nrecs;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (recs[mid]->va < p) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

int sp_table_insert(sp_rec *r) {
  if (nrecs == caprecs) {
    size_t cap = caprecs ? caprecs * 2 : 256;
    sp_rec **n = realloc(recs, cap * sizeof(*n));
    if (!n) return -1;
    recs = n;
    caprecs = cap;
  }
  size_t i = lower_bound(r->va);
  if (i < nrecs && recs[i]->va == r->va) return -1; /* the driver reused a live address: our bug */
  memmove(recs + i + 1, recs + i, (nrecs - i) * sizeof(*recs));
  recs[i] = r;
  nrecs++;
  return 0;
}

sp_rec *sp_table_find(CUdeviceptr va) {
  size_t i = lower_bound(va);
  return i < nrecs && recs[i]->va == va ? recs[i] : NULL;
}

sp_rec *sp_table_containing(CUdeviceptr p) {
  size_t i = lower_bound(p + 1); /* first with va > p */
  if (i == 0) return NULL;
  sp_rec *r = recs[i - 1];
  return p - r->va < (r->span ? r->span : 1) ? r : NULL;
}

void sp_table_remove(sp_rec *r) {
  size_t i = lower_bound(r->va);
  if (i < nrecs && recs[i] == r) {
    memmove(recs + i, recs + i + 1, (nrecs - i - 1) * sizeof(*recs));
    nrecs--;
  }
}

size_t sp_table_count(void) { return nrecs; }
sp_rec *sp_table_at(size_t i) { return i < nrecs ? recs[i] : NULL; }

/* the program's VMM handles passed to the driver whole: few (PyTorch expandable segments make ~100 per GiB of 20 MiB pieces) */
typedef struct vmm_ent {
  CUmemGenericAllocationHandle h;
  uint64_t size;
  int dev;
  int refs; /* cuMemCreate + cuMemRetainAllocationHandle - cuMemRelease */
} vmm_ent;
static vmm_ent *vmms;
static size_t nvmm, capvmm;

int sp_vmm_insert(CUmemGenericAllocationHandle h, uint64_t size, int dev) {
  if (nvmm == capvmm) {
    size_t cap = capvmm ? capvmm * 2 : 64;
    vmm_ent *n = realloc(vmms, cap * sizeof(*n));
    if (!n) return -1;
    vmms = n;
    capvmm = cap;
  }
  vmms[nvmm++] = (vmm_ent){h, size, dev, 1};
  return 0;
}

static vmm_ent *vmm_find(CUmemGenericAllocationHandle h) {
  for (size_t i = nvmm; i-- > 0;)
    if (vmms[i].h == h) return &vmms[i];
  return NULL;
}

int sp_vmm_retain(CUmemGenericAllocationHandle h) {
  vmm_ent *e = vmm_find(h);
  if (!e) return 0;
  e->refs++;
  return 1;
}

int sp_vmm_release(CUmemGenericAllocationHandle h, uint64_t *size, int *dev) {
  vmm_ent *e = vmm_find(h);
  if (!e) return -1;
  if (--e->refs > 0) return 1;
  *size = e->size;
  *dev = e->dev;
  *e = vmms[--nvmm];
  return 0;
}

/* After fork: the records describe the parent's driver objects. Drop them (the memory is the
** child's copy; freeing it is safe because no other thread exists in the child). */
void sp_table_forget_all(void) {
  for (size_t i = 0; i < nrecs; i++) sp_rec_free(recs[i]);
  nrecs = 0;
  nvmm = 0;
}
