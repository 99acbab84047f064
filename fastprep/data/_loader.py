"""fp.Loader: native multithreaded batching into reusable (pinned) buffers.

Threads: the native Engine decodes and transforms each batch with the GIL released; one Python
producer thread per iterator only picks indices, hands slots to the engine and queues finished
batches.

Note [Buffer ring]
Batches are written into a ring of preallocated slots (pinned when CUDA is available) and handed
out as zero-copy views. Ownership is explicit, not read off reference counts: a slot is taken
(``busy``) by one producer from acquisition until its batch is handed out or dropped, so two
iterators never fill the same slot; a handed-out batch is a pair of fresh numpy views (images,
labels), each registered with a ``weakref.finalize`` that releases it when the last object made
from it dies (a torch tensor from ``torch.from_numpy``, a slice, a DLPack capsule all keep the
view alive). References to the slot's base arrays held elsewhere (a traceback's frames, the
producer's own locals) do not count, so an exception cannot keep a slot from being reused. On
the GPU path the slot is also held until its host-to-device copy has completed. When every slot
is taken or held, a new slot is allocated: a held batch is never overwritten, and in steady
state nothing is allocated per batch.

Note [Exit and fork]
Live producers are registered in a WeakSet; an ``atexit`` hook stops and joins them (the running
native batch is cancelled between samples) before the interpreter finalizes, so exiting (or a
Ctrl-C) with an iterator alive never aborts. After ``fork()`` the child has none of the parent's
threads: an iterator made before the fork raises in the child instead of waiting forever, a new
``iter(loader)`` in the child works (the ring and its lock are rebuilt), and the native pool
rebuilds itself (Note [Fork] in csrc/pipeline/thread_pool.h). CUDA does not survive a fork: in a child
forked after the parent initialised CUDA (``torch.cuda._is_in_bad_fork()``), the child's new
ring is not pinned (page-locked memory is a CUDA allocation) and a ``device="cuda"`` loader raises
a RuntimeError saying why, instead of CUDA's bare "initialization error" from the producer thread.
"""
import atexit
import collections
import hashlib
import numbers
import os
import queue
import sys
import threading
import time
import warnings
import weakref

import numpy as np

from .. import _core
from .._checks import check_epoch, check_policy, check_seed, check_threads, fresh_seed
from .._errors import AllSamplesFailedError, DecodeError, MissingDependencyError, TransformError
from .._util import default_threads
from ..io import display_name
from ..transforms import Compose, HybridCompose, MultiView, from_torchvision
from ._datasets import index_for_job
from ._mix import check_mix, mix_batch, mix_key
from ._shards import ShardDataset, is_shard_dir
from ._tail import TailRunner

_STOP = object()
_STATE_FORMAT = "fastprep.loader_state.v1"

# Note [Resume]
# A batch's content depends only on (seed, epoch, the samples in it) and the order of an epoch is
# a pure function of (seed, epoch, rank, world_size), so where an epoch stands is one number: the
# position in the epoch's order after the last batch handed out (the "cursor"; under
# on_error="skip" it is past the refills that batch used). The producer hands each batch out with
# (epoch, cursor, batches so far); state_dict() reports the latest one the consumer received, and
# a resumed iteration starts its producer at that cursor with that batch count (batch mixing's
# key), which gives the uninterrupted run's remaining batches byte for byte. The fingerprint
# (sample names and labels, transform, seed, batching, ranks) refuses a state from another loader.
_LIVE = weakref.WeakSet()  # running producers, stopped at exit (Note [Exit and fork])


def _stop_all_at_exit():
    for p in list(_LIVE):
        try:
            p.close()
        except Exception:
            pass


atexit.register(_stop_all_at_exit)


def _torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


# Note [Ranks share a seed]
# With world_size > 1 each rank takes its share of one permutation of the epoch, so the ranks must
# draw the same permutation: the same seed. seed=None draws fresh entropy, which would differ per
# rank and make the shards overlap (some samples seen twice per epoch, others never). So a
# distributed Loader without a seed takes rank 0's fresh seed through torch.distributed when a
# process group of that size is initialised (a collective: every rank builds its Loader, as a DDP
# script does), and is refused otherwise. A sampler= decides the order itself, and without
# shuffle the order is the same on every rank, so those keep a per-rank fresh seed.


def _shared_fresh_seed(rank, world_size):
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch is not None else None
    if dist is not None and dist.is_available() and dist.is_initialized():
        if dist.get_world_size() != world_size or dist.get_rank() != rank:
            raise ValueError(f"rank={rank}, world_size={world_size} disagree with the initialised process group "
                             f"(rank {dist.get_rank()} of {dist.get_world_size()})")
        box = [fresh_seed() if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return int(box[0])
    raise ValueError(f"rank={rank}, world_size={world_size} with seed=None: each rank would draw its own seed and "
                     "shuffle differently, so the ranks' shards would overlap. Pass the same seed= on every rank "
                     "(e.g. seed=0), or initialise torch.distributed first so that rank 0's fresh seed is shared")


def _torch_installed():
    """Whether torch can be imported, without importing it (+0.5 GB and a second and a half)."""
    import importlib.util

    return "torch" in sys.modules or importlib.util.find_spec("torch") is not None


class ErrorLog:
    """The samples that failed under on_error "skip" or "zeros" (``loader.errors``).

    One record per failing sample, whatever the number of epochs it failed in: iterating gives
    (dataset index, message) pairs in the order they first failed, ``count(i)`` how many times
    sample i failed, and at most ``MAX_RECORDS`` samples are recorded; failures of samples past
    that cap are counted in ``dropped`` only. So neither ``loader.errors`` nor ``state_dict()``
    grows across epochs (20,000 bad files over 3 epochs used to give 60,000 entries and a 4.9 MB
    state)."""

    MAX_RECORDS = 10_000

    def __init__(self):
        self._records = {}  # index -> [message, count], insertion-ordered
        self.dropped = 0

    def add(self, index, message):
        rec = self._records.get(index)
        if rec is not None:
            rec[1] += 1
        elif len(self._records) < self.MAX_RECORDS:
            self._records[index] = [message, 1]
        else:
            self.dropped += 1

    def count(self, index):
        rec = self._records.get(index)
        return 0 if rec is None else rec[1]

    @property
    def failures(self):
        """Failures seen in all, each epoch's repeat counted, recorded or not."""
        return sum(r[1] for r in self._records.values()) + self.dropped

    def __iter__(self):
        return iter([(i, r[0]) for i, r in self._records.items()])

    def __len__(self):
        return len(self._records)

    def __getitem__(self, k):
        return list(self)[k]

    def __bool__(self):
        return bool(self._records)

    def __eq__(self, other):
        return list(self) == list(other)

    def __repr__(self):
        more = f", {self.dropped} more not recorded" if self.dropped else ""
        return f"ErrorLog({len(self)} samples, {self.failures} failures{more})"

    def to_state(self):
        return {"records": [[int(i), str(r[0]), int(r[1])] for i, r in self._records.items()], "dropped": self.dropped}

    @classmethod
    def from_state(cls, state):
        log = cls()
        if isinstance(state, list):  # a state of an earlier version: [[index, message], ...]
            for entry in state:
                log.add(int(entry[0]), str(entry[1]))
            return log
        for i, m, c in state.get("records", []):
            if len(log._records) < cls.MAX_RECORDS:
                log._records[int(i)] = [str(m), int(c)]
        log.dropped = int(state.get("dropped", 0))
        return log


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


class _Slot:
    """One batch's buffers: the images (one array, or with a MultiView one per view: ``views``),
    the labels, pinned when the Loader pins."""

    __slots__ = ("array", "views", "labels", "pinned", "event", "busy", "out", "__weakref__")

    def __init__(self, shape, dtype, n, pin, torch):
        self.pinned = None
        shapes = shape if isinstance(shape, list) else [shape]
        dtypes = dtype if isinstance(dtype, list) else [dtype]
        if pin:
            arrays, self.pinned = [], []
            for sh, dt in zip(shapes, dtypes):
                tdtype = {np.dtype(np.uint8): torch.uint8, np.dtype(np.float32): torch.float32,
                          np.dtype(np.float16): torch.float16, np.dtype(np.uint16): torch.int16}[np.dtype(dt)]
                t = torch.empty((n,) + tuple(sh), dtype=tdtype, pin_memory=True)
                self.pinned.append(t)
                arr = t.numpy()
                arrays.append(arr.view(np.uint16) if np.dtype(dt) == np.uint16 else arr)
            # labels pinned too, so their host-to-device copy is asynchronous as well
            self.labels = torch.empty((n,), dtype=torch.int64, pin_memory=True).numpy()
        else:
            arrays = [np.empty((n,) + tuple(sh), dtype=dt) for sh, dt in zip(shapes, dtypes)]
            self.labels = np.empty((n,), dtype=np.int64)
        self.views = arrays if isinstance(shape, list) else None
        self.array = arrays[0] if self.views is None else arrays
        self.event = None
        self.busy = False  # taken by a producer (filling, or queued not yet handed out)
        self.out = set()   # tokens of handed-out views still alive (Note [Buffer ring])

    def free(self):
        if self.busy or self.out:
            return False
        if self.event is not None and not self.event.query():
            return False
        return True

    def images(self):
        """Every image array of the slot (one per view)."""
        return [self.array] if self.views is None else self.views

    def zero(self, pos):
        for a in self.images():
            a[pos] = 0

    def move(self, dst, src):
        for a in self.images():
            a[dst] = a[src]
        self.labels[dst] = self.labels[src]

    def hand_out(self, n):
        """Fresh arrays over the first n samples, each releasing its share of the slot when the
        last object derived from it dies. Called with the slot busy; clears busy.

        Each is built on a memoryview rather than sliced from the slot's array: numpy points a
        slice or reshape of a slice straight at the array that owns the memory, which would
        bypass a finalizer on the slice (``x[0]`` kept after ``x`` is dropped). An array made by
        ``np.frombuffer`` owns no memory and its base is not an ndarray, so every view derived
        from it (slices, reshapes, ``torch.from_numpy``) keeps it, and its finalizer, alive."""
        out = []
        images = self.images()
        for tok, arr in enumerate(images + [self.labels]):
            flat = np.frombuffer(memoryview(arr).cast("B")[:n * arr[0].nbytes], dtype=arr.dtype)
            self.out.add(tok)
            weakref.finalize(flat, self.out.discard, tok)  # set.discard: atomic under the GIL
            out.append(flat.reshape((n,) + arr.shape[1:]))
        self.busy = False
        return (out[0] if self.views is None else out[:-1]), out[-1]


class Loader:
    """Iterates (images, labels) batches of a dataset through a fused fastprep transform.

    Args:
        source: ImageFolder-layout directory, list of paths or (path, label), a "path,label" text
            or CSV file, a sequence of bytes, a :class:`fastprep.Dataset`, a directory written
            by ``fastprep preprocess`` (read without decoding), or WebDataset tar shards
            ("train-{000000..000127}.tar", a glob, a list, a folder of .tar files; see _tar).
        transform: a fastprep Compose (or a torchvision Compose, converted by from_torchvision), or
            a :class:`fastprep.MultiView` (or a list of Composes): batches are then ``(views,
            labels)``, ``views`` a list with one ``(N, ...)`` array per view, each in its own
            reusable (pinned) buffer under the same ownership rules (Note [Buffer ring]).
        batch_size: samples per batch, as torch.utils.data.DataLoader.
        shuffle: a new order every epoch (a pure function of seed and epoch).
        drop_last: drop the last incomplete batch (and, with ``world_size``, the padding).
        threads: native decode threads (default None: all usable cores).
        num_workers: DataLoader's name for ``threads``. These are native threads of this process,
            not worker processes (nothing is pickled or forked); ``num_workers=0`` (DataLoader's
            "load in the main process") means one native thread.
        prefetch: finished batches kept ready ahead of the consumer (``prefetch_factor`` is
            accepted as DataLoader's name for it).
        seed: shuffle order and augmentation are pure functions of (seed, epoch, sample index).
            None (default) draws fresh entropy once per Loader, as a DataLoader draws a fresh base
            seed per run; ``loader.seed`` records it, so a run can be replayed with
            ``Loader(..., seed=loader.seed)``, and ``load_state_dict`` adopts a state's seed.
            With ``world_size > 1`` and shuffling, every rank needs the same seed: None then takes
            rank 0's through an initialised torch.distributed process group, and is refused
            without one.
        pin_memory: None pins when the backend is torch and CUDA is available (a numpy-backend
            loader does not touch CUDA unless asked); True without CUDA warns (as DataLoader)
            and does not pin.
        device: e.g. "cuda": batches arrive on the GPU (copied on a side stream).
        rank: this process's rank, with ``world_size``: DistributedSampler semantics (equal,
            disjoint shards; padded unless drop_last).
        world_size: the number of ranks.
        sampler: optional iterable of sample indices used as each epoch's order instead of
            shuffle/rank/world_size (e.g. a torch ``DistributedSampler``; its ``set_epoch`` is
            called with the epoch of each iteration).
        on_error: "raise" (DecodeError at the batch, loader stays usable), "skip" (slot refilled
            with the next good sample; skipped files in ``loader.errors``) or "zeros". A
            preprocessed shard that cannot be read (``ShardTruncatedError``) is raised at its
            batch whatever the policy (it is damaged storage, not a bad image); the loader goes on
            with the next batch.
        backend: "torch" or "numpy" (default: torch when importable).
        collate_fn: optional callable applied on the consumer's thread to each batch as
            ``collate_fn(images, labels)``; the loop gets its return value. (Unlike DataLoader's
            collate_fn it receives the whole batch, already stacked.)
        timeout: seconds to wait for a batch before raising RuntimeError (0 = forever), as
            DataLoader.
        python_workers: processes that run a :class:`HybridCompose`'s Python remainder (the
            transforms from_torchvision could not fuse), forked when an epoch starts as
            DataLoader's workers are, so the remainder never holds the training loop's thread or
            draws from its random generators (Note [Python remainder]); default: ``threads``.
            0 runs it on the consumer's thread in ``next()``.
        persistent_workers: accepted for DataLoader compatibility; fastprep's threads always
            persist for the loader's lifetime.
        worker_init_fn: accepted for DataLoader compatibility and never called: fastprep's
            workers are native threads that run no Python (randomness is keyed by (seed, epoch,
            index), so no per-worker seeding is needed). Passing one warns once.
        mix: batch mixing, ``fp.MixUp(alpha)``, ``fp.CutMix(alpha)`` or
            ``fp.MixChoice([...])`` of them (torchvision v2's semantics), applied natively in
            place on each batch before it is handed out; the loop then gets float32 targets
            (N, num_classes) instead of integer labels. Draws are keyed by (seed, epoch, rank,
            batch index); ``batch_params()`` returns the last batch's.
        num_classes: required with ``mix`` (the targets' width).
        label_smoothing: with ``mix``, one-hot rows smoothed as timm does (off = s / classes,
            on = 1 - s + off) before mixing.
        apply_exif_orientation: None (default): the transform's setting (off unless its Compose
            turns it on; torchvision's loaders never apply it); True or False overrides it.
        multiprocessing_context: DataLoader's, accepted with a warning and ignored (no worker
            process exists).
        pin_memory_device: DataLoader's, accepted with a warning and ignored.
        in_order: DataLoader's: batches always come in order, so ``in_order=False`` warns that it
            is ignored.
        generator: DataLoader's: with ``seed=None`` the run's seed is drawn from it.
        batch_sampler: not supported (a ValueError says to use ``sampler``).

    Epochs: each ``iter(loader)`` starts a new epoch, as DataLoader reshuffles on every
    iteration: 0, 1, 2, ... ``set_epoch(e)`` pins the epoch of the next iteration (the following
    ones continue from e + 1), so calling it every epoch, as distributed training does, gives
    exactly that epoch. ``loader.epoch`` is the epoch of the latest iteration.

    Two live iterators of one loader are independent: each has its own epoch, order and slots;
    one iterator may be shared by threads (each batch goes to one of them).

    Pickling a Loader pickles what rebuilds it (its dataset, transform, arguments and position,
    as ``state_dict()``), not its threads or buffers: the copy resumes where the original stood.
    """

    def __init__(self, source, transform=None, batch_size=256, shuffle=True, drop_last=False, threads=None,
                 prefetch=2, seed=None, pin_memory=None, device=None, rank=0, world_size=1, on_error="raise",
                 backend=None, extensions=None, *, num_workers=None, collate_fn=None, timeout=0,
                 persistent_workers=None, worker_init_fn=None, prefetch_factor=None, sampler=None, mix=None,
                 num_classes=None, label_smoothing=0.0, apply_exif_orientation=None, multiprocessing_context=None,
                 generator=None, pin_memory_device=None, in_order=None, batch_sampler=None, python_workers=None):
        # What a pickled copy is rebuilt from (__reduce__): the arguments, the seed as drawn.
        self._init_kwargs = dict(
            batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, threads=threads, prefetch=prefetch,
            pin_memory=pin_memory, device=device, rank=rank, world_size=world_size, on_error=on_error,
            backend=backend, extensions=extensions, num_workers=num_workers, collate_fn=collate_fn, timeout=timeout,
            persistent_workers=persistent_workers, prefetch_factor=prefetch_factor, sampler=sampler, mix=mix,
            num_classes=num_classes, label_smoothing=label_smoothing, python_workers=python_workers)

        # ---- arguments first: a bad one fails before any indexing work ----------------------
        self.batch_size = _positive_int(batch_size, "batch_size")
        if prefetch_factor is not None:
            pf = _positive_int(prefetch_factor, "prefetch_factor")
            if prefetch != 2 and _positive_int(prefetch, "prefetch") != pf:
                raise ValueError(f"prefetch={prefetch} and prefetch_factor={prefetch_factor} disagree: pass one of them")
            prefetch = pf
        self.prefetch = _positive_int(prefetch, "prefetch")
        if num_workers is not None:
            if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) or num_workers < 0:
                raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
            nw = max(1, int(num_workers))
            if threads is not None and check_threads(threads) != nw:
                raise ValueError(f"threads={threads} and num_workers={num_workers} disagree: pass one of them")
            threads = nw
        self.threads = default_threads() if threads is None else check_threads(threads)  # as Compose.batch
        for name, v in (("rank", rank), ("world_size", world_size)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{name} must be an int, got {v!r}")
        if not (world_size >= 1 and 0 <= rank < world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if generator is not None and seed is None:
            # As DataLoader: the run's base seed is drawn from the generator (it advances).
            seed = int(_torch_or_none().empty((), dtype=_torch_or_none().int64).random_(generator=generator).item())
        self._seed_given = seed is not None
        if seed is None and world_size > 1 and shuffle and sampler is None:
            seed = _shared_fresh_seed(rank, world_size)  # every rank must shuffle alike (Note [Ranks share a seed])
        self.seed = fresh_seed() if seed is None else check_seed(seed, "seed")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"collate_fn must be callable, got {type(collate_fn).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout < 0:
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        if sampler is not None:
            if not hasattr(sampler, "__iter__"):
                raise TypeError("sampler must be an iterable of sample indices")
        if worker_init_fn is not None:
            warnings.warn("worker_init_fn is never called: fastprep's workers are native threads that run no "
                          "Python, and randomness is keyed by (seed, epoch, sample index), so no per-worker "
                          "seeding is needed", UserWarning, stacklevel=2)
        if multiprocessing_context is not None:
            warnings.warn("multiprocessing_context is ignored: fastprep's workers are native threads of this "
                          "process, no worker process is started", UserWarning, stacklevel=2)
        if pin_memory_device:
            warnings.warn("pin_memory_device is ignored (deprecated in PyTorch too): pinned buffers serve the "
                          "device= given", UserWarning, stacklevel=2)
        if in_order is False:
            warnings.warn("in_order=False is ignored: batches always come in order (the native pool already "
                          "keeps every thread busy)", UserWarning, stacklevel=2)
        if batch_sampler is not None:
            raise ValueError("batch_sampler is not supported: pass sampler= (an iterable of indices) with "
                             "batch_size, or give the Loader the batches' order through sampler")
        self.collate_fn = collate_fn
        self.timeout = float(timeout)
        if python_workers is not None and (isinstance(python_workers, bool) or not isinstance(python_workers, int)
                                           or python_workers < 0):
            raise ValueError(f"python_workers must be an int >= 0, got {python_workers!r}")
        self.python_workers = python_workers
        self.persistent_workers = persistent_workers
        self.sampler = sampler
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        self.on_error = check_policy(on_error)

        if isinstance(source, ShardDataset):
            self.dataset = source
        elif isinstance(source, (str, os.PathLike)) and is_shard_dir(source):
            self.dataset = ShardDataset(source)
        else:
            self.dataset = index_for_job(source, extensions=extensions, on_error=self.on_error)
        self._decoded = isinstance(self.dataset, ShardDataset)
        self.hybrid = None  # a HybridCompose transform: its remainder runs after the fused pass
        if self._decoded:
            if transform is not None:
                raise ValueError("a preprocessed source is already transformed: pass transform=None")
            self.transform = None
            self._shape = tuple(self.dataset.sample_shape)
            self._dtype = self.dataset.dtype
        else:
            if transform is None:
                raise ValueError("transform is required (e.g. fp.Compose([...]))")
            if isinstance(transform, (list, tuple)) and transform and all(isinstance(t, Compose) for t in transform):
                transform = MultiView(list(transform))
            if not isinstance(transform, (Compose, HybridCompose, MultiView)):
                exif = {} if apply_exif_orientation is None else {"apply_exif_orientation": apply_exif_orientation}
                transform = from_torchvision(transform, **exif)
            elif apply_exif_orientation is not None and bool(apply_exif_orientation) != transform.apply_exif_orientation:
                transform = transform.with_options(apply_exif_orientation=bool(apply_exif_orientation))
            if isinstance(transform, HybridCompose):
                # The fused prefix fills the ring; the remainder runs in worker processes (Note
                # [Python remainder] in fastprep/transforms/_hybrid.py).
                self.hybrid = transform
                transform = transform.fused
            if isinstance(transform, MultiView):
                # Each batch is (views, labels): one buffer per view in every ring slot (Note [Multi-view decode]).
                if transform.stack:
                    raise ValueError("a Loader yields a list of views: pass a MultiView with stack=False")
                if mix is not None:
                    raise ValueError("mix= mixes one image per sample; it cannot be combined with a MultiView")
                self._shape = transform.output_shapes
                self._dtype = [v.np_dtype for v in transform.views]
            else:
                if transform.output_size is None:
                    raise ValueError("the transform's output size depends on the image: add CenterCrop or use "
                                     "Resize((h, w)) so batches have one shape")
                self._shape = transform.output_shape()
                self._dtype = transform.np_dtype
            self.transform = transform
            self._native_items = _core.Items(list(self.dataset.items))
        self.mix, self.num_classes, self.label_smoothing = check_mix(mix, num_classes, label_smoothing, self._dtype)
        if self.mix is not None and not getattr(self.dataset, "labeled", True):
            raise ValueError("mix= needs labelled samples (an ImageFolder tree, (path, label) pairs, a labelled file "
                             "list or labelled shards): this source has no labels")
        self._mix_layout = getattr(self.transform, "layout", "CHW") if self.transform is not None else getattr(
            self.dataset, "layout", "CHW")
        self._batch_params = None
        self._position = None     # (epoch, cursor, batches) after the last batch handed out (state_dict)
        self._resume = None       # (cursor, batches) for the next iteration (load_state_dict)
        self._fingerprint = None
        self.epoch = None         # epoch of the latest iteration
        self._pinned_epoch = None  # set_epoch(e): the next iteration's epoch
        self._errors = ErrorLog()
        self._engine = _core.Engine(self.threads)

        if backend not in (None, "torch", "numpy"):
            raise ValueError(f"backend must be 'torch' or 'numpy', got {backend!r}")
        if backend is None:
            backend = "torch" if _torch_installed() else "numpy"
        # A numpy loader imports torch only when asked for what needs it (pinning, a device).
        need_torch = backend == "torch" or bool(pin_memory) or device is not None
        torch = _torch_or_none() if need_torch else None
        if backend == "torch" and torch is None:
            raise MissingDependencyError("backend='torch' needs torch: pip install 'fastprep[torch]' (or pip install "
                                         "torch)")
        self.backend = backend
        cuda = torch is not None and torch.cuda.is_available()
        if pin_memory and not cuda:
            warnings.warn("pin_memory=True but no CUDA device is available (or torch is missing): buffers are "
                          "not pinned", UserWarning, stacklevel=2)
            pin_memory = False
        self.device = None
        if device is not None:
            if torch is None:
                raise MissingDependencyError("device= needs torch: pip install 'fastprep[torch]' (or pip install torch)")
            self.device = torch.device(device)
            if self.device.type == "cuda" and not cuda:
                raise RuntimeError(f"device={device!r} but CUDA is not available")
            if self.device.type not in ("cuda", "cpu"):
                raise ValueError(f"unsupported device {device!r}")
            if self.device.type == "cpu":
                self.device = None
            elif backend != "torch":
                raise ValueError("device='cuda' needs backend='torch'")
        self.pin_memory = bool((cuda and backend == "torch") if pin_memory is None else pin_memory)
        self._torch = torch
        self._pid = os.getpid()
        self._ring = []
        self._ring_lock = threading.Lock()
        self._stream = torch.cuda.Stream(device=self.device) if self.device is not None else None
        self._stats = {"images": 0, "batches": 0, "wait_s": 0.0, "busy_s": 0.0, "wall_s": 0.0,
                       "allocated_slots": 0}

    def __reduce__(self):
        """A pickled Loader is rebuilt from its dataset (already indexed), transform and arguments,
        with the seed it drew, and resumes at its position (``state_dict``); threads, buffers and
        native state are never pickled."""
        kwargs = dict(self._init_kwargs, seed=self.seed)
        return (_rebuild_loader, (self.dataset, self.hybrid or self.transform, kwargs, self.state_dict()))

    # ---- dataset views ---------------------------------------------------------------------
    @property
    def errors(self):
        """The samples that failed (on_error "skip" or "zeros"): an :class:`ErrorLog`, iterated as
        (dataset index, message) pairs, one per failing sample across epochs, at most
        ErrorLog.MAX_RECORDS of them."""
        return self._errors

    @errors.setter
    def errors(self, value):
        log = ErrorLog()
        for i, m in value:
            log.add(int(i), str(m))
        self._errors = log

    @property
    def classes(self):
        return self.dataset.classes

    @property
    def class_to_idx(self):
        return self.dataset.class_to_idx

    def batch_params(self):
        """What batch mixing drew for the last batch the loop received: {"mix": "MixUp" or
        "CutMix", "lam": the targets' weight of each sample's own label (CutMix: corrected by the
        box's area), "box": (x1, y1, x2, y2) or None, "batch": its index in the epoch}; None without
        ``mix=`` or before the first batch. Replaying it with torchvision v2's MixUp / CutMix
        arithmetic on the unmixed batch gives the same batch and targets."""
        return None if self._batch_params is None else dict(self._batch_params)

    def set_epoch(self, epoch):
        """Pins the epoch of the next iteration (later iterations continue from epoch + 1)."""
        self._pinned_epoch = check_epoch(epoch)

    # ---- mid-epoch resume (Note [Resume]) ---------------------------------------------------
    def state_dict(self):
        """Where this loader is, between batches: a small JSON-serializable dict. A Loader built
        with the same arguments and given it with ``load_state_dict`` yields exactly the batches
        this one had not yet handed out (byte-identical), then the following epochs."""
        if self._position is not None:
            epoch, cursor, batches = self._position
        else:
            epoch, cursor, batches = self.next_epoch, 0, 0
            if self._resume is not None:
                cursor, batches = self._resume
        return {"format": _STATE_FORMAT, "epoch": int(epoch), "cursor": int(cursor), "batches": int(batches),
                "errors": self._errors.to_state(), "fingerprint": self._state_fingerprint()}

    def load_state_dict(self, state):
        """Continues from ``state_dict()``'s point: the next ``iter(loader)`` resumes that epoch.
        Refused (ValueError) for another dataset, transform or batching."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise ValueError(f"not a fastprep Loader state (format {_STATE_FORMAT!r} expected)")
        fp_ = state.get("fingerprint", {})
        mine = self._state_fingerprint()
        diff = sorted(k for k in set(mine) | set(fp_) if mine.get(k) != fp_.get(k))
        if diff == ["seed"] and not self._seed_given and isinstance(fp_.get("seed"), int):
            # This loader drew its seed fresh: the run being resumed is the one with the state's seed.
            self.seed = check_seed(fp_["seed"], "the state's seed")
            self._fingerprint = None
            diff = []
        if diff:
            raise ValueError("this state belongs to a Loader over another dataset or with other arguments "
                             f"(differs in: {', '.join(diff)})")
        epoch, cursor, batches = (int(state[k]) for k in ("epoch", "cursor", "batches"))
        if epoch < 0 or cursor < 0 or batches < 0:
            raise ValueError("corrupt Loader state: negative epoch, cursor or batch count")
        self.set_epoch(epoch)
        self._resume = (cursor, batches)
        self._position = None
        self._errors = ErrorLog.from_state(state.get("errors", []))

    def _state_fingerprint(self):
        """What must match for a state to resume here: the samples (count and names), the transform,
        and everything that decides the order and the batches."""
        if self._fingerprint is None:
            names = getattr(self.dataset, "names", None)
            h = hashlib.sha1()
            for name in (names if names is not None else []):
                h.update(os.fsencode(name) if isinstance(name, str) else bytes(name))
                h.update(b"\0")
            h.update(np.ascontiguousarray(self.dataset.labels, dtype=np.int64).tobytes())
            self._fingerprint = {
                "samples": len(self.dataset), "names_sha1": h.hexdigest(),
                "transform": repr(self.transform), "mix": repr(self.mix), "seed": self.seed,
                "batch_size": self.batch_size, "shuffle": self.shuffle, "drop_last": self.drop_last,
                "rank": self.rank, "world_size": self.world_size, "on_error": self.on_error,
                "sampler": None if self.sampler is None else type(self.sampler).__name__,
            }
        return dict(self._fingerprint)

    @property
    def next_epoch(self):
        """The epoch the next ``iter(loader)`` will use."""
        if self._pinned_epoch is not None:
            return self._pinned_epoch
        return 0 if self.epoch is None else self.epoch + 1

    def indices(self, epoch=None):
        """This rank's sample indices for an epoch (default: the next iteration's), in order
        (DistributedSampler semantics, or the sampler's order)."""
        epoch = self.next_epoch if epoch is None else check_epoch(epoch)
        n = len(self.dataset)
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            order = np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
            if len(order) and (order.min() < 0 or order.max() >= n):
                raise IndexError(f"sampler yielded an index outside [0, {n})")
            return order
        if self.shuffle:
            order = np.random.default_rng([self.seed & 0xFFFFFFFFFFFFFFFF, epoch]).permutation(n)
        else:
            order = np.arange(n)
        w = self.world_size
        if w > 1:
            if self.drop_last:
                total = (n // w) * w
                order = order[:total]
            else:
                total = -(-n // w) * w
                pad = total - n
                if pad:
                    reps = -(-pad // max(n, 1))
                    order = np.concatenate([order] + [order] * reps)[:total]
            order = order[self.rank:total:w]
        return order.astype(np.int64)

    def __len__(self):
        if self.sampler is not None and hasattr(self.sampler, "__len__"):
            m = len(self.sampler)
        else:
            n, w = len(self.dataset), self.world_size
            m = (n // w if self.drop_last else -(-n // w)) if w > 1 else n
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def stats(self):
        """Throughput and how long the consumer waited for batches (is the loader the bottleneck?)."""
        s = dict(self._stats)
        s["images_per_s"] = s["images"] / s["wall_s"] if s["wall_s"] else 0.0
        s["native_images_per_s"] = s["images"] / s["busy_s"] if s["busy_s"] else 0.0
        s["wait_fraction"] = s["wait_s"] / s["wall_s"] if s["wall_s"] else 0.0
        s["ring_slots"] = len(self._ring)
        return s

    def __iter__(self):
        self._after_fork_check()
        epoch = self.next_epoch
        order = self.indices(epoch)
        self._pinned_epoch = None
        self.epoch = epoch
        start, batches = self._resume if self._resume is not None else (0, 0)
        self._resume = None
        self._position = (epoch, start, batches)
        return _Iterator(self, order, epoch, start, batches)

    def _after_fork_check(self):
        """In a forked child the parent's slots may be mid-use by threads that do not exist
        here, and the lock may be held: start over with a fresh ring (Note [Exit and fork])."""
        if self._pid != os.getpid():
            torch = self._torch
            bad = (torch is not None and (self.pin_memory or self.device is not None)
                   and getattr(torch.cuda, "_is_in_bad_fork", lambda: True)())
            if bad and self.device is not None:  # raised on every iteration in this child
                raise RuntimeError(
                    f"this Loader (device={str(self.device)!r}) was made before fork() and the parent had "
                    "initialised CUDA, which cannot be used in a forked child: make the Loader in the child "
                    "with a 'spawn' start method (multiprocessing.get_context('spawn')), or use device=None "
                    "here and move batches to the GPU in the parent")
            if bad:
                self.pin_memory = False  # page-locked memory is a CUDA allocation
            self._pid = os.getpid()
            self._ring = []
            self._ring_lock = threading.Lock()

    # ---- slots -------------------------------------------------------------------------------
    def _acquire(self):
        with self._ring_lock:
            for slot in self._ring:
                if slot.free():
                    slot.busy = True
                    return slot
        # Allocated outside the lock: a garbage collection during the allocation may finalize
        # another iterator, whose close() must not wait on a producer blocked on this lock.
        slot = _Slot(self._shape, self._dtype, self.batch_size, self.pin_memory, self._torch)
        slot.busy = True
        with self._ring_lock:
            self._ring.append(slot)
            self._stats["allocated_slots"] += 1
        return slot


def _rebuild_loader(dataset, transform, kwargs, state):
    loader = Loader(dataset, transform, **kwargs)
    loader.load_state_dict(state)
    return loader


class _Producer:
    """Fills batches in a background thread. Holds no reference to the iterator, so dropping the
    iterator (break, del, an exception) stops it."""

    def __init__(self, loader, order, epoch, start=0, batches=0):
        self.loader = loader
        self.order = order
        self.epoch = epoch
        self.start = start  # position in the epoch's order to start from (a resumed epoch)
        self.batch_index = batches  # batches handed out this epoch: the batch mixing's key
        self.handed_out = 0  # batches this producer handed out
        self.failures = 0  # samples that failed under "skip" (this producer)
        self.first_failure = None
        self.queue = queue.Queue(maxsize=loader.prefetch)
        self.stop = threading.Event()
        self.cancel = _core.CancelToken()  # stops a running native batch between samples
        self.keys = np.zeros(loader.batch_size, np.int64)  # the sample index at each slot position
        self.inflight = collections.deque()  # batches in the Python remainder, oldest first
        self.tail = None
        if loader.hybrid is not None:  # forked here, on the consumer's thread, before our thread starts
            workers = loader.threads if loader.python_workers is None else loader.python_workers
            self.tail = TailRunner(loader.hybrid, workers)
        self.thread = threading.Thread(target=self._run, name="fastprep-loader", daemon=True)
        self.pid = os.getpid()
        _LIVE.add(self)
        self.thread.start()

    def _put(self, item):
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self):
        try:
            self._produce()
        except BaseException as e:  # never hang the consumer: hand the failure over
            self._put(e)
        self._put(_STOP)

    def _produce(self):
        L = self.loader
        order = self.order
        bs = L.batch_size
        cursor = self.start
        n = len(order)
        while cursor < n and not self.stop.is_set():
            slot = L._acquire()
            t0 = time.perf_counter()
            picks = order[cursor:cursor + bs]
            cursor += len(picks)
            try:
                filled, err, cursor = self._fill(slot, picks, cursor)
            except BaseException:
                slot.busy = False
                raise
            L._stats["busy_s"] += time.perf_counter() - t0
            if err is not None or filled == 0 or (L.drop_last and filled < bs) or self.stop.is_set():
                slot.busy = False  # nothing handed out: the slot is free again
                if err is not None and not self._put(err):
                    return
                continue
            if self.tail is not None:
                # The remainder gets copies, so the slot is free for the next fused batch at once.
                images, labels = slot.array[:filled].copy(), slot.labels[:filled].copy()
                keys = self.keys[:filled].copy()
                slot.busy = False
                self.inflight.append((self.tail.submit(images, keys, L.seed, self.epoch), labels, keys,
                                      self.batch_index, (self.epoch, cursor, self.batch_index + 1)))
                self.batch_index += 1
                while len(self.inflight) > L.prefetch:
                    if not self._put_tail():
                        return
                continue
            if not self._put(self._publish(slot, filled) + ((self.epoch, cursor, self.batch_index + 1),)):
                return
            self.batch_index += 1
            self.handed_out += 1
        while self.inflight and not self.stop.is_set():
            if not self._put_tail():
                return
        if (not self.stop.is_set() and self.handed_out == 0 and self.failures and L.on_error == "skip"
                and cursor >= n):
            # Every sample of the epoch failed: an empty epoch would pass for a finished one.
            e = self.first_failure
            raise AllSamplesFailedError(
                f"epoch {self.epoch}", f"every sample failed under on_error='skip' ({self.failures} failures, "
                f"{len(order)} samples); the first: {e}")

    def _put_tail(self):
        """Hands out the oldest batch in the remainder (the consumer runs it with workers=0)."""
        pending, labels, keys, batch, position = self.inflight.popleft()
        if self.tail.inline:
            item = (_InlineBatch(self, pending, labels, keys, batch),)
        else:
            try:
                out = pending.get(self.stop)
            except TransformError as e:  # name the file: the worker knows only the index
                raise TransformError(self._name(e.index), e.reason, e.index) from None
            if out is None:
                return False
            item = self._publish_tail(out, labels, batch)
        self.handed_out += 1
        return self._put(item + (position,))

    def _name(self, index):
        items = self.loader.dataset.items
        return display_name(items[index], index) if index is not None and 0 <= index < len(items) else "?"

    def _publish_tail(self, out, labels, batch):
        """A batch out of the remainder, as _publish hands out a fused one (mixed, on the device)."""
        L = self.loader
        torch = L._torch
        params = None
        n = len(labels)
        if L.mix is not None:
            arr = out.numpy() if torch is not None and isinstance(out, torch.Tensor) else out
            if not (isinstance(arr, np.ndarray) and arr.ndim == 4 and arr.dtype == np.float32):
                raise TypeError("mix= needs the transform to give float32 (N, C, H, W) batches; the Python remainder "
                                f"gave {type(out).__name__}")
            rng = np.random.default_rng(mix_key(L.seed, self.epoch, L.rank, batch))
            labels, params = mix_batch(arr, labels, L.mix, L.num_classes, L.label_smoothing, "CHW", rng)
            params["batch"] = batch
        L._stats["images"] += n
        L._stats["batches"] += 1
        if L.backend == "numpy":
            if torch is not None and isinstance(out, torch.Tensor):
                out = out.numpy()
            return out, labels, None, params
        if isinstance(out, np.ndarray):
            out = torch.from_numpy(out)
        labels = torch.from_numpy(labels)
        if L.device is not None:
            out = out.to(L.device) if isinstance(out, torch.Tensor) else [o.to(L.device) for o in out]
            labels = labels.to(L.device)
        return out, labels, None, params

    def _fill(self, slot, picks, cursor):
        """Writes picks (int64 array) into the slot. Returns (count, exception or None, cursor)."""
        L = self.loader
        order = self.order
        count = len(picks)
        positions = np.arange(count, dtype=np.int64)
        dropped = []
        while len(picks):
            if L._decoded:
                try:
                    self._run_native(slot, picks, positions)
                except DecodeError as e:  # a shard that cannot be read (truncated): this batch's error
                    return 0, e, cursor
                break
            errors = self._run_native(slot, picks, positions)
            if self.cancel.cancelled:
                return 0, None, cursor
            if not errors:
                break
            # Failures only: per-sample Python from here on.
            if L.on_error == "raise":
                return 0, errors[min(errors)], cursor
            pick_at = dict(zip(positions.tolist(), picks.tolist()))
            for pos in sorted(errors):
                L._errors.add(pick_at[pos], str(errors[pos]))
                self.failures += 1
                if self.first_failure is None:
                    self.first_failure = errors[pos]
            if L.on_error == "zeros":
                for pos in errors:
                    slot.zero(pos)
                break
            # "skip": refill each failed position with the next sample of this epoch's order.
            new_pos, new_picks = [], []
            for pos in sorted(errors):
                if cursor < len(order):
                    new_pos.append(pos)
                    new_picks.append(int(order[cursor]))
                    cursor += 1
                else:
                    dropped.append(pos)
            positions = np.asarray(new_pos, np.int64)
            picks = np.asarray(new_picks, np.int64)
        if dropped:  # the epoch ran out of replacements: compact the good samples to the front
            gone = set(dropped)
            good = [pos for pos in range(count) if pos not in gone]
            for dst, src in enumerate(good):
                if dst != src:
                    slot.move(dst, src)
                    self.keys[dst] = self.keys[src]
            count = len(good)
        return count, None, cursor

    def _run_native(self, slot, picks, positions):
        """Runs picks into slot positions; returns {position: DecodeError}."""
        L = self.loader
        slot.labels[positions] = L.dataset.labels[picks]
        self.keys[positions] = picks
        if L._decoded:
            L.dataset.read(picks, out=slot.array, positions=positions)
            return {}
        t = L.transform
        _, errors = t.execute(L._native_items, L.dataset.items, picks, positions, picks, slot.array,
                              getattr(t, "output_size", None), L._engine, L.seed, self.epoch, want_params=False,
                              cancel=self.cancel)
        return {int(positions[i]): e for i, e in errors.items()}

    def _publish(self, slot, n):
        L = self.loader
        params = None
        if L.mix is not None:  # in place on the slot, before anything is handed out
            rng = np.random.default_rng(mix_key(L.seed, self.epoch, L.rank, self.batch_index))
            targets, params = mix_batch(slot.array[:n], slot.labels[:n], L.mix, L.num_classes, L.label_smoothing,
                                        L._mix_layout, rng)
            params["batch"] = self.batch_index
        images, labels = slot.hand_out(n)
        if params is not None:
            labels = targets
        L._stats["images"] += n
        L._stats["batches"] += 1
        if L.backend == "numpy":
            return images, labels, None, params
        torch = L._torch

        def tensor(a):
            t = torch.from_numpy(a)  # keeps the handed-out view alive (Note [Buffer ring])
            return t.view(torch.bfloat16) if a.dtype == np.uint16 else t

        ti = [tensor(a) for a in images] if isinstance(images, list) else tensor(images)
        tl = torch.from_numpy(labels)
        if L.device is None:
            return ti, tl, None, params
        with torch.cuda.stream(L._stream):  # every view copied on the Loader's stream, one event for all
            gi = [t.to(L.device, non_blocking=True) for t in ti] if isinstance(ti, list) else ti.to(
                L.device, non_blocking=True)
            gl = tl.to(L.device, non_blocking=True)
            ev = torch.cuda.Event()
            ev.record(L._stream)
        slot.event = ev
        return gi, gl, ev, params

    def close(self):
        _LIVE.discard(self)
        if self.pid != os.getpid():
            return  # a forked child's copy: the thread and the queue's lock belong to the parent
        self.stop.set()
        self.cancel.cancel()
        if self.tail is not None:
            self.tail.close()
        try:
            while True:
                self.queue.get_nowait()
        except queue.Empty:
            pass
        if self.thread is not threading.current_thread() and self.thread.ident is not None:
            self.thread.join(timeout=60)


class _InlineBatch:
    """A batch whose Python remainder runs on the consumer's thread (python_workers=0)."""

    def __init__(self, producer, pending, labels, keys, batch):
        self.producer, self.pending, self.labels, self.keys, self.batch = producer, pending, labels, keys, batch

    def run(self):
        p = self.producer
        try:
            out = self.pending.get()
        except TransformError as e:
            raise TransformError(p._name(e.index), e.reason, e.index) from None
        return p._publish_tail(out, self.labels, self.batch)


class _Iterator:
    def __init__(self, loader, order, epoch, start=0, batches=0):
        self.loader = loader
        self.epoch = epoch
        self._pid = os.getpid()
        self._producer = _Producer(loader, order, epoch, start, batches)
        self._t0 = time.perf_counter()
        self._done = False
        # One iterator may be shared by threads: each next() takes the lock, so a thread that
        # waited while another got the epoch's end sees the end, not a vanished producer.
        self._lock = threading.Lock()

    def __iter__(self):
        return self

    def __next__(self):
        if self._pid != os.getpid():  # before the lock, which fork may have copied held
            self._producer = None  # its thread exists only in the parent process
            self._done = True
            raise RuntimeError("this Loader iterator was created before fork() and its producer thread does not "
                               "exist in this child process: call iter(loader) again in the child")
        with self._lock:
            return self._next()

    def _next(self):
        if self._done:
            raise StopIteration
        L = self.loader
        t0 = time.perf_counter()
        item = self._get()
        L._stats["wait_s"] += time.perf_counter() - t0
        L._stats["wall_s"] = L._stats.get("wall_s", 0.0) + (time.perf_counter() - self._t0)
        self._t0 = time.perf_counter()
        if item is _STOP:
            self._done = True
            self.close()
            L._position = None  # the epoch is over: a state now resumes at the next one
            raise StopIteration
        if isinstance(item, BaseException):
            if not isinstance(item, DecodeError):
                self._done = True
                self.close()
            raise item
        if isinstance(item[0], _InlineBatch):
            item = item[0].run() + (item[1],)
        images, labels, ev, L._batch_params, L._position = item
        if ev is not None:
            torch = L._torch
            cur = torch.cuda.current_stream(L.device)
            cur.wait_event(ev)
            for t in images if isinstance(images, list) else [images]:
                t.record_stream(cur)
            labels.record_stream(cur)
        if L.collate_fn is not None:
            return L.collate_fn(images, labels)
        return images, labels

    def _get(self):
        p = self._producer
        timeout = self.loader.timeout
        if timeout > 0:
            try:
                return p.queue.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(f"Loader timed out after {timeout} seconds waiting for a batch (timeout=)") from None
        # Wait in slices so that a producer that died without a word cannot hang the consumer.
        while True:
            try:
                return p.queue.get(timeout=1.0)
            except queue.Empty:
                if not p.thread.is_alive() and p.queue.empty():
                    self._done = True
                    raise RuntimeError("the Loader's producer thread ended without finishing the epoch") from None

    def close(self):
        self._done = True
        p = self._producer
        if p is not None:
            self._producer = None
            p.close()

    def __del__(self):
        try:
            if self._pid == os.getpid():
                self.close()
        except Exception:
            pass
