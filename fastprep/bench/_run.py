"""`fastprep bench`: fastprep against its peers on the same files, in one run.

Every pipeline reads the same encoded bytes from memory (disk is not measured), produces
float32 CHW normalised tensors of the same size, and is timed over whole passes; the figure kept
is the median pass.

Before anything is timed, every file is decoded once by every selected pipeline (fastprep in each
mode, the bare decode, each installed peer). Files that any of them cannot decode are listed on
stderr with the reason and left out of every pipeline (``--on-error skip``), or stop the run
(``--on-error raise``). A pipeline that still fails while it is timed is reported as failed, with
its error, and the others report as usual. Peers that are not installed are listed as skipped
with the pip command that adds them.
"""
import gc
import importlib
import json
import multiprocessing
import os
import re
import statistics
import sys
import time

import numpy as np

from .. import _core
from .._build import build_info
from .._errors import DecodeError
from .._util import Progress, eval_resize
from ..data import sample_paths
from ..transforms import (CenterCrop, ColorJitter, Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, Resize,
                          ToTensor)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PEERS = ("ceiling", "torchvision", "pil", "dali")
MODES = ("exact", "fast")
DEFAULT_VS = "ceiling,torchvision,pil,dali"
DEFAULT_REPEAT = 5
DEFAULT_TIMEOUT = 300
# What each peer imports, as (module, the pip package that provides it). The pip hint printed for
# a missing peer names exactly the packages that are missing.
NEEDS = {
    "torchvision": (("torch", "torch"), ("torchvision", "torchvision")),
    "pil": (("torch", "torch"), ("torchvision", "torchvision"), ("PIL", "Pillow")),
    "dali": (("nvidia.dali", "nvidia-dali-cuda120"),),
}
LABELS = {"fastprep-exact": "fastprep exact", "fastprep-fast": "fastprep fast",
          "ceiling": "libjpeg-turbo decode (ceiling)", "torchvision": "torchvision v2 (decode_jpeg)",
          "pil": "torchvision v1 (PIL)", "dali": "DALI (CPU)"}
_IMG_EXT = (".jpg", ".jpeg", ".JPG", ".JPEG")
FORMATS = ("jpeg", "png", "webp")
_LIBRARY = {"jpeg": "libjpeg-turbo", "png": "libpng", "webp": "libwebp"}
_FORMAT_LABELS = {"png": {"ceiling": "libpng decode (ceiling)", "torchvision": "torchvision v2 (decode_image)"},
                  "webp": {"ceiling": "libwebp decode (ceiling)", "torchvision": "torchvision v2 (decode_image)"}}


def _label(name, fmt="jpeg"):
    return _FORMAT_LABELS.get(fmt, {}).get(name, LABELS[name])


def reencode(datas, fmt):
    """The photos as PNG (Pillow's default compression) or WebP (quality 80), in memory: what the
    --format png/webp runs time. An unreadable photo stays as it is (the screening reports it)."""
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit(f"fastprep bench: --format {fmt} re-encodes the photos with Pillow: "
                         "pip install 'fastprep[pil]' (or pip install Pillow)") from None
    import io

    out = []
    for d in datas:
        if isinstance(d, Exception):
            out.append(d)
            continue
        try:
            with Image.open(io.BytesIO(d)) as im:
                buf = io.BytesIO()
                im.convert("RGB").save(buf, format="PNG" if fmt == "png" else "WEBP",
                                       **({} if fmt == "png" else {"quality": 80}))
            out.append(buf.getvalue())
        except Exception as e:  # Pillow raises many types
            out.append(OSError(f"cannot re-encode as {fmt}: {e}"))
    return out


def add_arguments(p):
    p.add_argument("path", nargs="?",
                   help="folder of JPEGs (*.jpg, *.jpeg, searched recursively) (default: the built-in sample set, "
                        "64 photo-like scenes generated once into ~/.cache/fastprep)")
    p.add_argument("--format", choices=FORMATS, default="jpeg",
                   help="jpeg: the files as they are; png / webp: each photo re-encoded in memory first (PNG at "
                        "Pillow's default compression, WebP at quality 80; needs Pillow), the ceiling then being "
                        "libpng's / libwebp's own full decode, and DALI skipped (default: %(default)s)")
    p.add_argument("--transform", choices=["eval", "train", "train-jitter"], default="eval",
                   help="eval: Resize(size/0.875) + CenterCrop(size); train: RandomResizedCrop(size) + "
                        "RandomHorizontalFlip; train-jitter: train + ColorJitter(0.4, 0.4, 0.4, 0.1) (fastprep "
                        "and torchvision only); all then ToTensor + Normalize (default: %(default)s)")
    p.add_argument("--threads", default="1",
                   help="comma-separated thread counts, each timed separately, e.g. 1,2; torch peers with 2+ "
                        "threads run as DataLoader(num_workers=N, persistent_workers=True) (default: %(default)s)")
    p.add_argument("--vs", default=DEFAULT_VS,
                   help="comma-separated peers to compare with, from " + ", ".join(PEERS) +
                        "; '' for fastprep alone; peers that are not installed are skipped and the pip command "
                        "that adds them is printed (default: %(default)s)")
    p.add_argument("--modes", default=",".join(MODES),
                   help="fastprep modes to time: exact (torchvision-exact, fastprep's default) and/or fast "
                        "(exact=False: DCT-domain downscaling while decoding); the speed-up column is relative to "
                        "exact (default: %(default)s)")
    p.add_argument("--exact", action="store_true", help="shorthand for --modes exact (default: off)")
    p.add_argument("--size", type=int, default=224,
                   help="output size in pixels (eval resizes to size/0.875 first) (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None,
                   help="use at most this many files, the first in sorted order, before undecodable ones are "
                        "left out (default: all files)")
    p.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                   help="timed passes per pipeline, after one warm-up pass; the median is reported "
                        "(default: %(default)s)")
    p.add_argument("--on-error", choices=["skip", "raise"], default="skip",
                   help="files that fastprep or a selected peer cannot decode: skip (list them on stderr and leave "
                        "them out of every pipeline) or raise (list them and stop, exit status 1) "
                        "(default: %(default)s)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="seconds a DataLoader batch may take before that peer is reported as failed "
                        "(default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (default: progress shown)")
    p.add_argument("--json", dest="json_out", metavar="FILE", help="also write the results as JSON (default: none)")
    p.add_argument("--plot", metavar="FILE", help="also write a PNG bar chart (default: none)")


def _progress(enabled):
    """Progress on stderr: a line per stage, then a bar redrawn on a terminal, or a line every 10 s
    when stderr is not a terminal (so that logs show the run is alive)."""
    return Progress(enabled=enabled, unit="steps", log_every=10.0)


def _files(path, limit):
    if path is None:
        files = sample_paths(64)
    else:
        if not os.path.isdir(path):
            raise SystemExit(f"fastprep bench: {path} is not a folder")
        files = []
        for root, _, names in os.walk(path):
            files += [os.path.join(root, n) for n in names if n.endswith(_IMG_EXT)]
        files.sort()
        if not files:
            raise SystemExit(f"fastprep bench: no JPEG files (*.jpg, *.jpeg) under {path}")
    return files[:limit] if limit else files


def _reason(e):
    """One line naming the error, without torchvision's C++ source-location prefix."""
    if isinstance(e, DecodeError):
        return str(e.reason)
    text = str(e).strip()
    msg = text.splitlines()[0] if text else ""
    msg = re.sub(r"^\w+, \S+\.(?:cpp|cc|h|cu):\d+, ", "", msg)
    msg = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return msg if len(msg) <= 300 else msg[:297] + "..."


class PeerError(RuntimeError):
    """A peer failed on a file while it was timed (the message names the file)."""


def missing_modules(peer):
    """[(module, pip package, why)] that `peer` needs and that do not import."""
    out = []
    for mod, pkg in NEEDS.get(peer, ()):
        try:
            importlib.import_module(mod)
        except ImportError as e:
            out.append((mod, pkg, "not installed" if isinstance(e, ModuleNotFoundError) else f"import fails: {e}"))
        except Exception as e:  # a broken install (missing shared library, ...) is not a crash of bench
            out.append((mod, pkg, f"import fails: {_reason(e)}"))
    return out


def install_hint(peer, missing):
    names = ", ".join(m for m, _, _ in missing)
    why = "; ".join(sorted({w for _, _, w in missing}))
    pkgs = []
    for _, pkg, _ in missing:
        if pkg not in pkgs:
            pkgs.append(pkg)
    cmd = "pip install " + " ".join(pkgs)
    if peer == "dali":
        cmd += " (Linux x86_64/aarch64)"
    return f"needs {names} ({why}); add it with: {cmd}"


# ---- pipelines -------------------------------------------------------------------------------

def _compose(transform, size, exact, on_error="raise"):
    if transform == "eval":
        ops = [Resize(eval_resize(size)), CenterCrop(size), ToTensor(), Normalize(MEAN, STD)]
    else:
        ops = [RandomResizedCrop(size), RandomHorizontalFlip()] + _jitter(transform, ColorJitter) \
            + [ToTensor(), Normalize(MEAN, STD)]
    return Compose(ops, exact=exact, on_error=on_error)


JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue of --transform train-jitter


def _jitter(transform, cls):
    """[cls(*JITTER)] for train-jitter (cls: fastprep's or torchvision's ColorJitter), else []."""
    return [cls(*JITTER)] if transform == "train-jitter" else []


def _fastprep(datas, transform, size, threads, exact, chunk=64):
    t = _compose(transform, size, exact)
    out = np.empty((chunk,) + t.output_shape(), np.float32)
    n = len(datas)

    def run():
        for i in range(0, n, chunk):
            part = datas[i:i + chunk]
            t.batch(part, seed=i, threads=threads, out=out[:len(part)], indices=range(i, i + len(part)),
                    on_error="raise")
    return run, None


def _ceiling_plan():
    return Compose([], exact=True)._plan


def _ceiling(datas, threads):
    plan = _ceiling_plan()
    items = _core.Items(datas)
    eng = _core.Engine(threads)
    idx = list(range(len(datas)))

    def run():
        b = _core.Batch(plan, items, idx, idx, idx, 0, 0)
        b.decode_only(eng)
        errs = b.errors()
        if errs:
            i, _, msg = errs[0]
            raise PeerError(f"sample {i}: {msg}")
    return run, None


class _SafeDataset:
    """Map-style dataset whose __getitem__ never raises: a failing sample comes back as
    (None, "file: reason"), so that a DataLoader worker never dies and the main process never
    waits for a batch that cannot come."""

    def __init__(self, datas, names, make_one):
        self.datas, self.names, self.make_one = datas, names, make_one

    def __len__(self):
        return len(self.datas)

    def __getitem__(self, i):
        try:
            return self.make_one(self.datas[i]), ""
        except Exception as e:
            return None, f"{self.names[i]}: {_reason(e)}"


def _collate(batch):
    import torch

    errors = [e for _, e in batch if e]
    if errors:
        return errors
    return torch.stack([x for x, _ in batch])


def _worker_init(_):
    import torch

    torch.set_num_threads(1)


def _torch_loop(datas, names, threads, make_one, timeout, batch=64):
    """(run, close) for make_one(bytes) -> tensor over all data: inline for 1 thread, else a
    DataLoader with `threads` persistent workers (the usual PyTorch setup)."""
    import torch

    n = len(datas)
    if threads == 1:
        torch.set_num_threads(1)

        def run():
            for i in range(0, n, batch):
                out = []
                for j in range(i, min(i + batch, n)):
                    try:
                        out.append(make_one(datas[j]))
                    except Exception as e:
                        raise PeerError(f"{names[j]}: {_reason(e)}") from None
                torch.stack(out)
        return run, None
    kw = {}
    if sys.platform.startswith("linux"):
        kw["multiprocessing_context"] = multiprocessing.get_context("fork")  # the dataset holds closures
    loader = torch.utils.data.DataLoader(_SafeDataset(datas, names, make_one), batch_size=batch, num_workers=threads,
                                         persistent_workers=True, worker_init_fn=_worker_init, collate_fn=_collate,
                                         timeout=timeout, **kw)

    def run():
        for b in loader:
            if isinstance(b, list):
                raise PeerError("; ".join(b[:3]) + (f" (+{len(b) - 3} more)" if len(b) > 3 else ""))

    def close():
        it = getattr(loader, "_iterator", None)
        if it is not None:
            try:
                it._shutdown_workers()  # joins the workers, terminating those that do not stop
            except Exception:
                pass
            loader._iterator = None
    return run, close


def _tv_decoder(any_format=False):
    """torchvision's decoder of a uint8 tensor of encoded bytes: decode_jpeg (a JPEG pipeline, as
    torchvision v2 users write it), or decode_image for the --format png/webp runs."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    fn = decode_image if any_format else decode_jpeg
    return lambda t: fn(t, mode=ImageReadMode.RGB)


def _tv_decode(any_format=False):
    import torch

    dec = _tv_decoder(any_format)
    return lambda d: dec(torch.frombuffer(bytearray(d), dtype=torch.uint8))


def _torchvision_v2(datas, names, transform, size, threads, timeout, any_format=False):
    import torch
    from torchvision.transforms import v2

    if transform == "eval":
        geo = [v2.Resize(eval_resize(size), antialias=True), v2.CenterCrop(size)]
    else:
        geo = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()] + _jitter(transform, v2.ColorJitter)
    tf = v2.Compose(geo + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    index = {id(d): t for d, t in zip(datas, tensors)}

    dec = _tv_decoder(any_format)

    def one(d):
        return tf(dec(index[id(d)]))
    return _torch_loop(datas, names, threads, one, timeout)


def _pil_decode():
    import io

    from PIL import Image

    def dec(d):
        with Image.open(io.BytesIO(d)) as im:
            return im.convert("RGB")
    return dec


def _torchvision_v1_pil(datas, names, transform, size, threads, timeout):
    from torchvision import transforms as T

    if transform == "eval":
        geo = [T.Resize(eval_resize(size)), T.CenterCrop(size)]
    else:
        geo = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()] + _jitter(transform, T.ColorJitter)
    tf = T.Compose(geo + [T.ToTensor(), T.Normalize(MEAN, STD)])
    dec = _pil_decode()

    def one(d):
        return tf(dec(d))
    return _torch_loop(datas, names, threads, one, timeout)


def _dali(datas, names, transform, size, threads, timeout, batch=64):
    if transform == "train-jitter":
        raise NotImplementedError("DALI's color_twist is not torchvision's ColorJitter (other arithmetic, fixed "
                                  "order): train-jitter compares fastprep with torchvision only")
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=batch, num_threads=threads, device_id=None)
    def pipe():
        enc = fn.external_source(name="enc", dtype=types.UINT8)
        img = fn.decoders.image(enc, device="cpu", output_type=types.RGB)
        if transform == "eval":
            img = fn.resize(img, resize_shorter=eval_resize(size), antialias=True)
            img = fn.crop_mirror_normalize(img, crop=(size, size), mean=[m * 255 for m in MEAN],
                                           std=[s * 255 for s in STD], dtype=types.FLOAT, output_layout="CHW")
        else:
            img = fn.random_resized_crop(img, size=(size, size), antialias=True)
            img = fn.crop_mirror_normalize(img, mirror=fn.random.coin_flip(), mean=[m * 255 for m in MEAN],
                                           std=[s * 255 for s in STD], dtype=types.FLOAT, output_layout="CHW")
        return img

    p = pipe()
    p.build()
    arrays = [np.frombuffer(d, np.uint8) for d in datas]

    def run():
        for i in range(0, len(arrays), batch):
            part = arrays[i:i + batch]
            if len(part) < batch:
                part = (part * batch)[:batch]
            p.feed_input("enc", part)
            p.run()
    return run, None


def _dali_decode():
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipe():
        enc = fn.external_source(name="enc", dtype=types.UINT8)
        return fn.decoders.image(enc, device="cpu", output_type=types.RGB)

    state = {}

    def dec(d):
        if "p" not in state:
            state["p"] = pipe()
            state["p"].build()
        try:
            state["p"].feed_input("enc", [np.frombuffer(d, np.uint8)])
            return state["p"].run()
        except Exception:
            state.pop("p", None)  # a pipeline that raised is rebuilt for the next file
            raise
    return dec


_PEER_BUILD = {"torchvision": _torchvision_v2, "pil": _torchvision_v1_pil, "dali": _dali}
_PEER_DECODE = {"torchvision": _tv_decode, "pil": _pil_decode, "dali": _dali_decode}
# --format png/webp: the peers whose JPEG decoder would not read the re-encoded files
_PEER_BUILD_IMAGE = {"torchvision": lambda *a: _torchvision_v2(*a, any_format=True)}
_PEER_DECODE_IMAGE = {"torchvision": lambda: _tv_decode(any_format=True)}


def _peer_table(table, image_table, fmt):
    return table if fmt == "jpeg" else {**table, **image_table}


# ---- the pre-pass ----------------------------------------------------------------------------

def _screen_fastprep(datas, good, transform, size, exact, threads, bar, label, chunk=64):
    """{index: reason} of the files fastprep cannot run, and (h, w) source sizes of the others."""
    t = _compose(transform, size, exact, on_error="zeros")
    out = np.empty((chunk,) + t.output_shape(), np.float32)
    bad, sizes = {}, {}
    for s in range(0, len(good), chunk):
        idx = good[s:s + chunk]
        try:
            _, params = t.batch([datas[i] for i in idx], seed=0, threads=threads, out=out[:len(idx)],
                                return_params=True, on_error="zeros", indices=idx)
            failed = [i for i, p in zip(idx, params) if p.get("error")]
            for i, p in zip(idx, params):
                if not p.get("error"):
                    sizes[i] = p["source_size"]
        except Exception:  # cannot happen with on_error="zeros"; then ask file by file
            failed = idx
        for i in failed:  # one call per failing file, for its reason
            try:
                t(datas[i], seed=0)
                if i not in sizes:
                    sizes[i] = None
            except Exception as e:
                bad[i] = _reason(e)
        bar.update(len(idx), desc=label)
    return bad, sizes


def _screen_ceiling(datas, good, threads, bar):
    bad = {}
    if good:
        b = _core.Batch(_ceiling_plan(), _core.Items([datas[i] for i in good]), list(range(len(good))),
                        list(range(len(good))), list(range(len(good))), 0, 0)
        b.decode_only(_core.Engine(threads))
        for j, _, msg in b.errors():
            bad[good[j]] = msg
    bar.update(len(good), desc="ceiling")
    return bad


def _screen_peer(peer, datas, good, bar, fmt="jpeg"):
    try:
        dec = _peer_table(_PEER_DECODE, _PEER_DECODE_IMAGE, fmt)[peer]()
    except Exception as e:
        return None, _reason(e)
    bad = {}
    for i in good:
        try:
            dec(datas[i])
        except Exception as e:
            bad[i] = _reason(e)
        bar.update(1, desc=peer)
    return bad, None


def screen(files, datas, transform, size, modes, peers, threads, bar, fmt="jpeg"):
    """Decodes every file once with each selected pipeline. Returns ({index: {pipeline: reason}},
    {index: (h, w)}, {peer: error} for peers whose decoder could not even be set up)."""
    bad = {}
    for i, d in enumerate(datas):
        if isinstance(d, Exception):
            bad[i] = {"read": _reason(d)}
        elif len(d) == 0:
            bad[i] = {"read": "empty file"}
    good = [i for i in range(len(datas)) if i not in bad]
    checks = [f"fastprep {m}" for m in modes] + [p for p in peers]
    bar.stage(f"fastprep bench: checking {len(good)} files with {', '.join(checks)}", len(good) * len(checks),
              unit="checks")
    sizes, broken = {}, {}
    for m in modes:
        b, s = _screen_fastprep(datas, good, transform, size, m == "exact", max(threads), bar, f"fastprep {m}")
        for i, r in b.items():
            bad.setdefault(i, {})[f"fastprep {m}"] = r
        for i, hw in s.items():
            sizes.setdefault(i, hw)
    for p in peers:
        if p == "ceiling":
            b = _screen_ceiling(datas, good, max(threads), bar)
        else:
            b, err = _screen_peer(p, datas, good, bar, fmt)
            if b is None:
                broken[p] = err
                continue
        for i, r in b.items():
            bad.setdefault(i, {})[p] = r
    return bad, sizes, broken


def _describe(reasons):
    """'fastprep exact, fastprep fast: Premature end of JPEG file; torchvision: ...'"""
    by = {}
    for who, r in reasons.items():
        by.setdefault(r, []).append(who)
    return "; ".join(f"{', '.join(w)}: {r}" for r, w in by.items())


# ---- the run ---------------------------------------------------------------------------------

def _parse_list(text, allowed, what):
    items = [v.strip() for v in str(text).split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise SystemExit(f"fastprep bench: unknown {what} {', '.join(unknown)}: choose from {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def run_bench(files, transform="eval", threads=(1,), vs=PEERS, size=224, repeat=DEFAULT_REPEAT, modes=MODES,
              on_error="skip", progress=True, timeout=DEFAULT_TIMEOUT, format="jpeg"):
    bar = progress if isinstance(progress, Progress) else _progress(bool(progress))
    vs = _parse_list(",".join(vs), PEERS, "peer(s)")
    modes = _parse_list(",".join(modes), MODES, "mode(s)")
    if not modes:
        raise SystemExit("fastprep bench: --modes needs exact and/or fast")
    threads = list(dict.fromkeys(int(t) for t in threads))
    if not threads or min(threads) < 1:
        raise SystemExit("fastprep bench: --threads needs positive thread counts")
    if repeat < 1:
        raise SystemExit("fastprep bench: --repeat must be at least 1")
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")

    if format not in FORMATS:
        raise SystemExit(f"fastprep bench: --format must be one of {', '.join(FORMATS)}, got {format!r}")
    skipped, peers = {}, []
    native = build_info()["native_formats"]
    for peer in vs:
        missing = missing_modules(peer)
        if peer == "dali" and format != "jpeg":
            skipped[peer] = f"timed on JPEG only (--format {format})"
        elif peer == "ceiling" and format not in native:
            skipped[peer] = (f"this build of fastprep has no native {format.upper()} decoder (built without its "
                             "headers): fastprep decodes these files with Pillow")
        elif missing:
            skipped[peer] = install_hint(peer, missing)
        else:
            peers.append(peer)

    datas = []
    for f in files:
        try:
            with open(f, "rb") as fh:
                datas.append(fh.read())
        except OSError as e:
            datas.append(e)
    if format != "jpeg":
        datas = reencode(datas, format)
    bad, sizes, broken = screen(files, datas, transform, size, modes, peers, threads, bar, format)
    build_peer = _peer_table(_PEER_BUILD, _PEER_BUILD_IMAGE, format)
    bar.close()
    failed = [{"pipeline": p, "threads": t, "error": f"cannot set up its decoder: {err}"}
              for p, err in broken.items() for t in threads]
    peers = [p for p in peers if p not in broken]
    excluded = [{"file": files[i], "reasons": bad[i]} for i in sorted(bad)]
    if excluded:
        verb = "stopping" if on_error == "raise" else "left out of every pipeline"
        sys.stderr.write(f"fastprep bench: {len(excluded)} of {len(files)} files cannot be decoded ({verb}):\n")
        for x in excluded:
            sys.stderr.write(f"  {x['file']}: {_describe(x['reasons'])}\n")
        sys.stderr.flush()
        if on_error == "raise":
            first = excluded[0]
            raise SystemExit(f"fastprep bench: cannot decode {first['file']}: {_describe(first['reasons'])} "
                             "(--on-error raise; --on-error skip leaves such files out)")
    keep = [i for i in range(len(files)) if i not in bad]
    if not keep:
        raise SystemExit(f"fastprep bench: none of the {len(files)} files can be decoded by every selected pipeline; "
                         "nothing to time")
    names = [files[i] for i in keep]
    datas = [datas[i] for i in keep]
    n = len(datas)
    mp = float(sum(h * w for h, w in (sizes.get(i) or (0, 0) for i in keep))) / 1e6

    # In-process runners are timed round-robin (pass 1 of each, pass 2 of each, ...) so that drift
    # in the machine's speed hits them alike. A DataLoader with persistent workers prefetches the
    # next epoch in the background as soon as one ends, which would steal CPU from whatever is
    # timed next: those peers are timed in a block of their own, then shut down.
    groups = []
    for t in threads:
        inproc, loaders = [], []
        builders = [(f"fastprep-{m}", lambda t=t, m=m: _fastprep(datas, transform, size, t, m == "exact"))
                    for m in modes]
        for peer in peers:
            if peer == "ceiling":
                builders.append((peer, lambda t=t: _ceiling(datas, t)))
            else:
                builders.append((peer, lambda t=t, peer=peer: build_peer[peer](datas, names, transform, size, t,
                                                                              timeout)))
        for name, build in builders:
            try:
                run, close = build()
            except Exception as e:  # a peer that cannot be set up must not hide the others
                failed.append({"pipeline": name, "threads": t, "error": f"setup: {_reason(e)}"})
                continue
            (inproc if close is None else loaders).append([name, t, run, close])
        groups.append(inproc)
        groups += [[x] for x in loaders]
    total = sum(len(g) for g in groups) * (repeat + 1)
    passes = f"{repeat} pass{'es' if repeat != 1 else ''}"
    bar.stage(f"fastprep bench: timing {sum(len(g) for g in groups)} pipelines on {n} files, 1 warm-up + {passes} "
              "each", total, unit="passes")
    times = {}
    group_of = {}  # (pipeline, threads) -> timing group: rows of one group were timed in the same rounds
    try:
        for gi, group in enumerate(groups):
            for name, t, _, _ in group:
                group_of[(name, t)] = gi
            broken_now = set()
            for rnd in range(repeat + 1):  # round 0 warms up (caches, worker start, lazy allocations)
                k = rnd % len(group)  # rotate the order each round: no pipeline always follows the same one
                for name, t, run, _ in group[k:] + group[:k]:
                    if (name, t) in broken_now:
                        bar.update(1, desc=f"{name} x{t}")
                        continue
                    bar.update(1, desc=f"{name} x{t}")
                    try:
                        t0 = time.perf_counter()
                        run()
                        dt = time.perf_counter() - t0
                    except Exception as e:  # a pipeline that breaks must not hide the others
                        err = str(e) if isinstance(e, PeerError) else _reason(e)
                        failed.append({"pipeline": name, "threads": t, "error": err})
                        broken_now.add((name, t))
                        times.pop((name, t), None)
                        bar.write(f"fastprep bench: {_label(name, format)} x{t} failed: {err}")
                        continue
                    if rnd:
                        times.setdefault((name, t), []).append(dt)
            _close_group(group)
    finally:
        for group in groups:
            _close_group(group)
        bar.close()

    results = []
    order = [f"fastprep-{m}" for m in modes] + peers
    for t in threads:
        for name in order:
            if (name, t) in times:
                sec = statistics.median(times[(name, t)])
                r = {"pipeline": name, "threads": t, "seconds": sec, "images_per_s": n / sec,
                     "megapixels_per_s": mp / sec}
                if name.startswith("fastprep-"):
                    r["mode"] = name.split("-", 1)[1]
                results.append(r)
    ref_name = "fastprep-exact" if "exact" in modes else f"fastprep-{modes[0]}"
    # One estimator per row (issue 28: a row printed fast at 21 img/s beside exact at 24 and "exact
    # x = 0.97x"). Rows timed in the same rounds as the reference are stated relative to it: their
    # speed-up is the median of per-round time ratios, and their img/s is the reference's median
    # img/s divided by it, so the two columns always agree. A DataLoader peer, timed in a block of
    # its own, has its own median img/s and the ratio of the medians ("block" in "estimate").
    for t in threads:
        rows = [r for r in results if r["threads"] == t]
        ref = [r for r in rows if r["pipeline"] == ref_name]
        for r in rows:
            r["estimate"] = "median"
            if ref and r is ref[0]:
                r["fastprep_speedup"] = 1.0
            if not ref or r is ref[0]:
                continue
            key, rkey = (r["pipeline"], t), (ref_name, t)
            a, b = times.get(key, []), times.get(rkey, [])
            if group_of.get(key) == group_of.get(rkey) and len(a) == len(b) and a:
                ratios = [x / y for x, y in zip(a, b)]
                r["fastprep_speedup"] = statistics.median(ratios)
                r["speedup_range"] = [min(ratios), max(ratios)]
                r["images_per_s"] = ref[0]["images_per_s"] / r["fastprep_speedup"]
                r["megapixels_per_s"] = ref[0]["megapixels_per_s"] / r["fastprep_speedup"]
                r["estimate"] = "per-round ratio to " + ref_name
            else:
                r["fastprep_speedup"] = ref[0]["images_per_s"] / r["images_per_s"]
                r["estimate"] = "block"
        ceil = [r for r in rows if r["pipeline"] == "ceiling"]
        for r in rows:
            if ceil:
                r["vs_ceiling"] = r["images_per_s"] / ceil[0]["images_per_s"]
    return {
        "transform": transform, "size": size, "format": format, "modes": modes, "speedup_reference": ref_name,
        "files": n, "files_found": len(files), "excluded": excluded, "on_error": on_error,
        "source_megapixels": mp, "threads": threads, "repeat": repeat, "results": results, "failed": failed,
        "skipped": skipped,
        "machine": machine_info(),
        "versions": library_versions(peers),
        "date": time.strftime("%Y-%m-%d"),
    }


def library_versions(peers=()):
    """fastprep's build (version, SIMD, codec libraries) and the versions of numpy and the peers'
    packages that are installed (the figures of a run depend on all of them)."""
    from importlib import metadata

    out = {"fastprep": build_info()}
    wanted = ["numpy"] + sorted({pkg for p in peers for _, pkg in NEEDS.get(p, ())})
    for pkg in wanted:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _close_group(group):
    closed = False
    for entry in group:
        if entry[3] is not None:
            try:
                entry[3]()
            except Exception:
                pass
        if entry[2] is not None or entry[3] is not None:
            closed = True
        entry[2] = entry[3] = None  # drop the runners (and a DataLoader's workers) before the next group
    if closed:
        gc.collect()


def machine_info():
    """The machine a benchmark ran on: CPU model, cores, the default SIMD level, Python."""
    import platform

    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "simd": _core.default_simd().name,
            "python": platform.python_version()}


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def format_table(rep):
    left = f" ({len(rep['excluded'])} undecodable left out, listed on stderr)" if rep.get("excluded") else ""
    fmt = rep.get("format", "jpeg")
    ref = _label(rep["speedup_reference"], fmt)
    as_ = f" as {fmt.upper()}" if fmt != "jpeg" else ""
    lines = [f"fastprep bench: {rep['files']} files{as_}{left}, transform={rep['transform']} ({rep['size']}px, "
             f"float32 CHW), median of {rep['repeat']} pass{'es' if rep['repeat'] != 1 else ''}",
             f"machine: {rep['machine']['cpu']}, {rep['machine']['cores']} cores, SIMD {rep['machine']['simd']}"
             + (f"; run {rep['date']}" if rep.get("date") else ""),
             "versions: " + _versions_line(rep.get("versions", {})),
             f"'{ref.split()[-1]} x': how many times faster {ref} is than the row (same threads): the median of "
             "per-round time ratios for rows timed in the same rounds, whose img/s is then the reference's median "
             f"img/s divided by it (one estimator per row); rows marked * were timed in a block of their own "
             f"(ratio of medians); 'of ceiling': the row's img/s / {_LIBRARY[fmt]}'s bare full decode", ""]
    hdr = f"{'pipeline':<32} {'threads':>7} {'img/s':>9} {'MP/s':>8} {ref.split()[-1] + ' x':>9} {'of ceiling':>11}"
    lines += [hdr, "-" * len(hdr)]
    for t in rep["threads"]:
        for r in rep["results"]:
            if r["threads"] != t:
                continue
            sp = f"{r['fastprep_speedup']:.2f}x" if "fastprep_speedup" in r else "n/a"
            if r.get("estimate") == "block":
                sp += "*"
            if r["pipeline"] == rep["speedup_reference"]:
                sp = "-"
            vc = f"{r['vs_ceiling']:.2f}" if "vs_ceiling" in r else "n/a"
            lines.append(f"{_label(r['pipeline'], fmt):<32} {t:>7} {r['images_per_s']:>9.0f} "
                         f"{r['megapixels_per_s']:>8.1f} {sp:>9} {vc:>11}")
        for f in rep["failed"]:
            if f["threads"] == t:
                lines.append(f"{_label(f['pipeline'], fmt):<32} {t:>7} FAILED: {f['error']}")
    for peer, why in rep["skipped"].items():
        lines.append(f"skipped {_label(peer, fmt)}: {why}")
    return "\n".join(lines)


def _versions_line(versions):
    parts = []
    b = versions.get("fastprep")
    if b:
        codecs = ", ".join(str(v) for k, v in b.get("codecs", {}).items() if v and k != "zlib")
        parts.append(f"fastprep {b.get('version')} ({codecs})")
    parts += [f"{k} {v}" for k, v in versions.items() if k != "fastprep"]
    return "; ".join(parts) or "unknown"


def _plot_title(rep):
    fmt = rep.get("format", "jpeg")
    m = rep.get("machine", {})
    return (f"fastprep bench: {rep['transform']} {rep['size']}px, {rep['files']} {fmt.upper()} files, "
            f"median of {rep['repeat']} passes\n{m.get('cpu', '?')}, {m.get('cores', '?')} cores"
            + (f", {rep['date']}" if rep.get("date") else ""))


def plot(rep, path):
    labels = [f"{_label(r['pipeline'], rep.get('format', 'jpeg'))}, {r['threads']} thread"
              f"{'s' if r['threads'] != 1 else ''}" for r in rep["results"]]
    vals = [r["images_per_s"] for r in rep["results"]]
    if not vals:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(vals) + 1.5))
        ax.barh(labels[::-1], vals[::-1], color=["#d62728" if "fastprep" in lb else "#1f77b4" for lb in labels[::-1]])
        ax.set_xlabel("images per second (higher is better)")
        ax.set_ylabel("pipeline, threads")
        ax.set_title(_plot_title(rep), fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        return
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        raise SystemExit("--plot needs matplotlib or Pillow: pip install matplotlib") from None
    from PIL import ImageFont

    try:  # a scalable font (Pillow >= 10.1): the old bitmap font has no width for spaces
        font = ImageFont.load_default(size=14)
    except TypeError:
        font = ImageFont.load_default()
    W, row, top_margin = 960, 28, 70
    img = Image.new("RGB", (W, row * len(vals) + top_margin + 40), "white")
    d = ImageDraw.Draw(img)
    d.multiline_text((10, 8), _plot_title(rep), fill="black", font=font)
    top = max(vals) or 1
    for i, (lb, v) in enumerate(zip(labels, vals)):
        y = top_margin + i * row
        d.rectangle([330, y, 330 + int((W - 440) * v / top), y + row - 8],
                    fill=(214, 39, 40) if "fastprep" in lb else (31, 119, 180))
        d.text((5, y + 2), lb, fill="black", font=font)
        d.text((335 + int((W - 440) * v / top), y + 2), f"{v:.0f}/s", fill="black", font=font)
    d.text((330, top_margin + len(vals) * row + 8), "images per second (higher is better)", fill="black", font=font)
    img.save(path)


def main(args):
    try:
        threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    except ValueError:
        raise SystemExit(f"fastprep bench: --threads takes comma-separated integers, got {args.threads!r}") from None
    modes = "exact" if args.exact else args.modes
    bar = _progress(not getattr(args, "quiet", False))
    if args.path is None:
        bar.write("fastprep bench: using the built-in sample set (generated into ~/.cache/fastprep on first use)")
    files = _files(args.path, args.limit)
    rep = run_bench(files, args.transform, threads, args.vs.split(","), args.size, args.repeat, modes.split(","),
                    on_error=args.on_error, progress=bar, timeout=args.timeout, format=args.format)
    print(format_table(rep))
    sys.stdout.flush()
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rep, f, indent=2)
    if args.plot:
        plot(rep, args.plot)
    # Peers that fail are reported and do not fail the run; fastprep failing, or nothing measured, does.
    fp_failed = any(f["pipeline"].startswith("fastprep-") for f in rep["failed"])
    return 1 if fp_failed or not rep["results"] else 0
