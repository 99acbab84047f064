"""Type stub of the native module (csrc/python/: module.cpp and the bind_*.cpp files). PlanSpec's fields mirror
FASTPREP_PLAN_FIELDS in csrc/pipeline/plan.h; tests/test_ops.py checks that every field is listed here."""
from typing import Any, ClassVar, Optional

import numpy as np

class _PybindEnum:
    """pybind11 enums: not enum.Enum subclasses; members compare by identity/value."""
    __members__: ClassVar[dict[str, Any]]
    def __init__(self, value: int) -> None: ...
    def __int__(self) -> int: ...
    @property
    def value(self) -> int: ...
    @property
    def name(self) -> str: ...

class Interp(_PybindEnum):
    nearest: ClassVar[Interp]
    bilinear: ClassVar[Interp]
    bicubic: ClassVar[Interp]

class AugOp(_PybindEnum):
    Identity: ClassVar[AugOp]
    ShearX: ClassVar[AugOp]
    ShearY: ClassVar[AugOp]
    TranslateX: ClassVar[AugOp]
    TranslateY: ClassVar[AugOp]
    Rotate: ClassVar[AugOp]
    Brightness: ClassVar[AugOp]
    Color: ClassVar[AugOp]
    Contrast: ClassVar[AugOp]
    Sharpness: ClassVar[AugOp]
    Posterize: ClassVar[AugOp]
    Solarize: ClassVar[AugOp]
    AutoContrast: ClassVar[AugOp]
    Equalize: ClassVar[AugOp]
    Invert: ClassVar[AugOp]

class AugTable(_PybindEnum):
    none: ClassVar[AugTable]
    linspace: ClassVar[AugTable]
    linspace_width: ClassVar[AugTable]
    linspace_height: ClassVar[AugTable]
    posterize: ClassVar[AugTable]
    posterize4: ClassVar[AugTable]

class TimmOp(_PybindEnum):
    AutoContrast: ClassVar[TimmOp]
    Equalize: ClassVar[TimmOp]
    Invert: ClassVar[TimmOp]
    Rotate: ClassVar[TimmOp]
    Posterize: ClassVar[TimmOp]
    PosterizeIncreasing: ClassVar[TimmOp]
    PosterizeOriginal: ClassVar[TimmOp]
    Solarize: ClassVar[TimmOp]
    SolarizeIncreasing: ClassVar[TimmOp]
    SolarizeAdd: ClassVar[TimmOp]
    Color: ClassVar[TimmOp]
    ColorIncreasing: ClassVar[TimmOp]
    Contrast: ClassVar[TimmOp]
    ContrastIncreasing: ClassVar[TimmOp]
    Brightness: ClassVar[TimmOp]
    BrightnessIncreasing: ClassVar[TimmOp]
    Sharpness: ClassVar[TimmOp]
    SharpnessIncreasing: ClassVar[TimmOp]
    ShearX: ClassVar[TimmOp]
    ShearY: ClassVar[TimmOp]
    TranslateX: ClassVar[TimmOp]
    TranslateY: ClassVar[TimmOp]
    TranslateXRel: ClassVar[TimmOp]
    TranslateYRel: ClassVar[TimmOp]
    Desaturate: ClassVar[TimmOp]
    GaussianBlur: ClassVar[TimmOp]
    GaussianBlurRand: ClassVar[TimmOp]

class PilOp(_PybindEnum):
    AutoContrast: ClassVar[PilOp]
    Equalize: ClassVar[PilOp]
    Invert: ClassVar[PilOp]
    Rotate: ClassVar[PilOp]
    Posterize: ClassVar[PilOp]
    Solarize: ClassVar[PilOp]
    SolarizeAdd: ClassVar[PilOp]
    Color: ClassVar[PilOp]
    Contrast: ClassVar[PilOp]
    Brightness: ClassVar[PilOp]
    Sharpness: ClassVar[PilOp]
    ShearX: ClassVar[PilOp]
    ShearY: ClassVar[PilOp]
    TranslateX: ClassVar[PilOp]
    TranslateY: ClassVar[PilOp]
    GaussianBlur: ClassVar[PilOp]

MAX_AUG_OPS: int
PIX_ARGS: int
MAX_ERASE: int
PIX_VALS: int
MAX_PIX_OPS: int
MAX_CONTAINERS: int
MAX_MEMBERS: int
MAX_BLUR_KERNEL: int

class PixOp(_PybindEnum):
    solarize: ClassVar[PixOp]
    posterize: ClassVar[PixOp]
    equalize: ClassVar[PixOp]
    autocontrast: ClassVar[PixOp]
    invert: ClassVar[PixOp]
    sharpness: ClassVar[PixOp]
    channel_permutation: ClassVar[PixOp]
    gaussian_blur: ClassVar[PixOp]
    exemplar_jitter: ClassVar[PixOp]
    jpeg: ClassVar[PixOp]

class DType(_PybindEnum):
    uint8: ClassVar[DType]
    float32: ClassVar[DType]
    float16: ClassVar[DType]
    bfloat16: ClassVar[DType]

class Layout(_PybindEnum):
    CHW: ClassVar[Layout]
    HWC: ClassVar[Layout]

class Color(_PybindEnum):
    RGB: ClassVar[Color]
    BGR: ClassVar[Color]
    GRAY: ClassVar[Color]
    YCbCr: ClassVar[Color]

class NormMode(_PybindEnum):
    table: ClassVar[NormMode]
    per_image: ClassVar[NormMode]
    minmax: ClassVar[NormMode]
    whiten: ClassVar[NormMode]

class Simd(_PybindEnum):
    scalar: ClassVar[Simd]
    sse41: ClassVar[Simd]
    avx2: ClassVar[Simd]
    neon: ClassVar[Simd]

class ErrorKind(_PybindEnum):
    decode: ClassVar[ErrorKind]
    unsupported: ClassVar[ErrorKind]
    too_large: ClassVar[ErrorKind]
    too_small: ClassVar[ErrorKind]
    io: ClassVar[ErrorKind]
    invalid: ClassVar[ErrorKind]

class SampleStatus(_PybindEnum):
    ok: ClassVar[SampleStatus]
    error: ClassVar[SampleStatus]
    not_jpeg: ClassVar[SampleStatus]

class PlanSpec:
    FIELDS: tuple[str, ...]
    resize_mode: int
    resize_choices: list[int]
    resize_size: int
    resize_h: int
    resize_w: int
    max_size: int
    keep_ratio_longest: float
    crop_pad_fill: bool
    interp: Interp
    antialias: bool
    crop_h: int
    crop_w: int
    crop_anchor: int
    rrc: bool
    rrc_h: int
    rrc_w: int
    scale_lo: float
    scale_hi: float
    ratio_lo: float
    ratio_hi: float
    pad: list[int]
    pad_mode: int
    pad_fill: list[float]
    zoom_p: float
    zoom_lo: float
    zoom_hi: float
    rcrop: bool
    rcrop_h: int
    rcrop_w: int
    rcrop_if_needed: bool
    flip_p: float
    vflip_p: float
    gray_p: float
    jitter_mask: int
    brightness_lo: float
    brightness_hi: float
    contrast_lo: float
    contrast_hi: float
    saturation_lo: float
    saturation_hi: float
    hue_lo: float
    hue_hi: float
    jitter_p: float
    hsv_gain: list[float]
    affine_mode: int
    elastic_alpha_x: float
    elastic_alpha_y: float
    elastic_sigma_x: float
    elastic_sigma_y: float
    persp_scale: float
    persp_p: float
    degrees_lo: float
    degrees_hi: float
    translate_x: float
    translate_y: float
    affine_scale_lo: float
    affine_scale_hi: float
    shear_n: int
    shear_x: list[float]
    shear_y: list[float]
    affine_interp: Interp
    affine_fill_on: bool
    affine_fill: list[float]
    aug_policy: int
    aug_ops: list[int]
    aug_table: list[int]
    aug_lo: list[float]
    aug_hi: list[float]
    aug_signed: list[int]
    aug_prob: list[float]
    aug_bin: list[int]
    aug_num_ops: int
    aug_magnitude: int
    augmix_width: int
    augmix_depth: int
    augmix_alpha: float
    aug_bins: int
    aug_interp: Interp
    aug_fill_on: bool
    aug_fill: list[float]
    timm_policy: int
    timm_ops: list[int]
    timm_prob: list[float]
    timm_mag: list[float]
    timm_mstd: list[float]
    timm_mmax: list[float]
    timm_hp: list[float]
    timm_filter: list[int]
    timm_fill: list[float]
    timm_num_layers: int
    timm_weights: list[float]
    timm_sub_len: list[int]
    timm_blended: bool
    px_ops: list[int]
    px_args: list[float]
    px_group: list[int]
    px_member: list[int]
    group_kind: list[int]
    group_members: list[int]
    group_p: list[float]
    jitter_group: int
    lighting_std: float
    eigval: list[float]
    eigvec: list[float]
    noise_on: bool
    noise_mean: float
    noise_sigma: float
    noise_clip: bool
    erase_p: float
    erase_scale_lo: float
    erase_scale_hi: float
    erase_ratio_lo: float
    erase_ratio_hi: float
    erase_random: bool
    erase_per_channel: bool
    erase_count_lo: int
    erase_count_hi: int
    erase_value: list[float]
    dtype: DType
    layout: Layout
    color: Color
    gray_channels: int
    gray_v2: bool
    normalize: bool
    mean: list[float]
    std: list[float]
    unit_range: bool
    unit_mul: bool
    norm_mode: NormMode
    range_lo: float
    range_hi: float
    mix: list[float]
    exact: bool
    max_pixels: int
    strict: bool
    allow_truncated: bool
    splice_restarts: bool
    interp_random: bool
    apply_exif: bool
    simd: Simd
    def __init__(self) -> None: ...

class Plan:
    def __init__(self, spec: PlanSpec) -> None: ...
    @property
    def spec(self) -> PlanSpec: ...
    @property
    def fixed_size(self) -> Optional[tuple[int, int]]: ...
    @property
    def channels(self) -> int: ...
    @property
    def simd(self) -> str: ...
    @property
    def output_kernel(self) -> str: ...
    @property
    def needs_stats(self) -> bool: ...

class Engine:
    def __init__(self, threads: int) -> None: ...
    @property
    def threads(self) -> int: ...
    @property
    def rebuilds(self) -> int: ...

class CancelToken:
    def __init__(self) -> None: ...
    def cancel(self) -> None: ...
    @property
    def cancelled(self) -> bool: ...

class Items:
    # items: str paths, bytes-like encoded images, uint8 pixel arrays, or (path, offset, size, ...)
    # tuples (a tar member: only those bytes of the file are read)
    def __init__(self, items: list[Any]) -> None: ...
    def __len__(self) -> int: ...

class Batch:
    def __init__(self, plan: Plan | list[Plan], items: Items, picks: Any, slots: Any, indices: Any, seed: int,
                 epoch: int, cancel: Optional[CancelToken] = None) -> None: ...
    @property
    def views(self) -> int: ...
    def set_output(self, out: Any, out_h: int, out_w: int, view: int = 0) -> None: ...
    def probe(self, engine: Engine) -> None: ...
    def run(self, engine: Engine) -> None: ...
    def decode_only(self, engine: Engine) -> None: ...
    def status(self) -> np.ndarray: ...
    def warnings(self) -> np.ndarray: ...
    def errors(self) -> list[tuple[int, ErrorKind, str]]: ...
    def take_encoded(self, position: int) -> Optional[bytes]: ...
    def params(self) -> np.ndarray:
        """Structured array: top, left, height, width, flip, vflip, gray, jitter_mask, jitter_order[4],
        jitter_factor[4], lighting_alpha[3], hsv[3], erase[4], src_h, src_w, out_h, out_w, decode_denom, orientation, decoded_pixels, norm_offset, norm_scale."""

class EncodedBytes:
    def __len__(self) -> int: ...

def cpu_simd() -> Simd: ...
def simd_levels() -> list[Simd]: ...
def default_simd() -> Simd: ...
def elastic_displacement(seed: int, h: int, w: int, alpha_x: float, alpha_y: float, sigma_x: float, sigma_y: float) -> np.ndarray: ...
def view_seed(seed: int, view: int) -> int: ...
def erase_noise(seed: int, n: int) -> np.ndarray: ...
def gaussian_noise(seed: int, c: int, h: int, w: int) -> np.ndarray: ...
def parse_simd(name: str) -> Simd: ...
def encode_jpeg(image: np.ndarray, quality: int = 90, subsampling: int = 420,
                progressive: bool = False, restart_mcus: int = 0) -> EncodedBytes: ...
def transcode_jpeg(data: bytes, restart_mcus: int = 4, keep_metadata: bool = True, verify: bool = True,
                   max_pixels: int = 0) -> tuple[EncodedBytes, int, int, bool]: ...
def restart_layout(data: bytes) -> Optional[dict]: ...
def splice_jpeg(data: bytes, r0: int, r1: int, c0: int, c1: int) -> EncodedBytes: ...
def augment_image(image: np.ndarray, op: AugOp, magnitude: float, interpolation: Interp = ...,
                  fill: list[float] | None = None, simd: Simd = ...) -> np.ndarray: ...
def pil_augment_image(image: np.ndarray, op: PilOp, arg: float, filter: int = 2,
                      fill: list[int] = ...) -> np.ndarray: ...
def affine_image(image: np.ndarray, angle: float, tx: float = 0.0, ty: float = 0.0, scale: float = 1.0,
                 shear_x: float = 0.0, shear_y: float = 0.0, rotate: bool = False, interpolation: Interp = ...,
                 fill: list[float] | None = None, simd: Simd = ...) -> np.ndarray: ...
def mixup(batch: np.ndarray, lam: float) -> None: ...
def cutmix(batch: np.ndarray, layout: Layout, y1: int, y2: int, x1: int, x2: int) -> None: ...
def level_moments(batch: np.ndarray, s1: np.ndarray, s2: np.ndarray, sx: Optional[np.ndarray] = None,
                  hw: int = 0) -> None: ...
def float_to_half(f: float) -> int: ...
def float_to_bfloat16(f: float) -> int: ...
