"""ImageNet-style training with fp.Loader: augmentation, optional MixUp/CutMix, checkpoint and resume.

    python examples/train_imagenet.py                 # tiny 4-class demo set, a few seconds on a CPU
    python examples/train_imagenet.py --data ~/imagenet --size 224 --batch-size 256 --epochs 90

--data: train/ and val/ ImageFolder trees (train/<class>/<image>); without it a tiny set is made from
the built-in synthetic JPEGs, labels arbitrary (accuracy stays at chance). Needs torch, torchvision.
"""
import argparse
import os
import shutil
import tempfile

import torch
import torchvision

import fastprep as fp
from fastprep.data import sample_paths


def tiny_imagefolder(root, classes=4, train=8, val=2):
    """root/{train,val}/class_<k>/*.jpg: copies of the sample JPEGs (generated once, then cached)."""
    for i, src in enumerate(sample_paths(64)[:classes * (train + val)]):
        folder = os.path.join(root, "train" if i % (train + val) < train else "val", f"class_{i // (train + val)}")
        os.makedirs(folder, exist_ok=True)
        shutil.copy(src, folder)
    return root


def main(args, workdir):
    data = args.data or tiny_imagefolder(os.path.join(workdir, "tiny-imagefolder"))
    device = "cuda" if torch.cuda.is_available() else None  # "cuda": batches arrive on the GPU
    train_set = fp.index_source(os.path.join(data, "train"))  # indexed once; its classes size the model
    # Each recipe runs as one fused native pass per image: decode, crop/resize, flip, scale, normalize.
    train_tf = fp.Compose([fp.RandomResizedCrop(args.size), fp.RandomHorizontalFlip(), fp.ToTensor(),
                           fp.Normalize("imagenet")])
    eval_tf = fp.Compose([fp.Resize(round(args.size / 0.875)), fp.CenterCrop(args.size), fp.ToTensor(),
                          fp.Normalize("imagenet")])
    # --mix: each batch is blended natively and the targets become (N, num_classes) soft labels.
    mix = fp.MixChoice([fp.MixUp(0.8), fp.CutMix(1.0)]) if args.mix else None
    # A resumed job must build its Loader with the same arguments and seed: keep them in one place.
    train_kw = dict(batch_size=args.batch_size, shuffle=True, drop_last=True, seed=0, device=device,
                    mix=mix, num_classes=len(train_set.classes) if mix else None)
    loader = fp.Loader(train_set, train_tf, **train_kw)
    val_loader = fp.Loader(os.path.join(data, "val"), eval_tf, batch_size=args.batch_size, shuffle=False,
                           device=device)
    model = torchvision.models.resnet18(num_classes=len(train_set.classes)).to(device or "cpu")
    opt = torch.optim.SGD(model.parameters(), lr=0.1 * args.batch_size / 256,  # linear scaling: 0.1 per 256
                          momentum=0.9, weight_decay=1e-4)
    ckpt_path, ckpt_step = os.path.join(workdir, "checkpoint.pt"), max(0, len(loader) // 2 - 1)
    after_ckpt = []  # the batches right after the checkpoint, to compare with the resumed loader's

    for epoch in range(args.epochs):
        loader.set_epoch(epoch)  # shuffle order and augmentation are keyed by (seed, epoch, sample)
        model.train()
        for step, (images, targets) in enumerate(loader):
            loss = torch.nn.functional.cross_entropy(model(images), targets)  # class indices or soft targets
            opt.zero_grad()
            loss.backward()
            opt.step()
            assert torch.isfinite(loss), f"loss is {loss.item()}"
            if epoch == args.epochs - 1 and step == ckpt_step:  # loader.state_dict(): where the epoch stands
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "loader": loader.state_dict()},
                           ckpt_path)
            elif epoch == args.epochs - 1 and step > ckpt_step and len(after_ckpt) < 3:
                after_ckpt.append(images.clone())  # clone: the loader reuses its buffers
        model.eval()
        with torch.no_grad():
            hits = torch.cat([(model(x).argmax(1) == y).float() for x, y in val_loader])
        print(f"epoch {epoch}: loss {loss.item():.4f}  val accuracy {hits.mean().item():.3f}")

    # Resume as a restarted job would: fresh objects, then the checkpoint's states.
    ckpt = torch.load(ckpt_path)
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    resumed = fp.Loader(train_set, train_tf, **train_kw)
    resumed.load_state_dict(ckpt["loader"])  # its next iter() continues that epoch, batch for batch
    for expected, (images, _) in zip(after_ckpt, resumed):
        assert torch.equal(images, expected), "the resumed loader gave a different batch"
    print(f"resume ok: the {len(after_ckpt)} batches after the mid-epoch checkpoint are identical")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="ImageNet-style training with fastprep's Loader")
    p.add_argument("--data", help="folder with train/ and val/ ImageFolder trees (default: a tiny demo set)")
    p.add_argument("--workdir", help="where the checkpoint and the demo set go (default: a temporary folder)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", type=int, default=112, help="training crop: 224 for ImageNet (default 112: fast on CPU)")
    p.add_argument("--mix", action="store_true", help="MixUp or CutMix on every batch (MixChoice of the two)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        main(args, args.workdir or tmp)
