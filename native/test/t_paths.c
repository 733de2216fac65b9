/*
** t_paths.c: every way a program reaches the driver lands on the interposer's hooks:
**  bootstrap  what libcudart does: dlopen("libcuda.so.1"), dlsym cuGetProcAddress_v2, then every
**             function by base name + version (+ per-thread flag); unhooked names come back as
**             the driver's own, cuGetExportTable untouched; totalGlobalMem = reported total
**  dlsym      dlsym on a libcuda handle, RTLD_DEFAULT, the PLT (linked with -lcuda), NVML by
**             handle, for every name of src/hooks.def (included, not copied); foreign names
**             (malloc via RTLD_NEXT, cudnn*) forwarded untouched
*/
#include "t_common.h"

/* The interposer's hook table, from its own source. */
static const char *const cu_hooks[] = {
#define SP_HOOK_CU(name) #name,
#define SP_HOOK_NVML(name)
#include "../src/hooks.def"
#undef SP_HOOK_CU
#undef SP_HOOK_NVML
};
static const char *const nvml_hooks[] = {
#define SP_HOOK_CU(name)
#define SP_HOOK_NVML(name) #name,
#include "../src/hooks.def"
#undef SP_HOOK_CU
#undef SP_HOOK_NVML
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef CUresult (*gpa_v2_fn)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);
typedef CUresult (*gpa_fn)(const char *, void **, int, cuuint64_t);

static void *get(gpa_v2_fn gpa, const char *name, int ver, cuuint64_t flags) {
  void *fn = NULL;
  CUdriverProcAddressQueryResult st = -1;
  CU(gpa(name, &fn, ver, flags, &st));
  CHECK(st == CU_GET_PROC_ADDRESS_SUCCESS && fn, "%s@%d: status %d fn %p", name, ver, st, fn);
  return fn;
}

static void *hook(const char *name) {
  void *h = dlsym(RTLD_DEFAULT, name);
  CHECK(t_is_hook(h), "RTLD_DEFAULT %s is not the hook", name);
  return h;
}

static int bootstrap(void) {
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  CHECK(lib, "dlopen libcuda.so.1: %s", dlerror());
  gpa_v2_fn gpa = (gpa_v2_fn)dlsym(lib, "cuGetProcAddress_v2");
  CHECK(gpa == hook("cuGetProcAddress_v2"), "dlsym(libcuda, cuGetProcAddress_v2) is not the hook");

  CUresult (*init)(unsigned) = (CUresult(*)(unsigned))get(gpa, "cuInit", 12000, 0);
  CHECK(!t_is_hook((void *)init), "cuInit should be the driver's own");
  CU(init(0));
  struct {
    const char *base;
    int ver;
    cuuint64_t flags;
    const char *expect;
  } want[] = {
      {"cuMemAlloc", 3020, 0, "cuMemAlloc_v2"},
      {"cuMemAllocPitch", 3020, 0, "cuMemAllocPitch_v2"},
      {"cuMemFree", 3020, 0, "cuMemFree_v2"},
      {"cuMemAllocAsync", 11020, 0, "cuMemAllocAsync"},
      {"cuMemAllocAsync", 11020, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "cuMemAllocAsync_ptsz"},
      {"cuMemFreeAsync", 11020, 0, "cuMemFreeAsync"},
      {"cuMemFreeAsync", 11020, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, "cuMemFreeAsync_ptsz"},
      {"cuMemAllocFromPoolAsync", 11020, 0, "cuMemAllocFromPoolAsync"},
      {"cuMemGetInfo", 3020, 0, "cuMemGetInfo_v2"},
      {"cuDeviceTotalMem", 3020, 0, "cuDeviceTotalMem_v2"},
      {"cuDeviceTotalMem", 2000, 0, "cuDeviceTotalMem"},
      {"cuPointerGetAttribute", 4000, 0, "cuPointerGetAttribute"},
      {"cuPointerGetAttributes", 7000, 0, "cuPointerGetAttributes"},
      {"cuMemGetAddressRange", 3020, 0, "cuMemGetAddressRange_v2"},
      {"cuIpcGetMemHandle", 4010, 0, "cuIpcGetMemHandle"},
      {"cuMemCreate", 10020, 0, "cuMemCreate"},
      {"cuMemRelease", 10020, 0, "cuMemRelease"},
      {"cuGetProcAddress", 12000, 0, "cuGetProcAddress_v2"},
      {"cuGetProcAddress", 11030, 0, "cuGetProcAddress"},
  };
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    void *fn = get(gpa, want[i].base, want[i].ver, want[i].flags);
    CHECK(fn == hook(want[i].expect), "cuGetProcAddress(%s, %d, %llu) did not return the %s hook", want[i].base,
          want[i].ver, (unsigned long long)want[i].flags, want[i].expect);
  }
  /* per-thread and legacy variants are different hooks */
  CHECK(get(gpa, "cuMemAllocAsync", 11020, 0) != get(gpa, "cuMemAllocAsync", 11020, 2), "ptsz collapsed");
  /* not ours: the driver's own pointer, unchanged */
  void *getfn = get(gpa, "cuModuleGetFunction", 4000, 0);
  CHECK(!t_is_hook(getfn) && getfn == dlsym(lib, "cuModuleGetFunction"), "cuModuleGetFunction was substituted");
  /* the launches are hooked (migrate.c scans them), per-thread variant included */
  CHECK(t_is_hook(get(gpa, "cuLaunchKernel", 4000, 0)) && t_is_hook(get(gpa, "cuLaunchKernel", 7000, 2)),
        "cuLaunchKernel is not routed to the hook");
  /* so are the graph entry points (graph_hooks.c), whichever version and stream flavour is asked */
  CHECK(get(gpa, "cuGraphLaunch", 12000, 2) == hook("cuGraphLaunch_ptsz") &&
            get(gpa, "cuGraphInstantiate", 12000, 0) == hook("cuGraphInstantiateWithFlags") &&
            get(gpa, "cuGraphExecUpdate", 12000, 0) == hook("cuGraphExecUpdate_v2") &&
            get(gpa, "cuGraphExecKernelNodeSetParams", 12000, 0) == hook("cuGraphExecKernelNodeSetParams_v2"),
        "the graph entry points are not routed to their hooks");
  void *et = NULL;
  CUdriverProcAddressQueryResult st = -1;
  CU(gpa("cuGetExportTable", &et, 3000, 0, &st));
  CHECK(et && !t_is_hook(et), "cuGetExportTable substituted or missing");
  /* unknown symbol: status filled, pointer NULL */
  void *none = (void *)1;
  st = -1;
  CUresult rc = gpa("cuNoSuchFunction", &none, 12000, 0, &st);
  CHECK(st == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND && none == NULL, "unknown symbol: rc %d status %d", rc, st);
  /* the 4-argument wrapper routes too */
  gpa_fn gpa1 = (gpa_fn)get(gpa, "cuGetProcAddress", 11030, 0);
  void *alloc = NULL;
  CU(gpa1("cuMemAlloc", &alloc, 3020, 0));
  CHECK(alloc == hook("cuMemAlloc_v2"), "4-arg cuGetProcAddress did not route cuMemAlloc");

  /* the runtime's totalGlobalMem comes from cuDeviceTotalMem: the reported total */
  CUresult (*totalmem)(size_t *, CUdevice) = (CUresult(*)(size_t *, CUdevice))get(gpa, "cuDeviceTotalMem", 3020, 0);
  size_t total = 0;
  CU(totalmem(&total, 0));
  size_t expect = t_env_size("SPILLOVER_VRAM_LIMIT", 0) + t_env_size("SPILLOVER_PINNED_LIMIT", 0);
  CHECK(total == expect, "totalGlobalMem %zu, expected limit+pinned %zu", total, expect);
  printf("bootstrap total=%zu\n", total);

  /* an allocation through the bootstrap pointer is tiered past the budget */
  t_setup();
  CUresult (*ma)(CUdeviceptr *, size_t) = (CUresult(*)(CUdeviceptr *, size_t))get(gpa, "cuMemAlloc", 3020, 0);
  CUresult (*mf)(CUdeviceptr) = (CUresult(*)(CUdeviceptr))get(gpa, "cuMemFree", 3020, 0);
  CUdeviceptr p;
  size_t big = t_env_size("SPILLOVER_VRAM_LIMIT", 0) + 8 * MiB;
  CU(ma(&p, big));
  t_location_fn loc = t_location();
  if (loc) CHECK(loc(p + big - 1) == 2, "last page of a past-budget allocation is not host memory");
  CU(mf(p));
  printf("ok bootstrap\n");
  return 0;
}

static int dlsym_paths(void) {
  void *lib = dlopen("libcuda.so.1", RTLD_NOW);
  CHECK(lib, "dlopen: %s", dlerror());
  /* glibc's own dlsym says what the driver itself defines (the fake lacks some hooked names). */
  void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  void *(*libc_dlsym)(void *, const char *) = libc ? (void *(*)(void *, const char *))dlvsym(libc, "dlsym", "GLIBC_2.34") : NULL;
  if (!libc_dlsym && libc) libc_dlsym = (void *(*)(void *, const char *))dlvsym(libc, "dlsym", "GLIBC_2.2.5");
  CHECK(libc_dlsym && !t_is_hook((void *)libc_dlsym), "glibc's dlsym");
  size_t routed = 0;
  for (size_t i = 0; i < COUNT(cu_hooks); i++) {
    void *drv = libc_dlsym(lib, cu_hooks[i]), *got = dlsym(lib, cu_hooks[i]);
    CHECK(drv ? got == hook(cu_hooks[i]) : got == NULL, "dlsym(libcuda, %s) is %p, driver's %p", cu_hooks[i], got, drv);
    routed += drv != NULL;
  }
  void *getfn = dlsym(lib, "cuModuleGetFunction");
  CHECK(getfn && !t_is_hook(getfn), "dlsym(libcuda, cuModuleGetFunction) should be the driver's");
  /* PLT: the program's own reference (linked with -lcuda) binds to the hook */
  CHECK(t_is_hook((void *)&cuMemAlloc_v2), "PLT cuMemAlloc_v2 is not the hook");
  CHECK(t_is_hook((void *)&cuMemGetInfo_v2), "PLT cuMemGetInfo_v2 is not the hook");
  /* RTLD_NEXT from the program: the next definition after the program is ours (preloaded) */
  CHECK(t_is_hook(dlsym(RTLD_NEXT, "cuMemAlloc_v2")), "RTLD_NEXT cuMemAlloc_v2");
  /* foreign names forwarded untouched */
  void *m_next = dlsym(RTLD_NEXT, "malloc");
  CHECK(m_next && m_next == dlsym(RTLD_DEFAULT, "malloc"), "RTLD_NEXT malloc changed");
  CHECK(dlsym(lib, "cudnnCreate") == NULL, "cudnnCreate resolved from libcuda");
  CHECK(dlsym(lib, "cuNoSuch") == NULL, "unknown cu symbol not NULL");
  /* NVML through its handle */
  void *nv = dlopen("libnvidia-ml.so.1", RTLD_NOW);
  CHECK(nv, "dlopen nvml: %s", dlerror());
  for (size_t i = 0; i < COUNT(nvml_hooks); i++)
    CHECK(dlsym(nv, nvml_hooks[i]) == hook(nvml_hooks[i]), "dlsym(libnvidia-ml, %s) is not the hook", nvml_hooks[i]);
  void *ninit = dlsym(nv, "nvmlInit_v2");
  CHECK(ninit && !t_is_hook(ninit), "nvmlInit_v2 should be the library's");
  /* dlvsym is not ours: still works */
  CHECK(dlvsym(RTLD_DEFAULT, "dlsym", "GLIBC_2.2.5") != NULL, "dlvsym dlsym@GLIBC_2.2.5");
  printf("ok dlsym cu=%zu (%zu in this driver) nvml=%zu\n", COUNT(cu_hooks), routed, COUNT(nvml_hooks));
  return 0;
}

int main(int argc, char **argv) {
  const char *s = argc > 1 ? argv[1] : "";
  if (!strcmp(s, "bootstrap")) return bootstrap();
  if (!strcmp(s, "dlsym")) return dlsym_paths();
  fprintf(stderr, "usage: t_paths bootstrap|dlsym\n");
  return 2;
}
