#include "kernels/noise.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace fastprep {
namespace {

constexpr int kPairs = 256;  // pairs per block: 512 values (Note [Normal values])

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// ln(u) for u in (0, 1]: u = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s).
inline float log_unit(float u) {
  int32_t bits;
  std::memcpy(&bits, &u, 4);
  // mantissa bits above sqrt(2)'s: halve m (exponent 126 instead of 127) and count one more in e
  const int32_t big = static_cast<int32_t>((bits & 0x7FFFFF) > 0x3504F3);
  const int32_t e = (bits >> 23) - 127 + big;
  const int32_t mb = (bits & 0x7FFFFF) | (0x3F800000 - (big << 23));
  float m;
  std::memcpy(&m, &mb, 4);
  const float s = (m - 1.f) / (m + 1.f), s2 = s * s;
  const float p = 1.f + s2 * (1.f / 3.f + s2 * (1.f / 5.f + s2 * (1.f / 7.f + s2 * (1.f / 9.f))));
  return static_cast<float>(e) * 0.693147180559945309f + 2.f * s * p;
}

}  // namespace

void normal_values(uint64_t key, size_t n, float* out) {
  alignas(32) float r[kPairs], c[kPairs], s[kPairs];
  alignas(32) int32_t k1[kPairs], k2[kPairs];
  constexpr float kU24 = 1.f / 16777216.f, kHalfPi = 1.57079632679489662f;
  for (size_t base = 0, b = 0; base < n; base += 2 * kPairs, ++b) {
    for (int j = 0; j < kPairs; ++j) {
      const uint64_t x = mix64(key + (static_cast<uint64_t>(b) * kPairs + j + 1) * 0x9E3779B97F4A7C15ull);
      k1[j] = static_cast<int32_t>(x >> 40) + 1;
      k2[j] = static_cast<int32_t>((x >> 16) & 0xFFFFFFu);
    }
    for (int j = 0; j < kPairs; ++j) r[j] = std::sqrt(-2.f * log_unit(static_cast<float>(k1[j]) * kU24));
    for (int j = 0; j < kPairs; ++j) {
      // 2 pi u2 = (q + f) pi / 2: the quadrant q is u2's top two bits, f the rest (exact).
      const int32_t q = k2[j] >> 22;
      const float a = static_cast<float>(k2[j] & 0x3FFFFF) * (1.f / 4194304.f) * kHalfPi;
      const float a2 = a * a;
      const float sn = a * (1.f + a2 * (-1.f / 6.f + a2 * (1.f / 120.f + a2 * (-1.f / 5040.f + a2 * (1.f / 362880.f +
                                                                                                 a2 * (-1.f / 39916800.f))))));
      const float cs = 1.f + a2 * (-0.5f + a2 * (1.f / 24.f + a2 * (-1.f / 720.f + a2 * (1.f / 40320.f + a2 * (
                                                                                          -1.f / 3628800.f + a2 * (1.f / 479001600.f))))));
      // rotate by q quarter turns: (cos, sin) -> (-sin, cos) per turn
      const float c0 = (q & 1) ? sn : cs, s0 = (q & 1) ? cs : sn;
      c[j] = (q == 1 || q == 2) ? -c0 : c0;
      s[j] = (q >= 2) ? -s0 : s0;
    }
    const size_t m = std::min(static_cast<size_t>(2 * kPairs), n - base);
    const size_t mc = std::min(static_cast<size_t>(kPairs), m);
    for (size_t j = 0; j < mc; ++j) out[base + j] = r[j] * c[j];
    for (size_t j = kPairs; j < m; ++j) out[base + j] = r[j - kPairs] * s[j - kPairs];
  }
}

}  // namespace fastprep
