// AArch64: Advanced SIMD (NEON) is mandatory in ARMv8-A. Only compiled on AArch64.
#include "kernels/arch.h"

namespace fastprep {

Simd arch_best_simd() { return Simd::kNEON; }

const char* const* arch_levels(int* n) {
  static const char* const kLevels[] = {"scalar", "neon"};
  *n = 2;
  return kLevels;
}

bool arch_runs(Simd level) { return level == Simd::kScalar || level == Simd::kNEON; }

}  // namespace fastprep
