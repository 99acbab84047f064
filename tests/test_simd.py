"""Every SIMD level gives byte-identical output to the scalar reference path."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastprep as fp
from conftest import SIMD_LEVELS


def _run_all_levels(ops, items, **kw):
    outs = {}
    for s in SIMD_LEVELS:
        t = fp.Compose(ops, simd=s, **kw)
        assert t.simd == s
        outs[s] = t.batch(items, seed=3, threads=1)
    return outs


@pytest.mark.parametrize("interp", ["bilinear", "bicubic", "nearest"])
def test_levels_identical_on_photos(photos, interp):
    rng = np.random.default_rng(0)
    for _ in range(4):
        size = int(rng.integers(7, 300))
        crop = int(rng.integers(1, size + 1))
        ops = [fp.Resize(size, interpolation=interp), fp.CenterCrop(crop), fp.RandomHorizontalFlip(),
               fp.ToTensor(), fp.Normalize("imagenet")]
        outs = _run_all_levels(ops, photos)
        for s, o in outs.items():
            assert np.array_equal(o, outs["scalar"]), (s, size, crop)


@pytest.mark.parametrize("exact", [True, False])  # fast mode: 16-bit weights, its own AVX2 kernels
@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 37, 3), (41, 1, 3), (9, 13, 3), (17, 300, 4), (300, 7, 1)])
def test_levels_identical_on_odd_arrays(shape, exact):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
    if shape[2] == 1:
        arr = arr[:, :, 0]
    for out in [(5, 5), (1, 33), (29, 1), (64, 48)]:
        for interp in ["bilinear", "bicubic"]:
            ops = [fp.RandomResizedCrop(out, scale=(0.2, 1.0), interpolation=interp), fp.RandomHorizontalFlip()]
            outs = _run_all_levels(ops, [arr] * 6, dtype="uint8", layout="HWC", exact=exact)
            for s, o in outs.items():
                assert np.array_equal(o, outs["scalar"]), (s, shape, out, interp, exact)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "uint8"])
@pytest.mark.parametrize("layout", ["CHW", "HWC"])
def test_output_arithmetic_kernel_matches_table(photos, dtype, layout):
    """Note [Output arithmetic]: at AVX2 a plan's own table is applied by arithmetic (uint8: by
    byte shuffles); every output byte equals the table path (scalar level) for ToTensor,
    ToTensor + Normalize and Normalize on 0-255 levels, RGB and BGR, row widths with a tail (not a
    multiple of 8), padded crops (rows written from x0 > 0), and in the two-phase path
    (ColorJitter). Rows turned gray by RandomGrayscale
    keep the table."""
    if "avx2" not in SIMD_LEVELS:
        pytest.skip("this CPU has no AVX2: only the table path exists here")
    if dtype == "uint8":  # raw levels: no ToTensor scaling, no Normalize
        cases = [
            ([fp.Resize(70), fp.CenterCrop((61, 67))], "RGB"),
            ([fp.RandomResizedCrop((45, 83)), fp.RandomHorizontalFlip()], "BGR"),
            ([fp.Resize(64), fp.CenterCrop(51), fp.ColorJitter(0.4, 0.4, 0.4)], "RGB"),
            ([fp.Resize(64), fp.CenterCrop(51), fp.RandomGrayscale(0.5)], "RGB"),
            ([fp.Resize(40), fp.CenterCrop((47, 53))], "RGB"),  # padded: rows start at x0 > 0
        ]
    else:
        cases = [
            ([fp.Resize(70), fp.CenterCrop((61, 67)), fp.ToTensor()], "RGB"),
            ([fp.RandomResizedCrop((45, 83)), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize("imagenet")],
             "RGB"),
            ([fp.Resize(64), fp.CenterCrop(59), fp.ToTensor(), fp.Normalize("imagenet")], "BGR"),
            ([fp.Resize(50), fp.CenterCrop(49), fp.Normalize("imagenet255")], "RGB"),
            ([fp.Resize(50), fp.CenterCrop(49), fp.Normalize("caffe")], None),  # 0-255, BGR by the preset
            ([fp.Resize(64), fp.CenterCrop(51), fp.ColorJitter(0.4, 0.4, 0.4), fp.ToTensor(),
              fp.Normalize("imagenet")], "RGB"),
            ([fp.Resize(64), fp.CenterCrop(51), fp.RandomGrayscale(0.5), fp.ToTensor(), fp.Normalize("imagenet")],
             "RGB"),
            ([fp.Resize(40), fp.CenterCrop((47, 53)), fp.ToTensor(), fp.Normalize("imagenet")], "BGR"),  # padded
        ]
    for ops, color in cases:
        kw = {"dtype": dtype, "layout": layout, **({"color": color} if color else {})}
        ref = fp.Compose(ops, simd="scalar", **kw)
        fast = fp.Compose(ops, simd="avx2", **kw)
        assert ref._plan.output_kernel == "table"
        assert fast._plan.output_kernel == "arithmetic", (ops, color)
        a = ref.batch(photos, seed=5, threads=1)
        b = fast.batch(photos, seed=5, threads=2)
        assert a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8)), (ops, color)
    gray = [fp.Resize(40), fp.CenterCrop(32), fp.Grayscale(3)] + ([] if dtype == "uint8" else [fp.ToTensor()])
    assert fp.Compose(gray, simd="avx2", dtype=dtype, layout=layout)._plan.output_kernel == "table"  # luma rows


def test_env_forces_scalar():
    code = "import fastprep as fp; t = fp.Compose([fp.Resize(8)]); print(fp.simd_info()['default'], t.simd)"
    env = dict(os.environ, FASTPREP_SIMD="scalar")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["scalar", "scalar"]


def test_env_rejects_unknown_level():
    env = dict(os.environ, FASTPREP_SIMD="avx9000")
    r = subprocess.run([sys.executable, "-c", "import fastprep as fp; fp.Compose([fp.Resize(8)])"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "avx9000" in r.stderr


def test_levels_of_the_other_architecture_are_refused():
    levels = [s.name for s in fp._core.simd_levels()]
    assert levels[0] == "scalar" and fp.simd_info()["cpu"] == levels[-1]
    other = ["neon"] if levels[-1] in ("sse41", "avx2") else ["sse41", "avx2"]
    for name in other:
        with pytest.raises(ValueError, match="not supported by this CPU"):
            fp.Compose([fp.Resize(8)], simd=name)
    with pytest.raises(ValueError, match="expected scalar, sse41, avx2, neon or auto"):
        fp.Compose([fp.Resize(8)], simd="sve")
