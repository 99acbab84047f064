"""Native PNG decoding (Note [PNG decoding] in csrc/codecs/png_decoder.h): pixels against the installed
Pillow's Image.open(f).convert("RGB") (0 levels) for every colour type and bit depth, Adam7
interlacing and transparency; the resize pipeline against torchvision v1 on PNG photos; hostile
files."""
import io
import struct
import zlib

import numpy as np
import pytest
from conftest import native_status, needs_native
from pngfile import make_png, png_chunk as _chunk

import fastprep as fp
from fastprep import _core

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

IDENTITY = fp.Compose([], dtype="uint8", layout="HWC")

def pil_rgb(data):
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def _cases():
    rng = np.random.default_rng(0)
    h, w = 13, 21  # odd sizes: packed rows end mid-byte, every Adam7 pass is partial
    cases = []
    for bd in (1, 2, 4, 8, 16):
        cases.append((f"gray{bd}", rng.integers(0, 2 ** bd, (h, w, 1)), 0, bd, {}))
    g16 = rng.integers(0, 600, (h, w, 1))  # values on both sides of 255 (Pillow clamps)
    cases.append(("gray16-low", g16, 0, 16, {}))
    for bd in (8, 16):
        cases.append((f"gray-alpha{bd}", rng.integers(0, 2 ** bd, (h, w, 2)), 4, bd, {}))
        cases.append((f"rgb{bd}", rng.integers(0, 2 ** bd, (h, w, 3)), 2, bd, {}))
        cases.append((f"rgba{bd}", rng.integers(0, 2 ** bd, (h, w, 4)), 6, bd, {}))
    for bd in (1, 2, 4, 8):
        n = 2 ** bd
        pal = rng.integers(0, 256, (n, 3))
        idx = rng.integers(0, n, (h, w, 1))
        cases.append((f"palette{bd}", idx, 3, bd, {"palette": pal}))
        cases.append((f"palette{bd}-trns", idx, 3, bd, {"palette": pal, "trns": bytes(range(0, 256, 256 // n))[:n]}))
    cases.append(("gray8-trns", rng.integers(0, 256, (h, w, 1)), 0, 8, {"trns": struct.pack(">H", 7)}))
    cases.append(("rgb8-trns", rng.integers(0, 256, (h, w, 3)), 2, 8, {"trns": struct.pack(">HHH", 1, 2, 3)}))
    return cases


CASES = _cases()


@pytest.mark.parametrize("interlace", [False, True], ids=["plain", "adam7"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_pixels_equal_pillow(case, interlace):
    name, img, ct, bd, kw = case
    data = make_png(img, ct, bd, interlace=interlace, **kw)
    ref = pil_rgb(data)
    got = IDENTITY(data)
    assert got.shape == ref.shape
    assert np.array_equal(got, ref), (name, np.abs(got.astype(int) - ref).max())


@needs_native('png')
def test_png_is_decoded_natively_not_by_the_fallback():
    assert native_status(make_png(np.zeros((4, 4, 3), int), 2, 8)) == _core.SampleStatus.ok


@pytest.mark.parametrize("interlace", [False, True], ids=["plain", "adam7"])
def test_resize_pipeline_against_torchvision_v1(photos, interlace):
    """The photos as PNG through Resize(256) + CenterCrop(224), train-style crops too: within 1
    level of torchvision v1 on the same PIL image (the JPEG path's tolerance)."""
    tv = pytest.importorskip("torchvision")
    T = tv.transforms
    for p in photos[:4]:
        im = Image.open(p).convert("RGB")
        arr = np.array(im)
        data = make_png(arr, 2, 8, interlace=interlace) if interlace else _pil_png(im)
        ref = np.array(T.Compose([T.Resize(96), T.CenterCrop(80)])(im))
        got = fp.Compose([fp.Resize(96), fp.CenterCrop(80)], dtype="uint8", layout="HWC")(data)
        assert np.abs(got.astype(int) - ref).max() <= 1


def _pil_png(im):
    b = io.BytesIO()
    im.save(b, "PNG")
    return b.getvalue()


def test_png_in_a_loader_and_params(tree, photos):
    """A folder of PNGs through fp.Loader: the same batches as the same images given as arrays."""
    import os

    for p in photos[:3]:
        im = Image.open(p).convert("RGB")
        im.save(os.path.join(tree, "a", os.path.basename(p)[:-4] + "_png.png"))
    t = fp.Compose([fp.RandomResizedCrop(48), fp.RandomHorizontalFlip(), fp.ToTensor()])
    L = fp.Loader(tree, t, batch_size=4, shuffle=False, backend="numpy", extensions=(".png",))
    assert len(L.dataset) == 3
    (x, y), = list(L)
    arrays = [np.array(Image.open(f).convert("RGB")) for f in L.dataset.items]
    ref = t.batch(arrays, indices=range(3), seed=L.seed)
    assert np.array_equal(x[:3], ref)


# ---- hostile files ----------------------------------------------------------------------------

def _valid():
    return make_png(np.random.default_rng(1).integers(0, 256, (40, 30, 3)), 2, 8)


@needs_native('png')
def test_truncated_png_is_a_decode_error():
    data = _valid()
    for cut in (8, 20, 40, len(data) // 2, len(data) - 13):
        with pytest.raises(fp.DecodeError, match="PNG"):
            IDENTITY(data[:cut])


@needs_native('png')
@pytest.mark.parametrize("kind", ["rgb", "gray16", "adam7"])
def test_allow_truncated_keeps_the_decoded_rows_as_pillow(photos, kind):
    """A PNG cut inside its image data: with allow_truncated the rows decoded so far are Pillow's
    (ImageFile.LOAD_TRUNCATED_IMAGES), the rest black, with a warning naming the file; Pillow may
    decode a few more rows (libpng inflates in pieces of a few KB)."""
    from PIL import ImageFile

    im = Image.open(photos[0]).convert("RGB")
    arr = np.asarray(im)
    if kind == "gray16":
        data = make_png(arr[:, :, :1].astype(np.int64) * 3, 0, 16)  # values up to 765: the clamp matters
    elif kind == "adam7":
        data = make_png(arr, 2, 8, interlace=True)
    else:
        data = _pil_png(im)
    t = fp.Compose([], dtype="uint8", layout="HWC", allow_truncated=True)
    for frac in (0.3, 0.7):
        cut = data[:int(len(data) * frac)]
        with pytest.raises(fp.DecodeError, match="truncated"):
            IDENTITY(cut)  # without allow_truncated: an error
        with pytest.warns(UserWarning, match="truncated image decoded"):
            got = t.batch([cut])[0]
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            ref = np.asarray(Image.open(io.BytesIO(cut)).convert("RGB"))
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = False
        assert got.shape == ref.shape
        if kind == "adam7":  # the passes decoded so far, the rest black: not row-aligned, so no row check
            assert 0 < np.count_nonzero(got.any(2)) < got.shape[0] * got.shape[1]
            continue
        rows = got.reshape(got.shape[0], -1).any(1)
        k = int(np.argmin(rows)) if not rows.all() else got.shape[0]  # the first black row
        assert 0 < k < got.shape[0] and not rows[k:].any()
        assert np.array_equal(got[:k], ref[:k])  # every decoded row is Pillow's
        pil_rows = int(np.flatnonzero(ref.reshape(ref.shape[0], -1).any(1)).max()) + 1
        assert k <= pil_rows <= k + 64  # Pillow decodes at most a few KB more


def test_crc_error_in_a_critical_chunk_is_a_decode_error():
    data = bytearray(_valid())
    i = data.index(b"IDAT")
    data[i + 8] ^= 0xFF  # a data byte: the CRC no longer matches
    with pytest.raises(fp.DecodeError, match="PNG"):
        IDENTITY(bytes(data))


@needs_native('png')
def test_bomb_header_refused_before_allocation():
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + \
        _chunk(b"IEND", b"")
    t = fp.Compose([fp.Resize((8, 8))], dtype="uint8", max_pixels=10 ** 8)
    with pytest.raises(fp.DecodeError, match="max_pixels"):
        t(data)


@needs_native('png')
def test_huge_ancillary_chunk_and_apng_frames():
    img = np.random.default_rng(2).integers(0, 256, (12, 9, 3))
    big = _chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"x" * (64 << 20)))  # inflates to 64 MiB
    apng = _chunk(b"acTL", struct.pack(">II", 2, 0)) + _chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 9, 12, 0, 0, 1, 1, 0, 0))
    for extra in (big, apng):
        data = make_png(img, 2, 8, extra=extra)
        got = IDENTITY(data)
        assert np.array_equal(got, img.astype(np.uint8))


def test_not_png_after_the_signature():
    with pytest.raises(fp.DecodeError):
        IDENTITY(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)


@pytest.mark.parametrize("interlace", [False, True], ids=["plain", "adam7"])
def test_large_downscale_matches_the_array_path(interlace):
    """A wide image shrunk 100x (wide filter windows, padding past the last row): the PNG gives
    the same bytes as the same pixels handed over as an array."""
    img = np.random.default_rng(3).integers(0, 256, (37, 1500, 3))
    data = make_png(img, 2, 8, interlace=interlace)
    for ops in ([fp.Resize((5, 15))], [fp.RandomResizedCrop((6, 9), scale=(0.5, 1.0)), fp.RandomHorizontalFlip()]):
        t = fp.Compose(ops, dtype="uint8", layout="HWC")
        a = t.batch([data] * 3, seed=2)
        b = t.batch([img.astype(np.uint8)] * 3, seed=2)
        assert np.array_equal(a, b)


def test_very_wide_png_uses_small_blocks():
    """A 1 x 1,200,000 image: a block of 16 such rows would be 77 MB of scratch; blocks shrink to
    stay within 4 MiB (here one row) and the result is the array path's."""
    img = np.random.default_rng(4).integers(0, 256, (3, 1_200_000, 3)).astype(np.uint8)
    data = _pil_png(Image.fromarray(img))
    t = fp.Compose([fp.Resize((2, 30))], dtype="uint8", layout="HWC")
    assert np.array_equal(t(data), t(img))


# ---- the fast path (Note [PNG fast path]): filters, SIMD levels, IDAT layout ---------------------

FAST_CASES = [("gray8", 0, 1), ("gray-alpha8", 4, 2), ("rgb8", 2, 3), ("rgba8", 6, 4), ("palette8", 3, 1)]
FILTERS = [(0,), (1,), (2,), (3,), (4,), (0, 1, 2, 3, 4), (4, 3, 2, 1)]


def _fast_image(photos, samples, w):
    """A photo's crop (smooth areas, where Paeth's ties happen) beside random noise, as ints."""
    im = np.asarray(Image.open(photos[0]).convert("RGBA"))[40:57, 100:100 + w // 2].astype(np.int64)
    noise = np.random.default_rng(5).integers(0, 256, (17, w - w // 2, 4))
    return np.concatenate([im, noise], 1)[:, :, :samples]


@pytest.mark.parametrize("filters", FILTERS, ids=["".join(map(str, f)) for f in FILTERS])
@pytest.mark.parametrize("case", FAST_CASES, ids=[c[0] for c in FAST_CASES])
def test_every_filter_equals_pillow_at_every_simd_level(photos, case, filters):
    """Each PNG row filter on every 8-bit colour type, odd widths (vector tails), decoded by the
    fast path at each SIMD level: Pillow's pixels exactly."""
    from conftest import SIMD_LEVELS

    name, ct, samples = case
    for w in (1, 5, 38):
        img = _fast_image(photos, samples, w)
        kw = {}
        if ct == 3:
            img = img[:, :, :1] % 200  # indices of a 200-entry palette
            kw["palette"] = np.random.default_rng(6).integers(0, 256, (200, 3))
        data = make_png(img, ct, 8, filters=filters, **kw)
        ref = pil_rgb(data)
        for simd in SIMD_LEVELS:
            got = fp.Compose([], dtype="uint8", layout="HWC", simd=simd)(data)
            assert np.array_equal(got, ref), (name, w, simd)


def _rechunk(data, size):
    """The same PNG with its image data cut into IDAT chunks of `size` bytes."""
    i = data.index(b"IDAT") - 4
    n = struct.unpack(">I", data[i:i + 4])[0]
    z = data[i + 8:i + 8 + n]
    idats = b"".join(_chunk(b"IDAT", z[k:k + size]) for k in range(0, len(z), size))
    return data[:i] + idats + data[i + 12 + n:]


def test_image_data_split_into_tiny_idat_chunks():
    img = np.random.default_rng(7).integers(0, 256, (9, 11, 3))
    data = make_png(img, 2, 8, filters=(4, 1))
    for size in (1, 2, 7):
        assert np.array_equal(IDENTITY(_rechunk(data, size)), img.astype(np.uint8))


@needs_native('png')
def test_fast_path_hostile_image_data():
    """What libpng refuses, the fast path refuses with a DecodeError naming the reason."""
    img = np.random.default_rng(8).integers(0, 256, (6, 5, 3))
    good = make_png(img, 2, 8)
    raw = zlib.decompress(good[good.index(b"IDAT") + 4:good.index(b"IEND") - 8])
    ihdr = good[8:33]

    def png(z):
        return b"\x89PNG\r\n\x1a\n" + ihdr + _chunk(b"IDAT", z) + _chunk(b"IEND", b"")

    bad_filter = bytearray(raw)
    bad_filter[16] = 5  # row 1's filter type (rows are 1 + 15 bytes)
    cases = {
        "bad adaptive filter": png(zlib.compress(bytes(bad_filter))),
        "not enough image data": png(zlib.compress(raw[:-20])),
        "IDAT: incorrect header check": png(b"\x78\x00" + zlib.compress(raw)[2:]),
        "IDAT: invalid": png(zlib.compress(raw)[:2] + b"\xff" * 40),
    }
    for why, data in cases.items():
        with pytest.raises(fp.DecodeError, match=why):
            IDENTITY(data)


@needs_native('png')
def test_truncated_inside_the_crc_is_an_error_and_decodes_under_allow_truncated():
    img = np.random.default_rng(9).integers(0, 256, (8, 8, 3))
    data = make_png(img, 2, 8)
    cut = data[:data.index(b"IEND") - 6]  # the last IDAT's CRC cut in two
    with pytest.raises(fp.DecodeError, match="truncated"):
        IDENTITY(cut)
    t = fp.Compose([], dtype="uint8", layout="HWC", allow_truncated=True)
    assert np.array_equal(t(cut), img.astype(np.uint8))  # every row is there
