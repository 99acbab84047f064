"""Built-in sample set: photo-like synthetic scenes, generated at first use and cached.

Random-noise JPEGs are not images: their entropy data is huge and decode/resize costs are wrong.
These scenes have the statistics that matter for a pipeline benchmark: a 1/f amplitude spectrum
(natural images fall off as about 1/f), correlated colour channels, smooth regions and sharp
occlusion edges, encoded as 4:2:0 JPEGs at ImageNet-like sizes and qualities.
"""
import json
import os

import numpy as np

from .. import _core
from .._util import cache_root

_VERSION = 1
_SIZES = [(375, 500), (500, 375), (333, 500), (500, 333), (375, 500), (400, 500), (500, 500), (427, 640)]


def cache_dir():
    return os.path.join(cache_root(), f"samples-v{_VERSION}")


def _field(rng, h, w, alpha):
    """Gaussian random field with a 1/f^alpha amplitude spectrum, zero mean, unit std."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f ** -alpha
    amp[0, 0] = 0.0
    spec = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
    x = np.fft.irfft2(spec, s=(h, w))
    return (x - x.mean()) / (x.std() + 1e-12)


def scene(rng, h, w):
    """One photo-like RGB scene, HxWx3 uint8."""
    lum = _field(rng, h, w, 1.1)
    chroma = [_field(rng, h, w, 1.4) for _ in range(2)]
    # occluding objects: a few ellipses with their own texture and colour
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.array(rng.uniform(0.25, 0.75, 3))
    img = base[None, None, :] + 0.12 * lum[..., None] + 0.05 * np.stack([chroma[0], -0.5 * chroma[0] + 0.5 * chroma[1],
                                                                        chroma[1]], -1)
    for _ in range(int(rng.integers(3, 9))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.05, 0.35) * h, rng.uniform(0.05, 0.35) * w
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0
        tex = _field(rng, h, w, 1.2)
        color = np.array(rng.uniform(0.05, 0.95, 3))
        img[mask] = color + 0.10 * tex[mask][:, None]
    # vignetting + gentle gamma, like a camera
    v = 1.0 - 0.25 * (((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2)
    img = np.clip(img * v[..., None], 0.0, 1.0) ** 0.9
    return (img * 255.0 + rng.uniform(-0.5, 0.5, img.shape)).clip(0, 255).astype(np.uint8)


def sample_paths(count=64, seed=0, progress=None):
    """Paths of the built-in sample JPEGs, generating them on first use."""
    d = os.path.join(cache_dir(), f"n{count}-s{seed}")
    manifest = os.path.join(d, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            names = json.load(f)["files"]
        paths = [os.path.join(d, n) for n in names]
        if all(os.path.exists(p) for p in paths):
            return paths
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(count):
        h, w = _SIZES[i % len(_SIZES)]
        img = scene(rng, h, w)
        q = int(rng.integers(75, 96))
        data = bytes(_core.encode_jpeg(img, q, 420, False))
        name = f"sample_{i:03d}_{w}x{h}_q{q}.jpg"
        tmp = os.path.join(d, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(d, name))
        names.append(name)
        if progress:
            progress(i + 1, count)
    tmp = manifest + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"version": _VERSION, "files": names}, f)
    os.replace(tmp, manifest)
    return [os.path.join(d, n) for n in names]
