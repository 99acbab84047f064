// Lossless JPEG rewrite (Note [Lossless restart rewrite]): the same DCT coefficients, written as
// one baseline scan with restart markers that index every MCU row, and the file's metadata.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fastprep {

// The restart interval (MCUs) for an image `mcus_per_row` MCUs wide: the divisor of the row
// closest to `target` within [ceil(target / 2), 2 * target] (the larger on a tie), else the whole
// row (one interval per MCU row). 0 when target <= 0 (no restart markers).
int choose_restart_interval(int mcus_per_row, int target);

// MCU columns of a single-scan image: ceil(width / (8 * max_h_samp)), or ceil(width / 8) for one
// component.
int mcus_per_row_of(int width, int components, int max_h_samp);

// The automatic target interval: about kAutoIntervalBytes of entropy-coded data per interval,
// from the file's bytes per MCU (Note [Lossless restart rewrite]), within [1, 16] MCUs.
constexpr int kAutoRestart = -1;
constexpr double kAutoIntervalBytes = 200.0;
int auto_restart_mcus(double entropy_bytes, int64_t mcus);

struct TranscodeOptions {
  int restart_mcus = kAutoRestart;  // target restart interval (choose_restart_interval); 0: none
  bool keep_metadata = true;  // APPn (EXIF, ICC, XMP, ...) and COM segments copied
  bool verify = true;         // both files decoded and compared pixel for pixel
  int64_t max_pixels = 0;     // larger images are refused from their header (0: no limit)
  int max_scans = 1000;       // progressive scans allowed, as the decoder's JpegLimits
};

struct TranscodeResult {
  std::vector<uint8_t> data;
  int interval = 0;         // the restart interval written (MCUs)
  int mcus_per_row = 0;
  int target = 0;            // the target interval it was chosen for (the automatic one, or the option)
  bool progressive = false;  // the source was progressive
};

// Rewrites a JPEG losslessly (libjpeg's coefficient API, as jpegtran does): one baseline
// (sequential, Huffman-optimized) scan with the restart interval chosen per image. Throws
// Error(kDecode / kUnsupported) on a file libjpeg rejects or warns about (corrupt data is never
// rewritten), and Error(kDecode) when `verify` finds a pixel that differs.
TranscodeResult transcode_jpeg(const uint8_t* data, size_t size, const TranscodeOptions& opt);

}  // namespace fastprep
