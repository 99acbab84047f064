"""torchvision-shaped transforms that compile to one native plan.

A Compose is checked when it is built and turned into a single native pass: decode, resize, crop,
flip, normalise, cast and layout all happen while the output is written; nothing runs per pixel
in Python.
"""
import math
import numbers
import os
import secrets
import threading
import warnings

import numpy as np

from . import _core
from ._errors import DecodeError, error_for_kind
from . import _fallback

__all__ = [
    "Resize", "CenterCrop", "RandomResizedCrop", "RandomHorizontalFlip", "ToTensor", "Normalize",
    "Grayscale", "Compose", "InterpolationMode", "PRESETS", "DEFAULT_MAX_PIXELS",
]

# About Pillow's decompression-bomb error threshold (2 * 89,478,485).
DEFAULT_MAX_PIXELS = 178_956_970


class InterpolationMode:
    """Names as torchvision.transforms.InterpolationMode values."""
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


_INTERP = {"nearest": 0, "bilinear": 1, "bicubic": 2}
_DTYPES = {"uint8": 0, "float32": 1, "float16": 2, "bfloat16": 3}
_NP_DTYPES = {"uint8": np.uint8, "float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}
_LAYOUTS = {"CHW": 0, "HWC": 1}
_COLORS = {"RGB": 0, "BGR": 1, "GRAY": 2}

# name -> (mean, std, input range, color)
PRESETS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "unit", None),
    "caffe": ((103.939, 116.779, 123.68), (1.0, 1.0, 1.0), "255", "BGR"),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "unit", None),
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "unit", None),
    "imagenet255": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), "255", None),
}


def _interp_name(interpolation):
    name = getattr(interpolation, "value", interpolation)
    name = str(name).lower()
    if name not in _INTERP:
        raise ValueError(f"unsupported interpolation {interpolation!r}: use nearest, bilinear or bicubic")
    return name


def _pair(size, what):
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    if isinstance(size, (tuple, list)) and len(size) == 1:
        return int(size[0]), int(size[0])
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{what} size must be an int or (h, w), got {size!r}")


class _Op:
    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({args})"


class Resize(_Op):
    """Resize; an int resizes the shorter side (the longer side truncated, as torchvision),
    (h, w) resizes exactly. Antialiased when downscaling, as PIL and torchvision v2."""

    def __init__(self, size, interpolation="bilinear", max_size=None, antialias=True):
        if isinstance(size, (tuple, list)) and len(size) == 1:
            size = size[0]
        if isinstance(size, numbers.Integral):
            self.size = int(size)
        else:
            self.size = _pair(size, "Resize")
            if max_size is not None:
                raise ValueError("Resize max_size is only allowed with an int size")
        self.interpolation = _interp_name(interpolation)
        self.max_size = max_size
        self.antialias = bool(antialias) if antialias is not None else True


class CenterCrop(_Op):
    """Center crop; pads with zeros when the crop is larger than the image (as torchvision)."""

    def __init__(self, size):
        self.size = _pair(size, "CenterCrop")


class RandomResizedCrop(_Op):
    """Random area/aspect crop resized to ``size``: torchvision's get_params distribution,
    including its 10-attempt fallback, drawn from a stream keyed by (seed, epoch, index)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), interpolation="bilinear",
                 antialias=True):
        self.size = _pair(size, "RandomResizedCrop")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        if not (0 < self.scale[0] <= self.scale[1]):
            raise ValueError(f"RandomResizedCrop scale must satisfy 0 < lo <= hi, got {scale}")
        if not (0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"RandomResizedCrop ratio must satisfy 0 < lo <= hi, got {ratio}")
        self.interpolation = _interp_name(interpolation)
        self.antialias = bool(antialias) if antialias is not None else True


class RandomHorizontalFlip(_Op):
    def __init__(self, p=0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {p}")
        self.p = float(p)


class ToTensor(_Op):
    """Float output in [0, 1], CHW (torchvision's ToTensor)."""


class Grayscale(_Op):
    """One-channel luma output (ITU-R 601-2, as PIL's convert('L'))."""

    def __init__(self, num_output_channels=1):
        if num_output_channels != 1:
            raise ValueError("Grayscale(num_output_channels=3) is not supported; use 1")
        self.num_output_channels = 1


class Normalize(_Op):
    """(x - mean) / std per channel. ``Normalize("imagenet")`` and the other PRESETS set mean,
    std, the input range (0-1 or 0-255) and, for "caffe", BGR channel order."""

    def __init__(self, mean=None, std=None, preset=None):
        if isinstance(mean, str):
            preset, mean = mean, None
        self.preset = preset
        self.input_range = "unit"
        self.color = None
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f"unknown Normalize preset {preset!r}: one of {sorted(PRESETS)}")
            pmean, pstd, self.input_range, self.color = PRESETS[preset]
            mean = pmean if mean is None else mean
            std = pstd if std is None else std
        if mean is None or std is None:
            raise ValueError("Normalize needs mean and std (or a preset name)")
        mean = [float(m) for m in (mean if isinstance(mean, (list, tuple)) else [mean])]
        std = [float(s) for s in (std if isinstance(std, (list, tuple)) else [std])]
        if len(mean) == 1:
            mean = mean * 3
        if len(std) == 1:
            std = std * 3
        if len(mean) != 3 or len(std) != 3:
            raise ValueError("Normalize mean and std need 1 or 3 values")
        if any(s == 0 or not math.isfinite(s) for s in std) or not all(math.isfinite(m) for m in mean):
            raise ValueError(f"Normalize std must be finite and nonzero, got {std}")
        self.mean = tuple(mean)
        self.std = tuple(std)


_GEOMETRIC = (Resize, CenterCrop, RandomResizedCrop)


def _compile(transforms, exact, dtype, layout, color, simd, max_pixels, strict):
    """Validates the op order and returns the native plan spec (dict) and output description."""
    spec = {"exact": bool(exact), "max_pixels": int(max_pixels or 0), "strict": bool(strict)}
    stage = 0  # 0 geometry, 1 after flip, 2 after ToTensor, 3 after Normalize
    seen = set()
    has_tensor = False
    norm = None
    gray = False
    interp = None
    for op in transforms:
        name = type(op).__name__
        if not isinstance(op, _Op):
            raise TypeError(f"{op!r} is not a fastprep transform; use fastprep.from_torchvision() for torchvision ones")
        if type(op) in seen and not isinstance(op, _GEOMETRIC):
            raise ValueError(f"{name} appears twice")
        if isinstance(op, _GEOMETRIC):
            if stage > 0:
                raise ValueError(f"{name} after RandomHorizontalFlip/ToTensor/Normalize cannot be fused: "
                                 "put geometric ops first (flip commutes with them)")
            if isinstance(op, RandomResizedCrop):
                if seen & {Resize, CenterCrop, RandomResizedCrop}:
                    raise ValueError("RandomResizedCrop must be the only resize/crop op")
                spec.update(rrc=True, rrc_h=op.size[0], rrc_w=op.size[1], scale_lo=op.scale[0],
                            scale_hi=op.scale[1], ratio_lo=op.ratio[0], ratio_hi=op.ratio[1],
                            antialias=op.antialias)
                interp = op.interpolation
            elif isinstance(op, Resize):
                if seen & {Resize, CenterCrop, RandomResizedCrop}:
                    raise ValueError("Resize must come first and once (Resize then CenterCrop is fused)")
                if isinstance(op.size, int):
                    spec.update(resize_mode=1, resize_size=op.size, max_size=op.max_size or 0)
                else:
                    spec.update(resize_mode=2, resize_h=op.size[0], resize_w=op.size[1])
                spec["antialias"] = op.antialias
                interp = op.interpolation
            else:
                if seen & {CenterCrop, RandomResizedCrop}:
                    raise ValueError("CenterCrop after another crop cannot be fused")
                spec.update(crop_h=op.size[0], crop_w=op.size[1])
        elif isinstance(op, RandomHorizontalFlip):
            if stage > 1:
                raise ValueError("RandomHorizontalFlip must come before ToTensor/Normalize to be fused")
            spec["flip_p"] = op.p
            stage = 1
        elif isinstance(op, Grayscale):
            if stage > 1:
                raise ValueError("Grayscale must come before ToTensor/Normalize")
            gray = True
        elif isinstance(op, ToTensor):
            has_tensor = True
            stage = 2
        elif isinstance(op, Normalize):
            if not has_tensor and op.input_range == "unit":
                raise ValueError("Normalize needs ToTensor before it (as torchvision), or a 0-255 preset")
            norm = op
            stage = 3
        seen.add(type(op))
    spec["interp"] = _INTERP[interp or "bilinear"]

    if dtype is None:
        dtype = "float32" if (has_tensor or norm is not None) else "uint8"
    dtype = str(np.dtype(dtype)) if dtype != "bfloat16" and not hasattr(dtype, "is_floating_point") else str(dtype)
    dtype = dtype.replace("torch.", "")
    if dtype not in _DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}: one of {sorted(_DTYPES)}")
    if dtype == "uint8" and norm is not None:
        raise ValueError("dtype='uint8' stores raw levels (for normalising on the GPU): drop Normalize or use a float dtype")
    if layout is None:
        layout = "CHW" if (has_tensor or norm is not None) else "HWC"
    layout = layout.upper()
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be CHW or HWC, got {layout!r}")
    want_color = norm.color if norm is not None else None
    if color is None:
        color = "GRAY" if gray else (want_color or "RGB")
    color = color.upper()
    if color not in _COLORS:
        raise ValueError(f"color must be RGB, BGR or GRAY, got {color!r}")
    if gray and color != "GRAY":
        raise ValueError("Grayscale conflicts with color=" + color)
    if want_color and color != want_color:
        raise ValueError(f"Normalize preset {norm.preset!r} expects {want_color} channel order, got color={color!r}")

    spec.update(dtype=_DTYPES[dtype], layout=_LAYOUTS[layout], color=_COLORS[color])
    if norm is not None:
        spec.update(normalize=True, mean=list(norm.mean), std=list(norm.std), unit_range=norm.input_range == "unit")
    else:
        spec["unit_range"] = has_tensor
    if dtype == "uint8":
        spec["unit_range"] = False
    if simd:
        spec["simd"] = simd
    return spec, dtype, layout, color


class Compose:
    """A fused transform pipeline.

    Args:
        transforms: fastprep ops in torchvision order, e.g.
            ``[Resize(256), CenterCrop(224), ToTensor(), Normalize(mean, std)]``.
        exact: torchvision-exact numerics (no DCT-domain downscaling while decoding).
        dtype: "float32" (default with ToTensor), "float16", "bfloat16" (returned as uint16 bit
            patterns in numpy) or "uint8" (raw levels, default without ToTensor).
        layout: "CHW" (default with ToTensor) or "HWC".
        color: "RGB" (default), "BGR" or "GRAY".
        simd: "avx2", "sse41", "scalar" or None (best available, capped by FASTPREP_SIMD).
        max_pixels: images with more pixels are rejected from their header (0 = no limit).
        strict: corrupt-data warnings of the JPEG decoder are errors (default True).
        allow_truncated: a JPEG that ends early (a cut download) is decoded anyway, its missing
            rows mid-gray as PIL's ``LOAD_TRUNCATED_IMAGES``, with a ``UserWarning`` naming the
            file; other corrupt data stays an error while ``strict`` (default False).
        on_error: default policy of :meth:`batch`: "raise", "skip" or "zeros".
    """

    def __init__(self, transforms, *, exact=False, dtype=None, layout=None, color=None, simd=None,
                 max_pixels=DEFAULT_MAX_PIXELS, strict=True, on_error="raise", allow_truncated=False):
        self.transforms = list(transforms)
        self.exact = bool(exact)
        spec, self.dtype, self.layout, self.color = _compile(self.transforms, exact, dtype, layout, color, simd,
                                                            max_pixels, strict)
        spec["allow_truncated"] = self.allow_truncated = bool(allow_truncated)
        self._spec = spec
        try:
            self._plan = _core.Plan(spec)
        except ValueError as e:
            raise ValueError(f"cannot compile transforms: {e}") from None
        self.max_pixels = spec["max_pixels"]
        self.on_error = _check_policy(on_error)
        self._engines = {}
        self._lock = threading.Lock()

    def __repr__(self):
        ops = "\n".join(f"    {t!r}," for t in self.transforms)
        return f"Compose([\n{ops}\n], exact={self.exact}, dtype={self.dtype!r}, layout={self.layout!r}, color={self.color!r})"

    @property
    def simd(self):
        return self._plan.simd

    @property
    def channels(self):
        return self._plan.channels

    @property
    def output_size(self):
        """(h, w) of every output, or None when it depends on the image (Resize(int) alone)."""
        return self._plan.fixed_size

    def output_shape(self, h=None, w=None):
        if h is None:
            size = self._plan.fixed_size
            if size is None:
                raise ValueError("output size depends on the image: add CenterCrop or use Resize((h, w))")
            h, w = size
        c = self.channels
        return (c, h, w) if self.layout == "CHW" else (h, w, c)

    @property
    def np_dtype(self):
        return np.dtype(_NP_DTYPES[self.dtype])

    def _engine(self, threads):
        if threads is None:
            threads = _default_threads()
        threads = max(1, int(threads))
        with self._lock:
            eng = self._engines.get(threads)
            if eng is None:
                eng = self._engines[threads] = _core.Engine(threads)
        return eng

    def __call__(self, data, seed=None, epoch=0):
        """One image (bytes, path, or HxWxC uint8 array) -> np.ndarray of the output shape."""
        seed = _fresh_seed() if seed is None else int(seed)
        items = [_normalize_item(data)]
        engine = self._engine(1)
        size = self._plan.fixed_size
        if size is None:
            size = self._probe(items, engine, seed, epoch)
        out = np.empty((1,) + self.output_shape(*size), dtype=self.np_dtype)
        self._run(items, out, size, engine, seed, epoch, [0], "raise", want_params=False)
        return out[0]

    def batch(self, items, seed=0, threads=None, out=None, return_params=False, epoch=0, on_error=None,
              indices=None):
        """A list of images -> one (N, ...) array (or ``out``), processed by the native pool with
        the GIL released. Randomness depends only on (seed, epoch, index), never on threads.

        Args:
            seed: int, or None for fresh entropy.
            out: writable C-contiguous buffer of shape (N, *output_shape) and this dtype (numpy
                array or CPU torch tensor, pinned or not).
            return_params: also return, per sample, the crop box (top, left, height, width) in
                displayed source pixels, the flip, and the source size.
            on_error: "raise" (DecodeError naming index and file), "zeros" (slot zero-filled,
                recorded in params), or "skip" (bad samples dropped; the result is shorter).
                With an image-dependent output size (Resize(int) alone) a failing sample always
                raises: its output shape cannot be known.
            indices: per-item keys for the random stream (default 0..N-1).
        """
        seed = _fresh_seed() if seed is None else int(seed)
        policy = _check_policy(on_error or self.on_error)
        items = [_normalize_item(x) for x in items]
        n = len(items)
        size = self._plan.fixed_size
        engine = self._engine(threads)
        if size is None:
            if n != 1:
                raise ValueError("batch needs a fixed output size: add CenterCrop or use Resize((h, w))")
            size = self._probe(items, engine, seed, epoch, index=0 if indices is None else int(list(indices)[0]))
        shape = (n,) + self.output_shape(*size)
        keys = list(range(n)) if indices is None else [int(i) for i in indices]
        if len(keys) != n:
            raise ValueError("indices must have one entry per item")
        if out is None:
            arr = np.empty(shape, dtype=self.np_dtype)
            result = arr
        else:
            arr, result = _as_output(out, shape, self.np_dtype, self.dtype)
        params, failed = self._run(items, arr, size, engine, seed, epoch, keys, policy, want_params=return_params)
        if policy == "skip" and failed:
            keep = [i for i in range(n) if i not in failed]
            arr[: len(keep)] = arr[keep]
            result = result[: len(keep)]
            if params is not None:
                params = [params[i] for i in keep]
        if return_params:
            return result, params
        return result

    def _probe(self, items, engine, seed, epoch, index=None):
        """Output size of items[0] when it depends on the image. A failure raises whatever the
        on_error policy: the output shape cannot be known without the image."""
        key = 0 if index is None else index
        b = _core.Batch(self._plan, _core.Items(items), [0], [0], [key], seed, epoch)
        b.probe(engine)
        st = b.status()[0]
        name = _fallback.display_name(items[0], key)
        if st == 1:
            i, kind, msg = b.errors()[0]
            raise error_for_kind(kind, name, msg, index)
        if st == 2:
            try:
                items[0] = _fallback.decode(items[0], name, self.max_pixels)
            except DecodeError as e:
                e.index = index
                raise
            return self._probe(items, engine, seed, epoch, index)
        p = b.params()[0]
        return int(p[7]), int(p[8])

    def _run(self, items, arr, size, engine, seed, epoch, keys, policy, want_params=True):
        n = len(items)
        pos = np.arange(n, dtype=np.int64)
        params, errors = execute(self, _core.Items(items), items, pos, pos, keys, arr, size, engine, seed, epoch,
                                 want_params=want_params)
        failed = set()
        for i in sorted(errors):
            if policy == "raise":
                raise errors[i]
            failed.add(i)
            if params is not None:
                params[i]["error"] = str(errors[i])
            if policy == "zeros":
                arr[i] = 0
        return params, failed


def execute(compose, native_items, raw_items, picks, slots, keys, arr, size, engine, seed, epoch, want_params=True,
            cancel=None):
    """Runs picks[i] of the pinned items into arr[slots[i]] natively (GIL released), then decodes
    the non-JPEG ones with Pillow and runs those through the same native pass.

    picks, slots, keys: int64 sequences (numpy arrays pass through without a Python loop).
    Returns (params per position or None, {position: DecodeError}). When every sample is a JPEG
    that decodes, no Python code runs per sample.
    """
    plan = compose._plan
    picks = np.asarray(picks, dtype=np.int64)
    slots = np.asarray(slots, dtype=np.int64)
    keys = np.asarray(keys, dtype=np.int64)

    def name(i):
        return _fallback.display_name(raw_items[picks[i]], int(picks[i]))

    b = _core.Batch(plan, native_items, picks, slots, keys, seed, epoch, cancel)
    b.set_output(arr, size[0], size[1])
    b.run(engine)
    if cancel is not None and cancel.cancelled:
        return None, {}
    status = b.status()
    params = _params(b.params()) if want_params else None
    errors = {i: error_for_kind(kind, name(i), msg, int(picks[i])) for i, kind, msg in b.errors()}
    if compose.allow_truncated:
        for i in np.flatnonzero(b.warnings()):
            warnings.warn(f"{name(i)} (sample {picks[i]}): truncated JPEG decoded, its missing rows filled gray "
                          "(allow_truncated=True)", UserWarning, stacklevel=4)
    fallback = np.flatnonzero(status == 2)
    if len(fallback):
        decoded, pos = [], []
        for i in fallback:
            try:
                decoded.append(_fallback.decode(raw_items[picks[i]], name(i), compose.max_pixels))
                pos.append(int(i))
            except DecodeError as e:
                e.index = int(picks[i])
                e.args = (f"{e.source} (sample {picks[i]}): {e.reason}",)
                errors[int(i)] = e
        if decoded:
            pos_a = np.asarray(pos, np.int64)
            b2 = _core.Batch(plan, _core.Items(decoded), np.arange(len(pos)), slots[pos_a], keys[pos_a], seed, epoch)
            b2.set_output(arr, size[0], size[1])
            b2.run(engine)
            for j, kind, msg in b2.errors():
                errors[pos[j]] = error_for_kind(kind, name(pos[j]), msg, int(picks[pos[j]]))
            if want_params:
                p2 = _params(b2.params())
                for j, i in enumerate(pos):
                    params[i] = p2[j]
    return params, errors


def _params(p):
    return [{"box": (int(r[0]), int(r[1]), int(r[2]), int(r[3])), "flip": bool(r[4]),
             "source_size": (int(r[5]), int(r[6])), "decode_scale": 1.0 / max(int(r[9]), 1),
             "orientation": int(r[10])} for r in p]


def _check_policy(p):
    if p not in ("raise", "skip", "zeros"):
        raise ValueError(f"on_error must be 'raise', 'skip' or 'zeros', got {p!r}")
    return p


def _fresh_seed():
    return secrets.randbits(63)


def _default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _normalize_item(x):
    """str/PathLike -> str path; bytes-like -> as is; arrays -> uint8 numpy; torch -> numpy."""
    if isinstance(x, str):
        return x
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if isinstance(x, (bytes, bytearray, memoryview)):
        return x
    mod = type(x).__module__
    if mod.startswith("torch"):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8:
            raise TypeError(f"arrays must be uint8 (encoded bytes 1-D, or HxW[xC] pixels), got {x.dtype}")
        if x.ndim == 1:
            return np.ascontiguousarray(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"pixel arrays must be HxW or HxWxC, got shape {x.shape}")
        if x.ndim == 3 and x.shape[2] not in (1, 3, 4):
            raise ValueError(f"pixel arrays need 1, 3 or 4 channels (HWC), got shape {x.shape}")
        if x.ndim == 3 and x.strides[2] != 1:
            x = np.ascontiguousarray(x)
        return x
    if hasattr(x, "read"):
        return x.read()
    raise TypeError(f"cannot use {type(x).__name__} as an image: pass bytes, a path or a uint8 array")


def _as_output(out, shape, np_dtype, dtype_name):
    """Returns (numpy view to write, object to return) for a caller's buffer."""
    ret = out
    if type(out).__module__.startswith("torch"):
        import torch

        if out.device.type != "cpu":
            raise ValueError("out must be a CPU tensor (pinned is fine); copy to the GPU afterwards")
        want = {"uint8": torch.uint8, "float32": torch.float32, "float16": torch.float16,
                "bfloat16": torch.bfloat16}[dtype_name]
        if out.dtype != want:
            raise ValueError(f"out has dtype {out.dtype}, expected {want}")
        if not out.is_contiguous():
            raise ValueError("out must be contiguous")
        out = out.view(torch.int16).numpy().view(np.uint16) if dtype_name == "bfloat16" else out.numpy()
    if not isinstance(out, np.ndarray):
        out = np.asarray(out)
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(shape)}")
    if out.dtype != np_dtype:
        raise ValueError(f"out has dtype {out.dtype}, expected {np_dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writable")
    return out, ret
