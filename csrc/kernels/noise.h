// N(0, 1) values for GaussianNoise: a pure function of a 64-bit key and the value's index.
//
// Note [Normal values]
// GaussianNoise needs one normal value per output value (150,528 for a 224 x 224 RGB image), so
// the generator must vectorize, and it must give the same bits on every machine and at every SIMD
// level (a replay rebuilds the values from the key). Values come in blocks of 512: pair j of
// block b takes x = splitmix64(key + (256 b + j + 1) * golden), u1 = (bits 40..63 of x + 1) / 2^24
// in (0, 1] and u2 = bits 16..39 / 2^24 in [0, 1), and gives the Box-Muller pair r cos(2 pi u2),
// r sin(2 pi u2) with r = sqrt(-2 ln u1): the cosines fill the block's first 256 values, the sines
// its last 256. ln, cos and sin are our own polynomials in float32 (ln: the atanh series in
// s = (m - 1) / (m + 1), m the mantissa reduced to [sqrt(1/2), sqrt(2)); cos and sin: Taylor on
// [0, pi/2) after taking the quadrant from u2's top two bits), accurate to a few float32 ulps:
// no libm call, so no platform's libm changes a bit, and no operation that a vectorizing compiler
// may reorder (the build forbids contraction into fused multiply-adds). One code path serves
// every SIMD level.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastprep {

// n values for `key` into out (value k is the same whatever n is).
void normal_values(uint64_t key, size_t n, float* out);

}  // namespace fastprep
