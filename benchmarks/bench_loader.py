"""Loader throughput against torch DataLoader + torchvision v2, thread scaling, memory over
epochs, and time to the first batch of a 100,000-file ImageFolder.

    python benchmarks/bench_loader.py corpus/imagenet_like [--epochs 6] [--json out.json]

Conditions (issue #3): train transform (RandomResizedCrop 224 + flip + Normalize, float32),
files read from disk each epoch (page cache warm), batch 64. The epochs of fp.Loader(threads=1),
fp.Loader(threads=2) and DataLoader(num_workers=2) + torchvision v2 are interleaved; after a warm-up
epoch, the speed-up and the thread scaling are medians of per-epoch ratios.
"""
import argparse
import glob
import json
import os
import statistics
import tempfile
import time


import fastprep as fp
from fastprep.bench import library_versions

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def loaders_interleaved(files, epochs, batch, with_torch):
    """fp.Loader with 1 and with 2 threads and, when torch is there, DataLoader(num_workers=2) +
    torchvision v2, their epochs interleaved (fp 1, fp 2, torch, fp 1, ...) so that the machine's
    drift hits all of them alike. Returns per-epoch rates of each, RSS after each epoch of the
    2-thread loader, and its stats."""
    t = fp.Compose([fp.RandomResizedCrop(224), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize(MEAN, STD)])
    runs = {th: fp.Loader(files, t, batch_size=batch, threads=th, shuffle=True, seed=0) for th in (1, 2)}
    if with_torch:
        runs["torch"] = torch_loader(files, 2, batch)
    rates = {k: [] for k in runs}
    rss = []
    for ep in range(epochs):
        for k, L in runs.items():
            if k != "torch":
                L.set_epoch(ep)
            t0 = time.perf_counter()
            n = 0
            for x, y in L:
                n += len(x)
            rates[k].append(n / (time.perf_counter() - t0))
            if k == 2:
                rss.append(rss_mb())
    return rates, rss, runs[2].stats()


def tv_v2_train_dataset(items):
    """A torch Dataset of (path, label) items through torchvision v2's train recipe (decode_jpeg,
    RandomResizedCrop 224, flip, ToDtype, Normalize): the peer of fastprep's train transform."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
    from torchvision.transforms import v2

    tf = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(),
                     v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(items)

        def __getitem__(self, i):
            path, label = items[i]
            return tf(decode_jpeg(read_file(path), mode=ImageReadMode.RGB)), label

    return DS()


def torch_loader(files, workers, batch):
    import torch

    return torch.utils.data.DataLoader(tv_v2_train_dataset([(f, 0) for f in files]), batch_size=batch, shuffle=True,
                                       num_workers=workers, persistent_workers=workers > 0,
                                       worker_init_fn=lambda _: torch.set_num_threads(1))


def first_batch_100k(files, n=100_000, classes=100):
    """Builds an ImageFolder of n hard links to the corpus files (real directory entries, like a
    real dataset: no stat needed to tell files from folders) and times Loader() + first batch.
    torch is imported beforehand, as in a training script."""
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(files[0]))) as root:
        per = n // classes
        for c in range(classes):
            d = os.path.join(root, f"class_{c:03d}")
            os.mkdir(d)
            for i in range(per):
                os.link(files[(c * per + i) % len(files)], os.path.join(d, f"{i:05d}.jpg"))
        t = fp.Compose([fp.RandomResizedCrop(224), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize(MEAN, STD)])
        t0 = time.perf_counter()
        L = fp.Loader(root, t, batch_size=256, shuffle=True, threads=2)
        t1 = time.perf_counter()
        it = iter(L)
        next(it)
        t2 = time.perf_counter()
        it.close()
        return {"files": len(L.dataset), "index_s": t1 - t0, "first_batch_s": t2 - t0}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("corpus")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat-files", type=int, default=3, help="list the corpus this many times per epoch")
    ap.add_argument("--json")
    ap.add_argument("--skip-100k", action="store_true")
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.corpus, "**", "*.jp*g"), recursive=True)) * a.repeat_files
    rep = {"files_per_epoch": len(files), "epochs": a.epochs, "batch": a.batch, "date": time.strftime("%Y-%m-%d"),
           "cores": os.cpu_count(), "versions": library_versions(("torchvision",))}
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
        with_torch = True
    except ImportError as e:
        with_torch = False
        rep["torch_dataloader_2workers_tv2"] = f"skipped: {e} (pip install torch torchvision)"
    rates, rss, stats = loaders_interleaved(files, a.epochs, a.batch, with_torch)
    r1, r2 = rates[1], rates[2]
    rep["fastprep_threads1_per_epoch"] = [round(x) for x in r1]
    rep["fastprep_threads2_per_epoch"] = [round(x) for x in r2]
    rep["fastprep_threads1"] = statistics.median(r1[1:])
    rep["fastprep_threads2"] = statistics.median(r2[1:])
    # the first epoch warms the page cache and the pools: medians over the others, ratios per epoch
    rep["thread_scaling"] = statistics.median([b / a for a, b in zip(r1[1:], r2[1:])])
    rep["rss_mb_after_each_epoch"] = [round(x, 1) for x in rss]
    later = rss[1:]
    rep["rss_spread_after_first"] = (max(later) - min(later)) / min(later)
    rep["loader_stats"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in stats.items()}
    if with_torch:
        tr = rates["torch"]
        rep["torch_dataloader_2workers_tv2_per_epoch"] = [round(x) for x in tr]
        rep["torch_dataloader_2workers_tv2"] = statistics.median(tr[1:])
        rep["speedup_vs_torch"] = statistics.median([b / a for a, b in zip(tr[1:], r2[1:])])
    if not a.skip_100k:
        rep["imagefolder_100k"] = first_batch_100k(sorted(set(files)))
    print(json.dumps(rep, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rep, f, indent=2)


if __name__ == "__main__":
    main()
