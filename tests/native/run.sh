#!/usr/bin/env bash
# Builds tests/native/simd_kernels_test.cpp and checks every SIMD level of the resampling,
# ColorJitter, Sharpness, GaussianBlur, warp (torchvision's and Pillow's) and PNG row kernels against the scalar reference (and that
# GaussianNoise's normal values are the same bits on x86-64 and AArch64): natively (x86-64: SSE4.1, AVX2) and, when Debian's
# cross compiler and qemu-user are installed (apt-get install g++-aarch64-linux-gnu qemu-user),
# cross-compiled for AArch64 and run under emulation (NEON). Pure C++, no Python module needed.
#   bash tests/native/run.sh [--arm-only|--native-only]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The kernels layer (csrc/kernels/: the algorithms, the dispatcher, the scalar references) and one
# architecture's folder: what a build compiles for that architecture (setup.py).
common="tests/native/simd_kernels_test.cpp $(ls csrc/kernels/*.cpp)"
x86_srcs="$common $(ls csrc/kernels/x86/*.cpp)"
arm_srcs="$common $(ls csrc/kernels/arm/*.cpp)"
flags="-std=c++17 -O2 -Wall -Wextra -Wno-unused-parameter -ffp-contract=off -Icsrc"

# A real photo's rows as raw RGBX (Pillow decodes it; the C++ test reads the bytes).
photo=tests/data/photos/06_1023x767_420.jpg
args=()
if python3 -c "import PIL" 2>/dev/null; then
  python3 - "$photo" "$out/photo.rgbx" <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGBA")
open(sys.argv[2], "wb").write(im.tobytes())
print(*im.size, file=open(sys.argv[2] + ".size", "w"))
PY
  read -r w h < "$out/photo.rgbx.size"
  args=("$out/photo.rgbx" "$w" "$h")
else
  echo "Pillow missing: random rows only"
fi

if [ "${1:-}" != "--arm-only" ]; then
  echo "== native ($(uname -m))"
  case "$(uname -m)" in
    x86_64|i?86) srcs=$x86_srcs ;;
    aarch64|arm64) srcs=$arm_srcs ;;
    *) srcs="$common $(ls csrc/kernels/generic/*.cpp)" ;;
  esac
  g++ $flags $srcs -o "$out/kernels"
  "$out/kernels" "${args[@]}" | tee "$out/native.log"
fi
if [ "${1:-}" != "--native-only" ]; then
  if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    echo "aarch64-linux-gnu-g++ or qemu-aarch64 missing: apt-get install g++-aarch64-linux-gnu qemu-user" >&2
    exit 1
  fi
  echo "== aarch64: every csrc/ file but the Python bindings and the x86 kernels compiles, warning-free (with and without the optional codecs)"
  for f in csrc/core/*.cpp csrc/kernels/*.cpp csrc/kernels/arm/*.cpp csrc/codecs/*.cpp csrc/pipeline/*.cpp; do
    [ -e "$f" ] || continue  # the system's jpeglib/png/webp headers stand in for an arm64 sysroot's
    for codecs in "-DFASTPREP_HAVE_PNG=1 -DFASTPREP_HAVE_WEBP=1" ""; do
      aarch64-linux-gnu-g++ $flags $codecs -Werror -fsyntax-only -idirafter /usr/include \
        -idirafter "/usr/include/$(gcc -print-multiarch)" "$f"
    done
  done
  echo "== aarch64 under qemu-user"
  aarch64-linux-gnu-g++ $flags $arm_srcs -o "$out/kernels-arm64"
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/kernels-arm64" "${args[@]}" | tee "$out/arm.log"
fi
if [ -e "$out/native.log" ] && [ -e "$out/arm.log" ]; then
  # GaussianNoise's normal values are the same bits on both architectures (Note [Normal values])
  a=$(grep '^normal values digest' "$out/native.log"); b=$(grep '^normal values digest' "$out/arm.log")
  if [ -z "$a" ] || [ "$a" != "$b" ]; then echo "normal values differ across architectures: '$a' vs '$b'" >&2; exit 1; fi
  echo "== normal values: the same bits on $(uname -m) and aarch64"
fi
