"""``fastprep optimize SRC OUT``: a lossless rewrite of a dataset's JPEGs with restart markers that
index every MCU row (Note [Lossless restart rewrite], Note [Restart splicing] in csrc/codecs/),
so that a crop decodes only the restart intervals it reads.

Every JPEG is rewritten from its DCT coefficients (no pixel changes; checked by decoding both,
unless ``verify=False``): one baseline scan (progressive files become baseline), Huffman tables
optimized for the image, and a restart interval of about ``restart_mcus`` MCUs that divides the
MCU row. Its metadata (EXIF, ICC profile, XMP, comments) is kept unless ``keep_metadata=False``.
Every other file is copied as it is, and so is a JPEG that cannot be rewritten exactly (corrupt
data, arithmetic coding, over max_pixels, a failed check): the output holds every input file,
and the summary lists the JPEGs kept unchanged with the reason.

Sources, and the output of the same kind:
  * a folder (an ImageFolder tree or any other): a mirrored tree in OUT, file for file;
  * WebDataset tar shards (a brace pattern, a glob, a folder of .tar files, a list): a shard of
    the same name in OUT for each, every member in order with its name and header, the JPEG
    members rewritten;
  * a file list (``path,label`` lines): the listed files mirrored under OUT by their path below
    the folder they share, and ``OUT/files.csv`` listing them with their labels.

Files are written to ``<name>.tmp`` and renamed into place, so a file (a shard) in OUT is
complete; a rerun skips what is there (``overwrite=True`` writes everything again). OUT/run.json
records the settings, and a rerun with others is refused. Files are rewritten on ``threads``
threads (the GIL is released while libjpeg works).
"""
import argparse
import concurrent.futures as cf
import csv
import hashlib
import io
import os
import shutil
import tarfile
import time

from .. import _core
from .. import io as fio
from .._util import Progress, default_threads
from ..io import RunRecord
from ._jpeg import check_restart_mcus
from ._out import check_out_outside_source, check_run_record, output_folder, run_command

DEFAULT_MAX_PIXELS = 178_956_970  # Compose's default

# "auto": about 200 bytes of entropy-coded data per restart interval, from each file's bytes per
# MCU (Note [Lossless restart rewrite]): every 2 MCUs on detailed photographs, 4-5 on smooth ones.
# benchmarks/bench_restart.py: the train recipe at 1.30-1.34x the bare full decode of the original
# photographs, the markers +2.3% of bytes (docs/benchmarks.md).
DEFAULT_OPTIMIZE_RESTART = "auto"
_AUTO = -1  # the native code's kAutoRestart

_JPEG_MAGIC = b"\xff\xd8\xff"


class _Tally:
    """What a run did, file by file (updated on the calling thread only)."""

    def __init__(self):
        self.files = self.rewritten = self.progressive = self.copied = self.resumed = 0
        self.jpeg_in = self.jpeg_out = self.bytes_in = self.bytes_out = 0
        self.intervals = {}
        self.kept = []  # [(name, reason)]: JPEGs copied unchanged

    def add(self, name, size_in, r, size_out=None):
        data, interval, progressive, reason = r
        size_out = len(data) if size_out is None else size_out
        self.files += 1
        self.bytes_in += size_in
        self.bytes_out += size_out
        if interval is not None:
            self.rewritten += 1
            self.progressive += bool(progressive)
            self.jpeg_in += size_in
            self.jpeg_out += size_out
            self.intervals[interval] = self.intervals.get(interval, 0) + 1
        elif reason is not None:
            self.kept.append((name, reason))
        else:
            self.copied += 1


def rewrite(data, restart_mcus=DEFAULT_OPTIMIZE_RESTART, keep_metadata=True, verify=True,
            max_pixels=DEFAULT_MAX_PIXELS):
    """One file's bytes -> (bytes to write, restart interval or None, was progressive, reason kept).
    A JPEG is rewritten losslessly; anything else (or a JPEG that cannot be) comes back as it is,
    with the reason for a JPEG."""
    if not bytes(data[:3]) == _JPEG_MAGIC:
        return data, None, False, None
    try:
        n = _AUTO if restart_mcus == "auto" else int(restart_mcus)
        out, interval, _cols, progressive = _core.transcode_jpeg(data, n, bool(keep_metadata), bool(verify),
                                                               int(max_pixels))
    except (ValueError, RuntimeError, MemoryError) as e:
        return data, None, False, str(e) or type(e).__name__
    return bytes(out), interval, progressive, None


def _check(restart_mcus, threads):
    if restart_mcus != "auto":
        check_restart_mcus(restart_mcus)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")


def _fingerprint(names, kind, restart_mcus, keep_metadata):
    h = hashlib.sha1()
    for nm in names:
        h.update(os.fsencode(nm))
        h.update(b"\0")
    return RunRecord(count=len(names), files_sha1=h.hexdigest(), format="optimize",
                     transform={"source": kind, "restart_mcus": restart_mcus,
                                "keep_metadata": bool(keep_metadata)})


def _ordered(tasks, work, threads, on_done):
    """Runs work(task) on ``threads`` threads, at most 4 per thread ahead, and calls
    on_done(task, result) on the calling thread in task order."""
    window = max(4, 4 * threads)
    with cf.ThreadPoolExecutor(threads, thread_name_prefix="fastprep-optimize") as ex:
        pending = []
        it = iter(tasks)
        try:
            for t in it:
                pending.append((t, ex.submit(work, t)))
                while len(pending) >= window:
                    t0, f0 = pending.pop(0)
                    on_done(t0, f0.result())
            while pending:
                t0, f0 = pending.pop(0)
                on_done(t0, f0.result())
        except BaseException:
            for _, f in pending:
                f.cancel()
            raise


def _walk(top):
    """Relative paths of every regular file under ``top`` (hidden files included), sorted."""
    found = []
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(top, rel) if rel else top) as it:
            for e in it:
                r = os.path.join(rel, e.name) if rel else e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append(r)
                elif e.is_file():
                    found.append(r)
    return sorted(found)


def _mirror(pairs, out, opts, threads, overwrite, bar, tally):
    """pairs: [(source path, relative output path)]: each file rewritten or copied into OUT."""
    existing = [rel for _, rel in pairs if not overwrite and os.path.exists(os.path.join(out, rel))]
    have = set(existing)
    for _, rel in pairs:
        fio.remove_quietly(os.path.join(out, rel) + ".tmp")  # left by an interrupted run
    for rel in existing:
        tally.resumed += 1
        bar.update(1)
    todo = [(src, rel) for src, rel in pairs if rel not in have]
    for d in sorted({os.path.dirname(rel) for _, rel in todo}):
        if d:
            fio.make_dirs(os.path.join(out, d))

    def work(task):
        src, rel = task
        dst = os.path.join(out, rel)
        with open(src, "rb") as f:
            head = f.read(3)
        if head != _JPEG_MAGIC:  # copied as it is, streamed (any size)
            def copy(g):
                with open(src, "rb") as f:
                    shutil.copyfileobj(f, g, 1 << 20)
            fio.atomic_write_bytes(dst, copy)
            size = os.path.getsize(dst)
            return size, (b"", None, False, None), size
        data = fio.read_file(src)
        r = rewrite(data, **opts)
        fio.atomic_write_bytes(dst, lambda f: f.write(r[0]))
        return len(data), r, len(r[0])

    def done(task, res):
        tally.add(task[1], res[0], res[1], res[2])
        bar.update(1)

    _ordered(todo, work, threads, done)


def _tar_shard(src, dst, opts, threads, tally):
    """Rewrites one shard: every member in order, the JPEG ones rewritten, written to dst.tmp and
    renamed."""
    def work(task):
        ti, data = task
        if data is None:
            return 0, None
        return len(data), rewrite(data, **opts)

    def members():
        with tarfile.open(src, mode="r:") as tf:
            for ti in tf:
                if ti.isreg():
                    f = tf.extractfile(ti)
                    yield ti, f.read()
                else:
                    yield ti, None

    def write(f):
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tw:
            def done(task, res):
                ti, data = task
                if res[1] is None:
                    tw.addfile(ti)
                    return
                size_in, r = res
                tally.add(f"{os.path.basename(src)}:{ti.name}", size_in, r)
                ti.size = len(r[0])
                tw.addfile(ti, io.BytesIO(r[0]))
            _ordered(members(), work, threads, done)

    try:
        fio.atomic_write_bytes(dst, write)
    except tarfile.TarError as e:
        raise ValueError(f"cannot read tar shard {fio.display(src)}: {e}") from None


def optimize(source, out, restart_mcus=DEFAULT_OPTIMIZE_RESTART, keep_metadata=True, verify=True, threads=None,
             progress=None, overwrite=False, max_pixels=DEFAULT_MAX_PIXELS):
    """Rewrites a dataset's JPEGs losslessly with restart markers (see the module docstring);
    ``restart_mcus``: "auto" (about 200 bytes of image data per interval) or a target number of
    MCUs (0: no markers). Returns a summary dict: files, rewritten, progressive (rewritten as
    baseline), copied (not JPEG), kept ([(name, reason)]: JPEGs copied unchanged), resumed
    (already in OUT: files, or for tar sources shards; "files" counts those as one each), the bytes
    of the rewritten JPEGs before and after (jpeg_bytes_in / jpeg_bytes_out, size_change), the
    restart intervals used, seconds."""
    _check(restart_mcus, threads)
    threads = threads or default_threads()
    opts = dict(restart_mcus=restart_mcus, keep_metadata=keep_metadata, verify=verify, max_pixels=max_pixels)
    t0 = time.perf_counter()
    tally = _Tally()
    shards = fio.expand_shards(source)
    check_out_outside_source(source, out)
    with output_folder(out) as out:
        if shards is not None:
            names = [os.path.basename(p) for p in shards]
            if len(set(names)) != len(names):
                raise ValueError("two shards have the same file name: OUT would hold one of them")
            present = [nm for nm in names if os.path.exists(os.path.join(out, nm))]
            check_run_record(out, _fingerprint(names, "tar", restart_mcus, keep_metadata), overwrite,
                             has_outputs=bool(present))
            bar = Progress(len(shards), "optimize", enabled=progress)
            try:
                for p, nm in zip(shards, names):
                    dst = os.path.join(out, nm)
                    fio.remove_quietly(dst + ".tmp")
                    if not overwrite and os.path.exists(dst):
                        tally.resumed += 1
                    else:
                        _tar_shard(p, dst, opts, threads, tally)
                    bar.update(1)
            finally:
                bar.close()
            kind = "tar"
        else:
            src = os.fspath(source)
            if os.path.isdir(src):
                rels = _walk(src)
                pairs = [(os.path.join(src, r), r) for r in rels]
                kind = "folder"
            elif os.path.isfile(src):
                pairs, rows = _listed(src)
                kind = "list"
            else:
                raise FileNotFoundError(f"{src!r} is neither a folder, a file list nor tar shards")
            rels = [r for _, r in pairs]
            check_run_record(out, _fingerprint(rels, kind, restart_mcus, keep_metadata), overwrite,
                             has_outputs=any(os.path.exists(os.path.join(out, r)) for r in rels))
            bar = Progress(len(pairs), "optimize", enabled=progress)
            try:
                _mirror(pairs, out, opts, threads, overwrite, bar, tally)
            finally:
                bar.close()
            if kind == "list":
                buf = io.StringIO()
                csv.writer(buf, lineterminator="\n").writerows(rows)
                data = buf.getvalue().encode("utf-8", "surrogateescape")
                fio.atomic_write_bytes(os.path.join(out, "files.csv"), lambda f: f.write(data))
    seconds = time.perf_counter() - t0
    change = tally.jpeg_out / tally.jpeg_in - 1 if tally.jpeg_in else 0.0
    return {"out": out, "source": kind, "files": tally.files + tally.resumed, "rewritten": tally.rewritten,
            "progressive": tally.progressive, "copied": tally.copied, "kept": tally.kept, "resumed": tally.resumed,
            "jpeg_bytes_in": tally.jpeg_in, "jpeg_bytes_out": tally.jpeg_out, "size_change": change,
            "bytes_in": tally.bytes_in, "bytes_out": tally.bytes_out,
            "intervals": dict(sorted(tally.intervals.items())), "restart_mcus": restart_mcus,
            "seconds": round(seconds, 3)}


def _listed(path):
    """A file list: [(source path, path below OUT)] and the rows of OUT/files.csv."""
    from ..data import index_for_job

    ds = index_for_job(path)
    paths = [os.fsdecode(os.path.abspath(os.fspath(p))) for p in ds.items]
    common = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    pairs, rows, seen = [], [], set()
    for p, label in zip(paths, ds.labels.tolist()):
        rel = os.path.relpath(p, common)
        if rel not in seen:
            seen.add(rel)
            pairs.append((p, rel))
        rows.append([rel, ds.classes[label] if ds.classes else label])
    return pairs, rows


def format_summary(res):
    n = res["rewritten"]
    lines = [f"{res['files']:,} files into {fio.display(res['out'])} in {res['seconds']:.1f} s: {n:,} JPEGs "
             f"rewritten ({res['progressive']:,} of them progressive, now baseline), {res['copied']:,} other files "
             f"copied, {len(res['kept']):,} JPEGs kept unchanged, {res['resumed']:,} already there"]
    if n:
        lines.append(f"rewritten JPEGs: {res['jpeg_bytes_in']:,} -> {res['jpeg_bytes_out']:,} bytes "
                     f"({res['size_change']:+.2%}); restart interval (MCUs): "
                     + ", ".join(f"{k}: {v:,} files" for k, v in res["intervals"].items()))
    for name, reason in res["kept"][:20]:
        lines.append(f"  kept unchanged: {fio.display(name)}: {reason}")
    if len(res["kept"]) > 20:
        lines.append(f"  ... and {len(res['kept']) - 20} more")
    return "\n".join(lines)


def _restart_arg(text):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of MCUs, got {text!r}") from None


def add_arguments(p):
    p.add_argument("src", help="a folder (ImageFolder or any tree), WebDataset tar shards ('train-{000000..000127}"
                               ".tar', a glob, a folder of .tar files) or a path,label file list")
    p.add_argument("out", help="output directory (created; a rerun resumes)")
    p.add_argument("--restart-mcus", type=_restart_arg, default=DEFAULT_OPTIMIZE_RESTART,
                   help="restart interval to aim for, in MCUs: auto (default: about 200 bytes of image data per "
                        "interval, every 2 MCUs on detailed photos), or a number (per image a divisor of its MCU "
                        "row near it, else one interval per row; 0: no restart markers)")
    p.add_argument("--strip-metadata", action="store_true",
                   help="drop APPn and COM segments (EXIF, ICC profile, XMP, comments); by default they are kept. "
                        "Without EXIF, apply_exif_orientation has nothing to apply")
    p.add_argument("--no-verify", action="store_true",
                   help="skip decoding each rewritten file against its original (about twice as fast)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"JPEGs with more pixels are copied unchanged (default {DEFAULT_MAX_PIXELS:,}; 0: no limit)")
    p.add_argument("--overwrite", action="store_true", help="write every file again instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args):
    status, res = run_command(
        "optimize",
        lambda: optimize(args.src, args.out, restart_mcus=args.restart_mcus, keep_metadata=not args.strip_metadata,
                         verify=not args.no_verify, threads=args.threads, progress=False if args.quiet else None,
                         overwrite=args.overwrite, max_pixels=args.max_pixels),
        "finished files are kept: free some space, then rerun the same command to resume")
    if status:
        return status
    print(format_summary(res))
    return 0
