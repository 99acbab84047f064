"""The op registry: every fastprep op is one class here (or registered from outside with
:func:`register_op`), and everything about it lives on that class:

- ``stage``: where it runs in the fused pass (:class:`Stage`); the op-order rules derive from it;
- ``not_after`` / ``exclusive``: ops it cannot follow, or coexist with, and the message why;
- ``torchvision``: the torchvision class names it converts from, and :meth:`Op.from_torchvision`;
- :meth:`Op.compile`: the native plan fields it sets (``_core.PlanSpec``; a misspelled field is
  an AttributeError, Note [Plan fields] in csrc/plan.h);
- :meth:`Op.sample_params`: its per-sample draws, by name, from the native per-sample record.

``Compose`` validation, ``from_torchvision``, the op-order error messages and the README's op
table (:func:`op_table`) all come from here. The random draws themselves happen natively, in
``plan_sample()`` (csrc/plan.cpp), each op on its own stream (Note [Random streams]).
"""
import enum
import math
import numbers

import numpy as np

from . import _core

__all__ = [
    "Stage", "Op", "register_op", "registered_ops", "op_table", "Resize", "CenterCrop", "RandomResizedCrop",
    "RandomHorizontalFlip", "RandomVerticalFlip", "Grayscale", "RandomGrayscale", "ColorJitter", "ToTensor", "Normalize",
    "Lighting", "RandomErasing", "RandomHSV", "RandomRotation", "RandomAffine", "RandAugment", "TrivialAugmentWide",
    "AutoAugment",
    "InterpolationMode", "PRESETS",
]


class Stage(enum.IntEnum):
    """Where an op runs in the fused pass, in order. Ops of a later stage cannot precede ops of
    an earlier one; within UINT8, flips and colour ops commute and may come in any order."""
    GEOMETRY = 0   # decode, resize and crop: fused into the region decode and the resampler
    UINT8 = 1      # flips and colour on the uint8 image (per sample)
    TENSOR = 2     # ToTensor: levels to float in [0, 1]
    NORMALIZE = 3  # the output table: (x - mean) / std, per channel or per image
    FLOAT = 4      # on the normalised float output (e.g. erasing)


_STAGE_WORDS = {
    Stage.GEOMETRY: "decode/geometry (fused into the resampler)",
    Stage.UINT8: "uint8 flips and colour",
    Stage.TENSOR: "to float",
    Stage.NORMALIZE: "output table",
    Stage.FLOAT: "float output",
}


class Op:
    """Base class of fastprep ops. Subclass it, set the class attributes and implement
    :meth:`compile`, then decorate with :func:`register_op`."""

    stage = None            # a Stage
    torchvision = ()        # torchvision class names this op converts from (v1 and v2 classes)
    converts = ()           # other classes it converts from: the class objects, or "module.Class"
                            # paths (matched by identity, Note [Conversion by identity])
    not_after = {}          # {op name: message} ops this one cannot follow ("{name}" is filled in)
    exclusive = {}          # {op name: message} ops this one cannot coexist with, in any order
    unique = True           # at most once per Compose
    params = ()             # per-sample keys this op adds to return_params (documentation)
    # May be written before the geometric ops: the fused result (geometry first) is within the
    # parity tolerance of applying it first (a channel mix commutes with resampling up to rounding).
    may_precede_geometry = False

    def compile(self, spec, ctx):
        """Sets this op's fields on ``spec`` (a ``_core.PlanSpec``); ``ctx`` is a
        :class:`CompileContext` with what earlier ops established."""
        raise NotImplementedError

    def check(self, ctx):
        """Raises ValueError when this op cannot follow what ``ctx`` describes (optional)."""

    def check_output(self, out):
        """Raises ValueError when this op cannot produce the resolved output options ``out``
        (an :class:`OutputOptions`: dtype, layout, color, channels) (optional)."""

    @classmethod
    def from_torchvision(cls, op, state):
        """A torchvision op -> a list of fastprep ops (``state`` carries Compose options, e.g.
        ``state["dtype"]``). The default builds ``cls()`` with no arguments."""
        return [cls()]

    def sample_params(self, rec):
        """This op's per-sample draws from one native ParamRecord (a numpy structured scalar)."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self):
        return hash((type(self).__name__, repr(self)))


_REGISTRY = {}


def register_op(cls=None, *, replace=False):
    """Registers an :class:`Op` subclass (usable as a class decorator): Compose accepts it,
    from_torchvision converts its torchvision names, and it joins :func:`op_table`. A name
    already registered to another class is an error unless ``replace=True``
    (``@register_op(replace=True)``)."""
    if cls is None:
        return lambda c: register_op(c, replace=replace)
    if not (isinstance(cls, type) and issubclass(cls, Op)):
        raise TypeError(f"register_op takes an Op subclass, got {cls!r}")
    if not isinstance(cls.stage, Stage):
        raise TypeError(f"{cls.__name__}.stage must be a fastprep Stage, got {cls.stage!r}")
    if cls.compile is Op.compile:
        raise TypeError(f"{cls.__name__} must implement compile(spec, ctx)")
    old = _REGISTRY.get(cls.__name__)
    if old is not None and old is not cls and not replace:
        raise ValueError(f"an op named {cls.__name__} is already registered ({old.__module__}.{old.__qualname__}); "
                         "pass replace=True to replace it")
    for tv in cls.torchvision:
        owner = _by_torchvision().get(tv)
        if owner is not None and owner is not cls and not (replace and owner is old):
            raise ValueError(f"torchvision name {tv!r} is already converted by {owner.__name__}")
    for target in cls.converts:
        if not (isinstance(target, type) or (isinstance(target, str) and "." in target)):
            raise TypeError(f"{cls.__name__}.converts holds classes or 'module.Class' paths, got {target!r}")
        for other in _REGISTRY.values():
            if other is not cls and not (replace and other is old) and target in other.converts:
                raise ValueError(f"{_target_name(target)} is already converted by {other.__name__}")
    _REGISTRY[cls.__name__] = cls
    return cls


def registered_ops():
    """{name: class} of every registered op, in registration order."""
    return {k: v for k, v in _REGISTRY.items() if not k.startswith("_")}


def _by_torchvision():
    return {tv: cls for cls in _REGISTRY.values() for tv in cls.torchvision}


def _target_name(target):
    return f"{target.__module__}.{target.__qualname__}" if isinstance(target, type) else target


def _resolve(path):
    """The class a "module.Class" path names, importing the module only when its top package is
    imported already (an instance of it exists only then), else None."""
    import importlib
    import sys

    module, _, name = path.rpartition(".")
    if module.split(".", 1)[0] not in sys.modules:
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def converter_for(obj):
    """The registered op class that converts ``obj`` (an instance of torchvision's or another
    library's transform), matched by identity of ``type(obj)`` (Note [Conversion by identity] in
    fastprep/_torchvision.py), or None."""
    cls = type(obj)
    name = cls.__name__
    for op in _REGISTRY.values():
        targets = list(op.converts) + [f"{m}.{tv}" for tv in op.torchvision
                                       for m in ("torchvision.transforms", "torchvision.transforms.v2")]
        for target in targets:
            if isinstance(target, type):
                if target is cls:
                    return op
            elif target.rpartition(".")[2] == name and _resolve(target) is cls:
                return op
    return None


class OutputOptions:
    """The Compose's output options once resolved: dtype and layout names, color ("RGB", "BGR",
    "GRAY", "YCbCr") and the number of output channels."""

    def __init__(self, dtype, layout, color, channels):
        self.dtype, self.layout, self.color, self.channels = dtype, layout, color, channels


class CompileContext:
    """What the ops before the current one established while a Compose compiles."""

    def __init__(self):
        self.ops = []            # ops compiled so far
        self.has_tensor = False  # ToTensor seen
        self.norm = None         # the Normalize op, if any
        self.gray = 0            # output channels of a Grayscale op (0 = none)
        self.interp = None       # interpolation of the resize, if any
        self.want_color = None   # channel order a Normalize preset needs

    def seen(self, name):
        return any(type(o).__name__ == name for o in self.ops)


def check_order(ops):
    """Raises ValueError (TypeError for a non-op) when ``ops`` cannot be fused in this order.
    Every rule comes from the ops' stage, not_after, exclusive and unique declarations."""
    done = []
    for op in ops:
        if not isinstance(op, Op):
            raise TypeError(f"{op!r} is not a fastprep transform; use fastprep.from_torchvision() for torchvision ops")
        cls = type(op)
        name = cls.__name__
        if _REGISTRY.get(name) is not cls:
            raise TypeError(f"{cls.__module__}.{cls.__qualname__} is not a registered op: decorate it with "
                            "fastprep.register_op")
        for prev in done:
            pname = type(prev).__name__
            if pname in cls.not_after:
                raise ValueError(cls.not_after[pname].format(name=name, prev=pname))
            if pname in cls.exclusive:
                raise ValueError(cls.exclusive[pname].format(name=name, prev=pname))
            if name in type(prev).exclusive:
                raise ValueError(type(prev).exclusive[name].format(name=pname, prev=name))
        if cls.unique and any(type(p) is cls for p in done):
            raise ValueError(f"{name} appears twice")
        later = [p for p in done if type(p).stage > cls.stage
                 and not (cls.stage == Stage.GEOMETRY and type(p).may_precede_geometry)]
        if later:
            pname = type(later[0]).__name__
            if cls.stage == Stage.GEOMETRY:
                raise ValueError(f"{name} after {pname} cannot be fused: put geometric ops first "
                                 "(flips and colour ops commute with them)")
            raise ValueError(f"{name} must come before {pname} to be fused ({name} runs at the "
                             f"{_STAGE_WORDS[cls.stage]} stage, {pname} at the {_STAGE_WORDS[type(later[0]).stage]} "
                             "stage)")
        done.append(op)


# ----------------------------------------------------------------------------------------------
# Argument helpers


class InterpolationMode:
    """Names as torchvision.transforms.InterpolationMode values."""
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _interp_name(interpolation):
    name = str(getattr(interpolation, "value", interpolation)).lower()
    if name not in _core.Interp.__members__:
        raise ValueError(f"unsupported interpolation {interpolation!r}: use nearest, bilinear or bicubic")
    return name


_MAX_SIDE = 2**31 - 1  # native sizes are C ints


def _side(v, what, arg="size", full=None):
    """One output side: an int in [1, 2**31). Python and numpy ints pass; bool, float, str do not."""
    shown = repr(full if full is not None else v)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{what} {arg} must be a positive int or (h, w) of ints, got {shown}")
    v = int(v)
    if not 1 <= v <= _MAX_SIDE:
        raise ValueError(f"{what} {arg} must be between 1 and 2**31 - 1, got {shown}")
    return v


def _pair(size, what):
    if isinstance(size, (tuple, list)) and len(size) in (1, 2):
        return _side(size[0], what, full=size), _side(size[-1], what, full=size)
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        v = _side(size, what)
        return v, v
    raise ValueError(f"{what} size must be a positive int or (h, w) of ints, got {size!r}")


def _prob(p, what):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{what} p (the probability) must be a number in [0, 1], got {p!r}")
    return float(p)


def _range2(v, what, arg):
    try:
        lo, hi = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {arg} must be two numbers (lo, hi), got {v!r}") from None
    return lo, hi


def _tv_interp(op):
    mode = getattr(op, "interpolation", "bilinear")
    return getattr(mode, "value", mode)


def _tv_antialias(op):
    a = getattr(op, "antialias", True)
    # v1 on PIL always antialiases; "warn" (older torchvision) behaves as True on PIL.
    return True if a is None or a == "warn" else bool(a)


def _tv_size(size):
    if isinstance(size, (list, tuple)) and len(size) == 1:
        return size[0]
    return tuple(size) if isinstance(size, (list, tuple)) else size


# ----------------------------------------------------------------------------------------------
# Geometry

_ONLY_RRC = "RandomResizedCrop must be the only resize/crop op"


@register_op
class Resize(Op):
    """Resize; an int resizes the shorter side (the longer side truncated, as torchvision),
    (h, w) resizes exactly. Antialiased when downscaling, as PIL and torchvision v2."""

    stage = Stage.GEOMETRY
    torchvision = ("Resize",)
    not_after = {n: "Resize must come first and once (Resize then CenterCrop is fused)"
                 for n in ("Resize", "CenterCrop", "RandomResizedCrop")}
    unique = False  # the not_after rules give the better message

    def __init__(self, size, interpolation="bilinear", max_size=None, antialias=True):
        if isinstance(size, (tuple, list)) and len(size) == 1:
            size = size[0]
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            self.size = _side(size, "Resize")
        else:
            self.size = _pair(size, "Resize")
            if max_size is not None:
                raise ValueError("Resize max_size is only allowed with an int size")
        if max_size is not None:
            max_size = _side(max_size, "Resize", "max_size")
            if max_size <= self.size:
                raise ValueError(f"Resize max_size must be greater than size, got max_size={max_size}, "
                                 f"size={self.size}")
        self.interpolation = _interp_name(interpolation)
        self.max_size = max_size
        self.antialias = bool(antialias) if antialias is not None else True

    def compile(self, spec, ctx):
        if isinstance(self.size, int):
            spec.resize_mode, spec.resize_size, spec.max_size = 1, self.size, self.max_size or 0
        else:
            spec.resize_mode, (spec.resize_h, spec.resize_w) = 2, self.size
        spec.antialias = self.antialias
        ctx.interp = self.interpolation

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(_tv_size(op.size), interpolation=_tv_interp(op), max_size=getattr(op, "max_size", None),
                    antialias=_tv_antialias(op))]


@register_op
class CenterCrop(Op):
    """Center crop; pads with zeros when the crop is larger than the image (as torchvision)."""

    stage = Stage.GEOMETRY
    torchvision = ("CenterCrop",)
    not_after = {n: "CenterCrop after another crop cannot be fused" for n in ("CenterCrop", "RandomResizedCrop")}
    unique = False

    def __init__(self, size):
        self.size = _pair(size, "CenterCrop")

    def compile(self, spec, ctx):
        spec.crop_h, spec.crop_w = self.size

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(_tv_size(op.size))]


@register_op
class RandomResizedCrop(Op):
    """Random area/aspect crop resized to ``size``: torchvision's get_params distribution,
    including its 10-attempt fallback, drawn from a stream keyed by (seed, epoch, index)."""

    stage = Stage.GEOMETRY
    torchvision = ("RandomResizedCrop",)
    not_after = {n: _ONLY_RRC for n in ("Resize", "CenterCrop", "RandomResizedCrop")}
    unique = False
    params = ("box",)

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), interpolation="bilinear",
                 antialias=True):
        self.size = _pair(size, "RandomResizedCrop")
        self.scale = _range2(scale, "RandomResizedCrop", "scale")
        self.ratio = _range2(ratio, "RandomResizedCrop", "ratio")
        if not (0 < self.scale[0] <= self.scale[1]):
            raise ValueError(f"RandomResizedCrop scale must satisfy 0 < lo <= hi, got {scale}")
        if not (0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"RandomResizedCrop ratio must satisfy 0 < lo <= hi, got {ratio}")
        self.interpolation = _interp_name(interpolation)
        self.antialias = bool(antialias) if antialias is not None else True

    def compile(self, spec, ctx):
        spec.rrc = True
        spec.rrc_h, spec.rrc_w = self.size
        spec.scale_lo, spec.scale_hi = self.scale
        spec.ratio_lo, spec.ratio_hi = self.ratio
        spec.antialias = self.antialias
        ctx.interp = self.interpolation

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(_tv_size(op.size), scale=tuple(op.scale), ratio=tuple(op.ratio), interpolation=_tv_interp(op),
                    antialias=_tv_antialias(op))]


# ----------------------------------------------------------------------------------------------
# uint8: flips and colour


class _RandomApply(Op):
    """An op applied to a sample with probability ``p`` (torchvision's ``p`` argument)."""

    default_p = 0.5

    def __init__(self, p=None):
        self.p = _prob(self.default_p if p is None else p, type(self).__name__)

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.p)]


@register_op
class RandomHorizontalFlip(_RandomApply):
    """Mirrors left-right with probability p (fused: the resampler emits columns reversed)."""

    stage = Stage.UINT8
    torchvision = ("RandomHorizontalFlip",)
    params = ("flip",)

    def compile(self, spec, ctx):
        spec.flip_p = self.p


@register_op
class RandomVerticalFlip(_RandomApply):
    """Mirrors top-bottom with probability p (fused: the vertical pass emits rows reversed)."""

    stage = Stage.UINT8
    torchvision = ("RandomVerticalFlip",)
    params = ("vflip",)

    def compile(self, spec, ctx):
        spec.vflip_p = self.p

    def sample_params(self, rec):
        return {"vflip": bool(rec["vflip"])}


_GRAY_BOTH = "Grayscale and RandomGrayscale cannot be combined: Grayscale already makes every sample gray"


@register_op
class Grayscale(Op):
    """Luma output (ITU-R 601-2, as PIL's convert('L')): one channel, or with
    ``num_output_channels=3`` three equal channels (torchvision's Grayscale(3))."""

    stage = Stage.UINT8
    torchvision = ("Grayscale",)
    exclusive = {"RandomGrayscale": _GRAY_BOTH}
    may_precede_geometry = True

    def __init__(self, num_output_channels=1):
        if isinstance(num_output_channels, bool) or num_output_channels not in (1, 3):
            raise ValueError(f"Grayscale num_output_channels must be 1 or 3, got {num_output_channels!r}")
        self.num_output_channels = int(num_output_channels)

    def compile(self, spec, ctx):
        ctx.gray = self.num_output_channels

    def check_output(self, out):
        if out.color != "GRAY":
            raise ValueError("Grayscale conflicts with color=" + out.color)

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(getattr(op, "num_output_channels", 1))]


@register_op
class RandomGrayscale(_RandomApply):
    """With probability p, the sample becomes 3 equal luma channels (ITU-R 601-2 as PIL's
    convert('L'), torchvision v1's arithmetic; v2 on tensors is within 1 level)."""

    stage = Stage.UINT8
    torchvision = ("RandomGrayscale",)
    exclusive = {"Grayscale": _GRAY_BOTH}
    may_precede_geometry = True
    params = ("gray",)
    default_p = 0.1

    def compile(self, spec, ctx):
        spec.gray_p = self.p

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
        lo, hi = _range2(value, "ColorJitter", name)
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
    torchvision v2's uint8 arithmetic (Note [ColorJitter arithmetic] in csrc/color.h)."""

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
    (Note [RandomHSV arithmetic] in csrc/color.h)."""

    stage = Stage.UINT8
    not_after = {n: "RandomHSV after {prev} cannot be fused: put HSV jitter before grayscale conversion"
                 for n in ("Grayscale", "RandomGrayscale")}
    params = ("hsv",)

    def __init__(self, h=0.015, s=0.7, v=0.4):
        gains = []
        for name, g in (("h", h), ("s", s), ("v", v)):
            ok = not isinstance(g, bool) and isinstance(g, numbers.Real) and math.isfinite(g) and 0 <= g <= _F32_MAX
            if not ok:
                raise ValueError(f"RandomHSV {name} gain must be a finite number >= 0, got {g!r}")
            gains.append(float(np.float32(g)))
        self.h, self.s, self.v = gains

    def compile(self, spec, ctx):
        spec.hsv_gain = [self.h, self.s, self.v]

    def sample_params(self, rec):
        return {"hsv": [float(x) for x in rec["hsv"]]}


# ----------------------------------------------------------------------------------------------
# Geometric augmentation and automatic augmentation policies on uint8 (csrc/augment.h)

_AFFINE_OPS = ("RandomRotation", "RandomAffine")
_POLICY_OPS = ("RandAugment", "TrivialAugmentWide", "AutoAugment")
_AFTER_COLOR = {**{n: "{name} after {prev} cannot be fused: the fused pass runs augmentation before the colour "
                      "ops; put {name} before {prev}" for n in ("ColorJitter", "RandomHSV")},
                **{n: "{name} after {prev} cannot be fused: put augmentation before grayscale conversion"
                   for n in ("Grayscale", "RandomGrayscale")}}


def _aug_interp(interpolation, what):
    name = str(getattr(interpolation, "value", interpolation)).lower()
    if name not in ("nearest", "bilinear"):
        raise ValueError(f"{what} interpolation must be nearest or bilinear (torchvision's tensor warps), "
                         f"got {interpolation!r}")
    return name


def _aug_fill(fill, what, allow_none):
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


def _tv_fill(op):
    fill = getattr(op, "fill", None)
    if isinstance(fill, dict):  # v2 stores {type: fill}; one value for images is all fastprep needs
        vals = {repr(v) for v in fill.values()}
        if len(vals) > 1:
            raise ValueError(f"{type(op).__name__}: a per-type fill dict with different values cannot be converted")
        fill = next(iter(fill.values()), None)
    return fill


def _set_warp(spec, prefix, interp, fill):
    setattr(spec, f"{prefix}_interp", getattr(_core.Interp, interp))
    setattr(spec, f"{prefix}_fill_on", fill is not None)
    setattr(spec, f"{prefix}_fill", fill if fill is not None else [0.0, 0.0, 0.0])


def _degrees(degrees, what):
    """torchvision's _setup_angle: d -> (-d, d) (d >= 0), or a (lo, hi) pair."""
    if isinstance(degrees, numbers.Real) and not isinstance(degrees, bool):
        if degrees < 0:
            raise ValueError(f"{what} degrees must be non-negative when a single number, got {degrees!r}")
        lo, hi = -float(degrees), float(degrees)
    elif isinstance(degrees, (tuple, list)) and len(degrees) == 2:
        lo, hi = _range2(degrees, what, "degrees")
    else:
        raise ValueError(f"{what} degrees must be a number or a pair (lo, hi), got {degrees!r}")
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{what} degrees must be finite with lo <= hi, got {degrees!r}")
    return lo, hi


class _Warp(Op):
    stage = Stage.UINT8
    not_after = {**_AFTER_COLOR, **{n: "{name} after {prev} cannot be fused: the fused pass warps before the "
                                       "policy's ops; put {name} first" for n in _POLICY_OPS}}
    params = ("affine",)

    def sample_params(self, rec):
        return {"affine": [float(x) for x in rec["affine"]] if rec["affine_on"] else None}


@register_op
class RandomRotation(_Warp):
    """Rotates by an angle uniform in degrees about the centre, on the uint8 image after the crop,
    as torchvision v2's F.rotate on tensors (nearest or bilinear, fill outside)."""

    torchvision = ("RandomRotation",)
    exclusive = {"RandomAffine": "RandomRotation and RandomAffine cannot be combined: use one RandomAffine"}

    def __init__(self, degrees, interpolation="nearest", expand=False, fill=0):
        self.degrees = _degrees(degrees, "RandomRotation")
        self.interpolation = _aug_interp(interpolation, "RandomRotation")
        if expand:
            raise ValueError("RandomRotation expand=True changes the image size after the crop, and fastprep's output "
                             "size is fixed by the geometric ops: use expand=False (followed by a crop in torchvision "
                             "terms, rotate a larger crop)")
        self.expand = False
        self.fill = _aug_fill(fill, "RandomRotation", allow_none=True)

    def compile(self, spec, ctx):
        spec.affine_mode = 1
        spec.degrees_lo, spec.degrees_hi = self.degrees
        _set_warp(spec, "affine", self.interpolation, self.fill)

    @classmethod
    def from_torchvision(cls, op, state):
        if getattr(op, "center", None) is not None:
            raise ValueError("RandomRotation with a center cannot be converted: fastprep rotates about the image centre")
        return [cls(tuple(op.degrees), getattr(op.interpolation, "value", op.interpolation), bool(op.expand),
                    _tv_fill(op))]


@register_op
class RandomAffine(_Warp):
    """Random rotation, translation, scale and shear about the centre, on the uint8 image after
    the crop, as torchvision v2's RandomAffine draws them and F.affine warps tensors."""

    torchvision = ("RandomAffine",)
    exclusive = {"RandomRotation": "RandomRotation and RandomAffine cannot be combined: use one RandomAffine"}

    def __init__(self, degrees, translate=None, scale=None, shear=None, interpolation="nearest", fill=0):
        self.degrees = _degrees(degrees, "RandomAffine")
        if translate is not None:
            t = _range2(translate, "RandomAffine", "translate")
            if not all(0.0 <= v <= 1.0 for v in t):
                raise ValueError(f"RandomAffine translate values should be between 0 and 1, got {translate!r}")
            translate = t
        self.translate = translate
        if scale is not None:
            s = _range2(scale, "RandomAffine", "scale")
            if not (0.0 < s[0] <= s[1] and math.isfinite(s[1])):
                raise ValueError(f"RandomAffine scale values should be positive with lo <= hi, got {scale!r}")
            scale = s
        self.scale = scale
        if shear is not None:
            if isinstance(shear, numbers.Real) and not isinstance(shear, bool):
                if shear < 0:
                    raise ValueError(f"RandomAffine shear must be non-negative when a single number, got {shear!r}")
                sh = (-float(shear), float(shear))
            elif isinstance(shear, (tuple, list)) and len(shear) in (2, 4):
                sh = tuple(float(v) for v in shear)
            else:
                raise ValueError(f"RandomAffine shear must be a number or a sequence of 2 or 4 numbers, got {shear!r}")
            for k in range(0, len(sh), 2):
                if not (-90.0 < sh[k] <= sh[k + 1] < 90.0):
                    raise ValueError(f"RandomAffine shear ranges must satisfy -90 < lo <= hi < 90 degrees, got {shear!r}")
            shear = sh
        self.shear = shear
        self.interpolation = _aug_interp(interpolation, "RandomAffine")
        self.fill = _aug_fill(fill, "RandomAffine", allow_none=True)

    def compile(self, spec, ctx):
        spec.affine_mode = 2
        spec.degrees_lo, spec.degrees_hi = self.degrees
        if self.translate is not None:
            spec.translate_x, spec.translate_y = self.translate
        if self.scale is not None:
            spec.affine_scale_lo, spec.affine_scale_hi = self.scale
        if self.shear is not None:
            spec.shear_n = len(self.shear)
            spec.shear_x = [self.shear[0], self.shear[1], 0.0]
            if len(self.shear) == 4:
                spec.shear_y = [self.shear[2], self.shear[3], 0.0]
        _set_warp(spec, "affine", self.interpolation, self.fill)

    @classmethod
    def from_torchvision(cls, op, state):
        if getattr(op, "center", None) is not None:
            raise ValueError("RandomAffine with a center cannot be converted: fastprep warps about the image centre")
        opt = lambda v: None if v is None else tuple(v)  # noqa: E731
        return [cls(tuple(op.degrees), opt(op.translate), opt(op.scale), opt(op.shear),
                    getattr(op.interpolation, "value", op.interpolation), _tv_fill(op))]


# torchvision v2's _AUGMENTATION_SPACE entries: (op name, magnitude table, lo, hi, signed); the
# table is torch.linspace(lo, hi, bins) ("linspace"), with hi times the image width or height,
# or 8 - round(arange(bins) / ((bins - 1) / hi)) ("posterize").
def _space(shear, translate, translate_table, rotate, color, posterize_div, identity=True, invert=False):
    s = [("Identity", "none", 0.0, 0.0, False)] if identity else []
    s += [("ShearX", "linspace", 0.0, shear, True), ("ShearY", "linspace", 0.0, shear, True),
          ("TranslateX", translate_table[0], 0.0, translate, True),
          ("TranslateY", translate_table[1], 0.0, translate, True),
          ("Rotate", "linspace", 0.0, rotate, True)]
    s += [(n, "linspace", 0.0, color, True) for n in ("Brightness", "Color", "Contrast", "Sharpness")]
    s += [("Posterize", "posterize", 0.0, posterize_div, False), ("Solarize", "linspace", 1.0, 0.0, False),
          ("AutoContrast", "none", 0.0, 0.0, False), ("Equalize", "none", 0.0, 0.0, False)]
    if invert:
        s.append(("Invert", "none", 0.0, 0.0, False))
    return s


_REL = ("linspace_width", "linspace_height")
_RA_SPACE = _space(0.3, 150.0 / 331.0, _REL, 30.0, 0.9, 4)
_TA_SPACE = _space(0.99, 32.0, ("linspace", "linspace"), 135.0, 0.99, 6)
_AA_SPACE = {e[0]: e for e in _space(0.3, 150.0 / 331.0, _REL, 30.0, 0.9, 4, identity=False, invert=True)}

# torchvision's AutoAugment sub-policies: ((op, probability, magnitude bin or None), x2).
_AA_POLICIES = {
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)), (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)), (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)), (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)), (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)), (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)), (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)), (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)), (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)), (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)), (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)), (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)), (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)), (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)), (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)), (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)), (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)), (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)), (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)), (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)), (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)), (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)), (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)), (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)), (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)), (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)), (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)), (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)), (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)), (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)), (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)), (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ),
}

_AUG_NAMES = {int(v): k for k, v in _core.AugOp.__members__.items()}


def _bins(v, what, arg="num_magnitude_bins", lo=1):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not lo <= v <= 2**20:
        raise ValueError(f"{what} {arg} must be an int in [{lo}, 2**20], got {v!r}")
    return int(v)


class _Policy(Op):
    stage = Stage.UINT8
    not_after = _AFTER_COLOR
    exclusive = {}  # filled below: one policy per Compose
    params = ("augment",)
    policy_code = 0

    def _entries(self):
        """[(op name, table, lo, hi, signed, probability, bin)] for the native plan."""
        raise NotImplementedError

    def compile(self, spec, ctx):
        e = self._entries()
        spec.aug_policy = self.policy_code
        spec.aug_ops = [int(getattr(_core.AugOp, x[0])) for x in e]
        spec.aug_table = [int(getattr(_core.AugTable, x[1])) for x in e]
        spec.aug_lo = [float(x[2]) for x in e]
        spec.aug_hi = [float(x[3]) for x in e]
        spec.aug_signed = [int(x[4]) for x in e]
        spec.aug_prob = [float(x[5]) for x in e]
        spec.aug_bin = [int(x[6]) for x in e]
        spec.aug_bins = self.num_magnitude_bins
        _set_warp(spec, "aug", self.interpolation, self.fill)

    def sample_params(self, rec):
        n = int(rec["aug_n"])
        return {"augment": [[_AUG_NAMES[int(rec["aug_op"][k])], float(rec["aug_mag"][k])] for k in range(n)]}

    def _warp_args(self, interpolation, fill):
        self.interpolation = _aug_interp(interpolation, type(self).__name__)
        self.fill = _aug_fill(fill, type(self).__name__, allow_none=True)


@register_op
class RandAugment(_Policy):
    """torchvision v2's RandAugment on the uint8 image after the crop: num_ops ops drawn from its
    14, each at the given magnitude bin with a random sign (Note [Augment arithmetic] in
    csrc/augment.h)."""

    torchvision = ("RandAugment",)
    policy_code = 1

    def __init__(self, num_ops=2, magnitude=9, num_magnitude_bins=31, interpolation="nearest", fill=None):
        mx = int(_core.MAX_AUG_OPS)
        if isinstance(num_ops, bool) or not isinstance(num_ops, numbers.Integral) or not 0 <= num_ops <= mx:
            raise ValueError(f"RandAugment num_ops must be an int in [0, {mx}], got {num_ops!r}")
        self.num_ops = int(num_ops)
        self.num_magnitude_bins = _bins(num_magnitude_bins, "RandAugment")
        if isinstance(magnitude, bool) or not isinstance(magnitude, numbers.Integral) or \
                not 0 <= magnitude < self.num_magnitude_bins:
            raise ValueError(f"RandAugment magnitude must be an int in [0, num_magnitude_bins), got {magnitude!r}")
        self.magnitude = int(magnitude)
        self._warp_args(interpolation, fill)

    def _entries(self):
        return [e + (0.0, 0) for e in _RA_SPACE]

    def compile(self, spec, ctx):
        super().compile(spec, ctx)
        spec.aug_num_ops = self.num_ops
        spec.aug_magnitude = self.magnitude

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.num_ops, op.magnitude, op.num_magnitude_bins,
                    getattr(op.interpolation, "value", op.interpolation), _tv_fill(op))]


@register_op
class TrivialAugmentWide(_Policy):
    """torchvision v2's TrivialAugmentWide on the uint8 image after the crop: one op of its 14 at a
    uniformly drawn magnitude bin, with a random sign."""

    torchvision = ("TrivialAugmentWide",)
    policy_code = 2

    def __init__(self, num_magnitude_bins=31, interpolation="nearest", fill=None):
        self.num_magnitude_bins = _bins(num_magnitude_bins, "TrivialAugmentWide")
        self._warp_args(interpolation, fill)

    def _entries(self):
        return [e + (0.0, 0) for e in _TA_SPACE]

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.num_magnitude_bins, getattr(op.interpolation, "value", op.interpolation), _tv_fill(op))]


@register_op
class AutoAugment(_Policy):
    """torchvision v2's AutoAugment ("imagenet", "cifar10" or "svhn" policy) on the uint8 image
    after the crop: one sub-policy per sample, each of its two ops applied with its probability."""

    torchvision = ("AutoAugment",)
    policy_code = 3

    def __init__(self, policy="imagenet", interpolation="nearest", fill=None):
        name = str(getattr(policy, "value", policy)).lower()
        if name not in _AA_POLICIES:
            raise ValueError(f"AutoAugment policy must be one of {sorted(_AA_POLICIES)}, got {policy!r}")
        self.policy = name
        self.num_magnitude_bins = 10
        self._warp_args(interpolation, fill)

    def _entries(self):
        return [_AA_SPACE[op] + (p, 0 if b is None else b) for sub in _AA_POLICIES[self.policy] for op, p, b in sub]

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.policy, getattr(op.interpolation, "value", op.interpolation), _tv_fill(op))]


for _c in (RandAugment, TrivialAugmentWide, AutoAugment):
    _c.exclusive = {n: "{name} and {prev} cannot be combined: one augmentation policy per Compose"
                    for n in _POLICY_OPS if n != _c.__name__}
_FLIP_AFTER_WARP = {n: "{name} after {prev} cannot be fused: flips run in the resampler, before any warp; put "
                       "{name} first" for n in _AFFINE_OPS + _POLICY_OPS}
RandomHorizontalFlip.not_after = {**RandomHorizontalFlip.not_after, **_FLIP_AFTER_WARP}
RandomVerticalFlip.not_after = {**RandomVerticalFlip.not_after, **_FLIP_AFTER_WARP}


# ----------------------------------------------------------------------------------------------
# To float and normalisation


@register_op
class ToTensor(Op):
    """Float output in [0, 1], CHW (torchvision's ToTensor; v2's ToImage + ToDtype(scale=True))."""

    stage = Stage.TENSOR
    torchvision = ("ToTensor", "ToDtype", "ConvertImageDtype")

    def compile(self, spec, ctx):
        ctx.has_tensor = True

    @classmethod
    def from_torchvision(cls, op, state):
        name = type(op).__name__
        if name == "ToTensor":
            return [cls()]
        import torch

        dtype = op.dtype
        if isinstance(dtype, dict):  # v2 ToDtype may map types to dtypes
            vals = {v for v in dtype.values() if v is not None}
            if len(vals) != 1:
                raise ValueError(f"cannot fuse {op!r}: per-type dtypes")
            dtype = vals.pop()
        scale = getattr(op, "scale", name == "ConvertImageDtype")
        if dtype in (torch.float32, torch.float16, torch.bfloat16):
            if not scale:
                raise ValueError(f"cannot fuse {op!r}: float conversion without scale=True keeps 0-255 values; "
                                 "use fp.Normalize with a 0-255 preset instead")
            state["dtype"] = str(dtype).replace("torch.", "")
            return [cls()]
        if dtype == torch.uint8:
            state["dtype"] = "uint8"
            return []
        raise ValueError(f"cannot fuse {op!r}: dtype {dtype} is not supported")


@register_op
class _ContainerConversion(Op):
    """torchvision ops that only change the container (PIL <-> tensor), not the pixels."""

    stage = Stage.UINT8
    torchvision = ("ToImage", "PILToTensor", "ToImageTensor", "ToPureTensor")

    def compile(self, spec, ctx):  # never in a Compose: from_torchvision drops it
        raise TypeError("_ContainerConversion is not a transform")

    @classmethod
    def from_torchvision(cls, op, state):
        if type(op).__name__ == "PILToTensor":
            state["uint8_tensor"] = True
        return []


# AlexNet's ImageNet RGB eigen-decomposition ([0, 1] scale), as fb.resnet.torch uses; the
# eigenvectors are the columns.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))


@register_op
class Lighting(Op):
    """AlexNet PCA lighting noise: adds eigvec @ (alpha * eigval), alpha ~ N(0, alphastd) per
    sample, to the [0, 1] RGB values (after ToTensor, before Normalize)."""

    stage = Stage.TENSOR
    params = ("lighting",)

    def __init__(self, alphastd=0.1, eigval=None, eigvec=None):
        if isinstance(alphastd, bool) or not isinstance(alphastd, numbers.Real) or not (
                math.isfinite(alphastd) and alphastd >= 0):
            raise ValueError(f"Lighting alphastd must be a finite number >= 0, got {alphastd!r}")
        self.alphastd = float(alphastd)
        val = np.asarray(IMAGENET_EIGVAL if eigval is None else eigval, dtype=np.float64)
        vec = np.asarray(IMAGENET_EIGVEC if eigvec is None else eigvec, dtype=np.float64)
        if val.shape != (3,) or vec.shape != (3, 3) or not (np.isfinite(val).all() and np.isfinite(vec).all()):
            raise ValueError(f"Lighting needs eigval of 3 and eigvec of 3x3 finite numbers, got shapes "
                             f"{val.shape} and {vec.shape}")
        self.eigval = tuple(float(x) for x in val)
        self.eigvec = tuple(tuple(float(x) for x in row) for row in vec)

    @classmethod
    def from_stats(cls, path, alphastd=0.1):
        """The PCA that ``fastprep stats --pca --out PATH`` wrote (eigenvectors as columns)."""
        from ._formats import StatsRecord

        rec = StatsRecord.read(path)
        if not rec.pca:
            raise ValueError(f"{path}: no PCA in these stats; run fastprep stats --pca --out {path}")
        return cls(alphastd, rec.pca["eigenvalues"], rec.pca["eigenvectors"])

    def check(self, ctx):
        if not ctx.has_tensor:
            raise ValueError("Lighting works on [0, 1] values: put ToTensor before it")

    def check_output(self, out):
        if out.color not in ("RGB", "BGR"):
            raise ValueError(f"Lighting shifts RGB values: it needs an RGB or BGR output, got color={out.color!r}")

    def compile(self, spec, ctx):
        spec.lighting_std = self.alphastd
        spec.eigval = list(self.eigval)
        spec.eigvec = [x for row in self.eigvec for x in row]

    def sample_params(self, rec):
        return {"lighting": [float(a) for a in rec["lighting_alpha"]]}


@register_op
class RandomErasing(Op):
    """With probability p, a random rectangle of the normalised output is set to ``value`` (a
    number, one per channel, or "random" for N(0, 1) noise): torchvision's RandomErasing."""

    stage = Stage.FLOAT
    torchvision = ("RandomErasing",)
    params = ("erase",)

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0, inplace=False):
        self.p = _prob(p, "RandomErasing")  # not a _RandomApply: other arguments
        self.scale = _range2(scale, "RandomErasing", "scale")
        self.ratio = _range2(ratio, "RandomErasing", "ratio")
        if not 0.0 <= self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f"RandomErasing scale must satisfy 0 <= lo <= hi <= 1, got {scale!r}")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"RandomErasing ratio must satisfy 0 < lo <= hi, got {ratio!r}")
        if isinstance(value, str):
            if value != "random":
                raise ValueError(f"RandomErasing value must be a number, a sequence or 'random', got {value!r}")
            self.value = "random"
        else:
            vals = tuple(_floats3(value, "value", "RandomErasing"))
            if not all(math.isfinite(v) and abs(v) <= _F32_MAX for v in vals):
                raise ValueError(f"RandomErasing value must be finite float32 numbers (or 'random'), got {value!r}")
            self.value = vals[:1] if len(set(vals)) == 1 else vals  # one value, or one per channel

    def check(self, ctx):
        if not (ctx.has_tensor or ctx.norm is not None):
            raise ValueError("RandomErasing works on the float output: put ToTensor (and Normalize) before it")

    def check_output(self, out):
        if self.value != "random" and len(self.value) != 1 and out.channels == 1:
            raise ValueError(f"RandomErasing value {self.value} has 3 values for a 1-channel output: give one")

    def compile(self, spec, ctx):
        spec.erase_p = self.p
        spec.erase_scale_lo, spec.erase_scale_hi = self.scale
        spec.erase_ratio_lo, spec.erase_ratio_hi = self.ratio
        spec.erase_random = self.value == "random"
        if self.value != "random":
            spec.erase_value = list(self.value) * (3 // len(self.value))

    @classmethod
    def from_torchvision(cls, op, state):
        value = op.value
        if value is None or value == "random":  # v2 stores "random" as None
            value = "random"
        elif isinstance(value, (list, tuple)) and len(value) == 1:
            value = value[0]
        return [cls(op.p, tuple(op.scale), tuple(op.ratio), value)]

    def sample_params(self, rec):
        e = [int(x) for x in rec["erase"]]
        return {"erase": None if e[0] < 0 else e}


# name -> (mean, std, input range, color)
PRESETS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "unit", None),
    "caffe": ((103.939, 116.779, 123.68), (1.0, 1.0, 1.0), "255", "BGR"),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "unit", None),
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "unit", None),
    "imagenet255": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), "255", None),
}
# Normalisations computed per image from its own histogram (two-phase output, Note [Output
# stage] in csrc/output.h).
_PER_IMAGE_MODES = ("per_image", "minmax")
_F32_MAX = float(np.finfo(np.float32).max)


@register_op
class Normalize(Op):
    """(x - mean) / std per channel, per image ("per_image", "minmax"), or a colour whitening ("whiten"). ``Normalize("imagenet")`` and the other PRESETS set mean,
    std, the input range (0-1 or 0-255) and, for "caffe", BGR channel order.

    Per image: ``Normalize("per_image")`` is (x - mean(x)) / max(std(x), 1/sqrt(N)) over the whole
    output (tf.image.per_image_standardization); ``Normalize("minmax", range=(lo, hi))`` maps the
    image's darkest level to lo and its brightest to hi (default (0, 1); a flat image gives lo).
    Both work on [0, 1] values after ToTensor, or on 0-255 values without it.

    Whitening: ``Normalize("whiten", stats="stats.json", zca=False, eps=1e-6)`` maps the [0, 1] RGB
    values x to W (x - mean) with the dataset mean and the eigen-decomposition (eigvec, eigval) of
    its RGB covariance that ``fastprep stats --pca --out stats.json`` wrote: PCA whitening
    W = diag(1 / sqrt(eigval + eps)) eigvec^T, or with ``zca=True`` ZCA whitening
    W = eigvec diag(1 / sqrt(eigval + eps)) eigvec^T (the output stays in RGB axes). ``stats`` may
    also be the dict :func:`fastprep.compute_stats` returns (with ``pca=True``)."""

    stage = Stage.NORMALIZE
    torchvision = ("Normalize",)
    params = ("normalize (per_image, minmax)",)

    def __init__(self, mean=None, std=None, preset=None, range=None, stats=None, zca=False, eps=None):
        if isinstance(mean, str):
            preset, mean = mean, None
        self.preset = preset
        self.input_range = "unit"
        self.color = None
        if preset == "whiten":
            if mean is not None or std is not None or range is not None:
                raise ValueError("Normalize('whiten') takes its mean and covariance from stats=: drop mean/std/range")
            eps = 1e-6 if eps is None else eps
            self.mean, self.matrix = _whitening(stats, zca, eps)
            self.std = None
            self.zca, self.eps = bool(zca), float(eps)
            return
        if stats is not None or zca or eps is not None:
            raise ValueError("Normalize stats=, zca= and eps= are for 'whiten'")
        if preset in _PER_IMAGE_MODES:
            if mean is not None or std is not None:
                raise ValueError(f"Normalize({preset!r}) computes mean and std per image: drop mean/std")
            if range is not None and preset != "minmax":
                raise ValueError("Normalize range= is only for 'minmax'")
            self.mean = self.std = None
            if preset == "minmax":
                lo, hi = _range2((0.0, 1.0) if range is None else range, "Normalize", "range")
                if not (math.isfinite(lo) and math.isfinite(hi) and abs(lo) <= _F32_MAX and abs(hi) <= _F32_MAX):
                    raise ValueError(f"Normalize range must be two finite numbers, got {range!r}")
                self.range = (lo, hi)
            return
        if range is not None:
            raise ValueError("Normalize range= is only for 'minmax'")
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f"unknown Normalize preset {preset!r}: one of "
                                 f"{sorted(PRESETS) + list(_PER_IMAGE_MODES) + ['whiten']}")
            pmean, pstd, self.input_range, self.color = PRESETS[preset]
            mean = pmean if mean is None else mean
            std = pstd if std is None else std
        if mean is None or std is None:
            raise ValueError("Normalize needs mean and std (or a preset name)")
        mean = _floats3(mean, "mean")
        std = _floats3(std, "std")
        if not all(math.isfinite(m) and abs(m) <= _F32_MAX for m in mean):
            raise ValueError(f"Normalize mean must be finite float32 values, got {list(mean)}")
        if any(s == 0 or not math.isfinite(s) or abs(s) > _F32_MAX for s in std):
            raise ValueError(f"Normalize std must be finite and nonzero, got {list(std)}")
        self.mean = mean
        self.std = std
        check_table(self, has_tensor=self.input_range == "unit", dtype="float32")

    @property
    def per_image(self):
        return self.preset in _PER_IMAGE_MODES

    def check(self, ctx):
        if not ctx.has_tensor and self.input_range == "unit" and not self.per_image:
            raise ValueError("Normalize needs ToTensor before it (as torchvision), or a 0-255 preset")
        if self.preset == "whiten" and ctx.seen("RandomGrayscale"):
            raise ValueError("RandomGrayscale cannot be combined with Normalize('whiten'): whitening needs the "
                             "three colour channels")

    def compile(self, spec, ctx):
        ctx.norm = self
        ctx.want_color = self.color
        if self.preset == "whiten":
            spec.norm_mode = _core.NormMode.whiten
            spec.mean = list(self.mean)
            spec.mix = [x for row in self.matrix for x in row]
        elif self.per_image:
            spec.norm_mode = getattr(_core.NormMode, self.preset)
            if self.preset == "minmax":
                spec.range_lo, spec.range_hi = self.range
        else:
            spec.normalize = True
            spec.mean, spec.std = list(self.mean), list(self.std)

    def check_output(self, out):
        if self.preset == "whiten" and out.color != "RGB":
            raise ValueError(f"Normalize('whiten') works on RGB output, got color={out.color!r}")
        check_table(self, self.input_range == "unit", out.dtype)
        if self.color and out.color != self.color:
            raise ValueError(f"Normalize preset {self.preset!r} expects {self.color} channel order, "
                             f"got color={out.color!r}")

    @classmethod
    def from_torchvision(cls, op, state):
        if getattr(op, "inplace", False) not in (False, True):
            raise ValueError(f"cannot fuse {op!r}")
        return [cls(list(op.mean), list(op.std))]

    def sample_params(self, rec):
        if self.preset == "per_image":
            return {"normalize": {"mean": float(rec["norm_offset"]), "std": float(rec["norm_scale"])}}
        if self.preset == "minmax":
            lo = float(rec["norm_offset"])
            return {"normalize": {"min": lo, "max": lo + float(rec["norm_scale"])}}
        return {}


def _floats3(v, arg, what="Normalize"):
    """mean/std as 3 Python floats: a number, or a sequence / numpy array / torch tensor of 1 or 3."""
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        vals = [float(v)]
    else:
        if type(v).__module__.startswith("torch"):
            v = v.detach().cpu().double().numpy()
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what} {arg} must be a number or a sequence of 1 or 3 numbers, got {v!r}") from None
        if arr.ndim > 1:
            raise ValueError(f"{what} {arg} must be a flat sequence of 1 or 3 numbers, got shape {arr.shape}")
        vals = [float(x) for x in arr.reshape(-1)]
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise ValueError(f"{what} {arg} needs 1 or 3 values (one per channel), got {len(vals)}: {vals}")
    return tuple(vals)


def _whitening(stats, zca, eps):
    """(mean, W) of PCA (or ZCA) whitening from `fastprep stats --pca` output: a path, a
    StatsRecord or the dict compute_stats returns."""
    if stats is None:
        raise ValueError("Normalize('whiten') needs stats=: the JSON `fastprep stats --pca --out FILE` writes")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"Normalize('whiten') eps must be a finite number >= 0, got {eps!r}")
    name = "stats"
    if isinstance(stats, dict):
        mean, pca = stats.get("mean"), stats.get("pca")
    else:
        from ._formats import StatsRecord

        rec = stats if isinstance(stats, StatsRecord) else StatsRecord.read(stats)
        name = str(stats) if not isinstance(stats, StatsRecord) else name
        mean, pca = rec.mean, rec.pca
    if not pca:
        raise ValueError(f"{name}: no PCA in these stats; run fastprep stats --pca --out FILE")
    mean = np.asarray(mean, dtype=np.float64)
    val = np.asarray(pca["eigenvalues"], dtype=np.float64)
    vec = np.asarray(pca["eigenvectors"], dtype=np.float64)
    if mean.shape != (3,) or val.shape != (3,) or vec.shape != (3, 3):
        raise ValueError(f"{name}: whitening needs RGB stats (3 means, 3 eigenvalues, 3x3 eigenvectors), got shapes "
                         f"{mean.shape}, {val.shape}, {vec.shape}")
    if not (np.isfinite(mean).all() and np.isfinite(val).all() and np.isfinite(vec).all()):
        raise ValueError(f"{name}: the stats are not finite")
    if (val + eps <= 0).any():
        raise ValueError(f"{name}: an eigenvalue + eps is <= 0 ({val.tolist()}, eps={eps}): the colours are degenerate; "
                         "pass a positive eps")
    w = np.diag(1.0 / np.sqrt(val + eps)) @ vec.T
    if zca:
        w = vec @ w
    return tuple(float(m) for m in mean), tuple(tuple(float(x) for x in row) for row in w)


def check_table(norm, has_tensor, dtype):
    """Raises ValueError naming std when (level - mean) / std, computed in float32 as torchvision
    does (and as the native table is filled), is not finite in the output dtype."""
    if dtype == "uint8" or norm.preset == "per_image":  # per-image values are bounded by sqrt(N)
        return
    if norm.preset == "whiten":  # |out_c| <= sum_j |W[c][j]| * max(|mean_j|, |1 - mean_j|) (plus Lighting's shift)
        w, m = np.abs(np.array(norm.matrix)), np.array(norm.mean)
        bound = float((w @ np.maximum(np.abs(m), np.abs(1 - m))).max())
        big = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38}.get(dtype, _F32_MAX)
        if not bound < big / 2:
            raise ValueError(f"Normalize('whiten') values reach {bound:.4g}, beyond {dtype}'s range: "
                             "use a larger eps or dtype='float32'")
        return
    if norm.preset == "minmax":
        lo, hi = norm.range
        big = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38}.get(dtype, _F32_MAX)
        if not all(abs(v) <= big for v in (lo, hi, hi - lo)):
            raise ValueError(f"Normalize('minmax', range={norm.range}) does not fit {dtype} output "
                             f"(largest finite: {big:.5g}); use a smaller range")
        return
    with np.errstate(all="ignore"):
        lv = np.arange(256, dtype=np.float32)
        x = lv / np.float32(255.0) if has_tensor else lv
        vals = (x[None, :] - np.array(norm.mean, np.float32)[:, None]) / np.array(norm.std, np.float32)[:, None]
        if dtype == "float16":
            vals = vals.astype(np.float16)
        elif dtype == "bfloat16":  # round to nearest even on the top 16 bits, as the native cast
            b = vals.view(np.uint32).astype(np.uint64)
            b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF
            vals = np.where((b & 0x7F80) == 0x7F80, np.inf, 0.0)
    bad = ~np.isfinite(vals).all(axis=1)
    if bad.any():
        c = int(np.flatnonzero(bad)[0])
        raise ValueError(f"Normalize std={list(norm.std)} is too small for {dtype} output: (x - mean) / std "
                         f"overflows to inf on channel {c} (largest finite {dtype}: "
                         f"{'65504' if dtype == 'float16' else '3.4e38'}); use a larger std"
                         + ("" if dtype == "float32" else " or dtype='float32'"))


# ----------------------------------------------------------------------------------------------
# Documentation


def op_table():
    """The README's op table (markdown), generated from the registry."""
    rows = ["| op | what it does | stage | converts from | adds to `return_params` |",
            "|---|---|---|---|---|"]
    for name, cls in _REGISTRY.items():
        if name.startswith("_"):
            continue
        tv = ", ".join([f"`{t}`" for t in cls.torchvision] + [f"`{_target_name(t)}`" for t in cls.converts]) or "-"
        params = ", ".join(f"`{p.split(' ', 1)[0]}`" + (f" {p.split(' ', 1)[1]}" if " " in p else "")
                           for p in cls.params) or "-"
        doc = " ".join((cls.__doc__ or "").split())
        first = doc.split(". ")[0].rstrip(".") + "." if doc else ""
        rows.append(f"| `{name}` | {first.replace('|', '/')} | {_STAGE_WORDS[cls.stage]} | {tv} | {params} |")
    return "\n".join(rows) + "\n"
