#include "codecs/exif.h"

#include <cstring>

namespace fastprep {

int exif_orientation(const uint8_t* d, size_t len) {
  if (len < 6 + 8 || std::memcmp(d, "Exif\0\0", 6) != 0) return 1;
  const uint8_t* t = d + 6;  // TIFF header
  const size_t n = len - 6;
  bool le;
  if (t[0] == 'I' && t[1] == 'I') le = true;
  else if (t[0] == 'M' && t[1] == 'M') le = false;
  else return 1;
  auto u16 = [&](size_t off) -> unsigned {
    return le ? (t[off] | (t[off + 1] << 8)) : ((t[off] << 8) | t[off + 1]);
  };
  auto u32 = [&](size_t off) -> uint32_t {
    return le ? (uint32_t(t[off]) | (uint32_t(t[off + 1]) << 8) | (uint32_t(t[off + 2]) << 16) |
                 (uint32_t(t[off + 3]) << 24))
              : ((uint32_t(t[off]) << 24) | (uint32_t(t[off + 1]) << 16) | (uint32_t(t[off + 2]) << 8) |
                 uint32_t(t[off + 3]));
  };
  if (u16(2) != 42) return 1;
  const uint32_t ifd = u32(4);
  if (ifd > n || n - ifd < 2) return 1;
  const unsigned count = u16(ifd);
  for (unsigned i = 0; i < count; ++i) {
    const size_t e = ifd + 2 + static_cast<size_t>(i) * 12;
    if (e + 12 > n) return 1;
    if (u16(e) == 0x0112) {
      if (u16(e + 2) != 3) return 1;  // must be SHORT
      unsigned v = u16(e + 8);
      return (v >= 1 && v <= 8) ? static_cast<int>(v) : 1;
    }
  }
  return 1;
}

void apply_orientation(int o, const uint8_t* src, int h, int w, size_t src_stride, uint8_t* dst) {
  int oh, ow;
  oriented_dims(o, h, w, &oh, &ow);
  for (int y = 0; y < oh; ++y) {
    uint8_t* drow = dst + static_cast<size_t>(y) * ow * 4;
    for (int x = 0; x < ow; ++x) {
      int sy, sx;
      switch (o) {
        case 2: sy = y; sx = w - 1 - x; break;               // mirror horizontal
        case 3: sy = h - 1 - y; sx = w - 1 - x; break;       // rotate 180
        case 4: sy = h - 1 - y; sx = x; break;               // mirror vertical
        case 5: sy = x; sx = y; break;                       // transpose
        case 6: sy = h - 1 - x; sx = y; break;               // rotate 90 clockwise
        case 7: sy = h - 1 - x; sx = w - 1 - y; break;       // transverse
        case 8: sy = x; sx = w - 1 - y; break;               // rotate 90 counter-clockwise
        default: sy = y; sx = x; break;
      }
      std::memcpy(drow + 4 * x, src + static_cast<size_t>(sy) * src_stride + static_cast<size_t>(sx) * 4, 4);
    }
  }
}

namespace {

// [lo, lo + len) of an axis of n pixels, or its mirror image.
void interval(bool reversed, int n, int lo, int len, int* out_lo) { *out_lo = reversed ? n - (lo + len) : lo; }

// Which axes an orientation mirrors (see apply_orientation's index maps): the stored rows run
// against the displayed axis they show for 3, 4, 6, 7, the stored columns for 2, 3, 7, 8.
bool rows_reversed(int o) { return o == 3 || o == 4 || o == 6 || o == 7; }
bool cols_reversed(int o) { return o == 2 || o == 3 || o == 7 || o == 8; }
bool transposed(int o) { return o >= 5 && o <= 8; }

}  // namespace

Rect stored_rect(int o, int h, int w, const Rect& d) {
  Rect s;
  // Stored rows show displayed rows (1-4) or displayed columns (5-8); stored columns the other axis.
  const int ylo = transposed(o) ? d.x0 : d.y0, ylen = transposed(o) ? d.w : d.h;
  const int xlo = transposed(o) ? d.y0 : d.x0, xlen = transposed(o) ? d.h : d.w;
  interval(rows_reversed(o), h, ylo, ylen, &s.y0);
  interval(cols_reversed(o), w, xlo, xlen, &s.x0);
  s.h = ylen;
  s.w = xlen;
  return s;
}

Rect displayed_rect(int o, int h, int w, const Rect& s) {
  int ylo, xlo;
  interval(rows_reversed(o), h, s.y0, s.h, &ylo);
  interval(cols_reversed(o), w, s.x0, s.w, &xlo);
  Rect d;
  if (transposed(o)) {
    d.y0 = xlo, d.h = s.w, d.x0 = ylo, d.w = s.h;
  } else {
    d.y0 = ylo, d.h = s.h, d.x0 = xlo, d.w = s.w;
  }
  return d;
}

}  // namespace fastprep
