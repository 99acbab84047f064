"""torchvision-shaped transforms that compile to one native plan.

A Compose is checked when it is built and turned into a single native pass: decode, resize, crop,
flip, normalise, cast and layout all happen while the output is written; nothing runs per pixel
in Python.
"""
import math
import numbers
import os
import secrets
import sys
import threading
import warnings

import numpy as np

from . import _core
from ._errors import DecodeError, MissingDependencyError, error_for_kind
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


_MAX_SIDE = 2**31 - 1  # native sizes are C ints


def _side(v, what, arg="size", full=None):
    """One output side: an int in [1, 2**31). Python and numpy ints pass; bool, float, str do not."""
    shown = repr(full if full is not None else v)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{what} {arg} must be a positive int or (h, w) of ints, got {shown}")
    v = int(v)
    if not 1 <= v <= _MAX_SIDE:
        raise ValueError(f"{what} {arg} must be between 1 and 2**31 - 1, got {shown}")
    return v


def _pair(size, what):
    if isinstance(size, (tuple, list)) and len(size) in (1, 2):
        return _side(size[0], what, full=size), _side(size[-1], what, full=size)
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        v = _side(size, what)
        return v, v
    raise ValueError(f"{what} size must be a positive int or (h, w) of ints, got {size!r}")


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
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            self.size = _side(size, "Resize")
        else:
            self.size = _pair(size, "Resize")
            if max_size is not None:
                raise ValueError("Resize max_size is only allowed with an int size")
        if max_size is not None:
            max_size = _side(max_size, "Resize", "max_size")
            if max_size <= self.size:
                raise ValueError(f"Resize max_size must be greater than size, got max_size={max_size}, "
                                 f"size={self.size}")
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
        self.scale = _range2(scale, "scale")
        self.ratio = _range2(ratio, "ratio")
        if not (0 < self.scale[0] <= self.scale[1]):
            raise ValueError(f"RandomResizedCrop scale must satisfy 0 < lo <= hi, got {scale}")
        if not (0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"RandomResizedCrop ratio must satisfy 0 < lo <= hi, got {ratio}")
        self.interpolation = _interp_name(interpolation)
        self.antialias = bool(antialias) if antialias is not None else True


def _range2(v, arg):
    try:
        lo, hi = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"RandomResizedCrop {arg} must be two numbers (lo, hi), got {v!r}") from None
    return lo, hi


class RandomHorizontalFlip(_Op):
    def __init__(self, p=0.5):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip p (the flip probability) must be a number in [0, 1], got {p!r}")
        self.p = float(p)


class ToTensor(_Op):
    """Float output in [0, 1], CHW (torchvision's ToTensor)."""


class Grayscale(_Op):
    """Luma output (ITU-R 601-2, as PIL's convert('L')): one channel, or with
    ``num_output_channels=3`` three equal channels (torchvision's Grayscale(3))."""

    def __init__(self, num_output_channels=1):
        if isinstance(num_output_channels, bool) or num_output_channels not in (1, 3):
            raise ValueError(f"Grayscale num_output_channels must be 1 or 3, got {num_output_channels!r}")
        self.num_output_channels = int(num_output_channels)


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
        mean = _floats3(mean, "mean")
        std = _floats3(std, "std")
        if not all(math.isfinite(m) and abs(m) <= _F32_MAX for m in mean):
            raise ValueError(f"Normalize mean must be finite float32 values, got {list(mean)}")
        if any(s == 0 or not math.isfinite(s) or abs(s) > _F32_MAX for s in std):
            raise ValueError(f"Normalize std must be finite and nonzero, got {list(std)}")
        self.mean = mean
        self.std = std
        _check_table(self, has_tensor=self.input_range == "unit", dtype="float32")


_F32_MAX = float(np.finfo(np.float32).max)


def _floats3(v, arg):
    """mean/std as 3 Python floats: a number, or a sequence / numpy array / torch tensor of 1 or 3."""
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        vals = [float(v)]
    else:
        if _is_torch_tensor(v):
            v = v.detach().cpu().double().numpy()
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Normalize {arg} must be a number or a sequence of 1 or 3 numbers, got {v!r}") from None
        if arr.ndim > 1:
            raise ValueError(f"Normalize {arg} must be a flat sequence of 1 or 3 numbers, got shape {arr.shape}")
        vals = [float(x) for x in arr.reshape(-1)]
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise ValueError(f"Normalize {arg} needs 1 or 3 values (one per channel), got {len(vals)}: {vals}")
    return tuple(vals)


def _check_table(norm, has_tensor, dtype):
    """Raises ValueError naming std when (level - mean) / std, computed in float32 as torchvision
    does (and as the native table is filled), is not finite in the output dtype."""
    if dtype == "uint8":
        return
    with np.errstate(all="ignore"):
        lv = np.arange(256, dtype=np.float32)
        x = lv / np.float32(255.0) if has_tensor else lv
        vals = (x[None, :] - np.array(norm.mean, np.float32)[:, None]) / np.array(norm.std, np.float32)[:, None]
        if dtype == "float16":
            vals = vals.astype(np.float16)
        elif dtype == "bfloat16":  # round to nearest even on the top 16 bits, as the native cast
            b = vals.view(np.uint32).astype(np.uint64)
            b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF
            vals = np.where((b & 0x7F80) == 0x7F80, np.inf, 0.0)
    bad = ~np.isfinite(vals).all(axis=1)
    if bad.any():
        c = int(np.flatnonzero(bad)[0])
        raise ValueError(f"Normalize std={list(norm.std)} is too small for {dtype} output: (x - mean) / std "
                         f"overflows to inf on channel {c} (largest finite {dtype}: "
                         f"{'65504' if dtype == 'float16' else '3.4e38'}); use a larger std"
                         + ("" if dtype == "float32" else " or dtype='float32'"))


_GEOMETRIC = (Resize, CenterCrop, RandomResizedCrop)


def _compile(transforms, exact, dtype, layout, color, simd, max_pixels, strict):
    """Validates the op order and returns the native plan spec (dict) and output description."""
    spec = {"exact": bool(exact), "max_pixels": int(max_pixels or 0), "strict": bool(strict)}
    stage = 0  # 0 geometry, 1 after flip, 2 after ToTensor, 3 after Normalize
    seen = set()
    has_tensor = False
    norm = None
    gray = 0  # output channels of a Grayscale op (0 = none)
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
            gray = op.num_output_channels
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
    if norm is not None:
        _check_table(norm, norm.input_range == "unit", dtype)
    if want_color and color != want_color:
        raise ValueError(f"Normalize preset {norm.preset!r} expects {want_color} channel order, got color={color!r}")

    spec.update(dtype=_DTYPES[dtype], layout=_LAYOUTS[layout], color=_COLORS[color], gray_channels=gray or 1)
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
        exact: True (default): torchvision's pixels, within 1 uint8 level of torchvision v1/v2.
            False: fast mode, which lets libjpeg-turbo downscale in the DCT domain (1/2, 1/4, 1/8)
            while decoding whenever the image stays at least twice the size the resize needs
            (large photos, small outputs); PSNR >= 40 dB against exact, identical otherwise.
        backend: None (default): a torch.Tensor comes out when the input (for :meth:`batch`, any
            item) is a torch tensor, a numpy array otherwise; "torch" or "numpy" forces one.
            bfloat16 comes out as torch.bfloat16, or as uint16 bit patterns in numpy.
        dtype: "float32" (default with ToTensor), "float16", "bfloat16" or "uint8" (raw levels,
            default without ToTensor).
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

    def __init__(self, transforms, *, exact=True, dtype=None, layout=None, color=None, simd=None,
                 max_pixels=DEFAULT_MAX_PIXELS, strict=True, on_error="raise", allow_truncated=False, backend=None):
        if isinstance(transforms, _Op):
            raise TypeError(f"Compose takes a list of transforms, got a single {type(transforms).__name__}: "
                            "wrap it in a list")
        self.transforms = list(transforms)
        self.exact = bool(exact)
        if backend not in (None, "numpy", "torch"):
            raise ValueError(f"backend must be None, 'numpy' or 'torch', got {backend!r}")
        if backend == "torch":
            _torch()
        self.backend = backend
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
        self._pid = os.getpid()

    def __repr__(self):
        ops = "\n".join(f"    {t!r}," for t in self.transforms)
        return (f"Compose([\n{ops}\n], exact={self.exact}, dtype={self.dtype!r}, layout={self.layout!r}, "
                f"color={self.color!r}" + (f", backend={self.backend!r})" if self.backend else ")"))

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
        threads = _default_threads() if threads is None else _check_threads(threads)
        if self._pid != os.getpid():
            # A forked child: the lock may have been copied while another thread held it. The
            # engines rebuild their own native pools (Note [Fork] in csrc/thread_pool.h).
            self._pid = os.getpid()
            self._lock = threading.Lock()
        with self._lock:
            eng = self._engines.get(threads)
            if eng is None:
                eng = self._engines[threads] = _core.Engine(threads)
        return eng

    def __call__(self, data, seed=None, epoch=0):
        """One image -> an array of the output shape.

        ``data``: a path (str or PathLike), encoded bytes (bytes-like, or a 1-D uint8 numpy array
        or tensor), decoded pixels (HxW or HxWxC uint8 numpy array; a CHW or HxW uint8 torch
        tensor, as ``torchvision.io.decode_jpeg`` returns, or HWC when unambiguous), or a PIL
        image (converted to RGB as torchvision's default loader; "L" stays gray). Returns a torch
        tensor for a tensor input (see ``backend``), a numpy array otherwise.
        """
        if isinstance(data, (list, tuple)):
            raise TypeError(f"Compose() takes one image, got a {type(data).__name__}: use .batch(items) for several")
        seed = _fresh_seed() if seed is None else _check_seed(seed)
        epoch = _check_epoch(epoch)
        want_torch = self._want_torch(_is_torch_tensor(data))
        items = [_normalize_item(data)]
        engine = self._engine(1)
        size = self._plan.fixed_size
        if size is None:
            size = self._probe(items, engine, seed, epoch)
        out = np.empty((1,) + self.output_shape(*size), dtype=self.np_dtype)
        self._run(items, out, size, engine, seed, epoch, [0], "raise", want_params=False)
        return self._wrap(out[0], want_torch)

    def _want_torch(self, torch_input):
        return self.backend == "torch" or (self.backend is None and torch_input)

    def _wrap(self, arr, want_torch):
        if not want_torch:
            return arr
        torch = _torch()
        if self.dtype == "bfloat16":
            return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(arr)

    def batch(self, items, seed=0, threads=None, out=None, return_params=False, epoch=0, on_error=None,
              indices=None):
        """A list of images -> one (N, ...) array (or ``out``), processed by the native pool with
        the GIL released. Randomness depends only on (seed, epoch, index), never on threads.

        Args:
            items: a list (or any iterable, e.g. a uint8 NCHW tensor) of what ``__call__`` takes.
                The result is a torch tensor when any item is one (see ``backend``).
            seed: int in [0, 2**64), or None for fresh entropy.
            epoch: int in [0, 2**64).
            threads: native threads, an int >= 1 (default: all usable cores).
            out: writable C-contiguous buffer of shape (N, *output_shape) and this dtype (numpy
                array or CPU torch tensor, pinned or not).
            return_params: also return, per sample, the crop box (top, left, height, width) in
                displayed source pixels, the flip, and the source size.
            on_error: "raise" (DecodeError naming index and file), "zeros" (slot zero-filled,
                recorded in params), or "skip" (bad samples dropped; the result is shorter).
                With an image-dependent output size (Resize(int) alone) a failing sample always
                raises: its output shape cannot be known.
            indices: per-item keys for the random stream (default 0..N-1), ints >= 0.
        """
        _check_items(items)
        seed = _fresh_seed() if seed is None else _check_seed(seed)
        epoch = _check_epoch(epoch)
        policy = _check_policy(on_error or self.on_error)
        raw = list(items)
        want_torch = self._want_torch(any(_is_torch_tensor(x) for x in raw))
        items = [_normalize_item(x) for x in raw]
        n = len(items)
        size = self._plan.fixed_size
        engine = self._engine(threads)
        if size is None and n != 1:
            raise ValueError("batch needs a fixed output size: add CenterCrop or use Resize((h, w))")
        keys = list(range(n)) if indices is None else _check_indices(indices)
        if len(keys) != n:
            raise ValueError(f"indices must have one entry per item: {len(keys)} for {n} items")
        if size is None:
            size = self._probe(items, engine, seed, epoch, index=keys[0])
        shape = (n,) + self.output_shape(*size)
        if out is None:
            arr = np.empty(shape, dtype=self.np_dtype)
            result = None
        else:
            arr, result = _as_output(out, shape, self.np_dtype, self.dtype)
        params, failed = self._run(items, arr, size, engine, seed, epoch, keys, policy, want_params=return_params)
        if result is None:
            result = self._wrap(arr, want_torch)
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


_U64 = 2**64


def _check_u64(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int in [0, 2**64), got {type(value).__name__} {value!r}")
    value = int(value)
    if not 0 <= value < _U64:
        raise ValueError(f"{name} must be an int in [0, 2**64), got {value}")
    return value


def _check_seed(seed, name="seed"):
    """A random seed: a Python or numpy int with 0 <= seed < 2**64 -> Python int. ValueError
    naming ``name`` otherwise (None is the caller's business: it means fresh entropy)."""
    return _check_u64(seed, name)


def _check_epoch(epoch):
    """An epoch number: a Python or numpy int with 0 <= epoch < 2**64 -> Python int."""
    return _check_u64(epoch, "epoch")


_MAX_THREADS = 1024


def _check_threads(threads):
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or not 1 <= threads <= _MAX_THREADS:
        raise ValueError(f"threads must be None (all usable cores) or an int in [1, {_MAX_THREADS}], got {threads!r}")
    return int(threads)


def _check_indices(indices):
    if isinstance(indices, np.ndarray) and indices.dtype.kind in "iu":
        keys = indices.reshape(-1)
        if keys.size and (keys.min() < 0 or keys.max() >= 2**63):
            raise ValueError("indices must be ints in [0, 2**63)")
        return [int(k) for k in keys]
    keys = []
    for k in indices:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k < 2**63:
            raise ValueError(f"indices must be ints in [0, 2**63), got {k!r}")
        keys.append(int(k))
    return keys


def _check_items(items):
    """batch() takes a list: a lone path, bytes or image is refused (a str would be iterated
    character by character)."""
    one = None
    if isinstance(items, (str, os.PathLike)):
        one = "a path"
    elif isinstance(items, (bytes, bytearray, memoryview)):
        one = "encoded bytes"
    elif _is_pil_image(items):
        one = "a PIL image"
    elif (_is_torch_tensor(items) and items.ndim <= 1) or (
            isinstance(items, np.ndarray) and (items.ndim == 0 or (items.ndim == 1 and items.dtype == np.uint8))):
        one = "a 1-D array (encoded bytes of one image)"
    elif hasattr(items, "read"):
        one = "a file object"
    if one is not None:
        raise TypeError(f"batch() takes a list of images, got {one} ({type(items).__name__}): "
                        "pass a list, e.g. t.batch([x]), or call t(x) for one image")
    if not hasattr(items, "__iter__"):
        raise TypeError(f"batch() takes a list of images, got {type(items).__name__}")


def _default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _is_torch_tensor(x):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_pil_image(x):
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(x, pil.Image)


def _torch():
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("backend='torch' needs torch: pip install 'fastprep[torch]' "
                                     "(or pip install torch)") from None
    return torch


def _tensor_to_numpy(x):
    """A uint8 torch tensor -> numpy: 1-D encoded bytes, HxW gray, CHW (torchvision's convention,
    as decode_jpeg returns) or HWC when unambiguous -> HxWxC."""
    import torch

    if x.dtype != torch.uint8:
        raise TypeError(f"tensors must be uint8 (encoded bytes 1-D, HxW, or CxHxW pixels), got {x.dtype}; "
                        "float tensors: convert with (x * 255).round().to(torch.uint8)")
    x = x.detach()
    if x.device.type != "cpu":
        x = x.cpu()
    if x.ndim == 3:
        c_first, c_last = x.shape[0] in (1, 3, 4), x.shape[2] in (1, 3, 4)
        if c_first:
            x = x.permute(1, 2, 0)  # CHW -> HWC
        elif not c_last:
            raise ValueError(f"image tensors must be CxHxW with C in 1, 3, 4 (or HxWxC), got shape {tuple(x.shape)}")
    elif x.ndim not in (1, 2):
        raise ValueError(f"image tensors must be 1-D (encoded bytes), HxW or CxHxW, got shape {tuple(x.shape)}"
                         + ("; for a batch, pass it to .batch()" if x.ndim == 4 else ""))
    return np.ascontiguousarray(x.numpy())


def _pil_to_numpy(im):
    """A PIL image -> uint8 pixels, as torchvision's default loader's convert("RGB") (alpha
    dropped, palettes expanded); "L" stays one channel, replicated natively (same pixels)."""
    try:
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        return np.asarray(im)
    except (ValueError, OSError) as e:
        raise ValueError(f"cannot convert PIL image (mode {im.mode!r}, size {im.size}) to RGB: {e}") from None


def _normalize_item(x):
    """str/PathLike -> str path; bytes-like -> as is; arrays -> uint8 numpy; torch/PIL -> numpy."""
    if isinstance(x, (str, os.PathLike)):
        return _fallback.path_str(x)
    if isinstance(x, (bytes, bytearray, memoryview)):
        return x
    if _is_torch_tensor(x):
        x = _tensor_to_numpy(x)
    elif _is_pil_image(x):
        x = _pil_to_numpy(x)
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
    raise TypeError(f"cannot use {type(x).__name__} as an image: pass a path, bytes, a uint8 numpy array or "
                    "torch tensor, or a PIL image")


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
