"""Offline preprocessing and dataset statistics as Ray tasks (fastprep.ray.preprocess and .stats).

    python examples/ray_preprocess.py                        # a local 2-CPU Ray cluster, the sample JPEGs
    python examples/ray_preprocess.py --address auto --src /shared/imagenet/train --out /shared/in1k-npy

Each output shard is one Ray task (--task-cpus native threads each); this process holds the output
folder's lock and writes index.json, so the result is exactly what `fastprep preprocess` writes. On a
real cluster --src and --out must be on storage every node sees at the same path.
Needs Ray: pip install 'fastprep[ray]'
"""
import argparse
import os
import sys
import tempfile

try:
    import ray
except ImportError:
    print("this example needs Ray: pip install 'fastprep[ray]'", file=sys.stderr)
    sys.exit(2)

import fastprep as fp
import fastprep.ray as fpr
from fastprep.data import sample_paths


def main(args, out):
    # The source: an ImageFolder tree, a file list, tar shards... or (path, label) pairs, as here.
    src = args.src or [(p, i % 4) for i, p in enumerate(sample_paths(max(64, args.count))[:args.count])]
    if args.address:  # join a running cluster ("auto": the one this machine belongs to)
        ray.init(address=args.address)
    else:  # start a private local cluster
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)

    # 1. Resize + center-crop every image once into npy shards: uint8 (n, 3, size, size) arrays
    #    that train loaders memory-map without decoding anything. A rerun resumes.
    res = fpr.preprocess(src, out, format="npy", transform="eval", size=args.size, shard_size=args.shard_size,
                         num_cpus=args.task_cpus, progress=False)
    print(f"ray preprocess: {res['images']} images in {res['shards']} npy shards, samples "
          f"{tuple(res['shape'])} {res['dtype']}, {len(res['failed'])} failed")

    # 2. Channel mean/std as Ray tasks over --chunk-size files each. The tasks sum exact integer
    #    moments, so the merged result equals the single-process compute_stats to the last digit.
    stats = fpr.stats(src, transform="eval", size=args.size, num_cpus=args.task_cpus,
                      chunk_size=args.chunk_size, progress=False)
    local = fp.compute_stats(src, transform="eval", size=args.size, progress=False)
    assert (stats["mean"], stats["std"]) == (local["mean"], local["std"]), "Ray stats differ from compute_stats"
    print(f"ray stats over {stats['images']} images (identical to compute_stats): {stats['normalize']}")
    ray.shutdown()

    # 3. Read the shards back: a Loader over a preprocessed folder takes no transform (the samples
    #    are already decoded); normalize on the GPU instead, with the statistics above.
    loader = fp.Loader(out, batch_size=args.batch_size, shuffle=True, seed=0)
    for step, (images, labels) in enumerate(loader):
        print(f"batch {step}: images {tuple(images.shape)} {images.dtype}, labels {labels.tolist()}")
    print(f"read back {len(loader.dataset)} samples in {len(loader)} batches")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="fastprep preprocess and stats as Ray tasks")
    p.add_argument("--src", help="ImageFolder directory, file list or tar shards (default: the sample JPEGs)")
    p.add_argument("--out", help="folder for the npy shards (default: a temporary folder, removed at the end)")
    p.add_argument("--address", help="address of a running Ray cluster (default: start a local one)")
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local cluster (default 2)")
    p.add_argument("--task-cpus", type=int, default=1, help="CPUs (native threads) per task (default 1)")
    p.add_argument("--count", type=int, default=64, help="how many sample JPEGs to use without --src")
    p.add_argument("--size", type=int, default=128, help="output size (default 128)")
    p.add_argument("--shard-size", type=int, default=16, help="images per shard (default 16; ~1000s in practice)")
    p.add_argument("--chunk-size", type=int, default=16, help="files per stats task (default 16)")
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        main(args, args.out or os.path.join(tmp, "npy"))
