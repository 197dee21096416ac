// The functions the addon exports (registered in addon.cc), one file per kernel family, and the kernel set they use.
#pragma once

#include <node_api.h>

#include "kernels/kernel-set.h"

namespace gt {

napi_value Matmul(napi_env env, napi_callback_info info);  // gemm.cc
napi_value MatmulBf16(napi_env env, napi_callback_info info);  // gemm.cc
napi_value Bf16Kernels(napi_env env, napi_callback_info info);  // gemm.cc
napi_value Adamw(napi_env env, napi_callback_info info);   // adamw.cc
napi_value Binary(napi_env env, napi_callback_info info);  // elementwise.cc
napi_value Reduce(napi_env env, napi_callback_info info);  // reduce.cc
napi_value CeRows(napi_env env, napi_callback_info info);  // head.cc
napi_value Gelu(napi_env env, napi_callback_info info);    // gelu.cc
napi_value NormRope(napi_env env, napi_callback_info info);      // norm.cc
napi_value NormRopeGrad(napi_env env, napi_callback_info info);  // norm.cc
napi_value SumSquares(napi_env env, napi_callback_info info);    // reduce.cc
napi_value MaskedSoftmax(napi_env env, napi_callback_info info); // softmax.cc
napi_value SoftmaxGrad(napi_env env, napi_callback_info info);   // softmax.cc

// The kernel set in use (addon.cc): the fastest this CPU supports until setKernels picks another. Read it under
// poolLock(), once per call.
const KernelSet& kernels();

}  // namespace gt
