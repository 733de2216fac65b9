/*
** procaddr.c: cuGetProcAddress (4 arguments, CUDA 11.3+) and cuGetProcAddress_v2 (5 arguments,
** CUDA 12+). The runtime fetches every driver function through these by base name + ABI
** version + stream flags; we ask the real driver first and swap the returned pointer for the
** hook of exactly that entry point (route.c), so version and flags are honoured and unhooked
** functions come back untouched. Self-lookups route to these wrappers through the same table.
*/
#define _GNU_SOURCE
#include "sp.h"

static void route_result(void **pfn) {
  if (pfn && *pfn) {
    void *h = sp_route_lookup(*pfn);
    if (h) *pfn = h;
  }
}

SP_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                                       CUdriverProcAddressQueryResult *symbolStatus) {
  sp_cuda_load();
  CUdriverProcAddressQueryResult local = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  CUdriverProcAddressQueryResult *st = symbolStatus ? symbolStatus : &local;
  CUresult rc;
  if (sp_real.cuGetProcAddress_v2) {
    rc = sp_real.cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, symbolStatus);
  } else if (sp_real.cuGetProcAddress) {
    /* Driver older than 12.0: emulate the status argument. */
    rc = sp_real.cuGetProcAddress(symbol, pfn, cudaVersion, flags);
    *st = rc == CUDA_SUCCESS ? CU_GET_PROC_ADDRESS_SUCCESS : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  } else {
    if (symbolStatus) *symbolStatus = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_ERROR_NOT_FOUND;
  }
  if (rc == CUDA_SUCCESS) route_result(pfn);
  return rc;
}

SP_EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags) {
  sp_cuda_load();
  CUresult rc;
  if (sp_real.cuGetProcAddress) {
    rc = sp_real.cuGetProcAddress(symbol, pfn, cudaVersion, flags);
  } else if (sp_real.cuGetProcAddress_v2) {
    CUdriverProcAddressQueryResult st;
    rc = sp_real.cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, &st);
  } else {
    return CUDA_ERROR_NOT_FOUND;
  }
  if (rc == CUDA_SUCCESS) route_result(pfn);
  return rc;
}
