// Bindings: fastprep._core.testing, kernel-level entry points for tests and micro-benchmarks only
// (the library never calls them).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include "core/scratch.h"
#include "kernels/augment.h"
#include "kernels/dispatch.h"
#include "kernels/output.h"
#include "kernels/pil_augment.h"
#include "pipeline/plan.h"
#include "python/gil.h"
#include "python/register.h"

namespace py = pybind11;

namespace fastprep {
namespace python {

void register_testing(py::module_& m) {
  // Kernel-level entry points for tests and micro-benchmarks.
  // One augmentation op (or warp) on an HxWx3 uint8 image, as the fused pass applies it.
  auto run_aug = [](const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& img, Simd,
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
  m.def(
      "augment_image",
      [run_aug, warp_of](const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& img, AugOp op,
                         float magnitude, Interp interp, std::optional<std::vector<float>> fill, Simd simd) {
        const WarpSpec ws = warp_of(interp, fill);
        return run_aug(img, simd, [&](uint8_t* const* rows, int h, int w, Scratch* s) {
          apply_aug_op(kernels_for(simd), op, magnitude, ws, rows, h, w, s);
        });
      },
      py::arg("image"), py::arg("op"), py::arg("magnitude"), py::arg("interpolation") = Interp::kNearest,
      py::arg("fill") = py::none(), py::arg("simd") = Simd::kScalar,
      "One policy op with its signed magnitude on an HxWx3 uint8 image (torchvision's _apply_op).");
  m.def(
      "pil_augment_image",
      [run_aug](const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& img, PilOp op, double arg,
                int filter, std::vector<int> fill, Simd simd) {
        if (filter != static_cast<int>(PilFilter::kBilinear) && filter != static_cast<int>(PilFilter::kBicubic))
          throw Error(ErrorKind::kInvalid, "filter must be 2 (bilinear) or 3 (bicubic)");
        if (fill.size() != 3) throw Error(ErrorKind::kInvalid, "fill must have 3 levels");
        const uint8_t f[3] = {static_cast<uint8_t>(fill[0]), static_cast<uint8_t>(fill[1]), static_cast<uint8_t>(fill[2])};
        return run_aug(img, simd, [&](uint8_t* const* rows, int h, int w, Scratch* s) {
          apply_pil_op(kernels_for(simd), op, arg, static_cast<PilFilter>(filter), f, rows, h, w, s);
        });
      },
      py::arg("image"), py::arg("op"), py::arg("arg"), py::arg("filter") = 2, py::arg("fill") = std::vector<int>{128, 128, 128},
      py::arg("simd") = Simd::kScalar,
      "One Pillow operation as timm's op functions call it (Note [PIL augment arithmetic]) on an HxWx3 uint8 "
      "image: `arg` is the op function's argument (TranslateX/Y: pixels).");
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
          apply_affine(kernels_for(simd), p, ws, rows, h, w, s);
        });
      },
      py::arg("image"), py::arg("angle"), py::arg("tx") = 0.f, py::arg("ty") = 0.f, py::arg("scale") = 1.f,
      py::arg("shear_x") = 0.f, py::arg("shear_y") = 0.f, py::arg("rotate") = false,
      py::arg("interpolation") = Interp::kNearest, py::arg("fill") = py::none(), py::arg("simd") = Simd::kScalar,
      "F.affine (rotate=False) or F.rotate (rotate=True) on an HxWx3 uint8 image, as RandomAffine/RandomRotation apply it.");
  m.def("float_to_half", [](float f) { return float_to_half(f); });
  m.def("float_to_bfloat16", [](float f) { return float_to_bfloat16(f); });
}

}  // namespace python
}  // namespace fastprep
