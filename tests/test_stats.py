import io
import json
import os

import numpy as np
import pytest

import fastprep as fp
from fastprep import cli
from fastprep.offline import _stats
from fastprep.data import index_source
from fastprep._util import Progress

SIZE = 64


def decoded(items, size=SIZE, transform="eval"):
    ops = ([fp.Resize(int(size / 0.875)), fp.CenterCrop(size)] if transform == "eval"
           else [fp.Resize((size, size))])
    return fp.Compose(ops, dtype="uint8", layout="CHW").batch(items).astype(np.float64)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def test_stats_match_numpy(tree):
    res = _stats.compute_stats(tree, "eval", SIZE, per_pixel=True, pca=True, batch_size=3, threads=2,
                               progress=False)
    x = decoded(index_source(tree).items)
    assert res["images"] == len(x) == 10 and res["failed"] == []
    assert res["pixels_per_channel"] == len(x) * SIZE * SIZE
    assert rel(res["mean_255"], x.mean(axis=(0, 2, 3))) < 1e-12
    assert rel(res["std_255"], x.std(axis=(0, 2, 3))) < 1e-12
    assert rel(res["mean"], x.mean(axis=(0, 2, 3)) / 255) < 1e-12
    assert rel(res["std"], (x / 255).std(axis=(0, 2, 3))) < 1e-12
    cov = np.cov(x.transpose(1, 0, 2, 3).reshape(3, -1), bias=True)
    assert rel(res["pca"]["cov_255"], cov) < 1e-10
    w, v = np.linalg.eigh(cov / 255 ** 2)
    assert rel(res["pca"]["eigenvalues"], w[::-1]) < 1e-9
    vec = np.asarray(res["pca"]["eigenvectors"])
    for k in range(3):  # columns, up to sign
        assert abs(abs(vec[:, k] @ v[:, 2 - k]) - 1) < 1e-9
    pm, ps = res["per_pixel_arrays"]["mean"], res["per_pixel_arrays"]["std"]
    assert pm.shape == (3, SIZE, SIZE)
    assert np.allclose(pm * 255, x.mean(0), rtol=1e-12, atol=1e-10)
    assert np.allclose(ps * 255, x.std(0), rtol=1e-12, atol=1e-10)
    assert res["normalize"].startswith("fp.Normalize(mean=[") and "std=[" in res["normalize"]
    fp.Normalize(res["mean"], res["std"])  # valid arguments


def test_stats_do_not_depend_on_batching_or_threads(tree, photos):
    a = _stats.compute_stats(tree, "resize", 48, batch_size=1, threads=1, progress=False, pca=True)
    b = _stats.compute_stats(tree, "resize", 48, batch_size=7, threads=2, progress=False, pca=True)
    for k in ("mean", "std", "mean_255", "std_255"):
        assert a[k] == b[k]
    assert a["pca"] == b["pca"]
    x = decoded(index_source(tree).items, 48, "resize")
    assert rel(a["mean_255"], x.mean(axis=(0, 2, 3))) < 1e-12


def test_level_moments_exact_on_extremes():
    acc = _stats.LevelMoments(3, cross=True)
    acc.add(np.full((300, 3, 8, 8), 255, np.uint8))  # more than one uint16 chunk, constant
    mean, std = acc.channel_stats()
    assert mean == [255.0] * 3 and std == [0.0] * 3
    assert np.all(acc.covariance() == 0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 3, 5, 7)).astype(np.uint8)
    acc = _stats.LevelMoments(3)
    for part in np.array_split(x, 4):
        acc.add(part)
    xf = x.astype(np.float64)
    assert rel(acc.channel_stats()[0], xf.mean(axis=(0, 2, 3))) < 1e-14
    assert rel(acc.channel_stats()[1], xf.std(axis=(0, 2, 3))) < 1e-14
    big = rng.integers(0, 256, (5, 3, 150, 151)).astype(np.uint8)  # planes larger than a cache block
    acc = _stats.LevelMoments(3, cross=True)
    acc.add(big)
    bf = big.astype(np.float64)
    assert rel(acc.covariance(), np.cov(bf.transpose(1, 0, 2, 3).reshape(3, -1), bias=True)) < 1e-12
    assert np.array_equal(acc.s1, big.sum(0, dtype=np.int64))
    assert np.array_equal(acc.s2, (big.astype(np.int64) ** 2).sum(0))
    hwc = _stats.LevelMoments(3, layout="HWC")
    hwc.add(np.ascontiguousarray(big.transpose(0, 2, 3, 1)))
    assert hwc.channel_sums() == acc.channel_sums()
    fm = _stats.FloatMoments(3)
    for part in np.array_split(xf.astype(np.float32) / 255, 3):
        fm.add(part)
    assert rel(fm.channel_stats()[1], (xf.astype(np.float32) / 255).astype(np.float64).std(axis=(0, 2, 3))) < 1e-9


def test_stats_corrupted_file(tree, photos):
    bad = os.path.join(tree, "b", "zz_truncated.jpg")
    with open(photos[0], "rb") as f:
        open(bad, "wb").write(f.read()[:2500])
    with pytest.raises(fp.DecodeError, match="zz_truncated"):
        _stats.compute_stats(tree, "eval", SIZE, progress=False)
    res = _stats.compute_stats(tree, "eval", SIZE, on_error="skip", progress=False, batch_size=4)
    assert [f["file"] for f in res["failed"]] == ["b/zz_truncated.jpg"]
    assert res["failed"][0]["index"] == index_source(tree).names.index("b/zz_truncated.jpg")
    good = [p for p in index_source(tree).items if "zz_" not in p]
    x = decoded(good)
    assert res["images"] == 10 and rel(res["mean_255"], x.mean(axis=(0, 2, 3))) < 1e-12
    assert rel(res["std_255"], x.std(axis=(0, 2, 3))) < 1e-12
    z = _stats.compute_stats(tree, "eval", SIZE, on_error="zeros", progress=False)
    assert z["images"] == 11 and len(z["failed"]) == 1
    assert rel(z["mean_255"], x.mean(axis=(0, 2, 3)) * 10 / 11) < 1e-12


def test_stats_cli(tree, tmp_path, capsys):
    out = str(tmp_path / "res" / "stats.json")
    os.makedirs(os.path.dirname(out))
    rc = cli.main(["stats", tree, "--size", str(SIZE), "--per-pixel", "--pca", "--out", out, "--threads", "2",
                   "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    res = json.load(open(out))
    assert res["normalize"] in text and "fp.Normalize(mean=[" in text
    assert "R " in text and "mean [0,1]" in text
    assert res["transform"]["ops"][0].startswith("Resize(size=73")
    for k in ("mean_npy", "std_npy"):
        arr = np.load(res["per_pixel"][k])
        assert arr.shape == (3, SIZE, SIZE) and arr.dtype == np.float64
    pytest.importorskip("PIL")
    from PIL import Image

    assert Image.open(res["per_pixel"]["mean_png"]).size == (SIZE, SIZE)
    assert np.asarray(Image.open(res["per_pixel"]["std_png"])).max() == 255
    assert len(res["pca"]["eigenvectors"]) == 3


def test_stats_cli_error_exit(tree, photos, capsys):
    open(os.path.join(tree, "a", "broken.jpg"), "wb").write(b"\xff\xd8\xff\xe0 not really")
    assert cli.main(["stats", tree, "--size", "32", "--quiet"]) == 1
    assert "broken.jpg" in capsys.readouterr().err
    assert cli.main(["stats", tree, "--size", "32", "--quiet", "--on-error", "skip"]) == 0
    err = capsys.readouterr().err
    assert "1 file(s) failed" in err and "a/broken.jpg" in err


def test_progress_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    s = Tty()
    bar = Progress(10, "stats", stream=s)
    bar.update(5)
    bar.update(5)
    bar.close()
    text = s.getvalue()
    assert "stats" in text and "10/10" in text and "img/s" in text and text.endswith("\n")
    quiet = io.StringIO()
    bar = Progress(10, "stats", stream=quiet)
    bar.update(10)
    bar.close()
    assert quiet.getvalue() == ""


def test_native_level_moments_against_numpy():
    """_core.level_moments (Note [Level moments]) adds exactly numpy's int64 sums, cross products
    included, over sizes that are not multiples of its cache block."""
    from fastprep import _core

    rng = np.random.default_rng(7)
    for n, h, w in [(1, 1, 1), (5, 13, 17), (130, 47, 45), (3, 64, 96)]:
        x = rng.integers(0, 256, size=(n, 3, h, w), dtype=np.uint8)
        x[0] = 255  # the largest squares and products
        s1 = np.full((3, h, w), 11, np.int64)  # added to, not overwritten
        s2 = np.zeros((3, h, w), np.int64)
        sx = np.zeros((3, h, w), np.int64)
        _core.level_moments(x, s1, s2, sx, h * w)
        v = x.astype(np.int64)
        np.testing.assert_array_equal(s1, 11 + v.sum(0))
        np.testing.assert_array_equal(s2, (v * v).sum(0))
        np.testing.assert_array_equal(sx[0], (v[:, 0] * v[:, 1]).sum(0))
        np.testing.assert_array_equal(sx[1], (v[:, 0] * v[:, 2]).sum(0))
        np.testing.assert_array_equal(sx[2], (v[:, 1] * v[:, 2]).sum(0))


def test_native_level_moments_refuses_totals_it_cannot_write():
    from fastprep import _core

    x = np.zeros((2, 3, 4, 4), np.uint8)
    ok = np.zeros((3, 4, 4), np.int64)
    with pytest.raises(ValueError, match="s1 must be a writable int64"):
        _core.level_moments(x, np.zeros((3, 4, 4), np.int32), ok, None, 0)
    ro = np.zeros((3, 4, 4), np.int64)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="s2 must be a writable int64"):
        _core.level_moments(x, ok, ro, None, 0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.level_moments(x, np.zeros((4, 4, 3), np.int64).transpose(2, 0, 1), ok, None, 0)
    with pytest.raises(ValueError, match="3 planes"):
        _core.level_moments(x, ok, ok.copy(), ok.copy(), 5)
    with pytest.raises(TypeError):
        _core.level_moments(x.astype(np.float32), ok, ok.copy(), None, 0)
