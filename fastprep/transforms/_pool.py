"""Recycled output buffers for ``Compose.batch()`` without ``out=``.

Note [Output pool]
A fresh (N, 3, 224, 224) float32 array per call is ~150 MB for N = 256: malloc maps new pages and
the workers pay a page fault per 4 KiB on first touch, which cost 10-33% of a batch's time
(benchmarks/bench_alloc.py here; issue 14's measurement). Writing into a reused buffer does not
pay it, but a caller who drops each batch before asking for the next should not have to manage
one. So each Compose owns a small pool:

  * ``take(shape, dtype)`` hands out a block from the pool (or a new one) wrapped in a ``_Lease``;
    arrays made from the lease keep it alive through their ``base`` chain (views, reshapes and
    ``torch.from_numpy`` included);
  * when the last of them is gone the lease is destroyed and gives its block back (``weakref
    .finalize``, so it also runs at interpreter exit without touching a torn-down pool);
  * at most ``keep`` free blocks are held (2: the batch being filled and the one the caller is
    still reading); a block is only reused at its exact size; ``clear()`` drops them.

Nothing is shared between Compose objects, the pool holds no memory that a live array uses, and
a block is never handed out twice: reuse happens only after its lease has been destroyed.
"""
import threading
import weakref

import numpy as np

__all__ = ["OutputPool"]


class _Lease:
    """Owner of one pooled block while arrays use it; exports it through the array interface."""

    __slots__ = ("__array_interface__", "_block", "__weakref__")

    def __init__(self, block, shape, dtype):
        self._block = block
        self.__array_interface__ = {"shape": tuple(shape), "typestr": np.dtype(dtype).str,
                                    "data": (block.ctypes.data, False), "version": 3}


class OutputPool:
    def __init__(self, keep=2):
        self.keep = int(keep)
        self._free = []  # blocks (uint8 arrays), most recently returned last
        self._lock = threading.Lock()

    def take(self, shape, dtype):
        """A C-contiguous uninitialised array of `shape` and `dtype` backed by a pooled block."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        block = None
        with self._lock:
            for i in range(len(self._free) - 1, -1, -1):
                if self._free[i].nbytes == nbytes:
                    block = self._free.pop(i)
                    break
        if block is None:
            block = np.empty(max(nbytes, 1), np.uint8)
        lease = _Lease(block, shape, dtype)
        weakref.finalize(lease, _give_back, weakref.ref(self), block)
        return np.asarray(lease)

    def _put(self, block):
        with self._lock:
            self._free.append(block)
            while len(self._free) > self.keep:
                self._free.pop(0)  # the oldest

    def clear(self):
        with self._lock:
            self._free.clear()

    def __len__(self):
        return len(self._free)


def _give_back(pool_ref, block):
    pool = pool_ref()
    if pool is not None:
        pool._put(block)
