"""fastprep.timm.create_loader against timm.data.create_loader with the same arguments (issue 32),
on the same folder, epochs interleaved in rounds, medians of per-round ratios.

Both get timm's train recipe with RandAugment (``auto_augment="rand-m9-mstd0.5-inc1"``,
``re_prob=0.25``), the prefetcher (uint8 batches normalised and erased on the device, here the
CPU) and timm's FastCollateMixup (Mixup 0.8 / CutMix 1.0) as collate_fn, ``num_workers``
workers (timm: DataLoader processes, persistent; fastprep: native threads). An epoch is one pass
over the folder; the time counts every batch up to the last one handed to the loop.

    python benchmarks/bench_timm_loader.py corpus/detailed --count 256 --workers 2 --rounds 5 \\
        --json benchmarks/results/timm_loader_detailed.json
"""
import argparse
import json
import os
import statistics
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--count", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    import timm
    import torch
    from PIL import Image, ImageOps
    from timm.data import create_dataset
    from timm.data import create_loader as timm_loader
    from timm.data.mixup import FastCollateMixup

    import fastprep as fp
    from fastprep.timm import create_loader as fp_loader

    posterize = ImageOps.posterize  # Pillow 13 refuses the 0 bits timm asks for at magnitude 10
    ImageOps.posterize = lambda img, bits: Image.new(img.mode, img.size, 0) if bits <= 0 else posterize(img, bits)
    torch.set_num_threads(1)
    names = sorted(n for n in os.listdir(args.folder) if n.lower().endswith(".jpg"))[:args.count]
    with tempfile.TemporaryDirectory() as tmp:
        for i, n in enumerate(names):  # an ImageFolder of 4 classes (labels only matter to the mixing)
            d = os.path.join(tmp, f"c{i % 4}")
            os.makedirs(d, exist_ok=True)
            os.symlink(os.path.abspath(os.path.join(args.folder, n)), os.path.join(d, n))
        ds = create_dataset("", root=tmp, is_training=True)
        kw = dict(input_size=(3, 224, 224), batch_size=args.batch_size, is_training=True,
                  auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.25, num_workers=args.workers,
                  use_prefetcher=True, device=torch.device("cpu"))
        mix = dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=4)
        loaders = {"fastprep": fp_loader(ds, collate_fn=FastCollateMixup(**mix), seed=0, **kw),
                   "timm": timm_loader(ds, collate_fn=FastCollateMixup(**mix), persistent_workers=True, **kw)}
        per = {k: [] for k in loaders}
        for name, loader in loaders.items():  # warm-up epoch (timm's workers start)
            for _ in loader:
                pass
        for r in range(args.rounds):
            for name in (list(loaders) if r % 2 == 0 else list(loaders)[::-1]):
                t0 = time.perf_counter()
                n = 0
                for x, y in loaders[name]:
                    n += x.shape[0]
                per[name].append(n / (time.perf_counter() - t0))
        ratios = [a / b for a, b in zip(per["fastprep"], per["timm"])]
        row = {"fastprep_img_s": statistics.median(per["fastprep"]), "timm_img_s": statistics.median(per["timm"]),
               "speedup": statistics.median(ratios)}
        print(f"{len(names)} photos from {args.folder}, {args.workers} workers, batch {args.batch_size}, "
              f"{args.rounds} rounds; fastprep {fp.__version__}, timm {timm.__version__}, torch {torch.__version__}")
        print("| loader | images/s |\n|---|---:|")
        print(f"| fastprep.timm.create_loader | {row['fastprep_img_s']:.0f} |")
        print(f"| timm.data.create_loader | {row['timm_img_s']:.0f} |")
        print(f"| fastprep / timm (median of per-round ratios) | **{row['speedup']:.2f}x** |")
        if args.json:
            from fastprep.bench import library_versions, machine_info

            with open(args.json, "w") as f:
                json.dump({"kind": "timm_loader", "row": row, "per_round": per, "folder": args.folder,
                           "count": len(names), "workers": args.workers, "batch_size": args.batch_size,
                           "rounds": args.rounds, "date": time.strftime("%Y-%m-%d"), "machine": machine_info(),
                           "versions": dict(library_versions(("torchvision", "pil")), timm=timm.__version__),
                           "command": f"python benchmarks/bench_timm_loader.py {args.folder} --count {args.count} "
                                      f"--workers {args.workers} --rounds {args.rounds}"}, f, indent=1)


if __name__ == "__main__":
    main()
