// What each architecture folder provides to the dispatcher (kernels/dispatch.cpp): one folder is
// compiled per build (setup.py): kernels/x86, kernels/arm or kernels/generic. Private to kernels/.
#pragma once

#include "core/common.h"

namespace fastprep {

struct Kernels;

// <arch>/cpu.cpp: the best level this CPU runs, and the levels this build has for it.
Simd arch_best_simd();
const char* const* arch_levels(int* n);
// <arch>/table.cpp: whether the CPU runs `level` (scalar always), and the entries `level`
// overrides in `k` (which holds the scalar reference's table of mode `fast`).
bool arch_runs(Simd level);
void arch_fill(Simd level, bool fast, Kernels* k);

}  // namespace fastprep
