"""Batch mixing for the Loader: MixUp, CutMix and a random choice between them, with torchvision
v2's semantics (pairs are the batch rolled by one; lambda ~ Beta(alpha, alpha) per batch; CutMix's
box drawn as torchvision's and lambda corrected by its area). The draws are keyed by (seed, epoch,
rank, batch index); the mixing runs natively, in place on the batch buffer, with the GIL released
(Note [Batch mixing] in csrc/kernels/mix.h). Targets are float32 (N, num_classes) rows summing to 1."""
import math
import numbers

import numpy as np

from .. import _core
from ._timm_mix import TimmMixup

__all__ = ["MixUp", "CutMix", "MixChoice"]


def _alpha(alpha, what):
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"{what} alpha must be a positive number, got {alpha!r}")
    return float(alpha)


class _Mix:
    batch_mix = True  # what fp.RandomChoice recognises (a list of these is the old MixChoice name)

    def __repr__(self):
        return f"{type(self).__name__}(alpha={self.alpha!r})"

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self):
        return hash(repr(self))

    def draw(self, rng, h, w):
        """(name, lam used for the targets, box or None) for one batch."""
        raise NotImplementedError


class MixUp(_Mix):
    """torchvision v2's MixUp: x = lam * x + (1 - lam) * x.roll(1, 0), lam ~ Beta(alpha, alpha)."""

    def __init__(self, alpha=1.0):
        self.alpha = _alpha(alpha, "MixUp")

    def draw(self, rng, h, w):
        return "MixUp", float(rng.beta(self.alpha, self.alpha)), None


class CutMix(_Mix):
    """torchvision v2's CutMix: a box of x.roll(1, 0) pasted into x, lam corrected by its area."""

    def __init__(self, alpha=1.0):
        self.alpha = _alpha(alpha, "CutMix")

    def draw(self, rng, h, w):
        lam = float(rng.beta(self.alpha, self.alpha))
        r_x, r_y = int(rng.integers(w)), int(rng.integers(h))
        r = 0.5 * math.sqrt(1.0 - lam)
        r_w_half, r_h_half = int(r * w), int(r * h)
        x1, y1 = max(r_x - r_w_half, 0), max(r_y - r_h_half, 0)
        x2, y2 = min(r_x + r_w_half, w), min(r_y + r_h_half, h)
        lam_adjusted = float(1.0 - (x2 - x1) * (y2 - y1) / (w * h))
        return "CutMix", lam_adjusted, (x1, y1, x2, y2)


class MixChoice:
    """One of the given mixes per batch, with probabilities p (default: uniform). (Named
    RandomChoice in fastprep 0.1: ``fp.RandomChoice([MixUp, CutMix])`` still works, with a
    FutureWarning.)"""

    def __init__(self, transforms, p=None):
        transforms = list(transforms)
        if not transforms or not all(isinstance(t, _Mix) for t in transforms):
            raise ValueError("fastprep.MixChoice takes a non-empty list of fp.MixUp / fp.CutMix (batch mixing; "
                             "for a per-sample choice of image ops use fp.RandomChoice)")
        if p is None:
            p = [1.0] * len(transforms)
        p = [float(x) for x in p]
        if len(p) != len(transforms) or any(not (x >= 0 and math.isfinite(x)) for x in p) or sum(p) <= 0:
            raise ValueError(f"MixChoice p must be {len(transforms)} non-negative weights, not all 0, got {p!r}")
        self.transforms = transforms
        self.p = [x / sum(p) for x in p]

    def __repr__(self):
        return f"MixChoice({self.transforms!r}, p={self.p!r})"

    def draw(self, rng, h, w):
        k = int(rng.choice(len(self.transforms), p=self.p))
        return self.transforms[k].draw(rng, h, w)


def check_mix(mix, num_classes, label_smoothing, dtype):
    """Validates the Loader's mix arguments; returns (mix, num_classes, label_smoothing)."""
    if mix is None:
        if num_classes is not None or label_smoothing:
            raise ValueError("num_classes= and label_smoothing= are for batch mixing: pass mix= too")
        return None, None, 0.0
    if getattr(mix, "holds_mixes", False):  # fp.RandomChoice of batch mixes: fastprep 0.1's name
        mix = MixChoice(mix.mixes, mix.p)
    if type(mix).__name__ in ("Mixup", "FastCollateMixup") and type(mix).__module__.startswith("timm."):
        mix = TimmMixup.from_timm(mix)  # timm's own object: its settings, its semantics
    if isinstance(mix, TimmMixup):  # its classes and smoothing are its own, as timm's
        if num_classes is not None and num_classes != mix.num_classes:
            raise ValueError(f"num_classes={num_classes!r} differs from the TimmMixup's {mix.num_classes}")
        if label_smoothing and label_smoothing != mix.label_smoothing:
            raise ValueError(f"label_smoothing={label_smoothing!r} differs from the TimmMixup's {mix.label_smoothing}")
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.uint8)):
            raise ValueError(f"TimmMixup mixes float32 (timm's Mixup) or uint8 (FastCollateMixup) batches; this "
                             f"transform outputs {np.dtype(dtype).name}")
        return mix, mix.num_classes, mix.label_smoothing
    if not isinstance(mix, (_Mix, MixChoice)):
        raise TypeError(f"mix must be fp.MixUp, fp.CutMix, fp.MixChoice([...]) of them or fp.TimmMixup, got {mix!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"mix= needs num_classes, a positive int (targets are one-hot rows), got {num_classes!r}")
    ls = label_smoothing
    if isinstance(ls, bool) or not isinstance(ls, numbers.Real) or not 0.0 <= ls < 1.0:
        raise ValueError(f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}")
    mixes = mix.transforms if isinstance(mix, MixChoice) else [mix]
    if any(isinstance(m, MixUp) for m in mixes) and np.dtype(dtype) != np.float32:
        raise ValueError(f"MixUp blends float32 batches (torchvision's MixUp needs float images); this transform "
                         f"outputs {np.dtype(dtype).name}: use dtype='float32' (CutMix works on any dtype)")
    return mix, int(num_classes), float(ls)


def mix_key(seed, epoch, rank, batch_index):
    return [seed & 0xFFFFFFFFFFFFFFFF, epoch, rank, batch_index, 0x6D6978]  # "mix"


def mix_batch(images, labels, mix, num_classes, label_smoothing, layout, rng):
    """Mixes ``images`` (N, ...) in place; returns (float32 targets (N, num_classes), params)."""
    if isinstance(mix, TimmMixup):
        return mix.apply(images, labels, layout, rng)
    n = images.shape[0]
    if layout == "CHW" and images.ndim == 4:
        h, w = images.shape[2], images.shape[3]
    else:
        h, w = images.shape[1], images.shape[2]
    name, lam, box = mix.draw(rng, h, w)
    if name == "MixUp":
        _core.mixup(images, lam)
    else:
        x1, y1, x2, y2 = box
        _core.cutmix(images, getattr(_core.Layout, layout), y1, y2, x1, x2)
    labels = np.asarray(labels, np.int64)
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise ValueError(f"label {bad} is outside [0, num_classes={num_classes}): mix= makes one-hot targets of "
                         "the labels")
    off = np.float32(label_smoothing / num_classes)
    on = np.float32(1.0 - label_smoothing + label_smoothing / num_classes)
    y = np.full((n, num_classes), off, np.float32)
    y[np.arange(n), labels] = on
    # torchvision's _mixup_label: label.roll(1, 0).mul_(1 - lam).add_(label.mul(lam)), in float32
    targets = np.roll(y, 1, axis=0) * np.float32(1.0 - lam) + y * np.float32(lam)
    return targets.astype(np.float32, copy=False), {"mix": name, "lam": lam, "box": box}
