// Which kernel sets this CPU can run, checked once at run time: one binary holds every set compiled for its
// architecture (kset-*.cc) and uses the fastest the CPU supports, or the one GEMMA_TUNE_KERNELS forces
// (src/perf/native.ts). Compiled with the baseline flags only.
#include <string.h>

#include "kernel-set.h"

namespace gt {
namespace {

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
// __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0), not only the CPUID bits.
bool hasAvx2Fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool hasAvx512() { return __builtin_cpu_supports("avx512f") && hasAvx2Fma(); }
bool hasAvx512Bf16() { return hasAvx512() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16"); }
#endif

struct Supported {
  const KernelSet* sets[4];
  int n = 0;
  Supported() {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (hasAvx512()) sets[n++] = kernelsAvx512();
    if (hasAvx2Fma()) sets[n++] = kernelsAvx2();
#endif
#if defined(__aarch64__)
    sets[n++] = kernelsNeon();
#endif
    sets[n++] = kernelsScalar();
  }
};

const Supported& supported() {
  static const Supported s;
  return s;
}

}  // namespace

const KernelSet* const* supportedKernelSets(int* n) {
  *n = supported().n;
  return supported().sets;
}

bool bf16DotSupported() {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
  supported();  // __builtin_cpu_init has run
  return hasAvx512Bf16();
#else
  return false;
#endif
}

const KernelSet* findKernelSet(const char* name) {
  int n;
  const KernelSet* const* sets = supportedKernelSets(&n);
  for (int i = 0; i < n; i++)
    if (strcmp(sets[i]->name, name) == 0) return sets[i];
  return nullptr;
}

}  // namespace gt
