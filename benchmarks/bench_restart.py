"""Restart-indexed JPEGs (issue 34): the train and eval recipes on files rewritten by
`fastprep optimize` against libjpeg-turbo's bare full decode of the original files, one thread,
interleaved rounds, medians of per-round ratios; the size of the rewrite; the Loader's scaling
on 2 threads.

For each restart interval N (in MCUs; "auto" is fastprep optimize's default, about 200 bytes of
image data per interval; "orig" is the original file, decoded the usual way):

    train   RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor + Normalize
    eval    Resize(256) + CenterCrop(224) + ToTensor + Normalize

Each row is "x the bare decode": the bare full decode's time over the row's time in the same
round (higher is faster). Sizes: the rewritten files' bytes against the originals' and against
the same rewrite without restart markers (N = 0: the optimized Huffman tables alone), which is
what the markers themselves cost. Baseline originals are measured; progressive originals (which
gain from the baseline rewrite alone) are reported on their own when the folder has some.

Loader: fp.Loader over the rewritten files (the default N) with threads=2 against threads=1,
epochs interleaved: the speed-up of the second thread.

    python benchmarks/bench_restart.py corpus/detailed --count 200 --rounds 7 \
        --json benchmarks/results/restart_detailed.json
"""
import argparse
import glob
import io
import json
import os
import statistics
import sys
import time

import numpy as np

import fastprep as fp
from fastprep import _core
from fastprep.bench import _run as _bench
from fastprep.bench import library_versions, machine_info
from bench_catalogue import interleaved  # the same rounds
from fastprep.offline import DEFAULT_OPTIMIZE_RESTART

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs"))
from results import restart_table  # noqa: E402  (the table the docs page shows)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def of_bare(per, name):
    return statistics.median([b / t for b, t in zip(per["bare"], per[name])])


def progressive(data):
    from PIL import Image

    return bool(Image.open(io.BytesIO(data)).info.get("progressive"))


def pixels_per_file(datas):
    from PIL import Image

    return [Image.open(io.BytesIO(d)).size[0] * Image.open(io.BytesIO(d)).size[1] for d in datas]


def measure(datas, intervals, rounds):
    train = fp.Compose([fp.RandomResizedCrop(224), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize(MEAN, STD)])
    ev = fp.Compose([fp.Resize(256), fp.CenterCrop(224), fp.ToTensor(), fp.Normalize(MEAN, STD)])
    rewritten = {n: [bytes(_core.transcode_jpeg(d, -1 if n == "auto" else n)[0]) for d in datas]
                 for n in [0] + [n for n in intervals if n != 0]}
    # N = 0 is the rewrite without markers: size reference, and for progressive originals the
    # baseline rewrite alone
    out = np.empty((len(datas), 3, 224, 224), np.float32)
    bare, _ = _bench._ceiling(datas, 1)
    runs = {"bare": bare,
            "train orig": lambda: train.batch(datas, seed=1, threads=1, out=out),
            "eval orig": lambda: ev.batch(datas, seed=1, threads=1, out=out)}
    for n in intervals:
        runs[f"train N={n}"] = (lambda d: lambda: train.batch(d, seed=1, threads=1, out=out))(rewritten[n])
        runs[f"eval N={n}"] = (lambda d: lambda: ev.batch(d, seed=1, threads=1, out=out))(rewritten[n])
    per = interleaved(runs, rounds)
    orig_bytes = sum(map(len, datas))
    rows = []
    for n in ["orig"] + list(intervals):
        row = {"restart_mcus": n, "train_x_bare": of_bare(per, f"train {'orig' if n == 'orig' else f'N={n}'}"),
               "eval_x_bare": of_bare(per, f"eval {'orig' if n == 'orig' else f'N={n}'}")}
        if n != "orig":
            size = sum(map(len, rewritten[n]))
            row["size_vs_original"] = size / orig_bytes - 1
            row["size_vs_no_markers"] = size / sum(map(len, rewritten[0])) - 1
            _, params = train.batch(rewritten[n], seed=1, threads=1, return_params=True)
            row["train_spliced_bytes_share"] = float(np.mean([p["spliced_bytes"] / len(d)
                                                              for p, d in zip(params, rewritten[n])]))
        rows.append(row)
    return rows, {k: statistics.median(v) for k, v in per.items()}


def loader_scaling(folder, rounds, count):
    """fp.Loader over the rewritten photos: epochs with threads=2 against threads=1, interleaved."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "opt")
        src = os.path.join(tmp, "src")
        os.makedirs(os.path.join(src, "x"))
        for p in sorted(glob.glob(os.path.join(folder, "*.jpg")))[:count]:
            os.symlink(os.path.abspath(p), os.path.join(src, "x", os.path.basename(p)))
        fp.optimize(src, out, progress=False)
        t = fp.Compose([fp.RandomResizedCrop(224), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize(MEAN, STD)])
        loaders = {k: fp.Loader(out, t, batch_size=32, threads=k, seed=0, backend="numpy") for k in (1, 2)}

        def epoch(ld):
            return lambda: sum(len(b[1]) for b in ld)
        per = interleaved({"1": epoch(loaders[1]), "2": epoch(loaders[2])}, rounds)
        return statistics.median([a / b for a, b in zip(per["1"], per["2"])])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--intervals", default="auto,1,2,4,8",
                    help="restart intervals (MCUs, or auto: fastprep optimize's default) to measure")
    ap.add_argument("--no-loader", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    paths = sorted(glob.glob(os.path.join(a.folder, "*.jpg")))[:a.count]
    datas = [open(p, "rb").read() for p in paths]
    prog = [progressive(d) for d in datas]
    base = [d for d, p in zip(datas, prog) if not p]
    pxs = pixels_per_file(datas)
    intervals = [x if x == "auto" else int(x) for x in a.intervals.split(",")]
    result = {"kind": "restart", "folder": a.folder, "files": len(datas), "rounds": a.rounds, "count": a.count, "baseline": len(base), "progressive": sum(prog),
              "bytes_per_pixel": sum(map(len, datas)) / sum(pxs), "date": time.strftime("%Y-%m-%d"),
              "machine": machine_info(), "versions": library_versions(), "default_restart_mcus": DEFAULT_OPTIMIZE_RESTART,
              "command": f"python benchmarks/bench_restart.py {a.folder} --count {a.count} --rounds {a.rounds}"}
    rows = []
    if base:
        rows, medians = measure(base, intervals, a.rounds)
        result["median_seconds"] = medians
    result["baseline_rows"] = rows
    if sum(prog):  # progressive originals: the baseline rewrite alone already pays
        result["progressive_rows"], _ = measure([d for d, p in zip(datas, prog) if p], [0, DEFAULT_OPTIMIZE_RESTART],
                                                a.rounds)
    if not a.no_loader:
        result["loader_2_threads_speedup"] = loader_scaling(a.folder, max(3, a.rounds // 2), a.count)
    print(f"{a.folder}: {len(base)} baseline files ({result['bytes_per_pixel']:.2f} bytes/pixel), "
          f"{sum(prog)} progressive; one thread, x the bare full decode of the originals (median of "
          f"{a.rounds} interleaved rounds)")
    print(restart_table(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
