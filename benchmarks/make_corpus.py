#!/usr/bin/env python3
"""Build a corpus of real-photograph JPEGs with ImageNet-like sizes.

The source photographs come from Debian wallpaper packages (only files known
to be photographs are used; the packages also ship vector art and renders,
which are skipped).  Every photograph is cut into random crops that are
downscaled (never upscaled) to ImageNet-like sizes -- mostly 500x375,
375x500, 500x333 and friends, a few up to about 800x600 -- and saved as
baseline JPEGs (quality 75..95, mostly 4:2:0 chroma subsampling).  Everything
is driven by a single seed, so a run is reproducible for a given Pillow /
libjpeg version.

Outputs (under --out):
  imagenet_like/NNNN_WxH.jpg   ImageNet-sized crops (--count of them)
  large/LNNN_WxH.jpg           >= 8 megapixel crops (--large of them)
  detailed/DNNNN_WxH.jpg       ImageNet-sized crops at the source's own resolution (no
                               downscaling) of the 10 most detailed photographs, the most detailed
                               of 8 candidate windows, re-encoded at quality 88..95 (--detailed of
                               them): about 0.4-0.5 bytes per pixel, near ImageNet's JPEGs (about
                               0.6), where the downscaled crops above have about 0.17 and make the
                               decode look cheap
  manifest.csv                 one row per output: source, package, license,
                               crop box, quality, subsampling

A small fixed test set (10 deliberately odd JPEGs plus SOURCES.md) can be
written with --testset DIR.

Examples:
  # fetch + extract the packages into wallpapers, then build the corpus
  python benchmarks/make_corpus.py --download --src wallpapers \\
      --out corpus --count 200 --large 8
  # the high-entropy corpus beside it (bytes per pixel printed per folder)
  python benchmarks/make_corpus.py --src wallpapers --out corpus --count 200 --detailed 200
  # the committed unit-test images
  python benchmarks/make_corpus.py --src wallpapers \\
      --testset tests/data/photos

Requires Pillow; --download also needs apt-get and dpkg-deb (Debian/Ubuntu).
"""

import argparse
import csv
import fnmatch
import glob
import io
import os
import random
import subprocess
import sys

from PIL import Image, ImageOps

Image.MAX_IMAGE_PIXELS = None  # sources are trusted and up to ~20 MP

PKG_PLASMA = "plasma-workspace-wallpapers"
PKG_MATE = "mate-backgrounds"
PKG_LOMIRI16 = "lomiri-wallpapers-16.04"
PKG_LOMIRI20 = "lomiri-wallpapers-20.04"
PACKAGES = [PKG_PLASMA, PKG_MATE, PKG_LOMIRI16, PKG_LOMIRI20]

# Files in the packages above that are real photographs (checked by eye).
# Renders / vector art / paintings (Volna, Elephants, umang, Fossa, ...) and
# the ambiguous texture analogpattern_by_Peter_Nerlich.jpg are left out.
_PLASMA_PHOTOS = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour",
                  "EveningGlow", "FallenLeaf", "Grey", "Kite", "OneStandsOut",
                  "Path", "summer_1am"]
_MATE_PHOTOS = ["Aqua", "Blinds", "Dune", "FreshFlower", "Garden",
                "GreenMeadow", "LadyBird", "RainDrops", "Storm", "TwoWings",
                "Wood", "YellowFlower"]
_LOMIRI16_PHOTOS = [
    "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly",
    "Picture_0B_by_freespace", "Picture_1A_by_freespace",
    "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
    "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
    "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi",
    "picosdeeuropa_by_Aitzol_Berasategi",
    "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi"]
_LOMIRI20_PHOTOS = ["Kleiber_by_Lukas_Baubkus"]

PHOTOS = (
    [(PKG_PLASMA, "usr/share/wallpapers/%s/contents/images/2560x1600.jpg" % n)
     for n in _PLASMA_PHOTOS]
    + [(PKG_MATE, "usr/share/backgrounds/mate/nature/%s.jpg" % n)
       for n in _MATE_PHOTOS]
    + [(PKG_LOMIRI16, "usr/share/backgrounds/%s.jpg" % n)
       for n in _LOMIRI16_PHOTOS]
    + [(PKG_LOMIRI20, "usr/share/backgrounds/%s.jpg" % n)
       for n in _LOMIRI20_PHOTOS]
)

# (width, height, weight): rough shape of the ImageNet validation set, where
# about 3/4 of the images have a 500-pixel long side.
IMAGENET_SIZES = [
    (500, 375, 34), (375, 500, 10), (500, 333, 14), (333, 500, 5),
    (500, 334, 3), (500, 500, 4), (500, 400, 3), (400, 500, 2),
    (500, 281, 2), (500, 357, 2), (500, 366, 2), (450, 338, 2),
    (640, 480, 5), (640, 427, 3), (480, 640, 1), (800, 600, 3),
    (600, 800, 1), (800, 533, 2), (768, 512, 2),
]
# Subsampling codes as understood by Pillow: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0.
SUBSAMPLING = [(2, 85), (0, 10), (1, 5)]
SUBSAMPLING_NAME = {0: "444", 1: "422", 2: "420"}
LARGE_MIN_PIXELS = 8000000
LARGE_SIZES = [(3840, 2160), (2160, 3840), (4096, 2304), (4000, 3000),
               (3000, 4000), (5120, 2880)]

# The committed test set: (source basename, width, height, mode, quality,
# subsampling, progressive).  Sizes are deliberately odd; all sources are
# CC0 / CC-BY / CC-BY-SA so the crops may be redistributed with attribution.
TESTSET = [
    ("seeding_by_Clements_Engelhardt", 500, 375, "RGB", 90, 2, False),
    ("friends_by_Aitzol_Berasategi", 375, 500, "RGB", 85, 2, False),
    ("Wine_by_Jakkub_Mede", 333, 500, "RGB", 80, 2, False),
    ("aitzgorri_by_Aitzol_Berasategi", 640, 427, "RGB", 75, 2, False),
    ("Picture_0B_by_freespace", 257, 193, "RGB", 92, 2, False),
    ("life_by_Aitzol_Berasategi", 199, 301, "RGB", 88, 2, False),
    ("sunset_by_Aitzol_Berasategi", 1023, 767, "RGB", 80, 2, False),
    ("picosdeeuropa_by_Aitzol_Berasategi", 500, 333, "L", 85, 2, False),
    ("Kleiber_by_Lukas_Baubkus", 417, 313, "RGB", 95, 0, False),
    ("Picture_1A_by_freespace", 500, 375, "RGB", 85, 2, True),
]
TESTSET_MAX_BYTES = 80 * 1024


def download(src):
    """apt-get download the packages and dpkg-deb -x them into src."""
    debs = os.path.join(src, "debs")
    os.makedirs(debs, exist_ok=True)
    subprocess.check_call(["apt-get", "download"] + PACKAGES, cwd=debs)
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        print("extracting", os.path.basename(deb))
        subprocess.check_call(["dpkg-deb", "-x", deb, src])


def parse_dep5(path):
    """Return [(patterns, copyright, license)] from a DEP-5 copyright file."""
    paras, cur, key = [], {}, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if cur:
                    paras.append(cur)
                cur, key = {}, None
            elif line[0] in " \t":
                if key:
                    cur[key] += "\n" + line.strip()
            elif ":" in line:
                key, val = line.split(":", 1)
                cur[key] = val.strip()
    if cur:
        paras.append(cur)
    out = []
    for p in paras:
        if "Files" in p:
            lic = p.get("License", "").split("\n")[0].strip()
            cr = " / ".join(s.strip() for s in p.get("Copyright", "").split("\n")
                            if s.strip())
            out.append((p["Files"].split(), cr, lic))
    return out


def license_for(dep5, relpath):
    """Last matching Files: paragraph wins (DEP-5 rule).

    Installed paths differ from upstream paths, so a pattern matches when it
    matches the trailing path components or (for a pattern with a concrete
    file name) the basename.
    """
    parts = relpath.split("/")
    found = ("?", "?")
    for patterns, cr, lic in dep5:
        for pat in patterns:
            k = pat.count("/") + 1
            tail = "/".join(parts[-k:])
            base = pat.rsplit("/", 1)[-1]
            if (pat == "*" or fnmatch.fnmatchcase(tail, pat)
                    or ("*" not in base and base == parts[-1])):
                found = (cr, lic)
    return found


def find_sources(src):
    """Locate the known photographs under src (one tree or one per package)."""
    sources, dep5 = [], {}
    for pkg, rel in PHOTOS:
        path = next((p for p in (os.path.join(src, rel),
                                 os.path.join(src, pkg, rel))
                     if os.path.isfile(p)), None)
        if path is None:
            print("warning: missing", pkg, rel, file=sys.stderr)
            continue
        if pkg not in dep5:
            cfile = next((p for p in (
                os.path.join(src, "usr/share/doc", pkg, "copyright"),
                os.path.join(src, pkg, "usr/share/doc", pkg, "copyright"))
                if os.path.isfile(p)), None)
            dep5[pkg] = parse_dep5(cfile) if cfile else []
        cr, lic = license_for(dep5[pkg], rel)
        name = os.path.basename(rel)
        if pkg == PKG_PLASMA:  # the file name is just the resolution there
            name = rel.split("/")[3] + "/" + name
        sources.append(dict(pkg=pkg, rel=rel, path=path, name=name,
                            copyright=cr, license=lic))
    return sources


def load(path):
    im = ImageOps.exif_transpose(Image.open(path))
    return im.convert("L" if im.mode in ("L", "LA", "I;16") else "RGB")


def weighted(rng, items):
    total = sum(w for *_, w in items)
    r = rng.uniform(0, total)
    for item in items:
        r -= item[-1]
        if r <= 0:
            return item
    return items[-1]


def random_crop(rng, im, w, h):
    """Random crop with aspect w:h and size >= (w, h); None if it can't fit."""
    sw, sh = im.size
    smax = min(sw / w, sh / h)
    if smax < 1:
        return None
    # Log-uniform scale biased towards big crops: ImageNet photos are whole
    # scenes downscaled from camera size, so tight (blurry, smooth) details
    # would make the corpus unrealistically easy to compress / decode.
    s = smax ** rng.uniform(0.4, 1.0) if smax > 1 else 1.0
    cw, ch = min(sw, round(w * s)), min(sh, round(h * s))
    x, y = rng.randint(0, sw - cw), rng.randint(0, sh - ch)
    box = (x, y, x + cw, y + ch)
    out = im.crop(box)
    if out.size != (w, h):
        out = out.resize((w, h), Image.LANCZOS, reducing_gap=3.0)
    return out, box


def save_jpeg(im, path, quality, subsampling, progressive=False):
    kw = dict(quality=quality, progressive=progressive)
    if im.mode != "L":
        kw["subsampling"] = subsampling
    im.save(path, "JPEG", **kw)


def detail(im):
    """Mean absolute difference between neighbouring pixels (gray): how much detail a crop has."""
    import numpy as np

    a = np.asarray(im.convert("L"), dtype=np.int16)
    return float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())


DETAILED_SOURCES = 10  # the most detailed photographs the detailed corpus is cut from


def make_detailed(sources, out, count, seed, sub):
    """ImageNet-sized windows cut at the source's own resolution (no resampling: the pixels keep
    all their detail) from the DETAILED_SOURCES most detailed photographs (ranked by the detail of
    their best windows), each window the most detailed of 8 random candidates, re-encoded at
    quality 88..95."""
    rows = []
    os.makedirs(os.path.join(out, sub), exist_ok=True)
    ranked = []
    for src in sources:
        im = load(src["path"])
        srng = random.Random("%d:rank:%s" % (seed, src["name"]))
        sw, sh = im.size
        scores = []
        for _ in range(16):
            x, y = srng.randint(0, max(0, sw - 500)), srng.randint(0, max(0, sh - 375))
            scores.append(detail(im.crop((x, y, min(sw, x + 500), min(sh, y + 375)))))
        im.close()
        ranked.append((sum(sorted(scores)[-4:]) / 4, src["name"], src))
    chosen = [t[2] for t in sorted(ranked, key=lambda t: (-t[0], t[1]))[:DETAILED_SOURCES]]
    plan = {}
    for n in range(count):
        plan.setdefault(n % len(chosen), []).append(n)
    for si, src in enumerate(chosen):
        im = load(src["path"])
        srng = random.Random("%d:detailed:%s" % (seed, src["name"]))
        sw, sh = im.size
        for n in plan.get(si, []):
            w, h, _w = weighted(srng, IMAGENET_SIZES)
            w, h = min(w, sw), min(h, sh)
            best = None
            for _ in range(8):
                x, y = srng.randint(0, sw - w), srng.randint(0, sh - h)
                crop = im.crop((x, y, x + w, y + h))
                score = detail(crop)
                if best is None or score > best[0]:
                    best = (score, crop, (x, y, x + w, y + h))
            _, crop, box = best
            q = srng.randint(88, 95)
            ss = weighted(srng, SUBSAMPLING)[0]
            fn = "D%04d_%dx%d.jpg" % (n, w, h)
            save_jpeg(crop, os.path.join(out, sub, fn), q, ss)
            rows.append(_row(sub, fn, src, box, crop, q, ss))
        im.close()
    return rows


def bytes_per_pixel(folder):
    """Mean bytes per pixel of the JPEGs in a folder (ImageNet's: about 0.6)."""
    total_b = total_px = 0
    for p in glob.glob(os.path.join(folder, "*.jpg")):
        with Image.open(p) as im:
            total_px += im.size[0] * im.size[1]
        total_b += os.path.getsize(p)
    return total_b / total_px if total_px else 0.0


def make_corpus(sources, out, count, nlarge, seed, sub_small, sub_large):
    rows = []
    small_dir = os.path.join(out, sub_small)
    os.makedirs(small_dir, exist_ok=True)
    # Spread the crops evenly over the sources (source order is fixed).
    plan = [i % len(sources) for i in range(count)]
    large_plan = []
    if nlarge:
        for i, s in enumerate(sources):
            with Image.open(s["path"]) as im:
                s["pixels"] = im.size[0] * im.size[1]
        big = [i for i, s in enumerate(sources)
               if s["pixels"] >= LARGE_MIN_PIXELS]
        if not big:
            print("warning: no source has >= 8 MP; no large crops",
                  file=sys.stderr)
        large_plan = [big[i % len(big)] for i in range(nlarge)] if big else []
        os.makedirs(os.path.join(out, sub_large), exist_ok=True)

    small_jobs = {}
    for n, si in enumerate(plan):
        small_jobs.setdefault(si, []).append(n)
    large_jobs = {}
    for n, si in enumerate(large_plan):
        large_jobs.setdefault(si, []).append(n)

    for si, src in enumerate(sources):
        if si not in small_jobs and si not in large_jobs:
            continue
        im = load(src["path"])
        # One RNG per source, derived from the seed, so results do not depend
        # on how many sources are present before this one.
        srng = random.Random("%d:%s" % (seed, src["name"]))
        for n in small_jobs.get(si, []):
            for _ in range(20):
                w, h, _w = weighted(srng, IMAGENET_SIZES)
                got = random_crop(srng, im, w, h)
                if got:
                    break
            else:
                continue
            crop, box = got
            q = srng.randint(75, 95)
            ss = weighted(srng, SUBSAMPLING)[0]
            fn = "%04d_%dx%d.jpg" % (n, w, h)
            save_jpeg(crop, os.path.join(small_dir, fn), q, ss)
            rows.append(_row(sub_small, fn, src, box, crop, q, ss))
        for n in large_jobs.get(si, []):
            fits = [(w, h) for w, h in LARGE_SIZES
                    if w <= im.size[0] and h <= im.size[1]]
            if fits:
                w, h = srng.choice(fits)
                crop, box = random_crop(srng, im, w, h)
            else:  # >= 8 MP but no listed size fits: keep the full frame
                crop, box = im, (0, 0) + im.size
                w, h = im.size
            q = srng.randint(85, 95)
            fn = "L%03d_%dx%d.jpg" % (n, w, h)
            save_jpeg(crop, os.path.join(out, sub_large, fn), q, 2)
            rows.append(_row(sub_large, fn, src, box, crop, q, 2))
        im.close()
    rows.sort(key=lambda r: r["file"])
    with open(os.path.join(out, "manifest.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["file"])
        wr.writeheader()
        wr.writerows(rows)
    return rows


def _row(sub, fn, src, box, crop, q, ss):
    return dict(file=sub + "/" + fn, width=crop.size[0], height=crop.size[1],
                mode=crop.mode, quality=q,
                subsampling="gray" if crop.mode == "L" else
                SUBSAMPLING_NAME[ss],
                source=src["name"], package=src["pkg"],
                license=src["license"], copyright=src["copyright"],
                crop_box="%d,%d,%d,%d" % box)


def make_testset(sources, out, seed):
    by_name = {os.path.splitext(os.path.basename(s["rel"]))[0]: s
               for s in sources}
    os.makedirs(out, exist_ok=True)
    lines = [
        "# Test photographs",
        "",
        "Crops of real photographs from Debian wallpaper packages, made by",
        "`benchmarks/make_corpus.py --testset` (seed %d): each one is a" % seed,
        "random crop of the source, downscaled (never upscaled) and re-encoded",
        "as JPEG, so every file is a modified version of the source.",
        "Licenses are as stated in the package's",
        "`/usr/share/doc/<package>/copyright` file (Debian bookworm).",
        "",
        "| file | size | encoding | source file | Debian package | "
        "copyright | license |",
        "|---|---|---|---|---|---|---|",
    ]
    total = 0
    for i, (name, w, h, mode, q, ss, prog) in enumerate(TESTSET):
        src = by_name.get(name)
        if src is None:
            sys.exit("testset source missing: " + name)
        im = load(src["path"])
        srng = random.Random("%d:test:%s" % (seed, name))
        crop, box = random_crop(srng, im, w, h)
        if mode == "L":
            crop = crop.convert("L")
        kind = ("gray" if mode == "L" else SUBSAMPLING_NAME[ss]) + (
            " progressive" if prog else " baseline")
        fn = "%02d_%dx%d_%s%s.jpg" % (
            i, w, h, "gray" if mode == "L" else SUBSAMPLING_NAME[ss],
            "_prog" if prog else "")
        # Lower the quality (not below 60) until the file is small enough.
        qq = q
        while True:
            buf = io.BytesIO()
            save_jpeg(crop, buf, qq, ss, prog)
            if buf.tell() <= TESTSET_MAX_BYTES or qq <= 60:
                break
            qq -= 5
        with open(os.path.join(out, fn), "wb") as f:
            f.write(buf.getvalue())
        total += buf.tell()
        lines.append("| %s | %dx%d | q%d %s | %s | %s | %s | %s |" % (
            fn, w, h, qq, kind, src["rel"].rsplit("/", 1)[-1], src["pkg"],
            src["copyright"], src["license"]))
        print("%-40s %6d bytes q%d (crop %s)" % (fn, buf.tell(), qq, box))
    lines += [
        "",
        "Source paths: `/usr/share/backgrounds/<source file>` in the packages",
        "listed (upstream: https://gitlab.com/ubports/development/core/"
        "lomiri-wallpapers).",
        "The full license texts are in that copyright file and at",
        "https://creativecommons.org/licenses/ . Files derived from CC-BY-SA",
        "sources remain under the same CC-BY-SA license.",
        ""]
    with open(os.path.join(out, "SOURCES.md"), "w") as f:
        f.write("\n".join(lines))
    print("total %d bytes" % total)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default="wallpapers",
                    help="tree the wallpaper .debs are extracted into")
    ap.add_argument("--download", action="store_true",
                    help="apt-get download + dpkg-deb -x the packages into "
                         "--src first")
    ap.add_argument("--out", help="output root (gets imagenet_like/, large/, "
                                  "manifest.csv)")
    ap.add_argument("--count", type=int, default=200,
                    help="number of ImageNet-sized crops (default 200)")
    ap.add_argument("--large", type=int, default=0, metavar="N",
                    help="also write N crops of >= 8 MP (no upscaling)")
    ap.add_argument("--detailed", type=int, default=0, metavar="N",
                    help="also write N ImageNet-sized crops at native resolution (high entropy, "
                         "about 0.4-0.6 bytes per pixel) into detailed/")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--small-subdir", default="imagenet_like")
    ap.add_argument("--large-subdir", default="large")
    ap.add_argument("--testset", metavar="DIR",
                    help="write the fixed 10-image test set and SOURCES.md "
                         "to DIR")
    args = ap.parse_args(argv)
    if not args.out and not args.testset:
        ap.error("give --out and/or --testset")

    if args.download:
        download(args.src)
    sources = find_sources(args.src)
    if not sources:
        sys.exit("no source photographs under %s (try --download)" % args.src)
    print("%d source photographs" % len(sources))
    if args.out:
        rows = make_corpus(sources, args.out, args.count, args.large,
                           args.seed, args.small_subdir, args.large_subdir)
        if args.detailed:
            rows += make_detailed(sources, args.out, args.detailed, args.seed, "detailed")
            rows.sort(key=lambda r: r["file"])
            with open(os.path.join(args.out, "manifest.csv"), "w", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=list(rows[0]))
                wr.writeheader()
                wr.writerows(rows)
        print("wrote %d files under %s" % (len(rows), args.out))
        for sub in (args.small_subdir, args.large_subdir, "detailed"):
            folder = os.path.join(args.out, sub)
            if os.path.isdir(folder):
                print("%s: %.3f bytes per pixel" % (sub, bytes_per_pixel(folder)))
    if args.testset:
        make_testset(sources, args.testset, args.seed)


if __name__ == "__main__":
    main()
