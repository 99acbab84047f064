#include "codecs/png_decoder.h"

#include "codecs/exif.h"
#include "kernels/png_rows.h"

#ifdef FASTPREP_HAVE_PNG
#include <png.h>
#include <zlib.h>
#endif

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace fastprep {

#ifdef FASTPREP_HAVE_PNG

bool png_native() { return true; }
std::string png_library_version() { return png_get_libpng_ver(nullptr); }
std::string zlib_library_version() { return zlibVersion(); }

namespace {
constexpr png_alloc_size_t kMaxChunkBytes = png_alloc_size_t(8) << 20;
constexpr png_uint_32 kMaxSide = png_uint_32(1) << 24;
}

// libpng reports errors by longjmp to the setjmp of the call that failed. Every call into libpng
// goes through one of the step functions below: each holds only plain data in its frame (a
// longjmp skips destructors), and turns a failure into `false` with the message in `msg`.
struct PngImage::Impl {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  char msg[200] = {0};
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  bool gray16 = false;  // 16-bit gray: read as is, clamped by hand (Note [PNG decoding])
  int orientation = 1;
  int rows_read = 0;
  bool allow_truncated = false;  // Note [PNG decoding]: a file that ends early keeps its decoded rows
  bool truncated = false;        // the data ran out (allow_truncated): the remaining rows are black
  int rows_done = 0;             // rows step_rows wrote (plain data: valid after a longjmp)
  std::vector<uint8_t> tmp;  // 16-bit gray rows before the clamp

  // The fast path (Note [PNG fast path]); its state is plain data, touched outside libpng's calls.
  bool fast = false;
  const Kernels* k = nullptr;  // the fast path's row kernels
  int channels = 0;             // 8-bit samples per pixel: the filters' bytes per pixel
  size_t rowbytes = 0;          // bytes of a row after its filter-type byte
  z_stream z{};
  bool z_live = false, z_ended = false;
  size_t next_chunk = 0;        // offset of the chunk header after the IDAT being inflated
  bool cut = false;             // the file ends inside the IDAT being inflated
  std::vector<uint8_t> raw, recon[2];  // the filtered row; this row and the previous, reconstructed
  int cur = 0;
  uint32_t palette[256] = {0};  // RGBX words; indices past the PLTE give black, as libpng

  ~Impl() {
    if (z_live) inflateEnd(&z);
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }

  [[noreturn]] void fail(ErrorKind kind = ErrorKind::kDecode) {
    throw Error(kind, std::string("PNG: ") + (msg[0] ? msg : "decode error"));
  }
};

namespace {

void on_error(png_structp png, png_const_charp message) {
  auto* m = static_cast<PngImage::Impl*>(png_get_error_ptr(png));
  std::snprintf(m->msg, sizeof(m->msg), "%s", message ? message : "decode error");
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}  // ancillary-chunk trouble: ignored, as Pillow

void on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* m = static_cast<PngImage::Impl*>(png_get_io_ptr(png));
  if (n > m->size - m->pos) {
    m->truncated = m->allow_truncated;
    png_error(png, "file is truncated");
  }
  std::memcpy(out, m->data + m->pos, n);
  m->pos += n;
}

bool step_header(PngImage::Impl* m) {
  if (setjmp(png_jmpbuf(m->png))) return false;
  png_set_read_fn(m->png, m, on_read);
  png_set_chunk_malloc_max(m->png, kMaxChunkBytes);
  png_set_user_limits(m->png, kMaxSide, kMaxSide);  // libpng's default is 1,000,000; max_pixels bounds the area
#ifdef FASTPREP_FUZZING
  // The fuzzer cannot fix up CRCs: let mutated chunks through to the code behind them.
  png_set_crc_action(m->png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
#endif
  png_read_info(m->png, m->info);
  png_get_IHDR(m->png, m->info, &m->width, &m->height, &m->bit_depth, &m->color_type, &m->interlace, nullptr,
               nullptr);
  return true;
}

bool step_transforms(PngImage::Impl* m, size_t* rowbytes, int* channels) {
  if (setjmp(png_jmpbuf(m->png))) return false;
  png_structp p = m->png;
  const int ct = m->color_type;
  const bool gray = (ct & PNG_COLOR_MASK_COLOR) == 0;
  if (!m->gray16) {
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);  // tRNS becomes an alpha byte
    if (gray && m->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(p);
    if (m->bit_depth == 16) png_set_strip_16(p);  // the high byte
    if (gray) png_set_gray_to_rgb(p);
    const bool alpha = (ct & PNG_COLOR_MASK_ALPHA) ||
                       (ct == PNG_COLOR_TYPE_PALETTE && png_get_valid(p, m->info, PNG_INFO_tRNS));
    if (!alpha) png_set_filler(p, 0, PNG_FILLER_AFTER);  // RGB -> RGBX; RGBA keeps its 4 bytes
  }
  if (m->interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(p);
  png_read_update_info(p, m->info);
  *rowbytes = png_get_rowbytes(p, m->info);
  *channels = png_get_channels(p, m->info);
  return true;
}

bool step_rows(PngImage::Impl* m, uint8_t* const* rows, int n) {
  m->rows_done = 0;
  if (setjmp(png_jmpbuf(m->png))) return false;
  for (int i = 0; i < n; ++i) {
    png_read_row(m->png, rows[i], nullptr);
    m->rows_done = i + 1;
  }
  return true;
}

bool step_image(PngImage::Impl* m, uint8_t* const* rows) {
  if (setjmp(png_jmpbuf(m->png))) return false;
  png_read_image(m->png, const_cast<png_bytepp>(rows));
  return true;
}

// 16-bit big-endian gray -> RGBX, min(v, 255) as Pillow's I;16 -> RGB.
void gray16_to_rgbx(const uint8_t* src, int w, uint8_t* dst) {
  for (int x = 0; x < w; ++x) {
    const int v = (src[2 * x] << 8) | src[2 * x + 1];
    const uint8_t c = static_cast<uint8_t>(v > 255 ? 255 : v);
    dst[4 * x] = dst[4 * x + 1] = dst[4 * x + 2] = c;
    dst[4 * x + 3] = 0;
  }
}

// Note [PNG fast path]
// Most PNGs in a dataset are 8-bit and not interlaced. For those, libpng reads the header and
// the chunks before the image data (checks, limits, PLTE, eXIf) and stops at the first IDAT; from
// there the rows are ours: the IDAT chunks' data (each CRC-checked, as libpng does for a
// critical chunk) is inflated by zlib straight into one filtered row at a time, the filter is
// undone by png_rows' kernels and the pixels expanded to RGBX. libpng's own row path undoes the
// Sub, Average and Paeth filters a byte at a time (the Paeth of a photo costs about as much as
// its inflate), and Debian's build has no vector filters. zlib's Adler-32 of the inflated stream
// is not computed (inflateValidate): every IDAT byte is already covered by its chunk's CRC.
// The pixels are those of the libpng path (Note [PNG decoding]); errors name libpng's cases: a
// CRC error, zlib's message, a bad filter type, image data that ends before the last row. Other
// PNGs (1/2/4/16-bit, Adam7) take libpng's path.

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

[[noreturn]] void fast_fail(const std::string& why) { throw Error(ErrorKind::kDecode, "PNG: " + why); }

// Moves zlib's input to the IDAT chunk whose header is at m->next_chunk. False when the file ends
// there (truncated); an error when the next chunk is not an IDAT (the image data ended early).
bool next_idat(PngImage::Impl* m) {
  const size_t hdr = m->next_chunk;
  if (m->cut || hdr > m->size || m->size - hdr < 8) return false;
  const uint8_t* h = m->data + hdr;
  const uint32_t len = be32(h);
  if (std::memcmp(h + 4, "IDAT", 4) != 0) fast_fail("not enough image data");
  if (len > 0x7FFFFFFFu) fast_fail("IDAT: invalid chunk length");
  const size_t body = hdr + 8, avail = m->size - body;
  if (avail < size_t(len) + 4) {  // cut inside the chunk (its CRC included)
    if (!m->allow_truncated) fast_fail("file is truncated");
    m->cut = true;  // what is there is inflated, unchecked
    m->z.next_in = const_cast<Bytef*>(m->data + body);
    m->z.avail_in = static_cast<uInt>(avail > len ? len : avail);
    return true;
  }
#ifndef FASTPREP_FUZZING  // the fuzzer cannot fix up CRCs (as in step_header)
  const uint32_t crc = static_cast<uint32_t>(crc32(crc32(0L, h + 4, 4), m->data + body, len));
  if (crc != be32(m->data + body + len)) fast_fail("IDAT: CRC error");
#endif
  m->z.next_in = const_cast<Bytef*>(m->data + body);
  m->z.avail_in = len;
  m->next_chunk = body + len + 4;
  return true;
}

// Inflates the next filtered row (filter byte + rowbytes) into m->raw. False when the file ends
// first (truncated).
bool inflate_row(PngImage::Impl* m) {
  z_stream& z = m->z;
  if (m->z_ended) fast_fail("not enough image data");
  z.next_out = m->raw.data();
  z.avail_out = static_cast<uInt>(m->rowbytes + 1);
  while (z.avail_out > 0) {
    if (z.avail_in == 0 && !next_idat(m)) return false;
    const int r = inflate(&z, Z_SYNC_FLUSH);
    if (r == Z_STREAM_END) {
      m->z_ended = true;
      if (z.avail_out > 0) fast_fail("not enough image data");
    } else if (r != Z_OK && r != Z_BUF_ERROR) {  // Z_BUF_ERROR: the input ran out, the loop feeds more
      fast_fail(std::string("IDAT: ") + (z.msg ? z.msg : "zlib error"));
    }
  }
  return true;
}

// The next row into `dst` as RGBX. False when the file ends first (truncated).
bool fast_row(PngImage::Impl* m, int color_type, uint8_t* dst) {
  if (!inflate_row(m)) return false;
  uint8_t* out = m->recon[m->cur].data();
  const uint8_t* prev = m->recon[m->cur ^ 1].data();
  if (!png_unfilter(*m->k, m->raw[0], m->raw.data() + 1, prev, out, m->rowbytes, m->channels))
    fast_fail("bad adaptive filter value");
  png_expand_rgbx(*m->k, color_type, out, static_cast<int>(m->width), m->palette, dst);
  m->cur ^= 1;
  return true;
}

// Takes the fast path when the image allows it; libpng has read up to the first IDAT's data.
void start_fast(PngImage::Impl* m) {
  static const int kChannels[7] = {1, 0, 3, 1, 2, 0, 4};
  if (m->interlace != PNG_INTERLACE_NONE || m->bit_depth != 8 || m->color_type > 6 ||
      kChannels[m->color_type] == 0 || m->pos < 8 || std::memcmp(m->data + m->pos - 4, "IDAT", 4) != 0)
    return;
  if (m->color_type == PNG_COLOR_TYPE_PALETTE) {
    png_colorp pal = nullptr;
    int num = 0;
    if (!png_get_PLTE(m->png, m->info, &pal, &num) || !pal) return;
    for (int i = 0; i < num && i < 256; ++i) {
      const uint8_t px[4] = {pal[i].red, pal[i].green, pal[i].blue, 0};
      std::memcpy(&m->palette[i], px, 4);
    }
  }
  m->channels = kChannels[m->color_type];
  m->rowbytes = checked_mul(static_cast<size_t>(m->width), static_cast<size_t>(m->channels));
  if (inflateInit(&m->z) != Z_OK) fast_fail("cannot start zlib");
  m->z_live = true;
#if ZLIB_VERNUM >= 0x1290
  inflateValidate(&m->z, 0);
#endif
  m->raw.assign(m->rowbytes + 1 + kPngRowPad, 0);
  m->recon[0].assign(m->rowbytes + kPngRowPad, 0);
  m->recon[1].assign(m->rowbytes + kPngRowPad, 0);  // the row above the first: zeros
  m->next_chunk = m->pos - 8;
  m->fast = true;
}

}  // namespace

PngImage::PngImage(const uint8_t* data, size_t size, int64_t max_pixels, bool allow_truncated, const Kernels& kern,
                   bool fast)
    : m_(new Impl) {
  Impl& m = *m_;
  m.k = &kern;
  m.data = data;
  m.size = size;
  if (!is_png(data, size)) throw Error(ErrorKind::kDecode, "not a PNG");
  m.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &m, on_error, on_warning);
  if (!m.png) throw Error(ErrorKind::kDecode, "PNG: cannot create the decoder");
  m.info = png_create_info_struct(m.png);
  if (!m.info) throw Error(ErrorKind::kDecode, "PNG: cannot create the decoder");
  if (!step_header(&m)) m.fail();  // a header cut short is an error even with allow_truncated
  m.allow_truncated = allow_truncated;
  const int64_t px = static_cast<int64_t>(m.width) * m.height;
  if (max_pixels > 0 && px > max_pixels)
    throw Error(ErrorKind::kTooLarge, "PNG of " + std::to_string(m.width) + "x" + std::to_string(m.height) + " = " +
                                          std::to_string(px) + " pixels, over the limit of " +
                                          std::to_string(max_pixels) + " (max_pixels)");
  m.gray16 = m.color_type == PNG_COLOR_TYPE_GRAY && m.bit_depth == 16;
  png_uint_32 exif_len = 0;
  png_bytep exif = nullptr;
  if (png_get_eXIf_1(m.png, m.info, &exif_len, &exif) && exif && exif_len > 0 && exif_len < (1u << 20)) {
    std::vector<uint8_t> app1(6 + exif_len);  // the JPEG APP1 form exif_orientation reads
    std::memcpy(app1.data(), "Exif\0\0", 6);
    std::memcpy(app1.data() + 6, exif, exif_len);
    m.orientation = exif_orientation(app1.data(), app1.size());
  }
  if (fast) start_fast(&m);
  if (m.fast) return;
  size_t rowbytes = 0;
  int channels = 0;
  if (!step_transforms(&m, &rowbytes, &channels)) m.fail();
  const size_t want = static_cast<size_t>(m.width) * (m.gray16 ? 2 : 4);
  if (rowbytes != want || channels != (m.gray16 ? 1 : 4)) {
    std::snprintf(m.msg, sizeof(m.msg), "unexpected row layout (%zu bytes, %d channels)", rowbytes, channels);
    m.fail();
  }
}

PngImage::~PngImage() = default;

int PngImage::width() const { return static_cast<int>(m_->width); }
int PngImage::height() const { return static_cast<int>(m_->height); }
bool PngImage::interlaced() const { return m_->interlace != PNG_INTERLACE_NONE; }
int PngImage::orientation() const { return m_->orientation; }

bool PngImage::truncated() const { return m_->truncated; }

void PngImage::read_rows(uint8_t* const* rows, int n) {
  Impl& m = *m_;
  if (interlaced()) throw Error(ErrorKind::kInvalid, "PNG: an interlaced image is read whole");
  if (n < 0 || m.rows_read + n > height()) throw Error(ErrorKind::kInvalid, "PNG: reading past the last row");
  const size_t rb = m.width * size_t(4);
  int i = 0;
  if (m.fast) {
    for (; i < n && !m.truncated; ++i) {
      if (fast_row(&m, m.color_type, rows[i])) continue;
      if (!m.allow_truncated) fast_fail("file is truncated");
      m.truncated = true;  // row i and the rows after it are black
      break;
    }
  } else if (!m.gray16) {
    if (m.truncated) {
      i = 0;  // the data ran out in an earlier call
    } else if (step_rows(&m, rows, n)) {
      i = n;
    } else {
      if (!m.truncated) m.fail();
      i = m.rows_done;  // the data ran out in row i: it and the rows after it are black
    }
  } else {
    if (m.tmp.size() < m.width * size_t(2)) m.tmp.resize(m.width * size_t(2));
    for (; i < n && !m.truncated; ++i) {
      uint8_t* t = m.tmp.data();
      if (!step_rows(&m, &t, 1)) {
        if (!m.truncated) m.fail();
        break;
      }
      gray16_to_rgbx(t, width(), rows[i]);
    }
  }
  for (; i < n; ++i) std::memset(rows[i], 0, rb);  // as Pillow's zero-filled image under LOAD_TRUNCATED_IMAGES
  m.rows_read += n;
}

void PngImage::read_all(uint8_t* const* rows) {
  Impl& m = *m_;
  if (m.rows_read) throw Error(ErrorKind::kInvalid, "PNG: rows were already read");
  const int h = height();
  if (m.fast) return read_rows(rows, h);
  if (m.allow_truncated)  // what a cut-off file leaves undecoded stays black
    for (int y = 0; y < h; ++y) std::memset(rows[y], 0, m.width * size_t(4));
  if (!m.gray16) {
    if (!step_image(&m, rows) && !m.truncated) m.fail();
  } else {
    const size_t rb = m.width * size_t(2);
    m.tmp.assign(checked_mul(rb, static_cast<size_t>(h)), 0);
    std::vector<uint8_t*> t(static_cast<size_t>(h));
    for (int y = 0; y < h; ++y) t[y] = m.tmp.data() + rb * y;
    if (!step_image(&m, t.data()) && !m.truncated) m.fail();
    for (int y = 0; y < h; ++y) gray16_to_rgbx(t[y], width(), rows[y]);
  }
  m.rows_read = h;
}

#else  // built without libpng / zlib: PNG files go to the Pillow fallback

bool png_native() { return false; }
std::string png_library_version() { return std::string(); }
std::string zlib_library_version() { return std::string(); }

struct PngImage::Impl {};

PngImage::PngImage(const uint8_t*, size_t, int64_t, bool, const Kernels&, bool) {
  throw Error(ErrorKind::kUnsupported, "this build of fastprep has no native PNG decoder (built without libpng)");
}
PngImage::~PngImage() = default;
int PngImage::width() const { return 0; }
int PngImage::height() const { return 0; }
bool PngImage::interlaced() const { return false; }
int PngImage::orientation() const { return 1; }
bool PngImage::truncated() const { return false; }
void PngImage::read_rows(uint8_t* const*, int) {}
void PngImage::read_all(uint8_t* const*) {}

#endif  // FASTPREP_HAVE_PNG

}  // namespace fastprep
