"""The Loader's runner of a HybridCompose's Python remainder (Note [Python remainder] in
fastprep/transforms/_hybrid.py): worker processes forked when an epoch starts, each running the
remainder on whole batches of fused outputs, per sample seeded from (seed, epoch, sample index).
A worker process exists only to run the remainder, so the remainder and its kind are the
worker's own module state, set once by the pool's initializer."""
import multiprocessing as mp
import signal
import sys

from ..transforms._hybrid import apply_tail, collate

__all__ = ["TailRunner"]

_WORKER = {}  # in a worker process only: the remainder and its input kind (set by _init_worker)


def _init_worker(remainder, kind):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the pool
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)  # as DataLoader's workers: one intra-op thread per process
    _WORKER["remainder"], _WORKER["kind"] = remainder, kind


def _run_batch(images, keys, seed, epoch):
    outs = [apply_tail(_WORKER["remainder"], images[i], _WORKER["kind"], seed, epoch, int(k))
            for i, k in enumerate(keys)]
    return collate(outs)


class _Inline:
    """workers=0: the remainder runs when the consumer takes the batch (on its thread)."""

    def __init__(self, hybrid, images, keys, seed, epoch):
        self.args = (hybrid, images, keys, seed, epoch)

    def get(self, stop=None):
        hybrid, images, keys, seed, epoch = self.args
        return collate([hybrid.apply_tail(images[i], seed, epoch, int(k)) for i, k in enumerate(keys)])


class _Pending:
    def __init__(self, result):
        self.result = result

    def get(self, stop=None):
        while not self.result.ready():
            if stop is not None and stop.is_set():
                return None
            self.result.wait(0.05)
        return self.result.get()


class TailRunner:
    """Runs a HybridCompose's remainder on batches: ``submit`` returns an object whose
    ``get(stop)`` gives the batch's outputs, collated (None when ``stop`` was set first)."""

    def __init__(self, hybrid, workers):
        self.hybrid = hybrid
        self.workers = int(workers)
        self.inline = self.workers == 0
        self.pool = None
        if not self.inline:
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            self.pool = mp.get_context(method).Pool(self.workers, initializer=_init_worker,
                                                    initargs=(hybrid.remainder, hybrid.tail_input))

    def submit(self, images, keys, seed, epoch):
        if self.inline:
            return _Inline(self.hybrid, images, keys, seed, epoch)
        return _Pending(self.pool.apply_async(_run_batch, (images, keys, seed, epoch)))

    def close(self):
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.terminate()
            pool.join()
