"""from_torchvision: the fused equivalent of a torchvision v1 or v2 Compose."""
from ._transforms import (CenterCrop, Compose, Grayscale, Normalize, RandomHorizontalFlip, RandomResizedCrop, Resize,
                          ToTensor)

# v1/v2 ops that only change the container type (PIL <-> tensor), not the pixels.
_PASSTHROUGH = {"ToImage", "PILToTensor", "ToImageTensor", "ToPureTensor"}


def _interp(op):
    mode = getattr(op, "interpolation", "bilinear")
    return getattr(mode, "value", mode)


def _antialias(op):
    a = getattr(op, "antialias", True)
    # v1 on PIL always antialiases; "warn" (older torchvision) behaves as True on PIL.
    return True if a is None or a == "warn" else bool(a)


def _size(size):
    if isinstance(size, (list, tuple)) and len(size) == 1:
        return size[0]
    return tuple(size) if isinstance(size, (list, tuple)) else size


def _convert(op, out, state):
    name = type(op).__name__
    if name in ("Compose",):
        for t in op.transforms:
            _convert(t, out, state)
        return
    if name in _PASSTHROUGH:
        if name == "PILToTensor":
            state["uint8_tensor"] = True
        return
    if name == "Resize":
        out.append(Resize(_size(op.size), interpolation=_interp(op), max_size=getattr(op, "max_size", None),
                          antialias=_antialias(op)))
    elif name == "CenterCrop":
        out.append(CenterCrop(_size(op.size)))
    elif name == "RandomResizedCrop":
        out.append(RandomResizedCrop(_size(op.size), scale=tuple(op.scale), ratio=tuple(op.ratio),
                                     interpolation=_interp(op), antialias=_antialias(op)))
    elif name == "RandomHorizontalFlip":
        out.append(RandomHorizontalFlip(op.p))
    elif name == "Grayscale":
        out.append(Grayscale(getattr(op, "num_output_channels", 1)))
    elif name == "ToTensor":
        out.append(ToTensor())
    elif name in ("ToDtype", "ConvertImageDtype"):
        import torch

        dtype = op.dtype
        if isinstance(dtype, dict):  # v2 ToDtype may map types to dtypes
            vals = {v for v in dtype.values() if v is not None}
            if len(vals) != 1:
                raise ValueError(f"cannot fuse {op!r}: per-type dtypes")
            dtype = vals.pop()
        scale = getattr(op, "scale", name == "ConvertImageDtype")
        if dtype == torch.float32 or dtype == torch.float16 or dtype == torch.bfloat16:
            if not scale:
                raise ValueError(f"cannot fuse {op!r}: float conversion without scale=True keeps 0-255 values; "
                                 "use fp.Normalize with a 0-255 preset instead")
            out.append(ToTensor())
            state["dtype"] = str(dtype).replace("torch.", "")
        elif dtype == torch.uint8:
            state["dtype"] = "uint8"
        else:
            raise ValueError(f"cannot fuse {op!r}: dtype {dtype} is not supported")
    elif name == "Normalize":
        if getattr(op, "inplace", False) not in (False, True):
            raise ValueError(f"cannot fuse {op!r}")
        out.append(Normalize(list(op.mean), list(op.std)))
    else:
        raise ValueError(f"cannot fuse torchvision op {name} ({op!r}): fastprep fuses Resize, CenterCrop, "
                         "RandomResizedCrop, RandomHorizontalFlip, Grayscale, ToTensor/ToImage/ToDtype, Normalize")


def _is_v2(op):
    if type(op).__module__.startswith("torchvision.transforms.v2"):
        return True
    return any(_is_v2(t) for t in getattr(op, "transforms", ()) or ())


def from_torchvision(transform, **kwargs):
    """Builds the fused fastprep Compose equivalent to a torchvision (v1 or v2) transform.

    The result gives torchvision's pixels (``exact=True``, within 1 uint8 level); pass
    ``exact=False`` for fast mode (DCT-domain downscaling of large images while decoding, PSNR
    >= 40 dB). Other keyword arguments go to Compose (dtype, backend, ...). Raises ValueError
    naming the first op that cannot be fused.
    """
    kwargs.setdefault("exact", True)
    ops, state = [], {}
    _convert(transform, ops, state)
    if _is_v2(transform) and not any(isinstance(o, ToTensor) for o in ops):
        kwargs.setdefault("layout", "CHW")  # v2 ops on tensors keep torchvision's CHW uint8 images
    if state.get("uint8_tensor") and "dtype" not in state and not any(isinstance(o, ToTensor) for o in ops):
        kwargs.setdefault("layout", "CHW")  # PILToTensor/ToImage give CHW uint8 tensors
    if "dtype" in state:
        kwargs.setdefault("dtype", state["dtype"])
        if state["dtype"] == "uint8":
            kwargs.setdefault("layout", "CHW")
    return Compose(ops, **kwargs)
