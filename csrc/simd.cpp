#include "simd.h"

#include <cctype>
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

namespace {

// The level a name stands for, case-insensitively ("AVX2" is avx2); false for an unknown name.
bool level_of(std::string name, Simd* out) {
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (name == "scalar" || name == "none") *out = Simd::kScalar;
  else if (name == "sse41" || name == "sse4.1") *out = Simd::kSSE41;
  else if (name == "avx2") *out = Simd::kAVX2;
  else if (name == "neon") *out = Simd::kNEON;
  else return false;
  return true;
}

bool x86_level(Simd s) { return s == Simd::kSSE41 || s == Simd::kAVX2; }

const char* levels_here() {
#if defined(__x86_64__) || defined(__i386__)
  return "scalar, sse41, avx2";
#elif defined(__aarch64__)
  return "scalar, neon";
#else
  return "scalar";
#endif
}

}  // namespace

Simd parse_simd(const std::string& name) {
  const Simd best = cpu_best_simd();
  Simd want;
  if (name.empty() || name == "auto" || name == "AUTO") return best;
  if (!level_of(name, &want))
    throw Error(ErrorKind::kInvalid, "unknown SIMD level '" + name + "' (expected scalar, sse41, avx2, neon or auto)");
  if (!simd_supported(want))
    throw Error(ErrorKind::kInvalid, std::string("SIMD level '") + name + "' is not supported by this CPU (best: " +
                                         simd_name(best) + ")");
  return want;
}

Simd default_simd() {
  const char* env = std::getenv("FASTPREP_SIMD");
  const Simd best = cpu_best_simd();
  if (!env || !*env) return best;
  const std::string name(env);
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "auto") return best;
  Simd want;
  if (!level_of(name, &want))
    throw Error(ErrorKind::kInvalid, "FASTPREP_SIMD='" + name + "' is not a SIMD level: use one of " + levels_here() +
                                         " or auto (case does not matter), or unset it");
  // The variable caps the level: one above what this CPU runs means the best it has.
  if (simd_supported(want)) return want;
  if (want == Simd::kNEON || (x86_level(want) && best == Simd::kNEON))
    throw Error(ErrorKind::kInvalid, "FASTPREP_SIMD='" + name + "' names a level of another architecture: this build " +
                                         "runs " + levels_here() + " (or auto)");
  return best;
}

}  // namespace fastprep
