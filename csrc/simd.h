// Runtime choice of the SIMD level (like libjpeg-turbo's jsimd dispatcher).
#pragma once

#include <string>

#include "common.h"

namespace fastprep {

// Best level this CPU supports (cpuid), independent of any override.
Simd cpu_best_simd();

// Whether this x86 CPU converts float16 in hardware (F16C; the float16 output kernel uses it).
bool cpu_has_f16c();

// Whether this build and CPU can run `s` (scalar always; SSE4.1/AVX2 on x86-64 per cpuid; NEON
// on AArch64, where it is part of the base ISA).
bool simd_supported(Simd s);

// Level to use by default: cpu_best_simd() capped by the FASTPREP_SIMD environment variable
// ("scalar", "sse41", "avx2", "neon" or "auto", in any case): a level above what the CPU runs
// gives the CPU's best; an unknown name, or a level of another architecture, throws
// Error(kInvalid) naming the variable. The environment is read on every call; nothing is cached.
Simd default_simd();

// Parses "scalar" | "sse41" | "avx2" | "neon" | "auto" (any case) for an explicit request (a
// plan's simd=); throws Error(kInvalid) otherwise. A level the CPU lacks is an error, never a
// silent downgrade.
Simd parse_simd(const std::string& name);

const char* simd_name(Simd s);

}  // namespace fastprep
