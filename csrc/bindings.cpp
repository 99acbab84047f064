// The only file that knows about Python. Every binding that touches pixels releases the GIL by
// declaration (py::call_guard<ReleaseGil>, Note [GIL at exit]); Python objects are converted and
// pinned beforehand, while the GIL is held, in the Batch constructor.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "jpeg_decoder.h"
#include "jpeg_encoder.h"
#include "output.h"
#include "pipeline.h"
#include "plan.h"
#include "resample.h"
#include "simd.h"
#include "thread_pool.h"

namespace py = pybind11;
using namespace fastprep;

namespace {

bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

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
unsigned long g_main_thread = 0;  // set once at import, read-only afterwards

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

struct EncodedBytes {
  std::vector<uint8_t> data;
};

template <typename T>
T get_or(const py::dict& d, const char* key, T dflt) {
  return d.contains(key) && !d[key].is_none() ? d[key].cast<T>() : dflt;
}

PlanSpec spec_from_dict(const py::dict& d) {
  PlanSpec s;
  s.resize_mode = get_or<int>(d, "resize_mode", 0);
  s.resize_size = get_or<int>(d, "resize_size", 0);
  s.resize_h = get_or<int>(d, "resize_h", 0);
  s.resize_w = get_or<int>(d, "resize_w", 0);
  s.max_size = get_or<int>(d, "max_size", 0);
  s.interp = static_cast<Interp>(get_or<int>(d, "interp", 1));
  s.antialias = get_or<bool>(d, "antialias", true);
  s.crop_h = get_or<int>(d, "crop_h", 0);
  s.crop_w = get_or<int>(d, "crop_w", 0);
  s.rrc = get_or<bool>(d, "rrc", false);
  s.rrc_h = get_or<int>(d, "rrc_h", 0);
  s.rrc_w = get_or<int>(d, "rrc_w", 0);
  s.scale_lo = get_or<double>(d, "scale_lo", 0.08);
  s.scale_hi = get_or<double>(d, "scale_hi", 1.0);
  s.ratio_lo = get_or<double>(d, "ratio_lo", 3.0 / 4.0);
  s.ratio_hi = get_or<double>(d, "ratio_hi", 4.0 / 3.0);
  s.flip_p = get_or<double>(d, "flip_p", 0.0);
  s.dtype = static_cast<DType>(get_or<int>(d, "dtype", 1));
  s.layout = static_cast<Layout>(get_or<int>(d, "layout", 0));
  s.color = static_cast<Color>(get_or<int>(d, "color", 0));
  s.gray_channels = get_or<int>(d, "gray_channels", 1);
  s.normalize = get_or<bool>(d, "normalize", false);
  auto mean = get_or<std::vector<float>>(d, "mean", {0, 0, 0});
  auto stdv = get_or<std::vector<float>>(d, "std", {1, 1, 1});
  if (mean.size() != 3 || stdv.size() != 3) throw Error(ErrorKind::kInvalid, "mean and std need 3 values");
  for (int c = 0; c < 3; ++c) {
    s.mean[c] = mean[c];
    s.std[c] = stdv[c];
  }
  s.unit_range = get_or<bool>(d, "unit_range", true);
  s.exact = get_or<bool>(d, "exact", false);
  s.max_pixels = get_or<int64_t>(d, "max_pixels", 0);
  s.strict = get_or<bool>(d, "strict", true);
  s.allow_truncated = get_or<bool>(d, "allow_truncated", false);
  std::string simd = get_or<std::string>(d, "simd", "");
  s.simd = simd.empty() ? default_simd() : parse_simd(simd);
  return s;
}

// Samples pinned for native runs: inputs converted once (paths encoded, buffers requested)
// while the GIL is held. A Loader builds one for its whole dataset.
class Items {
 public:
  explicit Items(const py::list& items) {
    const size_t n = items.size();
    inputs_.resize(n);
    bufs_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      py::handle o = items[i];
      SampleInput& in = inputs_[i];
      if (py::isinstance<py::str>(o)) {
        in.kind = SampleInput::kPath;
        py::object enc = py::reinterpret_steal<py::object>(PyUnicode_EncodeFSDefault(o.ptr()));
        if (!enc) throw py::error_already_set();
        in.path = enc.cast<std::string>();
        continue;
      }
      bufs_.push_back(std::make_unique<py::buffer_info>(py::reinterpret_borrow<py::buffer>(o).request()));
      const py::buffer_info& b = *bufs_.back();
      if (b.ndim <= 1) {
        if (b.ndim == 1 && b.strides[0] != b.itemsize)
          throw Error(ErrorKind::kInvalid, "item " + std::to_string(i) + ": encoded bytes must be contiguous");
        in.kind = SampleInput::kBytes;
        in.data = static_cast<const uint8_t*>(b.ptr);
        in.size = static_cast<size_t>(b.size * b.itemsize);
      } else {
        if (b.itemsize != 1 || (b.format != "B" && b.format != "b" && b.format != "c"))
          throw Error(ErrorKind::kInvalid, "item " + std::to_string(i) + ": pixel arrays must be uint8");
        if (b.ndim > 3 || (b.ndim == 3 && b.strides[2] != 1))
          throw Error(ErrorKind::kInvalid,
                      "item " + std::to_string(i) + ": pixel arrays must be HxW or HxWxC with contiguous channels");
        in.kind = SampleInput::kArray;
        in.data = static_cast<const uint8_t*>(b.ptr);
        in.h = static_cast<int>(b.shape[0]);
        in.w = static_cast<int>(b.shape[1]);
        in.c = b.ndim == 3 ? static_cast<int>(b.shape[2]) : 1;
        in.row_stride = b.strides[0];
        in.px_stride = b.strides[1];
      }
    }
  }
  size_t size() const { return inputs_.size(); }
  const SampleInput& operator[](size_t i) const { return inputs_[i]; }

 private:
  std::vector<SampleInput> inputs_;
  std::vector<std::unique_ptr<py::buffer_info>> bufs_;
};

// Lets another thread stop a running Batch between samples (the Loader's shutdown).
struct CancelToken {
  std::atomic<bool> flag{false};
};

// One native run: picks[i] of `items` goes to output slot slots[i] with random key indices[i].
class Batch {
 public:
  using Index = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

  static std::vector<int64_t> to_vec(const Index& a) {
    if (a.ndim() != 1) throw Error(ErrorKind::kInvalid, "index arrays must be 1-D");
    return std::vector<int64_t>(a.data(), a.data() + a.shape(0));
  }

  Batch(std::shared_ptr<Plan> plan, std::shared_ptr<Items> items, const Index& picks, const Index& slots,
        const Index& indices, uint64_t seed, uint64_t epoch, std::shared_ptr<CancelToken> cancel)
      : plan_(std::move(plan)), items_(std::move(items)), picks_(to_vec(picks)), slots_(to_vec(slots)),
        seed_(seed), epoch_(epoch), cancel_(std::move(cancel)) {
    for (int64_t k : to_vec(indices)) indices_.push_back(static_cast<uint64_t>(k));
    const size_t n = picks_.size();
    if (slots_.size() != n || indices_.size() != n) throw Error(ErrorKind::kInvalid, "picks/slots/indices length mismatch");
    for (int64_t p : picks_)
      if (p < 0 || static_cast<size_t>(p) >= items_->size()) throw Error(ErrorKind::kInvalid, "pick out of range");
    for (int64_t s : slots_)
      if (s < 0) throw Error(ErrorKind::kInvalid, "negative slot");
    results_.resize(n);
  }

  // Attaches the output buffer: C-contiguous, writable, (N, ...) slots of out_h x out_w.
  void set_output(py::buffer out, int out_h, int out_w) {
    out_info_ = std::make_unique<py::buffer_info>(out.request(true));
    const py::buffer_info& b = *out_info_;
    if (b.readonly) throw Error(ErrorKind::kInvalid, "output buffer is read-only");
    const size_t es = dtype_size(plan_->spec.dtype);
    if (static_cast<size_t>(b.itemsize) != es) throw Error(ErrorKind::kInvalid, "output buffer has the wrong item size");
    // C-contiguity check.
    py::ssize_t expect = b.itemsize;
    for (py::ssize_t d = b.ndim - 1; d >= 0; --d) {
      if (b.shape[d] > 1 && b.strides[d] != expect) throw Error(ErrorKind::kInvalid, "output buffer must be C-contiguous");
      expect *= b.shape[d];
    }
    slot_bytes_ = checked_mul(checked_mul(checked_mul(out_h, out_w), plan_->out.channels), es);
    int64_t max_slot = -1;
    for (int64_t s : slots_) max_slot = std::max(max_slot, s);
    if (static_cast<size_t>(b.size * b.itemsize) < slot_bytes_ * static_cast<size_t>(max_slot + 1))
      throw Error(ErrorKind::kInvalid, "output buffer is too small");
    out_ = static_cast<uint8_t*>(b.ptr);
    out_h_ = out_h;
    out_w_ = out_w;
  }

  void probe(Engine& engine) {
    engine.run(static_cast<int64_t>(picks_.size()), [&](Worker& w, int64_t i) {
      probe_sample(*plan_, w, (*items_)[picks_[i]], key(i), &results_[i]);
    });
  }

  void decode_only(Engine& engine) {
    engine.run(static_cast<int64_t>(picks_.size()), [&](Worker& w, int64_t i) {
      fastprep::decode_only(plan_->spec, w, (*items_)[picks_[i]], &results_[i]);
    });
  }

  void run(Engine& engine) {
    if (!out_) throw Error(ErrorKind::kInvalid, "no output attached");
    engine.run(static_cast<int64_t>(picks_.size()), [&](Worker& w, int64_t i) {
      if (cancel_ && cancel_->flag.load(std::memory_order_relaxed)) {
        results_[i].status = SampleStatus::kError;
        results_[i].kind = ErrorKind::kInvalid;
        results_[i].message = "cancelled";
        return;
      }
      run_sample(*plan_, w, (*items_)[picks_[i]], key(i), out_ + slot_bytes_ * slots_[i], out_h_, out_w_, &results_[i]);
    });
  }

  py::array_t<int8_t> status() const {
    py::array_t<int8_t> a(static_cast<py::ssize_t>(results_.size()));
    auto m = a.mutable_unchecked<1>();
    for (size_t i = 0; i < results_.size(); ++i) m(i) = static_cast<int8_t>(results_[i].status);
    return a;
  }

  // Per sample: corrupt-data warnings the decoder tolerated (allow_truncated / strict=False).
  py::array_t<int32_t> warnings() const {
    py::array_t<int32_t> a(static_cast<py::ssize_t>(results_.size()));
    auto m = a.mutable_unchecked<1>();
    for (size_t i = 0; i < results_.size(); ++i) m(i) = results_[i].warnings;
    return a;
  }

  py::list errors() const {
    py::list l;
    for (size_t i = 0; i < results_.size(); ++i)
      if (results_[i].status == SampleStatus::kError)
        l.append(py::make_tuple(i, static_cast<int>(results_[i].kind), results_[i].message));
    return l;
  }

  // Per sample: top, left, height, width, flip, src_h, src_w, out_h, out_w, decode_denom, orientation.
  py::array_t<int64_t> params() const {
    py::array_t<int64_t> a({static_cast<py::ssize_t>(results_.size()), py::ssize_t(11)});
    auto m = a.mutable_unchecked<2>();
    for (size_t i = 0; i < results_.size(); ++i) {
      const Geometry& g = results_[i].geom;
      int64_t v[11] = {g.box_t, g.box_l, g.box_h, g.box_w, g.flip, g.src_h, g.src_w, g.out_h, g.out_w,
                       results_[i].decode_denom, results_[i].orientation};
      for (int j = 0; j < 11; ++j) m(i, j) = v[j];
    }
    return a;
  }

 private:
  RunKey key(int64_t i) const { return RunKey{seed_, epoch_, indices_[i]}; }

  std::shared_ptr<Plan> plan_;
  std::shared_ptr<Items> items_;
  std::vector<int64_t> picks_;
  std::vector<SampleResult> results_;
  std::unique_ptr<py::buffer_info> out_info_;
  std::vector<int64_t> slots_;
  std::vector<uint64_t> indices_;
  uint64_t seed_, epoch_;
  std::shared_ptr<CancelToken> cancel_;
  uint8_t* out_ = nullptr;
  size_t slot_bytes_ = 0;
  int out_h_ = 0, out_w_ = 0;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastprep native core: fused JPEG decode -> resize -> crop -> flip -> normalize -> layout";
  g_main_thread = py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def("cpu_simd", [] { return std::string(simd_name(cpu_best_simd())); }, "Best SIMD level of this CPU.");
  m.def("default_simd", [] { return std::string(simd_name(default_simd())); },
        "SIMD level used by default (FASTPREP_SIMD caps it).");

  py::class_<Plan, std::shared_ptr<Plan>>(m, "Plan")
      .def(py::init([](const py::dict& d) { return std::make_shared<Plan>(spec_from_dict(d)); }))
      .def_property_readonly("fixed_size", [](const Plan& p) -> py::object {
        int h, w;
        if (p.fixed_size(&h, &w)) return py::make_tuple(h, w);
        return py::none();
      })
      .def_property_readonly("channels", [](const Plan& p) { return p.out.channels; })
      .def_property_readonly("simd", [](const Plan& p) { return std::string(simd_name(p.spec.simd)); })
      .def("lut", [](const Plan& p) {
        return py::bytes(reinterpret_cast<const char*>(p.out.lut.data()), p.out.lut.size());
      }, "The per-channel level -> output value table (see Note [Normalisation by table]).");

  py::class_<Engine>(m, "Engine")
      .def(py::init<int>(), py::arg("threads"))
      .def_property_readonly("threads", &Engine::threads)
      .def_property_readonly("rebuilds", &Engine::rebuilds,
                             "Pools rebuilt in a forked child (see Note [Fork] in thread_pool.h).");

  py::class_<CancelToken, std::shared_ptr<CancelToken>>(m, "CancelToken")
      .def(py::init<>())
      .def("cancel", [](CancelToken& t) { t.flag.store(true); })
      .def_property_readonly("cancelled", [](const CancelToken& t) { return t.flag.load(); });

  py::class_<Items, std::shared_ptr<Items>>(m, "Items")
      .def(py::init<const py::list&>(), py::arg("items"))
      .def("__len__", &Items::size);

  py::class_<Batch>(m, "Batch")
      .def(py::init<std::shared_ptr<Plan>, std::shared_ptr<Items>, const Batch::Index&, const Batch::Index&,
                    const Batch::Index&, uint64_t, uint64_t, std::shared_ptr<CancelToken>>(),
           py::arg("plan"), py::arg("items"), py::arg("picks"), py::arg("slots"), py::arg("indices"),
           py::arg("seed"), py::arg("epoch"), py::arg("cancel") = nullptr)
      .def("set_output", &Batch::set_output, py::arg("out"), py::arg("out_h"), py::arg("out_w"))
      .def("probe", &Batch::probe, py::arg("engine"), py::call_guard<ReleaseGil>())
      .def("run", &Batch::run, py::arg("engine"), py::call_guard<ReleaseGil>())
      .def("decode_only", &Batch::decode_only, py::arg("engine"), py::call_guard<ReleaseGil>(),
           "Full libjpeg-turbo decode of every pick, no transform: the speed ceiling.")
      .def("status", &Batch::status)
      .def("warnings", &Batch::warnings)
      .def("errors", &Batch::errors)
      .def("params", &Batch::params);

  // Encoded bytes returned from a GIL-free call; Python wraps them with bytes(...) (buffer protocol).
  py::class_<EncodedBytes>(m, "EncodedBytes", py::buffer_protocol())
      .def_buffer([](EncodedBytes& e) { return py::buffer_info(e.data.data(), e.data.size()); })
      .def("__len__", [](const EncodedBytes& e) { return e.data.size(); });

  m.def(
      "encode_jpeg",
      [](const py::array_t<uint8_t, py::array::c_style>& img, int quality, int subsampling, bool progressive) {
        // img was converted (and is referenced) before the GIL was released by the call guard.
        const int ndim = static_cast<int>(img.ndim());
        if (ndim != 2 && ndim != 3) throw Error(ErrorKind::kInvalid, "image must be HxW or HxWxC uint8");
        const int c = ndim == 3 ? static_cast<int>(img.shape(2)) : 1;
        EncodedBytes out;
        out.data = encode_jpeg(img.data(), static_cast<int>(img.shape(0)), static_cast<int>(img.shape(1)), c,
                               img.strides(0), quality, subsampling, progressive);
        return out;
      },
      py::arg("image"), py::arg("quality") = 90, py::arg("subsampling") = 420, py::arg("progressive") = false,
      py::call_guard<ReleaseGil>(), "Encodes an HxW or HxWx3 uint8 image as JPEG with libjpeg-turbo.");

  // Kernel-level entry points for tests and micro-benchmarks.
  m.def("float_to_half", [](float f) { return float_to_half(f); });
  m.def("float_to_bfloat16", [](float f) { return float_to_bfloat16(f); });
}
