// The one GIL helper of the bindings (Note [GIL at exit]): every binding that touches pixels runs
// under py::call_guard<ReleaseGil>, by declaration, never by a remembered manual call.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <thread>

namespace fastprep {
namespace python {

inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

// The main thread's id, set once when the module is imported (module.cpp), read-only afterwards.
extern unsigned long g_main_thread;

// Note [GIL at exit]
// Every pixel-touching binding runs under this guard (py::call_guard<ReleaseGil>). Unlike
// pybind11's gil_scoped_release, it does not re-take the GIL once the interpreter has begun to
// finalize: CPython (before 3.14) ends a daemon thread that asks for the GIL then with
// pthread_exit, whose forced unwind through this (noexcept) destructor would call
// std::terminate and abort the whole process ("terminate called without an active
// exception"). Such a thread parks here instead, as CPython 3.14 itself does, and the process
// exits normally. The Loader joins its own threads at exit before finalization; this covers any
// other daemon thread a user runs a batch on.
// The thread that finalizes (the main thread) is never parked: a native call from a __del__
// during its own teardown must return, not hang the exit.
class ReleaseGil {
 public:
  ReleaseGil() : state_(PyEval_SaveThread()) {}
  ~ReleaseGil() {
    while (interpreter_finalizing() && PyThread_get_thread_ident() != g_main_thread)
      std::this_thread::sleep_for(std::chrono::seconds(3600));
    PyEval_RestoreThread(state_);
  }
  ReleaseGil(const ReleaseGil&) = delete;
  ReleaseGil& operator=(const ReleaseGil&) = delete;

 private:
  PyThreadState* state_;
};

}  // namespace python
}  // namespace fastprep
