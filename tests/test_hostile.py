"""Every file a real dataset holds (issue #5): unusual but valid images decode as Pillow does, and
hostile ones raise fp.DecodeError naming the file and the reason, without crashing, hanging,
leaking or exhausting memory.

Every input is made here, from Pillow, numpy, byte surgery and (when the libjpeg-turbo-progs
package is installed) cjpeg, for what Pillow cannot write: arithmetic coding, 4:4:0 and 4:1:1.

Alpha: RGBA, LA and palette-with-transparency images have their alpha dropped (composited on
nothing), as torchvision's default loader does with ``convert("RGB")``. 16-bit images go
through Pillow's own conversion to RGB. The module-level case lists (JPEG_VARIANTS,
OTHER_FORMATS, BAD_INPUTS, plus the truncation cut points and mutations) are the count of
distinct hostile inputs covered.
"""
import gc
import io
import os
import re
import shutil
import struct
import subprocess
import threading
import time
import warnings
import zlib

import numpy as np
import pytest
from pngfile import make_png

import fastprep as fp

Image = pytest.importorskip("PIL.Image")
from PIL import ImageFile, ImageOps  # noqa: E402

FULL = fp.Compose([], exact=True)  # the whole image as stored, HWC uint8
FULL_EXIF = fp.Compose([], exact=True, apply_exif_orientation=True)  # ... shown with its EXIF orientation
SMALL = fp.Compose([fp.Resize(64), fp.CenterCrop(64)], exact=True, dtype="uint8", layout="HWC")
SMALL_FAST = fp.Compose([fp.Resize(64), fp.CenterCrop(64)], exact=False, dtype="uint8", layout="HWC")  # DCT scaling
def _working_cjpeg():
    """cjpeg's path when it is installed and runs (where the system's libjpeg is hidden, as in
    .ci/hidden.sh bare, it is installed but cannot start), else None."""
    path = shutil.which("cjpeg")
    if path is None:
        return None
    try:
        ok = subprocess.run([path, "-version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return path if ok else None


CJPEG = _working_cjpeg()
needs_cjpeg = pytest.mark.skipif(CJPEG is None, reason="cjpeg not installed or cannot run (apt-get install "
                                                       "libjpeg-turbo-progs)")


# ----------------------------------------------------------------------------------------------
# Makers


def pattern(w, h, seed=0):
    """Smooth gradients plus a few hard edges and mild noise: compresses like a photo, and every
    orientation of it is distinguishable."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 128 + 100 * np.sin(x / 7.0 + y / 11.0)
    img = np.stack([r, g, b], -1)
    img[: max(1, h // 3), : max(1, w // 4)] = (250, 20, 20)  # a block in one corner only
    img += rng.normal(0, 4, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def save(im, fmt="JPEG", **kw):
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def jpeg(w=97, h=61, seed=0, mode="RGB", **kw):
    im = pattern(w, h, seed)
    if mode != "RGB":
        im = im.convert(mode)
    kw.setdefault("quality", 90)
    return save(im, **kw)


def cjpeg(*args, w=97, h=61, gray=False):
    im = pattern(w, h)
    ppm = save(im.convert("L") if gray else im, "PPM")
    return subprocess.run([CJPEG, "-quality", "90", *args], input=ppm, capture_output=True, check=True).stdout


def with_orientation(o, w=40, h=24):
    exif = Image.Exif()
    exif[0x0112] = o
    return save(pattern(w, h), quality=92, exif=exif.tobytes())


def segments(data):
    """(marker, offset, length) of each marker segment up to SOS."""
    out, i = [], 2
    while i + 4 <= len(data):
        assert data[i] == 0xFF
        m = data[i + 1]
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        out.append((m, i, n))
        if m == 0xDA:
            break
        i += 2 + n
    return out


def find_marker(data, marker):
    for m, off, n in segments(data):
        if m == marker:
            return off
    raise AssertionError(f"marker {marker:#x} not found")


def sof_offset(data):
    for m, off, n in segments(data):
        if m in (0xC0, 0xC1, 0xC2, 0xC9, 0xCA):
            return off
    raise AssertionError("no SOF")


def patch_sof(data, *, marker=None, precision=None, h=None, w=None):
    b = bytearray(data)
    i = sof_offset(data)
    if marker is not None:
        b[i + 1] = marker
    if precision is not None:
        b[i + 4] = precision
    if h is not None:
        b[i + 5:i + 7] = struct.pack(">H", h)
    if w is not None:
        b[i + 7:i + 9] = struct.pack(">H", w)
    return bytes(b)


def scan_start(data):
    off = find_marker(data, 0xDA)
    return off + 2 + struct.unpack(">H", data[off + 2:off + 4])[0]


def strip_marker(data, marker):
    off = find_marker(data, marker)
    n = struct.unpack(">H", data[off + 2:off + 4])[0]
    return data[:off] + data[off + 2 + n:]


def set_adobe_transform(data, transform):
    off = find_marker(data, 0xEE)
    b = bytearray(data)
    assert bytes(b[off + 4:off + 9]) == b"Adobe"
    b[off + 4 + 11] = transform
    return bytes(b)


def png_raw(w, h, bit_depth, color_type, raw_rows):
    """A PNG written by hand (Pillow cannot write 48-bit RGB) from packed rows."""
    samples = {0: 1, 2: 3, 4: 2, 6: 4}[color_type] * (2 if bit_depth == 16 else 1)
    img = np.frombuffer(b"".join(raw_rows), np.uint8).reshape(h, w, samples)
    if bit_depth == 16:
        img = img.view(">u2")
    return make_png(img, color_type, bit_depth)


def png16_rgb(w=33, h=21):
    a = (np.asarray(pattern(w, h)).astype(np.uint16) * 257 + np.arange(w)[None, :, None]).astype(">u2")
    return png_raw(w, h, 16, 2, [a[y].tobytes() for y in range(h)])


def rgba_image(mode):
    im = pattern(45, 31)
    a = Image.fromarray((np.mgrid[0:31, 0:45][1] * 5 % 256).astype(np.uint8))
    if mode == "RGBA":
        im.putalpha(a)
        return im
    if mode == "LA":
        im = im.convert("L")
        im.putalpha(a)
        return im
    raise ValueError(mode)


def pil_reference(data, exif=False):
    """What torchvision's default loader sees: convert('RGB'), the EXIF orientation not applied
    (``exif``: applied, as ImageOps.exif_transpose)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray((ImageOps.exif_transpose(im) if exif else im).convert("RGB"))


def assert_close(a, b, tol=1):
    assert a.shape == b.shape, (a.shape, b.shape)
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert d.max() <= tol, f"max diff {d.max()} at {np.unravel_index(d.argmax(), d.shape)}"


# ----------------------------------------------------------------------------------------------
# Valid JPEG variants: decoded as Pillow does (within one level)

JPEG_VARIANTS = {
    "baseline_420": lambda: jpeg(subsampling=2),
    "baseline_422": lambda: jpeg(subsampling=1),
    "baseline_444": lambda: jpeg(subsampling=0),
    "quality_100_444": lambda: jpeg(quality=100, subsampling=0),
    "quality_5": lambda: jpeg(quality=5),
    "optimized_huffman": lambda: jpeg(optimize=True),
    "progressive_420": lambda: jpeg(progressive=True),
    "progressive_444": lambda: jpeg(progressive=True, subsampling=0),
    "progressive_gray": lambda: jpeg(progressive=True, mode="L"),
    "grayscale": lambda: jpeg(mode="L"),
    "cmyk_adobe": lambda: jpeg(mode="CMYK"),
    "cmyk_no_adobe_marker": lambda: strip_marker(jpeg(mode="CMYK"), 0xEE),
    "ycck": lambda: set_adobe_transform(jpeg(mode="CMYK"), 2),
    "restart_every_block": lambda: jpeg(restart_marker_blocks=1),
    "restart_every_row": lambda: jpeg(restart_marker_rows=1),
    "restart_progressive": lambda: jpeg(progressive=True, restart_marker_blocks=3),
    "no_jfif_app0": lambda: strip_marker(jpeg(), 0xE0),
    "comment_and_icc": lambda: save(pattern(97, 61), quality=90, comment=b"hello " * 50,
                                    icc_profile=b"\0" * 3000),
    "trailing_garbage": lambda: jpeg() + os.urandom(0) + bytes(range(256)) * 8,
    "trailing_zeros": lambda: jpeg() + b"\0" * 4096,
    "trailing_second_jpeg": lambda: jpeg() + jpeg(seed=1, w=20, h=20),
    "trailing_text": lambda: jpeg() + b"<html>404 not found</html>\n",
    "size_1x1": lambda: jpeg(1, 1),
    "size_1x1_gray": lambda: jpeg(1, 1, mode="L"),
    "size_2x2": lambda: jpeg(2, 2),
    "size_17x9_partial_mcu": lambda: jpeg(17, 9),
    "size_4000x3": lambda: jpeg(4000, 3),
    "size_3x4000": lambda: jpeg(3, 4000),
    "size_4000x3_progressive": lambda: jpeg(4000, 3, progressive=True),
    "size_3x4000_444": lambda: jpeg(3, 4000, subsampling=0),
    "size_1x300": lambda: jpeg(1, 300),
    "size_1023x767": lambda: jpeg(1023, 767, quality=75),
    "exif_orientation_bad_value_9": lambda: with_orientation(9),
    "exif_truncated_segment": lambda: save(pattern(40, 24), exif=b"Exif\0\0MM\0*\0\0\0\x08\0\x05\x01\x12"),
    "exif_garbage": lambda: save(pattern(40, 24), exif=b"Exif\0\0" + bytes(range(200))),
}
JPEG_VARIANTS.update({f"exif_orientation_{o}": (lambda o=o: with_orientation(o)) for o in range(1, 9)})
JPEG_VARIANTS.update({f"exif_orientation_{o}_progressive_odd":
                      (lambda o=o: save(pattern(37, 23), quality=90, progressive=True,
                                        exif=_exif(o))) for o in (3, 6, 8)})
CJPEG_VARIANTS = {
    "arithmetic": ("-arithmetic",),
    "arithmetic_progressive": ("-arithmetic", "-progressive"),
    "arithmetic_restart": ("-arithmetic", "-restart", "1"),
    "subsampling_440": ("-sample", "1x2"),
    "subsampling_411": ("-sample", "4x1"),
    "subsampling_440_progressive": ("-sample", "1x2", "-progressive"),
    "restart_cjpeg_1_row": ("-restart", "1"),
    "restart_cjpeg_1_block": ("-restart", "1B"),
    "cjpeg_smooth_dct_float": ("-dct", "float", "-smooth", "20"),
}


def _exif(o):
    e = Image.Exif()
    e[0x0112] = o
    return e.tobytes()


def variant_bytes(name):
    if name in CJPEG_VARIANTS:
        if CJPEG is None:
            pytest.skip("cjpeg not installed or cannot run (apt-get install libjpeg-turbo-progs)")
        return cjpeg(*CJPEG_VARIANTS[name])
    return JPEG_VARIANTS[name]()


ALL_VARIANTS = sorted(JPEG_VARIANTS) + sorted(CJPEG_VARIANTS)


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_jpeg_variant_matches_pillow(name):
    data = variant_bytes(name)
    ref = pil_reference(data)
    full = FULL(data)
    assert full.dtype == np.uint8 and full.shape == ref.shape
    assert_close(full, ref)
    # The fused resize path (region decode, skipped rows, cropped columns, oriented images) sees
    # the same pixels as Pillow's decode: compare with fastprep on Pillow's decoded array.
    assert_close(SMALL(data), SMALL(np.ascontiguousarray(ref)))
    fast = SMALL_FAST(data)  # DCT-domain downscaling: close, not exact
    assert fast.shape == (64, 64, 3)
    assert np.abs(fast.astype(np.int16) - SMALL(data).astype(np.int16)).mean() < 12
    # With the EXIF orientation applied, as ImageOps.exif_transpose (the region decode of a
    # turned image: the stored rectangle a crop shows, turned afterwards).
    ref = pil_reference(data, exif=True)
    assert_close(FULL_EXIF(data), ref)
    small_exif = SMALL.with_options(apply_exif_orientation=True)
    assert_close(small_exif(data), SMALL(np.ascontiguousarray(ref)))


def test_exif_orientations_differ_and_transpose():
    """Each orientation gives the displayed image: rotating the stored pixels back recovers the
    orientation-1 image (guards against an orientation table that matches Pillow by accident)."""
    base = FULL(with_orientation(1))
    assert base.shape == (24, 40, 3)
    small_exif = SMALL.with_options(apply_exif_orientation=True)
    undo = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, 1),
            7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1], 8: lambda a: np.rot90(a, -1)}
    for o in range(2, 9):
        assert np.array_equal(FULL(with_orientation(o)), base), o  # by default, as stored (torchvision)
        out = FULL_EXIF(with_orientation(o))
        assert out.shape == ((40, 24, 3) if o >= 5 else (24, 40, 3))
        assert np.array_equal(undo[o](out), base), o
        _, params = small_exif.batch([with_orientation(o)], return_params=True)
        assert params[0]["orientation"] == o and params[0]["source_size"] == out.shape[:2]
        _, params = SMALL.batch([with_orientation(o)], return_params=True)
        assert params[0]["orientation"] == 1 and params[0]["source_size"] == (24, 40)


def test_ycck_and_cmyk_decode_to_different_colors():
    cmyk = jpeg(mode="CMYK")
    ycck = set_adobe_transform(cmyk, 2)
    assert not np.array_equal(FULL(cmyk), FULL(ycck))


def test_jpeg_named_png_and_no_extension(tmp_path):
    data = jpeg()
    for name in ["photo.png", "photo", "photo.JPG.gif"]:
        p = tmp_path / name
        p.write_bytes(data)
        assert np.array_equal(FULL(str(p)), FULL(data))


# ----------------------------------------------------------------------------------------------
# Other formats, recognized by content whatever the name says

def _gif_animated():
    frames = [pattern(30, 20, s).convert("P") for s in range(3)]
    return save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _tiff_multipage():
    ims = [pattern(30, 20, s) for s in range(2)]
    return save(ims[0], "TIFF", save_all=True, append_images=ims[1:])


def _palette_transparent():
    im = pattern(40, 30).convert("P", palette=Image.ADAPTIVE, colors=16)
    return save(im, "PNG", transparency=0)


def _png_orientation_6():
    return save(pattern(40, 24), "PNG", exif=_exif(6))


def _png16_gray():
    a = (np.arange(30 * 20, dtype=np.uint32).reshape(20, 30) * 97 % 65536).astype(">u2")
    return png_raw(30, 20, 16, 0, [a[y].tobytes() for y in range(20)])


OTHER_FORMATS = {
    "png_rgb": lambda: save(pattern(45, 31), "PNG"),
    "png_rgba": lambda: save(rgba_image("RGBA"), "PNG"),
    "png_la": lambda: save(rgba_image("LA"), "PNG"),
    "png_gray": lambda: save(pattern(45, 31).convert("L"), "PNG"),
    "png_1bit": lambda: save(pattern(45, 31).convert("1"), "PNG"),
    "png_palette": lambda: save(pattern(45, 31).convert("P", palette=Image.ADAPTIVE), "PNG"),
    "png_palette_transparent": _palette_transparent,
    "png_16bit_rgb": png16_rgb,
    "png_16bit_gray": _png16_gray,
    "png_interlaced_exif_6": _png_orientation_6,
    "png_1x1": lambda: save(pattern(1, 1), "PNG"),
    "webp_lossy": lambda: save(pattern(45, 31), "WEBP", quality=80),
    "webp_lossless_rgba": lambda: save(rgba_image("RGBA"), "WEBP", lossless=True),
    "bmp_rgb": lambda: save(pattern(45, 31), "BMP"),
    "bmp_palette": lambda: save(pattern(45, 31).convert("P"), "BMP"),
    "gif": lambda: save(pattern(45, 31).convert("P"), "GIF"),
    "gif_animated_first_frame": _gif_animated,
    "tiff_rgb": lambda: save(pattern(45, 31), "TIFF"),
    "tiff_lzw": lambda: save(pattern(45, 31), "TIFF", compression="tiff_lzw"),
    "tiff_cmyk": lambda: save(pattern(45, 31).convert("CMYK"), "TIFF"),
    "tiff_multipage": _tiff_multipage,
    "tiff_big_endian": lambda: _tiff_big_endian(),
    "ppm_unsniffed": lambda: save(pattern(45, 31), "PPM"),
}


def _tiff_big_endian():
    data = save(pattern(20, 10).convert("L"), "TIFF")
    # Re-encode through a raw big-endian writer: Pillow writes little-endian only.
    im = Image.open(io.BytesIO(data))
    a = np.asarray(im)
    h, w = a.shape
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 3, 1, h), (279, 4, 1, w * h)]
    ifd = struct.pack(">H", len(entries))
    for tag, typ, cnt, val in entries:
        ifd += struct.pack(">HHI", tag, typ, cnt) + (struct.pack(">HH", val, 0) if typ == 3 else struct.pack(">I", val))
    return b"MM\0*" + struct.pack(">I", 8) + ifd + b"\0\0\0\0" + a.tobytes()


@pytest.mark.parametrize("name", sorted(OTHER_FORMATS))
def test_other_formats_by_magic_named_jpg(name, tmp_path):
    from PIL import features

    need = {"webp": "webp", "tiff": "libtiff"}.get(name.split("_")[0])
    if need and not features.check(need):
        pytest.skip(f"this Pillow has no {need}")
    data = OTHER_FORMATS[name]()
    p = tmp_path / "image.jpg"  # the name lies
    p.write_bytes(data)
    ref = pil_reference(data)
    for item in (str(p), data):
        out = FULL(item)
        assert out.shape == ref.shape and out.dtype == np.uint8
        assert np.array_equal(out, ref), name  # the fallback is Pillow itself
    assert_close(SMALL(str(p)), SMALL(np.ascontiguousarray(ref)), tol=0)


def test_alpha_is_dropped_not_composited():
    im = rgba_image("RGBA")
    out = FULL(save(im, "PNG"))
    assert np.array_equal(out, np.asarray(im)[:, :, :3])


def test_16bit_png_follows_pillow_conversion():
    data = png16_rgb()
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode in ("RGB", "I;16", "I", "RGB;16B")  # Pillow reads 48-bit PNG as 8-bit RGB
    assert np.array_equal(FULL(data), pil_reference(data))


# ----------------------------------------------------------------------------------------------
# Hostile inputs: DecodeError naming the source and the reason, fast, never a crash

def _huge(h, w):
    return patch_sof(jpeg(), h=h, w=w)


def _header_only():
    d = jpeg()
    return d[:find_marker(d, 0xDA)]


def _tables_only():
    d = jpeg()
    return d[:find_marker(d, 0xC0)] + b"\xff\xd9"


def _bad_huffman():
    d = bytearray(jpeg())
    s = scan_start(d) + 40
    d[s:s + 16] = b"\xff\x00" * 8  # 64 one bits: no Huffman code is all ones
    return bytes(d)


def _bad_huffman_progressive():
    d = bytearray(jpeg(progressive=True))
    s = scan_start(d) + 10
    d[s:s + 16] = b"\xff\x00" * 8
    return bytes(d)


def _spurious_marker():
    d = bytearray(jpeg(w=200, h=120))
    s = scan_start(d) + 200
    d[s:s + 2] = b"\xff\xd5"  # an RST marker in a scan without restart interval
    return bytes(d)


def _scan_cut_then_eoi():
    d = jpeg(w=200, h=120)
    return d[:scan_start(d) + 100] + b"\xff\xd9"


def _wrong_rst_sequence():
    d = bytearray(jpeg(w=200, h=120, restart_marker_blocks=2))
    s = scan_start(d)
    i = d.index(b"\xff\xd0", s)
    d[i + 1] = 0xD4  # RST0 where RST0 is due -> RST4: out of sequence
    return bytes(d)


def _sof_marker(marker, precision=8):
    return lambda: patch_sof(jpeg(), marker=marker, precision=precision)


def _bmp_huge_header():
    return b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 30000, 30000, 1, 24, 0, 0,
                                                                      0, 0, 0, 0)


def _png_huge_header():
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _png_bad_crc():
    d = bytearray(save(pattern(20, 20), "PNG"))
    d[29] ^= 0xFF  # inside IHDR's CRC
    return bytes(d)


# name -> (maker, expected exception class)
BAD_INPUTS = {
    "zero_bytes": (lambda: b"", fp.DecodeError),
    "one_byte": (lambda: b"\xff", fp.DecodeError),
    "random_garbage": (lambda: np.random.default_rng(5).bytes(1000), fp.DecodeError),
    "random_garbage_jpeg_magic": (lambda: b"\xff\xd8\xff" + np.random.default_rng(6).bytes(1000), fp.DecodeError),
    "text": (lambda: b"The quick brown fox jumps over the lazy dog.\n" * 20, fp.DecodeError),
    "html_error_page": (lambda: b"<!DOCTYPE html><html><body>403 Forbidden</body></html>", fp.DecodeError),
    "soi_only": (lambda: b"\xff\xd8", fp.DecodeError),
    "soi_ff": (lambda: b"\xff\xd8\xff", fp.DecodeError),
    "soi_eoi": (lambda: b"\xff\xd8\xff\xd9", fp.DecodeError),
    "header_only": (_header_only, fp.DecodeError),
    "tables_only": (_tables_only, fp.DecodeError),
    "sos_no_data": (lambda: jpeg()[:scan_start(jpeg())], fp.DecodeError),
    "bad_huffman_code": (_bad_huffman, fp.DecodeError),
    "bad_huffman_code_progressive": (_bad_huffman_progressive, fp.DecodeError),
    "spurious_rst_marker": (_spurious_marker, fp.DecodeError),
    "scan_cut_then_eoi": (_scan_cut_then_eoi, fp.DecodeError),
    "rst_out_of_sequence": (_wrong_rst_sequence, fp.DecodeError),
    "precision_12_sof1": (_sof_marker(0xC1, 12), fp.UnsupportedImageError),
    "precision_12_sof0": (_sof_marker(0xC0, 12), fp.UnsupportedImageError),
    "precision_16_sof1": (_sof_marker(0xC1, 16), fp.UnsupportedImageError),
    "lossless_sof3": (_sof_marker(0xC3), fp.UnsupportedImageError),
    "hierarchical_sof5": (_sof_marker(0xC5), fp.UnsupportedImageError),
    "lossless_arith_sofb": (_sof_marker(0xCB), fp.UnsupportedImageError),
    "height_zero_dnl": (lambda: patch_sof(jpeg(), h=0), fp.DecodeError),
    "width_zero": (lambda: patch_sof(jpeg(), w=0), fp.DecodeError),
    "header_65500x65500": (lambda: _huge(65500, 65500), fp.ImageTooLargeError),
    "header_20000x20000": (lambda: _huge(20000, 20000), fp.ImageTooLargeError),
    "header_65535x2731": (lambda: _huge(2731, 65535), fp.ImageTooLargeError),
    "png_truncated": (lambda: save(pattern(45, 31), "PNG")[:200], fp.DecodeError),
    "png_signature_only": (lambda: b"\x89PNG\r\n\x1a\n", fp.DecodeError),
    "png_bad_crc": (_png_bad_crc, fp.DecodeError),
    "png_header_100000x100000": (_png_huge_header, fp.ImageTooLargeError),
    "bmp_header_30000x30000": (_bmp_huge_header, fp.ImageTooLargeError),
    "gif_header_only": (lambda: b"GIF89a\x10\x00\x10\x00", fp.DecodeError),
    "webp_riff_only": (lambda: b"RIFF\x10\x00\x00\x00WEBPVP8 ", fp.DecodeError),
    "webp_truncated": (lambda: save(pattern(45, 31), "WEBP")[:60], fp.DecodeError),
    "tiff_header_only": (lambda: b"II*\x00\x08\x00\x00\x00", fp.DecodeError),
    "tiff_truncated": (lambda: save(pattern(45, 31), "TIFF")[:300], fp.DecodeError),
    "bmp_truncated": (lambda: save(pattern(45, 31), "BMP")[:100], fp.DecodeError),
    "gif_truncated": (lambda: save(pattern(45, 31).convert("P"), "GIF")[:100], fp.DecodeError),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_raises_naming_file(name, tmp_path):
    make, exc = BAD_INPUTS[name]
    data = make()
    p = tmp_path / f"{name}.jpg"
    p.write_bytes(data)
    for t in (SMALL, FULL):
        t0 = time.perf_counter()
        with pytest.raises(exc) as ei:
            t.batch([str(p)])
        assert time.perf_counter() - t0 < 1.0, "a bad file must fail fast"
        e = ei.value
        assert e.source == str(p) and str(p) in str(e)
        assert e.reason and len(e.reason) > 3 and e.reason in str(e)
        assert "BytesIO" not in e.reason  # the reason speaks of the file, not of an internal object
    with pytest.raises(exc) as ei:  # bytes: the source is the item's position
        SMALL.batch([jpeg(), data])
    assert ei.value.index == 1 and "<item 1>" in str(ei.value) and "sample 1" in str(ei.value)


def test_huge_header_without_limit_does_not_crash():
    data = _huge(65500, 65500)
    t = fp.Compose([fp.Resize(64), fp.CenterCrop(64)], max_pixels=0)
    t0 = time.perf_counter()
    with pytest.raises(fp.DecodeError):  # the data ends long before 65500 rows
        t.batch([data])
    assert time.perf_counter() - t0 < 5.0


def test_max_pixels_is_a_header_check():
    data = jpeg(100, 100)
    with pytest.raises(fp.ImageTooLargeError, match="max_pixels"):
        fp.Compose([], max_pixels=9999).batch([data])
    assert fp.Compose([], max_pixels=10000)(data).shape == (100, 100, 3)
    with pytest.raises(fp.ImageTooLargeError):
        fp.Compose([], max_pixels=9999).batch([save(pattern(100, 100), "PNG")])


def test_image_dependent_output_is_bounded_by_max_pixels():
    """Fuzzer finding: Resize(int) alone on an extreme aspect ratio makes an enormous output from
    a tiny file (1x65500 -> 256x16768000, 51 GB as float32). The output is held to max_pixels."""
    data = jpeg(3, 40000, quality=50)
    t0 = time.perf_counter()
    with pytest.raises(fp.ImageTooLargeError, match="output would be"):
        fp.Compose([fp.Resize(256)], max_pixels=50_000_000).batch([data])
    with pytest.raises(fp.ImageTooLargeError, match="output would be"):
        fp.Compose([fp.Resize(256), fp.ToTensor()])(data)
    assert time.perf_counter() - t0 < 1.0
    assert fp.Compose([fp.Resize(256)], max_pixels=0)(jpeg(3, 300)).shape == (25600, 256, 3)
    # With a crop the output is the crop: no limit needed, and none applied.
    assert SMALL(data).shape == (64, 64, 3)


def _tall_gray_png(h):
    """A 1 x h gray PNG of a few kilobytes: the rows compress to almost nothing."""
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(b"\x00\x80" * 4096) for _ in range(h // 4096)) + comp.flush()
    assert h % 4096 == 0

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 1, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_resampler_intermediate_is_bounded_by_max_pixels():
    """Fuzzer finding: the horizontal pass keeps every source row the vertical pass reads, at the
    output's width. Widening a tall image makes that far larger than the image: 1x1048576 pixels
    (a 2 KB PNG) resized to (5, 4000) would need 4.2e9 pixels (17 GB). It is held to max_pixels."""
    data = _tall_gray_png(1 << 20)
    assert len(data) < 4096
    t0 = time.perf_counter()
    with pytest.raises(fp.ImageTooLargeError, match=r"1048576 source rows at the output width of 4000"):
        fp.Compose([fp.Resize((5, 4000))])(data)
    with pytest.raises(fp.ImageTooLargeError, match="intermediate pixels, over the limit of 1048576"):
        fp.Compose([fp.Resize((5, 70))], max_pixels=1_048_576).batch([data])
    assert time.perf_counter() - t0 < 2.0
    # Within the limit, the same image resizes (the gray 0x80 rows are uniform).
    out = fp.Compose([fp.Resize((5, 70))])(data)
    assert out.shape == (5, 70, 3) and (out == 0x80).all()
    # JPEG rows too, and max_pixels=0 lifts the limit.
    tall = jpeg(2, 5000, quality=50)
    with pytest.raises(fp.ImageTooLargeError, match="5000 source rows at the output width of 300"):
        fp.Compose([fp.Resize((4, 300))], max_pixels=1_000_000).batch([tall])
    assert fp.Compose([fp.Resize((4, 300))], max_pixels=0)(tall).shape == (4, 300, 3)


def test_missing_file_and_directory_raise_read_error(tmp_path):
    for p in [tmp_path / "nope.jpg", tmp_path]:
        with pytest.raises(fp.DecodeError) as ei:
            SMALL.batch([str(p)])
        assert str(p) in str(ei.value)


def _cut_points(n):
    return sorted(set(list(range(0, n, 50)) + [n - k for k in (1, 2, 3, 4, 5, 8, 13, 21, 34) if n - k > 0]))


TRUNCATION_SOURCES = {
    "baseline": lambda: jpeg(),
    "progressive": lambda: jpeg(progressive=True),
    "restart": lambda: jpeg(restart_marker_blocks=2),
    "gray": lambda: jpeg(mode="L"),
    "cmyk": lambda: jpeg(mode="CMYK"),
    "exif_6": lambda: with_orientation(6),
}


@pytest.mark.parametrize("kind", sorted(TRUNCATION_SOURCES))
def test_truncated_everywhere_raises(kind):
    data = TRUNCATION_SOURCES[kind]()
    cuts = _cut_points(len(data))
    assert len(cuts) >= 10
    for cut in cuts:
        with pytest.raises(fp.DecodeError) as ei:
            FULL.batch([data[:cut]])
        assert ei.value.reason, cut
    # The same, in one batch with on_error="zeros": every slot fails, nothing crashes.
    pieces = [data[:c] for c in cuts]
    out, params = SMALL.batch(pieces, on_error="zeros", return_params=True)
    assert not out.any() and all("error" in p for p in params)


@pytest.mark.parametrize("kind", ["baseline", "progressive", "restart", "gray"])
def test_allow_truncated_fills_gray_as_pillow(kind):
    data = TRUNCATION_SOURCES[kind]()
    t = fp.Compose([], exact=True, allow_truncated=True)
    s = scan_start(data)
    for cut in [s, s + 1, (s + len(data)) // 2, len(data) - 2]:
        piece = data[:cut]
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            out = t.batch([piece])[0]
        assert any("truncated" in str(w.message) for w in rec)
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            ref = pil_reference(piece)
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = False
        if kind == "progressive":
            # Missing AC scans are smoothed from the DC ones, and libjpeg-turbo's smoothing
            # changed between versions (Pillow bundles its own): close, not within one level.
            assert np.abs(out.astype(int) - ref).mean() < 1.0
        else:
            assert_close(out, ref)
        missing = (ref == 128).all(axis=(1, 2))  # rows Pillow filled gray
        assert (out[missing] == 128).all()
        if cut == s:  # no entropy data: all but the first block rows are gray
            assert missing[-8:].all()


def test_allow_truncated_keeps_other_errors_and_warns_naming_file(tmp_path):
    t = fp.Compose([fp.Resize(32), fp.CenterCrop(32)], allow_truncated=True)
    for name in ["header_only", "bad_huffman_code", "zero_bytes", "spurious_rst_marker"]:
        with pytest.raises(fp.DecodeError):
            t.batch([BAD_INPUTS[name][0]()])
    good = jpeg()
    p = tmp_path / "cut.jpg"
    p.write_bytes(good[:len(good) * 2 // 3])
    with pytest.warns(UserWarning, match=str(p)):
        t.batch([str(p)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.batch([good])  # an intact file: no warning
    with pytest.raises(fp.DecodeError, match="Premature end"):
        fp.Compose([fp.Resize(32), fp.CenterCrop(32)]).batch([str(p)])
    # strict=False tolerates the decoder's corrupt-data warnings, and says so naming the file
    lenient = fp.Compose([fp.Resize(32), fp.CenterCrop(32)], strict=False)
    with pytest.warns(UserWarning, match=re.escape(str(p)) + ".*strict=False"):
        lenient.batch([str(p)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lenient.batch([good])


def _mutations(seed, n):
    """Seeded random byte surgery on small JPEGs of several kinds: every result either decodes
    or raises DecodeError."""
    rng = np.random.default_rng(seed)
    sources = [jpeg(w=48, h=40), jpeg(w=48, h=40, progressive=True), jpeg(w=40, h=48, mode="L"),
               jpeg(w=33, h=17, mode="CMYK"), with_orientation(5, 33, 17), jpeg(w=40, h=40, restart_marker_blocks=1)]
    if CJPEG:
        sources.append(cjpeg("-arithmetic", w=40, h=30))
        sources.append(cjpeg("-arithmetic", "-progressive", w=40, h=30))
    out = []
    for _ in range(n):
        d = bytearray(sources[int(rng.integers(len(sources)))])
        for _ in range(int(rng.integers(1, 5))):
            op = int(rng.integers(4))
            i = int(rng.integers(2, len(d)))
            if op == 0:
                d[i] = int(rng.integers(256))
            elif op == 1:
                d[i] ^= 1 << int(rng.integers(8))
            elif op == 2:
                del d[i:i + int(rng.integers(1, 64))]
            else:
                d[i:i] = rng.bytes(int(rng.integers(1, 32)))
        out.append(bytes(d))
    return out


MUTATION_COUNT = 600


def test_random_mutations_never_crash():
    items = _mutations(7, MUTATION_COUNT)
    for t in (FULL, SMALL, SMALL_FAST):
        for d in items if t is FULL else []:
            try:
                t.batch([d])
            except fp.DecodeError as e:
                assert e.reason
        if t is not FULL:
            out, params = t.batch(items, on_error="zeros", return_params=True, threads=2)
            assert out.shape == (len(items), 64, 64, 3)
            for o, p in zip(out, params):
                if "error" in p:
                    assert not o.any()


# ----------------------------------------------------------------------------------------------
# Batches: on_error policies

def _mixed(tmp_path):
    goods = [jpeg(seed=1), jpeg(seed=2, progressive=True), save(pattern(70, 50, 3), "PNG")]
    bad_path = tmp_path / "broken.jpg"
    bad_path.write_bytes(jpeg()[:300])
    items = [goods[0], str(bad_path), goods[1], b"not an image", goods[2], _huge(65500, 65500)]
    return items, goods, [0, 2, 4], str(bad_path)


TRAIN = [fp.RandomResizedCrop(48), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize("imagenet")]


def test_on_error_raise_names_index_and_file(tmp_path):
    items, goods, good_idx, bad = _mixed(tmp_path)
    with pytest.raises(fp.DecodeError) as ei:
        SMALL.batch(items)
    e = ei.value
    assert e.index == 1 and e.source == bad and bad in str(e) and "(sample 1)" in str(e)
    with pytest.raises(fp.DecodeError) as ei:
        SMALL.batch(items[2:])
    assert ei.value.index == 1 and "<item 1>" in str(ei.value)
    with pytest.raises(fp.ImageTooLargeError) as ei:
        SMALL.batch([items[0], items[5]])
    assert ei.value.index == 1


@pytest.mark.parametrize("ops", ["small", "train"])
def test_on_error_skip_keeps_good_in_order(tmp_path, ops):
    items, goods, good_idx, _ = _mixed(tmp_path)
    t = SMALL if ops == "small" else fp.Compose(TRAIN)
    out, params = t.batch(items, seed=4, on_error="skip", return_params=True)
    assert len(out) == len(goods) == len(params)
    alone = t.batch(goods, seed=4, indices=good_idx)  # the random stream is keyed by index
    assert np.array_equal(out, alone)
    if ops == "small":
        assert np.array_equal(out, t.batch(goods))
    assert all("error" not in p for p in params)


def test_on_error_zeros_fills_bad_slots_only(tmp_path):
    items, goods, good_idx, bad = _mixed(tmp_path)
    t = fp.Compose(TRAIN, on_error="zeros")  # the Compose's default policy
    out, params = t.batch(items, seed=9, return_params=True)
    assert out.shape[0] == len(items)
    alone = t.batch(goods, seed=9, indices=good_idx)
    for j, i in enumerate(good_idx):
        assert np.array_equal(out[i], alone[j]) and "error" not in params[i]
    for i in (1, 3, 5):
        assert not out[i].any() and params[i]["error"]
    assert bad in params[1]["error"]
    # A caller's buffer, pre-filled: the bad slot is zeroed, not left stale.
    buf = np.full(out.shape, 7, dtype=out.dtype)
    t.batch(items, seed=9, out=buf)
    assert np.array_equal(buf, out)


# ----------------------------------------------------------------------------------------------
# Leaks and threads

def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _tasks():
    return len(os.listdir("/proc/self/task"))


@pytest.mark.slow
def test_10000_failures_leak_nothing():
    good = jpeg()
    bad = [b"", b"\xff\xd8\xff", good[:400], good[:len(good) - 3], _bad_huffman(), _huge(65500, 65500),
           patch_sof(good, marker=0xC3), b"\x89PNG\r\n\x1a\n" + b"\0" * 50, np.random.default_rng(1).bytes(300),
           jpeg(progressive=True)[:500]]
    batch = (bad * 10)[:100]
    t = fp.Compose([fp.Resize(64), fp.CenterCrop(64)], dtype="uint8")
    # Warm up: worker threads, scratch buffers, the allocator's per-thread arenas and Pillow's
    # caches. RSS climbs by ~18 MB over the first ~12,000 failures, then stays flat.
    for k in range(150):
        try:
            t.batch(batch, on_error=("zeros", "skip", "raise")[k % 3], threads=2)
        except fp.DecodeError:
            pass
    gc.collect()
    threads0, tasks0, rss0 = threading.active_count(), _tasks(), _rss()
    n = 0
    for k in range(100):
        policy = ("zeros", "skip", "raise")[k % 3]
        try:
            out = t.batch(batch, on_error=policy, threads=2)
            assert policy != "raise" and (len(out) == 0 if policy == "skip" else not out.any())
        except fp.DecodeError:
            assert policy == "raise"
        n += len(batch)
    gc.collect()
    assert n == 10000
    assert threading.active_count() == threads0 and _tasks() == tasks0
    grew = _rss() - rss0
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # ASan's quarantine holds freed memory
        assert grew < 10 * 2 ** 20, f"RSS grew {grew / 2 ** 20:.1f} MiB over 10,000 failing decodes"


def test_compose_objects_release_their_threads():
    gc.collect()
    tasks0 = _tasks()
    for k in range(20):
        t = fp.Compose([fp.Resize(32), fp.CenterCrop(32)])
        t.batch([jpeg(), b"junk"], on_error="zeros", threads=3)
        del t
    gc.collect()
    assert _tasks() == tasks0


def test_threads_calling_batch_on_shared_compose():
    items = [jpeg(seed=s, progressive=bool(s % 2)) for s in range(6)] + [
        save(pattern(50, 40, 9), "PNG"), with_orientation(6), b"junk", jpeg()[:500], jpeg(mode="CMYK")]
    t = fp.Compose(TRAIN, on_error="zeros")
    seeds = list(range(12))
    expect = {s: t.batch(items, seed=s, threads=1 + s % 3) for s in seeds}
    got, errors = {}, []

    def work(my_seeds):
        try:
            for _ in range(3):
                for s in my_seeds:
                    r = t.batch(items, seed=s, threads=1 + s % 3)
                    if s in got and not np.array_equal(got[s], r):
                        errors.append(f"seed {s} differs between runs")
                    got[s] = r
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    ths = [threading.Thread(target=work, args=(seeds[i::4],)) for i in range(4)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)
    assert not errors, errors
    for s in seeds:
        assert np.array_equal(got[s], expect[s]), s


# ----------------------------------------------------------------------------------------------
# Decoder reuse: one worker's decoder goes through every way an image can fail

def _reuse_items():
    """Bad JPEGs, each failing at a different point of the decode, interleaved with good ones of
    every kind (baseline, progressive, EXIF-oriented, CMYK). Returns items and the good indices."""
    oriented = with_orientation(6, w=90, h=70)
    items = [
        jpeg(w=200, h=120)[:600],              # truncated: fails reading rows
        patch_sof(jpeg(), h=0),                # corrupt header: fails in the header read
        jpeg(seed=1),
        _bad_huffman(),                        # corrupt mid-scan: fails reading rows
        jpeg(seed=2, progressive=True),
        _bad_huffman_progressive(),            # progressive: fails in start (all scans are read)
        oriented,
        oriented[:len(oriented) // 2],         # oriented, truncated: fails in the whole decode
        _huge(65500, 65500),                   # header over max_pixels: fails after the header
        _sof_marker(0xC3)(),                   # lossless: unsupported, fails in the header read
        jpeg(seed=3, mode="CMYK"),
        jpeg(seed=1),
    ]
    return items, [2, 4, 6, 10, 11]


@pytest.mark.parametrize("exact", [True, False])
def test_decoder_reusable_after_each_failure(exact):
    # threads=1: one worker, one decoder for every sample in order. Each failure must leave it
    # reusable: the good images decode byte for byte as they do in a batch of their own.
    ops = [fp.Resize(64), fp.CenterCrop(64)] if exact else [fp.RandomResizedCrop(40), fp.RandomHorizontalFlip()]
    t = fp.Compose(ops, exact=exact, dtype="uint8", layout="HWC", on_error="zeros")
    items, good_idx = _reuse_items()
    out, params = t.batch(items, seed=5, threads=1, return_params=True)
    alone = t.batch([items[i] for i in good_idx], seed=5, threads=1, indices=good_idx)
    for j, i in enumerate(good_idx):
        assert "error" not in params[i], (i, params[i])
        assert np.array_equal(out[i], alone[j]), i
    for i in sorted(set(range(len(items))) - set(good_idx)):
        assert params[i].get("error") and not out[i].any(), i
    # Again, with every bad item right before each good one, and the reverse order.
    for order in (list(range(len(items))), list(reversed(range(len(items))))):
        again = t.batch([items[i] for i in order], seed=5, threads=1, indices=order)
        for k, i in enumerate(order):
            if i in good_idx:
                assert np.array_equal(again[k], out[i]), i


def test_pillow_formats_decode_on_several_threads(monkeypatch, tmp_path):
    """Files without a native decoder are decoded by Pillow on the engine's threads at once
    (never one at a time on the calling thread), with the same result as one thread."""
    import threading
    import time

    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        p = tmp_path / f"im{i}.bmp"
        Image.fromarray(rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    t = fp.Compose([fp.Resize((8, 8))], dtype="uint8")
    one = t.batch(paths, threads=1)
    seen, lock = set(), threading.Lock()
    real = fp.io.decode_oriented

    def slow(*a, **k):
        with lock:
            seen.add(threading.current_thread().name)
        time.sleep(0.05)  # long enough for the other workers to start
        return real(*a, **k)

    monkeypatch.setattr(fp.io, "decode_oriented", slow)  # what Compose calls
    two = t.batch(paths, threads=2)
    assert np.array_equal(one, two)
    assert len(seen) == 2 and all(n.startswith("fastprep-pillow") for n in seen), seen


@pytest.mark.parametrize("o", range(1, 9))
@pytest.mark.parametrize("subsampling", [0, 2])
def test_oriented_crop_decodes_only_its_region(o, subsampling):
    """apply_exif_orientation=True: a crop of a turned JPEG decodes only the stored rectangle it
    shows (issue 28: a 12 MP orientation-6 photo decoded whole took 5.7x an unrotated one), and
    its pixels equal the same crop of the turned image given as an array (byte for byte: the
    region decode is exact), for crops at every edge."""
    data = save(pattern(400, 300), quality=90, subsampling=subsampling, exif=_exif(o))
    turned = np.ascontiguousarray(pil_reference(data, exif=True))
    full = 400 * 300
    edges = set()
    for scale, ratio in (((0.02, 0.08), (3 / 4, 4 / 3)), ((0.85, 1.0), (0.5, 2.0))):
        crop = fp.Compose([fp.RandomResizedCrop((24, 20), scale=scale, ratio=ratio), fp.RandomHorizontalFlip()],
                          dtype="uint8", layout="HWC", apply_exif_orientation=True)
        for seed in range(40):
            out, prm = crop.batch([data], seed=seed, return_params=True)
            assert_close(out[0], crop.batch([turned], seed=seed)[0], tol=0 if o == 1 else 1)
            assert np.array_equal(out[0], crop.batch([FULL_EXIF(data)], seed=seed)[0]), (o, seed)
            assert prm[0]["orientation"] == o
            if scale[1] < 0.1:
                assert prm[0]["decoded_pixels"] < 0.3 * full, (o, seed, prm[0]["decoded_pixels"])
            t, l, h, w = prm[0]["box"]
            sh, sw = prm[0]["source_size"]
            edges |= {e for e, hit in (("top", t == 0), ("left", l == 0), ("bottom", t + h == sh),
                                       ("right", l + w == sw)) if hit}
    assert edges == {"top", "left", "bottom", "right"}
    # a crop over the whole image decodes it whole
    whole = fp.Compose([fp.Resize((20, 24))], dtype="uint8", layout="HWC", apply_exif_orientation=True)
    _, prm = whole.batch([data], return_params=True)
    assert prm[0]["decoded_pixels"] >= full
