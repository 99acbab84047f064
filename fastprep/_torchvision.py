"""from_torchvision: the fused equivalent of a torchvision v1 or v2 Compose. Which torchvision
ops convert, and how, is declared by each op class (``Op.torchvision`` /
``Op.from_torchvision`` in fastprep/_ops.py)."""
from ._ops import ToTensor, _by_torchvision, registered_ops
from ._transforms import Compose


def _convert(op, out, state):
    name = type(op).__name__
    if name == "Compose":
        for t in op.transforms:
            _convert(t, out, state)
        return
    cls = _by_torchvision().get(name)
    if cls is None:
        fusable = sorted({tv for c in registered_ops().values() for tv in c.torchvision})
        raise ValueError(f"cannot fuse torchvision op {name} ({op!r}): fastprep fuses {', '.join(fusable)}")
    out.extend(cls.from_torchvision(op, state))


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
    has_tensor = any(isinstance(o, ToTensor) for o in ops)
    if _is_v2(transform) and not has_tensor:
        kwargs.setdefault("layout", "CHW")  # v2 ops on tensors keep torchvision's CHW uint8 images
    if state.get("uint8_tensor") and "dtype" not in state and not has_tensor:
        kwargs.setdefault("layout", "CHW")  # PILToTensor/ToImage give CHW uint8 tensors
    if "dtype" in state:
        kwargs.setdefault("dtype", state["dtype"])
        if state["dtype"] == "uint8":
            kwargs.setdefault("layout", "CHW")
    return Compose(ops, **kwargs)
