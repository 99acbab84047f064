"""`fastprep preprocess --format npy`: fixed-size .npy shards of the transform's output (see
_preprocess.py for the files and the failure rules). A run is three steps, so that the shards can
be written by other processes (fastprep/ray.py: one Ray task per shard) through the same code:
npy_start, write_npy_shards, npy_finish."""
import errno
import mmap
import os
import queue
import struct
import sys
import threading
import time

import numpy as np

from .. import io as fio
from .._util import Progress, default_threads
from ..io import ShardEntry, ShardIndex, ShardMeta
from . import _jobs
from ._out import prepare_out, run_fingerprint, shard_names, source_path, summary
from ._stats import FloatMoments, LevelMoments, empty_levels, moments_from_json, normalize_line, summarize

KILL_ENV = "FASTPREP_TEST_KILL_AFTER_SHARDS"  # test hook: os._exit() in the middle of the next shard


class Stopped(RuntimeError):
    """The shard buffer pool was closed (the run is stopping: writer error or consumer error)."""


#
# A run is three steps, so that the shards can be written by other processes (fastprep/ray.py: one
# Ray task per shard) through the same code as here: npy_start (under the OUT lock: run.json, the
# shard ranges, the shards already finished), write_npy_shards (decode and write some shards; a
# shard's files depend only on its own source range) and npy_finish (index.json from the shards'
# json files, the summary).

class NpyJob:
    """The settings of an npy run that shape its files (picklable: a Ray task gets one)."""

    def __init__(self, transform, size, dtype, layout, shard_size, on_error, batch_size, interpolation, decode):
        self.transform, self.size, self.dtype, self.layout = transform, size, dtype, layout
        self.shard_size = int(shard_size)
        if self.shard_size <= 0:
            raise ValueError("shard_size must be positive")
        self.on_error, self.batch_size = on_error, int(batch_size)
        self.interpolation, self.decode = interpolation, decode

    def compose(self):
        return _jobs.build_transform(self.transform, self.size, self.dtype, self.layout, fixed=True,
                                        interpolation=self.interpolation, decode=self.decode)


class NpyStart:
    """What npy_start found: the shard ranges, the finished shards, the shards to write, and the
    index when the run was complete already."""

    def __init__(self, compose, spec, shards, done, index):
        self.compose, self.spec, self.shards, self.done, self.index = compose, spec, shards, done, index
        self.todo = [k for k in range(len(shards)) if k not in done]

    def pending(self):
        """Source items in the shards still to write."""
        return sum(self.shards[k][1] - self.shards[k][0] for k in self.todo)


def preprocess_npy(ds, t0, source, out, transform, size, dtype, layout, shard_size, threads, on_error,
                    batch_size, progress, interpolation, decode, overwrite):
    job = NpyJob(transform, size, dtype, layout, shard_size, on_error, batch_size, interpolation, decode)
    st = npy_start(job, ds, out, overwrite)
    if st.index is not None:
        return summary(out, st.index, resumed=len(st.shards), written=0, seconds=time.perf_counter() - t0,
                        complete_before=True)
    n = len(ds)
    bar = Progress(n, "preprocess", enabled=progress, initial=n - st.pending())
    try:
        written = write_npy_shards(job, out, ds.items, ds.names, ds.labels, st.shards, st.todo,
                                    threads or default_threads(), bar=bar, compose=st.compose,
                                    kill_after=int(os.environ.get(KILL_ENV, "0") or 0))
    finally:
        bar.close()
    return npy_finish(job, out, ds, source, st, written, t0)


def npy_start(job, ds, out, overwrite):
    """Checks OUT/run.json against this run (or writes it), removes stale .tmp files and an
    index.json that no longer holds, and finds the finished shards. Runs under the OUT lock."""
    compose = job.compose()
    spec = _jobs.transform_spec(job.transform, job.size, compose)
    present = prepare_out(out, run_fingerprint(ds, spec, "npy", job.shard_size), overwrite)
    shards = _jobs.chunk_ranges(0, len(ds), job.shard_size)
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
    return NpyStart(compose, spec, shards, done, index)


def npy_finish(job, out, ds, source, st, written, t0):
    """Writes index.json from the shards' json files (all shards finished); returns the summary."""
    index = _build_index(out, ds, st.shards, st.spec, st.compose, st.compose.output_shape(), job.on_error, source)
    index.write(os.path.join(out, "index.json"))
    return summary(out, index, resumed=len(st.done), written=written, seconds=time.perf_counter() - t0,
                    processed=st.pending())


def write_npy_shards(job, out, items, names, labels, shards, todo, threads, base=0, bar=None, compose=None,
                      kill_after=0):
    """Decodes the source items of shards ``todo`` (indices into ``shards``, the run's ranges) on
    ``threads`` native threads and writes their files into ``out``; returns how many were written.
    ``items``, ``names`` and ``labels`` hold the dataset's positions ``base`` on (a Ray task gets
    only its shard's); random keys and failure indices stay dataset-wide."""
    compose = compose if compose is not None else job.compose()
    shard_size, on_error = job.shard_size, job.on_error
    sample_shape = compose.output_shape()
    np_dtype = compose.np_dtype
    ranges = [r for k in todo for r in _jobs.chunk_ranges(*shards[k], min(job.batch_size, shard_size))]
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
        batches = _jobs.iter_batches(compose, items, ranges, threads, on_error, names,
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
    except Stopped:
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
                raise Stopped("preprocess stopped")
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


def write_file(path, buf, length):
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
                    fio.remove_quietly(f.path)
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
                        raise fio.write_error(e, img_path) from e
                    continue
                _, _, buf, count, labels, meta = job
                try:
                    f = files.pop(k, None) or _ShardFile(tmp)
                    f.finish(buf, _NPY_HEADER + count * self.buffers.sample_bytes)
                except OSError as e:
                    raise fio.write_error(e, img_path) from e
                finally:
                    self.buffers.release(buf)
                lab_bytes = fio.npy_bytes(labels)
                fio.atomic_write_bytes(os.path.join(self.out, lab_name), lambda f: f.write(lab_bytes))
                meta.write(os.path.join(self.out, meta_name))
                # No fsync: the renames protect against an interrupted process, not a power loss.
                try:
                    os.replace(tmp, img_path)  # images last: the shard is finished
                except OSError as e:
                    raise fio.write_error(e, img_path) from e
                self.written += 1
                if self.kill_after and self.written == self.kill_after:
                    _simulate_crash(self.out, k + 1)
            except BaseException as e:  # noqa: BLE001 - reported to the main thread
                f = files.pop(k, None)
                if f is not None:
                    f.close()
                fio.remove_quietly(tmp)  # an unfinished shard leaves no .tmp behind
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
        source=source_path(source), count=start, source_count=len(ds), dtype=compose.dtype, layout=compose.layout,
        shape=tuple(sample_shape), transform=spec, classes=[str(c) for c in ds.classes],
        class_to_idx=ds.class_to_idx, on_error=on_error if len(policies) <= 1 else sorted(policies),
        shard_size=shards[0][1] - shards[0][0] if shards else 0, shards=entries, stats=stats, failed=failed,
        files=files)


