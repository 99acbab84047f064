// libjpeg-turbo decoder: one reusable handle per worker thread, RAII, errors as exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common.h"

namespace fastprep {

struct JpegHeader {
  int width = 0, height = 0;  // as stored (before EXIF orientation)
  int components = 0;
  bool cmyk = false;          // CMYK or YCCK: converted to RGB on output
  bool progressive = false;
  int orientation = 1;        // EXIF orientation 1..8
};

struct JpegLimits {
  int64_t max_pixels = 0;  // 0 = unlimited; checked from the header, before any allocation
  int max_scans = 1000;    // progressive scans allowed (libjpeg-turbo's fuzzers use a limit too)
  bool strict = true;      // corrupt-data warnings (truncation, bad codes) are errors
  // A file that ends early decodes anyway: the source's end-of-file warning, and every warning
  // after it, are tolerated; libjpeg leaves the missing blocks at zero coefficients (mid-gray),
  // as PIL's LOAD_TRUNCATED_IMAGES. Other corrupt data before the end stays an error.
  bool allow_truncated = false;
};

// Call order per image: read_header, start, [skip_rows], read_row..., then finish or the next
// read_header (which aborts whatever was left). Any libjpeg error throws fastprep::Error and
// leaves the handle reusable.
class JpegDecoder {
 public:
  JpegDecoder();
  ~JpegDecoder();
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  JpegHeader read_header(const uint8_t* data, size_t size, const JpegLimits& limits);

  // Starts decoding at scale 1/denom (denom in 1, 2, 4, 8), restricted to decoded columns
  // [x0, x0 + w). libjpeg widens the span to iMCU boundaries: *out_x0 / *out_w give the span
  // actually produced. *out_h and *full_w give the scaled image height and width.
  void start(int denom, int x0, int w, int* out_x0, int* out_w, int* out_h, int* full_w);
  void skip_rows(int n);
  void read_row(uint8_t* rgbx);  // out_w RGBX pixels
  void finish();                 // abandons the rest of the image

  // Number of corrupt-data warnings the last image raised and that were tolerated (non-strict
  // mode, or truncation with allow_truncated): 0 means the pixels are what the file encodes.
  int warnings() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True when the bytes start with a JPEG SOI marker.
inline bool is_jpeg(const uint8_t* d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }

}  // namespace fastprep
