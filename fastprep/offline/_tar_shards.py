"""`fastprep preprocess --format tar`: WebDataset shards of the re-encoded JPEGs. Three steps, as
the npy format (tar_start, write_tar_shards, tar_finish), so that Ray tasks write the shards."""
import io
import os
import time

from .. import io as fio
from .._errors import DecodeError
from .._util import Progress, default_threads
from ..io import TarIndex
from . import _jobs
from ._jpeg import DEFAULT_RESTART_MCUS, encode_all, encoder, existing_files
from ._out import check_run_record, run_fingerprint, source_path

TAR_INDEX_FORMAT = TarIndex.FORMAT


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


class TarJob:
    """The settings of a tar run that shape its files (picklable: a Ray task gets one)."""

    def __init__(self, transform, size, quality, on_error, interpolation, decode, shard_size,
                 restart_mcus=DEFAULT_RESTART_MCUS):
        self.transform, self.size, self.quality, self.on_error = transform, size, int(quality), on_error
        self.restart_mcus = int(restart_mcus)
        self.interpolation, self.decode, self.shard_size = interpolation, decode, int(shard_size)

    def encoder(self):
        return encoder(self.transform, self.size, self.interpolation, self.decode)


class TarStart:
    """What tar_start found: shard ranges and file names, sample keys, the shards already there."""

    def __init__(self, spec, shards, names, keys, done):
        self.spec, self.shards, self.names, self.keys, self.done = spec, shards, names, keys, done
        self.todo = [k for k in range(len(shards)) if k not in done]

    def pending(self):
        return sum(self.shards[k][1] - self.shards[k][0] for k in self.todo)


def tar_start(job, ds, out, overwrite):
    probe = _jobs.build_transform(job.transform, job.size, "uint8", "HWC", fixed=False,
                                     interpolation=job.interpolation, decode=job.decode)
    spec = _jobs.transform_spec(job.transform, job.size, probe)
    n = len(ds)
    shards = [(a, min(n, a + job.shard_size)) for a in range(0, n, job.shard_size)]
    names = [tar_shard_name(k) for k in range(len(shards))]
    existing = set() if overwrite else existing_files(out)
    check_run_record(out, run_fingerprint(ds, spec, "tar", job.shard_size, job.quality), overwrite,
                     has_outputs=bool(existing & set(names)))
    for r in [r for r in existing if r.endswith(".tmp")]:
        fio.remove_quietly(os.path.join(out, r))
    held = {}  # a shard of an earlier run: its member names; an unreadable one is written again
    for k, nm in enumerate(names):
        if nm in existing:
            try:
                scan = fio.scan_shard(os.path.join(out, nm))
            except DecodeError:
                continue
            if not scan["problems"]:
                held[k] = set(scan["names"])
    st = TarStart(spec, shards, names, _tar_keys(ds), set(held))
    st.held = held
    return st


def write_tar_shards(job, out, items, labels, keys, names, shards, shard_names, ks, threads, labeled, bar,
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
            fio.atomic_write_bytes(os.path.join(out, shard_names[k]), lambda f: f.write(tar))
            written[0] += len(members) // (2 if labeled else 1)

    failed = encode_all(items, names, todo, job.encoder(), threads, job.quality, job.on_error, bar,
                         lambda i, data: data, done, lambda i: os.path.join(out, shard_names[i // job.shard_size]),
                         base=base, restart_mcus=getattr(job, "restart_mcus", DEFAULT_RESTART_MCUS))
    return failed, written[0]


def tar_finish(job, out, ds, source, st, failed, written, t0):
    n = len(ds)
    failed = list(failed)
    for k in sorted(st.done):  # shards of an earlier run: what they hold was read back from them
        for i in range(*st.shards[k]):
            if st.keys[i] + ".jpg" not in st.held[k]:
                failed.append(fio.failure(i, ds.names[i], f"not in {st.names[k]} (left out by an earlier run)"))
    failed.sort(key=lambda f: f["index"])
    bad = {f["index"] for f in failed}
    ok = [i for i in range(n) if i not in bad]
    TarIndex(source=source_path(source), count=None, source_count=n, transform=st.spec, quality=job.quality,
             classes=[str(c) for c in ds.classes], class_to_idx=ds.class_to_idx, on_error=job.on_error,
             files=[f"{st.names[i // job.shard_size]}/{st.keys[i]}.jpg" for i in ok], labels=ds.labels[ok].tolist(),
             sources=[ds.names[i] for i in ok], failed=failed, shards=st.names,
             shard_size=job.shard_size).write(os.path.join(out, "index.json"))
    seconds = time.perf_counter() - t0
    return {"out": out, "format": TAR_INDEX_FORMAT, "images": len(ok), "written": written,
            "shards": len(st.shards), "shards_resumed": len(st.done), "skipped_existing": n - st.pending(),
            "failed": failed, "seconds": round(seconds, 3),
            "images_per_second": round(written / seconds, 1) if seconds > 0 and written else None}


def preprocess_tar(ds, t0, source, out, transform, size, threads, quality, on_error, progress, interpolation,
                    decode, overwrite, shard_size, restart_mcus=DEFAULT_RESTART_MCUS):
    """WebDataset shards of re-encoded JPEGs: ``OUT/shard-000000.tar`` ... hold ``<key>.jpg`` and,
    for a labeled source, ``<key>.cls``. Shard k holds items [k * shard_size, (k + 1) * shard_size)
    minus the failures, in order, so its bytes depend only on those items; it is written to .tmp
    and renamed when complete, and a rerun skips the shards already there. Three steps, as the
    npy run, so that fastprep/ray.py writes the shards in Ray tasks through the same code."""
    job = TarJob(transform, size, quality, on_error, interpolation, decode, shard_size, restart_mcus)
    st = tar_start(job, ds, out, overwrite)
    n = len(ds)
    bar = Progress(n, "preprocess", enabled=progress, initial=n - st.pending())
    try:
        failed, written = write_tar_shards(job, out, ds.items, ds.labels, st.keys, ds.names, st.shards, st.names,
                                            st.todo, threads or default_threads(), ds.labeled, bar)
    finally:
        bar.close()
    return tar_finish(job, out, ds, source, st, failed, written, t0)


