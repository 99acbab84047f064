"""Colour ops on the uint8 image (the two-phase output stage for those that see the whole image:
csrc/kernels/color.h): Grayscale, RandomGrayscale, ColorJitter, RandomHSV; and the colour ops of
the uint8 op sequence (csrc/kernels/pixel_ops.h): RandomSolarize, RandomPosterize, RandomEqualize,
RandomAutocontrast, RandomInvert, RandomAdjustSharpness, RandomChannelPermutation."""
import math
import numbers

import numpy as np

from ._args import F32_MAX, ProbOp, RandomSequenceOp, SequenceOp, pix_values, prob, range2
from ._op import Op, Stage, register_op

_GRAY_BOTH = "Grayscale and RandomGrayscale cannot be combined: Grayscale already makes every sample gray"


def _flag(v, what):
    if not isinstance(v, bool):
        raise ValueError(f"{what} must be True or False, got {v!r}")
    return v


def _is_v2_class(op):
    """torchvision v2's class (tensor arithmetic), not v1's (PIL's arithmetic for PIL inputs)."""
    return type(op).__module__.startswith("torchvision.transforms.v2")


@register_op
class Grayscale(Op):
    """Luma output (ITU-R 601-2): one channel, or with ``num_output_channels=3`` three equal
    channels (torchvision's Grayscale(3)); rounded as PIL's convert('L') (v1 on PIL images), or
    with ``v2=True`` truncated from float32 weights as v2's rgb_to_grayscale on tensors."""

    stage = Stage.UINT8
    torchvision = ("Grayscale",)
    exclusive = {"RandomGrayscale": _GRAY_BOTH}
    may_precede_geometry = True
    v2 = False  # the class default: Grayscale(n) keeps the repr and pickles it had before the argument

    def __init__(self, num_output_channels=1, v2=False):
        if isinstance(num_output_channels, bool) or num_output_channels not in (1, 3):
            raise ValueError(f"Grayscale num_output_channels must be 1 or 3, got {num_output_channels!r}")
        self.num_output_channels = int(num_output_channels)
        if _flag(v2, "Grayscale v2"):
            self.v2 = True

    def compile(self, spec, ctx):
        ctx.gray = self.num_output_channels
        spec.gray_v2 = self.v2

    def check_output(self, out):
        if out.color != "GRAY":
            raise ValueError("Grayscale conflicts with color=" + out.color)

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(getattr(op, "num_output_channels", 1), _is_v2_class(op))]


@register_op
class RandomGrayscale(ProbOp):
    """With probability p, the sample becomes 3 equal luma channels (ITU-R 601-2): rounded as
    PIL's convert('L') (v1 on PIL images), or with ``v2=True`` as v2's rgb_to_grayscale on tensors."""

    stage = Stage.UINT8
    torchvision = ("RandomGrayscale",)
    exclusive = {"Grayscale": _GRAY_BOTH}
    may_precede_geometry = True
    params = ("gray",)
    default_p = 0.1
    v2 = False

    def __init__(self, p=None, v2=False):
        super().__init__(p)
        if _flag(v2, "RandomGrayscale v2"):
            self.v2 = True

    def compile(self, spec, ctx):
        spec.gray_p = self.p
        spec.gray_v2 = self.v2

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.p, _is_v2_class(op))]

    def check_output(self, out):
        if out.color == "GRAY":
            raise ValueError("RandomGrayscale needs a 3-channel output: color='GRAY' is already gray")

    def sample_params(self, rec):
        return {"gray": bool(rec["gray"])}


def _jitter_range(value, name, center=1.0, bound=(0.0, float("inf")), clip_first_on_zero=True):
    """torchvision's ColorJitter._check_input: a number v -> (center - v, center + v) (the low
    end clipped at 0), or a (lo, hi) pair within bound; None when it is the identity."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"ColorJitter {name} must be non-negative when a single number, got {value!r}")
        lo, hi = center - float(value), center + float(value)
        if clip_first_on_zero:
            lo = max(lo, 0.0)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = range2(value, "ColorJitter", name)
        if not bound[0] <= lo <= hi <= bound[1]:
            raise ValueError(f"ColorJitter {name} values should be between {bound} and lo <= hi, got {value!r}")
    else:
        raise ValueError(f"ColorJitter {name} must be a number or a pair (lo, hi), got {value!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"ColorJitter {name} must be finite, got {value!r}")
    return None if lo == hi == center else (lo, hi)


_JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


@register_op
class ColorJitter(Op):
    """Random brightness, contrast, saturation and hue in a random order per sample, with
    torchvision v2's uint8 arithmetic (Note [ColorJitter arithmetic] in csrc/kernels/color.h)."""

    stage = Stage.UINT8
    torchvision = ("ColorJitter",)
    not_after = {**{n: "ColorJitter after {prev} cannot be fused: put colour jitter before grayscale conversion"
                    for n in ("Grayscale", "RandomGrayscale")},
                 "RandomHSV": "ColorJitter after RandomHSV cannot be fused: the fused pass applies ColorJitter "
                              "first; put it before RandomHSV"}
    params = ("jitter",)

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self.brightness = _jitter_range(brightness, "brightness")
        self.contrast = _jitter_range(contrast, "contrast")
        self.saturation = _jitter_range(saturation, "saturation")
        self.hue = _jitter_range(hue, "hue", center=0.0, bound=(-0.5, 0.5), clip_first_on_zero=False)
        if self.hue is not None and not -0.5 <= self.hue[0] <= self.hue[1] <= 0.5:
            raise ValueError(f"ColorJitter hue must be in [0, 0.5] (or a range within [-0.5, 0.5]), got {hue!r}")

    def compile(self, spec, ctx):
        mask = 0
        for k, name in enumerate(_JITTER_OPS):
            rng = getattr(self, name)
            if rng is not None:
                mask |= 1 << k
                setattr(spec, f"{name}_lo", rng[0])
                setattr(spec, f"{name}_hi", rng[1])
        spec.jitter_mask = mask
        if ctx.inside is not None:  # in a RandomApply (the only container that may hold it)
            spec.jitter_group = ctx.inside[0]

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(*(None if getattr(op, n) is None else tuple(getattr(op, n)) for n in _JITTER_OPS))]

    def sample_params(self, rec):
        mask = int(rec["jitter_mask"])
        d = {"order": [int(k) for k in rec["jitter_order"]]}
        for k, name in enumerate(_JITTER_OPS):
            d[name] = float(rec["jitter_factor"][k]) if mask >> k & 1 else None
        return {"jitter": d}


@register_op
class RandomHSV(Op):
    """YOLO-style HSV jitter as current Ultralytics: gains r = U(-1, 1) * (h, s, v) per sample, hue
    shifted by r_h * 180 in OpenCV's 0..179 hue, saturation and value scaled by 1 + r_s and 1 + r_v
    (Note [RandomHSV arithmetic] in csrc/kernels/color.h)."""

    stage = Stage.UINT8
    not_after = {n: "RandomHSV after {prev} cannot be fused: put HSV jitter before grayscale conversion"
                 for n in ("Grayscale", "RandomGrayscale")}
    params = ("hsv",)

    def __init__(self, h=0.015, s=0.7, v=0.4):
        gains = []
        for name, g in (("h", h), ("s", s), ("v", v)):
            ok = not isinstance(g, bool) and isinstance(g, numbers.Real) and math.isfinite(g) and 0 <= g <= F32_MAX
            if not ok:
                raise ValueError(f"RandomHSV {name} gain must be a finite number >= 0, got {g!r}")
            gains.append(float(np.float32(g)))
        self.h, self.s, self.v = gains

    def compile(self, spec, ctx):
        spec.hsv_gain = [self.h, self.s, self.v]

    def sample_params(self, rec):
        return {"hsv": [float(x) for x in rec["hsv"]]}


# The uint8 op sequence's colour ops (csrc/kernels/pixel_ops.h), torchvision v2's arithmetic on
# uint8 tensors (Note [Augment arithmetic] in csrc/kernels/augment.h), each applied in the
# Compose's order with probability p.


@register_op
class RandomSolarize(RandomSequenceOp):
    """With probability p, inverts every level >= threshold (torchvision's RandomSolarize; the
    threshold in levels, as on uint8 images and PIL)."""

    torchvision = ("RandomSolarize",)
    code, key = "solarize", "solarize"
    params = ("solarize",)

    def __init__(self, threshold, p=0.5):
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 255:
            raise ValueError(f"RandomSolarize threshold must be a level in [0, 255], got {threshold!r}")
        self.threshold = float(threshold)
        super().__init__(p)

    def args(self):
        return [self.p, self.threshold]

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.threshold, op.p)]


@register_op
class RandomPosterize(RandomSequenceOp):
    """With probability p, keeps the top ``bits`` bits of every level (torchvision's RandomPosterize)."""

    torchvision = ("RandomPosterize",)
    code, key = "posterize", "posterize"
    params = ("posterize",)

    def __init__(self, bits, p=0.5):
        if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 0 <= bits <= 8:
            raise ValueError(f"RandomPosterize bits must be an int in [0, 8], got {bits!r}")
        self.bits = int(bits)
        super().__init__(p)

    def args(self):
        return [self.p, self.bits]

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.bits, op.p)]


@register_op
class RandomEqualize(RandomSequenceOp):
    """With probability p, equalizes each channel's histogram (torchvision's RandomEqualize: PIL's
    integer arithmetic)."""

    torchvision = ("RandomEqualize",)
    code, key = "equalize", "equalize"
    params = ("equalize",)


@register_op
class RandomAutocontrast(RandomSequenceOp):
    """With probability p, stretches each channel from its minimum to its maximum level
    (torchvision's RandomAutocontrast)."""

    torchvision = ("RandomAutocontrast",)
    code, key = "autocontrast", "autocontrast"
    params = ("autocontrast",)


@register_op
class RandomInvert(RandomSequenceOp):
    """With probability p, 255 - level (torchvision's RandomInvert)."""

    torchvision = ("RandomInvert",)
    code, key = "invert", "invert"
    params = ("invert",)


@register_op
class RandomAdjustSharpness(RandomSequenceOp):
    """With probability p, blends with torchvision's 3x3 smoothing filter by sharpness_factor (0
    blurs, 1 keeps, 2 sharpens; torchvision's RandomAdjustSharpness)."""

    torchvision = ("RandomAdjustSharpness",)
    code, key = "sharpness", "sharpness"
    params = ("sharpness",)

    def __init__(self, sharpness_factor, p=0.5):
        f = sharpness_factor
        if isinstance(f, bool) or not isinstance(f, numbers.Real) or not 0 <= f <= F32_MAX:
            raise ValueError(f"RandomAdjustSharpness sharpness_factor must be a number >= 0, got {f!r}")
        self.sharpness_factor = float(f)
        super().__init__(p)

    def args(self):
        return [self.p, self.sharpness_factor]

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.sharpness_factor, op.p)]


@register_op
class RandomChannelPermutation(SequenceOp):
    """Permutes R, G and B randomly per sample (torchvision v2's RandomChannelPermutation)."""

    torchvision = ("RandomChannelPermutation",)
    code, key = "channel_permutation", "channel_permutation"
    params = ("channel_permutation",)

    def args(self):
        return [1.0]  # p: always

    def check_output(self, out):
        if out.channels != 3 or out.color not in ("RGB", "BGR"):
            raise ValueError("RandomChannelPermutation needs an RGB or BGR output")

    def slot_params(self, rec, slot):
        return {self.key: tuple(int(v) for v in pix_values(rec, slot)[:3])}


@register_op
class ExemplarJitter(SequenceOp):
    """Exemplar-CNN's photometric jitter (Dosovitskiy et al. 2014): per sample, S and V each
    raised to a log-uniform power, scaled and offset, and the hue shifted (Note [Exemplar jitter]
    in csrc/kernels/pixel_ops.h)."""

    code, key = "exemplar_jitter", "exemplar"
    params = ("exemplar (s and v: (power, factor, add); hue: its shift)",)

    def __init__(self, power=(0.25, 4.0), factor=(0.7, 1.4), add=(-0.1, 0.1), hue=(-0.1, 0.1)):
        self.power = range2(power, "ExemplarJitter", "power")
        self.factor = range2(factor, "ExemplarJitter", "factor")
        self.add = range2(add, "ExemplarJitter", "add")
        self.hue = range2(hue, "ExemplarJitter", "hue")
        ok = (0 < self.power[0] <= self.power[1] <= F32_MAX and self.factor[0] <= self.factor[1]
              and self.add[0] <= self.add[1] and -1 <= self.hue[0] <= self.hue[1] <= 1
              and all(math.isfinite(v) for r in (self.factor, self.add) for v in r))
        if not ok:
            raise ValueError("ExemplarJitter ranges must be finite (lo, hi) pairs with 0 < power lo and the hue "
                             f"within [-1, 1], got power={power!r}, factor={factor!r}, add={add!r}, hue={hue!r}")

    def args(self):
        return [*self.power, *self.factor, *self.add, *self.hue]

    def check_output(self, out):
        if out.channels != 3 or out.color not in ("RGB", "BGR"):
            raise ValueError("ExemplarJitter needs an RGB or BGR output")

    def slot_params(self, rec, slot):
        v = [float(x) for x in pix_values(rec, slot)]
        return {self.key: {"s": tuple(v[0:3]), "v": tuple(v[3:6]), "hue": v[6]}}


@register_op
class RandomPhotometricDistort(Op):
    """SSD's photometric distortion as torchvision v2's RandomPhotometricDistort: brightness,
    contrast, saturation and hue each with probability p (contrast before or after saturation and
    hue, a coin), then a channel permutation with probability p, with ColorJitter's arithmetic."""

    stage = Stage.UINT8
    sequence = True  # its channel permutation is an entry of the op sequence
    torchvision = ("RandomPhotometricDistort",)
    not_after = ColorJitter.not_after
    exclusive = {"ColorJitter": "RandomPhotometricDistort and ColorJitter cannot be combined (one colour jitter "
                                "per Compose)"}
    params = ("photometric",)

    def __init__(self, brightness=(0.875, 1.125), contrast=(0.5, 1.5), saturation=(0.5, 1.5), hue=(-0.05, 0.05),
                 p=0.5):
        self.brightness = range2(brightness, "RandomPhotometricDistort", "brightness")
        self.contrast = range2(contrast, "RandomPhotometricDistort", "contrast")
        self.saturation = range2(saturation, "RandomPhotometricDistort", "saturation")
        self.hue = range2(hue, "RandomPhotometricDistort", "hue")
        for name in ("brightness", "contrast", "saturation"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi <= F32_MAX:
                raise ValueError(f"RandomPhotometricDistort {name} must satisfy 0 <= lo <= hi, got {(lo, hi)}")
        if not -0.5 <= self.hue[0] <= self.hue[1] <= 0.5:
            raise ValueError(f"RandomPhotometricDistort hue must be within [-0.5, 0.5], got {hue!r}")
        self.p = prob(p, "RandomPhotometricDistort")

    def compile(self, spec, ctx):
        for name in _JITTER_OPS:
            setattr(spec, f"{name}_lo", getattr(self, name)[0])
            setattr(spec, f"{name}_hi", getattr(self, name)[1])
        spec.jitter_mask, spec.jitter_p = 15, self.p
        ctx.add_px(self, "channel_permutation", [self.p])

    def check_output(self, out):
        if out.channels != 3 or out.color not in ("RGB", "BGR"):
            raise ValueError("RandomPhotometricDistort needs an RGB or BGR output")

    def slot_params(self, rec, slot):
        mask = int(rec["jitter_mask"])
        d = {name: float(rec["jitter_factor"][k]) if mask >> k & 1 else None for k, name in enumerate(_JITTER_OPS)}
        d["contrast_before"] = int(rec["jitter_order"][1]) == 1
        d["channel_permutation"] = tuple(int(v) for v in pix_values(rec, slot)[:3]) if rec["px_on"][slot] else None
        return {"photometric": d}

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(tuple(op.brightness), tuple(op.contrast), tuple(op.saturation), tuple(op.hue), op.p)]
