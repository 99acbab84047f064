"""Parity figures on a corpus: max uint8 level difference against torchvision (v1 on PIL, and
v2 on tensors when installed) in exact mode, and min PSNR of fast mode against exact (eval, and
train with the colour ops: fast mode changes the resampling weights and the decode scale, the
colour arithmetic is the same).

    python benchmarks/parity_report.py corpus/imagenet_like [--large corpus/large]
"""
import argparse
import glob
import os

import numpy as np
from PIL import Image

import fastprep as fp


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def v1_eval(path, resize, crop):
    from torchvision import transforms as T

    with Image.open(path) as im:
        r = T.CenterCrop(crop)(T.Resize(resize)(im.convert("RGB")))
    return np.asarray(r)


def report(files, resize=256, crop=224, label=""):
    exact_eval = fp.Compose([fp.Resize(resize), fp.CenterCrop(crop)], exact=True, dtype="uint8", layout="HWC")
    fast_eval = fp.Compose([fp.Resize(resize), fp.CenterCrop(crop)], exact=False, dtype="uint8", layout="HWC")
    train = fp.Compose([fp.RandomResizedCrop(crop), fp.RandomHorizontalFlip()], exact=True, dtype="uint8",
                       layout="HWC")
    colour = [fp.RandomResizedCrop(crop), fp.RandomHorizontalFlip(), fp.ColorJitter(0.4, 0.4, 0.4, 0.1),
              fp.RandomHSV(), fp.RandomGrayscale()]
    exact_colour, fast_colour = (fp.Compose(colour, exact=e, dtype="uint8", layout="HWC") for e in (True, False))
    worst_eval = worst_train = worst_v2 = 0
    min_psnr = min_psnr_colour = float("inf")
    scaled = 0
    try:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg, read_file
        from torchvision.transforms.v2 import functional as F2
    except ImportError:
        torch = None
    from torchvision.transforms import functional as F1

    for i, f in enumerate(files):
        got = exact_eval(f)
        worst_eval = max(worst_eval, int(np.abs(got.astype(int) - v1_eval(f, resize, crop)).max()))
        if torch is not None:
            x = decode_jpeg(read_file(f), mode=ImageReadMode.RGB)
            h, w = x.shape[1:]
            r = F2.center_crop(F2.resize(x, [resize], antialias=True), [crop])
            worst_v2 = max(worst_v2, int(np.abs(got.astype(int) - r.permute(1, 2, 0).numpy()).max()))
        fast, prm = fast_eval.batch([f], return_params=True)
        scaled += prm[0]["decode_scale"] < 1
        min_psnr = min(min_psnr, psnr(fast[0], got))
        min_psnr_colour = min(min_psnr_colour, psnr(fast_colour.batch([f], seed=i)[0], exact_colour.batch([f], seed=i)[0]))
        tb, tp = train.batch([f], seed=i, return_params=True)
        top, left, h, w = tp[0]["box"]
        with Image.open(f) as im:
            ref = F1.resized_crop(im.convert("RGB"), top, left, h, w, [crop, crop])
        if tp[0]["flip"]:
            ref = F1.hflip(ref)
        worst_train = max(worst_train, int(np.abs(tb[0].astype(int) - np.asarray(ref)).max()))
    print(f"{label}{len(files)} files, Resize({resize}) CenterCrop({crop}):")
    print(f"  exact eval  vs torchvision v1 (PIL): max level diff {worst_eval}")
    if torch is not None:
        print(f"  exact eval  vs torchvision v2 (tensor): max level diff {worst_v2}")
    print(f"  exact train (replayed box+flip) vs v1 resized_crop: max level diff {worst_train}")
    print(f"  fast vs exact: min PSNR {min_psnr:.2f} dB (DCT-scaled decode used on {scaled} files)")
    print(f"  fast vs exact, train + ColorJitter + RandomHSV + RandomGrayscale: min PSNR {min_psnr_colour:.2f} dB")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("corpus")
    ap.add_argument("--large", help="folder of >= 8 MP photos (fast mode scales their decode)")
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.corpus, "**", "*.jp*g"), recursive=True))
    report(files)
    report(files, 64, 56, "small output: ")
    if a.large:
        report(sorted(glob.glob(os.path.join(a.large, "*.jp*g"))), label="large: ")


if __name__ == "__main__":
    main()
