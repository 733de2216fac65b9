/*
** spillover_probe.c: what `spillover doctor` asks of the driver and of libspillover.so, answered
** as one JSON object on stdout. Loads the driver with dlopen (SPILLOVER_LIBCUDA, else
** libcuda.so.1), so it builds without the CUDA toolkit and runs (and says "no driver") without one.
**
**   spillover-probe               driver version, devices, VMM and HOST_NUMA support per device
**   spillover-probe --lib PATH    also: can PATH be dlopen'ed (RTLD_NOW), and the dlerror if not
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/cuda_abi.h"

typedef CUresult (*cuInit_t)(unsigned);
typedef CUresult (*cuDriverGetVersion_t)(int *);
typedef CUresult (*cuDeviceGetCount_t)(int *);
typedef CUresult (*cuDeviceGet_t)(CUdevice *, int);
typedef CUresult (*cuDeviceGetAttribute_t)(int *, int, CUdevice);
typedef CUresult (*cuDeviceGetName_t)(char *, int, CUdevice);
typedef CUresult (*cuDeviceTotalMem_t)(size_t *, CUdevice);

static void json_str(const char *s) {
  putchar('"');
  for (; s && *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
    else putchar(*s);
  }
  putchar('"');
}

static void probe_lib(const char *path) {
  printf(",\"lib\":{\"path\":");
  json_str(path);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h) {
    printf(",\"loads\":true}");
  } else {
    printf(",\"loads\":false,\"error\":");
    json_str(dlerror());
    printf("}");
  }
}

int main(int argc, char **argv) {
  const char *lib = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--lib") == 0 && i + 1 < argc) lib = argv[++i];
  }
  const char *cuda = getenv("SPILLOVER_LIBCUDA");
  if (!cuda || !*cuda) cuda = "libcuda.so.1";
  printf("{\"probe\":1,\"libcuda\":");
  json_str(cuda);
  void *h = dlopen(cuda, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    printf(",\"driver\":false,\"error\":");
    json_str(dlerror());
    if (lib) probe_lib(lib);
    printf("}\n");
    return 0;
  }
  cuInit_t cuInit = (cuInit_t)dlsym(h, "cuInit");
  cuDriverGetVersion_t getVersion = (cuDriverGetVersion_t)dlsym(h, "cuDriverGetVersion");
  cuDeviceGetCount_t getCount = (cuDeviceGetCount_t)dlsym(h, "cuDeviceGetCount");
  cuDeviceGet_t devGet = (cuDeviceGet_t)dlsym(h, "cuDeviceGet");
  cuDeviceGetAttribute_t getAttr = (cuDeviceGetAttribute_t)dlsym(h, "cuDeviceGetAttribute");
  cuDeviceGetName_t getName = (cuDeviceGetName_t)dlsym(h, "cuDeviceGetName");
  cuDeviceTotalMem_t totalMem = (cuDeviceTotalMem_t)dlsym(h, "cuDeviceTotalMem_v2");
  if (!cuInit || !getVersion || !getCount || !devGet || !getAttr) {
    printf(",\"driver\":false,\"error\":\"libcuda lacks cuInit/cuDriverGetVersion/cuDeviceGet*\"");
    if (lib) probe_lib(lib);
    printf("}\n");
    return 0;
  }
  int ver = 0, n = 0;
  CUresult r = cuInit(0);
  getVersion(&ver);
  printf(",\"driver\":true,\"init\":%d,\"version\":%d", r, ver);
  if (r == 0 && getCount(&n) == 0) {
    printf(",\"devices\":[");
    for (int i = 0; i < n; i++) {
      CUdevice d = 0;
      int vmm = -1, numa_id = -1, numa_vmm = -1, ccmaj = 0, ccmin = 0;
      char name[256] = "";
      size_t total = 0;
      devGet(&d, i);
      if (getAttr(&vmm, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, d) != 0) vmm = -1;
      if (getAttr(&numa_id, CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, d) != 0) numa_id = -2;
      if (getAttr(&numa_vmm, CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, d) != 0) numa_vmm = -1;
      getAttr(&ccmaj, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d);
      getAttr(&ccmin, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d);
      if (getName) getName(name, sizeof name, d);
      if (totalMem) totalMem(&total, d);
      printf("%s{\"index\":%d,\"name\":", i ? "," : "", i);
      json_str(name);
      printf(",\"total\":%zu,\"cc\":\"%d.%d\",\"vmm\":%d,\"hostNumaId\":%d,\"hostNumaVmm\":%d}", total, ccmaj, ccmin,
             vmm, numa_id, numa_vmm);
    }
    printf("]");
  }
  if (lib) probe_lib(lib);
  printf("}\n");
  return 0;
}
