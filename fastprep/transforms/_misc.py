"""GaussianBlur (the uint8 op sequence, csrc/kernels/filter.h), and the ops on the float output:
ToTensor (and the container conversions), Lighting, Normalize (per channel, per image, whitening)
and RandomErasing."""
import math
import numbers

import numpy as np

from .. import _core
from ._args import F32_MAX, SequenceOp, pix_values, prob, range2
from ._op import Op, Stage, register_op


@register_op
class GaussianBlur(SequenceOp):
    """Gaussian blur with sigma uniform in [sigma_lo, sigma_hi] per sample, torchvision v2's uint8
    arithmetic (reflect padding; Note [GaussianBlur arithmetic] in csrc/kernels/filter.h)."""

    torchvision = ("GaussianBlur",)
    code, key = "gaussian_blur", "gaussian_blur"
    params = ("gaussian_blur (its sigma)",)

    def __init__(self, kernel_size, sigma=(0.1, 2.0)):
        ks = kernel_size
        ks = [ks, ks] if isinstance(ks, numbers.Integral) and not isinstance(ks, bool) else list(ks) \
            if isinstance(ks, (tuple, list)) and len(ks) in (1, 2) else None
        if ks is None or not all(isinstance(k, numbers.Integral) and not isinstance(k, bool)
                                 and 1 <= k <= _core.MAX_BLUR_KERNEL and k % 2 == 1 for k in ks):
            raise ValueError(f"GaussianBlur kernel_size must be an odd int (or (x, y) of them) in [1, "
                             f"{int(_core.MAX_BLUR_KERNEL)}], got {kernel_size!r}")
        self.kernel_size = (int(ks[0]), int(ks[-1]))  # (x, y), as torchvision
        if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
            lo = hi = float(sigma)
        elif isinstance(sigma, (tuple, list)) and len(sigma) in (1, 2):
            lo, hi = range2((sigma[0], sigma[-1]), "GaussianBlur", "sigma")
        else:
            raise ValueError(f"GaussianBlur sigma must be a number or (min, max), got {sigma!r}")
        if not (0.0 < lo <= hi <= F32_MAX):
            raise ValueError(f"GaussianBlur sigma must satisfy 0 < min <= max, got {sigma!r}")
        self.sigma = (lo, hi)

    def args(self):
        return [self.kernel_size[0], self.kernel_size[1], self.sigma[0], self.sigma[1]]

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(tuple(op.kernel_size), tuple(op.sigma))]

    def slot_params(self, rec, slot):
        return {self.key: float(pix_values(rec, slot)[0]) if rec["px_on"][slot] else None}


@register_op
class PILGaussianBlur(SequenceOp):
    """With probability p, Pillow's ImageFilter.GaussianBlur(radius) with radius uniform in
    [lo, hi] per sample: the blur of DINO's and MoCo v2's own GaussianBlur classes (three
    extended box blurs per axis, Pillow's integer arithmetic: Note [PIL GaussianBlur])."""

    code, key = "pil_gaussian_blur", "pil_gaussian_blur"
    params = ("pil_gaussian_blur (its radius; None when not applied)",)

    def __init__(self, radius=(0.1, 2.0), p=1.0):
        if isinstance(radius, numbers.Real) and not isinstance(radius, bool):
            lo = hi = float(radius)
        elif isinstance(radius, (tuple, list)) and len(radius) == 2:
            lo, hi = range2(radius, "PILGaussianBlur", "radius")
        else:
            raise ValueError(f"PILGaussianBlur radius must be a number or (min, max), got {radius!r}")
        if not 0.0 <= lo <= hi <= 1000.0:
            raise ValueError(f"PILGaussianBlur radius must satisfy 0 <= min <= max <= 1000, got {radius!r}")
        self.radius = (lo, hi)
        self.p = prob(p, "PILGaussianBlur")

    def args(self):
        return [self.p, self.radius[0], self.radius[1]]

    def slot_params(self, rec, slot):
        return {self.key: float(pix_values(rec, slot)[0]) if rec["px_on"][slot] else None}


@register_op
class JPEG(SequenceOp):
    """JPEG compression at a quality uniform in [lo, hi] per sample: the image encoded and decoded
    in the pass with libjpeg-turbo, as torchvision v2's JPEG (encode_jpeg, decode_jpeg)."""

    torchvision = ("JPEG",)
    code, key = "jpeg", "jpeg_quality"
    params = ("jpeg_quality",)

    def __init__(self, quality):
        q = [quality, quality] if isinstance(quality, numbers.Integral) and not isinstance(quality, bool) else \
            list(quality) if isinstance(quality, (tuple, list)) else None
        if q is None or len(q) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in q) \
                or not 1 <= q[0] <= q[1] <= 100:
            raise ValueError(f"JPEG quality must be an int or (lo, hi) of ints with 1 <= lo <= hi <= 100, got "
                             f"{quality!r}")
        self.quality = (int(q[0]), int(q[1]))

    def args(self):
        return list(self.quality)

    def check_output(self, out):
        if out.channels != 3 or out.color not in ("RGB", "BGR"):
            raise ValueError("JPEG needs an RGB or BGR output")

    def slot_params(self, rec, slot):
        return {self.key: int(pix_values(rec, slot)[0]) if rec["px_on"][slot] else None}

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(tuple(op.quality))]


@register_op
class ToTensor(Op):
    """Float output in [0, 1], CHW: torchvision's ToTensor, v1's ConvertImageDtype (level / 255),
    or, with ``multiply=True``, v2's ToDtype(float, scale=True) and v2's ConvertImageDtype (level *
    float32(1 / 255)); the two differ by one ulp on 126 of the 256 levels, and from_torchvision
    picks the one the converted class computes. ``scale=False``: the levels as floats, 0-255
    (timm's ``ToTensor``, ``pil_to_tensor(img).float()``); a Normalize after it then works on
    0-255 values, as it would in torch."""

    stage = Stage.TENSOR
    torchvision = ("ToTensor", "ToDtype", "ConvertImageDtype")
    # timm's MaybeToTensor is torchvision's to_tensor of a PIL image; timm's ToTensor keeps 0-255
    converts = ("timm.data.transforms.MaybeToTensor", "timm.data.transforms.ToTensor")
    multiply = False  # the class defaults: ToTensor() keeps the repr and pickles it had before the arguments
    scale = True

    def __init__(self, multiply=False, scale=True):
        if not isinstance(multiply, bool):
            raise ValueError(f"ToTensor multiply must be True or False, got {multiply!r}")
        if not isinstance(scale, bool):
            raise ValueError(f"ToTensor scale must be True or False, got {scale!r}")
        if multiply and not scale:
            raise ValueError("ToTensor(multiply=True) scales the levels: it cannot go with scale=False")
        if multiply:
            self.multiply = True
        if not scale:
            self.scale = False

    def compile(self, spec, ctx):
        ctx.has_tensor = True
        ctx.levels = not self.scale
        spec.unit_mul = self.multiply

    @classmethod
    def from_torchvision(cls, op, state):
        name = type(op).__name__
        if name == "ToTensor" and type(op).__module__.startswith("timm."):  # 0-255 floats
            import torch

            if op.dtype == torch.uint8:  # pil_to_tensor as it is: CHW uint8 levels
                state["dtype"] = "uint8"
                return []
            if op.dtype not in (torch.float32, torch.float16, torch.bfloat16):
                raise ValueError(f"cannot fuse {op!r}: dtype {op.dtype} is not supported")
            state["dtype"] = str(op.dtype).replace("torch.", "")
            return [cls(scale=False)]
        if name in ("ToTensor", "MaybeToTensor"):  # v2's ToTensor and timm's MaybeToTensor are v1's to_tensor
            return [cls()]
        multiply = type(op).__module__.startswith("torchvision.transforms.v2")
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
            return [cls(multiply)]
        if dtype == torch.uint8:
            state["dtype"] = "uint8"
            return []
        raise ValueError(f"cannot fuse {op!r}: dtype {dtype} is not supported")


@register_op
class _ContainerConversion(Op):
    """torchvision ops that only change the container (PIL <-> tensor), not the pixels; and timm's
    MaybePILToTensor (a uint8 tensor) and ToNumpy (a CHW uint8 array, timm's prefetcher input)."""

    stage = Stage.UINT8
    torchvision = ("ToImage", "PILToTensor", "ToImageTensor", "ToPureTensor")
    converts = ("timm.data.transforms.MaybePILToTensor", "timm.data.transforms.ToNumpy")

    def compile(self, spec, ctx):  # never in a Compose: from_torchvision drops it
        raise TypeError("_ContainerConversion is not a transform")

    @classmethod
    def from_torchvision(cls, op, state):
        name = type(op).__name__
        if name in ("PILToTensor", "MaybePILToTensor"):
            state["uint8_tensor"] = True
        if name == "ToNumpy":  # CHW uint8 levels
            state["dtype"] = "uint8"
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
        from ..io import StatsRecord

        rec = StatsRecord.read(path)
        if not rec.pca:
            raise ValueError(f"{path}: no PCA in these stats; run fastprep stats --pca --out {path}")
        return cls(alphastd, rec.pca["eigenvalues"], rec.pca["eigenvectors"])

    def check(self, ctx):
        if not ctx.has_tensor:
            raise ValueError("Lighting works on [0, 1] values: put ToTensor before it")
        if ctx.levels:
            raise ValueError("Lighting works on [0, 1] values, not the 0-255 of ToTensor(scale=False)")

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
class GaussianNoise(Op):
    """Adds ``mean + sigma * N(0, 1)`` to every [0, 1] value (after ToTensor, before Normalize),
    clamped to [0, 1] when ``clip``: torchvision v2's GaussianNoise (Note [Gaussian noise]). The
    N(0, 1) values are a function of the sample's recorded ``noise_seed``: :meth:`noise` rebuilds
    them, as ``torch.randn_like`` would have returned them, for a replay."""

    stage = Stage.TENSOR
    torchvision = ("GaussianNoise",)
    exclusive = {"Lighting": "GaussianNoise and Lighting cannot be combined: both noise the [0, 1] values"}
    params = ("noise_seed (the key of the sample's noise: GaussianNoise.noise(params, shape))",)

    def __init__(self, mean=0.0, sigma=0.1, clip=True):
        for name, v in (("mean", mean), ("sigma", sigma)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"GaussianNoise {name} must be a finite number, got {v!r}")
        if sigma < 0:
            raise ValueError(f"GaussianNoise sigma must be >= 0, got {sigma!r}")
        self.mean, self.sigma, self.clip = float(mean), float(sigma), bool(clip)

    def check(self, ctx):
        if ctx.levels:
            raise ValueError("fastprep fuses GaussianNoise on [0, 1] float values, not the 0-255 of ToTensor(scale=False)")
        if not ctx.has_tensor:
            raise ValueError("fastprep fuses GaussianNoise on [0, 1] float values: put ToTensor (or "
                             "ToDtype(scale=True)) before it (torchvision's uint8 GaussianNoise, int16 arithmetic, "
                             "runs in Python)")

    def check_output(self, out):
        if out.color == "YCbCr":
            raise ValueError("GaussianNoise needs an RGB, BGR or gray output")

    def compile(self, spec, ctx):
        spec.noise_on, spec.noise_mean, spec.noise_sigma, spec.noise_clip = True, self.mean, self.sigma, self.clip

    def sample_params(self, rec):
        return {"noise_seed": int(rec["noise_seed"])}

    @staticmethod
    def noise(params, shape):
        """The sample's N(0, 1) values, float32 of ``shape`` (C, H, W): the output's channels and
        size (``params``: a sample's params dict from ``return_params``)."""
        c, h, w = shape
        return _core.gaussian_noise(params["noise_seed"], c, h, w)

    @classmethod
    def from_torchvision(cls, op, state):
        return [cls(op.mean, op.sigma, op.clip)]


@register_op
class RandomErasing(Op):
    """With probability p, a random rectangle of the normalised output is set to ``value`` (a
    number, one per channel, or "random" for N(0, 1) noise): torchvision's RandomErasing.

    ``count=(lo, hi)`` and ``value="per_channel"`` make it timm's RandomErasing (which converts):
    a count of rectangles uniform in [lo, hi], each drawn as torchvision draws one with its area
    fraction divided by the count; "per_channel" fills each rectangle with one N(0, 1) value per
    channel (timm's mode "rand"), "random" with one per value (timm's "pixel"), 0 is timm's
    "const". ``params["erase"]`` is the rectangle (top, left, height, width) or None, or with a
    count the list of rectangles; :meth:`fill` rebuilds the noise they were filled with."""

    stage = Stage.FLOAT
    torchvision = ("RandomErasing",)
    converts = ("timm.data.random_erasing.RandomErasing",)
    params = ("erase", "erase_seed (RandomErasing.fill(params, channels))")
    count = (1, 1)  # the class default: RandomErasing(...) keeps its repr and pickles

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0, inplace=False, count=1):
        self.p = prob(p, "RandomErasing")  # not a ProbOp: other arguments
        self.scale = range2(scale, "RandomErasing", "scale")
        self.ratio = range2(ratio, "RandomErasing", "ratio")
        if not 0.0 <= self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f"RandomErasing scale must satisfy 0 <= lo <= hi <= 1, got {scale!r}")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"RandomErasing ratio must satisfy 0 < lo <= hi, got {ratio!r}")
        if isinstance(count, numbers.Integral) and not isinstance(count, bool):
            count = (count, count)
        if not (isinstance(count, (tuple, list)) and len(count) == 2
                and all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in count)
                and 1 <= count[0] <= count[1] <= _MAX_ERASE):
            raise ValueError(f"RandomErasing count must be an int or (lo, hi) with 1 <= lo <= hi <= {_MAX_ERASE}, "
                             f"got {count!r}")
        if tuple(count) != (1, 1):
            self.count = (int(count[0]), int(count[1]))
        if isinstance(value, str):
            if value not in ("random", "per_channel"):
                raise ValueError(f"RandomErasing value must be a number, a sequence, 'random' or 'per_channel', "
                                 f"got {value!r}")
            self.value = value
        else:
            vals = tuple(floats3(value, "value", "RandomErasing"))
            if not all(math.isfinite(v) and abs(v) <= F32_MAX for v in vals):
                raise ValueError(f"RandomErasing value must be finite float32 numbers (or 'random'), got {value!r}")
            self.value = vals[:1] if len(set(vals)) == 1 else vals  # one value, or one per channel

    def check(self, ctx):
        if not (ctx.has_tensor or ctx.norm is not None):
            raise ValueError("RandomErasing works on the float output: put ToTensor (and Normalize) before it")

    def check_output(self, out):
        if not isinstance(self.value, str) and len(self.value) != 1 and out.channels == 1:
            raise ValueError(f"RandomErasing value {self.value} has 3 values for a 1-channel output: give one")

    def compile(self, spec, ctx):
        spec.erase_p = self.p
        spec.erase_scale_lo, spec.erase_scale_hi = self.scale
        spec.erase_ratio_lo, spec.erase_ratio_hi = self.ratio
        spec.erase_random = self.value == "random"
        spec.erase_per_channel = self.value == "per_channel"
        spec.erase_count_lo, spec.erase_count_hi = self.count
        if not isinstance(self.value, str):
            spec.erase_value = list(self.value) * (3 // len(self.value))

    @staticmethod
    def _rects(params):
        e = params.get("erase")
        return [] if e is None else [e] if isinstance(e[0], int) else list(e)

    def fill(self, params, channels=3):
        """The values the sample's rectangles were filled with, one float32 array per rectangle:
        (channels, h, w) for value="random", (channels, 1, 1) for "per_channel", from the
        recorded ``params["erase_seed"]`` (a replay of timm's or torchvision's normal_())."""
        rects = self._rects(params)
        if self.value not in ("random", "per_channel"):
            return [np.broadcast_to(np.asarray(self.value * (channels // len(self.value)), np.float32)
                                    .reshape(channels, 1, 1), (channels, 1, 1)) for _ in rects]
        sizes = [channels * (h * w if self.value == "random" else 1) for _, _, h, w in rects]
        noise = _core.erase_noise(int(params["erase_seed"]), sum(sizes))
        out, at = [], 0
        for (_, _, h, w), n in zip(rects, sizes):
            out.append(noise[at:at + n].reshape((channels, h, w) if self.value == "random" else (channels, 1, 1)))
            at += n
        return out

    @classmethod
    def from_torchvision(cls, op, state):
        if type(op).__module__.startswith("timm."):
            # num_splits only skips the first part of a 4D batch (timm's prefetcher); in a
            # per-sample transform timm erases every sample, as the converted op does
            value = {"rand": "per_channel", "pixel": "random"}.get(op.mode, 0)
            ratio = (math.exp(op.log_aspect_ratio[0]), math.exp(op.log_aspect_ratio[1]))
            return [cls(op.probability, (op.min_area, op.max_area), ratio, value,
                        count=(op.min_count, op.max_count))]
        value = op.value
        if value is None or value == "random":  # v2 stores "random" as None
            value = "random"
        elif isinstance(value, (list, tuple)) and len(value) == 1:
            value = value[0]
        return [cls(op.p, tuple(op.scale), tuple(op.ratio), value)]

    def sample_params(self, rec):
        e = [[int(x) for x in rec["erase"][4 * k:4 * k + 4]] for k in range(_MAX_ERASE)]
        rects = [r for r in e if r[0] >= 0]
        out = {"erase": rects if self.count != (1, 1) else (rects[0] if rects else None)}
        if rects and self.value in ("random", "per_channel"):
            out["erase_seed"] = int(rec["erase_seed"])
        return out


_MAX_ERASE = int(_core.MAX_ERASE)  # the rectangles a sample records (csrc/pipeline/plan.h)

# name -> (mean, std, input range, color)
PRESETS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "unit", None),
    "caffe": ((103.939, 116.779, 123.68), (1.0, 1.0, 1.0), "255", "BGR"),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "unit", None),
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "unit", None),
    "imagenet255": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), "255", None),
}
# Normalisations computed per image from its own histogram (two-phase output, Note [Output
# stage] in csrc/kernels/output.h).
_PER_IMAGE_MODES = ("per_image", "minmax")


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
                lo, hi = range2((0.0, 1.0) if range is None else range, "Normalize", "range")
                if not (math.isfinite(lo) and math.isfinite(hi) and abs(lo) <= F32_MAX and abs(hi) <= F32_MAX):
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
        mean = floats3(mean, "mean")
        std = floats3(std, "std")
        if not all(math.isfinite(m) and abs(m) <= F32_MAX for m in mean):
            raise ValueError(f"Normalize mean must be finite float32 values, got {list(mean)}")
        if any(s == 0 or not math.isfinite(s) or abs(s) > F32_MAX for s in std):
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


def floats3(v, arg, what="Normalize"):
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
        from ..io import StatsRecord

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
        big = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38}.get(dtype, F32_MAX)
        if not bound < big / 2:
            raise ValueError(f"Normalize('whiten') values reach {bound:.4g}, beyond {dtype}'s range: "
                             "use a larger eps or dtype='float32'")
        return
    if norm.preset == "minmax":
        lo, hi = norm.range
        big = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38}.get(dtype, F32_MAX)
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
