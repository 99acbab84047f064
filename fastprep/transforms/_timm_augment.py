"""timm's RandAugment and AutoAugment (timm/data/auto_augment.py) on the uint8 image after the
crop, with Pillow's arithmetic, as timm runs them on PIL images (Note [PIL augment arithmetic] in
csrc/kernels/pil_augment.h; the draws: Note [timm's policies] in csrc/pipeline/plan.h). timm is
not needed to build them; converting timm's own objects reads their ops and hparams."""
import math
import numbers
import re

from .. import _core
from ._args import AFTER_COLOR, POLICY_OPS, split_chains
from ._op import Op, Stage, register_op

TIMM_OPS = tuple(_core.TimmOp.__members__)

# timm's RandAugment op sets (rand_augment_choices), by name.
RAND_TRANSFORMS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
                   "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
RAND_INCREASING_TRANSFORMS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
                              "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
                              "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel",
                              "TranslateYRel")
RAND_WEIGHTED_0 = {"Rotate": 3, "ShearX": 2, "ShearY": 2, "TranslateXRel": 1, "TranslateYRel": 1,
                   "ColorIncreasing": .25, "SharpnessIncreasing": 0.25, "AutoContrast": 0.25,
                   "SolarizeIncreasing": .05, "SolarizeAdd": .05, "ContrastIncreasing": .05,
                   "BrightnessIncreasing": .05, "Equalize": .05, "PosterizeIncreasing": 0.05, "Invert": 0.05}
# timm's 3-Augment sets (DeiT III): '3a' uniform, '3aw' by these weights.
RAND_3A = ("SolarizeIncreasing", "Desaturate", "GaussianBlur")
RAND_WEIGHTED_3A = {"SolarizeIncreasing": 6, "Desaturate": 6, "GaussianBlur": 6, "Rotate": 3, "ShearX": 2, "ShearY": 2,
                    "PosterizeIncreasing": 1, "AutoContrast": 1, "ColorIncreasing": 1, "SharpnessIncreasing": 1,
                    "ContrastIncreasing": 1, "BrightnessIncreasing": 1, "Equalize": 1, "Invert": 1}
_GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "TranslateXRel", "TranslateYRel")
_FILTERS = {"bilinear": 2, "bicubic": 3, "random": -1}
_FILTER_NAMES = {2: "bilinear", 3: "bicubic"}
_DEFAULT_FILL = (128, 128, 128)  # timm's _FILL


def _filter_code(resample, what):
    """A PIL resampling filter (int, Image.Resampling, name, or timm's random tuple) -> 2, 3 or -1."""
    if isinstance(resample, (tuple, list)):
        codes = sorted(_filter_code(r, what) for r in resample)
        if codes != [2, 3]:
            raise ValueError(f"cannot fuse {what}: a random choice among filters {list(resample)!r} (fastprep draws "
                             "bilinear or bicubic)")
        return -1
    if isinstance(resample, str):
        if resample.lower() not in _FILTERS:
            raise ValueError(f"{what} interpolation must be bilinear, bicubic or random, got {resample!r}")
        return _FILTERS[resample.lower()]
    code = int(getattr(resample, "value", resample))
    if code not in (2, 3):
        raise ValueError(f"cannot fuse {what} with PIL filter {resample!r}: fastprep runs timm's geometric ops "
                         "bilinear or bicubic")
    return code


def _fill(img_mean, what):
    vals = list(img_mean) if isinstance(img_mean, (tuple, list)) else [img_mean] * 3
    if len(vals) != 3 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v <= 255
                                 and float(v) == int(v) for v in vals):
        raise ValueError(f"{what} img_mean must be 3 integer levels in [0, 255], got {img_mean!r}")
    return tuple(int(v) for v in vals)


class _Entry:
    """One of timm's AugmentOps: its name, probability, magnitude and hparams."""

    __slots__ = ("name", "prob", "magnitude", "magnitude_std", "magnitude_max", "hp", "filter")

    def __init__(self, name, prob, magnitude, magnitude_std, magnitude_max, hp, filt, what):
        if name not in TIMM_OPS:
            raise ValueError(f"cannot fuse {what}: timm op {name!r} has no native kernel (fastprep runs "
                             f"{', '.join(TIMM_OPS)})")
        if isinstance(prob, bool) or not isinstance(prob, numbers.Real) or not 0.0 <= prob <= 1.0:
            raise ValueError(f"{what} op {name} probability must be in [0, 1], got {prob!r}")
        for v, arg in ((magnitude, "magnitude"), (magnitude_max or 0, "magnitude_max")):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or abs(v) > 1e6:
                raise ValueError(f"{what} op {name} {arg} must be a finite number, got {v!r}")
        if isinstance(magnitude_std, bool) or not isinstance(magnitude_std, numbers.Real) or \
                not (magnitude_std >= 0 and (math.isinf(magnitude_std) or magnitude_std <= 1e6)):
            raise ValueError(f"{what} magnitude_std must be >= 0 (inf: uniform), got {magnitude_std!r}")
        if (magnitude_max or 0) < 0:
            raise ValueError(f"{what} magnitude_max must be >= 0, got {magnitude_max!r}")
        self.name, self.prob, self.magnitude = name, float(prob), float(magnitude)
        self.magnitude_std, self.magnitude_max = float(magnitude_std), float(magnitude_max or 0.0)
        self.hp, self.filter = float(hp), filt

    def __eq__(self, other):
        return isinstance(other, _Entry) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self):
        return (f"({self.name}, p={self.prob}, m={self.magnitude}, mstd={self.magnitude_std}"
                f"{f', mmax={self.magnitude_max}' if self.magnitude_max else ''})")


def _hparams(hparams, what):
    """timm's hparams -> (fill, filter code, translate_pct, translate_const, magnitude_std, magnitude_max)."""
    hp = dict(hparams or {})
    known = {"img_mean", "interpolation", "translate_pct", "translate_const", "magnitude_std", "magnitude_max"}
    unknown = sorted(set(hp) - known)
    if unknown:
        raise ValueError(f"{what} hparams {unknown} are not timm RandAugment/AutoAugment hparams fastprep knows "
                         f"({sorted(known)})")
    fill = _fill(hp.get("img_mean", _DEFAULT_FILL), what)
    filt = _filter_code(hp.get("interpolation", "random"), what)
    return (fill, filt, float(hp.get("translate_pct", 0.45)), float(hp.get("translate_const", 250)),
            hp.get("magnitude_std", 0.0), hp.get("magnitude_max", None))


def _entry_hp(name, translate_pct, translate_const):
    if name in ("TranslateXRel", "TranslateYRel"):
        return translate_pct
    return translate_const if name in ("TranslateX", "TranslateY") else 0.0


def _from_timm_op(op, what):
    """(entry, fill) of one of timm's AugmentOp objects."""
    hp = getattr(op, "hparams", {}) or {}
    kwargs = getattr(op, "kwargs", {}) or {}
    fill = _fill(kwargs.get("fillcolor", _DEFAULT_FILL), what)
    filt = _filter_code(kwargs.get("resample", "random"), what) if op.name in _GEOMETRIC else -1
    if op.name in ("TranslateX", "TranslateY") and "translate_const" not in hp:
        raise ValueError(f"cannot fuse {what}: {op.name} without hparams['translate_const']")
    entry = _Entry(op.name, op.prob, op.magnitude, getattr(op, "magnitude_std", 0.0) or 0.0,
                   getattr(op, "magnitude_max", None), _entry_hp(op.name, float(hp.get("translate_pct", 0.45)),
                                                                 float(hp.get("translate_const", 0.0))), filt, what)
    return entry, fill


def _parse_config(config_str, variant, what, fields, text=()):
    """timm's config string (``variant-k1v1-k2v2``) -> {key: value} of the sections present:
    ``fields`` maps each numeric key to its converter, ``text`` names the keys whose value is the
    rest of the section (RandAugment's ``t``); sections without a digit are ignored, as timm does."""
    if not isinstance(config_str, str) or config_str.split("-")[0] != variant:
        raise ValueError(f"{what} config_str must start with {variant!r}, got {config_str!r}")
    out = {}
    for c in config_str.split("-")[1:]:
        key = next((k for k in text if c.startswith(k)), None)
        if key is not None:
            out[key] = c[len(key):]
            continue
        cs = re.split(r"(\d.*)", c)
        if len(cs) < 2:
            continue
        key, val = cs[:2]
        try:
            if key not in fields:
                raise ValueError(f"unknown section {c!r}")
            out[key] = fields[key](val)
        except ValueError as e:
            raise ValueError(f"{what} config_str {config_str!r}: {e}") from None
    return out


def _read_timm_ops(groups, what):
    """([[entry, ...] per group], fill) of groups of timm's AugmentOp objects, which must share
    one fill colour."""
    pairs = [[_from_timm_op(o, what) for o in group] for group in groups]
    fills = {f for group in pairs for _, f in group}
    if len(fills) != 1:
        raise ValueError(f"cannot fuse {what}: its ops fill with different colours {sorted(fills)}")
    return [[e for e, _ in group] for group in pairs], fills.pop()


class _TimmPolicy(Op):
    stage = Stage.UINT8
    not_after = AFTER_COLOR
    exclusive = {}  # filled below: one policy per Compose
    params = ("timm_augment",)
    policy_code = 0

    def _set(self, entries, fill):
        self.entries = list(entries)
        self.fill = tuple(fill)
        if not self.entries:
            raise ValueError(f"{type(self).__name__} needs at least one op")

    def compile(self, spec, ctx):
        e = self.entries
        spec.timm_policy = self.policy_code
        spec.timm_ops = [int(getattr(_core.TimmOp, x.name)) for x in e]
        spec.timm_prob = [x.prob for x in e]
        spec.timm_mag = [x.magnitude for x in e]
        spec.timm_mstd = [x.magnitude_std for x in e]
        spec.timm_mmax = [x.magnitude_max for x in e]
        spec.timm_hp = [x.hp for x in e]
        spec.timm_filter = [x.filter for x in e]
        spec.timm_fill = [float(v) for v in self.fill]

    def sample_params(self, rec):
        out = []
        for k in range(int(rec["timm_n"])):
            name = _core.TimmOp(int(rec["timm_op"][k])).name
            filt = _FILTER_NAMES.get(int(rec["timm_filter"][k])) if name in _GEOMETRIC else None
            out.append([name, float(rec["timm_arg"][k]), filt])
        return {"timm_augment": out}

    @staticmethod
    def replay(image, params, fill=_DEFAULT_FILL):
        """Runs the recorded ``params["timm_augment"]`` through timm's own op functions on a PIL
        image (needs timm): what timm would have produced from the same draws."""
        try:
            from timm.data import auto_augment as aa
        except ImportError as e:
            raise ImportError("replaying timm's ops needs timm: pip install timm") from e
        from PIL import Image

        for name, arg, filt in params:
            # GaussianBlurRand's recorded argument is the radius it drew: timm's gaussian_blur
            fn = aa.gaussian_blur if name == "GaussianBlurRand" else aa.NAME_TO_OP[name]
            kw = {"fillcolor": tuple(fill), "resample": getattr(Image, "Resampling", Image).BILINEAR
                  if filt != "bicubic" else getattr(Image, "Resampling", Image).BICUBIC}
            args = () if name in ("AutoContrast", "Equalize", "Invert") else \
                (int(arg) if name.startswith(("Posterize", "Solarize")) else arg,)
            if name.startswith("Posterize") and int(arg) <= 0:
                # PosterizeIncreasing at magnitude 10: Pillow 13 refuses 0 bits (ValueError, which
                # stops timm's loader); older Pillow, and fastprep, give black
                image = Image.new(image.mode, image.size, 0)
                continue
            image = fn(image, *args, **kw)
        return image


@register_op
class TimmRandAugment(_TimmPolicy):
    """timm's RandAugment from its config string (``rand-m9-mstd0.5-inc1``: magnitude, num layers,
    per-op probability, magnitude noise, mmax, increasing ops, ``tweights``) and hparams, with
    Pillow's arithmetic on the uint8 image after the crop."""

    converts = ("timm.data.auto_augment.RandAugment",)
    policy_code = 1

    def __init__(self, config_str="rand-m9-mstd0.5", hparams=None):
        what = "TimmRandAugment"
        fill, filt, pct, const, mstd, mmax = _hparams(hparams, what)
        given = dict(hparams or {})  # timm's setdefault: hparams win over the string's mstd / mmax
        cfg = _parse_config(config_str, "rand", what, {"mstd": float, "mmax": int, "inc": lambda v: bool(int(v)),
                                                       "m": int, "n": int, "p": float}, text=("t",))
        if "mstd" in cfg and "magnitude_std" not in given:
            mstd = float("inf") if cfg["mstd"] > 100 else cfg["mstd"]
        if "mmax" in cfg and "magnitude_max" not in given:
            mmax = cfg["mmax"]
        magnitude, num_layers, prob = cfg.get("m", 10), cfg.get("n", 2), cfg.get("p", 0.5)
        increasing, transforms = cfg.get("inc", False), cfg.get("t")
        weights = None
        if transforms == "weights":
            names, weights = tuple(RAND_WEIGHTED_0), list(RAND_WEIGHTED_0.values())
        elif transforms == "3aw":
            names, weights = tuple(RAND_WEIGHTED_3A), list(RAND_WEIGHTED_3A.values())
        elif transforms == "3a":
            names = RAND_3A
        else:  # timm's rand_augment_choices: any other name is the default set
            names = RAND_INCREASING_TRANSFORMS if increasing else RAND_TRANSFORMS
        mx = int(_core.MAX_AUG_OPS)
        if not 0 <= num_layers <= mx:
            raise ValueError(f"{what} num_layers must be in [0, {mx}], got {num_layers}")
        entries = [_Entry(n, prob, magnitude, mstd, mmax, _entry_hp(n, pct, const),
                          filt if n in _GEOMETRIC else -1, what) for n in names]
        self._set(entries, fill)
        self.num_layers = int(num_layers)
        self.choice_weights = _weights(weights, len(entries), self.num_layers, what)

    def compile(self, spec, ctx):
        super().compile(spec, ctx)
        spec.timm_num_layers = self.num_layers
        spec.timm_weights = list(self.choice_weights or [])

    @classmethod
    def from_torchvision(cls, op, state):
        what = "timm's RandAugment"
        (entries,), fill = _read_timm_ops([op.ops], what)
        self = cls.__new__(cls)
        self._set(entries, fill)
        self.num_layers = int(op.num_layers)
        w = getattr(op, "choice_weights", None)
        self.choice_weights = _weights(None if w is None else [float(x) for x in w], len(entries),
                                       self.num_layers, what)
        return [self]


def _weights(weights, n, num_layers, what):
    if weights is None:
        return None
    if len(weights) != n or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"{what} choice weights must be {n} finite numbers >= 0")
    if sum(1 for w in weights if w > 0) < num_layers:
        raise ValueError(f"{what} draws {num_layers} ops without replacement but only "
                         f"{sum(1 for w in weights if w > 0)} have a positive weight")
    total = sum(weights)
    return [w / total for w in weights]


@register_op
class TimmAutoAugment(_TimmPolicy):
    """timm's AutoAugment: one sub-policy per sample (uniformly), each of its ops applied with its
    probability at its magnitude, with Pillow's arithmetic on the uint8 image after the crop.
    ``policy``: sub-policies of (op name, probability, magnitude), as timm's auto_augment_policy
    returns them; converting timm's AutoAugment object reads its policy."""

    converts = ("timm.data.auto_augment.AutoAugment",)
    policy_code = 2

    def __init__(self, policy, hparams=None):
        what = "TimmAutoAugment"
        fill, filt, pct, const, mstd, mmax = _hparams(hparams, what)
        subs = []
        try:
            for sub in policy:
                subs.append([_Entry(str(n), p, m, mstd, mmax, _entry_hp(str(n), pct, const),
                                    filt if n in _GEOMETRIC else -1, what) for n, p, m in sub])
        except (TypeError, ValueError) as e:
            if isinstance(e, ValueError) and str(e).startswith(what):
                raise
            raise ValueError(f"{what} policy must be sub-policies of (name, probability, magnitude): {e}") from None
        self._set_subs(subs, fill, what)

    def _set_subs(self, subs, fill, what):
        mx = int(_core.MAX_AUG_OPS)
        if not subs or any(not 1 <= len(s) <= mx for s in subs):
            raise ValueError(f"{what} needs sub-policies of 1 to {mx} ops")
        self._set([e for s in subs for e in s], fill)
        self.sub_len = [len(s) for s in subs]

    def compile(self, spec, ctx):
        super().compile(spec, ctx)
        spec.timm_sub_len = list(self.sub_len)

    @classmethod
    def from_torchvision(cls, op, state):
        what = "timm's AutoAugment"
        subs, fill = _read_timm_ops(op.policy, what)
        self = cls.__new__(cls)
        self._set_subs(subs, fill, what)
        return [self]


# timm's AugMix op set (_AUGMIX_TRANSFORMS).
AUGMIX_TRANSFORMS = ("AutoContrast", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
                     "SharpnessIncreasing", "Equalize", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
                     "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")


@register_op
class TimmAugMix(_TimmPolicy):
    """timm's AugMix from its config string (``augmix-m5-w4-d2``: severity, width, depth, ``a``
    alpha, ``mstd``, ``b1`` blended mode) and hparams, with Pillow's arithmetic on the uint8 image
    after the crop: chains of timm's ops mixed in float32 by Dirichlet weights, then blended with
    the image by a Beta draw; in blended mode, one Image.blend per chain by weights derived from
    both (Note [timm's AugMix] in csrc/pipeline/plan.h)."""

    converts = ("timm.data.auto_augment.AugMixAugment",)
    policy_code = 3
    params = ("timm_augmix",)

    def __init__(self, config_str="augmix-m3-w3", hparams=None):
        what = "TimmAugMix"
        given = dict(hparams or {})
        given.setdefault("translate_pct", 0.3)  # create_transform's AugMix hparams
        fill, filt, pct, const, mstd, mmax = _hparams(given, what)
        cfg = _parse_config(config_str, "augmix", what, {"mstd": float, "m": int, "w": int, "d": int, "a": float,
                                                         "b": lambda v: bool(int(v))})
        if "magnitude_std" not in given:  # timm's setdefault: the string's mstd, else uniform magnitudes
            mstd = cfg.get("mstd", float("inf"))
        magnitude, width, depth = cfg.get("m", 3), cfg.get("w", 3), cfg.get("d", -1)
        alpha, blended = cfg.get("a", 1.0), cfg.get("b", False)
        entries = [_Entry(n, 1.0, magnitude, mstd, mmax, _entry_hp(n, pct, const),
                          filt if n in _GEOMETRIC else -1, what) for n in AUGMIX_TRANSFORMS]
        self._set(entries, fill)
        self._mix_args(width, depth, alpha, blended, what)

    def _mix_args(self, width, depth, alpha, blended, what):
        mw, mx = int(_core.MAX_MEMBERS), int(_core.MAX_AUG_OPS)
        if not 1 <= width <= mw:
            raise ValueError(f"{what} width must be in [1, {mw}], got {width}")
        if not (depth == -1 or depth >= 1) or width * (depth if depth > 0 else 3) > mx:
            raise ValueError(f"{what} depth must be -1 or >= 1 with width * depth <= {mx}, got {depth}")
        if not (isinstance(alpha, numbers.Real) and 0 < alpha <= 1e6):
            raise ValueError(f"{what} alpha must be a positive number, got {alpha!r}")
        self.width, self.depth, self.alpha, self.blended = int(width), int(depth), float(alpha), bool(blended)

    def compile(self, spec, ctx):
        super().compile(spec, ctx)
        spec.augmix_width, spec.augmix_depth, spec.augmix_alpha = self.width, self.depth, self.alpha
        spec.timm_blended = self.blended

    def sample_params(self, rec):
        chains = split_chains(super().sample_params(rec)["timm_augment"], rec["timm_chain_len"], rec["timm_chains"])
        return {"timm_augmix": {"m": float(rec["timm_m"]), "weights": [float(x) for x in rec["timm_weight"][:len(chains)]],
                                "chains": chains, "blended": self.blended}}

    @staticmethod
    def replay(image, params, fill=_DEFAULT_FILL):
        """Runs the recorded ``params["timm_augmix"]`` through timm's op functions and
        AugMixAugment's mixing (needs timm and numpy): what timm gives for the same draws."""
        import numpy as np
        from PIL import Image

        if params.get("blended"):  # AugMixAugment._apply_blended, with timm's own weight arithmetic
            from timm.data.auto_augment import AugMixAugment

            ws = AugMixAugment([], blended=True)._calc_blended_weights(
                np.asarray(params["weights"], dtype=np.float32), np.float32(params["m"]))
            out = image
            for w, ops in zip(ws, params["chains"]):
                out = Image.blend(out, _TimmPolicy.replay(image, ops, fill), float(w))
            return out
        mixed = np.zeros((image.size[1], image.size[0], 3), dtype=np.float32)
        for w, ops in zip(params["weights"], params["chains"]):
            aug = _TimmPolicy.replay(image, ops, fill)
            mixed += np.float32(w) * np.asarray(aug, dtype=np.float32)
        np.clip(mixed, 0, 255.0, out=mixed)
        return Image.blend(image, Image.fromarray(mixed.astype(np.uint8)), float(np.float32(params["m"])))

    @classmethod
    def from_torchvision(cls, op, state):
        what = "timm's AugMixAugment"
        (entries,), fill = _read_timm_ops([op.ops], what)
        self = cls.__new__(cls)
        self._set(entries, fill)
        self._mix_args(int(op.width), int(op.depth), float(op.alpha), bool(getattr(op, "blended", False)), what)
        return [self]


for _c in (TimmRandAugment, TimmAutoAugment, TimmAugMix):
    _c.exclusive = {n: "{name} and {prev} cannot be combined: one augmentation policy per Compose"
                    for n in POLICY_OPS if n != _c.__name__}
