// Exact level moments of uint8 batches for `fastprep stats` (fastprep/offline/_stats.py). No Python here.
//
// Note [Level moments]
// For a batch of n images of p uint8 values each (row i at data + i * p), adds per position q
//   s1[q] += sum_i x[i][q],  s2[q] += sum_i x[i][q]^2
// and, when sx is given (3 channel planes of hw values, CHW), per plane position q
//   sx[0][q] += sum_i r*g,  sx[1][q] += sum_i r*b,  sx[2][q] += sum_i g*b.
// Positions are walked in blocks that fit L1, images inside a block, with uint32 partial sums
// (n <= 65536 keeps 65536 * 255^2 < 2^32), then added into the int64 totals: the same integers
// as the numpy code it replaces, so the statistics are unchanged (exact), in one call per batch
// that runs without the GIL beside the pool's next batch.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastprep {

constexpr int64_t kMomentsMaxImages = 65536;

void level_moments(const uint8_t* data, int64_t n, size_t p, int64_t* s1, int64_t* s2, int64_t* sx, size_t hw);

}  // namespace fastprep
