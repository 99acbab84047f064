"""Reading the shards ``fastprep preprocess --format npy`` writes, with no decode.

``read`` copies the samples with ``os.preadv`` straight into the output batch: no memory map,
so a shard file truncated or replaced while it is read gives a ReadError naming the file
("truncated"), never a SIGBUS that kills the process."""
import collections
import os
import threading

import numpy as np

from .._errors import ReadError
from ..io import RunRecord, ShardIndex

__all__ = ["ShardDataset", "ShardTruncatedError", "is_shard_dir"]

_FD_CACHE = 64  # shard files kept open at once (a dataset can have thousands; RLIMIT_NOFILE is often 1024)
_IOV_MAX = 512  # buffers per preadv call (Linux IOV_MAX is 1024)


class ShardTruncatedError(ReadError):
    """A shard file is shorter than its header and index.json say (truncated, or cut short by a
    full disk): ``source`` is the file. Rerun the `fastprep preprocess` command to rewrite it."""


def is_shard_dir(path):
    """True when ``path`` is a ``fastprep preprocess --format npy`` output directory (finished, or
    unfinished: ShardDataset then says to rerun the command)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    index = os.path.join(path, "index.json")
    try:  # the "format" key is written first: a look at the head, not a parse of a possibly huge file
        with open(index, "rb") as f:
            head = f.read(256)
        return f'"{ShardIndex.FORMAT}"'.encode() in head
    except OSError:
        pass
    try:
        return RunRecord.read(os.path.join(path, "run.json")).format == "npy"
    except (OSError, ValueError):
        return False


class ShardDataset:
    """The samples of a ``fastprep preprocess --format npy`` output directory.

    Attributes:
        labels: np.int64 array, one label per sample (-1: unlabeled).
        classes, class_to_idx: as the source dataset's (ImageFolder mapping).
        spec: the transform spec (name, size, ops, dtype, layout).
        names: the source file name of every sample (str; a name that was not valid UTF-8 is
            given back as os.fsdecode of its raw bytes, as os.listdir would return it).
        sample_shape, dtype: shape and numpy dtype of one sample.
        stats: mean/std of the stored data, both scales.
        failed: the source files left out (on_error="skip") or zero-filled ("zeros").
        index: the index.json record (``fastprep.io.ShardIndex``).

    ``read(indices)`` gathers any samples, in any order, into one contiguous batch; samples are
    copied from the shard files with ``os.preadv`` straight into the batch (safe to call from
    several threads). A shard file that is shorter than it should be (truncated, even while it is
    being read) raises ShardTruncatedError (a fastprep ReadError) naming the file.
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
        index = ShardIndex.read(index_path)  # FormatError (a ValueError) naming the file if unreadable
        self.index = index
        self.spec = index.transform
        self.classes = list(index.classes)
        self.class_to_idx = dict(index.class_to_idx or {})
        self.names = list(index.files)
        self.failed = list(index.failed)
        self.stats = index.stats
        self.sample_shape = tuple(index.shape)
        self.dtype = np.dtype(index.dtype)
        self.layout = index.layout
        shards = index.shards
        self._files = [os.path.join(self.root, s.images) for s in shards]
        self._counts = np.array([s.count for s in shards], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._counts)]).astype(np.int64)
        self._len = int(self._starts[-1])
        labels = []
        for s in shards:
            lp = os.path.join(self.root, s.labels)
            try:
                lab = np.load(lp)
            except (OSError, ValueError, EOFError) as e:
                raise ReadError(lp, f"cannot read the labels ({e})") from None
            if lab.shape != (s.count,):
                raise ReadError(lp, f"truncated or wrong: {lab.shape[0] if lab.ndim else 0} labels, "
                                    f"index.json says {s.count}")
            labels.append(lab)
        self.labels = (np.concatenate(labels).astype(np.int64, copy=False) if labels
                       else np.zeros(0, np.int64))
        if len(self.labels) != self._len:
            raise ValueError(f"{self.root}: {len(self.labels)} labels for {self._len} samples")
        self._sample_bytes = int(np.prod(self.sample_shape)) * self.dtype.itemsize
        self._init_io()

    def _init_io(self):
        self._maps = [None] * len(self._files)
        self._lock = threading.Lock()
        self._open = collections.OrderedDict()  # shard -> [fd, users, data offset, evicted]

    def __getstate__(self):  # picklable (spawned workers): open files and locks are not carried
        state = self.__dict__.copy()
        for k in ("_maps", "_lock", "_open"):
            state.pop(k, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_io()

    def close(self):
        """Closes the shard files kept open (they reopen on the next read)."""
        with self._lock:
            entries = list(self._open.values())
            self._open.clear()
            for e in entries:
                e[3] = True
                if e[1] == 0:
                    os.close(e[0])

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # ---- shard files --------------------------------------------------------------------------
    def _open_shard(self, k):
        """Opens shard k and checks its npy header and size: (fd, data offset)."""
        path = self._files[k]
        want = (int(self._counts[k]),) + self.sample_shape
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise ReadError(path, f"cannot open the shard ({e.strerror or e})") from None
        try:
            with os.fdopen(os.dup(fd), "rb") as f:
                try:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                except (ValueError, EOFError, OSError) as e:
                    size = os.fstat(fd).st_size
                    raise ShardTruncatedError(path, f"truncated: {size} bytes, no complete .npy header ({e})") \
                        if size < 4096 else ReadError(path, f"not a valid .npy shard ({e})") from None
                offset = f.tell()
            if tuple(shape) != want or np.dtype(dtype) != self.dtype or fortran:
                raise ReadError(path, f"has shape {tuple(shape)} {np.dtype(dtype)}, index.json says {want} "
                                      f"{self.dtype}")
            self._check_size(fd, k, offset)
        except BaseException:
            os.close(fd)
            raise
        return fd, offset

    def _check_size(self, fd, k, offset):
        size = os.fstat(fd).st_size
        need = offset + int(self._counts[k]) * self._sample_bytes
        if size < need:
            raise ShardTruncatedError(self._files[k], f"truncated: {size} bytes, {need} expected "
                                                      f"({int(self._counts[k])} samples); rerun the "
                                                      "`fastprep preprocess` command to rewrite it")

    def _acquire_fd(self, k):
        with self._lock:
            e = self._open.get(k)
            if e is not None:
                self._open.move_to_end(k)
                e[1] += 1
                return e
        fd, offset = self._open_shard(k)  # outside the lock: I/O
        with self._lock:
            e = self._open.get(k)
            if e is not None:  # another thread opened it meanwhile
                os.close(fd)
                e[1] += 1
                return e
            e = self._open[k] = [fd, 1, offset, False]
            while len(self._open) > _FD_CACHE:
                _, old = self._open.popitem(last=False)
                old[3] = True  # closed by its last user
                if old[1] == 0:
                    os.close(old[0])
            return e

    def _release_fd(self, e):
        with self._lock:
            e[1] -= 1
            if e[3] and e[1] == 0:
                os.close(e[0])

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
        """Shard k's images as a read-only memory map (n_k, *sample_shape). A convenience view:
        ``read`` does not use it, and unlike ``read`` a memory map turns a file truncated under
        it into a SIGBUS."""
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
        """preadv of each run of samples that are consecutive both in a shard file and in ``out``."""
        n = len(idx)
        if not n:
            return
        sb = self._sample_bytes
        mv = memoryview(out.reshape(-1).view(np.uint8))
        rows = pos if pos is not None else np.arange(n, dtype=np.int64)
        sid = np.searchsorted(self._starts, idx, side="right") - 1
        local = idx - self._starts[sid]
        brk = np.ones(n, bool)
        brk[1:] = (sid[1:] != sid[:-1]) | (local[1:] != local[:-1] + 1) | (rows[1:] != rows[:-1] + 1)
        heads = np.flatnonzero(brk).tolist()
        ends = heads[1:] + [n]
        sid_l, local_l, rows_l = sid.tolist(), local.tolist(), rows.tolist()
        entries = {}
        try:
            for a, b in zip(heads, ends):
                k = sid_l[a]
                e = entries.get(k)
                if e is None:
                    e = entries[k] = self._acquire_fd(k)
                r0 = rows_l[a] * sb
                self._pread(e, k, mv[r0:r0 + (b - a) * sb], e[2] + local_l[a] * sb)
        finally:
            for e in entries.values():
                self._release_fd(e)

    def _pread(self, e, k, dst, offset):
        fd = e[0]
        done, want = 0, len(dst)
        while done < want:
            try:
                got = os.preadv(fd, [dst[done:]], offset + done)
            except OSError as err:
                raise ReadError(self._files[k], f"read failed ({err.strerror or err})") from None
            if got == 0:  # end of file before the data: the file was truncated since it was opened
                self._check_size(fd, k, e[2])
                raise ShardTruncatedError(self._files[k], f"truncated: end of file at byte {offset + done}, "
                                                          f"{offset + want} expected")
            done += got

    def read_labels(self, indices):
        return self.labels[self._check_indices(indices)]

    def __getitem__(self, i):
        """(sample, label) for one index: the sample is a copy, not a view of the map."""
        idx = self._check_indices([i])
        return self.read(idx)[0], int(self.labels[idx[0]])

    def __iter__(self):
        for i in range(self._len):
            yield self[i]
