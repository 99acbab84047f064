"""Build of fastprep's native core (fastprep._core) against the system libjpeg-turbo and, when
their headers are there, libpng + zlib and libwebp.

JPEG is required; PNG and WebP are optional: a codec whose headers are missing is left out of the
build (its files are then decoded by Pillow), and the build says which codecs are native (so does
``fastprep.build_info()``). FASTPREP_WITHOUT=png,webp leaves codecs out on purpose.

No -march=native: SIMD kernels are compiled per function with target attributes and chosen at
run time, once per plan (csrc/kernels/dispatch.h), so one build runs on any x86-64 CPU; on AArch64
(Linux, macOS arm64) the NEON kernels need no flag (NEON is in the base ISA). Only the kernel folder
of the target architecture is compiled (csrc/kernels/x86 or csrc/kernels/arm).
"""
import os
import sys
import tempfile
import subprocess

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

HEADER_HELP = {
    "jpeglib.h": """
fastprep needs the libjpeg-turbo development headers (jpeglib.h) to build from source
(or install the binary wheel, which needs nothing: see README "Install").
  Debian:         sudo apt-get install libjpeg62-turbo-dev
  Ubuntu:         sudo apt-get install libjpeg-turbo8-dev
  Fedora/RHEL:    sudo dnf install libjpeg-turbo-devel
  macOS:          brew install jpeg-turbo   (found in Homebrew's prefix automatically)
Set FASTPREP_JPEG_PREFIX=/path/to/prefix to point the build at another install.
""",
    "webp/decode.h": """
fastprep needs the libwebp development headers (webp/decode.h) to build (native WebP decoding).
  Debian/Ubuntu:  sudo apt-get install libwebp-dev
  Fedora/RHEL:    sudo dnf install libwebp-devel
  macOS:          brew install webp   (then export CPATH/LIBRARY_PATH to its prefix)
Set FASTPREP_WEBP_PREFIX=/path/to/prefix to point the build at another install.
""",
    "zlib.h": """
fastprep needs the zlib development headers (zlib.h) to build (the PNG decoder's inflate).
  Debian/Ubuntu:  sudo apt-get install zlib1g-dev
  Fedora/RHEL:    sudo dnf install zlib-devel
  macOS:          part of the Xcode command line tools (xcode-select --install)
Set FASTPREP_ZLIB_PREFIX=/path/to/prefix to point the build at another install.
""",
    "png.h": """
fastprep needs the libpng development headers (png.h) to build (native PNG decoding).
  Debian/Ubuntu:  sudo apt-get install libpng-dev
  Fedora/RHEL:    sudo dnf install libpng-devel
  macOS:          brew install libpng   (then export CPATH/LIBRARY_PATH to its prefix)
Set FASTPREP_PNG_PREFIX=/path/to/prefix to point the build at another install.
""",
}


HOMEBREW_FORMULA = {"jpeglib.h": "jpeg-turbo", "png.h": "libpng", "webp/decode.h": "webp", "zlib.h": "zlib"}


def _probe(header, inc):
    src = f"#include <stdio.h>\n#include <{header}>\nint main(void){{return 0;}}\n"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        cc = os.environ.get("CC", "cc")
        cmd = [cc, "-fsyntax-only", path] + ["-I" + i for i in inc]
        try:
            return subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            return True  # no standalone compiler to probe with: let the real build report


def find_library(header, prefix_env, required=True):
    """Include and library dirs for `header`, found by compiling a probe (not by guessing paths:
    multiarch dirs, Homebrew, conda...). A required header that is missing stops the build with
    the packages to install; an optional one gives None. On macOS a header the compiler does not
    find is also looked for in Homebrew's keg (Apple silicon and Intel prefixes), where keg-only
    formulas such as jpeg-turbo live."""
    prefix = os.environ.get(prefix_env)
    inc = [os.path.join(prefix, "include")] if prefix else []
    lib = [os.path.join(prefix, "lib")] if prefix else []
    if not prefix and sys.platform == "darwin" and not _probe(header, []):
        for root in ("/opt/homebrew/opt", "/usr/local/opt"):
            keg = os.path.join(root, HOMEBREW_FORMULA[header])
            if os.path.exists(os.path.join(keg, "include", header)):
                return [os.path.join(keg, "include")], [os.path.join(keg, "lib")]
    if not _probe(header, inc):
        if not required:
            return None
        sys.stderr.write(HEADER_HELP[header])
        raise SystemExit(f"error: {header} not found (install the development headers named above)")
    return inc, lib


_without = {c.strip().lower() for c in os.environ.get("FASTPREP_WITHOUT", "").split(",") if c.strip()}
_jpeg = find_library("jpeglib.h", "FASTPREP_JPEG_PREFIX")
_png = None if "png" in _without else find_library("png.h", "FASTPREP_PNG_PREFIX", required=False)
_zlib = None if "png" in _without else find_library("zlib.h", "FASTPREP_ZLIB_PREFIX", required=False)
_webp = None if "webp" in _without else find_library("webp/decode.h", "FASTPREP_WEBP_PREFIX", required=False)
include_dirs, library_dirs, libraries, macros = list(_jpeg[0]), list(_jpeg[1]), ["jpeg"], []
native = ["JPEG"]
if _png is not None and _zlib is not None:
    include_dirs += _png[0] + _zlib[0]
    library_dirs += _png[1] + _zlib[1]
    libraries += ["png", "z"]
    macros.append(("FASTPREP_HAVE_PNG", "1"))
    native.append("PNG")
if _webp is not None:
    include_dirs += _webp[0]
    library_dirs += _webp[1]
    libraries += ["webp"]
    macros.append(("FASTPREP_HAVE_WEBP", "1"))
    native.append("WebP")
_missing = [name for name in ("PNG", "WebP") if name not in native]
_summary = f"fastprep: native decoders: {', '.join(native)}"
if _missing:
    _summary += (f"; no native {' or '.join(_missing)}: such files are decoded by Pillow (slower). For a native "
                 "decoder install " + " and ".join({"PNG": "libpng-dev + zlib1g-dev", "WebP": "libwebp-dev"}[m]
                                                  for m in _missing)
                 + " (Debian/Ubuntu; Fedora: libpng-devel zlib-devel / libwebp-devel; macOS: brew install libpng "
                   "webp) and reinstall, or install the wheel, which bundles them")
sys.stderr.write(_summary + "\n")

def sources():
    """csrc/ by layer (core < kernels < codecs < pipeline < python), plus the kernel folder of the
    architecture being built for: kernels/x86 (SSE4.1, AVX2) or kernels/arm (NEON); on another
    architecture kernels/generic (the scalar reference only)."""
    import glob
    import platform

    machine = (os.environ.get("FASTPREP_ARCH") or platform.machine()).lower()
    arch = ("x86" if machine in ("x86_64", "amd64", "i386", "i686", "x86") else
            "arm" if machine in ("aarch64", "arm64") else "generic")
    out = []
    for layer in ("core", "kernels", "codecs", "pipeline", "python"):
        out += sorted(glob.glob(f"csrc/{layer}/*.cpp"))
    return out + sorted(glob.glob(f"csrc/kernels/{arch}/*.cpp"))


SOURCES = sources()

extra_compile = ["-O3", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter",
                 # float ops round one by one, as torch computes them (a fused multiply-add only where written: std::fmaf / _mm256_fmadd_ps)
                 "-ffp-contract=off"]
extra_link = []
if os.environ.get("FASTPREP_SANITIZE"):  # e.g. "address,undefined" for the ASan CI job
    flags = ["-fsanitize=" + os.environ["FASTPREP_SANITIZE"], "-fno-omit-frame-pointer", "-g", "-O1"]
    extra_compile = [f for f in extra_compile if f != "-O3"] + flags
    extra_link += flags

ext = Pybind11Extension(
    "fastprep._core",
    SOURCES,
    include_dirs=["csrc"] + include_dirs,
    library_dirs=library_dirs,
    libraries=libraries,
    define_macros=macros,
    cxx_std=17,
    extra_compile_args=extra_compile,
    extra_link_args=extra_link,
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
