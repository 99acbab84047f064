// libwebp decoder: a still WebP (lossy or lossless, with or without alpha) into RGBX rows. No
// Python here.
//
// Note [WebP decoding]
// The pixels are libwebp's RGBA decode (fancy upsampling of lossy 4:2:0, as Pillow's decoder
// does), with the alpha byte left in the 4th byte of each pixel and ignored: alpha is dropped as
// by Image.open(f).convert("RGB") (tests/test_webp.py compares with the installed Pillow). An
// EXIF chunk's orientation is applied, as for JPEG. The image is decoded whole (libwebp's
// incremental row output would not save the decode of the rows below the crop, which the
// container does not let us skip). Animated files are not decoded here: the pipeline reports them
// as "not native" and the Pillow fallback takes its first frame. The canvas size from the header
// is checked against max_pixels before anything is allocated.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.h"

namespace fastprep {

inline bool is_webp(const uint8_t* d, size_t n) {
  return n >= 16 && d[0] == 'R' && d[1] == 'I' && d[2] == 'F' && d[3] == 'F' && d[8] == 'W' && d[9] == 'E' &&
         d[10] == 'B' && d[11] == 'P';
}

struct WebpInfo {
  int width = 0, height = 0;
  bool animated = false;
  int orientation = 1;  // from an EXIF chunk, 1 without one
};

// Reads the header (and the EXIF chunk); throws Error (kDecode, kTooLarge).
WebpInfo webp_info(const uint8_t* data, size_t size, int64_t max_pixels);

// Decodes a still WebP of info.width x info.height into RGBX rows `stride` bytes apart (the 4th
// byte of each pixel is unspecified). Throws Error(kDecode) with libwebp's reason.
void webp_decode(const uint8_t* data, size_t size, const WebpInfo& info, uint8_t* out, size_t stride);

}  // namespace fastprep
