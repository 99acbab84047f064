"""fp.Loader: native multithreaded batching into reusable (pinned) buffers.

Threads: the native Engine decodes and transforms each batch with the GIL released; one Python
producer thread only picks indices, hands slots to the engine and queues finished batches.

Note [Buffer ring]
Batches are written into a ring of preallocated slots (pinned when CUDA is available) and handed
out as zero-copy views. A slot is refilled only when nothing outside the ring references its
arrays (a view, a torch tensor made from it and a DLPack capsule all hold a reference to the
slot's numpy array, so the reference count tells) and, on the GPU path, after its host-to-device
copy has completed. When every slot is still held, a new slot is allocated: a held batch is never
overwritten, and in steady state, with references released, nothing is allocated per batch.
"""
import os
import queue
import sys
import threading
import time

import numpy as np

from . import _core
from ._errors import DecodeError
from ._transforms import Compose, _default_threads, _check_policy, execute

_STOP = object()


def _torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


class _Slot:
    __slots__ = ("array", "labels", "pinned", "event", "base_refs")

    def __init__(self, shape, dtype, n, pin, torch):
        self.pinned = None
        if pin:
            tdtype = {np.dtype(np.uint8): torch.uint8, np.dtype(np.float32): torch.float32,
                      np.dtype(np.float16): torch.float16, np.dtype(np.uint16): torch.int16}[np.dtype(dtype)]
            self.pinned = torch.empty((n,) + tuple(shape), dtype=tdtype, pin_memory=True)
            arr = self.pinned.numpy()
            self.array = arr.view(np.uint16) if np.dtype(dtype) == np.uint16 else arr
            # labels pinned too, so their host-to-device copy is asynchronous as well
            self.labels = torch.empty((n,), dtype=torch.int64, pin_memory=True).numpy()
        else:
            self.array = np.empty((n,) + tuple(shape), dtype=dtype)
            self.labels = np.empty((n,), dtype=np.int64)
        self.event = None
        self.base_refs = None
        self.base_refs = self._refs()

    def _refs(self):
        return sys.getrefcount(self.array) + sys.getrefcount(self.labels)

    def free(self):
        if self._refs() > self.base_refs:
            return False
        if self.event is not None and not self.event.query():
            return False
        return True


class Loader:
    """Iterates (images, labels) batches of a dataset through a fused fastprep transform.

    Args:
        source: ImageFolder-layout directory, list of paths or (path, label), a "path,label" text
            or CSV file, a sequence of bytes, or a directory written by ``fastprep preprocess``
            (read without decoding).
        transform: a fastprep Compose (or a torchvision Compose, converted by from_torchvision).
        batch_size, shuffle, drop_last: as torch.utils.data.DataLoader.
        threads: native decode threads (default: all usable cores).
        prefetch: finished batches kept ready ahead of the consumer.
        seed: shuffle order and augmentation are pure functions of (seed, epoch, sample index).
        pin_memory: None pins when CUDA is available; True requires CUDA.
        device: e.g. "cuda": batches arrive on the GPU (copied on a side stream).
        rank, world_size: DistributedSampler semantics (equal, disjoint shards; padded unless
            drop_last).
        on_error: "raise" (DecodeError at the batch, loader stays usable), "skip" (slot refilled
            with the next good sample; skipped files in ``loader.errors``) or "zeros".
        backend: "torch" or "numpy" (default: torch when importable).
    """

    def __init__(self, source, transform=None, batch_size=256, shuffle=True, drop_last=False, threads=None,
                 prefetch=2, seed=0, pin_memory=None, device=None, rank=0, world_size=1, on_error="raise",
                 backend=None, extensions=None):
        from ._shards import ShardDataset, is_shard_dir

        if isinstance(source, ShardDataset):
            self.dataset = source
        elif isinstance(source, (str, os.PathLike)) and is_shard_dir(source):
            self.dataset = ShardDataset(source)
        else:
            from ._datasets import index_source

            self.dataset = index_source(source, extensions=extensions)
        self._decoded = isinstance(self.dataset, ShardDataset)
        if self._decoded:
            if transform is not None:
                raise ValueError("a preprocessed source is already transformed: pass transform=None")
            self.transform = None
            self._shape = tuple(self.dataset.sample_shape)
            self._dtype = self.dataset.dtype
        else:
            if transform is None:
                raise ValueError("transform is required (e.g. fp.Compose([...]))")
            if not isinstance(transform, Compose):
                from ._torchvision import from_torchvision

                transform = from_torchvision(transform)
            if transform.output_size is None:
                raise ValueError("the transform's output size depends on the image: add CenterCrop or use "
                                 "Resize((h, w)) so batches have one shape")
            self.transform = transform
            self._shape = transform.output_shape()
            self._dtype = transform.np_dtype
            self._native_items = _core.Items(list(self.dataset.items))
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not (world_size >= 1 and 0 <= rank < world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if prefetch < 1:
            raise ValueError("prefetch must be >= 1")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.prefetch = int(prefetch)
        self.seed = int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.on_error = _check_policy(on_error)
        self.threads = int(threads) if threads else _default_threads()
        self.epoch = 0
        self.errors = []
        self._engine = _core.Engine(self.threads)

        torch = _torch_or_none()
        if backend is None:
            backend = "torch" if torch is not None else "numpy"
        if backend not in ("torch", "numpy"):
            raise ValueError("backend must be 'torch' or 'numpy'")
        if backend == "torch" and torch is None:
            raise ImportError("backend='torch' needs torch: pip install 'fastprep[torch]' (or pip install torch)")
        self.backend = backend
        cuda = torch is not None and torch.cuda.is_available()
        if pin_memory and not cuda:
            raise RuntimeError("pin_memory=True needs torch with CUDA and a visible GPU; pass pin_memory=None "
                               "to pin only when possible")
        self.device = None
        if device is not None:
            if torch is None:
                raise ImportError("device= needs torch: pip install torch")
            self.device = torch.device(device)
            if self.device.type == "cuda" and not cuda:
                raise RuntimeError(f"device={device!r} but CUDA is not available")
            if self.device.type not in ("cuda", "cpu"):
                raise ValueError(f"unsupported device {device!r}")
            if self.device.type == "cpu":
                self.device = None
            elif backend != "torch":
                raise ValueError("device='cuda' needs backend='torch'")
        self.pin_memory = bool(cuda if pin_memory is None else pin_memory)
        self._torch = torch
        self._ring = []
        self._ring_lock = threading.Lock()
        self._stream = torch.cuda.Stream(device=self.device) if self.device is not None else None
        self._stats = {"images": 0, "batches": 0, "wait_s": 0.0, "busy_s": 0.0, "wall_s": 0.0,
                       "allocated_slots": 0}

    # ---- dataset views ---------------------------------------------------------------------
    @property
    def classes(self):
        return self.dataset.classes

    @property
    def class_to_idx(self):
        return self.dataset.class_to_idx

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def indices(self, epoch=None):
        """This rank's sample indices for an epoch, in order (DistributedSampler semantics)."""
        epoch = self.epoch if epoch is None else int(epoch)
        n = len(self.dataset)
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
        return _Iterator(self)

    # ---- slots -------------------------------------------------------------------------------
    def _acquire(self):
        with self._ring_lock:
            for slot in self._ring:
                if slot.free():
                    return slot
            slot = _Slot(self._shape, self._dtype, self.batch_size, self.pin_memory, self._torch)
            self._ring.append(slot)
            self._stats["allocated_slots"] += 1
            return slot


class _Producer:
    """Fills batches in a background thread. Holds no reference to the iterator, so dropping the
    iterator (break, del, an exception) stops it."""

    def __init__(self, loader, order):
        self.loader = loader
        self.order = order
        self.queue = queue.Queue(maxsize=loader.prefetch)
        self.stop = threading.Event()
        self.cancel = _core.CancelToken()  # stops a running native batch between samples
        self.thread = threading.Thread(target=self._run, name="fastprep-loader", daemon=True)
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
        cursor = 0
        n = len(order)
        while cursor < n and not self.stop.is_set():
            slot = L._acquire()
            t0 = time.perf_counter()
            picks = order[cursor:cursor + bs]
            cursor += len(picks)
            filled, err, cursor = self._fill(slot, picks, cursor)
            L._stats["busy_s"] += time.perf_counter() - t0
            if err is not None:
                if not self._put(err):
                    return
                continue
            if filled == 0 or (L.drop_last and filled < bs):
                continue
            if not self._put(self._publish(slot, filled)):
                return

    def _fill(self, slot, picks, cursor):
        """Writes picks (int64 array) into the slot. Returns (count, exception or None, cursor)."""
        L = self.loader
        order = self.order
        count = len(picks)
        positions = np.arange(count, dtype=np.int64)
        dropped = []
        while len(picks):
            errors = self._run_native(slot, picks, positions)
            if not errors:
                break
            # Failures only: per-sample Python from here on.
            if L.on_error == "raise":
                return 0, errors[min(errors)], cursor
            pick_at = dict(zip(positions.tolist(), picks.tolist()))
            for pos in sorted(errors):
                L.errors.append((pick_at[pos], str(errors[pos])))
            if L.on_error == "zeros":
                for pos in errors:
                    slot.array[pos] = 0
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
                    slot.array[dst] = slot.array[src]
                    slot.labels[dst] = slot.labels[src]
            count = len(good)
        return count, None, cursor

    def _run_native(self, slot, picks, positions):
        """Runs picks into slot positions; returns {position: DecodeError}."""
        L = self.loader
        slot.labels[positions] = L.dataset.labels[picks]
        if L._decoded:
            L.dataset.read(picks, out=slot.array, positions=positions)
            return {}
        t = L.transform
        _, errors = execute(t, L._native_items, L.dataset.items, picks, positions, picks, slot.array, t.output_size,
                            L._engine, L.seed, L.epoch, want_params=False, cancel=self.cancel)
        return {int(positions[i]): e for i, e in errors.items()}

    def _publish(self, slot, n):
        L = self.loader
        images = slot.array[:n]
        labels = slot.labels[:n]
        L._stats["images"] += n
        L._stats["batches"] += 1
        if L.backend == "numpy":
            return images, labels, None
        torch = L._torch
        ti = torch.from_numpy(images)  # its storage references the slot's array (Note [Buffer ring])
        if images.dtype == np.uint16:
            ti = ti.view(torch.bfloat16)
        tl = torch.from_numpy(labels)
        if L.device is None:
            return ti, tl, None
        with torch.cuda.stream(L._stream):
            gi = ti.to(L.device, non_blocking=True)
            gl = tl.to(L.device, non_blocking=True)
            ev = torch.cuda.Event()
            ev.record(L._stream)
        slot.event = ev
        return gi, gl, ev

    def close(self):
        self.stop.set()
        self.cancel.cancel()
        try:
            while True:
                self.queue.get_nowait()
        except queue.Empty:
            pass
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=60)


class _Iterator:
    def __init__(self, loader):
        self.loader = loader
        self._producer = _Producer(loader, loader.indices())
        self._t0 = time.perf_counter()
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        L = self.loader
        t0 = time.perf_counter()
        item = self._producer.queue.get()
        L._stats["wait_s"] += time.perf_counter() - t0
        L._stats["wall_s"] = L._stats.get("wall_s", 0.0) + (time.perf_counter() - self._t0)
        self._t0 = time.perf_counter()
        if item is _STOP:
            self._done = True
            self.close()
            raise StopIteration
        if isinstance(item, BaseException):
            if not isinstance(item, DecodeError):
                self._done = True
                self.close()
            raise item
        images, labels, ev = item
        if ev is not None:
            torch = L._torch
            cur = torch.cuda.current_stream(L.device)
            cur.wait_event(ev)
            images.record_stream(cur)
            labels.record_stream(cur)
        return images, labels

    def close(self):
        p = self._producer
        if p is not None:
            self._producer = None
            p.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
