// libwebp decoder: a still WebP (lossy or lossless, with or without alpha) into RGBX rows. No
// Python here.
//
// Note [WebP decoding]
// The pixels are libwebp's RGBA decode (fancy upsampling of lossy 4:2:0, as Pillow's decoder
// does), with the alpha byte left in the 4th byte of each pixel and ignored: alpha is dropped as
// by Image.open(f).convert("RGB") (tests/test_webp.py compares with the installed Pillow). An
// EXIF chunk's orientation is read and, only when the plan asks for it (apply_exif_orientation;
// off by default, as torchvision's loaders), applied as for JPEG: the stored rectangle that the
// turned crop shows is decoded, then turned. The image is decoded only over the rectangle the
// resampler reads (in stored coordinates), with libwebp's
// cropped decode: decoding stops shortly below the rectangle (lossy files at a macroblock row),
// and only the rectangle is upsampled and converted to RGB. libwebp's scaling is never used (its
// rescaler is not Pillow's arithmetic). A cropped decode is not a whole decode cut out:
//   * the fancy upsampler treats the crop's first and last row and column as the image's edges:
//     a lossy pixel there takes the chroma of its own sample only instead of mixing in the
//     neighbouring one, so those rows and columns differ from a whole decode wherever they are
//     not the image's own edges;
//   * libwebp rounds a lossy crop's left and top down to even (chroma pairs start there), keeping
//     the width: asked for an odd offset, it returns a rectangle one pixel to the left or above.
//     1.2.4 leaves lossless offsets as asked; other versions may not;
//   * its alpha is not the whole decode's either: 1.2.4 returns other rows' alpha for some lossy
//     files with alpha. Harmless here, alpha being ignored, and not corrected.
// So webp_region_rect widens the region by one pixel on every side, clamped to the image, and
// rounds its left and top down to even itself (a margin of 1 or 2 pixels there, 1 at the right
// and bottom): the region's pixels then equal the whole decode's byte for byte (the margin's need
// not, and are never read), and no version moves the rectangle. Measured with libwebp 1.2.4 on
// 397 files (the test photos at sizes 1x1 to 2501x1877, odd ones included; lossy q30 to q100 with
// the normal, simple or no loop filter, lossless, with and without alpha) and 23680 regions, a
// quarter or more touching each edge: 0 differing pixels with this margin. Without the left/top
// margin, or without the right/bottom one, about a quarter of the regions differ, always in their
// edge rows or columns, and lossless files never. tests/test_webp.py checks the pipeline's results
// against those of the whole decode (the Pillow-decoded array) and fails without either margin.
// Animated files are not decoded here: the pipeline reports them as "not native" and the Pillow
// fallback takes its first frame. The canvas size from the header is checked against max_pixels
// before anything is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/common.h"

namespace fastprep {

inline bool is_webp(const uint8_t* d, size_t n) {
  return n >= 16 && d[0] == 'R' && d[1] == 'I' && d[2] == 'F' && d[3] == 'F' && d[8] == 'W' && d[9] == 'E' &&
         d[10] == 'B' && d[11] == 'P';
}

// Whether this build decodes WebP natively (built with libwebp's headers: FASTPREP_HAVE_WEBP);
// without it a WebP goes to the Pillow fallback, and the functions below throw kUnsupported.
bool webp_native();
// libwebp's decoder version ("1.2.4"), or "" without it.
std::string webp_library_version();

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

// A rectangle of stored pixels.
struct WebpRect {
  int left = 0, top = 0, width = 0, height = 0;
};

// The rectangle to decode for stored columns [x0, x0 + w) and rows [y0, y0 + h): the region
// widened by the margin that makes its pixels exact (Note [WebP decoding]), within the image. The
// region is clamped to the image first, so the rectangle is never empty nor outside it.
WebpRect webp_region_rect(const WebpInfo& info, int x0, int y0, int w, int h);

// Decodes `rect` (from webp_region_rect) of a still WebP into RGBX rows `stride` bytes apart, its
// top-left pixel at `out` (the 4th byte of each pixel is unspecified). The pixels of the region the
// rectangle was made for equal webp_decode's; those of the margin around it do not always. Throws
// Error(kDecode) with libwebp's reason.
void webp_decode_rect(const uint8_t* data, size_t size, const WebpRect& rect, uint8_t* out, size_t stride);

}  // namespace fastprep
