/*
** launch_hooks.c: the kernel launches and the other fenced entry points (fenced.def). A launch is
** scanned for pointers into tiered ranges (migrate.c counts them), may first run a migration pass,
** may be rewritten to read staged copies (stream.c), and is enqueued under the fence, like every
** fenced call, so no page changes its backing while work that names it is being enqueued. A copy
** or memset that names a staged range first settles it (its written pages back in place). With
** SPILLOVER_MIGRATE=0 and SPILLOVER_STREAM=0 they only pass through.
*/
#define _GNU_SOURCE
#include "sp.h"

/* Placement or streaming may change what a launch reads: enqueue under the fence. */
static int migrating(void) { return sp_active() && (sp_cfg.migrate || sp_cfg.stream); }

static void before_launch(sp_stream_launch *L, CUfunction f, CUstream s, int ptsz, void **params, void **extra) {
  if (sp_cfg.migrate && sp_use_note(f, params, extra) && !sp_stream_capturing(s)) sp_migrate_pass();
  sp_stream_prepare(f);
  sp_fence_enter();
  sp_stream_before(L, f, s, ptsz, params, extra);
}

static void after_launch(sp_stream_launch *L, CUresult rc) {
  sp_stream_after(L, rc);
  sp_fence_leave();
}

#define LAUNCH_ARGS f, gx, gy, gz, bx, by, bz, shmem, s, params, extra

static CUresult launch(sp_cuLaunchKernel_fn real, int ptsz, CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                       unsigned bx, unsigned by, unsigned bz, unsigned shmem, CUstream s, void **params, void **extra) {
  if (!real) return CUDA_ERROR_NOT_FOUND;
  if (!migrating()) return real(LAUNCH_ARGS);
  sp_stream_launch L;
  before_launch(&L, f, s, ptsz, params, extra);
  CUresult rc = real(f, gx, gy, gz, bx, by, bz, shmem, s, L.params, L.extra);
  after_launch(&L, rc);
  return rc;
}

SP_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                  unsigned bz, unsigned shmem, CUstream s, void **params, void **extra) {
  sp_cuda_load();
  return launch(sp_real.cuLaunchKernel, 0, LAUNCH_ARGS);
}

SP_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                       unsigned bz, unsigned shmem, CUstream s, void **params, void **extra) {
  sp_cuda_load();
  return launch(sp_real.cuLaunchKernel_ptsz, 1, LAUNCH_ARGS);
}

static CUresult launch_ex(sp_cuLaunchKernelEx_fn real, int ptsz, const CUlaunchConfig *cfg, CUfunction f,
                          void **params, void **extra) {
  if (!real) return CUDA_ERROR_NOT_FOUND;
  if (!cfg || !migrating()) return real(cfg, f, params, extra);
  sp_stream_launch L;
  before_launch(&L, f, cfg->hStream, ptsz, params, extra);
  CUresult rc = real(cfg, f, L.params, L.extra);
  after_launch(&L, rc);
  return rc;
}

SP_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *cfg, CUfunction f, void **params, void **extra) {
  sp_cuda_load();
  return launch_ex(sp_real.cuLaunchKernelEx, 0, cfg, f, params, extra);
}

SP_EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *cfg, CUfunction f, void **params, void **extra) {
  sp_cuda_load();
  return launch_ex(sp_real.cuLaunchKernelEx_ptsz, 1, cfg, f, params, extra);
}

/* 2D/3D copies and cooperative launches name memory the engine cannot see: every staged range
** settles first (only once the engine has staged anything). */
#define SP_FENCED(name, params, args)                 \
  SP_EXPORT CUresult name params {                    \
    sp_cuda_load();                                   \
    if (!sp_real.name) return CUDA_ERROR_NOT_FOUND;   \
    sp_stream_settle_all();                           \
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
    sp_stream_touch(dst);                                        \
    sp_stream_touch(src);                                        \
    if (!migrating()) return sp_real.name args;                  \
    sp_fence_enter();                                            \
    CUresult rc = sp_real.name args;                             \
    sp_fence_leave();                                            \
    return rc;                                                   \
  }
#include "fenced.def"
#undef SP_FENCED_COPY
#undef SP_FENCED
