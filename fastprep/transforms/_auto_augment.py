"""The automatic augmentation policies of torchvision v2 on the uint8 image after the crop
(Note [Augment arithmetic] in csrc/kernels/augment.h): RandAugment, TrivialAugmentWide,
AutoAugment, AugMix, with their op spaces and magnitude tables."""
import numbers

from .. import _core
from ._args import AFTER_COLOR, POLICY_OPS, aug_fill, aug_interp, set_warp, split_chains, tv_fill
from ._op import Op, Stage, register_op

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
AA_POLICIES = {
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
    not_after = AFTER_COLOR
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
        set_warp(spec, "aug", self.interpolation, self.fill)

    def sample_params(self, rec):
        n = int(rec["aug_n"])
        return {"augment": [[_AUG_NAMES[int(rec["aug_op"][k])], float(rec["aug_mag"][k])] for k in range(n)]}

    def _warp_args(self, interpolation, fill):
        self.interpolation = aug_interp(interpolation, type(self).__name__)
        self.fill = aug_fill(fill, type(self).__name__, allow_none=True)


@register_op
class RandAugment(_Policy):
    """torchvision v2's RandAugment on the uint8 image after the crop: num_ops ops drawn from its
    14, each at the given magnitude bin with a random sign (Note [Augment arithmetic] in
    csrc/kernels/augment.h)."""

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
                    getattr(op.interpolation, "value", op.interpolation), tv_fill(op))]


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
        return [cls(op.num_magnitude_bins, getattr(op.interpolation, "value", op.interpolation), tv_fill(op))]


@register_op
class AutoAugment(_Policy):
    """torchvision v2's AutoAugment ("imagenet", "cifar10" or "svhn" policy) on the uint8 image
    after the crop: one sub-policy per sample, each of its two ops applied with its probability."""

    torchvision = ("AutoAugment",)
    policy_code = 3

    def __init__(self, policy="imagenet", interpolation="nearest", fill=None):
        name = str(getattr(policy, "value", policy)).lower()
        if name not in AA_POLICIES:
            raise ValueError(f"AutoAugment policy must be one of {sorted(AA_POLICIES)}, got {policy!r}")
        self.policy = name
        self.num_magnitude_bins = 10
        self._warp_args(interpolation, fill)

    def _entries(self):
        return [_AA_SPACE[op] + (p, 0 if b is None else b) for sub in AA_POLICIES[self.policy] for op, p, b in sub]

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.policy, getattr(op.interpolation, "value", op.interpolation), tv_fill(op))]


# torchvision v2's AugMix op space: (name, table, lo, hi, signed); all_ops adds the four blends.
_AUGMIX_PARTIAL = [("ShearX", "linspace", 0.0, 0.3, True), ("ShearY", "linspace", 0.0, 0.3, True),
                   ("TranslateX", "linspace_width", 0.0, 1.0 / 3.0, True),
                   ("TranslateY", "linspace_height", 0.0, 1.0 / 3.0, True), ("Rotate", "linspace", 0.0, 30.0, True),
                   ("Posterize", "posterize4", 0.0, 4.0, False), ("Solarize", "linspace", 1.0, 0.0, False),
                   ("AutoContrast", "none", 0.0, 0.0, False), ("Equalize", "none", 0.0, 0.0, False)]
_AUGMIX_ALL = _AUGMIX_PARTIAL + [(n, "linspace", 0.0, 0.9, True) for n in ("Brightness", "Color", "Contrast",
                                                                             "Sharpness")]


@register_op
class AugMix(_Policy):
    """torchvision v2's AugMix on the uint8 image after the crop: mixture_width chains of 1-3 (or
    chain_depth) policy ops at magnitude bins below severity, mixed with the image by Dirichlet
    weights in float32 (Note [AugMix arithmetic] in csrc/kernels/augment.h)."""

    torchvision = ("AugMix",)
    policy_code = 4

    def __init__(self, severity=3, mixture_width=3, chain_depth=-1, alpha=1.0, all_ops=True,
                 interpolation="bilinear", fill=None):
        if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or not 1 <= severity <= 10:
            raise ValueError(f"AugMix severity must be an int in [1, 10], got {severity!r}")
        mw = int(_core.MAX_MEMBERS)  # kMaxChains
        if isinstance(mixture_width, bool) or not isinstance(mixture_width, numbers.Integral) or \
                not 1 <= mixture_width <= mw:
            raise ValueError(f"AugMix mixture_width must be an int in [1, {mw}], got {mixture_width!r}")
        depth_max = chain_depth if isinstance(chain_depth, numbers.Integral) and chain_depth > 0 else 3
        if isinstance(chain_depth, bool) or not isinstance(chain_depth, numbers.Integral) or \
                not (chain_depth == -1 or chain_depth >= 1) or mixture_width * depth_max > int(_core.MAX_AUG_OPS):
            raise ValueError(f"AugMix chain_depth must be -1 or an int >= 1 with mixture_width * depth <= "
                             f"{int(_core.MAX_AUG_OPS)}, got {chain_depth!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha <= 1e6:
            raise ValueError(f"AugMix alpha must be a positive number, got {alpha!r}")
        self.severity, self.mixture_width, self.chain_depth = int(severity), int(mixture_width), int(chain_depth)
        self.alpha, self.all_ops = float(alpha), bool(all_ops)
        self.num_magnitude_bins = 10  # v2's _PARAMETER_MAX
        self._warp_args(interpolation, fill)

    def _entries(self):
        return [e + (0.0, 0) for e in (_AUGMIX_ALL if self.all_ops else _AUGMIX_PARTIAL)]

    def compile(self, spec, ctx):
        super().compile(spec, ctx)
        spec.aug_magnitude = self.severity
        spec.augmix_width, spec.augmix_depth, spec.augmix_alpha = self.mixture_width, self.chain_depth, self.alpha

    def sample_params(self, rec):
        chains = split_chains(super().sample_params(rec)["augment"], rec["aug_chain_len"], rec["aug_chains"])
        weights = [float(x) for x in rec["aug_weight"][:len(chains) + 1]]
        return {"augmix": {"weights": weights, "chains": chains}}

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.severity, op.mixture_width, op.chain_depth, op.alpha, op.all_ops,
                    getattr(op.interpolation, "value", op.interpolation), tv_fill(op))]


for _c in (RandAugment, TrivialAugmentWide, AutoAugment, AugMix):
    _c.exclusive = {n: "{name} and {prev} cannot be combined: one augmentation policy per Compose"
                    for n in POLICY_OPS if n != _c.__name__}
