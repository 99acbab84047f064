// AVX2 kernel of the output stage (Note [Output arithmetic] in output.h).
#include "kernels/output.h"
#include "kernels/x86/kernels.h"

#include <immintrin.h>

#include <cstring>

namespace fastprep {

// F16C is named so that float16 stores can use vcvtps2ph; enable_output_arith checks the CPU
// for it before a float16 spec may use this kernel (the other dtypes never emit it).

namespace {

struct Lanes {  // per output vector: the operations' constants, lane by lane
  __m256 mean, std;
};

// The table's operations on eight levels: float(v) [/ 255 or * (1 / 255)] [- mean, / std]. The switches are
// template arguments, so the loops carry no branch on them.
template <int kUnit, bool kNorm>
FP_AVX2_F16C inline __m256 value(__m256i levels, const Lanes& k) {
  __m256 x = _mm256_cvtepi32_ps(levels);
  if constexpr (kUnit == 1) x = _mm256_div_ps(x, _mm256_set1_ps(255.0f));
  if constexpr (kUnit == 2) x = _mm256_mul_ps(x, _mm256_set1_ps(1.0f / 255.0f));
  if constexpr (kNorm) x = _mm256_div_ps(_mm256_sub_ps(x, k.mean), k.std);
  return x;
}

// Eight values stored in the output dtype, rounded as store_value rounds them.
template <DType D>
FP_AVX2_F16C inline void put8(uint8_t* dst, __m256 v) {
  if constexpr (D == DType::kF32) {
    _mm256_storeu_ps(reinterpret_cast<float*>(dst), v);
  } else if constexpr (D == DType::kF16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {  // bfloat16: round half to even on the upper 16 bits (no NaN can arise here)
    __m256i b = _mm256_castps_si256(v);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
    b = _mm256_srli_epi32(_mm256_add_epi32(b, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst),
                     _mm_packus_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
  }
}

// Pixels [i, n) through the plan's table (the row's last n % 8 pixels).
inline void tail_chw(const OutputSpec& o, const uint8_t* px, int i, int n, uint8_t* const d[3], size_t es) {
  for (; i < n; ++i)
    for (int c = 0; c < 3; ++c)
      std::memcpy(d[c] + i * es, &o.lut[(static_cast<size_t>(c) * 256 + px[4 * i + o.perm[c]]) * es], es);
}

template <DType D, int U, bool N>
FP_AVX2_F16C void write_chw(const OutputSpec& o, const uint8_t* px, int n, uint8_t* slot, int h, int w, int y, int x0) {
  constexpr size_t es = D == DType::kF32 ? 4 : 2;
  const size_t plane = static_cast<size_t>(h) * w;
  uint8_t* const d[3] = {slot + (static_cast<size_t>(y) * w + x0) * es,
                         slot + (plane + static_cast<size_t>(y) * w + x0) * es,
                         slot + (2 * plane + static_cast<size_t>(y) * w + x0) * es};
  const OutputArith& a = o.arith;
  Lanes k[3];
  __m256i pick[3];  // byte perm[c] of each pixel, zero-extended to its dword
  for (int c = 0; c < 3; ++c) {
    k[c] = {_mm256_set1_ps(a.mean[c]), _mm256_set1_ps(a.std[c])};
    const int p = o.perm[c];
    pick[c] = _mm256_set1_epi32(static_cast<int>(0x80808000u | static_cast<uint32_t>(p)));
    pick[c] = _mm256_add_epi32(pick[c], _mm256_setr_epi32(0, 4, 8, 12, 0, 4, 8, 12));
  }
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(px + 4 * i));
    put8<D>(d[0] + i * es, value<U, N>(_mm256_shuffle_epi8(v, pick[0]), k[0]));
    put8<D>(d[1] + i * es, value<U, N>(_mm256_shuffle_epi8(v, pick[1]), k[1]));
    put8<D>(d[2] + i * es, value<U, N>(_mm256_shuffle_epi8(v, pick[2]), k[2]));
  }
  tail_chw(o, px, i, n, d, es);
}

template <DType D, int U, bool N>
FP_AVX2_F16C void write_hwc(const OutputSpec& o, const uint8_t* px, int n, uint8_t* slot, int w, int y, int x0) {
  constexpr size_t es = D == DType::kF32 ? 4 : 2;
  uint8_t* d = slot + (static_cast<size_t>(y) * w + x0) * 3 * es;
  const OutputArith& a = o.arith;
  // Vector g of a group of 24 values (8 pixels) holds values 8g .. 8g + 7 (OutputArith::hwc_*).
  Lanes k[3];
  for (int g = 0; g < 3; ++g) k[g] = {_mm256_loadu_ps(a.hwc_mean[g]), _mm256_loadu_ps(a.hwc_std[g])};
  const __m256i compact = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.hwc_pick));
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i c = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(px + 4 * i)), compact);
    const __m128i lo = _mm256_castsi256_si128(c), hi = _mm256_extracti128_si256(c, 1);
    const __m128i g1 = _mm_unpacklo_epi32(_mm_srli_si128(lo, 8), hi);  // values 8..15
    uint8_t* dst = d + static_cast<size_t>(3 * i) * es;
    put8<D>(dst, value<U, N>(_mm256_cvtepu8_epi32(lo), k[0]));
    put8<D>(dst + 8 * es, value<U, N>(_mm256_cvtepu8_epi32(g1), k[1]));
    put8<D>(dst + 16 * es, value<U, N>(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 4)), k[2]));
  }
  for (; i < n; ++i)
    for (int c = 0; c < 3; ++c)
      std::memcpy(d + (static_cast<size_t>(3 * i) + c) * es,
                  &o.lut[(static_cast<size_t>(c) * 256 + px[4 * i + o.perm[c]]) * es], es);
}

template <DType D, int U, bool N>
void write_d(const OutputSpec& o, const uint8_t* px, int n, uint8_t* slot, int h, int w, int y, int x0) {
  if (o.layout == Layout::kCHW)
    write_chw<D, U, N>(o, px, n, slot, h, w, y, x0);
  else
    write_hwc<D, U, N>(o, px, n, slot, w, y, x0);
}

template <DType D>
void write_d(const OutputSpec& o, const uint8_t* px, int n, uint8_t* slot, int h, int w, int y, int x0) {
  const int u = !o.arith.unit_range ? 0 : o.unit_mul ? 2 : 1;
  const bool nm = o.arith.normalize;
  if (u == 1 && nm) write_d<D, 1, true>(o, px, n, slot, h, w, y, x0);
  else if (u == 2 && nm) write_d<D, 2, true>(o, px, n, slot, h, w, y, x0);
  else if (u == 1) write_d<D, 1, false>(o, px, n, slot, h, w, y, x0);
  else if (u == 2) write_d<D, 2, false>(o, px, n, slot, h, w, y, x0);
  else if (nm) write_d<D, 0, true>(o, px, n, slot, h, w, y, x0);
  else write_d<D, 0, false>(o, px, n, slot, h, w, y, x0);
}

// uint8: the table is the identity, so the kernel only moves bytes (RGBX -> planes, or -> RGB).
FP_AVX2_F16C void write_u8(const OutputSpec& o, const uint8_t* px, int n, uint8_t* slot, int h, int w, int y, int x0) {
  const OutputArith& a = o.arith;
  const uint8_t* lut = o.lut.data();
  int i = 0;
  if (o.layout == Layout::kCHW) {
    const size_t plane = static_cast<size_t>(h) * w;
    uint8_t* const d[3] = {slot + static_cast<size_t>(y) * w + x0, slot + plane + static_cast<size_t>(y) * w + x0,
                           slot + 2 * plane + static_cast<size_t>(y) * w + x0};
    const __m256i pick = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.u8_pick));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; i + 8 <= n; i += 8) {
      // per lane [c0 x4 | c1 x4 | c2 x4 | 0], then dwords reordered: [c0 x8 | c1 x8 || c2 x8 | 0]
      const __m256i v = _mm256_permutevar8x32_epi32(
          _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(px + 4 * i)), pick), order);
      const __m128i lo = _mm256_castsi256_si128(v);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(d[0] + i), lo);
      // (not _mm_storeh_pd: its double* must be 8-byte aligned, and a plane's row need not be)
      _mm_storel_epi64(reinterpret_cast<__m128i*>(d[1] + i), _mm_unpackhi_epi64(lo, lo));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(d[2] + i), _mm256_extracti128_si256(v, 1));
    }
    for (; i < n; ++i)
      for (int c = 0; c < 3; ++c) d[c][i] = lut[c * 256 + px[4 * i + o.perm[c]]];
    return;
  }
  uint8_t* d = slot + (static_cast<size_t>(y) * w + x0) * 3;
  const __m256i compact = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.hwc_pick));
  for (; i + 8 <= n; i += 8) {  // twelve bytes per 128-bit lane, stored as 8 + 4 (no byte past the row)
    const __m256i c = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(px + 4 * i)), compact);
    const __m128i lo = _mm256_castsi256_si128(c), hi = _mm256_extracti128_si256(c, 1);
    uint8_t* dst = d + 3 * static_cast<size_t>(i);
    const int32_t lo_tail = _mm_extract_epi32(lo, 2), hi_tail = _mm_extract_epi32(hi, 2);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), lo);
    std::memcpy(dst + 8, &lo_tail, 4);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + 12), hi);
    std::memcpy(dst + 20, &hi_tail, 4);
  }
  for (; i < n; ++i)
    for (int c = 0; c < 3; ++c) d[3 * static_cast<size_t>(i) + c] = lut[c * 256 + px[4 * i + o.perm[c]]];
}

}  // namespace

void write_row_arith_avx2(const OutputSpec& o, const uint8_t* rgbx, int n, uint8_t* slot, int h, int w, int y,
                          int x0) {
  switch (o.dtype) {
    case DType::kF32: write_d<DType::kF32>(o, rgbx, n, slot, h, w, y, x0); break;
    case DType::kF16: write_d<DType::kF16>(o, rgbx, n, slot, h, w, y, x0); break;
    case DType::kBF16: write_d<DType::kBF16>(o, rgbx, n, slot, h, w, y, x0); break;
    case DType::kU8: write_u8(o, rgbx, n, slot, h, w, y, x0); break;
  }
}

}  // namespace fastprep

