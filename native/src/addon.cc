// Native kernels for the tfjs cpu backend, as one N-API addon (loaded by src/perf/native.ts): GEMM (gemm.cc), a
// fused AdamW update (adamw.cc), elementwise binary ops (elementwise.cc), reductions (reduce.cc), the LM head's
// cross-entropy rows (head.cc) and GELU (gelu.cc), all on one thread pool (threads.cc). GEMM, the cross-entropy rows
// and GELU run on a kernel set chosen at run time (kernels/select.cc: scalar, AVX2/FMA, AVX-512 or NEON); the
// others are plain C++ whose results do not depend on the instruction set (they reproduce tfjs's bits).
#include <node_api.h>

#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "addon.h"
#include "args.h"
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

const KernelSet* active = nullptr;

// kernels(): the name of the kernel set in use.
napi_value Kernels(napi_env env, napi_callback_info) {
  napi_value out;
  CHECK(napi_create_string_utf8(env, kernels().name, NAPI_AUTO_LENGTH, &out));
  return out;
}

// kernelSets(): the names of the sets this CPU supports, fastest first.
napi_value KernelSets(napi_env env, napi_callback_info) {
  int n;
  const KernelSet* const* sets = supportedKernelSets(&n);
  napi_value out, name;
  CHECK(napi_create_array_with_length(env, n, &out));
  for (int i = 0; i < n; i++) {
    CHECK(napi_create_string_utf8(env, sets[i]->name, NAPI_AUTO_LENGTH, &name));
    CHECK(napi_set_element(env, out, i, name));
  }
  return out;
}

// setKernels(name): use that set from now on; false (nothing changes) when this CPU or build does not have it.
napi_value SetKernels(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  char name[32];
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "gemm.setKernels: expected a kernel set name");
    return nullptr;
  }
  const KernelSet* ks = findKernelSet(name);
  if (ks) {
    const auto lk = poolLock();
    active = ks;
  }
  napi_value out;
  CHECK(napi_get_boolean(env, ks != nullptr, &out));
  return out;
}

// tfjs allocates and frees MB-sized Float32Arrays by the thousand per training step. glibc serves blocks above its
// mmap threshold (dynamic, at most 32 MB) with fresh mmaps, unmaps them on free and trims the heap's free top, so each
// step page-faults gigabytes of newly zeroed memory: about a quarter of a 270M LoRA step. Blocks up to 256 MB now
// come from the heap and freed memory stays there for reuse; the peak RSS is the same (bench, 270M, full and LoRA).
// GEMMA_TUNE_MALLOC=0 keeps glibc's defaults.
void tuneMalloc() {
#if defined(__GLIBC__)
  const char* v = std::getenv("GEMMA_TUNE_MALLOC");
  if (v != nullptr && std::strcmp(v, "0") == 0) return;
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

napi_value Init(napi_env env, napi_value exports) {
  tuneMalloc();
  initPool();
  if (!active) {
    int n;
    active = supportedKernelSets(&n)[0];
  }
  napi_property_descriptor props[] = {
      {"matmul", nullptr, Matmul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matmulBf16", nullptr, MatmulBf16, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bf16Kernels", nullptr, Bf16Kernels, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reduce", nullptr, Reduce, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"binary", nullptr, Binary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adamw", nullptr, Adamw, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ceRows", nullptr, CeRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gelu", nullptr, Gelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"normRope", nullptr, NormRope, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"normRopeGrad", nullptr, NormRopeGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sumSquares", nullptr, SumSquares, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maskedSoftmax", nullptr, MaskedSoftmax, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmaxGrad", nullptr, SoftmaxGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, GetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"simd", nullptr, Kernels, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"kernels", nullptr, Kernels, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"kernelSets", nullptr, KernelSets, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setKernels", nullptr, SetKernels, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

}  // namespace

const KernelSet& kernels() { return *active; }

}  // namespace gt

NAPI_MODULE(NODE_GYP_MODULE_NAME, gt::Init)
