// The only file that knows about Python. Every binding that touches pixels releases the GIL by
// declaration (py::call_guard<ReleaseGil>, Note [GIL at exit]); Python objects are converted and
// pinned beforehand, while the GIL is held, in the Batch constructor.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <optional>
#include <chrono>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "augment.h"
#include "batch.h"
#include "jpeg_decoder.h"
#include "jpeg_encoder.h"
#include "mix.h"
#include "moments.h"
#include "output.h"
#include "pipeline.h"
#include "png_decoder.h"
#include "webp_decoder.h"
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
      if (py::isinstance<py::tuple>(o)) {  // a tar member: (shard path, offset, size, member name)
        py::tuple t = py::reinterpret_borrow<py::tuple>(o);
        if (t.size() < 3 || !py::isinstance<py::str>(t[0]))
          throw Error(ErrorKind::kInvalid, "item " + std::to_string(i) + ": a tuple item must be (path, offset, size, ...)");
        const long long off = t[1].cast<long long>(), len = t[2].cast<long long>();
        if (off < 0 || len < 0)
          throw Error(ErrorKind::kInvalid, "item " + std::to_string(i) + ": member offset and size must be >= 0");
        in.kind = SampleInput::kPath;
        py::object enc = py::reinterpret_steal<py::object>(PyUnicode_EncodeFSDefault(t[0].ptr()));
        if (!enc) throw py::error_already_set();
        in.path = enc.cast<std::string>();
        in.offset = off;
        in.size = static_cast<size_t>(len);
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
  const std::vector<SampleInput>& inputs() const { return inputs_; }

 private:
  std::vector<SampleInput> inputs_;
  std::vector<std::unique_ptr<py::buffer_info>> bufs_;
};

// One row of Batch.params(): what a sample drew and how it was decoded, by name (never by
// column position). Python turns records into dicts through the op registry.
struct ParamRecord {
  int32_t top, left, height, width;  // crop box in displayed source pixels
  bool flip, vflip, gray;            // horizontal / vertical flip, RandomGrayscale
  int8_t jitter_mask;                // ColorJitter: ops applied (bit k = fn_idx k)
  int8_t jitter_order[4];            // ColorJitter: torchvision's fn_idx order
  float jitter_factor[4];            // brightness, contrast, saturation, hue
  float lighting_alpha[3];           // Lighting's draws (0 when off)
  float hsv[3];                      // RandomHSV's gains r (h, s, v) as drawn (0 when off)
  bool affine_on;                    // RandomRotation / RandomAffine applied
  float affine[6];                   // angle, tx, ty, scale, shear_x, shear_y
  int8_t aug_n;                      // the policy's ops applied, in order
  int8_t aug_op[kMaxAugOps];         // AugOp codes
  float aug_mag[kMaxAugOps];         // signed magnitudes
  int32_t erase[4];                  // RandomErasing top, left, height, width (-1: nothing erased)
  int32_t src_h, src_w, out_h, out_w;
  int32_t decode_denom, orientation;
  int64_t decoded_pixels;            // pixels the decoder produced
  double norm_offset, norm_scale;    // per-image table: value = (x - offset) / scale
};

// The Python face of a Batch: converts index arrays and pins the output buffer while the GIL
// is held; runs release it.
class PyBatch {
 public:
  using Index = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

  static std::vector<int64_t> to_vec(const Index& a) {
    if (a.ndim() != 1) throw Error(ErrorKind::kInvalid, "index arrays must be 1-D");
    return std::vector<int64_t>(a.data(), a.data() + a.shape(0));
  }

  PyBatch(std::shared_ptr<Plan> plan, std::shared_ptr<Items> items, const Index& picks, const Index& slots,
          const Index& indices, uint64_t seed, uint64_t epoch, std::shared_ptr<CancelToken> cancel)
      : batch_(std::move(plan), inputs_of(items), to_vec(picks), to_vec(slots), to_u64(indices), seed, epoch,
               std::move(cancel)) {}

  // Attaches the output buffer: C-contiguous, writable, (N, ...) slots of out_h x out_w.
  void set_output(py::buffer out, int out_h, int out_w) {
    auto info = std::make_unique<py::buffer_info>(out.request(true));
    const py::buffer_info& b = *info;
    if (b.readonly) throw Error(ErrorKind::kInvalid, "output buffer is read-only");
    if (static_cast<size_t>(b.itemsize) != dtype_size(batch_.plan().spec.dtype))
      throw Error(ErrorKind::kInvalid, "output buffer has the wrong item size");
    py::ssize_t expect = b.itemsize;
    for (py::ssize_t d = b.ndim - 1; d >= 0; --d) {
      if (b.shape[d] > 1 && b.strides[d] != expect) throw Error(ErrorKind::kInvalid, "output buffer must be C-contiguous");
      expect *= b.shape[d];
    }
    batch_.set_output(static_cast<uint8_t*>(b.ptr), static_cast<size_t>(b.size * b.itemsize), out_h, out_w);
    out_info_ = std::move(info);
  }

  Batch& batch() { return batch_; }

  py::array_t<int8_t> status() const {
    const auto& r = batch_.results();
    py::array_t<int8_t> a(static_cast<py::ssize_t>(r.size()));
    auto m = a.mutable_unchecked<1>();
    for (size_t i = 0; i < r.size(); ++i) m(i) = static_cast<int8_t>(r[i].status);
    return a;
  }

  // Per sample: corrupt-data warnings the decoder tolerated (allow_truncated / strict=False).
  py::array_t<int32_t> warnings() const {
    const auto& r = batch_.results();
    py::array_t<int32_t> a(static_cast<py::ssize_t>(r.size()));
    auto m = a.mutable_unchecked<1>();
    for (size_t i = 0; i < r.size(); ++i) m(i) = r[i].warnings;
    return a;
  }

  // The bytes a "not JPEG" file sample was read into, for the Pillow fallback (None when the
  // sample was not read from a file here, or was taken already).
  py::object take_encoded(size_t i) {
    std::vector<uint8_t> v = batch_.take_encoded(i);
    if (v.empty()) return py::none();
    return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
  }

  // (position, ErrorKind, message) of every failed sample.
  py::list errors() const {
    const auto& r = batch_.results();
    py::list l;
    for (size_t i = 0; i < r.size(); ++i)
      if (r[i].status == SampleStatus::kError) l.append(py::make_tuple(i, r[i].kind, r[i].message));
    return l;
  }

  py::array_t<ParamRecord> params() const {
    const auto& r = batch_.results();
    py::array_t<ParamRecord> a(static_cast<py::ssize_t>(r.size()));
    auto m = a.mutable_unchecked<1>();
    for (size_t i = 0; i < r.size(); ++i) {
      const Geometry& g = r[i].params.geom;
      const JitterParams& j = r[i].params.color.jitter;
      ParamRecord& rec = m(i);
      rec = ParamRecord{};
      rec.top = g.box_t, rec.left = g.box_l, rec.height = g.box_h, rec.width = g.box_w;
      rec.flip = g.flip, rec.vflip = g.vflip, rec.gray = r[i].params.color.gray;
      rec.jitter_mask = static_cast<int8_t>(j.mask);
      for (int k = 0; k < 4; ++k) {
        rec.jitter_order[k] = static_cast<int8_t>(j.order[k]);
        rec.jitter_factor[k] = j.factor[k];
      }
      const EraseParams& er = r[i].params.erase;
      for (int k = 0; k < 3; ++k) rec.lighting_alpha[k] = r[i].params.color.alpha[k];
      for (int k = 0; k < 3; ++k) rec.hsv[k] = r[i].params.color.hsv.gain[k];
      const AffineParams& af = r[i].params.affine;
      rec.affine_on = af.on;
      const float aff[6] = {af.angle, af.tx, af.ty, af.scale, af.shear_x, af.shear_y};
      for (int k = 0; k < 6; ++k) rec.affine[k] = aff[k];
      const AugmentParams& au = r[i].params.augment;
      rec.aug_n = static_cast<int8_t>(au.n);
      for (int k = 0; k < au.n; ++k) {
        rec.aug_op[k] = static_cast<int8_t>(au.op[k]);
        rec.aug_mag[k] = au.mag[k];
      }
      const int32_t box[4] = {er.top, er.left, er.height, er.width};
      for (int k = 0; k < 4; ++k) rec.erase[k] = er.on ? box[k] : -1;
      rec.src_h = g.src_h, rec.src_w = g.src_w, rec.out_h = g.out_h, rec.out_w = g.out_w;
      rec.decode_denom = r[i].decode_denom, rec.orientation = r[i].orientation;
      rec.decoded_pixels = r[i].decoded_pixels;
      rec.norm_offset = r[i].norm.offset, rec.norm_scale = r[i].norm.scale;
    }
    return a;
  }

 private:
  // The inputs, kept alive by (aliasing) the Items that own them.
  static std::shared_ptr<const std::vector<SampleInput>> inputs_of(const std::shared_ptr<Items>& items) {
    if (!items) throw Error(ErrorKind::kInvalid, "Batch needs items");
    return std::shared_ptr<const std::vector<SampleInput>>(items, &items->inputs());
  }

  static std::vector<uint64_t> to_u64(const Index& a) {
    std::vector<uint64_t> v;
    for (int64_t k : to_vec(a)) v.push_back(static_cast<uint64_t>(k));
    return v;
  }

  Batch batch_;
  std::unique_ptr<py::buffer_info> out_info_;
};

// Note [Interrupts]
// A batch runs with the GIL released, so a Ctrl-C only sets CPython's signal flag: the handler
// (raising KeyboardInterrupt) runs when the thread is back in Python, after the batch, which for a
// large batch of large images was 13 s later. An interruptible run polls instead: about every
// 50 ms the calling thread takes the GIL and runs the pending handlers (PyErr_CheckSignals); if
// one raised, no further sample is started, the samples in flight finish, and that exception is
// raised from run(). Only the main thread runs signal handlers, so only its calls (Compose.batch,
// the offline tools) ask for it; the Loader's producer thread stops through its CancelToken.
void run_interruptible(PyBatch& b, Engine& e, bool interruptible) {
  if (!interruptible) {
    b.batch().run(e);
    return;
  }
  std::shared_ptr<py::error_already_set> raised;  // its Python objects are only touched with the GIL
  const std::function<bool()> poll = [&raised] {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return true;
    raised = std::make_shared<py::error_already_set>();
    return false;
  };
  b.batch().run(e, &poll);
  if (raised) throw py::error_already_set(*raised);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastprep native core: fused JPEG decode -> resize -> crop -> flip -> colour -> normalize -> layout";
  g_main_thread = py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  PYBIND11_NUMPY_DTYPE(ParamRecord, top, left, height, width, flip, vflip, gray, jitter_mask, jitter_order,
                       jitter_factor, lighting_alpha, hsv, affine_on, affine, aug_n, aug_op, aug_mag, erase, src_h, src_w, out_h, out_w, decode_denom, orientation, decoded_pixels, norm_offset, norm_scale);

  // Enums: the one definition of every code that crosses the boundary (common.h, output.h,
  // pipeline.h); Python uses these objects, never integers of its own.
  py::enum_<Interp>(m, "Interp")
      .value("nearest", Interp::kNearest).value("bilinear", Interp::kBilinear).value("bicubic", Interp::kBicubic);
  py::enum_<DType>(m, "DType")
      .value("uint8", DType::kU8).value("float32", DType::kF32).value("float16", DType::kF16)
      .value("bfloat16", DType::kBF16);
  py::enum_<Layout>(m, "Layout").value("CHW", Layout::kCHW).value("HWC", Layout::kHWC);
  py::enum_<Color>(m, "Color").value("RGB", Color::kRGB).value("BGR", Color::kBGR).value("GRAY", Color::kGray).value("YCbCr", Color::kYCbCr);
  py::enum_<NormMode>(m, "NormMode")
      .value("table", NormMode::kTable).value("per_image", NormMode::kPerImage).value("minmax", NormMode::kMinMax)
      .value("whiten", NormMode::kWhiten);
  py::enum_<Simd>(m, "Simd").value("scalar", Simd::kScalar).value("sse41", Simd::kSSE41).value("avx2", Simd::kAVX2).value("neon", Simd::kNEON);
  py::enum_<ErrorKind>(m, "ErrorKind")
      .value("decode", ErrorKind::kDecode).value("unsupported", ErrorKind::kUnsupported)
      .value("too_large", ErrorKind::kTooLarge).value("io", ErrorKind::kIo).value("invalid", ErrorKind::kInvalid);
  py::enum_<SampleStatus>(m, "SampleStatus")
      .value("ok", SampleStatus::kOk).value("error", SampleStatus::kError).value("not_jpeg", SampleStatus::kNotJpeg);

  m.def("cpu_simd", [] { return cpu_best_simd(); }, "Best SIMD level of this CPU.");
  m.def("simd_levels", [] {
    std::vector<Simd> out;
    for (Simd s : {Simd::kScalar, Simd::kSSE41, Simd::kAVX2, Simd::kNEON})
      if (simd_supported(s)) out.push_back(s);
    return out;
  }, "Every SIMD level this build and CPU can run, scalar first.");
  m.def("default_simd", [] { return default_simd(); }, "SIMD level used by default (FASTPREP_SIMD caps it).");
  m.def("build_info", [] {
    py::dict codecs;  // the library each native decoder uses; None: no native decoder in this build
    codecs["jpeg"] = jpeg_library_version();
    codecs["png"] = png_native() ? py::object(py::str("libpng " + png_library_version())) : py::object(py::none());
    codecs["zlib"] = png_native() ? py::object(py::str(zlib_library_version())) : py::object(py::none());
    codecs["webp"] = webp_native() ? py::object(py::str("libwebp " + webp_library_version())) : py::object(py::none());
    py::list compiled;
    compiled.append("scalar");
#if defined(__x86_64__) || defined(__i386__)
    compiled.append("sse41");
    compiled.append("avx2");
#elif defined(__aarch64__)
    compiled.append("neon");
#endif
    py::dict d;
    d["codecs"] = codecs;
    d["simd_compiled"] = compiled;
    d["compiler"] = py::str(__VERSION__);
    return d;
  }, "What this build holds: the codec libraries of its native decoders and the SIMD levels compiled in.");
  m.def("parse_simd", [](const std::string& name) { return parse_simd(name); },
        "A SIMD level by name (scalar, sse41, avx2, auto); an error if this CPU lacks it.");

  // Every PlanSpec field, by name (Note [Plan fields]): no dynamic attributes, so a misspelled
  // field is an AttributeError.
  py::class_<PlanSpec> spec(m, "PlanSpec", "What a Compose compiles to (csrc/plan.h, FASTPREP_PLAN_FIELDS).");
  spec.def(py::init([] {
    PlanSpec s;
    s.simd = default_simd();
    return s;
  }));
  std::vector<std::string> names;
#define FASTPREP_BIND_FIELD(type, name, dflt, doc) \
  spec.def_readwrite(#name, &PlanSpec::name, doc); \
  names.push_back(#name);
  FASTPREP_PLAN_FIELDS(FASTPREP_BIND_FIELD)
#undef FASTPREP_BIND_FIELD
  spec.attr("FIELDS") = py::tuple(py::cast(names));
  spec.def("__repr__", [](const py::object& self) {
    std::string r = "PlanSpec(";
    bool first = true;
    for (auto name : self.attr("FIELDS")) {
      r += (first ? "" : ", ") + name.cast<std::string>() + "=" + py::repr(self.attr(name)).cast<std::string>();
      first = false;
    }
    return r + ")";
  });

  py::class_<Plan, std::shared_ptr<Plan>>(m, "Plan")
      .def(py::init([](const PlanSpec& s) { return std::make_shared<Plan>(s); }), py::arg("spec"))
      .def_property_readonly("spec", [](const Plan& p) { return p.spec; })
      .def_property_readonly("fixed_size", [](const Plan& p) -> py::object {
        int h, w;
        if (p.fixed_size(&h, &w)) return py::make_tuple(h, w);
        return py::none();
      })
      .def_property_readonly("channels", [](const Plan& p) { return p.out.channels; })
      .def_property_readonly("simd", [](const Plan& p) { return std::string(simd_name(p.spec.simd)); })
      .def_property_readonly(
          "output_kernel", [](const Plan& p) { return std::string(p.out.arith.on ? "arithmetic" : "table"); },
          "How the plan's own table is applied in single-pass rows (Note [Output arithmetic]).")
      .def_property_readonly("needs_stats", &Plan::needs_stats,
                             "True when the output stage runs in two phases (Note [Output stage]).");

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

  py::class_<PyBatch>(m, "Batch")
      .def(py::init<std::shared_ptr<Plan>, std::shared_ptr<Items>, const PyBatch::Index&, const PyBatch::Index&,
                    const PyBatch::Index&, uint64_t, uint64_t, std::shared_ptr<CancelToken>>(),
           py::arg("plan"), py::arg("items"), py::arg("picks"), py::arg("slots"), py::arg("indices"),
           py::arg("seed"), py::arg("epoch"), py::arg("cancel") = nullptr)
      .def("set_output", &PyBatch::set_output, py::arg("out"), py::arg("out_h"), py::arg("out_w"),
           "Attaches the output: a writable C-contiguous buffer of the plan's dtype, slots of out_h x out_w.")
      .def("probe", [](PyBatch& b, Engine& e) { b.batch().probe(e); }, py::arg("engine"),
           py::call_guard<ReleaseGil>())
      .def("run", &run_interruptible, py::arg("engine"), py::arg("interruptible") = false,
           py::call_guard<ReleaseGil>(),
           "The fused pass. interruptible=True (the main thread): a signal handler's exception (Ctrl-C's "
           "KeyboardInterrupt) stops the batch within about 50 ms and is raised (Note [Interrupts]).")
      .def("decode_only", [](PyBatch& b, Engine& e) { b.batch().decode_only(e); }, py::arg("engine"),
           py::call_guard<ReleaseGil>(), "Full libjpeg-turbo decode of every pick, no transform: the speed ceiling.")
      .def("status", &PyBatch::status, "Per sample: int8 SampleStatus values.")
      .def("warnings", &PyBatch::warnings)
      .def("errors", &PyBatch::errors)
      .def("take_encoded", &PyBatch::take_encoded, py::arg("position"))
      .def("params", &PyBatch::params, "Per sample: a structured array of named fields (ParamRecord).");

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

  // Batch mixing in place on a Loader's batch buffer (Note [Batch mixing] in csrc/mix.h).
  m.def(
      "mixup",
      [](py::buffer buf, double lam) {
        py::buffer_info b = buf.request(true);
        if (b.readonly || b.format != py::format_descriptor<float>::format() || b.ndim < 1)
          throw Error(ErrorKind::kInvalid, "MixUp needs a writable float32 batch array");
        py::ssize_t expect = b.itemsize;
        for (py::ssize_t d = b.ndim - 1; d >= 0; --d) {
          if (b.shape[d] > 1 && b.strides[d] != expect) throw Error(ErrorKind::kInvalid, "batch must be C-contiguous");
          expect *= b.shape[d];
        }
        const int64_t n = b.shape[0];
        const size_t m = n ? static_cast<size_t>(b.size / n) : 0;
        float* data = static_cast<float*>(b.ptr);
        // torch casts each Python scalar (double) to float32 before the multiplication.
        const float l = static_cast<float>(lam), ol = static_cast<float>(1.0 - lam);
        ReleaseGil nogil;
        mixup_f32(data, n, m, l, ol);
      },
      py::arg("batch"), py::arg("lam"), "MixUp in place: x[i] = x[i-1] * (1 - lam) + x[i] * lam (float32).");
  m.def(
      "level_moments",
      [](py::array_t<uint8_t, py::array::c_style> batch, py::buffer s1, py::buffer s2, std::optional<py::buffer> sx,
         int64_t hw) {
        // Totals are written in place: they must be the caller's own contiguous int64 arrays (a
        // converted copy would silently drop the sums).
        auto totals = [](py::buffer& buf, size_t count, const char* name) {
          py::buffer_info i = buf.request();  // writability checked below, with the argument's name
          if (i.readonly || !(i.format == "q" || i.format == "l") || i.itemsize != 8 ||
              static_cast<size_t>(i.size) != count)
            throw Error(ErrorKind::kInvalid, std::string("level_moments: ") + name + " must be a writable int64 array of " +
                                                 std::to_string(count) + " values");
          py::ssize_t expect = 8;
          for (py::ssize_t d = i.ndim - 1; d >= 0; --d) {
            if (i.shape[d] > 1 && i.strides[d] != expect)
              throw Error(ErrorKind::kInvalid, std::string("level_moments: ") + name + " must be C-contiguous");
            expect *= i.shape[d];
          }
          return static_cast<int64_t*>(i.ptr);
        };
        if (batch.ndim() < 1) throw Error(ErrorKind::kInvalid, "level_moments: batch must be (N, ...) uint8");
        const int64_t n = batch.shape(0);
        const size_t p = n ? static_cast<size_t>(batch.size() / n) : 0;
        int64_t* a = totals(s1, p, "s1");
        int64_t* b = totals(s2, p, "s2");
        int64_t* c = nullptr;
        if (sx) {
          if (hw <= 0 || 3 * static_cast<size_t>(hw) != p)
            throw Error(ErrorKind::kInvalid, "level_moments: cross products need 3 planes of hw values");
          c = totals(*sx, 3 * static_cast<size_t>(hw), "sx");
        }
        const uint8_t* data = batch.data();
        ReleaseGil nogil;
        level_moments(data, n, p, a, b, c, static_cast<size_t>(hw));
      },
      py::arg("batch"), py::arg("s1"), py::arg("s2"), py::arg("sx") = py::none(), py::arg("hw") = 0,
      "Adds a uint8 batch's per-position sums, sums of squares and (sx) RGB cross products into int64 totals "
      "(Note [Level moments]).");
  m.def(
      "cutmix",
      [](py::buffer buf, Layout layout, int y1, int y2, int x1, int x2) {
        py::buffer_info b = buf.request(true);
        if (b.readonly || (b.ndim != 3 && b.ndim != 4)) throw Error(ErrorKind::kInvalid, "CutMix needs a writable batch array");
        py::ssize_t expect = b.itemsize;
        for (py::ssize_t d = b.ndim - 1; d >= 0; --d) {
          if (b.shape[d] > 1 && b.strides[d] != expect) throw Error(ErrorKind::kInvalid, "batch must be C-contiguous");
          expect *= b.shape[d];
        }
        int h, w, c;
        if (b.ndim == 3) h = static_cast<int>(b.shape[1]), w = static_cast<int>(b.shape[2]), c = 1;
        else if (layout == Layout::kCHW) c = static_cast<int>(b.shape[1]), h = static_cast<int>(b.shape[2]), w = static_cast<int>(b.shape[3]);
        else h = static_cast<int>(b.shape[1]), w = static_cast<int>(b.shape[2]), c = static_cast<int>(b.shape[3]);
        if (!(0 <= y1 && y1 <= y2 && y2 <= h && 0 <= x1 && x1 <= x2 && x2 <= w))
          throw Error(ErrorKind::kInvalid, "CutMix box outside the image");
        uint8_t* data = static_cast<uint8_t*>(b.ptr);
        const size_t es = static_cast<size_t>(b.itemsize);
        ReleaseGil nogil;
        cutmix(data, b.shape[0], h, w, c, es, layout, y1, y2, x1, x2);
      },
      py::arg("batch"), py::arg("layout"), py::arg("y1"), py::arg("y2"), py::arg("x1"), py::arg("x2"),
      "CutMix in place: the box [y1, y2) x [x1, x2) of x[i] from x[i-1], any dtype.");

  // Kernel-level entry points for tests and micro-benchmarks.
  // One augmentation op (or warp) on an HxWx3 uint8 image, as the fused pass applies it.
  auto run_aug = [](const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& img, Simd simd,
                    const std::function<void(uint8_t* const*, int, int, Scratch*)>& fn) {
    if (img.ndim() != 3 || img.shape(2) != 3) throw Error(ErrorKind::kInvalid, "image must be HxWx3 uint8");
    const int h = static_cast<int>(img.shape(0)), w = static_cast<int>(img.shape(1));
    py::array_t<uint8_t> out({static_cast<py::ssize_t>(h), static_cast<py::ssize_t>(w), py::ssize_t(3)});
    uint8_t* dst = out.mutable_data();
    const uint8_t* src = img.data();
    {
      ReleaseGil nogil;
      std::vector<uint8_t> rgbx(checked_mul(static_cast<size_t>(h) * w, 4) + 32);
      std::vector<uint8_t*> rows(static_cast<size_t>(h));
      for (int y = 0; y < h; ++y) rows[y] = rgbx.data() + static_cast<size_t>(y) * w * 4;
      for (size_t i = 0; i < static_cast<size_t>(h) * w; ++i) std::memcpy(&rgbx[i * 4], src + i * 3, 3);
      Scratch scratch;
      fn(rows.data(), h, w, &scratch);
      for (size_t i = 0; i < static_cast<size_t>(h) * w; ++i) std::memcpy(dst + i * 3, &rgbx[i * 4], 3);
    }
    return out;
  };
  auto warp_of = [](Interp interp, const std::optional<std::vector<float>>& fill) {
    if (interp != Interp::kNearest && interp != Interp::kBilinear)
      throw Error(ErrorKind::kInvalid, "interpolation must be nearest or bilinear");
    if (fill && fill->size() != 1 && fill->size() != 3) throw Error(ErrorKind::kInvalid, "fill must have 1 or 3 values");
    Float3 f{0.f, 0.f, 0.f};
    if (fill)
      for (int c = 0; c < 3; ++c) f[c] = (*fill)[fill->size() == 1 ? 0 : c];
    return Plan::warp_spec(interp, fill.has_value(), f);
  };
  py::enum_<AugOp>(m, "AugOp", "torchvision's automatic-augmentation op names (csrc/augment.h)")
      .value("Identity", AugOp::kIdentity).value("ShearX", AugOp::kShearX).value("ShearY", AugOp::kShearY)
      .value("TranslateX", AugOp::kTranslateX).value("TranslateY", AugOp::kTranslateY).value("Rotate", AugOp::kRotate)
      .value("Brightness", AugOp::kBrightness).value("Color", AugOp::kColor).value("Contrast", AugOp::kContrast)
      .value("Sharpness", AugOp::kSharpness).value("Posterize", AugOp::kPosterize).value("Solarize", AugOp::kSolarize)
      .value("AutoContrast", AugOp::kAutoContrast).value("Equalize", AugOp::kEqualize).value("Invert", AugOp::kInvert);
  py::enum_<AugTable>(m, "AugTable", "how a policy op's magnitude table is built (csrc/augment.h)")
      .value("none", AugTable::kNone).value("linspace", AugTable::kLinspace)
      .value("linspace_width", AugTable::kLinspaceWidth).value("linspace_height", AugTable::kLinspaceHeight)
      .value("posterize", AugTable::kPosterize);
  m.attr("MAX_AUG_OPS") = kMaxAugOps;
  m.def(
      "augment_image",
      [run_aug, warp_of](const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& img, AugOp op,
                         float magnitude, Interp interp, std::optional<std::vector<float>> fill, Simd simd) {
        const WarpSpec ws = warp_of(interp, fill);
        return run_aug(img, simd, [&](uint8_t* const* rows, int h, int w, Scratch* s) {
          apply_aug_op(simd, op, magnitude, ws, rows, h, w, s);
        });
      },
      py::arg("image"), py::arg("op"), py::arg("magnitude"), py::arg("interpolation") = Interp::kNearest,
      py::arg("fill") = py::none(), py::arg("simd") = Simd::kScalar,
      "One policy op with its signed magnitude on an HxWx3 uint8 image (torchvision's _apply_op).");
  m.def(
      "affine_image",
      [run_aug, warp_of](const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& img, float angle,
                         float tx, float ty, float scale, float shear_x, float shear_y, bool rotate, Interp interp,
                         std::optional<std::vector<float>> fill, Simd simd) {
        const WarpSpec ws = warp_of(interp, fill);
        AffineParams p;
        p.on = true, p.rotate = rotate, p.angle = angle, p.tx = tx, p.ty = ty, p.scale = scale;
        p.shear_x = shear_x, p.shear_y = shear_y;
        return run_aug(img, simd, [&](uint8_t* const* rows, int h, int w, Scratch* s) {
          apply_affine(simd, p, ws, rows, h, w, s);
        });
      },
      py::arg("image"), py::arg("angle"), py::arg("tx") = 0.f, py::arg("ty") = 0.f, py::arg("scale") = 1.f,
      py::arg("shear_x") = 0.f, py::arg("shear_y") = 0.f, py::arg("rotate") = false,
      py::arg("interpolation") = Interp::kNearest, py::arg("fill") = py::none(), py::arg("simd") = Simd::kScalar,
      "F.affine (rotate=False) or F.rotate (rotate=True) on an HxWx3 uint8 image, as RandomAffine/RandomRotation apply it.");
  m.def("float_to_half", [](float f) { return float_to_half(f); });
  m.def("float_to_bfloat16", [](float f) { return float_to_bfloat16(f); });
}
