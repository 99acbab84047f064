#!/usr/bin/env bash
# Issue #5 in CI: (a) the libFuzzer harness (fuzz/fuzz_decode.cc) over the native core with
# ASan+UBSan for FUZZ_SECONDS (default 60) on the generated seed corpus, failing on any finding;
# (b) the extension built with FASTPREP_SANITIZE=address,undefined into build/asan and the fast
# tests (test_hostile, test_simd, test_png, test_webp, test_ops, test_sequence_ops, test_fallback,
# test_multiview, test_restart, test_timm_augment) run against it. About 5 minutes on 2 cores.
#
#   bash .ci/fuzz_and_asan.sh            # both
#   bash .ci/fuzz_and_asan.sh fuzz|asan  # one
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WHAT=${1:-all}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
JOBS=${JOBS:-2}
PY=${PYTHON:-python3}

need_apt() {  # installs Debian packages that are missing (CI runs as root on a fresh machine)
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

run_fuzz() {
  need_apt clang-14 libclang-rt-14-dev libjpeg-turbo-progs libjpeg62-turbo-dev libpng-dev zlib1g-dev libwebp-dev
  local CXX=${FUZZ_CXX:-clang++-14} OUT=$ROOT/build/fuzz
  rm -rf "$OUT/artifacts"  # a finding of an earlier local run is not this run's
  mkdir -p "$OUT/obj" "$OUT/corpus" "$OUT/artifacts"
  rm -rf "$OUT/seeds"
  $PY fuzz/make_seeds.py "$OUT/seeds"
  local flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
               -fno-sanitize-recover=undefined -Icsrc -DFASTPREP_FUZZING -DFASTPREP_HAVE_PNG=1 -DFASTPREP_HAVE_WEBP=1
               -D_GLIBCXX_SANITIZE_VECTOR)  # reads past a vector's size (within its capacity) are errors too
  echo "== building the libFuzzer harness (ASan+UBSan)"
  local objs=() pids=() f b
  # Every layer but the Python bindings (csrc/python/), with this machine's kernel folder.
  for f in csrc/core/*.cpp csrc/kernels/*.cpp csrc/kernels/x86/*.cpp csrc/codecs/*.cpp csrc/pipeline/*.cpp; do
    [ -e "$f" ] || continue
    b=$(echo "${f%.cpp}" | tr / _)
    objs+=("$OUT/obj/$b.o")
    $CXX "${flags[@]}" -c "$f" -o "$OUT/obj/$b.o" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$JOBS" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  done
  for b in "${pids[@]}"; do wait "$b"; done
  $CXX "${flags[@]}" -fsanitize=fuzzer fuzz/fuzz_decode.cc "${objs[@]}" -ljpeg -lpng -lwebp -lz -o "$OUT/fuzz_decode"
  echo "== fuzzing for ${FUZZ_SECONDS}s"
  # The first directory collects what the fuzzer finds; the seeds are read only.
  ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1} \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$OUT/fuzz_decode" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=10 -max_len=262144 \
    -dict=fuzz/jpeg.dict -print_final_stats=1 -artifact_prefix="$OUT/artifacts/" "$OUT/corpus" "$OUT/seeds" 2>&1 | tee "$OUT/fuzz.log" |
    grep -E "^#[0-9]+\s+(INITED|DONE)|stat::|ERROR|SUMMARY|Test unit written|contract violation" || true
  if ! grep -q "^Done [0-9]* runs" "$OUT/fuzz.log" || ls "$OUT/artifacts" | grep -q .; then
    echo "FUZZ FAILURE: see $OUT/fuzz.log and $OUT/artifacts/ (reproduce: $OUT/fuzz_decode FILE)"
    tail -60 "$OUT/fuzz.log"
    exit 1
  fi
  echo "== fuzz: no finding"
}

run_asan() {
  local OUT=$ROOT/build/asan
  rm -rf "$OUT"
  mkdir -p "$OUT"
  $PY -c "import pybind11" 2>/dev/null || $PY -m pip install -q pybind11  # setup.py imports it
  echo "== building fastprep._core with FASTPREP_SANITIZE=address,undefined"
  FASTPREP_SANITIZE=address,undefined $PY setup.py -q build_ext -j "$JOBS" -b "$OUT/lib" -t "$OUT/tmp" >"$OUT/build.log" 2>&1 ||
    { tail -40 "$OUT/build.log"; exit 1; }
  # The Python sources beside the sanitized extension, and the tests run from a directory with
  # no fastprep/ in it, so nothing can import the regular build instead.
  $PY - "$OUT/lib/fastprep" <<'EOF'
import glob, os, shutil, sys
dest = sys.argv[1]
for f in glob.glob("fastprep/**/*.py", recursive=True):
    os.makedirs(os.path.join(dest, os.path.dirname(os.path.relpath(f, "fastprep"))), exist_ok=True)
    shutil.copy(f, os.path.join(dest, os.path.relpath(f, "fastprep")))
EOF
  cp -r tests "$OUT/tests"
  local LIBASAN
  # libstdc++ preloaded too: python is not C++, and ASan must resolve the real __cxa_throw.
  LIBASAN="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
  cd "$OUT"
  export PYTHONPATH=$OUT/lib LD_PRELOAD=$LIBASAN
  export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  $PY -c "import fastprep, sys; f = fastprep._core.__file__; print('== ASan extension:', f); sys.exit(not f.startswith('$OUT/lib/'))"
  echo "== tests under ASan+UBSan"
  $PY -m pytest -q -p no:cacheprovider tests/test_hostile.py tests/test_simd.py tests/test_png.py tests/test_webp.py
  # The op stages (flips, grayscale, the two-phase output stage); the docs, stub and
  # spawn-worker tests need the checkout and a clean child environment: main job only.
  $PY -m pytest -q -p no:cacheprovider tests/test_ops.py -k "not docs and not stub and not spawn"
  # The op sequence, containers, padding modes, multi-crops, resizes and warps (issue 31), and
  # several views from one decode (issue 33); the Loader's forked remainder workers and its
  # threads run in the main job only.
  $PY -m pytest -q -p no:cacheprovider tests/test_sequence_ops.py tests/test_fallback.py tests/test_multiview.py \
    -k "not loader"
  # Restart-indexed JPEGs (issue 34): the marker scan and the splice on every sampling, hostile
  # restart data and random corruption, and the lossless rewrite.
  $PY -m pytest -q -p no:cacheprovider tests/test_restart.py -k "not optimize and not preprocess"
  # timm's policies in Pillow's arithmetic (issue 32): every op and the replays, not the slow
  # statistics run.
  $PY -m pytest -q -p no:cacheprovider tests/test_timm_augment.py -m "not slow"
  cd "$ROOT"
}

case "$WHAT" in
  fuzz) run_fuzz ;;
  asan) run_asan ;;
  all) run_fuzz; run_asan ;;
  *) echo "usage: $0 [all|fuzz|asan]"; exit 2 ;;
esac
