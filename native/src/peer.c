/*
** peer.c: tiered ranges seen from other GPUs. A VMM range is reachable only from the devices its
** access descriptors name (cuMemSetAccess), whatever cuCtxEnablePeerAccess says, so memory the
** program got from cuMemAlloc on one GPU and reads from another must carry a descriptor for the
** reader. Two ways in: the program enables peer access (the hooks below: every tiered range of
** the peer's device gets READWRITE for the current device), or a copy names a tiered range of
** one device while another device does it (sp_peer_copy: that device is added once). Either is
** remembered per owning device (sp_dev.peers), so new ranges and pages the mover remaps get it
** too (tiered.c: sp_rec_set_access). Until the program allocates on a second device or enables
** peer access nothing here runs (device.c: sp_dev_note_alloc).
*/
#define _GNU_SOURCE
#include <string.h>

#include "sp.h"

int sp_ctx_device(CUcontext c) {
  CUdevice dev = -1;
  CUcontext cur = NULL, popped;
  if (!sp_real.cuCtxGetDevice || !sp_real.cuCtxGetCurrent || sp_real.cuCtxGetCurrent(&cur) != CUDA_SUCCESS) return -1;
  if (!c || c == cur) return sp_real.cuCtxGetDevice(&dev) == CUDA_SUCCESS ? dev : -1;
  if (!sp_real.cuCtxPushCurrent_v2 || sp_real.cuCtxPushCurrent_v2(c) != CUDA_SUCCESS) return -1;
  if (sp_real.cuCtxGetDevice(&dev) != CUDA_SUCCESS) dev = -1;
  sp_real.cuCtxPopCurrent_v2(&popped);
  return dev;
}

static int valid_dev(int d) { return d >= 0 && d < SP_MAX_DEV; }

/* Lock held. Device `to` gets READWRITE on every live tiered range of `owner`, now and later. */
static void grant(int owner, int to) {
  if (!valid_dev(owner) || !valid_dev(to) || owner == to) return;
  sp_dev *d = &sp_g.dev[owner];
  uint32_t bit = 1u << to;
  if ((d->peers | d->peers_refused) & bit) return;
  d->peers |= bit;
  for (size_t i = 0; i < sp_table_count(); i++) {
    sp_rec *r = sp_table_at(i);
    if (!r->tiered || r->dying || r->dev != owner) continue;
    CUresult rc = sp_rec_apply_access(r);
    if (rc != CUDA_SUCCESS) {
      /* No peer path between them (the driver says so): copies stay the driver's business. */
      d->peers &= ~bit;
      d->peers_refused |= bit;
      sp_log(SP_LOG_WARN, "device %d cannot be given access to device %d's tiered memory (CUresult %d); "
                          "kernels on it cannot read that memory", to, owner, rc);
      return;
    }
  }
  sp_log(SP_LOG_DEBUG, "device %d has access to device %d's tiered ranges", to, owner);
}

/* Lock held. The peer's access is taken away again (cuCtxDisablePeerAccess), except on mappings
** whose own descriptors (the program's cuMemSetAccess) name that device. */
static void revoke(int owner, int to) {
  if (!valid_dev(owner) || !valid_dev(to) || owner == to || !(sp_g.dev[owner].peers & (1u << to))) return;
  sp_g.dev[owner].peers &= ~(1u << to);
  CUmemAccessDesc none;
  memset(&none, 0, sizeof(none));
  none.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  none.location.id = to;
  none.flags = CU_MEM_ACCESS_FLAGS_PROT_NONE;
  for (size_t i = 0; i < sp_table_count(); i++) {
    sp_rec *r = sp_table_at(i);
    if (!r->tiered || r->dying || r->dev != owner) continue;
    int named = 0;
    for (uint32_t k = 0; r->access && k < r->naccess; k++)
      named |= r->access[k].location.type == CU_MEM_LOCATION_TYPE_DEVICE && r->access[k].location.id == to;
    if (!named && sp_real.cuMemSetAccess(r->va, r->span, &none, 1) != CUDA_SUCCESS)
      for (uint32_t p = 0; p < r->npages; p++) sp_real.cuMemSetAccess(r->va + (CUdeviceptr)p * SP_PAGE, SP_PAGE, &none, 1);
  }
}

void sp_peer_copy(CUdeviceptr dst, CUdeviceptr src, CUcontext dctx, CUcontext sctx) {
  if (!sp_active()) return;
  int cur = sp_ctx_device(NULL);
  int hd = dctx ? sp_ctx_device(dctx) : -1, hs = sctx ? sp_ctx_device(sctx) : -1;
  sp_lock();
  sp_rec *rd = dst ? sp_table_containing(dst) : NULL, *rs = src ? sp_table_containing(src) : NULL;
  int dd = rd ? rd->dev : hd, ds = rs ? rs->dev : hs;
  /* The copy may run on the current device or on either side's: each needs the tiered side. */
  if (rd && rd->tiered && !rd->dying) {
    grant(dd, cur);
    grant(dd, ds);
  }
  if (rs && rs->tiered && !rs->dying) {
    grant(ds, cur);
    grant(ds, dd);
  }
  sp_unlock();
}

SP_EXPORT CUresult cuCtxEnablePeerAccess(CUcontext peer, unsigned int flags) {
  sp_cuda_load();
  if (!sp_real.cuCtxEnablePeerAccess) return CUDA_ERROR_NOT_FOUND;
  CUresult rc = sp_real.cuCtxEnablePeerAccess(peer, flags);
  if ((rc != CUDA_SUCCESS && rc != CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) || !sp_active()) return rc;
  int cur = sp_ctx_device(NULL), owner = sp_ctx_device(peer);
  if (!valid_dev(cur) || !valid_dev(owner)) return rc;
  __atomic_store_n(&sp_g.multi, 1, __ATOMIC_RELAXED);
  sp_lock();
  grant(owner, cur);
  sp_unlock();
  return rc;
}

SP_EXPORT CUresult cuCtxDisablePeerAccess(CUcontext peer) {
  sp_cuda_load();
  if (!sp_real.cuCtxDisablePeerAccess) return CUDA_ERROR_NOT_FOUND;
  CUresult rc = sp_real.cuCtxDisablePeerAccess(peer);
  if (rc != CUDA_SUCCESS || !sp_active()) return rc;
  int cur = sp_ctx_device(NULL), owner = sp_ctx_device(peer);
  sp_lock();
  revoke(owner, cur);
  sp_unlock();
  return rc;
}
