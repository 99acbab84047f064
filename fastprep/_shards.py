"""Reading the shards ``fastprep preprocess --format npy`` writes, with no decode."""
import json
import os
import threading

import numpy as np

__all__ = ["ShardDataset", "is_shard_dir"]


def is_shard_dir(path):
    """True when ``path`` is a ``fastprep preprocess --format npy`` output directory (finished, or
    unfinished: ShardDataset then says to rerun the command)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    index = os.path.join(path, "index.json")
    try:
        with open(index, "rb") as f:
            head = f.read(256)
        return b'"fastprep-shards"' in head
    except OSError:
        pass
    try:
        with open(os.path.join(path, "run.json"), encoding="utf-8") as f:
            return json.load(f).get("format") == "npy"
    except (OSError, ValueError, AttributeError):
        return False


class ShardDataset:
    """Memory-mapped samples of a ``fastprep preprocess --format npy`` output directory.

    Attributes:
        labels: np.int64 array, one label per sample (-1: unlabeled).
        classes, class_to_idx: as the source dataset's (ImageFolder mapping).
        spec: the transform spec (name, size, ops, dtype, layout).
        names: the source file name of every sample.
        sample_shape, dtype: shape and numpy dtype of one sample.
        stats: mean/std of the stored data, both scales.
        failed: the source files left out (on_error="skip") or zero-filled ("zeros").

    ``read(indices)`` gathers any samples, in any order, into one contiguous batch; samples are
    read straight from the memory-mapped shards (safe to call from several threads).
    """

    def __init__(self, path):
        path = os.fspath(path)
        index_path = path if os.path.isfile(path) else os.path.join(path, "index.json")
        self.root = os.path.dirname(os.path.abspath(index_path))
        if not os.path.exists(index_path):
            if os.path.exists(os.path.join(self.root, "run.json")):
                raise FileNotFoundError(f"{self.root} is an unfinished preprocessing run (no index.json): rerun the "
                                        "same `fastprep preprocess` command to finish it")
            raise FileNotFoundError(f"no index.json in {self.root}: not a `fastprep preprocess --format npy` output")
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
        if index.get("format") != "fastprep-shards":
            raise ValueError(f"{index_path} is a {index.get('format')!r} index, not fastprep-shards "
                             "(a --format jpeg output is a folder of images: index it as a source)")
        self.index = index
        self.spec = index["transform"]
        self.classes = list(index.get("classes", []))
        self.class_to_idx = dict(index.get("class_to_idx", {}))
        self.names = list(index.get("files", []))
        self.failed = list(index.get("failed", []))
        self.stats = index.get("stats")
        self.sample_shape = tuple(index["shape"])
        self.dtype = np.dtype(index["dtype"])
        self.layout = index.get("layout")
        shards = index["shards"]
        self._files = [os.path.join(self.root, s["images"]) for s in shards]
        self._counts = np.array([s["count"] for s in shards], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._counts)]).astype(np.int64)
        self._len = int(self._starts[-1])
        labels = [np.load(os.path.join(self.root, s["labels"])) for s in shards]
        self.labels = (np.concatenate(labels).astype(np.int64, copy=False) if labels
                       else np.zeros(0, np.int64))
        if len(self.labels) != self._len:
            raise ValueError(f"{self.root}: {len(self.labels)} labels for {self._len} samples")
        self._maps = [None] * len(shards)
        self._lock = threading.Lock()

    def __len__(self):
        return self._len

    def __repr__(self):
        return (f"ShardDataset({self.root!r}, {self._len} samples {self.sample_shape} {self.dtype}, "
                f"{len(self._files)} shards, {len(self.classes)} classes)")

    @property
    def shape(self):
        """(len(self), *sample_shape): the dataset as one array."""
        return (self._len,) + self.sample_shape

    def shard(self, k):
        """Shard k's images as a read-only memory map (n_k, *sample_shape)."""
        m = self._maps[k]
        if m is None:
            with self._lock:
                m = self._maps[k]
                if m is None:
                    if self._counts[k] == 0:
                        m = np.zeros((0,) + self.sample_shape, self.dtype)
                    else:
                        m = np.load(self._files[k], mmap_mode="r")
                        if m.shape != (self._counts[k],) + self.sample_shape or m.dtype != self.dtype:
                            raise ValueError(f"{self._files[k]} has shape {m.shape} {m.dtype}, index.json says "
                                             f"{(int(self._counts[k]),) + self.sample_shape} {self.dtype}")
                    self._maps[k] = m
        return m

    def _check_indices(self, indices):
        idx = np.asarray(indices, dtype=np.int64).reshape(-1) if not isinstance(indices, slice) else \
            np.arange(self._len, dtype=np.int64)[indices]
        if idx.size and (idx.min() < -self._len or idx.max() >= self._len):
            bad = idx[(idx < -self._len) | (idx >= self._len)][0]
            raise IndexError(f"sample index {int(bad)} out of range for {self._len} samples")
        return np.where(idx < 0, idx + self._len, idx)

    def read(self, indices, out=None, positions=None):
        """Gathers samples ``indices`` (any order, repeats allowed) into a contiguous batch.

        Without ``positions``, ``out`` (or a new array) has shape (len(indices), *sample_shape)
        and row j receives sample indices[j]. With ``positions``, row positions[j] of ``out`` (any
        C-contiguous (M, *sample_shape) buffer, numpy or CPU torch) receives sample indices[j] and
        the other rows are left alone. Returns ``out``.
        """
        idx = self._check_indices(indices)
        if positions is None:
            shape = (len(idx),) + self.sample_shape
            pos = None
        else:
            pos = np.asarray(positions, dtype=np.int64).reshape(-1)
            if len(pos) != len(idx):
                raise ValueError(f"{len(idx)} indices but {len(pos)} positions")
            if out is None:
                raise ValueError("positions needs an out buffer")
            shape = None
        if out is None:
            out = np.empty(shape, self.dtype)
            self._gather(idx, out, pos)
            return out
        out_np = out.numpy() if type(out).__module__.startswith("torch") else out
        if not isinstance(out_np, np.ndarray):
            raise TypeError(f"out must be a numpy array or a CPU torch tensor, got {type(out).__name__}")
        if out_np.dtype != self.dtype or tuple(out_np.shape[1:]) != self.sample_shape or (
                shape is not None and tuple(out_np.shape) != shape):
            want = shape if shape is not None else ("M",) + self.sample_shape
            raise ValueError(f"out must be {want} {self.dtype}, got {tuple(out_np.shape)} {out_np.dtype}")
        if not out_np.flags.c_contiguous or not out_np.flags.writeable:
            raise ValueError("out must be C-contiguous and writable")
        if pos is not None and len(pos) and (pos.min() < 0 or pos.max() >= len(out_np)):
            raise IndexError(f"positions must be in [0, {len(out_np)})")
        self._gather(idx, out_np, pos)
        return out

    def _gather(self, idx, out, pos=None):
        if not len(idx):
            return
        if pos is not None and len(pos) > 1 and np.all(np.diff(pos) == 1):
            out, pos = out[pos[0]:pos[0] + len(pos)], None
        elif pos is not None and len(pos) == 1:
            out, pos = out[pos[0]:pos[0] + 1], None
        sid = np.searchsorted(self._starts, idx, side="right") - 1
        lo, hi = int(sid.min()), int(sid.max())
        if lo == hi and pos is None:
            local = idx - self._starts[lo]
            a = int(local[0])
            if len(local) > 1 and np.all(np.diff(local) == 1):  # a contiguous run: one slice copy
                out[...] = self.shard(lo)[a:a + len(local)]
            else:
                np.take(self.shard(lo), local, axis=0, out=out)
            return
        rows = pos if pos is not None else np.arange(len(idx))
        for s in np.unique(sid):
            sel = np.nonzero(sid == s)[0]
            out[rows[sel]] = self.shard(int(s))[idx[sel] - self._starts[s]]

    def read_labels(self, indices):
        return self.labels[self._check_indices(indices)]

    def __getitem__(self, i):
        """(sample, label) for one index: the sample is a copy, not a view of the map."""
        idx = self._check_indices([i])
        return self.read(idx)[0], int(self.labels[idx[0]])

    def __iter__(self):
        for i in range(self._len):
            yield self[i]
