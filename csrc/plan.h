// What a Compose compiles to, and the per-image geometry derived from it in source coordinates.
#pragma once

#include <cstdint>

#include "common.h"
#include "output.h"

namespace fastprep {

struct PlanSpec {
  // Geometry, in the order torchvision applies it.
  int resize_mode = 0;  // 0 none, 1 shorter side = resize_size, 2 exact (resize_h, resize_w)
  int resize_size = 0, resize_h = 0, resize_w = 0, max_size = 0;
  Interp interp = Interp::kBilinear;
  bool antialias = true;
  int crop_h = 0, crop_w = 0;  // CenterCrop after the resize; 0 = none
  bool rrc = false;            // RandomResizedCrop to (rrc_h, rrc_w)
  int rrc_h = 0, rrc_w = 0;
  double scale_lo = 0.08, scale_hi = 1.0, ratio_lo = 3.0 / 4.0, ratio_hi = 4.0 / 3.0;
  double flip_p = 0.0;  // RandomHorizontalFlip probability
  // Output.
  DType dtype = DType::kF32;
  Layout layout = Layout::kCHW;
  Color color = Color::kRGB;
  int gray_channels = 1;  // kGray: 1, or 3 equal channels (torchvision's Grayscale(num_output_channels=3))
  bool normalize = false;
  float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
  bool unit_range = true;  // values scaled to [0, 1] before normalising (ToTensor)
  // Decode.
  bool exact = false;        // no DCT-domain downscaling
  int64_t max_pixels = 0;    // 0 = unlimited
  bool strict = true;        // corrupt-data warnings are errors
  bool allow_truncated = false;  // a JPEG that ends early decodes, missing rows gray (see JpegLimits)
  Simd simd = Simd::kScalar;
};

// Checks a spec; throws Error(kInvalid) naming the problem.
void validate(const PlanSpec& s);

struct Plan {
  PlanSpec spec;
  OutputSpec out;
  explicit Plan(const PlanSpec& s);
  // Output slot size when it does not depend on the image; false otherwise (Resize(int) alone).
  bool fixed_size(int* h, int* w) const;
};

struct Geometry {
  int src_h = 0, src_w = 0;                    // displayed source size (after EXIF orientation)
  int box_t = 0, box_l = 0, box_h = 0, box_w = 0;  // source box mapped onto the resized image
  int rz_h = 0, rz_w = 0;                      // size the box is resized to
  int off_y = 0, off_x = 0;                    // resized index of slot pixel (0, 0); < 0 pads
  int out_h = 0, out_w = 0;                    // slot size
  bool flip = false;
};

// Randomness is a pure function of (seed, epoch, index): a splitmix64 stream per sample.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t epoch, uint64_t index, uint64_t stream);
  uint64_t next();
  double uniform();                    // [0, 1)
  double uniform(double lo, double hi);
  int64_t randint(int64_t lo, int64_t hi);  // [lo, hi)

 private:
  uint64_t state_;
};

Geometry plan_geometry(const PlanSpec& s, int src_h, int src_w, uint64_t seed, uint64_t epoch, uint64_t index);

// torchvision's RandomResizedCrop.get_params, drawing from `rng`: (top, left, height, width).
void random_resized_crop_box(const PlanSpec& s, int h, int w, Rng& rng, int box[4]);

}  // namespace fastprep
