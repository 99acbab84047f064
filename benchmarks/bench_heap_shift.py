"""Does fastprep's speed depend on where malloc happens to put its buffers?

Each heap shift N runs in a fresh process that calls malloc(N) before anything else is
allocated (shifting every later heap address), then times the train recipe (RandomResizedCrop
224 + flip + Normalize, float32, batches of 64 into one reused buffer, one thread) against
libjpeg-turbo's bare full decode of the same photos in the same process, interleaved in rounds.
The figure per N is the median of per-round ratios (fastprep img/s / bare decode img/s). A
placement-independent build gives the same figure for every N, up to the VM's noise.

    python benchmarks/bench_heap_shift.py corpus/imagenet_like [--shifts 16,32,48,64,1024,3000]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def child(folder, shift, count, rounds, transform):
    import ctypes

    ctypes.CDLL(None).malloc(shift)  # before numpy or fastprep allocate anything
    import glob
    import time

    import numpy as np

    import fastprep as fp
    from fastprep.bench import _run as _bench

    paths = sorted(glob.glob(os.path.join(folder, "*.jpg")))[:count]
    datas = [open(p, "rb").read() for p in paths]
    ops = {"train": [fp.RandomResizedCrop(224), fp.RandomHorizontalFlip()],
           "eval": [fp.Resize(256), fp.CenterCrop(224)]}[transform]
    t = fp.Compose(ops + [fp.ToTensor(), fp.Normalize("imagenet")])
    out = np.empty((64, 3, 224, 224), np.float32)

    def fused():
        for i in range(0, len(datas), 64):
            part = datas[i:i + 64]
            t.batch(part, seed=1, threads=1, out=out[:len(part)], indices=range(i, i + len(part)))

    ceiling, _ = _bench._ceiling(datas, 1)
    fused(), ceiling()  # warm-up
    ratios = []
    for r in range(rounds):
        times = {}
        for name, fn in ((("fused", fused), ("ceiling", ceiling)) if r % 2 == 0 else
                         (("ceiling", ceiling), ("fused", fused))):
            t0 = time.perf_counter()
            fn()
            times[name] = time.perf_counter() - t0
        ratios.append(times["ceiling"] / times["fused"])
    print(json.dumps({"shift": shift, "ratio": statistics.median(ratios),
                      "fused_img_s": len(datas) / times["fused"]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--shifts", default="16,32,48,64,1024,3000")
    ap.add_argument("--count", type=int, default=192)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=2, help="processes per shift (in alternating order)")
    ap.add_argument("--transform", choices=("train", "eval"), default="train")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child(a.folder, a.child, a.count, a.rounds, a.transform)
        return
    shifts = [int(s) for s in a.shifts.split(",")]
    results = {s: [] for s in shifts}
    for rep in range(a.repeat):
        for s in (shifts if rep % 2 == 0 else shifts[::-1]):
            cmd = [sys.executable, __file__, a.folder, "--child", str(s), "--count", str(a.count),
                   "--rounds", str(a.rounds), "--transform", a.transform]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
            results[s].append(res["ratio"])
    print(f"{a.transform} recipe, {a.count} photos, 1 thread: fastprep / bare decode per heap shift "
          f"(median of {a.rounds} interleaved rounds per process; {a.repeat} processes per shift)")
    print("| malloc(N) first | fastprep / bare decode |")
    print("|---|---|")
    for s in shifts:
        print(f"| {s} | " + ", ".join(f"{r:.2f}" for r in results[s]) + " |")
    allr = [r for v in results.values() for r in v]
    print(f"\nspread: {min(allr):.2f} .. {max(allr):.2f} (max/min {max(allr) / min(allr):.2f})")


if __name__ == "__main__":
    main()
