// Shared types of the fastprep native core. No Python here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

// A function the compiler must not inline: the frame that holds a setjmp (Note [libjpeg errors]).
#if defined(__GNUC__) || defined(__clang__)
#define FASTPREP_NOINLINE __attribute__((noinline))
#else
#define FASTPREP_NOINLINE
#endif

namespace fastprep {

// Why a sample failed. Mapped to typed Python exceptions in the bindings.
enum class ErrorKind : int {
  kDecode = 1,       // the decoder rejected the data (corrupt, truncated, ...)
  kUnsupported = 2,  // a valid file this build cannot decode (12-bit, lossless, ...)
  kTooLarge = 3,     // dimensions over the pixel limit (decompression bomb guard)
  kIo = 4,           // the file could not be read
  kInvalid = 5,      // bad argument (array shape, ...)
  kTooSmall = 6,     // an image smaller than a transform needs (RandomCrop beyond its padding)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// SIMD level of the kernels. Chosen once per plan (kernels/dispatch.h, Note [SIMD dispatch]). x86-64: scalar < SSE4.1 < AVX2;
// AArch64: scalar < NEON. A level of the other architecture is never available.
enum class Simd : int { kScalar = 0, kSSE41 = 1, kAVX2 = 2, kNEON = 3 };

enum class Interp : int { kNearest = 0, kBilinear = 1, kBicubic = 2 };
enum class DType : int { kU8 = 0, kF32 = 1, kF16 = 2, kBF16 = 3 };
enum class Layout : int { kCHW = 0, kHWC = 1 };
enum class Color : int { kRGB = 0, kBGR = 1, kGray = 2, kYCbCr = 3 };

inline size_t dtype_size(DType d) {
  switch (d) {
    case DType::kU8: return 1;
    case DType::kF32: return 4;
    default: return 2;
  }
}

// Multiplies sizes, throwing instead of overflowing (every allocation size goes through this).
inline size_t checked_mul(size_t a, size_t b) {
  if (a != 0 && b > SIZE_MAX / a) throw Error(ErrorKind::kTooLarge, "size overflow");
  return a * b;
}

}  // namespace fastprep
