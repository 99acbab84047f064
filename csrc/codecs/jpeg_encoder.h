// libjpeg-turbo encoder, for the built-in sample set and `fastprep preprocess --format jpeg`.
#pragma once

#include <cstdint>
#include <vector>

namespace fastprep {

// Encodes an h x w image of `channels` (1 or 3) interleaved uint8 samples, rows `row_stride`
// bytes apart, as a baseline JPEG. subsampling: 444, 422, 420, 440 or 411. restart_mcus > 0: restart
// markers every choose_restart_interval(MCU columns, restart_mcus) MCUs, so that every MCU row
// starts an interval (Note [Restart splicing]). Throws Error on failure.
std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int h, int w, int channels, int64_t row_stride, int quality,
                                 int subsampling, bool progressive, int restart_mcus = 0);

}  // namespace fastprep
