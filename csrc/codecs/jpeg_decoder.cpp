#include "codecs/jpeg_decoder.h"

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <unistd.h>

// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#include <jerror.h>

#include "codecs/exif.h"

namespace fastprep {

// Note [libjpeg errors]
// libjpeg reports a fatal error through error_exit, which must not return; our emit_message and
// progress_monitor hooks reject corrupt data and runaway progressive files the same way. Each of
// them longjmps to err.jmp. Every libjpeg call that can raise one runs inside Impl::guarded(),
// whose frame holds the setjmp: there the second return of setjmp reads nothing and returns
// false, and the caller (another frame, one that never called setjmp) aborts the decompressor,
// which keeps the handle reusable, and throws fastprep::Error. The rules this keeps:
//  - C 7.13.2.1: after the longjmp, a non-volatile local of the function that called setjmp and
//    that changed since is indeterminate. guarded() reads no local after the longjmp, and changes
//    none before it (`this` and `f` are only read); the locals the guarded lambdas write, through
//    references, belong to callers that did not call setjmp, so their values stay determinate.
//    GCC's -Wclobbered is on (setup.py has no -Wno-clobbered) and the build must stay free of it.
//  - C++ [csetjmp.syn]: the longjmp must skip no non-trivial destructor. It unwinds libjpeg's
//    frames, our C callbacks' and the guarded lambda's (which may be inlined into guarded()), so a
//    lambda passed to guarded() holds only trivially destructible locals and calls only libjpeg
//    and plain arithmetic: nothing there owns memory or can throw a C++ exception.
//  - A libjpeg call outside guarded() must be one that cannot raise an error, since err.jmp is
//    stale there: only jpeg_abort_decompress (Session's destructor, fail) and
//    jpeg_destroy_decompress (~JpegDecoder), which free pools and never call error_exit.
// The session (jpeg_decoder.h) then makes the abort happen on every way out of an image.
// jpeg_encoder.cpp follows the same rules for the compressor.
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

  // The source manager (JpegInput): the first `first_size` bytes are in memory; for a file
  // (fd >= 0) the rest is pread into `chunk` as libjpeg asks for it. Its callbacks run inside libjpeg calls,
  // that is inside guarded(), and report a read failure by longjmp as on_error does.
  struct FileSource {
    jpeg_source_mgr pub;
    ErrorMgr* err;
    const uint8_t* first;
    size_t first_size;
    bool first_given;
    int fd;
    int64_t pos, end;  // next file offset to read, end of the region
    uint8_t* chunk;
    size_t chunk_size;
  };

  jpeg_decompress_struct cinfo;
  ErrorMgr err;
  Progress progress;
  FileSource file;
  bool open = false;     // a Session of this decoder is alive
  bool active = false;   // libjpeg holds an image: from the source set in open() to the abort
  bool cmyk = false;
  bool adobe_inverted = false;
  int out_w = 0;
  std::vector<uint8_t> cmyk_row;

  // Runs f (libjpeg calls only, see Note [libjpeg errors]) under a setjmp. Returns false when
  // libjpeg raised an error: err.kind and err.msg then say which. Never inlined, so that its
  // frame, the one setjmp returns to twice, holds nothing of the caller's.
  template <class F>
  FASTPREP_NOINLINE bool guarded(F&& f) {
    if (setjmp(err.jmp)) return false;
    f();
    return true;
  }

  // Abandons the image (if libjpeg holds one). Never raises a libjpeg error.
  void abort_image() noexcept {
    if (active) jpeg_abort_decompress(&cinfo);
    active = false;
  }

  [[noreturn]] void fail() {
    abort_image();
    throw Error(err.kind, err.msg);
  }

  [[noreturn]] void fail(ErrorKind kind) {  // err.msg already written
    err.kind = kind;
    fail();
  }

  void require_active() const {
    if (!active) throw std::logic_error("JpegDecoder::Session used after its image failed");
  }

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
    // The source warns JWRN_JPEG_EOF when the data runs out and then feeds EOI markers: what
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

  static void file_init(j_decompress_ptr) {}
  static void file_term(j_decompress_ptr) {}

  [[noreturn]] static void file_fail(FileSource* f, const char* what) {
    std::snprintf(f->err->msg, sizeof(f->err->msg), "%s", what);
    f->err->kind = ErrorKind::kIo;
    std::longjmp(f->err->jmp, 1);
  }

  // libjpeg's fill_input_buffer: the file's next chunk; at the end of the region, a warning and
  // an EOI marker, as jpeg_mem_src does for data that ends early.
  static boolean file_fill(j_decompress_ptr c) {
    FileSource* f = reinterpret_cast<FileSource*>(c->src);
    if (!f->first_given) {
      f->first_given = true;
      if (f->first_size > 0) {
        f->pub.next_input_byte = f->first;
        f->pub.bytes_in_buffer = f->first_size;
        return TRUE;
      }
    }
    if (f->pos >= f->end) {
      static const JOCTET kEoi[2] = {0xFF, JPEG_EOI};
      WARNMS(c, JWRN_JPEG_EOF);
      f->pub.next_input_byte = kEoi;
      f->pub.bytes_in_buffer = 2;
      return TRUE;
    }
    const size_t want = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(f->chunk_size), f->end - f->pos));
    ssize_t r;
    do {
      r = ::pread(f->fd, f->chunk, want, static_cast<off_t>(f->pos));
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      char buf[128];
      std::snprintf(buf, sizeof(buf), "read failed: %s", std::strerror(errno));
      file_fail(f, buf);
    }
    if (r == 0) file_fail(f, "file shrank while being read");
    f->pos += r;
    f->pub.next_input_byte = f->chunk;
    f->pub.bytes_in_buffer = static_cast<size_t>(r);
    return TRUE;
  }

  static void file_skip(j_decompress_ptr c, long n) {
    FileSource* f = reinterpret_cast<FileSource*>(c->src);
    if (n <= 0) return;
    if (static_cast<size_t>(n) <= f->pub.bytes_in_buffer) {
      f->pub.next_input_byte += n;
      f->pub.bytes_in_buffer -= static_cast<size_t>(n);
      return;
    }
    // Past what is in memory: move the file position without reading the skipped bytes.
    const int64_t rest = static_cast<int64_t>(n) - static_cast<int64_t>(f->pub.bytes_in_buffer);
    f->pub.bytes_in_buffer = 0;
    f->first_given = true;
    f->pos = std::min(f->end, f->pos + rest);
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

};

#define FASTPREP_STR2(x) #x
#define FASTPREP_STR(x) FASTPREP_STR2(x)
std::string jpeg_library_version() {
#ifdef LIBJPEG_TURBO_VERSION
  return std::string("libjpeg-turbo ") + FASTPREP_STR(LIBJPEG_TURBO_VERSION);
#else
  return std::string("libjpeg ") + std::to_string(JPEG_LIB_VERSION);
#endif
}

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
  if (!m.guarded([&m] { jpeg_create_decompress(&m.cinfo); })) throw Error(ErrorKind::kDecode, m.err.msg);
  m.cinfo.progress = &m.progress.pub;
}

JpegDecoder::~JpegDecoder() { jpeg_destroy_decompress(&impl_->cinfo); }

int JpegDecoder::warnings() const { return impl_->err.warnings; }

JpegDecoder::Session JpegDecoder::open(const uint8_t* data, size_t size, const JpegLimits& limits) {
  JpegInput in;
  in.data = data;
  in.size = size;
  return open(in, limits);
}

JpegDecoder::Session JpegDecoder::open(const JpegInput& in, const JpegLimits& limits) {
  Impl& m = *impl_;
  if (m.open) throw std::logic_error("JpegDecoder::open while a session of this decoder is alive");
  m.abort_image();  // nothing to abandon once every session is gone; kept as a safety net
  m.err.strict = limits.strict;
  m.err.allow_truncated = limits.allow_truncated;
  m.err.truncated = false;
  m.err.warnings = 0;
  m.progress.max_scans = limits.max_scans;
  m.active = true;
  int rc = JPEG_SUSPENDED;
  if (!m.guarded([&] {
        // One source manager for memory and files (jpeg_mem_src refuses to follow another
        // kind of source on the same handle, and a new one per switch would grow libjpeg's
        // permanent pool).
        Impl::FileSource& f = m.file;
        f.pub.init_source = &Impl::file_init;
        f.pub.fill_input_buffer = &Impl::file_fill;
        f.pub.skip_input_data = &Impl::file_skip;
        f.pub.resync_to_restart = &jpeg_resync_to_restart;
        f.pub.term_source = &Impl::file_term;
        f.pub.next_input_byte = nullptr;
        f.pub.bytes_in_buffer = 0;
        f.err = &m.err;
        f.first = in.data;
        f.first_size = in.size;
        f.first_given = false;
        f.fd = in.fd;
        f.pos = in.fd < 0 ? 0 : in.base + static_cast<int64_t>(in.size);
        f.end = in.fd < 0 ? 0 : in.base + in.length;
        f.chunk = in.chunk;
        f.chunk_size = in.chunk_size;
        m.cinfo.src = &f.pub;
        jpeg_save_markers(&m.cinfo, JPEG_APP0 + 1, 0xFFFF);
        rc = jpeg_read_header(&m.cinfo, TRUE);
      }))
    m.fail();
  if (rc != JPEG_HEADER_OK) {
    std::snprintf(m.err.msg, sizeof(m.err.msg), "no image in JPEG datastream (tables only)");
    m.fail(ErrorKind::kDecode);
  }
  JpegHeader h;
  h.width = static_cast<int>(m.cinfo.image_width);
  h.height = static_cast<int>(m.cinfo.image_height);
  h.components = m.cinfo.num_components;
  h.progressive = m.cinfo.progressive_mode != 0;
  h.cmyk = m.cinfo.jpeg_color_space == JCS_CMYK || m.cinfo.jpeg_color_space == JCS_YCCK;
  if (limits.max_pixels > 0 && static_cast<int64_t>(h.width) * h.height > limits.max_pixels) {
    std::snprintf(m.err.msg, sizeof(m.err.msg), "image is %dx%d = %lld pixels, over the limit of %lld (max_pixels)",
                  h.width, h.height, static_cast<long long>(h.width) * h.height,
                  static_cast<long long>(limits.max_pixels));
    m.fail(ErrorKind::kTooLarge);
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
  m.open = true;  // from here nothing throws before the session owns the image
  return Session(&m, h, &sessions_);
}

JpegDecoder::Session::~Session() {
  if (!m_) return;  // moved from
  m_->abort_image();
  m_->open = false;
}

JpegDecoder::Impl& JpegDecoder::Session::impl() {
  if (!m_) throw std::logic_error("use of a moved-from JpegDecoder::Session");
  return *m_;
}

int JpegDecoder::Session::warnings() const { return m_ ? m_->err.warnings : 0; }

void JpegDecoder::Session::start(int denom, int x0, int w, int* out_x0, int* out_w, int* out_h, int* full_w) {
  Impl& m = impl();
  m.require_active();
  JDIMENSION width = 0, height = 0;
  JDIMENSION xoff = static_cast<JDIMENSION>(x0), cw = static_cast<JDIMENSION>(w);
  if (sessions_) ++*sessions_;
  if (!m.guarded([&] {
        m.cinfo.scale_num = 1;
        m.cinfo.scale_denom = static_cast<unsigned>(denom);
        m.cinfo.dct_method = JDCT_ISLOW;
        m.cinfo.do_fancy_upsampling = TRUE;
        m.cinfo.out_color_space = m.cmyk ? JCS_CMYK : JCS_EXT_RGBX;
        jpeg_start_decompress(&m.cinfo);
        width = m.cinfo.output_width;
        height = m.cinfo.output_height;
        if (x0 > 0 || w < static_cast<int>(width)) jpeg_crop_scanline(&m.cinfo, &xoff, &cw);
      }))
    m.fail();
  *full_w = static_cast<int>(width);
  *out_h = static_cast<int>(height);
  *out_x0 = static_cast<int>(xoff);
  *out_w = m.out_w = static_cast<int>(m.cinfo.output_width);
}

void JpegDecoder::Session::skip_rows(int n) {
  Impl& m = impl();
  m.require_active();
  if (n <= 0) return;
  if (!m.guarded([&] { jpeg_skip_scanlines(&m.cinfo, static_cast<JDIMENSION>(n)); })) m.fail();
}

void JpegDecoder::Session::read_rows(uint8_t* const* rows, int n) {
  Impl& m = impl();
  if (m.cmyk) {
    for (int i = 0; i < n; ++i) read_row(rows[i]);
    return;
  }
  m.require_active();
  int done = 0;
  while (done < n) {
    JDIMENSION got = 0;
    JSAMPARRAY dst = const_cast<JSAMPARRAY>(rows + done);
    if (!m.guarded([&] { got = jpeg_read_scanlines(&m.cinfo, dst, static_cast<JDIMENSION>(n - done)); })) m.fail();
    if (got == 0) {
      std::snprintf(m.err.msg, sizeof(m.err.msg), "decoder returned no scanline");
      m.fail(ErrorKind::kDecode);
    }
    done += static_cast<int>(got);
  }
}

void JpegDecoder::Session::read_row(uint8_t* rgbx) {
  Impl& m = impl();
  m.require_active();
  if (m.cmyk && m.cmyk_row.size() < static_cast<size_t>(m.out_w) * 4) m.cmyk_row.resize(static_cast<size_t>(m.out_w) * 4);
  JSAMPROW row = m.cmyk ? m.cmyk_row.data() : rgbx;
  JDIMENSION got = 0;
  if (!m.guarded([&] { got = jpeg_read_scanlines(&m.cinfo, &row, 1); })) m.fail();
  if (got != 1) {
    std::snprintf(m.err.msg, sizeof(m.err.msg), "decoder returned no scanline");
    m.fail(ErrorKind::kDecode);
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

}  // namespace fastprep
