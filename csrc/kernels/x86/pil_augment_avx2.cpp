// AVX2 variants of timm's ops in Pillow's arithmetic (pil_augment.h, Note [PIL augment
// arithmetic]), tested byte-identical to the scalar references in one process
// (tests/test_timm_augment.py, tests/native/simd_kernels_test.cpp):
//  - the warps: one output pixel per step, its R, G, B (and X) as the four float64 lanes of a
//    register, so every channel goes through the reference's double operations in the same order
//    (subtract, multiply, add; no fused multiply-add: the build contracts none). Pixels whose
//    neighbourhood reaches past an edge, and those outside the image, take the reference's path;
//  - Color: 8 pixels per step, the luma in 32-bit integers, the blend in float32 (a multiply then
//    an add). Sharpness shares the torchvision kernel's filter (augment_avx2.cpp).
#include "kernels/pil_augment.h"
#include "kernels/reference.h"
#include "kernels/x86/kernels.h"

#include <immintrin.h>

#include <cstring>

namespace fastprep {

namespace {

// The RGBX pixel at p as four doubles.
FP_AVX2 inline __m256d px4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_cvtepi32_pd(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(v)));
}

// a + (b - a) * d, lane by lane (Pillow's BILINEAR).
FP_AVX2 inline __m256d lerp(__m256d a, __m256d b, __m256d d) {
  return _mm256_add_pd(a, _mm256_mul_pd(_mm256_sub_pd(b, a), d));
}

// Pillow's cubic (a = -1) through v1..v4 at fraction d, in the reference's order.
FP_AVX2 inline __m256d cubic(__m256d v1, __m256d v2, __m256d v3, __m256d v4, __m256d d) {
  const __m256d p2 = _mm256_sub_pd(v3, v1);                                                         // -v1 + v3
  const __m256d p3 = _mm256_sub_pd(_mm256_add_pd(_mm256_mul_pd(_mm256_set1_pd(2.0), _mm256_sub_pd(v1, v2)), v3),
                                   v4);                                                             // 2 (v1 - v2) + v3 - v4
  const __m256d p4 = _mm256_add_pd(_mm256_sub_pd(_mm256_sub_pd(v2, v1), v3), v4);                 // -v1 + v2 - v3 + v4
  return _mm256_add_pd(v2, _mm256_mul_pd(d, _mm256_add_pd(p2, _mm256_mul_pd(d, _mm256_add_pd(p3, _mm256_mul_pd(d, p4))))));
}

// The three colour lanes of v (already in [0, 255]) truncated into out[0..2].
FP_AVX2 inline void store3(__m256d v, uint8_t* out) {
  const __m128i i32 = _mm256_cvttpd_epi32(v);
  const int32_t packed = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packus_epi32(i32, i32), _mm_setzero_si128()));
  std::memcpy(out, &packed, 3);
}

}  // namespace

namespace {

// One output pixel whose neighbourhood lies inside the image: (ix, iy) the floor of its source
// point less half a pixel, (fx, fy) the fractions.
FP_AVX2 inline void interior_px(bool bicubic, const uint8_t* src, size_t stride, int ix, int iy, double fx, double fy,
                                uint8_t* out) {
  // A zero fraction (every pixel of a shear or translation along one axis has one) makes that
  // axis's step return its first (bilinear) or second (bicubic) input unchanged: v + 0 * (finite)
  // is v exactly, so the step is left out and the bytes are the reference's.
  const __m256d dx = _mm256_set1_pd(fx), dy = _mm256_set1_pd(fy);
  if (!bicubic) {
    const uint8_t* p0 = src + iy * stride + ix * 4;
    const uint8_t* p1 = p0 + stride;
    if (fy == 0.0) return store3(fx == 0.0 ? px4(p0) : lerp(px4(p0), px4(p0 + 4), dx), out);
    if (fx == 0.0) return store3(lerp(px4(p0), px4(p1), dy), out);
    const __m256d v1 = lerp(px4(p0), px4(p0 + 4), dx);
    const __m256d v2 = lerp(px4(p1), px4(p1 + 4), dx);
    store3(lerp(v1, v2, dy), out);
    return;
  }
  const uint8_t* p = src + (iy - 1) * stride + (ix - 1) * 4;
  __m256d t;
  if (fy == 0.0) {
    p += stride;
    t = fx == 0.0 ? px4(p + 4) : cubic(px4(p), px4(p + 4), px4(p + 8), px4(p + 12), dx);
  } else if (fx == 0.0) {
    t = cubic(px4(p + 4), px4(p + stride + 4), px4(p + 2 * stride + 4), px4(p + 3 * stride + 4), dy);
  } else {
    __m256d v[4];
    for (int j = 0; j < 4; ++j, p += stride) v[j] = cubic(px4(p), px4(p + 4), px4(p + 8), px4(p + 12), dx);
    t = cubic(v[0], v[1], v[2], v[3], dy);
  }
  t = _mm256_min_pd(_mm256_max_pd(t, _mm256_setzero_pd()), _mm256_set1_pd(255.0));
  store3(t, out);
}

}  // namespace

FP_AVX2 void pil_affine_row_avx2(const double a[6], bool bicubic, const uint8_t fill[3], const uint8_t* src,
                                 size_t stride, int h, int w, int y, uint8_t* dst) {
  const double yin = y + 0.5;
  const double bx = a[1] * yin, by = a[4] * yin;
  // The neighbourhood's reach: bilinear reads (ix, iy) to (ix + 1, iy + 1), bicubic one more on
  // each side; a point with all of it inside needs no clamping.
  const int lo = bicubic ? 1 : 0, reach = bicubic ? 2 : 1;
  const __m256d half = _mm256_set1_pd(0.5), a0 = _mm256_set1_pd(a[0]), a3 = _mm256_set1_pd(a[3]);
  const __m256d bxv = _mm256_set1_pd(bx), byv = _mm256_set1_pd(by), a2 = _mm256_set1_pd(a[2]),
                a5 = _mm256_set1_pd(a[5]);
  const __m256d x_lo = _mm256_set1_pd(lo), x_hi = _mm256_set1_pd(w - 1 - reach),
                y_lo = _mm256_set1_pd(lo), y_hi = _mm256_set1_pd(h - 1 - reach);
  int x = 0;
  // Four pixels at a time: their source points (the reference's sums, lane by lane), floors and
  // fractions; when all four neighbourhoods are inside, each pixel runs on its lanes.
  for (; x + 4 <= w; x += 4) {
    const __m256d xin = _mm256_add_pd(_mm256_setr_pd(x, x + 1, x + 2, x + 3), half);
    const __m256d xs = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(a0, xin), bxv), a2);
    const __m256d ys = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(a3, xin), byv), a5);
    const __m256d sx = _mm256_sub_pd(xs, half), sy = _mm256_sub_pd(ys, half);
    const __m256d fx = _mm256_floor_pd(sx), fy = _mm256_floor_pd(sy);
    const __m256d ok = _mm256_and_pd(_mm256_and_pd(_mm256_cmp_pd(fx, x_lo, _CMP_GE_OQ), _mm256_cmp_pd(fx, x_hi, _CMP_LE_OQ)),
                                     _mm256_and_pd(_mm256_cmp_pd(fy, y_lo, _CMP_GE_OQ), _mm256_cmp_pd(fy, y_hi, _CMP_LE_OQ)));
    alignas(32) double xs_[4], ys_[4], dx_[4], dy_[4], fx_[4], fy_[4];
    if (_mm256_movemask_pd(ok) != 0xF) {
      _mm256_store_pd(xs_, xs);
      _mm256_store_pd(ys_, ys);
      for (int i = 0; i < 4; ++i) pil_sample_px(bicubic, fill, src, stride, h, w, xs_[i], ys_[i], dst + 4 * (x + i));
      continue;
    }
    _mm256_store_pd(dx_, _mm256_sub_pd(sx, fx));
    _mm256_store_pd(dy_, _mm256_sub_pd(sy, fy));
    _mm256_store_pd(fx_, fx);
    _mm256_store_pd(fy_, fy);
    for (int i = 0; i < 4; ++i)
      interior_px(bicubic, src, stride, static_cast<int>(fx_[i]), static_cast<int>(fy_[i]), dx_[i], dy_[i],
                  dst + 4 * (x + i));
  }
  for (; x < w; ++x) {
    const double xin = x + 0.5;
    pil_sample_px(bicubic, fill, src, stride, h, w, a[0] * xin + bx + a[2], a[3] * xin + by + a[5], dst + 4 * x);
  }
}

// ImageEnhance.Color: each channel blended with the pixel's luma, float(l) + f * float(v - l),
// clamped and truncated (for f in [0, 1] the clamp changes nothing: the blend stays between its
// inputs); the 4th bytes kept.
FP_AVX2 void pil_color_row_avx2(uint8_t* rgbx, int n, float f) {
  const __m256i byte = _mm256_set1_epi32(0xFF), xmask = _mm256_set1_epi32(static_cast<int>(0xFF000000u));
  const __m256i wr = _mm256_set1_epi32(19595), wg = _mm256_set1_epi32(38470), wb = _mm256_set1_epi32(7471),
                round = _mm256_set1_epi32(0x8000);
  const __m256 vf = _mm256_set1_ps(f), lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(255.f);
  int x = 0;
  for (; x + 8 <= n; x += 8) {
    uint8_t* p = rgbx + static_cast<size_t>(x) * 4;
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i r = _mm256_and_si256(v, byte), g = _mm256_and_si256(_mm256_srli_epi32(v, 8), byte),
                  b = _mm256_and_si256(_mm256_srli_epi32(v, 16), byte);
    const __m256i l = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(r, wr), _mm256_mullo_epi32(g, wg)),
                                          _mm256_mullo_epi32(b, wb)),
                         round),
        16);
    const __m256 lf = _mm256_cvtepi32_ps(l);
    __m256i out = _mm256_and_si256(v, xmask);
    const __m256i ch[3] = {r, g, b};
    for (int c = 0; c < 3; ++c) {
      const __m256 t = _mm256_add_ps(lf, _mm256_mul_ps(vf, _mm256_cvtepi32_ps(_mm256_sub_epi32(ch[c], l))));
      const __m256i q = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(t, lo), hi));
      out = _mm256_or_si256(out, _mm256_slli_epi32(q, 8 * c));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), out);
  }
  if (x < n) pil_color_row_ref(rgbx + static_cast<size_t>(x) * 4, n - x, f);
}

}  // namespace fastprep
