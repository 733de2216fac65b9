/*
** real.c: finds the real driver libraries and their functions. libcuda / libnvidia-ml are opened
** lazily (first hooked call, or a dlsym/cuGetProcAddress that needs routing), never from a
** constructor, and always through the real dlsym: the public one would resolve to our own hook.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "sp.h"

struct sp_real_table sp_real;
__thread int sp_in_load;

static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static pthread_once_t nvml_once = PTHREAD_ONCE_INIT;
static void *cuda_handle, *nvml_handle;

static const char *cuda_path(void) { return sp_cfg.libcuda[0] ? sp_cfg.libcuda : "libcuda.so.1"; }
static const char *nvml_path(void) { return sp_cfg.libnvml[0] ? sp_cfg.libnvml : "libnvidia-ml.so.1"; }

/* Resolve from the driver library; if it could not be opened, from whatever follows us in the
** search order (a program linked with -lcuda still reaches the real driver that way). */
static void *resolve(void *h, const char *name) {
  sp_dlsym_fn real_dlsym = sp_real_dlsym_get();
  if (!real_dlsym) return NULL;
  return real_dlsym(h ? h : RTLD_NEXT, name);
}

static void do_cuda_load(void) {
  sp_active(); /* configuration (library paths) */
  sp_in_load = 1;
  cuda_handle = dlopen(cuda_path(), RTLD_NOW | RTLD_NODELETE);
  char why[256] = "";
  if (!cuda_handle) {
    const char *e = dlerror(); /* now: the lookups below overwrite it */
    snprintf(why, sizeof(why), "%s", e ? e : "unknown error");
  }
  sp_in_load = 0;
#define SP_REAL_CU(name, params) sp_real.name = (sp_##name##_fn)resolve(cuda_handle, #name);
#define SP_REAL_NVML(name, params)
#include "real_syms.def"
#undef SP_REAL_CU
#undef SP_REAL_NVML
  if (cuda_handle) sp_route_build(cuda_handle, 0);
  else if (!sp_cfg.libcuda_reported)
    sp_log(SP_LOG_WARN, "cannot open %s (%s); hooks forward to the next definition", cuda_path(), why);
}

static void do_nvml_load(void) {
  sp_active();
  sp_in_load = 1;
  nvml_handle = dlopen(nvml_path(), RTLD_NOW | RTLD_NODELETE);
  sp_in_load = 0;
#define SP_REAL_CU(name, params)
#define SP_REAL_NVML(name, params) sp_real.name = (sp_##name##_fn)resolve(nvml_handle, #name);
#include "real_syms.def"
#undef SP_REAL_CU
#undef SP_REAL_NVML
  if (nvml_handle) sp_route_build(nvml_handle, 1);
}

void sp_cuda_load(void) { pthread_once(&cuda_once, do_cuda_load); }
void sp_nvml_load(void) { pthread_once(&nvml_once, do_nvml_load); }

static void *if_loaded(const char *path) {
  sp_in_load = 1;
  void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
  sp_in_load = 0;
  if (h) dlclose(h); /* NOLOAD took a reference; the library stays loaded by its owner */
  return h;
}

void *sp_cuda_handle_if_loaded(void) {
  sp_active();
  return if_loaded(cuda_path());
}

void *sp_nvml_handle_if_loaded(void) {
  sp_active();
  return if_loaded(nvml_path());
}
