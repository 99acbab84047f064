"""Several views per image (issue 33): fastprep's MultiView, one decode per image, against
torchvision v2 doing the same recipe view by view, one thread, interleaved rounds, medians of
per-round ratios; and the Loader on 2 threads against DataLoader(num_workers=2) + torchvision v2.

- dino: 2 global crops at 224 + 8 local crops at 96 (DINO's DataAugmentationDINO parameters:
  RandomResizedCrop bicubic, flip, RandomApply(ColorJitter(0.4, 0.4, 0.2, 0.1), p=0.8),
  RandomGrayscale(0.2), a Gaussian blur with p 1.0 / 0.1 / 0.5, solarization with p 0.2 on the
  second global crop, ToTensor, Normalize). torchvision v2 runs it on decode_jpeg tensors with
  v2.GaussianBlur(23, (0.1, 2.0)) as its blur (DINO's own code blurs PIL images with Pillow);
  fastprep runs the same v2 recipe converted by from_torchvision (one decode), and its DINO
  preset (fp.MultiView.dino(): Pillow's blur, as DINO's code);
- simclr: SimCLR's two views at 224 (fp.MultiView.simclr()'s recipe in torchvision v2 ops);
- loader: the DINO recipe over the photos, fp.Loader(threads=2) against DataLoader(num_workers=2)
  with the torchvision v2 recipe in a Dataset, epochs interleaved.

The decoder's own count of decompressions (params["decode_sessions"]) is read for every sample,
and the preset's fast mode (exact=False: the shared decode may take a DCT scale a lone view
would not) is compared with exact mode: the smallest PSNR over views and images.

    python benchmarks/bench_multiview.py corpus/detailed --count 32 --rounds 5 --json benchmarks/results/multiview_detailed.json
"""
import argparse
import glob
import json
import os
import statistics
import time

import numpy as np

import fastprep as fp
from bench_catalogue import interleaved, ratio  # the same rounds and estimator

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def dino_v2(T2, torch, local_crops=8):
    """DINO's recipe in torchvision v2 ops: [global 1, global 2] + [local] * local_crops."""
    BIC = T2.InterpolationMode.BICUBIC

    def view(size, scale, blur_p, solarize_p=0.0):
        ops = [T2.RandomResizedCrop(size, scale=scale, interpolation=BIC, antialias=True), T2.RandomHorizontalFlip(),
               T2.RandomApply([T2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), T2.RandomGrayscale(0.2),
               T2.RandomApply([T2.GaussianBlur(23, (0.1, 2.0))], p=blur_p)]
        if solarize_p:
            ops.append(T2.RandomSolarize(128, p=solarize_p))
        return T2.Compose(ops + [T2.ToDtype(torch.float32, scale=True), T2.Normalize(MEAN, STD)])

    local = view(96, (0.05, 0.4), 0.5)
    return [view(224, (0.4, 1.0), 1.0), view(224, (0.4, 1.0), 0.1, 0.2)] + [local] * local_crops


def simclr_v2(T2, torch):
    view = T2.Compose([T2.RandomResizedCrop(224, antialias=True), T2.RandomHorizontalFlip(),
                       T2.RandomApply([T2.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8), T2.RandomGrayscale(0.2),
                       T2.RandomApply([T2.GaussianBlur(23, (0.1, 2.0))], p=0.5), T2.ToDtype(torch.float32, scale=True)])
    return [view, view]


def fast_psnr(mv, datas):
    """Fast mode (exact=False: the shared decode may take a DCT scale) against exact mode, per
    view and image, in levels: the smallest PSNR (dB)."""
    fast = MultiView_with(mv, exact=False)
    a, b = mv.batch(datas, seed=1), fast.batch(datas, seed=1)
    worst = float("inf")
    for v, view in enumerate(mv.views):
        norm = next((o for o in view.transforms if isinstance(o, fp.Normalize)), None)
        scale = np.asarray(STD).reshape(1, 3, 1, 1) * 255 if norm is not None else 255.0
        for x, y in zip(a[v], b[v]):
            mse = float(np.mean(((x - y) * scale[0] if norm is not None else (x - y) * scale) ** 2))
            worst = min(worst, float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse))
    return worst


def MultiView_with(mv, **options):
    return fp.MultiView([v.with_options(**options) for v in mv.views])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loader-epochs", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch
    from torchvision.io import decode_jpeg
    from torchvision.transforms import v2 as T2

    torch.set_num_threads(1)
    paths = sorted(glob.glob(os.path.join(args.folder, "*.jpg")))[:args.count]
    datas = [open(p, "rb").read() for p in paths]
    n = len(datas)
    print(f"{n} photos from {args.folder}, {args.rounds} rounds, 1 thread; fastprep {fp.__version__}, "
          f"torch {torch.__version__}")
    rows = []

    def tv_run(views):
        def run():
            for d in datas:
                img = decode_jpeg(torch.frombuffer(bytearray(d), dtype=torch.uint8))
                [v(img) for v in views]
        return run

    def fp_run(mv):
        def run():
            mv.batch(datas, threads=1)
        return run

    for name, tv_views, preset in (("DINO (2 x 224 + 8 x 96)", dino_v2(T2, torch), fp.MultiView.dino()),
                                   ("SimCLR (2 x 224)", simclr_v2(T2, torch), fp.MultiView.simclr())):
        converted = fp.from_torchvision(tv_views)
        _, params = converted.batch(datas, seed=1, return_params=True)
        sessions = sorted({p["decode_sessions"] for p in params[0]})
        per = interleaved({"fastprep (v2 recipe converted)": fp_run(converted), "fastprep preset": fp_run(preset),
                           "torchvision v2": tv_run(tv_views)}, args.rounds)
        ms = {k: statistics.median(v) / n * 1e3 for k, v in per.items()}
        row = {"recipe": name, "views": len(tv_views), "decode_sessions_per_sample": sessions,
               "fast_psnr_min_db": fast_psnr(preset, datas),
               "fastprep_ms": ms["fastprep (v2 recipe converted)"], "preset_ms": ms["fastprep preset"],
               "torchvision_ms": ms["torchvision v2"],
               "speedup": ratio(per, "fastprep (v2 recipe converted)", "torchvision v2"),
               "preset_speedup": ratio(per, "fastprep preset", "torchvision v2")}
        rows.append(row)
        print(f"| {name} | fastprep {row['fastprep_ms']:.2f} ms/image ({row['speedup']:.2f}x), preset "
              f"{row['preset_ms']:.2f} ({row['preset_speedup']:.2f}x), torchvision v2 {row['torchvision_ms']:.2f}; "
              f"decodes per sample {sessions}; fast mode >= {row['fast_psnr_min_db']:.1f} dB |")

    # The Loader on 2 threads against DataLoader(2 workers) + torchvision v2, epochs interleaved.
    tv_views = dino_v2(T2, torch)
    from torchvision.io import ImageReadMode, read_file

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            img = decode_jpeg(read_file(paths[i]), mode=ImageReadMode.RGB)
            return [v(img) for v in tv_views], 0

    dl = torch.utils.data.DataLoader(DS(), batch_size=16, shuffle=True, num_workers=2, persistent_workers=True,
                                     worker_init_fn=lambda _: torch.set_num_threads(1))
    L = fp.Loader([(p, 0) for p in paths], fp.from_torchvision(tv_views), batch_size=16, threads=2, shuffle=True,
                  seed=0, backend="torch")

    def epoch(loader):
        def run():
            for views, _ in loader:
                pass
        return run

    per = interleaved({"fp.Loader(threads=2)": epoch(L), "DataLoader(2) + torchvision v2": epoch(dl)},
                      args.loader_epochs)
    loader_row = {"recipe": "DINO, Loader on 2 threads", "fastprep_img_s": n / statistics.median(per["fp.Loader(threads=2)"]),
                  "torchvision_img_s": n / statistics.median(per["DataLoader(2) + torchvision v2"]),
                  "speedup": ratio(per, "fp.Loader(threads=2)", "DataLoader(2) + torchvision v2")}
    print(f"| Loader, 2 threads, DINO | fastprep {loader_row['fastprep_img_s']:.1f} img/s, DataLoader(2) + v2 "
          f"{loader_row['torchvision_img_s']:.1f} img/s: {loader_row['speedup']:.2f}x |")
    if args.json:
        from fastprep.bench import library_versions, machine_info

        with open(args.json, "w") as f:
            json.dump({"kind": "multiview", "rows": rows, "loader": loader_row, "folder": args.folder, "count": n,
                       "rounds": args.rounds, "loader_epochs": args.loader_epochs, "date": time.strftime("%Y-%m-%d"),
                       "machine": machine_info(), "versions": library_versions(("torch", "torchvision")),
                       "command": f"python benchmarks/bench_multiview.py {args.folder} --count {args.count} "
                                  f"--rounds {args.rounds} --loader-epochs {args.loader_epochs}"}, f, indent=1)


if __name__ == "__main__":
    main()
