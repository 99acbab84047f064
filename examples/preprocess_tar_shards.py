"""Preprocess a dataset once into WebDataset tar shards, measure it, then train-load from the shards.

    python examples/preprocess_tar_shards.py                        # the built-in sample JPEGs
    python examples/preprocess_tar_shards.py --src ~/imagenet/train --out /data/in1k-160 --size 160

Step 1 decodes every image once, resizes it (shorter side = --size, aspect kept) and re-encodes it
into shard-000000.tar, ... (members <key>.jpg and <key>.cls), so later epochs read small JPEGs in
large sequential files. Step 2 computes the dataset's channel mean/std, step 3 feeds them to
Normalize in a Loader over the shards. Needs only fastprep (batches are torch tensors if torch is
installed, numpy arrays otherwise).
"""
import argparse
import glob
import os
import tempfile

import fastprep as fp
from fastprep.data import sample_paths


def main(args, out):
    # The source: an ImageFolder tree, a file list, tar shards... or (path, label) pairs, as here.
    src = args.src or [(p, i % 4) for i, p in enumerate(sample_paths(max(64, args.count))[:args.count])]

    # 1. Offline resize into tar shards of --shard-size images. A rerun into the same --out resumes,
    #    keeping the shards already there (--overwrite starts over).
    res = fp.preprocess(src, out, format="tar", transform="resize", size=args.size, shard_size=args.shard_size,
                        overwrite=args.overwrite, progress=False)
    shards = sorted(glob.glob(os.path.join(out, "shard-*.tar")))
    print(f"preprocess: {res['images']} images in {res['shards']} shards ({res['written']} written, "
          f"{len(res['failed'])} failed): {', '.join(os.path.basename(s) for s in shards)}")

    # 2. Channel statistics of the shards, in [0, 1] units (the scale Normalize uses after ToTensor).
    stats = fp.compute_stats(out, transform="resize", size=args.size, progress=False)
    print(f"stats over {stats['images']} images: {stats['normalize']}")

    # 3. A training Loader over the shards: a glob, a folder of .tar files, a list of paths or a
    #    brace pattern ("shard-{000000..000003}.tar") all work. Members are read in place.
    train_tf = fp.Compose([fp.RandomResizedCrop(args.crop), fp.RandomHorizontalFlip(), fp.ToTensor(),
                           fp.Normalize(mean=stats["mean"], std=stats["std"])])
    loader = fp.Loader(os.path.join(out, "shard-*.tar"), train_tf, batch_size=args.batch_size, shuffle=True,
                       seed=0)
    # With the dataset's own statistics a normalized batch is centred near 0 with a spread near 1
    # (the random crops move it a little).
    total = 0
    for step, (images, labels) in enumerate(loader):
        total += len(images)
        print(f"batch {step}: images {tuple(images.shape)} {images.dtype}, labels {tuple(labels.shape)}, "
              f"mean {float(images.mean()):+.3f} std {float(images.std()):.3f}")
    print(f"epoch done: {total} images in {len(loader)} batches")

if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Preprocess into WebDataset tar shards, then load them")
    p.add_argument("--src", help="ImageFolder directory, file list or tar shards (default: the sample JPEGs)")
    p.add_argument("--out", help="folder for the shards (default: a temporary folder, removed at the end)")
    p.add_argument("--count", type=int, default=64, help="how many sample JPEGs to use without --src")
    p.add_argument("--size", type=int, default=160, help="shorter side of the stored images (default 160)")
    p.add_argument("--crop", type=int, default=128, help="training crop (default 128)")
    p.add_argument("--shard-size", type=int, default=16, help="images per shard (default 16; ~1000s in practice)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--overwrite", action="store_true", help="discard an earlier run in --out instead of resuming")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        main(args, args.out or os.path.join(tmp, "shards"))
