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
// (h x w, rows `src_stride` bytes apart) into `dst` (oriented dims, rows packed).
void apply_orientation(int orientation, const uint8_t* src, int h, int w, size_t src_stride, uint8_t* dst);
inline void apply_orientation(int orientation, const uint8_t* src, int h, int w, uint8_t* dst) {
  apply_orientation(orientation, src, h, w, static_cast<size_t>(w) * 4, dst);
}

// Rows [y0, y0 + h) and columns [x0, x0 + w) of an image.
struct Rect {
  int y0 = 0, x0 = 0, h = 0, w = 0;
};

// An orientation maps rectangles to rectangles, and the displayed image of a stored rectangle
// (apply_orientation of that sub-image) is the displayed image's rectangle that shows it. For an
// image of h x w stored pixels: the stored rectangle that `displayed` (a rectangle of the
// displayed image) shows, and the displayed rectangle that shows `stored`.
Rect stored_rect(int orientation, int h, int w, const Rect& displayed);
Rect displayed_rect(int orientation, int h, int w, const Rect& stored);

}  // namespace fastprep
