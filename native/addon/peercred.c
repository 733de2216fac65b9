/*
** peercred.c: a Node addon (build/peercred.node) with one function, peerCred(fd), that returns the
** kernel's SO_PEERCRED of a connected Unix socket: {pid, uid, gid} of the process that called
** connect(). The broker uses it so that a lease belongs to the process the kernel names, not to
** whatever pid a client writes in HELLO (Node itself has no SO_PEERCRED). Throws on a bad fd.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "node_api_abi.h"

static napi_value peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != 0 || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != 0 || fd < 0) {
    napi_throw_error(env, "ERR_PEERCRED", "peerCred(fd): expected the file descriptor of a Unix socket");
    return NULL;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
    char msg[128];
    snprintf(msg, sizeof msg, "getsockopt(SO_PEERCRED) on fd %d: %s", (int)fd, strerror(errno));
    napi_throw_error(env, "ERR_PEERCRED", msg);
    return NULL;
  }
  napi_value out, pid, uid, gid;
  if (napi_create_object(env, &out) != 0 || napi_create_int32(env, (int32_t)cred.pid, &pid) != 0 ||
      napi_create_uint32(env, (uint32_t)cred.uid, &uid) != 0 || napi_create_uint32(env, (uint32_t)cred.gid, &gid) != 0 ||
      napi_set_named_property(env, out, "pid", pid) != 0 || napi_set_named_property(env, out, "uid", uid) != 0 ||
      napi_set_named_property(env, out, "gid", gid) != 0)
    return NULL;
  return out;
}

/* Node-API 8 is what Node 20 assumes for an addon that does not say; said here explicitly. */
__attribute__((visibility("default"))) int32_t node_api_module_get_api_version_v1(void) { return 8; }

__attribute__((visibility("default"))) napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "peerCred", (size_t)-1, peer_cred, NULL, &fn) != 0) return exports;
  napi_set_named_property(env, exports, "peerCred", fn);
  return exports;
}
