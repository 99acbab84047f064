"""Argument checks and conversions shared by the op classes (each raises ValueError naming the op
and the argument), and the base class of ops applied with a probability."""
import math
import numbers

import numpy as np

from .. import _core
from ._op import Op, Stage

F32_MAX = float(np.finfo(np.float32).max)


class InterpolationMode:
    """Names as torchvision.transforms.InterpolationMode values."""
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def interp_name(interpolation):
    name = str(getattr(interpolation, "value", interpolation)).lower()
    if name not in _core.Interp.__members__:
        raise ValueError(f"unsupported interpolation {interpolation!r}: use nearest, bilinear or bicubic")
    return name


MAX_SIDE = 2**31 - 1  # native sizes are C ints


def side(v, what, arg="size", full=None):
    """One output side: an int in [1, 2**31). Python and numpy ints pass; bool, float, str do not."""
    shown = repr(full if full is not None else v)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{what} {arg} must be a positive int or (h, w) of ints, got {shown}")
    v = int(v)
    if not 1 <= v <= MAX_SIDE:
        raise ValueError(f"{what} {arg} must be between 1 and 2**31 - 1, got {shown}")
    return v


def pair(size, what):
    if isinstance(size, (tuple, list)) and len(size) in (1, 2):
        return side(size[0], what, full=size), side(size[-1], what, full=size)
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        v = side(size, what)
        return v, v
    raise ValueError(f"{what} size must be a positive int or (h, w) of ints, got {size!r}")


def prob(p, what):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{what} p (the probability) must be a number in [0, 1], got {p!r}")
    return float(p)


def range2(v, what, arg):
    try:
        lo, hi = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {arg} must be two numbers (lo, hi), got {v!r}") from None
    return lo, hi


def tv_interp(op):
    mode = getattr(op, "interpolation", "bilinear")
    return getattr(mode, "value", mode)


def tv_antialias(op):
    a = getattr(op, "antialias", True)
    # v1 on PIL always antialiases; "warn" (older torchvision) behaves as True on PIL.
    return True if a is None or a == "warn" else bool(a)


def tv_size(size):
    if isinstance(size, (list, tuple)) and len(size) == 1:
        return size[0]
    return tuple(size) if isinstance(size, (list, tuple)) else size




class ProbOp(Op):
    """An op applied to a sample with probability ``p`` (torchvision's ``p`` argument)."""

    default_p = 0.5

    def __init__(self, p=None):
        self.p = prob(self.default_p if p is None else p, type(self).__name__)

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.p)]



class SequenceOp(Op):
    """An op of the uint8 op sequence (csrc/kernels/pixel_ops.h): applied in the Compose's order
    after the warps, policies, colour jitter and grayscale conversion, each on its own random
    stream (Note [Op sequence] in csrc/pipeline/plan.h). Subclasses set ``code`` (the PixOp
    name), ``key`` (its name in the params) and :meth:`args`."""

    stage = Stage.UINT8
    sequence = True
    code = None
    key = None

    def args(self):
        """The op's native arguments (kPixArgs at most)."""
        return [self.p]

    def compile(self, spec, ctx):
        ctx.add_px(self, self.code, self.args())

    def slot_params(self, rec, slot):
        return {self.key: bool(rec["px_on"][slot])}


def pix_values(rec, slot):
    """The values sequence op ``slot`` drew for one sample (a numpy float32 array)."""
    n = int(_core.PIX_VALS)
    return rec["px_val"][n * slot:n * slot + n]


def split_chains(ops, lengths, count):
    """AugMix's recorded ops (one flat list, chain after chain) -> the first ``count`` chains,
    chain c holding ``lengths[c]`` ops (torchvision's and timm's AugMix record alike)."""
    chains, k = [], 0
    for c in range(int(count)):
        n = int(lengths[c])
        chains.append(ops[k:k + n])
        k += n
    return chains


class RandomSequenceOp(SequenceOp, ProbOp):
    """A sequence op applied with probability ``p``."""


AFFINE_OPS = ("RandomRotation", "RandomAffine", "RandomPerspective", "ElasticTransform")
POLICY_OPS = ("RandAugment", "TrivialAugmentWide", "AutoAugment", "AugMix", "TimmRandAugment", "TimmAutoAugment", "TimmAugMix")
AFTER_COLOR = {**{n: "{name} after {prev} cannot be fused: the fused pass runs augmentation before the colour "
                      "ops; put {name} before {prev}" for n in ("ColorJitter", "RandomHSV")},
                **{n: "{name} after {prev} cannot be fused: put augmentation before grayscale conversion"
                   for n in ("Grayscale", "RandomGrayscale")}}


def aug_interp(interpolation, what):
    name = str(getattr(interpolation, "value", interpolation)).lower()
    if name not in ("nearest", "bilinear"):
        raise ValueError(f"{what} interpolation must be nearest or bilinear (torchvision's tensor warps), "
                         f"got {interpolation!r}")
    return name


def aug_fill(fill, what, allow_none):
    """None (torchvision's fill=None: zeros, no mask) or 3 levels in [0, 255]."""
    if fill is None:
        if not allow_none:
            raise ValueError(f"{what} fill must be a number or a sequence of 1 or 3 numbers, got None")
        return None
    vals = list(fill) if isinstance(fill, (tuple, list)) else [fill]
    ok = len(vals) in (1, 3) and all(not isinstance(v, bool) and isinstance(v, numbers.Real) and 0 <= v <= 255
                                     for v in vals)
    if not ok:
        raise ValueError(f"{what} fill must be a level in [0, 255] or a sequence of 1 or 3 of them, got {fill!r}")
    vals = [float(v) for v in vals]
    return vals * 3 if len(vals) == 1 else vals


def tv_fill(op):
    fill = getattr(op, "fill", None)
    if isinstance(fill, dict):  # v2 stores {type: fill}; one value for images is all fastprep needs
        vals = {repr(v) for v in fill.values()}
        if len(vals) > 1:
            raise ValueError(f"{type(op).__name__}: a per-type fill dict with different values cannot be converted")
        fill = next(iter(fill.values()), None)
    return fill


def set_warp(spec, prefix, interp, fill):
    setattr(spec, f"{prefix}_interp", getattr(_core.Interp, interp))
    setattr(spec, f"{prefix}_fill_on", fill is not None)
    setattr(spec, f"{prefix}_fill", fill if fill is not None else [0.0, 0.0, 0.0])


def degree_range(degrees, what):
    """torchvision's _setup_angle: d -> (-d, d) (d >= 0), or a (lo, hi) pair."""
    if isinstance(degrees, numbers.Real) and not isinstance(degrees, bool):
        if degrees < 0:
            raise ValueError(f"{what} degrees must be non-negative when a single number, got {degrees!r}")
        lo, hi = -float(degrees), float(degrees)
    elif isinstance(degrees, (tuple, list)) and len(degrees) == 2:
        lo, hi = range2(degrees, what, "degrees")
    else:
        raise ValueError(f"{what} degrees must be a number or a pair (lo, hi), got {degrees!r}")
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{what} degrees must be finite with lo <= hi, got {degrees!r}")
    return lo, hi
