// The bindings by topic (SPDL-style): module.cpp makes the module and calls one register_* per
// topic; the test-only hooks live in their own submodule, fastprep._core.testing. The only
// directory of csrc/ that includes Python or pybind11.
#pragma once

#include <pybind11/pybind11.h>

namespace fastprep {
namespace python {

void register_plan(pybind11::module_& m);     // enums, SIMD levels, build_info, PlanSpec, Plan
void register_batch(pybind11::module_& m);    // Engine, CancelToken, Items, Batch (the fused pass)
void register_offline(pybind11::module_& m);  // encode_jpeg, level_moments, mixup, cutmix
void register_testing(pybind11::module_& m);  // kernel entry points for tests and micro-benchmarks

}  // namespace python
}  // namespace fastprep
