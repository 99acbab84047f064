#include "kernels/output.h"

#include "kernels/color.h"

#include <algorithm>
#include <cmath>
#include <cstring>


namespace fastprep {

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u);  // inf / nan
  if (x >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: overflow to inf
  if (x < 0x38800000u) {                         // below the smallest normal half: subnormal
    float a;
    std::memcpy(&a, &x, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));  // exact scaling, RNE
  }
  uint32_t h = (((x >> 23) - 112u) << 10) | ((x >> 13) & 0x3ffu);
  const uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // round half to even
  return sign | static_cast<uint16_t>(h);
}

uint16_t float_to_bfloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet nan
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

void store_value(float x, DType dtype, uint8_t* dst) {
  if (dtype == DType::kU8) {
    x = x < 0.f ? 0.f : (x > 255.f ? 255.f : x);
    *dst = static_cast<uint8_t>(x);  // truncation, as torch's float -> uint8 copy
  } else if (dtype == DType::kF32) {
    std::memcpy(dst, &x, 4);
  } else {
    uint16_t h = dtype == DType::kF16 ? float_to_half(x) : float_to_bfloat16(x);
    std::memcpy(dst, &h, 2);
  }
}

void build_shifted_table(const OutputSpec& o, const float shift_rgb[3], bool normalize, const float mean[3],
                         const float std[3], bool unit_range, std::vector<uint8_t>* lut) {
  const size_t es = dtype_size(o.dtype);
  lut->resize(static_cast<size_t>(o.channels) * 256 * es);
  for (int c = 0; c < o.channels; ++c) {
    const float sh = shift_rgb[o.perm[c]];
    for (int v = 0; v < 256; ++v) {
      float x = level_value(v, unit_range, o.unit_mul);
      x = x + sh;
      if (normalize) x = (x - mean[c]) / std[c];
      store_value(x, o.dtype, &(*lut)[(static_cast<size_t>(c) * 256 + v) * es]);
    }
  }
}

void build_output_spec(OutputSpec* o, DType dtype, Layout layout, Color color, int gray_channels, bool normalize,
                       const float mean[3], const float std[3], bool unit_range, bool unit_mul) {
  o->dtype = dtype;
  o->unit_mul = unit_mul;
  o->layout = layout;
  o->color = color;
  o->channels = color == Color::kGray ? (gray_channels == 3 ? 3 : 1) : 3;
  if (color == Color::kBGR) {
    o->perm[0] = 2; o->perm[1] = 1; o->perm[2] = 0;
  } else {
    o->perm[0] = 0; o->perm[1] = 1; o->perm[2] = 2;
  }
  o->arith = OutputArith();
  o->arith.unit_range = unit_range;
  o->arith.normalize = normalize;
  for (int c = 0; c < 3; ++c) {
    o->arith.mean[c] = normalize ? mean[c] : 0.f;
    o->arith.std[c] = normalize ? std[c] : 1.f;
  }
  const size_t es = dtype_size(dtype);
  o->lut.assign(static_cast<size_t>(o->channels) * 256 * es, 0);
  for (int c = 0; c < o->channels; ++c) {
    for (int v = 0; v < 256; ++v) {
      uint8_t* dst = &o->lut[(static_cast<size_t>(c) * 256 + v) * es];
      if (dtype == DType::kU8) {
        *dst = static_cast<uint8_t>(v);
        continue;
      }
      float x = level_value(v, unit_range, unit_mul);
      if (normalize) x = (x - mean[c]) / std[c];
      store_value(x, dtype, dst);
    }
  }
}

void LevelHistogram::clear() { std::memset(bins, 0, sizeof(bins)); }

void LevelHistogram::replicate_gray(int channels) {
  for (int c = 1; c < channels; ++c) std::memcpy(bins[c], bins[0], sizeof(bins[0]));
}

void build_image_table(const OutputSpec& o, NormMode mode, bool unit_range, float range_lo, float range_hi,
                       const LevelHistogram& h, std::vector<uint8_t>* lut, ImageNorm* norm) {
  // Exact integer moments and extremes over every output element (all channels).
  uint64_t n = 0, s1 = 0, s2 = 0;
  int lo = 256, hi = -1;
  for (int c = 0; c < o.channels; ++c)
    for (int v = 0; v < 256; ++v) {
      const uint64_t k = h.bins[c][v];
      if (!k) continue;
      n += k;
      s1 += k * static_cast<uint64_t>(v);
      s2 += k * static_cast<uint64_t>(v * v);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  const double in_scale = unit_range ? 1.0 / 255.0 : 1.0;
  double offset = 0.0, scale = 1.0;
  if (n > 0) {
    if (mode == NormMode::kPerImage) {
      // tf.image.per_image_standardization: the std is floored at 1/sqrt(N) (N = elements), so a
      // flat image maps to 0 instead of dividing by zero.
      const double dn = static_cast<double>(n);
      const double mean = static_cast<double>(s1) / dn;
      const double var = std::max(0.0, static_cast<double>(s2) / dn - mean * mean);
      offset = mean * in_scale;
      scale = std::max(std::sqrt(var) * in_scale, 1.0 / std::sqrt(dn));
    } else {
      offset = lo * in_scale;
      scale = hi > lo ? (hi - lo) * in_scale : 0.0;  // a flat image maps to range_lo
    }
  }
  norm->offset = offset;
  norm->scale = scale;
  const size_t es = dtype_size(o.dtype);
  lut->resize(static_cast<size_t>(o.channels) * 256 * es);
  const float off = static_cast<float>(offset), sc = static_cast<float>(scale);
  const float r_min = std::min(range_lo, range_hi), r_max = std::max(range_lo, range_hi);
  for (int v = 0; v < 256; ++v) {
    const float x = level_value(v, unit_range, o.unit_mul);
    float y;
    if (mode == NormMode::kPerImage) {
      y = (x - off) / sc;
    } else {
      // Min-max is scale-free: on the integer levels, so the extremes land exactly on the range
      // ends (and rounding cannot step outside it).
      const float t = hi > lo ? static_cast<float>(v - lo) / static_cast<float>(hi - lo) : 0.0f;
      y = std::min(r_max, std::max(r_min, t * (range_hi - range_lo) + range_lo));
    }
    for (int c = 0; c < o.channels; ++c) store_value(y, o.dtype, &(*lut)[(static_cast<size_t>(c) * 256 + v) * es]);
  }
}

namespace {

// ITU-R 601-2 luma: in 16-bit fixed point, rounded, as PIL's "L" (v1 on PIL images), or as
// torchvision v2's rgb_to_grayscale on uint8 tensors (float32 weights, truncated).
inline int gray_level(const uint8_t* p, bool v2) {
  return v2 ? tv_gray_floor(p[0], p[1], p[2]) : (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
}

}  // namespace

void rgbx_to_gray_row(uint8_t* rgbx, int n, bool v2) {
  for (int x = 0; x < n; ++x, rgbx += 4) rgbx[0] = rgbx[1] = rgbx[2] = static_cast<uint8_t>(gray_level(rgbx, v2));
}

namespace {

template <typename T>
void write_row_t(const OutputSpec& o, const uint8_t* table, const uint8_t* px, int n, T* slot, int h, int w, int y,
                 int x0, bool to_gray, bool pre_gray) {
  // the luma: computed, or already in every channel (pre_gray)
  auto luma = [&](const uint8_t* p) { return pre_gray ? static_cast<int>(p[0]) : gray_level(p, o.gray_v2); };
  const T* lut = reinterpret_cast<const T*>(table);
  const size_t plane = static_cast<size_t>(h) * w;
  if (o.channels == 1) {
    T* dst = slot + static_cast<size_t>(y) * w + x0;  // CHW and HWC coincide for one channel
    for (int i = 0; i < n; ++i) dst[i] = lut[luma(px + 4 * i)];
    return;
  }
  const T* l0 = lut;
  const T* l1 = lut + 256;
  const T* l2 = lut + 512;
  if (o.color == Color::kGray || to_gray) {  // Grayscale(3) / RandomGrayscale: luma in every channel
    if (o.layout == Layout::kCHW) {
      T* d0 = slot + static_cast<size_t>(y) * w + x0;
      T* d1 = d0 + plane;
      T* d2 = d1 + plane;
      for (int i = 0; i < n; ++i) {
        const int g = luma(px + 4 * i);
        d0[i] = l0[g];
        d1[i] = l1[g];
        d2[i] = l2[g];
      }
    } else {
      T* d = slot + (static_cast<size_t>(y) * w + x0) * 3;
      for (int i = 0; i < n; ++i) {
        const int g = luma(px + 4 * i);
        d[3 * i] = l0[g];
        d[3 * i + 1] = l1[g];
        d[3 * i + 2] = l2[g];
      }
    }
    return;
  }
  const int p0 = o.perm[0], p1 = o.perm[1], p2 = o.perm[2];
  if (o.layout == Layout::kCHW) {
    T* d0 = slot + static_cast<size_t>(y) * w + x0;
    T* d1 = d0 + plane;
    T* d2 = d1 + plane;
    for (int i = 0; i < n; ++i) {
      const uint8_t* p = px + 4 * i;
      d0[i] = l0[p[p0]];
      d1[i] = l1[p[p1]];
      d2[i] = l2[p[p2]];
    }
  } else {
    T* d = slot + (static_cast<size_t>(y) * w + x0) * 3;
    for (int i = 0; i < n; ++i) {
      const uint8_t* p = px + 4 * i;
      d[3 * i] = l0[p[p0]];
      d[3 * i + 1] = l1[p[p1]];
      d[3 * i + 2] = l2[p[p2]];
    }
  }
}

// Colour-mixed output (Note [Colour mixing]): three table terms per output value, then the cast.
void write_row_mixed(const OutputSpec& o, const uint8_t* table, const uint8_t* px, int n, uint8_t* slot, int h,
                     int w, int y, int x0) {
  const float* t = reinterpret_cast<const float*>(table);
  const size_t es = dtype_size(o.dtype), plane = static_cast<size_t>(h) * w;
  for (int i = 0; i < n; ++i, px += 4) {
    const size_t pix = static_cast<size_t>(y) * w + x0 + i;
    for (int c = 0; c < 3; ++c) {
      const float* tc = t + static_cast<size_t>(c) * 3 * 256;
      const float v = (tc[px[0]] + tc[256 + px[1]]) + tc[512 + px[2]];
      const size_t idx = o.layout == Layout::kCHW ? c * plane + pix : pix * 3 + c;
      store_value(v, o.dtype, slot + idx * es);
    }
  }
}

}  // namespace

void build_mix_table(const OutputSpec& o, const float mix[9], const float mean[3], const float shift_rgb[3],
                     bool unit_range, std::vector<uint8_t>* lut) {
  lut->resize(9 * 256 * sizeof(float));
  float* t = reinterpret_cast<float*>(lut->data());
  for (int c = 0; c < 3; ++c)
    for (int j = 0; j < 3; ++j)
      for (int v = 0; v < 256; ++v) {
        const float x = level_value(v, unit_range, o.unit_mul);
        t[(c * 3 + j) * 256 + v] = mix[3 * c + j] * ((x + shift_rgb[j]) - mean[j]);
      }
}

void write_row(const OutputSpec& o, const uint8_t* lut, const uint8_t* rgbx, int n, uint8_t* slot, int h, int w,
               int y, int x0, bool to_gray, bool pre_gray) {
  if (o.arith.on && lut == o.lut.data() && !to_gray) {  // the plan's table: Note [Output arithmetic]
    o.arith.kernel(o, rgbx, n, slot, h, w, y, x0);
    return;
  }
  if (o.mixed) {
    write_row_mixed(o, lut, rgbx, n, slot, h, w, y, x0);
    return;
  }
  switch (dtype_size(o.dtype)) {
    case 1: write_row_t<uint8_t>(o, lut, rgbx, n, slot, h, w, y, x0, to_gray, pre_gray); break;
    case 2:
      write_row_t<uint16_t>(o, lut, rgbx, n, reinterpret_cast<uint16_t*>(slot), h, w, y, x0, to_gray, pre_gray);
      break;
    default: write_row_t<float>(o, lut, rgbx, n, reinterpret_cast<float*>(slot), h, w, y, x0, to_gray, pre_gray); break;
  }
}

void enable_output_arith(OutputSpec* o, const Kernels& k) {
  o->arith.on = false;
  o->arith.kernel = nullptr;
  if (!k.output_arith || o->mixed || o->channels != 3 || o->color == Color::kGray) return;
  if (o->dtype == DType::kF16 && !k.output_f16) return;
  OutputArith& a = o->arith;
  for (int g = 0; g < 3; ++g)
    for (int l = 0; l < 8; ++l) {
      a.hwc_mean[g][l] = a.mean[(8 * g + l) % 3];
      a.hwc_std[g][l] = a.std[(8 * g + l) % 3];
    }
  for (int j = 0; j < 32; ++j) {
    const int b = j % 16;
    a.hwc_pick[j] = b < 12 ? static_cast<uint8_t>(4 * (b / 3) + o->perm[b % 3]) : 0x80;
    a.u8_pick[j] = b < 12 ? static_cast<uint8_t>(4 * (b % 4) + o->perm[b / 4]) : 0x80;
  }
  // A row whose channels run through every level (each offset differently), as a 1 x 261 image
  // (the last 5 pixels take the kernel's tail): its bytes against the table's, in the spec's layout.
  constexpr int kW = 261;
  std::vector<uint8_t> row(4 * kW);
  for (int i = 0; i < kW; ++i) {
    row[4 * i] = static_cast<uint8_t>(i);
    row[4 * i + 1] = static_cast<uint8_t>(i + 85);
    row[4 * i + 2] = static_cast<uint8_t>(i + 170);
    row[4 * i + 3] = static_cast<uint8_t>(255 - i);
  }
  const size_t bytes = static_cast<size_t>(kW) * 3 * dtype_size(o->dtype);
  std::vector<uint8_t> want(bytes), got(bytes, 0xA5);
  write_row(*o, o->lut.data(), row.data(), kW, want.data(), 1, kW, 0, 0);  // arith.on is false: the table
  k.output_arith(*o, row.data(), kW, got.data(), 1, kW, 0, 0);
  o->arith.on = want == got;
  if (o->arith.on) o->arith.kernel = k.output_arith;
}

void accumulate_histogram(const OutputSpec& o, const uint8_t* px, int n, bool to_gray, LevelHistogram* h,
                          bool pre_gray) {
  if (o.color == Color::kGray || to_gray) {  // channel 0 only: see replicate_gray
    uint64_t* b = h->bins[0];
    for (int i = 0; i < n; ++i) ++b[pre_gray ? px[4 * i] : gray_level(px + 4 * i, o.gray_v2)];
    return;
  }
  uint64_t* b0 = h->bins[0];
  uint64_t* b1 = h->bins[1];
  uint64_t* b2 = h->bins[2];
  const int p0 = o.perm[0], p1 = o.perm[1], p2 = o.perm[2];
  for (int i = 0; i < n; ++i) {
    const uint8_t* p = px + 4 * i;
    ++b0[p[p0]];
    ++b1[p[p1]];
    ++b2[p[p2]];
  }
}

void fill_level0(const OutputSpec& o, const uint8_t* lut, uint8_t* slot, int h, int w) {
  const size_t es = dtype_size(o.dtype);
  const size_t plane = static_cast<size_t>(h) * w;
  if (o.mixed) {  // one black pixel through the mix, then copied
    const uint8_t black[4] = {0, 0, 0, 0};
    std::vector<uint8_t> px(3 * es);
    write_row(o, lut, black, 1, px.data(), 1, 1, 0, 0);  // 1 x 1: CHW and HWC coincide
    for (size_t i = 0; i < plane; ++i)
      for (int c = 0; c < 3; ++c) {
        const size_t idx = o.layout == Layout::kCHW ? c * plane + i : i * 3 + c;
        std::memcpy(slot + idx * es, px.data() + c * es, es);
      }
    return;
  }
  for (int c = 0; c < o.channels; ++c) {
    const uint8_t* v = &lut[static_cast<size_t>(c) * 256 * es];
    for (size_t i = 0; i < plane; ++i) {
      size_t idx = o.layout == Layout::kCHW ? c * plane + i : i * o.channels + c;
      std::memcpy(slot + idx * es, v, es);
    }
  }
}

}  // namespace fastprep
