// Native kernels for the tfjs cpu backend, as one N-API addon (loaded by src/perf/native.ts): GEMM (gemm.cc), a
// fused AdamW update (adamw.cc), elementwise binary ops (elementwise.cc), reductions (reduce.cc), the LM head's
// cross-entropy rows (head.cc) and GELU (gelu.cc), all on one thread pool (threads.cc).
#include <node_api.h>

#include "addon.h"
#include "args.h"
#include "simd.h"
#include "threads.h"

namespace gt {
namespace {

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t n = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) {
    napi_throw_range_error(env, nullptr, "gemm.setThreads: expected a positive integer");
    return nullptr;
  }
  const auto lk = poolLock();
  setPoolThreads(n);
  return nullptr;
}

napi_value GetThreads(napi_env env, napi_callback_info) {
  napi_value out;
  CHECK(napi_create_int32(env, poolThreads(), &out));
  return out;
}

napi_value Simd(napi_env env, napi_callback_info) {
  napi_value out;
  CHECK(napi_create_string_utf8(env, GT_AVX2 ? "avx2-fma" : "scalar", NAPI_AUTO_LENGTH, &out));
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  initPool();
  napi_property_descriptor props[] = {
      {"matmul", nullptr, Matmul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reduce", nullptr, Reduce, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"binary", nullptr, Binary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adamw", nullptr, Adamw, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ceRows", nullptr, CeRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gelu", nullptr, Gelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, GetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"simd", nullptr, Simd, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

}  // namespace
}  // namespace gt

NAPI_MODULE(NODE_GYP_MODULE_NAME, gt::Init)
