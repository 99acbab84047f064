#include "pipeline/pipeline.h"

#include <algorithm>
#include <cerrno>
#include <memory>
#include <new>
#include <exception>
#include <string>
#include <utility>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/color.h"
#include "kernels/pixel_ops.h"
#include "codecs/exif.h"
#include "codecs/jpeg_encoder.h"
#include "codecs/png_decoder.h"
#include "codecs/webp_decoder.h"

namespace fastprep {
namespace {

const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "a special file";
}

// A regular file, opened for reading (Note [Bounded reads] in pipeline.h). Opened non-blocking so
// that a FIFO cannot block the open; anything but a regular file (directory, device such as
// /dev/zero, FIFO, socket) is refused from fstat before a byte is read. offset >= 0 names a
// region of `length` bytes at `offset` (a member of a tar shard, Note [Tar members] in
// fastprep/io/_tar.py): positional reads, never a memory map, so a shard truncated or replaced
// while a Loader runs fails that sample with an error instead of a SIGBUS.
class OpenFile {
 public:
  OpenFile(const std::string& path, int64_t offset, size_t length) {
    if (path.find('\0') != std::string::npos) throw Error(ErrorKind::kIo, "path contains a NUL byte");
    do {
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    } while (fd_ < 0 && errno == EINTR);
    if (fd_ < 0) throw Error(ErrorKind::kIo, std::string("cannot open: ") + std::strerror(errno));
    struct stat st;
    if (::fstat(fd_, &st) != 0) fail(std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail(std::string("is ") + file_kind(st.st_mode) + ", not a regular file");
    if (st.st_size > kMaxFileBytes) {
      ::close(fd_);
      throw Error(ErrorKind::kTooLarge, "file is " + std::to_string(static_cast<long long>(st.st_size)) +
                                            " bytes, over the 2 GiB limit");
    }
    size_ = static_cast<int64_t>(st.st_size);
    if (offset >= 0) {
      if (length > static_cast<size_t>(kMaxFileBytes)) {
        ::close(fd_);
        throw Error(ErrorKind::kTooLarge, "member is " + std::to_string(length) + " bytes, over the 2 GiB limit");
      }
      if (static_cast<uint64_t>(offset) + length > static_cast<uint64_t>(size_))
        fail("member [" + std::to_string(offset) + ", " + std::to_string(offset + static_cast<int64_t>(length)) +
             ") lies past the end of the file (" + std::to_string(size_) +
             " bytes): the shard was truncated or replaced after indexing");
      base_ = offset;
      size_ = static_cast<int64_t>(length);
    }
  }
  ~OpenFile() { ::close(fd_); }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;

  int fd() const { return fd_; }
  int64_t base() const { return base_; }
  int64_t size() const { return size_; }  // of the region

  // Reads region bytes [pos, pos + n) into dst, all of them.
  void read(uint8_t* dst, int64_t pos, size_t n) const {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_, dst + got, n - got, static_cast<off_t>(base_ + pos + static_cast<int64_t>(got)));
      if (r < 0) {
        if (errno == EINTR) continue;
        throw Error(ErrorKind::kIo, std::string("read failed: ") + std::strerror(errno));
      }
      if (r == 0) throw Error(ErrorKind::kIo, "file shrank while being read");
      got += static_cast<size_t>(r);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& msg) {
    ::close(fd_);
    throw Error(ErrorKind::kIo, msg);
  }

  int fd_ = -1;
  int64_t base_ = 0, size_ = 0;
};

// A sample's encoded bytes as far as they are needed (Note [Bounded reads]): `data`/`size` are in
// memory (a bytes input whole; for a file, the whole PNG or WebP, or a JPEG's first chunk), and a
// JPEG file's decoder reads the rest through `jpeg`.
struct Encoded {
  const uint8_t* data = nullptr;
  size_t size = 0;
  JpegInput jpeg;
  std::unique_ptr<OpenFile> file;
  bool partial = false;  // a file of another format whose bytes were not all read
};

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

// Reads more of the file into w.file, keeping what is there: up to `want` bytes in all (at most
// the region's size). Returns the bytes now held.
size_t read_more(const OpenFile& f, Scratch* buf, size_t have, size_t want) {
  want = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(want), f.size()));
  if (want <= have) return have;
  buf->reserve_keep(want, have);
  f.read(buf->data() + have, static_cast<int64_t>(have), want - have);
  return want;
}

// The end of a PNG's data (just past IEND), read chunk by chunk: the bytes after it are never
// read. A chunk length the format does not allow stops the walk; the decoder then reports the
// damage on what was read.
size_t read_png(const OpenFile& f, Scratch* buf, size_t have) {
  constexpr size_t kStep = size_t(1) << 20;
  size_t pos = 8;  // after the signature
  for (;;) {
    if (pos + 8 > have) {
      if (static_cast<int64_t>(have) >= f.size()) return have;
      have = read_more(f, buf, have, std::max(pos + 8, have + kStep));
      continue;
    }
    const uint32_t len = be32(buf->data() + pos);
    if (len > 0x7FFFFFFFu) return have;
    const size_t next = pos + 12 + len;
    if (std::memcmp(buf->data() + pos + 4, "IEND", 4) == 0) return read_more(f, buf, have, next);
    pos = next;
  }
}

constexpr size_t kFirstRead = size_t(128) << 10;

// The bytes of a sample (Note [Bounded reads]). `keep_other`: read a file of another format
// whole (for the Pillow fallback) rather than only its first bytes.
void load(Worker& w, const SampleInput& in, Encoded* e, bool keep_other) {
  if (in.kind != SampleInput::kPath) {
    if (in.size == 0) throw Error(ErrorKind::kDecode, "empty data (0 bytes)");
    e->data = in.data;
    e->size = in.size;
    e->jpeg.data = in.data;
    e->jpeg.size = in.size;
    return;
  }
  e->file.reset(new OpenFile(in.path, in.offset, in.size));
  const OpenFile& f = *e->file;
  if (f.size() == 0) throw Error(ErrorKind::kDecode, in.offset >= 0 ? "empty member (0 bytes)" : "empty file (0 bytes)");
  size_t have = static_cast<size_t>(std::min<int64_t>(f.size(), kFirstRead));
  w.file.reserve(kFirstRead);
  f.read(w.file.data(), 0, have);
  const uint8_t* d = w.file.data();
  if (is_jpeg(d, have)) {
    e->jpeg.data = d;
    e->jpeg.size = have;
    e->jpeg.fd = f.fd();
    e->jpeg.base = f.base();
    e->jpeg.length = f.size();
    e->jpeg.chunk = w.file.data();
    e->jpeg.chunk_size = w.file.capacity();
  } else if (is_png(d, have) && png_native()) {
    have = read_png(f, &w.file, have);
  } else if (is_webp(d, have) && webp_native()) {
    // The RIFF size: a WebP ends there (padded to even), whatever follows it in the file.
    const size_t riff = 8 + static_cast<size_t>(le32(d + 4)) + (le32(d + 4) & 1u);
    have = read_more(f, &w.file, have, riff);
  } else if (keep_other) {
    have = read_more(f, &w.file, have, static_cast<size_t>(f.size()));
  } else {
    e->partial = static_cast<int64_t>(have) < f.size();
  }
  e->data = w.file.data();
  e->size = have;
}

JpegLimits limits_of(const PlanSpec& s) {
  JpegLimits l;
  l.max_pixels = s.max_pixels;
  l.strict = s.strict;
  l.allow_truncated = s.allow_truncated;
  return l;
}

// Largest DCT scaling 1/d that keeps the decoded box at least twice the resized size on both
// axes (Pillow's reducing_gap = 2). Never in exact mode.
int choose_denom(const PlanSpec& s, const Geometry& g) {
  if (s.exact || s.interp == Interp::kNearest) return 1;
  for (int d : {8, 4, 2})
    if (g.box_w >= 2 * d * g.rz_w && g.box_h >= 2 * d * g.rz_h) return d;
  return 1;
}

struct Span {  // slot indices [s0, s1) that fall inside the resized image
  int s0, s1;
};
Span valid_span(int off, int rz, int out) { return {std::max(0, -off), std::min(out, rz - off)}; }

void grow(Scratch* v, size_t n) { v->reserve(n); }

// Builds both tables for a source of dec_h x dec_w decoded pixels where one decoded pixel is
// `denom` source pixels.
void build_tables(const Plan& plan, const Geometry& g, int dec_h, int dec_w, int denom, Worker& w, Span* sy,
                  Span* sx) {
  *sy = valid_span(g.off_y, g.rz_h, g.out_h);
  *sx = valid_span(g.off_x, g.rz_w, g.out_w);
  if (sy->s0 >= sy->s1 || sx->s0 >= sx->s1)  // only with padding wider than the crop
    throw Error(ErrorKind::kTooSmall, "the crop window lies in the padding only, outside the image");
  const double inv = 1.0 / denom;
  AxisSpec ax;
  ax.interp = g.interp;
  ax.antialias = plan.spec.antialias;
  ax.fast = !plan.spec.exact;  // Note [Fast resampling]
  ax.src_size = dec_w;
  ax.b0 = g.box_l * inv;
  ax.b1 = (g.box_l + g.box_w) * inv;
  ax.out_size = g.rz_w;
  ax.o0 = g.off_x + sx->s0;
  ax.o1 = g.off_x + sx->s1;
  ax.reverse = g.flip;
  build_axis_table(ax, &w.ht);
  AxisSpec ay = ax;
  ay.vertical = true;
  ay.src_size = dec_h;
  ay.b0 = g.box_t * inv;
  ay.b1 = (g.box_t + g.box_h) * inv;
  ay.out_size = g.rz_h;
  ay.o0 = g.off_y + sy->s0;
  ay.o1 = g.off_y + sy->s1;
  ay.reverse = g.vflip;
  build_axis_table(ay, &w.vt);
}

// Rows decoded per libjpeg call before the horizontal pass runs over them: the pass's tables stay
// in L1 across the block instead of being evicted by the decoder after every row.
constexpr int kRowBlock = 16;
// Byte stride of a block row of `px` RGBX pixels: 64-byte multiple, never a multiple of 4 KiB (rows
// of a block would share L1 sets).
size_t block_stride(size_t px) {
  size_t b = (checked_mul(px, 4) + 63) & ~size_t(63);
  if (b % kPage == 0) b += 64;
  return b;
}
// Rows per block for rows of `stride` bytes: kRowBlock, fewer for very wide images so that a block
// stays within 4 MiB (a 1-row PNG 16 million pixels wide must not cost a gigabyte of scratch).
int block_rows(size_t stride) {
  return static_cast<int>(std::max<size_t>(1, std::min<size_t>(kRowBlock, (size_t(4) << 20) / stride)));
}

size_t inter_stride(const AxisTable& ht) { return (static_cast<size_t>(ht.n) * 4 + 31) & ~size_t(31); }

// Sizes the intermediate image (rows the vertical pass reads, plus ksize rows of padding).
// The intermediate holds every source row the vertical pass reads, each at the output's width:
// more pixels than the image itself when a tall image is widened (a 2 KB PNG of 1x1000000 pixels
// resized to (5, 4000) would need 4e9). Like the image and the output, it is bounded by
// max_pixels, so that its memory and the horizontal pass's time are too.
uint8_t* prepare_inter(const Plan& plan, Worker& w) {
  const int64_t inter_px = static_cast<int64_t>(w.vt.src_hi - w.vt.src_lo) * w.ht.n;
  if (plan.spec.max_pixels > 0 && inter_px > plan.spec.max_pixels)
    throw Error(ErrorKind::kTooLarge, "resizing needs " + std::to_string(w.vt.src_hi - w.vt.src_lo) +
                                          " source rows at the output width of " + std::to_string(w.ht.n) + " = " +
                                          std::to_string(inter_px) + " intermediate pixels, over the limit of " +
                                          std::to_string(plan.spec.max_pixels) + " (max_pixels)");
  const size_t stride = inter_stride(w.ht);
  const size_t rows = static_cast<size_t>(w.vt.src_hi - w.vt.src_lo + w.vt.ksize + 1);
  grow(&w.inter, checked_mul(rows, stride));
  grow(&w.orow, stride + 32);
  return w.inter.data();
}

// The level table of this sample: the plan's, or one with Lighting's shift built in.
const uint8_t* sample_table(const Plan& plan, const SampleParams& sp, Worker& w) {
  if (!sp.color.lighting) return plan.out.lut.data();
  const PlanSpec& s = plan.spec;
  if (plan.out.mixed) {
    build_mix_table(plan.out, s.mix.data(), s.mean.data(), sp.color.shift, s.unit_range, &w.lut);
    return w.lut.data();
  }
  build_shifted_table(plan.out, sp.color.shift, s.normalize, s.mean.data(), s.std.data(), s.unit_range, &w.lut);
  return w.lut.data();
}

// RandomErasing on the finished output: the rectangle gets the fill value (or N(0, 1) noise from
// the sample's own stream) in every channel, in the output dtype.
// The output of a GaussianNoise plan (Note [Gaussian noise] in plan.h): every value from its
// staged level, noised, clamped, normalised and stored.
void write_noised(const Plan& plan, const SampleParams& sp, Worker& w, int h, int wd, bool to_gray, bool pre_gray,
                  uint8_t* slot) {
  const OutputSpec& o = plan.out;
  const PlanSpec& s = plan.spec;
  const int ch = o.channels;
  const size_t es = dtype_size(o.dtype), n = static_cast<size_t>(h) * static_cast<size_t>(wd);
  // the noise, then one output row of floats
  float* noise = reinterpret_cast<float*>(
      w.field.reserve(checked_mul(checked_mul(n, static_cast<size_t>(ch)) + static_cast<size_t>(wd), sizeof(float))));
  float* row = noise + n * ch;
  gaussian_noise(sp.color.noise_seed, n * ch, noise);
  const bool gray = to_gray || o.color == Color::kGray;
  if (gray && !pre_gray)
    for (int y = 0; y < h; ++y) rgbx_to_gray_row(w.rows[y], wd, o.gray_v2);
  const float mean = static_cast<float>(s.noise_mean), sigma = static_cast<float>(s.noise_sigma);
  const bool chw = o.layout == Layout::kCHW, clip = s.noise_clip;
  float lv[256];
  for (int v = 0; v < 256; ++v) lv[v] = level_value(v, true, o.unit_mul);
  for (int c = 0; c < ch; ++c) {
    const int byte = gray ? 0 : o.perm[c];
    const float m = o.arith.mean[c], sd = o.arith.std[c];
    for (int y = 0; y < h; ++y) {
      const uint8_t* px = w.rows[y] + byte;
      const float* nz = noise + (static_cast<size_t>(c) * h + y) * wd;
      const size_t first = chw ? (static_cast<size_t>(c) * h + y) * wd : static_cast<size_t>(y) * wd * ch + c;
      float* dst = chw && o.dtype == DType::kF32 ? reinterpret_cast<float*>(slot) + first : row;
      for (int x = 0; x < wd; ++x) dst[x] = lv[px[4 * x]];
      for (int x = 0; x < wd; ++x) {
        float v = dst[x] + (mean + nz[x] * sigma);
        if (clip) v = std::min(std::max(v, 0.f), 1.f);
        dst[x] = (v - m) / sd;  // (x - 0) / 1 when there is no Normalize: the same bits
      }
      if (dst == row) {
        const size_t step = chw ? 1 : static_cast<size_t>(ch);
        for (int x = 0; x < wd; ++x) store_value(row[x], o.dtype, slot + (first + x * step) * es);
      }
    }
  }
}

void erase(const Plan& plan, const SampleParams& sp, uint8_t* slot) {
  const EraseParams& e = sp.erase;
  if (e.n == 0) return;
  const OutputSpec& o = plan.out;
  const int oh = sp.geom.out_h, ow = sp.geom.out_w, ch = o.channels;
  const size_t es = dtype_size(o.dtype);
  const bool chw = o.layout == Layout::kCHW;
  // The noise of every rectangle comes from one stream, rectangle after rectangle, channel by
  // channel (C, h, w), as torchvision's and timm's normal_() fill them.
  Rng noise(e.noise_seed, 0, 0, streams::kEraseNoise);
  for (int k = 0; k < e.n; ++k) {
    const int top = e.top[k], left = e.left[k], hh = e.height[k], ww = e.width[k];
    if (hh <= 0 || ww <= 0) continue;
    if (!plan.spec.erase_random) {  // one value per channel: encoded once, then copied along each row
      uint8_t val[4][4];
      for (int c = 0; c < ch; ++c) {
        const float v = plan.spec.erase_per_channel ? static_cast<float>(noise.normal()) : plan.spec.erase_value[c];
        store_value(v, o.dtype, val[c]);
      }
      for (int c = 0; c < ch; ++c)
        for (int y = top; y < top + hh; ++y) {
          const size_t first = chw ? (static_cast<size_t>(c) * oh + y) * ow + left
                                   : (static_cast<size_t>(y) * ow + left) * ch + c;
          const size_t step = (chw ? 1 : static_cast<size_t>(ch)) * es;
          uint8_t* p = slot + first * es;
          switch (es) {  // constant sizes: each copy is one store
            case 4: for (int x = 0; x < ww; ++x, p += step) std::memcpy(p, val[c], 4); break;
            case 2: for (int x = 0; x < ww; ++x, p += step) std::memcpy(p, val[c], 2); break;
            default: for (int x = 0; x < ww; ++x, p += step) *p = val[c][0]; break;
          }
        }
      continue;
    }
    for (int c = 0; c < ch; ++c)
      for (int y = top; y < top + hh; ++y)
        for (int x = left; x < left + ww; ++x) {
          const float v = static_cast<float>(noise.normal());
          const size_t idx = chw ? (static_cast<size_t>(c) * oh + y) * ow + x : (static_cast<size_t>(y) * ow + x) * ch + c;
          store_value(v, o.dtype, slot + idx * es);
        }
  }
}

// The staged image's padding (Note [Padding modes] in plan.h): rows [y0, y1) and columns [x0, x1)
// of the slot hold the image; Pad's and RandomCrop's padding around it is written from them.
// (A CenterCrop larger than the padded image pads further with zeros, as torchvision's
// center_crop: those pixels stay 0; with crop_pad_fill, timm's CenterCropOrPad, with pad_fill.)
void fill_padding(const PlanSpec& s, const Geometry& g, uint8_t* const* rows, int y0, int y1, int x0, int x1) {
  // The padded image's rectangle in slot coordinates (a flip swaps the sides' padding).
  int py0 = std::max(0, y0 - (g.vflip ? g.pad_b : g.pad_t)), py1 = std::min(g.out_h, y1 + (g.vflip ? g.pad_t : g.pad_b));
  int px0 = std::max(0, x0 - (g.flip ? g.pad_r : g.pad_l)), px1 = std::min(g.out_w, x1 + (g.flip ? g.pad_l : g.pad_r));
  if (s.crop_pad_fill) py0 = 0, py1 = g.out_h, px0 = 0, px1 = g.out_w;
  if (s.pad_mode == 0) {
    uint8_t px[4] = {static_cast<uint8_t>(s.pad_fill[0]), static_cast<uint8_t>(s.pad_fill[1]),
                     static_cast<uint8_t>(s.pad_fill[2]), 0};
    for (int y = py0; y < py1; ++y)
      for (int x = px0; x < px1; ++x)
        if (y < y0 || y >= y1 || x < x0 || x >= x1) std::memcpy(rows[y] + static_cast<size_t>(x) * 4, px, 4);
    return;
  }
  // The source index of a padded index i on an axis whose image spans [a, b).
  auto source = [&](int i, int a, int b) {
    int j;
    if (s.pad_mode == 1) j = i < a ? a : b - 1;                                // edge
    else if (s.pad_mode == 2) j = i < a ? 2 * a - i : 2 * (b - 1) - i;         // reflect
    else j = i < a ? 2 * a - 1 - i : 2 * b - 1 - i;                            // symmetric
    if (j < a || j >= b)
      throw Error(ErrorKind::kTooSmall, "the padding mirrors pixels outside the crop window (padding as wide as "
                                        "the image, or wider than half the crop)");
    return j;
  };
  for (int y = y0; y < y1; ++y)
    for (int x = px0; x < px1; ++x)
      if (x < x0 || x >= x1)
        std::memcpy(rows[y] + static_cast<size_t>(x) * 4, rows[y] + static_cast<size_t>(source(x, x0, x1)) * 4, 4);
  for (int y = py0; y < py1; ++y)
    if (y < y0 || y >= y1)
      std::memcpy(rows[y] + static_cast<size_t>(px0) * 4, rows[source(y, y0, y1)] + static_cast<size_t>(px0) * 4,
                  static_cast<size_t>(px1 - px0) * 4);
}

// torchvision v2's JPEG op: the staged image encoded as torchvision's encode_jpeg does (libjpeg
// defaults: 4:2:0, the quality's standard tables) and decoded back as decode_jpeg does, in place.
void jpeg_roundtrip(int quality, uint8_t* const* rows, int h, int w, Scratch* scratch) {
  const size_t row_rgb = static_cast<size_t>(w) * 3;
  uint8_t* rgb = scratch->reserve(checked_mul(row_rgb, static_cast<size_t>(h)));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) std::memcpy(rgb + y * row_rgb + static_cast<size_t>(x) * 3, rows[y] + x * 4, 3);
  const std::vector<uint8_t> enc = encode_jpeg(rgb, h, w, 3, static_cast<int64_t>(row_rgb), quality, 420, false);
  JpegDecoder dec;  // the worker's decoder may still hold the sample's own session
  JpegDecoder::Session img = dec.open(enc.data(), enc.size(), JpegLimits{});
  int x0, ow, oh, fw;
  img.start(1, 0, w, &x0, &ow, &oh, &fw);
  if (x0 != 0 || ow != w || oh != h) throw Error(ErrorKind::kDecode, "JPEG op: the round trip changed the size");
  img.read_rows(rows, h);
}

// The uint8 op sequence in the Compose's order, a RandomOrder container's run of ops in the
// order it drew (Note [Op sequence] in plan.h).
void run_sequence(const Plan& plan, const SequenceParams& q, uint8_t* const* rows, int h, int w, Scratch* scratch) {
  const PlanSpec& s = plan.spec;
  const int n = static_cast<int>(s.px_ops.size());
  auto apply = [&](int k) {
    if (s.px_ops[k] == static_cast<int>(PixOp::kJpeg)) {
      if (q.op[k].on) jpeg_roundtrip(static_cast<int>(q.op[k].v[0]), rows, h, w, scratch);
      return;
    }
    apply_pix_op(plan.k(), static_cast<PixOp>(s.px_ops[k]), &s.px_args[static_cast<size_t>(k) * kPixArgs], q.op[k],
                 rows, h, w, scratch);
  };
  for (int k = 0; k < n;) {
    const int g = s.px_group[k];
    if (g < 0 || s.group_kind[g] != 2) {
      apply(k++);
      continue;
    }
    int end = k;
    while (end < n && s.px_group[end] == g) ++end;
    for (int j = 0; j < s.group_members[g]; ++j)
      for (int e = k; e < end; ++e)
        if (s.px_member[e] == q.order[g][j]) apply(e);
    k = end;
  }
}

// Vertical pass and output stage, after the intermediate holds rows [vt.src_lo, vt.src_hi)
// (Note [Output stage] in output.h).
void finish_sample(const Plan& plan, Worker& w, const SampleParams& sp, const Span& sy, const Span& sx, uint8_t* slot,
                   SampleResult* res) {
  const Geometry& g = sp.geom;
  const size_t stride = inter_stride(w.ht);
  const bool padded = sy.s0 > 0 || sx.s0 > 0 || sy.s1 < g.out_h || sx.s1 < g.out_w;
  const bool to_gray = sp.color.gray;
  bool pre_gray = false;  // the staged rows hold their luma already (the sequence ops ran on gray)
  const int x_slot = g.flip ? g.out_w - sx.s1 : sx.s0;
  const int y_slot = g.vflip ? g.out_h - sy.s1 : sy.s0;
  const AxisTable& vt = w.vt;
  auto vertical = [&](int e, uint8_t* dst) -> const uint8_t* {
    if (vt.identity)  // one whole source row per output row: use it as is
      return w.inter.data() + static_cast<size_t>(vt.start[e] - vt.src_lo) * stride;
    vpass_row(plan.k(), w.inter.data(), stride, vt.start[e] - vt.src_lo, vt, e, w.ht.n * 4, dst);
    return dst;
  };
  if (!plan.needs_stats()) {  // single pass
    const uint8_t* lut = sample_table(plan, sp, w);
    if (padded) fill_level0(plan.out, lut, slot, g.out_h, g.out_w);
    for (int e = 0; e < vt.n; ++e)
      write_row(plan.out, lut, vertical(e, w.orow.data()), w.ht.n, slot, g.out_h, g.out_w, y_slot + e, x_slot, to_gray);
    erase(plan, sp, slot);
    return;
  }
  // Phase 1: the whole output image as uint8 RGBX in scratch, padding at level 0 (torchvision
  // pads before its colour ops and normalisation, so padding takes part in both).
  const size_t fstride = (static_cast<size_t>(g.out_w) * 4 + 31) & ~size_t(31);
  grow(&w.stage, checked_mul(static_cast<size_t>(g.out_h), fstride));
  if (padded) std::memset(w.stage.data(), 0, static_cast<size_t>(g.out_h) * fstride);
  const size_t row_bytes = static_cast<size_t>(w.ht.n) * 4;
  for (int e = 0; e < vt.n; ++e)
    std::memcpy(w.stage.data() + static_cast<size_t>(y_slot + e) * fstride + static_cast<size_t>(x_slot) * 4,
                vertical(e, w.orow.data()), row_bytes);
  w.rows.resize(static_cast<size_t>(g.out_h));
  for (int y = 0; y < g.out_h; ++y) w.rows[y] = w.stage.data() + static_cast<size_t>(y) * fstride;
  if (padded && plan.padding_mode()) fill_padding(plan.spec, g, w.rows.data(), y_slot, y_slot + vt.n, x_slot,
                                                 x_slot + w.ht.n);
  // Augmentation (warps first, then the policy's ops in their order) and colour ops on the
  // finished uint8 image.
  const PlanSpec& s = plan.spec;
  if (sp.affine.elastic) {
    const size_t n = checked_mul(static_cast<size_t>(g.out_h), static_cast<size_t>(g.out_w));
    float* dx = reinterpret_cast<float*>(w.field.reserve(checked_mul(2 * n, sizeof(float))));
    const double alpha[2] = {s.elastic_alpha_x, s.elastic_alpha_y}, sigma[2] = {s.elastic_sigma_x, s.elastic_sigma_y};
    elastic_field(plan.k(), sp.affine.elastic_seed, g.out_h, g.out_w, alpha, sigma, dx, dx + n, &w.aug);
    warp_elastic(dx, dx + n, plan.affine_warp(), w.rows.data(), g.out_h, g.out_w, &w.aug);
  } else if (sp.affine.on) {
    apply_affine(plan.k(), sp.affine, plan.affine_warp(), w.rows.data(), g.out_h, g.out_w, &w.aug);
  }
  if (sp.augment.chains) {
    aug_mix(plan.k(), sp.augment, plan.aug_warp(), w.rows.data(), g.out_h, g.out_w, &w.aug, &w.mix);
  } else if (sp.augment.n) {
    const WarpSpec ws = plan.aug_warp();
    for (int k = 0; k < sp.augment.n; ++k)
      apply_aug_op(plan.k(), sp.augment.op[k], sp.augment.mag[k], ws, w.rows.data(), g.out_h, g.out_w, &w.aug);
  }
  if (sp.timm.n || sp.timm.chains)
    apply_timm(plan.k(), sp.timm, plan.spec.timm_fill, w.rows.data(), g.out_h, g.out_w, &w.aug, &w.mix);
  if (sp.color.jitter.mask) apply_color_jitter(plan.k(), sp.color.jitter, w.rows.data(), g.out_h, g.out_w);
  if (sp.color.hsv.on) apply_random_hsv(plan.k(), sp.color.hsv, w.rows.data(), g.out_h, g.out_w);
  if (!s.px_ops.empty()) {
    // The sequence ops follow grayscale conversion (the order rules put them after it): the luma
    // goes into every channel first, and the output stage takes it from there (pre_gray).
    if (to_gray || plan.out.color == Color::kGray) {
      for (int y = 0; y < g.out_h; ++y) rgbx_to_gray_row(w.rows[y], g.out_w, plan.out.gray_v2);
      pre_gray = true;
    }
    run_sequence(plan, sp.seq, w.rows.data(), g.out_h, g.out_w, &w.aug);
  }
  if (plan.out.color == Color::kYCbCr)
    for (int y = 0; y < g.out_h; ++y) rgb_to_ycbcr_row(w.rows[y], g.out_w);
  // Phase 2: the table (the plan's, or one built from this image's histograms), then every row.
  const uint8_t* lut = sample_table(plan, sp, w);
  if (plan.per_image_table()) {
    w.hist.clear();
    for (int y = 0; y < g.out_h; ++y) accumulate_histogram(plan.out, w.rows[y], g.out_w, to_gray, &w.hist, pre_gray);
    if (plan.out.color == Color::kGray || to_gray) w.hist.replicate_gray(plan.out.channels);
    build_image_table(plan.out, s.norm_mode, s.unit_range, s.range_lo, s.range_hi, w.hist, &w.lut, &res->norm);
    lut = w.lut.data();
  }
  if (sp.color.noise) {
    write_noised(plan, sp, w, g.out_h, g.out_w, to_gray, pre_gray, slot);
  } else {
    for (int y = 0; y < g.out_h; ++y)
      write_row(plan.out, lut, w.rows[y], g.out_w, slot, g.out_h, g.out_w, y, 0, to_gray, pre_gray);
  }
  erase(plan, sp, slot);
}

// Horizontal pass of every needed row of an RGBX image held in memory (rows `row_bytes` apart):
// `img` holds source rows from `top` on, each from column `origin` on.
void hpass_image(const Plan& plan, Worker& w, const uint8_t* img, size_t row_bytes, int top = 0, int origin = 0) {
  uint8_t* inter = prepare_inter(plan, w);
  const size_t stride = inter_stride(w.ht);
  const uint8_t* rows[kRowBlock];
  uint8_t* outs[kRowBlock];
  for (int y = w.vt.src_lo; y < w.vt.src_hi; y += kRowBlock) {
    const int nb = std::min(kRowBlock, w.vt.src_hi - y);
    for (int i = 0; i < nb; ++i) {
      rows[i] = img + static_cast<size_t>(y + i - top) * row_bytes;
      outs[i] = inter + static_cast<size_t>(y + i - w.vt.src_lo) * stride;
    }
    hpass_rows(plan.k(), rows, nb, origin, w.ht, outs);
  }
}

// The horizontal pass of a whole decoded image in w.full (h x w RGBX rows packed), shown with
// EXIF `orientation`: rotated into w.oriented first when it is not 1. The tables must be built for
// the displayed size; both buffers get the padding the pass reads past a row.
void hpass_whole(const Plan& plan, Worker& w, int orientation, int h, int wd) {
  const size_t pad = (static_cast<size_t>(w.ht.ksize) + 4) * 4;
  if (orientation == 1) {
    hpass_image(plan, w, w.full.data(), static_cast<size_t>(wd) * 4);
    return;
  }
  int oh, ow;
  oriented_dims(orientation, h, wd, &oh, &ow);
  const size_t orow_bytes = static_cast<size_t>(ow) * 4;
  grow(&w.oriented, checked_mul(oh, orow_bytes) + pad);
  apply_orientation(orientation, w.full.data(), h, wd, w.oriented.data());
  hpass_image(plan, w, w.oriented.data(), orow_bytes);
}

// plan_sample for a decoded-whole format (PNG, WebP) of h x w stored pixels shown with EXIF
// `orientation`; checks the output size against the slot.
const Geometry& plan_whole(const Plan& plan, int h, int wd, int orientation, const RunKey& key, int out_h, int out_w,
                           SampleResult* res) {
  int oh, ow;
  oriented_dims(orientation, h, wd, &oh, &ow);
  res->params = plan_sample(plan.spec, oh, ow, key);
  res->decode_denom = 1;
  res->orientation = orientation;
  const Geometry& g = res->params.geom;
  if (g.out_h != out_h || g.out_w != out_w) throw Error(ErrorKind::kInvalid, "output size differs from the slot");
  return g;
}

// Decodes the whole image at scale 1/denom into w.full (RGBX rows packed). Takes the session
// over: the image is abandoned (libjpeg's memory for it freed) by the end of the call.
void decode_whole(JpegDecoder::Session img, Worker& w, int denom, int dec_w, int* full_h, int* full_w) {
  int x0, xw;
  img.start(denom, 0, dec_w, &x0, &xw, full_h, full_w);
  const size_t row_bytes = static_cast<size_t>(*full_w) * 4;
  grow(&w.full, checked_mul(*full_h, row_bytes));
  uint8_t* ptrs[kRowBlock];
  for (int y = 0; y < *full_h; y += kRowBlock) {
    const int nb = std::min(kRowBlock, *full_h - y);
    for (int i = 0; i < nb; ++i) ptrs[i] = w.full.data() + static_cast<size_t>(y + i) * row_bytes;
    img.read_rows(ptrs, nb);
  }
}

// The orientation a sample is shown with: the file's EXIF orientation when the plan applies it
// (apply_exif; torchvision's loaders do not), else 1.
int shown_orientation(const PlanSpec& s, int file_orientation) { return s.apply_exif ? file_orientation : 1; }

// The horizontal pass over a rectangle of stored pixels shown with `orientation` (not 1): `img`
// holds rows of `row_bytes` with the rectangle `st` of an h x wd stored image; it is rotated into
// w.oriented and resampled from the displayed rectangle it shows.
void hpass_oriented_rect(const Plan& plan, Worker& w, int orientation, int h, int wd, const Rect& st,
                         const uint8_t* img, size_t row_bytes) {
  const Rect dr = displayed_rect(orientation, h, wd, st);
  const size_t orow_bytes = static_cast<size_t>(dr.w) * 4;
  grow(&w.oriented, checked_mul(static_cast<size_t>(dr.h), orow_bytes) + (static_cast<size_t>(w.ht.ksize) + 4) * 4);
  apply_orientation(orientation, img, st.h, st.w, row_bytes, w.oriented.data());
  hpass_image(plan, w, w.oriented.data(), orow_bytes, dr.y0, dr.x0);
}

// The displayed rectangle the resampler reads (the tables must have been built).
Rect read_rect(const Worker& w) {
  return Rect{w.vt.src_lo, w.ht.src_lo, w.vt.src_hi - w.vt.src_lo, w.ht.src_hi - w.ht.src_lo};
}

// The sub-image a session decodes in place of the whole (Note [Restart splicing]): its offset
// in the stored image and its size, at the decode scale.
struct SpliceWindow {
  int y_off = 0, x_off = 0, h = 0, w = 0;
  int64_t bytes = 0;  // the sub-image's size (0: the file itself is decoded)
};

constexpr int64_t kMaxSpliceBytes = int64_t(64) << 20;  // larger files are decoded the usual way
constexpr size_t kSpliceChunk = size_t(256) << 10;      // read past an image's end by less than this

// When the file's restart markers allow (Note [Restart splicing]), writes into w.spliced the
// JPEG of the MCUs that cover the stored rectangle `st` (at scale 1/denom of the dec_h x dec_w
// decode) and returns true. Touches neither the decoder nor w.file, so the caller's session on
// the original stays valid until it ends it.
bool splice_region(const PlanSpec& s, Worker& w, const JpegInput& in, const JpegHeader& hdr, int denom, const Rect& st,
                   SpliceWindow* win) {
  if (!s.splice_restarts || hdr.progressive) return false;
  const uint8_t* bytes = in.data;
  size_t n = in.size;
  if (in.fd >= 0 && static_cast<int64_t>(in.size) < in.length) {
    // A file larger than the first read. Its header lies in the first chunk (else no splice: the
    // decoder may have refilled that buffer), which is copied; the rest is read into a buffer of
    // its own, in chunks of kSpliceChunk, only until its scan ends (Note [Bounded reads]).
    const size_t he = restart_header_end(in.data, in.size);
    if (he == 0) return false;
    size_t have = in.size, end = 0, from = he;
    uint8_t* buf = w.jpeg_all.reserve(have);
    std::memcpy(buf, in.data, have);
    while ((end = restart_scan_end(buf, from, have)) == 0) {
      if (static_cast<int64_t>(have) >= in.length || static_cast<int64_t>(have) >= kMaxSpliceBytes) return false;
      from = std::max(he, have - 1);  // a run of 0xFF may continue in the next chunk
      const size_t want = static_cast<size_t>(std::min<int64_t>({in.length, kMaxSpliceBytes,
                                                                  static_cast<int64_t>(have + kSpliceChunk)}));
      buf = w.jpeg_all.reserve_keep(want, have);
      while (have < want) {
        const ssize_t r =
            ::pread(in.fd, buf + have, want - have, static_cast<off_t>(in.base + static_cast<int64_t>(have)));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;  // the usual path reads the file again and reports the failure
        have += static_cast<size_t>(r);
      }
    }
    bytes = buf;
    n = end;
  }
  RestartLayout& L = w.restarts;
  if (!parse_restart_layout(bytes, n, &L)) return false;
  if (L.width != hdr.width || L.height != hdr.height || L.components != hdr.components) return false;
  // The rows and columns used, and one more on each side at the decode scale (the chroma
  // upsampling's context), in full-size pixels.
  const int y0 = std::max(0, st.y0 - 1) * denom, x0 = std::max(0, st.x0 - 1) * denom;
  const int y1 = std::min(hdr.height, (st.y0 + st.h + 1) * denom), x1 = std::min(hdr.width, (st.x0 + st.w + 1) * denom);
  int r0, r1, c0, c1;
  if (!restart_region_for(L, y0, y1, x0, x1, &r0, &r1, &c0, &c1)) return false;
  uint8_t* out = w.spliced.reserve(splice_restart_bound(L, r0, r1, c0, c1));
  win->bytes = static_cast<int64_t>(splice_restart_region(bytes, L, r0, r1, c0, c1, out));
  win->y_off = r0 * L.mcu_h / denom;
  win->x_off = c0 * L.mcu_w / denom;
  win->h = (std::min(L.height, r1 * L.mcu_h) - r0 * L.mcu_h + denom - 1) / denom;
  win->w = (std::min(L.width, c1 * L.mcu_w) - c0 * L.mcu_w + denom - 1) / denom;
  return true;
}

// The session that decodes the stored rectangle `st`: `img` itself, or, when splice_region cut
// out a sub-image, a session of that (img then ends first: one session per decoder). *win gives
// the sub-image's place (zero offsets and the full size for img).
JpegDecoder::Session region_session(const PlanSpec& s, Worker& w, const JpegInput& in, JpegDecoder::Session img,
                                    int denom, int dec_h, int dec_w, const Rect& st, SpliceWindow* win) {
  const JpegHeader hdr = img.header();
  if (!splice_region(s, w, in, hdr, denom, st, win)) {
    *win = SpliceWindow{0, 0, dec_h, dec_w, 0};
    return img;
  }
  { JpegDecoder::Session done = std::move(img); }
  return w.dec.open(w.spliced.data(), static_cast<size_t>(win->bytes), limits_of(s));
}

void run_jpeg(const Plan& plan, Worker& w, const JpegInput& input, const RunKey& key, uint8_t* slot, int out_h,
              int out_w, SampleResult* res) {
  const PlanSpec& s = plan.spec;
  // The image's decode session: abandoned on every way out (jpeg_decoder.h).
  JpegDecoder::Session img = w.dec.open(input, limits_of(s));
  const JpegHeader hdr = img.header();
  const int orient = shown_orientation(s, hdr.orientation);
  int oh, ow;
  oriented_dims(orient, hdr.height, hdr.width, &oh, &ow);
  res->params = plan_sample(s, oh, ow, key);
  const Geometry& g = res->params.geom;
  res->orientation = orient;
  if (g.out_h != out_h || g.out_w != out_w) throw Error(ErrorKind::kInvalid, "output size differs from the slot");
  const int denom = choose_denom(s, g);
  res->decode_denom = denom;
  const int dec_h = (hdr.height + denom - 1) / denom, dec_w = (hdr.width + denom - 1) / denom;
  int odh, odw;
  oriented_dims(orient, dec_h, dec_w, &odh, &odw);
  Span sy, sx;
  build_tables(plan, g, odh, odw, denom, w, &sy, &sx);
  // Decode only the stored rectangle that shows the region the resampler reads: columns via
  // jpeg_crop_scanline, rows above it skipped, and decoding stops after its last row. The session
  // moves into this scope and ends with it, so libjpeg's memory for the image is freed before the
  // output stage.
  // With restart markers, the session is one of the sub-image around that rectangle
  // (Note [Restart splicing]); coordinates below are the stored image's.
  const Rect st = stored_rect(orient, dec_h, dec_w, read_rect(w));
  SpliceWindow win;
  JpegDecoder::Session region = region_session(s, w, input, std::move(img), denom, dec_h, dec_w, st, &win);
  // Fancy (smooth) chroma upsampling replicates the edge chroma at both ends of a cropped span,
  // so the span asked for reaches one pixel beyond each end of what is used: the used columns
  // then see their true neighbours, and the pixels match a full decode exactly.
  int x0, xw, full_h, full_w;
  const int want_lo = std::max(0, st.x0 - 1), want_hi = std::min(dec_w, st.x0 + st.w + 1);
  region.start(denom, want_lo - win.x_off, want_hi - want_lo, &x0, &xw, &full_h, &full_w);
  if (full_h != win.h || full_w != win.w) throw Error(ErrorKind::kDecode, "unexpected scaled size");
  x0 += win.x_off;
  res->spliced_bytes = win.bytes;
  res->decoded_pixels = static_cast<int64_t>(st.h) * xw;
  region.skip_rows(st.y0 - win.y_off);
  if (orient == 1) {
    // Rows in blocks, each block through the horizontal pass as it arrives.
    const size_t rs = block_stride(static_cast<size_t>(xw) + w.ht.ksize + 4);
    const int nblock = block_rows(rs);
    grow(&w.row, checked_mul(rs, nblock));
    uint8_t* inter = prepare_inter(plan, w);
    const size_t stride = inter_stride(w.ht);
    uint8_t* ptrs[kRowBlock];
    for (int i = 0; i < nblock; ++i) ptrs[i] = w.row.data() + rs * i;
    for (int y = w.vt.src_lo; y < w.vt.src_hi; y += nblock) {
      const int nb = std::min(nblock, w.vt.src_hi - y);
      region.read_rows(ptrs, nb);
      uint8_t* outs[kRowBlock];
      for (int i = 0; i < nb; ++i) outs[i] = inter + static_cast<size_t>(y + i - w.vt.src_lo) * stride;
      hpass_rows(plan.k(), ptrs, nb, x0, w.ht, outs);
    }
  } else {
    // Shown rotated or mirrored: the stored rectangle is decoded whole, then turned.
    const size_t row_bytes = checked_mul(static_cast<size_t>(xw), 4);
    grow(&w.full, checked_mul(static_cast<size_t>(st.h), row_bytes));
    uint8_t* ptrs[kRowBlock];
    for (int y = 0; y < st.h; y += kRowBlock) {
      const int nb = std::min(kRowBlock, st.h - y);
      for (int i = 0; i < nb; ++i) ptrs[i] = w.full.data() + static_cast<size_t>(y + i) * row_bytes;
      region.read_rows(ptrs, nb);
    }
    hpass_oriented_rect(plan, w, orient, dec_h, dec_w, Rect{st.y0, x0, st.h, xw}, w.full.data(), row_bytes);
  }
  finish_sample(plan, w, res->params, sy, sx, slot, res);
}

// A PNG (Note [PNG decoding]): rows in order, in blocks of kRowBlock, each block through the
// horizontal pass as it arrives; rows above the region are decoded and dropped (PNG rows cannot
// be skipped) and decoding stops after the region's last row. Interlaced files, and files shown
// with an EXIF orientation, are decoded whole.
void run_png(const Plan& plan, Worker& w, const uint8_t* data, size_t size, const RunKey& key, uint8_t* slot,
             int out_h, int out_w, SampleResult* res) {
  PngImage img(data, size, plan.spec.max_pixels, plan.spec.allow_truncated, plan.k());
  const int ih = img.height(), iw = img.width(), orient = shown_orientation(plan.spec, img.orientation());
  const Geometry& g = plan_whole(plan, ih, iw, orient, key, out_h, out_w, res);
  Span sy, sx;
  if (img.interlaced() || orient != 1) {  // decoded whole (then rotated)
    int oh, ow;
    oriented_dims(orient, ih, iw, &oh, &ow);
    build_tables(plan, g, oh, ow, 1, w, &sy, &sx);
    const size_t row_bytes = static_cast<size_t>(iw) * 4;  // ih * iw is within max_pixels
    grow(&w.full, checked_mul(static_cast<size_t>(ih), row_bytes) + (static_cast<size_t>(w.ht.ksize) + 4) * 4);
    w.rows.resize(static_cast<size_t>(ih));
    for (int y = 0; y < ih; ++y) w.rows[y] = w.full.data() + static_cast<size_t>(y) * row_bytes;
    img.read_all(w.rows.data());
    res->decoded_pixels = static_cast<int64_t>(ih) * iw;
    hpass_whole(plan, w, orient, ih, iw);
  } else {
    build_tables(plan, g, ih, iw, 1, w, &sy, &sx);
    const size_t rs = block_stride(static_cast<size_t>(iw) + w.ht.ksize + 4);
    const int nblock = block_rows(rs);
    grow(&w.row, checked_mul(rs, nblock));
    uint8_t* inter = prepare_inter(plan, w);
    const size_t stride = inter_stride(w.ht);
    uint8_t* ptrs[kRowBlock];
    uint8_t* outs[kRowBlock];
    for (int i = 0; i < nblock; ++i) ptrs[i] = w.row.data() + rs * i;
    for (int y = 0; y < w.vt.src_lo; y += nblock) img.read_rows(ptrs, std::min(nblock, w.vt.src_lo - y));
    for (int y = w.vt.src_lo; y < w.vt.src_hi; y += nblock) {
      const int nb = std::min(nblock, w.vt.src_hi - y);
      img.read_rows(ptrs, nb);
      for (int i = 0; i < nb; ++i) outs[i] = inter + static_cast<size_t>(y + i - w.vt.src_lo) * stride;
      hpass_rows(plan.k(), ptrs, nb, 0, w.ht, outs);
    }
    res->decoded_pixels = static_cast<int64_t>(w.vt.src_hi) * iw;
  }
  if (img.truncated()) res->warnings = 1;  // allow_truncated: reported as for a cut-off JPEG
  finish_sample(plan, w, res->params, sy, sx, slot, res);
}

// A still WebP (Note [WebP decoding]): only the rectangle the resampler reads is decoded (for an
// image shown with an EXIF orientation, the stored rectangle that shows it, turned afterwards),
// then resampled.
void run_webp(const Plan& plan, Worker& w, const uint8_t* data, size_t size, const WebpInfo& info, const RunKey& key,
              uint8_t* slot, int out_h, int out_w, SampleResult* res) {
  const int ih = info.height, iw = info.width, orient = shown_orientation(plan.spec, info.orientation);
  const Geometry& g = plan_whole(plan, ih, iw, orient, key, out_h, out_w, res);
  int oh, ow;
  oriented_dims(orient, ih, iw, &oh, &ow);
  Span sy, sx;
  build_tables(plan, g, oh, ow, 1, w, &sy, &sx);
  // The rectangle holds the rows and columns the tables read plus libwebp's margin; each row
  // has room for what the horizontal pass reads past its last pixel.
  const Rect st = stored_rect(orient, ih, iw, read_rect(w));
  const WebpRect r = webp_region_rect(info, st.x0, st.y0, st.w, st.h);
  const size_t rs = block_stride(static_cast<size_t>(r.width) + w.ht.ksize + 4);
  grow(&w.full, checked_mul(rs, static_cast<size_t>(r.height)));
  webp_decode_rect(data, size, r, w.full.data(), rs);
  res->decoded_pixels = static_cast<int64_t>(r.width) * r.height;
  if (orient == 1)
    hpass_image(plan, w, w.full.data(), rs, r.top, r.left);
  else
    hpass_oriented_rect(plan, w, orient, ih, iw, Rect{r.top, r.left, r.height, r.width}, w.full.data(), rs);
  finish_sample(plan, w, res->params, sy, sx, slot, res);
}

void run_array(const Plan& plan, Worker& w, const SampleInput& in, const RunKey& key, uint8_t* slot, int out_h,
               int out_w, SampleResult* res) {
  if (in.h <= 0 || in.w <= 0 || !(in.c == 1 || in.c == 3 || in.c == 4))
    throw Error(ErrorKind::kInvalid, "array must be HxW or HxWxC uint8 with C in 1, 3, 4");
  if (plan.spec.max_pixels > 0 && static_cast<int64_t>(in.h) * in.w > plan.spec.max_pixels)
    throw Error(ErrorKind::kTooLarge, "array has more pixels than max_pixels");
  res->params = plan_sample(plan.spec, in.h, in.w, key);
  const Geometry& g = res->params.geom;
  if (g.out_h != out_h || g.out_w != out_w) throw Error(ErrorKind::kInvalid, "output size differs from the slot");
  Span sy, sx;
  build_tables(plan, g, in.h, in.w, 1, w, &sy, &sx);
  const int x0 = w.ht.src_lo, xw = w.ht.src_hi - w.ht.src_lo;
  grow(&w.row, checked_mul(static_cast<size_t>(xw) + w.ht.ksize + 4, 4));
  uint8_t* inter = prepare_inter(plan, w);
  const size_t stride = inter_stride(w.ht);
  for (int y = w.vt.src_lo; y < w.vt.src_hi; ++y) {
    const uint8_t* src = in.data + y * in.row_stride + x0 * in.px_stride;
    uint8_t* dst = w.row.data();
    for (int x = 0; x < xw; ++x, src += in.px_stride, dst += 4) {
      if (in.c == 1) {
        dst[0] = dst[1] = dst[2] = src[0];
      } else {
        dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2];
      }
      dst[3] = 0;
    }
    hpass_row(plan.k(), w.row.data(), x0, w.ht, inter + static_cast<size_t>(y - w.vt.src_lo) * stride);
  }
  finish_sample(plan, w, res->params, sy, sx, slot, res);
}

// Note [Multi-view decode] (pipeline.h): one JPEG decode for every view.
void run_jpeg_views(const ViewOutput* views, int nv, Worker& w, const JpegInput& input, const RunKey& key,
                    SampleResult* res) {
  const PlanSpec& s0 = views[0].plan->spec;
  JpegDecoder::Session img = w.dec.open(input, limits_of(s0));
  const JpegHeader hdr = img.header();
  const int orient = shown_orientation(s0, hdr.orientation);
  int oh, ow;
  oriented_dims(orient, hdr.height, hdr.width, &oh, &ow);
  int denom = 8;
  for (int v = 0; v < nv; ++v) {
    res[v].params = plan_sample(views[v].plan->spec, oh, ow, view_key(key, v));
    const Geometry& g = res[v].params.geom;
    if (g.out_h != views[v].out_h || g.out_w != views[v].out_w)
      throw Error(ErrorKind::kInvalid, "output size differs from the slot");
    denom = std::min(denom, choose_denom(views[v].plan->spec, g));
  }
  const int dec_h = (hdr.height + denom - 1) / denom, dec_w = (hdr.width + denom - 1) / denom;
  int odh, odw;
  oriented_dims(orient, dec_h, dec_w, &odh, &odw);
  // The stored rectangle every view reads, and the widest horizontal kernel (its read-ahead).
  int y0 = dec_h, y1 = 0, xa = dec_w, xb = 0, ksize = 0;
  Span sy, sx;
  for (int v = 0; v < nv; ++v) {
    build_tables(*views[v].plan, res[v].params.geom, odh, odw, denom, w, &sy, &sx);
    const Rect st = stored_rect(orient, dec_h, dec_w, read_rect(w));
    y0 = std::min(y0, st.y0), y1 = std::max(y1, st.y0 + st.h);
    xa = std::min(xa, st.x0), xb = std::max(xb, st.x0 + st.w);
    ksize = std::max(ksize, w.ht.ksize);
  }
  SpliceWindow win;
  JpegDecoder::Session region =
      region_session(s0, w, input, std::move(img), denom, dec_h, dec_w, Rect{y0, xa, y1 - y0, xb - xa}, &win);
  int x0, xw, full_h, full_w;
  const int want_lo = std::max(0, xa - 1), want_hi = std::min(dec_w, xb + 1);
  region.start(denom, want_lo - win.x_off, want_hi - want_lo, &x0, &xw, &full_h, &full_w);
  if (full_h != win.h || full_w != win.w) throw Error(ErrorKind::kDecode, "unexpected scaled size");
  x0 += win.x_off;
  region.skip_rows(y0 - win.y_off);
  const int rh = y1 - y0;
  const size_t row_bytes = checked_mul(static_cast<size_t>(xw), 4);
  grow(&w.full, checked_mul(static_cast<size_t>(rh), row_bytes) + (static_cast<size_t>(ksize) + 4) * 4);
  uint8_t* ptrs[kRowBlock];
  for (int y = 0; y < rh; y += kRowBlock) {
    const int nb = std::min(kRowBlock, rh - y);
    for (int i = 0; i < nb; ++i) ptrs[i] = w.full.data() + static_cast<size_t>(y + i) * row_bytes;
    region.read_rows(ptrs, nb);
  }
  {  // the session ends here: libjpeg's memory for the image is freed before the views' passes
    JpegDecoder::Session done = std::move(region);
  }
  // Shown with an EXIF orientation: the decoded rectangle is turned once, for every view.
  const uint8_t* src = w.full.data();
  size_t img_bytes = row_bytes;
  int top = y0, left = x0;
  if (orient != 1) {
    const Rect dr = displayed_rect(orient, dec_h, dec_w, Rect{y0, x0, rh, xw});
    img_bytes = static_cast<size_t>(dr.w) * 4;
    grow(&w.oriented, checked_mul(static_cast<size_t>(dr.h), img_bytes) + (static_cast<size_t>(ksize) + 4) * 4);
    apply_orientation(orient, w.full.data(), rh, xw, row_bytes, w.oriented.data());
    src = w.oriented.data(), top = dr.y0, left = dr.x0;
  }
  for (int v = 0; v < nv; ++v) {
    const ViewOutput& vo = views[v];
    res[v].decode_denom = denom;
    res[v].orientation = orient;
    res[v].decoded_pixels = static_cast<int64_t>(rh) * xw;
    res[v].spliced_bytes = win.bytes;
    build_tables(*vo.plan, res[v].params.geom, odh, odw, denom, w, &sy, &sx);
    hpass_image(*vo.plan, w, src, img_bytes, top, left);
    finish_sample(*vo.plan, w, res[v].params, sy, sx, vo.slot, &res[v]);
  }
}

// A PNG or still WebP for several views: decoded whole once into w.full, then every view.
void run_whole_views(const ViewOutput* views, int nv, Worker& w, const uint8_t* data, size_t size, bool png,
                     const WebpInfo* info, const RunKey& key, SampleResult* res) {
  const PlanSpec& s0 = views[0].plan->spec;
  std::unique_ptr<PngImage> img;
  int ih, iw, orient;
  if (png) {
    img.reset(new PngImage(data, size, s0.max_pixels, s0.allow_truncated, views[0].plan->k()));
    ih = img->height(), iw = img->width(), orient = shown_orientation(s0, img->orientation());
  } else {
    ih = info->height, iw = info->width, orient = shown_orientation(s0, info->orientation);
  }
  int oh, ow;
  oriented_dims(orient, ih, iw, &oh, &ow);
  Span sy, sx;
  int ksize = 0;  // the widest horizontal kernel: what the pass reads past a row's end
  for (int v = 0; v < nv; ++v) {
    const Geometry& g = plan_whole(*views[v].plan, ih, iw, orient, view_key(key, v), views[v].out_h, views[v].out_w,
                                   &res[v]);
    build_tables(*views[v].plan, g, oh, ow, 1, w, &sy, &sx);
    ksize = std::max(ksize, w.ht.ksize);
  }
  const size_t row_bytes = static_cast<size_t>(iw) * 4;  // ih * iw is within max_pixels
  grow(&w.full, checked_mul(static_cast<size_t>(ih), row_bytes) + (static_cast<size_t>(ksize) + 4) * 4);
  bool truncated = false;
  if (png) {
    w.rows.resize(static_cast<size_t>(ih));
    for (int y = 0; y < ih; ++y) w.rows[y] = w.full.data() + static_cast<size_t>(y) * row_bytes;
    img->read_all(w.rows.data());
    truncated = img->truncated();
  } else {
    webp_decode_rect(data, size, webp_region_rect(*info, 0, 0, iw, ih), w.full.data(), row_bytes);
  }
  // Shown with an EXIF orientation: the image is turned once, for every view.
  const uint8_t* src = w.full.data();
  size_t img_bytes = row_bytes;
  if (orient != 1) {
    img_bytes = static_cast<size_t>(ow) * 4;
    grow(&w.oriented, checked_mul(static_cast<size_t>(oh), img_bytes) + (static_cast<size_t>(ksize) + 4) * 4);
    apply_orientation(orient, w.full.data(), ih, iw, w.oriented.data());
    src = w.oriented.data();
  }
  for (int v = 0; v < nv; ++v) {
    const ViewOutput& vo = views[v];
    build_tables(*vo.plan, res[v].params.geom, oh, ow, 1, w, &sy, &sx);
    res[v].decoded_pixels = static_cast<int64_t>(ih) * iw;
    if (truncated) res[v].warnings = 1;
    hpass_image(*vo.plan, w, src, img_bytes);
    finish_sample(*vo.plan, w, res[v].params, sy, sx, vo.slot, &res[v]);
  }
}

// Releases scratch that one large image grew past kScratchKeepBytes, when the sample is done
// (Note [Scratch]).
struct TrimScratch {
  Worker& w;
  ~TrimScratch() { w.trim(kScratchKeepBytes); }
};

}  // namespace

// Distinct page offsets for the buffers that are streamed together (Note [Scratch placement]).
Worker::Worker() : file(0), row(1024), inter(2048), orow(3072), full(512), oriented(1536), stage(2560) {}

void Worker::trim(size_t keep) {
  for (Scratch* v : {&file, &row, &inter, &orow, &full, &oriented, &stage})
    if (v->capacity() > keep) v->release();
  if (aug.capacity() > keep) aug.release();
  if (mix.capacity() > keep) mix.release();
  if (field.capacity() > keep) field.release();
  if (jpeg_all.capacity() > keep) jpeg_all.release();
  if (spliced.capacity() > keep) spliced.release();
  if (restarts.starts.capacity() * 8 > keep) restarts = RestartLayout{};
}

namespace {

// Runs one sample's work; an exception becomes that sample's error (kind and message) and never
// leaves the worker thread: a decoder's Error as it is, an allocation failure as too large, any
// other C++ exception as a decode error.
template <class Work>
bool guarded(SampleResult* res, Work&& work) {
  ErrorKind kind;
  std::string message;
  try {
    return work();
  } catch (const Error& e) {
    kind = e.kind();
    message = e.what();
  } catch (const std::bad_alloc&) {
    kind = ErrorKind::kTooLarge;
    message = "out of memory";
  } catch (const std::exception& e) {
    kind = ErrorKind::kDecode;
    message = e.what();
  }
  res->status = SampleStatus::kError;
  res->kind = kind;
  res->message = std::move(message);
  return false;
}

}  // namespace

bool decode_only(const PlanSpec& spec, Worker& w, const SampleInput& in, SampleResult* res) {
  TrimScratch trim{w};
  return guarded(res, [&] {
    Encoded e;
    load(w, in, &e, false);
    const uint8_t* data = e.data;
    const size_t size = e.size;
    if (is_png(data, size)) {  // libpng's own whole decode into RGBX rows (no fast path)
      PngImage img(data, size, spec.max_pixels, false, kernels_for(Simd::kScalar), false);
      const size_t row_bytes = static_cast<size_t>(img.width()) * 4;
      grow(&w.full, checked_mul(static_cast<size_t>(img.height()), row_bytes));
      w.rows.resize(static_cast<size_t>(img.height()));
      for (int y = 0; y < img.height(); ++y) w.rows[y] = w.full.data() + static_cast<size_t>(y) * row_bytes;
      img.read_all(w.rows.data());
      res->status = SampleStatus::kOk;
      return true;
    }
    if (is_webp(data, size)) {  // libwebp's whole decode into RGBX
      const WebpInfo info = webp_info(data, size, spec.max_pixels);
      if (info.animated) throw Error(ErrorKind::kUnsupported, "animated WebP (no native decoder)");
      const size_t row_bytes = checked_mul(static_cast<size_t>(info.width), 4);
      grow(&w.full, checked_mul(static_cast<size_t>(info.height), row_bytes));
      webp_decode(data, size, info, w.full.data(), row_bytes);
      res->status = SampleStatus::kOk;
      return true;
    }
    if (!is_jpeg(data, size)) throw Error(ErrorKind::kDecode, "not a JPEG, PNG or WebP");
    JpegDecoder::Session img = w.dec.open(e.jpeg, limits_of(spec));
    const int width = img.header().width;
    int full_h, full_w;
    decode_whole(std::move(img), w, 1, width, &full_h, &full_w);
    res->status = SampleStatus::kOk;
    return true;
  });
}

bool probe_sample(const Plan& plan, Worker& w, const SampleInput& in, const RunKey& key, SampleResult* res) {
  TrimScratch trim{w};
  return guarded(res, [&] {
    int h, wd;
    if (in.kind == SampleInput::kArray) {
      h = in.h;
      wd = in.w;
    } else {
      Encoded e;
      load(w, in, &e, false);
      const uint8_t* data = e.data;
      const size_t size = e.size;
      const WebpInfo webp =
          is_webp(data, size) && webp_native() ? webp_info(data, size, plan.spec.max_pixels) : WebpInfo();
      if (is_png(data, size) && png_native()) {
        const PngImage img(data, size, plan.spec.max_pixels, false, plan.k(), false);  // the header only
        res->orientation = shown_orientation(plan.spec, img.orientation());
        oriented_dims(res->orientation, img.height(), img.width(), &h, &wd);
      } else if (webp.width > 0 && !webp.animated) {
        res->orientation = shown_orientation(plan.spec, webp.orientation);
        oriented_dims(res->orientation, webp.height, webp.width, &h, &wd);
      } else {
        if (!is_jpeg(data, size)) {
          res->status = SampleStatus::kNotJpeg;
          res->message = "no native decoder for this format";
          return false;
        }
        // A session that ends with this statement: the header is all a probe reads.
        const JpegHeader hdr = w.dec.open(e.jpeg, limits_of(plan.spec)).header();
        res->orientation = shown_orientation(plan.spec, hdr.orientation);
        oriented_dims(res->orientation, hdr.height, hdr.width, &h, &wd);
      }
    }
    res->params = plan_sample(plan.spec, h, wd, key);
    const Geometry& geom = res->params.geom;
    // An image-dependent output (Resize(int) alone) is bounded too: a 1x65500 image resized to a
    // shorter side of 256 would be 256x16768000 (51 GB of float32) from a file of a few bytes.
    const int64_t out_px = static_cast<int64_t>(geom.out_h) * geom.out_w;
    if (plan.spec.max_pixels > 0 && out_px > plan.spec.max_pixels)
      throw Error(ErrorKind::kTooLarge, "output would be " + std::to_string(geom.out_h) + "x" +
                                            std::to_string(geom.out_w) + " = " + std::to_string(out_px) +
                                            " pixels, over the limit of " + std::to_string(plan.spec.max_pixels) +
                                            " (max_pixels)");
    res->status = SampleStatus::kOk;
    return true;
  });
}

namespace {

// One sample's input to the decoder that takes it (the callbacks: an array, a PNG, a still WebP,
// a JPEG), inside guarded(res): failures become res's. Any other format comes back "not JPEG",
// with the bytes read kept for the Pillow fallback (Note [Fallback bytes]).
template <class Array, class Png, class Webp, class Jpeg>
void dispatch(Worker& w, const SampleInput& in, int64_t max_pixels, SampleResult* res,
              std::atomic<int64_t>* keep_budget, Array&& array, Png&& png, Webp&& webp, Jpeg&& jpeg) {
  guarded(res, [&] {
    if (in.kind == SampleInput::kArray) {
      array();
      return true;
    }
    Encoded e;
    load(w, in, &e, false);
    const uint8_t* data = e.data;
    const size_t size = e.size;
    if (is_png(data, size) && png_native()) {
      png(data, size);
      return true;
    }
    if (is_webp(data, size) && webp_native()) {  // without libwebp, a WebP goes to the fallback
      const WebpInfo info = webp_info(data, size, max_pixels);
      if (!info.animated) {
        webp(data, size, info);
        return true;
      }  // animated: the Pillow fallback takes the first frame
    }
    if (!is_jpeg(data, size)) {
      res->status = SampleStatus::kNotJpeg;
      res->message = "no native decoder for this format";
      if (e.file) {  // Note [Fallback bytes]
        const int64_t n = e.file->size();
        if (keep_budget && keep_budget->fetch_sub(n) >= n) {
          const size_t all = read_more(*e.file, &w.file, size, static_cast<size_t>(n));
          res->encoded.assign(w.file.data(), w.file.data() + all);
        }
      }
      return true;
    }
    jpeg(e.jpeg);
    return true;
  });
}

}  // namespace

void run_sample(const Plan& plan, Worker& w, const SampleInput& in, const RunKey& key, uint8_t* slot, int out_h,
                int out_w, SampleResult* res, std::atomic<int64_t>* keep_budget) {
  TrimScratch trim{w};
  res->status = SampleStatus::kOk;
  res->warnings = 0;
  const int64_t sessions = w.dec.decode_sessions();
  dispatch(
      w, in, plan.spec.max_pixels, res, keep_budget,
      [&] { run_array(plan, w, in, key, slot, out_h, out_w, res); },
      [&](const uint8_t* data, size_t size) { run_png(plan, w, data, size, key, slot, out_h, out_w, res); },
      [&](const uint8_t* data, size_t size, const WebpInfo& info) {
        run_webp(plan, w, data, size, info, key, slot, out_h, out_w, res);
      },
      [&](const JpegInput& jpeg) {
        run_jpeg(plan, w, jpeg, key, slot, out_h, out_w, res);
        res->warnings = w.dec.warnings();  // the session ended with run_jpeg; its count stays
      });
  // the decoder's count of decompressions this sample started
  res->decode_sessions = static_cast<int>(w.dec.decode_sessions() - sessions);
}

RunKey view_key(const RunKey& key, int v) {
  if (v == 0) return key;
  uint64_t z = key.seed ^ (static_cast<uint64_t>(v) * 0x9E3779B97F4A7C15ull);
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return RunKey{z ^ (z >> 31), key.epoch, key.index};
}

void run_views(const ViewOutput* views, int n_views, Worker& w, const SampleInput& in, const RunKey& key,
               SampleResult* res, std::atomic<int64_t>* keep_budget) {
  TrimScratch trim{w};
  for (int v = 0; v < n_views; ++v) {
    res[v].status = SampleStatus::kOk;
    res[v].warnings = 0;
  }
  const int64_t sessions = w.dec.decode_sessions();
  dispatch(
      w, in, views[0].plan->spec.max_pixels, &res[0], keep_budget,
      [&] {
        for (int v = 0; v < n_views; ++v)
          run_array(*views[v].plan, w, in, view_key(key, v), views[v].slot, views[v].out_h, views[v].out_w, &res[v]);
      },
      [&](const uint8_t* data, size_t size) { run_whole_views(views, n_views, w, data, size, true, nullptr, key, res); },
      [&](const uint8_t* data, size_t size, const WebpInfo& info) {
        run_whole_views(views, n_views, w, data, size, false, &info, key, res);
      },
      [&](const JpegInput& jpeg) {
        run_jpeg_views(views, n_views, w, jpeg, key, res);
        for (int v = 0; v < n_views; ++v) res[v].warnings = w.dec.warnings();
      });
  // One sample: its status, and the decoder's count of decompressions, hold for every view.
  for (int v = 0; v < n_views; ++v) {
    res[v].decode_sessions = static_cast<int>(w.dec.decode_sessions() - sessions);
    if (v > 0 && res[0].status != SampleStatus::kOk) {
      res[v].status = res[0].status;
      res[v].kind = res[0].kind;
      res[v].message = res[0].message;
    }
  }
}

}  // namespace fastprep
