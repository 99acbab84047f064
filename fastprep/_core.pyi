"""Type stub of the native module (csrc/bindings.cpp). PlanSpec's fields mirror
FASTPREP_PLAN_FIELDS in csrc/plan.h; tests/test_ops.py checks that every field is listed here."""
import enum
from typing import Any, Optional

import numpy as np

class Interp(enum.Enum):
    nearest: int
    bilinear: int
    bicubic: int

class DType(enum.Enum):
    uint8: int
    float32: int
    float16: int
    bfloat16: int

class Layout(enum.Enum):
    CHW: int
    HWC: int

class Color(enum.Enum):
    RGB: int
    BGR: int
    GRAY: int

class NormMode(enum.Enum):
    table: int
    per_image: int
    minmax: int

class Simd(enum.Enum):
    scalar: int
    sse41: int
    avx2: int

class ErrorKind(enum.Enum):
    decode: int
    unsupported: int
    too_large: int
    io: int
    invalid: int

class SampleStatus(enum.Enum):
    ok: int
    error: int
    not_jpeg: int

class PlanSpec:
    FIELDS: tuple[str, ...]
    resize_mode: int
    resize_size: int
    resize_h: int
    resize_w: int
    max_size: int
    interp: Interp
    antialias: bool
    crop_h: int
    crop_w: int
    rrc: bool
    rrc_h: int
    rrc_w: int
    scale_lo: float
    scale_hi: float
    ratio_lo: float
    ratio_hi: float
    flip_p: float
    vflip_p: float
    gray_p: float
    dtype: DType
    layout: Layout
    color: Color
    gray_channels: int
    normalize: bool
    mean: list[float]
    std: list[float]
    unit_range: bool
    norm_mode: NormMode
    range_lo: float
    range_hi: float
    exact: bool
    max_pixels: int
    strict: bool
    allow_truncated: bool
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
    def __init__(self, items: list[Any]) -> None: ...
    def __len__(self) -> int: ...

class Batch:
    def __init__(self, plan: Plan, items: Items, picks: Any, slots: Any, indices: Any, seed: int, epoch: int,
                 cancel: Optional[CancelToken] = None) -> None: ...
    def set_output(self, out: Any, out_h: int, out_w: int, dtype: DType) -> None: ...
    def probe(self, engine: Engine) -> None: ...
    def run(self, engine: Engine) -> None: ...
    def decode_only(self, engine: Engine) -> None: ...
    def status(self) -> np.ndarray: ...
    def warnings(self) -> np.ndarray: ...
    def errors(self) -> list[tuple[int, ErrorKind, str]]: ...
    def params(self) -> np.ndarray:
        """Structured array: top, left, height, width, flip, vflip, gray, src_h, src_w, out_h, out_w,
        decode_denom, orientation, norm_offset, norm_scale."""

class EncodedBytes:
    def __len__(self) -> int: ...

def cpu_simd() -> Simd: ...
def default_simd() -> Simd: ...
def parse_simd(name: str) -> Simd: ...
def encode_jpeg(image: np.ndarray, quality: int = 90, subsampling: int = 420,
                progressive: bool = False) -> EncodedBytes: ...
def float_to_half(f: float) -> int: ...
def float_to_bfloat16(f: float) -> int: ...
