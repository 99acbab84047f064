#include "codecs/webp_decoder.h"

#ifdef FASTPREP_HAVE_WEBP
#include <webp/decode.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "codecs/exif.h"

namespace fastprep {

#ifdef FASTPREP_HAVE_WEBP

bool webp_native() { return true; }

std::string webp_library_version() {
  const int v = WebPGetDecoderVersion();
  return std::to_string((v >> 16) & 0xFF) + "." + std::to_string((v >> 8) & 0xFF) + "." + std::to_string(v & 0xFF);
}

namespace {

const char* status_name(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "file is truncated";
    default: return "decode error";
  }
}

uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

// The orientation in an extended file's EXIF chunk (raw TIFF, or with the JPEG "Exif\0\0" prefix
// some writers keep), 1 if there is none.
int exif_chunk_orientation(const uint8_t* d, size_t n) {
  if (n < 21 || std::memcmp(d + 12, "VP8X", 4) != 0) return 1;
  size_t riff_end = std::min(n, size_t(8) + le32(d + 4));
  size_t pos = 12;
  while (pos + 8 <= riff_end) {
    const uint32_t len = le32(d + pos + 4);
    const size_t body = pos + 8;
    if (len > riff_end - body) return 1;
    if (std::memcmp(d + pos, "EXIF", 4) == 0) {
      if (len >= 6 && std::memcmp(d + body, "Exif\0\0", 6) == 0) return exif_orientation(d + body, len);
      std::vector<uint8_t> app1(6 + size_t(len));
      std::memcpy(app1.data(), "Exif\0\0", 6);
      std::memcpy(app1.data() + 6, d + body, len);
      return exif_orientation(app1.data(), app1.size());
    }
    pos = body + len + (len & 1);  // chunks are padded to even sizes
  }
  return 1;
}

// Stored indices [lo, lo + n) of an axis of `size` pixels, clamped to it (never empty), widened by
// one on each side and the start rounded down to even (Note [WebP decoding]), within [0, size).
void widen(int lo, int n, int size, int* start, int* len) {
  const int64_t a = std::clamp<int64_t>(lo, 0, size - 1);
  const int64_t b = std::clamp<int64_t>(static_cast<int64_t>(lo) + n, a + 1, size);
  const int64_t s = std::max<int64_t>(a - 1, 0) & ~int64_t(1);
  *start = static_cast<int>(s);
  *len = static_cast<int>(std::min<int64_t>(b + 1, size) - s);
}

}  // namespace

WebpInfo webp_info(const uint8_t* data, size_t size, int64_t max_pixels) {
  WebPBitstreamFeatures f;
  const VP8StatusCode st = WebPGetFeatures(data, size, &f);
  if (st != VP8_STATUS_OK) throw Error(ErrorKind::kDecode, std::string("WebP: ") + status_name(st));
  WebpInfo info;
  info.width = f.width;
  info.height = f.height;
  info.animated = f.has_animation != 0;
  if (info.width <= 0 || info.height <= 0) throw Error(ErrorKind::kDecode, "WebP: empty image");
  const int64_t px = static_cast<int64_t>(info.width) * info.height;
  if (max_pixels > 0 && px > max_pixels)
    throw Error(ErrorKind::kTooLarge, "WebP of " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                                          " = " + std::to_string(px) + " pixels, over the limit of " +
                                          std::to_string(max_pixels) + " (max_pixels)");
  info.orientation = exif_chunk_orientation(data, size);
  return info;
}

void webp_decode(const uint8_t* data, size_t size, const WebpInfo& info, uint8_t* out, size_t stride) {
  const size_t bytes = checked_mul(stride, static_cast<size_t>(info.height));
  if (stride < static_cast<size_t>(info.width) * 4 || stride > static_cast<size_t>(INT32_MAX))
    throw Error(ErrorKind::kInvalid, "WebP: bad row stride");
  if (!WebPDecodeRGBAInto(data, size, out, bytes, static_cast<int>(stride))) {
    // The simple call does not say why: ask the full decoder for the status.
    WebPDecoderConfig config;
    VP8StatusCode st = VP8_STATUS_BITSTREAM_ERROR;
    if (WebPInitDecoderConfig(&config)) {
      config.output.colorspace = MODE_RGBA;
      config.output.is_external_memory = 1;
      config.output.u.RGBA.rgba = out;
      config.output.u.RGBA.stride = static_cast<int>(stride);
      config.output.u.RGBA.size = bytes;
      st = WebPDecode(data, size, &config);
      WebPFreeDecBuffer(&config.output);
      if (st == VP8_STATUS_OK) st = VP8_STATUS_BITSTREAM_ERROR;
    }
    throw Error(ErrorKind::kDecode, std::string("WebP: ") + status_name(st));
  }
}

WebpRect webp_region_rect(const WebpInfo& info, int x0, int y0, int w, int h) {
  WebpRect r;
  widen(x0, w, info.width, &r.left, &r.width);
  widen(y0, h, info.height, &r.top, &r.height);
  return r;
}

void webp_decode_rect(const uint8_t* data, size_t size, const WebpRect& rect, uint8_t* out, size_t stride) {
  if (rect.width <= 0 || rect.height <= 0 || stride < static_cast<size_t>(rect.width) * 4 ||
      stride > static_cast<size_t>(INT32_MAX))
    throw Error(ErrorKind::kInvalid, "WebP: bad rectangle or row stride");
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) throw Error(ErrorKind::kDecode, "WebP: libwebp version mismatch");
  config.options.use_cropping = 1;
  config.options.crop_left = rect.left;  // even: libwebp would round a lossy crop's offsets down
  config.options.crop_top = rect.top;
  config.options.crop_width = rect.width;
  config.options.crop_height = rect.height;
  config.output.colorspace = MODE_RGBA;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = out;
  config.output.u.RGBA.stride = static_cast<int>(stride);
  config.output.u.RGBA.size = checked_mul(stride, static_cast<size_t>(rect.height));
  const VP8StatusCode st = WebPDecode(data, size, &config);
  WebPFreeDecBuffer(&config.output);
  if (st != VP8_STATUS_OK) throw Error(ErrorKind::kDecode, std::string("WebP: ") + status_name(st));
}

#else  // built without libwebp: WebP files go to the Pillow fallback

bool webp_native() { return false; }
std::string webp_library_version() { return std::string(); }

[[noreturn]] static void no_webp() {
  throw Error(ErrorKind::kUnsupported, "this build of fastprep has no native WebP decoder (built without libwebp)");
}
WebpInfo webp_info(const uint8_t*, size_t, int64_t) { no_webp(); }
void webp_decode(const uint8_t*, size_t, const WebpInfo&, uint8_t*, size_t) { no_webp(); }
WebpRect webp_region_rect(const WebpInfo&, int, int, int, int) { no_webp(); }
void webp_decode_rect(const uint8_t*, size_t, const WebpRect&, uint8_t*, size_t) { no_webp(); }

#endif  // FASTPREP_HAVE_WEBP

}  // namespace fastprep
