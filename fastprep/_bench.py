"""`fastprep bench`: fastprep against its peers on the same files, in one run.

Every pipeline reads the same encoded bytes from memory (disk is not measured), produces
float32 CHW normalised tensors of the same size, and is timed over whole passes; the figure kept
is the median pass. Peers that are not installed are listed as skipped with the pip command.
"""
import json
import os
import statistics
import sys
import time

import numpy as np

from . import _core
from ._transforms import CenterCrop, Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, Resize, ToTensor

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PEERS = ("ceiling", "torchvision", "pil", "dali")
INSTALL = {
    "torchvision": "pip install torch torchvision",
    "pil": "pip install torch torchvision Pillow",
    "dali": "pip install nvidia-dali-cuda120 (see NVIDIA DALI install docs)",
}
_IMG_EXT = (".jpg", ".jpeg", ".JPG", ".JPEG")


def add_arguments(p):
    p.add_argument("path", nargs="?", help="folder of JPEGs (searched recursively); default: built-in samples")
    p.add_argument("--transform", choices=["eval", "train"], default="eval")
    p.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    p.add_argument("--vs", default="ceiling,torchvision,pil,dali", help="peers: " + ",".join(PEERS))
    p.add_argument("--size", type=int, default=224, help="output size (eval resizes to size/0.875 first)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many files")
    p.add_argument("--repeat", type=int, default=5, help="timed passes per pipeline (median is reported)")
    p.add_argument("--exact", action="store_true", help="benchmark fastprep's torchvision-exact mode")
    p.add_argument("--json", dest="json_out", help="write results as JSON")
    p.add_argument("--plot", help="write a PNG bar chart")


class _Progress:
    def __init__(self, total, enabled):
        self.total, self.done, self.enabled = total, 0, enabled
        self.t0 = time.perf_counter()

    def step(self, label):
        self.done += 1
        if not self.enabled:
            return
        frac = self.done / max(self.total, 1)
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        el = time.perf_counter() - self.t0
        eta = el / frac - el if frac > 0 else 0
        sys.stderr.write(f"\r[{bar}] {self.done}/{self.total} {label:<28.28} ETA {eta:4.0f}s")
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()


def _files(path, limit):
    if path is None:
        from ._samples import sample_paths

        files = sample_paths(64)
    else:
        files = []
        for root, _, names in os.walk(path):
            files += [os.path.join(root, n) for n in names if n.endswith(_IMG_EXT)]
        files.sort()
        if not files:
            raise SystemExit(f"no JPEG files under {path}")
    return files[:limit] if limit else files


def _megapixels(datas):
    """Source megapixels per image (from the JPEG headers, through the native decoder)."""
    c = Compose([])
    items = _core.Items(datas)
    b = _core.Batch(c._plan, items, list(range(len(datas))), [0] * len(datas), [0] * len(datas), 0, 0)
    b.probe(_core.Engine(1))
    p = b.params()
    return p[:, 5] * p[:, 6] / 1e6


# ---- pipelines -------------------------------------------------------------------------------

def _fastprep(datas, transform, size, threads, exact, chunk=64):
    if transform == "eval":
        ops = [Resize(int(size / 0.875)), CenterCrop(size), ToTensor(), Normalize(MEAN, STD)]
    else:
        ops = [RandomResizedCrop(size), RandomHorizontalFlip(), ToTensor(), Normalize(MEAN, STD)]
    t = Compose(ops, exact=exact)
    out = np.empty((chunk,) + t.output_shape(), np.float32)
    n = len(datas)

    def run():
        for i in range(0, n, chunk):
            part = datas[i:i + chunk]
            t.batch(part, seed=i, threads=threads, out=out[:len(part)], indices=range(i, i + len(part)))
    return run


def _ceiling(datas, threads):
    c = Compose([])
    items = _core.Items(datas)
    eng = _core.Engine(threads)
    idx = list(range(len(datas)))

    def run():
        b = _core.Batch(c._plan, items, idx, idx, idx, 0, 0)
        b.decode_only(eng)
    return run


def _torch_loop(datas, threads, make_one, batch=64):
    """Runs make_one(bytes) -> tensor over all data: inline for 1 thread, else a DataLoader with
    `threads` persistent workers (the usual PyTorch setup)."""
    import torch

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(datas)

        def __getitem__(self, i):
            return make_one(datas[i])

    if threads == 1:
        torch.set_num_threads(1)

        def run():
            for i in range(0, len(datas), batch):
                torch.stack([make_one(d) for d in datas[i:i + batch]])
        return run, None
    loader = torch.utils.data.DataLoader(DS(), batch_size=batch, num_workers=threads, persistent_workers=True,
                                         worker_init_fn=lambda _: torch.set_num_threads(1))

    def run():
        for _ in loader:
            pass
    return run, loader


def _torchvision_v2(datas, transform, size, threads):
    import torch
    from torchvision.io import decode_jpeg, ImageReadMode
    from torchvision.transforms import v2

    if transform == "eval":
        geo = [v2.Resize(int(size / 0.875), antialias=True), v2.CenterCrop(size)]
    else:
        geo = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
    tf = v2.Compose(geo + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    index = {id(d): t for d, t in zip(datas, tensors)}

    def one(d):
        return tf(decode_jpeg(index[id(d)], mode=ImageReadMode.RGB))
    return _torch_loop(datas, threads, one)


def _torchvision_v1_pil(datas, transform, size, threads):
    import io

    from PIL import Image
    from torchvision import transforms as T

    if transform == "eval":
        geo = [T.Resize(int(size / 0.875)), T.CenterCrop(size)]
    else:
        geo = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
    tf = T.Compose(geo + [T.ToTensor(), T.Normalize(MEAN, STD)])

    def one(d):
        with Image.open(io.BytesIO(d)) as im:
            return tf(im.convert("RGB"))
    return _torch_loop(datas, threads, one)


def _dali(datas, transform, size, threads, batch=64):
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=batch, num_threads=threads, device_id=None)
    def pipe():
        enc = fn.external_source(name="enc", dtype=types.UINT8)
        img = fn.decoders.image(enc, device="cpu", output_type=types.RGB)
        if transform == "eval":
            img = fn.resize(img, resize_shorter=int(size / 0.875), antialias=True)
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
                part = part + part[: batch - len(part)]
            p.feed_input("enc", part)
            p.run()
    return run, None


def _peer_runner(name, datas, transform, size, threads):
    """(run, resource) for a peer, or raises ImportError when it is not installed."""
    if name == "torchvision":
        import torchvision  # noqa: F401

        return _torchvision_v2(datas, transform, size, threads)
    if name == "pil":
        import PIL  # noqa: F401
        import torchvision  # noqa: F401

        return _torchvision_v1_pil(datas, transform, size, threads)
    if name == "dali":
        import nvidia.dali  # noqa: F401

        return _dali(datas, transform, size, threads)
    raise ValueError(name)


LABELS = {"fastprep": "fastprep", "ceiling": "libjpeg-turbo decode (ceiling)",
          "torchvision": "torchvision v2 (decode_jpeg)", "pil": "torchvision v1 (PIL)", "dali": "DALI (CPU)"}


def run_bench(files, transform="eval", threads=(1,), vs=PEERS, size=224, repeat=5, exact=False, progress=True):
    datas = [open(f, "rb").read() for f in files]
    mp = float(np.sum(_megapixels(datas)))
    n = len(datas)
    vs = [v for v in vs if v]
    unknown = [v for v in vs if v not in PEERS]
    if unknown:
        raise SystemExit(f"unknown peer(s) {unknown}: choose from {', '.join(PEERS)}")
    results, skipped = [], {}
    # In-process runners are timed round-robin (pass 1 of each, pass 2 of each, ...) so that drift
    # in the machine's speed hits them alike. A DataLoader with persistent workers prefetches the
    # next epoch in the background as soon as one ends, which would steal CPU from whatever is
    # timed next: those peers are timed in a block of their own, then shut down.
    groups = []
    for t in threads:
        inproc = [("fastprep", t, _fastprep(datas, transform, size, t, exact), None)]
        for peer in vs:
            if peer == "ceiling":
                inproc.append(("ceiling", t, _ceiling(datas, t), None))
                continue
            try:
                run, res = _peer_runner(peer, datas, transform, size, t)
            except ImportError:
                skipped[peer] = INSTALL[peer]
                continue
            if res is None:
                inproc.append((peer, t, run, None))
            else:
                groups.append([(peer, t, run, res)])
        groups.insert(len(groups) - sum(1 for g in groups if g[0][1] == t), inproc)
    total = sum(len(g) for g in groups) * (repeat + 1)
    bar = _Progress(total, progress and sys.stderr.isatty())
    times = {}
    for group in groups:
        broken = set()
        for rnd in range(repeat + 1):  # round 0 warms up (caches, worker start, lazy allocations)
            for name, t, run, _ in group:
                if (name, t) in broken:
                    continue
                bar.step(f"{name} x{t}")
                try:
                    t0 = time.perf_counter()
                    run()
                    dt = time.perf_counter() - t0
                except Exception as e:  # a peer that breaks must not hide the others
                    skipped[name] = f"failed: {type(e).__name__}: {e}"
                    broken.add((name, t))
                    continue
                if rnd:
                    times.setdefault((name, t), []).append(dt)
        for i, (name, t, run, res) in enumerate(group):
            group[i] = (name, t, None, None)  # shut DataLoader workers down before the next group
        del run, res
    bar.close()
    for t in threads:
        for group in groups:
            for name, tt, _, _ in group:
                if tt == t and (name, t) in times:
                    results.append({"pipeline": name, "threads": t, "seconds": statistics.median(times[(name, t)])})
    for r in results:
        r["images_per_s"] = n / r["seconds"]
        r["megapixels_per_s"] = mp / r["seconds"]
    for t in threads:
        fp_r = next(r for r in results if r["pipeline"] == "fastprep" and r["threads"] == t)
        for r in results:
            if r["threads"] == t:
                r["fastprep_speedup"] = fp_r["images_per_s"] / r["images_per_s"]
        ceil = [r for r in results if r["pipeline"] == "ceiling" and r["threads"] == t]
        if ceil:
            for r in results:
                if r["threads"] == t:
                    r["vs_ceiling"] = r["images_per_s"] / ceil[0]["images_per_s"]
    import platform

    return {
        "transform": transform, "size": size, "exact": exact, "files": n, "source_megapixels": mp,
        "threads": list(threads), "repeat": repeat, "results": results, "skipped": skipped,
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "simd": _core.default_simd(),
                    "python": platform.python_version()},
    }


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
    lines = [f"fastprep bench: {rep['files']} files, transform={rep['transform']} ({rep['size']}px, float32 CHW), "
             f"{'exact' if rep['exact'] else 'fast'} mode, median of {rep['repeat']} passes",
             f"machine: {rep['machine']['cpu']}, {rep['machine']['cores']} cores, SIMD {rep['machine']['simd']}", ""]
    hdr = f"{'pipeline':<32} {'threads':>7} {'img/s':>9} {'MP/s':>8} {'fastprep x':>11} {'of ceiling':>11}"
    lines += [hdr, "-" * len(hdr)]
    for r in rep["results"]:
        sp = f"{r['fastprep_speedup']:.2f}x" if r["pipeline"] != "fastprep" else "-"
        vc = f"{r['vs_ceiling']:.2f}" if "vs_ceiling" in r else "n/a"
        lines.append(f"{LABELS[r['pipeline']]:<32} {r['threads']:>7} {r['images_per_s']:>9.0f} "
                     f"{r['megapixels_per_s']:>8.1f} {sp:>11} {vc:>11}")
    for peer, why in rep["skipped"].items():
        lines.append(f"skipped {peer}: {why}")
    return "\n".join(lines)


def plot(rep, path):
    labels = [f"{LABELS[r['pipeline']]} x{r['threads']}" for r in rep["results"]]
    vals = [r["images_per_s"] for r in rep["results"]]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(vals) + 1.5))
        ax.barh(labels[::-1], vals[::-1], color=["#d62728" if "fastprep" in lb else "#1f77b4" for lb in labels[::-1]])
        ax.set_xlabel("images / s")
        ax.set_title(f"{rep['transform']} transform, {rep['files']} files")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        return
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        raise SystemExit("--plot needs matplotlib or Pillow: pip install matplotlib") from None
    W, row = 900, 28
    img = Image.new("RGB", (W, row * len(vals) + 40), "white")
    d = ImageDraw.Draw(img)
    top = max(vals) or 1
    for i, (lb, v) in enumerate(zip(labels, vals)):
        y = 20 + i * row
        d.rectangle([330, y, 330 + int((W - 420) * v / top), y + row - 8],
                    fill=(214, 39, 40) if "fastprep" in lb else (31, 119, 180))
        d.text((5, y + 4), lb, fill="black")
        d.text((335 + int((W - 420) * v / top), y + 4), f"{v:.0f}/s", fill="black")
    img.save(path)


def main(args):
    files = _files(args.path, args.limit)
    threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    rep = run_bench(files, args.transform, threads, [v.strip() for v in args.vs.split(",")], args.size, args.repeat,
                    args.exact)
    print(format_table(rep))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rep, f, indent=2)
    if args.plot:
        plot(rep, args.plot)
    return 0
