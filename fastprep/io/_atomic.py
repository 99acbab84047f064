"""The file helpers of the offline tools, a leaf (it imports no other fastprep module): atomic
writes that fail with a typed error naming the file (WriteError), the lossless JSON form of
file names that are not valid UTF-8, and failure records. The offline tools' machinery is in
fastprep/offline/_jobs.py; the files' formats in _formats.py."""
import base64
import contextlib
import errno as _errno
import json
import os
import signal
import sys
import threading

import numpy as np


def failure(index, name, reason):
    return {"index": int(index), "file": name, "error": reason}


class WriteError(OSError):
    """An output file or folder could not be written (disk full, file size limit, read-only
    file system, ...). ``filename`` is the file, ``errno``/``strerror`` the cause; str() reads
    "cannot write <file>: <cause>"."""

    def __init__(self, errno, strerror, filename, verb="write"):
        super().__init__(errno, strerror, filename)
        self.verb = verb

    def __str__(self):
        return f"cannot {self.verb} {display(self.filename)}: {self.strerror}"

    def __reduce__(self):
        return (type(self), (self.errno, self.strerror, self.filename, self.verb))


_HINTS = {
    getattr(_errno, "ENOSPC", -1): "No space left on device (the disk is full)",
    getattr(_errno, "EFBIG", -1): "File too large (the file size limit was reached: ulimit -f / RLIMIT_FSIZE)",
    getattr(_errno, "EDQUOT", -1): "Disk quota exceeded",
}


def write_error(e, path, verb="write"):
    """``e`` (an OSError) as a WriteError naming ``path`` (an existing WriteError is kept)."""
    if isinstance(e, WriteError):
        return e
    cause = _HINTS.get(e.errno) or e.strerror or str(e)
    if e.errno is None:  # e.g. numpy's "N requested and M written": the OS error is lost
        cause += " (a short write: the disk is full or a file size limit was reached?)"
    return WriteError(e.errno, cause, os.fspath(path), verb)


def npy_bytes(arr):
    """The .npy file of ``arr`` as bytes (np.save to a real file uses tofile, whose short-write
    error drops the OS error; writing these bytes with f.write keeps it)."""
    import io

    b = io.BytesIO()
    np.save(b, arr)
    return b.getbuffer()


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def atomic_write_bytes(path, write):
    """Calls write(file) on ``path + '.tmp'``, then renames it over ``path`` (atomic on POSIX):
    readers see the old file or the complete new one, never a partial one. An OSError (disk full,
    file too large, ...) removes the .tmp file and is raised as a WriteError naming ``path``."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        remove_quietly(tmp)
        raise write_error(e, path) from e
    except BaseException:
        remove_quietly(tmp)
        raise


def atomic_write_json(path, obj):
    try:
        data = json.dumps(obj, indent=1, ensure_ascii=False, default=json_default).encode("utf-8")
    except UnicodeEncodeError:  # a str that is not valid UTF-8 (a name the caller did not encode)
        data = json.dumps(_printable(obj), indent=1, ensure_ascii=False, default=json_default).encode("utf-8")
    atomic_write_bytes(path, lambda f: f.write(data))


def make_dirs(path, what="folder"):
    """os.makedirs(path, exist_ok=True), failing with a WriteError naming the folder."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise write_error(e, path, f"create the {what}") from e
    if not os.path.isdir(path):
        raise WriteError(_errno.ENOTDIR, "not a folder", os.fspath(path), f"create the {what}")


def check_writable_dir(path, what="folder"):
    """Creates ``path`` if needed and checks that a file can be created in it (a probe file is
    created and removed): a WriteError before a long pass rather than after it."""
    make_dirs(path, what)
    probe = os.path.join(path, f".fastprep-probe-{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
    except OSError as e:
        raise write_error(e, path, f"write into the {what}") from e
    remove_quietly(probe)


@contextlib.contextmanager
def ignore_sigxfsz():
    """Ignores SIGXFSZ while writing (when its action is the default, which kills the process at
    the file size limit), so that a write past RLIMIT_FSIZE fails with EFBIG: a WriteError.
    CPython ignores it at startup already; this covers an embedding that did not. Only the main
    thread can change it; a handler installed by the program is left alone."""
    sig = getattr(signal, "SIGXFSZ", None)
    if sig is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        old = signal.getsignal(sig)
    except (ValueError, OSError):
        old = None
    if old != signal.SIG_DFL:
        yield
        return
    signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(sig, old)


# ---- file names in JSON -----------------------------------------------------------------------
# Names come from the file system as str; a name that is not valid UTF-8 holds surrogate escapes
# (os.fsdecode) that JSON (UTF-8) cannot store. Such a name is written as a readable form with
# \xNN escapes, plus the base64 of its raw bytes (os.fsencode(name)) in a separate field; the
# readers below give back the original str (os.fsdecode of the bytes), so names round-trip.

def name_to_json(name):
    """(text, base64 of the raw bytes or None): text is ``name`` itself when it is valid UTF-8."""
    try:
        name.encode("utf-8")
        return name, None
    except UnicodeEncodeError:
        pass
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:  # not a file-system name (lone surrogates): readable form only
        return name.encode("utf-8", "backslashreplace").decode("utf-8"), None
    return raw.decode("utf-8", "backslashreplace"), base64.b64encode(raw).decode("ascii")


def name_from_json(text, b64=None):
    return os.fsdecode(base64.b64decode(b64)) if b64 else text


def display(name):
    r"""A printable form of a name (\xNN for the bytes that are not UTF-8)."""
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    return name_to_json(str(name))[0]


def names_to_json(names):
    """(list of text, {position as str: base64}) for a list of names; the dict is empty when every
    name is valid UTF-8."""
    texts, raw = [], {}
    for i, nm in enumerate(names):
        t, b = name_to_json(nm)
        texts.append(t)
        if b is not None:
            raw[str(i)] = b
    return texts, raw


def names_from_json(texts, raw=None):
    names = list(texts)
    for i, b in (raw or {}).items():
        names[int(i)] = name_from_json(names[int(i)], b)
    return names


def path_fields(key, value):
    """{key: text} plus {key + "_b64": base64} when ``value`` is not valid UTF-8."""
    t, b = name_to_json(value)
    return {key: t, **({key + "_b64": b} if b else {})}


def names_fields(key, names):
    """{key: texts} plus {key + "_b64": {position: base64}} when some name is not valid UTF-8."""
    texts, raw = names_to_json(names)
    return {key: texts, **({key + "_b64": raw} if raw else {})}


def failures_to_json(failed):
    out = []
    for f in failed:
        g = {k: v for k, v in f.items() if k != "file"}
        out.append({**path_fields("file", f["file"]), **_printable(g)})
    return out


def failures_from_json(failed):
    out = []
    for f in failed:
        g = {k: v for k, v in f.items() if k != "file_b64"}
        g["file"] = name_from_json(f["file"], f.get("file_b64"))
        out.append(g)
    return out


def _printable(x):
    if isinstance(x, str):
        return display(x)
    if isinstance(x, dict):
        return {(_printable(k) if isinstance(k, str) else k): _printable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_printable(v) for v in x]
    return x


def json_default(x):
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serializable")


def print_failures(failed, stream=None, limit=20, where=None):
    stream = stream or sys.stderr
    if not failed:
        return
    stream.write(f"{len(failed)} file(s) failed:\n")
    for f in failed[:limit]:
        stream.write(f"  {display(f['file'])}: {display(f['error'])}\n")
    if len(failed) > limit:
        where = f" (all listed in {display(where)})" if where else ""
        stream.write(f"  ... and {len(failed) - limit} more{where}\n")
