// libjpeg-turbo encoder, for the built-in sample set and `fastprep preprocess --format jpeg`.
#pragma once

#include <cstdint>
#include <vector>

namespace fastprep {

// Encodes an h x w image of `channels` (1 or 3) interleaved uint8 samples, rows `row_stride`
// bytes apart, as a baseline JPEG. subsampling: 444, 422 or 420. Throws Error on failure.
std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int h, int w, int channels, int64_t row_stride, int quality,
                                 int subsampling, bool progressive);

}  // namespace fastprep
