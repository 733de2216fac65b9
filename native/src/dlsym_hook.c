/*
** dlsym_hook.c: the exported dlsym, under both glibc versions (GLIBC_2.2.5 for binaries built
** before glibc 2.34, GLIBC_2.34 after; see exports.map). Only cu[A-Z]* / nvml[A-Z]* names are
** looked at, and only a pointer that resolves into the driver libraries is swapped for its hook.
** Every other lookup is forwarded with a tail jump, so the real dlsym sees the caller's return
** address and RTLD_NEXT / RTLD_DEFAULT keep meaning "relative to the caller".
*/
#define _GNU_SOURCE
#include <dlfcn.h>

#include "sp.h"

static sp_dlsym_fn real_dlsym;

/* dlvsym, not dlsym: the public dlsym is this file's own definition. No pthread_once: another
** preloaded runtime (AddressSanitizer's) calls dlsym while it sets up its own interceptors, and
** pthread_once is one of them, not yet callable then. Two threads racing here find the same
** pointer. */
sp_dlsym_fn sp_real_dlsym_get(void) {
  sp_dlsym_fn f = __atomic_load_n(&real_dlsym, __ATOMIC_ACQUIRE);
  if (f) return f;
  f = (sp_dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
  if (!f) f = (sp_dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
  __atomic_store_n(&real_dlsym, f, __ATOMIC_RELEASE);
  return f;
}

/* Called by the entry stub: returns the real dlsym to tail-jump to when the lookup is none of
** ours, or NULL to run sp_dlsym_impl. */
__attribute__((used, visibility("hidden"))) void *sp_dlsym_forward_target(const char *name) {
  sp_dlsym_fn rd = sp_real_dlsym_get();
  if (!rd) return NULL;
  if (sp_in_load || !sp_is_driver_name(name)) return (void *)rd;
  return NULL;
}

static void *swap(void *r, const char *name) {
  void *h = sp_route_lookup(r);
  if (h) return h;
  /* Tables are built on first need, and only if the library is really loaded by the program. */
  if (name[0] == 'c') {
    if (sp_cuda_handle_if_loaded()) sp_cuda_load();
  } else {
    if (sp_nvml_handle_if_loaded()) sp_nvml_load();
  }
  h = sp_route_lookup(r);
  return h ? h : r;
}

__attribute__((used, visibility("hidden"))) void *sp_dlsym_impl(void *handle, const char *name) {
  sp_dlsym_fn rd = sp_real_dlsym_get();
  if (!rd) return NULL;
  void *r = rd(handle, name);
  if (!r && (handle == RTLD_DEFAULT || handle == RTLD_NEXT)) {
    /* Our scope is the global one; a driver library loaded RTLD_LOCAL by the caller's library
    ** is still found through its own handle. */
    void *lib = name[0] == 'c' ? sp_cuda_handle_if_loaded() : sp_nvml_handle_if_loaded();
    if (lib) r = rd(lib, name);
  }
  if (!r) return NULL;
  return swap(r, name);
}

#if defined(__x86_64__)
/* Entry stub (both versions): saves the arguments, asks sp_dlsym_forward_target, then either
** tail-jumps to the real dlsym (caller's return address intact) or to sp_dlsym_impl. */
__asm__(".text\n"
        ".p2align 4\n"
        ".globl sp_dlsym_v2_2_5\n"
        ".type sp_dlsym_v2_2_5, @function\n"
        ".globl sp_dlsym_v2_34\n"
        ".type sp_dlsym_v2_34, @function\n"
        "sp_dlsym_v2_2_5:\n"
        "sp_dlsym_v2_34:\n"
        "  pushq %rdi\n"
        "  pushq %rsi\n"
        "  subq $8, %rsp\n"
        "  movq %rsi, %rdi\n"
        "  call sp_dlsym_forward_target\n"
        "  addq $8, %rsp\n"
        "  popq %rsi\n"
        "  popq %rdi\n"
        "  testq %rax, %rax\n"
        "  jz 1f\n"
        "  jmp *%rax\n"
        "1:\n"
        "  jmp sp_dlsym_impl\n"
        ".size sp_dlsym_v2_2_5, .-sp_dlsym_v2_2_5\n"
        ".size sp_dlsym_v2_34, .-sp_dlsym_v2_34\n"
        ".symver sp_dlsym_v2_2_5, dlsym@GLIBC_2.2.5\n"
        ".symver sp_dlsym_v2_34, dlsym@@GLIBC_2.34\n");
#else
/* Other architectures: no tail jump, so RTLD_NEXT lookups of foreign names resolve relative to
** this library rather than the caller (documented limitation). */
SP_EXPORT void *dlsym(void *handle, const char *name) {
  void *fwd = sp_dlsym_forward_target(name);
  if (fwd) return ((sp_dlsym_fn)fwd)(handle, name);
  return sp_dlsym_impl(handle, name);
}
#endif
