"""Parity of each op against torchvision v2, measured: every op runs alone on fastprep's own
pre-op image (Resize 256 + CenterCrop 224 of each photo, uint8), its recorded draws are replayed
through torchvision v2's functional kernels (or its transform(), or its op application for the
policies) on that same image, and the uint8 outputs are compared: the largest difference in
levels, the share of values more than 1 level apart, and the mean difference. Each photo is run
as several samples (several draws). The docs' op table shows the result.

    python benchmarks/parity_ops.py corpus/detailed --count 24 --json benchmarks/results/parity_ops.json
    python benchmarks/parity_ops.py               # the built-in sample images
"""
import argparse
import glob
import json
import os
import time

import numpy as np

import fastprep as fp


def cases(torch, F2, tv2, InterpolationMode):
    """{op name: (its fastprep ops, replay(pre CHW uint8 tensor, params) -> CHW uint8 tensor)}."""
    BIL = InterpolationMode.BILINEAR

    def seq(key, fn):  # a sequence op: its value (None or False: not applied)
        def replay(x, p):
            v = p[key]
            return x if v is None or v is False else fn(x, v)
        return replay

    def jitter(x, p):
        j = p["jitter"]
        for i in j["order"]:
            name = ("brightness", "contrast", "saturation", "hue")[i]
            x = getattr(F2, f"adjust_{name}")(x, j[name])
        return x

    def policy(x, p):
        op = tv2.RandAugment()
        for name, mag in p["augment"]:
            x = op._apply_image_or_video_transform(x, name, float(mag), InterpolationMode.NEAREST, {})
        return x

    def augmix(x, p):
        ref, d = tv2.AugMix(), p["augmix"]
        batch = x[None]
        mix = torch.tensor(d["weights"][0], dtype=torch.float32) * batch
        for chain, w in zip(d["chains"], d["weights"][1:]):
            aug = batch
            for name, mag in chain:
                aug = ref._apply_image_or_video_transform(aug, name, mag, interpolation=BIL, fill=ref._fill)
            mix.add_(torch.tensor(w, dtype=torch.float32) * aug)
        return mix.to(torch.uint8)[0]

    def distort(x, p):
        d = p["photometric"]
        r = {f"{k}_factor": d[k] for k in ("brightness", "contrast", "saturation", "hue")}
        r["contrast_before"] = d["contrast_before"]
        r["channel_permutation"] = None if d["channel_permutation"] is None else torch.tensor(d["channel_permutation"])
        return tv2.RandomPhotometricDistort(p=0.5).transform(x, r)

    def random_crop(x, p):
        oy, ox = p["crop_offset"]
        return F2.pad(x, [16] * 4, padding_mode="reflect")[:, oy + 16:oy + 16 + 200, ox + 16:ox + 16 + 200]

    elastic = fp.ElasticTransform(50.0, 5.0)
    return {
        "RandomHorizontalFlip": ([fp.RandomHorizontalFlip()], lambda x, p: F2.horizontal_flip(x) if p["flip"] else x),
        "RandomVerticalFlip": ([fp.RandomVerticalFlip()], lambda x, p: F2.vertical_flip(x) if p["vflip"] else x),
        "Grayscale": ([fp.Grayscale(3, v2=True)], lambda x, p: F2.rgb_to_grayscale(x, 3)),
        "RandomGrayscale": ([fp.RandomGrayscale(0.5, v2=True)],
                            lambda x, p: F2.rgb_to_grayscale(x, 3) if p["gray"] else x),
        "ColorJitter": ([fp.ColorJitter(0.4, 0.4, 0.4, 0.1)], jitter),
        "RandomPhotometricDistort": ([fp.RandomPhotometricDistort()], distort),
        # the warps as torchvision's classes call them: fill=0 by default
        "RandomRotation": ([fp.RandomRotation(30, interpolation="bilinear")],
                           lambda x, p: F2.rotate(x, p["affine"][0], BIL, fill=[0.0]) if p["affine"] else x),
        "RandomAffine": ([fp.RandomAffine(15, (0.1, 0.1), (0.9, 1.1), (-10, 10, -5, 5), interpolation="bilinear")],
                         lambda x, p: F2.affine(x, p["affine"][0], p["affine"][1:3], p["affine"][3], p["affine"][4:6],
                                                BIL, fill=[0.0])),
        "RandomPerspective": ([fp.RandomPerspective(0.5, p=1.0)],
                              lambda x, p: F2.perspective(x, None, None, BIL, fill=[0.0], coefficients=p[
                                  "perspective"]["coefficients"])),
        "ElasticTransform": ([elastic], lambda x, p: F2.elastic(x, torch.from_numpy(elastic.displacement(p)), BIL, 0)),
        "RandomCrop": ([fp.RandomCrop(200, padding=16, padding_mode="reflect")], random_crop),
        "Pad": ([fp.Pad(8, fill=(10, 20, 30))], lambda x, p: F2.pad(x, [8], fill=[10, 20, 30])),
        "RandomZoomOut": ([fp.RandomZoomOut(fill=(5, 6, 7), p=1.0)],
                          lambda x, p: F2.pad(x, list(p["zoom_padding"]), fill=[5, 6, 7])),
        "RandomResize": ([fp.RandomResize(160, 300)], lambda x, p: F2.resize(x, list(p["resized"]), antialias=True)),
        "RandomShortestSize": ([fp.RandomShortestSize((160, 192, 256), max_size=300)],
                               lambda x, p: F2.resize(x, list(p["resized"]), antialias=True)),
        "FiveCrop": ([fp.FiveCrop(112)], lambda x, p: torch.stack(F2.five_crop(x, [112, 112]))),
        "TenCrop": ([fp.TenCrop(112)], lambda x, p: torch.stack(F2.ten_crop(x, [112, 112]))),
        "GaussianBlur": ([fp.GaussianBlur(23, (0.1, 2.0))],
                         seq("gaussian_blur", lambda x, v: F2.gaussian_blur(x, [23, 23], [v, v]))),
        "RandomSolarize": ([fp.RandomSolarize(128, p=0.5)], seq("solarize", lambda x, v: F2.solarize(x, 128.0))),
        "RandomPosterize": ([fp.RandomPosterize(3, p=0.5)], seq("posterize", lambda x, v: F2.posterize(x, 3))),
        "RandomEqualize": ([fp.RandomEqualize(p=0.5)], seq("equalize", lambda x, v: F2.equalize(x))),
        "RandomAutocontrast": ([fp.RandomAutocontrast(p=0.5)], seq("autocontrast", lambda x, v: F2.autocontrast(x))),
        "RandomInvert": ([fp.RandomInvert(p=0.5)], seq("invert", lambda x, v: F2.invert(x))),
        "RandomAdjustSharpness": ([fp.RandomAdjustSharpness(2.0, p=0.5)],
                                  seq("sharpness", lambda x, v: F2.adjust_sharpness(x, 2.0))),
        "RandomChannelPermutation": ([fp.RandomChannelPermutation()],
                                     seq("channel_permutation", lambda x, v: F2.permute_channels(x, list(v)))),
        "JPEG": ([fp.JPEG((50, 95))], lambda x, p: tv2.JPEG((50, 95)).transform(x, {"quality": p["jpeg_quality"]})),
        "RandAugment": ([fp.RandAugment()], policy),
        "TrivialAugmentWide": ([fp.TrivialAugmentWide()], policy),
        "AutoAugment": ([fp.AutoAugment()], policy),
        "AugMix": ([fp.AugMix()], augmix),
    }


def noise_case(torch, F2, pre, seed, draws):
    """GaussianNoise on the [0, 1] values: v2's gaussian_noise handed the recorded N(0, 1) values in
    place of randn_like; the difference in levels (x 255)."""
    op = fp.GaussianNoise(0.0, 0.1)
    t = fp.Compose([fp.ToTensor(multiply=True), op], dtype="float32")
    diffs = []
    real = torch.randn_like
    try:
        for i, x in enumerate(pre):
            for k in range(draws):
                o, p = t.batch([np.ascontiguousarray(x.permute(1, 2, 0).numpy())], seed=seed,
                               indices=[i * draws + k], return_params=True)
                n = torch.from_numpy(op.noise(p[0], tuple(x.shape)))
                torch.randn_like = lambda y, n=n: n.clone()
                want = F2.gaussian_noise(F2.to_dtype(x, torch.float32, scale=True), 0.0, 0.1)
                torch.randn_like = real
                diffs.append((torch.from_numpy(np.asarray(o[0])) - want).abs().numpy().ravel() * 255.0)
    finally:
        torch.randn_like = real
    return np.concatenate(diffs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", help="JPEGs (default: the built-in sample images)")
    ap.add_argument("--count", type=int, default=24, help="photos")
    ap.add_argument("--draws", type=int, default=4, help="samples (draws) per photo and op")
    ap.add_argument("--ops", help="comma-separated op names (default: all)")
    ap.add_argument("--json", help="write the rows, the machine and the versions here")
    args = ap.parse_args()
    import torch
    import torchvision.transforms.v2 as tv2
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F2

    torch.set_num_threads(1)
    if args.folder:
        paths = sorted(glob.glob(os.path.join(args.folder, "*.jpg")))[:args.count]
    else:
        from fastprep.data import sample_paths

        paths = sample_paths()[:args.count]
    geo = fp.Compose([fp.Resize(256), fp.CenterCrop(224)], dtype="uint8", layout="HWC")
    pre = [torch.from_numpy(np.ascontiguousarray(geo(p))).permute(2, 0, 1).contiguous() for p in paths]
    table = cases(torch, F2, tv2, InterpolationMode)
    names = args.ops.split(",") if args.ops else list(table) + ["GaussianNoise"]
    rows = {}
    print(f"{len(pre)} photos x {args.draws} draws; fastprep {fp.__version__}, torch {torch.__version__}")
    print("| op | max difference (levels) | share > 1 level | mean difference |")
    print("|---|---:|---:|---:|")
    for name in names:
        if name == "GaussianNoise":
            d = noise_case(torch, F2, pre, 7, args.draws)
        else:
            ops, replay = table[name]
            t = fp.Compose(ops, dtype="uint8", layout="CHW")
            diffs = []
            for i, x in enumerate(pre):
                img = np.ascontiguousarray(x.permute(1, 2, 0).numpy())
                for k in range(args.draws):
                    o, p = t.batch([img], seed=7, indices=[i * args.draws + k], return_params=True)
                    got = torch.from_numpy(np.asarray(o[0] if not isinstance(o, list) else o[0]))
                    want = replay(x, p[0])
                    diffs.append((got.int() - want.int()).abs().numpy().ravel())
            d = np.concatenate(diffs).astype(np.float64)
        rows[name] = {"max": float(d.max()), "share_over_1": float((d > 1).mean()), "mean": float(d.mean()),
                      "values": int(d.size)}
        r = rows[name]
        print(f"| {name} | {r['max']:.3g} | {r['share_over_1']:.2e} | {r['mean']:.4f} |")
    if args.json:
        from fastprep.bench import library_versions, machine_info

        cmd = "python benchmarks/parity_ops.py" + (f" {args.folder}" if args.folder else "") + \
            f" --count {args.count} --draws {args.draws}"
        with open(args.json, "w") as f:
            json.dump({"kind": "parity_ops", "rows": rows, "photos": len(pre), "draws": args.draws,
                       "folder": args.folder or "the built-in sample images", "date": time.strftime("%Y-%m-%d"),
                       "machine": machine_info(), "versions": library_versions(("torch", "torchvision")),
                       "command": cmd}, f, indent=1)


if __name__ == "__main__":
    main()
