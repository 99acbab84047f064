"""The allocation tax of Compose.batch() without out= (issue 14), interleaved in rounds.

Three ways to get the same batch (train recipe, float32 CHW 224 px, one batch of every photo,
two threads), each timed once per round, the order reversed every other round:
  reused   out= one preallocated buffer, the same every call (no page faults);
  pooled   no out=: the Compose's output pool (the previous batch is dropped before the next,
           so its block comes back; Note [Output pool] in fastprep/_pool.py);
  fresh    out= a new np.empty each call (what no out= cost before the pool: fresh pages,
           one fault per 4 KiB on first touch).
Printed: each way's rate as a fraction of `reused`, the median of per-round ratios.

    python benchmarks/bench_alloc.py corpus/imagenet_like [--count 128] [--rounds 9]
"""
import argparse
import glob
import os
import statistics
import time

import numpy as np

import fastprep as fp


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--count", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    paths = sorted(glob.glob(os.path.join(a.folder, "*.jpg")))[:a.count]
    datas = [open(p, "rb").read() for p in paths]
    t = fp.Compose([fp.RandomResizedCrop(224), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize("imagenet")])
    shape = (len(datas),) + t.output_shape()
    reused = np.zeros(shape, np.float32)
    ways = {
        "reused": lambda: t.batch(datas, seed=1, threads=a.threads, out=reused),
        "pooled": lambda: t.batch(datas, seed=1, threads=a.threads),
        "fresh": lambda: t.batch(datas, seed=1, threads=a.threads, out=np.empty(shape, np.float32)),
    }
    for f in ways.values():  # warm-up
        f()
    ratios = {k: [] for k in ways}
    rates = {k: [] for k in ways}
    for r in range(a.rounds):
        times = {}
        for k, f in (list(ways.items()) if r % 2 == 0 else list(ways.items())[::-1]):
            t0 = time.perf_counter()
            f()
            times[k] = time.perf_counter() - t0
        for k in ways:
            ratios[k].append(times["reused"] / times[k])
            rates[k].append(len(datas) / times[k])
    print(f"{len(datas)} photos per batch ({np.prod(shape) * 4 / 2**20:.0f} MiB of float32), {a.threads} threads, "
          f"{a.rounds} rounds")
    print("| output | img/s (median) | rate / reused buffer (median of per-round ratios) |\n|---|---:|---:|")
    for k in ways:
        print(f"| {k} | {statistics.median(rates[k]):.0f} | {statistics.median(ratios[k]):.3f} |")


if __name__ == "__main__":
    main()
