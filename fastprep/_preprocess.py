"""``fastprep preprocess``: decode + resize a dataset once, offline.

``--format npy`` writes fixed-size shards of the transform's output::

    OUT/images_00000.npy   (n, C, H, W) (or (n, H, W, C)) uint8/float16/float32, np.load(mmap_mode="r")
    OUT/labels_00000.npy   (n,) int64
    OUT/shard_00000.json   the shard's source range, failures and exact moment sums
    OUT/run.json           the run's fingerprint (transform, shard size, files), checked on resume
    OUT/index.json         written last: classes, transform spec, shards, file names, stats, failures

Shard k holds source items [k * shard_size, (k + 1) * shard_size) minus the files that failed
under on_error="skip", so a shard holds at most shard_size samples and its content does not
depend on any other shard. Every file is written to ``<name>.tmp`` and renamed into place;
a shard is finished iff its ``images_*.npy`` exists (its labels and json are renamed into place
before it). A rerun skips finished shards, redoes the others, and rewrites index.json at the end.
(The renames make an interrupted run safe; there is no fsync, so a power loss is not covered.)

``--format jpeg`` re-encodes the resized images with the native libjpeg-turbo encoder (4:2:0
chroma subsampling, as Pillow's default; no Pillow needed) into a mirrored folder tree (with
--transform resize: shorter side = size, aspect kept); a rerun skips the files already there.

``--format tar`` writes WebDataset shards of those JPEGs (``OUT/shard-000000.tar`` ..., members
``<key>.jpg`` and ``<key>.cls``; shard k holds items [k * shard_size, (k + 1) * shard_size) minus
the failures, byte-reproducible) and an index.json; a rerun skips the shards already there.

Every JSON file here is defined once, in ``_formats`` (RunRecord, ShardMeta, ShardIndex,
JpegIndex), with a format version.

Failures. A run holds an exclusive ``flock`` on ``OUT/.lock`` (a second run into the same OUT is
refused with OutputLockedError; the kernel drops the lock when the process ends, however it ends).
A write that fails (disk full, file size limit, ...) stops the run with a WriteError naming the
file and the cause: the shard being written is removed (its .tmp files too), finished shards are
kept, and a rerun resumes. No thread waits forever on another: the writer hands its buffers back
and closes the buffer pool when it fails, and the main thread waits on the decoder in short steps
that check the writer.

Names. index.json stores every file name losslessly: a name that is not valid UTF-8 is written
as a readable form with \\xNN escapes, and the base64 of its raw bytes goes into ``files_b64``
(``{position: base64}``; likewise ``classes_b64``, ``sources_b64``, ``source_b64`` and, in
``failed`` entries, ``file_b64``). ShardDataset gives the original names back (os.fsdecode).
"""
import argparse
import concurrent.futures as cf
import contextlib
import errno
import fcntl
import hashlib
import io
import math
import mmap
import numbers
import os
import queue
import struct
import sys
import threading
import time

import numpy as np

from . import _core, _offline
from ._datasets import index_for_job
from ._errors import DecodeError
from ._formats import JpegIndex, RunRecord, ShardEntry, ShardIndex, ShardMeta, TarIndex
from ._tar import _scan as _tar_scan
from ._stats import FloatMoments, LevelMoments, empty_levels, moments_from_json, normalize_line, summarize
from ._util import Progress, default_threads

INDEX_FORMAT = ShardIndex.FORMAT
JPEG_INDEX_FORMAT = JpegIndex.FORMAT
TAR_INDEX_FORMAT = TarIndex.FORMAT
JPEG_SUBSAMPLING = 420  # Pillow's default for every quality (what --format jpeg wrote with Pillow)
_KILL_ENV = "FASTPREP_TEST_KILL_AFTER_SHARDS"  # test hook: os._exit() in the middle of the next shard
LOCK_NAME = ".lock"


class OutputLockedError(RuntimeError):
    """Another ``fastprep preprocess`` is writing into the same OUT (it holds OUT/.lock)."""


class _Stopped(RuntimeError):
    """The shard buffer pool was closed (the run is stopping: writer error or consumer error)."""


def shard_names(k):
    return f"images_{k:05d}.npy", f"labels_{k:05d}.npy", f"shard_{k:05d}.json"


def _fingerprint(ds, spec, shard_size):
    h = hashlib.sha1()
    for name in ds.names:
        h.update(name.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    h.update(np.ascontiguousarray(ds.labels, dtype="<i8").tobytes())
    return RunRecord(count=len(ds), files_sha1=h.hexdigest(), transform=spec, format="npy", shard_size=shard_size)


class _OutLock:
    """An exclusive, non-blocking flock on OUT/.lock for the duration of a run. The kernel releases
    it when the file is closed or the process ends (a crash or kill included), so it never goes stale."""

    def __init__(self, out):
        self.path = os.path.join(out, LOCK_NAME)
        self.fd = -1

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as e:
            raise _offline.write_error(e, self.path, "create the lock file") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            try:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            except OSError:
                holder = ""
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f" (pid {holder})" if holder.isdigit() else ""
                raise OutputLockedError(
                    f"{_offline.display(os.path.dirname(self.path))} is in use by another fastprep preprocess{who}: "
                    f"it holds {LOCK_NAME}; wait for it to finish or use another OUT") from None
            raise _offline.write_error(e, self.path, "lock") from e
        self.fd = fd
        try:  # who holds it, for the message above; best effort (the disk may be full)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        return self

    def __exit__(self, *exc):
        if self.fd >= 0:
            os.close(self.fd)  # releases the flock
            self.fd = -1


def _our_file(name):
    base = name[:-4] if name.endswith(".tmp") else name
    return (base in ("index.json", "run.json")
            or (base.startswith(("images_", "labels_")) and base.endswith(".npy"))
            or (base.startswith("shard_") and base.endswith(".json")))


def _prepare_out(out, fingerprint, overwrite):
    """Creates OUT, checks that a previous run there had the same fingerprint (or clears it with
    ``overwrite``), removes stale .tmp files; returns the set of file names present."""
    run_path = os.path.join(out, "run.json")
    names = set(os.listdir(out))
    ours = {n for n in names if _our_file(n)}
    if ours and not overwrite:
        if "run.json" not in names:
            raise FileExistsError(f"{out} holds shard files of an unknown run: use another OUT or --overwrite")
        diff = RunRecord.read(run_path).differences(fingerprint)
        if diff:
            raise FileExistsError(f"{out} holds a different preprocessing run (differs in: {', '.join(diff)}): "
                                  "use another OUT, or --overwrite to start over")
    if overwrite:
        for n in ours:
            os.remove(os.path.join(out, n))
        names -= ours
    for n in [n for n in names if n.endswith(".tmp") and _our_file(n)]:
        os.remove(os.path.join(out, n))  # left by an interrupted run
        names.discard(n)
    if "run.json" not in names:
        fingerprint.write(run_path)
        names.add("run.json")
    return names


def preprocess(source, out, transform="eval", size=224, dtype="uint8", format="npy", layout="CHW",
               shard_size=1024, threads=None, quality=90, on_error="raise", batch_size=256, progress=None,
               interpolation="bilinear", exact=None, overwrite=False, extensions=None, apply_exif_orientation=False):
    """Runs the preprocessing job; returns a summary dict (see ``fastprep preprocess --help``).
    ``apply_exif_orientation``: as Compose's (off by default: images as stored, as torchvision)."""
    check_job(format, quality, dtype, on_error, shard_size)
    decode = _offline.DecodeOptions(exact, bool(apply_exif_orientation))
    t0 = time.perf_counter()
    ds = index_for_job(source, extensions=extensions, on_error=on_error)
    check_out_outside_source(source, out)
    with output_folder(out) as out:
        if format == "npy":
            return _preprocess_npy(ds, t0, source, out, transform, size, dtype, layout, shard_size, threads,
                                   on_error, batch_size, progress, interpolation, decode, overwrite)
        if format == "tar":
            return _preprocess_tar(ds, t0, source, out, transform, size, threads, quality, on_error, progress,
                                   interpolation, decode, overwrite, int(shard_size))
        return _preprocess_jpeg(ds, t0, source, out, transform, size, threads, quality, on_error, progress,
                                interpolation, decode, overwrite)


def check_job(format, quality, dtype, on_error, shard_size):
    """The argument checks of a preprocess run (the CLI, fastprep.preprocess, fastprep.ray)."""
    if on_error not in _offline.POLICIES:
        raise ValueError(f"on_error must be one of {_offline.POLICIES}, got {on_error!r}")
    if format not in ("npy", "jpeg", "tar"):
        raise ValueError(f"format must be 'npy', 'jpeg' or 'tar', got {format!r}")
    if format in ("jpeg", "tar"):
        if isinstance(quality, bool) or not isinstance(quality, numbers.Real) or not math.isfinite(quality) \
                or quality != int(quality) or not 1 <= quality <= 100:
            raise ValueError(f"quality must be an integer in [1, 100] (JPEG quality), got {quality!r}")
        if dtype != "uint8":
            raise ValueError(f"--format {format} stores 8-bit JPEGs: use --dtype uint8")
        if on_error == "zeros":
            raise ValueError(f"on_error='zeros' has no meaning for --format {format} (no fixed size): use skip or raise")
    if format in ("npy", "tar") and (isinstance(shard_size, bool) or not isinstance(shard_size, numbers.Integral)
                                     or int(shard_size) <= 0):
        raise ValueError("shard_size must be positive")


def check_out_outside_source(source, out):
    """Refuses an OUT inside a source folder (ImageFolder, flat folder, a folder of tar shards):
    the next run would index its own output as input (10 -> 20 -> 30 images, a class named after
    OUT). A file list or a list of shards names its files, so any OUT is fine there."""
    if not isinstance(source, (str, os.PathLike)):
        return
    try:
        src = os.fspath(source)
        if not os.path.isdir(src):
            return
    except (TypeError, ValueError):
        return
    src = os.path.realpath(src)
    dst = os.path.realpath(os.fspath(out))
    if dst == src or dst.startswith(src.rstrip(os.sep) + os.sep):
        raise ValueError(f"OUT {os.fspath(out)!r} lies inside the source folder {os.fspath(source)!r}: a later run "
                         "would take in its own output as input; choose an OUT outside the source")


@contextlib.contextmanager
def output_folder(out):
    """OUT created (parents included, before the pass) and held: its lock for the whole run, and
    SIGXFSZ ignored so that the file size limit is a WriteError. Yields OUT as a str."""
    out = os.fspath(out)
    _offline.make_dirs(out, "output folder")
    with _OutLock(out), _offline.ignore_sigxfsz():
        yield out


# ---------------------------------------------------------------------------------------------- npy shards
#
# A run is three steps, so that the shards can be written by other processes (fastprep/ray.py: one
# Ray task per shard) through the same code as here: _npy_start (under the OUT lock: run.json, the
# shard ranges, the shards already finished), _write_npy_shards (decode and write some shards; a
# shard's files depend only on its own source range) and _npy_finish (index.json from the shards'
# json files, the summary).

class _NpyJob:
    """The settings of an npy run that shape its files (picklable: a Ray task gets one)."""

    def __init__(self, transform, size, dtype, layout, shard_size, on_error, batch_size, interpolation, decode):
        self.transform, self.size, self.dtype, self.layout = transform, size, dtype, layout
        self.shard_size = int(shard_size)
        if self.shard_size <= 0:
            raise ValueError("shard_size must be positive")
        self.on_error, self.batch_size = on_error, int(batch_size)
        self.interpolation, self.decode = interpolation, decode

    def compose(self):
        return _offline.build_transform(self.transform, self.size, self.dtype, self.layout, fixed=True,
                                        interpolation=self.interpolation, decode=self.decode)


class _NpyStart:
    """What _npy_start found: the shard ranges, the finished shards, the shards to write, and the
    index when the run was complete already."""

    def __init__(self, compose, spec, shards, done, index):
        self.compose, self.spec, self.shards, self.done, self.index = compose, spec, shards, done, index
        self.todo = [k for k in range(len(shards)) if k not in done]

    def pending(self):
        """Source items in the shards still to write."""
        return sum(self.shards[k][1] - self.shards[k][0] for k in self.todo)


def _preprocess_npy(ds, t0, source, out, transform, size, dtype, layout, shard_size, threads, on_error,
                    batch_size, progress, interpolation, decode, overwrite):
    job = _NpyJob(transform, size, dtype, layout, shard_size, on_error, batch_size, interpolation, decode)
    st = _npy_start(job, ds, out, overwrite)
    if st.index is not None:
        return _summary(out, st.index, resumed=len(st.shards), written=0, seconds=time.perf_counter() - t0,
                        complete_before=True)
    n = len(ds)
    bar = Progress(n, "preprocess", enabled=progress, initial=n - st.pending())
    try:
        written = _write_npy_shards(job, out, ds.items, ds.names, ds.labels, st.shards, st.todo,
                                    threads or default_threads(), bar=bar, compose=st.compose,
                                    kill_after=int(os.environ.get(_KILL_ENV, "0") or 0))
    finally:
        bar.close()
    return _npy_finish(job, out, ds, source, st, written, t0)


def _npy_start(job, ds, out, overwrite):
    """Checks OUT/run.json against this run (or writes it), removes stale .tmp files and an
    index.json that no longer holds, and finds the finished shards. Runs under the OUT lock."""
    compose = job.compose()
    spec = _offline.transform_spec(job.transform, job.size, compose)
    present = _prepare_out(out, _fingerprint(ds, spec, job.shard_size), overwrite)
    shards = _offline.chunk_ranges(0, len(ds), job.shard_size)
    index_path = os.path.join(out, "index.json")
    sample_bytes = int(np.prod(compose.output_shape())) * compose.np_dtype.itemsize
    # A shard is done when its three files are there and its images file has the size its json
    # says (a shard truncated or cut short since is redone, and index.json rewritten).
    done = {k for k in range(len(shards)) if _shard_done(out, k, present, sample_bytes)}
    index = None
    if "index.json" in present:
        if len(done) == len(shards):
            index = ShardIndex.read(index_path)
        else:
            os.remove(index_path)
    return _NpyStart(compose, spec, shards, done, index)


def _npy_finish(job, out, ds, source, st, written, t0):
    """Writes index.json from the shards' json files (all shards finished); returns the summary."""
    index = _build_index(out, ds, st.shards, st.spec, st.compose, st.compose.output_shape(), job.on_error, source)
    index.write(os.path.join(out, "index.json"))
    return _summary(out, index, resumed=len(st.done), written=written, seconds=time.perf_counter() - t0,
                    processed=st.pending())


def _write_npy_shards(job, out, items, names, labels, shards, todo, threads, base=0, bar=None, compose=None,
                      kill_after=0):
    """Decodes the source items of shards ``todo`` (indices into ``shards``, the run's ranges) on
    ``threads`` native threads and writes their files into ``out``; returns how many were written.
    ``items``, ``names`` and ``labels`` hold the dataset's positions ``base`` on (a Ray task gets
    only its shard's); random keys and failure indices stay dataset-wide."""
    compose = compose if compose is not None else job.compose()
    shard_size, on_error = job.shard_size, job.on_error
    sample_shape = compose.output_shape()
    np_dtype = compose.np_dtype
    ranges = [r for k in todo for r in _offline.chunk_ranges(*shards[k], min(job.batch_size, shard_size))]
    levels = np_dtype == np.uint8
    cap = max((b - a for a, b in shards), default=0)
    buffers = _ShardBuffers(shards, shard_size, cap, sample_shape, np_dtype)
    writer = _Writer(out, buffers, kill_after=kill_after)
    state = None  # the shard being filled: [k, ok masks, failures, moments]
    batches = (x for x in ())
    try:
        # The native pool decodes straight into a page-aligned shard buffer; this thread sums the
        # moments and tells the writer thread which rows are final after each batch: the writer
        # writes their whole pages with O_DIRECT (DMA, next to no CPU) while decoding goes on, and
        # finishes a shard (tail, header page, labels, json, rename) once it is complete.
        batches = _offline.iter_batches(compose, items, ranges, threads, on_error, names,
                                        out_alloc=buffers.rows, check=writer.check, base=base)
        for a, b, arr, ok, fails in batches:
            writer.check()
            k = a // shard_size
            if state is None:
                state = [k, [], [], LevelMoments(compose.channels, layout=compose.layout) if levels
                         else FloatMoments(compose.channels, layout=compose.layout), 0]
            keep_b = ok if on_error == "skip" else np.ones(b - a, bool)
            state[1].append(keep_b)
            state[2].extend(fails)
            state[3].add(arr, ok if on_error == "skip" else None)  # zeros: black samples are data too
            del arr
            # The shard's kept rows, in order, at its start: a batch after a skipped sample moves
            # its kept rows down (destinations below sources: safe in place). Then those rows are
            # final and the writer may write them while the next batch decodes.
            first, kept = a - shards[k][0], state[4]
            idx = np.flatnonzero(keep_b)
            buf, rows = buffers.peek(k)
            if kept != first or len(idx) != b - a:
                rows[kept:kept + len(idx)] = rows[first + idx]
            state[4] = kept + len(idx)
            writer.progress(k, buf, state[4] * buffers.sample_bytes)
            del rows
            if bar is not None:
                bar.update(b - a)
            if b == shards[k][1]:
                keep = np.arange(*shards[k])[np.concatenate(state[1])]
                writer.submit(k, state[4], keep, np.asarray(labels)[keep - base], state[2], state[3], on_error)
                state = None
    except _Stopped:
        writer.check()  # the writer failed and closed the buffers: its error is the one to report
        raise
    finally:
        buffers.close()  # a decoder waiting for a free buffer gives up ...
        batches.close()  # ... so that the decoding thread can be joined
        writer.close()  # finishes the shards already handed over, then stops
    writer.check()
    return writer.written


def _shard_done(out, k, present, sample_bytes):
    if not all(f in present for f in shard_names(k)):
        return False
    img_name, _, meta_name = shard_names(k)
    try:
        count = ShardMeta.read(os.path.join(out, meta_name)).count
        return os.stat(os.path.join(out, img_name)).st_size == _NPY_HEADER + count * sample_bytes
    except (OSError, ValueError, KeyError, TypeError):
        return False


_NPY_HEADER = 4096  # the .npy header is padded to a page, so the data can be written with O_DIRECT
_PAGE = 4096
_IO_CHUNK = 8 << 20


def _npy_header(shape, dtype, size=_NPY_HEADER):
    d = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                                   tuple(int(v) for v in shape))
    hlen = size - 10
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", hlen) + (d.ljust(hlen - 1) + "\n").encode("latin1")


def _round_up(x, m):
    return (x + m - 1) // m * m


class _ShardBuffers:
    """Page-aligned in-memory shard files (npy header + data), two of them, so that the native
    pool decodes shard k+1 while shard k is written. ``rows(a, b)`` runs in the decoding thread."""

    def __init__(self, shards, shard_size, cap, sample_shape, dtype, count=2):
        self.shards, self.shard_size, self.cap = shards, shard_size, cap
        self.sample_shape, self.dtype = tuple(sample_shape), np.dtype(dtype)
        self.sample_bytes = int(np.prod(self.sample_shape)) * self.dtype.itemsize
        self.size = _round_up(_NPY_HEADER + cap * self.sample_bytes, _PAGE)
        self.count = count
        self.created = 0
        self.free = queue.Queue()
        self.active = {}
        self.lock = threading.Lock()
        self.closed = False

    def _acquire(self):
        with self.lock:
            if self.created < self.count:
                self.created += 1
                return mmap.mmap(-1, max(self.size, _PAGE))
        while True:
            if self.closed:
                raise _Stopped("preprocess stopped")
            try:
                return self.free.get(timeout=0.1)
            except queue.Empty:
                continue

    def rows(self, a, b):
        k = a // self.shard_size
        with self.lock:
            entry = self.active.get(k)
        if entry is None:
            buf = self._acquire()
            arr = np.frombuffer(buf, self.dtype, count=self.cap * self.sample_bytes // self.dtype.itemsize,
                                offset=_NPY_HEADER).reshape((self.cap,) + self.sample_shape)
            entry = (buf, arr)
            with self.lock:
                self.active[k] = entry
        start = self.shards[k][0]
        return entry[1][a - start:b - start]

    def peek(self, k):
        """(buffer, rows array) of shard k, which stays active."""
        with self.lock:
            return self.active[k]

    def take(self, k):
        with self.lock:
            return self.active.pop(k)

    def release(self, buf):
        self.free.put(buf)

    def close(self):
        self.closed = True


class _ShardFile:
    """One images file written from its page-aligned shard buffer (npy header page + data), while
    the shard is still being decoded: ``write_upto`` writes the whole pages of rows that are final
    (O_DIRECT when the file system takes it: DMA, next to no CPU), ``finish`` writes the rest, then
    the header page (its count is known only at the end), and truncates the page padding. So the
    write of a shard overlaps its own decoding and only its last pages follow the last batch."""

    def __init__(self, path):
        self.path = path
        self.done = _NPY_HEADER  # file bytes [_NPY_HEADER, done) are written
        self.direct = bool(getattr(os, "O_DIRECT", 0))
        self.fd = -1
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        if self.direct:
            try:
                self.fd = os.open(path, flags | os.O_DIRECT, 0o644)
            except OSError:
                self.direct = False
        if self.fd < 0:
            self.fd = os.open(path, flags, 0o644)

    def _buffered(self):
        """O_DIRECT refused (EINVAL) or written partially: go on with plain writes."""
        os.close(self.fd)
        self.fd = -1
        self.fd = os.open(self.path, os.O_WRONLY, 0o644)
        self.direct = False

    def _write(self, buf, start, end):
        mv = memoryview(buf)
        off = start
        os.lseek(self.fd, off, os.SEEK_SET)
        while off < end:
            try:
                wrote = os.write(self.fd, mv[off:min(end, off + _IO_CHUNK)])
            except OSError as e:
                if not self.direct or e.errno != errno.EINVAL:
                    raise
                wrote = 0
            if self.direct and (wrote == 0 or wrote % _PAGE):
                self._buffered()
                off += wrote
                os.lseek(self.fd, off, os.SEEK_SET)
                continue
            off += wrote
        return off

    def write_upto(self, buf, end):
        """Writes the whole pages of buf[done:end] (rows below `end` are final)."""
        end = end // _PAGE * _PAGE
        if end > self.done:
            self.done = self._write(buf, self.done, end)

    def finish(self, buf, length):
        """Writes the rest of buf[:length] (the header page last) and closes the file."""
        try:
            end = _round_up(length, _PAGE) if self.direct else length
            if end > self.done:
                self.done = self._write(buf, self.done, end)
            self._write(buf, 0, min(_NPY_HEADER, end if self.direct else length))
            if self.direct or self.done > length:
                os.ftruncate(self.fd, length)
        finally:
            self.close()

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _write_file(path, buf, length):
    """Writes buf[:length] (a page-aligned, page-padded buffer) to path in one go."""
    _ShardFile(path).finish(buf, length)


class _Writer:
    """Writes finished shards in a background thread, in order: images_k.npy.tmp, labels, json,
    then renames the images file into place (the shard is finished from that moment)."""

    def __init__(self, out, buffers, kill_after=0):
        self.out, self.buffers, self.kill_after = out, buffers, kill_after
        self.jobs = queue.Queue()
        self.error = None
        self.written = 0
        self.thread = threading.Thread(target=self._run, name="fastprep-shard-writer", daemon=True)
        self.thread.start()

    def progress(self, k, buf, nbytes):
        """The first `nbytes` data bytes of shard k's buffer are final: the writer may write them."""
        self.jobs.put(("rows", k, buf, _NPY_HEADER + nbytes))

    def submit(self, k, count, keep, labels, failed, moments, on_error):
        """Shard k is complete: its first `count` rows are its kept samples, in order (source
        positions ``keep``, their ``labels``)."""
        buf, arr = self.buffers.take(k)
        del arr
        buf[:_NPY_HEADER] = _npy_header((count,) + self.buffers.sample_shape, self.buffers.dtype)
        a, b = self.buffers.shards[k]
        meta = ShardMeta(shard=k, start=a, stop=b, count=count, on_error=on_error, moments=moments.to_json(),
                         failed=list(failed), kept=keep.tolist() if len(keep) != b - a else None)
        self.jobs.put(("shard", k, buf, count, np.asarray(labels, dtype=np.int64), meta))

    def _run(self):
        files = {}  # shard -> its _ShardFile while the shard is being written
        while True:
            job = self.jobs.get()
            if job is None:  # stopping: a shard begun but never completed leaves no .tmp behind
                for f in files.values():
                    f.close()
                    _offline.remove_quietly(f.path)
                return
            kind, k = job[0], job[1]
            img_name, lab_name, meta_name = shard_names(k)
            img_path = os.path.join(self.out, img_name)
            tmp = img_path + ".tmp"
            if self.error is not None:  # stopping: hand the buffer back, write nothing more
                if kind == "shard":
                    self.buffers.release(job[2])
                continue
            try:
                if kind == "rows":
                    try:
                        if k not in files:
                            files[k] = _ShardFile(tmp)
                        files[k].write_upto(job[2], job[3])
                    except OSError as e:
                        raise _offline.write_error(e, img_path) from e
                    continue
                _, _, buf, count, labels, meta = job
                try:
                    f = files.pop(k, None) or _ShardFile(tmp)
                    f.finish(buf, _NPY_HEADER + count * self.buffers.sample_bytes)
                except OSError as e:
                    raise _offline.write_error(e, img_path) from e
                finally:
                    self.buffers.release(buf)
                lab_bytes = _offline.npy_bytes(labels)
                _offline.atomic_write_bytes(os.path.join(self.out, lab_name), lambda f: f.write(lab_bytes))
                meta.write(os.path.join(self.out, meta_name))
                # No fsync: the renames protect against an interrupted process, not a power loss.
                try:
                    os.replace(tmp, img_path)  # images last: the shard is finished
                except OSError as e:
                    raise _offline.write_error(e, img_path) from e
                self.written += 1
                if self.kill_after and self.written == self.kill_after:
                    _simulate_crash(self.out, k + 1)
            except BaseException as e:  # noqa: BLE001 - reported to the main thread
                f = files.pop(k, None)
                if f is not None:
                    f.close()
                _offline.remove_quietly(tmp)  # an unfinished shard leaves no .tmp behind
                self.error = e
                self.buffers.close()  # a decoder waiting for a free buffer stops now

    def check(self):
        if self.error is not None:
            raise self.error

    def close(self):
        """Finishes the shards already handed over (none once an error happened), then stops."""
        self.jobs.put(None)
        self.thread.join()


def _simulate_crash(out, k):
    """Test hook: die in the middle of shard k without cleaning up, as a killed process would."""
    path = os.path.join(out, shard_names(k)[0] + ".tmp")
    with open(path, "ab") as f:
        f.write(b"\x93NUMPY partial")
    sys.stderr.flush()
    os._exit(75)


def _build_index(out, ds, shards, spec, compose, sample_shape, on_error, source):
    entries, files, failed, policies = [], [], [], set()
    total = None
    start = 0
    for k, (a, b) in enumerate(shards):
        img_name, lab_name, meta_name = shard_names(k)
        meta = ShardMeta.read(os.path.join(out, meta_name))
        keep = meta.kept if meta.kept is not None else range(a, b)
        files.extend(ds.names[i] for i in keep)
        failed.extend(meta.failed)
        policies.add(meta.on_error)
        mom = moments_from_json(meta.moments)
        total = mom if total is None else total.merge(mom)
        entries.append(ShardEntry(images=img_name, labels=lab_name, start=start, count=meta.count, source_start=a,
                                  source_stop=b))
        start += meta.count
    if total is None:
        total = empty_levels(compose.channels)
    mean, std = total.channel_stats()
    stats = {"images": total.images, **summarize(mean, std, "255" if compose.dtype == "uint8" else "unit")}
    stats["normalize"] = normalize_line(stats["mean"], stats["std"])
    return ShardIndex(
        source=_source_path(source), count=start, source_count=len(ds), dtype=compose.dtype, layout=compose.layout,
        shape=tuple(sample_shape), transform=spec, classes=[str(c) for c in ds.classes],
        class_to_idx=ds.class_to_idx, on_error=on_error if len(policies) <= 1 else sorted(policies),
        shard_size=shards[0][1] - shards[0][0] if shards else 0, shards=entries, stats=stats, failed=failed,
        files=files)


def _source_path(source):
    """The source folder or file list as an absolute path (None for an in-memory sequence)."""
    if isinstance(source, (str, bytes, os.PathLike)):
        return os.fsdecode(os.path.abspath(os.fspath(source)))
    return None


def _summary(out, index, resumed, written, seconds, complete_before=False, processed=0):
    return {"out": out, "format": index.FORMAT, "images": index.count, "shards": len(index.shards),
            "shards_written": written, "shards_resumed": resumed, "already_complete": complete_before,
            "failed": list(index.failed), "stats": index.stats, "seconds": round(seconds, 3),
            "images_per_second": round(processed / seconds, 1) if seconds > 0 and processed else None,
            "shape": list(index.shape), "dtype": index.dtype}


# ---------------------------------------------------------------------------------------------- jpeg tree

_JPEG_EXTS = (".jpg", ".jpeg")


def _jpeg_names(names):
    out, seen = [], set()
    for nm in names:
        root, ext = os.path.splitext(nm)
        cand = nm if ext.lower() in _JPEG_EXTS else root + ".jpg"
        if cand in seen:
            cand = nm + ".jpg"
        if cand in seen:
            raise ValueError(f"two inputs map to the output {cand!r}")
        seen.add(cand)
        out.append(cand)
    return out


def _existing_files(top):
    """Relative paths ('a/b.jpg') of the files under ``top``, listed with scandir."""
    found = set()
    stack = [("", top)]
    while stack:
        rel, path = stack.pop()
        try:
            with os.scandir(path) as it:
                for e in it:
                    r = f"{rel}/{e.name}" if rel else e.name
                    if e.is_dir():
                        stack.append((r, e.path))
                    else:
                        found.add(r)
        except OSError:
            continue
    return found


def encode_jpeg(img, quality):
    """An HxWx3 (or HxW) uint8 image as JPEG bytes: libjpeg-turbo, baseline, 4:2:0, as Pillow's
    ``save(format="JPEG", quality=quality)`` writes it."""
    return bytes(_core.encode_jpeg(np.ascontiguousarray(img), int(quality), JPEG_SUBSAMPLING, False))


def _encoder(transform, size, interpolation, decode):
    """work(item) -> JPEG-ready HxWx3 uint8 image, one Compose (and native engine) per thread."""
    local = threading.local()

    def run(item):
        t = getattr(local, "t", None)
        if t is None:
            t = local.t = _offline.build_transform(transform, size, "uint8", "HWC", fixed=False,
                                                   interpolation=interpolation, decode=decode)
        return t.batch([item], threads=1, on_error="raise")[0]
    return run


def _encode_all(items, names, todo, encoder, threads, quality, on_error, bar, store, done, dst_name, base=0):
    """Decodes, resizes and JPEG-encodes source item i (``items[i - base]``, named ``names[i -
    base]``) for i in ``todo`` on ``threads`` threads. ``store(i, data)`` runs on the worker (it
    may write the file); ``done(i, stored)`` runs on the calling thread in completion order.
    Returns the failures (or raises the first under on_error="raise"); a WriteError from
    ``store`` is raised as it is."""
    def work(i):
        try:
            img = encoder(items[i - base])
        except DecodeError as e:
            name = names[i - base]
            return i, _offline.failure(i, name, e.reason), type(e)(name, e.reason, i), None
        try:  # in memory (the GIL released), then written with checked writes
            data = encode_jpeg(img, quality)
        except ValueError as e:  # e.g. a side over JPEG's 65500 limit
            raise ValueError(f"cannot encode {_offline.display(dst_name(i))} as JPEG: {e}") from None
        return i, None, None, store(i, data)

    failed = []
    window = max(4, 4 * threads)
    with cf.ThreadPoolExecutor(threads, thread_name_prefix="fastprep-jpeg") as ex:
        pending = set()
        it = iter(todo)
        exhausted = False
        try:
            while pending or not exhausted:
                while not exhausted and len(pending) < window:
                    try:
                        pending.add(ex.submit(work, next(it)))
                    except StopIteration:
                        exhausted = True
                if not pending:
                    break
                finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    i, err, exc, stored = fut.result()  # a WriteError (disk full, ...) is raised here
                    bar.update(1)
                    if err is not None:
                        if on_error == "raise":
                            raise exc
                        failed.append(err)
                    done(i, stored if err is None else None)
        except BaseException:
            for p in pending:  # the pool's exit then waits for the running ones only
                p.cancel()
            raise
    return failed


def _preprocess_jpeg(ds, t0, source, out, transform, size, threads, quality, on_error, progress, interpolation,
                     decode, overwrite):
    probe = _offline.build_transform(transform, size, "uint8", "HWC", fixed=False, interpolation=interpolation,
                                     decode=decode)
    spec = _offline.transform_spec(transform, size, probe)
    threads = threads or default_threads()
    out_names = _jpeg_names(ds.names)
    existing = set() if overwrite else _existing_files(out)
    for r in [r for r in existing if r.endswith(".tmp")]:
        _offline.remove_quietly(os.path.join(out, r))
        existing.discard(r)
    todo = [i for i, nm in enumerate(out_names) if nm not in existing]
    for d in sorted({os.path.dirname(out_names[i]) for i in todo}):
        if d:
            _offline.make_dirs(os.path.join(out, d))

    def store(i, data):
        _offline.atomic_write_bytes(os.path.join(out, out_names[i]), lambda f: f.write(data))

    bar = Progress(len(ds), "preprocess", enabled=progress, initial=len(ds) - len(todo))
    try:
        failed = _encode_all(ds.items, ds.names, todo, _encoder(transform, size, interpolation, decode), threads,
                             quality, on_error, bar, store, lambda i, stored: None,
                             lambda i: os.path.join(out, out_names[i]))
    finally:
        bar.close()
    failed.sort(key=lambda f: f["index"])
    bad = {f["index"] for f in failed}
    ok = [i for i in range(len(ds)) if i not in bad]
    JpegIndex(source=_source_path(source), count=len(ok), source_count=len(ds), transform=spec, quality=int(quality),
              classes=[str(c) for c in ds.classes], class_to_idx=ds.class_to_idx, on_error=on_error,
              files=[out_names[i] for i in ok], labels=ds.labels[ok].tolist(), sources=[ds.names[i] for i in ok],
              failed=failed).write(os.path.join(out, "index.json"))
    seconds = time.perf_counter() - t0
    return {"out": out, "format": JPEG_INDEX_FORMAT, "images": len(ok), "written": len(todo) - len(failed),
            "skipped_existing": len(ds) - len(todo), "failed": failed, "seconds": round(seconds, 3),
            "images_per_second": round((len(todo) - len(failed)) / seconds, 1) if seconds > 0 and todo else None}


# ---------------------------------------------------------------------------------------------- tar shards

def tar_shard_name(k):
    return f"shard-{k:06d}.tar"


def _tar_keys(ds):
    """A WebDataset key per sample: its name (a tar sample: its member name) without the folder
    all names share and the extension, the dots of its base name made underscores (a key ends at
    the first dot of the base name), made unique."""
    names = [m.member for m in ds.items] if ds.kind == "tar" else [nm.replace("\\", "/") for nm in ds.names]
    dirs = {os.path.dirname(nm) for nm in names}
    common = os.path.commonpath(list(dirs)) if dirs and "" not in dirs else ""  # file lists: drop the shared folder
    keys, seen = [], set()
    for i, nm in enumerate(names):
        if common:
            nm = nm[len(common) + 1:]
        stem = os.path.splitext(nm)[0]
        head, _, base = stem.rpartition("/")
        key = (head + "/" if head else "") + base.replace(".", "_")
        if key in seen:
            key = f"{key}_{i}"
        seen.add(key)
        keys.append(key)
    return keys


def _tar_bytes(members):
    """An uncompressed tar of [(name, data)]: ustar/pax headers, mtime 0, owner 0, mode 0444, so
    the same inputs always give the same bytes."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = len(data), 0, 0o444, 0, 0, "", ""
            tf.addfile(ti, io.BytesIO(data))
    return buf.getbuffer()


class _TarJob:
    """The settings of a tar run that shape its files (picklable: a Ray task gets one)."""

    def __init__(self, transform, size, quality, on_error, interpolation, decode, shard_size):
        self.transform, self.size, self.quality, self.on_error = transform, size, int(quality), on_error
        self.interpolation, self.decode, self.shard_size = interpolation, decode, int(shard_size)

    def encoder(self):
        return _encoder(self.transform, self.size, self.interpolation, self.decode)


class _TarStart:
    """What _tar_start found: shard ranges and file names, sample keys, the shards already there."""

    def __init__(self, spec, shards, names, keys, done):
        self.spec, self.shards, self.names, self.keys, self.done = spec, shards, names, keys, done
        self.todo = [k for k in range(len(shards)) if k not in done]

    def pending(self):
        return sum(self.shards[k][1] - self.shards[k][0] for k in self.todo)


def _tar_start(job, ds, out, overwrite):
    probe = _offline.build_transform(job.transform, job.size, "uint8", "HWC", fixed=False,
                                     interpolation=job.interpolation, decode=job.decode)
    spec = _offline.transform_spec(job.transform, job.size, probe)
    n = len(ds)
    shards = [(a, min(n, a + job.shard_size)) for a in range(0, n, job.shard_size)]
    names = [tar_shard_name(k) for k in range(len(shards))]
    existing = set() if overwrite else _existing_files(out)
    for r in [r for r in existing if r.endswith(".tmp")]:
        _offline.remove_quietly(os.path.join(out, r))
    held = {}  # a shard of an earlier run: its member names; an unreadable one is written again
    for k, nm in enumerate(names):
        if nm in existing:
            try:
                scan = _tar_scan(os.path.join(out, nm))
            except DecodeError:
                continue
            if not scan["problems"]:
                held[k] = set(scan["names"])
    st = _TarStart(spec, shards, names, _tar_keys(ds), set(held))
    st.held = held
    return st


def _write_tar_shards(job, out, items, labels, keys, names, shards, shard_names, ks, threads, labeled, bar,
                      base=0):
    """Encodes and writes shards ``ks`` (items[i - base], labels[i - base], keys[i - base] for
    source item i): a shard is written (to .tmp, renamed) as soon as its last item is done, in
    item order. Returns (failures, images written)."""
    todo = [i for k in ks for i in range(*shards[k])]
    results = {}                         # index -> JPEG bytes (None: failed), until its shard is written
    left = {k: shards[k][1] - shards[k][0] for k in ks}
    written = [0]

    def done(i, data):
        results[i] = data
        k = i // job.shard_size
        left[k] -= 1
        if left[k] == 0:
            a, b = shards[k]
            members = []
            for j in range(a, b):
                d = results.pop(j)
                if d is not None:
                    members.append((keys[j - base] + ".jpg", d))
                    if labeled:
                        members.append((keys[j - base] + ".cls", str(int(labels[j - base])).encode()))
            tar = _tar_bytes(members)
            _offline.atomic_write_bytes(os.path.join(out, shard_names[k]), lambda f: f.write(tar))
            written[0] += len(members) // (2 if labeled else 1)

    failed = _encode_all(items, names, todo, job.encoder(), threads, job.quality, job.on_error, bar,
                         lambda i, data: data, done, lambda i: os.path.join(out, shard_names[i // job.shard_size]),
                         base=base)
    return failed, written[0]


def _tar_finish(job, out, ds, source, st, failed, written, t0):
    n = len(ds)
    failed = list(failed)
    for k in sorted(st.done):  # shards of an earlier run: what they hold was read back from them
        for i in range(*st.shards[k]):
            if st.keys[i] + ".jpg" not in st.held[k]:
                failed.append(_offline.failure(i, ds.names[i], f"not in {st.names[k]} (left out by an earlier run)"))
    failed.sort(key=lambda f: f["index"])
    bad = {f["index"] for f in failed}
    ok = [i for i in range(n) if i not in bad]
    TarIndex(source=_source_path(source), count=None, source_count=n, transform=st.spec, quality=job.quality,
             classes=[str(c) for c in ds.classes], class_to_idx=ds.class_to_idx, on_error=job.on_error,
             files=[f"{st.names[i // job.shard_size]}/{st.keys[i]}.jpg" for i in ok], labels=ds.labels[ok].tolist(),
             sources=[ds.names[i] for i in ok], failed=failed, shards=st.names,
             shard_size=job.shard_size).write(os.path.join(out, "index.json"))
    seconds = time.perf_counter() - t0
    return {"out": out, "format": TAR_INDEX_FORMAT, "images": len(ok), "written": written,
            "shards": len(st.shards), "shards_resumed": len(st.done), "skipped_existing": n - st.pending(),
            "failed": failed, "seconds": round(seconds, 3),
            "images_per_second": round(written / seconds, 1) if seconds > 0 and written else None}


def _preprocess_tar(ds, t0, source, out, transform, size, threads, quality, on_error, progress, interpolation,
                    decode, overwrite, shard_size):
    """WebDataset shards of re-encoded JPEGs: ``OUT/shard-000000.tar`` ... hold ``<key>.jpg`` and,
    for a labeled source, ``<key>.cls``. Shard k holds items [k * shard_size, (k + 1) * shard_size)
    minus the failures, in order, so its bytes depend only on those items; it is written to .tmp
    and renamed when complete, and a rerun skips the shards already there. Three steps, as the
    npy run, so that fastprep/ray.py writes the shards in Ray tasks through the same code."""
    job = _TarJob(transform, size, quality, on_error, interpolation, decode, shard_size)
    st = _tar_start(job, ds, out, overwrite)
    n = len(ds)
    bar = Progress(n, "preprocess", enabled=progress, initial=n - st.pending())
    try:
        failed, written = _write_tar_shards(job, out, ds.items, ds.labels, st.keys, ds.names, st.shards, st.names,
                                            st.todo, threads or default_threads(), ds.labeled, bar)
    finally:
        bar.close()
    return _tar_finish(job, out, ds, source, st, failed, written, t0)


# ---------------------------------------------------------------------------------------------- CLI

def add_arguments(p):
    p.add_argument("src", help="ImageFolder directory, flat image directory, a path,label file list, or WebDataset "
                               "tar shards ('train-{000000..000127}.tar', a glob, a folder of .tar files)")
    p.add_argument("out", help="output directory (created; a rerun resumes)")
    p.add_argument("--transform", choices=_offline.TRANSFORMS, default="eval",
                   help="eval: Resize(size/0.875) + CenterCrop(size) (default); resize: npy: Resize((size, size)), "
                        "jpeg: shorter side = size, aspect kept")
    p.add_argument("--size", type=int, default=224, help="output size (default 224)")
    p.add_argument("--dtype", choices=("uint8", "float16", "float32"), default="uint8",
                   help="uint8 levels (default) or float in [0, 1] (ToTensor)")
    p.add_argument("--layout", choices=("CHW", "HWC"), default="CHW", help="npy sample layout (default CHW)")
    p.add_argument("--format", choices=("npy", "jpeg", "tar"), default="npy",
                   help="npy shards of the output (default), a JPEG folder tree, or WebDataset tar shards of JPEGs")
    p.add_argument("--shard-size", type=int, default=1024, help="samples per npy or tar shard (default 1024)")
    p.add_argument("--threads", type=int, default=None, help="native decode threads (default: all cores)")
    p.add_argument("--batch-size", type=int, default=256, help="images per native batch (default 256)")
    p.add_argument("--quality", type=int, default=90,
                   help="JPEG quality 1-100 for --format jpeg (default 90; 4:2:0 chroma subsampling)")
    p.add_argument("--on-error", choices=_offline.POLICIES, default="raise",
                   help="undecodable files: raise (default), skip (left out, listed in index.json), "
                        "zeros (npy only: a black sample)")
    p.add_argument("--interpolation", choices=("bilinear", "bicubic", "nearest"), default="bilinear")
    p.add_argument("--exact", action=argparse.BooleanOptionalAction, default=None,
                   help="torchvision-exact decoding, or --no-exact: DCT-domain downscaling while decoding (faster "
                        "for large photos); default: fp.Compose's default")
    _offline.add_exif_argument(p)
    p.add_argument("--overwrite", action="store_true", help="discard a previous run in OUT instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args):
    try:
        res = preprocess(args.src, args.out, transform=args.transform, size=args.size, dtype=args.dtype,
                         format=args.format, layout=args.layout, shard_size=args.shard_size, threads=args.threads,
                         quality=args.quality, on_error=args.on_error, batch_size=args.batch_size,
                         progress=False if args.quiet else None, interpolation=args.interpolation,
                         exact=args.exact, overwrite=args.overwrite,
                         apply_exif_orientation=args.apply_exif_orientation)
    except DecodeError as e:
        sys.stderr.write(f"fastprep preprocess: {_offline.display(str(e))}\n(finished shards are kept; rerun with "
                         "--on-error skip to leave undecodable files out)\n")
        return 1
    except _offline.WriteError as e:
        if e.verb != "write":  # OUT cannot be created or locked: nothing was done
            sys.stderr.write(f"fastprep preprocess: {e}\n")
            return 2
        sys.stderr.write(f"fastprep preprocess: {e}\n(finished files are kept: free some space or lift the limit, "
                         "then rerun the same command to resume)\n")
        return 1
    except OutputLockedError as e:
        sys.stderr.write(f"fastprep preprocess: {e}\n")
        return 2
    except (FileExistsError, ValueError) as e:
        sys.stderr.write(f"fastprep preprocess: {_offline.display(str(e))}\n")
        return 2
    except OSError as e:  # reading the source, listing OUT, ...
        sys.stderr.write(f"fastprep preprocess: {_offline.display(str(e))}\n")
        return 1
    print(format_summary(res))
    _offline.print_failures(res["failed"], where=os.path.join(args.out, "index.json"))
    return 0


def format_summary(res):
    rate = f", {res['images_per_second']:,.0f} img/s" if res.get("images_per_second") else ""
    out = _offline.display(res["out"])
    if res["format"] == TAR_INDEX_FORMAT:
        return (f"{res['images']:,} images in {res['shards']} tar shards of {out} ({res['written']:,} written, "
                f"{res['shards_resumed']} shards already there, {len(res['failed'])} failed) in "
                f"{res['seconds']:.1f} s{rate}")
    if res["format"] == JPEG_INDEX_FORMAT:
        return (f"{res['images']:,} images in {out} ({res['written']:,} written, {res['skipped_existing']:,} "
                f"already there, {len(res['failed'])} failed) in {res['seconds']:.1f} s{rate}")
    if res.get("already_complete"):
        head = f"{out} is already complete: {res['images']:,} images in {res['shards']} shards"
    else:
        head = (f"{res['images']:,} images in {res['shards']} shards of {out} ({res['shards_written']} "
                f"written, {res['shards_resumed']} resumed, {len(res['failed'])} failed) in "
                f"{res['seconds']:.1f} s{rate}")
    lines = [head, f"samples: {tuple(res['shape'])} {res['dtype']}, np.load(..., mmap_mode='r') or "
                   "fastprep.ShardDataset(out)"]
    st = res.get("stats")
    if st and st.get("images"):
        lines.append("mean [0,1] = [" + ", ".join(f"{v:.4f}" for v in st["mean"]) + "], std [0,1] = ["
                     + ", ".join(f"{v:.4f}" for v in st["std"]) + "]")
        lines.append(st["normalize"])
    return "\n".join(lines)
