// Bindings: what the offline tools and the Loader call besides the fused pass: JPEG encoding,
// the level moments of `fastprep stats`, batch mixing in place.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "codecs/jpeg_encoder.h"
#include "codecs/jpeg_restart.h"
#include "codecs/jpeg_transcode.h"
#include "kernels/mix.h"
#include "kernels/moments.h"
#include "python/gil.h"
#include "python/register.h"

namespace py = pybind11;

namespace fastprep {
namespace python {
namespace {

struct EncodedBytes {
  std::vector<uint8_t> data;
};

}  // namespace

void register_offline(py::module_& m) {
  // Encoded bytes returned from a GIL-free call; Python wraps them with bytes(...) (buffer protocol).
  py::class_<EncodedBytes>(m, "EncodedBytes", py::buffer_protocol())
      .def_buffer([](EncodedBytes& e) { return py::buffer_info(e.data.data(), e.data.size()); })
      .def("__len__", [](const EncodedBytes& e) { return e.data.size(); });

  m.def(
      "encode_jpeg",
      [](const py::array_t<uint8_t, py::array::c_style>& img, int quality, int subsampling, bool progressive,
         int restart_mcus) {
        // img was converted (and is referenced) before the GIL was released by the call guard.
        const int ndim = static_cast<int>(img.ndim());
        if (ndim != 2 && ndim != 3) throw Error(ErrorKind::kInvalid, "image must be HxW or HxWxC uint8");
        const int c = ndim == 3 ? static_cast<int>(img.shape(2)) : 1;
        EncodedBytes out;
        out.data = encode_jpeg(img.data(), static_cast<int>(img.shape(0)), static_cast<int>(img.shape(1)), c,
                               img.strides(0), quality, subsampling, progressive, restart_mcus);
        return out;
      },
      py::arg("image"), py::arg("quality") = 90, py::arg("subsampling") = 420, py::arg("progressive") = false,
      py::arg("restart_mcus") = 0, py::call_guard<ReleaseGil>(),
      "Encodes an HxW or HxWx3 uint8 image as JPEG with libjpeg-turbo; restart_mcus > 0 writes restart markers "
      "(choose_restart_interval: every MCU row starts an interval).");

  // Note [Lossless restart rewrite] (csrc/codecs/jpeg_transcode.cpp).
  m.def(
      "transcode_jpeg",
      [](py::buffer data, int restart_mcus, bool keep_metadata, bool verify, int64_t max_pixels) {
        py::buffer_info b = data.request();
        TranscodeOptions opt;
        opt.restart_mcus = restart_mcus;
        opt.keep_metadata = keep_metadata;
        opt.verify = verify;
        opt.max_pixels = max_pixels;
        TranscodeResult r;
        {
          ReleaseGil nogil;  // b keeps the buffer alive and unchanged meanwhile
          r = transcode_jpeg(static_cast<const uint8_t*>(b.ptr), static_cast<size_t>(b.size * b.itemsize), opt);
        }
        EncodedBytes out;
        out.data = std::move(r.data);
        return py::make_tuple(std::move(out), r.interval, r.mcus_per_row, r.progressive);
      },
      py::arg("data"), py::arg("restart_mcus") = kAutoRestart, py::arg("keep_metadata") = true,
      py::arg("verify") = true, py::arg("max_pixels") = 0,
      "Lossless rewrite of a JPEG: one baseline scan, optimized Huffman tables, restart markers every "
      "choose_restart_interval(columns, target) MCUs, target = restart_mcus, or with -1 (the default) "
      "about 200 entropy-coded bytes per interval. Returns (bytes, interval, mcus_per_row, was_progressive).");

  m.def(
      "restart_layout",
      [](py::buffer data) -> py::object {
        py::buffer_info b = data.request();
        RestartLayout L;
        bool ok;
        {
          ReleaseGil nogil;
          ok = parse_restart_layout(static_cast<const uint8_t*>(b.ptr), static_cast<size_t>(b.size * b.itemsize), &L);
        }
        if (!ok) return py::none();
        py::dict d;
        d["interval"] = L.interval;
        d["mcus_per_row"] = L.mcus_per_row;
        d["mcu_rows"] = L.mcu_rows;
        d["mcu_size"] = py::make_tuple(L.mcu_h, L.mcu_w);
        d["intervals"] = L.starts.size();
        return std::move(d);
      },
      py::arg("data"),
      "The restart layout the decoder would splice from (Note [Restart splicing]): a dict, or None when the "
      "file does not qualify.");

  m.def(
      "splice_jpeg",
      [](py::buffer data, int r0, int r1, int c0, int c1) {
        py::buffer_info b = data.request();
        const uint8_t* d = static_cast<const uint8_t*>(b.ptr);
        const size_t n = static_cast<size_t>(b.size * b.itemsize);
        EncodedBytes out;
        {
          ReleaseGil nogil;
          RestartLayout L;
          if (!parse_restart_layout(d, n, &L)) throw Error(ErrorKind::kInvalid, "no usable restart markers");
          const int iv = L.interval;
          if (r0 < 0 || r1 > L.mcu_rows || r0 >= r1 || c0 < 0 || c1 > L.mcus_per_row || c0 >= c1 || c0 % iv ||
              (c1 % iv && c1 != L.mcus_per_row))
            throw Error(ErrorKind::kInvalid, "MCU rectangle outside the image or not on interval boundaries");
          out.data.resize(splice_restart_bound(L, r0, r1, c0, c1));
          out.data.resize(splice_restart_region(d, L, r0, r1, c0, c1, out.data.data()));
        }
        return out;
      },
      py::arg("data"), py::arg("r0"), py::arg("r1"), py::arg("c0"), py::arg("c1"),
      "The MCU rectangle [r0, r1) x [c0, c1) of a restart-indexed JPEG as a JPEG of its own.");

  // Batch mixing in place on a Loader's batch buffer (Note [Batch mixing] in csrc/kernels/mix.h).
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
}

}  // namespace python
}  // namespace fastprep
