#include "jpeg_decoder.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#include <jerror.h>

#include "exif.h"

namespace fastprep {

// Note [libjpeg errors]
// libjpeg reports fatal errors through error_exit, which must not return. Ours longjmps back to
// the setjmp in whichever JpegDecoder method made the failing call; that method then aborts the
// decompressor (keeping the handle reusable) and throws. No C++ object with a destructor lives
// between a setjmp and the libjpeg calls it guards, so the longjmp skips no destructor.
struct JpegDecoder::Impl {
  struct ErrorMgr {
    jpeg_error_mgr pub;
    std::jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
    ErrorKind kind;
    bool strict;
    bool allow_truncated;
    bool truncated;  // the source ran out of data (allow_truncated mode)
    int warnings;
  };
  struct Progress {
    jpeg_progress_mgr pub;
    int max_scans;
  };

  jpeg_decompress_struct cinfo;
  ErrorMgr err;
  Progress progress;
  bool active = false;   // between read_header and finish
  bool cmyk = false;
  bool adobe_inverted = false;
  int out_w = 0;
  std::vector<uint8_t> cmyk_row;

  static void on_error(j_common_ptr c) {
    ErrorMgr* e = reinterpret_cast<ErrorMgr*>(c->err);
    (*c->err->format_message)(c, e->msg);
    int code = c->err->msg_code;
    e->kind = (code == JERR_BAD_PRECISION || code == JERR_SOF_UNSUPPORTED || code == JERR_NOT_COMPILED ||
               code == JERR_CONVERSION_NOTIMPL)
                  ? ErrorKind::kUnsupported
              : code == JERR_IMAGE_TOO_BIG ? ErrorKind::kTooLarge  // a side over libjpeg's 65500
                                           : ErrorKind::kDecode;
    std::longjmp(e->jmp, 1);
  }

  static void on_message(j_common_ptr c, int level) {
    if (level >= 0) return;  // trace messages
    ErrorMgr* e = reinterpret_cast<ErrorMgr*>(c->err);
    int code = c->err->msg_code;
    // Warnings that mean the pixels are wrong: truncation and corrupt entropy data.
    if (!(code == JWRN_JPEG_EOF || code == JWRN_EXTRANEOUS_DATA || code == JWRN_HIT_MARKER ||
          code == JWRN_MUST_RESYNC || code == JWRN_NOT_SEQUENTIAL || code == JWRN_BOGUS_PROGRESSION ||
          code == JWRN_HUFF_BAD_CODE || code == JWRN_ARITH_BAD_CODE))
      return;
    // jpeg_mem_src warns JWRN_JPEG_EOF when the data runs out and then feeds EOI markers: what
    // follows (premature end of data segment, ...) is a consequence of the truncation.
    if (code == JWRN_JPEG_EOF && e->allow_truncated) e->truncated = true;
    if (!e->strict || e->truncated) {
      e->warnings++;
      return;
    }
    (*c->err->format_message)(c, e->msg);
    e->kind = ErrorKind::kDecode;
    std::longjmp(e->jmp, 1);
  }

  static void on_progress(j_common_ptr c) {
    j_decompress_ptr d = reinterpret_cast<j_decompress_ptr>(c);
    Progress* p = reinterpret_cast<Progress*>(c->progress);
    if (d->is_decompressor && d->input_scan_number > p->max_scans) {
      ErrorMgr* e = reinterpret_cast<ErrorMgr*>(c->err);
      std::snprintf(e->msg, sizeof(e->msg), "too many progressive scans (limit %d)", p->max_scans);
      e->kind = ErrorKind::kDecode;
      std::longjmp(e->jmp, 1);
    }
  }

  [[noreturn]] void fail() {
    jpeg_abort_decompress(&cinfo);
    active = false;
    throw Error(err.kind, err.msg);
  }
};

JpegDecoder::JpegDecoder() : impl_(new Impl) {
  Impl& m = *impl_;
  m.cinfo.err = jpeg_std_error(&m.err.pub);
  m.err.pub.error_exit = &Impl::on_error;
  m.err.pub.emit_message = &Impl::on_message;
  m.err.strict = true;
  m.err.allow_truncated = false;
  m.err.truncated = false;
  m.err.warnings = 0;
  m.progress.pub.progress_monitor = &Impl::on_progress;
  m.progress.max_scans = 1000;
  // jpeg_create_decompress only fails on out-of-memory or a library version mismatch.
  if (setjmp(m.err.jmp)) throw Error(ErrorKind::kDecode, m.err.msg);
  jpeg_create_decompress(&m.cinfo);
  m.cinfo.progress = &m.progress.pub;
}

JpegDecoder::~JpegDecoder() { jpeg_destroy_decompress(&impl_->cinfo); }

int JpegDecoder::warnings() const { return impl_->err.warnings; }

JpegHeader JpegDecoder::read_header(const uint8_t* data, size_t size, const JpegLimits& limits) {
  Impl& m = *impl_;
  if (m.active) {
    jpeg_abort_decompress(&m.cinfo);
    m.active = false;
  }
  m.err.strict = limits.strict;
  m.err.allow_truncated = limits.allow_truncated;
  m.err.truncated = false;
  m.err.warnings = 0;
  m.progress.max_scans = limits.max_scans;
  JpegHeader h;
  if (setjmp(m.err.jmp)) m.fail();
  m.active = true;
  jpeg_mem_src(&m.cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&m.cinfo, JPEG_APP0 + 1, 0xFFFF);
  if (jpeg_read_header(&m.cinfo, TRUE) != JPEG_HEADER_OK) {
    std::snprintf(m.err.msg, sizeof(m.err.msg), "no image in JPEG datastream (tables only)");
    m.err.kind = ErrorKind::kDecode;
    m.fail();
  }
  h.width = static_cast<int>(m.cinfo.image_width);
  h.height = static_cast<int>(m.cinfo.image_height);
  h.components = m.cinfo.num_components;
  h.progressive = m.cinfo.progressive_mode != 0;
  h.cmyk = m.cinfo.jpeg_color_space == JCS_CMYK || m.cinfo.jpeg_color_space == JCS_YCCK;
  if (limits.max_pixels > 0 && static_cast<int64_t>(h.width) * h.height > limits.max_pixels) {
    std::snprintf(m.err.msg, sizeof(m.err.msg), "image is %dx%d = %lld pixels, over the limit of %lld (max_pixels)",
                  h.width, h.height, static_cast<long long>(h.width) * h.height,
                  static_cast<long long>(limits.max_pixels));
    m.err.kind = ErrorKind::kTooLarge;
    m.fail();
  }
  for (jpeg_saved_marker_ptr mk = m.cinfo.marker_list; mk; mk = mk->next) {
    if (mk->marker == JPEG_APP0 + 1 && mk->data_length >= 6 && std::memcmp(mk->data, "Exif\0\0", 6) == 0) {
      h.orientation = exif_orientation(mk->data, mk->data_length);  // the first Exif segment wins
      break;
    }
  }
  m.cmyk = h.cmyk;
  // Pillow reads every 4-channel JPEG as Adobe-style inverted CMYK; follow it (see README).
  m.adobe_inverted = h.cmyk;
  return h;
}

void JpegDecoder::start(int denom, int x0, int w, int* out_x0, int* out_w, int* out_h, int* full_w) {
  Impl& m = *impl_;
  if (setjmp(m.err.jmp)) m.fail();
  m.cinfo.scale_num = 1;
  m.cinfo.scale_denom = static_cast<unsigned>(denom);
  m.cinfo.dct_method = JDCT_ISLOW;
  m.cinfo.do_fancy_upsampling = TRUE;
  m.cinfo.out_color_space = m.cmyk ? JCS_CMYK : JCS_EXT_RGBX;
  jpeg_start_decompress(&m.cinfo);
  *full_w = static_cast<int>(m.cinfo.output_width);
  *out_h = static_cast<int>(m.cinfo.output_height);
  JDIMENSION xoff = static_cast<JDIMENSION>(x0), cw = static_cast<JDIMENSION>(w);
  if (x0 > 0 || w < static_cast<int>(m.cinfo.output_width)) jpeg_crop_scanline(&m.cinfo, &xoff, &cw);
  *out_x0 = static_cast<int>(xoff);
  *out_w = m.out_w = static_cast<int>(m.cinfo.output_width);
}

void JpegDecoder::skip_rows(int n) {
  Impl& m = *impl_;
  if (n <= 0) return;
  if (setjmp(m.err.jmp)) m.fail();
  jpeg_skip_scanlines(&m.cinfo, static_cast<JDIMENSION>(n));
}

void JpegDecoder::read_row(uint8_t* rgbx) {
  Impl& m = *impl_;
  if (m.cmyk && m.cmyk_row.size() < static_cast<size_t>(m.out_w) * 4) m.cmyk_row.resize(static_cast<size_t>(m.out_w) * 4);
  JSAMPROW row = m.cmyk ? m.cmyk_row.data() : rgbx;
  if (setjmp(m.err.jmp)) m.fail();
  if (jpeg_read_scanlines(&m.cinfo, &row, 1) != 1) {
    std::snprintf(m.err.msg, sizeof(m.err.msg), "decoder returned no scanline");
    m.err.kind = ErrorKind::kDecode;
    m.fail();
  }
  if (m.cmyk) {
    // CMYK -> RGB as Pillow: r = (255 - c) * (255 - k) / 255 with its rounding; Adobe files
    // store inverted values.
    const uint8_t* s = m.cmyk_row.data();
    const int inv = m.adobe_inverted ? 255 : 0;
    for (int i = 0; i < m.out_w; ++i) {
      int cy = s[4 * i] ^ inv, mg = s[4 * i + 1] ^ inv, ye = s[4 * i + 2] ^ inv, k = s[4 * i + 3] ^ inv;
      int nk = 255 - k;
      auto muldiv255 = [](int a, int b) { int t = a * b + 128; return ((t >> 8) + t) >> 8; };
      rgbx[4 * i] = static_cast<uint8_t>(nk - muldiv255(cy, nk));
      rgbx[4 * i + 1] = static_cast<uint8_t>(nk - muldiv255(mg, nk));
      rgbx[4 * i + 2] = static_cast<uint8_t>(nk - muldiv255(ye, nk));
      rgbx[4 * i + 3] = 0;
    }
  }
}

void JpegDecoder::finish() {
  Impl& m = *impl_;
  if (m.active) jpeg_abort_decompress(&m.cinfo);
  m.active = false;
}

}  // namespace fastprep
