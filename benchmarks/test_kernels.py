"""pytest-benchmark micro-benchmarks, one per stage of the fused pass (one thread).

    pip install -e ".[bench]" && python -m pytest benchmarks/test_kernels.py --benchmark-only

Inputs are real photographs: FASTPREP_BENCH_CORPUS (a folder of JPEGs) or the committed test
photos. Each benchmark processes the whole set once per round.
"""
import glob
import os

import numpy as np
import pytest

import fastprep as fp
from fastprep import _core

HERE = os.path.dirname(__file__)
CORPUS = os.environ.get("FASTPREP_BENCH_CORPUS", os.path.join(HERE, "..", "tests", "data", "photos"))
FILES = sorted(glob.glob(os.path.join(CORPUS, "**", "*.jp*g"), recursive=True))[:200]


@pytest.fixture(scope="module")
def datas():
    assert FILES, f"no JPEGs under {CORPUS}"
    return [open(f, "rb").read() for f in FILES]


@pytest.fixture(scope="module")
def decoded(datas):
    """The photos as decoded RGB arrays (input of the no-decode benchmarks)."""
    return [fp.Compose([])(d) for d in datas]


def _run(t, items, out):
    for i in range(0, len(items), 64):
        part = items[i:i + 64]
        t.batch(part, seed=i, threads=1, out=out[:len(part)])


def test_decode_only(benchmark, datas):
    """libjpeg-turbo full decode to RGBX: the ceiling."""
    items = _core.Items(datas)
    eng = _core.Engine(1)
    idx = np.arange(len(datas))
    plan = fp.Compose([])._plan

    def run():
        _core.Batch(plan, items, idx, idx, idx, 0, 0).decode_only(eng)
    benchmark(run)


@pytest.mark.parametrize("simd", ["scalar", "avx2"])
def test_resample_only(benchmark, decoded, simd):
    """Resize 256 + center crop 224 from decoded pixels, uint8 out: the two resampling passes."""
    if simd == "avx2" and fp.simd_info()["cpu"] != "avx2":
        pytest.skip("CPU has no AVX2")
    t = fp.Compose([fp.Resize(256), fp.CenterCrop(224)], dtype="uint8", simd=simd)
    out = np.empty((64,) + t.output_shape(), np.uint8)
    benchmark(_run, t, decoded, out)


def test_normalize_only(benchmark, decoded):
    """Identity geometry on 224x224 pixels: copy + ToTensor/Normalize/CHW output stage."""
    crops = [np.ascontiguousarray(d[:224, :224]) for d in decoded if d.shape[0] >= 224 and d.shape[1] >= 224]
    t = fp.Compose([fp.CenterCrop(224), fp.ToTensor(), fp.Normalize("imagenet")])
    out = np.empty((64, 3, 224, 224), np.float32)
    benchmark(_run, t, crops, out)


@pytest.mark.parametrize("kind", ["eval", "train"])
def test_fused(benchmark, datas, kind):
    """The whole pass from JPEG bytes to normalized float32 CHW."""
    if kind == "eval":
        ops = [fp.Resize(256), fp.CenterCrop(224)]
    else:
        ops = [fp.RandomResizedCrop(224), fp.RandomHorizontalFlip()]
    t = fp.Compose(ops + [fp.ToTensor(), fp.Normalize("imagenet")])
    out = np.empty((64, 3, 224, 224), np.float32)
    benchmark(_run, t, datas, out)
