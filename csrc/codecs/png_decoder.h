// PNG decoder: one PNG at a time into RGBX rows, RAII, errors as exceptions. libpng reads the
// header and chunks; 8-bit non-interlaced image data is inflated and unfiltered here with vector
// kernels (Note [PNG fast path] in png_decoder.cpp), everything else by libpng. No Python here.
//
// Note [PNG decoding]
// The output is what torchvision's default loader gets from Pillow, Image.open(f).convert("RGB"):
//   * palette -> its RGB colours; gray 1/2/4-bit scaled to 8 bits (0..255); gray -> R = G = B;
//   * alpha and tRNS transparency are dropped (the 4th byte of a pixel is unspecified);
//   * 16-bit RGB, RGBA and gray+alpha keep the high byte (Pillow unpacks "RGB;16B" that way);
//   * 16-bit gray is clamped, min(v, 255): Pillow opens it as mode I;16 and its convert to RGB
//     clips (tests/test_png.py checks each case against the installed Pillow);
//   * no gamma, sBIT or colour-profile correction (Pillow applies none);
//   * an eXIf orientation is read; it is applied, as for JPEG, only when the plan asks for it
//     (apply_exif_orientation, off by default as in torchvision's loaders).
// Rows come out in order, so the resampler can take them as they arrive (a few rows of memory
// plus the output), except for Adam7-interlaced files, which are decoded whole. Limits: the
// pixel count from the header is checked against max_pixels before anything is allocated (sides
// up to 2^24, where libpng's default stops at 1,000,000 and Pillow has none),
// ancillary chunks are capped at 8 MiB, a truncated file or a CRC error in a critical chunk is
// an error (libpng's defaults), and APNG animation chunks are ignored (the first frame, as
// Pillow's default frame). With allow_truncated, image data that ends early keeps the rows
// decoded so far and the rest is black, as Pillow's ImageFile.LOAD_TRUNCATED_IMAGES leaves it
// (libpng inflates IDAT in pieces of a few KB, so the last rows of the data may be black here
// and decoded by Pillow); a cut inside the header is still an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/common.h"
#include "kernels/dispatch.h"

namespace fastprep {

inline bool is_png(const uint8_t* d, size_t n) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n < 8) return false;
  for (int i = 0; i < 8; ++i)
    if (d[i] != sig[i]) return false;
  return true;
}

// Whether this build decodes PNG natively (built with libpng and zlib: FASTPREP_HAVE_PNG); without
// it a PNG goes to the Pillow fallback and PngImage's constructor throws kUnsupported.
bool png_native();
// "libpng 1.6.39, zlib 1.2.13"-style versions of the libraries linked, or "" without them.
std::string png_library_version();
std::string zlib_library_version();

class PngImage {
 public:
  // Parses the header and sets the conversions; throws Error (kDecode, kTooLarge).
  // allow_truncated: image data that ends early is not an error; the rows it did not reach are
  // black (truncated() then says so). k: the fast path's row kernels (the plan's). fast: take
  // the fast path where the image allows (Note [PNG fast path] in png_decoder.cpp); false keeps
  // every row in libpng (the bare-decode reference of the benchmarks).
  PngImage(const uint8_t* data, size_t size, int64_t max_pixels, bool allow_truncated, const Kernels& k,
           bool fast = true);
  ~PngImage();
  PngImage(const PngImage&) = delete;
  PngImage& operator=(const PngImage&) = delete;

  int width() const;
  int height() const;
  bool interlaced() const;
  // EXIF orientation (1..8) from an eXIf chunk before the image data, else 1: applied as for
  // JPEG (what Pillow's exif_transpose does) when the plan's apply_exif is set.
  int orientation() const;
  bool truncated() const;  // the data ran out (allow_truncated): rows past that point are black
  // The next n rows as RGBX (width() * 4 bytes each). Not for interlaced images.
  void read_rows(uint8_t* const* rows, int n);
  // Every row (height() of them) as RGBX; the way to read an interlaced image.
  void read_all(uint8_t* const* rows);

  struct Impl;  // libpng's state (png_decoder.cpp)

 private:
  std::unique_ptr<Impl> m_;
};

}  // namespace fastprep
