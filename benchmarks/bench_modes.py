"""exact vs fast mode on real photographs: speed (interleaved rounds, median of per-round ratios)
and difference (max / mean uint8 level difference, share of values that differ, PSNR).

    python benchmarks/bench_modes.py corpus/imagenet_like corpus/large --rounds 7

Eval transform (Resize 256 + CenterCrop 224, float32 normalized output for timing, uint8 for the
difference), one thread, every pass into one reused buffer. In each round both modes run once,
the order alternating between rounds.
"""
import argparse
import glob
import os
import statistics
import time

import numpy as np

import fastprep as fp


def ops(size):
    return [fp.Resize(int(size / 0.875)), fp.CenterCrop(size)]


def measure(folder, rounds, size):
    files = sorted(glob.glob(os.path.join(folder, "*.jpg")))
    datas = [open(f, "rb").read() for f in files]
    tail = [fp.ToTensor(), fp.Normalize("imagenet")]
    modes = {"exact": fp.Compose(ops(size) + tail, exact=True), "fast": fp.Compose(ops(size) + tail, exact=False)}
    out = np.empty((len(datas),) + modes["exact"].output_shape(), np.float32)
    _, params = modes["fast"].batch(datas, threads=1, out=out, return_params=True)
    scaled = sum(p["decode_scale"] != 1.0 for p in params)
    for t in modes.values():  # warm-up
        t.batch(datas, threads=1, out=out)
    ratios, secs = [], {"exact": [], "fast": []}
    for r in range(rounds):
        for name in (("exact", "fast") if r % 2 == 0 else ("fast", "exact")):
            t0 = time.perf_counter()
            modes[name].batch(datas, threads=1, out=out)
            secs[name].append(time.perf_counter() - t0)
        ratios.append(secs["exact"][-1] / secs["fast"][-1])
    a = fp.Compose(ops(size), exact=True, dtype="uint8").batch(datas).astype(np.int16)
    b = fp.Compose(ops(size), exact=False, dtype="uint8").batch(datas).astype(np.int16)
    d = np.abs(a - b)
    mse = np.mean(d.astype(np.float64) ** 2)
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    print(f"{folder}: {len(datas)} photos, DCT-scaled decode on {scaled} in fast mode")
    print(f"  fast / exact speed: median of {rounds} per-round ratios {statistics.median(ratios):.2f}x "
          f"(per round: {', '.join(f'{x:.2f}' for x in ratios)}); exact {len(datas) / statistics.median(secs['exact']):.0f} "
          f"img/s, fast {len(datas) / statistics.median(secs['fast']):.0f} img/s")
    print(f"  fast vs exact: max level diff {d.max()}, mean {d.mean():.3f}, {100 * (d > 0).mean():.1f}% of values "
          f"differ, PSNR {psnr:.1f} dB")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="folders of JPEG photographs")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args()
    for f in args.folders:
        measure(f, args.rounds, args.size)


if __name__ == "__main__":
    main()
