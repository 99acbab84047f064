"""HybridCompose: a fused prefix plus the transforms the native pass cannot do, run per sample in
Python on the fused output (from_torchvision's fallback instead of a refusal).

Note [Python remainder]
``from_torchvision`` fuses the longest prefix of a recipe that the native pass can do; the rest
(a ``Lambda``, a user's class, a torchvision op fastprep does not fuse) runs per sample in Python
on the fused output, in the input type those transforms expect: a PIL image for a v1 recipe, a
uint8 CHW tensor for a v2 one, or the float CHW tensor when the prefix ended in ToTensor.

Randomness: before each sample the global generators a transform may draw from (Python's
``random``, numpy's legacy ``np.random``, torch's default CPU generator) are seeded from the
sample's key, a pure function of (seed, epoch, sample index) on the stream "python_remainder",
and restored afterwards, so the caller's generators are where they were after the call (a
training loop's dropout is not perturbed) and a sample's result does not depend on the thread
count or on the other samples. Seeding a global generator is only safe where no other code draws
from it meanwhile: within one process the remainder runs under one lock, on the calling thread
(``__call__``, ``batch``); the Loader runs it in worker processes (forked when an epoch starts,
as DataLoader's workers are) whose generators are their own, so it never holds the training
loop's thread or its generators, and it fuses the next batches meanwhile.
"""
import contextlib
import os
import sys
import threading

import numpy as np

from .. import io as fio
from .._checks import check_epoch, check_seed, fresh_seed
from .._errors import MissingDependencyError, TransformError
from ._compose import Compose

__all__ = ["HybridCompose", "tail_seed"]

_LOCK = threading.RLock()  # one remainder at a time per process (the generators are global)


def _new_lock():
    # A child forked while another thread held the lock (the Loader forks its remainder workers)
    # would wait on it forever: the child starts with a fresh one.
    global _LOCK
    _LOCK = threading.RLock()


os.register_at_fork(after_in_child=_new_lock)
_STREAM = 0x70797468_6f6e7274  # "pythonrt": the remainder's stream (Note [Random streams] for the native ones)


def tail_seed(seed, epoch, index):
    """The 64-bit seed of sample ``index``'s remainder (Note [Python remainder])."""
    words = [int(seed) & 0xFFFFFFFF, int(seed) >> 32, int(epoch) & 0xFFFFFFFF, int(epoch) >> 32,
             int(index) & 0xFFFFFFFF, int(index) >> 32, _STREAM & 0xFFFFFFFF, _STREAM >> 32]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0])


@contextlib.contextmanager
def seeded_globals(seed):
    """Seeds random, np.random and torch's default CPU generator (when torch is imported) with
    ``seed`` and restores their states on exit."""
    import random

    torch = sys.modules.get("torch")
    saved = (random.getstate(), np.random.get_state(),
             torch.default_generator.get_state() if torch is not None else None)
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    if torch is not None:
        torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        if torch is not None:
            torch.default_generator.set_state(saved[2])


def _torch():
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("the Python remainder of a v2 recipe works on torch tensors: "
                                     "pip install torch torchvision") from None
    return torch


def to_tail_input(arr, kind, multi=False):
    """One fused output (numpy) as the remainder's first transform takes it; FiveCrop / TenCrop
    (``multi``) give torchvision's tuple of crops."""
    if multi:
        return tuple(to_tail_input(a, kind) for a in arr)
    if kind == "pil":
        return fio.pillow_image(arr)
    return _torch().from_numpy(np.ascontiguousarray(arr))


def apply_tail(remainder, x, kind, seed, epoch, index, source=None, multi=False):
    """The remainder on one fused output ``x`` (a numpy array) of sample ``index``; a transform
    that raises becomes a TransformError naming the sample (``source``: its file) and the transform."""
    x = to_tail_input(x, kind, multi)
    with _LOCK, seeded_globals(tail_seed(seed, epoch, index)):
        for t in remainder:
            try:
                x = t(x)
            except Exception as e:
                raise TransformError(f"item {index}" if source is None else source,
                                     f"{type(t).__module__}.{type(t).__qualname__} raised {type(e).__name__}: {e}",
                                     index) from e
    return x


def collate(outs):
    """Outputs of one batch stacked when they are tensors or arrays of one shape and dtype, else a list."""
    torch = sys.modules.get("torch")
    if torch is not None and all(isinstance(o, torch.Tensor) for o in outs):
        if len({(tuple(o.shape), o.dtype) for o in outs}) == 1:
            return torch.stack(outs)
    elif all(isinstance(o, np.ndarray) for o in outs) and len({(o.shape, o.dtype) for o in outs}) == 1:
        return np.stack(outs)
    return list(outs)


class HybridCompose:
    """A fused :class:`Compose` followed by transforms run per sample in Python (what
    :func:`fastprep.from_torchvision` returns when part of a recipe cannot be fused; Note [Python
    remainder] in fastprep/transforms/_hybrid.py).

    Attributes:
        fused: the Compose doing the fused prefix natively.
        remainder: the transforms run in Python, in order.
        tail_input: what the first of them receives: "pil" (a PIL image, v1 recipes) or
            "tensor" (a torch tensor: uint8 CHW for v2 recipes, float CHW after ToTensor).
        reasons: per remainder transform, why it runs in Python.
    """

    def __init__(self, fused, remainder, tail_input, reasons=None):
        if not isinstance(fused, Compose):
            raise TypeError(f"HybridCompose needs a fastprep Compose as its fused part, got {fused!r}")
        if tail_input not in ("pil", "tensor"):
            raise ValueError(f"tail_input must be 'pil' or 'tensor', got {tail_input!r}")
        self.fused = fused
        self._np = fused if fused.backend == "numpy" else fused.with_options(backend="numpy")
        self.remainder = list(remainder)
        self.tail_input = tail_input
        self.reasons = list(reasons) if reasons is not None else ["not fused"] * len(self.remainder)
        self._local = threading.local()

    def __reduce__(self):
        return (HybridCompose, (self.fused, self.remainder, self.tail_input, self.reasons))

    def __repr__(self):
        tail = "\n".join(f"    {t!r},  # in Python: {r}" for t, r in zip(self.remainder, self.reasons))
        return f"HybridCompose(fused={self.fused!r},\nremainder=[\n{tail}\n], tail_input={self.tail_input!r})"

    @property
    def apply_exif_orientation(self):
        return self.fused.apply_exif_orientation

    def with_options(self, **options):
        """The same remainder after a fused prefix with some Compose options changed."""
        return HybridCompose(self.fused.with_options(**options), self.remainder, self.tail_input, self.reasons)

    @property
    def transforms(self):
        """The fused ops (the fastprep ops of the prefix)."""
        return self.fused.transforms

    @property
    def last_seed(self):
        return getattr(self._local, "seed", None)

    def apply_tail(self, x, seed, epoch, index, source=None):
        """The remainder on one fused output of sample ``index`` (what the Loader's workers run)."""
        return apply_tail(self.remainder, x, self.tail_input, seed, epoch, index, source,
                          self.fused.crops_per_sample > 1)

    def run_tail(self, images, keys, seed, epoch):
        """The remainder on a batch of fused outputs (``images[i]`` of sample ``keys[i]``), collated."""
        return collate([self.apply_tail(images[i], seed, epoch, int(k)) for i, k in enumerate(keys)])

    def __call__(self, data, seed=None, epoch=0):
        """One image through the fused prefix, then the remainder (on this thread)."""
        seed = fresh_seed() if seed is None else check_seed(seed)
        self._local.seed = seed
        epoch = check_epoch(epoch)
        return self.apply_tail(self._np(data, seed=seed, epoch=epoch), seed, epoch, 0)

    def batch(self, items, seed=None, threads=None, return_params=False, epoch=0, on_error=None, indices=None):
        """Images through the fused prefix (native threads, GIL released), then the remainder per
        sample on this thread. Returns the outputs stacked (torch tensors or numpy arrays of one
        shape) or as a list, and with ``return_params`` the fused prefix's params."""
        seed = fresh_seed() if seed is None else check_seed(seed)
        self._local.seed = seed
        epoch = check_epoch(epoch)
        items = list(items)
        arr, params = self._np.batch(items, seed=seed, threads=threads, return_params=True, epoch=epoch,
                                     on_error=on_error, indices=indices)
        keys = [p["index"] for p in params]
        names = {k: fio.display_name(x, k) for k, x in zip(indices or range(len(items)), items)}
        result = collate([self.apply_tail(arr[i], seed, epoch, k, names.get(k)) for i, k in enumerate(keys)])
        return (result, params) if return_params else result
