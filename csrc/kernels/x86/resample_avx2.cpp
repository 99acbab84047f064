// AVX2 variants of the resampling passes (per-function target attribute; see resample_sse41.cpp).
#include "kernels/resample.h"
#include "kernels/x86/kernels.h"

#include <immintrin.h>

#include <cstring>

namespace fastprep {

namespace {
FP_AVX2 inline __m256i load_2px(const uint8_t* p) {  // two RGBX pixels -> [r0 g0 b0 x0 r1 g1 b1 x1]
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
// [a.lo + a.hi | b.lo + b.hi]
FP_AVX2 inline __m256i fold(__m256i a, __m256i b) {
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}
// Four rows' results for outputs (e, e+1), s_r = [row r: e | row r: e+1] as shifted int32:
// clamped to bytes and stored, 8 bytes per row (Note [Horizontal pass, 4 rows]).
FP_AVX2 inline void store_4rows(__m256i s0, __m256i s1, __m256i s2, __m256i s3, uint8_t* d0, uint8_t* d1, uint8_t* d2,
                                uint8_t* d3) {
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  // [row 0: e e+1 | row 1: e e+1 || row 2: e e+1 | row 3: e e+1], one dword per output
  const __m256i b =
      _mm256_permutevar8x32_epi32(_mm256_packus_epi16(_mm256_packs_epi32(s0, s1), _mm256_packs_epi32(s2, s3)), order);
  const __m128i lo = _mm256_castsi256_si128(b), hi = _mm256_extracti128_si256(b, 1);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(d0), lo);
  _mm_storeh_pd(reinterpret_cast<double*>(d1), _mm_castsi128_pd(lo));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(d2), hi);
  _mm_storeh_pd(reinterpret_cast<double*>(d3), _mm_castsi128_pd(hi));
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
  const int32_t* start = t.start.data();  // locals: the stores may alias t
  const int n = t.n;
  int e = 0;
  for (; e + 1 < n; e += 2) {
    const uint8_t* p0 = row + static_cast<size_t>(start[e] - origin) * 4;
    const uint8_t* p1 = row + static_cast<size_t>(start[e + 1] - origin) * 4;
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
  if (e < n) {
    const uint8_t* p0 = row + static_cast<size_t>(start[e] - origin) * 4;
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
  const int32_t* wide = t.wide();
  const size_t wstride = static_cast<size_t>(kp) * 8;
  // Locals, so that the stores (uint8_t, which may alias anything) do not force reloads.
  const uint8_t *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3];
  uint8_t *d0 = outs[0], *d1 = outs[1], *d2 = outs[2], *d3 = outs[3];
  const int32_t* start = t.start.data();
  const int n = t.n;
  int e = 0;
  for (; e + 1 < n; e += 2) {
    const size_t o0 = static_cast<size_t>(start[e] - origin) * 4;
    const size_t o1 = static_cast<size_t>(start[e + 1] - origin) * 4;
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
    store_4rows(s0, s1, s2, s3, d0 + 4 * e, d1 + 4 * e, d2 + 4 * e, d3 + 4 * e);
  }
  if (e < n) {  // an odd last output: one row at a time, as the one-row kernel's tail
    const size_t o0 = static_cast<size_t>(start[e] - origin) * 4;
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

// Note [Horizontal pass, fast]
// Fast mode's pass (Note [Fast resampling]): each 128-bit lane computes one output, so a ymm holds
// the outputs e and e+1 side by side and needs no fold at the end. A step loads four source pixels
// (16 bytes) per output, lane 0 from output e's window and lane 1 from output e+1's, and uses them
// twice: pshufb spreads taps (0, 1), then (2, 3), as int16 [r0 r1 g0 g1 b0 b1 x0 x1], and one
// madd with the int16 weights [k0 k1] x 4 gives the four channels' two-tap sums as int32. The
// accumulators start at the rounding constant. R rows (1 or 4) share the weight loads; four rows
// are packed and stored as in Note [Horizontal pass, 4 rows].
namespace {
FP_AVX2 inline __m256i load_2x16(const uint8_t* p0, const uint8_t* p1) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p0))),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1)), 1);
}
}  // namespace

template <int R, int KQ>
FP_AVX2 static inline void hpass_fast_k(const uint8_t* const* rows, int origin, const AxisTable& t,
                                        uint8_t* const* outs, int kq_rt) {
  const int kq = KQ > 0 ? KQ : kq_rt;
  const __m256i round = _mm256_set1_epi32(1 << (t.prec - 1));
  const __m128i shift = _mm_cvtsi32_si128(t.prec);
  const __m256i taps01 = _mm256_setr_epi8(0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, 3, -1, 7, -1,  //
                                          0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, 3, -1, 7, -1);
  const __m256i taps23 = _mm256_setr_epi8(8, -1, 12, -1, 9, -1, 13, -1, 10, -1, 14, -1, 11, -1, 15, -1,  //
                                          8, -1, 12, -1, 9, -1, 13, -1, 10, -1, 14, -1, 11, -1, 15, -1);
  // Locals, so that the stores (uint8_t, which may alias anything) do not force reloads.
  const uint8_t* row[R];
  uint8_t* out[R];
  for (int r = 0; r < R; ++r) {
    row[r] = rows[r] - static_cast<ptrdiff_t>(origin) * 4;
    out[r] = outs[r];
  }
  const int32_t* start = t.start.data();
  const int n = t.n;
  const __m256i* w = reinterpret_cast<const __m256i*>(t.fast_w());
  // One pair of outputs: lane 0 reads from o0, lane 1 from o1; lane 1's weights are 0 when the
  // pair is an odd last output alone.
  auto pair = [&](size_t o0, size_t o1, __m256i* a) FP_AVX2_LAMBDA {
    for (int r = 0; r < R; ++r) a[r] = round;
    for (int q = 0; q < kq; ++q) {
      const __m256i w01 = _mm256_load_si256(w + 2 * q), w23 = _mm256_load_si256(w + 2 * q + 1);
      for (int r = 0; r < R; ++r) {
        const __m256i px = load_2x16(row[r] + o0 + 16 * q, row[r] + o1 + 16 * q);
        a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(_mm256_shuffle_epi8(px, taps01), w01));
        a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(_mm256_shuffle_epi8(px, taps23), w23));
      }
    }
    w += 2 * kq;
  };
  int e = 0;
  for (; e + 1 < n; e += 2) {
    __m256i a[R];
    pair(static_cast<size_t>(start[e]) * 4, static_cast<size_t>(start[e + 1]) * 4, a);
    if constexpr (R == 4) {
      store_4rows(_mm256_sra_epi32(a[0], shift), _mm256_sra_epi32(a[1], shift), _mm256_sra_epi32(a[2], shift),
                  _mm256_sra_epi32(a[3], shift), out[0] + 4 * e, out[1] + 4 * e, out[2] + 4 * e, out[3] + 4 * e);
    } else {
      const __m256i s = _mm256_sra_epi32(a[0], shift);
      const __m256i b = _mm256_packus_epi16(_mm256_packs_epi32(s, s), s);  // lane i: output e+i, dword 0
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out[0] + 4 * e),
                       _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
    }
  }
  if (e < n) {  // an odd last output: lane 0 only
    __m256i a[R];
    const size_t o0 = static_cast<size_t>(start[e]) * 4;
    pair(o0, o0, a);
    for (int r = 0; r < R; ++r) {
      const __m256i s = _mm256_sra_epi32(a[r], shift);
      const int32_t px = _mm_cvtsi128_si32(_mm256_castsi256_si128(_mm256_packus_epi16(_mm256_packs_epi32(s, s), s)));
      std::memcpy(out[r] + 4 * e, &px, 4);
    }
  }
}

template <int R>
FP_AVX2 static void hpass_fast(const uint8_t* const* rows, int origin, const AxisTable& t, uint8_t* const* outs) {
  switch (t.kq) {
    case 1: hpass_fast_k<R, 1>(rows, origin, t, outs, 1); break;
    case 2: hpass_fast_k<R, 2>(rows, origin, t, outs, 2); break;
    case 3: hpass_fast_k<R, 3>(rows, origin, t, outs, 3); break;
    default: hpass_fast_k<R, 0>(rows, origin, t, outs, t.kq); break;
  }
}

FP_AVX2 void hpass_row_fast_avx2(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out) {
  hpass_fast<1>(&row, origin, t, &out);
}

FP_AVX2 void hpass_rows4_fast_avx2(const uint8_t* const* rows, int origin, const AxisTable& t, uint8_t* const* outs) {
  hpass_fast<4>(rows, origin, t, outs);
}

// Note [Vertical pass, fast]
// Two source rows per step: their bytes are interleaved (unpack lo/hi within each lane), widened
// to int16 pairs (a_i, b_i) by unpacking with zero, and one madd with [k_j k_j+1] gives the two-tap
// int32 sum of four bytes. The four int32 accumulators of a 32-byte block cover bytes 0-3, 4-7,
// 8-11 and 12-15 of each lane, so packs then packus put the bytes back in order with no permute.
// An odd last tap is paired with a row of zeros.
FP_AVX2 void vpass_row_fast_avx2(const uint8_t* src, size_t stride, int first, const int32_t* pairs, int ks, int nbytes,
                                 uint8_t* out, int prec) {
  const __m256i round = _mm256_set1_epi32(1 << (prec - 1));
  const __m128i shift = _mm_cvtsi32_si128(prec);
  const __m256i zero = _mm256_setzero_si256();
  const uint8_t* base = src + static_cast<size_t>(first) * stride;
  const int np = ks / 2;  // whole pairs; an odd last tap is paired with zeros
  const size_t stride2 = 2 * stride;
  for (int i = 0; i < nbytes; i += 32) {
    __m256i a0 = round, a1 = round, a2 = round, a3 = round;
    const uint8_t* ra = base + i;
    auto step = [&](__m256i va, __m256i vb, const int32_t* kp) FP_AVX2_LAMBDA {
      const __m256i kk = _mm256_set1_epi32(*kp);
      const __m256i lo = _mm256_unpacklo_epi8(va, vb), hi = _mm256_unpackhi_epi8(va, vb);
      a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_unpacklo_epi8(lo, zero), kk));
      a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_unpackhi_epi8(lo, zero), kk));
      a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_unpacklo_epi8(hi, zero), kk));
      a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_unpackhi_epi8(hi, zero), kk));
    };
    for (int p = 0; p < np; ++p, ra += stride2)
      step(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ra)),
           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ra + stride)), pairs + p);
    if (ks & 1) step(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ra)), zero, pairs + np);
    const __m256i p01 = _mm256_packs_epi32(_mm256_sra_epi32(a0, shift), _mm256_sra_epi32(a1, shift));
    const __m256i p23 = _mm256_packs_epi32(_mm256_sra_epi32(a2, shift), _mm256_sra_epi32(a3, shift));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_packus_epi16(p01, p23));
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
