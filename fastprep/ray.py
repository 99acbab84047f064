"""fastprep on Ray (the ``[ray]`` extra: ``pip install 'fastprep[ray]'``).

* :class:`Transform`: a class-based UDF for ``ray.data.Dataset.map_batches``. It takes a column of
  encoded images (``read_binary_files(..., include_paths=True)``'s "bytes", or a
  ``read_webdataset`` column such as "jpg"), runs a fastprep Compose over each batch on the native
  pool (as many threads as the actor's CPUs) and returns the output as a numpy array column,
  carrying the other columns (paths, keys, labels) through.
* :func:`preprocess` and :func:`stats`: ``fastprep preprocess`` (npy or tar shards) and
  ``fastprep stats`` as Ray tasks, writing and returning what the single-machine commands do.

Ray is imported when it is needed, so ``import fastprep.ray`` works without it; what needs it
raises MissingDependencyError (an ImportError) with the pip command.

Note [Ray sample keys]
~~~~~~~~~~~~~~~~~~~~~~
fastprep's randomness is keyed by (seed, epoch, key), the key being the sample's position in the
Loader's dataset. Ray Data has no such position: blocks are split, fused and batched differently
from one run (or ``batch_size``, or cluster) to the next, so a row's position in its batch says
nothing about the sample. :class:`Transform` therefore keys each row by a stable sample id, the
value of its ``key_column`` (by default "path"; "__key__" for ``read_webdataset``):
:func:`sample_key` maps an int in [0, 2**63) to itself and a str or bytes to the first 8 bytes
of its BLAKE2b digest with the top bit cleared (a str as its UTF-8 bytes; file names that are not
UTF-8 as their raw bytes). A row's output is then ``Compose.batch([data], seed, epoch=epoch,
indices=[sample_key(key)])``, whatever batch or block it arrives in. Two consequences:

* the key is the string as Ray gives it: with ``read_binary_files`` the full path, so the same
  files read from another mount point draw other crops (map the key column to a relative name
  first if that matters);
* Ray re-runs ``map_batches`` every time a dataset is iterated, with the same UDF arguments: a
  fixed ``epoch`` gives the same augmentation every pass. Build the dataset per epoch with
  ``epoch=e`` (cheap: it is lazy) for fresh draws each epoch.
"""
import hashlib
import numbers
import os
import time
import warnings

import numpy as np

from ._checks import check_epoch, check_policy, check_seed, check_threads
from ._errors import DecodeError, MissingDependencyError
from ._util import Progress, default_threads
from .data import index_for_job
from .offline import (DEFAULT_RESTART_MCUS, MAX_BATCH, POLICIES, DecodeOptions, LevelMoments, NpyJob, TarJob, accumulate, check_job,
                      check_out_outside_source, chunk_ranges, npy_finish, npy_start, output_folder, stats_result,
                      stats_transform, summary, tar_finish, tar_start, write_npy_shards, write_tar_shards)
from .transforms import Compose, from_torchvision

PIP = "pip install 'fastprep[ray]'"

__all__ = ["Transform", "preprocess", "stats", "sample_key"]


def _ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(f"fastprep.ray needs Ray: {PIP} (or pip install 'ray[data]')") from None
    return ray


# ---------------------------------------------------------------------------------------------- keys

_KEY_MASK = (1 << 63) - 1


def sample_key(key):
    """The random-stream key of a sample id (Note [Ray sample keys]): an int in [0, 2**63) as it
    is; a str or bytes -> the first 8 bytes of its BLAKE2b digest (little-endian), top bit cleared."""
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        k = int(key)
        if not 0 <= k <= _KEY_MASK:
            raise ValueError(f"an int sample key must be in [0, 2**63), got {k}")
        return k
    if isinstance(key, str):
        data = key.encode("utf-8", "surrogateescape")
    elif isinstance(key, (bytes, bytearray, memoryview)):
        data = bytes(key)
    else:
        raise TypeError(f"a sample key must be a str, bytes or an int, got {type(key).__name__} {key!r}")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") & _KEY_MASK


def _keys(column):
    col = np.asarray(column)
    if col.dtype.kind in "iu":
        return [sample_key(int(k)) for k in col.reshape(-1)]
    return [sample_key(k) for k in col.reshape(-1).tolist()]


def _key_name(key):
    if isinstance(key, (bytes, bytearray)):
        return os.fsdecode(bytes(key))
    return str(key)


# ---------------------------------------------------------------------------------------------- UDF

def _as_compose(transform):
    if isinstance(transform, Compose):
        if transform.backend == "torch":  # Ray's numpy batches want numpy columns
            return transform.with_options(backend="numpy")
        return transform
    if type(transform).__module__.startswith("torchvision"):
        return from_torchvision(transform, backend="numpy")
    raise TypeError(f"transform must be a fastprep.Compose or a torchvision transform, got {type(transform).__name__}")


def _assigned_cpus():
    """The CPUs Ray assigned to this actor or task (None outside a Ray worker)."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # noqa: BLE001 - the driver, or an older Ray: fall back to the machine's cores
        return None
    return max(1, int(cpus)) if cpus else None


class Transform:
    """A ``map_batches`` UDF: encoded images in one column -> the Compose's output as a numpy
    column, every row keyed by its sample id (Note [Ray sample keys]).

    Use it as a class (one Compose and native pool per actor)::

        ds = ray.data.read_binary_files(folder, include_paths=True)
        ds = ds.map_batches(fastprep.ray.Transform, fn_constructor_args=(t,),
                            fn_constructor_kwargs={"seed": 0, "epoch": epoch},
                            batch_size=64, num_cpus=2, compute=ray.data.ActorPoolStrategy(size=4))

    or as an instance (``ds.map_batches(fastprep.ray.Transform(t), ...)``: run as tasks). Ask
    for ``batch_format="numpy"``. WebDataset shards: ``ray.data.read_webdataset(urls,
    decoder=None)`` (else Ray decodes the images itself, with Pillow) and
    ``Transform(t, column="jpg", key_column="__key__")``.

    Args:
        transform: a fastprep Compose, or a torchvision transform (``fp.from_torchvision``).
        column: the column of encoded images (bytes; "bytes" for ``read_binary_files``).
        key_column: the column of sample ids that key the randomness and name the files in
            errors: str, bytes or ints in [0, 2**63) ("path" for ``read_binary_files(...,
            include_paths=True)``, "__key__" for ``read_webdataset``).
        output_column: the name of the output column (default "image").
        seed: the random stream's seed (as ``Compose.batch``). It must be the same in every
            actor, so it is not drawn afresh: pass a seed of your run.
        epoch: the epoch of the random stream: pass each epoch's number so that each epoch gets
            new draws, as ``sampler.set_epoch`` does.
        apply_exif_orientation: None: the transform's setting (off unless its Compose turns it
            on, as torchvision's loaders); True or False overrides it.
        threads: native threads; None: the CPUs Ray assigned to the actor or task (``num_cpus``),
            else all usable cores.
        on_error: "raise" (a DecodeError naming the key and the reason), "skip" (the row is
            dropped from every column) or "zeros" (a zero output; needs a fixed output size).

    The output is ``{output_column: (N, *output_shape) array, **other columns}``; the image
    column itself is dropped. A Compose whose output size depends on the image (``Resize(int)``
    alone) gives an object array of per-row arrays (Ray stores them as a variable-shaped tensor
    column). Without Ray installed it is a plain callable on dicts of numpy arrays.
    """

    def __init__(self, transform, *, column="bytes", key_column="path", output_column="image", seed=0, epoch=0,
                 threads=None, on_error="raise", apply_exif_orientation=None):
        self.transform = _as_compose(transform)
        if apply_exif_orientation is not None and bool(apply_exif_orientation) != self.transform.apply_exif_orientation:
            self.transform = self.transform.with_options(apply_exif_orientation=bool(apply_exif_orientation))
        for name, v in (("column", column), ("key_column", key_column), ("output_column", output_column)):
            if not isinstance(v, str) or not v:
                raise TypeError(f"{name} must be a column name (a non-empty str), got {v!r}")
        self.column, self.key_column, self.output_column = column, key_column, output_column
        self.seed, self.epoch = check_seed(seed), check_epoch(epoch)
        self.threads = None if threads is None else check_threads(threads)
        self.on_error = check_policy(on_error)
        if self.on_error == "zeros" and self.transform.output_size is None:
            raise ValueError("on_error='zeros' needs a fixed output size (a failed row's shape cannot be known): "
                             "add CenterCrop or Resize((h, w)), or use on_error='skip'")
        self._threads = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_threads"] = None  # resolved again where it runs
        return d

    def __repr__(self):
        return (f"fastprep.ray.Transform({self.transform!r}, column={self.column!r}, key_column={self.key_column!r}, "
                f"seed={self.seed}, epoch={self.epoch}, on_error={self.on_error!r})")

    def _pool_threads(self):
        if self.threads is not None:
            return self.threads
        if self._threads is None:
            self._threads = _assigned_cpus() or default_threads()
        return self._threads

    def _column(self, batch, name, what):
        try:
            return batch[name]
        except KeyError:
            hint = (" (read_binary_files(..., include_paths=True) adds 'path'; read_webdataset has '__key__')"
                    if what == "key_column" else "")
            raise ValueError(f"the batch has no column {name!r} ({what}); its columns are {sorted(batch)}"
                             f"{hint}") from None

    def __call__(self, batch):
        data = self._column(batch, self.column, "column")
        key_col = self._column(batch, self.key_column, "key_column")
        items = list(data)
        n = len(items)
        if len(key_col) != n:
            raise ValueError(f"column {self.key_column!r} has {len(key_col)} rows, {self.column!r} has {n}")
        keys = _keys(key_col)
        out = {k: v for k, v in batch.items() if k != self.column}
        if n == 0:
            out[self.output_column] = np.empty((0,) + self._empty_shape(), self.transform.np_dtype)
            return out
        t, threads = self.transform, self._pool_threads()
        policy = "raise" if self.on_error == "raise" else "zeros"
        try:
            if t.output_size is not None:
                res = t.batch(items, seed=self.seed, threads=threads, epoch=self.epoch, on_error=policy, indices=keys,
                              return_params=policy != "raise")
                arr, params = res if policy != "raise" else (res, None)
                ok = None if params is None else np.array(["error_reason" not in p and "error" not in p
                                                           for p in params], bool)
            else:  # the size depends on the image: one call per row
                arr, ok = np.empty(n, dtype=object), np.ones(n, bool)
                for i in range(n):
                    try:
                        arr[i] = t.batch([items[i]], seed=self.seed, threads=threads, epoch=self.epoch,
                                         on_error="raise", indices=[keys[i]])[0]
                    except DecodeError as e:
                        if policy == "raise":
                            e.index = i
                            raise
                        ok[i] = False  # skip (zeros is refused at construction)
        except DecodeError as e:
            i = e.index or 0
            raise type(e)(_key_name(key_col[i]), e.reason) from None
        if ok is not None and not ok.all():
            bad = [_key_name(key_col[i]) for i in np.flatnonzero(~ok)]
            what = "dropped" if self.on_error == "skip" else "zero-filled"
            warnings.warn(f"fastprep.ray.Transform: {len(bad)} undecodable row(s) {what} (on_error="
                          f"{self.on_error!r}): {', '.join(map(str, bad[:5]))}{' ...' if len(bad) > 5 else ''}",
                          UserWarning, stacklevel=2)
            if self.on_error == "skip":
                arr = arr[ok]
                out = {k: np.asarray(v)[ok] for k, v in out.items()}
        out[self.output_column] = arr
        return out

    def _empty_shape(self):
        try:
            return self.transform.output_shape()
        except ValueError:
            return ()


# ---------------------------------------------------------------------------------------------- tasks

def _get(ray, ref):
    """ray.get, raising a task's own exception (DecodeError, WriteError, ...) rather than Ray's
    wrapper; the wrapper, with the remote traceback, is its __cause__."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, Exception):
            raise cause from e
        raise


def _run_tasks(ray, keys, submit, done, window):
    """submit(key) -> ObjectRef for each key, at most ``window`` in flight; done(key, result) in
    completion order. On an error (or Ctrl-C) the tasks still running are cancelled and waited
    for, so that none is still writing when this returns."""
    pending = {}
    it = iter(keys)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < window:
                k = next(it, _END)
                if k is _END:
                    exhausted = True
                else:
                    pending[submit(k)] = k
            if not pending:
                return
            ready, _ = ray.wait(list(pending), num_returns=1)
            for r in ready:
                done(pending.pop(r), _get(ray, r))
    except BaseException:
        refs = list(pending)
        for r in refs:
            ray.cancel(r)
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=60)
        raise


_END = object()


def _check_cpus(num_cpus):
    if isinstance(num_cpus, bool) or not isinstance(num_cpus, numbers.Integral) or num_cpus < 1:
        raise ValueError(f"num_cpus must be an int >= 1 (the CPUs of each task, its native threads), got {num_cpus!r}")
    return int(num_cpus)


def _window(ray, num_cpus, max_in_flight):
    if max_in_flight is not None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, numbers.Integral) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be None or an int >= 1, got {max_in_flight!r}")
        return int(max_in_flight)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(2, 2 * cpus // num_cpus)  # the cluster's slots, twice: a task queued behind each


def _init(ray):
    if not ray.is_initialized():
        ray.init()  # what Ray's auto-init does: RAY_ADDRESS, else a local cluster


def _task_threads(num_cpus):
    return _assigned_cpus() or num_cpus


def _npy_shard_task(job, out, items, names, labels, shards, k, num_cpus):
    """Ray task: writes shard k of the run (its source items only) as the CLI does."""
    return write_npy_shards(job, out, items, names, labels, shards, [k], _task_threads(num_cpus),
                             base=shards[k][0])


def _tar_shard_task(job, out, items, labels, keys, names, shards, shard_names, k, labeled, num_cpus):
    """Ray task: writes tar shard k of the run (its source items only) as the CLI does;
    returns (failures, images written)."""
    return write_tar_shards(job, out, items, labels, keys, names, shards, shard_names, [k],
                             _task_threads(num_cpus), labeled, Progress(0, "", enabled=False), base=shards[k][0])


def _stats_task(transform, size, interpolation, decode, items, names, a, b, batch_size, on_error, pca, num_cpus):
    """Ray task: (LevelMoments, failures) of source items [a, b)."""
    compose = stats_transform(transform, size, interpolation, decode)
    return accumulate(compose, items, names, chunk_ranges(a, b, min(int(batch_size), MAX_BATCH)),
                      _task_threads(num_cpus), on_error, pca, base=a)


def preprocess(source, out, transform="eval", size=224, dtype="uint8", format="npy", layout="CHW", shard_size=1024,
               num_cpus=1, quality=90, on_error="raise", batch_size=256, progress=None, interpolation="bilinear",
               exact=None, overwrite=False, extensions=None, max_in_flight=None, apply_exif_orientation=False,
               restart_mcus=DEFAULT_RESTART_MCUS):
    """``fastprep preprocess --format npy`` or ``--format tar`` on a Ray cluster: one task per
    shard (``num_cpus`` CPUs and native threads each), writing the same files as
    :func:`fastprep.preprocess` through the same code (a shard's files depend only on its source
    range); this process holds OUT's lock, writes the run's first and last files (run.json,
    index.json) and returns the same summary. A rerun resumes, skipping the finished shards, as
    the CLI does.

    OUT (and the source files, unless ``source`` is a sequence of encoded images) must be at the
    same path on every node of the cluster (a shared file system). ``max_in_flight``: tasks
    submitted at once (default: twice the cluster's CPUs / num_cpus). Other arguments as
    :func:`fastprep.preprocess`.
    """
    ray = _ray()
    if format not in ("npy", "tar"):
        raise ValueError(f"fastprep.ray.preprocess writes npy or tar shards, got format={format!r}: "
                         "run fastprep preprocess for the others")
    check_job(format, quality, dtype, on_error, shard_size)
    num_cpus = _check_cpus(num_cpus)
    decode = DecodeOptions(exact, bool(apply_exif_orientation))
    t0 = time.perf_counter()
    ds = index_for_job(source, extensions=extensions, on_error=on_error)
    check_out_outside_source(source, out)
    with output_folder(out) as out:
        if format == "tar":
            job = TarJob(transform, size, quality, on_error, interpolation, decode, shard_size, restart_mcus)
            st = tar_start(job, ds, out, overwrite)
        else:
            job = NpyJob(transform, size, dtype, layout, shard_size, on_error, batch_size, interpolation, decode)
            st = npy_start(job, ds, out, overwrite)
            if st.index is not None:
                return summary(out, st.index, resumed=len(st.shards), written=0, seconds=time.perf_counter() - t0,
                                complete_before=True)
        _init(ray)
        shards_ref = ray.put(st.shards)
        n = len(ds)
        bar = Progress(n, "preprocess", enabled=progress, initial=n - st.pending())
        written, failed = [0], []
        if format == "tar":
            task = ray.remote(_tar_shard_task).options(num_cpus=num_cpus)
            names_ref = ray.put(st.names)

            def submit(k):
                a, b = st.shards[k]
                return task.remote(job, out, ds.items[a:b], ds.labels[a:b], st.keys[a:b], ds.names[a:b], shards_ref,
                                   names_ref, k, ds.labeled, num_cpus)

            def done(k, res):
                failed.extend(res[0])
                written[0] += res[1]
                bar.update(st.shards[k][1] - st.shards[k][0])
        else:
            task = ray.remote(_npy_shard_task).options(num_cpus=num_cpus)

            def submit(k):
                a, b = st.shards[k]
                return task.remote(job, out, ds.items[a:b], ds.names[a:b], ds.labels[a:b], shards_ref, k, num_cpus)

            def done(k, w):
                written[0] += w
                bar.update(st.shards[k][1] - st.shards[k][0])

        try:
            _run_tasks(ray, st.todo, submit, done, _window(ray, num_cpus, max_in_flight))
        finally:
            bar.close()
        if format == "tar":
            return tar_finish(job, out, ds, source, st, failed, written[0], t0)
        return npy_finish(job, out, ds, source, st, written[0], t0)


def stats(source, transform="eval", size=224, per_pixel=False, pca=False, num_cpus=1, batch_size=128,
          on_error="raise", progress=None, interpolation="bilinear", exact=None, extensions=None, chunk_size=1024,
          max_in_flight=None, apply_exif_orientation=False):
    """``fastprep stats`` (:func:`fastprep.compute_stats`) on a Ray cluster: one task per
    ``chunk_size`` files, each summing exact integer moments; merged here into the same result
    (identical numbers: the sums are exact, Note in fastprep/offline/_stats.py) except "seconds" and
    "images_per_second". Failures are listed in file order. Other arguments as compute_stats."""
    ray = _ray()
    if on_error not in POLICIES:
        raise ValueError(f"on_error must be one of {POLICIES}, got {on_error!r}")
    num_cpus = _check_cpus(num_cpus)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    ds = index_for_job(source, extensions=extensions, on_error=on_error)
    decode = DecodeOptions(exact, bool(apply_exif_orientation))
    compose = stats_transform(transform, size, interpolation, decode)
    _init(ray)
    task = ray.remote(_stats_task).options(num_cpus=num_cpus)
    chunks = chunk_ranges(0, len(ds), int(chunk_size))
    acc = LevelMoments(compose.channels, cross=pca)
    failed = {}
    bar = Progress(len(ds), "stats", enabled=progress)

    def submit(k):
        a, b = chunks[k]
        return task.remote(transform, size, interpolation, decode, ds.items[a:b], ds.names[a:b], a, b, batch_size,
                           on_error, pca, num_cpus)

    def done(k, res):
        part, fails = res
        acc.merge(part)  # exact integer sums: the order does not matter
        failed[k] = fails
        bar.update(chunks[k][1] - chunks[k][0])

    try:
        _run_tasks(ray, range(len(chunks)), submit, done, _window(ray, num_cpus, max_in_flight))
    finally:
        bar.close()
    return stats_result(source, ds, transform, size, compose, on_error, acc,
                        [f for k in sorted(failed) for f in failed[k]], bar.elapsed, per_pixel, pca)
