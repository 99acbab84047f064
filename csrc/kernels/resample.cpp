#include "kernels/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace fastprep {
namespace {

double filter_bilinear(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Keys cubic with a = -0.5, as Pillow's BICUBIC.
double filter_bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

int32_t to_fixed(double w, int prec) {
  double s = w * static_cast<double>(1 << prec);
  return static_cast<int32_t>(w < 0 ? s - 0.5 : s + 0.5);
}

// Fast mode's precision (Note [Fast resampling]): the most fraction bits, at most kPrecisionBits,
// at which the largest weight magnitude `wmax` still rounds into int16.
int fast_precision(double wmax) {
  int p = kPrecisionBits;
  while (p > 0 && to_fixed(wmax, p) > 32767) --p;
  return p;
}

}  // namespace

void build_axis_table(const AxisSpec& a, AxisTable* t) {
  if (a.out_size <= 0 || a.o0 < 0 || a.o1 > a.out_size || a.o0 >= a.o1)
    throw Error(ErrorKind::kInvalid, "empty resize output range");
  // The box is clamped to the integer source span it covers: resampling a crop behaves as if the
  // crop were the whole image (torchvision crops, then resizes).
  int lo = std::max(0, static_cast<int>(std::floor(a.b0)));
  int hi = std::min(a.src_size, static_cast<int>(std::ceil(a.b1)));
  if (hi <= lo) throw Error(ErrorKind::kInvalid, "empty resize source box");
  const int in_size = hi - lo;
  const double in0 = a.b0 - lo, in1 = a.b1 - lo;
  const double scale = (in1 - in0) / a.out_size;
  const int n = a.o1 - a.o0;
  t->n = n;
  t->fast = a.fast;
  t->prec = kPrecisionBits;  // fast mode: lowered once the largest weight is known
  t->start.resize(n);
  t->count.resize(n);

  if (a.interp == Interp::kNearest) {
    // Pillow maps output x to int(box0 + (x + 0.5) * scale), accumulating the position in double.
    t->ksize = 2;
    t->coef.assign(static_cast<size_t>(n) * 2, 0);
    if (a.fast) t->prec = fast_precision(1.0);
    double pos = in0 + scale * 0.5;
    for (int x = 0; x < a.o0; ++x) pos += scale;
    for (int i = 0; i < n; ++i, pos += scale) {
      int s = pos < 0 ? 0 : static_cast<int>(pos);
      s = std::min(s, in_size - 1);
      int e = a.reverse ? n - 1 - i : i;
      t->start[e] = lo + s;
      t->count[e] = 1;
      t->coef[static_cast<size_t>(e) * 2] = 1 << t->prec;
    }
  } else {
    const double fsupport = a.interp == Interp::kBicubic ? 2.0 : 1.0;
    const double fscale = a.antialias ? std::max(scale, 1.0) : 1.0;
    const double support = fsupport * fscale;
    int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    ksize = (ksize + 1) & ~1;  // even, for the two-taps-per-vector AVX2 loop
    t->ksize = ksize;
    t->coef.assign(checked_mul(n, ksize), 0);
    // Fast mode keeps the normalised weights in double (n * ksize, emission order) until P is
    // known; exact mode converts them at once.
    const size_t keep = a.fast ? checked_mul(n, ksize) : static_cast<size_t>(ksize);
    if (t->scratch.size() < keep) t->scratch.resize(keep);
    double wmax = 0.0;
    const double ss = 1.0 / fscale;
    for (int i = 0; i < n; ++i) {
      const int xx = a.o0 + i;
      const double center = in0 + (xx + 0.5) * scale;
      int xmin = static_cast<int>(center - support + 0.5);
      if (xmin < 0) xmin = 0;
      int xmax = static_cast<int>(center + support + 0.5);
      if (xmax > in_size) xmax = in_size;
      int cnt = std::min(xmax - xmin, ksize);
      if (cnt < 1) {  // degenerate box narrower than a pixel: take the nearest one
        xmin = std::min(std::max(static_cast<int>(center), 0), in_size - 1);
        cnt = 1;
      }
      int e = a.reverse ? n - 1 - i : i;
      double* w = a.fast ? &t->scratch[static_cast<size_t>(e) * ksize] : t->scratch.data();
      double total = 0.0;
      for (int k = 0; k < cnt; ++k) {
        double f = (k + xmin - center + 0.5) * ss;
        w[k] = a.interp == Interp::kBicubic ? filter_bicubic(f) : filter_bilinear(f);
        total += w[k];
      }
      if (total == 0.0) {
        w[0] = 1.0;
        for (int k = 1; k < cnt; ++k) w[k] = 0.0;
      } else {
        for (int k = 0; k < cnt; ++k) w[k] /= total;
      }
      t->start[e] = lo + xmin;
      t->count[e] = cnt;
      if (a.fast) {
        for (int k = 0; k < cnt; ++k) wmax = std::max(wmax, std::fabs(w[k]));
      } else {
        int32_t* dst = &t->coef[static_cast<size_t>(e) * ksize];
        for (int k = 0; k < cnt; ++k) dst[k] = to_fixed(w[k], kPrecisionBits);
      }
    }
    if (a.fast) {
      t->prec = fast_precision(wmax);
      for (int e = 0; e < n; ++e) {
        const double* w = &t->scratch[static_cast<size_t>(e) * ksize];
        int32_t* dst = &t->coef[static_cast<size_t>(e) * ksize];
        for (int k = 0; k < t->count[e]; ++k) dst[k] = to_fixed(w[k], t->prec);
      }
    }
  }
  int slo = a.src_size, shi = 0, cmax = 1;
  for (int e = 0; e < n; ++e) {
    slo = std::min(slo, t->start[e]);
    shi = std::max(shi, t->start[e] + t->count[e]);
    cmax = std::max(cmax, t->count[e]);
  }
  t->src_lo = slo;
  t->src_hi = shi;
  // A pass where every output takes exactly one whole source pixel is a copy.
  bool ident = true;
  const int step = n > 1 ? t->start[1] - t->start[0] : 1;
  for (int e = 0; e < n && ident; ++e) {
    const int32_t* k = &t->coef[static_cast<size_t>(e) * t->ksize];
    ident = k[0] == (1 << t->prec) && (step == 1 || step == -1) &&
            (e == 0 || t->start[e] - t->start[e - 1] == step);
    for (int j = 1; j < t->ksize && ident; ++j) ident = k[j] == 0;
  }
  t->identity = ident;
  t->identity_step = step;
  const int kmax = std::min((cmax + 1) & ~1, t->ksize);
  t->kmax = kmax;
  if (a.vertical) {
    if (a.fast) {  // Note [Fast resampling]: the vertical pass's tap pairs
      const int half_k = t->ksize / 2;
      t->pairs.resize(checked_mul(n, half_k));
      for (size_t i = 0; i < t->pairs.size(); ++i)
        t->pairs[i] = static_cast<int32_t>(static_cast<uint16_t>(t->coef[2 * i]) |
                                           (static_cast<uint32_t>(static_cast<uint16_t>(t->coef[2 * i + 1])) << 16));
    }
    return;
  }
  int32_t* wide = reinterpret_cast<int32_t*>(t->wide_buf.reserve(checked_mul(checked_mul(checked_mul(n, kmax), 4), 4)));
  for (int e = 0; e < n; ++e)
    for (int j = 0; j < kmax; ++j) {
      const int32_t k = t->coef[static_cast<size_t>(e) * t->ksize + j];
      int32_t* d = &wide[(static_cast<size_t>(e) * kmax + j) * 4];
      d[0] = d[1] = d[2] = d[3] = k;
    }
  if (!a.fast) return;
  // Note [Fast resampling]: the horizontal pass's pairs of outputs, steps of four taps, int16.
  const int kq = (cmax + 3) / 4;
  t->kq = kq;
  const size_t npairs = (static_cast<size_t>(n) + 1) / 2;
  const size_t bytes = checked_mul(checked_mul(npairs, kq), 64);
  int16_t* f = reinterpret_cast<int16_t*>(t->fast_buf.reserve(bytes));
  std::memset(f, 0, bytes);  // taps past an output's count (and an odd last output's partner) weigh 0
  for (int e = 0; e < n; ++e) {
    const int32_t* k = &t->coef[static_cast<size_t>(e) * t->ksize];
    int16_t* d = f + static_cast<size_t>(e / 2) * kq * 32 + (e & 1) * 8;
    for (int j = 0; j < t->count[e]; ++j) {  // tap j: step j / 4, half (j / 2) % 2, slot j % 2
      int16_t* v = d + (j / 4) * 32 + ((j / 2) & 1) * 16 + (j & 1);
      v[0] = v[2] = v[4] = v[6] = static_cast<int16_t>(k[j]);
    }
  }
}

// The scalar reference (kernels/reference.h): every level's bytes are these.
void hpass_row_ref(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out) {
  const int ks = t.ksize;
  for (int e = 0; e < t.n; ++e) {
    const uint8_t* p = row + static_cast<size_t>(t.start[e] - origin) * 4;
    const int32_t* k = &t.coef[static_cast<size_t>(e) * ks];
    int32_t r = 1 << (t.prec - 1), g = r, b = r;
    for (int j = 0; j < t.count[e]; ++j) {
      r += p[4 * j] * k[j];
      g += p[4 * j + 1] * k[j];
      b += p[4 * j + 2] * k[j];
    }
    out[4 * e] = clip_fixed(r, t.prec);
    out[4 * e + 1] = clip_fixed(g, t.prec);
    out[4 * e + 2] = clip_fixed(b, t.prec);
    out[4 * e + 3] = 0;  // unspecified for the SIMD paths; never read by the output stage
  }
}

void vpass_row_ref(const uint8_t* src, size_t stride, int first, const AxisTable& t, int e, int nbytes, uint8_t* out) {
  const int32_t* k = &t.coef[static_cast<size_t>(e) * t.ksize];
  const int ks = t.count[e], prec = t.prec;
  const uint8_t* base = src + static_cast<size_t>(first) * stride;
  for (int i = 0; i < nbytes; ++i) {
    int32_t acc = 1 << (prec - 1);
    for (int j = 0; j < ks; ++j) acc += base[static_cast<size_t>(j) * stride + i] * k[j];
    out[i] = clip_fixed(acc, prec);
  }
}

void hpass_row(const Kernels& k, const uint8_t* row, int origin, const AxisTable& t, uint8_t* out) {
  if (t.identity) {  // exact for every level: weight 1.0 reproduces the pixel
    const uint8_t* p = row + static_cast<size_t>(t.start[0] - origin) * 4;
    if (t.identity_step == 1) {
      std::memcpy(out, p, static_cast<size_t>(t.n) * 4);
    } else {
      for (int e = 0; e < t.n; ++e) std::memcpy(out + 4 * e, p - 4 * e, 4);
    }
    return;
  }
  k.hpass_row(row, origin, t, out);
}

void hpass_rows(const Kernels& k, const uint8_t* const* rows, int n, int origin, const AxisTable& t,
                uint8_t* const* outs) {
  int i = 0;
  if (k.hpass_rows4 && !t.identity)
    for (; i + 4 <= n; i += 4) k.hpass_rows4(rows + i, origin, t, outs + i);
  for (; i < n; ++i) hpass_row(k, rows[i], origin, t, outs[i]);
}

void vpass_row(const Kernels& k, const uint8_t* src, size_t stride, int first, const AxisTable& t, int e, int nbytes,
               uint8_t* out) {
  k.vpass_row(src, stride, first, t, e, nbytes, out);
}

}  // namespace fastprep
