"""timm's training loop with fastprep's loader: the one-line swap of timm.data.create_loader.

    python examples/train_timm.py                   # tiny 4-class demo set, one short epoch on a CPU
    python examples/train_timm.py --data ~/imagenet --model resnet50 --size 224 --batch-size 256 --epochs 300

The loop follows timm's train.py: create_model, create_dataset, the loader (here
fastprep.timm.create_loader, with timm's arguments: RandAugment "rand-m9-mstd0.5-inc1",
RandomErasing 0.25, the prefetcher), Mixup/CutMix as timm's FastCollateMixup collate_fn, timm's
SoftTargetCrossEntropy, set_epoch in distributed runs, mixup switched off at --mixup-off-epoch,
one optimizer step per batch. Without --data a tiny set is made from the built-in synthetic JPEGs
(labels arbitrary). Needs torch and timm: pip install torch timm.
"""
import argparse
import os
import shutil
import tempfile
import time

import torch
from timm import create_model
from timm.data import create_dataset
from timm.data.mixup import FastCollateMixup
from timm.loss import SoftTargetCrossEntropy

from fastprep.data import sample_paths
from fastprep.timm import create_loader  # was: from timm.data import create_loader


def tiny_imagefolder(root, classes=4, per_class=8):
    """root/class_<k>/*.jpg: copies of the sample JPEGs (generated once, then cached)."""
    for i, src in enumerate(sample_paths(classes * per_class)):
        folder = os.path.join(root, f"class_{i % classes}")
        os.makedirs(folder, exist_ok=True)
        shutil.copy(src, folder)
    return root


def main(args, workdir):
    root = args.data or tiny_imagefolder(os.path.join(workdir, "tiny-imagefolder"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dataset = create_dataset("", root=root, split="train", is_training=True)
    num_classes = len(dataset.reader.class_to_idx)
    model = create_model(args.model, pretrained=False, num_classes=num_classes).to(device)
    mixup_args = dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode="batch",
                      label_smoothing=0.1, num_classes=num_classes)
    loader = create_loader(
        dataset, input_size=(3, args.size, args.size), batch_size=args.batch_size, is_training=True,
        auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.25, re_mode="pixel", re_count=1, interpolation="random",
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), num_workers=args.workers, distributed=False,
        collate_fn=FastCollateMixup(**mixup_args), use_prefetcher=True, device=device, seed=0)
    criterion = SoftTargetCrossEntropy()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    images = 0
    for epoch in range(args.epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)  # timm calls it in distributed runs; harmless otherwise
        if epoch == args.mixup_off_epoch:
            loader.mixup_enabled = False  # timm's mixup_off_epoch with the prefetcher's collate
        model.train()
        t0 = time.perf_counter()
        for step, (inputs, targets) in enumerate(loader):
            assert inputs.device.type == device.type and inputs.dtype == torch.float32
            assert targets.shape == (inputs.shape[0], num_classes)  # soft targets, rows sum to 1
            loss = criterion(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            assert torch.isfinite(loss), f"loss is {loss.item()}"
            images += inputs.shape[0]
        print(f"epoch {epoch}: loss {loss.item():.4f}, {len(loader)} batches in {time.perf_counter() - t0:.1f} s, "
              f"mixup {'on' if loader.mixup_enabled else 'off'}")
    print(f"done: {args.epochs} epoch(s), {images} images, model {args.model}, {num_classes} classes")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="timm's training loop on fastprep.timm.create_loader")
    p.add_argument("--data", help="an ImageFolder tree (default: a tiny demo set)")
    p.add_argument("--model", default="resnet10t", help="any timm model name (default resnet10t: small)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--mixup-off-epoch", type=int, default=-1, help="epoch at which Mixup/CutMix stop (timm's)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", type=int, default=64, help="training crop: 224 for ImageNet (default 64: fast on CPU)")
    p.add_argument("--workers", type=int, default=2, help="native decode threads (timm's --workers)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        main(args, tmp)
