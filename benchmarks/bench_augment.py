"""Automatic augmentation inside the fused pass (issue 13): the DeiT/timm-style recipe
RandomResizedCrop + flip + TrivialAugmentWide + Normalize + RandomErasing against torchvision v2's
same recipe and against fastprep's plain train recipe, and each policy op's own cost.

One thread, float32 normalized output, batches of 64 into one reused buffer, on real photos.
Every pipeline runs once per round, the order rotated each round; the medians of per-round
ratios are printed. torchvision v2 runs on decode_jpeg tensors with torch.set_num_threads(1).
The per-op table times each kernel alone (fastprep._core.testing.augment_image on a 224x224 crop, scalar
and the best SIMD level), the same rounds-and-medians way.

    python benchmarks/bench_augment.py corpus/imagenet_like --rounds 5
"""
import statistics

import fastprep as fp
from bench_ops import MEAN, STD, add_torchvision, fastprep_runs, head_tail, interleaved, parse_args
from fastprep import _core


def variants(size):
    head, tail = head_tail(size)
    return {
        "train": head + tail,
        "recipe: +TrivialAugmentWide +RandomErasing(0.25)": head + [fp.TrivialAugmentWide()] + tail
        + [fp.RandomErasing(0.25)],
        "+RandAugment(2, 9)": head + [fp.RandAugment()] + tail,
        "+AutoAugment(imagenet)": head + [fp.AutoAugment()] + tail,
        "+RandomRotation(15, bilinear)": head + [fp.RandomRotation(15, interpolation="bilinear")] + tail,
        "+RandomAffine(10, 0.1, (0.9, 1.1), 5)": head + [fp.RandomAffine(10, (0.1, 0.1), (0.9, 1.1), 5)] + tail,
    }


def torchvision_recipe(size):
    import torch
    from torchvision.io import decode_jpeg
    from torchvision.transforms import v2

    t = v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(), v2.TrivialAugmentWide(),
                    v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD), v2.RandomErasing(0.25)])

    def run(datas):
        for d in datas:
            t(decode_jpeg(torch.frombuffer(d, dtype=torch.uint8)))
    return run


def main():
    args, datas = parse_args(__doc__, 5)
    n = len(datas)
    runs = fastprep_runs(variants(args.size), args.size)
    tv_name = "torchvision v2 recipe"
    if not args.no_torchvision:
        add_torchvision(runs, tv_name, torchvision_recipe, args.size)
    per = interleaved(runs, datas, args.rounds)
    base = per["train"]
    print(f"{n} photos from {args.folder}, {args.rounds} rounds, 1 thread, {args.size}px float32; "
          f"SIMD {fp.simd_info()['default']}")
    print("| pipeline | ms/image (median) | speed vs fastprep train (median of per-round ratios) |")
    print("|---|---|---|")
    for k in per:
        ms = statistics.median(per[k]) / n * 1e3
        print(f"| {k} | {ms:.2f} | {statistics.median([b / a for a, b in zip(per[k], base)]):.2f}x |")
    recipe = per["recipe: +TrivialAugmentWide +RandomErasing(0.25)"]
    if tv_name in per:
        print(f"\nfastprep recipe vs torchvision v2 same recipe: "
              f"{statistics.median([b / a for a, b in zip(recipe, per[tv_name])]):.2f}x (median of per-round ratios)")

    # Per-op kernel cost on one 224x224 crop.
    crop = fp.Compose([fp.Resize((args.size, args.size))], dtype="uint8", layout="HWC")(datas[0])
    best = getattr(_core.Simd, fp.simd_info()["default"])
    mags = {"Posterize": 4.0, "Solarize": 0.5, "TranslateX": 30.0, "TranslateY": 30.0, "Rotate": 20.0,
            "ShearX": 0.3, "ShearY": 0.3}
    kern = {}
    for name in _core.AugOp.__members__:
        for simd in ([_core.Simd.scalar, best] if best != _core.Simd.scalar else [best]):
            for interp in ((_core.Interp.nearest, _core.Interp.bilinear) if name in mags and "ize" not in name
                           else (_core.Interp.nearest,)):
                key = (name, simd.name, interp.name)
                op, m = getattr(_core.AugOp, name), mags.get(name, 0.5)

                def run(reps, op=op, m=m, simd=simd, interp=interp):
                    for _ in range(reps):
                        _core.testing.augment_image(crop, op, m, interp, None, simd)
                kern[key] = run
    base_run = kern[("Identity", best.name, "nearest")]  # the harness: copies in and out
    kern["harness"] = base_run
    per = interleaved(kern, 50, args.rounds)
    print("\n| op (224x224 crop) | SIMD | sampling | ms/image over the harness's copy (median) |")
    print("|---|---|---|---|")
    h = per["harness"]
    for k, v in per.items():
        if k == "harness" or k[0] == "Identity":
            continue
        extra = statistics.median([(a - b) / 50 * 1e3 for a, b in zip(v, h)])
        print(f"| {k[0]} | {k[1]} | {k[2]} | {extra:.3f} |")


if __name__ == "__main__":
    main()
