// Restart-indexed JPEGs (Note [Restart splicing]): where a baseline file's restart intervals lie,
// and the smaller JPEG made of the intervals that cover a rectangle. Pure byte work: no libjpeg.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace fastprep {

// The layout of a single-scan Huffman (baseline or extended sequential, 8-bit) JPEG whose restart
// interval divides its MCU columns, so that every MCU row starts a new interval.
struct RestartLayout {
  int width = 0, height = 0, components = 0;
  int mcu_w = 0, mcu_h = 0;         // pixels per MCU
  int mcus_per_row = 0, mcu_rows = 0;
  int interval = 0;                 // MCUs per restart interval (DRI)
  size_t sof_dims = 0;              // offset of the SOF's height field (then the width)
  size_t header_end = 0;            // offset of the first entropy-coded byte (just past the SOS)
  // Interval k's entropy-coded bytes are [starts[k], ends[k]): the RST marker (and any fill bytes)
  // after it are not included. One entry per interval, mcu_rows * intervals_per_row() in all.
  std::vector<uint32_t> starts, ends;
  // The header segments a splice keeps (offset of the 0xFF, bytes), in file order.
  std::vector<std::pair<uint32_t, uint32_t>> kept;
  int intervals_per_row() const { return mcus_per_row / interval; }
};

// Reads the markers and scans the entropy-coded data for its RST markers. Returns false, with
// `out` unspecified, when the file does not qualify: not baseline/extended sequential Huffman,
// several scans, no restart interval or one that does not divide the MCU columns, or restart
// data that is not exactly the expected sequence (a count, order or marker that differs, data
// that ends before EOI). Never reads outside [d, d + n).
bool parse_restart_layout(const uint8_t* d, size_t n, RestartLayout* out);

// For reading a file only as far as its image goes: the offset just past the SOS header when
// [d, d + n) holds a header that could qualify (0 otherwise), and, in the entropy-coded data
// from `from` on, the offset just past the first marker that ends the scan (not RSTn: EOI or
// anything else), or 0 when [from, n) does not reach one yet.
size_t restart_header_end(const uint8_t* d, size_t n);
size_t restart_scan_end(const uint8_t* d, size_t from, size_t n);

// The MCU rectangle [r0, r1) x [c0, c1) (c0 and c1 multiples of the interval) as a JPEG of its
// own: the file's tables and colour markers (APP0, APP14), a frame of the rectangle's size, and
// its intervals with their RST markers renumbered; other APPn and COM segments are left out.
// Written to `out`, which must hold splice_restart_bound(...) bytes; returns the bytes written.
// Decoded, every 8x8 block equals the original's, the restart resets standing in for the
// neighbours left out.
size_t splice_restart_bound(const RestartLayout& L, int r0, int r1, int c0, int c1);
size_t splice_restart_region(const uint8_t* d, const RestartLayout& L, int r0, int r1, int c0, int c1, uint8_t* out);

// The smallest MCU rectangle of whole intervals that holds the full-size pixel rectangle
// [y0, y1) x [x0, x1). Returns false when it would be the whole image.
bool restart_region_for(const RestartLayout& L, int y0, int y1, int x0, int x1, int* r0, int* r1, int* c0, int* c1);

}  // namespace fastprep
