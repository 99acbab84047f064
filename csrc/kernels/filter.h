// Spatial filters on the sample's staged uint8 RGBX image: torchvision v2's gaussian_blur.
//
// Note [GaussianBlur arithmetic]
// torchvision v2's gaussian_blur_image on a uint8 tensor: the image is cast to float32, padded by
// (k - 1) / 2 on each side in "reflect" mode (the edge pixel is not repeated), convolved with the
// outer product of two float32 1-D kernels, rounded half to even and cast back. Each 1-D kernel is
//   x = torch.linspace(-lim, lim, k) (float32), lim = (k - 1) / (2 sqrt 2)
//   w = softmax(-(x / sigma)^2)
// (the same Gaussian as v1's exp(-i^2 / (2 sigma^2)) / sum, in other float32 steps). We compute
// the same weights in float32 and convolve separably (rows, then columns) in float32; conv2d sums
// the k_y * k_x products in its own order, so a value within float32 error of a .5 tie can round
// the other way: at most 1 level, tested against torchvision. An image side not larger than the
// padding (which torch refuses) reflects again at the far edge.
#pragma once

#include <cstdint>

#include "core/scratch.h"
#include "kernels/dispatch.h"

namespace fastprep {

constexpr int kMaxBlurKernel = 1023;  // the largest kernel side accepted (odd)

// v2's _get_gaussian_kernel1d in float32: k weights into w.
void gaussian_kernel1d(int k, float sigma, float* w);

// In place on `rows` (h rows of w RGBX pixels): kernel kx x ky (odd), sigmas sx, sy.
void gaussian_blur(const Kernels& k, int kx, int ky, float sx, float sy, uint8_t* const* rows, int h, int w,
                   Scratch* scratch);

// Note [PIL GaussianBlur]
// Pillow's ImageFilter.GaussianBlur(radius), which DINO's and MoCo v2's own GaussianBlur classes
// call: no Gaussian kernel but three passes of an "extended" box blur per axis (Gwosdek et al.
// 2011), rows first, then columns, each pass rounding to uint8. The box radius r + a (integer
// and fractional parts) comes from sigma^2 = radius^2 / 3 in Pillow's float32 steps; a pass gives
// out[x] = (S * ww + (in[x - r - 1] + in[x + r + 1]) * fw + 2^23) >> 24, S the sum of in[x - r ..
// x + r], indices clamped to the edge, ww = uint32(2^24 / (2 (r + a) + 1)) (float division) and
// fw = (2^24 - (2r + 1) ww) / 2: integer arithmetic, so the result is Pillow's, byte for byte
// (tested against Pillow). A box radius of 0 leaves the image as it is.
// Each pass runs a row at a time through k.pil_box_row (every column of the row at once).
void pil_gaussian_blur(const Kernels& k, float radius, uint8_t* const* rows, int h, int w, Scratch* scratch);

// In place on one float32 plane (h x w): v2's gaussian_blur_image on a float tensor, the same
// weights, reflect padding and separable float32 sums as above, without the rounding.
// ElasticTransform blurs its random displacement with it (Note [Elastic arithmetic]).
void gaussian_blur_plane(const Kernels& k, int kx, int ky, float sx, float sy, float* f, int h, int w,
                         Scratch* scratch);

}  // namespace fastprep
