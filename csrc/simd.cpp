#include "simd.h"

#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace fastprep {

bool cpu_has_f16c() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;  // CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does not know "f16c")
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
#else
  return false;
#endif
}

Simd cpu_best_simd() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // AVX2 kernels may use FMA (every AVX2 CPU made has it; a VM may still hide it).
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Simd::kAVX2;
  if (__builtin_cpu_supports("sse4.1")) return Simd::kSSE41;
#elif defined(__aarch64__)
  return Simd::kNEON;  // Advanced SIMD is mandatory in ARMv8-A
#endif
  return Simd::kScalar;
}

bool simd_supported(Simd s) {
  const Simd best = cpu_best_simd();
  switch (s) {
    case Simd::kScalar: return true;
    case Simd::kSSE41: return best == Simd::kSSE41 || best == Simd::kAVX2;
    case Simd::kAVX2: return best == Simd::kAVX2;
    case Simd::kNEON: return best == Simd::kNEON;
  }
  return false;
}

const char* simd_name(Simd s) {
  switch (s) {
    case Simd::kAVX2: return "avx2";
    case Simd::kSSE41: return "sse41";
    case Simd::kNEON: return "neon";
    default: return "scalar";
  }
}

Simd parse_simd(const std::string& name) {
  Simd best = cpu_best_simd();
  Simd want;
  if (name.empty() || name == "auto") return best;
  if (name == "scalar" || name == "none") want = Simd::kScalar;
  else if (name == "sse41" || name == "sse4.1") want = Simd::kSSE41;
  else if (name == "avx2") want = Simd::kAVX2;
  else if (name == "neon") want = Simd::kNEON;
  else throw Error(ErrorKind::kInvalid, "unknown SIMD level '" + name + "' (expected scalar, sse41, avx2, neon or auto)");
  if (!simd_supported(want))
    throw Error(ErrorKind::kInvalid, std::string("SIMD level '") + name + "' is not supported by this CPU (best: " +
                                         simd_name(best) + ")");
  return want;
}

Simd default_simd() {
  const char* env = std::getenv("FASTPREP_SIMD");
  return parse_simd(env ? std::string(env) : std::string());
}

}  // namespace fastprep
