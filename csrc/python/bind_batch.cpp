// Bindings: the fused pass. Items (inputs pinned while the GIL is held), Batch (a native run,
// GIL released by declaration), Engine, CancelToken, the per-sample ParamRecord.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/batch.h"
#include "pipeline/pipeline.h"
#include "pipeline/plan.h"
#include "pipeline/thread_pool.h"
#include "python/gil.h"
#include "python/register.h"

namespace py = pybind11;

namespace fastprep {
namespace python {
namespace {

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
  float perspective[8];              // RandomPerspective's coefficients (affine_on and these set)
  int32_t perspective_end[8];        // and the corners' end points
  uint64_t elastic_seed;             // ElasticTransform: its displacement's key (Note [Elastic arithmetic])
  uint64_t noise_seed;               // GaussianNoise: its values' key (Note [Gaussian noise])
  int8_t aug_n;                      // the policy's ops applied, in order
  int8_t aug_op[kMaxAugOps];         // AugOp codes
  float aug_mag[kMaxAugOps];         // signed magnitudes
  bool px_on[kMaxPixOps];            // the op sequence: each entry applied (Note [Op sequence])
  float px_val[kMaxPixOps * kPixVals];  // per entry: its values (GaussianBlur's sigma, a permutation, ...)
  int8_t group[kMaxGroups];          // per container: RandomApply applied, RandomChoice's pick
  int8_t group_order[kMaxGroups * kMaxMembers];  // RandomOrder: members in the order applied
  int8_t aug_chains;                 // AugMix: chains, their lengths, the weights (original's first)
  int8_t aug_chain_len[kMaxChains];
  float aug_weight[kMaxChains + 1];
  int8_t timm_n;                     // timm's policy: the ops applied, in order (Note [timm's policies])
  int8_t timm_op[kMaxAugOps];        // TimmOp codes
  double timm_arg[kMaxAugOps];       // the level functions' values
  int8_t timm_filter[kMaxAugOps];    // PIL filter of the geometric ops (2 bilinear, 3 bicubic)
  int8_t timm_chains;                // timm's AugMix: chains, their lengths, weights and m
  int8_t timm_chain_len[kMaxChains];
  float timm_weight[kMaxChains];
  float timm_m;
  int32_t erase[kMaxErase * 4];      // RandomErasing: per rectangle top, left, height, width (-1: none)
  uint64_t erase_seed;               // the rectangles' noise stream (RandomErasing.fill replays it)
  int32_t src_h, src_w, out_h, out_w;
  int32_t off_y, off_x;              // where the slot's (0, 0) is on the resized image (< 0: padding)
  int32_t rz_h, rz_w;                // the size the image (or crop box) was resized to
  int32_t pad[4];                    // the padding around it: left, top, right, bottom
  int32_t decode_denom, orientation;
  int8_t interp;                     // the resampling filter used (an Interp value)
  int64_t decoded_pixels;            // pixels the decoder produced
  int32_t decode_sessions;           // JPEG decompressions the sample started (1 for all its views)
  int64_t spliced_bytes;             // Note [Restart splicing]: bytes of the sub-image decoded (0: none)
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
  // Several views from one decode (Note [Multi-view decode]): one plan per view.
  PyBatch(const std::vector<std::shared_ptr<Plan>>& views, std::shared_ptr<Items> items, const Index& picks,
          const Index& slots, const Index& indices, uint64_t seed, uint64_t epoch,
          std::shared_ptr<CancelToken> cancel)
      : batch_(std::vector<std::shared_ptr<const Plan>>(views.begin(), views.end()), inputs_of(items), to_vec(picks),
               to_vec(slots), to_u64(indices), seed, epoch, std::move(cancel)) {}

  // Attaches the output buffer of `view`: C-contiguous, writable, (N, ...) slots of out_h x out_w.
  void set_output(py::buffer out, int out_h, int out_w, int view) {
    auto info = std::make_unique<py::buffer_info>(out.request(true));
    const py::buffer_info& b = *info;
    if (b.readonly) throw Error(ErrorKind::kInvalid, "output buffer is read-only");
    if (view < 0 || view >= batch_.views()) throw Error(ErrorKind::kInvalid, "no such view");
    if (static_cast<size_t>(b.itemsize) != dtype_size(batch_.plan(view).spec.dtype))
      throw Error(ErrorKind::kInvalid, "output buffer has the wrong item size");
    py::ssize_t expect = b.itemsize;
    for (py::ssize_t d = b.ndim - 1; d >= 0; --d) {
      if (b.shape[d] > 1 && b.strides[d] != expect) throw Error(ErrorKind::kInvalid, "output buffer must be C-contiguous");
      expect *= b.shape[d];
    }
    batch_.set_output(static_cast<uint8_t*>(b.ptr), static_cast<size_t>(b.size * b.itemsize), out_h, out_w, view);
    out_infos_.push_back(std::move(info));
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
      for (int k = 0; k < 8; ++k) rec.perspective[k] = af.perspective ? af.coeffs[k] : 0.f;
      for (int k = 0; k < 8; ++k) rec.perspective_end[k] = af.perspective ? af.corners[k] : 0;
      rec.elastic_seed = af.elastic ? af.elastic_seed : 0;
      rec.noise_seed = r[i].params.color.noise ? r[i].params.color.noise_seed : 0;
      const AugmentParams& au = r[i].params.augment;
      rec.aug_n = static_cast<int8_t>(au.n);
      for (int k = 0; k < au.n; ++k) {
        rec.aug_op[k] = static_cast<int8_t>(au.op[k]);
        rec.aug_mag[k] = au.mag[k];
      }
      rec.aug_chains = static_cast<int8_t>(au.chains);
      for (int k = 0; k < kMaxChains; ++k) rec.aug_chain_len[k] = static_cast<int8_t>(au.chain_len[k]);
      for (int k = 0; k <= kMaxChains; ++k) rec.aug_weight[k] = au.weight[k];
      const TimmAugParams& tm = r[i].params.timm;
      const int tn = std::min(tm.n, kMaxAugOps);
      rec.timm_n = static_cast<int8_t>(tn);
      for (int k = 0; k < tn; ++k) {
        rec.timm_op[k] = static_cast<int8_t>(tm.op[k]);
        rec.timm_arg[k] = tm.arg[k];
        rec.timm_filter[k] = static_cast<int8_t>(tm.filter[k]);
      }
      rec.timm_chains = static_cast<int8_t>(tm.chains);
      for (int k = 0; k < kMaxChains; ++k) {
        rec.timm_chain_len[k] = static_cast<int8_t>(tm.chain_len[k]);
        rec.timm_weight[k] = tm.weight[k];
      }
      rec.timm_m = tm.m;
      const SequenceParams& q = r[i].params.seq;
      for (int k = 0; k < q.n; ++k) {
        rec.px_on[k] = q.op[k].on;
        for (int c = 0; c < kPixVals; ++c) rec.px_val[kPixVals * k + c] = q.op[k].v[c];
      }
      for (int g = 0; g < kMaxGroups; ++g) {
        rec.group[g] = q.group[g];
        for (int j = 0; j < kMaxMembers; ++j) rec.group_order[g * kMaxMembers + j] = q.order[g][j];
      }
      for (int k = 0; k < kMaxErase; ++k) {
        const int32_t box[4] = {er.top[k], er.left[k], er.height[k], er.width[k]};
        for (int j = 0; j < 4; ++j) rec.erase[k * 4 + j] = k < er.n ? box[j] : -1;
      }
      rec.erase_seed = er.noise_seed;
      rec.src_h = g.src_h, rec.src_w = g.src_w, rec.out_h = g.out_h, rec.out_w = g.out_w;
      rec.off_y = g.off_y, rec.off_x = g.off_x;
      rec.rz_h = g.rz_h, rec.rz_w = g.rz_w;
      rec.pad[0] = g.pad_l, rec.pad[1] = g.pad_t, rec.pad[2] = g.pad_r, rec.pad[3] = g.pad_b;
      rec.decode_denom = r[i].decode_denom, rec.orientation = r[i].orientation;
      rec.interp = static_cast<int8_t>(g.interp);
      rec.decoded_pixels = r[i].decoded_pixels;
      rec.decode_sessions = r[i].decode_sessions;
      rec.spliced_bytes = r[i].spliced_bytes;
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
  std::vector<std::unique_ptr<py::buffer_info>> out_infos_;  // the outputs, pinned while attached
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

void register_batch(py::module_& m) {
  PYBIND11_NUMPY_DTYPE(ParamRecord, top, left, height, width, flip, vflip, gray, jitter_mask, jitter_order,
                       jitter_factor, lighting_alpha, hsv, affine_on, affine, perspective, perspective_end, elastic_seed, noise_seed, aug_n, aug_op, aug_mag, aug_chains, aug_chain_len, aug_weight, timm_n, timm_op, timm_arg, timm_filter, timm_chains, timm_chain_len, timm_weight, timm_m, px_on, px_val, group,
                       group_order, erase, erase_seed, src_h, src_w,
                       out_h, out_w, off_y, off_x, rz_h, rz_w, pad, decode_denom, orientation, interp, decoded_pixels, decode_sessions, spliced_bytes, norm_offset, norm_scale);

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
      .def(py::init<const std::vector<std::shared_ptr<Plan>>&, std::shared_ptr<Items>, const PyBatch::Index&,
                    const PyBatch::Index&, const PyBatch::Index&, uint64_t, uint64_t, std::shared_ptr<CancelToken>>(),
           py::arg("views"), py::arg("items"), py::arg("picks"), py::arg("slots"), py::arg("indices"),
           py::arg("seed"), py::arg("epoch"), py::arg("cancel") = nullptr,
           "Several views of each sample from one decode (Note [Multi-view decode]); per-sample results "
           "then come view by view: entry i * views + v.")
      .def_property_readonly("views", [](PyBatch& b) { return b.batch().views(); })
      .def("set_output", &PyBatch::set_output, py::arg("out"), py::arg("out_h"), py::arg("out_w"), py::arg("view") = 0,
           "Attaches the output of a view: a writable C-contiguous buffer of its plan's dtype, slots of out_h x out_w.")
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
}

}  // namespace python
}  // namespace fastprep
