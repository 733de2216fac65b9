/*
** launch_hooks.c: the kernel launches and the other fenced entry points (fenced.def). A launch is
** scanned for pointers into tiered ranges (migrate.c counts them), may first run a migration pass,
** and is enqueued under the fence, like every fenced call, so no page changes its backing while
** work that names it is being enqueued. With SPILLOVER_MIGRATE=0 they only pass through.
*/
#define _GNU_SOURCE
#include "sp.h"

static int migrating(void) { return sp_active() && sp_cfg.migrate; }

static void before_launch(CUfunction f, CUstream s, void **params, void **extra) {
  if (sp_use_note(f, params, extra) && !sp_stream_capturing(s)) sp_migrate_pass();
  sp_fence_enter();
}

#define LAUNCH_ARGS f, gx, gy, gz, bx, by, bz, shmem, s, params, extra

static CUresult launch(sp_cuLaunchKernel_fn real, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                       unsigned by, unsigned bz, unsigned shmem, CUstream s, void **params, void **extra) {
  if (!real) return CUDA_ERROR_NOT_FOUND;
  if (!migrating()) return real(LAUNCH_ARGS);
  before_launch(f, s, params, extra);
  CUresult rc = real(LAUNCH_ARGS);
  sp_fence_leave();
  return rc;
}

SP_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                  unsigned bz, unsigned shmem, CUstream s, void **params, void **extra) {
  sp_cuda_load();
  return launch(sp_real.cuLaunchKernel, LAUNCH_ARGS);
}

SP_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                       unsigned bz, unsigned shmem, CUstream s, void **params, void **extra) {
  sp_cuda_load();
  return launch(sp_real.cuLaunchKernel_ptsz, LAUNCH_ARGS);
}

static CUresult launch_ex(sp_cuLaunchKernelEx_fn real, const CUlaunchConfig *cfg, CUfunction f, void **params,
                          void **extra) {
  if (!real) return CUDA_ERROR_NOT_FOUND;
  if (!cfg || !migrating()) return real(cfg, f, params, extra);
  before_launch(f, cfg->hStream, params, extra);
  CUresult rc = real(cfg, f, params, extra);
  sp_fence_leave();
  return rc;
}

SP_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *cfg, CUfunction f, void **params, void **extra) {
  sp_cuda_load();
  return launch_ex(sp_real.cuLaunchKernelEx, cfg, f, params, extra);
}

SP_EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *cfg, CUfunction f, void **params, void **extra) {
  sp_cuda_load();
  return launch_ex(sp_real.cuLaunchKernelEx_ptsz, cfg, f, params, extra);
}

#define SP_FENCED(name, params, args)                 \
  SP_EXPORT CUresult name params {                    \
    sp_cuda_load();                                   \
    if (!sp_real.name) return CUDA_ERROR_NOT_FOUND;   \
    if (!migrating()) return sp_real.name args;       \
    sp_fence_enter();                                 \
    CUresult rc = sp_real.name args;                  \
    sp_fence_leave();                                 \
    return rc;                                        \
  }
/* The peer check first: one load while a single GPU is in use (sp_peers_possible). */
#define SP_FENCED_COPY(name, params, args, dst, src, dctx, sctx) \
  SP_EXPORT CUresult name params {                               \
    sp_cuda_load();                                              \
    if (!sp_real.name) return CUDA_ERROR_NOT_FOUND;              \
    if (sp_peers_possible()) sp_peer_copy(dst, src, dctx, sctx); \
    if (!migrating()) return sp_real.name args;                  \
    sp_fence_enter();                                            \
    CUresult rc = sp_real.name args;                             \
    sp_fence_leave();                                            \
    return rc;                                                   \
  }
#include "fenced.def"
#undef SP_FENCED_COPY
#undef SP_FENCED
