// libFuzzer harness for fastprep's native decode + transform entry point (a fastprep::Batch of one
// sample, as the Python bindings run it: Batch -> Engine -> run_sample),
// built with clang -fsanitize=fuzzer,address,undefined over csrc/ but its Python bindings
// (see .ci/fuzz_and_asan.sh). Seeds: python fuzz/make_seeds.py DIR.
//
// The last byte of the input picks the plan (a JPEG ignores whatever follows its EOI, so a seed
// is a plain JPEG with one byte appended): geometry, interpolation, dtype, layout, colour, DCT
// scaling or exact, flip, strictness and SIMD level. Each input runs through one plan, with one
// Worker reused across inputs as in production, into a slot allocated to its exact size (so ASan
// sees any write past it).
//
// What counts as a finding: any sanitizer report, a crash, a timeout, or a result that breaks the
// run_sample contract (an error other than decode/unsupported/too-large/io for JPEG bytes, or a
// success whose geometry disagrees with the slot).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "pipeline/batch.h"
#include "pipeline/pipeline.h"
#include "codecs/png_decoder.h"
#include "codecs/webp_decoder.h"
#include "pipeline/plan.h"
#include "kernels/dispatch.h"

using namespace fastprep;

namespace {

// The fuzzing limit (the library default is ~179 MP). It bounds every buffer of a sample (the
// decoded image, the resampler's intermediate, the output) and so its time: here about 1 us per
// pixel, ~170x a release build (ASan, UBSan, coverage, -O1, the scalar kernels), so that 2 MP keeps
// every input well under -timeout=10. At 20 MP a 17x393227 PNG resized to (5, 70) took 28 s.
constexpr int64_t kMaxPixels = 2'000'000;
constexpr int kPlans = 21;

PlanSpec base_spec(int which) {
  PlanSpec s;
  s.max_pixels = kMaxPixels;
  switch (which) {
    case 0:  // eval, exact, uint8 HWC
      s.resize_mode = 1, s.resize_size = 64, s.crop_h = s.crop_w = 64, s.exact = true;
      s.dtype = DType::kU8, s.layout = Layout::kHWC;
      break;
    case 1:  // eval with DCT-domain downscaling, normalised float32 CHW
      s.resize_mode = 1, s.resize_size = 24, s.crop_h = s.crop_w = 20;
      s.normalize = true, s.mean[0] = 0.485f, s.mean[1] = 0.456f, s.mean[2] = 0.406f;
      s.std[0] = 0.229f, s.std[1] = 0.224f, s.std[2] = 0.225f;
      s.lighting_std = 0.1, s.eigval = {0.2175f, 0.0188f, 0.0045f};  // Lighting, then RandomErasing
      s.eigvec = {-0.5675f, 0.7192f, 0.4009f, -0.5808f, -0.0045f, -0.8140f, -0.5836f, -0.6948f, 0.4203f};
      s.erase_p = 0.5, s.erase_random = true;
      break;
    case 2:  // train: RandomResizedCrop + flip, bicubic, bfloat16
      s.rrc = true, s.rrc_h = 48, s.rrc_w = 40, s.flip_p = 0.5, s.interp = Interp::kBicubic;
      s.vflip_p = 0.5, s.gray_p = 0.5;  // per-sample draws of the uint8 stage
      s.jitter_mask = 15, s.brightness_lo = s.contrast_lo = s.saturation_lo = 0.6;  // ColorJitter(0.4, ..., 0.1)
      s.brightness_hi = s.contrast_hi = s.saturation_hi = 1.4, s.hue_lo = -0.1, s.hue_hi = 0.1;
      s.dtype = DType::kBF16;
      break;
    case 3:  // exact (h, w) resize, nearest, gray float16
      s.resize_mode = 2, s.resize_h = 37, s.resize_w = 91, s.interp = Interp::kNearest;
      s.dtype = DType::kF16, s.color = Color::kGray;
      break;
    case 4:  // crop only, larger than most seeds: zero padding
      s.crop_h = 33, s.crop_w = 129, s.dtype = DType::kU8, s.color = Color::kBGR;
      s.jitter_mask = 2, s.contrast_lo = 0.0, s.contrast_hi = 3.0;  // contrast over a padded image
      break;
    case 5:  // upscaling with max_size
      s.resize_mode = 1, s.resize_size = 200, s.max_size = 260, s.crop_h = s.crop_w = 96;
      s.antialias = false;
      s.norm_mode = NormMode::kPerImage;  // two-phase output stage (histogram, per-sample table)
      break;
    case 6:  // the whole image (output size from the header), uint8 HWC
      s.exact = true, s.dtype = DType::kU8, s.layout = Layout::kHWC;
      break;
    case 7:  // heavy DCT scaling (1/8), YCbCr output
      s.resize_mode = 1, s.resize_size = 4, s.crop_h = s.crop_w = 3, s.dtype = DType::kU8;
      s.color = Color::kYCbCr;
      break;
    case 8:  // Resize(int) alone, bicubic with antialias, float32 HWC
      s.resize_mode = 1, s.resize_size = 31, s.interp = Interp::kBicubic, s.layout = Layout::kHWC;
      s.norm_mode = NormMode::kMinMax, s.range_lo = -1.f;
      break;
    case 10:  // ColorJitter, RandomHSV and whitening over a padded crop
      s.resize_mode = 1, s.resize_size = 40, s.crop_h = s.crop_w = 48;
      s.hsv_gain = {1.f, 1.f, 1.f};
      s.jitter_mask = 1, s.brightness_lo = 0.5, s.brightness_hi = 1.5;
      s.norm_mode = NormMode::kWhiten, s.mean = {0.5f, 0.4f, 0.3f};
      s.mix = {2.f, 3.f, -1.f, 0.5f, 8.f, 1.f, -4.f, 0.f, 12.f};
      break;
    case 11:  // RandomAffine (bilinear, fill) then a TrivialAugmentWide-like space of every op, over padding
      s.resize_mode = 1, s.resize_size = 30, s.crop_h = 33, s.crop_w = 37;
      s.affine_mode = 2, s.degrees_lo = -170.0, s.degrees_hi = 170.0, s.translate_x = s.translate_y = 0.5;
      s.affine_scale_lo = 0.2, s.affine_scale_hi = 3.0, s.shear_n = 4, s.shear_x = {-80.f, 80.f, 0.f};
      s.shear_y = {-80.f, 80.f, 0.f}, s.affine_interp = Interp::kBilinear, s.affine_fill = {1.f, 2.f, 3.f};
      s.aug_policy = 2, s.aug_bins = 5, s.aug_interp = Interp::kBilinear;
      for (int op = 0; op < kAugOpCount; ++op) {
        s.aug_ops.push_back(op), s.aug_table.push_back(op == 10 ? 4 : (op >= 3 && op <= 4 ? 2 + (op - 3) : 1));
        s.aug_lo.push_back(0.0), s.aug_hi.push_back(op == 10 ? 6.0 : 0.99), s.aug_signed.push_back(op != 10);
      }
      break;
    case 15:  // RandomPerspective (bilinear, fill) on a RandomShortestSize resize and a tiny RandomCrop
      s.resize_mode = 4, s.resize_choices = {1, 2, 37}, s.max_size = 50, s.rcrop = true, s.rcrop_h = 1, s.rcrop_w = 3;
      s.rcrop_if_needed = true, s.affine_mode = 3, s.persp_scale = 1.0, s.persp_p = 0.9;
      s.zoom_p = 0.7, s.zoom_lo = 1.0, s.zoom_hi = 64.0, s.pad_fill = {3.f, 4.f, 5.f};  // RandomZoomOut
      s.affine_interp = Interp::kBilinear, s.affine_fill = {9.f, 8.f, 7.f};
      break;
    case 17:  // ElasticTransform (nearest, no fill; a blur wider than small images), GaussianNoise, float16 HWC
      s.rrc = true, s.rrc_h = 9, s.rrc_w = 30, s.affine_mode = 4, s.elastic_alpha_x = 500.0, s.elastic_alpha_y = 3.0;
      s.elastic_sigma_x = 6.0, s.elastic_sigma_y = 0.5, s.affine_fill_on = false;
      s.noise_on = true, s.noise_mean = 0.1, s.noise_sigma = 2.0, s.noise_clip = false, s.unit_mul = true;
      s.normalize = true, s.mean[1] = 0.5f, s.std[1] = 0.25f, s.dtype = DType::kF16, s.layout = Layout::kHWC;
      break;
    case 16:  // AugMix: 8 chains of 2 ops over every op and table, small alpha
      s.resize_mode = 1, s.resize_size = 20, s.crop_h = 19, s.crop_w = 23, s.aug_policy = 4, s.aug_bins = 10;
      s.aug_magnitude = 10, s.augmix_width = 8, s.augmix_depth = 2, s.augmix_alpha = 0.05, s.aug_interp = Interp::kBilinear;
      for (int op = 0; op < kAugOpCount; ++op) {
        s.aug_ops.push_back(op), s.aug_table.push_back(op == 10 ? 5 : (op >= 3 && op <= 4 ? 2 + (op - 3) : 1));
        s.aug_lo.push_back(0.0), s.aug_hi.push_back(op == 10 ? 4.0 : 0.3), s.aug_signed.push_back(op != 10);
      }
      break;
    case 12:  // RandomRotation (nearest, no fill) then RandAugment with many ops, uint8 output
      s.rrc = true, s.rrc_h = 17, s.rrc_w = 17, s.affine_mode = 1, s.degrees_lo = -360.0, s.degrees_hi = 360.0;
      s.affine_fill_on = false, s.aug_policy = 1, s.aug_num_ops = kMaxAugOps, s.aug_magnitude = 30, s.dtype = DType::kU8;
      for (int op = 0; op < kAugOpCount; ++op) {
        s.aug_ops.push_back(op), s.aug_table.push_back(op == 10 ? 4 : 1);
        s.aug_lo.push_back(op == 11 ? 1.0 : 0.0), s.aug_hi.push_back(op == 10 ? 4.0 : (op == 11 ? 0.0 : 0.9));
        s.aug_signed.push_back(1);
      }
      break;
    case 13:  // RandomCrop with padding and pad_if_needed, then the op sequence in containers (gray output)
      s.pad = {3, 0, 40, 2}, s.rcrop = true, s.rcrop_h = 45, s.rcrop_w = 9, s.rcrop_if_needed = true;
      s.pad_fill = {7.f, 0.f, 255.f};
      s.color = Color::kGray, s.dtype = DType::kU8, s.gray_p = 0.0;
      s.jitter_mask = 1, s.brightness_lo = 0.5, s.brightness_hi = 1.5, s.jitter_group = 0;
      s.group_kind = {0, 1, 2}, s.group_members = {1, 2, 2}, s.group_p = {0.8, 1.0, 3.0};
      for (int op = 0; op < kPixOpCount; ++op) {
        if (op == static_cast<int>(PixOp::kChannelPermutation) || op == static_cast<int>(PixOp::kExemplarJitter) ||
            op == static_cast<int>(PixOp::kJpeg))
          continue;  // these need RGB
        s.px_ops.push_back(op);
        const bool blur = op == static_cast<int>(PixOp::kGaussianBlur), pil = op == static_cast<int>(PixOp::kPilBlur);
        const double a[kPixArgs] = {blur ? 23.0 : (pil ? 0.7 : 1.0), blur ? 3.0 : (pil ? 0.0 : 4.0),
                                    pil ? 12.0 : 0.1, 9.0};  // PIL blur: p 0.7, radius 0 to 12
        s.px_args.insert(s.px_args.end(), a, a + kPixArgs);
        const int g = op < 2 ? 1 : (op < 4 ? 2 : -1);
        s.px_group.push_back(g), s.px_member.push_back(g < 0 ? 0 : op % 2);
      }
      break;
    case 14:  // reflect Pad, a larger center crop, RandomPhotometricDistort, blur, permutation, Exemplar, JPEG
      s.resize_mode = 2, s.resize_h = 5, s.resize_w = 70, s.pad = {1, 2, 3, 4}, s.crop_h = 9, s.crop_w = 90;
      s.pad_mode = 2;  // reflect: rows mirror within the 5-row image, a 4-row pad fits
      s.jitter_mask = 15, s.jitter_p = 0.5, s.brightness_lo = s.contrast_lo = s.saturation_lo = 0.5;  // RandomPhotometricDistort
      s.brightness_hi = s.contrast_hi = s.saturation_hi = 1.5, s.hue_lo = -0.05, s.hue_hi = 0.05;
      s.px_ops = {static_cast<int>(PixOp::kGaussianBlur), static_cast<int>(PixOp::kChannelPermutation),
                  static_cast<int>(PixOp::kExemplarJitter), static_cast<int>(PixOp::kJpeg)};
      s.px_args = {63.0, 1.0, 50.0, 50.0, 0.0, 0.0, 0.0, 0.0,  0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                   0.25, 4.0, 0.7, 1.4, -0.1, 0.1, -0.1, 0.1,  1.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
      s.px_group = {-1, -1, -1, -1}, s.px_member = {0, 0, 0, 0};
      break;
    case 18:  // timm's RandAugment: every op, 4 per sample at p 0.9, uniform magnitudes up to 12, either filter
      s.rrc = true, s.rrc_h = 21, s.rrc_w = 26, s.timm_policy = 1, s.timm_num_layers = 4;
      s.timm_fill = {1.f, 200.f, 255.f}, s.dtype = DType::kU8;
      for (int op = 0; op < kTimmOpCount; ++op) {
        s.timm_ops.push_back(op), s.timm_prob.push_back(0.9), s.timm_mag.push_back(10.0);
        s.timm_mstd.push_back(std::numeric_limits<double>::infinity()), s.timm_mmax.push_back(12.0);
        s.timm_hp.push_back(op >= static_cast<int>(TimmOp::kTranslateXRel) ? 0.45 : 40.0);
        s.timm_filter.push_back(op % 3 == 0 ? -1 : 2 + op % 2);
      }
      break;
    case 19:  // timm's AugMix: 8 chains of 2 ops over every op, magnitudes uniform, small alpha, float16 CHW
      s.rrc = true, s.rrc_h = 15, s.rrc_w = 11, s.timm_policy = 3, s.augmix_width = 8, s.augmix_depth = 2;
      s.augmix_alpha = 0.05, s.dtype = DType::kF16;
      for (int op = 0; op < kTimmOpCount; ++op) {
        s.timm_ops.push_back(op), s.timm_prob.push_back(1.0), s.timm_mag.push_back(7.0);
        s.timm_mstd.push_back(std::numeric_limits<double>::infinity()), s.timm_mmax.push_back(0.0);
        s.timm_hp.push_back(op >= static_cast<int>(TimmOp::kTranslateXRel) ? 0.3 : 25.0), s.timm_filter.push_back(-1);
      }
      break;
    case 20:  // timm's AugMix in blended mode: 3 chains of 1 to 3 ops over every op, uint8 HWC
      s.rrc = true, s.rrc_h = 19, s.rrc_w = 24, s.timm_policy = 3, s.timm_blended = true, s.dtype = DType::kU8;
      for (int op = 0; op < kTimmOpCount; ++op) {
        s.timm_ops.push_back(op), s.timm_prob.push_back(1.0), s.timm_mag.push_back(9.0);
        s.timm_mstd.push_back(0.5), s.timm_mmax.push_back(0.0), s.timm_hp.push_back(0.3), s.timm_filter.push_back(-1);
      }
      break;
    default:  // RRC with extreme ratios and tiny scale
      s.rrc = true, s.rrc_h = 7, s.rrc_w = 65, s.scale_lo = 0.001, s.scale_hi = 0.01;
      s.ratio_lo = 0.05, s.ratio_hi = 20.0, s.dtype = DType::kU8;
      break;
  }
  return s;
}

struct Plans {
  // [plan][strictness 0..2][simd 0..2]
  std::vector<std::unique_ptr<Plan>> p;
  Simd best;
  Plans() {
    best = cpu_best_simd();
    for (int i = 0; i < kPlans; ++i)
      for (int st = 0; st < 3; ++st)
        for (int sm = 0; sm < 3; ++sm) {
          PlanSpec s = base_spec(i);
          s.strict = st != 1;              // 0 strict, 1 lenient, 2 strict + allow_truncated
          s.allow_truncated = st == 2;
          s.simd = static_cast<Simd>(sm > static_cast<int>(best) ? static_cast<int>(best) : sm);
          p.emplace_back(new Plan(s));
        }
  }
  const Plan& get(uint8_t sel) const {
    const int i = sel % kPlans, st = (sel / kPlans) % 3, sm = (sel / (kPlans * 3)) % 3;
    return *p[(i * 3 + st) * 3 + sm];
  }
  // Plan i with the strictness and SIMD level of selector `sel` (a multi-view's other views).
  const Plan& like(uint8_t sel, int i) const {
    const int st = (sel / kPlans) % 3, sm = (sel / (kPlans * 3)) % 3;
    return *p[(i * 3 + st) * 3 + sm];
  }
};

[[noreturn]] void finding(const char* what, const SampleResult& r) {
  std::fprintf(stderr, "fastprep contract violation: %s (status %d kind %d: %s)\n", what,
               static_cast<int>(r.status), static_cast<int>(r.kind), r.message.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Plans plans;
  static Engine engine(1);  // one worker, reused across inputs as in production (no thread started)
  if (size < 1) return 0;
  const uint8_t sel = data[size - 1];
  const Plan& plan = plans.get(sel);

  // A private copy of exactly `size` bytes: a read past the end is an ASan report.
  std::unique_ptr<uint8_t[]> buf(new uint8_t[size]);
  std::memcpy(buf.get(), data, size);
  SampleInput in;
  in.kind = SampleInput::kBytes;
  in.data = buf.get();
  in.size = size;
  RunKey key{sel, 1, size};

  // Plans are owned by `plans` for the whole run: the Batch borrows them (no-op deleters).
  std::shared_ptr<const Plan> plan_ref(&plan, [](const Plan*) {});
  auto items = std::make_shared<const std::vector<SampleInput>>(1, in);
  int out_h, out_w;
  if (!plan.fixed_size(&out_h, &out_w)) {
    Batch probe(plan_ref, items, {0}, {0}, {key.index}, key.seed, key.epoch);
    probe.probe(engine);
    const SampleResult& res = probe.results()[0];
    if (res.status != SampleStatus::kOk) {
      if (res.status == SampleStatus::kError && res.kind == ErrorKind::kInvalid) finding("probe: kInvalid", res);
      return 0;
    }
    out_h = res.params.geom.out_h;
    out_w = res.params.geom.out_w;
    if (out_h <= 0 || out_w <= 0 || static_cast<int64_t>(out_h) * out_w > kMaxPixels) finding("probe geometry", res);
  }
  const size_t slot_bytes = static_cast<size_t>(out_h) * out_w * plan.out.channels * dtype_size(plan.spec.dtype);
  std::unique_ptr<uint8_t[]> slot(new uint8_t[slot_bytes]);
  Batch batch(plan_ref, items, {0}, {0}, {key.index}, key.seed, key.epoch);
  batch.set_output(slot.get(), slot_bytes, out_h, out_w);
  batch.run(engine);
  const SampleResult& r = batch.results()[0];
  switch (r.status) {
    case SampleStatus::kOk: {
      if (r.params.geom.out_h != out_h || r.params.geom.out_w != out_w) finding("geometry differs from the slot", r);
      break;
    }
    case SampleStatus::kError:
      if (r.kind == ErrorKind::kInvalid) finding("run: kInvalid on encoded bytes", r);
      if (r.message.empty()) finding("error without a reason", r);
      break;
    case SampleStatus::kNotJpeg:
      if (is_jpeg(data, size)) finding("JPEG bytes reported as not a JPEG", r);
      if (is_png(data, size)) finding("PNG bytes reported as not decodable natively", r);
      if (is_webp(data, size)) {
        bool still = false;
        try {
          still = !webp_info(data, size, 0).animated;
        } catch (const Error&) {
        }
        if (still) finding("still WebP reported as not native", r);
      }
      break;
  }
  // The same bytes as three views from one decode (Note [Multi-view decode]): this plan, the
  // bfloat16 train crop (plan 2) and the elastic + noise plan (17), when they share the decoder's
  // options and have fixed sizes. Every view gets the sample's status; a good sample fills every
  // slot at its size, with at most one JPEG decode.
  {
    const Plan* views[3] = {&plan, &plans.like(sel, 2), &plans.like(sel, 17)};
    int vh[3], vw[3];
    bool ok = true;
    for (int v = 0; v < 3; ++v) {
      const PlanSpec& a = views[v]->spec;
      const PlanSpec& b = plan.spec;
      ok = ok && views[v]->fixed_size(&vh[v], &vw[v]) && a.max_pixels == b.max_pixels && a.strict == b.strict &&
           a.allow_truncated == b.allow_truncated && a.apply_exif == b.apply_exif;
    }
    if (ok) {
      std::vector<std::shared_ptr<const Plan>> refs;
      std::vector<std::unique_ptr<uint8_t[]>> outs;
      for (int v = 0; v < 3; ++v) refs.emplace_back(views[v], [](const Plan*) {});
      Batch mv(refs, items, {0}, {0}, {key.index}, key.seed, key.epoch);
      for (int v = 0; v < 3; ++v) {
        const size_t bytes = static_cast<size_t>(vh[v]) * vw[v] * views[v]->out.channels *
                             dtype_size(views[v]->spec.dtype);
        outs.emplace_back(new uint8_t[bytes]);
        mv.set_output(outs.back().get(), bytes, vh[v], vw[v], v);
      }
      mv.run(engine);
      const SampleResult* vr = mv.results().data();
      for (int v = 0; v < 3; ++v) {
        if (vr[v].status != vr[0].status) finding("views of one sample disagree on its status", vr[v]);
        if (vr[v].decode_sessions > 1) finding("a multi-view sample decoded more than once", vr[v]);
        if (vr[v].status == SampleStatus::kOk && (vr[v].params.geom.out_h != vh[v] || vr[v].params.geom.out_w != vw[v]))
          finding("a view's geometry differs from its slot", vr[v]);
        if (vr[v].status == SampleStatus::kError && vr[v].message.empty()) finding("view error without a reason", vr[v]);
      }
    }
  }
  return 0;
}
