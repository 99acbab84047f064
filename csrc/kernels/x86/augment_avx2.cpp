// AVX2+FMA variants of the augmentation kernels (augment.h): the affine warp (8 output pixels per
// step, their source pixels gathered) and the sharpness filter (32 bytes per step, the blur in
// 16-bit integers, the blend in float32 with the reference's fused multiply-add, or, for timm's
// Sharpness, with Pillow's multiply then add: pil_augment.h) and
// AutoContrast's minimum and maximum (32 bytes per step). Same operations
// in the same order as the scalar reference in augment.cpp, tested byte-identical to it in one
// process. Compiled without -mavx2 (target attribute; simd.cpp routes here only when cpuid
// reports AVX2 and FMA).
#include "kernels/augment.h"
#include "kernels/pil_augment.h"
#include "kernels/x86/kernels.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>

namespace fastprep {

namespace {
FP_AVX2 inline __m256 channel(__m256i p, int c) {
  return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(p, 8 * c), _mm256_set1_epi32(0xFF)));
}
// round half to even, clamp to [0, 255], as int32
FP_AVX2 inline __m256i round_u8(__m256 v) {
  v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(255.f));
  return _mm256_cvtps_epi32(v);
}
FP_AVX2 inline __m256 inside(__m256 v, __m256 hi) {  // 0 <= v <= hi
  return _mm256_and_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ), _mm256_cmp_ps(v, hi, _CMP_LE_OQ));
}
FP_AVX2 inline __m256 as_one(__m256 mask) { return _mm256_and_ps(mask, _mm256_set1_ps(1.f)); }
// 16 bytes from p + 16 * half, widened to uint16
FP_AVX2 inline __m256i widen(const uint8_t* p, int half) {
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * half)));
}
}  // namespace

FP_AVX2 void warp_row_avx2(const WarpRow& t, const WarpSpec& ws, const uint8_t* src, size_t stride, int h, int w,
                           int y, uint8_t* dst) {
  // Gather indices are int32 pixel offsets: images of 2^29 pixels or more take the scalar path.
  if (static_cast<int64_t>(h) * w >= (int64_t(1) << 29) || stride != static_cast<size_t>(w) * 4)
    return warp_row(t, ws, src, stride, h, w, y, 0, w, dst);
  const float yb = static_cast<float>(y) + t.y_off;
  const __m256 yx = _mm256_set1_ps(yb * t.r10), yy = _mm256_set1_ps(yb * t.r11);
  const __m256 r00 = _mm256_set1_ps(t.r00), r01 = _mm256_set1_ps(t.r01);
  const __m256 r20 = _mm256_set1_ps(t.r20), r21 = _mm256_set1_ps(t.r21);
  const __m256 hw = _mm256_set1_ps(t.half_w), hh = _mm256_set1_ps(t.half_h);
  const __m256 one = _mm256_set1_ps(1.f), mhalf = _mm256_set1_ps(-0.5f);
  const __m256 wmax = _mm256_set1_ps(static_cast<float>(w - 1)), hmax = _mm256_set1_ps(static_cast<float>(h - 1));
  const __m256i wv = _mm256_set1_epi32(w);
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int* base = reinterpret_cast<const int*>(src);
  int fill_px = 0;
  if (ws.fill_on)
    for (int c = 0; c < 3; ++c) {
      float f = std::nearbyint(ws.fill[c]);
      f = f < 0.f ? 0.f : (f > 255.f ? 255.f : f);
      fill_px |= static_cast<int>(f) << (8 * c);
    }
  int x = 0;
  for (; x + 8 <= w; x += 8) {
    const __m256 xb = _mm256_add_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_set1_epi32(x), iota)),
                                    _mm256_set1_ps(t.x_off));
    const __m256 gx = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(xb, r00), yx), r20);
    const __m256 gy = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(xb, r01), yy), r21);
    const __m256 ix = _mm256_fmadd_ps(_mm256_add_ps(gx, one), hw, mhalf);
    const __m256 iy = _mm256_fmadd_ps(_mm256_add_ps(gy, one), hh, mhalf);
    __m256i out;
    if (!ws.bilinear) {
      const __m256 rx = _mm256_round_ps(ix, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m256 ry = _mm256_round_ps(iy, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m256 ok = _mm256_and_ps(inside(rx, wmax), inside(ry, hmax));
      const __m256i idx = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_cvttps_epi32(ry), wv), _mm256_cvttps_epi32(rx));
      // Outside: the fill (or 0) with a zero 4th byte, as the scalar reference writes.
      out = _mm256_mask_i32gather_epi32(_mm256_set1_epi32(fill_px), base, _mm256_and_si256(idx, _mm256_castps_si256(ok)),
                                        _mm256_castps_si256(ok), 4);
    } else {
      const __m256 fx0 = _mm256_floor_ps(ix), fy0 = _mm256_floor_ps(iy);
      const __m256 we = _mm256_sub_ps(ix, fx0), e = _mm256_sub_ps(one, we);
      const __m256 n = _mm256_sub_ps(iy, fy0), s = _mm256_sub_ps(one, n);
      const __m256 wnw = _mm256_mul_ps(s, e), wne = _mm256_mul_ps(s, we);
      const __m256 wsw = _mm256_mul_ps(n, e), wse = _mm256_mul_ps(n, we);
      const __m256 fx1 = _mm256_add_ps(fx0, one), fy1 = _mm256_add_ps(fy0, one);
      const __m256 x0in = inside(fx0, wmax), x1in = inside(fx1, wmax);
      const __m256 y0in = inside(fy0, hmax), y1in = inside(fy1, hmax);
      const __m256 mnw = _mm256_and_ps(x0in, y0in), mne = _mm256_and_ps(x1in, y0in);
      const __m256 msw = _mm256_and_ps(x0in, y1in), mse = _mm256_and_ps(x1in, y1in);
      const __m256i row0 = _mm256_mullo_epi32(_mm256_cvttps_epi32(fy0), wv);
      const __m256i row1 = _mm256_add_epi32(row0, wv);
      const __m256i col0 = _mm256_cvttps_epi32(fx0), col1 = _mm256_add_epi32(col0, _mm256_set1_epi32(1));
      auto gather = [&](__m256i r, __m256i c, __m256 m) FP_AVX2 {
        const __m256i mi = _mm256_castps_si256(m);
        return _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), base, _mm256_and_si256(_mm256_add_epi32(r, c), mi),
                                           mi, 4);
      };
      const __m256i pnw = gather(row0, col0, mnw), pne = gather(row0, col1, mne);
      const __m256i psw = gather(row1, col0, msw), pse = gather(row1, col1, mse);
      auto interp = [&](__m256 vnw, __m256 vne, __m256 vsw, __m256 vse) FP_AVX2 {
        return _mm256_fmadd_ps(vse, wse, _mm256_fmadd_ps(vsw, wsw, _mm256_fmadd_ps(vne, wne, _mm256_mul_ps(vnw, wnw))));
      };
      const __m256 mask = interp(as_one(mnw), as_one(mne), as_one(msw), as_one(mse));
      out = _mm256_setzero_si256();
      for (int c = 0; c < 3; ++c) {
        __m256 v = interp(channel(pnw, c), channel(pne, c), channel(psw, c), channel(pse, c));
        if (ws.fill_on) {
          const __m256 f = _mm256_set1_ps(ws.fill[c]);
          v = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v, f), mask), f);
        }
        out = _mm256_or_si256(out, _mm256_slli_epi32(round_u8(v), 8 * c));
      }
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + static_cast<size_t>(x) * 4), out);
  }
  if (x < w) warp_row(t, ws, src, stride, h, w, y, x, w, dst);
}

namespace {

// The SMOOTH filter ([[1,1,1],[1,5,1],[1,1,1]] / 13, rounded) blended with the row, 8 pixels per
// step. torchvision's blend (kPil false): fma(blur - v, alpha, v); Pillow's Image.blend (kPil
// true): float(blur) + alpha * float(v - blur), a multiply then an add. Both clamp to [0, 255]
// and truncate (for Pillow's alpha in [0, 1] the clamp changes nothing: the blend stays between
// its two inputs). Returns the first pixel left for the scalar tail.
template <bool kPil>
FP_AVX2 int smooth_blend_row(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float alpha,
                             uint8_t* dst) {
  const __m256 va = _mm256_set1_ps(alpha), lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(255.f);
  const __m256i six = _mm256_set1_epi16(6), recip13 = _mm256_set1_epi16(5042);  // (a * 5042) >> 16 = a / 13, a <= 3321
  const __m256i xmask = _mm256_set1_epi32(static_cast<int>(0xFF000000u));
  int x = 1;
  for (; x + 8 <= w - 1; x += 8) {
    const size_t i = static_cast<size_t>(x) * 4;
    __m256i res16[2];
    for (int hf = 0; hf < 2; ++hf) {
      const __m256i v = widen(mid + i, hf);
      __m256i n = _mm256_add_epi16(_mm256_add_epi16(widen(up + i - 4, hf), widen(up + i, hf)), widen(up + i + 4, hf));
      n = _mm256_add_epi16(n, _mm256_add_epi16(widen(mid + i - 4, hf), widen(mid + i + 4, hf)));
      n = _mm256_add_epi16(n, _mm256_add_epi16(_mm256_add_epi16(widen(down + i - 4, hf), widen(down + i, hf)),
                                               widen(down + i + 4, hf)));
      n = _mm256_add_epi16(n, _mm256_add_epi16(_mm256_slli_epi16(v, 2), v));  // + 5 v
      const __m256i blur = _mm256_mulhi_epu16(_mm256_add_epi16(n, six), recip13);
      const __m256i d = kPil ? _mm256_sub_epi16(v, blur) : _mm256_sub_epi16(blur, v);
      const __m256i base = kPil ? blur : v;
      // Two groups of 8 in float32, clamped and truncated.
      __m256i r32[2];
      for (int q = 0; q < 2; ++q) {
        const __m128i d8 = q ? _mm256_extracti128_si256(d, 1) : _mm256_castsi256_si128(d);
        const __m128i b8 = q ? _mm256_extracti128_si256(base, 1) : _mm256_castsi256_si128(base);
        const __m256 df = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(d8));
        const __m256 bf = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(b8));
        const __m256 r = kPil ? _mm256_add_ps(bf, _mm256_mul_ps(va, df)) : _mm256_fmadd_ps(df, va, bf);
        r32[q] = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
      }
      // packus works within 128-bit lanes: reorder so the 16 values stay in order.
      res16[hf] = _mm256_permute4x64_epi64(_mm256_packus_epi32(r32[0], r32[1]), 0xD8);
    }
    __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(res16[0], res16[1]), 0xD8);
    const __m256i keep = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mid + i));  // the 4th bytes
    bytes = _mm256_blendv_epi8(bytes, keep, xmask);
    // The reference leaves dst's 4th bytes; dst's row is mid's row before the filter.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), bytes);
  }
  return x;
}

}  // namespace

FP_AVX2 void sharpness_row_avx2(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float alpha,
                                uint8_t* dst) {
  const int x = smooth_blend_row<false>(up, mid, down, w, alpha, dst);
  if (x < w - 1) sharpness_row(up, mid, down, x, w - 1, alpha, dst);
}

// timm's Sharpness (pil_augment.h, Note [PIL augment arithmetic]).
FP_AVX2 void pil_sharpness_row_avx2(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float f,
                                    uint8_t* dst) {
  const int x = smooth_blend_row<true>(up, mid, down, w, f, dst);
  if (x < w - 1) pil_sharpness_span(up, mid, down, x, w - 1, f, dst);
}

// 8 pixels per step in byte-wise min/max accumulators, folded to channels at the end.
FP_AVX2 void rgb_min_max_avx2(const uint8_t* row, int n, uint8_t lo[3], uint8_t hi[3]) {
  __m256i mn = _mm256_set1_epi8(-1), mx = _mm256_setzero_si256();
  int x = 0;
  for (; x + 8 <= n; x += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + static_cast<size_t>(x) * 4));
    mn = _mm256_min_epu8(mn, v);
    mx = _mm256_max_epu8(mx, v);
  }
  alignas(32) uint8_t a[32], b[32];
  _mm256_store_si256(reinterpret_cast<__m256i*>(a), mn);
  _mm256_store_si256(reinterpret_cast<__m256i*>(b), mx);
  rgb_min_max2(a, b, 8, lo, hi);
  if (x < n) rgb_min_max(row + static_cast<size_t>(x) * 4, n - x, lo, hi);
}

}  // namespace fastprep

