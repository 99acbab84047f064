// AVX2+FMA variants of ColorJitter's ops: 8 RGBX pixels per step, the same float32 operations in
// the same order as the scalar reference in color.cpp (std::fmaf there is _mm256_fmadd_ps here),
// so the bytes are identical (tested in one process against it). Compiled without -mavx2: the
// target attribute enables the ISA for these functions only, and the dispatcher routes here only
// when cpuid reports AVX2 and FMA (simd.cpp). The 4th byte of each pixel is kept as it is.
#include "kernels/color.h"
#include "kernels/x86/kernels.h"

#include <immintrin.h>

namespace fastprep {

namespace {
// mask ? 1.0f : 0.0f, to multiply by as the scalar code does (x * 0 keeps the sign of zero).
FP_AVX2 inline __m256 as_one(__m256 mask) { return _mm256_and_ps(mask, _mm256_set1_ps(1.f)); }
FP_AVX2 inline __m256 clamp01(__m256 x) {
  return _mm256_min_ps(_mm256_set1_ps(1.f), _mm256_max_ps(x, _mm256_setzero_ps()));
}
// The R, G and B bytes of 8 RGBX pixels as floats.
struct Rgb8 {
  __m256 r, g, b;
};
FP_AVX2 inline Rgb8 unpack(__m256i p) {
  const __m256i byte = _mm256_set1_epi32(0xFF);
  return {_mm256_cvtepi32_ps(_mm256_and_si256(p, byte)),
          _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(p, 8), byte)),
          _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(p, 16), byte))};
}
// trunc(clamp(x, 0, 255)) of each channel, packed back over p's 4th byte.
FP_AVX2 inline __m256i pack(__m256 r, __m256 g, __m256 b, __m256i p) {
  const __m256 lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(255.f);
  const __m256i ri = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
  const __m256i gi = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(g, lo), hi));
  const __m256i bi = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(b, lo), hi));
  const __m256i x = _mm256_and_si256(p, _mm256_set1_epi32(static_cast<int>(0xFF000000u)));
  return _mm256_or_si256(_mm256_or_si256(ri, _mm256_slli_epi32(gi, 8)), _mm256_or_si256(_mm256_slli_epi32(bi, 16), x));
}
// floor(0.2989 r + 0.587 g + 0.114 b) as tv_gray_floor, as int32 (the sum is >= 0).
FP_AVX2 inline __m256i gray_floor(const Rgb8& c) {
  const __m256 l1 = _mm256_fmadd_ps(_mm256_set1_ps(0.587f), c.g, _mm256_mul_ps(c.r, _mm256_set1_ps(0.2989f)));
  return _mm256_cvttps_epi32(_mm256_fmadd_ps(_mm256_set1_ps(0.114f), c.b, l1));
}
}  // namespace

FP_AVX2 void jitter_scale_avx2(uint8_t* px, int n, float f, float k, float mean) {
  const __m256 vf = _mm256_set1_ps(f), vk = _mm256_set1_ps(k), vm = _mm256_set1_ps(mean);
  int i = 0;
  for (; i + 8 <= n; i += 8, px += 32) {
    const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(px));
    const Rgb8 c = unpack(p);
    const __m256 r = _mm256_fmadd_ps(vk, vm, _mm256_mul_ps(c.r, vf));
    const __m256 g = _mm256_fmadd_ps(vk, vm, _mm256_mul_ps(c.g, vf));
    const __m256 b = _mm256_fmadd_ps(vk, vm, _mm256_mul_ps(c.b, vf));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(px), pack(r, g, b, p));
  }
  if (i < n) jitter_scale_row(px, n - i, f, k, mean);  // the tail: the scalar reference
}

FP_AVX2 void jitter_saturation_avx2(uint8_t* px, int n, float f, float k) {
  const __m256 vf = _mm256_set1_ps(f), vk = _mm256_set1_ps(k);
  int i = 0;
  for (; i + 8 <= n; i += 8, px += 32) {
    const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(px));
    const Rgb8 c = unpack(p);
    const __m256 gk = _mm256_cvtepi32_ps(gray_floor(c));
    const __m256 r = _mm256_fmadd_ps(vk, gk, _mm256_mul_ps(c.r, vf));
    const __m256 g = _mm256_fmadd_ps(vk, gk, _mm256_mul_ps(c.g, vf));
    const __m256 b = _mm256_fmadd_ps(vk, gk, _mm256_mul_ps(c.b, vf));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(px), pack(r, g, b, p));
  }
  if (i < n) jitter_saturation_row(px, n - i, f, k);
}

FP_AVX2 uint64_t gray_sum_avx2(const uint8_t* px, int n) {
  uint64_t sum = 0;
  int i = 0;
  while (i + 8 <= n) {
    // int32 lanes, emptied into the 64-bit sum every 2^20 pixels (a lane then holds < 2^26)
    __m256i acc = _mm256_setzero_si256();
    const int end = n - i > (1 << 20) ? i + (1 << 20) : n;
    for (; i + 8 <= end; i += 8, px += 32)
      acc = _mm256_add_epi32(acc, gray_floor(unpack(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(px)))));
    alignas(32) uint32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
    for (uint32_t v : lanes) sum += v;
  }
  return sum + (i < n ? gray_sum(px, n - i) : 0);
}

FP_AVX2 void jitter_hue_avx2(uint8_t* px, int n, float hue) {
  const __m256 inv255 = _mm256_set1_ps(static_cast<float>(1.0 / 255.0));
  const __m256 sixth = _mm256_set1_ps(static_cast<float>(1.0 / 6.0));
  const __m256 out_scale = _mm256_set1_ps(static_cast<float>(255.0 + 1.0 - 1e-3));
  const __m256 one = _mm256_set1_ps(1.f), zero = _mm256_setzero_ps();
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), six = _mm256_set1_ps(6.f);
  const __m256 vhue = _mm256_set1_ps(hue);
  const __m256i byte = _mm256_set1_epi32(0xFF);
  int i = 0;
  for (; i + 8 <= n; i += 8, px += 32) {
    const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(px));
    const __m256 r = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(p, byte)), inv255);
    const __m256 g = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(p, 8), byte)), inv255);
    const __m256 b = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(p, 16), byte)), inv255);
    // _rgb_to_hsv
    const __m256 maxc = _mm256_max_ps(r, _mm256_max_ps(g, b)), minc = _mm256_min_ps(r, _mm256_min_ps(g, b));
    const __m256 eqc = _mm256_cmp_ps(maxc, minc, _CMP_EQ_OQ);
    const __m256 range = _mm256_sub_ps(maxc, minc);
    const __m256 s = _mm256_div_ps(range, _mm256_blendv_ps(maxc, one, eqc));
    const __m256 div = _mm256_blendv_ps(range, one, eqc);
    const __m256 rc = _mm256_div_ps(_mm256_sub_ps(maxc, r), div);
    const __m256 gc = _mm256_div_ps(_mm256_sub_ps(maxc, g), div);
    const __m256 bc = _mm256_div_ps(_mm256_sub_ps(maxc, b), div);
    const __m256 neq_r = _mm256_cmp_ps(maxc, r, _CMP_NEQ_UQ), eq_g = _mm256_cmp_ps(maxc, g, _CMP_EQ_OQ);
    const __m256 hg = _mm256_mul_ps(_mm256_sub_ps(_mm256_add_ps(rc, two), bc), as_one(_mm256_and_ps(eq_g, neq_r)));
    const __m256 hr = _mm256_mul_ps(_mm256_sub_ps(bc, gc), as_one(_mm256_andnot_ps(neq_r, _mm256_castsi256_ps(
                                                                    _mm256_set1_epi32(-1)))));
    const __m256 hb = _mm256_mul_ps(_mm256_sub_ps(_mm256_add_ps(gc, four), rc), as_one(_mm256_andnot_ps(eq_g, neq_r)));
    __m256 h = _mm256_add_ps(_mm256_add_ps(hr, hg), hb);
    h = _mm256_add_ps(_mm256_mul_ps(h, sixth), one);
    h = _mm256_sub_ps(h, _mm256_round_ps(h, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC));
    const __m256 v = maxc;
    h = _mm256_add_ps(h, vhue);
    h = _mm256_sub_ps(h, _mm256_floor_ps(h));
    // _hsv_to_rgb
    const __m256 h6 = _mm256_mul_ps(h, six);
    const __m256 fi = _mm256_round_ps(h6, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 fr = _mm256_sub_ps(h6, fi);
    // sector = fi mod 6 (fi in [0, 6])
    const __m256 sector = _mm256_blendv_ps(fi, _mm256_sub_ps(fi, six), _mm256_cmp_ps(fi, six, _CMP_GE_OQ));
    const __m256 sxf = _mm256_mul_ps(s, fr), one_minus_s = _mm256_sub_ps(one, s);
    const __m256 q = clamp01(_mm256_mul_ps(_mm256_sub_ps(one, sxf), v));
    const __m256 t = clamp01(_mm256_mul_ps(_mm256_add_ps(sxf, one_minus_s), v));
    const __m256 pp = clamp01(_mm256_mul_ps(one_minus_s, v));
    const __m256 s0 = _mm256_cmp_ps(sector, zero, _CMP_EQ_OQ), s1 = _mm256_cmp_ps(sector, one, _CMP_EQ_OQ);
    const __m256 s2 = _mm256_cmp_ps(sector, two, _CMP_EQ_OQ), s3 = _mm256_cmp_ps(sector, _mm256_set1_ps(3.f), _CMP_EQ_OQ);
    const __m256 s4 = _mm256_cmp_ps(sector, four, _CMP_EQ_OQ);
    // case 5 (the default) first, then overwrite: r = [v q p p t v], g = [t v v q p p], b = [p p t v v q]
    __m256 ro = v, go = pp, bo = q;
    ro = _mm256_blendv_ps(ro, v, s0), go = _mm256_blendv_ps(go, t, s0), bo = _mm256_blendv_ps(bo, pp, s0);
    ro = _mm256_blendv_ps(ro, q, s1), go = _mm256_blendv_ps(go, v, s1), bo = _mm256_blendv_ps(bo, pp, s1);
    ro = _mm256_blendv_ps(ro, pp, s2), go = _mm256_blendv_ps(go, v, s2), bo = _mm256_blendv_ps(bo, t, s2);
    ro = _mm256_blendv_ps(ro, pp, s3), go = _mm256_blendv_ps(go, q, s3), bo = _mm256_blendv_ps(bo, v, s3);
    ro = _mm256_blendv_ps(ro, t, s4), go = _mm256_blendv_ps(go, pp, s4), bo = _mm256_blendv_ps(bo, v, s4);
    const __m256i ri = _mm256_cvttps_epi32(_mm256_mul_ps(ro, out_scale));
    const __m256i gi = _mm256_cvttps_epi32(_mm256_mul_ps(go, out_scale));
    const __m256i bi = _mm256_cvttps_epi32(_mm256_mul_ps(bo, out_scale));
    const __m256i x = _mm256_and_si256(p, _mm256_set1_epi32(static_cast<int>(0xFF000000u)));
    const __m256i o = _mm256_or_si256(_mm256_or_si256(ri, _mm256_slli_epi32(gi, 8)),
                                      _mm256_or_si256(_mm256_slli_epi32(bi, 16), x));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(px), o);
  }
  if (i < n) jitter_hue(px, n - i, hue);  // the tail: the scalar reference
}

FP_AVX2 void random_hsv_row_avx2(uint8_t* px, int n, const int32_t* hue, const int32_t* sat, const int32_t* val,
                                 const uint8_t* hue8, const uint8_t* sat8, const uint8_t* val8) {
  const int* sdiv = hsv_sdiv_table();
  const int* hdiv = hsv_hdiv_table();
  const __m256i byte = _mm256_set1_epi32(0xFF), round = _mm256_set1_epi32(2048);
  const __m256 hscale = _mm256_set1_ps(6.f / 180.f), inv255 = _mm256_set1_ps(1.f / 255.f);
  const __m256 one = _mm256_set1_ps(1.f), k255 = _mm256_set1_ps(255.f);
  // Per sector, the index (0..3) into {v, v(1 - s), v(1 - s f), v(1 - s(1 - f))} of R, G and B.
  const __m256i idx_r = _mm256_setr_epi32(0, 2, 1, 1, 3, 0, 0, 0);
  const __m256i idx_g = _mm256_setr_epi32(3, 0, 0, 2, 1, 1, 0, 0);
  const __m256i idx_b = _mm256_setr_epi32(1, 1, 3, 0, 0, 2, 0, 0);
  int i = 0;
  for (; i + 8 <= n; i += 8, px += 32) {
    const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(px));
    const __m256i r = _mm256_and_si256(p, byte), g = _mm256_and_si256(_mm256_srli_epi32(p, 8), byte),
                  b = _mm256_and_si256(_mm256_srli_epi32(p, 16), byte);
    const __m256i v = _mm256_max_epi32(r, _mm256_max_epi32(g, b));
    const __m256i diff = _mm256_sub_epi32(v, _mm256_min_epi32(r, _mm256_min_epi32(g, b)));
    const __m256i s = _mm256_srai_epi32(
        _mm256_add_epi32(_mm256_mullo_epi32(diff, _mm256_i32gather_epi32(sdiv, v, 4)), round), 12);
    const __m256i vr = _mm256_cmpeq_epi32(v, r), vg = _mm256_cmpeq_epi32(v, g);
    const __m256i d2 = _mm256_add_epi32(diff, diff);
    const __m256i pre_b = _mm256_add_epi32(_mm256_sub_epi32(r, g), _mm256_add_epi32(d2, d2));  // r - g + 4 diff
    const __m256i pre_g = _mm256_add_epi32(_mm256_sub_epi32(b, r), d2);                        // b - r + 2 diff
    __m256i pre = _mm256_blendv_epi8(pre_b, pre_g, vg);
    pre = _mm256_blendv_epi8(pre, _mm256_sub_epi32(g, b), vr);
    __m256i h = _mm256_srai_epi32(
        _mm256_add_epi32(_mm256_mullo_epi32(pre, _mm256_i32gather_epi32(hdiv, diff, 4)), round), 12);
    h = _mm256_add_epi32(h, _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), h), _mm256_set1_epi32(180)));
    // The tables, then HSV2RGB.
    const __m256 hh = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_i32gather_epi32(hue, h, 4)), hscale);
    const __m256 ss = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_i32gather_epi32(sat, s, 4)), inv255);
    const __m256 vv = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_i32gather_epi32(val, v, 4)), inv255);
    const __m256 whole = _mm256_round_ps(hh, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(hh, whole);
    __m256i sector = _mm256_cvttps_epi32(whole);  // 0..6; 6 is sector 0
    sector = _mm256_andnot_si256(_mm256_cmpeq_epi32(sector, _mm256_set1_epi32(6)), sector);
    const __m256 t0 = vv, t1 = _mm256_mul_ps(vv, _mm256_sub_ps(one, ss));
    const __m256 t2 = _mm256_mul_ps(vv, _mm256_fnmadd_ps(ss, f, one));
    const __m256 t3 = _mm256_mul_ps(vv, _mm256_fnmadd_ps(ss, _mm256_sub_ps(one, f), one));
    auto pick = [&](__m256i table) FP_AVX2 {
      const __m256i k = _mm256_permutevar8x32_epi32(table, sector);
      const __m256 bit0 = _mm256_castsi256_ps(_mm256_slli_epi32(k, 31)), bit1 = _mm256_castsi256_ps(_mm256_slli_epi32(k, 30));
      const __m256 lo = _mm256_blendv_ps(t0, t1, bit0), hi = _mm256_blendv_ps(t2, t3, bit0);
      return _mm256_cvttps_epi32(_mm256_min_ps(k255, _mm256_mul_ps(_mm256_blendv_ps(lo, hi, bit1), k255)));
    };
    const __m256i ro = pick(idx_r), go = pick(idx_g), bo = pick(idx_b);
    const __m256i x = _mm256_and_si256(p, _mm256_set1_epi32(static_cast<int>(0xFF000000u)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(px),
                        _mm256_or_si256(_mm256_or_si256(ro, _mm256_slli_epi32(go, 8)),
                                        _mm256_or_si256(_mm256_slli_epi32(bo, 16), x)));
  }
  if (i < n) random_hsv_row(px, n - i, hue8, sat8, val8);
}

}  // namespace fastprep
