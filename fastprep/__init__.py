"""fastprep: encoded images -> training-ready tensors in one fused native pass.

    import fastprep as fp
    t = fp.Compose([fp.Resize(256), fp.CenterCrop(224), fp.ToTensor(), fp.Normalize("imagenet")])
    x = t(open("cat.jpg", "rb").read())          # (3, 224, 224) float32
    xb = t.batch(paths, seed=0)                   # (N, 3, 224, 224)
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

from ._errors import (AllSamplesFailedError, DecodeError, ImageTooLargeError, MissingDependencyError, ReadError,
                      UnsupportedImageError)
from ._ops import (PRESETS, AutoAugment, RandAugment, RandomAffine, RandomRotation, TrivialAugmentWide, CenterCrop, ColorJitter, Grayscale, Lighting, RandomErasing, RandomHSV, InterpolationMode, Normalize, Op, RandomGrayscale,
                   RandomHorizontalFlip, RandomResizedCrop, RandomVerticalFlip, Resize, Stage, ToTensor, op_table,
                   register_op, registered_ops)
from ._transforms import DEFAULT_MAX_PIXELS, Compose
from ._torchvision import from_torchvision
from . import _core

__version__ = "0.1.0"


def simd_info():
    """{"cpu": best level of this CPU, "default": level used (FASTPREP_SIMD caps it)}."""
    return {"cpu": _core.cpu_simd().name, "default": _core.default_simd().name}


def build_info():
    """What this installation is: ``version``; ``native_formats`` (the formats decoded natively,
    the others going to Pillow); ``codecs`` (the library and version behind each native decoder,
    None for a format this build has no decoder for); ``simd_compiled`` and ``simd_available``
    (the levels built in, and those this CPU runs), ``simd_default`` (FASTPREP_SIMD caps it);
    ``libraries`` (on Linux, the file each codec library was loaded from: the wheel's bundled
    copies, or the system's)."""
    info = dict(_core.build_info())
    codecs = info["codecs"]
    info["version"] = __version__
    info["native_formats"] = ["jpeg"] + [f for f in ("png", "webp") if codecs.get(f)]
    info["simd_available"] = [s.name for s in _core.simd_levels()]
    try:
        info["simd_default"] = _core.default_simd().name
    except ValueError as e:  # a bad FASTPREP_SIMD: say so here rather than fail
        info["simd_default"] = f"error: {e}"
    info["libraries"] = _loaded_codec_libraries()
    return info


def _loaded_codec_libraries():
    """{name: path} of the codec libraries mapped into this process (Linux /proc/self/maps)."""
    import re

    found = {}
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(None, 5)[-1].strip() if line.count(" ") >= 5 else ""
                m = re.search(r"/(libjpeg|libpng16|libwebp|libz)[-.][^/]*$", path)
                if m and m.group(1) not in found:
                    found[m.group(1)] = path
    except OSError:
        pass
    return found


__all__ = [
    "Compose", "Resize", "CenterCrop", "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip",
    "ToTensor", "Normalize", "Grayscale", "RandomGrayscale", "ColorJitter", "Lighting", "RandomErasing", "RandomHSV",
    "RandomRotation", "RandomAffine", "RandAugment", "TrivialAugmentWide", "AutoAugment", "Op", "Stage", "register_op", "registered_ops",
    "op_table", "InterpolationMode", "PRESETS", "DEFAULT_MAX_PIXELS", "from_torchvision", "simd_info", "build_info",
    "DecodeError", "UnsupportedImageError", "ImageTooLargeError", "ReadError", "MissingDependencyError",
    "AllSamplesFailedError",
]

from ._loader import Loader  # noqa: E402,F401
from ._mix import CutMix, MixUp, RandomChoice  # noqa: E402

__all__ += ["Loader", "MixUp", "CutMix", "RandomChoice"]

from ._datasets import IMG_EXTENSIONS, Dataset, LabelError, index_source  # noqa: E402
from ._shards import ShardDataset  # noqa: E402
from ._stats import compute_stats  # noqa: E402
from ._preprocess import preprocess  # noqa: E402

from ._offline import WriteError  # noqa: E402
from ._preprocess import OutputLockedError  # noqa: E402
from ._shards import ShardTruncatedError  # noqa: E402
from ._tar import TarFormatError, TarMember  # noqa: E402

__all__ += ["index_source", "Dataset", "IMG_EXTENSIONS", "LabelError", "ShardDataset", "compute_stats", "preprocess",
            "WriteError", "OutputLockedError", "ShardTruncatedError", "TarFormatError", "TarMember"]
