"""fastprep: encoded images -> training-ready tensors in one fused native pass.

    import fastprep as fp
    t = fp.Compose([fp.Resize(256), fp.CenterCrop(224), fp.ToTensor(), fp.Normalize("imagenet")])
    x = t(open("cat.jpg", "rb").read())          # (3, 224, 224) float32
    xb = t.batch(paths)                           # (N, 3, 224, 224)

The package by layer (ARCHITECTURE.md): the leaves (_errors, _checks, _util, _build) < io (files,
tar shards, the Pillow fallback, on-disk formats) < transforms (the ops, Compose,
from_torchvision) < data (datasets, the Loader) and offline (stats, preprocess) < ray, cli, bench.
"""
try:
    from . import _core
except ImportError as _e:  # a source checkout without its build, imported from its own folder
    import os as _os

    _here = _os.path.dirname(_os.path.abspath(__file__))
    raise ImportError(
        f"fastprep's native module (fastprep._core) is not built in {_here}: this is a source checkout. Build it "
        "there with `pip install -e .`, or, to use the fastprep installed with `pip install .`, run Python from "
        f"another folder (this one shadows it on sys.path). ({_e})") from None

from ._build import __version__, build_info, simd_info
from ._errors import (AllSamplesFailedError, DecodeError, ImageTooLargeError, MissingDependencyError, ReadError,
                      TransformError, ImageTooSmallError,
                      UnsupportedImageError)
from .io import FormatError, TarFormatError, TarMember, WriteError
from .transforms import (DEFAULT_MAX_PIXELS, PRESETS, AugMix, AutoAugment, CenterCrop, FiveCrop, TenCrop, Pad, RandomCrop, RandomResize, RandomShortestSize, ResizeKeepRatio, RandomPerspective, ElasticTransform, RandomZoomOut, ColorJitter, ExemplarJitter, RandomPhotometricDistort, JPEG, Compose, GaussianBlur, PILGaussianBlur,
                         Grayscale, InterpolationMode, Lighting, GaussianNoise, Normalize, Op, RandAugment, RandomAdjustSharpness,
                         RandomAffine, RandomApply, RandomAutocontrast, RandomChannelPermutation, RandomChoice,
                         RandomEqualize, RandomErasing, RandomGrayscale, RandomHorizontalFlip, RandomHSV, RandomInvert,
                         RandomOrder, RandomPosterize, RandomResizedCrop, RandomRotation, RandomSolarize,
                         RandomVerticalFlip, Resize, Stage, TimmAugMix, TimmAutoAugment, TimmRandAugment, ToTensor, TrivialAugmentWide,
                         from_torchvision, op_table,
                         register_op, registered_ops, HybridCompose, MultiView)
from .data import (IMG_EXTENSIONS, CutMix, Dataset, ErrorLog, LabelError, Loader, MixChoice, MixUp, ShardDataset, TimmMixup,
                   ShardTruncatedError, index_source)
from .offline import OutputLockedError, compute_stats, optimize, preprocess
from . import _compat  # noqa: E402,F401  (the module paths of 0.1 that pickles name)

__all__ = [
    "Compose", "Resize", "CenterCrop", "FiveCrop", "TenCrop", "Pad", "RandomCrop", "RandomResize",
    "RandomShortestSize", "ResizeKeepRatio", "RandomPerspective", "ElasticTransform", "RandomZoomOut", "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip",
    "ToTensor", "Normalize", "Grayscale", "RandomGrayscale", "ColorJitter", "Lighting", "GaussianNoise", "RandomErasing", "RandomHSV",
    "RandomRotation", "RandomAffine", "RandAugment", "TrivialAugmentWide", "AutoAugment", "AugMix",
    "TimmRandAugment", "TimmAutoAugment", "TimmAugMix", "GaussianBlur", "PILGaussianBlur",
    "RandomSolarize", "RandomPosterize", "RandomEqualize", "RandomAutocontrast", "RandomInvert",
    "RandomAdjustSharpness", "RandomChannelPermutation", "ExemplarJitter", "RandomPhotometricDistort", "JPEG", "RandomApply", "RandomChoice", "RandomOrder", "Op", "Stage",
    "register_op", "registered_ops", "op_table", "InterpolationMode", "PRESETS", "DEFAULT_MAX_PIXELS",
    "from_torchvision", "HybridCompose", "MultiView", "simd_info", "build_info", "DecodeError", "UnsupportedImageError", "ImageTooLargeError",
    "ReadError", "ImageTooSmallError", "TransformError", "MissingDependencyError", "AllSamplesFailedError", "Loader", "MixUp", "CutMix", "MixChoice", "TimmMixup",
    "index_source", "Dataset", "IMG_EXTENSIONS", "LabelError", "ShardDataset", "compute_stats", "preprocess", "optimize",
    "WriteError", "OutputLockedError", "ShardTruncatedError", "TarFormatError", "TarMember", "FormatError",
    "ErrorLog",
]
