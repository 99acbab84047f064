"""torchvision's catalogue in the fused pass (issue 31): five recipes against torchvision v2 doing
the same, one thread, interleaved rounds, medians of per-round ratios.

- simclr: a SimCLR view (RandomResizedCrop 224, flip, RandomApply([ColorJitter(0.4, 0.4, 0.2,
  0.1)], p=0.8), RandomGrayscale(0.2), GaussianBlur(23, (0.1, 2.0)), ToTensor, Normalize) on the
  photos: fp.from_torchvision of torchvision's recipe (fully fused), against torchvision v2 on
  decode_jpeg tensors, per sample;
- cifar: RandomCrop(32, padding=4) + flip + ToTensor + Normalize on 32x32 uint8 arrays (256 of
  them, cut from the photos): fastprep's .batch of 256 against torchvision v2 applied per sample
  to CHW uint8 tensors, as a DataLoader worker does;
- noise: the train recipe with GaussianNoise(sigma=0.05) on the [0, 1] values before Normalize,
  fully fused, against torchvision v2 per sample;
- elastic: RandomResizedCrop 224 + ElasticTransform(50, 5) + ToDtype + Normalize, fully fused,
  against torchvision v2 per sample;
- fallback: the train recipe with one op fastprep does not fuse (v2's GaussianNoise(sigma=0.05)
  on the uint8 image, torchvision's int16 arithmetic): from_torchvision's HybridCompose (fused
  RandomResizedCrop + flip; GaussianNoise, ToDtype and Normalize per sample in Python) against
  torchvision v2 doing the whole recipe, both over batches of 64 (torchvision per sample, as a
  DataLoader worker does).

    python benchmarks/bench_catalogue.py corpus/detailed --rounds 7 --json benchmarks/results/catalogue_detailed.json
"""
import argparse
import glob
import json
import os
import statistics
import time
import warnings

import numpy as np

import fastprep as fp

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def interleaved(runs, n_rounds):
    """Every run once per round, the order rotated each round, after one warm-up: {name: [seconds]}."""
    names = list(runs)
    for r in runs.values():
        r()
    per = {k: [] for k in names}
    for rnd in range(n_rounds):
        for k in names[rnd % len(names):] + names[:rnd % len(names)]:
            t0 = time.perf_counter()
            runs[k]()
            per[k].append(time.perf_counter() - t0)
    return per


def ratio(per, fast, slow):
    return statistics.median([s / f for f, s in zip(per[fast], per[slow])])


def simclr(T2, torch, size=224):
    return T2.Compose([T2.RandomResizedCrop(size, antialias=True), T2.RandomHorizontalFlip(),
                       T2.RandomApply([T2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), T2.RandomGrayscale(0.2),
                       T2.GaussianBlur(23, (0.1, 2.0)), T2.ToDtype(torch.float32, scale=True),
                       T2.Normalize(MEAN, STD)])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--recipes", default="simclr,cifar,noise,elastic,fallback")
    ap.add_argument("--json", help="write the rows, the machine and the versions here")
    args = ap.parse_args()
    import torch
    from torchvision.io import decode_jpeg
    from torchvision.transforms import v2 as T2

    torch.set_num_threads(1)
    paths = sorted(glob.glob(os.path.join(args.folder, "*.jpg")))[:args.count]
    datas = [open(p, "rb").read() for p in paths]
    n = len(datas)
    recipes = args.recipes.split(",")
    print(f"{n} photos from {args.folder}, {args.rounds} rounds, 1 thread; SIMD {fp.simd_info()['default']}; "
          f"fastprep {fp.__version__}, torch {torch.__version__}")
    print("| recipe | fastprep ms/image | torchvision v2 ms/image | fastprep speed vs torchvision v2 "
          "(median of per-round ratios) |")
    print("|---|---|---|---|")

    rows = []

    def row(name, per, count):
        a, b = (statistics.median(v) / count * 1e3 for v in per.values())
        r = ratio(per, *per)
        print(f"| {name} | {a:.3f} | {b:.3f} | {r:.2f}x |")
        rows.append({"recipe": name, "fastprep_ms": a, "torchvision_ms": b, "speedup": r})

    if "simclr" in recipes:
        tv = simclr(T2, torch)
        t = fp.from_torchvision(tv)
        assert isinstance(t, fp.Compose), "the SimCLR view must fuse"
        out = np.empty((64,) + t.output_shape(), np.float32)

        def fast():
            for i in range(0, n, 64):
                part = datas[i:i + 64]
                t.batch(part, threads=1, out=out[:len(part)], indices=range(i, i + len(part)))

        def slow():
            for d in datas:
                tv(decode_jpeg(torch.frombuffer(d, dtype=torch.uint8)))
        row("SimCLR view (224)", interleaved({"fastprep": fast, "torchvision": slow}, args.rounds), n)

    if "cifar" in recipes:
        crops = []
        rng = np.random.default_rng(0)
        src = [fp.Compose([fp.Resize((96, 96))], dtype="uint8", layout="HWC")(d) for d in datas[:16]]
        while len(crops) < 256:
            im = src[len(crops) % len(src)]
            y, x = rng.integers(0, 64, 2)
            crops.append(np.ascontiguousarray(im[y:y + 32, x:x + 32]))
        tvc = T2.Compose([T2.RandomCrop(32, padding=4), T2.RandomHorizontalFlip(),
                          T2.ToDtype(torch.float32, scale=True), T2.Normalize(MEAN, STD)])
        tc = fp.from_torchvision(tvc)
        assert isinstance(tc, fp.Compose)
        tensors = [torch.from_numpy(c).permute(2, 0, 1).contiguous() for c in crops]
        cout = np.empty((256, 3, 32, 32), np.float32)

        def fast():
            tc.batch(crops, threads=1, out=cout)

        def slow():
            torch.stack([tvc(x) for x in tensors])  # a DataLoader worker's per-sample calls and collate
        row("CIFAR RandomCrop(32, padding=4) + flip + normalize (32x32 arrays)",
            interleaved({"fastprep": fast, "torchvision": slow}, args.rounds * 3), 256)

    def fused(name, tvf, count):
        t = fp.from_torchvision(tvf)
        assert isinstance(t, fp.Compose), t

        def fast():
            t.batch(datas[:count], threads=1)

        def slow():
            for d in datas[:count]:
                tvf(decode_jpeg(torch.frombuffer(d, dtype=torch.uint8)))
        row(name, interleaved({"fastprep": fast, "torchvision": slow}, args.rounds), count)

    if "noise" in recipes:
        fused("train + GaussianNoise (fused) + normalize",
              T2.Compose([T2.RandomResizedCrop(224, antialias=True), T2.RandomHorizontalFlip(),
                          T2.ToDtype(torch.float32, scale=True), T2.GaussianNoise(sigma=0.05),
                          T2.Normalize(MEAN, STD)]), n)
    if "elastic" in recipes:  # torchvision's 2-D blur of the displacement is slow: a quarter of the photos
        fused("RandomResizedCrop + ElasticTransform(50, 5) + normalize",
              T2.Compose([T2.RandomResizedCrop(224, antialias=True), T2.ElasticTransform(50.0, 5.0),
                          T2.ToDtype(torch.float32, scale=True), T2.Normalize(MEAN, STD)]), max(1, n // 4))
    if "fallback" in recipes:
        tvf = T2.Compose([T2.RandomResizedCrop(224, antialias=True), T2.RandomHorizontalFlip(),
                          T2.GaussianNoise(sigma=0.05), T2.ToDtype(torch.float32, scale=True),
                          T2.Normalize(MEAN, STD)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h = fp.from_torchvision(tvf)
        assert isinstance(h, fp.HybridCompose)

        def fast():
            for i in range(0, n, 64):
                h.batch(datas[i:i + 64], threads=1, indices=range(i, min(n, i + 64)))

        def slow():
            for i in range(0, n, 64):
                torch.stack([tvf(decode_jpeg(torch.frombuffer(d, dtype=torch.uint8))) for d in datas[i:i + 64]])
        row("train + uint8 GaussianNoise (in Python) + normalize", interleaved({"fastprep": fast, "torchvision": slow},
                                                                        args.rounds), n)
    if args.json:
        from fastprep.bench import library_versions, machine_info

        with open(args.json, "w") as f:
            json.dump({"kind": "catalogue", "rows": rows, "folder": args.folder, "count": n, "rounds": args.rounds,
                       "date": time.strftime("%Y-%m-%d"),
                       "machine": machine_info(), "versions": library_versions(("torch", "torchvision")),
                       "command": "python benchmarks/bench_catalogue.py " + " ".join(
                           a for a in [args.folder, f"--rounds {args.rounds}", f"--count {args.count}"])},
                      f, indent=1)


if __name__ == "__main__":
    main()
