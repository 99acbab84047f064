// Bindings: the codes that cross the boundary (enums), the SIMD levels, build_info, PlanSpec and
// Plan.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "codecs/jpeg_decoder.h"
#include "codecs/png_decoder.h"
#include "codecs/webp_decoder.h"
#include "kernels/augment.h"
#include "kernels/dispatch.h"
#include "kernels/output.h"
#include "pipeline/pipeline.h"
#include "kernels/filter.h"
#include "pipeline/plan.h"
#include "python/register.h"

namespace py = pybind11;

namespace fastprep {
namespace python {

void register_plan(py::module_& m) {
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
      .value("too_large", ErrorKind::kTooLarge).value("io", ErrorKind::kIo).value("invalid", ErrorKind::kInvalid)
      .value("too_small", ErrorKind::kTooSmall);
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
    int n = 0;
    const char* const* levels = compiled_levels(&n);
    for (int i = 0; i < n; ++i) compiled.append(levels[i]);
    py::dict d;
    d["codecs"] = codecs;
    d["simd_compiled"] = compiled;
    d["compiler"] = py::str(__VERSION__);
    return d;
  }, "What this build holds: the codec libraries of its native decoders and the SIMD levels compiled in.");
  m.def("elastic_displacement", [](uint64_t seed, int h, int w, double alpha_x, double alpha_y, double sigma_x,
                                   double sigma_y) {
    // The ElasticTransform displacement a sample with this seed used, as F.elastic takes it.
    if (h <= 0 || w <= 0 || static_cast<int64_t>(h) * w > (int64_t(1) << 28))
      throw py::value_error("elastic_displacement: h and w must be positive (at most 2**28 pixels)");
    if (!(sigma_x >= 0.0 && sigma_y >= 0.0 && 8.0 * std::max(sigma_x, sigma_y) + 2.0 <= kMaxBlurKernel &&
          std::isfinite(alpha_x) && std::isfinite(alpha_y)))
      throw py::value_error("elastic_displacement: sigmas must be in [0, 127], alphas finite");
    py::array_t<float> out({1, h, w, 2});
    const size_t n = static_cast<size_t>(h) * w;
    std::vector<float> f(2 * n);
    {
      py::gil_scoped_release release;
      Scratch scratch;
      const double alpha[2] = {alpha_x, alpha_y}, sigma[2] = {sigma_x, sigma_y};
      elastic_field(kernels_for(Simd::kScalar), seed, h, w, alpha, sigma, f.data(), f.data() + n, &scratch);
    }
    float* o = out.mutable_data();
    for (size_t i = 0; i < n; ++i) {
      o[2 * i] = f[i];
      o[2 * i + 1] = f[n + i];
    }
    return out;
  }, py::arg("seed"), py::arg("h"), py::arg("w"), py::arg("alpha_x"), py::arg("alpha_y"), py::arg("sigma_x"),
     py::arg("sigma_y"),
     "ElasticTransform's displacement (1, h, w, 2) for a sample's elastic_seed (Note [Elastic arithmetic]).");
  m.def("view_seed", [](uint64_t seed, int view) {
    if (view < 0) throw py::value_error("view must be >= 0");
    return view_key(RunKey{seed, 0, 0}, view).seed;
  }, py::arg("seed"), py::arg("view"),
     "The seed view `view` of a multi-view sample draws with (Note [Multi-view decode]): view 0 the seed itself.");
  m.def("gaussian_noise", [](uint64_t seed, int c, int h, int w) {
    if (c <= 0 || h <= 0 || w <= 0 || static_cast<int64_t>(c) * h * w > (int64_t(1) << 30))
      throw py::value_error("gaussian_noise: c, h and w must be positive (at most 2**30 values)");
    py::array_t<float> out({c, h, w});
    float* o = out.mutable_data();
    const size_t n = static_cast<size_t>(c) * h * w;
    {
      py::gil_scoped_release release;
      gaussian_noise(seed, n, o);
    }
    return out;
  }, py::arg("seed"), py::arg("c"), py::arg("h"), py::arg("w"),
     "GaussianNoise's N(0, 1) values (c, h, w) for a sample's noise_seed (Note [Gaussian noise]).");
  m.def("erase_noise", [](uint64_t seed, int64_t n) {
    if (n < 0 || n > (int64_t(1) << 30)) throw py::value_error("erase_noise: n must be in [0, 2**30]");
    py::array_t<float> out(n);
    float* o = out.mutable_data();
    {
      py::gil_scoped_release release;
      Rng rng(seed, 0, 0, streams::kEraseNoise);
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(rng.normal());
    }
    return out;
  }, py::arg("seed"), py::arg("n"),
     "The first n N(0, 1) values of RandomErasing's noise stream for a sample's erase_seed, in the order "
     "the rectangles are filled.");
  m.def("parse_simd", [](const std::string& name) { return parse_simd(name); },
        "A SIMD level by name (scalar, sse41, avx2, auto); an error if this CPU lacks it.");

  py::enum_<AugOp>(m, "AugOp", "torchvision's automatic-augmentation op names (csrc/kernels/augment.h)")
      .value("Identity", AugOp::kIdentity).value("ShearX", AugOp::kShearX).value("ShearY", AugOp::kShearY)
      .value("TranslateX", AugOp::kTranslateX).value("TranslateY", AugOp::kTranslateY).value("Rotate", AugOp::kRotate)
      .value("Brightness", AugOp::kBrightness).value("Color", AugOp::kColor).value("Contrast", AugOp::kContrast)
      .value("Sharpness", AugOp::kSharpness).value("Posterize", AugOp::kPosterize).value("Solarize", AugOp::kSolarize)
      .value("AutoContrast", AugOp::kAutoContrast).value("Equalize", AugOp::kEqualize).value("Invert", AugOp::kInvert);
  py::enum_<AugTable>(m, "AugTable", "how a policy op's magnitude table is built (csrc/kernels/augment.h)")
      .value("none", AugTable::kNone).value("linspace", AugTable::kLinspace)
      .value("linspace_width", AugTable::kLinspaceWidth).value("linspace_height", AugTable::kLinspaceHeight)
      .value("posterize", AugTable::kPosterize).value("posterize4", AugTable::kPosterize4);
  m.attr("MAX_AUG_OPS") = kMaxAugOps;
  {
    py::enum_<TimmOp> e(m, "TimmOp", "timm's augmentation op names (Note [timm's policies] in csrc/pipeline/plan.h)");
    for (int k = 0; k < kTimmOpCount; ++k) e.value(timm_op_name(static_cast<TimmOp>(k)), static_cast<TimmOp>(k));
  }
  py::enum_<PilOp>(m, "PilOp", "the Pillow operations timm's ops run (csrc/kernels/pil_augment.h)")
      .value("AutoContrast", PilOp::kAutoContrast).value("Equalize", PilOp::kEqualize).value("Invert", PilOp::kInvert)
      .value("Rotate", PilOp::kRotate).value("Posterize", PilOp::kPosterize).value("Solarize", PilOp::kSolarize)
      .value("SolarizeAdd", PilOp::kSolarizeAdd).value("Color", PilOp::kColor).value("Contrast", PilOp::kContrast)
      .value("Brightness", PilOp::kBrightness).value("Sharpness", PilOp::kSharpness).value("ShearX", PilOp::kShearX)
      .value("ShearY", PilOp::kShearY).value("TranslateX", PilOp::kTranslateX).value("TranslateY", PilOp::kTranslateY)
      .value("GaussianBlur", PilOp::kGaussianBlur);
  {
    py::enum_<PixOp> e(m, "PixOp", "the uint8 op sequence's op codes, by stream name (csrc/kernels/pixel_ops.h)");
    for (int k = 0; k < kPixOpCount; ++k) e.value(pix_op_name(static_cast<PixOp>(k)), static_cast<PixOp>(k));
  }
  m.attr("PIX_ARGS") = kPixArgs;
  m.attr("MAX_ERASE") = kMaxErase;  // RandomErasing rectangles a sample records
  m.attr("PIX_VALS") = kPixVals;
  m.attr("MAX_BLUR_KERNEL") = kMaxBlurKernel;
  m.attr("MAX_PIX_OPS") = kMaxPixOps;
  m.attr("MAX_CONTAINERS") = kMaxGroups;
  m.attr("MAX_MEMBERS") = kMaxMembers;
  // Every PlanSpec field, by name (Note [Plan fields]): no dynamic attributes, so a misspelled
  // field is an AttributeError.
  py::class_<PlanSpec> spec(m, "PlanSpec", "What a Compose compiles to (csrc/pipeline/plan.h, FASTPREP_PLAN_FIELDS).");
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
}

}  // namespace python
}  // namespace fastprep
