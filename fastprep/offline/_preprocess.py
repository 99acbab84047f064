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
import os
import time

from .. import io as fio
from .._errors import DecodeError
from ..data import index_for_job
from . import _jobs
from ._jpeg import DEFAULT_RESTART_MCUS, JPEG_INDEX_FORMAT, check_restart_mcus, preprocess_jpeg
from ._npy import preprocess_npy
from ._out import check_job, check_out_outside_source, output_folder, run_command
from ._tar_shards import TAR_INDEX_FORMAT, preprocess_tar


def preprocess(source, out, transform="eval", size=224, dtype="uint8", format="npy", layout="CHW",
               shard_size=1024, threads=None, quality=90, on_error="raise", batch_size=256, progress=None,
               interpolation="bilinear", exact=None, overwrite=False, extensions=None, apply_exif_orientation=False,
               restart_mcus=DEFAULT_RESTART_MCUS):
    """Runs the preprocessing job; returns a summary dict (see ``fastprep preprocess --help``).
    ``apply_exif_orientation``: as Compose's (off by default: images as stored, as torchvision).
    ``restart_mcus``: the JPEGs of --format jpeg and tar get restart markers about every that many
    MCUs, every MCU row starting an interval, so that a crop decodes only what it reads (0: none)."""
    check_restart_mcus(restart_mcus)
    check_job(format, quality, dtype, on_error, shard_size)
    decode = _jobs.DecodeOptions(exact, bool(apply_exif_orientation))
    t0 = time.perf_counter()
    ds = index_for_job(source, extensions=extensions, on_error=on_error)
    check_out_outside_source(source, out)
    with output_folder(out) as out:
        if format == "npy":
            return preprocess_npy(ds, t0, source, out, transform, size, dtype, layout, shard_size, threads,
                                   on_error, batch_size, progress, interpolation, decode, overwrite)
        if format == "tar":
            return preprocess_tar(ds, t0, source, out, transform, size, threads, quality, on_error, progress,
                                   interpolation, decode, overwrite, int(shard_size), restart_mcus)
        return preprocess_jpeg(ds, t0, source, out, transform, size, threads, quality, on_error, progress,
                                interpolation, decode, overwrite, restart_mcus)




def add_arguments(p):
    p.add_argument("src", help="ImageFolder directory, flat image directory, a path,label file list, or WebDataset "
                               "tar shards ('train-{000000..000127}.tar', a glob, a folder of .tar files)")
    p.add_argument("out", help="output directory (created; a rerun resumes)")
    p.add_argument("--transform", choices=_jobs.TRANSFORMS, default="eval",
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
                   help="JPEG quality 1-100 for --format jpeg and tar (default 90; 4:2:0 chroma subsampling)")
    p.add_argument("--restart-mcus", type=int, default=DEFAULT_RESTART_MCUS,
                   help=f"--format jpeg and tar: restart markers about every N MCUs, each MCU row starting an "
                        f"interval, so that a crop decodes only what it reads (default {DEFAULT_RESTART_MCUS}; 0: none)")
    p.add_argument("--on-error", choices=_jobs.POLICIES, default="raise",
                   help="undecodable files: raise (default), skip (left out, listed in index.json), "
                        "zeros (npy only: a black sample)")
    p.add_argument("--interpolation", choices=("bilinear", "bicubic", "nearest"), default="bilinear")
    _jobs.add_exact_argument(p)
    _jobs.add_exif_argument(p)
    p.add_argument("--overwrite", action="store_true", help="discard a previous run in OUT instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args):
    status, res = run_command(
        "preprocess",
        lambda: preprocess(args.src, args.out, transform=args.transform, size=args.size, dtype=args.dtype,
                           format=args.format, layout=args.layout, shard_size=args.shard_size, threads=args.threads,
                           quality=args.quality, on_error=args.on_error, batch_size=args.batch_size,
                           progress=False if args.quiet else None, interpolation=args.interpolation,
                           exact=args.exact, overwrite=args.overwrite,
                           apply_exif_orientation=args.apply_exif_orientation, restart_mcus=args.restart_mcus),
        "finished files are kept: free some space or lift the limit, then rerun the same command to resume",
        first=((DecodeError, 1, "finished shards are kept; rerun with --on-error skip to leave undecodable "
                                "files out"),))
    if status:
        return status
    print(format_summary(res))
    fio.print_failures(res["failed"], where=os.path.join(args.out, "index.json"))
    return 0


def format_summary(res):
    rate = f", {res['images_per_second']:,.0f} img/s" if res.get("images_per_second") else ""
    out = fio.display(res["out"])
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

