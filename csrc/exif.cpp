#include "exif.h"

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

void apply_orientation(int o, const uint8_t* src, int h, int w, uint8_t* dst) {
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
      std::memcpy(drow + 4 * x, src + (static_cast<size_t>(sy) * w + sx) * 4, 4);
    }
  }
}

}  // namespace fastprep
