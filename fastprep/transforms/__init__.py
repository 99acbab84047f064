"""fastprep.transforms: the ops, Compose and the torchvision conversion.

The ops by kind, as torchvision's transforms/v2 keeps them: _geometry (Resize, CenterCrop,
RandomResizedCrop, the flips, RandomRotation, RandomAffine), _color (Grayscale, RandomGrayscale,
ColorJitter, RandomHSV, and the op sequence's RandomSolarize, RandomPosterize, RandomEqualize,
RandomAutocontrast, RandomInvert, RandomAdjustSharpness, RandomChannelPermutation), _auto_augment
(RandAugment, TrivialAugmentWide, AutoAugment), _timm_augment (timm's
RandAugment, AutoAugment and AugMix with Pillow's arithmetic), _misc (GaussianBlur, PILGaussianBlur, ToTensor, Normalize,
Lighting, GaussianNoise, RandomErasing), _container (RandomApply, RandomChoice, RandomOrder over fusable ops); the registry they join (_op: Op, Stage,
register_op, the order rules, op_table); Compose, which compiles them into one native plan
(_compose, with its output pool _pool); and from_torchvision (_torchvision). A new op is one class
in the module of its kind (ARCHITECTURE.md, "What a new op touches").
"""
from ._op import (CompileContext, Op, OutputOptions, Stage, check_order, converter_for, op_table, register_op,
                  registered_ops, target_name)
from ._args import InterpolationMode
# Registration order is the op table's order: geometry, colour, augmentation, then the float stages.
from ._geometry import (CenterCrop, FiveCrop, Pad, RandomPerspective, ElasticTransform, RandomZoomOut, RandomResize, RandomShortestSize, ResizeKeepRatio, TenCrop, RandomAffine, RandomCrop, RandomHorizontalFlip, RandomResizedCrop,
                        RandomRotation, RandomVerticalFlip, Resize)
from ._color import (ColorJitter, ExemplarJitter, RandomPhotometricDistort, Grayscale, RandomAdjustSharpness, RandomAutocontrast, RandomChannelPermutation,
                     RandomEqualize, RandomGrayscale, RandomHSV, RandomInvert, RandomPosterize, RandomSolarize)
from ._auto_augment import AA_POLICIES, AugMix, AutoAugment, RandAugment, TrivialAugmentWide
from ._timm_augment import TimmAugMix, TimmAutoAugment, TimmRandAugment
from ._misc import (IMAGENET_EIGVAL, IMAGENET_EIGVEC, JPEG, PRESETS, GaussianBlur, PILGaussianBlur, Lighting, GaussianNoise, Normalize, RandomErasing,
                    ToTensor, check_table)
from ._container import RandomApply, RandomChoice, RandomOrder, is_container
from ._compose import DEFAULT_MAX_PIXELS, Compose, rebuild_compose
from ._pool import OutputPool
from ._hybrid import HybridCompose
from ._multiview import MultiView
from ._torchvision import from_torchvision, torchvision_name

__all__ = [
    "Op", "Stage", "register_op", "registered_ops", "op_table", "converter_for", "target_name", "CompileContext",
    "OutputOptions", "check_order", "InterpolationMode", "Resize", "CenterCrop", "FiveCrop", "TenCrop", "Pad", "RandomCrop", "RandomResize", "RandomShortestSize", "ResizeKeepRatio", "RandomPerspective", "ElasticTransform", "RandomZoomOut", "RandomResizedCrop",
    "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation", "RandomAffine", "Grayscale", "RandomGrayscale",
    "ColorJitter", "RandomHSV", "RandomSolarize", "RandomPosterize", "RandomEqualize", "RandomAutocontrast",
    "RandomInvert", "RandomAdjustSharpness", "RandomChannelPermutation", "ExemplarJitter", "RandomPhotometricDistort", "JPEG", "GaussianBlur", "PILGaussianBlur", "RandomApply",
    "RandomChoice", "RandomOrder", "is_container", "RandAugment", "AugMix", "TrivialAugmentWide", "AutoAugment", "AA_POLICIES", "TimmRandAugment", "TimmAutoAugment", "TimmAugMix", "ToTensor",
    "Normalize", "Lighting", "GaussianNoise", "RandomErasing", "PRESETS", "IMAGENET_EIGVAL", "IMAGENET_EIGVEC", "check_table",
    "Compose", "DEFAULT_MAX_PIXELS", "rebuild_compose", "OutputPool", "from_torchvision", "torchvision_name", "HybridCompose", "MultiView",
]
