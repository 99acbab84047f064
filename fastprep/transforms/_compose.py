"""Compose: torchvision-shaped transforms compiled to one native plan.

A Compose checks its ops when it is built (the rules come from the op registry, _op.py)
and turns them into a single native pass: decode, resize, crop, flips, colour, normalise, cast and
layout all happen while the output is written; nothing runs per pixel in Python.
"""
import concurrent.futures as cf
import os
import threading
import warnings

import numpy as np

from .. import _core
from .. import io as fio
from .._checks import (check_epoch, check_indices, check_items, check_max_pixels, check_policy, check_seed,
                      check_threads, fresh_seed, is_pil_image, is_torch_tensor)
from .._errors import DecodeError, MissingDependencyError, error_for_kind
from .._util import default_threads
from ._op import CompileContext, Op, OutputOptions, check_order, flatten
from ._pool import OutputPool

__all__ = ["Compose", "DEFAULT_MAX_PIXELS"]

# About Pillow's decompression-bomb error threshold (2 * 89,478,485).
DEFAULT_MAX_PIXELS = 178_956_970

_NP_DTYPES = {"uint8": np.uint8, "float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}
_OK = int(_core.SampleStatus.ok)
_ERROR = int(_core.SampleStatus.error)
_NOT_JPEG = int(_core.SampleStatus.not_jpeg)


def _compile(transforms, exact, dtype, layout, color, simd, max_pixels, strict):
    """Checks the op order (registry rules), lets each op set its plan fields, and resolves the
    output options. Returns (PlanSpec, dtype, layout, color)."""
    check_order(transforms)
    spec = _core.PlanSpec()
    spec.exact, spec.max_pixels, spec.strict = bool(exact), check_max_pixels(max_pixels), bool(strict)
    ctx = CompileContext()
    for op in transforms:
        op.check(ctx)
        op.compile(spec, ctx)
        ctx.ops.append(op)
    ctx.finish(spec)
    spec.interp = getattr(_core.Interp, ctx.interp or "bilinear")
    norm = ctx.norm

    if dtype is None:
        dtype = "float32" if (ctx.has_tensor or norm is not None) else "uint8"
    dtype = str(np.dtype(dtype)) if dtype != "bfloat16" and not hasattr(dtype, "is_floating_point") else str(dtype)
    dtype = dtype.replace("torch.", "")
    if dtype not in _core.DType.__members__:
        raise ValueError(f"unsupported dtype {dtype!r}: one of {sorted(_core.DType.__members__)}")
    if dtype == "uint8" and norm is not None:
        raise ValueError("dtype='uint8' stores raw levels (for normalising on the GPU): drop Normalize or use a float dtype")
    if layout is None:
        layout = "CHW" if (ctx.has_tensor or norm is not None) else "HWC"
    layout = layout.upper()
    if layout not in _core.Layout.__members__:
        raise ValueError(f"layout must be CHW or HWC, got {layout!r}")
    want_color = ctx.want_color
    if color is None:
        color = "GRAY" if ctx.gray else (want_color or "RGB")
    colors = {c.upper(): c for c in _core.Color.__members__}
    if not isinstance(color, str) or color.upper() not in colors:
        raise ValueError(f"color must be RGB, BGR, GRAY or YCbCr, got {color!r}")
    color = colors[color.upper()]
    out = OutputOptions(dtype, layout, color, 1 if color == "GRAY" and (ctx.gray or 1) == 1 else 3)
    for op in transforms:
        op.check_output(out)

    spec.dtype = getattr(_core.DType, dtype)
    spec.layout = getattr(_core.Layout, layout)
    spec.color = getattr(_core.Color, color)
    spec.gray_channels = ctx.gray or 1
    if norm is not None and not norm.per_image:
        spec.unit_range = norm.input_range == "unit"
    else:
        spec.unit_range = ctx.has_tensor
    if dtype == "uint8" or ctx.levels:  # ToTensor(scale=False): 0-255 float values
        spec.unit_range = False
    if simd:
        if not isinstance(simd, str):
            raise ValueError(f"simd must be a level name (scalar, sse41, avx2, neon or auto), got {simd!r}")
        spec.simd = _core.parse_simd(simd)
    return spec, dtype, layout, color, ctx.slots


def _check_output_size(plan, max_pixels):
    """A fixed output larger than max_pixels (CenterCrop(100000) is 10**10 pixels a sample) is
    refused when the Compose is built, not by an allocation failure at the first batch."""
    size = plan.fixed_size
    if size is not None and max_pixels and size[0] * size[1] > max_pixels:
        raise ValueError(f"the output would be {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels per image, over "
                         f"max_pixels={max_pixels:,}: use a smaller size, or raise max_pixels (0 = no limit)")


class Compose:
    """A fused transform pipeline.

    Args:
        transforms: fastprep ops in torchvision order, e.g.
            ``[Resize(256), CenterCrop(224), ToTensor(), Normalize(mean, std)]``.
        exact: True (default): torchvision's pixels, within 1 uint8 level of torchvision v1/v2.
            False: fast mode: the resampler's weights are 16-bit (a level or two on about 0.15% of
            values), and libjpeg-turbo downscales in the DCT domain (1/2, 1/4, 1/8) while decoding
            whenever the image stays at least twice the size the resize needs (large photos, small
            outputs); PSNR >= 40 dB against exact.
        backend: None (default): a torch.Tensor comes out when the input (for :meth:`batch`, any
            item) is a torch tensor, a numpy array otherwise; "torch" or "numpy" forces one.
            bfloat16 comes out as torch.bfloat16, or as uint16 bit patterns in numpy.
        dtype: "float32" (default with ToTensor), "float16", "bfloat16" or "uint8" (raw levels,
            default without ToTensor).
        layout: "CHW" (default with ToTensor) or "HWC".
        color: "RGB" (default), "BGR", "GRAY" or "YCbCr" (PIL's ``convert("YCbCr")``: JPEG's
            full-range BT.601, identical bytes; converted after the colour ops, before ToTensor).
        simd: "avx2", "sse41" (x86-64), "neon" (AArch64), "scalar" or None (best available, capped by
            FASTPREP_SIMD).
        max_pixels: images with more pixels are rejected from their header (0 = no limit).
        strict: corrupt-data warnings of the JPEG decoder are errors (default True).
        allow_truncated: a JPEG or PNG that ends early (a cut download) is decoded anyway, its
            missing rows as PIL's ``LOAD_TRUNCATED_IMAGES`` leaves them (JPEG: mid-gray; PNG:
            black), with a ``UserWarning`` naming the file; other corrupt data stays an error
            while ``strict``; a cut-off WebP stays an error, as in Pillow (default False).
        on_error: default policy of :meth:`batch`: "raise", "skip" or "zeros".
        apply_exif_orientation: False (default): images as stored, as torchvision's loaders give
            them (``datasets.folder.pil_loader``, ``io.decode_jpeg`` / ``decode_image`` by default)
            and timm's. True: each image shown with its EXIF orientation first (as
            ``ImageOps.exif_transpose``, or ``decode_image(..., apply_exif_orientation=True)``);
            only the part a crop reads is decoded, then turned.
        splice_restarts: True (default): a baseline JPEG whose restart markers start every MCU row
            (``fastprep optimize`` writes them) has only the restart intervals around the region
            the transform reads decoded; the pixels are the same as a full decode's. False: every
            JPEG is decoded the usual way (for comparisons).
    """

    def __init__(self, transforms, *, exact=True, dtype=None, layout=None, color=None, simd=None,
                 max_pixels=DEFAULT_MAX_PIXELS, strict=True, on_error="raise", allow_truncated=False, backend=None,
                 apply_exif_orientation=False, splice_restarts=True):
        if isinstance(transforms, Op):
            raise TypeError(f"Compose takes a list of transforms, got a single {type(transforms).__name__}: "
                            "wrap it in a list")
        self.transforms = list(transforms)
        self.exact = bool(exact)
        if backend not in (None, "numpy", "torch"):
            raise ValueError(f"backend must be None, 'numpy' or 'torch', got {backend!r}")
        if backend == "torch":
            _torch()
        self.backend = backend
        spec, self.dtype, self.layout, self.color, self._slots = _compile(self.transforms, exact, dtype, layout,
                                                                          color, simd, max_pixels, strict)
        spec.allow_truncated = self.allow_truncated = bool(allow_truncated)
        self.strict = bool(strict)
        if not isinstance(apply_exif_orientation, (bool, np.bool_)):
            raise TypeError(f"apply_exif_orientation must be True or False, got {apply_exif_orientation!r}")
        spec.apply_exif = self.apply_exif_orientation = bool(apply_exif_orientation)
        if not isinstance(splice_restarts, (bool, np.bool_)):
            raise TypeError(f"splice_restarts must be True or False, got {splice_restarts!r}")
        spec.splice_restarts = self.splice_restarts = bool(splice_restarts)
        try:
            self._plan = _core.Plan(spec)
            # FiveCrop / TenCrop: one plan per crop, differing only in the window and the flips.
            self._crop_plans = [self._plan]
            multi = next((op for op in flatten(self.transforms) if getattr(op, "crops", None)), None)
            if multi is not None:
                self._crop_plans = []
                for anchor, hflip, vflip in multi.crops:
                    s = self._plan.spec
                    s.crop_anchor = anchor
                    s.flip_p, s.vflip_p = (1.0 if hflip else s.flip_p), (1.0 if vflip else s.vflip_p)
                    self._crop_plans.append(_core.Plan(s))
                self._plan = self._crop_plans[0]
        except ValueError as e:
            raise ValueError(f"cannot compile transforms: {e}") from None
        self.max_pixels = spec.max_pixels
        _check_output_size(self._plan, self.max_pixels)
        self._options = dict(exact=exact, dtype=dtype, layout=layout, color=color, simd=simd, max_pixels=max_pixels,
                             strict=strict, on_error=on_error, allow_truncated=allow_truncated, backend=backend,
                             apply_exif_orientation=self.apply_exif_orientation,
                             splice_restarts=self.splice_restarts)
        self.on_error = check_policy(on_error)
        self._engines = {}
        self._local = threading.local()  # last_seed, per calling thread
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._pool = OutputPool()  # batch() outputs without out= (Note [Output pool])

    # Pickling: a Compose is rebuilt from its ops and options (in another process it gets its
    # own native plan and pools), so it can be sent to multiprocessing / DataLoader workers / Ray.
    def __reduce__(self):
        options = dict(self._options, on_error=self.on_error, backend=self.backend)  # public, settable
        return (rebuild_compose, (type(self), self.transforms, options))

    def __repr__(self):
        ops = "\n".join(f"    {t!r}," for t in self.transforms)
        return (f"Compose([\n{ops}\n], exact={self.exact}, dtype={self.dtype!r}, layout={self.layout!r}, "
                f"color={self.color!r}" + (f", backend={self.backend!r}" if self.backend else "")
                + (", apply_exif_orientation=True" if self.apply_exif_orientation else "") + ")")

    def with_options(self, **options):
        """A new Compose of the same ops with some options changed (``exact``, ``dtype``,
        ``apply_exif_orientation``, ...)."""
        opts = dict(self._options, on_error=self.on_error, backend=self.backend)
        opts.update(options)
        return type(self)(self.transforms, **opts)

    @property
    def last_seed(self):
        """The seed the last :meth:`batch` or call made on this thread used (drawn fresh when it
        was given none), so that a run can be replayed: ``t.batch(items, seed=t.last_seed)``.
        Per thread: two threads calling one Compose each read their own. None before any call."""
        return getattr(self._local, "seed", None)

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

    @property
    def crops_per_sample(self):
        """Outputs per sample: 1, or FiveCrop's 5 / TenCrop's 10 (an extra axis after N)."""
        return len(self._crop_plans)

    def output_shape(self, h=None, w=None):
        if h is None:
            size = self._plan.fixed_size
            if size is None:
                raise ValueError("output size depends on the image: add CenterCrop or use Resize((h, w))")
            h, w = size
        c = self.channels
        shape = (c, h, w) if self.layout == "CHW" else (h, w, c)
        return shape if len(self._crop_plans) == 1 else (len(self._crop_plans),) + shape

    @property
    def np_dtype(self):
        return np.dtype(_NP_DTYPES[self.dtype])

    @property
    def spec(self):
        """The compiled native plan fields (a copy; ``_core.PlanSpec``)."""
        return self._plan.spec

    def engine(self, threads=None):
        """The native thread pool of ``threads`` threads this Compose runs on (created once)."""
        threads = default_threads() if threads is None else check_threads(threads)
        if self._pid != os.getpid():
            # A forked child: the lock may have been copied while another thread held it. The
            # engines rebuild their own native pools (Note [Fork] in csrc/pipeline/thread_pool.h).
            self._pid = os.getpid()
            self._lock = threading.Lock()
        with self._lock:
            eng = self._engines.get(threads)
            if eng is None:
                eng = self._engines[threads] = _core.Engine(threads)
        return eng

    _engine = engine  # the name older code and tests use

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
        seed = fresh_seed() if seed is None else check_seed(seed)
        self._local.seed = seed
        epoch = check_epoch(epoch)
        want_torch = self._want_torch(is_torch_tensor(data))
        items = [_normalize_item(data)]
        engine = self.engine(1)
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

    def batch(self, items, seed=None, threads=None, out=None, return_params=False, epoch=0, on_error=None,
              indices=None):
        """A list of images -> one (N, ...) array (or ``out``), processed by the native pool with
        the GIL released. Randomness depends only on (seed, epoch, index), never on threads.

        Args:
            items: a list (or any iterable, e.g. a uint8 NCHW tensor) of what ``__call__`` takes.
                The result is a torch tensor when any item is one (see ``backend``).
            seed: int in [0, 2**64), or None (default) for fresh entropy on every call, as
                ``t(x)`` and a DataLoader epoch draw afresh; the seed used is in each params dict
                (``"seed"``) and in :attr:`last_seed`, so a call can be replayed.
            epoch: int in [0, 2**64).
            threads: native threads, an int >= 1 (default: all usable cores).
            out: writable C-contiguous buffer of shape (N, *output_shape) and this dtype (numpy
                array or CPU torch tensor, pinned or not).
            return_params: also return, per sample, a dict: "box" (top, left, height, width in
                source pixels, as shown), "flip", "source_size", "decode_scale", "orientation" (the
                EXIF orientation applied: 1 unless apply_exif_orientation), "decoded_pixels" (how
                many pixels the decoder produced for the region it read), "decode_sessions" (how
                many times the JPEG decoder decompressed the sample: 1, 0 when it was not a JPEG
                decoded natively), "spliced_bytes" (the size of the sub-image cut from a JPEG's
                restart intervals and decoded in its place, 0 when the file was decoded itself),
                "seed", "epoch",
                "index" (the sample's key), plus what each op drew, by name (e.g. "vflip",
                "gray", "jitter"; fp.op_table()).
            on_error: "raise" (DecodeError naming index and file), "zeros" (slot zero-filled,
                recorded in params), or "skip" (bad samples dropped; the result is shorter).
                With an image-dependent output size (Resize(int) alone) a failing sample always
                raises: its output shape cannot be known.
            indices: per-item keys for the random stream (default 0..N-1), ints >= 0.
        """
        raw, items, seed, epoch, policy, torch_input = batch_arguments(self, items, seed, epoch, on_error)
        want_torch = self._want_torch(torch_input)
        n = len(items)
        size = self._plan.fixed_size
        engine = self.engine(threads)
        keys = list(range(n)) if indices is None else check_indices(indices)
        if len(keys) != n:
            raise ValueError(f"indices must have one entry per item: {len(keys)} for {n} items")
        if size is None and n != 1:
            if out is not None:
                raise ValueError("out= needs a fixed output size: add a crop, or use Resize((h, w))")
            return self._batch_list(items, keys, seed, epoch, threads, policy, want_torch, return_params)
        if size is None:
            size = self._probe(items, engine, seed, epoch, index=keys[0])
        shape = (n,) + self.output_shape(*size)
        if out is None:
            arr = self._pool.take(shape, self.np_dtype)  # Note [Output pool]
            result = None
        else:
            arr, result = _as_output(out, shape, self.np_dtype, self.dtype)
        params, failed = self._run(items, arr, size, engine, seed, epoch, keys, policy, want_params=return_params)
        if params is not None:
            for k, d in zip(keys, params):
                d["seed"], d["epoch"], d["index"] = seed, epoch, k
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

    def _batch_list(self, items, keys, seed, epoch, threads, policy, want_torch, return_params):
        """A batch whose output size depends on the image (Resize(int), RandomResize,
        RandomShortestSize with no crop after them): a list of arrays, each sample probed for its
        size and run on its own, on up to ``threads`` threads (native code releases the GIL).
        Under on_error="zeros" a failing sample raises: its shape cannot be known."""
        local = threading.local()

        def one(i):
            engine = getattr(local, "engine", None)
            if engine is None:
                engine = local.engine = _core.Engine(1)
            item = [items[i]]
            try:
                size = self._probe(item, engine, seed, epoch, index=keys[i])
                arr = np.empty((1,) + self.output_shape(*size), dtype=self.np_dtype)
                params, _ = self._run(item, arr, size, engine, seed, epoch, [keys[i]], "raise",
                                      want_params=return_params)
            except DecodeError as e:
                if policy != "skip":
                    raise
                return None, e
            if params is not None:
                params[0].update(seed=seed, epoch=epoch, index=keys[i])
            return (self._wrap(arr[0], want_torch), params[0] if params else None), None

        workers = min(default_threads() if threads is None else check_threads(threads), len(items))
        if workers > 1:
            with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastprep-sized") as ex:
                done = list(ex.map(one, range(len(items))))
        else:
            done = [one(i) for i in range(len(items))]
        kept = [r for r, e in done if r is not None]
        result = [r[0] for r in kept]
        if return_params:
            return result, [r[1] for r in kept]
        return result

    def _probe(self, items, engine, seed, epoch, index=None):
        """Output size of items[0] when it depends on the image. A failure raises whatever the
        on_error policy: the output shape cannot be known without the image."""
        key = 0 if index is None else index
        b = _core.Batch(self._plan, _core.Items(items), [0], [0], [key], seed, epoch)
        b.probe(engine)
        st = b.status()[0]
        name = fio.display_name(items[0], key)
        if st == _ERROR:
            i, kind, msg = b.errors()[0]
            raise error_for_kind(kind, name, msg, index)
        if st == _NOT_JPEG:
            try:
                items[0] = fio.decode(items[0], name, self.max_pixels, self.apply_exif_orientation)
            except DecodeError as e:
                e.index = index
                raise
            return self._probe(items, engine, seed, epoch, index)
        p = b.params()[0]
        return int(p["out_h"]), int(p["out_w"])

    def _run(self, items, arr, size, engine, seed, epoch, keys, policy, want_params=True):
        n = len(items)
        pos = np.arange(n, dtype=np.int64)
        params, errors = self.execute(_core.Items(items), items, pos, pos, keys, arr, size, engine, seed, epoch,
                                      want_params=want_params)
        failed = set()
        for i in sorted(errors):
            if policy == "raise":
                raise errors[i]
            failed.add(i)
            if params is not None:
                params[i]["error"] = str(errors[i])
                params[i]["error_reason"] = errors[i].reason
            if policy == "zeros":
                arr[i] = 0
        return params, failed

    def execute(self, native_items, raw_items, picks, slots, keys, arr, size, engine, seed, epoch, want_params=True,
                cancel=None):
        """Runs picks[i] of the pinned items into arr[slots[i]] natively (GIL released), then decodes
        the ones without a native decoder (BMP, GIF, TIFF, animated WebP, ...) with Pillow, on as
        many threads as the engine has, and runs those through the same native pass.

        picks, slots, keys: int64 sequences (numpy arrays pass through without a Python loop).
        Returns (params per position or None, {position: DecodeError}). When every sample is a JPEG
        that decodes, no Python code runs per sample.

        With FiveCrop / TenCrop, each of the K crops is its own native plan (the same draws: same
        seed and keys) writing arr[slot][k]; params are the first crop's.
        """
        if len(self._crop_plans) == 1:
            return self._execute_plan(self._plan, native_items, raw_items, picks, slots, keys, arr, size, engine, seed,
                                      epoch, want_params, cancel)
        k_count = len(self._crop_plans)
        flat = arr.reshape((-1,) + arr.shape[2:])  # (N * K, ...) views of the same memory
        slots = np.asarray(slots, dtype=np.int64) * k_count
        params, errors = None, {}
        for k, plan in enumerate(self._crop_plans):
            p, e = self._execute_plan(plan, native_items, raw_items, picks, slots + k, keys, flat, size, engine, seed,
                                      epoch, want_params and k == 0, cancel)
            if k == 0:
                params = p
            for i, err in e.items():
                errors.setdefault(i, err)
            if cancel is not None and cancel.cancelled:
                return None, {}
        return params, errors

    def _execute_plan(self, plan, native_items, raw_items, picks, slots, keys, arr, size, engine, seed, epoch,
                      want_params=True, cancel=None):
        params, errors = run_native([plan], [(arr, size)], [self._params], self, native_items, raw_items, picks,
                                    slots, keys, engine, seed, epoch, want_params, cancel)
        return (None if params is None else params[0]), errors

    def _params(self, records):
        """Native per-sample records -> one dict per sample: the geometry every sample has, plus
        what each op drew (Op.sample_params), by field name."""
        out = []
        for r in records:
            d = {"box": (int(r["top"]), int(r["left"]), int(r["height"]), int(r["width"])), "flip": bool(r["flip"]),
                 "source_size": (int(r["src_h"]), int(r["src_w"])),
                 "decode_scale": 1.0 / max(int(r["decode_denom"]), 1), "orientation": int(r["orientation"]),
                 "decoded_pixels": int(r["decoded_pixels"]), "decode_sessions": int(r["decode_sessions"]),
                 "spliced_bytes": int(r["spliced_bytes"])}
            for op in flatten(self.transforms):
                slot = self._slots.get(id(op))
                if getattr(op, "members", None) is not None:
                    d.setdefault("containers", []).append(op.draw(r, slot))
                else:
                    d.update(op.slot_params(r, slot))
            out.append(d)
        return out


def batch_arguments(t, items, seed, epoch, on_error):
    """batch()'s argument checks, shared by Compose and MultiView: (the items as given, as the
    native pass takes them, the seed (drawn when None; recorded as t's last_seed), the epoch, the
    on_error policy, whether any item is a torch tensor)."""
    check_items(items)
    seed = fresh_seed() if seed is None else check_seed(seed)
    t._local.seed = seed
    epoch = check_epoch(epoch)
    policy = check_policy(on_error or t.on_error)
    raw = list(items)
    return raw, [_normalize_item(x) for x in raw], seed, epoch, policy, any(is_torch_tensor(x) for x in raw)


def run_native(plans, outputs, param_fns, opts, native_items, raw_items, picks, slots, keys, engine, seed, epoch,
               want_params=True, cancel=None):
    """Runs picks[i] of the pinned items through one native Batch of ``plans`` (one per view:
    Note [Multi-view decode]) into ``outputs[v] = (arr, (h, w))`` at slots[i], GIL released; then
    decodes the samples without a native decoder (BMP, GIF, TIFF, animated WebP, ...) with Pillow,
    on as many threads as the engine has, and runs those through the same plans.

    ``param_fns[v]`` turns view v's native records into params dicts; ``opts`` holds the decoder
    options (max_pixels, strict, allow_truncated, apply_exif_orientation). Returns (per view, the
    params per position, or None; {position: DecodeError}). A sample fails as a whole."""
    picks = np.asarray(picks, dtype=np.int64)
    slots = np.asarray(slots, dtype=np.int64)
    keys = np.asarray(keys, dtype=np.int64)
    nv = len(plans)

    def name(i):
        return fio.display_name(raw_items[picks[i]], int(picks[i]))

    def native(items, pk, sl, ky):
        b = _core.Batch(plans[0] if nv == 1 else list(plans), items, pk, sl, ky, seed, epoch, cancel)
        for v, (arr, size) in enumerate(outputs):
            b.set_output(arr, size[0], size[1], v)
        b.run(engine, interruptible)
        return b

    def sample_errors(b, position):  # {position: error} of a Batch whose sample j is position(j)
        out = {}
        for e, kind, msg in b.errors():
            i = position(e // nv)
            if i not in out:
                out[i] = error_for_kind(kind, name(i), msg, int(picks[i]))
        return out

    # On the main thread a Ctrl-C stops the batch within ~50 ms (Note [Interrupts] in bindings.cpp).
    interruptible = threading.current_thread() is threading.main_thread()
    b = native(native_items, picks, slots, keys)
    if cancel is not None and cancel.cancelled:
        return None, {}
    status = b.status()[::nv]
    params = None
    if want_params:
        records = b.params()
        params = [param_fns[v](records[v::nv]) for v in range(nv)]
    errors = sample_errors(b, lambda j: j)
    if opts.allow_truncated or not opts.strict:
        tolerated = b.warnings()[::nv]
        for i in np.flatnonzero(tolerated):  # never silently: a decode that tolerated damage says so
            if opts.strict:
                what = ("truncated image decoded, its missing rows filled (JPEG: gray, PNG: black; "
                        "allow_truncated=True)")
            else:
                what = (f"damaged image data decoded anyway ({int(tolerated[i])} corrupt-data warning(s) of the "
                        "decoder tolerated, strict=False): missing or damaged parts are filled")
            warnings.warn(f"{name(i)} (sample {picks[i]}): {what}", UserWarning, stacklevel=5)
    fallback = np.flatnonzero(status == _NOT_JPEG)
    if len(fallback):
        decoded, pos = [], []
        read = {int(i): b.take_encoded(int(i) * nv) for i in fallback}  # files the native pass read already

        def pillow(i):  # Pillow releases the GIL while it decodes: several files at once
            data = read[int(i)]
            try:
                return i, fio.decode_oriented(raw_items[picks[i]] if data is None else data, name(i),
                                              opts.max_pixels, opts.apply_exif_orientation), None
            except DecodeError as e:
                return i, None, e

        workers = min(engine.threads, len(fallback))
        if workers > 1:
            with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastprep-pillow") as ex:
                results = list(ex.map(pillow, fallback))
        else:
            results = [pillow(i) for i in fallback]
        orientations = []
        for i, img, e in results:
            if e is None:
                decoded.append(img[0])
                orientations.append(img[1])
                pos.append(int(i))
            else:
                e.index = int(picks[i])
                e.args = (f"{e.source} (sample {picks[i]}): {e.reason}",)
                errors[int(i)] = e
        if decoded:
            pos_a = np.asarray(pos, np.int64)
            b2 = native(_core.Items(decoded), np.arange(len(pos)), slots[pos_a], keys[pos_a])
            errors.update(sample_errors(b2, lambda j: pos[j]))
            if want_params:
                records = b2.params()
                for v in range(nv):
                    p2 = param_fns[v](records[v::nv])
                    for j, i in enumerate(pos):
                        params[v][i] = p2[j]
                        params[v][i]["orientation"] = orientations[j]  # applied by Pillow, not the array pass
    return params, errors


def rebuild_compose(cls, transforms, options):
    """What a pickled Compose is rebuilt with (its ops and options; a new native plan)."""
    return cls(transforms, **options)


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
        return fio.path_str(x)
    if isinstance(x, (bytes, bytearray, memoryview, fio.TarMember)):
        return x
    if is_torch_tensor(x):
        x = _tensor_to_numpy(x)
    elif is_pil_image(x):
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
        if out.requires_grad:
            raise ValueError("out requires grad: fastprep writes into it in place, which autograd cannot track; "
                             "pass out.detach() (a view of the same memory) or a tensor without requires_grad")
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
