"""timm's own transforms (issue 32) against the same recipes converted by fp.from_torchvision,
one thread, interleaved rounds, medians of per-round ratios, on the same files.

- eval: ``timm.data.create_transform(224, is_training=False)`` (Resize 248 + CenterCrop 224 +
  ToTensor + Normalize, PIL's bilinear), converted whole;
- eval border: the same with ``crop_mode="border"`` (ResizeKeepRatio + CenterCropOrPad with the
  mean fill);
- train: ``create_transform(224, is_training=True, re_prob=0.25)`` without an auto-augment
  policy (RandomResizedCropAndInterpolation, flip, ColorJitter 0.4, ToTensor, Normalize, timm's
  RandomErasing), converted whole;
- train RandAugment: the same with ``auto_augment="rand-m9-mstd0.5-inc1"`` (timm's RandAugment,
  fp.TimmRandAugment, instead of ColorJitter), converted whole. timm 1.0.31 on Pillow 13 raises
  when PosterizeIncreasing reaches magnitude 10 (0 bits); its side here gets older Pillow's black
  image there, as fastprep does;
- train 3-Augment: ``auto_augment="3a"`` (DeiT III: timm's AutoAugment '3a' beside ColorJitter 0.4);
- train AugMix: ``auto_augment="augmix-m9-mstd0.5"`` (3 chains of 1 to 3 ops, mixed).

timm's side decodes each JPEG with PIL (``Image.open(...).convert("RGB")``, as timm's datasets
do) and runs its transform; fastprep's side runs the converted Compose's ``batch`` on the bytes.

    python benchmarks/bench_timm.py corpus/detailed --count 64 --rounds 5 --json benchmarks/results/timm_detailed.json
"""
import argparse
import glob
import io
import json
import os
import statistics
import time

import numpy as np

import fastprep as fp
from bench_catalogue import interleaved, ratio  # the same rounds and estimator


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="write the rows, the machine and the versions here")
    args = ap.parse_args()
    import timm
    import torch
    from PIL import Image
    from timm.data import create_transform

    torch.set_num_threads(1)
    paths = sorted(glob.glob(os.path.join(args.folder, "*.jpg")))[:args.count]
    datas = [open(p, "rb").read() for p in paths]
    n = len(datas)
    recipes = {
        "eval (create_transform, is_training=False)": create_transform(224, is_training=False),
        "eval, crop_mode='border'": create_transform(224, is_training=False, crop_mode="border"),
        "train (re_prob=0.25, no auto_augment)": create_transform(224, is_training=True, re_prob=0.25),
        "train, auto_augment='rand-m9-mstd0.5-inc1', re_prob=0.25":
            create_transform(224, is_training=True, auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.25),
        "train, auto_augment='3a' (3-Augment)": create_transform(224, is_training=True, auto_augment="3a"),
        "train, auto_augment='augmix-m9-mstd0.5'": create_transform(224, is_training=True,
                                                                    auto_augment="augmix-m9-mstd0.5"),
    }
    from PIL import ImageOps

    posterize = ImageOps.posterize  # Pillow 13 refuses 0 bits, which timm asks for at magnitude 10
    ImageOps.posterize = lambda img, bits: Image.new(img.mode, img.size, 0) if bits <= 0 else posterize(img, bits)
    print(f"{n} photos from {args.folder}, {args.rounds} rounds, 1 thread; fastprep {fp.__version__}, "
          f"timm {timm.__version__}, torch {torch.__version__}")
    print("| recipe | fastprep ms/image | timm ms/image | fastprep / timm |")
    print("|---|---:|---:|---:|")
    rows = []
    for name, tt in recipes.items():
        t = fp.from_torchvision(tt, strict=True)
        out = np.empty((64,) + t.output_shape(), np.float32)

        def fast(t=t, out=out):
            for i in range(0, n, 64):
                part = datas[i:i + 64]
                t.batch(part, threads=1, out=out[:len(part)], indices=range(i, i + len(part)))

        def slow(tt=tt):
            for d in datas:
                with Image.open(io.BytesIO(d)) as im:
                    tt(im.convert("RGB"))
        per = interleaved({"fastprep": fast, "timm": slow}, args.rounds)
        a, b = (statistics.median(v) / n * 1e3 for v in per.values())
        r = ratio(per, "fastprep", "timm")
        print(f"| {name} | {a:.2f} | {b:.2f} | **{r:.2f}x** |")
        rows.append({"recipe": name, "fastprep_ms": a, "torchvision_ms": b, "speedup": r})
    if args.json:
        from fastprep.bench import library_versions, machine_info

        with open(args.json, "w") as f:
            json.dump({"kind": "timm", "rows": rows, "folder": args.folder, "count": n, "rounds": args.rounds,
                       "date": time.strftime("%Y-%m-%d"), "machine": machine_info(),
                       "versions": dict(library_versions(("torchvision", "pil")), timm=timm.__version__),
                       "command": f"python benchmarks/bench_timm.py {args.folder} --count {args.count} "
                                  f"--rounds {args.rounds}"}, f, indent=1)


if __name__ == "__main__":
    main()
