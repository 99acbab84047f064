// Which x86 levels this CPU runs (cpuid). Only compiled on x86-64.
#include <cpuid.h>

#include "kernels/dispatch.h"
#include "kernels/x86/kernels.h"
#include "kernels/arch.h"

namespace fastprep {

bool x86_has_avx2_fma() {
  __builtin_cpu_init();
  // AVX2 kernels may use FMA (every AVX2 CPU made has it; a VM may still hide it).
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool x86_has_sse41() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.1");
}

bool x86_has_f16c() {
  unsigned a, b, c, d;  // CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does not know "f16c")
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

Simd arch_best_simd() {
  if (x86_has_avx2_fma()) return Simd::kAVX2;
  if (x86_has_sse41()) return Simd::kSSE41;
  return Simd::kScalar;
}

const char* const* arch_levels(int* n) {
  static const char* const kLevels[] = {"scalar", "sse41", "avx2"};
  *n = 3;
  return kLevels;
}

bool arch_runs(Simd level) {
  switch (level) {
    case Simd::kScalar: return true;
    case Simd::kSSE41: return x86_has_sse41();
    case Simd::kAVX2: return x86_has_avx2_fma();
    default: return false;
  }
}

}  // namespace fastprep
