// N-API argument helpers shared by the exported functions.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>

// Returns `ret` from the calling function (with a JS error) when an N-API call fails; CHECK returns nullptr (an
// N-API function's failure).
#define CHECK_OR(call, ret)                                              \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error(env, nullptr, "gemm: N-API call failed: " #call); \
      return ret;                                                        \
    }                                                                    \
  } while (0)
#define CHECK(call) CHECK_OR(call, nullptr)

namespace gt {

// The data and length of a Float32Array argument; false for anything else.
inline bool getF32(napi_env env, napi_value v, float** data, size_t* len) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  napi_typedarray_type type;
  void* ptr;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, &ptr, &ab, &off) != napi_ok) return false;
  if (type != napi_float32_array) return false;
  *data = static_cast<float*>(ptr);
  return true;
}

// The data and length of an Int32Array argument; false for anything else.
inline bool getI32(napi_env env, napi_value v, const int32_t** data, size_t* len) {
  bool is = false;
  napi_typedarray_type type;
  void* ptr;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, len, &ptr, &ab, &off) != napi_ok || type != napi_int32_array)
    return false;
  *data = static_cast<const int32_t*>(ptr);
  return true;
}

// Reads the call's arguments into argv (room for `max`): false, with a TypeError `what`, unless min..max were given.
inline bool getArgs(napi_env env, napi_callback_info info, napi_value* argv, size_t min, size_t max, size_t* argc, const char* what) {
  *argc = max;
  if (napi_get_cb_info(env, info, argc, argv, nullptr, nullptr) != napi_ok || *argc < min || *argc > max) {
    napi_throw_type_error(env, nullptr, what);
    return false;
  }
  return true;
}

}  // namespace gt
