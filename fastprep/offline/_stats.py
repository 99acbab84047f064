"""``fastprep stats``: per-channel mean/std (optionally per-pixel images and the RGB covariance
with its PCA) of a dataset, in one streaming pass over the native pool.

Numerics. The statistics are taken over the transform's uint8 output, so every value is an
integer level 0..255 and all the sums a mean, a variance or a covariance needs are integers:

* per batch, per pixel position: S1 = sum x, S2 = sum x*x and, for --pca, the cross products
  r*g, r*b, g*b, summed in uint32 by a native kernel without the GIL (csrc/kernels/moments.cpp, Note
  [Level moments]). Batches are at most 65,536 images, so no uint32 sum can overflow;
* these are added into int64 per-pixel totals (exact up to 1.4e14 images), and the channel totals
  are summed from them as Python integers (unbounded);
* the moments come from exact integer numerators, rounded once at the very end:
  mean = S1 / n, var = (n*S2 - S1**2) / n**2, cov = (n*Sxy - Sx*Sy) / n**2, where the
  Python int / int division is correctly rounded.

So there is no accumulation error at all, the result is the float64 nearest to the exact value
(better than Welford or pairwise summation, which only bound the error), and it does not depend
on the batch size, the thread count or the order of the files. Float data (``preprocess
--dtype float16|float32`` stats) go through :class:`FloatMoments`: a float64 mean and centered
sum of squares per batch, merged with Chan et al.'s parallel formula.
"""
import io
import math
import os
import sys

import numpy as np

from .. import _core
from .. import io as fio
from .._errors import DecodeError
from .._util import Progress, default_threads
from ..data import index_for_job
from ..io import StatsRecord
from . import _jobs

CHANNELS = ("R", "G", "B")
MAX_BATCH = 65536  # uint32 sums of squares stay exact: 65536 * 65025 < 2**32


class LevelMoments:
    """Exact moments of uint8 images given as (N, C, H, W) (or, with layout="HWC", (N, H, W, C))
    batches. The totals are kept per pixel position, so ``pixel_stats`` (the per-pixel mean and
    std images) is always available. The cross products (covariance) need CHW."""

    def __init__(self, channels=3, cross=False, layout="CHW"):
        self.c = int(channels)
        self.layout = layout.upper()
        self.cross = bool(cross) and self.c == 3
        if self.cross and self.layout != "CHW":
            raise ValueError("cross products need the CHW layout")
        self.images = 0
        self.shape = None
        self.s1 = self.s2 = self.sx = None  # int64 totals per (C, H, W) position; sx: (3, H, W) rg, rb, gb

    def add(self, batch, valid=None):
        """Adds (N, C, H, W) uint8 ``batch``. ``valid`` (N bools) marks the samples to count;
        samples not counted must be all zeros (they add nothing to the sums)."""
        batch = np.asarray(batch)
        axis = 1 if self.layout == "CHW" else 3
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[axis] != self.c:
            want = f"(N, {self.c}, H, W)" if axis == 1 else f"(N, H, W, {self.c})"
            raise ValueError(f"expected {want} uint8, got {batch.shape} {batch.dtype}")
        n = len(batch) if valid is None else int(np.count_nonzero(valid))
        if self.shape is None:
            self.shape = batch.shape[1:]
            self.s1 = np.zeros(self.shape, np.int64)
            self.s2 = np.zeros(self.shape, np.int64)
            if self.cross:
                self.sx = np.zeros((3,) + self.shape[1:], np.int64)
        elif batch.shape[1:] != self.shape:
            raise ValueError(f"image shape changed from {self.shape} to {batch.shape[1:]}")
        for b0 in range(0, len(batch), MAX_BATCH):
            self._add(batch[b0:b0 + MAX_BATCH])
        self.images += n

    def _add(self, batch):
        # One native call per batch, without the GIL (Note [Level moments] in csrc/kernels/moments.h):
        # uint32 partial sums per cache block of positions, added into the int64 totals.
        hw = self.shape[1] * self.shape[2] if self.cross else 0
        _core.level_moments(np.ascontiguousarray(batch), self.s1, self.s2, self.sx if self.cross else None, hw)

    def merge(self, other):
        if other.shape is None:
            return self
        if self.shape is None:
            self.shape = other.shape
            self.s1, self.s2 = other.s1.copy(), other.s2.copy()
            self.sx = other.sx.copy() if other.sx is not None else None
            self.cross = self.sx is not None
        else:
            self.s1 += other.s1
            self.s2 += other.s2
            if self.cross and other.sx is not None:
                self.sx += other.sx
        self.images += other.images
        return self

    @property
    def pixels(self):
        """Values per channel: images * H * W."""
        return 0 if self.shape is None else self.images * (int(np.prod(self.shape)) // self.c)

    def _per_channel(self, a):
        a = a.reshape(self.c, -1) if self.layout == "CHW" else a.reshape(-1, self.c).T
        if self.images * 65025 * a.shape[1] < 2 ** 62:  # the int64 sum cannot overflow
            return [int(v) for v in a.sum(1, dtype=np.int64)]
        return [int(v) for v in a.sum(1, dtype=object)]

    def channel_sums(self):
        """(n, [S1_c], [S2_c]) as Python ints."""
        if self.shape is None:
            return 0, [0] * self.c, [0] * self.c
        return self.pixels, self._per_channel(self.s1), self._per_channel(self.s2)

    def channel_stats(self):
        """mean, std (population) per channel in 0-255 levels, correctly rounded float64."""
        n, s1, s2 = self.channel_sums()
        if n == 0:
            return [math.nan] * self.c, [math.nan] * self.c
        mean = [a / n for a in s1]
        std = [math.sqrt((n * b - a * a) / (n * n)) for a, b in zip(s1, s2)]
        return mean, std

    def covariance(self):
        """3x3 RGB covariance (population) in 0-255 levels."""
        if not self.cross:
            raise ValueError("covariance needs cross=True")
        n, s1, s2 = self.channel_sums()
        if n == 0:
            return np.full((3, 3), math.nan)
        sx = [int(v) for v in self.sx.reshape(3, -1).sum(1, dtype=object)]
        cov = np.empty((3, 3))
        for i in range(3):
            cov[i, i] = (n * s2[i] - s1[i] * s1[i]) / (n * n)
        for j, (a, b) in enumerate(((0, 1), (0, 2), (1, 2))):
            cov[a, b] = cov[b, a] = (n * sx[j] - s1[a] * s1[b]) / (n * n)
        return cov

    def pixel_stats(self):
        """(mean, std) images, (C, H, W) float64, in 0-255 levels."""
        n = self.images
        if n == 0:
            return None, None
        mean = self.s1 / n
        if n < 11_000_000:  # n * S2 <= n**2 * 65025 < 2**63: exact in int64
            num = n * self.s2 - self.s1 * self.s1
        else:
            num = (n * self.s2.astype(object) - self.s1.astype(object) ** 2)
        var = np.asarray(num / (n * n), dtype=np.float64)
        return mean, np.sqrt(np.maximum(var, 0.0))

    def to_json(self):
        n, s1, s2 = self.channel_sums()
        return {"kind": "levels", "images": self.images, "pixels": n, "s1": s1, "s2": s2}


class FloatMoments:
    """Per-channel mean/variance of float (N, C, H, W) batches: float64 per batch, Chan merge."""

    def __init__(self, channels=3, layout="CHW"):
        self.c = int(channels)
        self.layout = layout.upper()
        self.images = 0
        self.n = 0
        self.mean = np.zeros(self.c)
        self.m2 = np.zeros(self.c)

    def add(self, batch, valid=None):
        batch = np.asarray(batch)
        if valid is not None and not np.all(valid):
            batch = batch[np.asarray(valid, bool)]
        if len(batch) == 0:
            return
        x = batch.reshape(len(batch), self.c, -1) if self.layout == "CHW" else batch.reshape(len(batch), -1, self.c)
        nb = x.size // self.c
        mean_b = np.empty(self.c)
        m2_b = np.empty(self.c)
        for ch in range(self.c):
            v = (x[:, ch] if self.layout == "CHW" else x[:, :, ch]).astype(np.float64)
            mean_b[ch] = v.mean()
            v -= mean_b[ch]
            m2_b[ch] = np.einsum("ij,ij->", v, v)
        self._merge(nb, mean_b, m2_b)
        self.images += len(batch)

    def _merge(self, nb, mean_b, m2_b):
        n = self.n + nb
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2_b + delta * delta * (self.n * nb / n)
        self.n = n

    def merge(self, other):
        if other.n:
            self._merge(other.n, other.mean, other.m2)
            self.images += other.images
        return self

    def channel_stats(self):
        if self.n == 0:
            return [math.nan] * self.c, [math.nan] * self.c
        return [float(v) for v in self.mean], [float(v) for v in np.sqrt(self.m2 / self.n)]

    def to_json(self):
        return {"kind": "float", "images": self.images, "pixels": self.n, "mean": self.mean.tolist(),
                "m2": self.m2.tolist()}


def moments_from_json(d):
    """Inverse of ``to_json``: channel moments that merge with others (exact ints for levels)."""
    if d["kind"] == "levels":
        return _FrozenLevels(d)
    m = FloatMoments(len(d["mean"]))
    m.images, m.n = d["images"], d["pixels"]
    m.mean, m.m2 = np.asarray(d["mean"], float), np.asarray(d["m2"], float)
    return m


class _FrozenLevels:
    """Channel sums of LevelMoments read back from JSON (exact ints), mergeable."""

    def __init__(self, d):
        self.images, self.n = int(d["images"]), int(d["pixels"])
        self.s1, self.s2 = [int(v) for v in d["s1"]], [int(v) for v in d["s2"]]
        self.c = len(self.s1)

    def merge(self, other):
        if isinstance(other, LevelMoments):
            n, s1, s2 = other.channel_sums()
            other = _FrozenLevels({"images": other.images, "pixels": n, "s1": s1, "s2": s2})
        self.images += other.images
        self.n += other.n
        self.s1 = [a + b for a, b in zip(self.s1, other.s1)]
        self.s2 = [a + b for a, b in zip(self.s2, other.s2)]
        return self

    def channel_stats(self):
        n = self.n
        if n == 0:
            return [math.nan] * self.c, [math.nan] * self.c
        return [a / n for a in self.s1], [math.sqrt((n * b - a * a) / (n * n)) for a, b in zip(self.s1, self.s2)]

    def to_json(self):
        return {"kind": "levels", "images": self.images, "pixels": self.n, "s1": self.s1, "s2": self.s2}


def empty_levels(channels=3):
    return _FrozenLevels({"images": 0, "pixels": 0, "s1": [0] * channels, "s2": [0] * channels})


def summarize(mean, std, scale):
    """Both scales from stats in ``scale`` ("255" for levels, "unit" for [0, 1] data)."""
    f = 255.0 if scale == "255" else 1.0
    unit_mean = [m / f for m in mean]
    unit_std = [s / f for s in std]
    return {"mean": unit_mean, "std": unit_std, "mean_255": [m * 255.0 / f for m in mean],
            "std_255": [s * 255.0 / f for s in std]}


def normalize_line(mean, std, digits=4):
    fmt = lambda v: ", ".join(f"{x:.{digits}f}" for x in v)  # noqa: E731
    return f"fp.Normalize(mean=[{fmt(mean)}], std=[{fmt(std)}])"


def pca_decompose(cov):
    """Eigen-decomposition of a covariance: eigenvalues descending, eigenvectors as columns, each
    with its largest-magnitude component positive (the sign is arbitrary otherwise)."""
    w, v = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    order = np.argsort(w)[::-1]
    w, v = w[order], v[:, order]
    for k in range(v.shape[1]):
        if v[np.argmax(np.abs(v[:, k])), k] < 0:
            v[:, k] = -v[:, k]
    return w, v


def compute_stats(source, transform="eval", size=224, per_pixel=False, pca=False, threads=None, batch_size=128,
                  on_error="raise", progress=None, interpolation="bilinear", exact=None, extensions=None,
                  apply_exif_orientation=False):
    """Streams ``source`` through the transform once and returns a dict of statistics (the JSON
    that ``fastprep stats --out`` writes) plus, under "per_pixel_arrays", the per-pixel images.
    ``apply_exif_orientation``: as Compose's (off by default: images as stored, as torchvision).

    ``on_error``: "raise" stops at the first undecodable file; "skip" leaves failed files out of
    the statistics; "zeros" counts them as black images (what a Loader with on_error="zeros"
    would feed the model). Failures are listed under "failed".
    """
    if on_error not in _jobs.POLICIES:
        raise ValueError(f"on_error must be one of {_jobs.POLICIES}, got {on_error!r}")
    ds = index_for_job(source, extensions=extensions, on_error=on_error)
    compose = stats_transform(transform, size, interpolation, _jobs.DecodeOptions(exact, bool(apply_exif_orientation)))
    threads = threads or default_threads()
    n = len(ds)
    bar = Progress(n, "stats", enabled=progress)
    try:
        acc, failed = accumulate(compose, ds.items, ds.names,
                                 _jobs.chunk_ranges(0, n, min(int(batch_size), MAX_BATCH)), threads, on_error,
                                 pca, bar=bar)
    finally:
        bar.close()
    return stats_result(source, ds, transform, size, compose, on_error, acc, failed, bar.elapsed, per_pixel, pca)


# compute_stats in three steps, so that fastprep/ray.py runs the middle one as Ray tasks (each on a
# range of the files) and merges their exact sums into the same result.

def stats_transform(transform, size, interpolation, decode):
    """The Compose whose uint8 CHW output the statistics are taken over (``decode``: an
    _jobs.DecodeOptions)."""
    return _jobs.build_transform(transform, size, "uint8", "CHW", fixed=True, interpolation=interpolation,
                                    decode=decode)


def accumulate(compose, items, names, ranges, threads, on_error, pca, base=0, bar=None):
    """(LevelMoments, failures) of the source positions in ``ranges``; ``items`` and ``names``
    hold the positions ``base`` on. Batches are capped at 65,536 images (exact uint32 sums)."""
    acc = LevelMoments(compose.channels, cross=pca)
    failed = []
    ranges = [r for a, b in ranges for r in _jobs.chunk_ranges(a, b, MAX_BATCH)]
    for a, b, arr, ok, fails in _jobs.iter_batches(compose, items, ranges, threads, on_error, names, base=base):
        acc.add(arr, None if on_error == "zeros" else ok)
        failed.extend(fails)
        if bar is not None:
            bar.update(b - a)
    return acc, failed


def stats_result(source, ds, transform, size, compose, on_error, acc, failed, seconds, per_pixel, pca):
    """The result dict of compute_stats from the merged moments (exact sums: the same numbers
    however the files were split)."""
    n = len(ds)
    mean, std = acc.channel_stats()
    res = {
        "source": os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<{n} items>",
        "images": acc.images,
        "pixels_per_channel": acc.pixels,
        "channels": list(CHANNELS[:compose.channels]),
        "transform": _jobs.transform_spec(transform, size, compose),
        "on_error": on_error,
        **summarize(mean, std, "255"),
        "std_definition": "population (ddof=0) over all pixels of all images",
        "seconds": round(seconds, 3),
        "images_per_second": round(n / seconds, 1) if seconds > 0 else None,
        "failed": failed,
    }
    res["normalize"] = normalize_line(res["mean"], res["std"])
    if pca and acc.images:
        cov = acc.covariance()
        w, v = pca_decompose(cov / (255.0 * 255.0))
        res["pca"] = {"cov": (cov / (255.0 * 255.0)).tolist(), "cov_255": cov.tolist(),
                      "eigenvalues": w.tolist(), "eigenvectors": v.tolist(),
                      "note": "[0, 1] scale; eigenvectors are the columns (eigenvectors[:, k] goes with "
                              "eigenvalues[k]), eigenvalues descending"}
    if per_pixel and acc.images:
        pm, ps = acc.pixel_stats()
        res["per_pixel_arrays"] = {"mean": pm / 255.0, "std": ps / 255.0}
    return res


def write_per_pixel(res, prefix):
    """Writes <prefix>_mean.npy / _std.npy ((C, H, W) float64 in [0, 1]) and, with Pillow,
    _mean.png / _std.png (the std image stretched so that its maximum is white)."""
    arrays = res.get("per_pixel_arrays")
    if not arrays:
        return {}
    files = {}
    for key in ("mean", "std"):
        p = f"{prefix}_{key}.npy"
        fio.atomic_write_bytes(p, lambda f, a=arrays[key]: f.write(fio.npy_bytes(a)))
        files[f"{key}_npy"] = p
    try:
        from PIL import Image
    except ImportError:
        files["png"] = "not written: Pillow is not installed (pip install Pillow)"
        return files
    mean_img = np.clip(np.rint(arrays["mean"] * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    std = arrays["std"]
    peak = float(std.max()) if std.size else 0.0
    std_img = np.clip(np.rint(std / peak * 255.0 if peak > 0 else std), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    for key, img in (("mean", mean_img), ("std", std_img)):
        p = f"{prefix}_{key}.png"
        mode = "RGB" if img.shape[2] == 3 else "L"
        data = io.BytesIO()  # encoded in memory: Pillow's direct-to-file encoder ignores failed writes
        Image.fromarray(img if mode == "RGB" else img[:, :, 0], mode).save(data, format="PNG")
        fio.atomic_write_bytes(p, lambda f, d=data: f.write(d.getbuffer()))
        files[f"{key}_png"] = p
    files["std_png_white"] = peak
    files["layout"] = "npy: (C, H, W) float64 in [0, 1]; png: 8-bit RGB"
    return files


def format_table(res):
    lines = []
    size = res["transform"]["output_size"]
    lines.append(f"{res['images']:,} images ({len(res['failed'])} failed), {size[0]}x{size[1]} "
                 f"({res['transform']['name']}: {' + '.join(_short(o) for o in res['transform']['ops'])}), "
                 f"{res['pixels_per_channel']:,} values per channel")
    lines.append(f"{'channel':<8}{'mean [0,1]':>12}{'std [0,1]':>12}{'mean 0-255':>13}{'std 0-255':>12}")
    for i, ch in enumerate(res["channels"]):
        lines.append(f"{ch:<8}{res['mean'][i]:>12.6f}{res['std'][i]:>12.6f}{res['mean_255'][i]:>13.4f}"
                     f"{res['std_255'][i]:>12.4f}")
    if "pca" in res:
        ev = res["pca"]["eigenvalues"]
        lines.append("PCA eigenvalues [0,1]: " + ", ".join(f"{v:.6f}" for v in ev))
        vec = np.asarray(res["pca"]["eigenvectors"])
        for r, ch in enumerate(res["channels"]):
            lines.append(f"  eigenvectors {ch}: " + "  ".join(f"{x:+.4f}" for x in vec[r]))
    lines.append("")
    lines.append(res["normalize"])
    return "\n".join(lines)


def _short(op_repr):
    """'Resize(size=256, interpolation=...)' -> 'Resize(256)'; 'CenterCrop(size=(224, 224))' -> 'CenterCrop(224)'."""
    import re

    name = op_repr.partition("(")[0]
    m = re.search(r"size=(\(\d+, \d+\)|\d+)", op_repr)
    if not m:
        return name
    size = m.group(1)
    hw = re.findall(r"\d+", size)
    if len(hw) == 2 and hw[0] == hw[1] and name == "CenterCrop":
        size = hw[0]
    return f"{name}({size})"


# ---------------------------------------------------------------------------------------------- CLI

def add_arguments(p):
    p.add_argument("src", help="ImageFolder directory, flat image directory, a path,label file list, or WebDataset "
                               "tar shards ('train-{000000..000127}.tar', a glob, a folder of .tar files)")
    p.add_argument("--transform", choices=_jobs.TRANSFORMS, default="eval",
                   help="eval: Resize(size/0.875) + CenterCrop(size) (default); resize: Resize((size, size))")
    p.add_argument("--size", type=int, default=224, help="output size (default 224)")
    p.add_argument("--interpolation", choices=("bilinear", "bicubic", "nearest"), default="bilinear")
    _jobs.add_exact_argument(p)
    _jobs.add_exif_argument(p)
    p.add_argument("--per-pixel", action="store_true", help="also write the mean and std images (.npy and .png)")
    p.add_argument("--pca", action="store_true", help="also compute the RGB covariance and its eigen-decomposition")
    p.add_argument("--out", help="write the results as JSON here (per-pixel files go next to it)")
    p.add_argument("--threads", type=int, default=None, help="native decode threads (default: all cores)")
    p.add_argument("--batch-size", type=int, default=128, help="images per native batch (default 128)")
    p.add_argument("--on-error", choices=_jobs.POLICIES, default="raise",
                   help="undecodable files: raise (default), skip (left out) or zeros (counted as black)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args):
    with fio.ignore_sigxfsz():  # a write past the file size limit fails (EFBIG) instead of killing
        return _main(args)


def _main(args):
    display = fio.display
    # The output folder is created (and checked writable) before the pass, not after it.
    out_dir = None
    if args.out:
        if os.path.isdir(args.out):
            sys.stderr.write(f"fastprep stats: --out {display(args.out)} is a folder: give a file name such as "
                             f"{display(os.path.join(args.out, 'stats.json'))}\n")
            return 2
        out_dir = os.path.dirname(os.path.abspath(args.out))
    elif args.per_pixel:
        out_dir = os.getcwd()
    if out_dir is not None:
        try:
            fio.check_writable_dir(out_dir, "output folder")
        except fio.WriteError as e:
            sys.stderr.write(f"fastprep stats: {e}\n")
            return 2
    try:
        res = compute_stats(args.src, args.transform, args.size, per_pixel=args.per_pixel, pca=args.pca,
                            threads=args.threads, batch_size=args.batch_size, on_error=args.on_error,
                            progress=False if args.quiet else None, interpolation=args.interpolation,
                            exact=args.exact, apply_exif_orientation=args.apply_exif_orientation)
    except DecodeError as e:
        sys.stderr.write(f"fastprep stats: {display(str(e))}\n(use --on-error skip to leave undecodable files out)\n")
        return 1
    except (ValueError, OSError) as e:  # the source cannot be indexed or read
        sys.stderr.write(f"fastprep stats: {display(str(e))}\n")
        return 1 if isinstance(e, OSError) else 2
    if res["images"] == 0:
        sys.stderr.write("fastprep stats: no image could be read\n")
        fio.print_failures(res["failed"])
        return 1
    # The table first: a write that fails below (disk full, ...) does not lose the numbers.
    print(format_table(res), flush=True)
    try:
        if args.per_pixel:
            prefix = os.path.splitext(args.out)[0] if args.out else "stats"
            res["per_pixel"] = write_per_pixel(res, prefix)
            pp = res["per_pixel"]
            print("per-pixel: " + ", ".join(display(str(pp[k])) for k in ("mean_npy", "std_npy", "mean_png",
                                                                          "std_png", "png") if k in pp))
        res.pop("per_pixel_arrays", None)
        if args.out:
            StatsRecord.from_result(res).write(args.out)
            print(f"wrote {display(args.out)}")
    except fio.WriteError as e:
        sys.stderr.write(f"fastprep stats: {e}\n(the statistics are printed above)\n")
        fio.print_failures(res["failed"])
        return 1
    fio.print_failures(res["failed"], where=args.out)
    return 0

