#include "kernels/dispatch.h"

#include <cctype>
#include <cstdlib>

#include "kernels/arch.h"
#include "kernels/color.h"
#include "kernels/augment.h"
#include "kernels/reference.h"

namespace fastprep {

namespace {

// The scalar reference's table of mode `fast` (every level starts from it).
Kernels reference_kernels(bool fast) {
  Kernels k;
  k.level = Simd::kScalar;
  k.fast = fast;
  k.hpass_row = hpass_row_ref;
  k.vpass_row = vpass_row_ref;
  k.jitter_hue = jitter_hue;
  k.random_hsv_row = random_hsv_row_ref;
  k.warp_row = warp_row_ref;
  k.sharpness_row = sharpness_row_ref;
  k.pil_affine_row = pil_affine_row_ref;
  k.pil_color_row = pil_color_row_ref;
  k.pil_sharpness_row = pil_sharpness_row_ref;
  k.blur_taps = blur_taps_ref;
  k.pil_box_row = pil_box_row_ref;
  k.rgb_min_max = rgb_min_max;
  k.png_unfilter = png_unfilter_ref;
  k.png_expand_rgbx = png_expand_rgbx_ref;
  return k;  // jitter_scale / jitter_saturation / gray_sum null: color.cpp's whole-image loops
}

constexpr int kLevels = 4;  // Simd's values

// Every table, built once on first use and immutable afterwards.
struct Tables {
  Kernels k[kLevels][2];
  Tables() {
    for (int l = 0; l < kLevels; ++l)
      for (int f = 0; f < 2; ++f) {
        k[l][f] = reference_kernels(f == 1);
        k[l][f].level = static_cast<Simd>(l);
        arch_fill(static_cast<Simd>(l), f == 1, &k[l][f]);
      }
  }
};

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

std::string levels_here() {
  int n = 0;
  const char* const* names = arch_levels(&n);
  std::string out;
  for (int i = 0; i < n; ++i) out += (i ? ", " : "") + std::string(names[i]);
  return out;
}

bool of_this_architecture(Simd s) {
  int n = 0;
  const char* const* names = arch_levels(&n);
  for (int i = 0; i < n; ++i)
    if (names[i] == std::string(simd_name(s))) return true;
  return false;
}

}  // namespace

const Kernels& kernels_for(Simd level, bool fast) {
  static const Tables tables;  // C++11: initialised once, thread-safely
  if (!simd_supported(level))
    throw Error(ErrorKind::kInvalid, std::string("SIMD level '") + simd_name(level) + "' is not supported by this CPU");
  return tables.k[static_cast<int>(level)][fast ? 1 : 0];
}

Simd cpu_best_simd() { return arch_best_simd(); }

bool simd_supported(Simd s) { return arch_runs(s); }

const char* const* compiled_levels(int* n) { return arch_levels(n); }

const char* simd_name(Simd s) {
  switch (s) {
    case Simd::kAVX2: return "avx2";
    case Simd::kSSE41: return "sse41";
    case Simd::kNEON: return "neon";
    default: return "scalar";
  }
}

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
  if (!of_this_architecture(want))
    throw Error(ErrorKind::kInvalid, "FASTPREP_SIMD='" + name + "' names a level of another architecture: this build "
                                         "runs " + levels_here() + " (or auto)");
  // The variable caps the level: one above what this CPU runs means the best it has.
  return simd_supported(want) ? want : best;
}

}  // namespace fastprep
