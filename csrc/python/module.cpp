// fastprep._core: the module, one register_* per topic (register.h).
#include <pybind11/pybind11.h>

#include "core/common.h"
#include "python/gil.h"
#include "python/register.h"

namespace py = pybind11;

namespace fastprep {
namespace python {
unsigned long g_main_thread = 0;
}  // namespace python
}  // namespace fastprep

PYBIND11_MODULE(_core, m) {
  using namespace fastprep;
  m.doc() = "fastprep native core: fused JPEG decode -> resize -> crop -> flip -> colour -> normalize -> layout";
  python::g_main_thread = py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  python::register_plan(m);
  python::register_batch(m);
  python::register_offline(m);
  py::module_ testing = m.def_submodule("testing", "Kernel entry points for tests and micro-benchmarks (not API).");
  python::register_testing(testing);
}
