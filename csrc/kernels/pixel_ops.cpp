#include "kernels/pixel_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/augment.h"
#include "kernels/filter.h"

namespace fastprep {

const char* pix_op_name(PixOp op) {
  switch (op) {
    case PixOp::kSolarize: return "solarize";
    case PixOp::kPosterize: return "posterize";
    case PixOp::kEqualize: return "equalize";
    case PixOp::kAutocontrast: return "autocontrast";
    case PixOp::kInvert: return "invert";
    case PixOp::kSharpness: return "sharpness";
    case PixOp::kChannelPermutation: return "channel_permutation";
    case PixOp::kGaussianBlur: return "gaussian_blur";
    case PixOp::kExemplarJitter: return "exemplar_jitter";
    case PixOp::kJpeg: return "jpeg";
    case PixOp::kPilBlur: return "pil_gaussian_blur";
  }
  return "?";
}

void exemplar_jitter(const float v[kPixVals], uint8_t* const* rows, int h, int w) {
  // V = max / 255 takes 256 values: its transform is a table. S and H are per pixel.
  float vt[256];
  for (int i = 0; i < 256; ++i) {
    const float x = std::pow(static_cast<float>(i) / 255.f, v[3]) * v[4] + v[5];
    vt[i] = x < 0.f ? 0.f : (x > 1.f ? 1.f : x);
  }
  const float as = v[0], ms = v[1], cs = v[2], dh = v[6];
  auto level = [](float x) { return static_cast<uint8_t>(std::floor(x * 255.f + 0.5f)); };
  for (int y = 0; y < h; ++y) {
    uint8_t* p = rows[y];
    for (int x = 0; x < w; ++x, p += 4) {
      const int r = p[0], g = p[1], b = p[2];
      const int mx = std::max(r, std::max(g, b)), mn = std::min(r, std::min(g, b));
      const float val = vt[mx];
      float sat = 0.f, hue = 0.f;
      if (mx > 0) sat = static_cast<float>(mx - mn) / static_cast<float>(mx);
      if (mx > mn) {  // matplotlib's rgb_to_hsv: the hue of the maximum channel, in turns
        const float d = static_cast<float>(mx - mn);
        if (r == mx) hue = static_cast<float>(g - b) / d;
        else if (g == mx) hue = 2.f + static_cast<float>(b - r) / d;
        else hue = 4.f + static_cast<float>(r - g) / d;
        hue = hue / 6.f;
        hue -= std::floor(hue);
      }
      float s2 = std::pow(sat, as) * ms + cs;
      s2 = s2 < 0.f ? 0.f : (s2 > 1.f ? 1.f : s2);
      float h2 = hue + dh;
      h2 -= std::floor(h2);
      // hsv_to_rgb: sector i = floor(h * 6), f = h * 6 - i.
      const float h6 = h2 * 6.f;
      int sector = static_cast<int>(std::floor(h6));
      const float f = h6 - static_cast<float>(sector);
      sector %= 6;
      const float pp = val * (1.f - s2), q = val * (1.f - s2 * f), t = val * (1.f - s2 * (1.f - f));
      float o[3];
      switch (sector) {
        case 0: o[0] = val, o[1] = t, o[2] = pp; break;
        case 1: o[0] = q, o[1] = val, o[2] = pp; break;
        case 2: o[0] = pp, o[1] = val, o[2] = t; break;
        case 3: o[0] = pp, o[1] = q, o[2] = val; break;
        case 4: o[0] = t, o[1] = pp, o[2] = val; break;
        default: o[0] = val, o[1] = pp, o[2] = q; break;
      }
      if (s2 == 0.f) o[0] = o[1] = o[2] = val;
      p[0] = level(o[0]), p[1] = level(o[1]), p[2] = level(o[2]);
    }
  }
}

void apply_pix_op(const Kernels& k, PixOp op, const double* a, const PixDraw& d, uint8_t* const* rows, int h, int w,
                  Scratch* scratch) {
  if (!d.on) return;
  switch (op) {
    case PixOp::kSolarize: return aug_solarize(a[1], rows, h, w);
    case PixOp::kPosterize: return aug_posterize(static_cast<int>(a[1]), rows, h, w);
    case PixOp::kEqualize: return aug_equalize(rows, h, w);
    case PixOp::kAutocontrast: return aug_autocontrast(k, rows, h, w);
    case PixOp::kInvert: return aug_invert(rows, h, w);
    case PixOp::kSharpness: return aug_sharpness(k, static_cast<float>(1.0 - a[1]), rows, h, w, scratch);
    case PixOp::kChannelPermutation: {
      // v2's permute_channels: output channel c is input channel perm[c].
      const int p0 = static_cast<int>(d.v[0]), p1 = static_cast<int>(d.v[1]), p2 = static_cast<int>(d.v[2]);
      for (int y = 0; y < h; ++y) {
        uint8_t* r = rows[y];
        for (int x = 0; x < w; ++x, r += 4) {
          const uint8_t c[3] = {r[0], r[1], r[2]};
          r[0] = c[p0], r[1] = c[p1], r[2] = c[p2];
        }
      }
      return;
    }
    case PixOp::kGaussianBlur:
      return gaussian_blur(k, static_cast<int>(a[0]), static_cast<int>(a[1]), d.v[0], d.v[0], rows, h, w, scratch);
    case PixOp::kExemplarJitter: return exemplar_jitter(d.v, rows, h, w);
    case PixOp::kPilBlur: return pil_gaussian_blur(k, d.v[0], rows, h, w, scratch);
    case PixOp::kJpeg: throw Error(ErrorKind::kInvalid, "the JPEG op is applied by the pipeline");
  }
}

}  // namespace fastprep
