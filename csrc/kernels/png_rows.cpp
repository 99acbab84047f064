#include "kernels/png_rows.h"

#include "kernels/reference.h"

#include <cstdlib>
#include <cstring>

namespace fastprep {

namespace {

inline uint8_t paeth(int a, int b, int c) {  // PNG specification 9.4
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return static_cast<uint8_t>(a);
  return static_cast<uint8_t>(pb <= pc ? b : c);
}

}  // namespace

// The scalar reference (kernels/reference.h).
bool png_unfilter_ref(int type, const uint8_t* raw, const uint8_t* prev, uint8_t* out, size_t n, int bpp) {
  const size_t k = static_cast<size_t>(bpp);
  switch (type) {
    case 0:
      std::memcpy(out, raw, n);
      return true;
    case 1:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(raw[i] + (i >= k ? out[i - k] : 0));
      return true;
    case 2:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(raw[i] + prev[i]);
      return true;
    case 3:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(raw[i] + (((i >= k ? out[i - k] : 0) + prev[i]) >> 1));
      return true;
    case 4:
      for (size_t i = 0; i < n; ++i)
        out[i] = static_cast<uint8_t>(raw[i] + (i >= k ? paeth(out[i - k], prev[i], prev[i - k]) : paeth(0, prev[i], 0)));
      return true;
    default:
      return false;
  }
}

void png_expand_rgbx_ref(int color_type, const uint8_t* src, int w, const uint32_t* palette, uint8_t* dst) {
  for (int x = 0; x < w; ++x, dst += 4) {
    switch (color_type) {
      case 0: dst[0] = dst[1] = dst[2] = src[x]; dst[3] = 0; break;
      case 2: dst[0] = src[3 * x]; dst[1] = src[3 * x + 1]; dst[2] = src[3 * x + 2]; dst[3] = 0; break;
      case 4: dst[0] = dst[1] = dst[2] = src[2 * x]; dst[3] = src[2 * x + 1]; break;
      case 6: std::memcpy(dst, src + 4 * x, 4); break;
      default: std::memcpy(dst, palette + src[x], 4); break;  // 3
    }
  }
}


bool png_unfilter(const Kernels& k, int type, const uint8_t* raw, const uint8_t* prev, uint8_t* out, size_t n,
                  int bpp) {
  if (type < 0 || type > 4) return false;
  // The vector kernels take whole rows (Up) and 3- and 4-byte pixels (Sub, Average, Paeth: one
  // pixel per step); 1- and 2-byte pixels in those filters gain nothing from a vector.
  if (type == 2 || (type != 0 && bpp >= 3)) return k.png_unfilter(type, raw, prev, out, n, bpp);
  return png_unfilter_ref(type, raw, prev, out, n, bpp);
}

void png_expand_rgbx(const Kernels& k, int color_type, const uint8_t* src, int w, const uint32_t* palette,
                     uint8_t* dst) {
  if (color_type == 3) return png_expand_rgbx_ref(color_type, src, w, palette, dst);  // no byte gather: scalar
  k.png_expand_rgbx(color_type, src, w, palette, dst);
}

}  // namespace fastprep
