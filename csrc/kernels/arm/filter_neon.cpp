// The NEON variant of GaussianBlur's taps (filter.h): four outputs per vector, each summed in tap
// order with a multiply then an add (vmulq_f32, vaddq_f32: never fused), as the scalar reference
// in filter.cpp, so the bytes are the reference's (checked under qemu-aarch64).
#include <arm_neon.h>

#include "kernels/arm/kernels.h"
#include "kernels/reference.h"

namespace fastprep {

void blur_taps_neon(const float* const* rows, const float* w, int k, int n, float* out) {
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    float32x4_t a0 = vdupq_n_f32(0.f), a1 = a0, a2 = a0, a3 = a0;
    for (int j = 0; j < k; ++j) {
      const float32x4_t wj = vdupq_n_f32(w[j]);
      const float* r = rows[j] + i;
      a0 = vaddq_f32(a0, vmulq_f32(wj, vld1q_f32(r)));
      a1 = vaddq_f32(a1, vmulq_f32(wj, vld1q_f32(r + 4)));
      a2 = vaddq_f32(a2, vmulq_f32(wj, vld1q_f32(r + 8)));
      a3 = vaddq_f32(a3, vmulq_f32(wj, vld1q_f32(r + 12)));
    }
    vst1q_f32(out + i, a0);
    vst1q_f32(out + i + 4, a1);
    vst1q_f32(out + i + 8, a2);
    vst1q_f32(out + i + 12, a3);
  }
  if (i < n) {
    const float* rest[1024];  // k <= kMaxBlurKernel (1023)
    for (int j = 0; j < k; ++j) rest[j] = rows[j] + i;
    blur_taps_ref(rest, w, k, n - i, out + i);
  }
}

}  // namespace fastprep
