"""Native WebP decoding (Note [WebP decoding] in csrc/codecs/webp_decoder.h): pixels against the installed
Pillow's Image.open(f).convert("RGB") (0 levels), lossy and lossless, with and without alpha;
EXIF orientation; animated files through the Pillow fallback; the resize pipeline against
torchvision v1; the cropped decode of an unrotated image against the whole decode; hostile files."""
import io
import struct

import numpy as np
import pytest
from conftest import native_status, tv_center_crop_box, needs_native

import fastprep as fp
from fastprep import _core

PIL = pytest.importorskip("PIL")
from PIL import Image, ImageOps, features  # noqa: E402

if not features.check("webp"):
    pytest.skip("this Pillow cannot write WebP (the reference)", allow_module_level=True)

IDENTITY = fp.Compose([], dtype="uint8", layout="HWC")


def webp(im, **kw):
    b = io.BytesIO()
    im.save(b, "WEBP", **kw)
    return b.getvalue()


def pil_rgb(data, exif=False):
    with Image.open(io.BytesIO(data)) as im:
        return np.array((ImageOps.exif_transpose(im) if exif else im).convert("RGB"))


def _image(w, h, alpha=False, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x * y) % 256], -1) + rng.integers(0, 30, (h, w, 3))
    a = np.clip(a, 0, 255).astype(np.uint8)
    if alpha:
        a = np.concatenate([a, ((x + 3 * y) % 256).astype(np.uint8)[..., None]], -1)
        return Image.fromarray(a, "RGBA")
    return Image.fromarray(a, "RGB")


ENCODINGS = {"lossy_q80": dict(quality=80), "lossy_q30": dict(quality=30), "lossy_q100": dict(quality=100),
             "lossless": dict(lossless=True)}


@pytest.mark.parametrize("alpha", [False, True], ids=["rgb", "rgba"])
@pytest.mark.parametrize("enc", list(ENCODINGS), ids=list(ENCODINGS))
@pytest.mark.parametrize("size", [(1, 1), (17, 9), (64, 48), (333, 211)], ids=str)
def test_pixels_equal_pillow(enc, alpha, size):
    data = webp(_image(*size, alpha=alpha), **ENCODINGS[enc])
    ref = pil_rgb(data)
    got = IDENTITY(data)
    assert got.shape == ref.shape
    assert np.array_equal(got, ref), np.abs(got.astype(int) - ref).max()


@needs_native('webp')
def test_webp_is_decoded_natively():
    assert native_status(webp(_image(20, 10), quality=80)) == _core.SampleStatus.ok
    frames = [_image(24, 16, seed=s) for s in range(2)]
    b = io.BytesIO()
    frames[0].save(b, "WEBP", save_all=True, append_images=frames[1:], duration=50)
    assert native_status(b.getvalue()) == _core.SampleStatus.not_jpeg  # animated: left to Pillow


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    data = webp(_image(30, 20), quality=90, exif=e.tobytes())
    # As stored by default (torchvision's loaders), turned with apply_exif_orientation=True.
    ref = pil_rgb(data)
    got = IDENTITY(data)
    assert got.shape == ref.shape and np.array_equal(got, ref)
    ref = pil_rgb(data, exif=True)
    got = IDENTITY.with_options(apply_exif_orientation=True)(data)
    assert got.shape == ref.shape and np.array_equal(got, ref)
    # A crop of an oriented file decodes only the stored rectangle it shows, and equals the
    # same crop of the turned image.
    crop = fp.Compose([fp.RandomResizedCrop((9, 11), scale=(0.1, 0.3))], dtype="uint8", layout="HWC",
                      apply_exif_orientation=True)
    for seed in range(6):
        out, prm = crop.batch([data], seed=seed, return_params=True)
        assert np.array_equal(out[0], crop.batch([np.ascontiguousarray(ref)], seed=seed)[0]), seed
        assert prm[0]["orientation"] == orientation and prm[0]["decoded_pixels"] < 30 * 20


def test_animated_webp_goes_to_pillow_first_frame():
    frames = [_image(24, 16, seed=s) for s in range(3)]
    b = io.BytesIO()
    frames[0].save(b, "WEBP", save_all=True, append_images=frames[1:], duration=50, quality=90)
    data = b.getvalue()
    assert np.array_equal(IDENTITY(data), pil_rgb(data))


def test_resize_pipeline_against_torchvision_v1(photos):
    tv = pytest.importorskip("torchvision")
    T = tv.transforms
    for p in photos[:4]:
        data = webp(Image.open(p).convert("RGB"), quality=85)
        im = Image.open(io.BytesIO(data)).convert("RGB")
        ref = np.array(T.Compose([T.Resize(96), T.CenterCrop(80)])(im))
        got = fp.Compose([fp.Resize(96), fp.CenterCrop(80)], dtype="uint8", layout="HWC")(data)
        assert np.abs(got.astype(int) - ref).max() <= 1


def test_random_ops_match_the_array_path():
    data = webp(_image(300, 200), quality=75)
    arr = pil_rgb(data)
    t = fp.Compose([fp.RandomResizedCrop(48), fp.RandomHorizontalFlip(), fp.ToTensor()])
    assert np.array_equal(t.batch([data] * 4, seed=3), t.batch([arr] * 4, seed=3))


# ---- cropped decode (Note [WebP decoding]) ---------------------------------------------------
# An unrotated WebP is decoded only over the rectangle the resampler reads; its pixels must be the
# whole decode's, which the Pillow-decoded array (test_pixels_equal_pillow) stands for.

CROP_ENCODINGS = {"lossy_q80": dict(quality=80), "lossy_q30": dict(quality=30), "lossless": dict(lossless=True),
                  "alpha_lossy": dict(quality=80, alpha=True), "alpha_lossless": dict(lossless=True, alpha=True)}


def _photo_webp(photos, enc, size):
    """A committed photo resized to `size` (w, h) and encoded as WebP by Pillow."""
    kw = dict(CROP_ENCODINGS[enc])
    im = Image.open(photos[4]).convert("RGB").resize(size, Image.BILINEAR)
    if kw.pop("alpha", False):
        im.putalpha(_image(*size).getchannel(0))
    return webp(im, **kw)


@pytest.mark.parametrize("enc", list(CROP_ENCODINGS))
@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
def test_random_crops_equal_the_whole_decode(photos, enc, interp):
    """Random crops of every size and place, flipped or not: nearest reads the rectangle's edge
    pixels unmixed, so one wrong edge row or column of the cropped decode shows."""
    w, h = 257, 193  # odd: the last chroma sample covers one pixel
    data = _photo_webp(photos, enc, (w, h))
    arr = pil_rgb(data)
    t = fp.Compose([fp.RandomResizedCrop((40, 56), scale=(0.002, 1.0), ratio=(0.3, 3.0), interpolation=interp),
                    fp.RandomHorizontalFlip(), fp.RandomVerticalFlip()], dtype="uint8", layout="HWC")
    n = 96
    got, params = t.batch([data] * n, seed=11, return_params=True)
    want = t.batch([arr] * n, seed=11)
    bad = [i for i in range(n) if not np.array_equal(got[i], want[i])]
    assert not bad, [params[i]["box"] for i in bad]
    boxes = [p["box"] for p in params]  # (top, left, height, width)
    assert any(b[0] == 0 for b in boxes) and any(b[1] == 0 for b in boxes)
    assert any(b[0] + b[2] == h for b in boxes) and any(b[1] + b[3] == w for b in boxes)
    assert any(b[0] % 2 and b[1] % 2 and b[0] + b[2] < h and b[1] + b[3] < w for b in boxes)


@pytest.mark.parametrize("enc", list(CROP_ENCODINGS))
def test_center_crops_are_the_whole_decode_cut_out(photos, enc):
    """A crop without resize copies the region's pixels: they must be the whole decode's, at even
    and odd offsets and sizes, on every image parity."""
    for w, h in [(64, 48), (65, 49), (33, 70)]:
        data = _photo_webp(photos, enc, (w, h))
        arr = pil_rgb(data)
        for ch, cw in [(1, 1), (2, 3), (7, 8), (h - 1, w - 2), (h, 5), (3, w), (h, w)]:
            got = fp.Compose([fp.CenterCrop((ch, cw))], dtype="uint8", layout="HWC")(data)
            top, left = tv_center_crop_box(h, w, ch, cw)
            assert np.array_equal(got, arr[top:top + ch, left:left + cw]), (w, h, ch, cw)


@pytest.mark.parametrize("enc", list(CROP_ENCODINGS))
def test_resize_pipelines_equal_the_whole_decode(photos, enc):
    data = _photo_webp(photos, enc, (301, 199))
    arr = pil_rgb(data)
    for ops in ([fp.Resize(96), fp.CenterCrop(80)], [fp.Resize((57, 301))], [fp.Resize(250), fp.CenterCrop((17, 230))],
                [fp.Resize(40, interpolation="bicubic"), fp.CenterCrop(39)]):
        t = fp.Compose(ops, dtype="uint8", layout="HWC")
        assert np.array_equal(t(data), t(arr)), ops


# ---- hostile files ----------------------------------------------------------------------------

@needs_native('webp')
def test_truncated_webp_is_a_decode_error():
    data = webp(_image(64, 48), quality=80)
    for cut in (16, 30, len(data) // 2, len(data) - 5):
        with pytest.raises(fp.DecodeError, match="WebP"):
            IDENTITY(data[:cut])


def test_canvas_bomb_refused_before_allocation():
    data = bytearray(webp(_image(16, 16, alpha=True), quality=80))  # extended format: VP8X
    i = data.index(b"VP8X")
    big = 16000 - 1
    data[i + 12:i + 15] = struct.pack("<I", big)[:3]  # canvas width - 1 (24 bits)
    data[i + 15:i + 18] = struct.pack("<I", big)[:3]  # canvas height - 1
    t = fp.Compose([fp.Resize((8, 8))], dtype="uint8", max_pixels=10 ** 8)
    with pytest.raises(fp.DecodeError):
        t(bytes(data))


def test_garbage_after_the_riff_header():
    with pytest.raises(fp.DecodeError):
        IDENTITY(b"RIFF\x20\x00\x00\x00WEBPVP8 " + b"\x00" * 24)


def test_pillow_formats_are_read_once(tmp_path, monkeypatch, photos):
    """A file no native decoder takes (BMP, animated WebP, a tar member) reaches Pillow with the
    bytes the native pass read (Note [Fallback bytes]): the Python readers are never called."""
    from fastprep.io import _pillow

    im = Image.open(photos[0]).convert("RGB").resize((64, 48))
    bmp = tmp_path / "a.bmp"
    im.save(bmp, "BMP")
    anim = tmp_path / "b.webp"
    im.save(anim, "WEBP", save_all=True, append_images=[im.rotate(90)], duration=50, quality=90)
    t = fp.Compose([fp.Resize(32), fp.CenterCrop(32)], dtype="uint8", layout="HWC")
    want = t.batch([bmp.read_bytes(), anim.read_bytes()])  # bytes items: nothing to read

    def no_read(*a, **k):
        raise AssertionError("the fallback read the file again")

    monkeypatch.setattr(_pillow, "read_file", no_read)  # the names the fallback reads through
    monkeypatch.setattr(_pillow, "read_member", no_read)
    got = t.batch([str(bmp), str(anim)], threads=2)
    assert np.array_equal(got, want)
    import tarfile

    with tarfile.open(tmp_path / "s.tar", "w") as tf:
        tf.add(bmp, arcname="a.bmp")
    ds = fp.index_source(str(tmp_path / "s.tar"))
    assert np.array_equal(t.batch(ds.items), want[:1])
