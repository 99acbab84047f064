#include "pipeline/plan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/filter.h"
#include "kernels/noise.h"

namespace fastprep {

namespace {

// The op sequence and its containers (Note [Op sequence]).
void validate_sequence(const PlanSpec& s) {
  auto bad = [](const std::string& m) { throw Error(ErrorKind::kInvalid, m); };
  const size_t n = s.px_ops.size(), ng = s.group_kind.size();
  if (n > static_cast<size_t>(kMaxPixOps)) bad("at most " + std::to_string(kMaxPixOps) + " sequence ops per Compose");
  if (ng > static_cast<size_t>(kMaxGroups)) bad("at most " + std::to_string(kMaxGroups) + " containers per Compose");
  if (s.px_args.size() != n * kPixArgs || s.px_group.size() != n || s.px_member.size() != n)
    bad("px_args (kPixArgs per op), px_group and px_member must match px_ops");
  if (s.group_members.size() != ng) bad("group_members must have one entry per container");
  size_t weights = 0;
  for (size_t g = 0; g < ng; ++g) {
    if (s.group_kind[g] < 0 || s.group_kind[g] > 2) bad("container kind must be 0, 1 or 2");
    if (s.group_members[g] < 1 || s.group_members[g] > kMaxMembers)
      bad("a container holds 1 to " + std::to_string(kMaxMembers) + " members");
    weights += s.group_kind[g] == 0 ? 1 : (s.group_kind[g] == 1 ? s.group_members[g] : 0);
  }
  if (s.group_p.size() != weights) bad("group_p must hold RandomApply's p and RandomChoice's weights");
  for (double p : s.group_p)
    if (!(p >= 0.0 && p <= 1e300)) bad("container probabilities and weights must be finite and >= 0");
  for (size_t g = 0, w = 0; g < ng; ++g) {
    if (s.group_kind[g] == 0 && s.group_p[w] > 1.0) bad("RandomApply p must be in [0, 1]");
    if (s.group_kind[g] == 1) {
      double sum = 0.0;
      for (int m = 0; m < s.group_members[g]; ++m) sum += s.group_p[w + m];
      if (!(sum > 0.0)) bad("RandomChoice weights must not all be 0");
    }
    w += s.group_kind[g] == 0 ? 1 : (s.group_kind[g] == 1 ? s.group_members[g] : 0);
  }
  if (s.jitter_group < -1 || s.jitter_group >= static_cast<int>(ng) ||
      (s.jitter_group >= 0 && s.group_kind[s.jitter_group] != 0))
    bad("jitter_group must be -1 or a RandomApply container");
  for (size_t k = 0; k < n; ++k) {
    if (s.px_ops[k] < 0 || s.px_ops[k] >= kPixOpCount) bad("unknown sequence op code");
    const int g = s.px_group[k];
    if (g < -1 || g >= static_cast<int>(ng)) bad("px_group must be -1 or a container index");
    if (g >= 0 && (s.px_member[k] < 0 || s.px_member[k] >= s.group_members[g])) bad("px_member out of range");
    if (g >= 0 && s.group_kind[g] == 2)  // RandomOrder reorders a run of consecutive entries
      for (size_t j = k + 1; j < n; ++j)
        if (s.px_group[j] == g && s.px_group[j - 1] != g) bad("a RandomOrder container's ops must be consecutive");
    const double* a = &s.px_args[k * kPixArgs];
    for (int j = 0; j < kPixArgs; ++j)
      if (!std::isfinite(a[j])) bad("sequence op arguments must be finite");
    const PixOp op = static_cast<PixOp>(s.px_ops[k]);
    if (op == PixOp::kExemplarJitter &&
        !(a[0] > 0.0 && a[0] <= a[1] && a[2] <= a[3] && a[4] <= a[5] && a[6] <= a[7] && a[6] >= -1.0 && a[7] <= 1.0))
      bad("ExemplarJitter ranges must satisfy 0 < power lo <= hi, lo <= hi, and the hue within [-1, 1]");
    if (op == PixOp::kJpeg && !(a[0] >= 1 && a[0] <= a[1] && a[1] <= 100 && a[0] == std::floor(a[0]) &&
                                a[1] == std::floor(a[1])))
      bad("JPEG quality must be ints with 1 <= lo <= hi <= 100");
    if (op != PixOp::kGaussianBlur && op != PixOp::kExemplarJitter && op != PixOp::kJpeg &&
        !(a[0] >= 0.0 && a[0] <= 1.0))
      bad(std::string(pix_op_name(op)) + " probability must be in [0, 1]");
    if (op == PixOp::kPosterize && !(a[1] >= 0.0 && a[1] <= 8.0 && a[1] == std::floor(a[1])))
      bad("posterize bits must be an int in [0, 8]");
    if (op == PixOp::kSharpness && !(a[1] >= 0.0)) bad("sharpness factor must be >= 0");
    if (op == PixOp::kPilBlur && !(a[1] >= 0.0 && a[1] <= a[2] && a[2] <= 1000.0))
      bad("PIL GaussianBlur radius must satisfy 0 <= lo <= hi <= 1000");
    if (op == PixOp::kGaussianBlur) {
      for (int j = 0; j < 2; ++j)
        if (!(a[j] >= 1 && a[j] <= kMaxBlurKernel && a[j] == std::floor(a[j]) && static_cast<int>(a[j]) % 2 == 1))
          bad("GaussianBlur kernel sizes must be odd ints in [1, " + std::to_string(kMaxBlurKernel) + "]");
      if (!(a[2] > 0.0 && a[2] <= a[3])) bad("GaussianBlur sigma must satisfy 0 < lo <= hi");
    }
  }
  if (n && (s.color == Color::kYCbCr)) bad("sequence ops cannot be combined with YCbCr output");
  for (size_t k = 0; k < n; ++k)
    if ((s.px_ops[k] == static_cast<int>(PixOp::kChannelPermutation) ||
         s.px_ops[k] == static_cast<int>(PixOp::kExemplarJitter) || s.px_ops[k] == static_cast<int>(PixOp::kJpeg)) &&
        s.color == Color::kGray)
      bad(std::string(pix_op_name(static_cast<PixOp>(s.px_ops[k]))) + " needs an RGB or BGR output");
}

}  // namespace

void validate(const PlanSpec& s) {
  auto bad = [](const std::string& m) { throw Error(ErrorKind::kInvalid, m); };
  if (s.resize_mode == 1 && s.resize_size <= 0) bad("Resize size must be positive");
  if (s.resize_mode == 2 && (s.resize_h <= 0 || s.resize_w <= 0)) bad("Resize (h, w) must be positive");
  if (s.resize_mode < 0 || s.resize_mode > 5) bad("resize_mode must be 0..5");
  if (s.crop_pad_fill && (s.crop_h == 0 || s.pad_mode != 0)) bad("crop_pad_fill needs a CenterCrop and constant padding");
  if (s.resize_mode == 5 && (s.resize_h <= 0 || s.resize_w <= 0)) bad("ResizeKeepRatio size must be positive");
  if (s.resize_mode == 5 && !(s.keep_ratio_longest >= 0.0 && s.keep_ratio_longest <= 1.0))
    bad("ResizeKeepRatio longest must be in [0, 1]");
  if (s.resize_mode == 3 && !(s.resize_choices.size() == 2 && s.resize_choices[0] >= 1 &&
                              s.resize_choices[0] < s.resize_choices[1] && s.resize_choices[1] <= (1 << 24)))
    bad("RandomResize needs 1 <= min_size < max_size <= 2^24");
  if (s.resize_mode == 4) {
    if (s.resize_choices.empty() || s.resize_choices.size() > 4096) bad("RandomShortestSize needs 1 to 4096 sizes");
    for (int v : s.resize_choices)
      if (v < 1 || v > (1 << 24)) bad("RandomShortestSize sizes must be in [1, 2^24]");
    if (s.max_size < 0) bad("RandomShortestSize max_size must be positive");
  }
  if (s.resize_mode == 1 && s.max_size != 0 && s.max_size <= s.resize_size)
    bad("Resize max_size must be greater than size");
  if (s.crop_h < 0 || s.crop_w < 0 || (s.crop_h == 0) != (s.crop_w == 0)) bad("CenterCrop size must be positive");
  if (s.crop_anchor < 0 || s.crop_anchor > 7 || (s.crop_anchor && !s.crop_h)) bad("crop_anchor must be 0..7, with a crop");
  if (!s.pad.empty()) {
    if (s.pad.size() != 4) bad("pad must be (left, top, right, bottom)");
    for (int v : s.pad)
      if (v < 0 || v > (1 << 20)) bad("padding must be in [0, 2^20]");
    if (s.rrc) bad("padding cannot be combined with RandomResizedCrop");
  }
  if (s.pad_mode < 0 || s.pad_mode > 3) bad("pad_mode must be 0..3");
  if (!(s.zoom_p >= 0.0 && s.zoom_p <= 1.0)) bad("RandomZoomOut p must be in [0, 1]");
  if (s.zoom_p > 0.0 && !(s.zoom_lo >= 1.0 && s.zoom_lo <= s.zoom_hi && s.zoom_hi <= 64.0))
    bad("RandomZoomOut side_range must satisfy 1 <= lo <= hi <= 64");
  if (s.zoom_p > 0.0 && (s.pad_mode != 0 || s.rrc)) bad("RandomZoomOut pads with a constant fill, before any crop");
  for (float v : s.pad_fill)
    if (!(v >= 0.f && v <= 255.f && v == std::floor(v))) bad("padding fill must be integer levels in [0, 255]");
  if (s.rcrop) {
    if (s.rcrop_h <= 0 || s.rcrop_w <= 0) bad("RandomCrop size must be positive");
    if (s.rrc || s.crop_h) bad("RandomCrop cannot be combined with RandomResizedCrop or CenterCrop");
  }
  if (s.rrc) {
    if (s.rrc_h <= 0 || s.rrc_w <= 0) bad("RandomResizedCrop size must be positive");
    if (!(s.scale_lo > 0 && s.scale_lo <= s.scale_hi)) bad("RandomResizedCrop scale must satisfy 0 < lo <= hi");
    if (!(s.ratio_lo > 0 && s.ratio_lo <= s.ratio_hi)) bad("RandomResizedCrop ratio must satisfy 0 < lo <= hi");
    if (s.resize_mode != 0 || s.crop_h != 0) bad("RandomResizedCrop cannot be combined with Resize or CenterCrop");
  }
  if (!(s.flip_p >= 0.0 && s.flip_p <= 1.0)) bad("flip probability must be in [0, 1]");
  if (!(s.vflip_p >= 0.0 && s.vflip_p <= 1.0)) bad("vertical flip probability must be in [0, 1]");
  if (!(s.gray_p >= 0.0 && s.gray_p <= 1.0)) bad("RandomGrayscale probability must be in [0, 1]");
  if (s.gray_p > 0.0 && s.color == Color::kGray) bad("RandomGrayscale needs a 3-channel (RGB or BGR) output");
  if (s.jitter_mask < 0 || s.jitter_mask > 15) bad("ColorJitter mask must be in [0, 15]");
  if (s.jitter_mask & 7) {
    const double r[3][2] = {{s.brightness_lo, s.brightness_hi}, {s.contrast_lo, s.contrast_hi},
                            {s.saturation_lo, s.saturation_hi}};
    for (int k = 0; k < 3; ++k)
      if ((s.jitter_mask >> k & 1) && !(r[k][0] >= 0.0 && r[k][0] <= r[k][1] && std::isfinite(r[k][1])))
        bad("ColorJitter brightness/contrast/saturation range must satisfy 0 <= lo <= hi");
  }
  if (!(s.jitter_p == -1.0 || (s.jitter_p >= 0.0 && s.jitter_p <= 1.0))) bad("jitter_p must be -1 or in [0, 1]");
  if ((s.jitter_mask & 8) && !(s.hue_lo >= -0.5 && s.hue_lo <= s.hue_hi && s.hue_hi <= 0.5))
    bad("ColorJitter hue range must satisfy -0.5 <= lo <= hi <= 0.5");
  for (float g : s.hsv_gain)
    if (!(g >= 0.f && std::isfinite(g))) bad("RandomHSV gains must be finite and >= 0");
  if (s.color == Color::kYCbCr && s.gray_p > 0.0)
    bad("RandomGrayscale cannot be combined with YCbCr output (a gray sample is Y with Cb = Cr = 128: "
        "convert after the fact)");
  auto fill_ok = [](const Float3& f) {
    for (float v : f)
      if (!(v >= 0.f && v <= 255.f)) return false;
    return true;
  };
  auto interp_ok = [](Interp i) { return i == Interp::kNearest || i == Interp::kBilinear; };
  if (s.affine_mode < 0 || s.affine_mode > 4) bad("affine_mode must be 0..4");
  if (s.affine_mode == 4) {
    const double a[4] = {s.elastic_alpha_x, s.elastic_alpha_y, s.elastic_sigma_x, s.elastic_sigma_y};
    for (double v : a)
      if (!(v >= 0.0 && v <= 1e6)) bad("ElasticTransform alpha and sigma must be in [0, 1e6]");
    if ((s.elastic_sigma_x > 0.0) != (s.elastic_sigma_y > 0.0))
      bad("ElasticTransform sigmas must both be 0 or both > 0 (torchvision blurs with both)");
    if (8.0 * std::max(s.elastic_sigma_x, s.elastic_sigma_y) + 2.0 > kMaxBlurKernel)
      bad("ElasticTransform sigma is too large (its blur kernel exceeds " + std::to_string(kMaxBlurKernel) + ")");
  }
  if (s.affine_mode == 3 && !(s.persp_scale >= 0.0 && s.persp_scale <= 1.0 && s.persp_p >= 0.0 && s.persp_p <= 1.0))
    bad("RandomPerspective distortion_scale and p must be in [0, 1]");
  if (s.affine_mode) {
    if (!(std::isfinite(s.degrees_lo) && s.degrees_lo <= s.degrees_hi && std::isfinite(s.degrees_hi)))
      bad("degrees must satisfy lo <= hi (finite)");
    if (!(s.translate_x >= 0.0 && s.translate_x <= 1.0 && s.translate_y >= 0.0 && s.translate_y <= 1.0))
      bad("translate values must be in [0, 1]");
    if (!(s.affine_scale_lo > 0.0 && s.affine_scale_lo <= s.affine_scale_hi && std::isfinite(s.affine_scale_hi)))
      bad("scale must satisfy 0 < lo <= hi");
    if (s.shear_n != 0 && s.shear_n != 2 && s.shear_n != 4) bad("shear_n must be 0, 2 or 4");
    for (const Float3* sh : {&s.shear_x, &s.shear_y})
      if (!(std::isfinite((*sh)[0]) && (*sh)[0] <= (*sh)[1] && std::isfinite((*sh)[1]) && std::fabs((*sh)[0]) < 90.f &&
            std::fabs((*sh)[1]) < 90.f))
        bad("shear ranges must satisfy lo <= hi within (-90, 90) degrees");
    if (!interp_ok(s.affine_interp)) bad("RandomRotation/RandomAffine interpolation must be nearest or bilinear");
    if (!fill_ok(s.affine_fill)) bad("RandomRotation/RandomAffine fill must be levels in [0, 255]");
  }
  if (s.aug_policy < 0 || s.aug_policy > 4) bad("aug_policy must be 0..4");
  if (s.aug_policy == 4) {
    if (s.augmix_width < 1 || s.augmix_width > kMaxChains) bad("AugMix mixture_width must be in [1, 8]");
    if (s.augmix_depth == 0 || s.augmix_depth < -1 || s.augmix_width * (s.augmix_depth > 0 ? s.augmix_depth : 3) > kMaxAugOps)
      bad("AugMix chain_depth must be -1 or >= 1, with mixture_width * depth <= 16");
    if (!(s.augmix_alpha > 0.0 && s.augmix_alpha <= 1e6)) bad("AugMix alpha must be positive");
  }
  if (s.aug_policy) {
    const size_t n = s.aug_ops.size();
    if (n == 0) bad("an augmentation policy needs at least one op");
    if (s.aug_table.size() != n || s.aug_lo.size() != n || s.aug_hi.size() != n || s.aug_signed.size() != n)
      bad("aug_table, aug_lo, aug_hi and aug_signed must have one entry per op of aug_ops");
    for (size_t k = 0; k < n; ++k) {
      if (s.aug_ops[k] < 0 || s.aug_ops[k] >= kAugOpCount) bad("unknown augmentation op code");
      if (s.aug_table[k] < 0 || s.aug_table[k] > 5) bad("unknown magnitude table code");
      if (!(std::isfinite(s.aug_lo[k]) && std::isfinite(s.aug_hi[k]))) bad("magnitude tables must be finite");
      if (s.aug_table[k] == static_cast<int>(AugTable::kPosterize) && !(s.aug_hi[k] > 0.0))
        bad("Posterize's magnitude divisor must be positive");
    }
    if (s.aug_bins < 1 || s.aug_bins > 1 << 20) bad("num_magnitude_bins must be in [1, 2^20]");
    if (s.aug_policy == 1) {
      if (s.aug_num_ops < 0 || s.aug_num_ops > kMaxAugOps)
        bad("RandAugment num_ops must be in [0, " + std::to_string(kMaxAugOps) + "]");
      if (s.aug_magnitude < 0 || s.aug_magnitude >= s.aug_bins) bad("RandAugment magnitude must be in [0, num_magnitude_bins)");
    }
    if (s.aug_policy == 3) {
      if (n % 2 || s.aug_prob.size() != n || s.aug_bin.size() != n)
        bad("AutoAugment needs two (op, probability, bin) entries per sub-policy");
      for (size_t k = 0; k < n; ++k) {
        if (!(s.aug_prob[k] >= 0.0 && s.aug_prob[k] <= 1.0)) bad("AutoAugment probabilities must be in [0, 1]");
        if (s.aug_bin[k] < 0 || s.aug_bin[k] >= s.aug_bins) bad("AutoAugment magnitude bins must be in [0, bins)");
      }
    }
    if (!interp_ok(s.aug_interp)) bad("augmentation interpolation must be nearest or bilinear");
    if (!fill_ok(s.aug_fill)) bad("augmentation fill must be levels in [0, 255]");
  }
  if (s.timm_policy < 0 || s.timm_policy > 3) bad("timm_policy must be 0..3");
  if (s.timm_policy && s.aug_policy) bad("one augmentation policy per Compose: timm's and torchvision's cannot be combined");
  if (s.timm_policy) {
    const size_t n = s.timm_ops.size();
    if (n == 0) bad("timm's policy needs at least one op");
    if (s.timm_prob.size() != n || s.timm_mag.size() != n || s.timm_mstd.size() != n || s.timm_mmax.size() != n ||
        s.timm_hp.size() != n || s.timm_filter.size() != n)
      bad("timm_prob, timm_mag, timm_mstd, timm_mmax, timm_hp and timm_filter must have one entry per op");
    for (size_t k = 0; k < n; ++k) {
      if (s.timm_ops[k] < 0 || s.timm_ops[k] >= kTimmOpCount) bad("unknown timm op code");
      if (!(s.timm_prob[k] >= 0.0 && s.timm_prob[k] <= 1.0)) bad("timm op probabilities must be in [0, 1]");
      if (!(std::isfinite(s.timm_mag[k]) && std::fabs(s.timm_mag[k]) <= 1e6)) bad("timm magnitudes must be finite");
      if (!(s.timm_mstd[k] >= 0.0 && (std::isinf(s.timm_mstd[k]) || s.timm_mstd[k] <= 1e6)))
        bad("timm magnitude_std must be >= 0 (inf: uniform)");
      if (!(s.timm_mmax[k] >= 0.0 && s.timm_mmax[k] <= 1e6)) bad("timm magnitude_max must be in [0, 1e6]");
      if (!(std::isfinite(s.timm_hp[k]) && std::fabs(s.timm_hp[k]) <= 1e6)) bad("timm translate hparams must be finite");
      if (s.timm_filter[k] != -1 && s.timm_filter[k] != static_cast<int>(PilFilter::kBilinear) &&
          s.timm_filter[k] != static_cast<int>(PilFilter::kBicubic))
        bad("timm ops resample with bilinear (2), bicubic (3) or either (-1)");
    }
    if (!fill_ok(s.timm_fill)) bad("timm's img_mean fill must be levels in [0, 255]");
    if (s.timm_policy == 1) {
      if (s.timm_num_layers < 0 || s.timm_num_layers > kMaxAugOps)
        bad("timm RandAugment num_layers must be in [0, " + std::to_string(kMaxAugOps) + "]");
      if (!s.timm_weights.empty()) {
        if (s.timm_weights.size() != n) bad("timm RandAugment choice_weights needs one weight per op");
        int positive = 0;
        for (double w : s.timm_weights) {
          if (!(w >= 0.0 && std::isfinite(w))) bad("timm RandAugment choice_weights must be finite and >= 0");
          positive += w > 0.0;
        }
        if (positive < s.timm_num_layers)
          bad("timm RandAugment draws without replacement by weight: num_layers exceeds the ops of positive weight");
      }
    } else if (s.timm_policy == 3) {
      if (s.augmix_width < 1 || s.augmix_width > kMaxChains) bad("timm AugMix width must be in [1, 8]");
      if (s.augmix_depth == 0 || s.augmix_depth < -1 ||
          s.augmix_width * (s.augmix_depth > 0 ? s.augmix_depth : 3) > kMaxAugOps)
        bad("timm AugMix depth must be -1 or >= 1, with width * depth <= 16");
      if (!(s.augmix_alpha > 0.0 && s.augmix_alpha <= 1e6)) bad("timm AugMix alpha must be positive");
    } else {
      if (s.timm_blended) bad("timm_blended is timm AugMix's mode");
      size_t total = 0;
      if (s.timm_sub_len.empty()) bad("timm AutoAugment needs at least one sub-policy");
      for (int len : s.timm_sub_len) {
        if (len < 1 || len > kMaxAugOps) bad("timm AutoAugment sub-policies hold 1 to " + std::to_string(kMaxAugOps) + " ops");
        total += static_cast<size_t>(len);
      }
      if (total != n) bad("timm AutoAugment: timm_sub_len must add up to the number of ops");
    }
  }
  validate_sequence(s);
  if (!(s.lighting_std >= 0.0 && std::isfinite(s.lighting_std))) bad("Lighting alphastd must be finite and >= 0");
  if (s.lighting_std > 0.0 && s.norm_mode != NormMode::kTable && s.norm_mode != NormMode::kWhiten)
    bad("Lighting cannot be combined with a per-image normalisation");
  if (s.lighting_std > 0.0 && (s.color == Color::kGray || s.color == Color::kYCbCr))
    bad("Lighting needs an RGB or BGR output");
  if (s.lighting_std > 0.0 && (s.dtype == DType::kU8 || !s.unit_range))
    bad("Lighting works on [0, 1] values: it needs ToTensor, a float dtype and a Normalize on [0, 1] values "
        "(not a 0-255 preset)");
  if (s.noise_on) {
    if (!(std::isfinite(s.noise_mean) && s.noise_sigma >= 0.0 && std::isfinite(s.noise_sigma)))
      bad("GaussianNoise mean must be finite and sigma finite and >= 0");
    if (s.dtype == DType::kU8 || !s.unit_range)
      bad("GaussianNoise works on [0, 1] float values: it needs ToTensor (or ToDtype(scale=True)) and a float dtype");
    if (s.norm_mode != NormMode::kTable) bad("GaussianNoise cannot be combined with a per-image normalisation");
    if (s.color == Color::kYCbCr) bad("GaussianNoise needs an RGB, BGR or gray output");
    if (s.lighting_std > 0.0) bad("GaussianNoise and Lighting cannot be combined (both noise the [0, 1] values)");
  }
  if (!(s.erase_p >= 0.0 && s.erase_p <= 1.0)) bad("RandomErasing probability must be in [0, 1]");
  if (s.erase_p > 0.0 && s.dtype == DType::kU8) bad("RandomErasing works on a float output: it cannot fill uint8 levels");
  if (s.erase_count_lo < 1 || s.erase_count_hi < s.erase_count_lo || s.erase_count_hi > kMaxErase)
    bad("RandomErasing count must satisfy 1 <= lo <= hi <= " + std::to_string(kMaxErase));
  if (s.erase_random && s.erase_per_channel) bad("RandomErasing fills per pixel or per channel, not both");
  if (s.erase_p > 0.0) {
    if (!(s.erase_scale_lo >= 0.0 && s.erase_scale_lo <= s.erase_scale_hi && s.erase_scale_hi <= 1.0))
      bad("RandomErasing scale must satisfy 0 <= lo <= hi <= 1");
    if (!(s.erase_ratio_lo > 0.0 && s.erase_ratio_lo <= s.erase_ratio_hi && std::isfinite(s.erase_ratio_hi)))
      bad("RandomErasing ratio must satisfy 0 < lo <= hi");
  }
  const int nm = static_cast<int>(s.norm_mode);
  if (nm < 0 || nm > 3) bad("unknown normalisation mode");
  if (s.norm_mode == NormMode::kWhiten) {
    if (s.color != Color::kRGB) bad("whitening works on RGB output");
    if (s.gray_p > 0.0) bad("RandomGrayscale cannot be combined with whitening");
    for (int k = 0; k < 9; ++k)
      if (!std::isfinite(s.mix[k])) bad("whitening matrix must be finite");
    for (int c = 0; c < 3; ++c)
      if (!std::isfinite(s.mean[c])) bad("whitening mean must be finite");
  }
  if (s.norm_mode != NormMode::kTable) {
    if (s.normalize) bad("a per-image normalisation or whitening cannot be combined with Normalize(mean, std)");
    if (s.dtype == DType::kU8) bad("uint8 output stores raw levels: it cannot be normalised");
    if (s.norm_mode == NormMode::kMinMax && !(std::isfinite(s.range_lo) && std::isfinite(s.range_hi)))
      bad("min-max range must be finite");
  }
  if (s.normalize) {
    for (int c = 0; c < 3; ++c)
      if (!(s.std[c] != 0.0f) || !std::isfinite(s.std[c]) || !std::isfinite(s.mean[c]))
        bad("Normalize std must be finite and nonzero, mean finite");
  }
  if (static_cast<int>(s.color) < 0 || static_cast<int>(s.color) > 3) bad("color must be RGB, BGR, GRAY or YCbCr");
  if (static_cast<int>(s.dtype) < 0 || static_cast<int>(s.dtype) > 3) bad("unknown dtype");
  if (static_cast<int>(s.layout) < 0 || static_cast<int>(s.layout) > 1) bad("layout must be CHW or HWC");
  if (s.gray_channels != 1 && s.gray_channels != 3) bad("Grayscale num_output_channels must be 1 or 3");
  if (s.gray_channels == 3 && s.color != Color::kGray) bad("3 gray channels need color GRAY");
  if (s.dtype == DType::kU8 && s.normalize) bad("uint8 output stores raw levels: it cannot be normalised");
  if (s.max_pixels < 0) bad("max_pixels must be >= 0");
}

Plan::Plan(const PlanSpec& s) : spec(s) {
  validate(s);
  kernels = &kernels_for(s.simd, !s.exact);  // the one dispatch decision (Note [SIMD dispatch])
  build_output_spec(&out, s.dtype, s.layout, s.color, s.gray_channels, s.normalize, s.mean.data(), s.std.data(),
                    s.unit_range, s.unit_mul);
  out.gray_v2 = s.gray_v2;
  if (s.norm_mode == NormMode::kWhiten) {
    const float none[3] = {0.f, 0.f, 0.f};
    out.mixed = true;
    build_mix_table(out, s.mix.data(), s.mean.data(), none, s.unit_range, &out.lut);
  }
  enable_output_arith(&out, *kernels);
}

bool Plan::fixed_size(int* h, int* w) const {
  if (spec.rrc) { *h = spec.rrc_h; *w = spec.rrc_w; return true; }
  if (spec.crop_h) { *h = spec.crop_h; *w = spec.crop_w; return true; }
  if (spec.rcrop) { *h = spec.rcrop_h; *w = spec.rcrop_w; return true; }
  if (spec.resize_mode == 2 && spec.zoom_p == 0.0) {  // RandomZoomOut's canvas varies
    *h = spec.resize_h;
    *w = spec.resize_w;
    if (!spec.pad.empty()) *h += spec.pad[1] + spec.pad[3], *w += spec.pad[0] + spec.pad[2];
    return true;
  }
  return false;
}

namespace {
uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Python's round(): half to even (the default floating-point rounding mode).
int round_half_even(double x) { return static_cast<int>(std::nearbyint(x)); }
}  // namespace

void elastic_field(const Kernels& k, uint64_t seed, int h, int w, const double alpha[2], const double sigma[2],
                   float* dx, float* dy, Scratch* scratch) {
  const size_t n = static_cast<size_t>(h) * static_cast<size_t>(w);
  Rng rng(seed, 0, 0, streams::kElasticNoise);
  float* planes[2] = {dx, dy};
  const float size[2] = {static_cast<float>(w), static_cast<float>(h)};
  for (int d = 0; d < 2; ++d) {
    // torch.rand's float32 values: 24 random bits, times 2 - 1.
    float* f = planes[d];
    for (size_t i = 0; i < n; ++i) f[i] = static_cast<float>(rng.next() >> 40) * (1.f / 16777216.f) * 2.f - 1.f;
    if (sigma[d] > 0.0) {
      int ks = static_cast<int>(8.0 * sigma[d] + 1.0);
      if (ks % 2 == 0) ++ks;
      gaussian_blur_plane(k, ks, ks, static_cast<float>(sigma[0]), static_cast<float>(sigma[1]), f, h, w, scratch);
    }
    const float a = static_cast<float>(alpha[d]);
    for (size_t i = 0; i < n; ++i) f[i] = f[i] * a / size[d];
  }
}

void gaussian_noise(uint64_t seed, size_t n, float* out) {
  normal_values(Rng(seed, 0, 0, streams::kGaussianNoiseValues).next(), n, out);
}

Rng::Rng(uint64_t seed, uint64_t epoch, uint64_t index, uint64_t stream)
    : state_(splitmix(splitmix(splitmix(splitmix(seed) ^ epoch) ^ index) ^ stream)) {}

uint64_t Rng::next() {
  state_ += 0x9E3779B97F4A7C15ull;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
double Rng::normal() {
  const double u1 = 1.0 - uniform(), u2 = uniform();  // u1 in (0, 1]
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}
double Rng::gamma(double alpha) {
  if (alpha < 1.0) {  // boost: Gamma(alpha + 1) * U^(1 / alpha)
    const double u = 1.0 - uniform();
    return gamma(alpha + 1.0) * std::pow(u, 1.0 / alpha);
  }
  const double d = alpha - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = 1.0 - uniform();
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

int64_t Rng::randint(int64_t lo, int64_t hi) {
  const uint64_t span = static_cast<uint64_t>(hi - lo);
  return lo + static_cast<int64_t>(static_cast<uint64_t>(uniform() * static_cast<double>(span)) % span);
}

void random_resized_crop_box(const PlanSpec& s, int h, int w, Rng& rng, int box[4]) {
  const double area = static_cast<double>(h) * w;
  const double log_lo = std::log(s.ratio_lo), log_hi = std::log(s.ratio_hi);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(s.scale_lo, s.scale_hi);
    const double ar = std::exp(rng.uniform(log_lo, log_hi));
    const int cw = round_half_even(std::sqrt(target * ar));
    const int ch = round_half_even(std::sqrt(target / ar));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      box[0] = static_cast<int>(rng.randint(0, h - ch + 1));
      box[1] = static_cast<int>(rng.randint(0, w - cw + 1));
      box[2] = ch;
      box[3] = cw;
      return;
    }
  }
  // Fallback after 10 attempts: the central crop with the ratio clamped into range.
  const double in_ratio = static_cast<double>(w) / h;
  int cw, ch;
  if (in_ratio < s.ratio_lo) {
    cw = w;
    ch = round_half_even(cw / s.ratio_lo);
  } else if (in_ratio > s.ratio_hi) {
    ch = h;
    cw = round_half_even(ch * s.ratio_hi);
  } else {
    cw = w;
    ch = h;
  }
  ch = std::max(1, std::min(ch, h));
  cw = std::max(1, std::min(cw, w));
  box[0] = (h - ch) / 2;
  box[1] = (w - cw) / 2;
  box[2] = ch;
  box[3] = cw;
}

namespace {

constexpr uint64_t kStreamStep = 0x9e3779b97f4a7c15ull;

// Note [Op sequence]: the containers' picks, then each op's own draws.
void draw_sequence(const PlanSpec& s, const RunKey& key, SequenceParams* q) {
  const int ng = static_cast<int>(s.group_kind.size());
  for (int g = 0, w = 0; g < ng; ++g) {
    Rng rng(key.seed, key.epoch, key.index, streams::kContainer + static_cast<uint64_t>(g) * kStreamStep);
    const int m = s.group_members[g];
    switch (s.group_kind[g]) {
      case 0: {
        const double p = s.group_p[w++];
        q->group[g] = p >= 1.0 ? 1 : (p > 0.0 && rng.uniform() < p);
        break;
      }
      case 1: {
        double sum = 0.0;
        for (int k = 0; k < m; ++k) sum += s.group_p[w + k];
        const double u = rng.uniform() * sum;
        int pick = 0;
        double acc = s.group_p[w];
        while (pick + 1 < m && !(u < acc)) acc += s.group_p[w + ++pick];
        while (pick > 0 && s.group_p[w + pick] == 0.0) --pick;  // never a zero-weight member
        q->group[g] = static_cast<int8_t>(pick);
        w += m;
        break;
      }
      default: {
        int8_t* o = q->order[g];
        for (int k = 0; k < m; ++k) o[k] = static_cast<int8_t>(k);
        for (int k = m - 1; k > 0; --k) std::swap(o[k], o[rng.randint(0, k + 1)]);
        q->group[g] = 1;
      }
    }
  }
  const int n = static_cast<int>(s.px_ops.size());
  q->n = n;
  int seen[kPixOpCount] = {};
  for (int k = 0; k < n; ++k) {
    const PixOp op = static_cast<PixOp>(s.px_ops[k]);
    const double* a = &s.px_args[static_cast<size_t>(k) * kPixArgs];
    Rng rng(key.seed, key.epoch, key.index,
            stream_id(pix_op_name(op)) + static_cast<uint64_t>(seen[static_cast<int>(op)]++) * kStreamStep);
    PixDraw& d = q->op[k];
    switch (op) {
      case PixOp::kChannelPermutation: {  // with probability p, torch.randperm(3) as a Fisher-Yates shuffle
        d.on = a[0] >= 1.0 || (a[0] > 0.0 && rng.uniform() < a[0]);
        int perm[3] = {0, 1, 2};
        if (d.on)
          for (int j = 2; j > 0; --j) std::swap(perm[j], perm[rng.randint(0, j + 1)]);
        for (int j = 0; j < 3; ++j) d.v[j] = static_cast<float>(perm[j]);
        break;
      }
      case PixOp::kExemplarJitter:  // Note [Exemplar jitter]: S (power, factor, add), V (same), hue
        for (int c = 0; c < 2; ++c) {
          d.v[3 * c] = static_cast<float>(std::exp(rng.uniform(std::log(a[0]), std::log(a[1]))));
          d.v[3 * c + 1] = static_cast<float>(rng.uniform(a[2], a[3]));
          d.v[3 * c + 2] = static_cast<float>(rng.uniform(a[4], a[5]));
        }
        d.v[6] = static_cast<float>(rng.uniform(a[6], a[7]));
        d.on = true;
        break;
      case PixOp::kJpeg:  // v2's JPEG: torch.randint(lo, hi + 1)
        d.v[0] = static_cast<float>(rng.randint(static_cast<int64_t>(a[0]), static_cast<int64_t>(a[1]) + 1));
        d.on = true;
        break;
      case PixOp::kPilBlur:  // DINO's / MoCo v2's: random() < p, then random.uniform(lo, hi) (a float radius)
        d.on = a[0] >= 1.0 || (a[0] > 0.0 && rng.uniform() < a[0]);
        d.v[0] = static_cast<float>(rng.uniform(a[1], a[2]));
        break;
      case PixOp::kGaussianBlur:  // torch.empty(1).uniform_(lo, hi): a float32 sigma
        d.v[0] = static_cast<float>(a[2] == a[3] ? a[2] : rng.uniform(a[2], a[3]));
        d.on = true;
        break;
      default:  // the ops applied with probability p = a[0]
        d.on = a[0] >= 1.0 || (a[0] > 0.0 && rng.uniform() < a[0]);
    }
    const int g = s.px_group[k];
    if (g >= 0) {
      const int kind = s.group_kind[g];
      if (kind == 0 && !q->group[g]) d.on = false;
      if (kind == 1 && q->group[g] != s.px_member[k]) d.on = false;
    }
  }
}

}  // namespace

const char* timm_op_name(TimmOp op) {
  static const char* const names[kTimmOpCount] = {
      "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "PosterizeIncreasing", "PosterizeOriginal",
      "Solarize", "SolarizeIncreasing", "SolarizeAdd", "Color", "ColorIncreasing", "Contrast", "ContrastIncreasing",
      "Brightness", "BrightnessIncreasing", "Sharpness", "SharpnessIncreasing", "ShearX", "ShearY", "TranslateX",
      "TranslateY", "TranslateXRel", "TranslateYRel", "Desaturate", "GaussianBlur", "GaussianBlurRand"};
  const int i = static_cast<int>(op);
  return i >= 0 && i < kTimmOpCount ? names[i] : "?";
}

PilOp timm_pil_op(TimmOp op) {
  switch (op) {
    case TimmOp::kAutoContrast: return PilOp::kAutoContrast;
    case TimmOp::kEqualize: return PilOp::kEqualize;
    case TimmOp::kInvert: return PilOp::kInvert;
    case TimmOp::kRotate: return PilOp::kRotate;
    case TimmOp::kPosterize: case TimmOp::kPosterizeIncreasing: case TimmOp::kPosterizeOriginal:
      return PilOp::kPosterize;
    case TimmOp::kSolarize: case TimmOp::kSolarizeIncreasing: return PilOp::kSolarize;
    case TimmOp::kSolarizeAdd: return PilOp::kSolarizeAdd;
    case TimmOp::kColor: case TimmOp::kColorIncreasing: return PilOp::kColor;
    case TimmOp::kContrast: case TimmOp::kContrastIncreasing: return PilOp::kContrast;
    case TimmOp::kBrightness: case TimmOp::kBrightnessIncreasing: return PilOp::kBrightness;
    case TimmOp::kSharpness: case TimmOp::kSharpnessIncreasing: return PilOp::kSharpness;
    case TimmOp::kShearX: return PilOp::kShearX;
    case TimmOp::kShearY: return PilOp::kShearY;
    case TimmOp::kTranslateX: case TimmOp::kTranslateXRel: return PilOp::kTranslateX;
    case TimmOp::kTranslateY: case TimmOp::kTranslateYRel: return PilOp::kTranslateY;
    case TimmOp::kDesaturate: return PilOp::kColor;
    case TimmOp::kGaussianBlur: case TimmOp::kGaussianBlurRand: return PilOp::kGaussianBlur;
  }
  return PilOp::kInvert;
}

namespace {

bool timm_geometric(TimmOp op) {
  const PilOp p = timm_pil_op(op);
  return p == PilOp::kRotate || p == PilOp::kShearX || p == PilOp::kShearY || p == PilOp::kTranslateX ||
         p == PilOp::kTranslateY;
}

// timm's level functions (LEVEL_TO_ARG): the op function's argument for magnitude `level`, in
// float64 as Python computes it; `hp` is translate_pct or translate_const. Ops timm negates at
// random draw their coin u > 0.5 from `rng`.
double timm_level_arg(TimmOp op, double level, double hp, Rng& rng) {
  auto negate = [&](double v) { return rng.uniform() > 0.5 ? -v : v; };
  const double f = level / 10.0;
  auto minmax = [&](double lo, double hi) { return std::max(lo, std::min(hi, lo + (hi - lo) * f)); };
  switch (op) {
    case TimmOp::kAutoContrast: case TimmOp::kEqualize: case TimmOp::kInvert: return 0.0;
    case TimmOp::kRotate: return negate(f * 30.0);
    case TimmOp::kPosterize: return static_cast<int>(f * 4);
    case TimmOp::kPosterizeIncreasing: return 4 - static_cast<int>(f * 4);
    case TimmOp::kPosterizeOriginal: return static_cast<int>(f * 4) + 4;
    case TimmOp::kSolarize: return std::min(256, static_cast<int>(f * 256));
    case TimmOp::kSolarizeIncreasing: return 256 - std::min(256, static_cast<int>(f * 256));
    case TimmOp::kSolarizeAdd: return std::min(128, static_cast<int>(f * 110));
    case TimmOp::kColor: case TimmOp::kContrast: case TimmOp::kBrightness: case TimmOp::kSharpness:
      return f * 1.8 + 0.1;
    case TimmOp::kColorIncreasing: case TimmOp::kContrastIncreasing: case TimmOp::kBrightnessIncreasing:
    case TimmOp::kSharpnessIncreasing:
      return std::max(0.1, 1.0 + negate(f * .9));
    case TimmOp::kShearX: case TimmOp::kShearY: return negate(f * 0.3);
    case TimmOp::kTranslateX: case TimmOp::kTranslateY: case TimmOp::kTranslateXRel: case TimmOp::kTranslateYRel:
      return negate(f * hp);
    case TimmOp::kDesaturate: return minmax(0.5, 1.0);
    case TimmOp::kGaussianBlur: return minmax(0.1, 2.0);
    case TimmOp::kGaussianBlurRand: {  // gaussian_blur_rand: random.uniform(0.1, 2.0 * factor)
      const double factor = minmax(0.0, 1.0);
      return 0.1 + (2.0 * factor - 0.1) * rng.uniform();
    }
  }
  return 0.0;
}

// Note [timm's policies]: which ops a sample runs, and each one's argument and filter.
void draw_timm(const PlanSpec& s, Rng rng, TimmAugParams* t) {
  const int n = static_cast<int>(s.timm_ops.size());
  // AugmentOp.__call__ of entry e: skipped when random() > prob; its magnitude, argument, filter.
  auto draw_op = [&](int e) {
    if (s.timm_prob[e] < 1.0 && rng.uniform() > s.timm_prob[e]) return;
    double m = s.timm_mag[e];
    const double mstd = s.timm_mstd[e];
    if (mstd > 0.0) m = std::isinf(mstd) ? rng.uniform(0.0, m) : m + mstd * rng.normal();
    const double upper = s.timm_mmax[e] > 0.0 ? s.timm_mmax[e] : 10.0;
    m = std::max(0.0, std::min(m, upper));
    const TimmOp op = static_cast<TimmOp>(s.timm_ops[e]);
    t->op[t->n] = op;
    t->arg[t->n] = timm_level_arg(op, m, s.timm_hp[e], rng);
    PilFilter f = PilFilter::kBilinear;
    if (timm_geometric(op))
      f = s.timm_filter[e] >= 0 ? static_cast<PilFilter>(s.timm_filter[e])
                                : (rng.uniform() < 0.5 ? PilFilter::kBilinear : PilFilter::kBicubic);
    t->filter[t->n] = f;
    ++t->n;
  };
  int picks[kMaxAugOps];
  int np = 0;
  if (s.timm_policy == 1) {
    if (s.timm_weights.empty()) {
      for (int k = 0; k < s.timm_num_layers; ++k) picks[np++] = static_cast<int>(rng.randint(0, n));
    } else {  // numpy's choice(replace=False, p=w): each pick by the weights of the ops not picked yet
      std::vector<double> w(s.timm_weights);
      for (int k = 0; k < s.timm_num_layers; ++k) {
        double total = 0.0;
        for (double x : w) total += x;
        const double u = rng.uniform() * total;
        int j = 0, last = -1;
        double cum = 0.0;
        for (; j < n; ++j) {
          if (w[j] <= 0.0) continue;
          last = j;
          cum += w[j];
          if (u < cum) break;
        }
        if (j == n) j = last;  // rounding at the top end
        picks[np++] = j;
        w[j] = 0.0;
      }
    }
  } else if (s.timm_policy == 3) {
    // AugMixAugment.__call__: the weights, m, then per chain its depth and ops (Note [timm's AugMix])
    double g[kMaxChains], sum = 0.0;
    for (int c = 0; c < s.augmix_width; ++c) sum += (g[c] = rng.gamma(s.augmix_alpha));
    for (int c = 0; c < s.augmix_width; ++c)
      t->weight[c] = static_cast<float>(sum > 0.0 ? g[c] / sum : 1.0 / s.augmix_width);
    const double gx = rng.gamma(s.augmix_alpha), gy = rng.gamma(s.augmix_alpha);
    t->m = static_cast<float>(gx + gy > 0.0 ? gx / (gx + gy) : 0.5);
    t->chains = s.augmix_width;
    t->blended = s.timm_blended;
    for (int c = 0; c < s.augmix_width; ++c) {
      const int depth = s.augmix_depth > 0 ? s.augmix_depth : static_cast<int>(rng.randint(1, 4));
      const int before = t->n;
      for (int d = 0; d < depth; ++d) draw_op(static_cast<int>(rng.randint(0, n)));
      t->chain_len[c] = t->n - before;
    }
    return;
  } else {
    const int sub = static_cast<int>(rng.randint(0, static_cast<int64_t>(s.timm_sub_len.size())));
    int start = 0;
    for (int i = 0; i < sub; ++i) start += s.timm_sub_len[i];
    for (int k = 0; k < s.timm_sub_len[sub]; ++k) picks[np++] = start + k;
  }
  for (int i = 0; i < np; ++i) draw_op(picks[i]);
}

}  // namespace

namespace {

void run_timm_ops(const Kernels& kern, const TimmAugParams& t, int first, int count, const uint8_t fill[3],
                  uint8_t* const* rows, int h, int w, Scratch* scratch) {
  for (int i = first; i < first + count; ++i) {
    double arg = t.arg[i];
    if (t.op[i] == TimmOp::kTranslateXRel) arg *= w;  // translate_x_rel: pixels = pct * img.size[0]
    if (t.op[i] == TimmOp::kTranslateYRel) arg *= h;
    if (t.op[i] == TimmOp::kDesaturate) arg = std::min(1.0, std::max(0.0, 1.0 - arg));  // desaturate()
    apply_pil_op(kern, timm_pil_op(t.op[i]), arg, t.filter[i], fill, rows, h, w, scratch);
  }
}

}  // namespace

void apply_timm(const Kernels& kern, const TimmAugParams& t, const Float3& fill, uint8_t* const* rows, int h, int w,
                Scratch* scratch, Scratch* mix_scratch) {
  const uint8_t f[3] = {static_cast<uint8_t>(fill[0]), static_cast<uint8_t>(fill[1]), static_cast<uint8_t>(fill[2])};
  if (!t.chains) return run_timm_ops(kern, t, 0, t.n, f, rows, h, w, scratch);
  // Note [timm's AugMix]: mixed (float32, 4 per pixel: the RGBX layout, so the loops below run
  // straight along the bytes and vectorise; the fourth values are never read), then a chain's
  // copy of the image and its row pointers, in one scratch block.
  const size_t px = checked_mul(static_cast<size_t>(h), static_cast<size_t>(w));
  const size_t mixed_bytes = checked_mul(px, 4 * sizeof(float));
  const size_t chain_bytes = checked_mul(px, 4);
  uint8_t* block = mix_scratch->reserve(mixed_bytes + chain_bytes + static_cast<size_t>(h) * sizeof(uint8_t*) + 64);
  float* mixed = reinterpret_cast<float*>(block);
  uint8_t* chain = block + mixed_bytes;
  uint8_t** chain_rows = reinterpret_cast<uint8_t**>(block + ((mixed_bytes + chain_bytes + 15) & ~size_t(15)));
  std::fill(mixed, mixed + px * 4, 0.f);
  for (int y = 0; y < h; ++y) chain_rows[y] = chain + static_cast<size_t>(y) * w * 4;
  int first = 0;
  if (t.blended) {
    // Note [timm's AugMix], blended mode: the alphas in float32, then one blend per chain, each
    // chain run on the original image (kept in `mixed`'s bytes: 4 per pixel fit in its 16).
    float alpha[kMaxChains], cump = 1.f;
    for (int c = t.chains - 1; c >= 0; --c) {
      alpha[c] = (t.weight[c] * t.m) / cump;
      cump = cump * (1.f - alpha[c]);
    }
    uint8_t* orig = reinterpret_cast<uint8_t*>(mixed);
    for (int y = 0; y < h; ++y) std::memcpy(orig + static_cast<size_t>(y) * w * 4, rows[y], static_cast<size_t>(w) * 4);
    for (int c = 0; c < t.chains; ++c) {
      for (int y = 0; y < h; ++y)
        std::memcpy(chain_rows[y], orig + static_cast<size_t>(y) * w * 4, static_cast<size_t>(w) * 4);
      run_timm_ops(kern, t, first, t.chain_len[c], f, chain_rows, h, w, scratch);
      first += t.chain_len[c];
      for (int y = 0; y < h; ++y) {
        uint8_t* p = rows[y];
        const uint8_t* q = chain_rows[y];
        for (int x = 0; x < w * 4; x += 4)
          for (int ch = 0; ch < 3; ++ch) p[x + ch] = pil_blend(p[x + ch], q[x + ch], alpha[c]);
      }
    }
    return;
  }
  for (int c = 0; c < t.chains; ++c) {
    for (int y = 0; y < h; ++y) std::memcpy(chain_rows[y], rows[y], static_cast<size_t>(w) * 4);
    run_timm_ops(kern, t, first, t.chain_len[c], f, chain_rows, h, w, scratch);
    first += t.chain_len[c];
    for (int y = 0; y < h; ++y) {
      const size_t at = static_cast<size_t>(y) * w * 4;
      pil_mix_accumulate(mixed + at, chain + at, w * 4, t.weight[c]);  // mixed += mw * float32(img_aug)
    }
  }
  // np.clip to [0, 255], astype(uint8) (truncation), then Image.blend(img, mixed, m): with m in
  // [0, 1] (a Beta draw) Pillow's blend truncates t = float(img) + m * float(mixed - img). The
  // whole row goes through `out` (vectorised), then its three colour bytes per pixel are kept.
  uint8_t* out = chain;  // the last chain is mixed in already: its bytes are free
  for (int y = 0; y < h; ++y) {
    uint8_t* p = rows[y];
    pil_mix_finish(mixed + static_cast<size_t>(y) * w * 4, p, w * 4, t.m, out);
    for (int x = 0; x < w * 4; x += 4) p[x] = out[x], p[x + 1] = out[x + 1], p[x + 2] = out[x + 2];
  }
}

SampleParams plan_sample(const PlanSpec& s, int src_h, int src_w, const RunKey& key) {
  if (src_h <= 0 || src_w <= 0) throw Error(ErrorKind::kInvalid, "image has no pixels");
  auto stream = [&](uint64_t id) { return Rng(key.seed, key.epoch, key.index, id); };
  SampleParams p;
  Geometry& g = p.geom;
  g.src_h = src_h;
  g.src_w = src_w;
  g.box_h = src_h;
  g.box_w = src_w;
  g.rz_h = src_h;
  g.rz_w = src_w;
  g.interp = s.interp;
  if (s.interp_random)  // timm's random.choice((BILINEAR, BICUBIC)), from its own stream
    g.interp = stream(streams::kInterp).uniform() < 0.5 ? Interp::kBilinear : Interp::kBicubic;
  if (s.rrc) {
    Rng rng = stream(streams::kCrop);
    int box[4];
    random_resized_crop_box(s, src_h, src_w, rng, box);
    g.box_t = box[0]; g.box_l = box[1]; g.box_h = box[2]; g.box_w = box[3];
    g.rz_h = s.rrc_h;
    g.rz_w = s.rrc_w;
  } else if (s.resize_mode == 2) {
    g.rz_h = s.resize_h;
    g.rz_w = s.resize_w;
  } else if (s.resize_mode == 4) {
    // torchvision v2's RandomShortestSize.make_params: a size from the list, r = size / shorter
    // side (capped so that the longer side is at most max_size), each side int(side * r).
    Rng rng = stream(streams::kRandomResize);
    const int pick = s.resize_choices[rng.randint(0, static_cast<int64_t>(s.resize_choices.size()))];
    double r = static_cast<double>(pick) / std::min(src_h, src_w);
    if (s.max_size) r = std::min(r, static_cast<double>(s.max_size) / std::max(src_h, src_w));
    const double h = src_h * r, w = src_w * r;
    if (h > 1e9 || w > 1e9) throw Error(ErrorKind::kTooLarge, "resized image would be too large");
    g.rz_h = std::max(1, static_cast<int>(h));
    g.rz_w = std::max(1, static_cast<int>(w));
  } else if (s.resize_mode == 5) {
    // timm's ResizeKeepRatio.get_params without its random scale and aspect: the ratio of the
    // image to the target per side, mixed between the larger (longest = 1: the image fits in
    // the target) and the smaller (0: it covers it); each side round(side / ratio), Python's
    // round (half to even, the default rounding mode of nearbyint).
    const double rh = static_cast<double>(src_h) / s.resize_h, rw = static_cast<double>(src_w) / s.resize_w;
    const double ratio =
        std::max(rh, rw) * s.keep_ratio_longest + std::min(rh, rw) * (1.0 - s.keep_ratio_longest);
    const double h = std::nearbyint(src_h / ratio), w = std::nearbyint(src_w / ratio);
    if (h > 1e9 || w > 1e9) throw Error(ErrorKind::kTooLarge, "resized image would be too large");
    g.rz_h = std::max(1, static_cast<int>(h));
    g.rz_w = std::max(1, static_cast<int>(w));
  } else if (s.resize_mode == 1 || s.resize_mode == 3) {
    // torchvision's _compute_resized_output_size: the long side is truncated, not rounded.
    const bool w_short = src_w <= src_h;
    const int shorter = w_short ? src_w : src_h, longer = w_short ? src_h : src_w;
    // RandomResize: the shorter side uniform in [lo, hi), as v2's torch.randint(min_size, max_size).
    const int size = s.resize_mode == 1 ? s.resize_size
                                        : static_cast<int>(stream(streams::kRandomResize)
                                                               .randint(s.resize_choices[0], s.resize_choices[1]));
    int new_short = size;
    const double long_d = static_cast<double>(static_cast<int64_t>(size) * longer) / shorter;
    if (long_d > 1e9) throw Error(ErrorKind::kTooLarge, "resized image would be too large");
    int new_long = static_cast<int>(long_d);
    if (s.max_size && new_long > s.max_size) {
      new_short = static_cast<int>(static_cast<double>(static_cast<int64_t>(s.max_size) * new_short) / new_long);
      new_long = s.max_size;
    }
    new_short = std::max(new_short, 1);
    new_long = std::max(new_long, 1);
    g.rz_w = w_short ? new_short : new_long;
    g.rz_h = w_short ? new_long : new_short;
  }
  // Zero padding (Pad, RandomCrop's padding) around the resized image: the crops below are of
  // the padded image, and the offsets say where the resized image's (0, 0) lands.
  int pl = 0, pt = 0, pr = 0, pb = 0;
  if (!s.pad.empty()) pl = s.pad[0], pt = s.pad[1], pr = s.pad[2], pb = s.pad[3];
  if (s.zoom_p > 0.0) {
    // torchvision v2's RandomZoomOut: with probability p, a canvas side_range times the image,
    // the image at a uniform position on it (int() truncations as make_params).
    Rng rng = stream(streams::kZoomOut);
    if (s.zoom_p >= 1.0 || rng.uniform() < s.zoom_p) {
      const double r = s.zoom_lo + static_cast<float>(rng.uniform()) * (s.zoom_hi - s.zoom_lo);
      const double cw = g.rz_w * r, chh = g.rz_h * r;
      if (cw > 1e9 || chh > 1e9) throw Error(ErrorKind::kTooLarge, "RandomZoomOut canvas would be too large");
      const int canvas_w = static_cast<int>(cw), canvas_h = static_cast<int>(chh);
      const int left = static_cast<int>((canvas_w - g.rz_w) * static_cast<float>(rng.uniform()));
      const int top = static_cast<int>((canvas_h - g.rz_h) * static_cast<float>(rng.uniform()));
      pl += left, pt += top, pr += canvas_w - (left + g.rz_w), pb += canvas_h - (top + g.rz_h);
    }
  }
  int ph = g.rz_h + pt + pb, pw = g.rz_w + pl + pr;
  g.off_y = -pt;
  g.off_x = -pl;
  g.out_h = ph;
  g.out_w = pw;
  if (s.crop_h) {
    // torchvision's center_crop: pad with zeros when the crop is larger, else
    // top = round((h - crop) / 2) with Python's rounding.
    auto offset = [](int n, int c) { return c > n ? -((c - n) / 2) : round_half_even((n - c) / 2.0); };
    g.off_y = offset(ph, s.crop_h) - pt;
    g.off_x = offset(pw, s.crop_w) - pl;
    if (s.crop_anchor != 0) {  // FiveCrop / TenCrop's corners (torchvision refuses a crop larger than the image)
      if (s.crop_h > ph || s.crop_w > pw)
        throw Error(ErrorKind::kTooSmall, "crop size " + std::to_string(s.crop_h) + "x" + std::to_string(s.crop_w) +
                                              " is bigger than the image " + std::to_string(ph) + "x" +
                                              std::to_string(pw));
      if (s.crop_anchor <= 4) {  // 5: FiveCrop's centre, the centred window
        g.off_y = (s.crop_anchor >= 3 ? ph - s.crop_h : 0) - pt;
        g.off_x = (s.crop_anchor == 2 || s.crop_anchor == 4 ? pw - s.crop_w : 0) - pl;
      } else if (s.crop_anchor == 6) {  // the centre crop of the mirrored image, mirrored back
        g.off_x = (pw - s.crop_w) - round_half_even((pw - s.crop_w) / 2.0) - pl;
      } else if (s.crop_anchor == 7) {  // vertically
        g.off_y = (ph - s.crop_h) - round_half_even((ph - s.crop_h) / 2.0) - pt;
      }
    }
    g.out_h = s.crop_h;
    g.out_w = s.crop_w;
  } else if (s.rcrop) {
    // torchvision v2's RandomCrop.make_params: pad_if_needed adds the missing size on both
    // sides; then top (if the padded height exceeds the crop), then left, uniform.
    if (s.rcrop_if_needed && ph < s.rcrop_h) {
      const int d = s.rcrop_h - ph;
      pt += d;
      ph += 2 * d;
    }
    if (s.rcrop_if_needed && pw < s.rcrop_w) {
      const int d = s.rcrop_w - pw;
      pl += d;
      pw += 2 * d;
    }
    if (ph < s.rcrop_h || pw < s.rcrop_w)
      throw Error(ErrorKind::kTooSmall, "RandomCrop size " + std::to_string(s.rcrop_h) + "x" + std::to_string(s.rcrop_w) +
                                           " is larger than the (padded) image " + std::to_string(ph) + "x" +
                                           std::to_string(pw));
    Rng rng = stream(streams::kRandomCrop);
    const int top = ph > s.rcrop_h ? static_cast<int>(rng.randint(0, ph - s.rcrop_h + 1)) : 0;
    const int left = pw > s.rcrop_w ? static_cast<int>(rng.randint(0, pw - s.rcrop_w + 1)) : 0;
    g.off_y = top - pt;
    g.off_x = left - pl;
    g.out_h = s.rcrop_h;
    g.out_w = s.rcrop_w;
    pb = ph - g.rz_h - pt;
    pr = pw - g.rz_w - pl;
  }
  g.pad_l = pl, g.pad_t = pt, g.pad_r = pr, g.pad_b = pb;
  // A random op with p = 0 draws nothing (and p = 1 always applies).
  if (s.flip_p > 0.0) g.flip = stream(streams::kHFlip).uniform() < s.flip_p;
  if (s.vflip_p > 0.0) g.vflip = stream(streams::kVFlip).uniform() < s.vflip_p;
  if (s.gray_p > 0.0) p.color.gray = stream(streams::kGray).uniform() < s.gray_p;
  if (s.lighting_std > 0.0) {
    // AlexNet / fb.resnet.torch PCA lighting: alpha ~ N(0, std) per eigenvector, and the RGB
    // shift eigvec @ (alpha * eigval), added to the [0, 1] values before Normalize.
    Rng rng = stream(streams::kLighting);
    ColorParams& c = p.color;
    c.lighting = true;
    for (int k = 0; k < 3; ++k) c.alpha[k] = static_cast<float>(rng.normal() * s.lighting_std);
    for (int i = 0; i < 3; ++i) {
      float acc = 0.f;
      for (int k = 0; k < 3; ++k) acc += s.eigvec[3 * i + k] * (c.alpha[k] * s.eigval[k]);
      c.shift[i] = acc;
    }
  }
  if (s.noise_on) {
    p.color.noise = true;
    p.color.noise_seed = stream(streams::kGaussianNoise).next();
  }
  if (s.erase_p > 0.0) {
    // torchvision's RandomErasing: applied with probability p; then up to 10 tries of an area
    // fraction and a log-uniform aspect ratio, h = round(sqrt(area * ratio)), w = round(sqrt(area
    // / ratio)), kept when h < H and w < W, at a uniform position; none fits: nothing erased.
    // timm's is the same per rectangle, for a count uniform in [lo, hi] (drawn only when they
    // differ), each rectangle's area fraction divided by the count.
    Rng rng = stream(streams::kErase);
    if (rng.uniform() < s.erase_p) {
      const double area = static_cast<double>(g.out_h) * g.out_w;
      const double log_lo = std::log(s.erase_ratio_lo), log_hi = std::log(s.erase_ratio_hi);
      const int count = s.erase_count_lo == s.erase_count_hi
                            ? s.erase_count_lo
                            : static_cast<int>(rng.randint(s.erase_count_lo, s.erase_count_hi + 1));
      EraseParams& e = p.erase;
      for (int k = 0; k < count; ++k) {
        for (int attempt = 0; attempt < 10; ++attempt) {
          const double ea = area * rng.uniform(s.erase_scale_lo, s.erase_scale_hi) / count;
          const double ar = std::exp(rng.uniform(log_lo, log_hi));
          const int h = round_half_even(std::sqrt(ea * ar)), w = round_half_even(std::sqrt(ea / ar));
          if (!(h < g.out_h && w < g.out_w)) continue;
          e.height[e.n] = h;
          e.width[e.n] = w;
          e.top[e.n] = static_cast<int>(rng.randint(0, g.out_h - h + 1));
          e.left[e.n] = static_cast<int>(rng.randint(0, g.out_w - w + 1));
          ++e.n;
          break;
        }
      }
      if (e.n) e.noise_seed = rng.next();
    }
  }
  if (s.affine_mode == 4) {
    // torchvision v2's ElasticTransform: always applied; its displacement is a function of one
    // draw (Note [Elastic arithmetic]).
    Rng rng = stream(streams::kAffine);
    p.affine.on = p.affine.elastic = true;
    p.affine.elastic_seed = rng.next();
  } else if (s.affine_mode == 3) {
    // torchvision v2's RandomPerspective: applied with probability p; each corner moved inward by
    // up to distortion_scale * half the side (torch.randint bounds), then the coefficients.
    Rng rng = stream(streams::kAffine);
    AffineParams& a = p.affine;
    if (s.persp_p >= 1.0 || (s.persp_p > 0.0 && rng.uniform() < s.persp_p)) {
      const int h = g.out_h, w = g.out_w;
      const int bh = static_cast<int>(s.persp_scale * (h / 2)) + 1, bw = static_cast<int>(s.persp_scale * (w / 2)) + 1;
      auto r = [&](int lo, int hi) { return static_cast<int>(rng.randint(lo, hi)); };
      const int end[8] = {r(0, bw), r(0, bh), r(w - bw, w), r(0, bh), r(w - bw, w), r(h - bh, h), r(0, bw), r(h - bh, h)};
      const int start[8] = {0, 0, w - 1, 0, w - 1, h - 1, 0, h - 1};
      a.on = a.perspective = true;
      std::copy(end, end + 8, a.corners);
      perspective_coeffs(start, end, a.coeffs);
    }
  } else if (s.affine_mode) {
    // torchvision v2's RandomRotation / RandomAffine._get_params: angle uniform in degrees; tx, ty
    // = round(uniform(-max, max)) with max = fraction * size; scale uniform; shear x (and y).
    Rng rng = stream(streams::kAffine);
    AffineParams& a = p.affine;
    a.on = true;
    a.rotate = s.affine_mode == 1;
    a.angle = static_cast<float>(rng.uniform(s.degrees_lo, s.degrees_hi));
    if (s.affine_mode == 2) {
      const double mx = s.translate_x * g.out_w, my = s.translate_y * g.out_h;
      a.tx = static_cast<float>(round_half_even(static_cast<float>(rng.uniform(-mx, mx))));
      a.ty = static_cast<float>(round_half_even(static_cast<float>(rng.uniform(-my, my))));
      a.scale = static_cast<float>(rng.uniform(s.affine_scale_lo, s.affine_scale_hi));
      if (s.shear_n >= 2) a.shear_x = static_cast<float>(rng.uniform(s.shear_x[0], s.shear_x[1]));
      if (s.shear_n == 4) a.shear_y = static_cast<float>(rng.uniform(s.shear_y[0], s.shear_y[1]));
    }
  }
  if (s.aug_policy) {
    // torchvision v2's RandAugment / TrivialAugmentWide / AutoAugment forward(): which ops, which
    // magnitude bin, and a coin for the sign of signed ops.
    Rng rng = stream(streams::kAugment);
    AugmentParams& a = p.augment;
    const int n_ops = static_cast<int>(s.aug_ops.size());
    auto add = [&](int entry, int bin) {
      const AugTable t = static_cast<AugTable>(s.aug_table[entry]);
      float m = 0.f;
      if (t != AugTable::kNone) {
        m = aug_magnitude(t, s.aug_lo[entry], s.aug_hi[entry], s.aug_bins, bin, g.out_h, g.out_w);
        if (s.aug_signed[entry] && rng.uniform() < 0.5) m = -m;
      }
      a.op[a.n] = static_cast<AugOp>(s.aug_ops[entry]);
      a.mag[a.n] = m;
      ++a.n;
    };
    if (s.aug_policy == 4) {
      // v2's AugMix.forward: m ~ Dirichlet(alpha, alpha); chain weights ~ Dirichlet(alpha x
      // width) * m[1]; per chain a depth (1..3 when -1) and its ops, each a uniform op of the
      // space at a magnitude bin uniform in [0, severity), with a random sign.
      auto dirichlet = [&](int n, float* out) {
        double g[kMaxChains], sum = 0.0;
        for (int k = 0; k < n; ++k) sum += (g[k] = rng.gamma(s.augmix_alpha));
        for (int k = 0; k < n; ++k) out[k] = static_cast<float>(sum > 0.0 ? g[k] / sum : 1.0 / n);
      };
      float m[2], cw[kMaxChains];
      dirichlet(2, m);
      dirichlet(s.augmix_width, cw);
      a.weight[0] = m[0];
      a.chains = s.augmix_width;
      for (int ch = 0; ch < s.augmix_width; ++ch) {
        a.weight[ch + 1] = cw[ch] * m[1];
        const int depth = s.augmix_depth > 0 ? s.augmix_depth : static_cast<int>(rng.randint(1, 4));
        a.chain_len[ch] = depth;
        for (int d = 0; d < depth; ++d)
          add(static_cast<int>(rng.randint(0, n_ops)), static_cast<int>(rng.randint(0, s.aug_magnitude)));
      }
    } else if (s.aug_policy == 1) {
      for (int k = 0; k < s.aug_num_ops; ++k) add(static_cast<int>(rng.randint(0, n_ops)), s.aug_magnitude);
    } else if (s.aug_policy == 2) {
      const int entry = static_cast<int>(rng.randint(0, n_ops));
      add(entry, static_cast<int>(rng.randint(0, s.aug_bins)));
    } else {
      const int sub = static_cast<int>(rng.randint(0, n_ops / 2));
      for (int k = 2 * sub; k < 2 * sub + 2; ++k)
        if (s.aug_prob[k] > 0.0 && rng.uniform() < s.aug_prob[k]) add(k, s.aug_bin[k]);
    }
  }
  if (s.timm_policy) draw_timm(s, stream(streams::kTimmAugment), &p.timm);
  if (s.hsv_gain[0] != 0.f || s.hsv_gain[1] != 0.f || s.hsv_gain[2] != 0.f) {
    // Ultralytics' RandomHSV: r = U(-1, 1) * gain for h, s, v (Note [RandomHSV arithmetic]).
    Rng rng = stream(streams::kHsv);
    p.color.hsv.on = true;
    for (int k = 0; k < 3; ++k) p.color.hsv.gain[k] = static_cast<float>(rng.uniform(-1.0, 1.0) * s.hsv_gain[k]);
  }
  if (!s.px_ops.empty() || !s.group_kind.empty()) draw_sequence(s, key, &p.seq);
  if (s.jitter_mask && s.jitter_p >= 0.0) {
    // torchvision v2's RandomPhotometricDistort.make_params: each op applied with probability p
    // (its factor uniform in its range), contrast before saturation and hue or after them.
    Rng rng = stream(streams::kDistort);
    JitterParams& j = p.color.jitter;
    j.mask = 0;
    const double lo[4] = {s.brightness_lo, s.contrast_lo, s.saturation_lo, s.hue_lo};
    const double hi[4] = {s.brightness_hi, s.contrast_hi, s.saturation_hi, s.hue_hi};
    for (int k = 0; k < 4; ++k)
      if ((s.jitter_mask >> k & 1) && rng.uniform() < s.jitter_p) {
        j.mask |= 1 << k;
        j.factor[k] = static_cast<float>(rng.uniform(lo[k], hi[k]));
      }
    const bool before = rng.uniform() < 0.5;
    const int order[2][4] = {{0, 2, 3, 1}, {0, 1, 2, 3}};
    for (int k = 0; k < 4; ++k) j.order[k] = order[before][k];
  } else if (s.jitter_mask) {
    // torchvision's ColorJitter: a random order of the four ops (randperm), then each enabled
    // factor uniform in its range, in the order brightness, contrast, saturation, hue.
    Rng rng = stream(streams::kJitter);
    JitterParams& j = p.color.jitter;
    j.mask = s.jitter_mask;
    for (int k = 0; k < 4; ++k) j.order[k] = k;
    for (int k = 3; k > 0; --k) std::swap(j.order[k], j.order[rng.randint(0, k + 1)]);
    const double lo[4] = {s.brightness_lo, s.contrast_lo, s.saturation_lo, s.hue_lo};
    const double hi[4] = {s.brightness_hi, s.contrast_hi, s.saturation_hi, s.hue_hi};
    for (int k = 0; k < 4; ++k)
      if (j.mask >> k & 1) j.factor[k] = static_cast<float>(rng.uniform(lo[k], hi[k]));
    if (s.jitter_group >= 0 && !p.seq.group[s.jitter_group]) j.mask = 0;  // its RandomApply did not apply
  }
  return p;
}

}  // namespace fastprep
