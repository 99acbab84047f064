// Separable antialiased resampling: coefficient tables and the two passes.
//
// Note [Resampling arithmetic]
// The arithmetic follows Pillow's Resample.c, which is what torchvision v1 runs on PIL images and
// what torchvision v2's uint8 antialias kernel was written to match:
//   * support = filter_support * max(scale, 1) when antialiasing (scale = box / out), else the
//     plain filter support;
//   * each output's weights are evaluated in double at (src + 0.5 - center) / max(scale, 1),
//     normalised to sum 1, then rounded to int32 fixed point with kPrecisionBits fraction bits;
//   * a pass accumulates int32 products starting at 1 << (kPrecisionBits - 1) (round half up),
//     shifts right arithmetically and clamps to [0, 255];
//   * the horizontal pass runs first into a uint8 intermediate, then the vertical pass.
// All SIMD variants do exactly this integer arithmetic, so every level gives identical bytes.
// Pixels are RGBX: 4 bytes, the 4th is carried along and ignored.
//
// Note [Fast resampling]
// Fast mode (exact=False) keeps the same filters and the same rounding but stores the weights in
// 16 bits: an axis's precision P is the largest (at most kPrecisionBits) at which every weight,
// rounded to P fraction bits, fits in int16. A uint8 pixel times such a weight fits in int16 x int16,
// so the AVX2 passes multiply two taps per 32-bit lane with one madd (vpmaddwd) instead of one tap
// with a two-uop 32-bit multiply, and the horizontal pass reads four source pixels per load. Every
// sum is still the exact int32 sum of the scalar reference at precision P, so within fast mode all
// levels give identical bytes (the SSE4.1 and NEON levels run their 32-bit kernels at precision P).
// Against exact mode, P >= 14 bits of weight differ from 22 by at most ~2^-15 per weight: outputs
// move by at most one level, rarely (tests/test_parity.py checks PSNR and the level distance).
#pragma once

#include <cstdint>
#include <vector>

#include "core/common.h"
#include "core/scratch.h"
#include "kernels/dispatch.h"

namespace fastprep {

constexpr int kPrecisionBits = 32 - 8 - 2;

// One axis of a resize: which outputs to compute and from which part of the source.
struct AxisSpec {
  int src_size = 0;      // length of this axis in the decoded image
  double b0 = 0, b1 = 0; // source box [b0, b1) in decoded coordinates
  int out_size = 0;      // length of the resized axis
  int o0 = 0, o1 = 0;    // resized indices to compute, [o0, o1)
  bool reverse = false;  // emit outputs in reverse order (a flip along this axis)
  Interp interp = Interp::kBilinear;
  bool antialias = true;
  bool fast = false;     // 16-bit weights (Note [Fast resampling])
  bool vertical = false; // the table feeds vpass_row: the horizontal pass's layouts are not built
};

// Fixed-point weights for one axis, in emission order.
struct AxisTable {
  int n = 0;                   // number of outputs
  int ksize = 0;               // taps stored per output (even, zero padded)
  std::vector<int32_t> start;  // first source index of each output (decoded coordinates)
  std::vector<int32_t> count;  // taps with a nonzero weight window
  std::vector<int32_t> coef;   // n * ksize weights, `prec` fraction bits
  int prec = kPrecisionBits;   // fraction bits of the weights: kPrecisionBits, or less in fast mode
  bool fast = false;           // weights fit in int16; fast_w() is built
  int src_lo = 0, src_hi = 0;  // source indices read by any output: [src_lo, src_hi)
  // SIMD layout: every output gets the same even number of taps, kmax (the largest count,
  // rounded up; the extra weights are zero), each weight repeated 4 times (one per RGBX lane):
  // wide[(e * kmax + j) * 4 + c] = coef[e * ksize + j]. A fixed trip count keeps the horizontal
  // loop free of mispredicted exits, and the repeated weights load straight into registers.
  int kmax = 0;
  Scratch wide_buf{256};
  const int32_t* wide() const { return reinterpret_cast<const int32_t*>(wide_buf.data()); }
  // Fast-mode AVX2 layout (Note [Fast resampling]): outputs in pairs (e, e+1), kq steps of four
  // taps each; step q of pair b is two 32-byte vectors, taps (4q, 4q+1) then (4q+2, 4q+3), each
  // [output e: (k0 k1) x 4 | output e+1: (k0 k1) x 4] as int16. An odd last output pairs with
  // zero weights.
  int kq = 0;
  // Fast mode, vertical pass: taps in pairs, pairs[e * ksize / 2 + p] = the int16 weights of taps
  // 2p and 2p+1 of output e in one int32 (low half first), as madd takes them.
  std::vector<int32_t> pairs;
  Scratch fast_buf{1280};
  const int16_t* fast_w() const { return reinterpret_cast<const int16_t*>(fast_buf.data()); }
  // Every output copies one source pixel (weight 1.0) from consecutive sources, stepping +1
  // (or -1 when reversed): the pass is a copy. Set by build_axis_table.
  bool identity = false;
  int identity_step = 1;
  std::vector<double> scratch;  // reused per build: no allocation per image once warmed up
};

// Builds the table for `a`. Throws Error(kInvalid) on an empty box or output.
void build_axis_table(const AxisSpec& a, AxisTable* t);

// Horizontal pass over one row, with the kernels `k` of the plan's level and mode (Note [SIMD
// dispatch] in dispatch.h; t must be a table of k's mode, exact or fast). `row` holds RGBX pixels
// of source columns starting at `origin`; at least (t.src_hi - origin + t.ksize + 2) pixels must
// be readable. Writes t.n RGBX pixels (the X byte is unspecified).
void hpass_row(const Kernels& k, const uint8_t* row, int origin, const AxisTable& t, uint8_t* out);

// The horizontal pass over n rows: rows[i] -> outs[i], each as hpass_row (same bytes at every
// level). AVX2 runs four rows at a time (Note [Horizontal pass, 4 rows]).
void hpass_rows(const Kernels& k, const uint8_t* const* rows, int n, int origin, const AxisTable& t,
                uint8_t* const* outs);

// Vertical pass for output row `e` of table `t`: combines t.count[e] rows of `src` (row stride
// `stride` bytes, the first at row `first`) with that output's weights, over `nbytes` bytes (a
// multiple of 4), into `out`. Reads and writes up to the next multiple of 32 bytes, so buffers
// must be padded to that.
void vpass_row(const Kernels& k, const uint8_t* src, size_t stride, int first, const AxisTable& t, int e, int nbytes,
               uint8_t* out);

inline uint8_t clip_fixed(int32_t acc, int prec = kPrecisionBits) {
  int32_t v = acc >> prec;  // arithmetic shift, as the SIMD srai
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace fastprep
