#include "codecs/jpeg_transcode.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <jpeglib.h>

#include "codecs/jpeg_decoder.h"
#include "core/common.h"

namespace fastprep {

// Note [Lossless restart rewrite]
// jpeg_read_coefficients hands over the quantized DCT blocks of every component, whatever the
// file's scans (progressive ones included), and jpeg_write_coefficients writes those blocks
// again: no IDCT, no quantization, so every decoder that decodes the original decodes the
// rewrite to the same pixels. What changes is the coding: one sequential scan of all components
// (baseline when the tables allow), Huffman tables optimized for the image (jpegtran -optimize),
// and a restart interval that divides the MCU row, so that every row starts an interval and the
// decoder can cut out a rectangle (Note [Restart splicing]). Of the interval: each restart costs
// the 2-byte marker, the padding of the bit stream to a byte and a fresh DC prediction; shorter
// intervals let a crop skip more (benchmarks/bench_restart.py measures both). The fixed cost is
// a larger share of a smooth image's small intervals: on detailed photographs (0.41 bytes per
// pixel, ~105 bytes per 4:2:0 MCU) markers every 2 MCUs cost 2.3% of the bytes, on smooth ones
// (0.17 bytes per pixel) 6.3%, for a smaller gain. So the default target is an interval of
// about 200 bytes (kAutoIntervalBytes): 2 MCUs on the first, 4-5 on the second. The metadata
// segments are copied as jpegtran -copy all does; JFIF and Adobe segments are rewritten by
// libjpeg from the colour space it keeps. A corrupt-data warning is an error here: a file whose
// data libjpeg had to repair is never rewritten (the caller keeps the original). `verify`
// decodes both files with fastprep's decoder and compares every pixel.

int mcus_per_row_of(int width, int components, int max_h_samp) {
  const int mw = components == 1 ? 8 : 8 * max_h_samp;
  return (width + mw - 1) / mw;
}

int auto_restart_mcus(double entropy_bytes, int64_t mcus) {
  if (mcus <= 0 || entropy_bytes <= 0) return 1;
  const double n = kAutoIntervalBytes / (entropy_bytes / static_cast<double>(mcus));
  return static_cast<int>(std::min(16.0, std::max(1.0, n + 0.5)));
}

int choose_restart_interval(int cols, int target) {
  if (target <= 0 || cols <= 0) return 0;
  if (cols <= target) return cols;
  const int lo = (target + 1) / 2, hi = 2 * target;
  int best = 0;
  for (int d = lo; d <= std::min(hi, cols); ++d) {
    if (cols % d != 0) continue;
    if (best == 0 || std::abs(d - target) < std::abs(best - target) ||
        (std::abs(d - target) == std::abs(best - target) && d > best))
      best = d;
  }
  return best ? best : cols;
}

namespace {

struct TErr {
  jpeg_error_mgr pub;
  std::jmp_buf* jmp;
  char msg[JMSG_LENGTH_MAX];
  int code;
};

void t_error_exit(j_common_ptr c) {
  TErr* e = reinterpret_cast<TErr*>(c->err);
  (*c->err->format_message)(c, e->msg);
  e->code = c->err->msg_code;
  std::longjmp(*e->jmp, 1);
}

void t_message(j_common_ptr c, int level) {
  if (level >= 0) return;  // trace messages
  t_error_exit(c);         // every warning is an error here (Note [Lossless restart rewrite])
}

struct TProgress {
  jpeg_progress_mgr pub;
  int max_scans;
};

void t_progress(j_common_ptr c) {
  j_decompress_ptr d = reinterpret_cast<j_decompress_ptr>(c);
  TProgress* p = reinterpret_cast<TProgress*>(c->progress);
  if (c->is_decompressor && d->input_scan_number > p->max_scans) {
    TErr* e = reinterpret_cast<TErr*>(c->err);
    std::snprintf(e->msg, sizeof(e->msg), "too many progressive scans (limit %d)", p->max_scans);
    std::longjmp(*e->jmp, 1);
  }
}

// Both libjpeg objects and the output buffer, owned RAII; every libjpeg call runs in run(), the
// frame that holds the setjmp (Note [libjpeg errors] in jpeg_decoder.cpp): run() keeps its state
// here and reads nothing after the longjmp.
struct Transcoder {
  jpeg_decompress_struct src;
  jpeg_compress_struct dst;
  TErr serr, derr;
  TProgress progress;
  std::jmp_buf jmp;
  bool src_made = false, dst_made = false;
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  int interval = 0, cols = 0, target = 0;
  bool progressive = false;
  bool unsupported = false, too_large = false;

  ~Transcoder() {
    if (dst_made) jpeg_destroy_compress(&dst);
    if (src_made) jpeg_destroy_decompress(&src);
    std::free(buf);
  }

  FASTPREP_NOINLINE bool run(const uint8_t* data, size_t size_in, const TranscodeOptions& opt) {
    if (setjmp(jmp)) return false;
    jpeg_create_decompress(&src);
    src_made = true;
    src.progress = &progress.pub;
    jpeg_create_compress(&dst);
    dst_made = true;
    jpeg_mem_src(&src, data, static_cast<unsigned long>(size_in));
    if (opt.keep_metadata) {
      jpeg_save_markers(&src, JPEG_COM, 0xFFFF);
      for (int m = 0; m < 16; ++m) jpeg_save_markers(&src, JPEG_APP0 + m, 0xFFFF);
    }
    jpeg_read_header(&src, TRUE);
    // What follows the (first) SOS: the entropy-coded data, its trailing markers aside.
    const double entropy_bytes = static_cast<double>(src.src->bytes_in_buffer);
    if (opt.max_pixels > 0 && static_cast<int64_t>(src.image_width) * src.image_height > opt.max_pixels) {
      std::snprintf(serr.msg, sizeof(serr.msg), "image is %ux%u, over the limit of %lld pixels (max_pixels)",
                    src.image_width, src.image_height, static_cast<long long>(opt.max_pixels));
      too_large = true;
      return false;
    }
    progressive = src.progressive_mode != 0;
    if (src.arith_code) {  // kept as is: our output would be Huffman-coded, a larger file
      std::snprintf(serr.msg, sizeof(serr.msg), "arithmetic-coded JPEG");
      unsupported = true;
      return false;
    }
    jvirt_barray_ptr* coefs = jpeg_read_coefficients(&src);
    jpeg_copy_critical_parameters(&src, &dst);
    int max_h = 1;
    for (int c = 0; c < dst.num_components; ++c) max_h = std::max(max_h, dst.comp_info[c].h_samp_factor);
    int max_v = 1;
    for (int c = 0; c < dst.num_components; ++c) max_v = std::max(max_v, dst.comp_info[c].v_samp_factor);
    cols = mcus_per_row_of(static_cast<int>(dst.image_width), dst.num_components, max_h);
    const int mh = dst.num_components == 1 ? 8 : 8 * max_v;
    const int64_t rows = (static_cast<int64_t>(dst.image_height) + mh - 1) / mh;
    target = opt.restart_mcus == kAutoRestart ? auto_restart_mcus(entropy_bytes, rows * cols) : opt.restart_mcus;
    interval = choose_restart_interval(cols, target);
    dst.restart_interval = static_cast<unsigned>(interval);
    dst.optimize_coding = TRUE;
    jpeg_mem_dest(&dst, &buf, &size);
    jpeg_write_coefficients(&dst, coefs);
    for (jpeg_saved_marker_ptr m = src.marker_list; m; m = m->next) {
      // libjpeg wrote its own JFIF or Adobe segment from the colour space: not a second one.
      if (dst.write_JFIF_header && m->marker == JPEG_APP0 && m->data_length >= 5 &&
          std::memcmp(m->data, "JFIF\0", 5) == 0)
        continue;
      if (dst.write_Adobe_marker && m->marker == JPEG_APP0 + 14 && m->data_length >= 5 &&
          std::memcmp(m->data, "Adobe", 5) == 0)
        continue;
      jpeg_write_marker(&dst, m->marker, m->data, m->data_length);
    }
    jpeg_finish_compress(&dst);
    jpeg_finish_decompress(&src);
    return true;
  }
};

// Decodes both and compares every pixel (RGBX rows; CMYK converted as the pipeline does), and
// the EXIF orientation when the metadata was kept.
void verify_same(const uint8_t* a, size_t an, const uint8_t* b, size_t bn, bool same_orientation) {
  JpegDecoder da, db;
  JpegDecoder::Session sa = da.open(a, an, JpegLimits{});
  JpegDecoder::Session sb = db.open(b, bn, JpegLimits{});
  const JpegHeader& ha = sa.header();
  const JpegHeader& hb = sb.header();
  if (ha.width != hb.width || ha.height != hb.height || ha.components != hb.components || ha.cmyk != hb.cmyk ||
      (same_orientation && ha.orientation != hb.orientation))
    throw Error(ErrorKind::kDecode, "lossless rewrite check: the header differs");
  int x0, w, h, fw;
  sa.start(1, 0, ha.width, &x0, &w, &h, &fw);
  sb.start(1, 0, hb.width, &x0, &w, &h, &fw);
  std::vector<uint8_t> ra(static_cast<size_t>(w) * 4), rb(static_cast<size_t>(w) * 4);
  for (int y = 0; y < h; ++y) {
    sa.read_row(ra.data());
    sb.read_row(rb.data());
    if (std::memcmp(ra.data(), rb.data(), ra.size()) != 0) {
      char msg[96];
      std::snprintf(msg, sizeof(msg), "lossless rewrite check: row %d differs", y);
      throw Error(ErrorKind::kDecode, msg);
    }
  }
}

}  // namespace

TranscodeResult transcode_jpeg(const uint8_t* data, size_t size, const TranscodeOptions& opt) {
  if (opt.restart_mcus < kAutoRestart || opt.restart_mcus > 65535)
    throw Error(ErrorKind::kInvalid, "restart_mcus must be -1 (automatic), 0 (none) or a number of MCUs up to 65535");
  if (!is_jpeg(data, size)) throw Error(ErrorKind::kDecode, "not a JPEG (no SOI marker)");
  Transcoder t;
  t.src.err = jpeg_std_error(&t.serr.pub);
  t.dst.err = jpeg_std_error(&t.derr.pub);
  for (TErr* e : {&t.serr, &t.derr}) {
    e->pub.error_exit = &t_error_exit;
    e->pub.emit_message = &t_message;
    e->jmp = &t.jmp;
    e->msg[0] = 0;
    e->code = 0;
  }
  t.progress.pub.progress_monitor = &t_progress;
  t.progress.max_scans = opt.max_scans;
  if (!t.run(data, size, opt)) {
    const char* msg = t.derr.msg[0] ? t.derr.msg : t.serr.msg;
    throw Error(t.too_large ? ErrorKind::kTooLarge : t.unsupported ? ErrorKind::kUnsupported : ErrorKind::kDecode, std::string("JPEG rewrite: ") + msg);
  }
  TranscodeResult r;
  r.data.assign(t.buf, t.buf + t.size);
  r.interval = t.interval;
  r.mcus_per_row = t.cols;
  r.target = t.target;
  r.progressive = t.progressive;
  if (opt.verify) verify_same(data, size, r.data.data(), r.data.size(), opt.keep_metadata);
  return r;
}

}  // namespace fastprep
