"""Per-op cost inside the fused pass, and the train + ColorJitter recipe against torchvision v2.

One thread, float32 normalized output, batches of 64 into one reused buffer, on real photos.
Every pipeline runs once per round, the order rotated each round; per round, each variant's
time per image is compared with the plain train recipe's (extra ms per image, and speed ratio),
and the medians over rounds are printed. torchvision v2 runs the same recipe on decode_jpeg
tensors (one thread: torch.set_num_threads(1)).

    python benchmarks/bench_ops.py corpus/imagenet_like --rounds 7
"""
import argparse
import glob
import os
import statistics
import sys
import time

import numpy as np

import fastprep as fp

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def head_tail(size):
    """The train recipe's ops around the one a variant adds: (RandomResizedCrop + flip,
    ToTensor + Normalize)."""
    return [fp.RandomResizedCrop(size), fp.RandomHorizontalFlip()], [fp.ToTensor(), fp.Normalize(MEAN, STD)]


def variants(size):
    head, tail = head_tail(size)
    return {
        "train": head + tail,
        "+ColorJitter(0.4,0.4,0.4,0.1)": head + [fp.ColorJitter(0.4, 0.4, 0.4, 0.1)] + tail,
        "+brightness 0.4": head + [fp.ColorJitter(brightness=0.4)] + tail,
        "+contrast 0.4": head + [fp.ColorJitter(contrast=0.4)] + tail,
        "+saturation 0.4": head + [fp.ColorJitter(saturation=0.4)] + tail,
        "+hue 0.1": head + [fp.ColorJitter(hue=0.1)] + tail,
        "+RandomGrayscale(0.5)": head + [fp.RandomGrayscale(0.5)] + tail,
        "+RandomVerticalFlip": head + [fp.RandomVerticalFlip()] + tail,
        "+RandomHSV(0.015,0.7,0.4)": head + [fp.RandomHSV(0.015, 0.7, 0.4)] + tail,
        "Normalize('per_image')": head + [fp.ToTensor(), fp.Normalize("per_image")],
    }


def torchvision_jitter(size):
    import torch
    from torchvision.io import decode_jpeg
    from torchvision.transforms import v2

    t = v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
                    v2.ColorJitter(0.4, 0.4, 0.4, 0.1), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])

    def run(datas):
        for d in datas:
            t(decode_jpeg(torch.frombuffer(d, dtype=torch.uint8)))
    return run


def parse_args(doc, rounds):
    """The arguments every per-op benchmark takes, and the photos' bytes."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--count", type=int, default=192)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--no-torchvision", action="store_true")
    args = ap.parse_args()
    paths = sorted(glob.glob(os.path.join(args.folder, "*.jpg")))[:args.count]
    return args, [open(p, "rb").read() for p in paths]


def fastprep_runs(variants, size):
    """{name: run(datas)}: each variant's Compose, one thread, batches of 64 into one buffer."""
    out = np.empty((64, 3, size, size), np.float32)
    runs = {}
    for name, ops in variants.items():
        t = fp.Compose(ops)

        def run(datas, t=t):
            for i in range(0, len(datas), 64):
                part = datas[i:i + 64]
                t.batch(part, seed=1, threads=1, out=out[:len(part)], indices=range(i, i + len(part)))
        runs[name] = run
    return runs


def add_torchvision(runs, name, make, size):
    """Adds torchvision's run (one torch thread), or says how to install it."""
    try:
        import torch

        torch.set_num_threads(1)
        runs[name] = make(size)
    except ImportError:
        print("torchvision not installed: pip install 'fastprep[bench]'", file=sys.stderr)


def interleaved(runs, arg, n_rounds):
    """Every run once per round, the order rotated each round, after one warm-up: {name: [seconds]}."""
    names = list(runs)
    for r in runs.values():
        r(arg)
    per = {k: [] for k in names}
    for rnd in range(n_rounds):
        for k in names[rnd % len(names):] + names[:rnd % len(names)]:
            t0 = time.perf_counter()
            runs[k](arg)
            per[k].append(time.perf_counter() - t0)
    return per


def main():
    args, datas = parse_args(__doc__, 7)
    n = len(datas)
    runs = fastprep_runs(variants(args.size), args.size)
    if not args.no_torchvision:
        add_torchvision(runs, "torchvision v2 train+ColorJitter", torchvision_jitter, args.size)
    per_img = {k: [t / n for t in v] for k, v in interleaved(runs, datas, args.rounds).items()}
    base = per_img["train"]
    print(f"{n} photos from {args.folder}, {args.rounds} rounds, 1 thread, {args.size}px float32; "
          f"SIMD {fp.simd_info()['default']}")
    print("| pipeline | ms/image (median) | extra ms/image vs train | speed vs train |")
    print("|---|---|---|---|")
    for k in per_img:
        ms = statistics.median(per_img[k]) * 1e3
        extra = statistics.median([(a - b) * 1e3 for a, b in zip(per_img[k], base)])
        ratio = statistics.median([b / a for a, b in zip(per_img[k], base)])
        print(f"| {k} | {ms:.2f} | {extra:+.2f} | {ratio:.2f}x |")
    if "torchvision v2 train+ColorJitter" in per_img:
        tv = per_img["torchvision v2 train+ColorJitter"]
        cj = per_img["+ColorJitter(0.4,0.4,0.4,0.1)"]
        print(f"\nfastprep train+ColorJitter vs torchvision v2 same recipe: "
              f"{statistics.median([b / a for a, b in zip(cj, tv)]):.2f}x (median of per-round ratios)")


if __name__ == "__main__":
    main()
