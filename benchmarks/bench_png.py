"""Native PNG and WebP decoding (issue 16): the train recipe on PNG (or WebP) photographs,
fastprep against torchvision v1 (PIL) on the same in-memory files, and fastprep's thread scaling.

Pipelines, each run once per round (order reversed every other round), medians of per-round
ratios against fastprep with one thread:
  fastprep x1, x2      Compose.batch on the PNG bytes (native libpng decode in the pool), batches
                       of 64 into one reused float32 buffer;
  via Pillow           what fastprep did before: Pillow decodes each file (Image.open + convert
                       "RGB", one at a time), the arrays go through the same native pass;
  torchvision v1       Image.open + convert("RGB") + RandomResizedCrop + flip + ToTensor +
                       Normalize, one thread (torch.set_num_threads(1)).

    python benchmarks/bench_png.py corpus/png_like [--count 128] [--rounds 5] [--ext png|webp]
        [--loader-epochs 6]

With --loader-epochs N, also fp.Loader(threads=2) against torch's DataLoader(num_workers=2,
persistent_workers=True) over the same files (read from disk, page cache warm) with
torchvision v1 (PIL) transforms, batch 64, N epochs of each interleaved; the median of
per-epoch-pair ratios is printed (the first pair is a warm-up and left out).

Make the corpus from real photographs with Pillow's default PNG settings (WebP: quality=80), e.g.
    python -c "import glob; from PIL import Image; [Image.open(p).convert('RGB').save(
        'corpus/png_like/' + p.split('/')[-1][:-4] + '.png')
        for p in sorted(glob.glob('corpus/imagenet_like/*.jpg'))]"
"""
import argparse
import glob
import io
import os
import statistics
import time

import numpy as np

import fastprep as fp

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--count", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ext", default="png", help="file extension of the photos (png or webp)")
    ap.add_argument("--loader-epochs", type=int, default=0)
    a = ap.parse_args()
    import torch
    from PIL import Image
    from torchvision import transforms as T

    torch.set_num_threads(1)
    paths = sorted(glob.glob(os.path.join(a.folder, "*." + a.ext)))[:a.count]
    datas = [open(p, "rb").read() for p in paths]
    t = fp.Compose([fp.RandomResizedCrop(224), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize(MEAN, STD)])
    out = np.empty((64, 3, 224, 224), np.float32)
    tv = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])

    def fastprep(threads):
        def run():
            for i in range(0, len(datas), 64):
                part = datas[i:i + 64]
                t.batch(part, seed=1, threads=threads, out=out[:len(part)], indices=range(i, i + len(part)))
        return run

    def via_pillow():
        for i in range(0, len(datas), 64):
            arrays = [np.asarray(Image.open(io.BytesIO(d)).convert("RGB")) for d in datas[i:i + 64]]
            t.batch(arrays, seed=1, threads=1, out=out[:len(arrays)], indices=range(i, i + len(arrays)))

    def torchvision_v1():
        for d in datas:
            tv(Image.open(io.BytesIO(d)).convert("RGB"))

    pipes = {"fastprep x1": fastprep(1), "fastprep x2": fastprep(2), "fastprep via Pillow (before)": via_pillow,
             "torchvision v1 (PIL)": torchvision_v1}
    for f in pipes.values():
        f()
    secs = {k: [] for k in pipes}
    for r in range(a.rounds):
        for k in (list(pipes) if r % 2 == 0 else list(pipes)[::-1]):
            t0 = time.perf_counter()
            pipes[k]()
            secs[k].append(time.perf_counter() - t0)
    base = secs["fastprep x1"]
    print(f"{len(datas)} {a.ext.upper()} photos from {a.folder}, train recipe, 224 px float32, {a.rounds} rounds")
    print("| pipeline | img/s (median) | speed relative to fastprep x1 (median of per-round ratios) |\n|---|---:|---:|")
    for k, v in secs.items():
        ratio = statistics.median(b1 / b2 for b1, b2 in zip(base, v))
        print(f"| {k} | {len(datas) / statistics.median(v):.0f} | {ratio:.2f}x |")
    if a.loader_epochs:
        loaders(paths, tv, a.loader_epochs)


class _Files:
    """Map-style dataset for DataLoader: (torchvision v1 tensor, 0) per file."""

    def __init__(self, paths, tv):
        self.paths, self.tv = paths, tv

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.tv(im.convert("RGB")), 0


def loaders(paths, tv, epochs):
    import torch

    t = fp.Compose([fp.RandomResizedCrop(224), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize(MEAN, STD)])
    ours = fp.Loader(paths, t, batch_size=64, threads=2, shuffle=True)
    theirs = torch.utils.data.DataLoader(_Files(paths, tv), batch_size=64, shuffle=True, num_workers=2,
                                         persistent_workers=True)
    rates = {"fp.Loader(threads=2)": [], "DataLoader(num_workers=2) + torchvision v1": []}
    for e in range(epochs + 1):
        for name, ld in ((("fp.Loader(threads=2)", ours), ("DataLoader(num_workers=2) + torchvision v1", theirs))
                         if e % 2 == 0 else (("DataLoader(num_workers=2) + torchvision v1", theirs),
                                             ("fp.Loader(threads=2)", ours))):
            t0 = time.perf_counter()
            n = sum(len(x) for x, _ in ld)
            rates[name].append(n / (time.perf_counter() - t0))
    a, b = (rates[k][1:] for k in rates)
    print(f"\nLoader, {len(paths)} files per epoch, batch 64, {epochs} epochs each (after one warm-up):")
    for k, v in rates.items():
        print(f"  {k}: {statistics.median(v[1:]):.0f} img/s")
    print(f"  fp.Loader / DataLoader: {statistics.median(x / y for x, y in zip(a, b)):.2f}x (median of per-epoch ratios)")


if __name__ == "__main__":
    main()
