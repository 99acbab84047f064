"""Writes the fuzz seed corpus: small JPEGs, PNGs and WebPs of every kind the decoders have a path for.

    python fuzz/make_seeds.py build/fuzz/seeds

Nothing binary is committed: the seeds are made here with Pillow (and cjpeg, from Debian's
libjpeg-turbo-progs, when installed: arithmetic coding, 4:4:0, 4:1:1). The native harness
(fuzz_decode.cc) picks its plan from an input's last byte, so each image is written a few times
with a different byte after its EOI (a JPEG decoder ignores what follows EOI; libpng ignores
what follows IEND, libwebp what follows the RIFF size). The PNGs Pillow cannot write (16-bit colour, Adam7) come from the tests'
hand-written PNG writer (tests/pngfile.py).
"""
import io
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image


def pattern(w, h, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 128 + 100 * np.sin(x / 5 + y / 7)], -1)
    img[: max(1, h // 3), : max(1, w // 4)] = (250, 20, 20)
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def save(im, **kw):
    b = io.BytesIO()
    kw.setdefault("quality", 75)
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def exif(o):
    e = Image.Exif()
    e[0x0112] = o
    return e.tobytes()


def seeds():
    p = pattern(40, 28)
    out = {
        "baseline_420": save(p),
        "baseline_422": save(p, subsampling=1),
        "baseline_444": save(p, subsampling=0),
        "progressive": save(p, progressive=True),
        "progressive_444": save(p, progressive=True, subsampling=0),
        "gray": save(p.convert("L")),
        "gray_progressive": save(p.convert("L"), progressive=True),
        "cmyk": save(p.convert("CMYK")),
        "restart_blocks": save(p, restart_marker_blocks=1),
        "restart_rows_progressive": save(p, progressive=True, restart_marker_rows=1),
        "optimized": save(p, optimize=True),
        "q100": save(pattern(16, 16), quality=100),
        "size_1x1": save(pattern(1, 1)),
        "size_17x9": save(pattern(17, 9)),
        "size_300x2": save(pattern(300, 2)),
        "size_2x300": save(pattern(2, 300)),
        "size_130x90": save(pattern(130, 90), quality=50),
    }
    for o in (2, 3, 5, 6, 7, 8):
        out[f"exif_{o}"] = save(pattern(24, 16), exif=exif(o))
    # Restart-indexed files (Note [Restart splicing]: every MCU row starts an interval), large
    # enough that a crop is cut out of them: every sampling, gray, CMYK, an EXIF orientation.
    big = pattern(130, 90, seed=1)
    out["rst_420_every_mcu"] = save(big, restart_marker_blocks=1)
    out["rst_420_every_3"] = save(pattern(96, 64), restart_marker_blocks=3)  # 6 MCUs a row
    out["rst_444_every_2"] = save(pattern(96, 40), subsampling=0, restart_marker_blocks=2)
    out["rst_422"] = save(big, subsampling=1, restart_marker_blocks=1)
    out["rst_gray"] = save(big.convert("L"), restart_marker_blocks=1)
    out["rst_cmyk"] = save(big.convert("CMYK"), restart_marker_blocks=1)
    out["rst_exif_6"] = save(big, restart_marker_blocks=1, exif=exif(6))
    out["rst_not_dividing"] = save(big, restart_marker_blocks=2)  # 9 MCUs a row: decoded the usual way
    cm = out["cmyk"]
    i = cm.index(b"\xff\xee")  # Adobe APP14: transform 2 = YCCK
    out["ycck"] = cm[:i + 15] + b"\x02" + cm[i + 16:]
    base = out["baseline_420"]
    out["truncated"] = base[: len(base) * 2 // 3]
    out["trailing"] = base + b"\0garbage after EOI"
    cjpeg = shutil.which("cjpeg")
    if cjpeg:
        ppm = io.BytesIO()
        p.save(ppm, "PPM")
        for name, args in {"arith": ["-arithmetic"], "arith_progressive": ["-arithmetic", "-progressive"],
                           "arith_restart": ["-arithmetic", "-restart", "1B"], "s440": ["-sample", "1x2"],
                           "s411": ["-sample", "4x1"], "s440_progressive": ["-sample", "1x2", "-progressive"]}.items():
            out[name] = subprocess.run([cjpeg, "-quality", "75", *args], input=ppm.getvalue(), capture_output=True,
                                       check=True).stdout
    out.update(png_seeds(p))
    return out


def png_seeds(p):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from pngfile import make_png

    def png(im, **kw):
        b = io.BytesIO()
        im.save(b, "PNG", **kw)
        return b.getvalue()

    small = p.resize((17, 11))
    rgb = np.asarray(small).astype(np.int64)
    out = {
        "png_rgb": png(small),
        "png_rgba": png(small.convert("RGBA")),
        "png_la": png(small.convert("LA")),
        "png_gray": png(small.convert("L")),
        "png_1bit": png(small.convert("1")),
        "png_palette_trns": png(small.convert("P", palette=Image.ADAPTIVE, colors=13), transparency=3),
        "png_gray16": png(Image.fromarray((np.asarray(small.convert("L")).astype(np.uint16) * 3))),
        "png_exif_6": png(small, exif=exif(6)),
        "png_rgb16_adam7": make_png(rgb * 257, 2, 16, interlace=True),
        "png_palette2_adam7": make_png(rgb[:, :, :1] % 4, 3, 2, palette=rgb.reshape(-1, 3)[:4], interlace=True),
        # every row filter, for the fast path's kernels (Pillow's encoder picks its own)
        "png_rgb_filters": make_png(rgb, 2, 8, filters=(0, 1, 2, 3, 4)),
        "png_la_filters": make_png(rgb[:, :, :2], 4, 8, filters=(4, 3, 2, 1, 0)),
    }
    out["png_truncated"] = out["png_rgb"][: len(out["png_rgb"]) * 2 // 3]

    def webp(im, **kw):
        b = io.BytesIO()
        im.save(b, "WEBP", **kw)
        return b.getvalue()

    from PIL import features
    if features.check("webp"):
        out["webp_lossy"] = webp(small, quality=80)
        out["webp_lossless"] = webp(small, lossless=True)
        out["webp_lossy_alpha"] = webp(small.convert("RGBA"), quality=60)
        out["webp_exif_6"] = webp(small, quality=80, exif=exif(6))
        out["webp_animated"] = webp(small, save_all=True, append_images=[small.rotate(90)], duration=40)
        out["webp_truncated"] = out["webp_lossy"][: len(out["webp_lossy"]) // 2]
    return out


def main(argv):
    dest = argv[1] if len(argv) > 1 else os.path.join("build", "fuzz", "seeds")
    os.makedirs(dest, exist_ok=True)
    n = 0
    for k, (name, data) in enumerate(sorted(seeds().items())):
        for j, sel in enumerate((k * 7) % 90 + d for d in (0, 31, 62)):  # spread over the plan table
            ext = name.split("_")[0] if name.startswith(("png", "webp")) else "jpg"
            with open(os.path.join(dest, f"{name}_{j}.{ext}"), "wb") as f:
                f.write(data + bytes([sel % 256]))
            n += 1
    print(f"{n} seeds in {dest}")


if __name__ == "__main__":
    main(sys.argv)
