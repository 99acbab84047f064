"""Tar shards: what indexing costs, and whether reading members in place costs anything.

1. Indexing. Writes SHARDS shards of SAMPLES samples (a small jpg + a cls member each: the header
   walk does not depend on member size, only on the member count) and times fastprep's index with
   the cache off (every header read), with the cache, and Python's ``tarfile`` listing the same
   shards, in interleaved rounds. Reports microseconds per sample and the extrapolation to
   ImageNet (1,281,167 samples in 1,000 shards).
2. Reading. Packs a folder of photos into shards and runs the same Loader over the folder and
   over the shards, interleaved in rounds: median of per-round ratios.

    python benchmarks/bench_tar.py corpus/imagenet_like --shards 200 --samples 1000
"""
import argparse
import io
import os
import statistics
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import fastprep as fp  # noqa: E402
from fastprep.io import _tar  # noqa: E402

IMAGENET = 1_281_167


def write_shards(folder, shards, samples, payload):
    paths = []
    for k in range(shards):
        p = os.path.join(folder, f"synthetic-{k:06d}.tar")
        with tarfile.open(p, "w") as tf:
            for i in range(samples):
                for field, data in (("jpg", payload), ("cls", str(i % 1000).encode())):
                    ti = tarfile.TarInfo(f"n{k:06d}_{i:06d}.{field}")
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
        paths.append(p)
    return paths


def time_index(paths, cache):
    t = time.perf_counter()
    items, *_ = _tar.index_tars(paths, fp.IMG_EXTENSIONS, cache=cache)
    return time.perf_counter() - t, len(items)


def time_tarfile(paths):
    t = time.perf_counter()
    n = 0
    for p in paths:
        with tarfile.open(p) as tf:
            n += sum(1 for m in tf.getmembers() if m.name.endswith(".jpg"))
    return time.perf_counter() - t, n


def pack(folder, out, per_shard):
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith((".jpg", ".jpeg")))
    paths = []
    for k in range(0, len(files), per_shard):
        p = os.path.join(out, f"photos-{k // per_shard:06d}.tar")
        with tarfile.open(p, "w") as tf:
            for i, f in enumerate(files[k:k + per_shard]):
                tf.add(os.path.join(folder, f), arcname=f)
                data = str((k + i) % 1000).encode()
                ti = tarfile.TarInfo(os.path.splitext(f)[0] + ".cls")
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
        paths.append(p)
    return [(os.path.join(folder, f), (i % 1000)) for i, f in enumerate(files)], paths


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", help="a folder of JPEG photos (for part 2)")
    ap.add_argument("--shards", type=int, default=200)
    ap.add_argument("--samples", type=int, default=1000, help="samples per synthetic shard")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FASTPREP_CACHE_DIR"] = os.path.join(tmp, "cache")
        payload = open(os.path.join(args.photos, sorted(os.listdir(args.photos))[0]), "rb").read()[:2048]
        paths = write_shards(tmp, args.shards, args.samples, payload)
        n = args.shards * args.samples
        time_index(paths, cache=True)  # fills the cache
        cold, cached, ref = [], [], []
        for _ in range(args.rounds):
            cold.append(time_index(paths, cache=False)[0])
            cached.append(time_index(paths, cache=True)[0])
            ref.append(time_tarfile(paths)[0])
        us = {k: statistics.median(v) / n * 1e6 for k, v in (("cold", cold), ("cached", cached), ("tarfile", ref))}
        print(f"## Indexing {args.shards} shards x {args.samples} samples (page cache warm), median of "
              f"{args.rounds} rounds\n")
        print("| index | us / sample | ImageNet (1.28 M samples) |")
        print("|---|---|---|")
        for k, label in (("cold", "fastprep, no cache (header walk)"), ("cached", "fastprep, cached"),
                         ("tarfile", "Python tarfile.getmembers (reference)")):
            print(f"| {label} | {us[k]:.2f} | {us[k] * IMAGENET / 1e6:.1f} s |")
        for p in paths:
            os.remove(p)

        pairs, shards = pack(args.photos, tmp, per_shard=50)
        t = fp.Compose([fp.RandomResizedCrop(224), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize("imagenet")])
        folder = fp.Loader(pairs, t, batch_size=64, threads=args.threads, backend="numpy", seed=0)
        tar = fp.Loader(shards, t, batch_size=64, threads=args.threads, backend="numpy", seed=0)
        ratios = []
        for r in range(args.rounds + 1):
            rates = []
            for loader in ((folder, tar) if r % 2 else (tar, folder)):
                t0 = time.perf_counter()
                count = sum(len(x) for x, _ in loader)
                rates.append((loader is tar, count / (time.perf_counter() - t0)))
            if r:  # the first round warms up
                d = dict(rates)
                ratios.append(d[True] / d[False])
        print(f"\n## Reading: Loader over {len(shards)} shards vs the same {len(pairs)} files in a folder "
              f"(train recipe, {args.threads} thread(s))\n")
        print(f"tar / folder img/s: median {statistics.median(ratios):.3f} over {len(ratios)} rounds "
              f"(per round: {', '.join(f'{x:.3f}' for x in ratios)})")


if __name__ == "__main__":
    main()
