"""timm's Mixup / CutMix (timm/data/mixup.py) for the Loader's ``mix=``: the batch paired with
itself flipped (sample i with sample n - 1 - i), one lambda per batch, per pair or per element,
``prob``, ``switch_prob``, timm's CutMix boxes (``cutmix_minmax`` included, ``correct_lam``) and
label smoothing mixed over the flipped one-hot rows. A float32 batch is mixed with timm's
``Mixup`` arithmetic (float32 products, after normalisation: timm's ``mixup_fn`` without its
prefetcher); a uint8 batch with ``FastCollateMixup``'s (float32, rounded half to even: timm's
prefetcher collate). The draws come from the batch's own stream, keyed by (seed, epoch, rank,
batch), so they follow timm's distribution but are not numpy's global draws; ``params`` records
them for a replay through timm's own class."""
import math
import numbers

import numpy as np

__all__ = ["TimmMixup"]


def _nonneg(v, what):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"TimmMixup {what} must be a finite number >= 0, got {v!r}")
    return float(v)


class TimmMixup:
    """timm's ``Mixup`` (and ``FastCollateMixup``) with its arguments; ``mixup_enabled`` turns it
    off and on as timm's train loop does (``mixup_off_epoch``)."""

    batch_mix = True

    def __init__(self, mixup_alpha=1.0, cutmix_alpha=0.0, cutmix_minmax=None, prob=1.0, switch_prob=0.5,
                 mode="batch", correct_lam=True, label_smoothing=0.1, num_classes=1000):
        self.mixup_alpha = _nonneg(mixup_alpha, "mixup_alpha")
        self.cutmix_alpha = _nonneg(cutmix_alpha, "cutmix_alpha")
        if cutmix_minmax is not None:
            mm = [float(x) for x in cutmix_minmax]
            if len(mm) != 2 or not 0.0 <= mm[0] < mm[1] <= 1.0:
                raise ValueError(f"TimmMixup cutmix_minmax must be (min, max) with 0 <= min < max <= 1, "
                                 f"got {cutmix_minmax!r}")
            cutmix_minmax = tuple(mm)
            self.cutmix_alpha = 1.0  # as timm: minmax turns CutMix on
        self.cutmix_minmax = cutmix_minmax
        if self.mixup_alpha == 0.0 and self.cutmix_alpha == 0.0:
            raise ValueError("TimmMixup needs mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax")
        self.prob = _nonneg(prob, "prob")
        self.switch_prob = _nonneg(switch_prob, "switch_prob")
        if mode not in ("batch", "pair", "elem"):
            raise ValueError(f"TimmMixup mode must be 'batch', 'pair' or 'elem', got {mode!r}")
        self.mode = mode
        self.correct_lam = bool(correct_lam)
        ls = label_smoothing
        if isinstance(ls, bool) or not isinstance(ls, numbers.Real) or not 0.0 <= ls < 1.0:
            raise ValueError(f"TimmMixup label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(ls)
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
            raise ValueError(f"TimmMixup num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.mixup_enabled = True

    @classmethod
    def from_timm(cls, mixup):
        """The same settings as one of timm's ``Mixup`` / ``FastCollateMixup`` objects."""
        if getattr(mixup, "multi_label", False):
            raise ValueError("timm's multi-label Mixup is not supported")
        mode = getattr(mixup, "mode", "batch")
        if mode not in ("batch", "pair", "elem"):
            raise ValueError(f"timm's Mixup mode {mode!r} is not supported (fastprep mixes 'batch', 'pair', 'elem')")
        m = cls(mixup.mixup_alpha, mixup.cutmix_alpha if mixup.cutmix_minmax is None else 0.0, mixup.cutmix_minmax,
                mixup.mix_prob, mixup.switch_prob, mode, mixup.correct_lam, mixup.label_smoothing, mixup.num_classes)
        m.mixup_enabled = bool(mixup.mixup_enabled)
        return m

    def __repr__(self):
        return (f"TimmMixup(mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, "
                f"cutmix_minmax={self.cutmix_minmax}, prob={self.prob}, switch_prob={self.switch_prob}, "
                f"mode={self.mode!r}, correct_lam={self.correct_lam}, label_smoothing={self.label_smoothing}, "
                f"num_classes={self.num_classes})")

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self):
        return hash(repr(self))

    # -- draws (timm's _params_per_elem / _params_per_batch, rand_bbox, rand_bbox_minmax)

    def _lam_draw(self, rng, size):
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = rng.random(size) < self.switch_prob
            lam = np.where(use_cutmix, rng.beta(self.cutmix_alpha, self.cutmix_alpha, size),
                           rng.beta(self.mixup_alpha, self.mixup_alpha, size))
        elif self.mixup_alpha > 0:
            use_cutmix = np.zeros(size, bool)
            lam = rng.beta(self.mixup_alpha, self.mixup_alpha, size)
        else:
            use_cutmix = np.ones(size, bool)
            lam = rng.beta(self.cutmix_alpha, self.cutmix_alpha, size)
        return lam, use_cutmix

    def _box(self, rng, h, w, lam):
        """((yl, yh, xl, xh), lam corrected by the box's area where timm corrects it)."""
        if self.cutmix_minmax is not None:
            lo, hi = self.cutmix_minmax
            cut_h = int(rng.integers(int(h * lo), int(h * hi)))
            cut_w = int(rng.integers(int(w * lo), int(w * hi)))
            yl = int(rng.integers(0, h - cut_h + 1))
            xl = int(rng.integers(0, w - cut_w + 1))
            yh, xh = yl + cut_h, xl + cut_w
        else:
            ratio = math.sqrt(1.0 - lam)
            cut_h, cut_w = int(h * ratio), int(w * ratio)
            cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
            yl, yh = min(max(cy - cut_h // 2, 0), h), min(max(cy + (cut_h + 1) // 2, 0), h)
            xl, xh = min(max(cx - cut_w // 2, 0), w), min(max(cx + (cut_w + 1) // 2, 0), w)
        if self.correct_lam or self.cutmix_minmax is not None:
            lam = 1.0 - (yh - yl) * (xh - xl) / float(h * w)
        return (yl, yh, xl, xh), lam

    # -- the batch

    def apply(self, images, labels, layout, rng):
        """Mixes ``images`` (N, C, H, W) in place; returns (float32 targets (N, num_classes), params)."""
        if layout != "CHW" or images.ndim != 4:
            raise ValueError("TimmMixup mixes (N, C, H, W) batches, as timm's: use layout='CHW'")
        n, h, w = images.shape[0], images.shape[2], images.shape[3]
        if n % 2:
            raise ValueError(f"TimmMixup needs an even batch size, as timm's Mixup asserts (got {n}): "
                             "use an even batch_size with drop_last=True")
        u8 = images.dtype == np.uint8
        if not u8 and images.dtype != np.float32:
            raise ValueError(f"TimmMixup mixes float32 (Mixup) or uint8 (FastCollateMixup) batches, got {images.dtype}")
        labels = np.asarray(labels, np.int64)
        if n and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
            raise ValueError(f"label {bad} is outside [0, num_classes={self.num_classes})")
        params = {"mix": "TimmMixup", "mode": self.mode}
        if self.mode == "batch":
            lam_col = self._batch(images, rng, h, w, u8, params)
        else:
            lam_col = self._elems(images, rng, h, w, u8, params)
        off = self.label_smoothing / self.num_classes
        y1 = np.full((n, self.num_classes), np.float32(off), np.float32)
        y1[np.arange(n), labels] = np.float32(1.0 - self.label_smoothing + off)
        if isinstance(lam_col, float):  # mixup_target with a Python float lambda
            targets = y1 * np.float32(lam_col) + y1[::-1] * np.float32(1.0 - lam_col)
        else:  # with a float32 (N, 1) lambda tensor
            targets = y1 * lam_col + y1[::-1] * (np.float32(1.0) - lam_col)
        return targets.astype(np.float32, copy=False), params

    def _batch(self, x, rng, h, w, u8, params):
        lam, use_cutmix, drawn = 1.0, False, 1.0
        if self.mixup_enabled and rng.random() < self.prob:
            l, c = self._lam_draw(rng, 1)
            lam, use_cutmix = float(l[0]), bool(c[0])
            drawn = lam
        box = None
        if lam != 1.0:
            if use_cutmix:
                box, lam = self._box(rng, h, w, lam)
                yl, yh, xl, xh = box
                x[:, :, yl:yh, xl:xh] = x[::-1, :, yl:yh, xl:xh].copy()
            elif u8:  # FastCollateMixup: float32 products, rint, back to uint8
                f = x.astype(np.float32)
                m = f * np.float32(lam) + f[::-1] * np.float32(1.0 - lam)
                np.rint(m, out=m)
                x[...] = m.astype(np.uint8)
            else:  # Mixup._mix_batch: x.mul_(lam).add_(x.flip(0).mul_(1 - lam)) in float32
                xf = x[::-1] * np.float32(1.0 - lam)
                x *= np.float32(lam)
                x += xf
        params.update(lam_drawn=drawn, use_cutmix=use_cutmix, lam=lam, box=box)
        return lam

    def _elems(self, x, rng, h, w, u8, params):
        n = x.shape[0]
        k = n // 2 if self.mode == "pair" else n
        lam = np.ones(k, np.float32)
        use_cutmix = np.zeros(k, bool)
        if self.mixup_enabled:
            l, c = self._lam_draw(rng, k)
            apply = rng.random(k) < self.prob
            lam = np.where(apply, l.astype(np.float32), lam)
            use_cutmix = c
        drawn = lam.copy()
        orig = x.copy()
        boxes = [None] * k
        for i in range(k):
            j = n - i - 1
            li = lam[i]
            if li == 1.0:
                continue
            if use_cutmix[i]:
                box, corrected = self._box(rng, h, w, float(li))
                yl, yh, xl, xh = box
                x[i, :, yl:yh, xl:xh] = orig[j, :, yl:yh, xl:xh]
                if self.mode == "pair":
                    x[j, :, yl:yh, xl:xh] = orig[i, :, yl:yh, xl:xh]
                lam[i] = corrected
                boxes[i] = box
            else:
                one = np.float32(1.0) - li
                for a, b in ((i, j), (j, i)) if self.mode == "pair" else ((i, j),):
                    m = orig[a].astype(np.float32) * li + orig[b].astype(np.float32) * one
                    if u8:
                        np.rint(m, out=m)
                        x[a] = m.astype(np.uint8)
                    else:
                        x[a] = m
        if self.mode == "pair":
            lam = np.concatenate((lam, lam[::-1]))
        params.update(lam_drawn=[float(v) for v in drawn], use_cutmix=[bool(v) for v in use_cutmix],
                      lam=[float(v) for v in lam], boxes=boxes)
        return lam.reshape(-1, 1)
