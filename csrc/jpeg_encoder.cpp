#include "jpeg_encoder.h"

#include <csetjmp>
#include <cstdio>
#include <cstdlib>

#include <jpeglib.h>

#include "common.h"

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

// RAII owner of the compressor and libjpeg's output buffer (see Note [libjpeg errors]).
struct Compressor {
  jpeg_compress_struct cinfo;
  EncErr err;
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  bool created = false;
  ~Compressor() {
    if (created) jpeg_destroy_compress(&cinfo);
    std::free(buf);
  }
};

}  // namespace

std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int h, int w, int channels, int64_t row_stride, int quality,
                                 int subsampling, bool progressive) {
  if (h <= 0 || w <= 0 || h > 65500 || w > 65500) throw Error(ErrorKind::kInvalid, "JPEG dimensions must be 1..65500");
  if (channels != 1 && channels != 3) throw Error(ErrorKind::kInvalid, "JPEG encoding needs 1 or 3 channels");
  if (quality < 1 || quality > 100) throw Error(ErrorKind::kInvalid, "JPEG quality must be 1..100");
  Compressor c;
  c.cinfo.err = jpeg_std_error(&c.err.pub);
  c.err.pub.error_exit = &enc_error_exit;
  if (setjmp(c.err.jmp)) throw Error(ErrorKind::kInvalid, std::string("JPEG encode failed: ") + c.err.msg);
  jpeg_create_compress(&c.cinfo);
  c.created = true;
  jpeg_mem_dest(&c.cinfo, &c.buf, &c.size);
  c.cinfo.image_width = static_cast<JDIMENSION>(w);
  c.cinfo.image_height = static_cast<JDIMENSION>(h);
  c.cinfo.input_components = channels;
  c.cinfo.in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&c.cinfo);
  jpeg_set_quality(&c.cinfo, quality, TRUE);
  if (channels == 3) {
    int hs = subsampling == 444 ? 1 : 2, vs = subsampling == 420 ? 2 : 1;
    c.cinfo.comp_info[0].h_samp_factor = hs;
    c.cinfo.comp_info[0].v_samp_factor = vs;
  }
  if (progressive) jpeg_simple_progression(&c.cinfo);
  jpeg_start_compress(&c.cinfo, TRUE);
  while (c.cinfo.next_scanline < c.cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(pixels + static_cast<int64_t>(c.cinfo.next_scanline) * row_stride);
    jpeg_write_scanlines(&c.cinfo, &row, 1);
  }
  jpeg_finish_compress(&c.cinfo);
  return std::vector<uint8_t>(c.buf, c.buf + c.size);
}

}  // namespace fastprep
