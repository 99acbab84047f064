// EXIF orientation: parsing the tag and applying it to an RGBX image.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastprep {

// Orientation (1..8) from the payload of an APP1 segment starting with "Exif\0\0".
// Returns 1 when absent or malformed. Every read is bounds-checked.
int exif_orientation(const uint8_t* data, size_t len);

// Dimensions after applying `orientation` to an h x w image.
inline void oriented_dims(int orientation, int h, int w, int* oh, int* ow) {
  bool swap = orientation >= 5 && orientation <= 8;
  *oh = swap ? w : h;
  *ow = swap ? h : w;
}

// Writes the displayed image (as PIL's ImageOps.exif_transpose) of the RGBX image `src`
// (h x w, rows packed) into `dst` (oriented dims, rows packed).
void apply_orientation(int orientation, const uint8_t* src, int h, int w, uint8_t* dst);

}  // namespace fastprep
