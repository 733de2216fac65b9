/*
** node_api_abi.h: the few Node-API (N-API) declarations native/addon/peercred.c uses, vendored
** the way cuda_abi.h vendors the driver's. Node-API is a stable C ABI (Node guarantees it across
** major versions), so the addon builds with gcc alone: no node-gyp, no Node headers, no Python.
** The symbols are resolved from the running node binary when the addon is loaded.
** Reference: https://nodejs.org/api/n-api.html (js_native_api.h, node_api.h).
*/
#ifndef SPILLOVER_NODE_API_ABI_H
#define SPILLOVER_NODE_API_ABI_H

#include <stddef.h>
#include <stdint.h>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status; /* napi_ok = 0 */
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);

napi_status napi_get_cb_info(napi_env env, napi_callback_info cbinfo, size_t *argc, napi_value *argv,
                             napi_value *this_arg, void **data);
napi_status napi_get_value_int32(napi_env env, napi_value value, int32_t *result);
napi_status napi_create_object(napi_env env, napi_value *result);
napi_status napi_create_int32(napi_env env, int32_t value, napi_value *result);
napi_status napi_create_uint32(napi_env env, uint32_t value, napi_value *result);
napi_status napi_set_named_property(napi_env env, napi_value object, const char *utf8name, napi_value value);
napi_status napi_create_function(napi_env env, const char *utf8name, size_t length, napi_callback cb, void *data,
                                 napi_value *result);
napi_status napi_throw_error(napi_env env, const char *code, const char *msg);

#endif /* SPILLOVER_NODE_API_ABI_H */
