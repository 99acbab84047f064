// An architecture without SIMD kernels here (neither x86-64 nor AArch64): the scalar reference
// only. Compiled instead of kernels/x86 or kernels/arm (setup.py).
#include "kernels/arch.h"

namespace fastprep {

Simd arch_best_simd() { return Simd::kScalar; }

const char* const* arch_levels(int* n) {
  static const char* const kLevels[] = {"scalar"};
  *n = 1;
  return kLevels;
}

bool arch_runs(Simd level) { return level == Simd::kScalar; }

void arch_fill(Simd, bool, Kernels*) {}

}  // namespace fastprep
