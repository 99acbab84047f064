// libjpeg-turbo decoder: one reusable handle per worker thread, RAII, errors as exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>  // std::move, to hand a Session on

#include "core/common.h"

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

// Where a JPEG's bytes come from (Note [Bounded reads] in pipeline.h): `size` bytes at `data`,
// and, when `fd` >= 0, the rest of a file region read on demand: bytes [base + size, base + length)
// of `fd`, fetched into `chunk` (`chunk_size` bytes, which may be `data` itself) as the decoder
// asks for them. So a file is read only as far as the decoder gets: a crop that ends above the
// last row stops early, and bytes after the image (a padded tail) are never read.
struct JpegInput {
  const uint8_t* data = nullptr;
  size_t size = 0;
  int fd = -1;
  int64_t base = 0;    // file offset of data[0]
  int64_t length = 0;  // bytes of the region, from base (>= size)
  uint8_t* chunk = nullptr;
  size_t chunk_size = 0;
};

// Decoding one image is a Session, the only way to reach the decode calls:
//
//   JpegDecoder::Session img = dec.open(data, size, limits);   // parses the header
//   img.start(...); img.skip_rows(...); img.read_row(...) ...
//
// Whatever way the session's scope is left (the last row read or not, an exception, an early
// return), its destructor abandons the image (jpeg_abort_decompress) and the decoder is ready for
// the next open: there is no finish() to forget. One session per decoder at a time; `data` must
// outlive the session. Any libjpeg error throws fastprep::Error and leaves the decoder reusable
// (the failed session then refuses further calls).
class JpegDecoder {
 public:
  class Session;

  JpegDecoder();
  ~JpegDecoder();
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  // Reads the header (and its EXIF orientation) and returns the session for this image. Throws
  // Error on a bad header or one over limits.max_pixels (no session is then open), and
  // std::logic_error while another session of this decoder is alive.
  Session open(const uint8_t* data, size_t size, const JpegLimits& limits);
  Session open(const JpegInput& in, const JpegLimits& limits);

  // Corrupt-data warnings of the last image opened (open or since closed) that were tolerated
  // (non-strict mode, or truncation with allow_truncated): 0 means the pixels are what the file
  // encodes. Still valid after its session is destroyed.
  int warnings() const;

  // Decompressions this decoder has started (Session::start calls) since it was made: how many
  // times entropy-coded data was decoded. A multi-view sample decodes once (tests read it).
  int64_t decode_sessions() const { return sessions_; }

 private:
  int64_t sessions_ = 0;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class [[nodiscard]] JpegDecoder::Session {
 public:
  Session(Session&& o) noexcept : m_(o.m_), header_(o.header_), sessions_(o.sessions_) { o.m_ = nullptr; }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session& operator=(Session&&) = delete;
  ~Session();  // abandons the image unless nothing is left to abandon (never throws)

  const JpegHeader& header() const { return header_; }

  // Starts decoding at scale 1/denom (denom in 1, 2, 4, 8), restricted to decoded columns
  // [x0, x0 + w). libjpeg widens the span to iMCU boundaries: *out_x0 / *out_w give the span
  // actually produced. *out_h and *full_w give the scaled image height and width.
  void start(int denom, int x0, int w, int* out_x0, int* out_w, int* out_h, int* full_w);
  void skip_rows(int n);
  void read_row(uint8_t* rgbx);  // out_w RGBX pixels
  // The next n rows (as many read_row calls, but libjpeg fills several rows per call).
  void read_rows(uint8_t* const* rows, int n);

  int warnings() const;  // so far, for this image (see JpegDecoder::warnings)

 private:
  friend class JpegDecoder;
  Session(Impl* m, const JpegHeader& h, int64_t* sessions) noexcept : m_(m), header_(h), sessions_(sessions) {}
  Impl& impl();  // throws std::logic_error on a moved-from session

  Impl* m_;  // null once moved from
  JpegHeader header_;
  int64_t* sessions_ = nullptr;  // the decoder's counter
};

// "libjpeg-turbo 2.1.5" (the version of the headers built against; libjpeg has no run-time query).
std::string jpeg_library_version();

// True when the bytes start with a JPEG SOI marker.
inline bool is_jpeg(const uint8_t* d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }

}  // namespace fastprep
