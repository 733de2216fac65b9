/*
** capture_hooks.c: stream captures in progress anywhere in the process. An allocation made while
** a capture runs (PyTorch's graph pool allocates during torch.cuda.graph) must not synchronise the
** context to make room in VRAM: that would invalidate the capture. migrate.c asks
** sp_capturing_anywhere() before evicting; these hooks keep the count. A capture begins with every
** range the streaming engine staged settled: the captured kernels will read the ranges' own pages.
*/
#define _GNU_SOURCE
#include "sp.h"

/* A stream whose state cannot be read counts as capturing: a pass must not risk the capture. */
int sp_stream_capturing(CUstream s) {
  int status = CU_STREAM_CAPTURE_STATUS_NONE;
  if (!sp_real.cuStreamIsCapturing) return 0; /* a driver without graphs */
  if (sp_real.cuStreamIsCapturing(s, &status) != CUDA_SUCCESS) return 1;
  return status != CU_STREAM_CAPTURE_STATUS_NONE;
}

#define BEGIN(name, params, args)                   \
  SP_EXPORT CUresult name params {                  \
    sp_cuda_load();                                 \
    if (!sp_real.name) return CUDA_ERROR_NOT_FOUND; \
    sp_stream_settle_all(); /* replays read in place */ \
    CUresult rc = sp_real.name args;                \
    if (rc == CUDA_SUCCESS) sp_capture_begin();     \
    return rc;                                      \
  }

BEGIN(cuStreamBeginCapture, (CUstream s), (s)) /* the CUDA 10.0 entry points: no mode */
BEGIN(cuStreamBeginCapture_ptsz, (CUstream s), (s))
BEGIN(cuStreamBeginCapture_v2, (CUstream s, int mode), (s, mode))
BEGIN(cuStreamBeginCapture_v2_ptsz, (CUstream s, int mode), (s, mode))
BEGIN(cuStreamBeginCaptureToGraph, (CUstream s, void *g, const void *deps, const void *data, size_t n, int mode),
      (s, g, deps, data, n, mode))
BEGIN(cuStreamBeginCaptureToGraph_ptsz, (CUstream s, void *g, const void *deps, const void *data, size_t n, int mode),
      (s, g, deps, data, n, mode))

/* An invalidated capture ends here too (with an error): count by the stream's state, not rc. */
#define END(name)                                             \
  SP_EXPORT CUresult name(CUstream s, void **graph) {         \
    sp_cuda_load();                                           \
    if (!sp_real.name) return CUDA_ERROR_NOT_FOUND;           \
    int was = sp_stream_capturing(s);                         \
    CUresult rc = sp_real.name(s, graph);                     \
    if (was && !sp_stream_capturing(s)) sp_capture_end();     \
    return rc;                                                \
  }

END(cuStreamEndCapture)
END(cuStreamEndCapture_ptsz)
