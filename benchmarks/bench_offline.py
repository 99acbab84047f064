#!/usr/bin/env python3
"""Throughput of `fastprep stats` and `fastprep preprocess --format npy` against plain
Compose.batch over the same files, the same transform and the same thread count.

    python benchmarks/bench_offline.py [CORPUS] [--threads 2] [--size 224] [--repeat 5]

The baseline decodes the files with Compose([Resize(size/0.875), CenterCrop(size)], uint8, CHW)
.batch in chunks of --batch-size and throws the result away; stats adds the exact moment sums
(and --pca the cross products), preprocess adds copying into shards, their labels/json and the
.npy writes (to --workdir, default a temporary folder: put it on the disk you care about).
The page cache is warmed first; each figure is the median of --repeat runs, interleaved.
fp.Loader (same transform, no shuffle) is timed too when this tree has it. CPU ms/img is the
process's user+system CPU time per image (all threads), the figure to compare on a busy machine.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import fastprep as fp  # noqa: E402
from fastprep.offline import _jobs  # noqa: E402
from fastprep.data import index_source  # noqa: E402
from fastprep.offline import preprocess  # noqa: E402
from fastprep.offline import compute_stats  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", default="corpus/imagenet_like")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--shard-size", type=int, default=64,
                    help="npy shard size (default 64, so a 200-file corpus has several shards to pipeline)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--pca", action="store_true", help="also time stats --pca --per-pixel")
    ap.add_argument("--no-loader", action="store_true", help="do not time fp.Loader")
    ap.add_argument("--files-times", type=int, default=1,
                    help="list every file K times (a path list source), to time the steady state of a small corpus")
    args = ap.parse_args(argv)
    start_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    ds = index_source(args.corpus)
    source = args.corpus
    if args.files_times > 1:
        source = ds.items * args.files_times
        ds = index_source(source)
    n = len(ds)
    if not n:
        sys.exit(f"no images in {args.corpus}")
    t = _jobs.build_transform("eval", args.size, "uint8", "CHW")
    work = args.workdir or tempfile.mkdtemp(prefix="fastprep-bench-")
    os.makedirs(work, exist_ok=True)
    out = os.path.join(work, "shards")

    def baseline():
        for a, b in _jobs.chunk_ranges(0, n, args.batch_size):
            t.batch(ds.items[a:b], threads=args.threads)

    def stats():
        compute_stats(source, "eval", args.size, threads=args.threads, batch_size=args.batch_size,
                      progress=False)

    def stats_full():
        compute_stats(source, "eval", args.size, threads=args.threads, batch_size=args.batch_size,
                      progress=False, per_pixel=True, pca=True)

    def prep():
        preprocess(source, out, "eval", args.size, shard_size=args.shard_size, threads=args.threads,
                   batch_size=args.batch_size, progress=False, overwrite=True)

    loader_rows = []
    if hasattr(fp, "Loader") and not args.no_loader:
        def loader(backend):
            def run():
                for _ in fp.Loader(source, t, batch_size=args.batch_size, shuffle=False, threads=args.threads,
                                   backend=backend):
                    pass
            return run

        loader_rows.append(("fp.Loader (numpy backend)", loader("numpy")))
        try:
            import torch  # noqa: F401

            loader_rows.append(("fp.Loader (torch backend)", loader("torch")))
        except ImportError:
            pass

    jobs = [("Compose.batch (baseline)", baseline)] + loader_rows + [("fastprep stats", stats)]
    if args.pca:
        jobs.append(("fastprep stats --pca --per-pixel", stats_full))
    jobs.append((f"fastprep preprocess npy (shard {args.shard_size})", prep))

    baseline()  # warm the page cache and the native engines
    times = {name: [] for name, _ in jobs}
    cpu = {name: [] for name, _ in jobs}
    for _ in range(args.repeat):
        for name, fn in jobs:
            c0 = os.times()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            c1 = os.times()
            cpu[name].append((c1.user + c1.system) - (c0.user + c0.system))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{n} files from {args.corpus}" + (f" (each listed {args.files_times} times)" if args.files_times > 1 else "")
          + f", eval {args.size}px uint8 CHW, threads={args.threads}, "
          f"batch {args.batch_size}, median of {args.repeat}, SIMD {fp.simd_info()['default']}, "
          f"load before/after {start_load:.2f}/{load:.2f}")
    base = n / statistics.median(times[jobs[0][0]])
    loader = n / statistics.median(times[loader_rows[0][0]]) if loader_rows else None
    print(f"{'job':<44}{'img/s':>9}{'vs baseline':>13}" + (f"{'vs Loader':>11}" if loader else "")
          + f"{'CPU ms/img':>12}")
    for name, _ in jobs:
        rate = n / statistics.median(times[name])
        print(f"{name:<44}{rate:>9.0f}{rate / base:>12.3f}x" + (f"{rate / loader:>10.3f}x" if loader else "")
              + f"{statistics.median(cpu[name]) / n * 1e3:>12.3f}")
    print(f"(preprocess wrote to {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
