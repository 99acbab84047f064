"""DINO-style self-distillation with fp.MultiView: every view of an image from one decode.

    python examples/multicrop_dino.py                   # the built-in sample JPEGs, a few seconds on a CPU
    python examples/multicrop_dino.py --data ~/imagenet/train --local-crops 8 --batch-size 64 --steps 1000

The loop follows DINO's main_dino.py: a student sees every view (2 global crops at --size, the
local crops at --local-size), a teacher (an exponential moving average of the student) sees the
global crops, and the loss is the cross-entropy between the teacher's centred, sharpened output
on one global view and the student's output on every other view. The model is a tiny CNN: the
point is the data path, not the accuracy. Needs torch.
"""
import argparse
import copy

import torch
import torch.nn.functional as F

import fastprep as fp
from fastprep.data import sample_paths


def tiny_net(dim):
    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, dim))


def main(args):
    device = "cuda" if torch.cuda.is_available() else None
    # DINO's augmentation: 2 global + N local crops, its parameters, Pillow's blur (fp.MultiView.dino()).
    views = fp.MultiView.dino(global_size=args.size, local_size=args.local_size, local_crops=args.local_crops)
    source = args.data or [(p, 0) for p in sample_paths(64)]  # labels are unused by self-supervision
    loader = fp.Loader(source, views, batch_size=args.batch_size, shuffle=True, seed=0, drop_last=True,
                       device=device)
    student = tiny_net(args.dim).to(device or "cpu")
    teacher = copy.deepcopy(student).requires_grad_(False)
    center = torch.zeros(args.dim, device=device or "cpu")
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    step, epoch = 0, 0
    while step < args.steps:
        loader.set_epoch(epoch)
        for crops, _ in loader:  # crops: a list of 2 + local_crops batches, one per view
            assert len(crops) == 2 + args.local_crops
            assert crops[0].shape[-1] == args.size and crops[-1].shape[-1] == args.local_size
            s_out = [student(c) / 0.1 for c in crops]
            with torch.no_grad():
                t_out = [F.softmax((teacher(c) - center) / 0.04, dim=-1) for c in crops[:2]]
            loss, terms = 0.0, 0
            for ti, t in enumerate(t_out):
                for si, s in enumerate(s_out):
                    if si != ti:
                        loss = loss + torch.sum(-t * F.log_softmax(s, dim=-1), dim=-1).mean()
                        terms += 1
            loss = loss / terms
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():  # the teacher follows the student; the center follows the teacher
                for pt, ps in zip(teacher.parameters(), student.parameters()):
                    pt.mul_(0.996).add_(ps.detach(), alpha=0.004)
                center.mul_(0.9).add_(torch.cat([teacher(c) for c in crops[:2]]).mean(0), alpha=0.1)
            step += 1
            print(f"step {step}: loss {loss.item():.4f}")
            if step >= args.steps:
                break
        epoch += 1
    assert torch.isfinite(loss)
    st = loader.stats()
    print(f"done: {step} steps, {st['images']} images, {st['images_per_s']:.0f} images/s "
          f"({len(crops)} views each, one decode per image)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="an ImageFolder tree, a file list, or tar shards (default: the sample JPEGs)")
    ap.add_argument("--size", type=int, default=64, help="global crop size (DINO: 224)")
    ap.add_argument("--local-size", type=int, default=32, help="local crop size (DINO: 96)")
    ap.add_argument("--local-crops", type=int, default=4, help="local crops per image (DINO: 8 or 10)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--dim", type=int, default=64, help="output dimension of the heads")
    main(ap.parse_args())
