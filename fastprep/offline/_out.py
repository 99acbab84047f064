"""The OUT folder of `fastprep preprocess` (its lock, what a rerun finds there, the refusal of an
OUT inside the source) and the checks and summary every output format shares."""
import contextlib
import errno
import fcntl
import hashlib
import math
import numbers
import os

import numpy as np

from .. import io as fio
from ..io import RunRecord
from . import _jobs


LOCK_NAME = ".lock"


class OutputLockedError(RuntimeError):
    """Another ``fastprep preprocess`` is writing into the same OUT (it holds OUT/.lock)."""


def shard_names(k):
    return f"images_{k:05d}.npy", f"labels_{k:05d}.npy", f"shard_{k:05d}.json"


class OutLock:
    """An exclusive, non-blocking flock on OUT/.lock for the duration of a run. The kernel releases
    it when the file is closed or the process ends (a crash or kill included), so it never goes stale."""

    def __init__(self, out):
        self.path = os.path.join(out, LOCK_NAME)
        self.fd = -1

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as e:
            raise fio.write_error(e, self.path, "create the lock file") from e
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
                    f"{fio.display(os.path.dirname(self.path))} is in use by another fastprep preprocess{who}: "
                    f"it holds {LOCK_NAME}; wait for it to finish or use another OUT") from None
            raise fio.write_error(e, self.path, "lock") from e
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


def prepare_out(out, fingerprint, overwrite):
    """--format npy: creates OUT, checks that a previous run there had the same fingerprint (or
    clears it with ``overwrite``), removes stale .tmp files; returns the set of file names present."""
    names = set(os.listdir(out))
    ours = {n for n in names if _our_file(n)}
    if overwrite:
        for n in ours:
            os.remove(os.path.join(out, n))
        names -= ours
    check_run_record(out, fingerprint, False, has_outputs=bool(names & ours - {"run.json"}))
    for n in [n for n in names if n.endswith(".tmp") and _our_file(n)]:
        os.remove(os.path.join(out, n))  # left by an interrupted run
        names.discard(n)
    names.add("run.json")
    return names


def run_fingerprint(ds, spec, format, shard_size=0, quality=0):
    """The RunRecord of a run over dataset ``ds``: its files and labels (hashed), the transform
    spec, the format and the settings that shape the files written."""
    h = hashlib.sha1()
    for name in ds.names:
        h.update(name.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    h.update(np.ascontiguousarray(ds.labels, dtype="<i8").tobytes())
    return RunRecord(count=len(ds), files_sha1=h.hexdigest(), transform=spec, format=format,
                     shard_size=int(shard_size), quality=int(quality))


def check_run_record(out, fingerprint, overwrite, has_outputs):
    """OUT/run.json must match this run before a rerun keeps any file of OUT (a rerun at another
    size would otherwise keep the earlier images and describe them with the new settings); it is
    written when absent. ``has_outputs``: OUT holds files this run would write. Every format calls
    it, under the OUT lock."""
    run_path = os.path.join(out, "run.json")
    if not overwrite:
        if os.path.exists(run_path):
            diff = RunRecord.read(run_path).differences(fingerprint)
            if diff:
                raise FileExistsError(f"{out} holds a different preprocessing run (differs in: {', '.join(diff)}): "
                                      "use another OUT, or --overwrite to start over")
            return
        if has_outputs:
            raise FileExistsError(f"{out} holds output files but no run.json saying how they were made (files "
                                  "of another run, or of fastprep 0.1's --format jpeg/tar): use another OUT, "
                                  "or --overwrite to write every file again")
    fingerprint.write(run_path)


def check_job(format, quality, dtype, on_error, shard_size):
    """The argument checks of a preprocess run (the CLI, fastprep.preprocess, fastprep.ray)."""
    if on_error not in _jobs.POLICIES:
        raise ValueError(f"on_error must be one of {_jobs.POLICIES}, got {on_error!r}")
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
    fio.make_dirs(out, "output folder")
    with OutLock(out), fio.ignore_sigxfsz():
        yield out



def source_path(source):
    """The source folder or file list as an absolute path (None for an in-memory sequence)."""
    if isinstance(source, (str, bytes, os.PathLike)):
        return os.fsdecode(os.path.abspath(os.fspath(source)))
    return None


def summary(out, index, resumed, written, seconds, complete_before=False, processed=0):
    return {"out": out, "format": index.FORMAT, "images": index.count, "shards": len(index.shards),
            "shards_written": written, "shards_resumed": resumed, "already_complete": complete_before,
            "failed": list(index.failed), "stats": index.stats, "seconds": round(seconds, 3),
            "images_per_second": round(processed / seconds, 1) if seconds > 0 and processed else None,
            "shape": list(index.shape), "dtype": index.dtype}


def run_command(command, run, resume_hint, first=()):
    """Runs ``run()`` for the CLI ``command`` (preprocess, optimize) and maps its failures to the
    exit statuses of the offline tools (docs/guide/errors.md): 2 for bad arguments and refused
    outputs (OUT in use, of another run, uncreatable), 1 for a failed write (with ``resume_hint``)
    or read. ``first``: (exception type, status, hint) pairs handled before these. Returns
    (status, run()'s result or None); the message is on stderr."""
    import sys

    def say(msg, hint=None):
        sys.stderr.write(f"fastprep {command}: {msg}\n" + (f"({hint})\n" if hint else ""))

    try:
        return 0, run()
    except tuple(t for t, _, _ in first) as e:
        _, status, hint = next(f for f in first if isinstance(e, f[0]))
        say(fio.display(str(e)), hint)
        return status, None
    except fio.WriteError as e:
        if e.verb != "write":  # OUT cannot be created or locked: nothing was done
            say(e)
            return 2, None
        say(e, resume_hint)
        return 1, None
    except OutputLockedError as e:
        say(e)
        return 2, None
    except (FileExistsError, ValueError) as e:
        say(fio.display(str(e)))
        return 2, None
    except OSError as e:  # reading the source, listing OUT, ...
        say(fio.display(str(e)))
        return 1, None
