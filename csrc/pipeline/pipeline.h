// One sample through the fused pass: bytes -> header -> plan -> (region) decode -> horizontal
// pass per decoded row -> vertical pass -> output stage into the caller's slot.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/augment.h"
#include "core/common.h"
#include "codecs/jpeg_decoder.h"
#include "codecs/jpeg_restart.h"
#include "pipeline/plan.h"
#include "kernels/resample.h"
#include "core/scratch.h"

namespace fastprep {

struct SampleInput {
  enum Kind { kPath = 0, kBytes = 1, kArray = 2 } kind = kBytes;
  std::string path;               // kPath: file to read
  int64_t offset = -1;            // kPath: >= 0 reads only bytes [offset, offset + size) (a tar member)
  const uint8_t* data = nullptr;  // kBytes: encoded image; kArray: first pixel
  size_t size = 0;                // kBytes: encoded size; kPath with offset >= 0: member size
  int h = 0, w = 0, c = 0;        // kArray: uint8 pixels, c in {1, 3, 4} (alpha ignored)
  int64_t row_stride = 0, px_stride = 0;  // kArray, in bytes
};

enum class SampleStatus : int { kOk = 0, kError = 1, kNotJpeg = 2 };

struct SampleResult {
  SampleStatus status = SampleStatus::kOk;
  ErrorKind kind = ErrorKind::kDecode;
  std::string message;
  SampleParams params;  // what the sample drew (plan_sample)
  ImageNorm norm;       // per-image table statistics (two-phase output only)
  int decode_denom = 1;  // DCT scaling used (1 = full resolution)
  int orientation = 1;   // EXIF orientation applied (1: none, or apply_exif off)
  int64_t decoded_pixels = 0;  // pixels the decoder produced (the region it decoded)
  int warnings = 0;  // corrupt-data warnings tolerated (strict=false, or a truncation allowed)
  int decode_sessions = 0;  // JPEG decompressions this sample started (the decoder's own count)
  int64_t spliced_bytes = 0;  // the restart-spliced sub-image decoded instead of the file (0: none)
  std::vector<uint8_t> encoded;  // kNotJpeg of a file: the bytes read (Note [Fallback bytes])
};

// Note [Scratch]
// Per-thread state, reused across samples: no allocation per image once warmed up. A buffer that
// one large image grew past kScratchKeepBytes (64 MiB: an RGBX image of 16 MP) is released when
// that sample ends, so a few huge photos do not pin gigabytes per thread for the rest of a run;
// ImageNet-sized photos never reach it, and for images that do, the fresh pages cost a few
// percent of their decode.
constexpr size_t kScratchKeepBytes = size_t(64) << 20;

struct Worker {
  JpegDecoder dec;
  Worker();
  Scratch file, row, inter, orow, full, oriented;
  Scratch stage;                        // two-phase output: the sample's uint8 rows
  std::vector<uint8_t*> rows;           // two-phase output: the staged image's rows
  std::vector<uint8_t> lut;             // two-phase output: the per-sample table
  LevelHistogram hist;
  Scratch aug{3584};                    // the augmentation ops' copy of the staged image
  Scratch mix{1536};                    // AugMix: the original, a chain and the float mix
  Scratch field;                        // ElasticTransform: the displacement planes
  // Note [Restart splicing]: a large JPEG file's bytes, read whole; its restart layout; the
  // spliced sub-image.
  Scratch jpeg_all;
  RestartLayout restarts;
  Scratch spliced;
  AxisTable ht, vt;
  // Frees every buffer whose capacity is over `keep` bytes.
  void trim(size_t keep);
};

// Header-only look at a sample (files are read into w.file): the geometry it would get.
// Returns false and fills *res when the sample is not a JPEG or fails.
bool probe_sample(const Plan& plan, Worker& w, const SampleInput& in, const RunKey& key, SampleResult* res);

// Note [Fallback bytes]
// A file that no native decoder takes (BMP, GIF, TIFF, animated WebP, ...) comes back "not JPEG"
// and Python decodes it with Pillow. So that it is not read from disk a second time, run_sample
// copies the bytes it read into res->encoded (Batch.take_encoded hands them to Python), as long as
// the run's `keep_budget` (kFallbackKeepBytes per Batch::run, shared by its threads) lasts; past
// it (a batch of huge TIFFs) the fallback reads the file itself, so memory stays bounded.
constexpr int64_t kFallbackKeepBytes = int64_t(512) << 20;

// Runs the fused pass into `slot` (out_h x out_w x channels of the plan's dtype). Never throws:
// failures land in *res, and a failed sample's slot content is unspecified.
void run_sample(const Plan& plan, Worker& w, const SampleInput& in, const RunKey& key, uint8_t* slot, int out_h,
                int out_w, SampleResult* res, std::atomic<int64_t>* keep_budget = nullptr);

// Note [Multi-view decode]
// Several views of one sample (self-supervised recipes: SimCLR's two, DINO's 2 + 8) share one
// decode. Each view has its own plan, its own random key (view_key) and its own output slot.
// The JPEG is decoded once: each view draws its geometry and builds its tables, the stored
// rectangles they read are united (plus the one-column margin of Note [Bounded reads]'s
// region decode, for the chroma upsampling) and that rectangle is decoded into memory at the
// largest scale any view needs (the smallest DCT denominator: 1 in exact mode), then every view
// resamples its part of it. A region decode gives the same pixels as a full decode, so each
// view is byte-identical to its plan run alone with its key (in fast mode a view may get a finer
// DCT scale than alone). PNG and WebP are decoded whole once; arrays are read by every view.
// The views' plans must share their decoder options (max_pixels, strict, allow_truncated,
// apply_exif): the first view's are used. A failure of any view fails the sample (every view).
struct ViewOutput {
  const Plan* plan;
  uint8_t* slot;
  int out_h, out_w;
};
// View v's random key: view 0 is the sample's own key (so a one-view run is the plain pass); view
// v > 0 has the seed splitmix64(seed ^ (v * golden ratio)), so a view's draws do not depend on
// how many views there are.
RunKey view_key(const RunKey& key, int v);
void run_views(const ViewOutput* views, int n_views, Worker& w, const SampleInput& in, const RunKey& key,
               SampleResult* res, std::atomic<int64_t>* keep_budget = nullptr);

// The speed ceiling: the library's own full decode of a JPEG (libjpeg-turbo), PNG (libpng) or
// still WebP (libwebp) sample (RGBX, full size, no transform), into the worker's scratch.
// Returns false and fills *res on failure.
bool decode_only(const PlanSpec& spec, Worker& w, const SampleInput& in, SampleResult* res);

// Maximum size of a file read from a path (larger files are rejected from fstat).
constexpr int64_t kMaxFileBytes = int64_t(1) << 31;

// Note [Bounded reads]
// A path sample is never read whole up front: its first 128 KiB tell its format, and then
//   * a JPEG is read on demand by its decoder (JpegInput), in chunks into the same per-thread
//     buffer, only as far as decoding gets: a crop that ends above the last row stops reading
//     there, and bytes after the image are never read; a restart-indexed JPEG (Note [Restart
//     splicing]) is read to the end of its scan, in 256 KiB chunks, and the splice decoded;
//   * a PNG is read chunk by chunk up to its IEND, a WebP up to the end of its RIFF chunk;
//   * any other file is read whole only when its bytes are kept for the Pillow fallback (Note
//     [Fallback bytes]), else not past its first chunk.
// So a file's size (up to the 2 GiB limit) decides neither the memory a thread holds nor the
// bytes it reads: a JPEG followed by 1.5 GB of padding costs 128 KiB of buffer and reads the
// image's own bytes only (tests/test_faults.py measures both). An empty file is an error ("empty
// file") before anything else.

}  // namespace fastprep
