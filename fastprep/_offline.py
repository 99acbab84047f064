"""Shared machinery of the offline commands (stats, preprocess): the transform presets, a
prefetching batch iterator over the native pool, failure records, a tiny progress bar and
atomic file writes."""
import json
import os
import queue
import sys
import threading
import time

import numpy as np

from ._errors import DecodeError
from ._transforms import CenterCrop, Compose, Resize, ToTensor

TRANSFORMS = ("eval", "resize")
POLICIES = ("raise", "skip", "zeros")


def eval_resize(size):
    """The resize before CenterCrop(size) in the 256/224 (crop fraction 0.875) eval convention."""
    return int(size / 0.875)


def build_transform(name, size, dtype="uint8", layout="CHW", fixed=True, interpolation="bilinear", exact=False):
    """Compose for a named preset.

    "eval": Resize(int(size / 0.875)) + CenterCrop(size) (224 -> Resize(256) + CenterCrop(224)).
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
    return Compose(ops, dtype=dtype, layout=layout, exact=exact)


def transform_spec(name, size, compose):
    """A JSON-able description of the transform (enough to rebuild it)."""
    return {"name": name, "size": int(size), "ops": [repr(op) for op in compose.transforms],
            "dtype": compose.dtype, "layout": compose.layout, "color": compose.color, "exact": compose.exact,
            "output_size": list(compose.output_size) if compose.output_size else None}


def default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _reason(message, item, index):
    """Strips the "<source> (sample i): " prefix Compose puts in front of the decoder's reason."""
    src = item if isinstance(item, str) else f"<item {index}>"
    prefix = f"{src} (sample {index}): "
    return message[len(prefix):] if message.startswith(prefix) else message


def failure(index, name, reason):
    return {"index": int(index), "file": name, "error": reason}


def iter_batches(compose, items, ranges, threads, policy, names, out_alloc=None, prefetch=2):
    """Yields (start, stop, array, ok, failures) for each (start, stop) in ``ranges``, decoded by
    ``compose.batch`` on ``threads`` native threads in a background thread, so that the consumer's
    work (accumulating, writing) overlaps decoding.

    ``array`` holds stop - start samples (written into ``out_alloc(start, stop)`` when given);
    with policy "skip" or "zeros" a failed sample's slot is zero-filled and ``ok`` (bool array) is
    False there. Policy "raise" re-raises the DecodeError
    with the dataset-wide index.
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
                chunk = items[a:b]
                out = out_alloc(a, b) if out_alloc is not None else None
                try:
                    arr, params = compose.batch(chunk, seed=0, threads=threads, out=out, return_params=True,
                                                on_error=batch_policy, indices=range(a, b))
                except DecodeError as e:
                    i = a + (e.index or 0)
                    err = type(e)(names[i], e.reason, i)
                    put(("error", err))
                    return
                ok = np.ones(b - a, dtype=bool)
                fails = []
                for j, p in enumerate(params):
                    if "error" in p:
                        ok[j] = False
                        fails.append(failure(a + j, names[a + j], _reason(p["error"], chunk[j], j)))
                if not put(("batch", (a, b, arr, ok, fails))):
                    return
            put(("done", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(("error", e))

    th = threading.Thread(target=produce, name="fastprep-offline-producer", daemon=True)
    th.start()
    try:
        while True:
            kind, val = q.get()
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


class Progress:
    """A one-line progress bar with rate and ETA on stderr; silent when stderr is not a terminal."""

    def __init__(self, total, desc="", unit="img", stream=None, enabled=None, initial=0):
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = bool(enabled)
        self.total = int(total)
        self.desc = desc
        self.unit = unit
        self.n = int(initial)
        self.initial = int(initial)
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._width = 0
        if self.enabled:
            self._draw()

    def update(self, n=1):
        self.n += int(n)
        if self.enabled:
            now = time.perf_counter()
            if now - self._last >= 0.1 or self.n >= self.total:
                self._draw(now)

    def _draw(self, now=None):
        now = now or time.perf_counter()
        self._last = now
        el = now - self.t0
        done = self.n - self.initial
        rate = done / el if el > 0 and done > 0 else 0.0
        frac = self.n / self.total if self.total else 1.0
        eta = (self.total - self.n) / rate if rate > 0 else None
        bar_w = 24
        full = int(round(bar_w * min(frac, 1.0)))
        line = (f"{self.desc} {frac * 100:5.1f}% |{'#' * full}{'.' * (bar_w - full)}| {self.n}/{self.total} "
                f"[{_hms(el)}<{_hms(eta) if eta is not None else '?'}, {rate:,.0f} {self.unit}/s]")
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def close(self):
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False

    @property
    def elapsed(self):
        return time.perf_counter() - self.t0


def _hms(s):
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def atomic_write_bytes(path, write):
    """Calls write(file) on ``path + '.tmp'``, then renames it over ``path`` (atomic on POSIX):
    readers see the old file or the complete new one, never a partial one."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def atomic_write_json(path, obj):
    data = json.dumps(obj, indent=1, ensure_ascii=False, default=_json_default).encode("utf-8")
    atomic_write_bytes(path, lambda f: f.write(data))


def _json_default(x):
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serializable")


def print_failures(failed, stream=None, limit=20, where=None):
    stream = stream or sys.stderr
    if not failed:
        return
    stream.write(f"{len(failed)} file(s) failed:\n")
    for f in failed[:limit]:
        stream.write(f"  {f['file']}: {f['error']}\n")
    if len(failed) > limit:
        stream.write(f"  ... and {len(failed) - limit} more" + (f" (all listed in {where})" if where else "") + "\n")
