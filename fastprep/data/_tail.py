"""The Loader's runner of a HybridCompose's Python remainder (Note [Python remainder] in
fastprep/transforms/_hybrid.py): worker processes forked when an epoch starts, each running the
remainder on whole batches of fused outputs, per sample seeded from (seed, epoch, sample index).
A worker process exists only to run the remainder, so the remainder and its kind are the
worker's own module state, set once by the pool's initializer (forked: never pickled, so a
lambda in the remainder works; with "spawn", where fork does not exist, it must pickle)."""
import multiprocessing as mp
import signal
import sys

__all__ = ["TailRunner"]

_WORKER = {}  # in a worker process only: the HybridCompose it runs (set by _init_worker)


def _init_worker(hybrid):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the pool
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)  # as DataLoader's workers: one intra-op thread per process
    _WORKER["hybrid"] = hybrid


def _run_batch(images, keys, seed, epoch):
    return _WORKER["hybrid"].run_tail(images, keys, seed, epoch)


class _Inline:
    """workers=0: the remainder runs when the consumer takes the batch (on its thread)."""

    def __init__(self, hybrid, images, keys, seed, epoch):
        self.args = (hybrid, images, keys, seed, epoch)

    def get(self, stop=None):
        hybrid, images, keys, seed, epoch = self.args
        return hybrid.run_tail(images, keys, seed, epoch)


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
                                                    initargs=(hybrid,))

    def submit(self, images, keys, seed, epoch):
        if self.inline:
            return _Inline(self.hybrid, images, keys, seed, epoch)
        return _Pending(self.pool.apply_async(_run_batch, (images, keys, seed, epoch)))

    def close(self):
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.terminate()
            pool.join()
