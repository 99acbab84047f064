"""Geometric ops: the resize, padding and crop fused into the region decode and the resampler
(Resize, CenterCrop, Pad, RandomCrop, RandomResizedCrop), the flips fused into the resampler, and the warps on the uint8
image after the crop (RandomRotation, RandomAffine, RandomPerspective, ElasticTransform: csrc/kernels/augment.h)."""
import math
import numbers

from .. import _core

from ._args import (AFFINE_OPS, AFTER_COLOR, POLICY_OPS, ProbOp, aug_fill, aug_interp, degree_range, interp_name,
                    pair, prob, range2, set_warp, side, tv_antialias, tv_fill, tv_interp, tv_size)
from ._op import Op, Stage, register_op

_ONLY_RRC = "RandomResizedCrop must be the only resize/crop op"


@register_op
class Resize(Op):
    """Resize; an int resizes the shorter side (the longer side truncated, as torchvision),
    (h, w) resizes exactly. Antialiased when downscaling, as PIL and torchvision v2."""

    stage = Stage.GEOMETRY
    torchvision = ("Resize",)
    not_after = {n: "Resize must come first and once (Resize then CenterCrop is fused)"
                 for n in ("Resize", "CenterCrop", "RandomResizedCrop", "Pad", "RandomCrop", "FiveCrop", "TenCrop",
                           "RandomResize", "RandomShortestSize")}
    unique = False  # the not_after rules give the better message

    def __init__(self, size, interpolation="bilinear", max_size=None, antialias=True):
        if isinstance(size, (tuple, list)) and len(size) == 1:
            size = size[0]
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            self.size = side(size, "Resize")
        else:
            self.size = pair(size, "Resize")
            if max_size is not None:
                raise ValueError("Resize max_size is only allowed with an int size")
        if max_size is not None:
            max_size = side(max_size, "Resize", "max_size")
            if max_size <= self.size:
                raise ValueError(f"Resize max_size must be greater than size, got max_size={max_size}, "
                                 f"size={self.size}")
        self.interpolation = interp_name(interpolation)
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
        return [cls(tv_size(op.size), interpolation=tv_interp(op), max_size=getattr(op, "max_size", None),
                    antialias=tv_antialias(op))]


@register_op
class ResizeKeepRatio(Op):
    """Resizes keeping the aspect ratio to about ``size`` (h, w): timm's ResizeKeepRatio without
    its random scale and aspect. Per side r = image / target; the image is divided by
    ``longest * max(r) + (1 - longest) * min(r)`` and each side rounded (Python's round):
    ``longest=0`` makes it cover the target (its shorter side fits), ``longest=1`` fit inside it
    (timm's ``crop_mode="border"`` eval). The output size varies unless a crop follows."""

    stage = Stage.GEOMETRY
    converts = ("timm.data.transforms.ResizeKeepRatio",)
    not_after = Resize.not_after
    unique = False

    def __init__(self, size, longest=0.0, interpolation="bilinear"):
        self.size = pair(size, "ResizeKeepRatio")
        if isinstance(longest, bool) or not isinstance(longest, numbers.Real) or not 0.0 <= longest <= 1.0:
            raise ValueError(f"ResizeKeepRatio longest must be a number in [0, 1], got {longest!r}")
        self.longest = float(longest)
        self.interpolation = interp_name(interpolation)

    def compile(self, spec, ctx):
        spec.resize_mode, (spec.resize_h, spec.resize_w) = 5, self.size
        spec.keep_ratio_longest = self.longest
        spec.antialias = True
        ctx.interp = self.interpolation

    @classmethod
    def from_torchvision(cls, op, state):
        if op.random_scale_prob > 0 or op.random_aspect_prob > 0:
            raise ValueError(f"cannot fuse {op!r}: its random scale and aspect draw from Python's random")
        if isinstance(op.interpolation, (tuple, list)):
            raise ValueError(f"cannot fuse {op!r}: interpolation='random' draws from Python's random")
        return [cls(tuple(op.size), op.longest, interpolation=tv_interp(op))]


@register_op
class CenterCrop(Op):
    """Center crop; pads when the crop is larger than the image (as torchvision), with zeros or
    ``fill`` (a level, or one per channel: timm's CenterCropOrPad)."""

    stage = Stage.GEOMETRY
    torchvision = ("CenterCrop",)
    converts = ("timm.data.transforms.CenterCropOrPad",)
    not_after = {n: "CenterCrop after another crop cannot be fused"
                 for n in ("CenterCrop", "RandomResizedCrop", "RandomCrop", "FiveCrop", "TenCrop")}
    unique = False
    fill = 0  # the class default: CenterCrop(size) keeps its repr and pickles

    def __init__(self, size, fill=0):
        self.size = pair(size, "CenterCrop")
        levels = _pad_style(fill, "constant", "CenterCrop")[1]
        if any(levels):
            self.fill = int(levels[0]) if len(set(levels)) == 1 else tuple(int(v) for v in levels)

    def compile(self, spec, ctx):
        spec.crop_h, spec.crop_w = self.size
        if self.fill != 0:
            _set_pad_style(spec, _pad_style(self.fill, "constant", "CenterCrop"), "CenterCrop")
            spec.crop_pad_fill = True

    @classmethod
    def from_torchvision(cls, op, state):
        if type(op).__name__ == "CenterCropOrPad":
            if op.padding_mode != "constant":
                raise ValueError(f"cannot fuse {op!r}: padding_mode={op.padding_mode!r}")
            return [cls(tuple(op.size), op.fill)]
        return [cls(tv_size(op.size))]


class _RandomSize(Op):
    stage = Stage.GEOMETRY
    not_after = {n: "{name} must come first and once"
                 for n in ("Resize", "CenterCrop", "RandomResizedCrop", "Pad", "RandomCrop", "FiveCrop", "TenCrop",
                           "RandomResize", "RandomShortestSize")}

    def _resample(self, interpolation, antialias):
        self.interpolation = interp_name(interpolation)
        self.antialias = bool(antialias) if antialias is not None else True

    def compile(self, spec, ctx):
        spec.antialias = self.antialias
        ctx.interp = self.interpolation


@register_op
class RandomResize(_RandomSize):
    """Resizes the shorter side to a size uniform in [min_size, max_size) per sample (torchvision
    v2's RandomResize); the output size varies unless a crop follows."""

    torchvision = ("RandomResize",)
    params = ("resized (h, w)",)

    def __init__(self, min_size, max_size, interpolation="bilinear", antialias=True):
        self.min_size = side(min_size, "RandomResize", "min_size")
        self.max_size = side(max_size, "RandomResize", "max_size")
        if not self.min_size < self.max_size <= 2**24:
            raise ValueError(f"RandomResize needs min_size < max_size <= 2**24, got {min_size!r}, {max_size!r}")
        self._resample(interpolation, antialias)

    def compile(self, spec, ctx):
        super().compile(spec, ctx)
        spec.resize_mode, spec.resize_choices = 3, [self.min_size, self.max_size]

    def sample_params(self, rec):
        return {"resized": (int(rec["rz_h"]), int(rec["rz_w"]))}

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.min_size, op.max_size, tv_interp(op), tv_antialias(op))]


@register_op
class RandomShortestSize(_RandomSize):
    """Resizes so that the shorter side is one of ``min_size`` (drawn per sample) and the longer at
    most ``max_size`` (torchvision v2's RandomShortestSize); the output size varies unless a crop
    follows."""

    torchvision = ("RandomShortestSize",)
    params = ("resized (h, w)",)

    def __init__(self, min_size, max_size=None, interpolation="bilinear", antialias=True):
        sizes = list(min_size) if isinstance(min_size, (list, tuple)) else [min_size]
        if not 1 <= len(sizes) <= 4096:
            raise ValueError(f"RandomShortestSize min_size must hold 1 to 4096 sizes, got {min_size!r}")
        self.min_size = tuple(side(v, "RandomShortestSize", "min_size") for v in sizes)
        self.max_size = None if max_size is None else side(max_size, "RandomShortestSize", "max_size")
        self._resample(interpolation, antialias)

    def compile(self, spec, ctx):
        super().compile(spec, ctx)
        spec.resize_mode, spec.resize_choices = 4, list(self.min_size)
        spec.max_size = self.max_size or 0

    def sample_params(self, rec):
        return {"resized": (int(rec["rz_h"]), int(rec["rz_w"]))}

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(tuple(op.min_size), op.max_size, tv_interp(op), tv_antialias(op))]


@register_op
class RandomZoomOut(Op):
    """With probability p, the image placed at a random position on a canvas side_range times its
    size, filled with ``fill`` (torchvision v2's RandomZoomOut); the output size varies unless a
    crop follows."""

    stage = Stage.GEOMETRY
    torchvision = ("RandomZoomOut",)
    not_after = {n: "RandomZoomOut after a crop or padding cannot be fused: zoom out first"
                 for n in ("CenterCrop", "RandomResizedCrop", "RandomCrop", "FiveCrop", "TenCrop", "Pad")}
    params = ("zoom_padding (left, top, right, bottom)",)

    def __init__(self, fill=0, side_range=(1.0, 4.0), p=0.5):
        self.fill = _pad_style(fill, "constant", "RandomZoomOut")[1]
        lo, hi = range2(side_range, "RandomZoomOut", "side_range")
        if not 1.0 <= lo <= hi <= 64.0:
            raise ValueError(f"RandomZoomOut side_range must satisfy 1 <= lo <= hi (<= 64), got {side_range!r}")
        self.side_range = (lo, hi)
        self.p = prob(p, "RandomZoomOut")

    def compile(self, spec, ctx):
        _set_pad_style(spec, (0, list(self.fill)), "RandomZoomOut")
        spec.zoom_p, (spec.zoom_lo, spec.zoom_hi) = self.p, self.side_range
        spec.pad_fill = list(self.fill)

    def sample_params(self, rec):
        return {"zoom_padding": tuple(int(v) for v in rec["pad"])}

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(getattr(op, "fill", 0), tuple(op.side_range), op.p)]


class _MultiCrop(Op):
    """FiveCrop / TenCrop: several equal-size crops of one image; a batch is (N, K, C, H, W),
    torchvision's tuple stacked. ``crops``: per output, (crop_anchor, hflip, vflip) (the native
    plan field crop_anchor: 1-4 the corners, 5 the centre). Later ops apply to every crop with
    the same draws, as torchvision v2 applies one transform call to the tuple."""

    stage = Stage.GEOMETRY
    not_after = {n: "{name} after another crop cannot be fused"
                 for n in ("CenterCrop", "RandomResizedCrop", "RandomCrop", "FiveCrop", "TenCrop")}
    crops = ()

    def compile(self, spec, ctx):
        spec.crop_h, spec.crop_w = self.size


@register_op
class FiveCrop(_MultiCrop):
    """The four corner crops and the centre crop of ``size`` (torchvision's FiveCrop: top-left,
    top-right, bottom-left, bottom-right, centre); an image smaller than the crop is an
    ImageTooSmallError, as torchvision refuses it."""

    torchvision = ("FiveCrop",)
    crops = ((1, False, False), (2, False, False), (3, False, False), (4, False, False), (5, False, False))

    def __init__(self, size):
        self.size = pair(size, "FiveCrop")

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(tv_size(op.size))]


@register_op
class TenCrop(_MultiCrop):
    """FiveCrop of the image and of its mirror (horizontal, or vertical with vertical_flip=True),
    in torchvision's order."""

    torchvision = ("TenCrop",)

    def __init__(self, size, vertical_flip=False):
        self.size = pair(size, "TenCrop")
        self.vertical_flip = bool(vertical_flip)

    @property
    def crops(self):
        # five_crop of the mirrored image: its corners are the mirrored opposite corners, its
        # centre the mirrored image's own centre crop (anchors 6 and 7: rounding is not symmetric)
        mirror = (2, 1, 4, 3, 6) if not self.vertical_flip else (3, 4, 1, 2, 7)
        return FiveCrop.crops + tuple((a, not self.vertical_flip, self.vertical_flip) for a in mirror)

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(tv_size(op.size), op.vertical_flip)]


def _padding(padding, what):
    """torchvision's padding forms (an int; (all,); (left/right, top/bottom); (left, top, right,
    bottom)) -> [left, top, right, bottom]."""
    p = list(padding) if isinstance(padding, (tuple, list)) else [padding]
    ok = len(p) in (1, 2, 4) and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v <= 2**20
                                      for v in p)
    if not ok:
        raise ValueError(f"{what} padding must be an int in [0, 2**20] or a sequence of 1, 2 or 4 of them, "
                         f"got {padding!r}")
    p = [int(v) for v in p]
    return p * 4 if len(p) == 1 else ([p[0], p[1], p[0], p[1]] if len(p) == 2 else p)


_PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def _pad_style(fill, padding_mode, what):
    """torchvision's (fill, padding_mode) -> (mode, [3 fill levels]) (Note [Padding modes] in
    csrc/pipeline/plan.h); a fill that is not integer levels is not fused."""
    if padding_mode not in _PAD_MODES:
        raise ValueError(f"{what} padding_mode must be one of {_PAD_MODES}, got {padding_mode!r}")
    if isinstance(fill, dict):  # v2 keeps {type: fill}: one value for images is all that matters
        vals = {repr(v) for v in fill.values()}
        if len(vals) > 1:
            raise ValueError(f"{what}: a per-type fill dict with different values is not fused")
        fill = next(iter(fill.values()), 0)
    vals = [0] if fill is None else (list(fill) if isinstance(fill, (tuple, list)) else [fill])
    ok = len(vals) in (1, 3) and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v <= 255
                                     and float(v).is_integer() for v in vals)
    if not ok:
        raise ValueError(f"{what} fill={fill!r} is not fused (integer levels in [0, 255], one or one per channel)")
    vals = [float(v) for v in vals]
    return _PAD_MODES.index(padding_mode), (vals * 3 if len(vals) == 1 else vals)


def _set_pad_style(spec, style, what):
    mode, fill = style
    old = (spec.pad_mode, list(spec.pad_fill))
    if spec.pad and any(spec.pad) and old != (mode, fill):
        raise ValueError(f"{what}: a second padding style cannot be fused (pad once)")
    spec.pad_mode, spec.pad_fill = mode, fill


def _add_pad(spec, pad):
    old = list(spec.pad) or [0, 0, 0, 0]
    spec.pad = [a + b for a, b in zip(old, pad)]


@register_op
class Pad(Op):
    """Padding around the (resized) image: torchvision's Pad, "constant" (integer fill levels),
    "edge", "reflect" or "symmetric" (Note [Padding modes] in csrc/pipeline/plan.h)."""

    stage = Stage.GEOMETRY
    torchvision = ("Pad",)
    not_after = {n: "Pad after a crop cannot be fused: pad before cropping"
                 for n in ("CenterCrop", "RandomResizedCrop", "RandomCrop", "FiveCrop", "TenCrop")}
    unique = False

    def __init__(self, padding, fill=0, padding_mode="constant"):
        self.padding = tuple(_padding(padding, "Pad"))
        self.fill, self.padding_mode = _pad_style(fill, padding_mode, "Pad")[1], padding_mode

    def compile(self, spec, ctx):
        _set_pad_style(spec, _pad_style(self.fill, self.padding_mode, "Pad"), "Pad")
        _add_pad(spec, self.padding)

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.padding, getattr(op, "fill", 0), getattr(op, "padding_mode", "constant"))]


@register_op
class RandomCrop(Op):
    """A crop of ``size`` at a uniformly drawn position of the padded image (torchvision's
    RandomCrop: padding, pad_if_needed, fill, padding_mode; Note [Padding modes])."""

    stage = Stage.GEOMETRY
    torchvision = ("RandomCrop",)
    not_after = {n: "RandomCrop after another crop cannot be fused"
                 for n in ("CenterCrop", "RandomResizedCrop", "RandomCrop", "FiveCrop", "TenCrop")}
    params = ("crop_offset (top, left of the output on the unpadded image; < 0 inside the padding)",)

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = pair(size, "RandomCrop")
        self.padding = None if padding is None else tuple(_padding(padding, "RandomCrop"))
        self.pad_if_needed = bool(pad_if_needed)
        self.fill, self.padding_mode = _pad_style(fill, padding_mode, "RandomCrop")[1], padding_mode
        if padding_mode != "constant" and self.pad_if_needed:
            raise ValueError(f"RandomCrop pad_if_needed with padding_mode={padding_mode!r} is not fused")

    def compile(self, spec, ctx):
        spec.rcrop = True
        spec.rcrop_h, spec.rcrop_w = self.size
        spec.rcrop_if_needed = self.pad_if_needed
        if self.padding is not None:
            _set_pad_style(spec, _pad_style(self.fill, self.padding_mode, "RandomCrop"), "RandomCrop")
            _add_pad(spec, self.padding)
        if spec.pad_mode != 0 and spec.pad:
            left, top, right, bottom = spec.pad
            if not (self.size[0] > 2 * max(top, bottom) and self.size[1] > 2 * max(left, right)):
                # a mirrored pixel could lie outside the window (Note [Padding modes])
                raise ValueError(f"RandomCrop {self.size} with {_PAD_MODES[spec.pad_mode]} padding {tuple(spec.pad)} "
                                 "is not fused: the crop must be larger than twice the padding")

    def sample_params(self, rec):
        return {"crop_offset": (int(rec["off_y"]), int(rec["off_x"]))}

    @classmethod
    def from_torchvision(cls, op, state):
        padding = op.padding
        if padding is not None and type(op).__module__.startswith("torchvision.transforms.v2"):
            left, right, top, bottom = padding  # v2 keeps _parse_pad_padding's order
            padding = (left, top, right, bottom)
        return [cls(tv_size(op.size), padding, op.pad_if_needed, getattr(op, "fill", 0),
                    getattr(op, "padding_mode", "constant"))]


@register_op
class RandomResizedCrop(Op):
    """Random area/aspect crop resized to ``size``: torchvision's get_params distribution,
    including its 10-attempt fallback, drawn from a stream keyed by (seed, epoch, index).
    ``interpolation="random"``: bilinear or bicubic with equal chances per sample (timm's
    RandomResizedCropAndInterpolation(interpolation="random")), ``params["interpolation"]``."""

    stage = Stage.GEOMETRY
    torchvision = ("RandomResizedCrop",)
    # timm's: the same get_params distribution, on PIL images (PIL's resampling)
    converts = ("timm.data.transforms.RandomResizedCropAndInterpolation",)
    not_after = {n: _ONLY_RRC for n in ("Resize", "CenterCrop", "RandomResizedCrop", "Pad", "RandomCrop", "FiveCrop",
                                        "TenCrop", "RandomResize", "RandomShortestSize")}
    unique = False
    params = ("box", "interpolation (interpolation='random')")

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), interpolation="bilinear",
                 antialias=True):
        self.size = pair(size, "RandomResizedCrop")
        self.scale = range2(scale, "RandomResizedCrop", "scale")
        self.ratio = range2(ratio, "RandomResizedCrop", "ratio")
        if not (0 < self.scale[0] <= self.scale[1]):
            raise ValueError(f"RandomResizedCrop scale must satisfy 0 < lo <= hi, got {scale}")
        if not (0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"RandomResizedCrop ratio must satisfy 0 < lo <= hi, got {ratio}")
        self.interpolation = "random" if interpolation == "random" else interp_name(interpolation)
        self.antialias = bool(antialias) if antialias is not None else True

    def compile(self, spec, ctx):
        spec.rrc = True
        spec.rrc_h, spec.rrc_w = self.size
        spec.scale_lo, spec.scale_hi = self.scale
        spec.ratio_lo, spec.ratio_hi = self.ratio
        spec.antialias = self.antialias
        spec.interp_random = self.interpolation == "random"
        ctx.interp = "bilinear" if self.interpolation == "random" else self.interpolation

    def sample_params(self, rec):
        if self.interpolation != "random":
            return {}
        return {"interpolation": _core.Interp(int(rec["interp"])).name}

    @classmethod
    def from_torchvision(cls, op, state):
        interp = op.interpolation
        if isinstance(interp, (tuple, list)):  # timm's interpolation="random": bilinear or bicubic
            names = sorted(getattr(m, "value", str(m)).lower() for m in interp)
            if names != ["bicubic", "bilinear"]:
                raise ValueError(f"cannot fuse {type(op).__name__} with a random choice of {names}")
            return [cls(tv_size(op.size), scale=tuple(op.scale), ratio=tuple(op.ratio), interpolation="random",
                        antialias=tv_antialias(op))]
        return [cls(tv_size(op.size), scale=tuple(op.scale), ratio=tuple(op.ratio), interpolation=tv_interp(op),
                    antialias=tv_antialias(op))]




@register_op
class RandomHorizontalFlip(ProbOp):
    """Mirrors left-right with probability p (fused: the resampler emits columns reversed)."""

    stage = Stage.UINT8
    torchvision = ("RandomHorizontalFlip",)
    params = ("flip",)

    def compile(self, spec, ctx):
        spec.flip_p = self.p


@register_op
class RandomVerticalFlip(ProbOp):
    """Mirrors top-bottom with probability p (fused: the vertical pass emits rows reversed)."""

    stage = Stage.UINT8
    torchvision = ("RandomVerticalFlip",)
    params = ("vflip",)

    def compile(self, spec, ctx):
        spec.vflip_p = self.p

    def sample_params(self, rec):
        return {"vflip": bool(rec["vflip"])}



class _Warp(Op):
    stage = Stage.UINT8
    not_after = {**AFTER_COLOR, **{n: "{name} after {prev} cannot be fused: the fused pass warps before the "
                                       "policy's ops; put {name} first" for n in POLICY_OPS}}
    params = ("affine",)

    def sample_params(self, rec):
        return {"affine": [float(x) for x in rec["affine"]] if rec["affine_on"] else None}


@register_op
class RandomRotation(_Warp):
    """Rotates by an angle uniform in degrees about the centre, on the uint8 image after the crop,
    as torchvision v2's F.rotate on tensors (nearest or bilinear, fill outside)."""

    torchvision = ("RandomRotation",)
    exclusive = {"RandomAffine": "RandomRotation and RandomAffine cannot be combined: use one RandomAffine",
                 "RandomPerspective": "RandomRotation and RandomPerspective cannot be combined: one warp per Compose"}

    def __init__(self, degrees, interpolation="nearest", expand=False, fill=0):
        self.degrees = degree_range(degrees, "RandomRotation")
        self.interpolation = aug_interp(interpolation, "RandomRotation")
        if expand:
            raise ValueError("RandomRotation expand=True changes the image size after the crop, and fastprep's output "
                             "size is fixed by the geometric ops: use expand=False (followed by a crop in torchvision "
                             "terms, rotate a larger crop)")
        self.expand = False
        self.fill = aug_fill(fill, "RandomRotation", allow_none=True)

    def compile(self, spec, ctx):
        spec.affine_mode = 1
        spec.degrees_lo, spec.degrees_hi = self.degrees
        set_warp(spec, "affine", self.interpolation, self.fill)

    @classmethod
    def from_torchvision(cls, op, state):
        if getattr(op, "center", None) is not None:
            raise ValueError("RandomRotation with a center cannot be converted: fastprep rotates about the image centre")
        return [cls(tuple(op.degrees), getattr(op.interpolation, "value", op.interpolation), bool(op.expand),
                    tv_fill(op))]


@register_op
class RandomAffine(_Warp):
    """Random rotation, translation, scale and shear about the centre, on the uint8 image after
    the crop, as torchvision v2's RandomAffine draws them and F.affine warps tensors."""

    torchvision = ("RandomAffine",)
    exclusive = {"RandomRotation": "RandomRotation and RandomAffine cannot be combined: use one RandomAffine",
                 "RandomPerspective": "RandomAffine and RandomPerspective cannot be combined: one warp per Compose"}

    def __init__(self, degrees, translate=None, scale=None, shear=None, interpolation="nearest", fill=0):
        self.degrees = degree_range(degrees, "RandomAffine")
        if translate is not None:
            t = range2(translate, "RandomAffine", "translate")
            if not all(0.0 <= v <= 1.0 for v in t):
                raise ValueError(f"RandomAffine translate values should be between 0 and 1, got {translate!r}")
            translate = t
        self.translate = translate
        if scale is not None:
            s = range2(scale, "RandomAffine", "scale")
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
        self.interpolation = aug_interp(interpolation, "RandomAffine")
        self.fill = aug_fill(fill, "RandomAffine", allow_none=True)

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
        set_warp(spec, "affine", self.interpolation, self.fill)

    @classmethod
    def from_torchvision(cls, op, state):
        if getattr(op, "center", None) is not None:
            raise ValueError("RandomAffine with a center cannot be converted: fastprep warps about the image centre")
        opt = lambda v: None if v is None else tuple(v)  # noqa: E731
        return [cls(tuple(op.degrees), opt(op.translate), opt(op.scale), opt(op.shear),
                    getattr(op.interpolation, "value", op.interpolation), tv_fill(op))]


# torchvision v2's _AUGMENTATION_SPACE entries: (op name, magnitude table, lo, hi, signed); the
# table is torch.linspace(lo, hi, bins) ("linspace"), with hi times the image width or height,
# or 8 - round(arange(bins) / ((bins - 1) / hi)) ("posterize").


@register_op
class RandomPerspective(_Warp):
    """With probability p, a perspective warp moving each corner inward by up to distortion_scale
    of half the side, on the uint8 image after the crop, as torchvision v2's RandomPerspective and
    F.perspective on tensors (nearest or bilinear, fill outside)."""

    torchvision = ("RandomPerspective",)
    exclusive = {n: "RandomPerspective and {prev} cannot be combined: one warp per Compose"
                 for n in ("RandomRotation", "RandomAffine")}
    params = ("perspective (its 8 coefficients and the corners' end points, None when not applied)",)

    def __init__(self, distortion_scale=0.5, p=0.5, interpolation="bilinear", fill=0):
        d = distortion_scale
        if isinstance(d, bool) or not isinstance(d, numbers.Real) or not 0 <= d <= 1:
            raise ValueError(f"RandomPerspective distortion_scale must be in [0, 1], got {distortion_scale!r}")
        self.distortion_scale = float(d)
        self.p = prob(p, "RandomPerspective")
        self.interpolation = aug_interp(interpolation, "RandomPerspective")
        self.fill = aug_fill(fill, "RandomPerspective", allow_none=True)

    def compile(self, spec, ctx):
        spec.affine_mode, spec.persp_scale, spec.persp_p = 3, self.distortion_scale, self.p
        set_warp(spec, "affine", self.interpolation, self.fill)

    def sample_params(self, rec):
        if not rec["affine_on"]:
            return {"perspective": None}
        e = [int(v) for v in rec["perspective_end"]]
        return {"perspective": {"coefficients": [float(x) for x in rec["perspective"]],
                                "endpoints": [e[0:2], e[2:4], e[4:6], e[6:8]]}}

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.distortion_scale, op.p, getattr(op.interpolation, "value", op.interpolation), tv_fill(op))]


@register_op
class ElasticTransform(_Warp):
    """A random elastic warp on the uint8 image after the crop, as torchvision v2's
    ElasticTransform: uniform noise in [-1, 1] per pixel and axis, Gaussian-blurred with sigma,
    scaled by alpha / side, displacing every pixel (F.elastic: nearest or bilinear, fill outside).
    The displacement is a function of the sample's recorded ``elastic_seed``:
    :meth:`displacement` rebuilds it, in F.elastic's (1, H, W, 2) layout, for a replay."""

    torchvision = ("ElasticTransform",)
    params = ("elastic_seed (the key of the sample's displacement: ElasticTransform.displacement(params))",)

    def __init__(self, alpha=50.0, sigma=5.0, interpolation="bilinear", fill=0):
        self.alpha = self._pair(alpha, "alpha")
        self.sigma = self._pair(sigma, "sigma")
        if (self.sigma[0] > 0) != (self.sigma[1] > 0):
            raise ValueError(f"ElasticTransform sigmas must both be 0 or both > 0 (torchvision blurs each "
                             f"displacement with both), got {sigma!r}")
        if max(self.sigma) > 127:
            raise ValueError(f"ElasticTransform sigma must be at most 127 (a blur kernel of 1017), got {sigma!r}")
        self.interpolation = aug_interp(interpolation, "ElasticTransform")
        self.fill = aug_fill(fill, "ElasticTransform", allow_none=True)

    @staticmethod
    def _pair(v, what):
        vals = list(v) if isinstance(v, (tuple, list)) else [v]
        if len(vals) not in (1, 2) or not all(isinstance(x, numbers.Real) and not isinstance(x, bool)
                                              and 0 <= x <= 1e6 for x in vals):
            raise ValueError(f"ElasticTransform {what} must be a number in [0, 1e6] or a pair of them, got {v!r}")
        vals = [float(x) for x in vals]
        return tuple(vals * 2 if len(vals) == 1 else vals)

    def compile(self, spec, ctx):
        spec.affine_mode = 4
        spec.elastic_alpha_x, spec.elastic_alpha_y = self.alpha
        spec.elastic_sigma_x, spec.elastic_sigma_y = self.sigma
        set_warp(spec, "affine", self.interpolation, self.fill)

    def sample_params(self, rec):
        return {"elastic_seed": int(rec["elastic_seed"]), "elastic_size": [int(rec["out_h"]), int(rec["out_w"])]}

    def displacement(self, params):
        """The sample's displacement, float32 (1, H, W, 2), as ``F.elastic(img, displacement)``
        takes it (``params``: a sample's params dict from ``return_params``)."""
        h, w = params["elastic_size"]
        return _core.elastic_displacement(params["elastic_seed"], h, w, self.alpha[0], self.alpha[1],
                                          self.sigma[0], self.sigma[1])

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(tuple(op.alpha), tuple(op.sigma), getattr(op.interpolation, "value", op.interpolation),
                    tv_fill(op))]


_WARPS = (RandomRotation, RandomAffine, RandomPerspective, ElasticTransform)
for _w in _WARPS:
    for _o in _WARPS:
        if _o is not _w and _o.__name__ not in _w.exclusive:
            _w.exclusive = {**_w.exclusive,
                            _o.__name__: f"{_w.__name__} and {_o.__name__} cannot be combined: one warp per Compose"}


_FLIP_AFTER_WARP = {n: "{name} after {prev} cannot be fused: flips run in the resampler, before any warp; put "
                       "{name} first" for n in AFFINE_OPS + POLICY_OPS}
RandomHorizontalFlip.not_after = {**RandomHorizontalFlip.not_after, **_FLIP_AFTER_WARP}
# The sequence's ops are symmetric (blur, sharpness) or per pixel: a flip commutes with them.
RandomHorizontalFlip.commutes_with_sequence = RandomVerticalFlip.commutes_with_sequence = True
# TenCrop's mirrored crops flip already: a random flip after it would be XORed, not fused.
TenCrop.exclusive = {n: "{name} and {prev} cannot be combined: TenCrop's mirrored crops are flipped already"
                     for n in ("RandomHorizontalFlip", "RandomVerticalFlip")}
RandomVerticalFlip.not_after = {**RandomVerticalFlip.not_after, **_FLIP_AFTER_WARP}
