// AVX2 variants of the resampling passes (per-function target attribute; see resample_sse41.cpp).
#include "resample.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <cstring>

namespace fastprep {

#define FP_AVX2 __attribute__((target("avx2")))

namespace {
FP_AVX2 inline __m256i load_2px(const uint8_t* p) {  // two RGBX pixels -> [r0 g0 b0 x0 r1 g1 b1 x1]
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
// [a.lo + a.hi | b.lo + b.hi]
FP_AVX2 inline __m256i fold(__m256i a, __m256i b) {
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}
}  // namespace

// Note [Horizontal pass, AVX2]
// Two outputs per iteration, each accumulated in its own ymm: a step multiplies two taps,
//   pixels  [r0 g0 b0 x0 | r1 g1 b1 x1]  (taps j, j+1 of one output, zero-extended to int32)
//   weights [k0 k0 k0 k0 | k1 k1 k1 k1]  (AxisTable::wide)
// with a fixed trip count kmax/2 (a template parameter for the common sizes). The two 128-bit
// halves are added at the end, so each output is the exact int32 sum of the scalar path.
template <int KP>
FP_AVX2 static inline void hpass_avx2_k(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out, int kp_rt) {
  const int kp = KP > 0 ? KP : kp_rt;
  const __m128i round = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  const int32_t* wide = t.wide();
  const size_t wstride = static_cast<size_t>(kp) * 8;  // int32 per output in `wide`
  int e = 0;
  for (; e + 1 < t.n; e += 2) {
    const uint8_t* p0 = row + static_cast<size_t>(t.start[e] - origin) * 4;
    const uint8_t* p1 = row + static_cast<size_t>(t.start[e + 1] - origin) * 4;
    const __m256i* k0 = reinterpret_cast<const __m256i*>(wide + e * wstride);
    const __m256i* k1 = reinterpret_cast<const __m256i*>(wide + (e + 1) * wstride);
    __m256i a0 = _mm256_mullo_epi32(load_2px(p0), _mm256_loadu_si256(k0));
    __m256i a1 = _mm256_mullo_epi32(load_2px(p1), _mm256_loadu_si256(k1));
    for (int j = 1; j < kp; ++j) {
      a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(load_2px(p0 + 8 * j), _mm256_loadu_si256(k0 + j)));
      a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(load_2px(p1 + 8 * j), _mm256_loadu_si256(k1 + j)));
    }
    __m128i s0 = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1)), round);
    __m128i s1 = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(a1), _mm256_extracti128_si256(a1, 1)), round);
    __m128i v = _mm_packs_epi32(_mm_srai_epi32(s0, kPrecisionBits), _mm_srai_epi32(s1, kPrecisionBits));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 4 * e), _mm_packus_epi16(v, v));
  }
  if (e < t.n) {
    const uint8_t* p0 = row + static_cast<size_t>(t.start[e] - origin) * 4;
    const __m256i* k0 = reinterpret_cast<const __m256i*>(wide + e * wstride);
    __m256i a0 = _mm256_setzero_si256();
    for (int j = 0; j < kp; ++j)
      a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(load_2px(p0 + 8 * j), _mm256_loadu_si256(k0 + j)));
    __m128i s0 = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1)), round);
    __m128i v = _mm_srai_epi32(s0, kPrecisionBits);
    v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);
    int32_t px = _mm_cvtsi128_si32(v);
    std::memcpy(out + 4 * e, &px, 4);
  }
}

FP_AVX2 void hpass_row_avx2(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out) {
  switch (t.kmax / 2) {
    case 1: hpass_avx2_k<1>(row, origin, t, out, 1); break;
    case 2: hpass_avx2_k<2>(row, origin, t, out, 2); break;
    case 3: hpass_avx2_k<3>(row, origin, t, out, 3); break;
    case 4: hpass_avx2_k<4>(row, origin, t, out, 4); break;
    default: hpass_avx2_k<0>(row, origin, t, out, t.kmax / 2); break;
  }
}

// Note [Horizontal pass, 4 rows]
// Four rows share one walk over the outputs: the start positions and weights of two outputs are
// loaded once and used for all four rows (eight accumulators, each the same int32 sum as the
// one-row kernel), and the four rows' results are folded, rounded, clamped and packed together:
//   s_r = [row r, output e | row r, output e+1]        (the two halves of each sum added)
//   packs(s0, s1), packs(s2, s3), packus -> per lane [r0 r1 r2 r3] of output e | e+1 (dwords)
//   permute (0 4 1 5 2 6 3 7)            -> [r0.e r0.e1 r1.e r1.e1 r2.e r2.e1 r3.e r3.e1]
// then 8 bytes are stored per row. About a third fewer instructions per output than four
// one-row passes (the addressing and the epilogue are shared).
template <int KP>
FP_AVX2 static inline void hpass4_avx2_k(const uint8_t* const* rows, int origin, const AxisTable& t,
                                         uint8_t* const* outs, int kp_rt) {
  const int kp = KP > 0 ? KP : kp_rt;
  const __m256i round = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const int32_t* wide = t.wide();
  const size_t wstride = static_cast<size_t>(kp) * 8;
  const uint8_t *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3];
  int e = 0;
  for (; e + 1 < t.n; e += 2) {
    const size_t o0 = static_cast<size_t>(t.start[e] - origin) * 4;
    const size_t o1 = static_cast<size_t>(t.start[e + 1] - origin) * 4;
    const __m256i* k0 = reinterpret_cast<const __m256i*>(wide + e * wstride);
    const __m256i* k1 = reinterpret_cast<const __m256i*>(wide + (e + 1) * wstride);
    __m256i w0 = _mm256_loadu_si256(k0), w1 = _mm256_loadu_si256(k1);
    __m256i a00 = _mm256_mullo_epi32(load_2px(r0 + o0), w0), a01 = _mm256_mullo_epi32(load_2px(r0 + o1), w1);
    __m256i a10 = _mm256_mullo_epi32(load_2px(r1 + o0), w0), a11 = _mm256_mullo_epi32(load_2px(r1 + o1), w1);
    __m256i a20 = _mm256_mullo_epi32(load_2px(r2 + o0), w0), a21 = _mm256_mullo_epi32(load_2px(r2 + o1), w1);
    __m256i a30 = _mm256_mullo_epi32(load_2px(r3 + o0), w0), a31 = _mm256_mullo_epi32(load_2px(r3 + o1), w1);
    for (int j = 1; j < kp; ++j) {
      const size_t p0 = o0 + 8 * j, p1 = o1 + 8 * j;
      w0 = _mm256_loadu_si256(k0 + j);
      w1 = _mm256_loadu_si256(k1 + j);
      a00 = _mm256_add_epi32(a00, _mm256_mullo_epi32(load_2px(r0 + p0), w0));
      a01 = _mm256_add_epi32(a01, _mm256_mullo_epi32(load_2px(r0 + p1), w1));
      a10 = _mm256_add_epi32(a10, _mm256_mullo_epi32(load_2px(r1 + p0), w0));
      a11 = _mm256_add_epi32(a11, _mm256_mullo_epi32(load_2px(r1 + p1), w1));
      a20 = _mm256_add_epi32(a20, _mm256_mullo_epi32(load_2px(r2 + p0), w0));
      a21 = _mm256_add_epi32(a21, _mm256_mullo_epi32(load_2px(r2 + p1), w1));
      a30 = _mm256_add_epi32(a30, _mm256_mullo_epi32(load_2px(r3 + p0), w0));
      a31 = _mm256_add_epi32(a31, _mm256_mullo_epi32(load_2px(r3 + p1), w1));
    }
    const __m256i s0 = _mm256_srai_epi32(_mm256_add_epi32(fold(a00, a01), round), kPrecisionBits);
    const __m256i s1 = _mm256_srai_epi32(_mm256_add_epi32(fold(a10, a11), round), kPrecisionBits);
    const __m256i s2 = _mm256_srai_epi32(_mm256_add_epi32(fold(a20, a21), round), kPrecisionBits);
    const __m256i s3 = _mm256_srai_epi32(_mm256_add_epi32(fold(a30, a31), round), kPrecisionBits);
    const __m256i b = _mm256_permutevar8x32_epi32(
        _mm256_packus_epi16(_mm256_packs_epi32(s0, s1), _mm256_packs_epi32(s2, s3)), order);
    const __m128i lo = _mm256_castsi256_si128(b), hi = _mm256_extracti128_si256(b, 1);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(outs[0] + 4 * e), lo);
    _mm_storeh_pd(reinterpret_cast<double*>(outs[1] + 4 * e), _mm_castsi128_pd(lo));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(outs[2] + 4 * e), hi);
    _mm_storeh_pd(reinterpret_cast<double*>(outs[3] + 4 * e), _mm_castsi128_pd(hi));
  }
  if (e < t.n) {  // an odd last output: one row at a time, as the one-row kernel's tail
    const size_t o0 = static_cast<size_t>(t.start[e] - origin) * 4;
    const __m256i* k0 = reinterpret_cast<const __m256i*>(wide + e * wstride);
    for (int r = 0; r < 4; ++r) {
      __m256i a = _mm256_setzero_si256();
      for (int j = 0; j < kp; ++j)
        a = _mm256_add_epi32(a, _mm256_mullo_epi32(load_2px(rows[r] + o0 + 8 * j), _mm256_loadu_si256(k0 + j)));
      __m128i v = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
      v = _mm_srai_epi32(_mm_add_epi32(v, _mm256_castsi256_si128(round)), kPrecisionBits);
      v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);
      const int32_t px = _mm_cvtsi128_si32(v);
      std::memcpy(outs[r] + 4 * e, &px, 4);
    }
  }
}

FP_AVX2 void hpass_rows4_avx2(const uint8_t* const* rows, int origin, const AxisTable& t, uint8_t* const* outs) {
  switch (t.kmax / 2) {
    case 1: hpass4_avx2_k<1>(rows, origin, t, outs, 1); break;
    case 2: hpass4_avx2_k<2>(rows, origin, t, outs, 2); break;
    case 3: hpass4_avx2_k<3>(rows, origin, t, outs, 3); break;
    case 4: hpass4_avx2_k<4>(rows, origin, t, outs, 4); break;
    default: hpass4_avx2_k<0>(rows, origin, t, outs, t.kmax / 2); break;
  }
}

FP_AVX2 void vpass_row_avx2(const uint8_t* src, size_t stride, int first, const int32_t* k, int ks, int nbytes,
                            uint8_t* out) {
  const __m256i round = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const uint8_t* base = src + static_cast<size_t>(first) * stride;
  for (int i = 0; i < nbytes; i += 32) {
    __m256i a0 = round, a1 = round, a2 = round, a3 = round;
    for (int j = 0; j < ks; ++j) {
      const uint8_t* r = base + static_cast<size_t>(j) * stride + i;
      const __m256i kk = _mm256_set1_epi32(k[j]);
      a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(load_2px(r), kk));
      a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(load_2px(r + 8), kk));
      a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(load_2px(r + 16), kk));
      a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(load_2px(r + 24), kk));
    }
    // packs/packus work per 128-bit lane: dwords come out as
    // [a0.lo a1.lo a2.lo a3.lo | a0.hi a1.hi a2.hi a3.hi]; `order` restores a0 a0 a1 a1 ...
    __m256i p01 = _mm256_packs_epi32(_mm256_srai_epi32(a0, kPrecisionBits), _mm256_srai_epi32(a1, kPrecisionBits));
    __m256i p23 = _mm256_packs_epi32(_mm256_srai_epi32(a2, kPrecisionBits), _mm256_srai_epi32(a3, kPrecisionBits));
    __m256i b = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p01, p23), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), b);
  }
}

}  // namespace fastprep
#endif
