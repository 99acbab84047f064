#include "codecs/jpeg_restart.h"

#include <algorithm>
#include <cstring>

namespace fastprep {

// Note [Restart splicing]
// A restart marker (RSTm) ends an interval of DRI MCUs: the encoder pads the bit stream to a
// byte, and the decoder resets its DC predictions, so an interval's bytes decode on their own.
// When DRI divides the MCU columns, interval k covers MCU row k / ipr (ipr = columns / DRI),
// columns (k % ipr) * DRI onwards, and a rectangle of MCUs made of whole intervals is a JPEG of
// its own: the same tables, a frame of the rectangle's size, its intervals in order with their
// markers renumbered RST0, RST1, ... (mod 8). libjpeg-turbo decodes it as any other file, and
// only it: the Huffman decoding of the rows above the crop (which jpeg_skip_scanlines still
// does) and of the columns beside it (which jpeg_crop_scanline still does) is gone.
// Every block decodes to the same coefficients, so the pixels equal the full decode's wherever
// the decoder's context is the same. Only libjpeg-turbo's fancy (triangle) chroma upsampling
// reads across a block edge, one chroma sample each way, and at an image edge it replicates the
// edge sample instead: that changes the outermost output pixel (row) on each side and no other.
// So the rectangle must hold one pixel (row) more than is used on each side, at the decode
// scale, where the image does not end first: exactly the span a region decode already asks
// libjpeg for (Note [Bounded reads]'s one-column margin), now in rows too.
// The layout is found by a scan of the entropy-coded data for 0xFF bytes (memchr: 0xFF is
// followed by 0x00 inside data, by 0xD0..0xD7 at a restart), a few microseconds for a photo,
// so no index is stored. A file qualifies only when that scan finds exactly the sequence the
// header promises (RST0..7 in order, one fewer than the intervals, then EOI); anything else
// (a missing, extra or out-of-order marker, data cut off, a second scan) is decoded the usual
// way, which reports what is wrong as before. Damage inside intervals a crop does not read goes
// unseen, as damage in the rows below a crop always did (strict mode sees what is decoded).
// A file larger than the pipeline's first read (128 KiB) is read whole for the scan, up to
// 64 MiB (Note [Bounded reads]: beyond that, or for progressive files, the usual path).
// Used by pipeline.cpp (region_session: run_jpeg, run_jpeg_views); written by transcode_jpeg
// (fastprep optimize) and encode_jpeg (preprocess --format jpeg|tar).

namespace {

uint32_t be16(const uint8_t* p) { return (uint32_t(p[0]) << 8) | uint32_t(p[1]); }

bool parse_header(const uint8_t* d, size_t n, RestartLayout* out);  // the markers up to SOS
bool scan_intervals(const uint8_t* d, size_t n, RestartLayout* out);  // then the RST markers

}  // namespace

size_t restart_header_end(const uint8_t* d, size_t n) {
  RestartLayout L;
  return parse_header(d, n, &L) ? L.header_end : 0;
}

size_t restart_scan_end(const uint8_t* d, size_t from, size_t n) {
  size_t p = from;
  while (p < n) {
    const void* hit = std::memchr(d + p, 0xFF, n - p);
    if (!hit) return 0;
    size_t j = static_cast<size_t>(static_cast<const uint8_t*>(hit) - d) + 1;
    while (j < n && d[j] == 0xFF) ++j;
    if (j >= n) return 0;
    if (d[j] != 0x00 && !(d[j] >= 0xD0 && d[j] <= 0xD7)) return j + 1;
    p = j + 1;
  }
  return 0;
}

bool parse_restart_layout(const uint8_t* d, size_t n, RestartLayout* out) {
  RestartLayout& L = *out;
  if (!parse_header(d, n, &L)) return false;
  return scan_intervals(d, n, &L);
}

namespace {

bool parse_header(const uint8_t* d, size_t n, RestartLayout* out) {
  RestartLayout& L = *out;
  L = RestartLayout{};
  if (n < 4 || n > 0xFFFFFFF0u || d[0] != 0xFF || d[1] != 0xD8) return false;
  size_t pos = 2;
  bool have_sof = false;
  int max_h = 1, max_v = 1, nf = 0;
  while (true) {
    if (pos + 1 >= n || d[pos] != 0xFF) return false;
    size_t m = pos + 1;
    while (m < n && d[m] == 0xFF) ++m;  // fill bytes
    if (m + 2 >= n) return false;
    const uint8_t marker = d[m];
    if (marker == 0xD8 || marker == 0xD9 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x00)
      return false;  // standalone markers do not belong in a header
    const size_t len = be16(d + m + 1);
    if (len < 2 || m + 1 + len > n) return false;
    const uint8_t* seg = d + m + 3;  // the segment's payload, len - 2 bytes
    const size_t plen = len - 2;
    const size_t next = m + 1 + len;
    if (marker == 0xC0 || marker == 0xC1) {
      if (have_sof || plen < 6) return false;
      have_sof = true;
      if (seg[0] != 8) return false;  // 8-bit samples only
      L.height = static_cast<int>(be16(seg + 1));
      L.width = static_cast<int>(be16(seg + 3));
      nf = seg[5];
      if (L.height == 0 || L.width == 0 || nf < 1 || nf > 4 || plen < 6 + 3 * static_cast<size_t>(nf)) return false;
      for (int c = 0; c < nf; ++c) {
        const int hs = seg[6 + 3 * c + 1] >> 4, vs = seg[6 + 3 * c + 1] & 15;
        if (hs < 1 || hs > 4 || vs < 1 || vs > 4) return false;
        max_h = std::max(max_h, hs), max_v = std::max(max_v, vs);
      }
      L.components = nf;
      L.sof_dims = m + 4;
    } else if ((marker >= 0xC2 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC)) {
      return false;  // progressive, lossless, hierarchical or arithmetic-coded
    } else if (marker == 0xDD) {
      if (plen < 2) return false;
      L.interval = static_cast<int>(be16(seg));
    } else if (marker == 0xDA) {
      if (!have_sof || plen < 1 || seg[0] != nf) return false;  // one scan of every component
      if (plen < 1 + 2 * static_cast<size_t>(nf) + 3) return false;
      const uint8_t* tail = seg + 1 + 2 * nf;
      if (tail[0] != 0 || tail[1] != 63 || tail[2] != 0) return false;  // Ss, Se, Ah/Al of a sequential scan
      L.kept.emplace_back(static_cast<uint32_t>(pos), static_cast<uint32_t>(next - pos));
      L.header_end = next;
      break;
    }
    const bool app = marker >= 0xE0 && marker <= 0xEF;
    if (!(app && marker != 0xE0 && marker != 0xEE) && marker != 0xFE)
      L.kept.emplace_back(static_cast<uint32_t>(pos), static_cast<uint32_t>(next - pos));
    pos = next;
  }
  if (L.interval <= 0) return false;
  if (nf == 1) {
    L.mcu_w = L.mcu_h = 8;  // a one-component scan: one block per MCU
  } else {
    L.mcu_w = 8 * max_h;
    L.mcu_h = 8 * max_v;
  }
  L.mcus_per_row = (L.width + L.mcu_w - 1) / L.mcu_w;
  L.mcu_rows = (L.height + L.mcu_h - 1) / L.mcu_h;
  return L.mcus_per_row % L.interval == 0;
}

bool scan_intervals(const uint8_t* d, size_t n, RestartLayout* out) {
  RestartLayout& L = *out;
  const int64_t total = static_cast<int64_t>(L.mcu_rows) * L.intervals_per_row();
  // Every interval but the last ends with a 2-byte marker: a count the bytes cannot hold is a
  // lie, refused before anything is allocated for it.
  if (total < 1 || total > static_cast<int64_t>(n / 2) + 1) return false;
  L.starts.resize(static_cast<size_t>(total));
  L.ends.resize(static_cast<size_t>(total));
  int64_t k = 0;
  L.starts[0] = static_cast<uint32_t>(L.header_end);
  size_t p = L.header_end;
  while (true) {
    if (p >= n) return false;
    const void* hit = std::memchr(d + p, 0xFF, n - p);
    if (!hit) return false;  // no EOI: cut off
    const size_t i = static_cast<size_t>(static_cast<const uint8_t*>(hit) - d);
    size_t j = i + 1;
    while (j < n && d[j] == 0xFF) ++j;
    if (j >= n) return false;
    const uint8_t m = d[j];
    if (m == 0x00) {  // a stuffed 0xFF data byte
      p = j + 1;
      continue;
    }
    if (m >= 0xD0 && m <= 0xD7) {
      if (m != 0xD0 + (k & 7) || k + 1 >= total) return false;
      L.ends[static_cast<size_t>(k)] = static_cast<uint32_t>(i);
      ++k;
      L.starts[static_cast<size_t>(k)] = static_cast<uint32_t>(j + 1);
      p = j + 1;
      continue;
    }
    if (m != 0xD9 || k + 1 != total) return false;  // the scan must end with EOI, after every interval
    L.ends[static_cast<size_t>(k)] = static_cast<uint32_t>(i);
    return true;
  }
}

}  // namespace

bool restart_region_for(const RestartLayout& L, int y0, int y1, int x0, int x1, int* r0, int* r1, int* c0, int* c1) {
  const int n = L.interval;
  int a = std::max(0, y0 / L.mcu_h);
  int b = std::min(L.mcu_rows, (y1 + L.mcu_h - 1) / L.mcu_h);
  int c = std::max(0, x0 / L.mcu_w);
  int e = std::min(L.mcus_per_row, (x1 + L.mcu_w - 1) / L.mcu_w);
  c = c / n * n;
  e = std::min(L.mcus_per_row, (e + n - 1) / n * n);
  if (a >= b || c >= e) return false;
  if (a == 0 && b == L.mcu_rows && c == 0 && e == L.mcus_per_row) return false;
  *r0 = a, *r1 = b, *c0 = c, *c1 = e;
  return true;
}

size_t splice_restart_bound(const RestartLayout& L, int r0, int r1, int c0, int c1) {
  const int n = L.interval, ipr = L.intervals_per_row();
  const int i0 = c0 / n, i1 = c1 / n;
  size_t bytes = 4;  // SOI, EOI
  for (const auto& s : L.kept) bytes += s.second;
  for (int r = r0; r < r1; ++r) {  // the row's intervals as they lie in the file, markers included
    const size_t k0 = static_cast<size_t>(r) * ipr;
    bytes += L.ends[k0 + i1 - 1] - L.starts[k0 + i0] + 2 * static_cast<size_t>(i1 - i0);
  }
  return bytes;
}

size_t splice_restart_region(const uint8_t* d, const RestartLayout& L, int r0, int r1, int c0, int c1, uint8_t* out) {
  const int n = L.interval, ipr = L.intervals_per_row();
  const int i0 = c0 / n, i1 = c1 / n;
  uint8_t* o = out;
  *o++ = 0xFF, *o++ = 0xD8;
  for (const auto& s : L.kept) {
    std::memcpy(o, d + s.first, s.second);
    if (s.first < L.sof_dims && L.sof_dims < s.first + s.second) {
      uint8_t* dims = o + (L.sof_dims - s.first);
      const int hh = std::min(L.height, r1 * L.mcu_h) - r0 * L.mcu_h;
      const int ww = std::min(L.width, c1 * L.mcu_w) - c0 * L.mcu_w;
      dims[0] = static_cast<uint8_t>(hh >> 8), dims[1] = static_cast<uint8_t>(hh);
      dims[2] = static_cast<uint8_t>(ww >> 8), dims[3] = static_cast<uint8_t>(ww);
    }
    o += s.second;
  }
  int written = 0;
  const int count = (r1 - r0) * (i1 - i0);
  for (int r = r0; r < r1; ++r) {
    for (int i = i0; i < i1; ++i) {
      const size_t k = static_cast<size_t>(r) * ipr + i;
      const size_t len = L.ends[k] - L.starts[k];
      std::memcpy(o, d + L.starts[k], len);
      o += len;
      if (++written < count) {
        *o++ = 0xFF;
        *o++ = static_cast<uint8_t>(0xD0 + ((written - 1) & 7));
      }
    }
  }
  *o++ = 0xFF, *o++ = 0xD9;
  return static_cast<size_t>(o - out);
}

}  // namespace fastprep
