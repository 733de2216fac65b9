/*
** vmm_hooks.c: the program's own VMM (cuMemCreate and the calls on its handles: PyTorch's
** expandable segments, XLA's preallocated arena, ggml's pool). A handle the program creates on a
** device is, unless it must be exportable, a handle of ours: it stands for 2 MiB pages taken like
** a tiered range's (VRAM while the budget allows, then pinned host), mapped page by page wherever
** the program maps it, and the placement policy moves them like any other (each mapping is one or
** more records of SP_SEG_PAGES pages, so use is counted per 64 MiB of a large arena). Every call
** on such a handle stays consistent: cuMemMap, cuMemUnmap, cuMemSetAccess (kept and re-applied
** when pages move), cuMemRelease, cuMemRetainAllocationHandle,
** cuMemGetAllocationPropertiesFromHandle, and cuMemExportToShareableHandle (refused: pages of
** two kinds have no one shareable handle). Exportable handles (POSIX_FD, FABRIC: NCCL, CUDA IPC)
** are created whole in VRAM and counted; to make room the coldest pages leave VRAM first; only
** when nothing can leave does such a handle become one of ours (and then is not exportable).
*/
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "sp.h"

#define SP_SEG_PAGES 32                         /* pages per placement record of a mapping */
#define VHANDLE_TAG 0xA5C0000000000000ull        /* our handle values: far from any real one */

typedef struct sp_vhandle {
  CUmemGenericAllocationHandle id;
  uint64_t size;
  uint32_t npages, nmaps; /* live mappings */
  int dev, refs;          /* cuMemCreate + retains - releases */
  CUmemAllocationProp prop;
  CUmemGenericAllocationHandle *pages;
  uint8_t *loc;
} sp_vhandle;

static sp_vhandle **vhs;
static size_t nvh, capvh;
static uint64_t next_id;

#define REAL_OR_NOTFOUND(fn) \
  if (!sp_real.fn) return CUDA_ERROR_NOT_FOUND

static int is_ours(CUmemGenericAllocationHandle h) { return (h & 0xFFF0000000000000ull) == VHANDLE_TAG; }

/* Lock held. */
static sp_vhandle *vh_find(CUmemGenericAllocationHandle h) {
  if (!is_ours(h)) return NULL;
  for (size_t i = 0; i < nvh; i++)
    if (vhs[i]->id == h) return vhs[i];
  return NULL;
}

/* Lock held: the last reference and the last mapping are gone. */
static void vh_destroy(sp_vhandle *vh) {
  sp_dev *d = &sp_g.dev[vh->dev];
  uint32_t nv = 0;
  for (uint32_t i = 0; i < vh->npages; i++) nv += vh->loc[i] == SP_PAGE_VRAM;
  d->vvmm_bytes[0] -= (uint64_t)nv * SP_PAGE;
  d->vvmm_bytes[1] -= (uint64_t)(vh->npages - nv) * SP_PAGE;
  sp_pages_put(d, vh->npages, vh->pages, vh->loc);
  for (size_t i = 0; i < nvh; i++)
    if (vhs[i] == vh) {
      vhs[i] = vhs[--nvh];
      break;
    }
  free(vh->pages);
  free(vh->loc);
  free(vh);
  sp_g.free_calls++;
  sp_pinned_trim_to_cap();
}

static int exportable(const CUmemAllocationProp *p) {
  return p->requestedHandleTypes || p->allocFlags.compressionType || p->allocFlags.gpuDirectRDMACapable ||
         p->allocFlags.usage;
}

/* Lock held (dropped and taken again while pages leave VRAM). */
static void make_room(sp_dev *d, uint64_t short_by) {
  if (!short_by || !sp_cfg.migrate) return;
  sp_unlock();
  sp_migrate_evict(d, short_by);
  sp_lock();
}

/* Lock held. A handle of ours for `size` bytes on d: pages taken now, like a tiered range's. */
static CUresult vh_create(sp_dev *d, uint64_t size, const CUmemAllocationProp *prop, CUmemGenericAllocationHandle *out) {
  int small = size <= sp_cfg.threshold;
  uint64_t npages = size / SP_PAGE, room = sp_vram_room(d, small);
  make_room(d, npages > room ? npages - room : 0);
  sp_vhandle *vh = calloc(1, sizeof(*vh));
  if (vh && nvh == capvh) {
    size_t cap = capvh ? capvh * 2 : 64;
    sp_vhandle **n = realloc(vhs, cap * sizeof(*n));
    if (n) {
      vhs = n;
      capvh = cap;
    }
  }
  if (!vh || nvh == capvh || !(vh->pages = calloc(npages, sizeof(*vh->pages))) || !(vh->loc = calloc(npages, 1))) {
    if (vh) free(vh->pages);
    free(vh);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  int nv = sp_pages_take(d, npages, small, 1, vh->pages, vh->loc);
  if (nv < 0) {
    free(vh->pages);
    free(vh->loc);
    free(vh);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  vh->id = VHANDLE_TAG | ++next_id;
  vh->size = size;
  vh->npages = (uint32_t)npages;
  vh->dev = d->ordinal;
  vh->refs = 1;
  vh->prop = *prop;
  vhs[nvh++] = vh;
  d->vvmm_bytes[0] += (uint64_t)nv * SP_PAGE;
  d->vvmm_bytes[1] += (npages - (uint64_t)nv) * SP_PAGE;
  sp_g.pages_vram += (uint64_t)nv;
  sp_g.pages_pinned += npages - (uint64_t)nv;
  sp_g.tiered_allocs++;
  sp_dev_peaks(d);
  *out = vh->id;
  return CUDA_SUCCESS;
}

SP_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                               unsigned long long flags) {
  sp_cuda_load();
  REAL_OR_NOTFOUND(cuMemCreate);
  if (!sp_active() || !handle || !prop || !size || flags || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
      prop->type != CU_MEM_ALLOCATION_TYPE_PINNED || size % SP_PAGE)
    return sp_real.cuMemCreate(handle, size, prop, flags);
  sp_lock();
  sp_dev *d = sp_dev_get(prop->location.id);
  if (!d || !d->tiering) {
    sp_unlock();
    return sp_real.cuMemCreate(handle, size, prop, flags);
  }
  sp_g.alloc_calls++;
  if (size > sp_g.largest_alloc) sp_g.largest_alloc = size;
  sp_dev_note_alloc(d);
  int whole = exportable(prop) || !sp_cfg.migrate; /* exportable: must be one real VRAM handle */
  if (whole) {
    uint64_t budget = d->limit - (size <= sp_cfg.threshold ? 0 : d->reserve);
    uint64_t in_use = sp_dev_vram_committed(d) - (uint64_t)d->vram_pool.nfree * SP_PAGE;
    if (exportable(prop)) make_room(d, in_use + size > budget ? (in_use + size - budget + SP_PAGE - 1) / SP_PAGE : 0);
    if (sp_vram_trim_for(d, size, budget) + size <= budget) {
      d->vmm_dev_bytes += size; /* claimed before dropping the lock */
      sp_unlock();
      CUresult rc = sp_real.cuMemCreate(handle, size, prop, flags);
      sp_lock();
      if (rc != CUDA_SUCCESS || sp_vmm_insert(*handle, size, d->ordinal) != 0) d->vmm_dev_bytes -= size;
      if (rc == CUDA_ERROR_OUT_OF_MEMORY) sp_g.oom_returned++;
      sp_dev_peaks(d);
      sp_stats_publish();
      sp_unlock();
      return rc;
    }
    if (exportable(prop)) {
      static int said;
      if (!said++)
        sp_log(SP_LOG_WARN, "an exportable cuMemCreate (handle types 0x%x) does not fit in VRAM and nothing can leave; "
                            "it is placed in tiers and cannot be exported", (unsigned)prop->requestedHandleTypes);
    }
  }
  CUresult rc = vh_create(d, size, prop, handle);
  if (rc == CUDA_ERROR_OUT_OF_MEMORY) sp_g.oom_returned++;
  sp_stats_publish();
  sp_unlock();
  return rc;
}

SP_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
  sp_cuda_load();
  REAL_OR_NOTFOUND(cuMemRelease);
  if (!sp_active()) return sp_real.cuMemRelease(handle);
  sp_lock();
  sp_vhandle *vh = vh_find(handle);
  if (vh) {
    if (--vh->refs == 0 && vh->nmaps == 0) vh_destroy(vh);
    sp_stats_publish();
    sp_unlock();
    return CUDA_SUCCESS;
  }
  if (is_ours(handle)) {
    sp_unlock();
    return CUDA_ERROR_INVALID_VALUE; /* released already */
  }
  /* Forget the handle before releasing it: the driver may hand the same value to another
  ** thread's cuMemCreate as soon as it is released. */
  uint64_t size = 0;
  int dev = 0;
  int k = sp_vmm_release(handle, &size, &dev);
  sp_unlock();
  CUresult rc = sp_real.cuMemRelease(handle);
  if (k < 0) return rc;
  sp_lock();
  if (rc != CUDA_SUCCESS) { /* undo */
    if (k == 0) sp_vmm_insert(handle, size, dev);
    else sp_vmm_retain(handle);
  } else if (k == 0) {
    sp_g.dev[dev].vmm_dev_bytes -= size;
    sp_g.free_calls++;
    sp_stats_publish();
  }
  sp_unlock();
  return rc;
}

/* Lock held: every record of vh loses `movable` once it is mapped twice (a move remaps one address). */
static void pin_mappings(const sp_vhandle *vh) {
  for (size_t i = 0; i < sp_table_count(); i++)
    if (sp_table_at(i)->vh == vh) sp_table_at(i)->movable = 0;
}

SP_EXPORT CUresult cuMemMap(CUdeviceptr va, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                            unsigned long long flags) {
  sp_cuda_load();
  REAL_OR_NOTFOUND(cuMemMap);
  if (!is_ours(handle) || !sp_active()) return sp_real.cuMemMap(va, size, offset, handle, flags);
  sp_lock();
  sp_vhandle *vh = vh_find(handle);
  if (!vh || !size || flags || va % SP_PAGE || size % SP_PAGE || offset % SP_PAGE || offset > vh->size ||
      size > vh->size - offset) {
    sp_g.bad_args++;
    sp_unlock();
    return CUDA_ERROR_INVALID_VALUE;
  }
  uint32_t first = (uint32_t)(offset / SP_PAGE), n = (uint32_t)(size / SP_PAGE), k = 0;
  CUresult rc = CUDA_SUCCESS;
  for (; k < n; k++) {
    rc = sp_real.cuMemMap(va + (CUdeviceptr)k * SP_PAGE, SP_PAGE, 0, vh->pages[first + k], 0);
    if (rc != CUDA_SUCCESS) break;
  }
  CUcontext ctx = NULL;
  if (sp_real.cuCtxGetCurrent) sp_real.cuCtxGetCurrent(&ctx);
  for (uint32_t s = 0; rc == CUDA_SUCCESS && s < n; s += SP_SEG_PAGES) {
    sp_rec *r = calloc(1, sizeof(*r));
    if (!r) {
      rc = CUDA_ERROR_OUT_OF_MEMORY;
      break;
    }
    r->va = va + (CUdeviceptr)s * SP_PAGE;
    r->npages = n - s < SP_SEG_PAGES ? n - s : SP_SEG_PAGES;
    r->size = r->span = (uint64_t)r->npages * SP_PAGE;
    r->map_va = va;
    r->map_size = size;
    r->dev = vh->dev;
    r->tiered = r->movable = 1;
    r->ctx = ctx;
    r->vh = vh;
    r->pages = vh->pages + first + s;
    r->loc = vh->loc + first + s;
    for (uint32_t i = 0; i < r->npages; i++) r->nvram += r->loc[i] == SP_PAGE_VRAM;
    r->buffer_id = sp_g.next_buffer_id++;
    if (sp_table_insert(r)) {
      free(r);
      rc = CUDA_ERROR_INVALID_VALUE; /* the address is already mapped */
      break;
    }
    sp_tiered_window(r);
  }
  if (rc != CUDA_SUCCESS) { /* undo: records, then mappings */
    for (size_t i = sp_table_count(); i-- > 0;) {
      sp_rec *r = sp_table_at(i);
      if (r->vh == vh && r->map_va == va) {
        sp_table_remove(r);
        sp_rec_free(r);
      }
    }
    for (uint32_t j = 0; j < k; j++) sp_real.cuMemUnmap(va + (CUdeviceptr)j * SP_PAGE, SP_PAGE);
    sp_unlock();
    return rc;
  }
  if (++vh->nmaps > 1) pin_mappings(vh);
  sp_unlock();
  return CUDA_SUCCESS;
}

SP_EXPORT CUresult cuMemUnmap(CUdeviceptr va, size_t size) {
  sp_cuda_load();
  REAL_OR_NOTFOUND(cuMemUnmap);
  if (!sp_active() || !size || va + size < va) return sp_real.cuMemUnmap(va, size);
  sp_lock();
  /* Our records in [va, va + size) are unmapped page by page; the gaps between them (the
  ** program's own handles) go to the driver in one call each. */
  CUresult rc = CUDA_SUCCESS;
  CUdeviceptr at = va, end = va + size;
  int any = 0;
  while (at < end) {
    sp_rec *r = sp_table_containing(at);
    if (!r || !r->vh) { /* the next record of ours at or after `at`, if any inside the range */
      CUdeviceptr next = end;
      for (size_t i = 0; i < sp_table_count(); i++) {
        sp_rec *q = sp_table_at(i);
        if (q->vh && q->va > at && q->va < next) next = q->va;
      }
      if (any || next < end) {
        CUresult g = sp_real.cuMemUnmap(at, next - at);
        if (g != CUDA_SUCCESS) rc = g;
      } else {
        sp_unlock();
        return sp_real.cuMemUnmap(va, size); /* none of ours: the driver's answer as it is */
      }
      at = next;
      continue;
    }
    if (r->va != at || r->va + r->span > end) { /* cuMemUnmap takes whole mappings only */
      rc = CUDA_ERROR_INVALID_VALUE;
      break;
    }
    any = 1;
    sp_stream_forget(r);
    for (uint32_t i = 0; i < r->npages; i++) sp_real.cuMemUnmap(r->va + (CUdeviceptr)i * SP_PAGE, SP_PAGE);
    sp_vhandle *vh = r->vh;
    int last_seg = r->va + r->span == r->map_va + r->map_size;
    at = r->va + r->span;
    sp_table_remove(r);
    sp_rec_free(r);
    if (last_seg && --vh->nmaps == 0 && vh->refs == 0) vh_destroy(vh);
  }
  sp_stats_publish();
  sp_unlock();
  return rc;
}

/* The access the program sets on a mapping of ours is kept, so moved pages get it again. */
SP_EXPORT CUresult cuMemSetAccess(CUdeviceptr va, size_t size, const CUmemAccessDesc *desc, size_t count) {
  sp_cuda_load();
  REAL_OR_NOTFOUND(cuMemSetAccess);
  CUresult rc = sp_real.cuMemSetAccess(va, size, desc, count);
  if (!sp_active() || !desc || !count || count > 64 || va + size < va) return rc;
  sp_lock();
  uint64_t ours = 0;
  int all_ok = 1;
  for (size_t i = 0; i < sp_table_count(); i++) {
    sp_rec *r = sp_table_at(i);
    if (!r->vh || r->va + r->span <= va || r->va >= va + size) continue;
    ours += r->span;
    if (rc != CUDA_SUCCESS) { /* mixed page kinds: one call per page of ours */
      CUresult one = CUDA_SUCCESS;
      for (uint32_t p = 0; p < r->npages && one == CUDA_SUCCESS; p++)
        one = sp_real.cuMemSetAccess(r->va + (CUdeviceptr)p * SP_PAGE, SP_PAGE, desc, count);
      if (one != CUDA_SUCCESS) {
        all_ok = 0;
        continue;
      }
    }
    CUmemAccessDesc *a = malloc(count * sizeof(*a));
    if (!a) continue;
    memcpy(a, desc, count * sizeof(*a));
    free(r->access);
    r->access = a;
    r->naccess = (uint32_t)count;
    if (sp_g.dev[r->dev].peers) sp_rec_apply_access(r); /* peers of its device keep their access */
  }
  if (rc != CUDA_SUCCESS && all_ok && ours == size) rc = CUDA_SUCCESS; /* all ours, set page by page */
  sp_unlock();
  return rc;
}

/* A retained handle needs one more cuMemRelease before the memory is gone. */
SP_EXPORT CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr) {
  sp_cuda_load();
  REAL_OR_NOTFOUND(cuMemRetainAllocationHandle);
  if (handle && sp_active()) {
    sp_lock();
    sp_rec *r = sp_table_containing((CUdeviceptr)(uintptr_t)addr);
    if (r && r->vh) {
      r->vh->refs++;
      *handle = r->vh->id;
      sp_unlock();
      return CUDA_SUCCESS;
    }
    sp_unlock();
  }
  CUresult rc = sp_real.cuMemRetainAllocationHandle(handle, addr);
  if (rc != CUDA_SUCCESS || !handle || !sp_active()) return rc;
  sp_lock();
  sp_vmm_retain(*handle);
  sp_unlock();
  return rc;
}

SP_EXPORT CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *prop, CUmemGenericAllocationHandle handle) {
  sp_cuda_load();
  REAL_OR_NOTFOUND(cuMemGetAllocationPropertiesFromHandle);
  if (!is_ours(handle) || !sp_active()) return sp_real.cuMemGetAllocationPropertiesFromHandle(prop, handle);
  if (!prop) return CUDA_ERROR_INVALID_VALUE;
  sp_lock();
  sp_vhandle *vh = vh_find(handle);
  if (vh) *prop = vh->prop;
  sp_unlock();
  return vh ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

SP_EXPORT CUresult cuMemExportToShareableHandle(void *shareable, CUmemGenericAllocationHandle handle, int type,
                                                unsigned long long flags) {
  sp_cuda_load();
  REAL_OR_NOTFOUND(cuMemExportToShareableHandle);
  if (!is_ours(handle) || !sp_active()) return sp_real.cuMemExportToShareableHandle(shareable, handle, type, flags);
  static int said;
  if (!said++)
    sp_log(SP_LOG_WARN, "cuMemExportToShareableHandle on memory spillover placed in tiers: not supported (its "
                        "pages are of two kinds); create it with a handle type to keep it whole in VRAM");
  return CUDA_ERROR_NOT_SUPPORTED;
}

/* Child of fork: the handles were the parent's (their records are dropped with the table). */
void sp_vhandles_after_fork(void) {
  vhs = NULL; /* leaked in the child, like the parent's other bookkeeping */
  nvh = capvh = 0;
}
