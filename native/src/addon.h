// The functions the addon exports (registered in addon.cc), one file per kernel family.
#pragma once

#include <node_api.h>

namespace gt {

napi_value Matmul(napi_env env, napi_callback_info info);  // gemm.cc
napi_value Adamw(napi_env env, napi_callback_info info);   // adamw.cc
napi_value Binary(napi_env env, napi_callback_info info);  // elementwise.cc
napi_value Reduce(napi_env env, napi_callback_info info);  // reduce.cc
napi_value CeRows(napi_env env, napi_callback_info info);  // head.cc
napi_value Gelu(napi_env env, napi_callback_info info);    // gelu.cc

}  // namespace gt
