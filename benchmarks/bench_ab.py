"""Speed of two fastprep checkouts (built in place) on the same work, interleaved: A B A B ...

Each run is a fresh process that imports fastprep from one checkout and times one pass of the
eval, train or jitter (train + ColorJitter) recipe (1 thread, batches of 64 into a reused float32 buffer;
`--uint8`: raw levels, uint8 HWC, for normalising on the GPU) over the photos; the
speed ratio B/A (img/s) of each pair is printed as a median with its spread (> 1: B is faster).

    git worktree add OLD_CHECKOUT <commit> && (cd OLD_CHECKOUT && python setup.py build_ext --inplace)
    python benchmarks/bench_ab.py OLD_CHECKOUT . corpus/imagenet_like --transform eval --pairs 11
    python benchmarks/bench_ab.py OLD_CHECKOUT . corpus/png_like --ext png --transform train
    python benchmarks/bench_ab.py OLD_CHECKOUT . corpus/imagenet_like --transform train --fast
"""
import argparse
import os
import statistics
import subprocess
import sys

CHILD = r"""
import glob, sys, time
import numpy as np
import fastprep as fp
folder, transform, count, reps, ext = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
mode = sys.argv[6]  # exact, fast or u8
datas = [open(p, "rb").read() for p in sorted(glob.glob(folder + "/*." + ext))[:count]]
M, S = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
if transform == "eval":
    ops = [fp.Resize(256), fp.CenterCrop(224), fp.ToTensor(), fp.Normalize(M, S)]
elif transform == "train":
    ops = [fp.RandomResizedCrop(224), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize(M, S)]
else:  # "jitter": the train recipe with ColorJitter's four ops
    ops = [fp.RandomResizedCrop(224), fp.RandomHorizontalFlip(), fp.ColorJitter(0.4, 0.4, 0.4, 0.1), fp.ToTensor(),
           fp.Normalize(M, S)]
if mode == "u8":
    t = fp.Compose(ops[:-2], dtype="uint8", layout="HWC")
else:
    t = fp.Compose(ops, exact=mode == "exact")
out = np.empty((64,) + t.output_shape(), t.np_dtype)
def one(rep):
    for i in range(0, len(datas), 64):
        part = datas[i:i + 64]
        t.batch(part, seed=rep, threads=1, out=out[:len(part)], indices=range(i, i + len(part)))
one(0)  # warm-up
t0 = time.perf_counter()
for rep in range(reps):
    one(rep)
print(fp.__file__)
print(len(datas) * reps / (time.perf_counter() - t0))
"""


def run(checkout, args):
    # Run in the checkout: `python -c` puts the working directory first on sys.path, so started
    # from another checkout's root the child would import that one whatever PYTHONPATH says.
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    r = subprocess.run([sys.executable, "-c", CHILD, args.folder, args.transform, str(args.count), str(args.reps), args.ext,
                        "u8" if args.uint8 else "fast" if args.fast else "exact"],
                       env=env, cwd=os.path.abspath(checkout), capture_output=True, text=True, check=True)
    where, speed = r.stdout.strip().splitlines()[-2:]
    if not os.path.abspath(where).startswith(os.path.abspath(checkout) + os.sep):
        raise SystemExit(f"{checkout}: the child imported fastprep from {where}")
    return float(speed)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="checkout A (the baseline)")
    ap.add_argument("b", help="checkout B")
    ap.add_argument("folder", help="folder of photos")
    ap.add_argument("--ext", default="jpg", help="extension of the photos to take (jpg, png, webp)")
    ap.add_argument("--transform", choices=["eval", "train", "jitter"], default="eval")
    ap.add_argument("--fast", action="store_true", help="fast mode (exact=False) on both sides")
    ap.add_argument("--uint8", action="store_true", help="uint8 HWC output (no ToTensor/Normalize) on both sides")
    ap.add_argument("--pairs", type=int, default=11)
    ap.add_argument("--count", type=int, default=192)
    ap.add_argument("--reps", type=int, default=4)
    args = ap.parse_args()
    args.folder = os.path.abspath(args.folder)
    ratios, ra, rb = [], [], []
    for k in range(args.pairs):
        first, second = (args.a, args.b) if k % 2 == 0 else (args.b, args.a)  # alternate who starts
        x = run(first, args)
        y = run(second, args)
        a, b = (x, y) if k % 2 == 0 else (y, x)
        ra.append(a)
        rb.append(b)
        ratios.append(b / a)
    print(f"{args.transform}: A {statistics.median(ra):.0f} img/s, B {statistics.median(rb):.0f} img/s (medians); "
          f"B/A speed per pair: median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f} "
          f"({args.pairs} pairs)")


if __name__ == "__main__":
    main()
