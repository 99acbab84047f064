"""Shared machinery of the offline commands (stats, preprocess): the transform presets, how they
decode (DecodeOptions) and the command-line flags for it, and a prefetching batch iterator over the
native pool. (File helpers and failure records: fastprep/io/_atomic.py; the files' formats:
fastprep/io/_formats.py; the progress bar and the default thread count: fastprep/_util.py.)"""
import argparse
import queue
import threading
from typing import NamedTuple, Optional

import numpy as np

from .._errors import DecodeError
from .._util import eval_resize
from ..io import failure
from ..transforms import CenterCrop, Compose, Resize, ToTensor

TRANSFORMS = ("eval", "resize")
POLICIES = ("raise", "skip", "zeros")


class DecodeOptions(NamedTuple):
    """How the offline tools decode (picklable: Ray tasks get it): ``exact`` None means Compose's
    default; ``apply_exif_orientation`` as Compose's (off: images as stored, as torchvision)."""
    exact: Optional[bool] = None
    apply_exif_orientation: bool = False

    def compose_kwargs(self):
        kw = {} if self.exact is None else {"exact": bool(self.exact)}  # None: Compose's default
        if self.apply_exif_orientation:
            kw["apply_exif_orientation"] = True
        return kw


EXIF_HELP = ("show each image with its EXIF orientation (as ImageOps.exif_transpose); by default images are "
             "used as stored, as torchvision's and timm's loaders do")


def add_exif_argument(p):
    """--apply-exif-orientation, the same for every command."""
    p.add_argument("--apply-exif-orientation", action="store_true", help=EXIF_HELP)


def add_exact_argument(p):
    """--exact / --no-exact, the same for every command."""
    p.add_argument("--exact", action=argparse.BooleanOptionalAction, default=None,
                   help="torchvision-exact decoding and resampling, or --no-exact: fast mode (16-bit resampling "
                        "weights, and DCT-domain downscaling while decoding large photos); default: fp.Compose's "
                        "default (exact)")


def build_transform(name, size, dtype="uint8", layout="CHW", fixed=True, interpolation="bilinear",
                    decode=DecodeOptions()):
    """Compose for a named preset.

    "eval": Resize(eval_resize(size)) + CenterCrop(size) (224 -> Resize(256) + CenterCrop(224)).
    "resize": Resize((size, size)) when ``fixed``, else Resize(size): shorter side ``size``, aspect kept.
    Float dtypes add ToTensor (values in [0, 1]); uint8 keeps the 0-255 levels.
    """
    size = int(size)
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if name == "eval":
        ops = [Resize(eval_resize(size), interpolation=interpolation), CenterCrop(size)]
    elif name == "resize":
        ops = [Resize((size, size) if fixed else size, interpolation=interpolation)]
    else:
        raise ValueError(f"unknown transform {name!r}: one of {TRANSFORMS}")
    if dtype != "uint8":
        ops.append(ToTensor())
    return Compose(ops, dtype=dtype, layout=layout, **decode.compose_kwargs())


def transform_spec(name, size, compose):
    """A JSON-able description of the transform (enough to rebuild it)."""
    return {"name": name, "size": int(size), "ops": [repr(op) for op in compose.transforms],
            "dtype": compose.dtype, "layout": compose.layout, "color": compose.color, "exact": compose.exact,
            "apply_exif_orientation": compose.apply_exif_orientation,
            "output_size": list(compose.output_size) if compose.output_size else None}


def sample_reason(compose, item, key, threads, params):
    """The decoder's reason (``DecodeError.reason``) for a sample that failed in a
    ``compose.batch(..., on_error="zeros", return_params=True)`` call, ``params`` being its entry.

    It comes from the exception object, never from its message: ``params["error_reason"]`` when
    the batch recorded it, else the DecodeError of the sample decoded again on its own (only failed
    samples pay this). Should that second decode succeed (the file changed meanwhile), the batch's
    message is all there is, and it is kept whole."""
    reason = params.get("error_reason")
    if reason is not None:
        return reason
    try:
        compose.batch([item], seed=0, threads=threads, on_error="raise", indices=[key])
    except DecodeError as e:
        return e.reason
    return params.get("error", "decode failed")


def iter_batches(compose, items, ranges, threads, policy, names, out_alloc=None, prefetch=2, check=None, base=0):
    """Yields (start, stop, array, ok, failures) for each (start, stop) in ``ranges``, decoded by
    ``compose.batch`` on ``threads`` native threads in a background thread, so that the consumer's
    work (accumulating, writing) overlaps decoding.

    ``array`` holds stop - start samples (written into ``out_alloc(start, stop)`` when given);
    with policy "skip" or "zeros" a failed sample's slot is zero-filled and ``ok`` (bool array) is
    False there. Policy "raise" re-raises the DecodeError
    with the dataset-wide index.

    Neither side can wait forever on the other: the producer gives up putting once the consumer
    has stopped, and the consumer waits in short steps, calling ``check()`` (which may raise, e.g.
    a writer thread's error) and noticing a producer thread that ended without a result.

    ``items`` and ``names`` may hold only the dataset's positions ``base`` on (``ranges``, random
    keys and failure indices stay dataset-wide): a Ray task gets only its shard's.
    """
    q = queue.Queue(maxsize=max(1, prefetch))
    stop_flag = threading.Event()
    batch_policy = "raise" if policy == "raise" else "zeros"

    def put(x):
        while not stop_flag.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for a, b in ranges:
                if stop_flag.is_set():
                    return
                chunk = items[a - base:b - base]
                out = out_alloc(a, b) if out_alloc is not None else None
                try:
                    arr, params = compose.batch(chunk, seed=0, threads=threads, out=out, return_params=True,
                                                on_error=batch_policy, indices=range(a, b))
                except DecodeError as e:
                    i = a + (e.index or 0)
                    err = type(e)(names[i - base], e.reason, i)
                    put(("error", err))
                    return
                ok = np.ones(b - a, dtype=bool)
                fails = []
                for j, p in enumerate(params):
                    if "error" in p or "error_reason" in p:
                        ok[j] = False
                        reason = sample_reason(compose, chunk[j], a + j, threads, p)
                        fails.append(failure(a + j, names[a + j - base], reason))
                if not put(("batch", (a, b, arr, ok, fails))):
                    return
            put(("done", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(("error", e))

    th = threading.Thread(target=produce, name="fastprep-offline-producer", daemon=True)
    th.start()
    try:
        while True:
            try:
                kind, val = q.get(timeout=0.1)
            except queue.Empty:
                if check is not None:
                    check()
                if not th.is_alive() and q.empty():
                    raise RuntimeError("the decoding thread ended without a result") from None
                continue
            if kind == "done":
                return
            if kind == "error":
                raise val
            yield val
    finally:
        stop_flag.set()
        th.join()


def chunk_ranges(start, stop, size):
    return [(a, min(a + size, stop)) for a in range(start, stop, max(1, int(size)))]


