"""The ``fastprep`` command line (also ``python -m fastprep``).

    fastprep stats SRC [--transform eval --size 224] [--per-pixel] [--pca] [--out stats.json]
    fastprep preprocess SRC OUT --transform eval|resize --size S --dtype uint8 --format npy|jpeg|tar
    fastprep bench ...
"""
import argparse
import sys


def _bench_module():
    """(module, None) or (None, reason) when fastprep.bench cannot be imported."""
    import importlib

    try:
        return importlib.import_module("fastprep.bench"), None
    except ModuleNotFoundError as e:
        if e.name == "fastprep.bench":
            return None, "fastprep.bench is not part of this build"
        return None, f"fastprep.bench needs {e.name}: {e}"
    except ImportError as e:
        return None, f"fastprep.bench failed to import: {e}"


def version_line():
    """'fastprep 0.1.0 (native JPEG: libjpeg-turbo 2.1.5, PNG: libpng 1.6.39, WebP: libwebp 1.2.4;
    SIMD: scalar, sse41, avx2, default avx2)': what `fastprep --version` prints."""
    from ._build import build_info

    b = build_info()
    codecs = ", ".join(f"{fmt.upper() if fmt != 'webp' else 'WebP'}: {b['codecs'][fmt]}" for fmt in b["native_formats"])
    missing = [f for f in ("png", "webp") if f not in b["native_formats"]]
    if missing:
        codecs += "; via Pillow: " + ", ".join(f.upper() if f != "webp" else "WebP" for f in missing)
    return (f"fastprep {b['version']} (native {codecs}; SIMD: {', '.join(b['simd_available'])}, default "
            f"{b['simd_default']})")


class _Version(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())  # not through argparse's formatter, which would rewrap it
        parser.exit()


def build_parser():
    from . import offline

    parser = argparse.ArgumentParser(prog="fastprep", description="Fused JPEG decode/resize/crop/normalize tools.")
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version, the native codecs and the "
                        "SIMD levels, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("stats", help="per-channel mean/std (per-pixel, PCA) of a dataset",
                       description="One streaming pass over a dataset: per-channel mean and std in [0, 1] and "
                                   "0-255, and the fp.Normalize line to paste.")
    offline.add_stats_arguments(p)
    p.set_defaults(func=offline.stats_main)

    p = sub.add_parser("preprocess", help="decode + resize a dataset offline into npy shards, JPEGs or tar shards",
                       description="Decode and resize a dataset once: memory-mappable .npy shards (+ index.json), "
                                   "a mirrored tree of re-encoded JPEGs, or WebDataset tar shards of those JPEGs. "
                                   "Resumable.")
    offline.add_preprocess_arguments(p)
    p.set_defaults(func=offline.preprocess_main)

    p = sub.add_parser("optimize", help="rewrite a dataset's JPEGs losslessly with restart markers (faster crops)",
                       description="A lossless rewrite of every JPEG of a folder, tar shards or file list into OUT "
                                   "(same pixels, checked): restart markers that start every MCU row, so that a "
                                   "crop decodes only the intervals it reads; progressive files become baseline; "
                                   "metadata kept. Other files are copied. Resumable.")
    offline.add_optimize_arguments(p)
    p.set_defaults(func=offline.optimize_main)

    bench, reason = _bench_module()
    p = sub.add_parser(
        "bench", help="throughput benchmarks: fastprep (exact and fast) against torchvision, PIL, DALI",
        description="Times fastprep (exact and fast modes) and every installed peer on the same in-memory files "
                    "and prints img/s, MP/s, the speed-up of fastprep exact and the ratio to libjpeg-turbo's bare "
                    "decode. Files that any selected pipeline cannot decode are found first, listed on stderr "
                    "and left out of every pipeline (or stop the run with --on-error raise). A pipeline that "
                    "fails while timed is reported as FAILED with its error; the others still report. Exit "
                    "status: 0, or 1 when no file can be decoded, --on-error raise found one, or fastprep "
                    "itself failed.",
        epilog="Peers need: torchvision: torch + torchvision; pil: torch + torchvision + Pillow; dali: "
               "nvidia-dali-cuda120. `pip install \"fastprep[bench]\"` (from a checkout: pip install \".[bench]\") "
               "adds torch, torchvision and Pillow.")
    if bench is not None and hasattr(bench, "add_arguments"):
        bench.add_arguments(p)
        p.set_defaults(func=bench.main)
    else:
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        why = reason or "fastprep.bench has no add_arguments()"

        def unavailable(args, why=why):
            sys.stderr.write(f"fastprep bench: not available ({why})\n")
            return 1

        p.set_defaults(func=unavailable, bench_unavailable=True)
    return parser


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "bench_unavailable", False):
        parser.error("unrecognized arguments: " + " ".join(extra))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
