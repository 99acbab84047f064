"""RandomHSV, YCbCr output and whitening (issue 12), against their real references:

- RandomHSV: Ultralytics' recipe replayed with OpenCV (cv2.cvtColor RGB2HSV, cv2.LUT on numpy
  float64 tables, cv2.cvtColor HSV2RGB) on the same drawn gains: identical where OpenCV's
  vectorised code runs (the first width - width % 32 pixels of a row on AVX2 builds), within 1
  level everywhere (OpenCV's scalar tail rounds instead of truncating);
- color="YCbCr": Pillow's Image.convert("YCbCr"), identical on all 2^24 colours;
- Normalize("whiten"): the numpy float64 formula W (x - mean) within 1e-5, and the whitened
  dataset's covariance is the identity within 1e-3.
"""
import pickle

import numpy as np
import pytest

import fastprep as fp
from conftest import MEAN, SIMD_LEVELS, STD

GEO = [fp.RandomResizedCrop(64), fp.RandomHorizontalFlip()]


def all_colours():
    """Every RGB colour once, as a 4096 x 4096 image."""
    x = np.arange(1 << 24, dtype=np.uint32)
    return np.stack([(x >> 16) & 255, (x >> 8) & 255, x & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)


# ----------------------------------------------------------------------------------------------
# RandomHSV


def ultralytics_hsv(rgb, r):
    """Ultralytics' RandomHSV on an RGB uint8 image with gains r as drawn (its BGR2HSV on BGR data
    is the same arithmetic as RGB2HSV on RGB data)."""
    cv2 = pytest.importorskip("cv2")
    x = np.arange(0, 256, dtype=np.float64)
    lut_hue = ((x + r[0] * 180) % 180).astype(np.uint8)
    lut_sat = np.clip(x * (r[1] + 1), 0, 255).astype(np.uint8)
    lut_val = np.clip(x * (r[2] + 1), 0, 255).astype(np.uint8)
    hue, sat, val = cv2.split(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV))
    im_hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(im_hsv, cv2.COLOR_HSV2RGB)


def check_against_opencv(y, ref):
    """Within 1 level everywhere; identical on the columns OpenCV's vectorised code converts
    (allowing 0.1% for builds whose vector code does not fuse its multiply-adds)."""
    d = np.abs(y.astype(np.int16) - ref.astype(np.int16))
    assert d.max() <= 1
    full = ref.shape[1] - ref.shape[1] % 32
    if full:
        assert (d[:, :full] != 0).mean() < 1e-3


@pytest.mark.slow
def test_random_hsv_matches_ultralytics_with_opencv_on_every_colour():
    pytest.importorskip("cv2")
    img = all_colours()
    for seed, gains in ((0, (0.5, 0.9, 0.9)), (1, (0.015, 0.7, 0.4)), (2, (1.0, 1.0, 1.0))):
        t = fp.Compose([fp.RandomHSV(*gains)], dtype="uint8")
        out, params = t.batch([img], seed=seed, return_params=True)
        r = params[0]["hsv"]
        assert all(abs(g) <= b for g, b in zip(r, gains)) and any(g != 0 for g in r)
        check_against_opencv(out[0], ultralytics_hsv(img, r))


def test_random_hsv_replayed_on_photos(photos):
    """Geometry, then the HSV jitter: replaying the drawn gains on fastprep's own un-jittered
    crop with Ultralytics' recipe gives the same pixels; the crops do not move."""
    pytest.importorskip("cv2")
    base, p0 = fp.Compose(GEO, dtype="uint8", layout="HWC").batch(photos, seed=4, return_params=True)
    t = fp.Compose(GEO + [fp.RandomHSV()], dtype="uint8", layout="HWC")
    out, params = t.batch(photos, seed=4, return_params=True)
    gains = np.array([p["hsv"] for p in params])
    assert (np.abs(gains) <= [0.015, 0.7, 0.4]).all() and gains.std(0).min() > 0.003
    assert [(p["box"], p["flip"]) for p in params] == [(p["box"], p["flip"]) for p in p0]
    for x, y, p in zip(base, out, params):
        check_against_opencv(y, ultralytics_hsv(x, p["hsv"]))
    # and through ToTensor + Normalize: the same levels through the plan's table
    f = fp.Compose(GEO + [fp.RandomHSV(), fp.ToTensor(), fp.Normalize(MEAN, STD)]).batch(photos, seed=4)
    ref = (out.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255) - np.array(MEAN, np.float32)[:, None, None]) \
        / np.array(STD, np.float32)[:, None, None]
    assert np.array_equal(f, ref)


@pytest.mark.slow
@pytest.mark.parametrize("simd", SIMD_LEVELS)
def test_random_hsv_levels_identical(simd):
    """The AVX2 kernel (gathers for OpenCV's reciprocal tables and the per-sample tables) against
    the scalar reference: every colour, odd widths (the scalar tail), extreme gains."""
    img = all_colours()[:, :4093]
    narrow = img[:40, :13]
    for seed, gains in ((0, (1.0, 1.0, 1.0)), (3, (0.5, 0.2, 0.9))):
        t = [fp.RandomHSV(*gains)]
        ref = fp.Compose(t, dtype="uint8", simd="scalar")(img, seed=seed)
        assert np.array_equal(fp.Compose(t, dtype="uint8", simd=simd)(img, seed=seed), ref)
        assert np.array_equal(fp.Compose(t, dtype="uint8", simd=simd)(narrow, seed=seed),
                              fp.Compose(t, dtype="uint8", simd="scalar")(narrow, seed=seed))


def test_random_hsv_arguments_and_order():
    with pytest.raises(ValueError, match="RandomHSV s gain"):
        fp.RandomHSV(s=-0.1)
    with pytest.raises(ValueError, match="RandomHSV h gain"):
        fp.RandomHSV(h=float("nan"))
    with pytest.raises(ValueError, match="ColorJitter after RandomHSV cannot be fused"):
        fp.Compose([fp.RandomHSV(), fp.ColorJitter(0.4)])
    with pytest.raises(ValueError, match="RandomHSV after RandomGrayscale cannot be fused"):
        fp.Compose([fp.RandomGrayscale(), fp.RandomHSV()])
    # zero gains: the identity, and no draw reported
    x = np.random.RandomState(0).randint(0, 256, (20, 30, 3)).astype(np.uint8)
    y, p = fp.Compose([fp.RandomHSV(0, 0, 0)], dtype="uint8").batch([x], seed=0, return_params=True)
    assert np.array_equal(y[0], x) and p[0]["hsv"] == [0.0, 0.0, 0.0]
    t = fp.Compose(GEO + [fp.ColorJitter(0.2), fp.RandomHSV(0.1, 0.5, 0.5), fp.ToTensor()])
    assert np.array_equal(pickle.loads(pickle.dumps(t))(x, seed=3), t(x, seed=3))


# ----------------------------------------------------------------------------------------------
# YCbCr output


@pytest.mark.slow
def test_ycbcr_is_pillows_conversion_on_every_colour():
    from PIL import Image

    img = all_colours()
    y = fp.Compose([], color="YCbCr", dtype="uint8")(img)
    assert np.array_equal(y, np.asarray(Image.fromarray(img).convert("YCbCr")))


def test_ycbcr_through_a_pipeline(photos):
    """YCbCr comes after the colour ops and before ToTensor/Normalize (as a torchvision user
    converting a PIL image before ToTensor): the float output is the table of PIL's bytes."""
    from PIL import Image

    ops = GEO + [fp.ColorJitter(0.3, 0.3, 0.3, 0.05)]
    rgb = fp.Compose(ops, dtype="uint8", layout="HWC").batch(photos, seed=6)
    ycc = fp.Compose(ops, dtype="uint8", layout="HWC", color="ycbcr").batch(photos, seed=6)
    for a, b in zip(rgb, ycc):
        assert np.array_equal(b, np.asarray(Image.fromarray(a).convert("YCbCr")))
    t = fp.Compose(ops + [fp.ToTensor(), fp.Normalize(MEAN, STD)], color="YCbCr")
    assert t.color == "YCbCr"
    f = t.batch(photos, seed=6)
    ref = (ycc.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255) - np.array(MEAN, np.float32)[:, None, None]) \
        / np.array(STD, np.float32)[:, None, None]
    assert np.array_equal(f, ref)
    # per-image normalisation sees the YCbCr levels
    pi = fp.Compose(ops + [fp.ToTensor(), fp.Normalize("per_image")], color="YCbCr").batch(photos, seed=6)
    x = ycc.astype(np.float64) / 255
    m, s = x.mean(axis=(1, 2, 3)), x.std(axis=(1, 2, 3))
    assert np.abs(pi - ((x - m[:, None, None, None]) / s[:, None, None, None]).transpose(0, 3, 1, 2)).max() < 1e-4


def test_ycbcr_padding_is_converted_black(photos):
    """A crop larger than the image pads with level 0 before the colour ops (as torchvision pads
    the RGB image): padding comes out as black converted, (0, 128, 128)."""
    from PIL import Image

    geo = [fp.Resize((20, 30)), fp.CenterCrop((26, 36))]
    rgb = fp.Compose(geo, dtype="uint8", layout="HWC")(photos[0])
    ycc = fp.Compose(geo, dtype="uint8", layout="HWC", color="YCbCr")(photos[0])
    assert np.array_equal(ycc, np.asarray(Image.fromarray(rgb).convert("YCbCr")))
    assert (ycc[0] == (0, 128, 128)).all() and (ycc[:, 0] == (0, 128, 128)).all()


def test_ycbcr_conflicts():
    with pytest.raises(ValueError, match="color must be RGB, BGR, GRAY or YCbCr"):
        fp.Compose([], color="HSV")
    with pytest.raises(ValueError, match="RandomGrayscale cannot be combined with YCbCr"):
        fp.Compose([fp.RandomGrayscale()], color="YCbCr")
    with pytest.raises(ValueError, match="Grayscale conflicts with color=YCbCr"):
        fp.Compose([fp.Grayscale()], color="YCbCr")
    with pytest.raises(ValueError, match="Lighting shifts RGB values"):
        fp.Compose([fp.ToTensor(), fp.Lighting(), fp.Normalize(MEAN, STD)], color="YCbCr")


# ----------------------------------------------------------------------------------------------
# Whitening


@pytest.fixture(scope="module")
def stats(photos):
    return fp.compute_stats(photos, transform="eval", size=64, pca=True, progress=False)


def eval_ops(stats):
    # the pixels the stats were computed on (`fastprep stats --transform eval --size 64`)
    assert stats["transform"]["ops"][0].startswith("Resize(size=73")
    return [fp.Resize(73), fp.CenterCrop(64), fp.ToTensor()]


@pytest.mark.parametrize("zca", [False, True])
def test_whitening_is_the_numpy_formula_and_whitens(photos, stats, zca, tmp_path):
    from fastprep.io import StatsRecord

    path = tmp_path / "stats.json"
    StatsRecord.from_result(stats).write(str(path))
    t = fp.Compose(eval_ops(stats) + [fp.Normalize("whiten", stats=str(path), zca=zca)])
    y = t.batch(photos).astype(np.float64)
    # the numpy formula with the stats' own numbers
    mean = np.array(stats["mean"])
    val, vec = np.array(stats["pca"]["eigenvalues"]), np.array(stats["pca"]["eigenvectors"])
    w = np.diag(1 / np.sqrt(val + 1e-6)) @ vec.T
    if zca:
        w = vec @ w
    x = fp.Compose(eval_ops(stats)).batch(photos).astype(np.float64)
    ref = np.einsum("cj,njhw->nchw", w, x - mean[None, :, None, None])
    assert np.abs(y - ref).max() < 1e-5
    # the dataset, whitened: zero mean, identity covariance
    flat = y.transpose(1, 0, 2, 3).reshape(3, -1)
    assert np.abs(flat.mean(1)).max() < 1e-3
    assert np.abs(np.cov(flat, bias=True) - np.eye(3)).max() < 1e-3
    if zca:  # ZCA stays closest to the input (in RGB axes): each channel still tracks its own colour
        assert all(np.corrcoef(flat[c], x.transpose(1, 0, 2, 3).reshape(3, -1)[c])[0, 1] > 0.5 for c in range(3))


def test_whitening_with_lighting_and_padding(photos, stats):
    """Lighting's per-sample shift goes in before the mean is subtracted; padding (a crop larger
    than the image) is level 0 through the same matrix; float16 output is the cast."""
    op = fp.Normalize("whiten", stats=stats)
    w, mean = np.array(op.matrix), np.array(op.mean)
    geo = [fp.Resize((40, 50)), fp.CenterCrop(48), fp.ToTensor()]
    x = fp.Compose(geo).batch(photos).astype(np.float64)
    y, params = fp.Compose(geo + [fp.Lighting(0.1), op]).batch(photos, seed=1, return_params=True)
    vec, val = np.array(fp.transforms.IMAGENET_EIGVEC), np.array(fp.transforms.IMAGENET_EIGVAL)
    for xi, yi, p in zip(x, y, params):
        shift = vec @ (np.array(p["lighting"]) * val)
        ref = np.einsum("cj,jhw->chw", w, xi + (shift - mean)[:, None, None])
        assert np.abs(yi - ref).max() < 1e-5
    h = fp.Compose(geo + [op], dtype="float16").batch(photos)
    assert h.dtype == np.float16 and np.array_equal(h, fp.Compose(geo + [op]).batch(photos).astype(np.float16))


@pytest.mark.parametrize("colour", ["jitter", "hsv"])
def test_whitening_after_colour_ops_and_with_erasing(photos, stats, colour):
    """With a two-phase colour op before it (the staged image, then the whitening tables) and
    RandomErasing after it: the numpy formula on the jittered uint8 image of the same seed."""
    op = fp.Normalize("whiten", stats=stats)
    w, mean = np.array(op.matrix), np.array(op.mean)
    ops = GEO + [fp.ColorJitter(0.4, 0.4, 0.4, 0.1) if colour == "jitter" else fp.RandomHSV(0.1, 0.9, 0.9)]
    u8 = fp.Compose(ops, dtype="uint8", layout="HWC").batch(photos, seed=8)
    y, params = fp.Compose(ops + [fp.ToTensor(), op, fp.RandomErasing(p=0.5, value=7.0)]).batch(
        photos, seed=8, return_params=True)
    ref = np.einsum("cj,njhw->nchw", w, u8.transpose(0, 3, 1, 2) / 255.0 - mean[None, :, None, None])
    erased = 0
    for yi, ri, p in zip(y, ref, params):
        if p["erase"] is not None:
            t, l, h, wd = p["erase"]
            assert (yi[:, t:t + h, l:l + wd] == 7.0).all()
            ri[:, t:t + h, l:l + wd] = 7.0
            erased += 1
        assert np.abs(yi - ri).max() < 1e-5
    assert 0 < erased < len(photos)


def test_whitening_errors(stats, tmp_path):
    no_pca = dict(stats, pca=None)
    with pytest.raises(ValueError, match="no PCA"):
        fp.Normalize("whiten", stats=no_pca)
    with pytest.raises(ValueError, match="needs stats="):
        fp.Normalize("whiten")
    with pytest.raises(ValueError, match="drop mean/std"):
        fp.Normalize("whiten", std=(1, 1, 1), stats=stats)
    with pytest.raises(ValueError, match="stats=, zca= and eps= are for 'whiten'"):
        fp.Normalize(MEAN, STD, zca=True)
    with pytest.raises(ValueError, match="are for 'whiten'"):
        fp.Normalize(MEAN, STD, eps=1e-3)
    with pytest.raises(ValueError, match="RandomGrayscale cannot be combined with Normalize"):
        fp.Compose([fp.RandomGrayscale(), fp.ToTensor(), fp.Normalize("whiten", stats=stats)])
    tiny = dict(stats, pca=dict(stats["pca"], eigenvalues=[0.1, 0.01, 1e-13]))
    fp.Compose([fp.ToTensor(), fp.Normalize("whiten", stats=tiny, eps=0)])  # float32 holds it
    with pytest.raises(ValueError, match="beyond float16's range"):
        fp.Compose([fp.ToTensor(), fp.Normalize("whiten", stats=tiny, eps=0)], dtype="float16")
    with pytest.raises(ValueError, match="eps must be"):
        fp.Normalize("whiten", stats=stats, eps=-1)
    with pytest.raises(ValueError, match="works on RGB output"):
        fp.Compose([fp.ToTensor(), fp.Normalize("whiten", stats=stats)], color="BGR")
    with pytest.raises(ValueError, match="needs ToTensor"):
        fp.Compose([fp.Normalize("whiten", stats=stats)])
    flat = dict(stats, pca=dict(stats["pca"], eigenvalues=[0.1, 0.0, 0.0]))
    with pytest.raises(ValueError, match="degenerate"):
        fp.Normalize("whiten", stats=flat, eps=0)
    with pytest.raises(OSError):
        fp.Normalize("whiten", stats=str(tmp_path / "missing.json"))


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (3, 1), (2, 9)])
def test_tiny_and_odd_images(shape, stats):
    """1x1 and odd sizes (only the scalar tails of the AVX2 kernels run) against the references."""
    from PIL import Image

    pytest.importorskip("cv2")
    x = np.random.RandomState(sum(shape)).randint(0, 256, shape + (3,)).astype(np.uint8)
    y, p = fp.Compose([fp.RandomHSV(0.5, 0.9, 0.9)], dtype="uint8").batch([x], seed=1, return_params=True)
    assert np.abs(y[0].astype(int) - ultralytics_hsv(x, p[0]["hsv"])).max() <= 1
    assert np.array_equal(fp.Compose([], color="YCbCr", dtype="uint8")(x), np.asarray(Image.fromarray(x).convert("YCbCr")))
    op = fp.Normalize("whiten", stats=stats, zca=True)
    w = fp.Compose([fp.ToTensor(), op])(x)
    ref = np.einsum("cj,jhw->chw", np.array(op.matrix), x.transpose(2, 0, 1) / 255.0 - np.array(op.mean)[:, None, None])
    assert w.shape == (3,) + shape and np.abs(w - ref).max() < 1e-5
