// Every SIMD level of the resampling, ColorJitter, RandomHSV, affine warp (torchvision's and Pillow's), Sharpness,
// AutoContrast and PNG row kernels
// against the scalar reference, byte for byte, in pure C++ (no Python): built natively and, cross-compiled for
// AArch64, run under qemu-user by tests/native/run.sh, so the NEON kernels are checked on a
// machine without ARM hardware.
//
//   simd_kernels_test [photo.rgbx WIDTH HEIGHT]
//
// Cases: random rows, and the rows of a real photo when given (raw RGBX bytes). Resampling: every
// interpolation (nearest, bilinear, bicubic), upscaling and downscaling from 1x to 9x (every tap
// count up to 2 * 9 * 2 + 1), odd widths, flipped axes, vertical-pass widths that are not a
// multiple of the vector length. ColorJitter: its four ops alone and combined, factors over their
// whole range, widths that leave a scalar tail. RandomHSV: random gains. Warp: rotations, scales,
// shears and shifts that take corners outside, nearest and bilinear, with and without a fill.
// Sharpness: alphas in and out of [0, 1], narrow images. PNG rows: every filter type on 1- to
// 4-byte pixels (the predictor's ties included), the colour expansions. Exit status 0 iff every level matches
// the reference everywhere.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/augment.h"
#include "kernels/pil_augment.h"
#include "kernels/filter.h"
#include "kernels/noise.h"
#include "kernels/color.h"
#include "kernels/dispatch.h"
#include "kernels/png_rows.h"
#include "kernels/resample.h"

using namespace fastprep;

namespace {

int failures = 0;
long checks = 0;

void expect_same(const char* what, Simd s, const std::vector<uint8_t>& want, const std::vector<uint8_t>& got,
                 size_t n, int step, const std::string& where) {
  ++checks;
  for (size_t i = 0; i < n; ++i) {
    if (step == 4 && i % 4 == 3) continue;  // the X byte of an RGBX pixel is unspecified
    if (want[i] != got[i]) {
      if (failures < 20)
        std::printf("MISMATCH %s level=%s %s byte %zu: scalar %d, got %d\n", what, simd_name(s), where.c_str(), i,
                    want[i], got[i]);
      ++failures;
      return;
    }
  }
}

struct Image {
  int w = 0, h = 0;
  std::vector<uint8_t> px;  // RGBX
};

Image random_image(std::mt19937& rng, int w, int h) {
  Image im;
  im.w = w;
  im.h = h;
  im.px.resize(static_cast<size_t>(w) * h * 4);
  // Mostly smooth with some hard edges and saturated runs: clamping at 0 and 255 is exercised.
  std::uniform_int_distribution<int> byte(0, 255), kind(0, 9);
  for (size_t i = 0; i < im.px.size(); ++i) {
    const int k = kind(rng);
    im.px[i] = k == 0 ? 0 : k == 1 ? 255 : k < 5 ? static_cast<uint8_t>(byte(rng))
                                                 : (i >= 4 ? im.px[i - 4] : static_cast<uint8_t>(byte(rng)));
  }
  return im;
}

// The horizontal pass (hpass_row and hpass_rows) and the vertical pass of one resize of `im`.
void check_resize(const Image& im, int out_w, int out_h, Interp interp, bool reverse, bool fast,
                  const std::vector<Simd>& levels, const std::string& name) {
  AxisSpec ax;
  ax.src_size = im.w;
  ax.b0 = 0;
  ax.b1 = im.w;
  ax.out_size = out_w;
  ax.o0 = 0;
  ax.o1 = out_w;
  ax.interp = interp;
  ax.reverse = reverse;
  ax.fast = fast;  // Note [Fast resampling]: 16-bit weights, AVX2 madd kernels
  AxisTable ht;
  build_axis_table(ax, &ht);
  const int pad = ht.ksize + 8;  // the passes may read past the last tap (resample.h)
  const size_t row_bytes = static_cast<size_t>(im.w + pad) * 4;
  std::vector<std::vector<uint8_t>> rows(im.h, std::vector<uint8_t>(row_bytes, 0));
  for (int y = 0; y < im.h; ++y) std::memcpy(rows[y].data(), &im.px[static_cast<size_t>(y) * im.w * 4], im.w * 4);
  std::vector<const uint8_t*> rp(im.h);
  for (int y = 0; y < im.h; ++y) rp[y] = rows[y].data();

  const size_t inter_stride = (static_cast<size_t>(out_w) * 4 + 63) / 32 * 32;  // padded to 32 bytes
  auto hpass_all = [&](Simd s, bool many) {
    std::vector<uint8_t> inter(inter_stride * im.h + 64, 0);
    std::vector<uint8_t*> op(im.h);
    for (int y = 0; y < im.h; ++y) op[y] = &inter[y * inter_stride];
    if (many) {
      hpass_rows(kernels_for(s, fast), rp.data(), im.h, 0, ht, op.data());
    } else {
      for (int y = 0; y < im.h; ++y) hpass_row(kernels_for(s, fast), rp[y], 0, ht, op[y]);
    }
    return inter;
  };
  const std::vector<uint8_t> ref = hpass_all(Simd::kScalar, false);
  const std::string where = name + " " + std::to_string(im.w) + "x" + std::to_string(im.h) + "->" +
                            std::to_string(out_w) + "x" + std::to_string(out_h) + " interp=" +
                            std::to_string(static_cast<int>(interp)) + (reverse ? " flipped" : "") +
                            (fast ? " fast (precision " + std::to_string(ht.prec) + ")" : "");
  for (Simd s : levels) {
    expect_same("hpass_row", s, ref, hpass_all(s, false), ref.size(), 4, where);
    expect_same("hpass_rows", s, ref, hpass_all(s, true), ref.size(), 4, where);
  }

  AxisSpec ay = ax;
  ay.vertical = true;
  ay.src_size = im.h;
  ay.b1 = im.h;
  ay.out_size = out_h;
  ay.o1 = out_h;
  AxisTable vt;
  build_axis_table(ay, &vt);
  const int nbytes = out_w * 4;
  auto vpass_all = [&](Simd s) {
    std::vector<uint8_t> out(static_cast<size_t>(out_h) * inter_stride + 64, 0);
    for (int e = 0; e < vt.n; ++e)
      vpass_row(kernels_for(s, fast), ref.data(), inter_stride, vt.start[e], vt, e, nbytes, &out[e * inter_stride]);
    return out;
  };
  const std::vector<uint8_t> vref = vpass_all(Simd::kScalar);
  for (Simd s : levels) {
    const std::vector<uint8_t> got = vpass_all(s);
    for (int e = 0; e < out_h; ++e) {  // compare the written bytes only (nbytes per row)
      std::vector<uint8_t> a(vref.begin() + e * inter_stride, vref.begin() + e * inter_stride + nbytes);
      std::vector<uint8_t> b(got.begin() + e * inter_stride, got.begin() + e * inter_stride + nbytes);
      expect_same("vpass_row", s, a, b, static_cast<size_t>(nbytes), 1, where + " row " + std::to_string(e));
    }
  }
}

// An in-place op on a copy of `im` at every level, each compared with the scalar reference.
template <typename Op>
void check_in_place(const char* what, const Image& im, const std::vector<Simd>& levels, const char* where, Op op) {
  auto run = [&](Simd s) {
    std::vector<uint8_t> px = im.px;
    std::vector<uint8_t*> rows(im.h);
    for (int y = 0; y < im.h; ++y) rows[y] = &px[static_cast<size_t>(y) * im.w * 4];
    Scratch scratch;
    op(s, rows.data(), &scratch);
    return px;
  };
  const std::vector<uint8_t> ref = run(Simd::kScalar);
  for (Simd s : levels) expect_same(what, s, ref, run(s), ref.size(), 1, where);
}

// ColorJitter on `im` (in place on copies): every level against the scalar reference.
void check_jitter(const Image& im, const JitterParams& jp, const std::vector<Simd>& levels, const std::string& name) {
  char where[160];
  std::snprintf(where, sizeof where, "%s %dx%d mask=%d factors=%g,%g,%g,%g", name.c_str(), im.w, im.h, jp.mask,
                jp.factor[0], jp.factor[1], jp.factor[2], jp.factor[3]);
  check_in_place("color_jitter", im, levels, where, [&](Simd s, uint8_t* const* rows, Scratch*) {
    apply_color_jitter(kernels_for(s), jp, rows, im.h, im.w);
  });
}

// The sharpness filter (RandAugment's Sharpness) on `im`: every level against the scalar reference.
void check_sharpness(const Image& im, float alpha, const std::vector<Simd>& levels, const std::string& name) {
  char where[120];
  std::snprintf(where, sizeof where, "%s %dx%d alpha=%g", name.c_str(), im.w, im.h, alpha);
  check_in_place("sharpness", im, levels, where, [&](Simd s, uint8_t* const* rows, Scratch* scratch) {
    aug_sharpness(kernels_for(s), alpha, rows, im.h, im.w, scratch);
  });
}

// GaussianBlur (its row and column taps by the level's kernels) on `im`.
void check_blur(const Image& im, int kx, int ky, float sigma, const std::vector<Simd>& levels, const std::string& name) {
  char where[120];
  std::snprintf(where, sizeof where, "%s %dx%d k=%dx%d sigma=%g", name.c_str(), im.w, im.h, kx, ky, sigma);
  check_in_place("blur", im, levels, where, [&](Simd s, uint8_t* const* rows, Scratch* scratch) {
    gaussian_blur(kernels_for(s), kx, ky, sigma, sigma, rows, im.h, im.w, scratch);
  });
}

// AutoContrast (its per-channel minimum and maximum by the level's kernel) on `im`.
void check_autocontrast(const Image& im, const std::vector<Simd>& levels, const std::string& name) {
  char where[120];
  std::snprintf(where, sizeof where, "%s %dx%d", name.c_str(), im.w, im.h);
  check_in_place("autocontrast", im, levels, where, [&](Simd s, uint8_t* const* rows, Scratch*) {
    aug_autocontrast(kernels_for(s), rows, im.h, im.w);
  });
}

// The affine warp (RandomRotation, RandomAffine, the policies' Shear/Translate/Rotate) on `im`:
// every level against the scalar reference, nearest and bilinear, with and without a fill.
void check_warp(const Image& im, const double m[6], const std::vector<Simd>& levels, const std::string& name) {
  for (int mode = 0; mode < 4; ++mode) {
    WarpSpec ws;
    ws.bilinear = mode & 1;
    ws.fill_on = mode & 2;
    ws.fill[0] = 12.5f, ws.fill[1] = 200.f, ws.fill[2] = 255.7f;
    char where[200];
    std::snprintf(where, sizeof where, "%s %dx%d m=[%g %g %g; %g %g %g] bilinear=%d fill=%d", name.c_str(), im.w,
                  im.h, m[0], m[1], m[2], m[3], m[4], m[5], ws.bilinear, ws.fill_on);
    check_in_place("warp", im, levels, where, [&](Simd s, uint8_t* const* rows, Scratch* scratch) {
      warp_affine(kernels_for(s), m, ws, rows, im.h, im.w, scratch);
    });
  }
}

// timm's warps in Pillow's arithmetic (Image.transform(AFFINE)) on `im`: every level against the
// scalar reference, bilinear and bicubic, with the fill outside.
void check_pil_warp(const Image& im, const double m[6], const std::vector<Simd>& levels, const std::string& name) {
  const uint8_t fill[3] = {3, 128, 250};
  for (PilFilter f : {PilFilter::kBilinear, PilFilter::kBicubic}) {
    char where[200];
    std::snprintf(where, sizeof where, "%s %dx%d m=[%g %g %g; %g %g %g] filter=%d", name.c_str(), im.w, im.h, m[0],
                  m[1], m[2], m[3], m[4], m[5], static_cast<int>(f));
    check_in_place("pil_warp", im, levels, where, [&](Simd s, uint8_t* const* rows, Scratch* scratch) {
      pil_affine(kernels_for(s), m, f, fill, rows, im.h, im.w, scratch);
    });
  }
}

// timm's Color and Sharpness in Pillow's arithmetic (ImageEnhance blends) on `im`, factor f:
// every level against the scalar reference.
void check_pil_blur(const Image& im, float radius, const std::vector<Simd>& levels, const std::string& name) {
  char where[160];
  std::snprintf(where, sizeof where, "%s %dx%d radius=%g", name.c_str(), im.w, im.h, radius);
  check_in_place("pil_blur", im, levels, where, [&](Simd s, uint8_t* const* rows, Scratch* scratch) {
    pil_gaussian_blur(kernels_for(s), radius, rows, im.h, im.w, scratch);
  });
}

void check_pil_enhance(const Image& im, float f, const std::vector<Simd>& levels, const std::string& name) {
  const uint8_t fill[3] = {0, 0, 0};
  for (PilOp op : {PilOp::kColor, PilOp::kSharpness}) {
    char where[160];
    std::snprintf(where, sizeof where, "%s %dx%d op=%d f=%g", name.c_str(), im.w, im.h, static_cast<int>(op), f);
    check_in_place("pil_enhance", im, levels, where, [&](Simd s, uint8_t* const* rows, Scratch* scratch) {
      apply_pil_op(kernels_for(s), op, f, PilFilter::kBilinear, fill, rows, im.h, im.w, scratch);
    });
  }
}

// RandomHSV on `im`: every level against the scalar reference.
void check_hsv(const Image& im, const HsvParams& hp, const std::vector<Simd>& levels, const std::string& name) {
  char where[160];
  std::snprintf(where, sizeof where, "%s %dx%d gains=%g,%g,%g", name.c_str(), im.w, im.h, hp.gain[0], hp.gain[1],
                hp.gain[2]);
  check_in_place("random_hsv", im, levels, where, [&](Simd s, uint8_t* const* rows, Scratch*) {
    apply_random_hsv(kernels_for(s), hp, rows, im.h, im.w);
  });
}

bool read_photo(const char* path, int w, int h, Image* im) {
  FILE* f = std::fopen(path, "rb");
  if (!f) return false;
  im->w = w;
  im->h = h;
  im->px.resize(static_cast<size_t>(w) * h * 4);
  const size_t got = std::fread(im->px.data(), 1, im->px.size(), f);
  std::fclose(f);
  return got == im->px.size();
}

}  // namespace

// The PNG row kernels on rows of `im` (RGBX bytes taken as rows of `bpp`-byte pixels): each filter
// type undone on each row (its predecessor as the previous row), then each colour expansion.
void check_png_rows(const Image& im, const std::vector<Simd>& levels, const std::string& name) {
  for (int bpp = 1; bpp <= 4; ++bpp) {
    const size_t n = static_cast<size_t>(im.w) * bpp;
    for (int y = 0; y < im.h; ++y) {
      std::vector<uint8_t> raw(n + kPngRowPad), prev(n + kPngRowPad, 0);
      std::memcpy(raw.data(), &im.px[static_cast<size_t>(y) * im.w * 4], n);
      if (y > 0) std::memcpy(prev.data(), &im.px[static_cast<size_t>(y - 1) * im.w * 4], n);
      for (int type = 0; type <= 4; ++type) {
        auto run = [&](Simd s) {
          std::vector<uint8_t> out(n + kPngRowPad, 0);
          if (!png_unfilter(kernels_for(s), type, raw.data(), prev.data(), out.data(), n, bpp)) out.assign(out.size(), 1);
          return out;
        };
        char where[120];
        std::snprintf(where, sizeof where, "%s w=%d row=%d bpp=%d filter=%d", name.c_str(), im.w, y, bpp, type);
        const std::vector<uint8_t> ref = run(Simd::kScalar);
        for (Simd s : levels) expect_same("png_unfilter", s, ref, run(s), n, 1, where);
      }
    }
  }
  std::vector<uint32_t> palette(256);
  for (int i = 0; i < 256; ++i) palette[i] = 0x01010101u * static_cast<uint32_t>(255 - i) ^ 0x00ff00u;
  for (int ct : {0, 2, 3, 4, 6}) {
    const int samples = ct == 2 ? 3 : ct == 4 ? 2 : ct == 6 ? 4 : 1;
    for (int y = 0; y < im.h; ++y) {
      std::vector<uint8_t> src(static_cast<size_t>(im.w) * samples + kPngRowPad, 0);
      std::memcpy(src.data(), &im.px[static_cast<size_t>(y) * im.w * 4], static_cast<size_t>(im.w) * samples);
      auto run = [&](Simd s) {
        std::vector<uint8_t> out(static_cast<size_t>(im.w) * 4, 0);
        png_expand_rgbx(kernels_for(s), ct, src.data(), im.w, palette.data(), out.data());
        return out;
      };
      char where[120];
      std::snprintf(where, sizeof where, "%s w=%d row=%d colour type %d", name.c_str(), im.w, y, ct);
      const std::vector<uint8_t> ref = run(Simd::kScalar);
      for (Simd s : levels) expect_same("png_expand_rgbx", s, ref, run(s), ref.size(), 1, where);
    }
  }
}

int main(int argc, char** argv) {
  std::vector<Simd> levels;
  for (Simd s : {Simd::kSSE41, Simd::kAVX2, Simd::kNEON})
    if (simd_supported(s)) levels.push_back(s);
  std::printf("CPU best level: %s; levels checked against scalar:", simd_name(cpu_best_simd()));
  for (Simd s : levels) std::printf(" %s", simd_name(s));
  std::printf("\n");
  if (levels.empty()) {
    std::printf("no SIMD level on this CPU: nothing to compare\n");
    return 1;
  }
  std::mt19937 rng(12345);
  const Interp interps[] = {Interp::kNearest, Interp::kBilinear, Interp::kBicubic};
  // Random images: odd and even widths, scale factors from 9x down to 2x up, every tap count.
  for (int w : {1, 2, 3, 7, 17, 64, 101, 333}) {
    const Image im = random_image(rng, w, std::max(1, (w * 3) / 4 + 1));
    for (int out : {1, 3, 5, 16, 37, 224}) {
      if (out > w * 2 + 40) continue;
      for (Interp in : interps)
        for (bool rev : {false, true})
          for (bool fast : {false, true})
            check_resize(im, out, std::max(1, out * 3 / 4 + 1), in, rev, fast, levels, "random");
    }
  }
  for (int f = 1; f <= 9; ++f) {  // downscale by f: 2 * f * support taps
    const Image im = random_image(rng, 37 * f + 3, 11 * f + 1);
    for (Interp in : interps)
      for (bool fast : {false, true})
        check_resize(im, 37, 11, in, f % 2 == 0, fast, levels, "scale" + std::to_string(f));
  }
  {  // a 600x downscale: fast mode's weights are small enough for the full 22-bit precision
    const Image im = random_image(rng, 3000, 3);
    for (Interp in : interps)
      for (bool fast : {false, true}) check_resize(im, 5, 1, in, false, fast, levels, "wide");
  }
  std::uniform_real_distribution<float> bright(0.f, 2.f), hue(-0.5f, 0.5f);
  for (int w : {1, 3, 4, 7, 8, 9, 31, 100}) {
    const Image im = random_image(rng, w, 5);
    for (int mask = 1; mask < 16; ++mask) {
      JitterParams jp;
      jp.mask = mask;
      jp.order[0] = mask % 4, jp.order[1] = (mask + 1) % 4, jp.order[2] = (mask + 2) % 4, jp.order[3] = (mask + 3) % 4;
      jp.factor[0] = bright(rng), jp.factor[1] = bright(rng), jp.factor[2] = bright(rng), jp.factor[3] = hue(rng);
      check_jitter(im, jp, levels, "random");
    }
  }
  for (int w : {3, 4, 5, 6, 9, 10, 13, 40, 101})
    for (float alpha : {0.0f, 0.1f, 0.5f, 0.95f, 1.0f, 1.9f, -0.7f}) check_sharpness(random_image(rng, w, 6), alpha, levels, "random");
  std::uniform_real_distribution<float> gain(-0.9f, 0.9f);
  for (int w : {1, 3, 4, 7, 8, 9, 33, 100}) {
    const Image im = random_image(rng, w, 4);
    for (int k = 0; k < 8; ++k) {
      HsvParams hp;
      hp.on = true;
      hp.gain[0] = gain(rng), hp.gain[1] = gain(rng), hp.gain[2] = gain(rng);
      check_hsv(im, hp, levels, "random");
    }
  }
  std::uniform_real_distribution<double> angle(-3.2, 3.2), scale(0.6, 1.6), shift(-20.0, 20.0), shear(-0.5, 0.5);
  for (int w : {1, 2, 3, 5, 8, 13, 64, 97}) {
    const Image im = random_image(rng, w, std::max(1, w * 2 / 3 + 1));
    for (int k = 0; k < 6; ++k) {
      const double a = angle(rng), sc = scale(rng), sh = shear(rng);
      const double m[6] = {sc * std::cos(a), -sc * std::sin(a) + sh, shift(rng),
                           sc * std::sin(a), sc * std::cos(a), shift(rng)};
      check_warp(im, m, levels, "random");
      check_pil_warp(im, m, levels, "random");
      // timm's shears and translations: one axis unmoved (a zero fraction), whole-pixel shifts
      const double sx[6] = {1.0, sh, 0.0, 0.0, 1.0, 0.0}, sy[6] = {1.0, 0.0, 0.0, sh, 1.0, 0.0};
      const double tx[6] = {1.0, 0.0, shift(rng), 0.0, 1.0, 0.0}, ty[6] = {1.0, 0.0, 0.0, 0.0, 1.0, std::round(shift(rng))};
      for (const double* a : {sx, sy, tx, ty}) check_pil_warp(im, a, levels, "random axis");
    }
    for (float f : {0.0f, 0.1f, 0.63f, 1.0f, 1.37f, 1.9f}) check_pil_enhance(im, f, levels, "random");
    for (float radius : {0.1f, 1.05f, 2.0f, 7.5f}) check_pil_blur(im, radius, levels, "random");
  }
  for (int w : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 100}) check_png_rows(random_image(rng, w, 4), levels, "random");
  for (int w : {1, 3, 8, 17, 31, 32, 33, 65, 130})
    for (int k : {1, 3, 9, 23}) check_blur(random_image(rng, w, 7), k, k == 1 ? 5 : k, 0.1f + k / 7.f, levels, "random");
  for (int w : {1, 3, 4, 5, 8, 9, 31, 64, 101}) {  // narrow value ranges, so the stretch is visible
    Image im = random_image(rng, w, 5);
    for (size_t i = 0; i < im.px.size(); ++i) im.px[i] = static_cast<uint8_t>(40 + im.px[i] % (60 + i % 7));
    check_autocontrast(im, levels, "random");
  }
  if (argc == 4) {
    Image photo;
    if (!read_photo(argv[1], std::atoi(argv[2]), std::atoi(argv[3]), &photo)) {
      std::printf("cannot read the photo %s\n", argv[1]);
      return 1;
    }
    for (int out : {224, 256, 97, 641}) {
      const int oh = std::max(1, photo.h * out / photo.w);
      for (Interp in : interps)
        for (bool fast : {false, true}) check_resize(photo, out, oh, in, out == 97, fast, levels, "photo");
    }
    for (float f : {0.0f, 0.35f, 1.0f, 1.7f}) {
      JitterParams jp;
      jp.mask = 15;
      jp.factor[0] = f, jp.factor[1] = 2.f - f, jp.factor[2] = f * 0.8f, jp.factor[3] = (f - 0.85f) / 2.f;
      check_jitter(photo, jp, levels, "photo");
    }
    for (float alpha : {0.05f, 0.5f, 1.0f, 1.9f}) check_sharpness(photo, alpha, levels, "photo");
    for (float f : {0.1f, 0.55f, 1.45f, 1.9f}) check_pil_enhance(photo, f, levels, "photo");
    for (float radius : {0.4f, 2.0f, 11.0f}) check_pil_blur(photo, radius, levels, "photo");
    check_autocontrast(photo, levels, "photo");
    check_blur(photo, 23, 23, 1.7f, levels, "photo");
    for (float g : {-0.5f, 0.015f, 0.4f}) {
      HsvParams hp;
      hp.on = true;
      hp.gain[0] = g, hp.gain[1] = -g * 0.7f, hp.gain[2] = g * 0.4f;
      check_hsv(photo, hp, levels, "photo");
    }
    for (double a : {0.3, -1.1, 2.9}) {
      const double m[6] = {std::cos(a), -std::sin(a), 7.5, std::sin(a), std::cos(a), -3.25};
      check_warp(photo, m, levels, "photo");
      check_pil_warp(photo, m, levels, "photo");
    }
    Image strip = photo;  // 24 rows of the photo: smooth rows, where the Paeth predictor ties
    strip.h = std::min(photo.h, 24);
    strip.px.resize(static_cast<size_t>(strip.w) * strip.h * 4);
    check_png_rows(strip, levels, "photo");
    for (int i = 0; i < 24; ++i) {  // contrast and saturation alone: fma(k, mean, v * f) rounds once
      JitterParams jp;
      jp.mask = i % 2 ? 2 : 4;
      jp.factor[1] = jp.factor[2] = 0.05f + 0.083f * i;
      check_jitter(photo, jp, levels, "photo");
    }
  }
  std::printf("%ld comparisons, %d mismatches\n", checks, failures);
  {  // GaussianNoise's values (one code path for every level): run.sh compares this line across
     // architectures, so x86-64 and AArch64 give the same bits (Note [Normal values])
    std::vector<float> nv(150528 + 77);
    normal_values(0x5eed, nv.size(), nv.data());
    uint64_t h = 0xcbf29ce484222325ull;
    for (float v : nv) {
      uint32_t b;
      std::memcpy(&b, &v, 4);
      h = (h ^ b) * 0x100000001b3ull;
    }
    std::printf("normal values digest: %016llx\n", static_cast<unsigned long long>(h));
  }
  return failures == 0 ? 0 : 1;
}
