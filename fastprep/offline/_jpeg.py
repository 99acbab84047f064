"""`fastprep preprocess --format jpeg`: the resized images re-encoded by libjpeg-turbo into a
mirrored folder tree (and the encoder the tar format shares)."""
import concurrent.futures as cf
import os
import threading
import time

import numpy as np

from .. import _core
from .. import io as fio
from .._errors import DecodeError
from .._util import Progress, default_threads
from ..io import JpegIndex
from . import _jobs
from ._out import check_run_record, run_fingerprint, source_path

JPEG_INDEX_FORMAT = JpegIndex.FORMAT
JPEG_SUBSAMPLING = 420  # Pillow's default for every quality (what --format jpeg wrote with Pillow)


_JPEG_EXTS = (".jpg", ".jpeg")

# preprocess --format jpeg|tar: restart markers every 2 MCUs (32 pixels of a 4:2:0 image), each
# MCU row starting an interval (Note [Restart splicing]). benchmarks/bench_restart.py, detailed
# photographs: the train recipe at 1.30-1.34x the bare full decode of the originals with it
# (the same every MCU, 1.26-1.30x every 4), for +2.3% bytes over no markers (+4.3%, +1.2%). The
# encoder cannot know the bytes per MCU before it writes them, so it does not adapt as
# `fastprep optimize` does; resized images at quality 90 are detailed.
DEFAULT_RESTART_MCUS = 2


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


def existing_files(top):
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


def check_restart_mcus(restart_mcus):
    if isinstance(restart_mcus, bool) or not isinstance(restart_mcus, int) or not 0 <= restart_mcus <= 65535:
        raise ValueError(f"restart_mcus must be an integer in [0, 65535] (0: no restart markers), got {restart_mcus!r}")


def encode_jpeg(img, quality, restart_mcus=DEFAULT_RESTART_MCUS):
    """An HxWx3 (or HxW) uint8 image as JPEG bytes: libjpeg-turbo, baseline, 4:2:0, as Pillow's
    ``save(format="JPEG", quality=quality)`` writes it, plus restart markers about every
    ``restart_mcus`` MCUs that start every MCU row (0: none), for the decoder's restart splicing."""
    return bytes(_core.encode_jpeg(np.ascontiguousarray(img), int(quality), JPEG_SUBSAMPLING, False,
                                   int(restart_mcus)))


def encoder(transform, size, interpolation, decode):
    """work(item) -> JPEG-ready HxWx3 uint8 image, one Compose (and native engine) per thread."""
    local = threading.local()

    def run(item):
        t = getattr(local, "t", None)
        if t is None:
            t = local.t = _jobs.build_transform(transform, size, "uint8", "HWC", fixed=False,
                                                   interpolation=interpolation, decode=decode)
        return t.batch([item], threads=1, on_error="raise")[0]
    return run


def encode_all(items, names, todo, encoder, threads, quality, on_error, bar, store, done, dst_name, base=0,
               restart_mcus=DEFAULT_RESTART_MCUS):
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
            return i, fio.failure(i, name, e.reason), type(e)(name, e.reason, i), None
        try:  # in memory (the GIL released), then written with checked writes
            data = encode_jpeg(img, quality, restart_mcus)
        except ValueError as e:  # e.g. a side over JPEG's 65500 limit
            raise ValueError(f"cannot encode {fio.display(dst_name(i))} as JPEG: {e}") from None
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


def preprocess_jpeg(ds, t0, source, out, transform, size, threads, quality, on_error, progress, interpolation,
                     decode, overwrite, restart_mcus=DEFAULT_RESTART_MCUS):
    probe = _jobs.build_transform(transform, size, "uint8", "HWC", fixed=False, interpolation=interpolation,
                                     decode=decode)
    spec = _jobs.transform_spec(transform, size, probe)
    threads = threads or default_threads()
    out_names = _jpeg_names(ds.names)
    existing = set() if overwrite else existing_files(out)
    check_run_record(out, run_fingerprint(ds, spec, "jpeg", 0, quality), overwrite,
                     has_outputs=not existing.isdisjoint(out_names))
    for r in [r for r in existing if r.endswith(".tmp")]:
        fio.remove_quietly(os.path.join(out, r))
        existing.discard(r)
    todo = [i for i, nm in enumerate(out_names) if nm not in existing]
    for d in sorted({os.path.dirname(out_names[i]) for i in todo}):
        if d:
            fio.make_dirs(os.path.join(out, d))

    def store(i, data):
        fio.atomic_write_bytes(os.path.join(out, out_names[i]), lambda f: f.write(data))

    bar = Progress(len(ds), "preprocess", enabled=progress, initial=len(ds) - len(todo))
    try:
        failed = encode_all(ds.items, ds.names, todo, encoder(transform, size, interpolation, decode), threads,
                             quality, on_error, bar, store, lambda i, stored: None,
                             lambda i: os.path.join(out, out_names[i]), restart_mcus=restart_mcus)
    finally:
        bar.close()
    failed.sort(key=lambda f: f["index"])
    bad = {f["index"] for f in failed}
    ok = [i for i in range(len(ds)) if i not in bad]
    JpegIndex(source=source_path(source), count=len(ok), source_count=len(ds), transform=spec, quality=int(quality),
              classes=[str(c) for c in ds.classes], class_to_idx=ds.class_to_idx, on_error=on_error,
              files=[out_names[i] for i in ok], labels=ds.labels[ok].tolist(), sources=[ds.names[i] for i in ok],
              failed=failed).write(os.path.join(out, "index.json"))
    seconds = time.perf_counter() - t0
    return {"out": out, "format": JPEG_INDEX_FORMAT, "images": len(ok), "written": len(todo) - len(failed),
            "skipped_existing": len(ds) - len(todo), "failed": failed, "seconds": round(seconds, 3),
            "images_per_second": round((len(todo) - len(failed)) / seconds, 1) if seconds > 0 and todo else None}


