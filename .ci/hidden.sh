#!/usr/bin/env bash
# Runs a command in a private mount namespace where parts of the system are hidden, so that CI
# proves what an installation needs instead of assuming it (issue 29):
#
#   bash .ci/hidden.sh no-webp  CMD...   the fresh-machine case: the WebP headers (and the
#                                        unversioned libwebp.so link) are gone, as on a new machine
#                                        of the project's image without libwebp-dev
#   bash .ci/hidden.sh bare     CMD...   a machine with nothing to build with: no C/C++ compiler,
#                                        no /usr/include at all, and neither the libjpeg, libpng and
#                                        libwebp libraries nor the unversioned libz.so link (libz.so.1,
#                                        which Python itself needs, stays)
#
# Files disappear through an overlay mount with whiteouts (mknod c 0 0), directories under an
# empty tmpfs; nothing outside the namespace changes. Needs root (CI runs as root).
set -euo pipefail
mode=$1
shift
work=$(mktemp -d)
export HIDDEN_WORK=$work HIDDEN_MODE=$mode
exec unshare -m bash -c '
set -euo pipefail
mount --make-rprivate /
n=0
# whiteout DIR PATTERN...: hides the entries of DIR that match a pattern.
whiteout() {
  local dir=$1; shift
  n=$((n + 1))
  local up=$HIDDEN_WORK/up$n work=$HIDDEN_WORK/work$n
  mkdir -p "$up" "$work"
  local hidden=0
  for pat in "$@"; do
    for f in "$dir"/$pat; do
      [ -e "$f" ] || [ -L "$f" ] || continue
      mknod "$up/$(basename "$f")" c 0 0
      hidden=$((hidden + 1))
    done
  done
  if [ "$hidden" -gt 0 ]; then
    mount -t overlay overlay -o "lowerdir=$dir,upperdir=$up,workdir=$work" "$dir"
  fi
  echo "hidden.sh: $hidden entries of $dir hidden" >&2
}
libdir=/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
case "$HIDDEN_MODE" in
  no-webp)
    [ -d /usr/include/webp ] && mount -t tmpfs tmpfs /usr/include/webp
    whiteout "$libdir" "libwebp*.so" "libwebp*.a" "libsharpyuv*.so" "libsharpyuv*.a"
    ;;
  bare)
    whiteout /usr/bin "gcc*" "g++*" "cc" "c++" "cpp*" "clang*" "*-linux-gnu-gcc*" "*-linux-gnu-g++*" "*-linux-gnu-cpp*" "ld" "ld.*"
    whiteout "$libdir" "libjpeg*" "libturbojpeg*" "libpng*" "libwebp*" "libsharpyuv*" "libz.so" "libz.a"
    mount -t tmpfs tmpfs /usr/include
    ;;
  *) echo "hidden.sh: unknown mode $HIDDEN_MODE (no-webp or bare)" >&2; exit 2 ;;
esac
exec "$@"
' hidden "$@"
