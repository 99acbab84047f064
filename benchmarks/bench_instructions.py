"""Instructions per image for each stage of the fused pass, against libjpeg-turbo's bare decode:
the noise-free opinion that goes beside the interleaved timings.

Each pipeline runs once under `valgrind --tool=callgrind` in its own process over the same
photos (one thread, batches of 64 into one reused float32 buffer), and once more with the same
imports and file reads but no pass (the empty run). Exclusive instruction counts are summed per
stage from callgrind_annotate's per-function table, the empty run's are subtracted, and the
result is divided by the number of photos:

    decode    libjpeg-turbo (entropy decoding, IDCT, upsampling, colour conversion)
    hpass     the horizontal resampling pass (hpass_row_*)
    vpass     the vertical resampling pass (vpass_row_*)
    output    the output stage (write_row*: table lookup, normalise, cast, layout)
    tables    per-image planning (build_axis_table, plan_sample)
    ops       the uint8 ops on the staged image (blur, the sequence's and the policies' ops,
              colour jitter, grayscale)
    splice    the restart splice (Note [Restart splicing]): the scan for RST markers, the copy of
              the intervals the crop reads (memchr, parse_restart_layout, splice_restart_region)
    other     everything else (the rest of fastprep, libc, Python's share of batch())

A pipeline "NAME@restart" runs NAME on the same photos rewritten by `fastprep optimize` (made
before profiling, outside the count); its decode row is against the original files' bare decode:

    python benchmarks/bench_instructions.py corpus/detailed --count 50 \
        --pipelines decode,train,train@restart,eval,eval@restart

A pipeline "train+NAME" is the train recipe with one op added before ToTensor (NAME of EXTRA
below; GaussianNoise between ToTensor and Normalize); the op's cost is its row minus train's:

    python benchmarks/bench_instructions.py corpus/detailed --count 50 \
        --pipelines train,train+blur,train+solarize --json benchmarks/results/instructions_ops.json

    python benchmarks/bench_instructions.py corpus/imagenet_like --count 100 \
        --md benchmarks/results/instructions_wallpapers.md --json benchmarks/results/instructions_wallpapers.json

Needs valgrind (apt-get install valgrind). ~1 minute per pipeline for 100 photos.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

# -fast: exact=False; -u8: uint8 HWC output, no ToTensor/Normalize (for normalising on the GPU)
PIPELINES = ("empty", "decode", "eval", "train", "eval-fast", "train-fast", "eval-u8", "train-u8")
STAGES = ("decode", "hpass", "vpass", "output", "tables", "ops", "splice", "other")
# The ops a "train+NAME" pipeline adds (issue 31's op table), built when the child runs.
EXTRA = {
    "blur": "fp.GaussianBlur(23, (0.1, 2.0))",
    "solarize": "fp.RandomSolarize(128, p=1.0)",
    "posterize": "fp.RandomPosterize(4, p=1.0)",
    "equalize": "fp.RandomEqualize(p=1.0)",
    "autocontrast": "fp.RandomAutocontrast(p=1.0)",
    "invert": "fp.RandomInvert(p=1.0)",
    "sharpness": "fp.RandomAdjustSharpness(2.0, p=1.0)",
    "channel_permutation": "fp.RandomChannelPermutation()",
    "jitter": "fp.ColorJitter(0.4, 0.4, 0.2, 0.1)",
    "apply_jitter": "fp.RandomApply([fp.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8)",
    "grayscale": "fp.RandomGrayscale(1.0)",
    "perspective": "fp.RandomPerspective(0.5, p=1.0)",
    "jpeg": "fp.JPEG((50, 95))",
    "exemplar": "fp.ExemplarJitter()",
    "photometric": "fp.RandomPhotometricDistort(p=1.0)",
    "augmix": "fp.AugMix()",
    "elastic": "fp.ElasticTransform(50.0, 5.0)",
    "noise": "fp.GaussianNoise(0.0, 0.1)",
    # timm's RandAugment as create_transform builds it for the ImageNet mean (Pillow's arithmetic)
    "timm_ra": "fp.TimmRandAugment('rand-m9-mstd0.5-inc1', {'img_mean': (124, 116, 104), 'interpolation': 'bilinear'})",
    # DeiT III's 3-Augment (timm's AutoAugment '3a') and timm's AugMix, as create_transform builds them
    "timm_3a": "fp.TimmAutoAugment([[('Solarize', 1.0, 5)], [('Desaturate', 1.0, 10)], [('GaussianBlurRand', 1.0, 10)]], "
               "{'img_mean': (124, 116, 104)})",
    "timm_augmix": "fp.TimmAugMix('augmix-m9-mstd0.5', {'img_mean': (124, 116, 104)})",
}
# EXTRA ops that work on the [0, 1] values: added between ToTensor and Normalize.
AFTER_TENSOR = {"noise"}


def child(pipeline, folder, count):
    import numpy as np

    import fastprep as fp
    from fastprep.bench import _run as _bench

    paths = sorted(glob.glob(os.path.join(folder, "*.jpg")))[:count]
    datas = [open(p, "rb").read() for p in paths]
    norm = [fp.ToTensor(), fp.Normalize("imagenet")]
    ops = {"eval": [fp.Resize(256), fp.CenterCrop(224)] + norm,
           "train": [fp.RandomResizedCrop(224), fp.RandomHorizontalFlip()] + norm}
    pipeline, at, _ = pipeline.partition("@")
    name, _, mode = pipeline.partition("-")
    base, plus, extra = name.partition("+")
    if plus:
        op = eval(EXTRA[extra], {"fp": fp})
        ops[name] = ops[base][:-len(norm)] + ([norm[0], op, norm[1]] if extra in AFTER_TENSOR else [op] + norm)
    if name in ops:
        if mode == "u8":
            t = fp.Compose(ops[name][:-len(norm)], dtype="uint8", layout="HWC")
        else:
            t = fp.Compose(ops[name], exact=mode != "fast")
        out = np.empty((64,) + t.output_shape(), t.np_dtype)
        for i in range(0, len(datas), 64):
            part = datas[i:i + 64]
            t.batch(part, seed=1, threads=1, out=out[:len(part)], indices=range(i, i + len(part)))
    elif pipeline == "decode":
        run, _ = _bench._ceiling(datas, 1)
        run()
    else:  # empty: the same imports and reads, no pass
        fp.Compose([fp.Resize(256), fp.CenterCrop(224)] + norm)
        _bench._ceiling_plan()


def stage_of(func, obj):
    if "libjpeg" in obj:
        return "decode"
    if "restart" in func or "splice" in func or "memchr" in func:
        return "splice"
    if "hpass" in func:  # hpass_row*, hpass_rows*, their kernels' templates
        return "hpass"
    if "vpass" in func:
        return "vpass"
    if any(k in func for k in ("write_row", "write_chw", "write_hwc", "write_u8", "fill_level0")):  # table or kernel
        return "output"
    if "build_axis_table" in func or "plan_sample" in func:
        return "tables"
    if any(k in func for k in ("blur", "aug_", "pix_op", "to_gray", "jitter", "sharpness", "equalize", "solarize",
                               "posterize", "autocontrast", "invert", "min_max", "apply_table", "snapshot", "warp",
                               "exemplar", "jpeg_roundtrip", "sample_px", "elastic", "normal_values",
                               "write_noised", "pil_", "affine_rows", "apply_timm", "bilinear_px", "bicubic_px",
                               "enhance_table")):
        return "ops"
    return "other"


LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.*?)(?:\s+\[(.*)\])?\s*$")


def restart_folder(folder, workdir):
    """The photos rewritten by fastprep optimize (the default restart interval), once."""
    import fastprep as fp

    out = os.path.join(workdir, "restart")
    if not os.path.isdir(out):
        fp.optimize(folder, out, progress=False)
    return out


def profile(pipeline, folder, count, workdir):
    if pipeline.endswith("@restart"):
        folder = restart_folder(folder, workdir)
    out = os.path.join(workdir, f"callgrind.{pipeline}")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    os.path.realpath(sys.executable), os.path.abspath(__file__), folder, "--child", pipeline,
                    "--count", str(count)], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    text = subprocess.run(["callgrind_annotate", "--threshold=100", out], check=True, capture_output=True,
                          text=True).stdout
    sums = dict.fromkeys(STAGES, 0)
    total = 0
    in_table = False
    for line in text.splitlines():
        if "file:function" in line:
            in_table = True
            continue
        m = LINE.match(line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = n
            continue
        if in_table:
            sums[stage_of(m.group(2), m.group(3) or "")] += n
    sums["total"] = total
    return sums


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--pipelines", default="decode,eval,train",
                    help="of " + ",".join(PIPELINES[1:]) + ", or train+NAME for NAME in " + ",".join(EXTRA))
    ap.add_argument("--json")
    ap.add_argument("--md")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.folder, a.count)
        return
    count = min(a.count, len(glob.glob(os.path.join(a.folder, "*.jpg"))))
    names = ["empty"] + [p for p in a.pipelines.split(",") if p != "empty"]
    with tempfile.TemporaryDirectory() as wd:
        raw = {p: profile(p, a.folder, count, wd) for p in names}
    per = {p: {k: (raw[p][k] - raw["empty"][k]) / count for k in STAGES + ("total",)} for p in names if p != "empty"}
    bare = per.get("decode", {}).get("total")
    rows = ["| pipeline | " + " | ".join(STAGES) + " | total | / bare decode |",
            "|---|" + "---:|" * (len(STAGES) + 2)]
    for p, v in per.items():
        cells = [f"{v[k] / 1e6:.2f}M" for k in STAGES + ("total",)]
        ratio = f"{v['total'] / bare:.2f}" if bare else "-"
        rows.append(f"| {p} | " + " | ".join(cells) + f" | {ratio} |")
    table = "\n".join(rows)
    head = (f"Instructions per image (callgrind, {count} photos of {a.folder}, one thread, float32 normalized "
            f"output; the empty run's counts subtracted).\n`python benchmarks/bench_instructions.py {a.folder} "
            f"--count {count}`\n\n")
    print(head + table)
    if a.md:
        with open(a.md, "w") as f:
            f.write(head + table + "\n")
    if a.json:
        with open(a.json, "w") as f:
            from fastprep.bench import library_versions

            json.dump({"count": count, "folder": a.folder, "date": time.strftime("%Y-%m-%d"),
                       "versions": library_versions(), "per_image": per, "raw": raw}, f, indent=1)


if __name__ == "__main__":
    main()
