#include "codecs/jpeg_encoder.h"

#include <csetjmp>
#include <cstdio>
#include <cstdlib>

#include <jpeglib.h>

#include "codecs/jpeg_transcode.h"
#include "core/common.h"

namespace fastprep {
namespace {

struct EncErr {
  jpeg_error_mgr pub;
  std::jmp_buf jmp;
  char msg[JMSG_LENGTH_MAX];
};

void enc_error_exit(j_common_ptr c) {
  EncErr* e = reinterpret_cast<EncErr*>(c->err);
  (*c->err->format_message)(c, e->msg);
  std::longjmp(e->jmp, 1);
}

struct EncodeArgs {
  const uint8_t* pixels;
  int h, w, channels;
  int64_t row_stride;
  int quality, subsampling;
  bool progressive;
  int restart_mcus;
};

// RAII owner of the compressor and libjpeg's output buffer. It lives in encode_jpeg's frame, and
// every libjpeg call runs in compress(), another frame (Note [libjpeg errors] in
// jpeg_decoder.cpp): compress() holds the setjmp, keeps all its state in the Compressor (the
// scanline pointer included) and reads nothing after the longjmp, so no value the destructor or
// the error path reads can be clobbered, and the longjmp skips no destructor.
struct Compressor {
  jpeg_compress_struct cinfo;
  EncErr err;
  JSAMPROW row = nullptr;
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  bool created = false;
  ~Compressor() {
    if (created) jpeg_destroy_compress(&cinfo);  // never raises a libjpeg error
    std::free(buf);
  }

  // Every libjpeg call of one encode. Returns false when libjpeg raised an error (err.msg).
  FASTPREP_NOINLINE bool compress(const EncodeArgs& a) {
    if (setjmp(err.jmp)) return false;
    jpeg_create_compress(&cinfo);
    created = true;
    jpeg_mem_dest(&cinfo, &buf, &size);
    cinfo.image_width = static_cast<JDIMENSION>(a.w);
    cinfo.image_height = static_cast<JDIMENSION>(a.h);
    cinfo.input_components = a.channels;
    cinfo.in_color_space = a.channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, a.quality, TRUE);
    if (a.channels == 3) {
      cinfo.comp_info[0].h_samp_factor = a.subsampling == 444 || a.subsampling == 440 ? 1 : a.subsampling == 411 ? 4 : 2;
      cinfo.comp_info[0].v_samp_factor = a.subsampling == 420 || a.subsampling == 440 ? 2 : 1;
    }
    if (a.progressive) jpeg_simple_progression(&cinfo);
    if (a.restart_mcus > 0 && !a.progressive) {
      const int max_h = a.channels == 3 ? cinfo.comp_info[0].h_samp_factor : 1;  // chroma is 1x1
      cinfo.restart_interval =
          static_cast<unsigned>(choose_restart_interval(mcus_per_row_of(a.w, a.channels, max_h), a.restart_mcus));
    }
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
      row = const_cast<JSAMPROW>(a.pixels + static_cast<int64_t>(cinfo.next_scanline) * a.row_stride);
      jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    return true;
  }
};

}  // namespace

std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int h, int w, int channels, int64_t row_stride, int quality,
                                 int subsampling, bool progressive, int restart_mcus) {
  if (h <= 0 || w <= 0 || h > 65500 || w > 65500) throw Error(ErrorKind::kInvalid, "JPEG dimensions must be 1..65500");
  if (channels != 1 && channels != 3) throw Error(ErrorKind::kInvalid, "JPEG encoding needs 1 or 3 channels");
  if (quality < 1 || quality > 100) throw Error(ErrorKind::kInvalid, "JPEG quality must be 1..100");
  if (subsampling != 444 && subsampling != 422 && subsampling != 420 && subsampling != 440 && subsampling != 411)
    throw Error(ErrorKind::kInvalid, "JPEG subsampling must be 444, 422, 420, 440 or 411");
  Compressor c;
  c.cinfo.err = jpeg_std_error(&c.err.pub);
  c.err.pub.error_exit = &enc_error_exit;
  if (!c.compress(EncodeArgs{pixels, h, w, channels, row_stride, quality, subsampling, progressive, restart_mcus}))
    throw Error(ErrorKind::kInvalid, std::string("JPEG encode failed: ") + c.err.msg);
  return std::vector<uint8_t>(c.buf, c.buf + c.size);
}

}  // namespace fastprep
